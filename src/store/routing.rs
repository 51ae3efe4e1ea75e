//! Routing over stored findings: backfilling an integration with what is open, and
//! previewing what filters would have sent. The decisions are [`crate::domain::routing`]'s;
//! this reads the findings and writes what was decided.

use super::findings::{stored_from_row, STORED_SELECT};
use super::messages::{self, Enqueued};
use super::{bulk_insert, col, Cell, Store, Ty};
use crate::domain::event_kind::EventKind;
use crate::domain::events::StoredFinding;
use crate::domain::filters::Filters;
use crate::domain::findings::TriageState;
use crate::domain::integration::Integration;
use crate::domain::mode::RuleMode;
use crate::domain::outbox::Claimant;
use crate::domain::payload;
use crate::domain::routing::{self, Event, FilterFailure, Preview};
use crate::ids::{DeploymentId, ProjectId};
use std::collections::HashSet;

/// Open findings read per transaction of a backfill.
const PAGE: i64 = 5_000;

/// Findings a preview reads: the newest this many of its window.
pub const PREVIEW_LIMIT: i64 = 5_000;

/// What a backfill did (or, dry, would do).
#[derive(Debug, Default)]
pub struct Backfilled {
    /// Open findings queued (or to queue).
    pub findings: usize,
    pub messages: usize,
    /// Matching open findings left out: an earlier backfill sent them.
    pub already_sent: usize,
    pub queued: Vec<Enqueued>,
    pub failures: Vec<FilterFailure>,
}

/// A `semgrep_finding` event of a stored finding.
fn finding_event(f: &StoredFinding) -> Event<'_> {
    Event {
        subject: f.subject(EventKind::Finding),
        object: f.with_facts(payload::semgrep_finding).into(),
    }
}

impl Store {
    /// Queues to `integration` the open findings of its deployment that its rule modes
    /// and filters send, as `semgrep_finding` arrays: each identity once (the newest open
    /// row of it), none triaged as ignored, and, unless `force`, none that an earlier
    /// backfill sent it. Pages of findings are queued in their own transactions. With
    /// `dry_run`, counts and writes nothing.
    pub async fn backfill(
        &self,
        integration: &Integration,
        force: bool,
        dry_run: bool,
        claimant: Option<&dyn Claimant>,
    ) -> anyhow::Result<Backfilled> {
        let mut out = Backfilled::default();
        let shared = [std::sync::Arc::new(integration.clone())];
        let sent: HashSet<(ProjectId, String)> = if force {
            HashSet::new()
        } else {
            sqlx::query("SELECT project_id, identity FROM backfilled WHERE integration_id = $1")
                .bind(integration.id)
                .fetch_all(self.pool())
                .await?
                .iter()
                .map(|r| Ok((col(r, "project_id")?, col(r, "identity")?)))
                .collect::<anyhow::Result<_>>()?
        };
        let mut seen: HashSet<(ProjectId, String)> = HashSet::new();
        let mut before = i64::MAX;
        loop {
            let sql = format!(
                "{STORED_SELECT} WHERE f.deployment_id = $1 AND f.state = 'open' AND f.id < $2 \
                 ORDER BY f.id DESC LIMIT {PAGE}"
            );
            let rows = sqlx::query(&sql)
                .bind(integration.deployment_id)
                .bind(before)
                .fetch_all(self.pool())
                .await?;
            let Some(last) = rows.last() else { break };
            before = col(last, "id")?;
            let page: Vec<StoredFinding> = rows
                .iter()
                .map(stored_from_row)
                .collect::<anyhow::Result<_>>()?;
            let mut fresh = Vec::new();
            for f in page {
                let key = (f.project_id, f.identity.clone());
                if f.triage_state == TriageState::Ignored || !seen.insert(key.clone()) {
                    continue;
                }
                if sent.contains(&key) {
                    if routing::admits(integration, &finding_event(&f)) == Ok(true) {
                        out.already_sent += 1;
                    }
                    continue;
                }
                fresh.push(f);
            }
            let events: Vec<Event> = fresh.iter().map(finding_event).collect();
            let routed = routing::route(
                std::slice::from_ref(integration),
                None,
                &events,
                self.links(),
            );
            out.failures.extend(routed.failures);
            let chosen: Vec<&StoredFinding> = routed
                .selections
                .iter()
                .flat_map(|s| s.events.iter().map(|&n| &fresh[n]))
                .collect();
            out.findings += chosen.len();
            out.messages += routed.outbox.messages.len();
            if dry_run || chosen.is_empty() {
                continue;
            }
            let mut tx = self.begin_write().await?;
            let rows: Vec<Vec<Cell>> = chosen
                .iter()
                .map(|f| {
                    vec![
                        integration.id.into(),
                        f.project_id.into(),
                        f.identity.as_str().into(),
                    ]
                })
                .collect();
            bulk_insert(
                &mut tx,
                self.backend(),
                "backfilled",
                &[
                    ("integration_id", Ty::Int),
                    ("project_id", Ty::Int),
                    ("identity", Ty::Text),
                ],
                &rows,
                "ON CONFLICT (integration_id, project_id, identity) DO NOTHING",
            )
            .await?;
            let queued = messages::enqueue(
                &mut tx,
                self.backend(),
                integration.deployment_id,
                None,
                &routed.outbox,
                &shared,
                claimant,
            )
            .await?;
            tx.commit().await?;
            out.queued.push(queued);
        }
        Ok(out)
    }

    /// The deployment's findings first opened since `since`: each identity once, newest
    /// first, at most [`PREVIEW_LIMIT`].
    pub async fn recent_findings(
        &self,
        deployment_id: DeploymentId,
        since: i64,
    ) -> anyhow::Result<Vec<StoredFinding>> {
        let sql = format!(
            "{STORED_SELECT} WHERE f.deployment_id = $1 AND f.created_at >= $2 \
             AND f.state <> 'removed' ORDER BY f.id DESC LIMIT {PREVIEW_LIMIT}"
        );
        let rows = sqlx::query(&sql)
            .bind(deployment_id)
            .bind(since)
            .fetch_all(self.pool())
            .await?;
        let mut seen = HashSet::new();
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let f = stored_from_row(r)?;
            if seen.insert((f.project_id, f.identity.clone())) {
                out.push(f);
            }
        }
        Ok(out)
    }

    /// How many of the deployment's findings opened since `since` `filters` pass, and of
    /// those how many `modes` notify (every mode when `None`).
    pub async fn preview(
        &self,
        deployment_id: DeploymentId,
        since: i64,
        filters: &Filters,
        modes: Option<&[RuleMode]>,
    ) -> anyhow::Result<Preview> {
        let recent = self.recent_findings(deployment_id, since).await?;
        let subjects: Vec<_> = recent
            .iter()
            .map(|f| f.subject(EventKind::Finding))
            .collect();
        Ok(routing::preview(&subjects, filters, modes))
    }
}
