//! A compatible subset of Semgrep's public v1 API (so scripts written for the platform
//! work), plus per-scan views: the findings a scan changed and the webhook objects it made.
//! Every route here needs an admin token; deployments are named by slug or numeric id.

use super::extract::{Admin, JsonBody, QueryPairs};
use crate::app::AppState;
use crate::clock::{self, iso};
use crate::error::{AppError, AppResult};
use crate::store::deployments::Deployment;
use crate::store::findings::{FindingFilter, FindingRow};
use crate::store::scans::{Scan, ScanFilter, ScanStatus};
use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/deployments", get(deployments))
        .route("/api/v1/deployments/{dep}/projects", get(projects))
        .route("/api/v1/deployments/{dep}/findings", get(findings))
        .route("/api/v1/deployments/{dep}/triage", post(triage))
        .route("/api/v1/deployments/{dep}/scan/{scan_id}", get(scan))
        .route(
            "/api/v1/deployments/{dep}/scan/{scan_id}/findings",
            get(scan_findings),
        )
        .route(
            "/api/v1/deployments/{dep}/scan/{scan_id}/webhooks",
            get(scan_webhooks),
        )
        .route("/api/v1/deployments/{dep}/scans/search", post(search_scans))
}

/// The path's deployment must be the token's: other deployments do not exist for it.
fn same_deployment(admin: &Admin, dep: &str) -> AppResult<Deployment> {
    let d = &admin.0;
    if dep == d.slug || dep.parse::<i64>().ok() == Some(d.id) {
        Ok(d.clone())
    } else {
        Err(AppError::not_found("deployment"))
    }
}

async fn deployments(admin: Admin, State(st): State<AppState>) -> Json<Value> {
    let d = &admin.0;
    Json(json!({"deployments": [{
        "id": d.id, "name": d.name, "slug": d.slug,
        "findings": {"url": format!("{}/api/v1/deployments/{}/findings", st.config.public_url, d.slug)},
    }]}))
}

async fn projects(
    admin: Admin,
    State(st): State<AppState>,
    Path(dep): Path<String>,
) -> AppResult<Json<Value>> {
    let d = same_deployment(&admin, &dep)?;
    let projects: Vec<Value> = st
        .store
        .list_projects(d.id)
        .await?
        .into_iter()
        .map(|p| {
            json!({
                "id": p.id, "name": p.name, "url": p.repo_url, "tags": [],
                "created_at": iso(p.created_at), "latest_scan_at": p.last_scan_at.map(iso),
            })
        })
        .collect();
    Ok(Json(json!({"projects": projects})))
}

/// Severity names of the API; the CLI's integers are 0 (info/low) to 3 (critical).
pub fn severity_name(s: i64) -> &'static str {
    match s {
        0 => "low",
        1 => "medium",
        2 => "high",
        3 => "critical",
        _ => "experiment",
    }
}

fn parse_severity(s: &str) -> AppResult<i64> {
    Ok(match s.to_ascii_lowercase().as_str() {
        "low" | "info" | "inventory" => 0,
        "medium" | "warning" => 1,
        "high" | "error" => 2,
        "critical" => 3,
        "experiment" => 4,
        other => {
            return Err(AppError::bad_request(
                "invalid_query",
                format!("unknown severity {other:?}: use low, medium, high or critical"),
            ))
        }
    })
}

const STATUSES: &[&str] = &[
    "open",
    "fixed",
    "ignored",
    "removed",
    "reviewing",
    "fixing",
    "provisionally_ignored",
];

async fn findings(
    admin: Admin,
    State(st): State<AppState>,
    Path(dep): Path<String>,
    q: QueryPairs,
) -> AppResult<Json<Value>> {
    let d = same_deployment(&admin, &dep)?;
    let filter = finding_filter(&q)?;
    let rows = st.store.list_findings(d.id, &filter).await?;
    Ok(Json(
        json!({"findings": rows.iter().map(finding_json).collect::<Vec<_>>()}),
    ))
}

