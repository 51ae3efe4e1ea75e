//! Settings > Integrations: the list, Add Integration > Webhook (Name, Webhook URL, Test,
//! Save), editing, enable/disable, secret rotation and reveal, deletion, and each
//! integration's delivery log with Resend and recover.

use super::layout::{badge, csrf, empty, form_error, maybe_when, page, when, Section};
use super::{done, parse_id, Posted, Session, UiError, UiResult};
use crate::clock::{self, iso};
use crate::delivery::test_notification::{self, Target, TestResult};
use crate::domain::channels::template::Template;
use crate::domain::channels::ChannelKind;
use crate::domain::event_kind::EventKind;
use crate::domain::filters::{FilterSpec, Filters};
use crate::domain::findings::Severity;
use crate::domain::integration::Integration;
use crate::domain::mode::RuleMode;
use crate::domain::outbox::MessageStatus;
use crate::domain::query::QueryPairs;
use crate::domain::routing::{Preview, PREVIEW_DAYS};
use crate::domain::webhook::{check_name, WebhookUrl};
use crate::error::AppError;
use crate::ids::{self, IntegrationId, MessageId};
use crate::state::AppState;
use crate::store::integrations::{IntegrationChange, NewIntegration};
use crate::store::sessions::UiSession;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};

/// The session's integration named by a path, or the not-found page.
async fn load(st: &AppState, s: &UiSession, id: &str) -> UiResult<Integration> {
    let id: IntegrationId = parse_id(id, "integration")?;
    Ok(st
        .store
        .integration(s.deployment.id, &id)
        .await?
        .ok_or_else(|| AppError::not_found("integration"))?)
}

fn modes_of(i: &Integration) -> Markup {
    html! {
        @if i.modes.is_empty() {
            span.hint { "no rule mode" }
        } @else {
            @for (n, m) in i.modes.iter().enumerate() {
                @if n > 0 { ", " }
                (m.label())
            }
        }
    }
}

pub async fn list(Session(s): Session, State(st): State<AppState>, q: QueryPairs) -> UiResult {
    let all = st.store.list_integrations(s.deployment.id).await?;
    let body = html! {
        div.actions {
            a.button href="/settings/integrations/add" { "Add Integration" }
        }
        @if all.is_empty() {
            (empty("No integrations yet.", html! {
                p { "Add a webhook integration to receive a " code { "semgrep_scan" }
                    " object for every scan, then choose under "
                    a href="/policies/modes" { "Rule Modes" }
                    " which modes send " code { "semgrep_finding" } " notifications to it." }
            }))
        } @else {
            div.table-wrap { table {
                thead { tr { th { "Name" } th { "Type" } th { "Webhook URL" } th { "Status" }
                    th { "Notified by" } th { "Deliveries" } } }
                tbody {
                    @for i in &all {
                        tr {
                            td { a href={ "/settings/integrations/" (i.public_id) } { (i.name) } }
                            td { (kind_label(i.kind)) }
                            td { code { (i.shown_url()) } }
                            td { (badge(if i.enabled { "enabled" } else { "disabled" }))
                                @if let Some(r) = &i.disabled_reason { br; span.hint { (r) } } }
                            td { (modes_of(i)) }
                            td { a href={ "/settings/integrations/" (i.public_id) "/deliveries" } { "Delivery log" } }
                        }
                    }
                }
            } }
        }
    };
    Ok(page(
        &s,
        "Integrations",
        Section::Integrations,
        q.one("done"),
        body,
    ))
}

/// Add Integration: the kinds of integration (webhooks are what scanhook sends).
pub async fn choose(Session(s): Session) -> UiResult {
    let body = html! {
        div.cards {
            @for kind in ChannelKind::ALL {
                div.card {
                    h2 { (kind_label(*kind)) }
                    p { (kind_blurb(*kind)) }
                    a.button href={ "/settings/integrations/add/" (kind.as_str()) } { (kind_label(*kind)) }
                }
            }
        }
    };
    Ok(page(
        &s,
        "Add Integration",
        Section::Integrations,
        None,
        body,
    ))
}

/// What people call a kind.
fn kind_label(kind: ChannelKind) -> &'static str {
    match kind {
        ChannelKind::Webhook => "Webhook",
        ChannelKind::Slack => "Slack",
        ChannelKind::Teams => "Microsoft Teams",
        ChannelKind::Discord => "Discord",
        ChannelKind::Template => "Custom template",
    }
}

