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
    if state.store.ping().await {
        let body = serde_json::json!({"status": "ready", "delivering": state.config.deliver});
        (StatusCode::OK, Json(body)).into_response()
    } else {
        error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "database_unreachable",
            "the database does not answer",
        )
    }
}