/// The findings filters of a query string (`repos`, `ref`, `status`, `severities`, `rules`,
/// `policies`, `modes`, `since`, `dedup`, `page`, `page_size`), or a 400 naming the bad one.
pub fn finding_filter(q: &QueryPairs) -> AppResult<FindingFilter> {
    let statuses = q.list("status");
    if let Some(bad) = statuses.iter().find(|s| !STATUSES.contains(&s.as_str())) {
        return Err(AppError::bad_request(
            "invalid_query",
            format!("unknown status {bad:?}: use one of {}", STATUSES.join(", ")),
        ));
    }
    let since = q
        .one("since")
        .map(|s| {
            clock::parse_since(s).ok_or_else(|| {
                AppError::bad_request("invalid_query", "`since` must be epoch seconds or RFC 3339")
            })
        })
        .transpose()?;
    let filter = FindingFilter {
        repos: q.list("repos"),
        git_ref: q.one("ref").map(str::to_string),
        statuses,
        severities: q
            .list("severities")
            .iter()
            .map(|s| parse_severity(s))
            .collect::<AppResult<_>>()?,
        rules: q.list("rules"),
        policies: q.list("policies"),
        modes: q.list("modes"),
        since,
        dedup: q.bool("dedup")?.unwrap_or(false),
        page: q.int("page")?.unwrap_or(0),
        page_size: q.int("page_size")?.unwrap_or(100),
    };
    if filter.page < 0 || !(1..=10_000).contains(&filter.page_size) {
        return Err(AppError::bad_request(
            "invalid_query",
            "`page` must be ≥ 0 and `page_size` 1 to 10000",
        ));
    }
    Ok(filter)
}

/// A finding in the shape of the platform's `SastFinding`.
pub fn finding_json(f: &FindingRow) -> Value {
    let meta = &f.metadata;
    let list = |k: &str| match meta.get(k) {
        Some(Value::Array(a)) => Value::Array(a.clone()),
        Some(Value::String(s)) => json!([s]),
        _ => json!([]),
    };
    let state = match f.state.as_str() {
        "open" => "unresolved",
        "ignored" => "muted",
        other => other,
    };
    let mut v = json!({
        "id": f.id,
        "ref": f.git_ref,
        "first_seen_scan_id": f.first_seen_scan_id,
        "syntactic_id": f.syntactic_id,
        "match_based_id": f.match_based_id,
        "state": state,
        "triage_state": f.triage_state,
        "status": f.status,
        "triage_reason": f.triage_reason,
        "triage_comment": f.triage_comment,
        "triaged_at": f.triaged_at.map(iso),
        "created_at": iso(f.created_at),
        "relevant_since": iso(f.relevant_since),
        "state_updated_at": iso(f.state_updated_at),
        "severity": severity_name(f.severity),
        "confidence": meta.get("confidence").and_then(Value::as_str).map(str::to_lowercase),
        "categories": list("category"),
        "mode": f.mode,
        "repository": {"name": f.project, "url": f.repo_url},
        "location": {
            "file_path": f.path, "line": f.line, "column": f.column,
            "end_line": f.end_line, "end_column": f.end_column,
        },
        "rule": {
            "name": f.rule_id,
            "message": f.message,
            "category": meta.get("category"),
            "confidence": meta.get("confidence"),
            "cwe_names": list("cwe"),
            "owasp_names": list("owasp"),
            "subcategories": list("subcategory"),
            "vulnerability_classes": list("vulnerability_class"),
        },
        "rule_name": f.rule_id,
        "rule_message": f.message,
        "sourcing_policy": meta.get("semgrep.policy"),
    });
    if let Some(change) = &f.change {
        v["scan_change"] = json!({"change": change, "notify": f.notify});
    }
    v
}

#[derive(Deserialize)]
struct TriageBody {
    #[serde(default)]
    issue_type: Option<String>,
    issue_ids: Vec<i64>,
    new_triage_state: String,
    #[serde(default)]
    new_triage_reason: Option<String>,
    #[serde(default)]
    new_note: Option<String>,
}

