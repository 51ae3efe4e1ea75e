//! Rules > Policies (each rule's mode, changed in place; rule files uploaded), Rule Modes
//! (which integrations each mode notifies) and a rule's own page, the `semgrep.url` that
//! `semgrep ci` prints beside a finding.

use super::layout::{badge, csrf, empty, form_error, page, Section};
use super::{done, Posted, Session, UiResult};
use crate::domain::mode::{self, RuleMode};
use crate::domain::query::QueryPairs;
use crate::domain::rules::parse_files;
use crate::error::AppError;
use crate::ids::IntegrationId;
use crate::state::AppState;
use crate::store::rules::{ModeChangeError, DEFAULT_POLICY};
use crate::store::sessions::UiSession;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use maud::{html, Markup};
use serde_json::Value;
use std::collections::HashMap;

fn mode_select(id: &str, current: RuleMode) -> Markup {
    html! {
        select id=(id) name="mode" {
            @for m in RuleMode::ALL {
                option value=(m.as_str()) selected[m == current] { (m.label()) }
            }
        }
    }
}

fn text<'a>(rule: &'a Value, key: &str) -> &'a str {
    rule.get(key).and_then(Value::as_str).unwrap_or_default()
}

async fn policies_page(
    st: &AppState,
    s: &UiSession,
    error: Option<&str>,
    notice: Option<&str>,
    status: StatusCode,
) -> UiResult {
    let policies = st.store.list_policies(s.deployment.id).await?;
    let rules = st.store.list_rules(s.deployment.id).await?;
    let bodies: HashMap<&str, &Value> = rules
        .iter()
        .map(|r| (r.rule_id.as_str(), &r.body))
        .collect();
    let body = html! {
        p { "A rule's mode decides what " code { "semgrep ci" } " does with its findings: "
            strong { "Monitor" } " records them, " strong { "Comment" } " also comments on pull requests, "
            strong { "Block" } " also fails the CI job. Which modes send webhooks is set under "
            a href="/policies/modes" { "Rule Modes" } "." }
        (form_error(error))
        @if policies.iter().all(|p| p.rules.is_empty()) {
            (empty("No rules yet.", html! {
                p { "Upload Semgrep rule files (YAML with a top-level " code { "rules:" }
                    " list) below; " code { "semgrep ci" } " then runs exactly these rules." }
            }))
        }
        @for p in policies.iter().filter(|p| !p.rules.is_empty()) {
            section aria-labelledby={ "policy-" (p.policy.id) } {
                h2 id={ "policy-" (p.policy.id) } { (p.policy.name)
                    @if p.is_default { " " span.badge.plain { "default" } } }
                div.table-wrap { table {
                    thead { tr { th { "Rule" } th { "Severity" } th { "Message" } th { "Mode" } } }
                    tbody { @for (rule_id, m) in &p.rules {
                        @let rule = bodies.get(rule_id.as_str()).copied().unwrap_or(&Value::Null);
                        @let select_id = format!("mode-{}-{}", p.policy.id, rule_id);
                        tr {
                            td { a href={ "/rules/" (super::layout::query_value(rule_id)) } { code { (rule_id) } } }
                            td { (text(rule, "severity")) }
                            td { (text(rule, "message")) }
                            td {
                                form.row method="post" action="/policies/mode" {
                                    (csrf(s))
                                    input type="hidden" name="rule_id" value=(rule_id);
                                    input type="hidden" name="policy" value=(p.policy.slug);
                                    label.visually-hidden for=(select_id) { "Mode of " (rule_id) }
                                    (mode_select(&select_id, *m))
                                    button.secondary type="submit" { "Change" }
                                }
                            }
                        }
                    } }
                } }
            }
        }
        h2 { "Upload rule files" }
        form method="post" action="/policies/upload" enctype="multipart/form-data" {
            (csrf(s))
            label for="files" { "Rule files" }
            input #files type="file" name="files" accept=".yml,.yaml" multiple required;
            label for="policy" { "Policy" }
            input #policy type="text" name="policy" placeholder=(DEFAULT_POLICY) aria-describedby="policy-hint";
            p.hint id="policy-hint" { "Created if it does not exist. Empty: " (DEFAULT_POLICY) "." }
            label for="upload-mode" { "Mode" }
            (mode_select("upload-mode", RuleMode::Monitor))
            p.hint { "Rules with the same id are replaced. Every rule of every file must be valid, or none is stored." }
            div.actions { button type="submit" { "Upload" } }
        }
    };
    Ok((status, page(s, "Policies", Section::Policies, notice, body)).into_response())
}

