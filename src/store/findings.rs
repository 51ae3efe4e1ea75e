//! Reading findings (with filters, per scan) and triaging them.

use super::messages::{self, Enqueued};
use super::scans::Scan;
use super::{col, in_list, json_list, named, Backend, Store};
use crate::clock::{self, Micros};
use crate::domain::event_kind::EventKind;
use crate::domain::events::{self, StoredFinding};
use crate::domain::findings::{Change, FindingFilter, Severity, Status, TriageState};
use crate::domain::lifecycle::State;
use crate::domain::mode::RuleMode;
use crate::domain::outbox::Claimant;
use crate::domain::routing::{self, Event, FilterFailure};
use crate::ids::{DeploymentId, FindingId, ProjectId, PublicScanId, ScanId};
use serde_json::Value;
use sqlx::any::AnyRow;
use std::collections::HashSet;

/// A finding on one ref, with its project-level identity facts.
#[derive(Debug, Clone)]
pub struct FindingRow {
    pub id: FindingId,
    pub project: String,
    pub repo_url: Option<String>,
    pub git_ref: String,
    pub syntactic_id: String,
    pub match_based_id: Option<String>,
    pub rule_id: String,
    pub path: String,
    pub line: i64,
    pub column: i64,
    pub end_line: i64,
    pub end_column: i64,
    pub message: String,
    pub severity: Severity,
    pub metadata: Value,
    pub mode: RuleMode,
    pub policy_slug: Option<String>,
    /// The scan-time state: open, fixed, ignored (nosemgrep), removed.
    pub state: State,
    /// What a person sees: the state, or the triage state of an open finding.
    pub status: Status,
    pub triage_state: TriageState,
    pub triage_reason: Option<String>,
    pub triage_comment: Option<String>,
    pub triaged_at: Option<Micros>,
    pub first_seen_scan_id: Option<PublicScanId>,
    pub created_at: Micros,
    pub relevant_since: Micros,
    pub state_updated_at: Micros,
    /// The scan's change for this finding, when listed per scan.
    pub change: Option<Change>,
    pub notify: bool,
}

const FINDING_SELECT: &str = "SELECT f.id, p.name AS project, p.repo_url, f.git_ref, \
    f.syntactic_id, f.match_based_id, f.rule_id, f.path, f.line, f.col, f.end_line, f.end_col, \
    f.message, f.severity, m.body AS metadata, f.mode, f.policy_slug, f.state, \
    COALESCE(i.triage_state, 'untriaged') AS triage_state, i.triage_reason, i.triage_comment, \
    i.triaged_at, i.first_seen_scan_id, f.created_at, f.relevant_since, f.state_updated_at, \
    CASE WHEN f.state = 'open' AND i.triage_state IN \
      ('ignored', 'reviewing', 'fixing', 'provisionally_ignored') \
      THEN i.triage_state ELSE f.state END AS status";

const FINDING_FROM: &str = "FROM findings f JOIN projects p ON p.id = f.project_id \
    JOIN finding_metadata m ON m.id = f.metadata_id \
    LEFT JOIN identities i ON i.project_id = f.project_id AND i.identity = f.identity";

