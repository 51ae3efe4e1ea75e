//! Liveness, readiness, Prometheus metrics, the OpenAPI document and the JSON Schemas of
//! the webhook bodies.

use crate::api::ops::{Health, Ready};
use crate::clock;
use crate::domain::event_kind::EventKind;
use crate::domain::events;
use crate::error::{error_response, AppError, ErrorBody};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use std::sync::Arc;
use std::time::Duration;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The served OpenAPI document, rendered once at start.
#[derive(Clone)]
pub struct Document(pub Arc<String>);

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
        .routes(routes!(openapi_document))
        .routes(routes!(event_schema))
}

/// Liveness: answers as soon as the server is up.
#[utoipa::path(get, path = "/healthz", tag = "ops",
    responses((status = 200, description = "The server is up", body = Health)))]
async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
    })
}

/// Readiness: the database answers and, where this process delivers, its delivery loop runs.
#[utoipa::path(get, path = "/readyz", tag = "ops",
    responses(
        (status = 200, description = "Ready", body = Ready),
        (status = 503, description = "The database does not answer, or the delivery loop has not started or has stalled", body = ErrorBody),
    ))]
async fn readyz(State(state): State<AppState>) -> Response {
    if !state.store.ping().await {
        return error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "database_unreachable",
            "the database does not answer",
        );
    }
    let mut ready = Ready {
        status: "ready".into(),
        delivering: state.config.deliver,
        delivery_loop_age_ms: None,
    };
    if state.config.deliver {
        // The loop turns at least every poll interval; a claim may wait on the database for
        // up to its acquire timeout (30 s) before that.
        let stale = (state.config.delivery.poll * 20).max(Duration::from_secs(40));
        match delivery_loop_age(state.metrics.last_loop(), crate::clock::now(), stale) {
            Ok(age) => ready.delivery_loop_age_ms = Some(age.as_millis() as u64),
            Err((code, message)) => {
                return error_response(StatusCode::SERVICE_UNAVAILABLE, code, &message)
            }
        }
    }
    (StatusCode::OK, Json(ready)).into_response()
}

/// How long ago the delivery loop last turned, or why the process is not ready: it has not
/// started, or it has not turned for longer than `stale`.
fn delivery_loop_age(
    last_loop: Option<i64>,
    now: i64,
    stale: Duration,
) -> Result<Duration, (&'static str, String)> {
    let Some(at) = last_loop else {
        return Err((
            "delivery_starting",
            "the delivery worker has not started yet".into(),
        ));
    };
    let age = Duration::from_micros((now - at).max(0) as u64);
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

/// Prometheus metrics: queue depth by state, attempts by outcome, delivery latency
/// histogram, failures per integration, the database's size and the age of the oldest
/// pending message. Needs no token.
#[utoipa::path(get, path = "/metrics", tag = "ops",
    responses((status = 200, description = "The OpenMetrics text exposition format", body = String,
        content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8")))]
async fn metrics(State(state): State<AppState>) -> Response {
    let read = async {
        let (bytes, oldest) = state.store.storage_facts().await?;
        state.metrics.storage(bytes, oldest, clock::now());
        state.store.queue_depth().await
    };
    match read.await {
        Ok(queue) => (
            [(
                "content-type",
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            state.metrics.render(&queue),
        )
            .into_response(),
        Err(e) => AppError::Internal(e).into_response(),
    }
}

/// This document.
#[utoipa::path(get, path = "/api/openapi.json", tag = "ops",
    responses((status = 200, description = "The OpenAPI 3.1 document of this API", body = Object)))]
async fn openapi_document(Extension(doc): Extension<Document>) -> Response {
    (
        [("content-type", "application/json")],
        doc.0.as_str().to_string(),
    )
        .into_response()
}

/// The JSON Schema (draft 2020-12) of the body of one event type's messages:
/// `semgrep_scan`, `semgrep_finding`, `finding_fixed`, `finding_reopened`,
/// `finding_triaged` or `test`. Public, like this document: it describes what receivers
/// get, nothing of any deployment.
#[utoipa::path(get, path = "/api/v1/schemas/{event}", tag = "ops",
    params(("event" = String, Path, pattern = "^(semgrep_scan|semgrep_finding|finding_fixed|finding_reopened|finding_triaged|test)(\\.json)?$",
        description = "The event type (X-Scanhook-Event), optionally with `.json`")),
    responses(
        (status = 200, description = "The schema", body = Object, content_type = "application/schema+json"),
        (status = 404, description = "No such event type", body = ErrorBody),
    ))]
async fn event_schema(axum::extract::Path(event): axum::extract::Path<String>) -> Response {
    let name = event.strip_suffix(".json").unwrap_or(&event);
    match name.parse::<EventKind>() {
        Ok(kind) => (
            [("content-type", "application/schema+json")],
            events::schema_json(kind),
        )
            .into_response(),
        Err(_) => {
            let known: Vec<&str> = events::BODIES.iter().map(|k| k.as_str()).collect();
            AppError::client(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no event type {name:?}: use one of {}", known.join(", ")),
            )
            .into_response()
        }
    }
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