pub async fn policies(Session(s): Session, State(st): State<AppState>, q: QueryPairs) -> UiResult {
    policies_page(&st, &s, None, q.one("done"), StatusCode::OK).await
}

fn parse_mode(v: Option<&str>) -> Result<RuleMode, AppError> {
    v.unwrap_or_default()
        .parse()
        .map_err(|e: String| AppError::bad_request("invalid_form", e))
}

pub async fn set_mode(State(st): State<AppState>, form: Posted) -> UiResult {
    let s = &form.session;
    let mode = parse_mode(form.get("mode"))?;
    let rule_id = form
        .get("rule_id")
        .ok_or_else(|| AppError::bad_request("invalid_form", "rule_id is missing"))?;
    let result = st
        .store
        .set_rule_mode(s.deployment.id, rule_id, form.get("policy"), mode)
        .await;
    match result {
        Ok(_) => Ok(done("/policies", "mode")),
        Err(ModeChangeError::Db(e)) => Err(e.into()),
        Err(e) => {
            let message = e.to_string();
            policies_page(&st, s, Some(&message), None, StatusCode::NOT_FOUND).await
        }
    }
}

pub async fn upload(State(st): State<AppState>, form: Posted) -> UiResult {
    let s = &form.session;
    let mode = parse_mode(form.get("mode").or(Some("monitor")))?;
    let policy = form.get("policy");
    let parsed = if form.files.is_empty() {
        Err(AppError::bad_request(
            "invalid_form",
            "Choose at least one rule file.",
        ))
    } else if policy.is_some_and(|p| crate::ids::slugify(p).is_empty()) {
        Err(AppError::bad_request(
            "invalid_form",
            "The policy name needs letters or digits.",
        ))
    } else if let Some(Err(e)) = policy.map(crate::domain::text::check_name) {
        Err(AppError::bad_request(
            "invalid_form",
            format!("Policy: {e}"),
        ))
    } else {
        parse_files(form.files.iter().map(|(_, n, c)| (n.as_str(), c.as_str())))
            .map_err(AppError::from)
    };
    let rules = match parsed {
        Ok(r) => r,
        Err(AppError::Client { message, .. }) => {
            return policies_page(&st, s, Some(&message), None, StatusCode::BAD_REQUEST).await
        }
        Err(e) => return Err(e.into()),
    };
    st.store
        .add_rules(s.deployment.id, policy, mode, &rules)
        .await?;
    Ok(done("/policies", &format!("uploaded-{}", rules.len())))
}

fn mode_description(m: RuleMode) -> &'static str {
    match m {
        RuleMode::Monitor => "Findings are recorded; developers are not told.",
        RuleMode::Comment => "Findings are recorded and commented on pull requests.",
        RuleMode::Block => "Findings are recorded, commented, and fail the CI job.",
    }
}

pub async fn modes(Session(s): Session, State(st): State<AppState>, q: QueryPairs) -> UiResult {
    let all = st.store.list_integrations(s.deployment.id).await?;
    let body = html! {
        p { "Each rule mode can send its new findings, as " code { "semgrep_finding" }
            " notifications, to webhook integrations. Every integration gets every scan as "
            code { "semgrep_scan" } " regardless." }
        @if all.is_empty() {
            (empty("There is no integration to notify yet.", html! {
                p { a href="/settings/integrations/add" { "Add Integration" } " (Settings › Integrations), then Edit a mode here." }
            }))
        }
        div.cards {
            @for m in RuleMode::ALL {
                section.card aria-labelledby={ "mode-" (m.as_str()) } {
                    h2 id={ "mode-" (m.as_str()) } { (m.label()) }
                    p { (mode_description(m)) }
                    @let notified: Vec<_> = all.iter().filter(|i| i.modes.contains(&m)).collect();
                    @if notified.is_empty() {
                        p.hint { "Notifies no integration." }
                    } @else {
                        p { "Notifies:" }
                        ul { @for i in notified { li { (i.name) " " (badge(if i.enabled { "enabled" } else { "disabled" })) } } }
                    }
                    a.button href={ "/policies/modes/" (m.as_str()) } aria-label={ "Edit " (m.label()) " mode" } { "Edit" }
                }
            }
        }
    };
    Ok(page(
        &s,
        "Rule Modes",
        Section::RuleModes,
        q.one("done"),
        body,
    ))
}