fn from_row(r: &AnyRow, with_change: bool) -> anyhow::Result<FindingRow> {
    let metadata: String = col(r, "metadata")?;
    Ok(FindingRow {
        id: col(r, "id")?,
        project: col(r, "project")?,
        repo_url: col(r, "repo_url")?,
        git_ref: col(r, "git_ref")?,
        syntactic_id: col(r, "syntactic_id")?,
        match_based_id: col(r, "match_based_id")?,
        rule_id: col(r, "rule_id")?,
        path: col(r, "path")?,
        line: col(r, "line")?,
        column: col(r, "col")?,
        end_line: col(r, "end_line")?,
        end_column: col(r, "end_col")?,
        message: col(r, "message")?,
        severity: Severity::from_level(col(r, "severity")?),
        metadata: serde_json::from_str(&metadata)?,
        mode: named(r, "mode")?,
        policy_slug: col(r, "policy_slug")?,
        state: named(r, "state")?,
        status: named(r, "status")?,
        triage_state: named(r, "triage_state")?,
        triage_reason: col(r, "triage_reason")?,
        triage_comment: col(r, "triage_comment")?,
        triaged_at: col(r, "triaged_at")?,
        first_seen_scan_id: col(r, "first_seen_scan_id")?,
        created_at: col(r, "created_at")?,
        relevant_since: col(r, "relevant_since")?,
        state_updated_at: col(r, "state_updated_at")?,
        change: if with_change {
            Some(named(r, "change")?)
        } else {
            None
        },
        notify: with_change && col::<i64>(r, "notify")? != 0,
    })
}

/// A triage to set.
#[derive(Debug, Clone, Copy)]
pub struct TriageChange<'a> {
    pub state: TriageState,
    pub reason: Option<&'a str>,
    pub comment: Option<&'a str>,
}

/// What a triage did.
#[derive(Debug, Default)]
pub struct Triaged {
    /// The ids that exist in the deployment.
    pub found: Vec<FindingId>,
    /// One id per identity whose triage changed.
    pub changed: Vec<FindingId>,
    /// The `finding_triaged` messages queued.
    pub queued: Enqueued,
    pub failures: Vec<FilterFailure>,
}

/// The columns of a [`StoredFinding`].
pub(crate) const STORED_SELECT: &str = "SELECT f.id, f.project_id, f.identity, \
    p.name AS repository, f.git_ref, f.syntactic_id, f.rule_id, f.path, f.line, f.col, \
    f.end_line, f.end_col, f.message, f.severity, f.idx, f.commit_date, f.mode, \
    m.body AS metadata, COALESCE(i.first_seen_scan_id, s.public_id, '') AS first_seen_scan_id, \
    COALESCE(i.first_seen_at, f.created_at) AS first_seen_at, \
    COALESCE(i.triage_state, 'untriaged') AS triage_state \
    FROM findings f JOIN projects p ON p.id = f.project_id \
    JOIN finding_metadata m ON m.id = f.metadata_id \
    LEFT JOIN identities i ON i.project_id = f.project_id AND i.identity = f.identity \
    LEFT JOIN scans s ON s.id = f.last_scan_id";

pub(crate) fn stored_from_row(r: &AnyRow) -> anyhow::Result<StoredFinding> {
    let raw: String = col(r, "metadata")?;
    let metadata_raw = serde_json::value::RawValue::from_string(raw)?;
    Ok(StoredFinding {
        id: col(r, "id")?,
        project_id: col(r, "project_id")?,
        identity: col(r, "identity")?,
        repository: col(r, "repository")?,
        git_ref: col(r, "git_ref")?,
        syntactic_id: col(r, "syntactic_id")?,
        rule_id: col(r, "rule_id")?,
        path: col(r, "path")?,
        line: col(r, "line")?,
        column: col(r, "col")?,
        end_line: col(r, "end_line")?,
        end_column: col(r, "end_col")?,
        message: col(r, "message")?,
        severity: col(r, "severity")?,
        index: col(r, "idx")?,
        commit_date: col(r, "commit_date")?,
        mode: named(r, "mode")?,
        metadata: serde_json::from_str(metadata_raw.get())?,
        metadata_raw,
        first_seen_scan_id: col(r, "first_seen_scan_id")?,
        first_seen_at: col(r, "first_seen_at")?,
        triage_state: named(r, "triage_state")?,
    })
}