const TRIAGE_STATES: &[&str] = &[
    "ignored",
    "reviewing",
    "fixing",
    "reopened",
    "provisionally_ignored",
];

async fn triage(
    admin: Admin,
    State(st): State<AppState>,
    Path(dep): Path<String>,
    JsonBody(body, _): JsonBody<TriageBody>,
) -> AppResult<Json<Value>> {
    let d = same_deployment(&admin, &dep)?;
    if body.issue_type.as_deref().is_some_and(|t| t != "sast") {
        return Err(AppError::bad_request(
            "invalid_body",
            "only issue_type `sast` is supported",
        ));
    }
    if !TRIAGE_STATES.contains(&body.new_triage_state.as_str()) {
        return Err(AppError::bad_request(
            "invalid_body",
            format!(
                "new_triage_state must be one of {}",
                TRIAGE_STATES.join(", ")
            ),
        ));
    }
    if body.issue_ids.is_empty() || body.issue_ids.len() > 10_000 {
        return Err(AppError::bad_request(
            "invalid_body",
            "issue_ids must list 1 to 10000 finding ids",
        ));
    }
    let found = st
        .store
        .triage(
            d.id,
            &body.issue_ids,
            &body.new_triage_state,
            body.new_triage_reason.as_deref(),
            body.new_note.as_deref(),
        )
        .await?;
    let missing: Vec<i64> = body
        .issue_ids
        .iter()
        .copied()
        .filter(|i| found.binary_search(i).is_err())
        .collect();
    let failed = if missing.is_empty() {
        json!([])
    } else {
        json!([{"issue_ids": missing, "error": "not found"}])
    };
    Ok(Json(
        json!({"succeeded": [{"issue_ids": found}], "failed": failed}),
    ))
}

async fn load_scan(st: &AppState, admin: &Admin, dep: &str, scan_id: &str) -> AppResult<Scan> {
    let d = same_deployment(admin, dep)?;
    st.store
        .scan(d.id, scan_id)
        .await?
        .ok_or_else(|| AppError::not_found("scan"))
}

/// A scan in the shape of the platform's scan object, plus scanhook's counts.
pub fn scan_json(s: &Scan) -> Value {
    json!({
        "id": s.id,
        "public_id": s.public_id,
        "deployment_id": s.deployment_id,
        "repository_id": s.project_id,
        "repository": s.project,
        "branch": s.git_ref,
        "is_full_scan": s.is_full_scan,
        "status": s.status,
        "started_at": iso(s.started_at),
        "completed_at": s.completed_at.map(iso),
        "exit_code": s.exit_code,
        "enabled_products": ["sast"],
        "cli_version": s.cli_version,
        "stats": s.stats,
        "counts": {
            "findings": s.n_findings, "opened": s.n_opened,
            "fixed": s.n_fixed, "notified": s.n_notified,
        },
        "meta": s.meta,
    })
}

async fn scan(
    admin: Admin,
    State(st): State<AppState>,
    Path((dep, scan_id)): Path<(String, String)>,
) -> AppResult<Json<Value>> {
    Ok(Json(scan_json(
        &load_scan(&st, &admin, &dep, &scan_id).await?,
    )))
}

/// `?change=opened|new|regression|reopened|fixed|ignored|removed|nosemgrep|notified`.
async fn scan_findings(
    admin: Admin,
    State(st): State<AppState>,
    Path((dep, scan_id)): Path<(String, String)>,
    q: QueryPairs,
) -> AppResult<Json<Value>> {
    let s = load_scan(&st, &admin, &dep, &scan_id).await?;
    let (changes, notified): (Vec<&str>, bool) = match q.one("change").unwrap_or("all") {
        "all" => (vec![], false),
        "opened" => (vec!["new", "regression", "reopened", "from_other_ref"], false),
        "notified" => (vec![], true),
        c @ ("new" | "regression" | "reopened" | "from_other_ref" | "fixed" | "ignored" | "removed" | "nosemgrep") => {
            (vec![c], false)
        }
        other => {
            return Err(AppError::bad_request(
                "invalid_query",
                format!("unknown change {other:?}: use all, opened, fixed, notified, ignored, removed, nosemgrep, new, regression or reopened"),
            ))
        }
    };
    let rows = st
        .store
        .scan_findings(s.deployment_id, s.id, &changes, notified)
        .await?;
    Ok(Json(
        json!({"findings": rows.iter().map(finding_json).collect::<Vec<_>>()}),
    ))
}