pub async fn edit_mode(
    Session(s): Session,
    State(st): State<AppState>,
    Path(m): Path<String>,
) -> UiResult {
    let m = m
        .parse::<RuleMode>()
        .map_err(|e| AppError::client(StatusCode::NOT_FOUND, "not_found", e))?;
    let all = st.store.list_integrations(s.deployment.id).await?;
    let body = html! {
        p { (mode_description(m)) }
        @if all.is_empty() {
            (empty("There is no integration to notify yet.", html! {
                p { a href="/settings/integrations/add" { "Add Integration" } " first, then come back here." }
            }))
        } @else {
            form method="post" action={ "/policies/modes/" (m.as_str()) } {
                (csrf(&s))
                fieldset {
                    legend { "Send " (m.label()) " findings to" }
                    @for i in &all {
                        label.inline {
                            input type="checkbox" name="integration" value=(i.public_id) checked[i.modes.contains(&m)];
                            (i.name) " " code { (i.shown_url()) }
                        }
                        br;
                    }
                }
                div.actions {
                    button type="submit" { "Save" }
                    a.button.secondary href="/policies/modes" { "Cancel" }
                }
            }
        }
    };
    let title = format!("Edit Rule Mode: {}", m.label());
    Ok(page(&s, &title, Section::RuleModes, None, body))
}

pub async fn save_mode(
    State(st): State<AppState>,
    Path(m): Path<String>,
    form: Posted,
) -> UiResult {
    let s = &form.session;
    let m = m
        .parse::<RuleMode>()
        .map_err(|e| AppError::client(StatusCode::NOT_FOUND, "not_found", e))?;
    let all = st.store.list_integrations(s.deployment.id).await?;
    let mut chosen: Vec<IntegrationId> = Vec::new();
    for raw in form.all("integration") {
        match all.iter().find(|i| i.public_id.as_str() == raw) {
            Some(i) => chosen.push(i.public_id.clone()),
            None => {
                return Err(AppError::client(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    format!("no integration {raw}; reload the page"),
                )
                .into())
            }
        }
    }
    let off: Vec<IntegrationId> = all
        .iter()
        .map(|i| i.public_id.clone())
        .filter(|id| !chosen.contains(id))
        .collect();
    for (ids, on) in [(&chosen, true), (&off, false)] {
        if !ids.is_empty() {
            st.store
                .set_mode_notifies(s.deployment.id, m, ids, on)
                .await?;
        }
    }
    Ok(done("/policies/modes", "notify"))
}

pub async fn rule(
    Session(s): Session,
    State(st): State<AppState>,
    Path(rule_id): Path<String>,
) -> UiResult {
    let rules = st.store.list_rules(s.deployment.id).await?;
    let r = rules
        .iter()
        .find(|r| r.rule_id == rule_id)
        .ok_or_else(|| AppError::not_found("rule"))?;
    let decided = mode::effective(&r.memberships);
    let yaml = serde_yaml_ng::to_string(&r.body).unwrap_or_default();
    let body = html! {
        dl.facts {
            dt { "Message" } dd { (text(&r.body, "message")) }
            dt { "Severity" } dd { (text(&r.body, "severity")) }
            dt { "Mode" } dd { @match decided { Some(d) => { (d.mode.label()) " (from " (d.policy.name) ")" }, None => "—" } }
            dt { "Policies" } dd { @for (n, m) in r.memberships.iter().enumerate() {
                @if n > 0 { ", " } (m.policy.name) ": " (m.mode.label())
            } }
        }
        p { a href={ "/findings?rules=" (super::layout::query_value(&rule_id)) } { "Findings of this rule" } " · " a href="/policies" { "Change its mode in Policies" } }
        h2 { "Definition" }
        pre { code { (yaml) } }
    };
    let title = format!("Rule {rule_id}");
    Ok(page(&s, &title, Section::Policies, None, body))
}
