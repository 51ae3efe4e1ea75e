//! Webhook integrations (Settings > Integrations), the rule modes that notify them
//! (Rules > Policies > Rule Modes), and the delivery log with resend and recover.

use super::extract::Admin;
use crate::api::integrations::{
    BackfillIn, BackfillOut, Deleted, DeliveryDetail, DeliveryList, DeliveryOut, IntegrationIn,
    IntegrationList, IntegrationOut, IntegrationPatch, ModeIntegrations, ModeList, ModeNotifies,
    NotifyIn, PreviewIn, PreviewOut, RecoverIn, Requeued, Resent, TestOut,
};
use crate::api::{AdminRefusals, Conflict, Refusals};
use crate::clock;
use crate::delivery::test_notification::{self, Target};
use crate::domain::channels::template::{Template, TemplateError};
use crate::domain::channels::ChannelKind;
use crate::domain::event_kind::EventKind;
use crate::domain::filters::FilterError;
use crate::domain::integration::Integration;
use crate::domain::mode::RuleMode;
use crate::domain::outbox::Claimant;
use crate::domain::outbox::MessageStatus;
use crate::domain::query::QueryPairs;
use crate::domain::routing::PREVIEW_DAYS;
use crate::domain::webhook::{check_name, WebhookUrl};
use crate::edge::{JsonBody, Path};
use crate::error::{AppError, AppResult};
use crate::ids::{DeploymentId, IntegrationId, MessageId};
use crate::state::AppState;
use crate::store::integrations::{IntegrationChange, NewIntegration};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::value::RawValue;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_integrations, create_integration))
        .routes(routes!(
            show_integration,
            update_integration,
            delete_integration
        ))
        .routes(routes!(rotate_secret))
        .routes(routes!(test_integration))
        .routes(routes!(recover_failed))
        .routes(routes!(backfill))
        .routes(routes!(preview_filters))
        .routes(routes!(list_modes))
        .routes(routes!(notify_mode))
        .routes(routes!(unnotify_mode))
        .routes(routes!(list_deliveries))
        .routes(routes!(get_delivery))
        .routes(routes!(resend_delivery))
}

fn out(i: &Integration) -> IntegrationOut {
    IntegrationOut::new(i, clock::now())
}

fn bad(e: impl Into<String>) -> AppError {
    AppError::bad_request("invalid_body", e)
}

/// A filter that does not compile: 400 naming it and where.
pub fn filter_error(e: FilterError) -> AppError {
    AppError::bad_request("invalid_filter", e.to_string())
}

/// A template that does not compile: 400 with its line.
fn template_error(e: TemplateError) -> AppError {
    AppError::bad_request("invalid_template", format!("template: {e}"))
}

/// The template a request gives for an integration of `kind`, compiled.
fn template_of(
    kind: ChannelKind,
    source: Option<&str>,
    content_type: Option<&str>,
    current: Option<&Template>,
) -> AppResult<Option<Template>> {
    if kind != ChannelKind::Template {
        if source.is_some() || content_type.is_some() {
            return Err(bad(format!(
                "template and content_type are for kind template, not {kind}"
            )));
        }
        return Ok(None);
    }
    let source = match (source, current) {
        (Some(s), _) => s,
        (None, Some(t)) if content_type.is_some() => t.source(),
        (None, Some(_)) => return Ok(None),
        (None, None) => return Err(bad("kind template needs a template")),
    };
    let content_type = content_type
        .or(current.map(|t| t.content_type()))
        .unwrap_or("application/json");
    Template::compile(source, content_type)
        .map(Some)
        .map_err(template_error)
}

/// Add an integration: a webhook (Settings > Integrations > Add Integration > Webhook),
/// Slack, Microsoft Teams, Discord or a custom template.
#[utoipa::path(post, path = "/api/v1/integrations", tag = "integrations", security(("bearer" = [])),
    request_body = IntegrationIn,
    responses((status = 201, description = "Added, with its signing secret", body = IntegrationOut), Refusals, AdminRefusals))]