fn kind_blurb(kind: ChannelKind) -> &'static str {
    match kind {
        ChannelKind::Webhook => {
            "POST each scan and each new finding, signed, to an endpoint of yours."
        }
        ChannelKind::Slack => {
            "A digest per scan in a channel, through a Slack (or Mattermost) incoming webhook."
        }
        ChannelKind::Teams => {
            "A digest per scan as an Adaptive Card, through a Teams Workflows webhook."
        }
        ChannelKind::Discord => "A digest per scan as embeds, through a Discord channel webhook.",
        ChannelKind::Template => {
            "Your own body, rendered from a template over the same events, signed."
        }
    }
}

/// The label of the URL field.
fn url_label(kind: ChannelKind) -> &'static str {
    match kind {
        ChannelKind::Webhook => "Webhook URL",
        ChannelKind::Slack => "Slack webhook URL",
        ChannelKind::Teams => "Teams Workflows URL",
        ChannelKind::Discord => "Discord webhook URL",
        ChannelKind::Template => "URL",
    }
}

/// What the integration form shows: the typed values, an error, a Test or Preview result.
#[derive(Default)]
struct FormState<'a> {
    kind: ChannelKind,
    name: &'a str,
    template: &'a str,
    content_type: &'a str,
    /// As shown: a chat kind's saved URL masked.
    url: std::borrow::Cow<'a, str>,
    events: Vec<EventKind>,
    filters: FilterSpec,
    error: Option<String>,
    test: Option<Result<TestResult, String>>,
    preview: Option<Result<Preview, String>>,
}

impl<'a> FormState<'a> {
    /// A new integration's form: the seed's two events, no filter.
    fn new() -> FormState<'a> {
        FormState {
            events: EventKind::DEFAULT.to_vec(),
            ..FormState::default()
        }
    }

    fn of_kind(mut self, kind: ChannelKind) -> FormState<'a> {
        self.kind = kind;
        if kind == ChannelKind::Template && self.template.is_empty() {
            self.template = SAMPLE_TEMPLATE;
            self.content_type = "application/json";
        }
        self
    }

    /// The integration as stored.
    fn saved(i: &'a Integration) -> FormState<'a> {
        FormState {
            kind: i.kind,
            name: &i.name,
            template: i.template.as_deref().map_or("", |t| t.source()),
            content_type: i.template.as_deref().map_or("", |t| t.content_type()),
            url: i.shown_url().into(),
            events: i.events.clone(),
            filters: i.filters.spec().clone(),
            ..FormState::default()
        }
    }

    /// The form as submitted (unknown values are dropped here and refused by [`check`]).
    fn typed(form: &'a Posted) -> FormState<'a> {
        FormState {
            name: form.get("name").unwrap_or_default(),
            template: form.get("template").unwrap_or_default(),
            content_type: form.get("content_type").unwrap_or_default(),
            url: form.get("url").unwrap_or_default().into(),
            events: form
                .all("events")
                .iter()
                .filter_map(|e| e.parse().ok())
                .collect(),
            filters: typed_filters(form).unwrap_or_default(),
            ..FormState::default()
        }
    }
}

/// A list field: globs separated by commas or lines.
fn globs_field(form: &Posted, name: &str) -> Vec<String> {
    form.get(name)
        .unwrap_or_default()
        .split([',', '\n'])
        .map(str::trim)
        .filter(|g| !g.is_empty())
        .map(str::to_string)
        .collect()
}

/// The filters as submitted.
fn typed_filters(form: &Posted) -> Result<FilterSpec, String> {
    let min_severity = form
        .get("min_severity")
        .map(Severity::parse_loose)
        .transpose()
        .map_err(|e| format!("Minimum severity: {e}"))?;
    Ok(FilterSpec {
        min_severity,
        repos: globs_field(form, "repos"),
        refs: globs_field(form, "refs"),
        rules: globs_field(form, "rules"),
        paths: globs_field(form, "paths"),
        expression: form.get("expression").map(str::to_string),
    })
}

/// The submitted filters, compiled, or what is wrong with them.
fn compiled_filters(form: &Posted) -> Result<(FilterSpec, Filters), String> {
    let spec = typed_filters(form)?;
    let compiled = spec.compile().map_err(|e| format!("Filters: {e}"))?;
    Ok((spec, compiled))
}

/// What the filters would have sent of the deployment's recent findings.
async fn preview(
    st: &AppState,
    s: &UiSession,
    form: &Posted,
    modes: Option<&[RuleMode]>,
) -> UiResult<Result<Preview, String>> {
    let filters = match compiled_filters(form) {
        Ok((_, f)) => f,
        Err(e) => return Ok(Err(e)),
    };
    let since = clock::now() - PREVIEW_DAYS * 86_400 * 1_000_000;
    Ok(Ok(st
        .store
        .preview(s.deployment.id, since, &filters, modes)
        .await?))
}

fn preview_result(preview: &Option<Result<Preview, String>>, saved: bool) -> Markup {
    html! {
        div #preview-result aria-live="polite" {
            @match preview {
                None => {},
                Some(Err(why)) => { div.result.bad { p { strong { "No preview." } " " (why) } } }
                Some(Ok(p)) => {
                    div.result.ok {
                        p { strong #preview-count { (p.matching) } " of the " (p.recent)
                            " findings first seen in the last " (PREVIEW_DAYS) " days pass these filters"
                            @if saved { "; " strong #preview-notified { (p.notified) }
                                " of them in a rule mode that notifies this integration" }
                            "." }
                        @if p.failed > 0 {
                            p.hint { "The expression failed on " (p.failed)
                                " of them (a key they lack, a type that does not match): those would not be sent." }
                        }
                    }
                }
            }
        }
    }
}

