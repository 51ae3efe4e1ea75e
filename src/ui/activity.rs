//! Projects, Scans (with the `semgrep_scan` metadata, counts and messages of each) and
//! Findings (filters, triage).

use super::layout::{
    badge, csrf, empty, maybe_when, page, query_value, semgrep_command, when, Section,
};
use super::{done, local_path, parse_id, Posted, Session, UiResult};
use crate::domain::findings::{FindingFilter, Status, TriageState};
use crate::domain::lifecycle::State as FindingState;
use crate::domain::mode::RuleMode;
use crate::domain::outbox::Claimant;
use crate::domain::query::QueryPairs;
use crate::error::AppError;
use crate::ids::{FindingId, ScanId, ScanKey};
use crate::state::AppState;
use crate::store::findings::{FindingRow, TriageChange};
use crate::store::scans::{Scan, ScanFilter};
use crate::store::sessions::UiSession;
use axum::extract::{Path, State};
use maud::{html, Markup};
use serde_json::Value;

pub async fn projects(Session(s): Session, State(st): State<AppState>) -> UiResult {
    let all = st.store.list_projects(s.deployment.id).await?;
    let body = html! {
        @if all.is_empty() {
            (empty("No projects yet: a project appears with its first scan.", semgrep_command(&st.config.public_url)))
        } @else {
            div.table-wrap { table {
                thead { tr { th { "Project" } th { "Repository" } th { "Last scan" } th { "Views" } } }
                tbody { @for p in &all { tr {
                    td { (p.name) }
                    td { @if let Some(u) = &p.repo_url { code { (u) } } }
                    td { (maybe_when(p.last_scan_at)) }
                    td {
                        a href={ "/scans?project=" (query_value(&p.name)) } { "Scans" } " · "
                        a href={ "/findings?repos=" (query_value(&p.name)) } { "Findings" }
                    }
                } } }
            } }
        }
    };
    Ok(page(&s, "Projects", Section::Projects, None, body))
}

fn scan_kind(s: &Scan) -> &'static str {
    if s.is_full_scan {
        "full"
    } else {
        "diff-aware"
    }
}

pub async fn scans(Session(s): Session, State(st): State<AppState>, q: QueryPairs) -> UiResult {
    let project = q.one("project").filter(|v| !v.is_empty());
    let git_ref = q.one("ref").filter(|v| !v.is_empty());
    let before_id = q.int("before")?.map(ScanId);
    let filter = ScanFilter {
        project: project.map(str::to_string),
        git_ref: git_ref.map(str::to_string),
        before_id,
        limit: 50,
        ..ScanFilter::default()
    };
    let rows = st.store.list_scans(s.deployment.id, &filter).await?;
    let body = html! {
        form.filters method="get" action="/scans" {
            label { "Project " input type="text" name="project" value=(project.unwrap_or_default()); }
            label { "Ref " input type="text" name="ref" value=(git_ref.unwrap_or_default()); }
            button.secondary type="submit" { "Filter" }
        }
        @if rows.is_empty() {
            @if project.is_some() || git_ref.is_some() || before_id.is_some() {
                (empty("No scans match.", html! { p { a href="/scans" { "Show every scan" } } }))
            } @else {
                (empty("No scans yet.", semgrep_command(&st.config.public_url)))
            }
        } @else {
            div.table-wrap { table {
                thead { tr { th { "Scan" } th { "Project" } th { "Ref" } th { "Type" } th { "Status" }
                    th { "Started" } th { "Findings" } th { "Opened" } th { "Fixed" } th { "Notified" } } }
                tbody { @for sc in &rows { tr {
                    td { a href={ "/scans/" (sc.public_id) } { code { (sc.public_id) } } }
                    td { (sc.project) }
                    td { code { (sc.git_ref) } }
                    td { (scan_kind(sc)) }
                    td { (badge(sc.status.as_str())) }
                    td { (when(sc.started_at)) }
                    td { (sc.n_findings) } td { (sc.n_opened) } td { (sc.n_fixed) } td { (sc.n_notified) }
                } } }
            } }
            @if rows.len() == 50 {
                @if let Some(last) = rows.last() {
                    p { a href=(older(last.id, project, git_ref)) { "Older scans" } }
                }
            }
        }
    };
    Ok(page(&s, "Scans", Section::Scans, None, body))
}

/// The next page of the scans list, keeping its filters.
fn older(before: ScanId, project: Option<&str>, git_ref: Option<&str>) -> String {
    let mut link = format!("/scans?before={before}");
    if let Some(p) = project {
        link.push_str(&format!("&project={}", query_value(p)));
    }
    if let Some(r) = git_ref {
        link.push_str(&format!("&ref={}", query_value(r)));
    }
    link
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "null".into(),
        other => other.to_string(),
    }
}

