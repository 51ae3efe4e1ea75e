//! `POST /api/v1/uploads`: a file of another scanner's findings (SARIF 2.1.0, or
//! `semgrep scan --json`) becomes one scan per tool, through the same lifecycle, rule
//! modes and webhooks as a `semgrep ci` scan (`domain::uploads` converts it).
//!
//! An upload is idempotent on its `unique_id`: each tool's scan takes an id derived from
//! it, so a retry after a lost answer finds the scans it made and answers what they did.

use super::extract::Auth;
use crate::api::uploads::{UploadOut, UploadedScan};
use crate::api::v1::{FindingOut, ScanOut};
use crate::api::{Conflict, Refusals};
use crate::domain::ci::{CreateScan, ProjectMetadata, Results, ScanMetadata};
use crate::domain::mode;
use crate::domain::outbox::Claimant;
use crate::domain::query::QueryPairs;
use crate::domain::scan::ScanStatus;
use crate::domain::uploads::{self, ToolScan, UploadFormat};
use crate::edge::{declared_length, read_body};
use crate::error::{AppError, AppResult, ErrorBody};
use crate::ids::{self, ScanKey};
use crate::state::AppState;
use crate::store::complete::Completion;
use crate::store::kept::keep;
use crate::store::scans::Scan;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware;
use axum::Json;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Uploads converted and applied at once. Converting and applying a file takes a few
/// times its size (about 4–5× for a 100,000-result SARIF log, docs/BENCHMARKS.md), more
/// than the upload budget reserves for it, so one file is handled at a time and the
/// others wait for it.
static CONVERTING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);

/// `limit`: the largest file, the `/results` limit.
pub fn router(limit: usize) -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(upload))
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn(super::declared_length_limit(limit)))
}

/// What the query string says of the upload.
struct Upload {
    req: CreateScan,
    format: Option<UploadFormat>,
    root: Option<String>,
    changes: bool,
}

impl Upload {
    fn from_query(q: &QueryPairs) -> AppResult<Upload> {
        let text = |key: &str| q.one(key).filter(|v| !v.is_empty()).map(str::to_string);
        let bad = |m: String| AppError::bad_request("invalid_query", m);
        let repository = text("repository")
            .ok_or_else(|| bad("`repository` is required: the project, e.g. acme/api".into()))?;
        let format = match q.one("format").unwrap_or("auto") {
            "auto" => None,
            "sarif" => Some(UploadFormat::Sarif),
            "semgrep-json" => Some(UploadFormat::SemgrepJson),
            other => {
                return Err(bad(format!(
                    "`format` {other:?} is not one of auto, sarif, semgrep-json"
                )))
            }
        };
        let baseline = text("baseline_ref");
        let meta = ProjectMetadata {
            repository,
            branch: text("ref"),
            commit: text("commit"),
            commit_title: text("commit_title"),
            commit_timestamp: text("commit_timestamp"),
            commit_author_email: text("commit_author_email"),
            commit_author_name: text("commit_author_name"),
            repo_url: text("repo_url"),
            ci_job_url: text("ci_job_url"),
            pull_request_id: text("pull_request_id"),
            pull_request_title: text("pull_request_title"),
            scan_environment: Some("scanhook-upload".into()),
            on: Some(
                if baseline.is_some() {
                    "pull_request"
                } else {
                    "push"
                }
                .into(),
            ),
            // A diff-aware upload closes nothing.
            is_full_scan: baseline.is_none(),
            ..ProjectMetadata::default()
        };
        let unique_id = text("unique_id").unwrap_or_else(|| ids::random_base62(22));
        let req = CreateScan {
            scan_metadata: ScanMetadata {
                unique_id,
                cli_version: Some(concat!("scanhook-upload/", env!("CARGO_PKG_VERSION")).into()),
                dry_run: false,
            },
            project_metadata: meta,
        };
        // The checks of `semgrep ci`'s metadata, named as this query names them.
        req.check().map_err(|m| {
            bad(m
                .replace("scan_metadata.", "")
                .replace("project_metadata.branch", "ref")
                .replace("project_metadata.", ""))
        })?;
        let root = text("root");
        if root.as_deref().is_some_and(|r| !r.starts_with('/')) {
            return Err(bad(
                "`root` must be the absolute directory the tool ran in".into()
            ));
        }
        Ok(Upload {
            req,
            format,
            root,
            changes: q.bool("changes").map_err(|e| bad(e.0))?.unwrap_or(false),
        })
    }

    /// The request that creates the scan of `tool`: its `unique_id` derived from the
    /// upload's, so that a retry finds it.
    fn for_tool(&self, tool: &str) -> CreateScan {
        let mut h = Sha256::new();
        h.update(self.req.scan_metadata.unique_id.as_bytes());
        h.update([0]);
        h.update(tool.as_bytes());
        let mut req = self.req.clone();
        req.scan_metadata.unique_id = format!("upload-{}", ids::hex(&h.finalize()[..16]));
        req
    }
}