/// The findings of `identities` on the scan's ref, as stored.
pub(crate) async fn stored_on_ref(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    backend: Backend,
    scan: &Scan,
    identities: &[&str],
) -> anyhow::Result<Vec<StoredFinding>> {
    let mut out = Vec::with_capacity(identities.len());
    for chunk in identities.chunks(5_000) {
        let sql = format!(
            "{STORED_SELECT} WHERE f.project_id = $1 AND f.git_ref = $2 AND f.identity IN {} \
             ORDER BY f.id",
            json_list(backend, 3)
        );
        let rows = sqlx::query(&sql)
            .bind(scan.project_id)
            .bind(&scan.git_ref)
            .bind(serde_json::to_string(chunk)?)
            .fetch_all(&mut **tx)
            .await?;
        for r in &rows {
            out.push(stored_from_row(r)?);
        }
    }
    Ok(out)
}

/// A parameter of a dynamically built query.
enum Param {
    Int(i64),
    Text(String),
}

/// Accumulates `AND …` clauses and their parameters, numbering placeholders as it goes.
struct Where {
    sql: String,
    params: Vec<Param>,
}

impl Where {
    fn new(deployment_id: DeploymentId) -> Where {
        Where {
            sql: "WHERE f.deployment_id = $1".into(),
            params: vec![Param::Int(deployment_id.0)],
        }
    }

    fn next(&self) -> usize {
        self.params.len() + 1
    }

    fn eq(&mut self, column: &str, p: Param) {
        self.sql
            .push_str(&format!(" AND {column} = ${}", self.next()));
        self.params.push(p);
    }

    fn any_of(&mut self, column: &str, ps: Vec<Param>) {
        if ps.is_empty() {
            return;
        }
        self.sql.push_str(&format!(
            " AND {column} IN ({})",
            in_list(ps.len(), self.next())
        ));
        self.params.extend(ps);
    }

    fn query<'q>(
        &'q self,
        sql: &'q str,
    ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
        let mut q = sqlx::query(sql);
        for p in &self.params {
            q = match p {
                Param::Int(i) => q.bind(*i),
                Param::Text(s) => q.bind(s.as_str()),
            };
        }
        q
    }
}

fn texts(v: &[String]) -> Vec<Param> {
    v.iter().map(|s| Param::Text(s.clone())).collect()
}

fn names<T: Copy>(v: &[T], name: impl Fn(T) -> &'static str) -> Vec<Param> {
    v.iter()
        .map(|s| Param::Text(name(*s).to_string()))
        .collect()
}

impl Store {
    /// Findings of a deployment, newest first.
    pub async fn list_findings(
        &self,
        deployment_id: DeploymentId,
        f: &FindingFilter,
    ) -> anyhow::Result<Vec<FindingRow>> {
        let mut w = Where::new(deployment_id);
        w.any_of("p.name", texts(&f.repos));
        if let Some(r) = &f.git_ref {
            w.eq("f.git_ref", Param::Text(r.clone()));
        }
        w.any_of(
            "f.severity",
            f.severities.iter().map(|s| Param::Int(s.level())).collect(),
        );
        w.any_of("f.rule_id", texts(&f.rules));
        w.any_of("f.policy_slug", texts(&f.policies));
        w.any_of("f.mode", texts(&f.modes));
        if let Some(since) = f.since {
            w.sql
                .push_str(&format!(" AND f.relevant_since >= ${}", w.next()));
            w.params.push(Param::Int(since));
        }
        if f.dedup {
            w.sql.push_str(
                " AND f.id = (SELECT MAX(f2.id) FROM findings f2 \
                 WHERE f2.project_id = f.project_id AND f2.identity = f.identity)",
            );
        }
        let mut sql = format!(
            "SELECT * FROM ({FINDING_SELECT} {FINDING_FROM} {}) x",
            w.sql
        );
        if f.statuses.is_empty() {
            sql.push_str(" WHERE x.status <> 'removed'");
        } else {
            let start = w.next();
            sql.push_str(&format!(
                " WHERE x.status IN ({})",
                in_list(f.statuses.len(), start)
            ));
            w.params.extend(names(&f.statuses, Status::as_str));
        }
        let size = f.page_size.clamp(1, 10_000);
        sql.push_str(&format!(
            " ORDER BY x.id DESC LIMIT {size} OFFSET {}",
            f.page.max(0) * size
        ));
        let rows = w.query(&sql).fetch_all(self.pool()).await?;
        rows.iter().map(|r| from_row(r, false)).collect()
    }

