//! The transaction that records a scan's outcome, in three steps:
//! 1. **load** what the project knows: the findings of the scanned ref and the identities
//!    of the uploaded findings ([`load`]);
//! 2. **decide**, as pure functions: the finding lifecycle ([`lifecycle::decide`]), which
//!    rows change, the change log and late blocks ([`plan`]), the events ([`events`]) and
//!    who is sent them ([`routing::route`]);
//! 3. **write** it ([`write`]), with the scan's webhook objects, its queued messages and
//!    the reply to the client.
//!
//! Either all of it is written or none of it.

use super::messages::{self, Enqueued};
use super::scans::Scan;
use super::{bulk_insert, col, json_list, named, Backend, Cell, Store, Ty};
use crate::clock::{self, Micros};
use crate::domain::ci::{CompleteReply, Finding, MetadataKeys, Results};
use crate::domain::event_kind::EventKind;
use crate::domain::events::{self as finding_events, StoredFinding};
use crate::domain::filters::Subject;
use crate::domain::findings::{Change, Severity, TriageState};
use crate::domain::lifecycle::{self, Decision, Known, Opened, Prior, State};
use crate::domain::mode::RuleMode;
use crate::domain::outbox::Claimant;
use crate::domain::payload::FindingFacts;
use crate::domain::routing::{self, Event, EventObject, FilterFailure, ScanEvent};
use crate::domain::scan::ScanStatus;
use crate::ids::{self, DeploymentId, ProjectId};
use futures_util::TryStreamExt;
use serde_json::value::RawValue;
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::{Any, Transaction};
use std::collections::{HashMap, HashSet};

/// Values per `IN (…)` list passed as one JSON parameter.
const CHUNK: usize = 5_000;

/// Uploaded findings whose identities [`load_prior`] looks up with the ref's findings.
const KEYS_WITH_PRIOR: usize = 64;

/// What `/complete` did, and the reply for the client.
#[derive(Debug, Clone)]
pub enum Completion {
    /// This call completed the scan. `queued.claimed`: the messages it queued and
    /// claimed for this process's worker, to hand over. `failures`: integrations whose
    /// filter expression failed on some of the events (those were not sent to them).
    Completed {
        notified: usize,
        reply: CompleteReply,
        queued: Enqueued,
        failures: Vec<FilterFailure>,
    },
    /// The scan had already ended (a retry, or a race lost to another call). A completed
    /// scan carries the reply that was given the first time.
    AlreadyEnded(ScanStatus, Option<CompleteReply>),
}

/// An identity already known to the project.
struct Identity {
    first_seen_scan_id: String,
    first_seen_at: Micros,
    known: Known,
}

/// What [`lifecycle::decide`] reads of it, lent rather than copied.
impl std::borrow::Borrow<Known> for Identity {
    fn borrow(&self) -> &Known {
        &self.known
    }
}

/// A finding stored on the scanned ref, with the digest of its mutable columns.
struct StoredPrior {
    prior: Prior,
    digest: String,
}

impl std::borrow::Borrow<Prior> for StoredPrior {
    fn borrow(&self) -> &Prior {
        &self.prior
    }
}

/// Step 1: what the project knows about the upload.
struct Loaded {
    /// The findings of the scanned ref, by identity.
    stored: HashMap<String, StoredPrior>,
    /// The identities of those and of the uploaded findings, where known.
    identities: HashMap<String, Identity>,
}

/// One distinct rule-metadata value of an upload, compacted, and stored once by its hash.
struct Metadata {
    hash: String,
    compact: Box<RawValue>,
    value: Value,
    mode: RuleMode,
    policy_slug: Option<String>,
}

