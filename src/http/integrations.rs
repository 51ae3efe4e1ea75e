//! Webhook integrations (Settings > Integrations), the rule modes that notify them
//! (Rules > Policies > Rule Modes), and the delivery log with resend and recover.

use super::extract::{Admin, JsonBody, QueryPairs};
use crate::app::AppState;
use crate::clock::{self, iso};
use crate::domain::mode::RuleMode;
use crate::domain::webhook::{check_name, WebhookUrl};
use crate::error::{AppError, AppResult};
use crate::store::integrations::{Integration, IntegrationChange};
use crate::store::messages::{new_message_id, Kind, MessageRow, STATES};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

/// The platform's test notification body.
pub const TEST_BODY: &str = r#"[{"text":"Test Notification","username":"Semgrep"}]"#;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/integrations", get(list).post(create))
        .route(
            "/api/v1/integrations/{id}",
            get(show).patch(update).delete(delete),
        )
        .route("/api/v1/integrations/{id}/rotate-secret", post(rotate))
        .route("/api/v1/integrations/{id}/test", post(test))
        .route("/api/v1/integrations/{id}/recover", post(recover))
        .route("/api/v1/modes", get(modes))
        .route("/api/v1/modes/{mode}/notify", post(notify))
        .route("/api/v1/modes/{mode}/unnotify", post(unnotify))
        .route("/api/v1/deliveries", get(deliveries))
        .route("/api/v1/deliveries/{msg_id}", get(delivery))
        .route("/api/v1/deliveries/{msg_id}/resend", post(resend))
}

/// An integration as the API shows it; the secret is included (admins only reach this).
pub fn integration_json(i: &Integration) -> Value {
    json!({
        "id": i.public_id,
        "name": i.name,
        "url": i.url,
        "enabled": i.enabled,
        "disabled_reason": i.disabled_reason,
        "secret": i.secret,
        "previous_secret_valid_until": i.old_secret_until.filter(|u| *u > clock::now()).map(iso),
        "modes": i.modes,
        "created_at": iso(i.created_at),
        "updated_at": iso(i.updated_at),
    })
}

fn bad(e: String) -> AppError {
    AppError::bad_request("invalid_body", e)
}

#[derive(Deserialize)]
struct Create {
    name: String,
    url: String,
}

async fn create(
    Admin(d): Admin,
    State(st): State<AppState>,
    JsonBody(body, _): JsonBody<Create>,
) -> AppResult<(StatusCode, Json<Value>)> {
    let name = check_name(&body.name).map_err(bad)?;
    let url = WebhookUrl::parse(&body.url).map_err(bad)?;
    let i = st
        .store
        .create_integration(d.id, name, &url.to_string(), None)
        .await?;
    tracing::info!(integration.id = %i.public_id, "integration created");
    Ok((StatusCode::CREATED, Json(integration_json(&i))))
}

async fn list(Admin(d): Admin, State(st): State<AppState>) -> AppResult<Json<Value>> {
    let all = st.store.list_integrations(d.id).await?;
    Ok(Json(
        json!({"integrations": all.iter().map(integration_json).collect::<Vec<_>>()}),
    ))
}

async fn load(st: &AppState, deployment_id: i64, id: &str) -> AppResult<Integration> {
    st.store
        .integration(deployment_id, id)
        .await?
        .ok_or_else(|| AppError::not_found("integration"))
}

