//! Scans as the CI protocol moves them: running → completed | error | abandoned.
//! Creation is idempotent on the client's `unique_id`; every terminal transition is
//! conditional on the scan still running, so retries and races change nothing twice.

use super::batch::{Bind, Statement};
use super::{col, Store};
use crate::clock::{self, Micros};
use crate::domain::ci::{CreateScan, ProjectMetadata};
use crate::domain::payload::{self, ScanFacts};
use crate::domain::routing::{self, ScanEvent};
use crate::domain::scan::ScanStatus;
use crate::ids::{DeploymentId, ProjectId, PublicScanId, ScanId, ScanKey};
use serde_json::Value;
use sqlx::any::AnyRow;

/// A stored scan (without its uploaded results, which can be large).
#[derive(Debug, Clone)]
pub struct Scan {
    pub id: ScanId,
    pub public_id: PublicScanId,
    pub deployment_id: DeploymentId,
    pub project_id: ProjectId,
    pub project: String,
    pub unique_id: String,
    pub git_ref: String,
    /// The scanner whose findings this scan reports (`semgrep` for `semgrep ci`).
    pub tool: String,
    pub is_full_scan: bool,
    pub cli_version: Option<String>,
    pub meta: ProjectMetadata,
    pub ignored_files: Vec<String>,
    pub status: ScanStatus,
    pub started_at: Micros,
    pub completed_at: Option<Micros>,
    pub exit_code: Option<i64>,
    pub has_results: bool,
    pub stats: Option<Value>,
    pub n_findings: i64,
    pub n_opened: i64,
    pub n_fixed: i64,
    pub n_notified: i64,
    /// Findings opened by this scan of rules in Block mode (counted for uploads).
    pub n_blocking: i64,
    pub scan_payload: Option<Value>,
}

impl Scan {
    /// The `semgrep_scan` object for this scan as it stands.
    pub fn semgrep_scan(&self) -> Value {
        payload::semgrep_scan(&ScanFacts {
            public_id: self.public_id.as_str(),
            deployment_id: self.deployment_id.0,
            started_at: self.started_at,
            completed_at: self.completed_at,
            exit_code: self.exit_code,
            meta: &self.meta,
            ignored_files: &self.ignored_files,
        })
    }
}

const SCAN_COLUMNS: &str = "s.id, s.public_id, s.deployment_id, s.project_id, p.name AS project, \
    s.unique_id, s.git_ref, s.tool, s.is_full_scan, s.cli_version, s.meta, s.ignored_files, s.status, \
    s.started_at, s.completed_at, s.exit_code, s.results_at, s.stats, s.n_findings, s.n_opened, \
    s.n_fixed, s.n_notified, s.n_blocking, s.scan_payload";

fn json_col(row: &AnyRow, name: &str) -> anyhow::Result<Option<Value>> {
    col::<Option<String>>(row, name)?
        .map(|s| serde_json::from_str(&s).map_err(anyhow::Error::from))
        .transpose()
}

fn from_row(r: &AnyRow) -> anyhow::Result<Scan> {
    let meta: String = col(r, "meta")?;
    let ignored: String = col(r, "ignored_files")?;
    Ok(Scan {
        id: col(r, "id")?,
        public_id: col(r, "public_id")?,
        deployment_id: col(r, "deployment_id")?,
        project_id: col(r, "project_id")?,
        project: col(r, "project")?,
        unique_id: col(r, "unique_id")?,
        git_ref: col(r, "git_ref")?,
        tool: col(r, "tool")?,
        is_full_scan: col::<i64>(r, "is_full_scan")? != 0,
        cli_version: col(r, "cli_version")?,
        meta: serde_json::from_str(&meta)?,
        ignored_files: serde_json::from_str(&ignored)?,
        status: col::<String>(r, "status")?
            .parse()
            .map_err(anyhow::Error::msg)?,
        started_at: col(r, "started_at")?,
        completed_at: col(r, "completed_at")?,
        exit_code: col(r, "exit_code")?,
        has_results: col::<Option<i64>>(r, "results_at")?.is_some(),
        stats: json_col(r, "stats")?,
        n_findings: col(r, "n_findings")?,
        n_opened: col(r, "n_opened")?,
        n_fixed: col(r, "n_fixed")?,
        n_notified: col(r, "n_notified")?,
        n_blocking: col(r, "n_blocking")?,
        scan_payload: json_col(r, "scan_payload")?,
    })
}