/// Upload another scanner's findings: a SARIF 2.1.0 log (Bandit, Ruff, Checkov, ESLint,
/// CodeQL, `semgrep --sarif`, …) or `semgrep scan --json` output, as the request body.
/// Each tool in the file becomes a scan of the repository and ref, with the lifecycle of
/// a `semgrep ci` scan; a full upload closes that tool's findings that are gone, and only
/// that tool's. Rules first seen join the rule board in a policy named after the tool,
/// in Monitor mode. Nothing of a refused file is stored.
#[utoipa::path(post, path = "/api/v1/uploads", tag = "uploads",
    security(("bearer" = [])),
    request_body(content = Object, content_type = "application/json",
        description = "The file as the tool wrote it (`application/sarif+json` is accepted too)"),
    params(
        ("repository" = String, Query, description = "The project, e.g. `acme/api`; created on first sight"),
        ("ref" = Option<String>, Query, description = "The scanned ref, e.g. `main` or `refs/pull/7/merge`"),
        ("commit" = Option<String>, Query, description = "The scanned commit"),
        ("baseline_ref" = Option<String>, Query, description = "Makes the upload diff-aware: it closes nothing"),
        ("format" = Option<String>, Query, description = "`auto` (default), `sarif` or `semgrep-json`"),
        ("root" = Option<String>, Query, description = "The absolute directory the tool ran in: absolute paths under it become relative"),
        ("unique_id" = Option<String>, Query, description = "The upload's id: a retry with the same id changes nothing twice (default: a new one)"),
        ("commit_title" = Option<String>, Query, description = "The commit's title"),
        ("commit_timestamp" = Option<String>, Query, description = "The commit's time (ISO 8601)"),
        ("commit_author_name" = Option<String>, Query, description = "The commit's author"),
        ("commit_author_email" = Option<String>, Query, description = "The author's email"),
        ("repo_url" = Option<String>, Query, description = "The repository's web address"),
        ("ci_job_url" = Option<String>, Query, description = "The CI job that ran the tool"),
        ("pull_request_id" = Option<String>, Query, description = "The pull request's number"),
        ("pull_request_title" = Option<String>, Query, description = "The pull request's title"),
        ("changes" = Option<bool>, Query, description = "Also list what each scan changed, finding by finding"),
    ),
    responses(
        (status = 200, description = "The scans the upload made (a retry gets the same)", body = UploadOut),
        (status = 403, description = "The token may not reach this repository", body = ErrorBody),
        (status = 503, description = "The server holds as many uploads as it takes at once: retry after the Retry-After seconds", body = ErrorBody),
        Conflict, Refusals,
    ))]
async fn upload(
    auth: Auth,
    State(st): State<AppState>,
    q: QueryPairs,
    headers: HeaderMap,
    body: Body,
) -> AppResult<Json<UploadOut>> {
    super::ci::json_content(&headers)?;
    let upload = Upload::from_query(&q)?;
    let repo = &upload.req.project_metadata.repository;
    if !auth.reaches(repo) {
        return Err(AppError::forbidden(format!(
            "this token may not upload findings of {repo:?}"
        )));
    }
    let limit = st.config.max_results_bytes;
    let declared = declared_length(&headers);
    let _room = st
        .uploads
        .reserve(declared.unwrap_or(limit).min(limit))
        .await?;
    let raw = read_body(body, declared, limit).await?;
    let _converting = CONVERTING
        .acquire()
        .await
        .map_err(|e| anyhow::anyhow!("the conversion queue closed: {e}"))?;
    let (format, root) = (upload.format, upload.root.clone());
    let tools = tokio::task::spawn_blocking(move || {
        let format = match format {
            Some(f) => f,
            None => UploadFormat::detect(&raw)?,
        };
        uploads::read_under(&raw, format, root.as_deref())
    })
    .await
    .map_err(|e| anyhow::anyhow!("converting the upload: {e}"))?
    .map_err(|e| AppError::bad_request("invalid_upload", e.to_string()))?;

    // Every tool's scan first: a conflict refuses the upload before anything is applied.
    let mut scans = Vec::with_capacity(tools.len());
    for tool in &tools {
        scans.push(start(&st, &auth, &upload, tool.tool()).await?);
    }
    let mut out = UploadOut {
        scans: Vec::with_capacity(tools.len()),
        blocking: 0,
    };
    for (tool, scan) in tools.into_iter().zip(scans) {
        let done = apply(&st, &auth, tool, scan, upload.changes).await?;
        out.blocking += done.scan.counts.blocking;
        out.scans.push(done);
    }
    Ok(Json(out))
}

