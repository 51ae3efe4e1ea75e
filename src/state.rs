//! What every request handler can reach, HTTP API and web UI alike.

use crate::config::Config;
use crate::delivery::metrics::Metrics;
use crate::delivery::sender::Sender;
use crate::delivery::worker::Handoff;
use crate::domain::routing::FilterFailure;
use crate::domain::throttle::Throttle;
use crate::edge::UploadBudget;
use crate::store::Store;
use std::net::IpAddr;
use std::sync::Arc;
use tokio::sync::Notify;

/// The shared state of the serving process.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub config: Arc<Config>,
    /// The delivery path's HTTP client (also used by the synchronous Test action).
    pub sender: Sender,
    /// Wakes this process's delivery worker when messages were queued.
    pub wake: Arc<Notify>,
    /// Hands this process's worker the messages a handler claimed as it queued them
    /// (`None` with `--no-deliver`).
    pub handoff: Option<Handoff>,
    /// This process's delivery counters (empty with `--no-deliver`).
    pub metrics: Arc<Metrics>,
    /// Failed web UI sign-ins per client address (keyed by `domain::client::limit_key`).
    pub sign_ins: Arc<Throttle<IpAddr>>,
    /// Bytes of uploads held at once.
    pub uploads: Arc<UploadBudget>,
}

/// Failed sign-ins one client address may make per [`SIGN_IN_WINDOW`].
pub const SIGN_IN_FAILURES: usize = 10;
/// The window of [`SIGN_IN_FAILURES`].
pub const SIGN_IN_WINDOW: std::time::Duration = std::time::Duration::from_secs(600);

impl AppState {
    /// Logs and counts the events that integrations' filter expressions failed on (they
    /// were not sent to them).
    pub fn filter_failures(&self, failures: &[FilterFailure]) {
        for f in failures {
            tracing::warn!(
                integration.id = %f.integration,
                event = %f.kind,
                count = f.count,
                first = %f.first,
                "the integration's filter expression failed on events; they were not sent to it"
            );
            self.metrics.filter_errors(f.integration.as_str(), f.count);
        }
    }

    /// After messages were queued: hands the claimed ones to this process's worker and
    /// wakes it for the others.
    pub fn queued(&self, queued: crate::store::messages::Enqueued) {
        if let Some(h) = &self.handoff {
            h.hand(queued.claimed);
        }
        if queued.pending > 0 {
            self.wake.notify_one();
        }
    }
}