/// An upload as versions before [`super::kept`] stored it: the JSON as sent, in an LZ4
/// frame. Only tests write such rows now; [`decompress`] still reads them.
#[cfg(test)]
pub(crate) fn compress(body: &[u8]) -> anyhow::Result<Vec<u8>> {
    use std::io::Write;
    let mut encoder = lz4_flex::frame::FrameEncoder::new(Vec::with_capacity(body.len() / 8));
    encoder.write_all(body)?;
    Ok(encoder.finish()?)
}

/// The bytes of a stored upload back from their LZ4 frame ([`super::kept::keep`]'s, or the
/// JSON as older versions kept it), or from the size-prepended LZ4 block of an older one
/// still (a scan uploaded before an upgrade and completed after it).
pub(crate) fn decompress(stored: &[u8]) -> anyhow::Result<Vec<u8>> {
    use std::io::Read;
    const FRAME_MAGIC: [u8; 4] = [0x04, 0x22, 0x4d, 0x18];
    if stored.starts_with(&FRAME_MAGIC) {
        let mut out = Vec::with_capacity(stored.len() * 4);
        lz4_flex::frame::FrameDecoder::new(stored).read_to_end(&mut out)?;
        Ok(out)
    } else {
        Ok(lz4_flex::decompress_size_prepended(stored)?)
    }
}

/// A scan just created, as a read of it would return it: one statement less on the path
/// every `semgrep ci` run takes.
fn new_scan(
    (id, public_id): (ScanId, PublicScanId),
    (deployment_id, project_id): (DeploymentId, ProjectId),
    req: &CreateScan,
    tool: &str,
    now: Micros,
    (git_ref, ignored_files): (String, &str),
) -> anyhow::Result<Scan> {
    let meta = &req.project_metadata;
    Ok(Scan {
        id,
        public_id,
        deployment_id,
        project_id,
        project: meta.repository.clone(),
        unique_id: req.scan_metadata.unique_id.clone(),
        git_ref,
        tool: tool.to_string(),
        is_full_scan: meta.is_full_scan,
        cli_version: req.scan_metadata.cli_version.clone(),
        meta: meta.clone(),
        ignored_files: serde_json::from_str(ignored_files)?,
        status: ScanStatus::Running,
        started_at: now,
        completed_at: None,
        exit_code: None,
        has_results: false,
        stats: None,
        n_findings: 0,
        n_opened: 0,
        n_fixed: 0,
        n_notified: 0,
        n_blocking: 0,
        scan_payload: None,
    })
}

/// Fail-open reports kept per deployment.
pub const FAILURES_KEPT: i64 = 1000;

/// Filters of the scans search.
#[derive(Debug, Clone, Default)]
pub struct ScanFilter {
    pub project: Option<String>,
    pub project_id: Option<ProjectId>,
    pub git_ref: Option<String>,
    pub is_full_scan: Option<bool>,
    pub since: Option<Micros>,
    pub statuses: Vec<ScanStatus>,
    /// Only scans with an id below this (pagination, newest first).
    pub before_id: Option<ScanId>,
    pub limit: i64,
}

