//! The semgrep-ci protocol (`shared/reference/semgrep-ci-protocol.md`): what the real
//! client calls in the `--oss-only` flow, with its retries made harmless.

use super::extract::Auth;
use crate::api::ci::{
    ConfigBody, CurrentDeployment, DeploymentInfo, EngineParams, ResultsAccepted, RuleSet,
    ScanConfig, ScanCreated, ScanInfo,
};
use crate::api::{Conflict, Refusals, Success};
use crate::domain::ci::{Complete, CompleteReply, CreateScan, Results, ScanError, MAX_STATS_DEPTH};
use crate::domain::mode::{self, RuleMode};
use crate::domain::outbox::Claimant;
use crate::domain::scan::ScanStatus;
use crate::edge::{declared_length, parse_json, parse_json_in, read_body, JsonBody, Path};
use crate::error::{AppError, AppResult, ErrorBody};
use crate::ids::ScanId;
use crate::state::AppState;
use crate::store::complete::Completion;
use crate::store::kept::keep;
use crate::store::scans::Scan;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use axum::middleware;
use axum::Json;
use serde_json::Value;
use std::collections::HashSet;
use std::sync::Arc;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Largest fail-open report (a traceback and a little context; real ones are a few KiB).
pub const MAX_FAILURE_REPORT: usize = 256 * 1024;

pub fn router(results_limit: usize) -> OpenApiRouter<AppState> {
    let results = OpenApiRouter::new()
        .routes(routes!(upload_results))
        .layer(DefaultBodyLimit::max(results_limit))
        .layer(middleware::from_fn(super::declared_length_limit(
            results_limit,
        )));
    let rest = OpenApiRouter::new()
        .routes(routes!(create_scan))
        .routes(routes!(scan_config))
        .routes(routes!(complete_scan))
        .routes(routes!(scan_error))
        .routes(routes!(current_deployment))
        .routes(routes!(deepbinary))
        .layer(middleware::from_fn(super::declared_length_limit(
            super::MAX_BODY,
        )));
    // The handler reads its body through `read_body`, which holds it to the same limit
    // whether or not a length is declared.
    let failure = OpenApiRouter::new()
        .routes(routes!(fail_open_report))
        .layer(middleware::from_fn(super::declared_length_limit(
            MAX_FAILURE_REPORT,
        )));
    results.merge(rest).merge(failure)
}

/// Start a scan (semgrep ci). Idempotent on `scan_metadata.unique_id`.
#[utoipa::path(post, path = "/api/cli/v2/scans", tag = "semgrep-ci",
    security(("bearer" = [])), request_body = CreateScan,
    responses(
        (status = 200, description = "The scan, new or the one with this unique_id", body = ScanCreated),
        (status = 403, description = "The token's project scope does not include this repository", body = ErrorBody),
        (status = 409, description = "`unique_id_conflict`: the unique_id is already the id of another repository's scan", body = ErrorBody),
        Refusals,
    ))]
async fn create_scan(
    auth: Auth,
    State(st): State<AppState>,
    JsonBody(req, _): JsonBody<CreateScan>,
) -> AppResult<Json<ScanCreated>> {
    req.check()
        .map_err(|e| AppError::bad_request("invalid_body", e))?;
    let repo = &req.project_metadata.repository;
    if !auth.reaches(repo) {
        return Err(AppError::forbidden(format!(
            "this token may not scan {repo:?}: it reaches only repositories matching {}",
            auth.repos
                .as_ref()
                .map(|g| g.patterns().join(", "))
                .unwrap_or_default()
        )));
    }
    let scan = st
        .store
        .create_scan(auth.deployment.id, &req, "semgrep")
        .await?;
    if scan.project != *repo {
        // The id is taken by another project's scan. A token that cannot reach that
        // project learns nothing of it; one that can is told why.
        let uid = &req.scan_metadata.unique_id;
        if !auth.reaches(&scan.project) {
            return Err(AppError::client(
                StatusCode::NOT_FOUND,
                "not_found",
                format!(
                    "scan_metadata.unique_id {uid:?} cannot be used for {repo:?} and names no scan this token reaches; start the scan with a new unique_id"
                ),
            ));
        }
        return Err(AppError::conflict(
            "unique_id_conflict",
            format!(
                "scan_metadata.unique_id {uid:?} is already the id of a scan of {:?}; a retry must name the same repository, a new scan needs a new unique_id",
                scan.project
            ),
        ));
    }
    tracing::info!(scan.id = %scan.public_id, project = %scan.project, git_ref = %scan.git_ref, "scan started");
    Ok(Json(ScanCreated {
        info: ScanInfo {
            id: scan.id,
            enabled_products: vec!["sast".into()],
            deployment_id: auth.deployment.id,
            deployment_name: auth.deployment.slug,
        },
    }))
}

