//! `scanhook worker`: delivery only, for separate worker processes beside `serve
//! --no-deliver` (or beside other `serve` processes) on one PostgreSQL database.

use crate::clock::SystemClock;
use crate::config::{DatabaseArgs, DeliveryArgs};
use crate::delivery::guard::Guard;
use crate::delivery::sender::Sender;
use crate::delivery::worker::Worker;
use crate::store::Store;
use clap::Args;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub delivery: DeliveryArgs,
    #[command(flatten)]
    pub db: DatabaseArgs,
}

pub async fn run(args: WorkerArgs) -> anyhow::Result<()> {
    let signal = super::serve::ShutdownSignal::install();
    let file = args.db.file()?;
    let delivery = args.delivery.resolve(&file)?;
    let store = Store::connect(&args.db.resolve_with_file(&file)?).await?;
    store.migrate().await?;
    let store = store.with_key(crate::app::secret_key(Some(
        &args.db.secret_key_path(&file)?,
    ))?);
    store.adopt_key().await?;
    let sender = Sender::new(
        Guard::new(delivery.allow_cidrs),
        delivery.config.timeout,
        delivery.outbound_proxy.as_ref(),
    )?;
    let worker = Arc::new(Worker::new(
        store.clone(),
        sender,
        delivery.config,
        Arc::new(SystemClock),
    ));
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(worker.run(shutdown.clone()));
    let checkpoints = tokio::spawn(store.clone().checkpoint_loop(shutdown.clone()));
    tracing::info!("delivery worker running");
    signal.recv().await;
    tracing::info!("shutting down: finishing attempts in flight");
    shutdown.cancel();
    task.await?;
    checkpoints.await?;
    store.close().await;
    Ok(())
}