/// Step 2: what the scan changes, decided from the upload and what was loaded.
struct Plan<'r> {
    decision: Decision,
    /// By the metadata's raw text as uploaded.
    metadata: HashMap<&'r str, Metadata>,
    /// Identities seen open for the first time: this scan is their first.
    fresh: Vec<&'r str>,
    /// Rows to insert or update (the others are stored exactly so), with their digest.
    writes: Vec<(&'r Finding<'r>, State, String)>,
    /// The change log of opened findings: identity, change, notified.
    opened: Vec<(&'r str, Change, bool)>,
    /// Identities of nosemgrep matches to log (those not closing an open finding).
    nosemgrep: Vec<&'r str>,
    /// Findings of rules in Block mode now that the client did not block.
    override_ids: Vec<String>,
    /// Findings this scan opened of rules in Block mode (see [`blocks`]).
    blocking: usize,
}

impl Store {
    /// Completes a running scan: applies its uploaded results (if any) to the findings of
    /// its (project, ref), records what changed, and queues its events to the
    /// integrations they are routed to. `block_rules` are the rules in Block mode now:
    /// findings of theirs that the client did not block (the mode changed during the
    /// scan) are named in the reply. The `claimant` takes the messages it wants as they
    /// are queued.
    pub async fn complete_scan(
        &self,
        scan: &Scan,
        exit_code: i64,
        stats: &Value,
        block_rules: &HashSet<String>,
        claimant: Option<&dyn Claimant>,
    ) -> anyhow::Result<Completion> {
        // Read before the transaction, from memory (`store::cache`: a change made through
        // another node is seen within a second): a change of integrations racing a
        // completion may land on either side of it.
        let integrations = self.cached_integrations(scan.deployment_id).await?;
        let wanted: HashSet<EventKind> = integrations
            .iter()
            .filter(|i| i.enabled)
            .flat_map(|i| i.events.iter().copied())
            .collect();
        let now = clock::now();
        let backend = self.backend();
        let links = self.links();
        let mut tx = self.begin_write().await?;
        // Taking the project row first serialises scans of one project (a row lock on
        // PostgreSQL, the write lock on SQLite), so two completions never interleave. The
        // scan as it stands is read under that lock, in the same statement (one round trip
        // to the writer less).
        let row = sqlx::query(
            "UPDATE projects SET last_scan_at = $1 WHERE id = $2 RETURNING \
             (SELECT status FROM scans WHERE id = $3) AS status, \
             (SELECT results FROM scans WHERE id = $3) AS results, \
             (SELECT complete_response FROM scans WHERE id = $3) AS complete_response",
        )
        .bind(now)
        .bind(scan.project_id)
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
        let body = match col::<Option<Vec<u8>>>(&row, "results")? {
            Some(compressed) => Some(super::scans::decompress(&compressed)?),
            None => None,
        };
        let mut ended = scan.clone();
        ended.completed_at = Some(now);
        ended.exit_code = Some(exit_code);
        let scan_event = ScanEvent {
            repository: &scan.project,
            git_ref: &scan.git_ref,
            object: ended.semgrep_scan().to_string(),
        };
        // A scan that uploaded no results changes no finding.
        let outcome = match body.as_deref().map(super::kept::read).transpose()? {
            None => Outcome {
                finding_payload: None,
                routed: routing::route(&integrations, Some(&scan_event), &[], links),
                ..Outcome::default()
            },
            Some(results) => {
                let loaded = load(&mut tx, backend, scan, &results).await?;
                let plan = plan(&results, &loaded, block_rules)?;
                let fixed_keys: Vec<&str> = plan
                    .decision
                    .closed
                    .iter()
                    .filter(|(_, s)| *s == State::Fixed)
                    .map(|(k, _)| k.as_str())
                    .collect();
                let fixed = if wanted.contains(&EventKind::FindingFixed) && !fixed_keys.is_empty() {
                    super::findings::stored_on_ref(&mut tx, backend, scan, &fixed_keys).await?
                } else {
                    vec![]
                };
                let keys = metadata_keys(&plan)?;
                let events = events(
                    scan,
                    &results,
                    (&plan, &keys),
                    &loaded,
                    &fixed,
                    &wanted,
                    now,
                )?;
                let routed = routing::route(&integrations, Some(&scan_event), &events, links);
                let (notified, finding_payload) = finding_array(events)?;
                let kept = &self.caches.metadata_ids;
                let written = write(&mut tx, backend, kept, scan, &plan, now).await?;
                Outcome {
                    uploaded: results.findings.len(),
                    opened: plan.opened.len(),
                    fixed: written.fixed,
                    notified,
                    finding_payload: Some(finding_payload),
                    override_ids: plan.override_ids,
                    blocking: plan.blocking,
                    routed,
                    metadata_ids: written.metadata_ids,
                }
            }
        };
        let reply = CompleteReply::new(outcome.override_ids);
        let queued = messages::enqueue(
            &mut tx,
            backend,
            scan.deployment_id,
            Some(scan.id),
            &outcome.routed.outbox,
            &integrations,
            claimant,
        )
        .await?;
        sqlx::query(
            "UPDATE scans SET status = 'completed', completed_at = $1, exit_code = $2, stats = $3, \
             results = NULL, n_findings = $4, n_opened = $5, n_fixed = $6, n_notified = $7, \
             scan_payload = $8, finding_payload = $9, finding_payload_lz4 = $10, \
             complete_response = $11, n_blocking = $12 WHERE id = $13",
        )
        .bind(now)
        .bind(exit_code)
        .bind(stats.to_string())
        .bind(outcome.uploaded as i64)
        .bind(outcome.opened as i64)
        .bind(outcome.fixed as i64)
        .bind(outcome.notified as i64)
        .bind(&scan_event.object)
        .bind(outcome.finding_payload.is_none().then_some("[]"))
        .bind(outcome.finding_payload)
        .bind(serde_json::to_string(&reply)?)
        .bind(outcome.blocking as i64)
        .bind(scan.id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        let kept = &self.caches.metadata_ids;
        for (hash, id) in outcome.metadata_ids {
            kept.put((scan.deployment_id, hash), kept.generation(), id);
        }
        Ok(Completion::Completed {
            notified: outcome.notified,
            reply,
            queued,
            failures: outcome.routed.failures,
        })
    }
}

/// Step 1: the findings stored on the scan's ref, and the identities of the uploaded ones.
async fn load(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    scan: &Scan,
    results: &Results<'_>,
) -> anyhow::Result<Loaded> {
    // The identities of findings already on this ref come with them; those of the first
    // few other uploaded findings in the same statement (one round trip to the writer
    // less for a small upload); any more after it, in chunks. Only a few: each one the
    // statement takes is two index probes, even when it is on the ref.
    let keys: Vec<&str> = results.findings.iter().map(Finding::key).collect();
    let (first, rest) = keys.split_at(keys.len().min(KEYS_WITH_PRIOR));
    let (stored, mut identities) = load_prior(tx, backend, scan, first).await?;
    let rest: Vec<&str> = rest
        .iter()
        .copied()
        .filter(|k| !identities.contains_key(*k))
        .collect();
    identities.extend(load_identities(tx, backend, scan.project_id, &rest).await?);
    Ok(Loaded { stored, identities })
}

/// Step 2, the lifecycle: what opens, closes and is logged, which rows change, and which
/// findings of Block rules the client let through.
fn plan<'r>(
    results: &'r Results<'r>,
    loaded: &Loaded,
    block_rules: &HashSet<String>,
) -> anyhow::Result<Plan<'r>> {
    let decision = lifecycle::decide(results, &loaded.stored, &loaded.identities);

    let fresh: Vec<&str> = decision
        .open
        .iter()
        .map(|d| results.findings[d.index].key())
        .filter(|k| !loaded.identities.contains_key(*k))
        .collect();

    // The open findings and the nosemgrep ones, less those stored exactly so (a re-scan
    // mostly finds what it found before).
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
    let metadata = parse_metadata(&candidates)?;
    let mut writes = Vec::with_capacity(candidates.len());
    for (f, state) in candidates {
        let digest = digest(f, &metadata[f.metadata().get()]);
        let unchanged = loaded
            .stored
            .get(f.key())
            .is_some_and(|s| s.prior.state == state && s.digest == digest);
        if !unchanged {
            writes.push((f, state, digest));
        }
    }

    let mut opened = Vec::new();
    let mut override_ids = Vec::new();
    let mut blocking = 0;
    for d in &decision.open {
        let f = &results.findings[d.index];
        let triage_ignored = loaded
            .identities
            .get(f.key())
            .is_some_and(|i| i.known.triage_ignored);
        if blocks(d.how, metadata[f.metadata().get()].mode, triage_ignored) {
            blocking += 1;
        }
        if block_rules.contains(f.check_id.as_ref()) && !f.is_blocking && !triage_ignored {
            if let Some(m) = &f.match_based_id {
                override_ids.push(m.to_string());
            }
        }
        if let Some(change) = d.how.change() {
            opened.push((f.key(), change, d.notify));
        }
    }
    // An ignore that closed an open finding is logged once, as `ignored`; one that was
    // already ignored is not written and not logged again.
    let closed: HashSet<&str> = decision.closed.iter().map(|(k, _)| k.as_str()).collect();
    let nosemgrep = decision
        .ignores
        .iter()
        .map(|&i| results.ignores[i].key())
        .filter(|k| !closed.contains(k))
        .collect();
    Ok(Plan {
        decision,
        metadata,
        fresh,
        writes,
        opened,
        nosemgrep,
        override_ids,
        blocking,
    })
}

