//! A compatible subset of Semgrep's public v1 API (so scripts written for the platform
//! work), plus per-scan views: the findings a scan changed and the webhook objects it made.
//! Every route here needs an admin token; deployments are named by slug or numeric id.

use super::extract::Admin;
use crate::api::v1::{
    DeploymentList, DeploymentOut, FindingList, FindingOut, Link, ProjectList, ProjectOut,
    ScanList, ScanOut, ScanWebhooks, SearchIn, TriageFailure, TriageIn, TriageOut, TriagedIds,
};
use crate::api::{AdminRefusals, Refusals};
use crate::clock;
use crate::domain::findings::{Change, FindingFilter, TriageState};
use crate::domain::outbox::Claimant;
use crate::domain::query::QueryPairs;
use crate::domain::scan::ScanStatus;
use crate::edge::{JsonBody, Path};
use crate::error::{AppError, AppResult};
use crate::ids::{FindingId, ScanId, ScanKey};
use crate::state::AppState;
use crate::store::deployments::Deployment;
use crate::store::findings::TriageChange;
use crate::store::scans::{Scan, ScanFilter};
use axum::extract::State;
use axum::Json;
use serde_json::value::RawValue;
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_deployments))
        .routes(routes!(list_projects))
        .routes(routes!(list_findings))
        .routes(routes!(triage_findings))
        .routes(routes!(get_scan))
        .routes(routes!(scan_findings))
        .routes(routes!(scan_webhooks))
        .routes(routes!(search_scans))
}

/// The path's deployment must be the token's: other deployments do not exist for it.
fn same_deployment(admin: &Admin, dep: &str) -> AppResult<Deployment> {
    let d = &admin.0;
    if dep == d.slug || dep.parse::<i64>().ok() == Some(d.id.0) {
        Ok(d.clone())
    } else {
        Err(AppError::not_found("deployment"))
    }
}

/// The token's deployment.
#[utoipa::path(get, path = "/api/v1/deployments", tag = "v1", security(("bearer" = [])),
    responses((status = 200, description = "The deployment", body = DeploymentList), Refusals, AdminRefusals))]
async fn list_deployments(admin: Admin, State(st): State<AppState>) -> Json<DeploymentList> {
    let d = &admin.0;
    Json(DeploymentList {
        deployments: vec![DeploymentOut {
            id: d.id,
            name: d.name.clone(),
            slug: d.slug.clone(),
            findings: Link {
                url: format!(
                    "{}/api/v1/deployments/{}/findings",
                    st.config.public_url, d.slug
                ),
            },
        }],
    })
}

/// Projects (repositories).
#[utoipa::path(get, path = "/api/v1/deployments/{deployment}/projects", tag = "v1",
    security(("bearer" = [])),
    params(("deployment" = String, Path, description = "The deployment's slug or numeric id")),
    responses((status = 200, description = "Projects by name", body = ProjectList), Refusals, AdminRefusals))]
async fn list_projects(
    admin: Admin,
    State(st): State<AppState>,
    Path(dep): Path<String>,
) -> AppResult<Json<ProjectList>> {
    let d = same_deployment(&admin, &dep)?;
    let projects = st.store.list_projects(d.id).await?;
    Ok(Json(ProjectList {
        projects: projects.iter().map(ProjectOut::from).collect(),
    }))
}

/// Findings, newest first.
#[utoipa::path(get, path = "/api/v1/deployments/{deployment}/findings", tag = "v1",
    security(("bearer" = [])),
    params(
        ("deployment" = String, Path, description = "The deployment's slug or numeric id"),
        ("repos" = Option<String>, Query, description = "Project names, comma-separated"),
        ("ref" = Option<String>, Query, description = "Only findings on this ref"),
        ("status" = Option<String>, Query, description = "open, fixed, ignored, removed, reviewing, fixing, provisionally_ignored (comma-separated; default: all but removed)"),
        ("severities" = Option<String>, Query, description = "low, medium, high, critical (comma-separated)"),
        ("rules" = Option<String>, Query, description = "Rule ids, comma-separated"),
        ("policies" = Option<String>, Query, description = "Policy slugs, comma-separated"),
        ("modes" = Option<String>, Query, description = "monitor, comment, block (comma-separated)"),
        ("since" = Option<String>, Query, description = "Relevant since: epoch seconds or RFC 3339"),
        ("dedup" = Option<bool>, Query, description = "One row per identity across refs"),
        ("page" = Option<i64>, Query, minimum = 0, maximum = 1000000, description = "Page number, from 0"),
        ("page_size" = Option<i64>, Query, minimum = 1, maximum = 10000, description = "Findings per page (default 100)"),
    ),
    responses((status = 200, description = "A page of findings", body = FindingList), Refusals, AdminRefusals))]
