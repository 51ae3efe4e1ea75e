//! `scanhook migrate`: applies the embedded migrations and exits.

use crate::config::DatabaseArgs;
use crate::store::{redact, Store};

pub async fn run(args: DatabaseArgs) -> anyhow::Result<()> {
    let url = args.resolve()?;
    let store = Store::connect(&url).await?;
    store.migrate().await?;
    eprintln!("migrations applied to {}", redact(&url));
    store.close().await;
    Ok(())
}