/// Whether an opened finding fails the build that uploaded it: its rule is in Block mode,
/// it is not triaged as ignored, and this change brought it (new in the project, back
/// after a fix, or back after being ignored or removed). A finding already known on
/// another ref (what a pull request's branch shares with `main`) does not block it.
fn blocks(how: Opened, mode: RuleMode, triage_ignored: bool) -> bool {
    mode == RuleMode::Block
        && !triage_ignored
        && matches!(how, Opened::New | Opened::Regression | Opened::Reopened)
}

/// Step 2, the events: a `semgrep_finding` for every notified finding; when some
/// integration receives them, a `finding_reopened` for every notified regression and a
/// `finding_fixed` for every finding closed as fixed (`fixed`, as stored) that is not
/// triaged as ignored. The plan comes with the keys of its metadata ([`metadata_keys`]);
/// the `semgrep_finding` objects are written when a body takes them.
fn events<'a>(
    scan: &'a Scan,
    results: &'a Results<'a>,
    (plan, keys): (&'a Plan<'a>, &'a HashMap<&'a str, MetadataKeys<'a>>),
    loaded: &'a Loaded,
    fixed: &'a [StoredFinding],
    wanted: &HashSet<EventKind>,
    now: Micros,
) -> anyhow::Result<Vec<Event<'a>>> {
    let mut out = Vec::new();
    for d in plan.decision.notified() {
        let f = &results.findings[d.index];
        let (first_scan, first_at) = match loaded.identities.get(f.key()) {
            Some(i) => (i.first_seen_scan_id.as_str(), i.first_seen_at),
            None => (scan.public_id.as_str(), now),
        };
        let meta = &plan.metadata[f.metadata().get()];
        let facts = FindingFacts {
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
            keys: &keys[f.metadata().get()],
        };
        let subject = |event| Subject {
            event,
            repository: &scan.project,
            git_ref: &scan.git_ref,
            rule: &f.check_id,
            path: &f.path,
            line: f.line,
            message: &f.message,
            severity: Severity::from_level(f.severity),
            mode: meta.mode,
            metadata: &meta.value,
        };
        let reopened = (d.how == Opened::Regression
            && wanted.contains(&EventKind::FindingReopened))
        .then(|| finding_events::finding_reopened(&facts, scan.public_id.as_str(), now));
        out.push(Event {
            subject: subject(EventKind::Finding),
            object: EventObject::Finding(facts),
        });
        if let Some(object) = reopened {
            out.push(Event {
                subject: subject(EventKind::FindingReopened),
                object: object.into(),
            });
        }
    }
    for f in fixed
        .iter()
        .filter(|f| f.triage_state != TriageState::Ignored)
    {
        let object = f
            .with_facts(|facts| finding_events::finding_fixed(facts, scan.public_id.as_str(), now));
        out.push(Event {
            subject: f.subject(EventKind::FindingFixed),
            object: object.into(),
        });
    }
    Ok(out)
}