async fn list_findings(
    admin: Admin,
    State(st): State<AppState>,
    Path(dep): Path<String>,
    q: QueryPairs,
) -> AppResult<Json<FindingList>> {
    let d = same_deployment(&admin, &dep)?;
    let filter = FindingFilter::from_query(&q)?;
    let rows = st.store.list_findings(d.id, &filter).await?;
    Ok(Json(FindingList {
        findings: rows.iter().map(FindingOut::from).collect(),
    }))
}

/// Triage findings; follows each finding across refs.
#[utoipa::path(post, path = "/api/v1/deployments/{deployment}/triage", tag = "v1",
    security(("bearer" = [])), request_body = TriageIn,
    params(("deployment" = String, Path, description = "The deployment's slug or numeric id")),
    responses((status = 200, description = "What was triaged and what was not found", body = TriageOut), Refusals, AdminRefusals))]
async fn triage_findings(
    admin: Admin,
    State(st): State<AppState>,
    Path(dep): Path<String>,
    JsonBody(body, _): JsonBody<TriageIn>,
) -> AppResult<Json<TriageOut>> {
    let d = same_deployment(&admin, &dep)?;
    if body.issue_type.as_deref().is_some_and(|t| t != "sast") {
        return Err(AppError::bad_request(
            "invalid_body",
            "only issue_type `sast` is supported",
        ));
    }
    if !TriageState::SETTABLE.contains(&body.new_triage_state) {
        let names: Vec<&str> = TriageState::SETTABLE.iter().map(|s| s.as_str()).collect();
        return Err(AppError::bad_request(
            "invalid_body",
            format!("new_triage_state must be one of {}", names.join(", ")),
        ));
    }
    if body.issue_ids.is_empty() || body.issue_ids.len() > 10_000 {
        return Err(AppError::bad_request(
            "invalid_body",
            "issue_ids must list 1 to 10000 finding ids",
        ));
    }
    let change = TriageChange {
        state: body.new_triage_state,
        reason: body.new_triage_reason.as_deref(),
        comment: body.new_note.as_deref(),
    };
    let claimant = st.handoff.as_ref().map(|h| h as &dyn Claimant);
    let triaged = st
        .store
        .triage(d.id, &body.issue_ids, &change, claimant)
        .await?;
    st.filter_failures(&triaged.failures);
    st.queued(triaged.queued);
    let found = triaged.found;
    let missing: Vec<FindingId> = body
        .issue_ids
        .iter()
        .copied()
        .filter(|i| found.binary_search(i).is_err())
        .collect();
    let failed = if missing.is_empty() {
        vec![]
    } else {
        vec![TriageFailure {
            issue_ids: missing,
            error: "not found".into(),
        }]
    };
    Ok(Json(TriageOut {
        succeeded: vec![TriagedIds { issue_ids: found }],
        failed,
    }))
}

async fn load_scan(st: &AppState, admin: &Admin, dep: &str, scan_id: &str) -> AppResult<Scan> {
    let d = same_deployment(admin, dep)?;
    let key: ScanKey = scan_id.parse().map_err(|_| AppError::not_found("scan"))?;
    st.store
        .scan(d.id, &key)
        .await?
        .ok_or_else(|| AppError::not_found("scan"))
}

/// One scan.
#[utoipa::path(get, path = "/api/v1/deployments/{deployment}/scan/{scan_id}", tag = "v1",
    security(("bearer" = [])),
    params(
        ("deployment" = String, Path, description = "The deployment's slug or numeric id"),
        ("scan_id" = String, Path, description = "The scan's numeric or public id"),
    ),
    responses((status = 200, description = "The scan", body = ScanOut), Refusals, AdminRefusals))]
async fn get_scan(
    admin: Admin,
    State(st): State<AppState>,
    Path((dep, scan_id)): Path<(String, String)>,
) -> AppResult<Json<ScanOut>> {
    let s = load_scan(&st, &admin, &dep, &scan_id).await?;
    Ok(Json(ScanOut::from(&s)))
}