/// Rules for a scan, each with its mode in `dev.semgrep.actions`.
#[utoipa::path(get, path = "/api/cli/v2/scans/{unique_id}/config", tag = "semgrep-ci",
    security(("bearer" = [])),
    params(("unique_id" = String, Path, description = "The scan's `scan_metadata.unique_id`")),
    responses((status = 200, description = "The scan config", body = ScanConfig), Refusals))]
async fn scan_config(
    auth: Auth,
    State(st): State<AppState>,
    Path(unique_id): Path<String>,
) -> AppResult<Json<ScanConfig>> {
    let scan = st
        .store
        .scan_facts_by_unique_id(auth.deployment.id, &unique_id)
        .await?
        .filter(|s| auth.reaches(&s.project))
        .ok_or_else(|| AppError::not_found("scan"))?;
    let rules: Vec<Value> = st
        .store
        .cached_rules(auth.deployment.id)
        .await?
        .iter()
        .filter(|r| r.served)
        .filter_map(|r| {
            let decided_by = mode::effective(&r.memberships)?;
            let url = format!("{}/rules/{}", st.config.public_url, r.rule_id);
            Some(mode::decorate(&r.body, decided_by, &url))
        })
        .collect();
    let (syntactic, match_based) = st.store.triage_ignored_ids(scan.project_id).await?;
    Ok(Json(ScanConfig {
        status: "success".into(),
        config: ConfigBody {
            rules: RuleSet { rules },
            triage_ignored_syntactic_ids: syntactic,
            triage_ignored_match_based_ids: match_based,
        },
        engine_params: EngineParams {
            product_ignored_files: vec![("sast".into(), scan.ignored_files.clone())],
            ignored_files: scan.ignored_files.clone(),
        },
    }))
}

/// The scan named in the path, inside the caller's deployment and the token's projects
/// (a scan of another project does not exist for it). The client names scans by their
/// numeric id. Only what never changes of a scan is read from it
/// ([`Store::scan_facts`](crate::store::Store::scan_facts)): each step checks the state in
/// its own write.
async fn scan_in_path(st: &AppState, auth: &Auth, id: &str) -> AppResult<Arc<Scan>> {
    let id: ScanId = id.parse().map_err(|_| AppError::not_found("scan"))?;
    st.store
        .scan_facts(auth.deployment.id, id)
        .await?
        .filter(|s| auth.reaches(&s.project))
        .ok_or_else(|| AppError::not_found("scan"))
}

/// Upload findings. A retry replaces the earlier upload.
#[utoipa::path(post, path = "/api/agent/scans/{scan_id}/results", tag = "semgrep-ci",
    security(("bearer" = [])), request_body = Results,
    params(("scan_id" = ScanId, Path, description = "The scan's numeric id")),
    responses(
        (status = 200, description = "Kept; applied at /complete", body = ResultsAccepted),
        (status = 409, description = "The scan has already ended", body = ErrorBody),
        (status = 503, description = "The server holds as many uploads as it takes at once: retry after the Retry-After seconds", body = ErrorBody),
        Refusals,
    ))]