pub async fn scan(
    Session(s): Session,
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> UiResult {
    let key: ScanKey = parse_id(&id, "scan")?;
    let sc = st
        .store
        .scan(s.deployment.id, &key)
        .await?
        .ok_or_else(|| AppError::not_found("scan"))?;
    let object = sc.scan_payload.clone().unwrap_or_else(|| sc.semgrep_scan());
    let fields = object
        .get("semgrep_scan")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let messages = st
        .store
        .list_messages(s.deployment.id, None, None, Some(sc.id), 200)
        .await?;
    let changed = st
        .store
        .scan_findings(s.deployment.id, sc.id, &[], false)
        .await?;
    const SHOWN: usize = 200;
    let body = html! {
        p { (badge(sc.status.as_str())) " " (scan_kind(&sc)) " scan of " strong { (sc.project) }
            " on " code { (sc.git_ref) } ", started " (when(sc.started_at)) "." }
        h2 { "Counts" }
        dl.facts {
            dt { "Findings reported" } dd { (sc.n_findings) }
            dt { "Opened" } dd { (sc.n_opened) }
            dt { "Fixed" } dd { (sc.n_fixed) }
            dt { "Notified" } dd { (sc.n_notified) }
            @if let Some(code) = sc.exit_code { dt { "CLI exit code" } dd { (code) } }
        }
        h2 { code { "semgrep_scan" } " metadata" }
        dl.facts {
            @for (k, v) in &fields { dt { code { (k) } } dd { (value_text(v)) } }
        }
        h2 { "Messages" }
        @if messages.is_empty() {
            p { "No webhook message: " @if sc.completed_at.is_none() { "the scan has not completed." }
                @else { "no integration was enabled when it completed. " a href="/settings/integrations" { "Integrations" } } }
        } @else {
            div.table-wrap { table {
                thead { tr { th { "Message" } th { "Integration" } th { "Kind" } th { "Status" } th { "Attempts" } } }
                tbody { @for m in &messages { tr {
                    td { a href={ "/deliveries/" (m.public_id) } { code { (m.public_id) } } }
                    td { @match &m.integration { Some(i) => code { (i) }, None => "(deleted)" } }
                    td { (m.kind) }
                    td { (badge(m.status.as_str())) }
                    td { (m.attempts) }
                } } }
            } }
        }
        h2 { "Findings this scan changed" }
        @if changed.is_empty() {
            p { "None." }
        } @else {
            div.table-wrap { table {
                thead { tr { th { "Change" } th { "Notified" } th { "Rule" } th { "Location" } th { "Status" } } }
                tbody { @for f in changed.iter().take(SHOWN) { tr {
                    td { (f.change.map_or("", |c| c.as_str())) }
                    td { @if f.notify { "yes" } @else { "no" } }
                    td { a href={ "/rules/" (query_value(&f.rule_id)) } { code { (f.rule_id) } } }
                    td { code { (f.path) ":" (f.line) } }
                    td { (badge(f.status.as_str())) }
                } } }
            } }
            @if changed.len() > SHOWN { p.hint { "The first " (SHOWN) " of " (changed.len()) " are shown." } }
        }
    };
    let title = format!("Scan {}", sc.public_id);
    Ok(page(&s, &title, Section::Scans, None, body))
}

const PAGE_SIZE: i64 = 50;

/// The findings filters of the page: the API's, with `status` defaulting to open (what
/// needs attention) and `any` meaning every status.
fn page_query(q: &QueryPairs) -> QueryPairs {
    let mut pairs: Vec<(String, String)> =
        q.0.iter()
            .filter(|(k, v)| k != "status" && k != "done" && !v.is_empty())
            .cloned()
            .collect();
    match q.one("status").filter(|v| !v.is_empty()) {
        None => pairs.push(("status".into(), "open".into())),
        Some("any") => {}
        Some(v) => pairs.push(("status".into(), v.into())),
    }
    pairs.retain(|(k, _)| k != "page_size");
    pairs.push(("page_size".into(), PAGE_SIZE.to_string()));
    QueryPairs(pairs)
}

fn select(name: &str, label: &str, options: &[(&str, &str)], current: Option<&str>) -> Markup {
    html! {
        label {
            (label) " "
            select name=(name) {
                @for (value, text) in options {
                    option value=(value) selected[current.unwrap_or_default() == *value] { (text) }
                }
            }
        }
    }
}

fn triage_form(s: &UiSession, f: &FindingRow, back: &str) -> Markup {
    let action = format!("/findings/{}/triage", f.id);
    html! {
        form.row method="post" action=(action) {
            (csrf(s))
            input type="hidden" name="back" value=(back);
            @if f.status == Status::Ignored {
                input type="hidden" name="action" value="reopen";
                button.secondary type="submit" aria-label={ "Reopen finding " (f.id) } { "Reopen" }
            } @else if f.state == FindingState::Open {
                input type="hidden" name="action" value="ignore";
                label.visually-hidden for={ "reason-" (f.id) } { "Reason" }
                select id={ "reason-" (f.id) } name="reason" {
                    option value="false_positive" { "False positive" }
                    option value="acceptable_risk" { "Acceptable risk" }
                    option value="no_time" { "No time to fix" }
                }
                button.secondary type="submit" aria-label={ "Ignore finding " (f.id) } { "Ignore" }
            }
        }
    }
}

pub async fn findings(Session(s): Session, State(st): State<AppState>, q: QueryPairs) -> UiResult {
    let filter = FindingFilter::from_query(&page_query(&q))?;
    let rows = st.store.list_findings(s.deployment.id, &filter).await?;
    let projects = st.store.list_projects(s.deployment.id).await?;
    let mut project_options: Vec<(&str, &str)> = vec![("", "Any")];
    project_options.extend(projects.iter().map(|p| (p.name.as_str(), p.name.as_str())));
    let modes: Vec<(&str, &str)> = std::iter::once(("", "Any"))
        .chain(RuleMode::ALL.iter().map(|m| (m.as_str(), m.label())))
        .collect();
    let back = page_link(&q, filter.page);
    let any_filter =
        q.0.iter()
            .any(|(k, v)| k != "done" && k != "page" && !v.is_empty());
    let body = html! {
        form.filters method="get" action="/findings" {
            (select("repos", "Project", &project_options, q.one("repos")))
            label { "Ref " input type="text" name="ref" value=(q.one("ref").unwrap_or_default()) placeholder="any"; }
            (select("status", "Status", &[("", "Open"), ("ignored", "Ignored"), ("fixed", "Fixed"),
                ("reviewing", "Reviewing"), ("fixing", "Fixing"), ("removed", "Removed"), ("any", "Any")], q.one("status")))
            (select("severities", "Severity", &[("", "Any"), ("critical", "Critical"), ("high", "High"),
                ("medium", "Medium"), ("low", "Low")], q.one("severities")))
            label { "Rule " input type="text" name="rules" value=(q.one("rules").unwrap_or_default()) placeholder="rule id"; }
            (select("modes", "Mode", &modes, q.one("modes")))
            button.secondary type="submit" { "Filter" }
        }
        @if rows.is_empty() {
            @if any_filter {
                (empty("No findings match these filters.", html! { p { a href="/findings" { "Show open findings" } } }))
            } @else {
                (empty("No open findings.", html! {
                    p { "Findings appear when " code { "semgrep ci" } " reports them. "
                        "If you have not scanned yet, upload rules under " a href="/policies" { "Policies" } " and run:" }
                    (semgrep_command(&st.config.public_url))
                }))
            }
        } @else {
            div.table-wrap { table {
                thead { tr { th { "Rule" } th { "Severity" } th { "Location" } th { "Project" } th { "Ref" }
                    th { "Status" } th { "Mode" } th { "First seen" } th { "Triage" } } }
                tbody { @for f in &rows { tr id={ "finding-" (f.id) } {
                    td { a href={ "/rules/" (query_value(&f.rule_id)) } { code { (f.rule_id) } } br; span.hint { (f.message) } }
                    td { (f.severity) }
                    td { code { (f.path) ":" (f.line) } }
                    td { (f.project) }
                    td { code { (f.git_ref) } }
                    td { (badge(f.status.as_str())) }
                    td { (f.mode) }
                    td { (when(f.created_at)) }
                    td { (triage_form(&s, f, &back)) }
                } } }
            } }
            p {
                @if filter.page > 0 { a href=(page_link(&q, filter.page - 1)) { "Previous page" } " " }
                @if rows.len() as i64 == PAGE_SIZE { a href=(page_link(&q, filter.page + 1)) { "Next page" } }
            }
        }
    };
    Ok(page(&s, "Findings", Section::Findings, q.one("done"), body))
}

fn page_link(q: &QueryPairs, page: i64) -> String {
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in q.0.iter().filter(|(k, _)| k != "page" && k != "done") {
        out.append_pair(k, v);
    }
    out.append_pair("page", &page.to_string());
    format!("/findings?{}", out.finish())
}

pub async fn triage(State(st): State<AppState>, Path(id): Path<String>, form: Posted) -> UiResult {
    let s = &form.session;
    let id: FindingId = parse_id(&id, "finding")?;
    let (state, notice) = match form.get("action") {
        Some("ignore") => (TriageState::Ignored, "ignored"),
        Some("reopen") => (TriageState::Reopened, "reopened"),
        _ => {
            return Err(
                AppError::bad_request("invalid_form", "action must be ignore or reopen").into(),
            )
        }
    };
    let change = TriageChange {
        state,
        reason: form.get("reason"),
        comment: form.get("note"),
    };
    let claimant = st.handoff.as_ref().map(|h| h as &dyn Claimant);
    let triaged = st
        .store
        .triage(s.deployment.id, &[id], &change, claimant)
        .await?;
    st.filter_failures(&triaged.failures);
    st.queued(triaged.queued);
    if triaged.found.is_empty() {
        return Err(AppError::not_found("finding").into());
    }
    Ok(done(&local_path(form.get("back"), "/findings"), notice))
}