async fn create_integration(
    Admin(d): Admin,
    State(st): State<AppState>,
    JsonBody(body, _): JsonBody<IntegrationIn>,
) -> AppResult<(StatusCode, Json<IntegrationOut>)> {
    let name = check_name(&body.name).map_err(bad)?;
    let url = WebhookUrl::parse(&body.url).map_err(bad)?;
    let events = match &body.events {
        Some(names) => {
            EventKind::parse_subscriptions(names).map_err(|e| bad(format!("events: {e}")))?
        }
        None => EventKind::DEFAULT.to_vec(),
    };
    let filters = body.filters.clone().unwrap_or_default();
    filters.compile().map_err(filter_error)?;
    let kind = body.kind.unwrap_or(ChannelKind::Webhook);
    let template = template_of(
        kind,
        body.template.as_deref(),
        body.content_type.as_deref(),
        None,
    )?;
    let url = url.to_string();
    let new = NewIntegration {
        kind,
        template: template.as_ref(),
        name,
        url: &url,
        secret: None,
        events: &events,
        filters: &filters,
    };
    let i = st.store.create_integration(d.id, &new).await?;
    tracing::info!(integration.id = %i.public_id, "integration created");
    Ok((StatusCode::CREATED, Json(out(&i))))
}

/// Webhook integrations.
#[utoipa::path(get, path = "/api/v1/integrations", tag = "integrations", security(("bearer" = [])),
    responses((status = 200, description = "Every integration, oldest first", body = IntegrationList), Refusals, AdminRefusals))]
async fn list_integrations(
    Admin(d): Admin,
    State(st): State<AppState>,
) -> AppResult<Json<IntegrationList>> {
    let all = st.store.list_integrations(d.id).await?;
    Ok(Json(IntegrationList {
        integrations: all.iter().map(out).collect(),
    }))
}

async fn load(
    st: &AppState,
    deployment_id: DeploymentId,
    id: &IntegrationId,
) -> AppResult<Integration> {
    st.store
        .integration(deployment_id, id)
        .await?
        .ok_or_else(|| AppError::not_found("integration"))
}

/// One integration.
#[utoipa::path(get, path = "/api/v1/integrations/{id}", tag = "integrations", security(("bearer" = [])),
    params(("id" = IntegrationId, Path, description = "The integration's id")),
    responses((status = 200, description = "The integration", body = IntegrationOut), Refusals, AdminRefusals))]
async fn show_integration(
    Admin(d): Admin,
    State(st): State<AppState>,
    Path(id): Path<IntegrationId>,
) -> AppResult<Json<IntegrationOut>> {
    Ok(Json(out(&load(&st, d.id, &id).await?)))
}

/// Change name, URL, or enable/disable (enabling clears the failure streak).
#[utoipa::path(patch, path = "/api/v1/integrations/{id}", tag = "integrations", security(("bearer" = [])),
    request_body = IntegrationPatch,
    params(("id" = IntegrationId, Path, description = "The integration's id")),
    responses((status = 200, description = "The integration as changed", body = IntegrationOut), Refusals, AdminRefusals))]
async fn update_integration(
    Admin(d): Admin,
    State(st): State<AppState>,
    Path(id): Path<IntegrationId>,
    JsonBody(body, _): JsonBody<IntegrationPatch>,
) -> AppResult<Json<IntegrationOut>> {
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
    let events = body
        .events
        .as_deref()
        .map(EventKind::parse_subscriptions)
        .transpose()
        .map_err(|e| bad(format!("events: {e}")))?;
    if let Some(f) = &body.filters {
        f.compile().map_err(filter_error)?;
    }
    let current = load(&st, d.id, &id).await?;
    let template = template_of(
        current.kind,
        body.template.as_deref(),
        body.content_type.as_deref(),
        current.template.as_deref(),
    )?;
    let change = IntegrationChange {
        template: template.as_ref(),
        name,
        url: url.as_deref(),
        enabled: body.enabled,
        events: events.as_deref(),
        filters: body.filters.as_ref(),
    };
    let i = st
        .store
        .update_integration(d.id, &id, &change)
        .await?
        .ok_or_else(|| AppError::not_found("integration"))?;
    if body.enabled == Some(true) {
        st.wake.notify_one();
    }
    Ok(Json(out(&i)))
}

/// Delete an integration; what it still had to send fails (its delivery log stays).
#[utoipa::path(delete, path = "/api/v1/integrations/{id}", tag = "integrations", security(("bearer" = [])),
    params(("id" = IntegrationId, Path, description = "The integration's id")),
    responses((status = 200, description = "Deleted", body = Deleted), Refusals, AdminRefusals))]