/// The `semgrep_scan` object and the `semgrep_finding` array the scan produced (null
/// while the scan runs).
async fn scan_webhooks(
    admin: Admin,
    State(st): State<AppState>,
    Path((dep, scan_id)): Path<(String, String)>,
) -> AppResult<Json<Value>> {
    let s = load_scan(&st, &admin, &dep, &scan_id).await?;
    Ok(Json(json!({
        "semgrep_scan": s.scan_payload,
        "semgrep_finding": s.finding_payload,
    })))
}

#[derive(Deserialize, Default)]
struct SearchBody {
    #[serde(default)]
    repository_id: Option<i64>,
    #[serde(default)]
    repository: Option<String>,
    #[serde(default)]
    branch: Option<String>,
    #[serde(default)]
    is_full_scan: Option<bool>,
    #[serde(default)]
    since: Option<Value>,
    #[serde(default)]
    statuses: Vec<String>,
    #[serde(default)]
    cursor: Option<String>,
    #[serde(default)]
    limit: Option<i64>,
}

fn scan_status(s: &str) -> AppResult<ScanStatus> {
    Ok(match s.trim_start_matches("SCAN_STATUS_").to_ascii_lowercase().as_str() {
        "running" | "pending" => ScanStatus::Running,
        "completed" => ScanStatus::Completed,
        "error" => ScanStatus::Error,
        "never_finished" | "abandoned" => ScanStatus::Abandoned,
        _ => {
            return Err(AppError::bad_request(
                "invalid_body",
                format!("unknown scan status {s:?}: use SCAN_STATUS_RUNNING, _COMPLETED, _ERROR or _NEVER_FINISHED"),
            ))
        }
    })
}

async fn search_scans(
    admin: Admin,
    State(st): State<AppState>,
    Path(dep): Path<String>,
    JsonBody(body, _): JsonBody<SearchBody>,
) -> AppResult<Json<Value>> {
    let d = same_deployment(&admin, &dep)?;
    let limit = body.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(AppError::bad_request(
            "invalid_body",
            "limit must be 1 to 500",
        ));
    }
    let since = match &body.since {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => n.as_f64().map(|s| (s * 1e6) as i64),
        Some(Value::String(s)) => Some(clock::parse_since(s).ok_or_else(|| {
            AppError::bad_request("invalid_body", "since must be epoch seconds or RFC 3339")
        })?),
        Some(_) => {
            return Err(AppError::bad_request(
                "invalid_body",
                "since must be a number or a string",
            ))
        }
    };
    let before_id = body
        .cursor
        .as_deref()
        .map(|c| {
            c.parse::<i64>().map_err(|_| {
                AppError::bad_request("invalid_body", "cursor is not one this server gave")
            })
        })
        .transpose()?;
    let filter = ScanFilter {
        project: body.repository.clone(),
        project_id: body.repository_id,
        git_ref: body.branch.clone(),
        is_full_scan: body.is_full_scan,
        since,
        statuses: body
            .statuses
            .iter()
            .map(|s| scan_status(s))
            .collect::<AppResult<_>>()?,
        before_id,
        limit,
    };
    let scans = st.store.list_scans(d.id, &filter).await?;
    let cursor = (scans.len() as i64 == limit)
        .then(|| scans.last().map(|s| s.id.to_string()))
        .flatten();
    Ok(Json(json!({
        "scans": scans.iter().map(scan_json).collect::<Vec<_>>(),
        "cursor": cursor,
    })))
}
