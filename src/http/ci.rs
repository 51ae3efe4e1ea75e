//! The semgrep-ci protocol (`shared/reference/semgrep-ci-protocol.md`): what the real
//! client calls in the `--oss-only` flow, with its retries made harmless.

use super::extract::{parse_json, Auth, JsonBody};
use crate::app::AppState;
use crate::domain::ci::{Complete, CreateScan, Results, ScanError};
use crate::domain::mode::{self, RuleMode};
use crate::error::{AppError, AppResult};
use crate::store::complete::Completion;
use crate::store::messages::Claimant;
use crate::store::scans::{Scan, ScanStatus};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::middleware;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::HashSet;

pub fn router(results_limit: usize) -> Router<AppState> {
    let results_route = post(results)
        .layer(DefaultBodyLimit::max(results_limit))
        .layer(middleware::from_fn(super::declared_length_limit(
            results_limit,
        )));
    let rest = Router::new()
        .route("/api/cli/v2/scans", post(create_scan))
        .route("/api/cli/v2/scans/{unique_id}/config", get(scan_config))
        .route("/api/agent/scans/{scan_id}/complete", post(complete))
        .route("/api/agent/scans/{scan_id}/error", post(scan_error))
        .route("/api/agent/deployments/current", get(current_deployment))
        .route(
            "/api/agent/deployments/deepbinary/{platform}",
            get(deepbinary),
        )
        .route("/failure", post(failure))
        .layer(middleware::from_fn(super::declared_length_limit(
            super::MAX_BODY,
        )));
    Router::new()
        .route("/api/agent/scans/{scan_id}/results", results_route)
        .merge(rest)
}

async fn create_scan(
    auth: Auth,
    State(st): State<AppState>,
    JsonBody(req, _): JsonBody<CreateScan>,
) -> AppResult<Json<Value>> {
    let uid = &req.scan_metadata.unique_id;
    if uid.trim().is_empty() || uid.len() > 200 {
        return Err(AppError::bad_request(
            "invalid_body",
            "scan_metadata.unique_id must be 1 to 200 characters",
        ));
    }
    let repo = &req.project_metadata.repository;
    if repo.trim().is_empty() || repo.len() > 512 {
        return Err(AppError::bad_request(
            "invalid_body",
            "project_metadata.repository must be 1 to 512 characters",
        ));
    }
    let scan = st.store.create_scan(auth.deployment.id, &req).await?;
    tracing::info!(scan.id = %scan.public_id, project = %scan.project, git_ref = %scan.git_ref, "scan started");
    Ok(Json(json!({"info": {
        "id": scan.id,
        "enabled_products": ["sast"],
        "deployment_id": auth.deployment.id,
        "deployment_name": auth.deployment.slug,
    }})))
}

async fn scan_config(
    auth: Auth,
    State(st): State<AppState>,
    Path(unique_id): Path<String>,
) -> AppResult<Json<Value>> {
    let scan = st
        .store
        .scan_by_unique_id(auth.deployment.id, &unique_id)
        .await?
        .ok_or_else(|| AppError::not_found("scan"))?;
    let rules: Vec<Value> = st
        .store
        .list_rules(auth.deployment.id)
        .await?
        .iter()
        .filter_map(|r| {
            let decided_by = mode::effective(&r.memberships)?;
            let url = format!("{}/rules/{}", st.config.public_url, r.rule_id);
            Some(mode::decorate(&r.body, decided_by, &url))
        })
        .collect();
    let (syntactic, match_based) = st.store.triage_ignored_ids(scan.project_id).await?;
    Ok(Json(json!({
        "status": "success",
        "config": {
            "rules": {"rules": rules},
            "triage_ignored_syntactic_ids": syntactic,
            "triage_ignored_match_based_ids": match_based,
        },
        "engine_params": {
            "ignored_files": scan.ignored_files,
            // An ATD assoc list: `[[product, globs]]`, not an object.
            "product_ignored_files": [["sast", scan.ignored_files]],
        },
    })))
}

/// The scan named in the path, inside the caller's deployment.
async fn scan_in_path(st: &AppState, auth: &Auth, id: &str) -> AppResult<Scan> {
    if id.parse::<i64>().is_err() {
        return Err(AppError::not_found("scan"));
    }
    st.store
        .scan(auth.deployment.id, id)
        .await?
        .ok_or_else(|| AppError::not_found("scan"))
}