async fn delete_integration(
    Admin(d): Admin,
    State(st): State<AppState>,
    Path(id): Path<IntegrationId>,
) -> AppResult<Json<Deleted>> {
    if !st.store.delete_integration(d.id, &id).await? {
        return Err(AppError::not_found("integration"));
    }
    Ok(Json(Deleted { deleted: id }))
}

/// New signing secret; the previous one keeps signing for 24 h.
#[utoipa::path(post, path = "/api/v1/integrations/{id}/rotate-secret", tag = "integrations", security(("bearer" = [])),
    params(("id" = IntegrationId, Path, description = "The integration's id")),
    responses((status = 200, description = "The integration with its new secret", body = IntegrationOut), Refusals, AdminRefusals))]
async fn rotate_secret(
    Admin(d): Admin,
    State(st): State<AppState>,
    Path(id): Path<IntegrationId>,
) -> AppResult<Json<IntegrationOut>> {
    let i = st
        .store
        .rotate_secret(d.id, &id)
        .await?
        .ok_or_else(|| AppError::not_found("integration"))?;
    Ok(Json(out(&i)))
}

/// Post the test notification now; status, latency, response excerpt or error. The
/// attempt is logged.
#[utoipa::path(post, path = "/api/v1/integrations/{id}/test", tag = "integrations", security(("bearer" = [])),
    params(("id" = IntegrationId, Path, description = "The integration's id")),
    responses((status = 200, description = "What the attempt did (delivered or not)", body = TestOut), Refusals, AdminRefusals))]
async fn test_integration(
    Admin(d): Admin,
    State(st): State<AppState>,
    Path(id): Path<IntegrationId>,
) -> AppResult<Json<TestOut>> {
    let i = load(&st, d.id, &id).await?;
    let r = test_notification::send(
        &st.store,
        &st.sender,
        Target::saved(&i, &i.url, clock::now()),
    )
    .await?;
    Ok(Json(r.into()))
}

/// Queue again the integration's failed messages since a time.
#[utoipa::path(post, path = "/api/v1/integrations/{id}/recover", tag = "integrations", security(("bearer" = [])),
    request_body = RecoverIn,
    params(("id" = IntegrationId, Path, description = "The integration's id")),
    responses((status = 200, description = "How many were queued again", body = Requeued), Refusals, AdminRefusals))]
async fn recover_failed(
    Admin(d): Admin,
    State(st): State<AppState>,
    Path(id): Path<IntegrationId>,
    JsonBody(body, _): JsonBody<RecoverIn>,
) -> AppResult<Json<Requeued>> {
    load(&st, d.id, &id).await?;
    let since = clock::parse_since(&body.since)
        .ok_or_else(|| bad("since must be epoch seconds or RFC 3339"))?;
    let n = st.store.recover(d.id, &id, since).await?;
    st.wake.notify_one();
    Ok(Json(Requeued { requeued: n }))
}

/// Send open findings: queues the deployment's open findings that the integration's rule
/// modes and filters send, as `semgrep_finding` arrays of at most 500, in its delivery log
/// like any other message. Each identity once; none triaged as ignored; none an earlier
/// backfill sent it, unless `force`. `dry_run` counts and queues nothing.
#[utoipa::path(post, path = "/api/v1/integrations/{id}/backfill", tag = "integrations", security(("bearer" = [])),
    request_body = BackfillIn,
    params(("id" = IntegrationId, Path, description = "The integration's id")),
    responses(
        (status = 200, description = "What was queued (or, dry, would be)", body = BackfillOut),
        Conflict, Refusals, AdminRefusals,
    ))]
