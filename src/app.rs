//! Wires configuration, storage, the JSON API and the web UI into a running server, with
//! its background tasks (delivery, the abandoned-scan sweeper, the retention pruner, WAL
//! checkpoints) and a graceful shutdown driven by one `CancellationToken`.

use crate::clock::SystemClock;
use crate::config::Config;
use crate::delivery::guard::Guard;
use crate::delivery::metrics::Metrics;
use crate::delivery::sender::Sender;
use crate::delivery::worker::Worker;
use crate::domain::throttle::Throttle;
use crate::domain::tokens::Scope;
use crate::edge::UploadBudget;
use crate::error::error_response;
use crate::http::ops::Document;
use crate::secrets::SecretKey;
use crate::serve::Limits;
use crate::state::AppState;
use crate::store::Store;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::{Extension, Router};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A server that is up and answering.
pub struct Running {
    pub addr: SocketAddr,
    pub store: Store,
    /// The admin token printed on first start of an empty database, if this start made it.
    pub first_admin_token: Option<String>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

impl Running {
    /// Stops accepting, lets in-flight requests finish (bounded), stops background tasks.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.tasks.close();
        if tokio::time::timeout(Duration::from_secs(30), self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("shutdown drain timed out after 30s");
        }
        self.store.close().await;
    }

    /// Resolves when the server has stopped for any reason.
    pub async fn stopped(&self) {
        self.tasks.wait().await
    }
}

/// Connects, migrates, bootstraps an empty database, binds and starts serving.
pub async fn start(config: Config, shutdown: CancellationToken) -> anyhow::Result<Running> {
    let store = Store::connect(&config.database_url).await?;
    store.migrate().await?;
    let store = store
        .with_key(secret_key(config.secret_key_file.as_deref())?)
        .with_public_url(&config.public_url);
    store.adopt_key().await?;
    let first_admin_token = bootstrap(&store, &config.deployment).await?;
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
    let addr = listener.local_addr()?;
    let sender = Sender::new(
        Guard::new(config.allow_cidrs.clone()),
        config.delivery.timeout,
        config.outbound_proxy.as_ref(),
    )?;
    let tasks = TaskTracker::new();
    let (wake, metrics, handoff) = if config.deliver {
        let worker = Arc::new(Worker::new(
            store.clone(),
            sender.clone(),
            config.delivery.clone(),
            Arc::new(SystemClock),
        ));
        let handles = (
            worker.wake.clone(),
            worker.metrics.clone(),
            Some(worker.handoff()),
        );
        tasks.spawn(worker.run(shutdown.clone()));
        handles
    } else {
        (Arc::new(Notify::new()), Arc::new(Metrics::default()), None)
    };
    let uploads = Arc::new(UploadBudget::new(
        config.max_uploads_in_flight_bytes,
        config.upload_wait,
    ));
    let state = AppState {
        store: store.clone(),
        config: Arc::new(config),
        sender,
        wake,
        metrics,
        handoff,
        sign_ins: Arc::new(Throttle::new(
            crate::state::SIGN_IN_FAILURES,
            crate::state::SIGN_IN_WINDOW,
            10_000,
        )),
        uploads,
    };

    tasks.spawn(crate::serve::serve(
        listener,
        router(state.clone()),
        Limits::of(&state.config),
        shutdown.clone(),
        tasks.clone(),
    ));
    tasks.spawn(crate::retention::run(
        store.clone(),
        state.config.retention.clone(),
        Arc::new(SystemClock),
        shutdown.clone(),
    ));
    tasks.spawn(abandon_loop(state, shutdown.clone()));
    tasks.spawn(store.clone().checkpoint_loop(shutdown.clone()));
    Ok(Running {
        addr,
        store,
        first_admin_token,
        shutdown,
        tasks,
    })
}

/// The JSON API and the web UI side by side, with what every request passes through.
pub fn router(state: AppState) -> Router {
    let (api, doc) = crate::http::router(state.config.max_results_bytes).split_for_parts();
    let doc = crate::http::document_json(doc);
    Router::new()
        .merge(api)
        .merge(crate::ui::router().layer(axum::middleware::from_fn(
            crate::http::declared_length_limit(crate::http::MAX_BODY),
        )))
        .fallback(|| async {
            error_response(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
        })
        .method_not_allowed_fallback(|| async {
            error_response(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this endpoint does not take that method",
            )
        })
        .layer(Extension(Document(std::sync::Arc::new(doc))))
        .layer(DefaultBodyLimit::max(crate::http::MAX_BODY))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

/// The key that seals secrets: the file's (made there if missing), or one for this run.
pub fn secret_key(path: Option<&std::path::Path>) -> anyhow::Result<SecretKey> {
    let Some(path) = path else {
        return Ok(SecretKey::generate());
    };
    let (key, created) = SecretKey::read_or_create(path)?;
    if created {
        tracing::info!(file = %path.display(), fingerprint = key.fingerprint(), "made a new secret key; back it up with the database");
    }
    Ok(key)
}

/// On an empty database: creates the first deployment and an admin token for it.
async fn bootstrap(store: &Store, slug: &str) -> anyhow::Result<Option<String>> {
    if store.count_deployments().await? > 0 {
        return Ok(None);
    }
    let deployment = store.create_deployment(slug, slug).await?;
    Ok(Some(store.create_token(deployment.id, Scope::Admin).await?))
}

/// Marks scans that never completed as abandoned, so that a fail-open client that died
/// still produces its `semgrep_scan` object.
async fn abandon_loop(state: AppState, shutdown: CancellationToken) {
    let every =
        (state.config.abandon_after / 10).clamp(Duration::from_secs(1), Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        let cutoff = crate::clock::now() - state.config.abandon_after.as_micros() as i64;
        if let Err(e) = state.store.abandon_stale(cutoff).await {
            tracing::warn!(error = ?e, "abandoning stale scans failed; will retry");
        }
    }
}