fn test_result(test: &Option<Result<TestResult, String>>) -> Markup {
    html! {
        div #test-result aria-live="polite" {
            @match test {
                None => {},
                Some(Err(why)) => {
                    div.result.bad {
                        p { strong { "Test not sent." } " " (why) }
                    }
                }
                Some(Ok(r)) => {
                    div class={ "result " (if r.delivered { "ok" } else { "bad" }) } {
                        p { strong { @if r.delivered { "Success: the test notification was delivered." }
                            @else { "The test notification was not delivered." } } }
                        dl.facts {
                            dt { "Status" } dd { @match r.status { Some(code) => (code), None => "no response" } }
                            dt { "Latency" } dd { (format!("{:.0} ms", r.latency_ms)) }
                            @if let Some(e) = &r.error { dt { "Error" } dd { (e) } }
                            @if let Some(x) = &r.response { dt { "Response" } dd { code { (x) } } }
                        }
                    }
                }
            }
        }
    }
}

/// What each event type means, for the form.
fn event_hint(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Scan => "every scan",
        EventKind::Finding => "new findings, in the rule modes that notify this integration",
        EventKind::FindingFixed => "findings a scan closed as fixed",
        EventKind::FindingReopened => "fixed findings back on the same ref",
        EventKind::FindingTriaged => "triage changes (ignored, reopened, …)",
        EventKind::Test => "the Test action",
    }
}