/// The findings a scan changed.
#[utoipa::path(get, path = "/api/v1/deployments/{deployment}/scan/{scan_id}/findings", tag = "v1",
    security(("bearer" = [])),
    params(
        ("deployment" = String, Path, description = "The deployment's slug or numeric id"),
        ("scan_id" = String, Path, description = "The scan's numeric or public id"),
        ("change" = Option<String>, Query, pattern = "^(all|opened|notified|new|regression|reopened|from_other_ref|fixed|ignored|removed|nosemgrep)$", description = "all (default), opened, notified, or one change: new, regression, reopened, from_other_ref, fixed, ignored, removed, nosemgrep"),
    ),
    responses((status = 200, description = "The findings, each with its `scan_change`", body = FindingList), Refusals, AdminRefusals))]
async fn scan_findings(
    admin: Admin,
    State(st): State<AppState>,
    Path((dep, scan_id)): Path<(String, String)>,
    q: QueryPairs,
) -> AppResult<Json<FindingList>> {
    let s = load_scan(&st, &admin, &dep, &scan_id).await?;
    let (changes, notified): (Vec<Change>, bool) = match q.given("change").unwrap_or("all") {
        "all" => (vec![], false),
        "opened" => (Change::OPENINGS.to_vec(), false),
        "notified" => (vec![], true),
        other => match other.parse::<Change>() {
            Ok(c) => (vec![c], false),
            Err(_) => {
                return Err(AppError::bad_request(
                    "invalid_query",
                    format!(
                        "unknown change {other:?}: use all, opened, notified or one of {}",
                        Change::names()
                    ),
                ))
            }
        },
    };
    let rows = st
        .store
        .scan_findings(s.deployment_id, s.id, &changes, notified)
        .await?;
    Ok(Json(FindingList {
        findings: rows.iter().map(FindingOut::from).collect(),
    }))
}

/// The `semgrep_scan` object and `semgrep_finding` array the scan produced (null while the
/// scan runs).
#[utoipa::path(get, path = "/api/v1/deployments/{deployment}/scan/{scan_id}/webhooks", tag = "v1",
    security(("bearer" = [])),
    params(
        ("deployment" = String, Path, description = "The deployment's slug or numeric id"),
        ("scan_id" = String, Path, description = "The scan's numeric or public id"),
    ),
    responses((status = 200, description = "The two objects as stored", body = ScanWebhooks), Refusals, AdminRefusals))]
async fn scan_webhooks(
    admin: Admin,
    State(st): State<AppState>,
    Path((dep, scan_id)): Path<(String, String)>,
) -> AppResult<Json<ScanWebhooks>> {
    let s = load_scan(&st, &admin, &dep, &scan_id).await?;
    let semgrep_scan = s
        .scan_payload
        .map(|v| serde_json::value::to_raw_value(&v))
        .transpose()
        .map_err(|e| AppError::Internal(e.into()))?;
    // Stored as the JSON this server wrote: passed on as it is.
    let semgrep_finding = st
        .store
        .finding_payload(s.id)
        .await?
        .map(RawValue::from_string)
        .transpose()
        .map_err(|e| AppError::Internal(e.into()))?;
    Ok(Json(ScanWebhooks {
        semgrep_scan,
        semgrep_finding,
    }))
}

/// Search scans, newest first.
#[utoipa::path(post, path = "/api/v1/deployments/{deployment}/scans/search", tag = "v1",
    security(("bearer" = [])), request_body = SearchIn,
    params(("deployment" = String, Path, description = "The deployment's slug or numeric id")),
    responses((status = 200, description = "A page of scans", body = ScanList), Refusals, AdminRefusals))]
async fn search_scans(
    admin: Admin,
    State(st): State<AppState>,
    Path(dep): Path<String>,
    JsonBody(body, _): JsonBody<SearchIn>,
) -> AppResult<Json<ScanList>> {
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
            c.parse::<ScanId>().map_err(|_| {
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
            .map(|s| {
                ScanStatus::parse_platform(s).map_err(|e| AppError::bad_request("invalid_body", e))
            })
            .collect::<AppResult<_>>()?,
        before_id,
        limit,
    };
    let scans = st.store.list_scans(d.id, &filter).await?;
    let cursor = (scans.len() as i64 == limit)
        .then(|| scans.last().map(|s| s.id.to_string()))
        .flatten();
    Ok(Json(ScanList {
        scans: scans.iter().map(ScanOut::from).collect(),
        cursor,
    }))
}
