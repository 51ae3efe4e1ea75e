//! The HTTP/1 accept loop, with the limits `axum::serve` does not offer, so that a client
//! which opens connections and sends nothing, or half a request, cannot hold the server:
//! - at most [`Limits::max_connections`] open connections: a semaphore permit is taken
//!   *before* `accept` and held for the connection's life, so further clients wait in the
//!   kernel's listen backlog rather than costing a task and buffers each;
//! - [`Limits::header_read_timeout`]: hyper's header timer. It starts whenever hyper waits
//!   for a request head, which on a kept-alive connection is right after the previous
//!   response, so it is also the idle limit between requests;
//! - at most [`Limits::max_connections_per_ip`] of them from one client address (an IPv6
//!   client by its /64): one client cannot take every place. Beyond, a new connection is
//!   closed as soon as it is accepted. Connections from `trusted_proxies` are not counted
//!   per address: every client behind the proxy shares its address;
//! - [`Limits::body_read_timeout`]: tower-http's body timer, reset on every frame that
//!   arrives, so it bounds a stall, not the length of an upload;
//! - [`Limits::min_body_rate_kib`]: and an upload that keeps sending, but a trickle, must
//!   still be in by `body_read_timeout` plus its length at this rate ([`WatchBodies`]),
//!   and the answer to a request whose body was not read to its end closes the connection.
//!
//! On shutdown the loop stops accepting, closes the listener, and lets each connection
//! finish the request it is serving; the caller bounds that wait.

use crate::config::Config;
use crate::domain::client::{limit_key, TrustedProxies};
use crate::edge::BodyTooSlow;
use axum::extract::ConnectInfo;
use axum::{Extension, Router};
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::collections::HashMap;
use std::future::Future;
use std::io::IoSlice;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::Layer;
use tower_http::timeout::RequestBodyTimeout;

/// The limits every connection is held to.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Time to send a request's whole header, and to start the next one on a kept-alive
    /// connection.
    pub header_read_timeout: Duration,
    /// Longest wait for the next piece of a request body.
    pub body_read_timeout: Duration,
    /// Most connections open at once.
    pub max_connections: usize,
    /// Most connections open at once from one client address ([`limit_key`]).
    pub max_connections_per_ip: usize,
    /// Slowest request body, in KiB/s, beyond `body_read_timeout` (0: no floor).
    pub min_body_rate_kib: u64,
    /// Peers not counted per address (reverse proxies speak for many clients).
    pub trusted_proxies: TrustedProxies,
}