/// Creates (or, on a retry, finds) the scan of one tool.
async fn start(st: &AppState, auth: &Auth, upload: &Upload, tool: &str) -> AppResult<Scan> {
    let req = upload.for_tool(tool);
    let scan = st.store.create_scan(auth.deployment.id, &req, tool).await?;
    if scan.project != req.project_metadata.repository || scan.tool != tool {
        return Err(AppError::conflict(
            "unique_id_conflict",
            "this unique_id is already the id of another upload; a retry must send the same repository and file, a new upload needs a new unique_id",
        ));
    }
    if !matches!(scan.status, ScanStatus::Running | ScanStatus::Completed) {
        return Err(AppError::conflict(
            "scan_ended",
            format!(
                "the {tool} scan of this unique_id ended as {}; send the upload with a new unique_id",
                scan.status.as_str()
            ),
        ));
    }
    Ok(scan)
}

/// Puts the tool's rules on the board, gives its findings their modes, and completes its
/// scan (unless a retry finds it completed).
async fn apply(
    st: &AppState,
    auth: &Auth,
    tool: ToolScan,
    scan: Scan,
    changes: bool,
) -> AppResult<UploadedScan> {
    let name = tool.tool().to_string();
    let converted = if scan.status == ScanStatus::Running {
        let rules: Vec<(&str, Value)> = tool
            .reported_rules()
            .into_iter()
            .map(|(id, meta)| (id, rule_body(id, &name, meta.get())))
            .collect();
        let modes = st
            .store
            .board_upload_rules(auth.deployment.id, &name, &rules)
            .await?;
        let public_url = st.config.public_url.clone();
        let converted = tokio::task::spawn_blocking(move || {
            tool.finish(&|check_id| {
                let url = format!("{public_url}/rules/{check_id}");
                Some(mode::platform_keys(modes.get(check_id), &url))
            })
        })
        .await
        .map_err(|e| anyhow::anyhow!("converting the upload: {e}"))?;
        let mut converted = converted;
        // Stored, the body is read back by the completion: not held twice meanwhile.
        let results = std::mem::take(&mut converted.results_json);
        complete(st, &scan, results).await?;
        tracing::info!(scan.id = %scan.public_id, tool = %name, findings = converted.findings, "upload applied");
        Some(converted)
    } else {
        None
    };
    let scan = st
        .store
        .scan(auth.deployment.id, &ScanKey::Numeric(scan.id))
        .await?
        .ok_or_else(|| anyhow::anyhow!("scan {} vanished", scan.id))?;
    let changes = if changes {
        let rows = st
            .store
            .scan_findings(auth.deployment.id, scan.id, &[], false)
            .await?;
        Some(rows.iter().map(FindingOut::from).collect())
    } else {
        None
    };
    Ok(UploadedScan {
        tool: name,
        ignored: converted.as_ref().map_or(0, |c| c.ignored as i64),
        skipped: converted.as_ref().map_or(0, |c| c.skipped as i64),
        url: format!("{}/scans/{}", st.config.public_url, scan.public_id),
        scan: ScanOut::from(&scan),
        changes,
    })
}

/// Stores the converted body and completes the scan with it, as `/results` and
/// `/complete` do.
async fn complete(st: &AppState, scan: &Scan, results: Vec<u8>) -> AppResult<()> {
    let kept = tokio::task::spawn_blocking(move || keep(&Results::parse(&results)?))
        .await
        .map_err(|e| anyhow::anyhow!("keeping the upload: {e}"))??;
    let stored = st.store.store_results(scan.id, kept).await?;
    if !stored {
        // Completed by a concurrent retry of the same upload.
        return Ok(());
    }
    let claimant = st.handoff.as_ref().map(|h| h as &dyn Claimant);
    let stats = json!({});
    match st
        .store
        .complete_scan(scan, 0, &stats, &HashSet::new(), claimant)
        .await?
    {
        Completion::Completed {
            queued, failures, ..
        } => {
            st.filter_failures(&failures);
            st.queued(queued);
            Ok(())
        }
        Completion::AlreadyEnded(ScanStatus::Completed, _) => Ok(()),
        Completion::AlreadyEnded(other, _) => Err(AppError::client(
            StatusCode::CONFLICT,
            "scan_ended",
            format!("scan {} ended as {}", scan.public_id, other.as_str()),
        )),
    }
}

/// What the rule board shows of a rule known only from uploads: its id, tool, a message
/// (the rule's help, else its id) and the metadata of its first finding.
fn rule_body(check_id: &str, tool: &str, metadata: &str) -> Value {
    let metadata: Map<String, Value> = serde_json::from_str(metadata).unwrap_or_default();
    let message = metadata
        .get("help")
        .and_then(Value::as_str)
        .filter(|h| !h.is_empty())
        .unwrap_or(check_id)
        .to_string();
    json!({"id": check_id, "tool": tool, "message": message, "metadata": metadata})
}