async fn upload_results(
    auth: Auth,
    State(st): State<AppState>,
    Path(scan_id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> AppResult<Json<ResultsAccepted>> {
    json_content(&headers)?;
    let scan = scan_in_path(&st, &auth, &scan_id).await?;
    // Room for the whole upload is reserved before a byte of it is read, so uploads in
    // flight never hold more than the configured total.
    let limit = st.config.max_results_bytes;
    let declared = declared_length(&headers);
    let _room = st
        .uploads
        .reserve(declared.unwrap_or(limit).min(limit))
        .await?;
    let raw = read_body(body, declared, limit).await?;
    // A large upload is seconds of CPU to read, check and encode: done off the async
    // workers, which go on serving meanwhile. Only what is kept waits for the writer.
    let (findings, kept) = if raw.len() <= READ_INLINE_BYTES {
        read_upload(&raw)?
    } else {
        tokio::task::spawn_blocking(move || read_upload(&raw))
            .await
            .map_err(|e| anyhow::anyhow!("reading the upload: {e}"))??
    };
    // The upload is kept (`store::kept`) and applied at /complete, in the transaction that
    // records the outcome: a retried upload replaces the earlier one and nothing is
    // counted twice.
    if !st.store.store_results(scan.id, kept).await? {
        return Err(AppError::conflict(
            "scan_ended",
            format!(
                "scan {} has already ended; results are no longer accepted",
                scan.id
            ),
        ));
    }
    tracing::info!(scan.id = %scan.public_id, findings, "results stored");
    Ok(Json(ResultsAccepted {
        errors: vec![],
        task_id: scan.public_id.to_string(),
    }))
}

/// Uploads up to this size are read on the async worker: handing them to a blocking
/// thread would cost more than reading them.
const READ_INLINE_BYTES: usize = 256 * 1024;

/// A `/results` body read and checked: its number of findings, and what to keep of it.
fn read_upload(raw: &[u8]) -> AppResult<(usize, Vec<u8>)> {
    let results: Results = parse_json_in(raw)?;
    results
        .check()
        .map_err(|m| AppError::bad_request("invalid_body", m))?;
    Ok((results.findings.len(), keep(&results)?))
}

/// A body must be JSON (or say nothing of its type).
pub(super) fn json_content(headers: &HeaderMap) -> AppResult<()> {
    let json = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|ct| ct.starts_with("application/json") || ct.ends_with("+json"));
    if json {
        Ok(())
    } else {
        Err(AppError::client(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as application/json",
        ))
    }
}

/// Complete a scan: applies its findings, decides what to notify, records its webhook
/// objects. Idempotent.
#[utoipa::path(post, path = "/api/agent/scans/{scan_id}/complete", tag = "semgrep-ci",
    security(("bearer" = [])), request_body = Complete,
    params(("scan_id" = ScanId, Path, description = "The scan's numeric id")),
    responses(
        (status = 200, description = "Completed (a retry gets the first reply)", body = CompleteReply),
        Conflict, Refusals,
    ))]