async fn backfill(
    Admin(d): Admin,
    State(st): State<AppState>,
    Path(id): Path<IntegrationId>,
    JsonBody(body, _): JsonBody<BackfillIn>,
) -> AppResult<Json<BackfillOut>> {
    let i = load(&st, d.id, &id).await?;
    if i.kind.is_chat() {
        return Err(AppError::conflict(
            "not_supported",
            format!("integration {id} is a {} integration: it gets a digest per scan, and backfill sends webhook bodies", i.kind),
        ));
    }
    if !i.receives(EventKind::Finding) {
        return Err(AppError::conflict(
            "not_subscribed",
            format!("integration {id} does not receive semgrep_finding: add it to its events to backfill"),
        ));
    }
    if !i.enabled {
        return Err(AppError::conflict(
            "integration_disabled",
            format!("integration {id} is disabled: enable it to backfill"),
        ));
    }
    let claimant = st.handoff.as_ref().map(|h| h as &dyn Claimant);
    let done = st
        .store
        .backfill(&i, body.force, body.dry_run, claimant)
        .await?;
    st.filter_failures(&done.failures);
    for queued in done.queued {
        st.queued(queued);
    }
    if !body.dry_run {
        tracing::info!(integration.id = %id, findings = done.findings, messages = done.messages, "backfill queued");
    }
    Ok(Json(BackfillOut {
        dry_run: body.dry_run,
        findings: done.findings as u64,
        messages: done.messages as u64,
        already_sent: done.already_sent as u64,
    }))
}

/// Preview filters: how many of the deployment's findings first seen in the last 30 days
/// (at most the 5,000 newest, each identity once) they pass, each read as a
/// `semgrep_finding`; with `integration`, how many of those its rule modes notify.
#[utoipa::path(post, path = "/api/v1/filters/preview", tag = "integrations", security(("bearer" = [])),
    request_body = PreviewIn,
    responses((status = 200, description = "The counts", body = PreviewOut), Refusals, AdminRefusals))]
async fn preview_filters(
    Admin(d): Admin,
    State(st): State<AppState>,
    JsonBody(body, _): JsonBody<PreviewIn>,
) -> AppResult<Json<PreviewOut>> {
    if let Some(names) = &body.events {
        EventKind::parse_subscriptions(names).map_err(|e| bad(format!("events: {e}")))?;
    }
    let filters = body.filters.compile().map_err(filter_error)?;
    let modes = match &body.integration {
        Some(id) => Some(load(&st, d.id, id).await?.modes),
        None => None,
    };
    let since = clock::now() - PREVIEW_DAYS * 86_400 * 1_000_000;
    let p = st
        .store
        .preview(d.id, since, &filters, modes.as_deref())
        .await?;
    Ok(Json(PreviewOut {
        recent: p.recent as u64,
        matching: p.matching as u64,
        notified: p.notified as u64,
        failed: p.failed as u64,
        since: clock::iso(since),
    }))
}

/// Which integrations each rule mode notifies.
#[utoipa::path(get, path = "/api/v1/modes", tag = "integrations", security(("bearer" = [])),
    responses((status = 200, description = "Monitor, Comment and Block with their integrations", body = ModeList), Refusals, AdminRefusals))]
async fn list_modes(Admin(d): Admin, State(st): State<AppState>) -> AppResult<Json<ModeList>> {
    let all = st.store.list_integrations(d.id).await?;
    let modes = RuleMode::ALL
        .iter()
        .map(|m| ModeIntegrations {
            mode: *m,
            integrations: all
                .iter()
                .filter(|i| i.modes.contains(m))
                .map(|i| i.public_id.clone())
                .collect(),
        })
        .collect();
    Ok(Json(ModeList { modes }))
}

/// A rule mode in a path: an unknown one names nothing.
fn path_mode(m: &str) -> AppResult<RuleMode> {
    m.parse()
        .map_err(|e: String| AppError::client(StatusCode::NOT_FOUND, "not_found", e))
}

async fn set_notifies(
    st: &AppState,
    deployment_id: DeploymentId,
    mode: &str,
    ids: Vec<IntegrationId>,
    on: bool,
) -> AppResult<Json<ModeNotifies>> {
    let mode = path_mode(mode)?;
    if ids.is_empty() {
        return Err(bad("integration_ids must name at least one integration"));
    }
    let unknown = st
        .store
        .set_mode_notifies(deployment_id, mode, &ids, on)
        .await?;
    if !unknown.is_empty() {
        let names: Vec<&str> = unknown.iter().map(IntegrationId::as_str).collect();
        return Err(AppError::client(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no integration {}", names.join(", ")),
        ));
    }
    Ok(Json(ModeNotifies {
        mode,
        notify: on,
        integration_ids: ids,
    }))
}