/// How many `semgrep_finding` objects `events` hold, and those objects as one JSON array
/// in an LZ4 frame, as the scan's row keeps it. Each event goes as soon as its object is
/// compressed, so a scan of many findings never holds its objects twice, nor the array
/// uncompressed.
fn finding_array(events: Vec<Event<'_>>) -> anyhow::Result<(usize, Vec<u8>)> {
    use std::io::Write;
    let mut array = lz4_flex::frame::FrameEncoder::new(Vec::new());
    array.write_all(b"[")?;
    let mut n = 0;
    for event in events
        .into_iter()
        .filter(|e| e.kind() == EventKind::Finding)
    {
        if n > 0 {
            array.write_all(b",")?;
        }
        array.write_all(event.object.json().as_bytes())?;
        n += 1;
    }
    array.write_all(b"]")?;
    Ok((n, array.finish()?))
}

/// What completing a scan did, for its row and the reply.
#[derive(Default)]
struct Outcome {
    uploaded: usize,
    opened: usize,
    fixed: usize,
    notified: usize,
    /// The `semgrep_finding` objects of the notified findings, as one array in an LZ4
    /// frame (`None`: none, for a scan that uploaded no results).
    finding_payload: Option<Vec<u8>>,
    override_ids: Vec<String>,
    blocking: usize,
    routed: routing::Routed,
    /// The ids of the metadata values the findings refer to, by hash, to be kept once
    /// the transaction commits.
    metadata_ids: HashMap<String, i64>,
}

