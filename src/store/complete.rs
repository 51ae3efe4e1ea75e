//! The transaction that records a scan's outcome: the finding lifecycle decided by
//! [`crate::domain::lifecycle::decide`], the per-scan change log, the two webhook objects
//! and the reply to the client. Either all of it is written or none of it.

use super::messages::{self, Claimant, Enqueued};
use super::scans::Scan;
use super::{bulk_insert, col, json_list, named, Backend, Cell, Store, Ty};
use crate::clock::{self, Micros};
use crate::domain::ci::{CompleteReply, Finding, MetadataKeys, Results};
use crate::domain::findings::{Change, TriageState};
use crate::domain::lifecycle::{self, Known, Prior, State};
use crate::domain::mode::RuleMode;
use crate::domain::payload::{self, FindingFacts};
use crate::domain::scan::ScanStatus;
use crate::ids::{self, DeploymentId, ProjectId};
use serde_json::value::RawValue;
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::{Any, Transaction};
use std::collections::{HashMap, HashSet};

/// Values per `IN (…)` list passed as one JSON parameter.
const CHUNK: usize = 5_000;

/// What `/complete` did, and the reply for the client.
#[derive(Debug, Clone)]
pub enum Completion {
    /// This call completed the scan. `queued.claimed`: the messages it queued and
    /// claimed for this process's worker, to hand over.
    Completed {
        notified: usize,
        reply: CompleteReply,
        queued: Enqueued,
    },
    /// The scan had already ended (a retry, or a race lost to another call). A completed
    /// scan carries the reply that was given the first time.
    AlreadyEnded(ScanStatus, Option<CompleteReply>),
}

/// An identity already known to the project.
struct Identity {
    first_seen_scan_id: String,
    first_seen_at: Micros,
    triage_ignored: bool,
}

/// One distinct rule-metadata value of an upload, compacted and stored once.
struct Metadata {
    id: i64,
    compact: Box<RawValue>,
    mode: RuleMode,
    policy_slug: Option<String>,
}

impl Store {
    /// Completes a running scan: applies its uploaded results (if any) to the findings of
    /// its (project, ref), records what changed, and stores its webhook objects.
    /// `block_rules` are the rules in Block mode now: findings of theirs that the client
    /// did not block (the mode changed during the scan) are named in the reply. The
    /// `claimant` takes the messages it wants as they are queued.
    pub async fn complete_scan(
        &self,
        scan: &Scan,
        exit_code: i64,
        stats: &Value,
        block_rules: &HashSet<String>,
        claimant: Option<&dyn Claimant>,
    ) -> anyhow::Result<Completion> {
        // Read before the transaction: a change of integrations racing a completion may
        // land on either side of it.
        let integrations = self.list_integrations(scan.deployment_id).await?;
        let now = clock::now();
        let mut tx = self.writer().begin().await?;
        // Taking the project row first serialises scans of one project (a row lock on
        // PostgreSQL, the write lock on SQLite), so two completions never interleave.
        sqlx::query("UPDATE projects SET last_scan_at = $1 WHERE id = $2")
            .bind(now)
            .bind(scan.project_id)
            .execute(&mut *tx)
            .await?;
        let row = sqlx::query("SELECT status, results, complete_response FROM scans WHERE id = $1")
            .bind(scan.id)
            .fetch_one(&mut *tx)
            .await?;
        let status: ScanStatus = named(&row, "status")?;
        if status != ScanStatus::Running {
            let reply: Option<String> = col(&row, "complete_response")?;
            tx.rollback().await?;
            return Ok(Completion::AlreadyEnded(
                status,
                reply.map(|r| serde_json::from_str(&r)).transpose()?,
            ));
        }
        // A scan that uploaded no results changes no finding.
        let mut applied = match col::<Option<Vec<u8>>>(&row, "results")? {
            Some(compressed) => {
                let body = super::scans::decompress(&compressed)?;
                let results = Results::parse(&body)?;
                apply(&mut tx, self.backend(), scan, &results, now, block_rules).await?
            }
            None => Applied::default(),
        };

        let reply = CompleteReply::new(std::mem::take(&mut applied.override_ids));
        let mut ended = scan.clone();
        ended.completed_at = Some(now);
        ended.exit_code = Some(exit_code);
        let objects: Vec<&str> = applied
            .notified_objects
            .iter()
            .map(|(_, o)| o.as_str())
            .collect();
        let finding_payload = format!("[{}]", objects.join(","));
        let scan_object = ended.semgrep_scan().to_string();
        let outbox =
            messages::messages_for_scan(&integrations, &scan_object, &applied.notified_objects);
        let queued = messages::enqueue(
            &mut tx,
            self.backend(),
            scan.deployment_id,
            Some(scan.id),
            &outbox,
            &integrations,
            claimant,
        )
        .await?;
        sqlx::query(
            "UPDATE scans SET status = 'completed', completed_at = $1, exit_code = $2, stats = $3, \
             results = NULL, n_findings = $4, n_opened = $5, n_fixed = $6, n_notified = $7, \
             scan_payload = $8, finding_payload = $9, complete_response = $10 WHERE id = $11",
        )
        .bind(now)
        .bind(exit_code)
        .bind(stats.to_string())
        .bind(applied.uploaded)
        .bind(applied.opened as i64)
        .bind(applied.fixed as i64)
        .bind(applied.notified_objects.len() as i64)
        .bind(&scan_object)
        .bind(finding_payload)
        .bind(serde_json::to_string(&reply)?)
        .bind(scan.id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Completion::Completed {
            notified: applied.notified_objects.len(),
            reply,
            queued,
        })
    }
}