fn integration_fields(s: &UiSession, f: &FormState, saved: bool) -> Markup {
    let globs = |v: &[String]| v.join(", ");
    let min = f.filters.min_severity;
    html! {
        (csrf(s))
        label for="name" { "Name" }
        input #name type="text" name="name" value=(f.name) required maxlength="200"
            aria-describedby="name-hint";
        p.hint id="name-hint" { "Shown in this list and in the delivery log." }
        label for="url" { (url_label(f.kind)) }
        input #url type="url" name="url" value=(f.url) required placeholder="https://hooks.example.com/semgrep"
            aria-describedby="url-hint";
        p.hint id="url-hint" {
            @if f.kind.is_chat() {
                "The URL is the credential: it is stored sealed and shown masked. "
                @if saved { "Leave it as shown to keep it, or paste a new one to replace it. " }
            } @else {
                "http or https, without credentials. "
            }
            "Private addresses need the server's " code { "--deliver-allow-cidrs" } "." }
        @if f.kind == ChannelKind::Template {
            label for="template" { "Template" }
            textarea #template name="template" rows="8" aria-describedby="template-hint" required {
                (f.template)
            }
            p.hint id="template-hint" { "minijinja, over " code { "event" } " (the event type), "
                code { "body" } " (the webhook body, parsed) and " code { "scanhook_url" }
                ". Tried on a sample when saved." }
            label for="content_type" { "Content type" }
            input #content_type type="text" name="content_type" value=(f.content_type) placeholder="application/json";
        }
        fieldset #events {
            legend { "Events" }
            @for kind in EventKind::SUBSCRIBABLE {
                label.inline {
                    input type="checkbox" name="events" value=(kind.as_str()) checked[f.events.contains(&kind)];
                    code { (kind.as_str()) } span.hint { (event_hint(kind)) }
                }
                br;
            }
        }
        fieldset #filters {
            legend { "Filters" }
            p.hint { "All optional. Every filter given must pass; any glob of a list may match. "
                code { "semgrep_scan" } " is filtered by repository and ref only." }
            label for="min_severity" { "Minimum severity" }
            select #min_severity name="min_severity" {
                option value="" selected[min.is_none()] { "any" }
                @for sev in [Severity::Low, Severity::Medium, Severity::High, Severity::Critical] {
                    option value=(sev.as_str()) selected[min == Some(sev)] { (sev.as_str()) }
                }
            }
            label for="repos" { "Repositories" }
            input #repos type="text" name="repos" value=(globs(&f.filters.repos)) placeholder="acme/*, acme-labs/api";
            label for="refs" { "Refs" }
            input #refs type="text" name="refs" value=(globs(&f.filters.refs)) placeholder="refs/heads/main";
            label for="rules" { "Rule ids" }
            input #rules type="text" name="rules" value=(globs(&f.filters.rules)) placeholder="python.lang.security.*";
            label for="paths" { "Paths" }
            input #paths type="text" name="paths" value=(globs(&f.filters.paths)) placeholder="app/**";
            label for="expression" { "Expression (CEL)" }
            textarea #expression name="expression" rows="2" aria-describedby="expression-hint"
                placeholder="\"CWE-89\" in finding.cwe || finding.confidence == \"HIGH\"" {
                (f.filters.expression.as_deref().unwrap_or_default())
            }
            p.hint id="expression-hint" { "Over " code { "finding" } ": rule, severity, mode, path, line, message, "
                "repository, ref, cwe and owasp (lists of ids), confidence, category, metadata. "
                "A finding the expression fails on is not sent." }
            div.actions {
                button.secondary type="submit" name="action" value="preview" data-inline="preview-result" { "Preview" }
            }
            (preview_result(&f.preview, saved))
        }
        div.actions {
            button.secondary type="submit" name="action" value="test" data-inline { "Test" }
            button type="submit" name="action" value="save" { "Save" }
        }
        (test_result(&f.test))
    }
}

/// What a new template integration's form starts with.
const SAMPLE_TEMPLATE: &str =
    r#"{"text": {{ (event ~ " from scanhook: " ~ (body | length) ~ " item(s)") | tojson }}}"#;

fn add_page(s: &UiSession, secret: &str, f: &FormState, status: StatusCode) -> Response {
    let action = format!("/settings/integrations/add/{}", f.kind.as_str());
    let body = html! {
        (form_error(f.error.as_deref()))
        form method="post" action=(action) data-inline="test-result" {
            input type="hidden" name="secret" value=(secret);
            (integration_fields(s, f, false))
        }
    };
    (
        status,
        page(
            s,
            &format!("Add Integration: {}", kind_label(f.kind)),
            Section::Integrations,
            None,
            body,
        ),
    )
        .into_response()
}

pub async fn add_form(Session(s): Session, Path(kind): Path<String>) -> UiResult {
    let kind = parse_kind(&kind)?;
    Ok(add_page(
        &s,
        &ids::new_signing_secret(),
        &FormState::new().of_kind(kind),
        StatusCode::OK,
    ))
}

fn parse_kind(kind: &str) -> Result<ChannelKind, AppError> {
    kind.parse()
        .map_err(|_| AppError::not_found("integration kind"))
}

/// What a valid form saves.
struct Checked {
    name: String,
    url: String,
    template: Option<Template>,
    events: Vec<EventKind>,
    filters: FilterSpec,
}

/// The URL a form means: a chat kind's masked URL left as shown is its saved one.
fn real_url<'a>(saved: &'a Integration, typed: &'a str) -> &'a str {
    if saved.kind.is_chat() && typed.trim() == saved.url.masked() {
        saved.url.as_str()
    } else {
        typed
    }
}