/// What [`write`] counted, and the metadata ids it used.
struct Written {
    fixed: usize,
    metadata_ids: HashMap<String, i64>,
}

/// Step 3: the identities, metadata, findings and change log the plan decided.
async fn write(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    kept: &MetadataIds,
    scan: &Scan,
    plan: &Plan<'_>,
    now: Micros,
) -> anyhow::Result<Written> {
    let fresh: Vec<Vec<Cell>> = plan
        .fresh
        .iter()
        .map(|k| {
            vec![
                scan.project_id.into(),
                (*k).into(),
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
    let metadata_ids =
        store_metadata(tx, backend, kept, scan.deployment_id, &plan.metadata).await?;
    let row_ids = upsert_findings(
        tx,
        backend,
        scan,
        &plan.writes,
        &plan.metadata,
        &metadata_ids,
        now,
    )
    .await?;

    // Close what the scan no longer reports.
    let mut changes: Vec<(i64, Change, bool)> = Vec::new();
    let mut fixed = 0;
    for state in [State::Fixed, State::Ignored, State::Removed] {
        let change = state.closing().expect("a closed state");
        let keys: Vec<&str> = plan
            .decision
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
                    fixed += 1;
                }
            }
        }
    }
    // Every opening changes the row's state, so the upsert wrote it.
    for &(key, change, notify) in &plan.opened {
        let Some(&id) = row_ids.get(key) else {
            anyhow::bail!("finding {key} was opened but not written");
        };
        changes.push((id, change, notify));
    }
    for &key in &plan.nosemgrep {
        if let Some(&id) = row_ids.get(key) {
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
    Ok(Written {
        fixed,
        metadata_ids,
    })
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
    ] {
        h.update(n.to_le_bytes());
    }
    h.update(meta.hash.as_bytes());
    ids::hex(&h.finalize()[..16])
}

/// The findings of the scan's tool stored on its ref, and the identities of those that
/// have one, and of those of `keys` that are not on the ref. Other tools' findings are not
/// the scan's to close.
async fn load_prior(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    scan: &Scan,
    keys: &[&str],
) -> anyhow::Result<(HashMap<String, StoredPrior>, HashMap<String, Identity>)> {
    // The second part's rows have no state: identities only.
    let sql = format!(
        "SELECT f.identity, f.state, f.path, f.rule_id, f.digest, i.first_seen_scan_id, \
         i.first_seen_at, i.triage_state FROM findings f \
         LEFT JOIN identities i ON i.project_id = f.project_id AND i.identity = f.identity \
         WHERE f.project_id = $1 AND f.git_ref = $2 AND f.tool = $3 \
         UNION ALL \
         SELECT i.identity, NULL, NULL, NULL, NULL, i.first_seen_scan_id, i.first_seen_at, \
         i.triage_state FROM identities i WHERE i.project_id = $1 AND i.identity IN {} \
         AND NOT EXISTS (SELECT 1 FROM findings f WHERE f.project_id = $1 \
           AND f.git_ref = $2 AND f.tool = $3 AND f.identity = i.identity)",
        json_list(backend, 4)
    );
    let query = sqlx::query(&sql)
        .bind(scan.project_id)
        .bind(&scan.git_ref)
        .bind(&scan.tool)
        .bind(serde_json::to_string(keys)?);
    // Row by row: a tool's 100,000 stored findings as rows take far more than as maps.
    let mut rows = query.fetch(&mut **tx);
    let mut prior = HashMap::new();
    let mut identities = HashMap::new();
    while let Some(row) = rows.try_next().await? {
        let row = &row;
        let key: String = col(row, "identity")?;
        if let Some(first_seen_scan_id) = col::<Option<String>>(row, "first_seen_scan_id")? {
            let identity = Identity {
                first_seen_scan_id,
                first_seen_at: col(row, "first_seen_at")?,
                known: Known {
                    triage_ignored: named::<TriageState>(row, "triage_state")?
                        == TriageState::Ignored,
                },
            };
            identities.insert(key.clone(), identity);
        }
        let Some(state) = col::<Option<String>>(row, "state")? else {
            continue;
        };
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
                    known: Known {
                        triage_ignored: named::<TriageState>(&row, "triage_state")?
                            == TriageState::Ignored,
                    },
                },
            );
        }
    }
    Ok(out)
}