/// Make a rule mode notify integrations (Rules > Policies > Rule Modes > Edit).
#[utoipa::path(post, path = "/api/v1/modes/{mode}/notify", tag = "integrations", security(("bearer" = [])),
    request_body = NotifyIn,
    params(("mode" = RuleMode, Path, description = "monitor, comment or block")),
    responses((status = 200, description = "Changed", body = ModeNotifies), Refusals, AdminRefusals))]
async fn notify_mode(
    Admin(d): Admin,
    State(st): State<AppState>,
    Path(mode): Path<String>,
    JsonBody(body, _): JsonBody<NotifyIn>,
) -> AppResult<Json<ModeNotifies>> {
    set_notifies(&st, d.id, &mode, body.integration_ids, true).await
}

/// Stop a rule mode notifying integrations.
#[utoipa::path(post, path = "/api/v1/modes/{mode}/unnotify", tag = "integrations", security(("bearer" = [])),
    request_body = NotifyIn,
    params(("mode" = RuleMode, Path, description = "monitor, comment or block")),
    responses((status = 200, description = "Changed", body = ModeNotifies), Refusals, AdminRefusals))]
async fn unnotify_mode(
    Admin(d): Admin,
    State(st): State<AppState>,
    Path(mode): Path<String>,
    JsonBody(body, _): JsonBody<NotifyIn>,
) -> AppResult<Json<ModeNotifies>> {
    set_notifies(&st, d.id, &mode, body.integration_ids, false).await
}

/// The delivery log, newest first.
#[utoipa::path(get, path = "/api/v1/deliveries", tag = "deliveries", security(("bearer" = [])),
    params(
        ("integration" = Option<IntegrationId>, Query, description = "Only this integration's messages"),
        ("status" = Option<MessageStatus>, Query, description = "pending, delivering, delivered or failed"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 1000, description = "At most this many (default 100)"),
    ),
    responses((status = 200, description = "Messages, newest first", body = DeliveryList), Refusals, AdminRefusals))]
async fn list_deliveries(
    Admin(d): Admin,
    State(st): State<AppState>,
    q: QueryPairs,
) -> AppResult<Json<DeliveryList>> {
    let status: Option<MessageStatus> = q.parsed("status")?;
    let integration: Option<IntegrationId> = q.parsed("integration")?;
    let limit = q.int_in("limit", 1..=1000)?.unwrap_or(100);
    let rows = st
        .store
        .list_messages(d.id, integration.as_ref(), status, None, limit)
        .await?;
    Ok(Json(DeliveryList {
        deliveries: rows.iter().map(DeliveryOut::from).collect(),
    }))
}

/// One message: body and every attempt (time, status, latency, response excerpt, error).
#[utoipa::path(get, path = "/api/v1/deliveries/{msg_id}", tag = "deliveries", security(("bearer" = [])),
    params(("msg_id" = MessageId, Path, description = "The message's id (its webhook-id)")),
    responses((status = 200, description = "The message", body = DeliveryDetail), Refusals, AdminRefusals))]
async fn get_delivery(
    Admin(d): Admin,
    State(st): State<AppState>,
    Path(id): Path<MessageId>,
) -> AppResult<Json<DeliveryDetail>> {
    let (m, attempts) = st
        .store
        .message(d.id, &id)
        .await?
        .ok_or_else(|| AppError::not_found("delivery"))?;
    let body = RawValue::from_string(m.body.clone()).map_err(|e| {
        AppError::Internal(anyhow::anyhow!(
            "message {id} has a body that is not JSON: {e}"
        ))
    })?;
    Ok(Json(DeliveryDetail {
        message: DeliveryOut::from(&m),
        body,
        attempt_log: attempts.iter().map(Into::into).collect(),
    }))
}

/// Send a message again, same webhook-id.
#[utoipa::path(post, path = "/api/v1/deliveries/{msg_id}/resend", tag = "deliveries", security(("bearer" = [])),
    params(("msg_id" = MessageId, Path, description = "The message's id (its webhook-id)")),
    responses((status = 200, description = "Queued again, due now", body = Resent), Conflict, Refusals, AdminRefusals))]
async fn resend_delivery(
    Admin(d): Admin,
    State(st): State<AppState>,
    Path(id): Path<MessageId>,
) -> AppResult<Json<Resent>> {
    crate::api::integrations::resent(st.store.resend(d.id, &id).await?)?;
    st.wake.notify_one();
    Ok(Json(Resent { resent: id }))
}