    /// The findings a scan changed; `changes` empty means all of them.
    pub async fn scan_findings(
        &self,
        deployment_id: DeploymentId,
        scan_id: ScanId,
        changes: &[Change],
        notified_only: bool,
    ) -> anyhow::Result<Vec<FindingRow>> {
        let mut w = Where::new(deployment_id);
        w.eq("c.scan_id", Param::Int(scan_id.0));
        w.any_of("c.change", names(changes, Change::as_str));
        if notified_only {
            w.sql.push_str(" AND c.notify = 1");
        }
        let sql = format!(
            "{FINDING_SELECT}, c.change, c.notify {FINDING_FROM} \
             JOIN scan_changes c ON c.finding_id = f.id {} ORDER BY f.id",
            w.sql
        );
        let rows = w.query(&sql).fetch_all(self.pool()).await?;
        rows.iter().map(|r| from_row(r, true)).collect()
    }

    /// Sets the triage state of the identities behind these finding ids (triage follows
    /// a finding across refs), and queues a `finding_triaged` event for each identity
    /// whose triage changed to the integrations it is routed to, in the same
    /// transaction. Setting what is already set changes nothing and sends nothing.
    pub async fn triage(
        &self,
        deployment_id: DeploymentId,
        finding_ids: &[FindingId],
        change: &TriageChange<'_>,
        claimant: Option<&dyn Claimant>,
    ) -> anyhow::Result<Triaged> {
        if finding_ids.is_empty() {
            return Ok(Triaged::default());
        }
        let integrations = self.shared_integrations(deployment_id).await?;
        let routed_to = integrations
            .iter()
            .any(|i| i.enabled && i.receives(EventKind::FindingTriaged));
        let now = clock::now();
        let mut tx = self.begin_write().await?;
        let sql = format!(
            "SELECT f.id, f.project_id, f.identity, f.created_at, s.public_id, \
             COALESCE(i.triage_state, 'untriaged') AS old_state, i.triage_reason AS old_reason, \
             i.triage_comment AS old_comment FROM findings f \
             JOIN scans s ON s.id = f.last_scan_id \
             LEFT JOIN identities i ON i.project_id = f.project_id AND i.identity = f.identity \
             WHERE f.deployment_id = $1 AND f.id IN ({}) ORDER BY f.id",
            in_list(finding_ids.len(), 2)
        );
        let mut q = sqlx::query(&sql).bind(deployment_id);
        for id in finding_ids {
            q = q.bind(id.0);
        }
        let rows = q.fetch_all(&mut *tx).await?;
        let mut out = Triaged::default();
        let mut identities = HashSet::new();
        for row in &rows {
            let id: FindingId = col(row, "id")?;
            out.found.push(id);
            let project_id: i64 = col(row, "project_id")?;
            let identity: String = col(row, "identity")?;
            if !identities.insert((project_id, identity.clone())) {
                continue; // the same identity on another ref: triaged once
            }
            let before = (
                named::<TriageState>(row, "old_state")?,
                col::<Option<String>>(row, "old_reason")?,
                col::<Option<String>>(row, "old_comment")?,
            );
            if before.0 == change.state
                && before.1.as_deref() == change.reason
                && before.2.as_deref() == change.comment
            {
                continue;
            }
            out.changed.push(id);
            sqlx::query(
                "INSERT INTO identities (project_id, identity, first_seen_scan_id, first_seen_at, \
                 triage_state, triage_reason, triage_comment, triaged_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                 ON CONFLICT (project_id, identity) DO UPDATE SET \
                 triage_state = excluded.triage_state, triage_reason = excluded.triage_reason, \
                 triage_comment = excluded.triage_comment, triaged_at = excluded.triaged_at",
            )
            .bind(project_id)
            .bind(&identity)
            .bind(col::<String>(row, "public_id")?)
            .bind(col::<i64>(row, "created_at")?)
            .bind(change.state.as_str())
            .bind(change.reason)
            .bind(change.comment)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        if routed_to && !out.changed.is_empty() {
            let sql = format!(
                "{STORED_SELECT} WHERE f.id IN ({}) ORDER BY f.id",
                in_list(out.changed.len(), 1)
            );
            let mut q = sqlx::query(&sql);
            for id in &out.changed {
                q = q.bind(id.0);
            }
            let stored: Vec<StoredFinding> = q
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(stored_from_row)
                .collect::<anyhow::Result<_>>()?;
            let events: Vec<Event> = stored
                .iter()
                .map(|f| Event {
                    subject: f.subject(EventKind::FindingTriaged),
                    object: f
                        .with_facts(|facts| {
                            events::finding_triaged(
                                facts,
                                change.state,
                                change.reason,
                                change.comment,
                                now,
                            )
                        })
                        .into(),
                })
                .collect();
            let routed = routing::route(&integrations, None, &events, self.links());
            out.queued = messages::enqueue(
                &mut tx,
                self.backend(),
                deployment_id,
                None,
                &routed.outbox,
                &integrations,
                claimant,
            )
            .await?;
            out.failures = routed.failures;
        }
        tx.commit().await?;
        out.found.sort_unstable();
        Ok(out)
    }

    /// Triage-ignored ids of a project, handed to the client in the scan config.
    pub async fn triage_ignored_ids(
        &self,
        project_id: ProjectId,
    ) -> anyhow::Result<(Vec<String>, Vec<String>)> {
        // Read from the few ignored identities (a partial index) outwards. `CROSS JOIN`
        // keeps that order on SQLite, whose planner has no statistics and would otherwise
        // walk every finding of the project; PostgreSQL plans it as an inner join.
        let rows = sqlx::query(
            "SELECT DISTINCT f.syntactic_id, f.match_based_id FROM identities i \
             CROSS JOIN findings f WHERE f.project_id = i.project_id AND f.identity = i.identity \
             AND i.project_id = $1 AND i.triage_state = 'ignored'",
        )
        .bind(project_id)
        .fetch_all(self.pool())
        .await?;
        let mut syntactic = Vec::new();
        let mut match_based = Vec::new();
        for row in &rows {
            syntactic.push(col::<String>(row, "syntactic_id")?);
            if let Some(m) = col::<Option<String>>(row, "match_based_id")? {
                match_based.push(m);
            }
        }
        syntactic.sort();
        syntactic.dedup();
        match_based.sort();
        match_based.dedup();
        Ok((syntactic, match_based))
    }

    /// Projects of a deployment: `(id, name, repo_url, created_at, last_scan_at)`.
    pub async fn list_projects(
        &self,
        deployment_id: DeploymentId,
    ) -> anyhow::Result<Vec<ProjectRow>> {
        let rows = sqlx::query(
            "SELECT id, name, repo_url, created_at, last_scan_at FROM projects \
             WHERE deployment_id = $1 ORDER BY name",
        )
        .bind(deployment_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ProjectRow {
                    id: col(r, "id")?,
                    name: col(r, "name")?,
                    repo_url: col(r, "repo_url")?,
                    created_at: col(r, "created_at")?,
                    last_scan_at: col(r, "last_scan_at")?,
                })
            })
            .collect()
    }
}

/// A project (repository).
#[derive(Debug, Clone)]
pub struct ProjectRow {
    pub id: ProjectId,
    pub name: String,
    pub repo_url: Option<String>,
    pub created_at: Micros,
    pub last_scan_at: Option<Micros>,
}