async fn complete_scan(
    auth: Auth,
    State(st): State<AppState>,
    Path(scan_id): Path<String>,
    JsonBody(body, _): JsonBody<Complete>,
) -> AppResult<Json<CompleteReply>> {
    let scan = scan_in_path(&st, &auth, &scan_id).await?;
    body.check().map_err(|depth| {
        AppError::bad_request(
            "stats_too_deep",
            format!(
                "`stats` nests {depth} levels deep; at most {MAX_STATS_DEPTH} are kept: flatten it"
            ),
        )
    })?;
    // Rules in Block mode now: a mode changed during the scan still blocks it. (Whether
    // the scan is still running, and has results to block, the completion reads under
    // its lock.)
    let block_rules: HashSet<String> = st
        .store
        .cached_rules(auth.deployment.id)
        .await?
        .iter()
        .filter(|r| mode::effective(&r.memberships).is_some_and(|m| m.mode == RuleMode::Block))
        .map(|r| r.rule_id.clone())
        .collect();
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
            failures,
        } => {
            st.filter_failures(&failures);
            // What was claimed goes straight to this process's worker; a worker claims
            // the rest (lanes without room, or with --no-deliver another process's).
            st.queued(queued);
            tracing::info!(scan.id = %scan.public_id, notified, "scan completed");
            Ok(Json(reply))
        }
        Completion::AlreadyEnded(ScanStatus::Completed, reply) => {
            Ok(Json(reply.unwrap_or_else(|| CompleteReply::new(vec![]))))
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

/// Mark a scan failed (terminal).
#[utoipa::path(post, path = "/api/agent/scans/{scan_id}/error", tag = "semgrep-ci",
    security(("bearer" = [])), request_body = ScanError,
    params(("scan_id" = ScanId, Path, description = "The scan's numeric id")),
    responses((status = 200, description = "Recorded (also when the scan had already ended)", body = Success), Refusals))]
async fn scan_error(
    auth: Auth,
    State(st): State<AppState>,
    Path(scan_id): Path<String>,
    JsonBody(body, _): JsonBody<ScanError>,
) -> AppResult<Json<Success>> {
    let scan = scan_in_path(&st, &auth, &scan_id).await?;
    body.check()
        .map_err(|m| AppError::bad_request("invalid_body", m))?;
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
    Ok(Json(Success::yes()))
}

/// The token's deployment.
#[utoipa::path(get, path = "/api/agent/deployments/current", tag = "semgrep-ci",
    security(("bearer" = [])),
    responses((status = 200, description = "The deployment", body = CurrentDeployment), Refusals))]
async fn current_deployment(auth: Auth) -> Json<CurrentDeployment> {
    let d = auth.deployment;
    Json(CurrentDeployment {
        deployment: DeploymentInfo {
            id: d.id,
            name: d.slug.clone(),
            slug: d.slug,
            display_name: d.name,
        },
    })
}

/// Pro engine download: always refused; use `semgrep ci --oss-only`.
#[utoipa::path(get, path = "/api/agent/deployments/deepbinary/{platform}", tag = "semgrep-ci",
    params(("platform" = String, Path, description = "The client's platform")),
    responses((status = 403, description = "scanhook does not serve the Pro engine", body = ErrorBody)))]
async fn deepbinary(Path(_platform): Path<String>) -> AppError {
    AppError::client(
        StatusCode::FORBIDDEN,
        "pro_engine_unavailable",
        "scanhook does not serve the Semgrep Pro engine: run `semgrep ci --oss-only`",
    )
}

/// Fail-open report from semgrep ci (`SEMGREP_FAIL_OPEN_URL`): kept so that silent
/// failures are visible.
#[utoipa::path(post, path = "/failure", tag = "semgrep-ci",
    security(("bearer" = [])),
    request_body(content = Object, description = "The client's report, kept as sent"),
    responses((status = 200, description = "Kept", body = Success), Refusals))]
async fn fail_open_report(
    auth: Auth,
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> AppResult<Json<Success>> {
    let raw = read_body(body, declared_length(&headers), MAX_FAILURE_REPORT).await?;
    let report: Value = parse_json(&raw)?;
    if !report.is_object() {
        return Err(AppError::bad_request(
            "invalid_body",
            "the report must be a JSON object, as semgrep ci sends it",
        ));
    }
    let request_id = report.get("request_id").and_then(Value::as_str);
    if request_id.is_some_and(|r| r.contains('\0')) {
        return Err(AppError::bad_request(
            "invalid_body",
            "`request_id` holds U+0000 (NUL), which cannot be stored: remove it",
        ));
    }
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
    Ok(Json(Success::yes()))
}