/// The keys of each distinct metadata value, by its raw text as uploaded (as
/// [`Plan::metadata`]).
fn metadata_keys<'p>(plan: &'p Plan<'_>) -> anyhow::Result<HashMap<&'p str, MetadataKeys<'p>>> {
    plan.metadata
        .iter()
        .map(|(raw, meta)| Ok((*raw, serde_json::from_str(meta.compact.get())?)))
        .collect()
}

/// Each distinct metadata value of the upload, compacted and hashed, by its raw text as
/// uploaded.
fn parse_metadata<'r>(
    rows: &[(&'r Finding<'r>, State)],
) -> anyhow::Result<HashMap<&'r str, Metadata>> {
    let mut by_raw: HashMap<&str, Metadata> = HashMap::new();
    for (f, _) in rows {
        let raw = f.metadata().get();
        if by_raw.contains_key(raw) {
            continue;
        }
        let value: Value = serde_json::from_str(raw)?;
        let compact = RawValue::from_string(value.to_string())?;
        let keys: MetadataKeys = serde_json::from_str(compact.get())?;
        let meta = Metadata {
            hash: ids::hex(&Sha256::digest(compact.get().as_bytes())),
            mode: RuleMode::from_actions(keys.actions.as_deref()),
            policy_slug: keys.policy.and_then(|p| p.slug),
            compact,
            value,
        };
        by_raw.insert(raw, meta);
    }
    Ok(by_raw)
}

/// The ids of stored metadata values kept in memory (`Caches::metadata_ids`).
type MetadataIds = super::cache::Generational<(DeploymentId, String), i64>;