impl Store {
    /// Creates the scan (and its project on first sight) or returns the one that already
    /// has this `unique_id`: the client retries this call with the same id. The scan
    /// returned may belong to another project than `req` names (the caller decides what
    /// that means); a call that finds the id taken writes nothing, so it leaves no project
    /// behind. `tool` names the scanner (`semgrep` for `semgrep ci`).
    pub async fn create_scan(
        &self,
        deployment_id: DeploymentId,
        req: &CreateScan,
        tool: &str,
    ) -> anyhow::Result<Scan> {
        let now = clock::now();
        let meta = &req.project_metadata;
        let public_id = PublicScanId::generate();
        let git_ref = meta.git_ref();
        let meta_json = serde_json::to_string(meta)?;
        // The scan, inserted into its project as stored: nothing if the project is missing,
        // its repo_url would change, or the unique_id is taken.
        const INSERT: &str = "INSERT INTO scans (public_id, deployment_id, project_id, unique_id, \
             git_ref, is_full_scan, cli_version, meta, ignored_files, status, started_at, tool) \
             SELECT $1, p.deployment_id, p.id, $2, $3, $4, $5, $6, p.ignored_files, \
             'running', $7, $8 FROM projects p WHERE p.deployment_id = $9 AND p.name = $10 \
             AND ($11 IS NULL OR p.repo_url = $11) \
             ON CONFLICT (deployment_id, unique_id) DO NOTHING \
             RETURNING id, project_id, ignored_files";
        let insert = || Statement {
            sql: INSERT,
            binds: vec![
                public_id.as_str().into(),
                req.scan_metadata.unique_id.as_str().into(),
                git_ref.as_str().into(),
                i64::from(meta.is_full_scan).into(),
                req.scan_metadata.cli_version.as_deref().into(),
                meta_json.as_str().into(),
                now.into(),
                tool.into(),
                deployment_id.0.into(),
                meta.repository.as_str().into(),
                meta.repo_url.as_deref().into(),
            ],
        };
        // Most scans are of a project seen before, whose repo_url they do not change: one
        // statement on the writer, committed with the others queued meanwhile.
        let row = match self.write_one(insert()).await?.pop() {
            Some(row) => row,
            None => {
                // A new project or repo_url, or a taken id: the project upsert first, in a
                // transaction that a taken id rolls back, so that it leaves no project.
                let mut tx = self.begin_write().await?;
                sqlx::query(
                    "INSERT INTO projects (deployment_id, name, repo_url, created_at) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (deployment_id, name) \
                     DO UPDATE SET repo_url = COALESCE(excluded.repo_url, projects.repo_url)",
                )
                .bind(deployment_id)
                .bind(&meta.repository)
                .bind(&meta.repo_url)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                let Some(row) = insert().run_in(&mut tx).await?.pop() else {
                    // A retry, or the id of a scan of another project.
                    tx.rollback().await?;
                    return self
                        .scan_by_unique_id(deployment_id, &req.scan_metadata.unique_id)
                        .await?
                        .ok_or_else(|| anyhow::anyhow!("scan vanished after insert"));
                };
                tx.commit().await?;
                row
            }
        };
        let ignored: String = col(&row, "ignored_files")?;
        let scan = new_scan(
            (col(&row, "id")?, public_id),
            (deployment_id, col(&row, "project_id")?),
            req,
            tool,
            now,
            (git_ref, &ignored),
        )?;
        // The run's next steps find it in memory.
        self.keep_scan(scan.clone(), Some(meta_json.len()));
        Ok(scan)
    }

