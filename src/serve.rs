//! The HTTP/1 accept loop, with the limits `axum::serve` does not offer, so that a client
//! which opens connections and sends nothing, or half a request, cannot hold the server:
//! - at most [`Limits::max_connections`] open connections: a semaphore permit is taken
//!   *before* `accept` and held for the connection's life, so further clients wait in the
//!   kernel's listen backlog rather than costing a task and buffers each;
//! - [`Limits::header_read_timeout`]: hyper's header timer. It starts whenever hyper waits
//!   for a request head, which on a kept-alive connection is right after the previous
//!   response, so it is also the idle limit between requests;
//! - [`Limits::body_read_timeout`]: tower-http's body timer, reset on every frame that
//!   arrives, so it bounds a stall, not the length of an upload.
//!
//! On shutdown the loop stops accepting, closes the listener, and lets each connection
//! finish the request it is serving; the caller bounds that wait.

use crate::config::Config;
use axum::extract::ConnectInfo;
use axum::{Extension, Router};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::Layer;
use tower_http::timeout::RequestBodyTimeout;

/// The limits every connection is held to.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Time to send a request's whole header, and to start the next one on a kept-alive
    /// connection.
    pub header_read_timeout: Duration,
    /// Longest wait for the next piece of a request body.
    pub body_read_timeout: Duration,
    /// Most connections open at once.
    pub max_connections: usize,
}

impl Limits {
    /// The limits a configuration sets.
    pub fn of(config: &Config) -> Limits {
        Limits {
            header_read_timeout: config.header_read_timeout,
            body_read_timeout: config.body_read_timeout,
            max_connections: config.max_connections,
        }
    }
}

/// Serves `router` on `listener` until `shutdown` fires, each connection as a task on
/// `tasks`; then stops accepting and returns once every connection has closed. Handlers
/// see the peer as `ConnectInfo<SocketAddr>`, as with
/// `Router::into_make_service_with_connect_info`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: CancellationToken,
    tasks: TaskTracker,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let graceful = GracefulShutdown::new();
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            permit = permits.clone().acquire_owned() => {
                permit.expect("the connection semaphore is never closed")
            }
        };
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(e, &shutdown).await;
                    continue;
                }
            },
        };
        // What `into_make_service_with_connect_info` does per connection, with the body
        // timer outside so that every extractor reads a timed body.
        let service = RequestBodyTimeout::new(
            Extension(ConnectInfo(peer)).layer(router.clone()),
            limits.body_read_timeout,
        );
        let conn = graceful
            .watch(http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service)));
        tasks.spawn(async move {
            // Timeouts and resets end here; they are the client's doing, not ours.
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "connection closed with an error");
            }
            drop(permit);
        });
    }
    // New clients are refused from here on instead of waiting in the backlog of a
    // server that will not accept them.
    drop(listener);
    graceful.shutdown().await;
}

/// After a failed `accept`. A client that gave up before it was accepted is no reason to
/// wait; anything else (out of file descriptors, say) is logged and retried after a
/// second, so that the loop does not spin while the condition lasts.
async fn accept_failed(e: std::io::Error, shutdown: &CancellationToken) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "accepting a connection failed; retrying in 1s");
    tokio::select! {
        _ = shutdown.cancelled() => {}
        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
    }
}