/// Stores each distinct metadata value once (keyed by its hash); their row ids by hash.
/// Rule metadata repeats from scan to scan, so the values' ids come from memory (`kept`)
/// or are looked up, and only the others inserted: no statement in the steady state.
async fn store_metadata(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    kept: &MetadataIds,
    deployment_id: DeploymentId,
    metadata: &HashMap<&str, Metadata>,
) -> anyhow::Result<HashMap<String, i64>> {
    let mut ids_by_hash = HashMap::with_capacity(metadata.len());
    let mut unknown: Vec<&Metadata> = Vec::new();
    for m in metadata.values() {
        match kept.get(&(deployment_id, m.hash.clone())) {
            Some(id) => {
                ids_by_hash.insert(m.hash.clone(), id);
            }
            None => unknown.push(m),
        }
    }
    ids_by_hash.extend(metadata_ids(tx, backend, deployment_id, &unknown).await?);
    let missing: Vec<&Metadata> = unknown
        .iter()
        .copied()
        .filter(|m| !ids_by_hash.contains_key(&m.hash))
        .collect();
    if missing.is_empty() {
        return Ok(ids_by_hash);
    }
    let rows: Vec<Vec<Cell>> = missing
        .iter()
        .map(|meta| {
            vec![
                deployment_id.into(),
                meta.hash.as_str().into(),
                meta.compact.get().into(),
            ]
        })
        .collect();
    let inserted = bulk_insert(
        tx,
        backend,
        "finding_metadata",
        &[
            ("deployment_id", Ty::Int),
            ("hash", Ty::Text),
            ("body", Ty::Text),
        ],
        &rows,
        "ON CONFLICT (deployment_id, hash) DO NOTHING RETURNING id, hash",
    )
    .await?;
    for row in &inserted {
        ids_by_hash.insert(col(row, "hash")?, col(row, "id")?);
    }
    // Values another transaction stored meanwhile (PostgreSQL) were not returned.
    let raced: Vec<&Metadata> = missing
        .into_iter()
        .filter(|m| !ids_by_hash.contains_key(&m.hash))
        .collect();
    ids_by_hash.extend(metadata_ids(tx, backend, deployment_id, &raced).await?);
    Ok(ids_by_hash)
}

/// The row ids of stored metadata values, by hash (values not stored are left out).
async fn metadata_ids(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    deployment_id: DeploymentId,
    values: &[&Metadata],
) -> anyhow::Result<HashMap<String, i64>> {
    let mut ids_by_hash: HashMap<String, i64> = HashMap::with_capacity(values.len());
    for chunk in values.chunks(CHUNK) {
        let sql = format!(
            "SELECT id, hash FROM finding_metadata WHERE deployment_id = $1 AND hash IN {}",
            json_list(backend, 2)
        );
        let hashes: Vec<&str> = chunk.iter().map(|m| m.hash.as_str()).collect();
        let q = sqlx::query(&sql)
            .bind(deployment_id)
            .bind(serde_json::to_string(&hashes)?);
        for row in q.fetch_all(&mut **tx).await? {
            ids_by_hash.insert(col(&row, "hash")?, col(&row, "id")?);
        }
    }
    Ok(ids_by_hash)
}

/// The columns of a finding row.
const FINDING_COLS: [(&str, Ty); 26] = [
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
    ("tool", Ty::Text),
];

/// Inserts or updates findings on the scan's ref; returns their row ids by identity.
async fn upsert_findings(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    scan: &Scan,
    rows: &[(&Finding<'_>, State, String)],
    metadata: &HashMap<&str, Metadata>,
    metadata_ids: &HashMap<String, i64>,
    now: Micros,
) -> anyhow::Result<HashMap<String, i64>> {
    let mut ids = HashMap::with_capacity(rows.len());
    // Part by part: the cells and returned rows of a scan of 100,000 findings would take
    // more memory than the findings themselves.
    for part in rows.chunks(UPSERT_PART) {
        let cells: Vec<Vec<Cell>> = part
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
                    metadata_ids[&meta.hash].into(),
                    meta.mode.as_str().into(),
                    meta.policy_slug.as_deref().into(),
                    state.as_str().into(),
                    digest.as_str().into(),
                    now.into(),
                    now.into(),
                    now.into(),
                    scan.id.into(),
                    scan.tool.as_str().into(),
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
        for row in &returned {
            ids.insert(col(row, "identity")?, col(row, "id")?);
        }
    }
    Ok(ids)
}

/// Findings per part of [`upsert_findings`].
const UPSERT_PART: usize = 5_000;