/// The form's template, compiled, for the template kind.
fn form_template(form: &Posted, kind: ChannelKind) -> Result<Option<Template>, String> {
    if kind != ChannelKind::Template {
        return Ok(None);
    }
    let content_type = form
        .get("content_type")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .unwrap_or("application/json");
    Template::compile(form.get("template").unwrap_or_default(), content_type)
        .map(Some)
        .map_err(|e| format!("Template: {e}"))
}

/// Validates the typed form of a `kind` (of `saved`, when editing).
fn check(form: &Posted, kind: ChannelKind, saved: Option<&Integration>) -> Result<Checked, String> {
    let name =
        check_name(form.get("name").unwrap_or_default()).map_err(|e| format!("Name: {e}"))?;
    let typed = form.get("url").unwrap_or_default();
    let typed = saved.map_or(typed, |i| real_url(i, typed));
    let url = WebhookUrl::parse(typed).map_err(|e| format!("{}: {e}", url_label(kind)))?;
    let events =
        EventKind::parse_subscriptions(&form.all("events")).map_err(|e| format!("Events: {e}"))?;
    let (filters, _) = compiled_filters(form)?;
    let template = form_template(form, kind)?;
    Ok(Checked {
        template,
        name: name.to_string(),
        url: url.to_string(),
        events,
        filters,
    })
}

/// Posts the test notification to a typed URL: an integration being added (with the
/// secret it will be saved with) or a saved one (logged in its delivery log).
async fn test_url(
    st: &AppState,
    form: &Posted,
    kind: ChannelKind,
    url: &str,
    saved: Option<&Integration>,
    secret: &str,
) -> UiResult<Result<TestResult, String>> {
    let url = match WebhookUrl::parse(url) {
        Ok(u) => u,
        Err(e) => return Ok(Err(format!("{}: {e}", url_label(kind)))),
    };
    let template = match form_template(form, kind) {
        Ok(t) => t,
        Err(e) => return Ok(Err(e)),
    };
    let name = form.get("name").unwrap_or_default();
    let target = match saved {
        Some(i) => {
            let mut t = Target::saved(i, &url, clock::now());
            t.template = template.as_ref().or(t.template);
            t
        }
        None => Target::unsaved(&url, secret, kind, name, template.as_ref()),
    };
    Ok(Ok(
        test_notification::send(&st.store, &st.sender, target).await?
    ))
}

/// Test or Save of the Add form. The form carries the secret the integration will sign
/// with, so a receiver that verifies signatures accepts the Test as it will the real thing.
pub async fn add(State(st): State<AppState>, Path(kind): Path<String>, form: Posted) -> UiResult {
    let kind = parse_kind(&kind)?;
    let s = &form.session;
    let secret = form
        .get("secret")
        .filter(|v| ids::is_signing_secret(v))
        .map_or_else(ids::new_signing_secret, str::to_string);
    let mut f = FormState::typed(&form).of_kind(kind);
    match form.get("action") {
        Some("test") => {
            f.test = Some(test_url(&st, &form, kind, &f.url, None, &secret).await?);
            return Ok(add_page(s, &secret, &f, StatusCode::OK));
        }
        Some("preview") => {
            f.preview = Some(preview(&st, s, &form, None).await?);
            return Ok(add_page(s, &secret, &f, StatusCode::OK));
        }
        _ => {}
    }
    match check(&form, kind, None) {
        Err(e) => {
            f.error = Some(e);
            Ok(add_page(s, &secret, &f, StatusCode::BAD_REQUEST))
        }
        Ok(c) => {
            let new = NewIntegration {
                kind,
                template: c.template.as_ref(),
                name: &c.name,
                url: &c.url,
                secret: Some(&secret),
                events: &c.events,
                filters: &c.filters,
            };
            let i = st.store.create_integration(s.deployment.id, &new).await?;
            tracing::info!(integration.id = %i.public_id, "integration created in the web UI");
            Ok(done(
                &format!("/settings/integrations/{}", i.public_id),
                "created",
            ))
        }
    }
}