#[derive(Default)]
struct Applied {
    uploaded: i64,
    opened: usize,
    fixed: usize,
    /// Compact JSON of each `{"semgrep_finding": …}` to send, with its rule's mode.
    notified_objects: Vec<(RuleMode, String)>,
    override_ids: Vec<String>,
}

/// A finding stored on the scanned ref, with the digest of its mutable columns.
struct StoredPrior {
    prior: Prior,
    digest: String,
}

async fn apply(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    scan: &Scan,
    results: &Results<'_>,
    now: Micros,
    block_rules: &HashSet<String>,
) -> anyhow::Result<Applied> {
    let (stored, mut identities) = load_prior(tx, scan).await?;
    let prior: HashMap<String, Prior> = stored
        .iter()
        .map(|(k, s)| (k.clone(), s.prior.clone()))
        .collect();
    // Identities of findings already on this ref came with them; look up the others.
    let keys: Vec<&str> = results
        .findings
        .iter()
        .map(Finding::key)
        .filter(|k| !identities.contains_key(*k))
        .collect();
    identities.extend(load_identities(tx, backend, scan.project_id, &keys).await?);
    let known: HashMap<String, Known> = identities
        .iter()
        .map(|(k, i)| {
            let known = Known {
                triage_ignored: i.triage_ignored,
            };
            (k.clone(), known)
        })
        .collect();
    let decision = lifecycle::decide(results, &prior, &known);

    // Identities seen open for the first time get their first-seen scan: this one.
    let fresh: Vec<Vec<Cell>> = decision
        .open
        .iter()
        .map(|d| results.findings[d.index].key())
        .filter(|k| !identities.contains_key(*k))
        .map(|k| {
            vec![
                scan.project_id.into(),
                k.into(),
                scan.public_id.as_str().into(),
                now.into(),
            ]
        })
        .collect();
    bulk_insert(
        tx,
        backend,
        "identities",
        &[
            ("project_id", Ty::Int),
            ("identity", Ty::Text),
            ("first_seen_scan_id", Ty::Text),
            ("first_seen_at", Ty::Int),
        ],
        &fresh,
        "ON CONFLICT (project_id, identity) DO NOTHING",
    )
    .await?;

    // Write the open findings and the nosemgrep ones, skipping those stored exactly so
    // (a re-scan mostly finds what it found before), and learn the written rows' ids.
    let candidates: Vec<(&Finding<'_>, State)> = decision
        .open
        .iter()
        .map(|d| (&results.findings[d.index], State::Open))
        .chain(
            decision
                .ignores
                .iter()
                .map(|&i| (&results.ignores[i], State::Ignored)),
        )
        .collect();
    let metadata = store_metadata(tx, backend, scan.deployment_id, &candidates).await?;
    let mut writes: Vec<(&Finding<'_>, State, String)> = Vec::with_capacity(candidates.len());
    for (f, state) in candidates {
        let digest = digest(f, &metadata[f.metadata().get()]);
        let unchanged = stored
            .get(f.key())
            .is_some_and(|s| s.prior.state == state && s.digest == digest);
        if !unchanged {
            writes.push((f, state, digest));
        }
    }
    let row_ids = upsert_findings(tx, backend, scan, &writes, &metadata, now).await?;

    // Close what the scan no longer reports.
    let mut changes: Vec<(i64, Change, bool)> = Vec::new();
    let mut applied = Applied {
        uploaded: results.findings.len() as i64,
        ..Applied::default()
    };
    for state in [State::Fixed, State::Ignored, State::Removed] {
        let change = state.closing().expect("a closed state");
        let keys: Vec<&str> = decision
            .closed
            .iter()
            .filter(|(_, s)| *s == state)
            .map(|(k, _)| k.as_str())
            .collect();
        for chunk in keys.chunks(CHUNK) {
            let sql = format!(
                "UPDATE findings SET state = $1, state_updated_at = $2, last_scan_id = $3 \
                 WHERE project_id = $4 AND git_ref = $5 AND identity IN {} RETURNING id",
                json_list(backend, 6)
            );
            let q = sqlx::query(&sql)
                .bind(state.as_str())
                .bind(now)
                .bind(scan.id)
                .bind(scan.project_id)
                .bind(&scan.git_ref)
                .bind(serde_json::to_string(chunk)?);
            for row in q.fetch_all(&mut **tx).await? {
                changes.push((col(&row, "id")?, change, false));
                if state == State::Fixed {
                    applied.fixed += 1;
                }
            }
        }
    }

    // The change log, the `semgrep_finding` objects to send, and late blocks.
    for d in &decision.open {
        let f = &results.findings[d.index];
        let identity = identities.get(f.key());
        if block_rules.contains(f.check_id.as_ref())
            && !f.is_blocking
            && !identity.is_some_and(|i| i.triage_ignored)
        {
            if let Some(m) = &f.match_based_id {
                applied.override_ids.push(m.to_string());
            }
        }
        let Some(change) = d.how.change() else {
            continue;
        };
        applied.opened += 1;
        // Every opening changes the row's state, so the upsert wrote it.
        let Some(&id) = row_ids.get(f.key()) else {
            anyhow::bail!("finding {} was opened but not written", f.key());
        };
        changes.push((id, change, d.notify));
        if d.notify {
            let (first_scan, first_at) = match identity {
                Some(i) => (i.first_seen_scan_id.as_str(), i.first_seen_at),
                None => (scan.public_id.as_str(), now),
            };
            let meta = &metadata[f.metadata().get()];
            let keys: MetadataKeys = serde_json::from_str(meta.compact.get())?;
            let object = payload::semgrep_finding(&FindingFacts {
                syntactic_id: &f.syntactic_id,
                git_ref: &scan.git_ref,
                first_seen_at: first_at,
                first_seen_scan_id: first_scan,
                check_id: &f.check_id,
                path: &f.path,
                line: f.line,
                column: f.column,
                end_line: f.end_line,
                end_column: f.end_column,
                message: &f.message,
                severity: f.severity,
                index: f.index,
                commit_date: f.commit_date.as_deref(),
                metadata: &meta.compact,
                keys: &keys,
            });
            applied.notified_objects.push((meta.mode, object));
        }
    }
    // An ignore that closed an open finding is logged once, as `ignored`, above; one that
    // was already ignored was not written and is not logged again.
    let closed: HashSet<&str> = decision.closed.iter().map(|(k, _)| k.as_str()).collect();
    for &i in &decision.ignores {
        let key = results.ignores[i].key();
        if let (false, Some(&id)) = (closed.contains(key), row_ids.get(key)) {
            changes.push((id, Change::Nosemgrep, false));
        }
    }
    let change_rows: Vec<Vec<Cell>> = changes
        .iter()
        .map(|(id, change, notify)| {
            vec![
                scan.id.into(),
                (*id).into(),
                change.as_str().into(),
                (*notify as i64).into(),
            ]
        })
        .collect();
    bulk_insert(
        tx,
        backend,
        "scan_changes",
        &[
            ("scan_id", Ty::Int),
            ("finding_id", Ty::Int),
            ("change", Ty::Text),
            ("notify", Ty::Int),
        ],
        &change_rows,
        "ON CONFLICT (scan_id, finding_id) DO NOTHING",
    )
    .await?;
    Ok(applied)
}

/// Hash of the columns of a finding that a later scan may change. `commit_date` is left
/// out: it is the HEAD commit's date, new on every commit, and would make every row of
/// every scan a write.
fn digest(f: &Finding<'_>, meta: &Metadata) -> String {
    let mut h = Sha256::new();
    for part in [
        f.syntactic_id.as_ref(),
        f.match_based_id.as_deref().unwrap_or(""),
        f.path.as_ref(),
        f.message.as_ref(),
    ] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    for n in [
        f.line,
        f.column,
        f.end_line,
        f.end_column,
        f.severity,
        f.index,
        meta.id,
    ] {
        h.update(n.to_le_bytes());
    }
    ids::hex(&h.finalize()[..16])
}

/// The findings stored on the scan's ref, and the identities of those that have one.
async fn load_prior(
    tx: &mut Transaction<'static, Any>,
    scan: &Scan,
) -> anyhow::Result<(HashMap<String, StoredPrior>, HashMap<String, Identity>)> {
    let rows = sqlx::query(
        "SELECT f.identity, f.state, f.path, f.rule_id, f.digest, i.first_seen_scan_id, \
         i.first_seen_at, i.triage_state FROM findings f \
         LEFT JOIN identities i ON i.project_id = f.project_id AND i.identity = f.identity \
         WHERE f.project_id = $1 AND f.git_ref = $2",
    )
    .bind(scan.project_id)
    .bind(&scan.git_ref)
    .fetch_all(&mut **tx)
    .await?;
    let mut prior = HashMap::with_capacity(rows.len());
    let mut identities = HashMap::with_capacity(rows.len());
    for row in &rows {
        let key: String = col(row, "identity")?;
        if let Some(first_seen_scan_id) = col::<Option<String>>(row, "first_seen_scan_id")? {
            let identity = Identity {
                first_seen_scan_id,
                first_seen_at: col(row, "first_seen_at")?,
                triage_ignored: named::<TriageState>(row, "triage_state")? == TriageState::Ignored,
            };
            identities.insert(key.clone(), identity);
        }
        let state: String = col(row, "state")?;
        let stored = StoredPrior {
            prior: Prior {
                state: state.parse().map_err(anyhow::Error::msg)?,
                path: col(row, "path")?,
                rule_id: col(row, "rule_id")?,
            },
            digest: col(row, "digest")?,
        };
        prior.insert(key, stored);
    }
    Ok((prior, identities))
}

async fn load_identities(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    project_id: ProjectId,
    keys: &[&str],
) -> anyhow::Result<HashMap<String, Identity>> {
    let mut out = HashMap::new();
    for chunk in keys.chunks(CHUNK) {
        let sql = format!(
            "SELECT identity, first_seen_scan_id, first_seen_at, triage_state FROM identities \
             WHERE project_id = $1 AND identity IN {}",
            json_list(backend, 2)
        );
        let q = sqlx::query(&sql)
            .bind(project_id)
            .bind(serde_json::to_string(chunk)?);
        for row in q.fetch_all(&mut **tx).await? {
            out.insert(
                col(&row, "identity")?,
                Identity {
                    first_seen_scan_id: col(&row, "first_seen_scan_id")?,
                    first_seen_at: col(&row, "first_seen_at")?,
                    triage_ignored: named::<TriageState>(&row, "triage_state")?
                        == TriageState::Ignored,
                },
            );
        }
    }
    Ok(out)
}

/// Stores each distinct metadata value of the upload once (compact JSON, keyed by its
/// hash) and returns them by their raw text as uploaded.
async fn store_metadata<'r>(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    deployment_id: DeploymentId,
    rows: &[(&'r Finding<'r>, State)],
) -> anyhow::Result<HashMap<&'r str, Metadata>> {
    let mut by_raw: HashMap<&str, (String, Metadata)> = HashMap::new();
    for (f, _) in rows {
        let raw = f.metadata().get();
        if by_raw.contains_key(raw) {
            continue;
        }
        let value: Value = serde_json::from_str(raw)?;
        let compact = RawValue::from_string(value.to_string())?;
        let keys: MetadataKeys = serde_json::from_str(compact.get())?;
        let hash = ids::hex(&Sha256::digest(compact.get().as_bytes()));
        let meta = Metadata {
            id: 0,
            mode: RuleMode::from_actions(keys.actions.as_deref()),
            policy_slug: keys.policy.and_then(|p| p.slug),
            compact,
        };
        by_raw.insert(raw, (hash, meta));
    }
    let distinct: Vec<&(String, Metadata)> = by_raw.values().collect();
    let rows: Vec<Vec<Cell>> = distinct
        .iter()
        .map(|(hash, meta)| {
            vec![
                deployment_id.into(),
                hash.as_str().into(),
                meta.compact.get().into(),
            ]
        })
        .collect();
    bulk_insert(
        tx,
        backend,
        "finding_metadata",
        &[
            ("deployment_id", Ty::Int),
            ("hash", Ty::Text),
            ("body", Ty::Text),
        ],
        &rows,
        "ON CONFLICT (deployment_id, hash) DO NOTHING",
    )
    .await?;
    let mut ids_by_hash: HashMap<String, i64> = HashMap::with_capacity(distinct.len());
    for chunk in distinct.chunks(CHUNK) {
        let sql = format!(
            "SELECT id, hash FROM finding_metadata WHERE deployment_id = $1 AND hash IN {}",
            json_list(backend, 2)
        );
        let hashes: Vec<&str> = chunk.iter().map(|(h, _)| h.as_str()).collect();
        let q = sqlx::query(&sql)
            .bind(deployment_id)
            .bind(serde_json::to_string(&hashes)?);
        for row in q.fetch_all(&mut **tx).await? {
            ids_by_hash.insert(col(&row, "hash")?, col(&row, "id")?);
        }
    }
    Ok(by_raw
        .into_iter()
        .map(|(raw, (hash, mut meta))| {
            meta.id = ids_by_hash[&hash];
            (raw, meta)
        })
        .collect())
}