async fn show(
    Admin(d): Admin,
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> AppResult<Json<Value>> {
    Ok(Json(integration_json(&load(&st, d.id, &id).await?)))
}

#[derive(Deserialize)]
struct Update {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    enabled: Option<bool>,
}

async fn update(
    Admin(d): Admin,
    State(st): State<AppState>,
    Path(id): Path<String>,
    JsonBody(body, _): JsonBody<Update>,
) -> AppResult<Json<Value>> {
    let name = body
        .name
        .as_deref()
        .map(check_name)
        .transpose()
        .map_err(bad)?;
    let url = body
        .url
        .as_deref()
        .map(WebhookUrl::parse)
        .transpose()
        .map_err(bad)?;
    let url = url.map(|u| u.to_string());
    let change = IntegrationChange {
        name,
        url: url.as_deref(),
        enabled: body.enabled,
    };
    let i = st
        .store
        .update_integration(d.id, &id, &change)
        .await?
        .ok_or_else(|| AppError::not_found("integration"))?;
    Ok(Json(integration_json(&i)))
}

async fn delete(
    Admin(d): Admin,
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> AppResult<Json<Value>> {
    if !st.store.delete_integration(d.id, &id).await? {
        return Err(AppError::not_found("integration"));
    }
    Ok(Json(json!({"deleted": id})))
}

async fn rotate(
    Admin(d): Admin,
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> AppResult<Json<Value>> {
    let i = st
        .store
        .rotate_secret(d.id, &id)
        .await?
        .ok_or_else(|| AppError::not_found("integration"))?;
    Ok(Json(integration_json(&i)))
}

/// What one Test attempt did.
#[derive(Debug, Clone)]
pub struct TestResult {
    pub message_id: String,
    pub delivered: bool,
    pub status: Option<u16>,
    pub latency_ms: f64,
    pub response: Option<String>,
    pub error: Option<String>,
}

/// Posts the platform's test notification to `i` now, signed like any message. An
/// integration that exists (`log_under` names its deployment) gets the attempt in its log;
/// the Add form tests an integration before it is saved, with nothing to log it under.
pub async fn run_test(
    st: &AppState,
    i: &Integration,
    log_under: Option<i64>,
) -> AppResult<TestResult> {
    let msg_id = new_message_id();
    let now = clock::now();
    let body = TEST_BODY.as_bytes();
    let headers =
        crate::delivery::signing::signed_headers(i, &msg_id, Kind::Test.as_str(), now, body)?;
    let outcome = st
        .sender
        .post(&i.url, headers, bytes::Bytes::from_static(body))
        .await;
    if let Some(deployment_id) = log_under {
        st.store
            .record_test(i, deployment_id, &msg_id, TEST_BODY, now, &outcome)
            .await?;
    }
    Ok(TestResult {
        message_id: msg_id,
        delivered: outcome.delivered(),
        status: outcome.status,
        latency_ms: outcome.latency.as_secs_f64() * 1000.0,
        response: outcome.excerpt,
        error: outcome.error,
    })
}

/// The Test action: posts the test notification and answers with what happened; the
/// attempt is logged.
async fn test(
    Admin(d): Admin,
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> AppResult<Json<Value>> {
    let i = load(&st, d.id, &id).await?;
    let r = run_test(&st, &i, Some(d.id)).await?;
    Ok(Json(json!({
        "message_id": r.message_id,
        "delivered": r.delivered,
        "status": r.status,
        "latency_ms": r.latency_ms,
        "response": r.response,
        "error": r.error,
    })))
}

#[derive(Deserialize)]
struct Recover {
    since: String,
}

async fn recover(
    Admin(d): Admin,
    State(st): State<AppState>,
    Path(id): Path<String>,
    JsonBody(body, _): JsonBody<Recover>,
) -> AppResult<Json<Value>> {
    load(&st, d.id, &id).await?;
    let since = clock::parse_since(&body.since)
        .ok_or_else(|| bad("since must be epoch seconds or RFC 3339".into()))?;
    let n = st.store.recover(d.id, &id, since).await?;
    st.wake.notify_one();
    Ok(Json(json!({"requeued": n})))
}

fn parse_mode(m: &str) -> AppResult<RuleMode> {
    m.parse()
        .map_err(|e: String| AppError::client(StatusCode::NOT_FOUND, "not_found", e))
}

async fn modes(Admin(d): Admin, State(st): State<AppState>) -> AppResult<Json<Value>> {
    let all = st.store.list_integrations(d.id).await?;
    let modes: Vec<Value> = RuleMode::ALL
        .iter()
        .map(|m| {
            let ids: Vec<&str> = all
                .iter()
                .filter(|i| i.modes.contains(m))
                .map(|i| i.public_id.as_str())
                .collect();
            json!({"mode": m, "integrations": ids})
        })
        .collect();
    Ok(Json(json!({ "modes": modes })))
}

#[derive(Deserialize)]
struct Ids {
    integration_ids: Vec<String>,
}

async fn set_notifies(
    st: &AppState,
    deployment_id: i64,
    mode: &str,
    ids: &[String],
    on: bool,
) -> AppResult<Json<Value>> {
    let mode = parse_mode(mode)?;
    if ids.is_empty() {
        return Err(bad(
            "integration_ids must name at least one integration".into()
        ));
    }
    let unknown = st
        .store
        .set_mode_notifies(deployment_id, mode, ids, on)
        .await?;
    if !unknown.is_empty() {
        return Err(AppError::client(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no integration {}", unknown.join(", ")),
        ));
    }
    Ok(Json(
        json!({"mode": mode, "notify": on, "integration_ids": ids}),
    ))
}

async fn notify(
    Admin(d): Admin,
    State(st): State<AppState>,
    Path(mode): Path<String>,
    JsonBody(body, _): JsonBody<Ids>,
) -> AppResult<Json<Value>> {
    set_notifies(&st, d.id, &mode, &body.integration_ids, true).await
}

async fn unnotify(
    Admin(d): Admin,
    State(st): State<AppState>,
    Path(mode): Path<String>,
    JsonBody(body, _): JsonBody<Ids>,
) -> AppResult<Json<Value>> {
    set_notifies(&st, d.id, &mode, &body.integration_ids, false).await
}

fn message_json(m: &MessageRow, with_body: bool) -> Value {
    let mut v = json!({
        "id": m.public_id,
        "integration_id": m.integration,
        "scan_id": m.scan_id,
        "kind": m.kind,
        "status": m.status,
        "attempts": m.attempts,
        "next_attempt_at": (m.status == "pending").then(|| iso(m.next_attempt_at)),
        "created_at": iso(m.created_at),
        "delivered_at": m.delivered_at.map(iso),
    });
    if with_body {
        v["body"] = serde_json::from_str(&m.body).unwrap_or(Value::String(m.body.clone()));
    }
    v
}

async fn deliveries(
    Admin(d): Admin,
    State(st): State<AppState>,
    q: QueryPairs,
) -> AppResult<Json<Value>> {
    let status = q.one("status");
    if status.is_some_and(|s| !STATES.contains(&s)) {
        return Err(AppError::bad_request(
            "invalid_query",
            "status must be pending, delivering, delivered or failed",
        ));
    }
    let limit = q.int("limit")?.unwrap_or(100).clamp(1, 1000);
    let rows = st
        .store
        .list_messages(d.id, q.one("integration"), status, None, limit)
        .await?;
    Ok(Json(
        json!({"deliveries": rows.iter().map(|m| message_json(m, false)).collect::<Vec<_>>()}),
    ))
}

async fn delivery(
    Admin(d): Admin,
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> AppResult<Json<Value>> {
    let (m, attempts) = st
        .store
        .message(d.id, &id)
        .await?
        .ok_or_else(|| AppError::not_found("delivery"))?;
    let mut v = message_json(&m, true);
    v["attempt_log"] = attempts
        .iter()
        .map(|a| {
            json!({
                "at": iso(a.attempted_at),
                "status": a.status_code,
                "latency_ms": a.latency_us as f64 / 1000.0,
                "response": a.response_excerpt,
                "error": a.error,
            })
        })
        .collect();
    Ok(Json(v))
}

async fn resend(
    Admin(d): Admin,
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> AppResult<Json<Value>> {
    if !st.store.resend(d.id, &id).await? {
        return Err(AppError::not_found("delivery"));
    }
    st.wake.notify_one();
    Ok(Json(json!({"resent": id})))
}
