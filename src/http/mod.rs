//! The HTTP surface. One module per area, each with its own router:
//! - [`ci`]: the endpoints the real `semgrep ci` client calls.
//! - [`v1`]: the read API compatible with Semgrep's public v1 API, plus per-scan views.
//! - [`admin`]: rules, policies and tokens (scanhook's own API).
//! - [`integrations`]: webhook integrations, rule-mode notifications, the delivery log.
//! - [`extract`]: auth and body extractors that turn bad input into clear 4xx JSON.

pub mod admin;
pub mod ci;
pub mod extract;
pub mod integrations;
pub mod v1;

use crate::app::AppState;
use crate::error::error_response;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::IntoResponse;
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use std::future::Future;
use std::pin::Pin;
use tower_http::trace::TraceLayer;

/// Largest body accepted by every endpoint but `/results`.
pub const MAX_BODY: usize = 2 * 1024 * 1024;

/// Refuses a request whose declared `Content-Length` is over `limit` before reading any of
/// its body, so the client gets the 413 instead of a reset connection mid-upload. Bodies
/// without a length are still capped while they are read (`DefaultBodyLimit`).
pub fn declared_length_limit(
    limit: usize,
) -> impl Fn(Request, Next) -> Pin<Box<dyn Future<Output = Response> + Send>> + Clone {
    move |req: Request, next: Next| {
        let declared = req
            .headers()
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        Box::pin(async move {
            match declared {
                Some(n) if n > limit => error_response(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    &format!("the request body ({n} bytes) is larger than the {limit} bytes this endpoint accepts"),
                ),
                _ => next.run(req).await,
            }
        })
    }
}

/// The OpenAPI description of the API, kept beside the code in `openapi.json`.
pub const OPENAPI: &str = include_str!("../../openapi.json");

pub fn router(state: AppState) -> Router {
    let results_limit = state.config.max_results_bytes;
    Router::new()
        .route(
            "/healthz",
            get(|| async { Json(serde_json::json!({"status": "ok"})) }),
        )
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route(
            "/api/openapi.json",
            get(|| async { ([("content-type", "application/json")], OPENAPI) }),
        )
        .merge(ci::router(results_limit))
        .merge(
            v1::router()
                .merge(admin::router())
                .merge(integrations::router())
                .merge(crate::ui::router())
                .layer(middleware::from_fn(declared_length_limit(MAX_BODY))),
        )
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
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Prometheus text: queue depth by state, attempts by outcome, latency histogram,
/// failures per integration.
async fn metrics(axum::extract::State(state): axum::extract::State<AppState>) -> Response {
    match state.store.queue_depth().await {
        Ok(queue) => (
            [("content-type", "text/plain; version=0.0.4")],
            state.metrics.render(&queue),
        )
            .into_response(),
        Err(e) => crate::error::AppError::Internal(e).into_response(),
    }
}

async fn readyz(axum::extract::State(state): axum::extract::State<AppState>) -> impl IntoResponse {
    if !state.store.ping().await {
        return error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "database_unreachable",
            "the database does not answer",
        );
    }
    let mut body = serde_json::json!({"status": "ready", "delivering": state.config.deliver});
    if state.config.deliver {
        // The loop turns at least every poll interval; a claim may wait on the database for
        // up to its acquire timeout (30 s) before that.
        let stale = (state.config.delivery.poll * 20).max(std::time::Duration::from_secs(40));
        match delivery_loop_age(state.metrics.last_loop(), crate::clock::now(), stale) {
            Ok(age) => body["delivery_loop_age_ms"] = serde_json::json!(age.as_millis() as u64),
            Err((code, message)) => {
                return error_response(StatusCode::SERVICE_UNAVAILABLE, code, &message)
            }
        }
    }
    (StatusCode::OK, Json(body)).into_response()
}

/// How long ago the delivery loop last turned, or why the process is not ready: it has not
/// started, or it has not turned for longer than `stale`.
fn delivery_loop_age(
    last_loop: Option<i64>,
    now: i64,
    stale: std::time::Duration,
) -> Result<std::time::Duration, (&'static str, String)> {
    let Some(at) = last_loop else {
        return Err((
            "delivery_starting",
            "the delivery worker has not started yet".into(),
        ));
    };
    let age = std::time::Duration::from_micros((now - at).max(0) as u64);
    if age > stale {
        return Err((
            "delivery_stalled",
            format!(
                "the delivery worker has not run for {} s; the server log has the cause",
                age.as_secs()
            ),
        ));
    }
    Ok(age)
}

#[cfg(test)]
mod tests {
    use super::delivery_loop_age;
    use std::time::Duration;

    #[test]
    fn readiness_follows_the_delivery_loop() {
        let stale = Duration::from_secs(40);
        let now = 100_000_000;
        assert_eq!(
            delivery_loop_age(None, now, stale).unwrap_err().0,
            "delivery_starting"
        );
        assert_eq!(
            delivery_loop_age(Some(now - 2_000_000), now, stale).unwrap(),
            Duration::from_secs(2)
        );
        let (code, message) = delivery_loop_age(Some(now - 41_000_000), now, stale).unwrap_err();
        assert_eq!(code, "delivery_stalled");
        assert!(message.contains("41 s"), "{message}");
    }
}