async fn results(
    auth: Auth,
    State(st): State<AppState>,
    Path(scan_id): Path<String>,
    JsonBody(body, raw): JsonBody<Results>,
) -> AppResult<Json<Value>> {
    let scan = scan_in_path(&st, &auth, &scan_id).await?;
    body.check()
        .map_err(|m| AppError::bad_request("invalid_body", m))?;
    // The upload is kept as sent and applied at /complete, in the transaction that records
    // the outcome: a retried upload replaces the earlier one and nothing is counted twice.
    if !st.store.store_results(scan.id, &raw).await? {
        return Err(AppError::conflict(
            "scan_ended",
            format!(
                "scan {} has already ended; results are no longer accepted",
                scan.id
            ),
        ));
    }
    tracing::info!(scan.id = %scan.public_id, findings = body.findings.len(), "results stored");
    Ok(Json(json!({"errors": [], "task_id": scan.public_id})))
}

async fn complete(
    auth: Auth,
    State(st): State<AppState>,
    Path(scan_id): Path<String>,
    JsonBody(body, _): JsonBody<Complete>,
) -> AppResult<Json<Value>> {
    let scan = scan_in_path(&st, &auth, &scan_id).await?;
    if !matches!(scan.status, ScanStatus::Running | ScanStatus::Completed) {
        return Err(ended(&scan, scan.status));
    }
    // Rules in Block mode now: a mode changed during the scan still blocks it. Without
    // uploaded results there is nothing to block.
    let block_rules: HashSet<String> = if scan.has_results {
        st.store
            .list_rules(auth.deployment.id)
            .await?
            .into_iter()
            .filter(|r| mode::effective(&r.memberships).is_some_and(|m| m.mode == RuleMode::Block))
            .map(|r| r.rule_id)
            .collect()
    } else {
        HashSet::new()
    };
    let claimant = st.handoff.as_ref().map(|h| h as &dyn Claimant);
    match st
        .store
        .complete_scan(&scan, body.exit_code, &body.stats, &block_rules, claimant)
        .await?
    {
        Completion::Completed {
            notified,
            reply,
            queued,
        } => {
            // What was claimed goes straight to this process's worker; a worker claims
            // the rest (lanes without room, or with --no-deliver another process's).
            if let Some(h) = &st.handoff {
                h.hand(queued.claimed);
            }
            if queued.pending > 0 {
                st.wake.notify_one();
            }
            tracing::info!(scan.id = %scan.public_id, notified, "scan completed");
            Ok(Json(reply))
        }
        Completion::AlreadyEnded(ScanStatus::Completed, reply) => {
            Ok(Json(reply.unwrap_or_else(|| json!({"success": true}))))
        }
        Completion::AlreadyEnded(other, _) => Err(ended(&scan, other)),
    }
}

fn ended(scan: &Scan, status: ScanStatus) -> AppError {
    AppError::conflict(
        "scan_ended",
        format!("scan {} ended as {}", scan.id, status.as_str()),
    )
}

async fn scan_error(
    auth: Auth,
    State(st): State<AppState>,
    Path(scan_id): Path<String>,
    JsonBody(body, _): JsonBody<ScanError>,
) -> AppResult<Json<Value>> {
    let scan = scan_in_path(&st, &auth, &scan_id).await?;
    let stderr: String = body.stderr.chars().take(65_536).collect();
    if st
        .store
        .end_scan(
            &scan,
            ScanStatus::Error,
            Some(body.exit_code),
            Some(&stderr),
        )
        .await?
    {
        st.wake.notify_one();
        tracing::info!(scan.id = %scan.public_id, exit_code = body.exit_code, "scan failed");
    }
    Ok(Json(json!({"success": true})))
}

async fn current_deployment(auth: Auth) -> Json<Value> {
    let d = auth.deployment;
    Json(json!({"deployment": {
        "id": d.id, "name": d.slug, "slug": d.slug, "display_name": d.name,
    }}))
}

async fn deepbinary() -> AppError {
    AppError::client(
        StatusCode::FORBIDDEN,
        "pro_engine_unavailable",
        "scanhook does not serve the Semgrep Pro engine: run `semgrep ci --oss-only`",
    )
}

/// Fail-open reports (`SEMGREP_FAIL_OPEN_URL`): kept so that silent failures are visible.
async fn failure(
    auth: Auth,
    State(st): State<AppState>,
    body: axum::body::Bytes,
) -> AppResult<Json<Value>> {
    let report: Value = parse_json(&body)?;
    let request_id = report.get("request_id").and_then(Value::as_str);
    let exit_code = report.get("exit_code").and_then(Value::as_i64);
    st.store
        .record_failure(
            auth.deployment.id,
            request_id,
            exit_code,
            &report.to_string(),
        )
        .await?;
    tracing::warn!(
        request_id,
        exit_code,
        "semgrep ci reported a fail-open failure"
    );
    Ok(Json(json!({"success": true})))
}