    pub async fn scan_by_unique_id(
        &self,
        deployment_id: DeploymentId,
        unique_id: &str,
    ) -> anyhow::Result<Option<Scan>> {
        let sql = format!(
            "SELECT {SCAN_COLUMNS} FROM scans s JOIN projects p ON p.id = s.project_id \
             WHERE s.deployment_id = $1 AND s.unique_id = $2"
        );
        let row = sqlx::query(&sql)
            .bind(deployment_id)
            .bind(unique_id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// A scan by numeric id or public id, inside one deployment.
    pub async fn scan(
        &self,
        deployment_id: DeploymentId,
        key: &ScanKey,
    ) -> anyhow::Result<Option<Scan>> {
        let (numeric, public) = match key {
            ScanKey::Numeric(id) => (id.0, ""),
            ScanKey::Public(p) => (-1, p.as_str()),
        };
        let sql = format!(
            "SELECT {SCAN_COLUMNS} FROM scans s JOIN projects p ON p.id = s.project_id \
             WHERE s.deployment_id = $1 AND (s.id = $2 OR s.public_id = $3)"
        );
        let row = sqlx::query(&sql)
            .bind(deployment_id)
            .bind(numeric)
            .bind(public)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// The `semgrep_finding` array a completed scan notified, as stored. It is read only
    /// here: a scan of many findings holds a large one, which loading a scan must not parse.
    pub async fn finding_payload(&self, scan_id: ScanId) -> anyhow::Result<Option<String>> {
        let row =
            sqlx::query("SELECT finding_payload, finding_payload_lz4 FROM scans WHERE id = $1")
                .bind(scan_id)
                .fetch_optional(self.pool())
                .await?;
        let Some(row) = row else { return Ok(None) };
        if let Some(compressed) = col::<Option<Vec<u8>>>(&row, "finding_payload_lz4")? {
            return Ok(Some(String::from_utf8(decompress(&compressed)?)?));
        }
        col(&row, "finding_payload")
    }

    /// Newest first.
    pub async fn list_scans(
        &self,
        deployment_id: DeploymentId,
        f: &ScanFilter,
    ) -> anyhow::Result<Vec<Scan>> {
        let statuses: Vec<&str> = f.statuses.iter().map(|s| s.as_str()).collect();
        let mut sql = format!(
            "SELECT {SCAN_COLUMNS} FROM scans s JOIN projects p ON p.id = s.project_id \
             WHERE s.deployment_id = $1 \
             AND ($2 = '' OR p.name = $2) AND ($3 < 0 OR s.project_id = $3) \
             AND ($4 = '' OR s.git_ref = $4) AND ($5 < 0 OR s.is_full_scan = $5) \
             AND s.started_at >= $6 AND s.id < $7"
        );
        if !statuses.is_empty() {
            sql.push_str(&format!(
                " AND s.status IN ({})",
                super::in_list(statuses.len(), 8)
            ));
        }
        sql.push_str(&format!(
            " ORDER BY s.id DESC LIMIT {}",
            f.limit.clamp(1, 500)
        ));
        let mut q = sqlx::query(&sql)
            .bind(deployment_id)
            .bind(f.project.clone().unwrap_or_default())
            .bind(f.project_id.map_or(-1, |p| p.0))
            .bind(f.git_ref.clone().unwrap_or_default())
            .bind(f.is_full_scan.map(i64::from).unwrap_or(-1))
            .bind(f.since.unwrap_or(i64::MIN))
            .bind(f.before_id.map_or(i64::MAX, |s| s.0));
        for s in statuses {
            q = q.bind(s);
        }
        let rows = q.fetch_all(self.pool()).await?;
        rows.iter().map(from_row).collect()
    }

    /// Keeps the uploaded results of a running scan, replacing an earlier upload: `kept`
    /// as [`super::kept::keep`] made it. Returns false when the scan is no longer running.
    pub(crate) async fn store_results(
        &self,
        scan_id: ScanId,
        kept: Vec<u8>,
    ) -> anyhow::Result<bool> {
        let done = self
            .write_one(Statement {
                sql: "UPDATE scans SET results = $1, results_at = $2 \
                      WHERE id = $3 AND status = 'running' RETURNING id",
                binds: vec![Bind::Blob(kept), clock::now().into(), scan_id.0.into()],
            })
            .await?;
        Ok(done.len() == 1)
    }

    /// Ends a running scan without findings processing (`/error`, abandonment), recording
    /// its `semgrep_scan` object and queueing it to every enabled integration, in one
    /// transaction. False if it had already ended.
    pub async fn end_scan(
        &self,
        scan: &Scan,
        status: ScanStatus,
        exit_code: Option<i64>,
        stderr: Option<&str>,
    ) -> anyhow::Result<bool> {
        let integrations = self.shared_integrations(scan.deployment_id).await?;
        let completed_at = (status == ScanStatus::Error).then(clock::now);
        let mut ended = scan.clone();
        ended.completed_at = completed_at;
        ended.exit_code = exit_code;
        let scan_object = ended.semgrep_scan().to_string();
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE scans SET status = $1, completed_at = $2, exit_code = $3, error_stderr = $4, \
             scan_payload = $5, finding_payload = '[]' WHERE id = $6 AND status = 'running'",
        )
        .bind(status.as_str())
        .bind(completed_at)
        .bind(exit_code)
        .bind(stderr)
        .bind(&scan_object)
        .bind(scan.id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        let event = ScanEvent {
            repository: &scan.project,
            git_ref: &scan.git_ref,
            object: scan_object,
        };
        let routed = routing::route(&integrations, Some(&event), &[], self.links());
        super::messages::enqueue(
            &mut tx,
            self.backend(),
            scan.deployment_id,
            Some(scan.id),
            &routed.outbox,
            &integrations,
            None,
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Marks scans still running since before `cutoff` as abandoned. Returns how many.
    pub async fn abandon_stale(&self, cutoff: Micros) -> anyhow::Result<usize> {
        let sql = format!(
            "SELECT {SCAN_COLUMNS} FROM scans s JOIN projects p ON p.id = s.project_id \
             WHERE s.status = 'running' AND s.started_at < $1 ORDER BY s.id LIMIT 500"
        );
        let rows = sqlx::query(&sql)
            .bind(cutoff)
            .fetch_all(self.pool())
            .await?;
        let mut n = 0;
        for row in &rows {
            let scan = from_row(row)?;
            if self
                .end_scan(&scan, ScanStatus::Abandoned, None, None)
                .await?
            {
                tracing::info!(scan.id = %scan.public_id, "scan abandoned: no /complete in time");
                n += 1;
            }
        }
        Ok(n)
    }

    /// Stores a fail-open report from the client, keeping the deployment's newest
    /// [`FAILURES_KEPT`] (a client that reports in a loop rotates its own reports out, it
    /// does not fill the disk).
    pub async fn record_failure(
        &self,
        deployment_id: DeploymentId,
        request_id: Option<&str>,
        exit_code: Option<i64>,
        body: &str,
    ) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO failures (deployment_id, request_id, exit_code, body, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(deployment_id)
        .bind(request_id)
        .bind(exit_code)
        .bind(body)
        .bind(clock::now())
        .execute(self.writer())
        .await?;
        sqlx::query(
            "DELETE FROM failures WHERE deployment_id = $1 AND id <= \
             (SELECT id FROM failures WHERE deployment_id = $1 ORDER BY id DESC LIMIT 1 OFFSET $2)",
        )
        .bind(deployment_id)
        .bind(FAILURES_KEPT)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    pub async fn count_failures(&self, deployment_id: DeploymentId) -> anyhow::Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM failures WHERE deployment_id = $1")
            .bind(deployment_id)
            .fetch_one(self.pool())
            .await?;
        col(&row, "n")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn uploads_round_trip_in_both_stored_forms() {
        let body = br#"{"findings":[]}"#.repeat(1000);
        let framed = super::compress(&body).unwrap();
        assert!(framed.len() < body.len() / 10);
        assert_eq!(super::decompress(&framed).unwrap(), body);
        let block = lz4_flex::compress_prepend_size(&body);
        assert_eq!(
            super::decompress(&block).unwrap(),
            body,
            "what older versions stored"
        );
    }
}