impl Limits {
    /// The limits a configuration sets.
    pub fn of(config: &Config) -> Limits {
        Limits {
            header_read_timeout: config.header_read_timeout,
            body_read_timeout: config.body_read_timeout,
            max_connections: config.max_connections,
            max_connections_per_ip: config.max_connections_per_ip,
            min_body_rate_kib: config.min_body_rate_kib,
            trusted_proxies: config.trusted_proxies.clone(),
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
    let per_address = Arc::new(PerAddress::default());
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
        let slot = if limits.trusted_proxies.contains(peer.ip()) {
            None
        } else {
            match per_address.take(peer.ip(), limits.max_connections_per_ip) {
                Some(slot) => Some(slot),
                None => {
                    // Closed unanswered: the client holds its share of the places already.
                    tracing::debug!(%peer, "connection refused: max_connections_per_ip reached");
                    drop(stream);
                    continue;
                }
            }
        };
        let stream = Counted {
            places: Some((permit, slot)),
            stream,
        };
        // What `into_make_service_with_connect_info` does per connection, with the body
        // limits outside so that every extractor reads a timed body.
        let service = WatchBodies {
            inner: RequestBodyTimeout::new(
                Extension(ConnectInfo(peer)).layer(router.clone()),
                limits.body_read_timeout,
            ),
            grace: limits.body_read_timeout,
            kib_per_sec: limits.min_body_rate_kib,
        };
        let conn = graceful
            .watch(http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service)));
        tasks.spawn(async move {
            // Timeouts and resets end here; they are the client's doing, not ours.
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "connection closed with an error");
            }
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

/// Connections open per client address ([`limit_key`]).
#[derive(Debug, Default)]
struct PerAddress {
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl PerAddress {
    /// A place for one more connection from `ip`, unless it has `max` open.
    fn take(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<Slot> {
        let key = limit_key(ip);
        let mut open = self.open.lock().expect("per-address lock");
        let n = open.entry(key).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(Slot {
            counts: self.clone(),
            key,
        })
    }
}

/// One connection's place in [`PerAddress`], given back on drop.
#[derive(Debug)]
struct Slot {
    counts: Arc<PerAddress>,
    key: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.counts.open.lock().expect("per-address lock");
        if let Some(n) = open.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// A connection holding its places (in the connection cap, and in its address's). They are
/// given back as the server starts to close it — at the shutdown of its write side, or
/// when it is dropped — so a client that sees the connection end may open another at once.
struct Counted {
    // Declared first, so dropped before the stream closes.
    places: Option<(OwnedSemaphorePermit, Option<Slot>)>,
    stream: TcpStream,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.places = None;
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Wraps every request body in a [`WatchedBody`]: a body that keeps arriving, but a
/// trickle, holds a connection as long as one that stalls, so it is held to a rate floor.
/// And an answer given before its request's body was read to the end (a refusal: too
/// large, no token, a stall) says `Connection: close`: the server closes that connection
/// rather than read what is left, and a client that was not told so could send its next
/// request on it as it closes.
#[derive(Debug, Clone)]
struct WatchBodies<S> {
    inner: S,
    grace: Duration,
    kib_per_sec: u64,
}

impl<S, B, R> tower::Service<axum::http::Request<B>> for WatchBodies<S>
where
    S: tower::Service<axum::http::Request<WatchedBody<B>>, Response = axum::http::Response<R>>,
    S::Future: Send + 'static,
    B: HttpBody,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: axum::http::Request<B>) -> Self::Future {
        let declared = req
            .headers()
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let has_body = !req.body().is_end_stream();
        let floor = (self.kib_per_sec > 0 && has_body).then_some(RateFloor {
            grace: self.grace,
            bytes_per_sec: self.kib_per_sec * 1024,
            declared,
        });
        let unread = Arc::new(AtomicBool::new(has_body));
        let answer = self.inner.call(req.map(|body| WatchedBody {
            body,
            floor,
            received: 0,
            started: None,
            deadline: None,
            unread: unread.clone(),
        }));
        Box::pin(async move {
            let mut response = answer.await?;
            if unread.load(Ordering::Acquire) {
                response.headers_mut().insert(
                    axum::http::header::CONNECTION,
                    axum::http::HeaderValue::from_static("close"),
                );
            }
            Ok(response)
        })
    }
}

/// What a request body fails with.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The slowest a body may arrive.
#[derive(Debug, Clone, Copy)]
struct RateFloor {
    grace: Duration,
    bytes_per_sec: u64,
    /// `Content-Length`; without one, the bytes received so far count.
    declared: Option<u64>,
}

impl RateFloor {
    /// How long after the first read a body of `bytes` may take. The share of the length
    /// is capped at 30 days, which only a length that other limits refuse reaches.
    fn allowance(&self, bytes: u64) -> Duration {
        let millis = u128::from(bytes) * 1000 / u128::from(self.bytes_per_sec);
        let extra = Duration::from_millis(u64::try_from(millis).unwrap_or(u64::MAX));
        self.grace + extra.min(Duration::from_secs(30 * 86_400))
    }
}

/// A request body that must arrive at [`RateFloor`]'s pace: within `grace` plus its
/// declared length at the floor rate from the server's first read of it (for a chunked
/// body, the length received so far, so the deadline moves as it arrives). Time the
/// handler spends before reading (authentication, waiting for upload room) does not count.
/// `unread` stays set until the body has been read to its end.
#[derive(Debug)]
pub struct WatchedBody<B> {
    body: B,
    floor: Option<RateFloor>,
    received: u64,
    started: Option<Instant>,
    deadline: Option<Pin<Box<Sleep>>>,
    unread: Arc<AtomicBool>,
}

impl<B> WatchedBody<B>
where
    B: HttpBody + Unpin,
    B::Error: Into<BoxError>,
{
    /// The next frame, or the [`BodyTooSlow`] error once the floor's deadline has passed
    /// while the server waited for the client.
    fn poll_paced(
        &mut self,
        floor: RateFloor,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, BoxError>>> {
        let started = *self.started.get_or_insert_with(Instant::now);
        let deadline = self.deadline.get_or_insert_with(|| {
            let allowed = floor.allowance(floor.declared.unwrap_or(0));
            Box::pin(tokio::time::sleep_until(started + allowed))
        });
        match Pin::new(&mut self.body).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.received += bytes::Buf::remaining(data) as u64;
                    if floor.declared.is_none() {
                        deadline
                            .as_mut()
                            .reset(started + floor.allowance(self.received));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(other) => Poll::Ready(other.map(|r| r.map_err(Into::into))),
            Poll::Pending => match deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTooSlow {
                    kib_per_sec: floor.bytes_per_sec / 1024,
                })))),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl<B> HttpBody for WatchedBody<B>
where
    B: HttpBody + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = B::Data;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, Self::Error>>> {
        let this = &mut *self;
        let polled = match this.floor {
            Some(floor) => this.poll_paced(floor, cx),
            None => Pin::new(&mut this.body).poll_frame(cx).map_err(Into::into),
        };
        let ended = match &polled {
            Poll::Ready(None) => true,
            Poll::Ready(Some(Ok(_))) => this.body.is_end_stream(),
            _ => false,
        };
        if ended {
            this.unread.store(false, Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