/// The columns of a finding row.
const FINDING_COLS: [(&str, Ty); 25] = [
    ("deployment_id", Ty::Int),
    ("project_id", Ty::Int),
    ("git_ref", Ty::Text),
    ("identity", Ty::Text),
    ("syntactic_id", Ty::Text),
    ("match_based_id", Ty::Text),
    ("rule_id", Ty::Text),
    ("path", Ty::Text),
    ("line", Ty::Int),
    ("col", Ty::Int),
    ("end_line", Ty::Int),
    ("end_col", Ty::Int),
    ("message", Ty::Text),
    ("severity", Ty::Int),
    ("idx", Ty::Int),
    ("commit_date", Ty::Text),
    ("metadata_id", Ty::Int),
    ("mode", Ty::Text),
    ("policy_slug", Ty::Text),
    ("state", Ty::Text),
    ("digest", Ty::Text),
    ("created_at", Ty::Int),
    ("relevant_since", Ty::Int),
    ("state_updated_at", Ty::Int),
    ("last_scan_id", Ty::Int),
];

/// Inserts or updates findings on the scan's ref; returns their row ids by identity.
async fn upsert_findings(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    scan: &Scan,
    rows: &[(&Finding<'_>, State, String)],
    metadata: &HashMap<&str, Metadata>,
    now: Micros,
) -> anyhow::Result<HashMap<String, i64>> {
    let cells: Vec<Vec<Cell>> = rows
        .iter()
        .map(|(f, state, digest)| {
            let meta = &metadata[f.metadata().get()];
            vec![
                scan.deployment_id.into(),
                scan.project_id.into(),
                scan.git_ref.as_str().into(),
                f.key().into(),
                f.syntactic_id.as_ref().into(),
                f.match_based_id.as_deref().into(),
                f.check_id.as_ref().into(),
                f.path.as_ref().into(),
                f.line.into(),
                f.column.into(),
                f.end_line.into(),
                f.end_column.into(),
                f.message.as_ref().into(),
                f.severity.into(),
                f.index.into(),
                f.commit_date.as_deref().into(),
                meta.id.into(),
                meta.mode.as_str().into(),
                meta.policy_slug.as_deref().into(),
                state.as_str().into(),
                digest.as_str().into(),
                now.into(),
                now.into(),
                now.into(),
                scan.id.into(),
            ]
        })
        .collect();
    // A regression is relevant again from now; a finding that stays open keeps its date.
    let tail = "ON CONFLICT (project_id, git_ref, identity) DO UPDATE SET \
         syntactic_id = excluded.syntactic_id, match_based_id = excluded.match_based_id, \
         path = excluded.path, line = excluded.line, col = excluded.col, \
         end_line = excluded.end_line, end_col = excluded.end_col, \
         message = excluded.message, severity = excluded.severity, idx = excluded.idx, \
         commit_date = excluded.commit_date, metadata_id = excluded.metadata_id, \
         mode = excluded.mode, policy_slug = excluded.policy_slug, digest = excluded.digest, \
         relevant_since = CASE WHEN findings.state = 'fixed' AND excluded.state = 'open' \
           THEN excluded.relevant_since ELSE findings.relevant_since END, \
         state_updated_at = CASE WHEN findings.state <> excluded.state \
           THEN excluded.state_updated_at ELSE findings.state_updated_at END, \
         state = excluded.state, last_scan_id = excluded.last_scan_id \
         RETURNING id, identity";
    let returned = bulk_insert(tx, backend, "findings", &FINDING_COLS, &cells, tail).await?;
    let mut ids = HashMap::with_capacity(returned.len());
    for row in &returned {
        ids.insert(col(row, "identity")?, col(row, "id")?);
    }
    Ok(ids)
}