fn edit_page(
    s: &UiSession,
    i: &Integration,
    f: &FormState,
    reveal: bool,
    notice: Option<&str>,
    status: StatusCode,
) -> Response {
    let path = format!("/settings/integrations/{}", i.public_id);
    let body = html! {
        p { (badge(if i.enabled { "enabled" } else { "disabled" }))
            @if let Some(r) = &i.disabled_reason { " " span.hint { (r) } } }
        (form_error(f.error.as_deref()))
        form method="post" action=(path) data-inline="test-result" {
            (integration_fields(s, f, true))
        }
        h2 { "Notifications" }
        p { "Rule modes that send findings here: " (modes_of(i)) ". "
            a href="/policies/modes" { "Change under Rule Modes" } "." }
        p { a href={ (path) "/deliveries" } { "Delivery log" } }
        h2 { "Status" }
        form.row method="post" action={ (path) "/enabled" } {
            (csrf(s))
            @if i.enabled {
                input type="hidden" name="enabled" value="false";
                button.secondary type="submit" { "Disable" }
                span.hint { "Messages wait while disabled; nothing is lost." }
            } @else {
                input type="hidden" name="enabled" value="true";
                button type="submit" { "Enable" }
            }
        }
        h2 { "Signing secret" }
        p.hint { "Every delivery is signed (Standard Webhooks " code { "webhook-signature" }
            " and " code { "X-Semgrep-Signature-256" } ")." }
        @if reveal {
            p { "Secret: " span.secret #secret { (i.secret.expose()) } }
            @if let Some(until) = i.old_secret_until.filter(|u| *u > clock::now()) {
                p.hint { "The previous secret also signs until " (when(until)) "." }
            }
        }
        div.actions {
            @if !reveal {
                form method="post" action={ (path) "/reveal" } {
                    (csrf(s))
                    button.secondary type="submit" { "Reveal secret" }
                }
            }
            form method="post" action={ (path) "/rotate" } {
                (csrf(s))
                button.secondary type="submit" { "Rotate secret" }
            }
        }
        h2 { "Delete" }
        p { a href={ (path) "/delete" } { "Delete this integration…" } }
        p.hint { "Created " (when(i.created_at)) ", updated " (when(i.updated_at)) "." }
    };
    let title = format!("Integration: {}", i.name);
    (status, page(s, &title, Section::Integrations, notice, body)).into_response()
}

pub async fn edit_form(
    Session(s): Session,
    State(st): State<AppState>,
    Path(id): Path<String>,
    q: QueryPairs,
) -> UiResult {
    let i = load(&st, &s, &id).await?;
    let f = FormState::saved(&i);
    Ok(edit_page(&s, &i, &f, false, q.one("done"), StatusCode::OK))
}

/// Test or Save of the edit form.
pub async fn edit(State(st): State<AppState>, Path(id): Path<String>, form: Posted) -> UiResult {
    let s = &form.session;
    let i = load(&st, s, &id).await?;
    let mut f = FormState::typed(&form).of_kind(i.kind);
    match form.get("action") {
        Some("test") => {
            let url = real_url(&i, &f.url);
            f.test = Some(test_url(&st, &form, i.kind, url, Some(&i), i.secret.expose()).await?);
            return Ok(edit_page(s, &i, &f, false, None, StatusCode::OK));
        }
        Some("preview") => {
            f.preview = Some(preview(&st, s, &form, Some(&i.modes)).await?);
            return Ok(edit_page(s, &i, &f, false, None, StatusCode::OK));
        }
        _ => {}
    }
    match check(&form, i.kind, Some(&i)) {
        Err(e) => {
            f.error = Some(e);
            Ok(edit_page(s, &i, &f, false, None, StatusCode::BAD_REQUEST))
        }
        Ok(c) => {
            let change = IntegrationChange {
                name: Some(&c.name),
                url: Some(&c.url),
                events: Some(&c.events),
                filters: Some(&c.filters),
                template: c.template.as_ref(),
                ..IntegrationChange::default()
            };
            st.store
                .update_integration(s.deployment.id, &i.public_id, &change)
                .await?
                .ok_or_else(|| AppError::not_found("integration"))?;
            Ok(done(
                &format!("/settings/integrations/{}", i.public_id),
                "saved",
            ))
        }
    }
}

pub async fn enable(State(st): State<AppState>, Path(id): Path<String>, form: Posted) -> UiResult {
    let id: IntegrationId = parse_id(&id, "integration")?;
    let on = match form.get("enabled") {
        Some("true") => true,
        Some("false") => false,
        _ => {
            return Err(
                AppError::bad_request("invalid_form", "enabled must be true or false").into(),
            )
        }
    };
    let change = IntegrationChange {
        enabled: Some(on),
        ..IntegrationChange::default()
    };
    st.store
        .update_integration(form.session.deployment.id, &id, &change)
        .await?
        .ok_or_else(|| AppError::not_found("integration"))?;
    if on {
        st.wake.notify_one();
    }
    Ok(done(
        &format!("/settings/integrations/{id}"),
        if on { "enabled" } else { "disabled" },
    ))
}

pub async fn rotate(State(st): State<AppState>, Path(id): Path<String>, form: Posted) -> UiResult {
    let id: IntegrationId = parse_id(&id, "integration")?;
    st.store
        .rotate_secret(form.session.deployment.id, &id)
        .await?
        .ok_or_else(|| AppError::not_found("integration"))?;
    Ok(done(&format!("/settings/integrations/{id}"), "rotated"))
}

/// Shows the secret in the answer to a POST, so it is never in a URL or the history.
pub async fn reveal(State(st): State<AppState>, Path(id): Path<String>, form: Posted) -> UiResult {
    let s = &form.session;
    let i = load(&st, s, &id).await?;
    let f = FormState::saved(&i);
    let mut r = edit_page(s, &i, &f, true, None, StatusCode::OK);
    r.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    Ok(r)
}

pub async fn confirm_delete(
    Session(s): Session,
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> UiResult {
    let i = load(&st, &s, &id).await?;
    let body = html! {
        p { "Delete " strong { (i.name) } " (" code { (i.shown_url()) } ")? Its unsent messages fail; "
            "the delivery log is kept. This cannot be undone." }
        form.row method="post" action={ "/settings/integrations/" (i.public_id) "/delete" } {
            (csrf(&s))
            button.danger type="submit" { "Delete integration" }
            a.button.secondary href={ "/settings/integrations/" (i.public_id) } { "Cancel" }
        }
    };
    Ok(page(
        &s,
        "Delete integration?",
        Section::Integrations,
        None,
        body,
    ))
}

pub async fn delete(State(st): State<AppState>, Path(id): Path<String>, form: Posted) -> UiResult {
    let id: IntegrationId = parse_id(&id, "integration")?;
    if !st
        .store
        .delete_integration(form.session.deployment.id, &id)
        .await?
    {
        return Err(AppError::not_found("integration").into());
    }
    Ok(done("/settings/integrations", "deleted"))
}

pub async fn deliveries(
    Session(s): Session,
    State(st): State<AppState>,
    Path(id): Path<String>,
    q: QueryPairs,
) -> UiResult {
    let i = load(&st, &s, &id).await?;
    let status: Option<MessageStatus> = q.parsed("status")?;
    let rows = st
        .store
        .list_messages(s.deployment.id, Some(&i.public_id), status, None, 200)
        .await?;
    let path = format!("/settings/integrations/{id}/deliveries");
    let since_default = iso(clock::now() - 24 * 3600 * 1_000_000);
    let body = html! {
        p { "To " code { (i.shown_url()) } " · " a href={ "/settings/integrations/" (id) } { "Integration settings" } }
        nav.filters aria-label="Filter by status" {
            a href=(path) { "All" }
            @for v in MessageStatus::ALL { a href={ (path) "?status=" (v) } { (v) } }
        }
        @if rows.is_empty() {
            (empty("No messages to show.", html! {
                p { "Messages appear here when a scan completes, or when you press Test on the "
                    a href={ "/settings/integrations/" (id) } { "integration" } "." }
            }))
        } @else {
            div.table-wrap { table {
                thead { tr { th { "Message" } th { "Kind" } th { "Status" } th { "Attempts" }
                    th { "Created" } th { "Delivered" } } }
                tbody { @for m in &rows { tr {
                    td { a href={ "/deliveries/" (m.public_id) } { code { (m.public_id) } } }
                    td { (m.kind) }
                    td { (badge(m.status.as_str())) }
                    td { (m.attempts) }
                    td { (when(m.created_at)) }
                    td { (maybe_when(m.delivered_at)) }
                } } }
            } }
        }
        h2 { "Recover failed messages" }
        form.row method="post" action={ "/settings/integrations/" (id) "/recover" } {
            (csrf(&s))
            label for="since" { "Failed since" }
            input #since type="text" name="since" value=(since_default) aria-describedby="since-hint";
            button type="submit" { "Recover" }
        }
        p.hint id="since-hint" { "RFC 3339 time or epoch seconds. Every failed message created since then is queued again with its webhook-id." }
    };
    let title = format!("Deliveries: {}", i.name);
    Ok(page(&s, &title, Section::Integrations, q.one("done"), body))
}

pub async fn recover(State(st): State<AppState>, Path(id): Path<String>, form: Posted) -> UiResult {
    let s = &form.session;
    let i = load(&st, s, &id).await?;
    let since = form
        .get("since")
        .and_then(clock::parse_since)
        .ok_or_else(|| {
            AppError::bad_request(
                "invalid_form",
                "Failed since: give an RFC 3339 time such as 2026-01-31T09:00:00Z, or epoch seconds.",
            )
        })?;
    let n = st
        .store
        .recover(s.deployment.id, &i.public_id, since)
        .await?;
    st.wake.notify_one();
    Ok(done(
        &format!("/settings/integrations/{id}/deliveries"),
        &format!("recovered-{n}"),
    ))
}

pub async fn delivery(
    Session(s): Session,
    State(st): State<AppState>,
    Path(id): Path<String>,
    q: QueryPairs,
) -> UiResult {
    let id: MessageId = parse_id(&id, "delivery")?;
    let (m, attempts) = st
        .store
        .message(s.deployment.id, &id)
        .await?
        .ok_or_else(|| AppError::not_found("delivery"))?;
    let pretty = serde_json::from_str::<serde_json::Value>(&m.body)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| m.body.clone());
    let body = html! {
        dl.facts {
            dt { "Integration" } dd {
                @match &m.integration {
                    None => "(deleted)",
                    Some(i) => a href={ "/settings/integrations/" (i) "/deliveries" } { code { (i) } },
                }
            }
            dt { "Kind" } dd { (m.kind) }
            dt { "Status" } dd { (badge(m.status.as_str())) }
            dt { "webhook-id" } dd { code { (m.public_id) } }
            dt { "Created" } dd { (when(m.created_at)) }
            dt { "Delivered" } dd { (maybe_when(m.delivered_at)) }
            @if m.status == MessageStatus::Pending { dt { "Next attempt" } dd { (when(m.next_attempt_at)) } }
        }
        @if m.integration.is_none() {
            p.hint { "Its integration was deleted, so it is not sent again; the delivery log stays." }
        } @else if m.kind != EventKind::Test {
            form.row method="post" action={ "/deliveries/" (m.public_id) "/resend" } {
                (csrf(&s))
                button type="submit" { "Resend" }
                span.hint { "Sends it again with the same webhook-id, now." }
            }
        }
        h2 { "Attempts" }
        @if attempts.is_empty() {
            p { "No attempt yet." }
        } @else {
            div.table-wrap { table {
                thead { tr { th { "Time" } th { "Status" } th { "Latency" } th { "Response" } th { "Error" } } }
                tbody { @for a in &attempts { tr {
                    td { (when(a.attempted_at)) }
                    td { @match a.status_code { Some(c) => (c), None => "—" } }
                    td { (format!("{:.1} ms", a.latency_us as f64 / 1000.0)) }
                    td { @if let Some(x) = &a.response_excerpt { code { (x) } } }
                    td { @if let Some(e) = &a.error { (e) } }
                } } }
            } }
        }
        h2 { "Body" }
        pre { code { (pretty) } }
    };
    Ok(page(
        &s,
        "Delivery",
        Section::Integrations,
        q.one("done"),
        body,
    ))
}

pub async fn resend(State(st): State<AppState>, Path(id): Path<String>, form: Posted) -> UiResult {
    let id: MessageId = parse_id(&id, "delivery")?;
    crate::api::integrations::resent(st.store.resend(form.session.deployment.id, &id).await?)
        .map_err(UiError::from)?;
    st.wake.notify_one();
    Ok(done(&format!("/deliveries/{id}"), "resent"))
}
