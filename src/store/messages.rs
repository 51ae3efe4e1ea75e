//! The delivery queue and its log. Messages are enqueued in the transaction that records a
//! scan's outcome; workers claim due ones with a lease (`FOR UPDATE SKIP LOCKED` on
//! PostgreSQL), so a killed worker's claims are taken again once the lease runs out.

use super::{bulk_insert, col, named, Backend, Cell, Store, Ty};
use crate::clock::{self, Micros};
use crate::domain::event_kind::EventKind;
use crate::domain::integration::Integration;
use crate::domain::outbox::{
    self, Claimant, Claimed, MessageStatus, Next, Outbox, Outcome, Streak,
};
use crate::ids::{DeploymentId, IntegrationId, MessageId, ScanId};
use anyhow::Context;
use bytes::Bytes;
use serde_json::{json, Value};
use sqlx::any::AnyRow;
use sqlx::{Any, Transaction};
use std::collections::HashMap;
use std::sync::Arc;

/// A message as the delivery log shows it.
#[derive(Debug, Clone)]
pub struct MessageRow {
    pub public_id: MessageId,
    /// `None` once the integration was deleted (its log stays).
    pub integration: Option<IntegrationId>,
    pub scan_id: Option<ScanId>,
    pub kind: EventKind,
    pub status: MessageStatus,
    pub attempts: i64,
    pub next_attempt_at: Micros,
    pub created_at: Micros,
    pub delivered_at: Option<Micros>,
    pub body: String,
}

/// What asking to send a message again did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resend {
    Queued,
    /// No such message in the deployment (or a Test notification).
    Unknown,
    /// Its integration was deleted: nothing would send it.
    IntegrationDeleted,
}

/// One logged attempt.
#[derive(Debug, Clone)]
pub struct AttemptRow {
    pub attempted_at: Micros,
    pub status_code: Option<i64>,
    pub latency_us: i64,
    pub response_excerpt: Option<String>,
    pub error: Option<String>,
}

/// One attempt's result, to be logged.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    pub message_id: i64,
    pub integration_id: i64,
    pub attempted_at: Micros,
    /// The lease of the claim the attempt was made under: an outcome arriving after the
    /// message was claimed again (this lease ran out) moves it only if it was delivered.
    pub lease_until: Micros,
    pub outcome: Outcome,
    pub next: Next,
}

/// Stores a body; its id.
async fn insert_payload(conn: &mut sqlx::AnyConnection, body: &str) -> anyhow::Result<i64> {
    Ok(insert_payloads(conn, &[body]).await?[0])
}

/// Stores bodies in one statement; their ids, in the order of `bodies`. A multi-row insert
/// numbers its rows in the order of its `VALUES` on both backends (one statement takes
/// its ids in order, from SQLite's rowid or PostgreSQL's sequence), so the returned ids,
/// sorted, are the bodies' ids in order.
async fn insert_payloads<S: AsRef<str>>(
    conn: &mut sqlx::AnyConnection,
    bodies: &[S],
) -> anyhow::Result<Vec<i64>> {
    if bodies.is_empty() {
        return Ok(vec![]);
    }
    let values: Vec<String> = (1..=bodies.len()).map(|i| format!("(${i})")).collect();
    let sql = format!(
        "INSERT INTO payloads (body) VALUES {} RETURNING id",
        values.join(",")
    );
    let mut q = sqlx::query(&sql);
    for body in bodies {
        q = q.bind(body.as_ref());
    }
    let mut ids: Vec<i64> = q
        .fetch_all(conn)
        .await?
        .iter()
        .map(|r| col(r, "id"))
        .collect::<anyhow::Result<_>>()?;
    anyhow::ensure!(ids.len() == bodies.len(), "payloads were not all stored");
    ids.sort_unstable();
    Ok(ids)
}

/// What [`enqueue`] did: the messages it claimed, and how many it left pending.
#[derive(Debug, Clone, Default)]
pub struct Enqueued {
    pub claimed: Vec<Claimed>,
    pub pending: usize,
}

/// Enqueues an outbox inside the caller's transaction, due now. Messages that `claimant`
/// takes are written as being delivered, under its lease, and returned: the caller hands
/// them to its worker once the transaction commits. The others are left pending.
pub async fn enqueue(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    deployment_id: DeploymentId,
    scan_id: Option<ScanId>,
    outbox: &Outbox,
    integrations: &[Arc<Integration>],
    claimant: Option<&dyn Claimant>,
) -> anyhow::Result<Enqueued> {
    if outbox.messages.is_empty() {
        return Ok(Enqueued::default());
    }
    let payload_ids = insert_payloads(tx, &outbox.payloads).await?;
    // Each integration's messages are claimed together or not at all.
    let mut leases: HashMap<i64, Option<Micros>> = HashMap::new();
    for m in &outbox.messages {
        leases.entry(m.integration_id).or_insert(None);
    }
    if let Some(claimant) = claimant {
        for (integration, lease) in leases.iter_mut() {
            let n = outbox
                .messages
                .iter()
                .filter(|m| m.integration_id == *integration)
                .count();
            *lease = claimant.claim(*integration, n);
        }
    }
    let now = clock::now();
    let public_ids: Vec<MessageId> = outbox
        .messages
        .iter()
        .map(|_| MessageId::generate())
        .collect();
    let rows: Vec<Vec<Cell>> = outbox
        .messages
        .iter()
        .zip(&public_ids)
        .map(|(m, pid)| {
            let lease = leases[&m.integration_id];
            vec![
                pid.as_str().into(),
                deployment_id.into(),
                m.integration_id.into(),
                scan_id.map_or(Cell::Null, Cell::from),
                m.kind.as_str().into(),
                payload_ids[m.payload].into(),
                if lease.is_some() {
                    MessageStatus::Delivering
                } else {
                    MessageStatus::Pending
                }
                .as_str()
                .into(),
                lease.map_or(Cell::Null, Cell::Int),
                now.into(),
                now.into(),
            ]
        })
        .collect();
    let inserted = bulk_insert(
        tx,
        backend,
        "messages",
        &[
            ("public_id", Ty::Text),
            ("deployment_id", Ty::Int),
            ("integration_id", Ty::Int),
            ("scan_id", Ty::Int),
            ("kind", Ty::Text),
            ("payload_id", Ty::Int),
            ("status", Ty::Text),
            ("lease_until", Ty::Int),
            ("next_attempt_at", Ty::Int),
            ("created_at", Ty::Int),
        ],
        &rows,
        "RETURNING id, public_id",
    )
    .await?;
    let pending = outbox
        .messages
        .iter()
        .filter(|m| leases[&m.integration_id].is_none())
        .count();
    if pending == outbox.messages.len() {
        return Ok(Enqueued {
            claimed: vec![],
            pending,
        });
    }
    let ids: HashMap<MessageId, i64> = inserted
        .iter()
        .map(|r| Ok((col(r, "public_id")?, col(r, "id")?)))
        .collect::<anyhow::Result<_>>()?;
    let bodies: Vec<Bytes> = outbox
        .payloads
        .iter()
        .map(|b| Bytes::from(b.clone()))
        .collect();
    // The integrations as given (the cached ones, from `/complete`): the worker reuses
    // what it prepared for one (its URL and keys) while it is handed the same.
    let shared: HashMap<i64, Arc<Integration>> = integrations
        .iter()
        .filter(|i| leases.get(&i.id).is_some_and(Option::is_some))
        .map(|i| (i.id, i.clone()))
        .collect();
    let mut claimed = Vec::new();
    for (m, pid) in outbox.messages.iter().zip(public_ids) {
        let (Some(lease_until), Some(integration)) =
            (leases[&m.integration_id], shared.get(&m.integration_id))
        else {
            continue;
        };
        let Some(&id) = ids.get(&pid) else {
            anyhow::bail!("message {pid} was not written");
        };
        claimed.push(Claimed {
            id,
            public_id: pid,
            kind: m.kind,
            body: bodies[m.payload].clone(),
            attempts: 0,
            integration: integration.clone(),
            lease_until,
        });
    }
    Ok(Enqueued { claimed, pending })
}

/// How many of `rows` belong to an integration.
fn count_of(rows: &[AnyRow], integration: i64) -> anyhow::Result<i64> {
    let mut n = 0;
    for r in rows {
        if col::<i64>(r, "integration_id")? == integration {
            n += 1;
        }
    }
    Ok(n)
}

/// The distinct values of an integer column.
fn distinct(rows: &[AnyRow], column: &str) -> anyhow::Result<Vec<i64>> {
    let mut ids: Vec<i64> = rows
        .iter()
        .map(|r| col::<i64>(r, column))
        .collect::<anyhow::Result<_>>()?;
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

fn message_from_row(r: &AnyRow) -> anyhow::Result<MessageRow> {
    Ok(MessageRow {
        public_id: col(r, "public_id")?,
        integration: col(r, "integration")?,
        scan_id: col(r, "scan_id")?,
        kind: named(r, "kind")?,
        status: named(r, "status")?,
        attempts: col(r, "attempts")?,
        next_attempt_at: col(r, "next_attempt_at")?,
        created_at: col(r, "created_at")?,
        delivered_at: col(r, "delivered_at")?,
        body: col(r, "body")?,
    })
}

const MESSAGE_COLUMNS: &str = "m.public_id, i.public_id AS integration, \
    m.scan_id, m.kind, \
    m.status, m.attempts, m.next_attempt_at, m.created_at, m.delivered_at, p.body";

impl Store {
    /// Holds an integration's messages until `until` (its endpoint answered 429 with
    /// `Retry-After`): its pending messages come due no sooner, and `released` (claimed
    /// here, not yet sent) go back to pending, due then.
    pub async fn hold_integration(
        &self,
        integration_id: i64,
        until: Micros,
        released: &[i64],
    ) -> anyhow::Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE messages SET next_attempt_at = $1 WHERE integration_id = $2 \
             AND status = 'pending' AND next_attempt_at < $1",
        )
        .bind(until)
        .bind(integration_id)
        .execute(&mut *tx)
        .await?;
        for chunk in released.chunks(500) {
            let list: Vec<String> = chunk.iter().map(i64::to_string).collect();
            sqlx::query(&format!(
                "UPDATE messages SET status = 'pending', lease_until = NULL, next_attempt_at = $1 \
                 WHERE status = 'delivering' AND id IN ({})",
                list.join(",")
            ))
            .bind(until)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The internal ids of the integrations that are sent to.
    pub async fn enabled_integration_ids(&self) -> anyhow::Result<Vec<i64>> {
        sqlx::query("SELECT id FROM integrations WHERE enabled = 1 ORDER BY id")
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(|r| col::<i64>(r, "id"))
            .collect()
    }

    /// Claims due messages until `lease_until`: for each `(integration id, n)` of `limits`,
    /// up to `n` of that integration's messages, oldest due first. Messages whose lease ran
    /// out (their process died mid-attempt) are taken before pending ones.
    pub async fn claim_messages(
        &self,
        now: Micros,
        lease_until: Micros,
        limits: &[(i64, i64)],
    ) -> anyhow::Result<Vec<Claimed>> {
        let limits: Vec<(i64, i64)> = limits.iter().copied().filter(|l| l.1 > 0).collect();
        if limits.is_empty() {
            return Ok(vec![]);
        }
        // SQLite has one writer at a time: the UPDATE itself is the lock.
        let lock = self.skip_locked();
        let returning = "RETURNING id, public_id, integration_id, kind, payload_id, attempts";
        let ids: Vec<String> = limits.iter().map(|l| l.0.to_string()).collect();
        // Each statement reads an index range in order and stops at its limit, so a claim
        // costs the same however many messages are queued.
        // `+ 0` keeps the integration out of index choice: the lease index holds only the
        // messages being sent, the integration's index every message it ever had.
        let expired = format!(
            "UPDATE messages SET status = 'delivering', lease_until = $1 WHERE id IN ( \
               SELECT m.id FROM messages m WHERE m.status = 'delivering' AND m.lease_until < $2 \
               AND m.integration_id + 0 IN ({}) ORDER BY m.lease_until LIMIT $3 {lock}) \
             {returning}",
            ids.join(",")
        );
        let pending = format!(
            "UPDATE messages SET status = 'delivering', lease_until = $1 WHERE id IN ( \
               SELECT m.id FROM messages m WHERE m.integration_id = $3 \
               AND m.status = 'pending' AND m.next_attempt_at <= $2 \
               ORDER BY m.next_attempt_at, m.id LIMIT $4 {lock}) {returning}"
        );
        let mut tx = self.begin_write().await?;
        self.relax_commit(&mut tx).await?;
        let total: i64 = limits.iter().map(|l| l.1).sum();
        let mut rows = sqlx::query(&expired)
            .bind(lease_until)
            .bind(now)
            .bind(total)
            .fetch_all(&mut *tx)
            .await?;
        for (integration, limit) in limits {
            let taken = count_of(&rows, integration)?;
            if taken < limit {
                rows.extend(
                    sqlx::query(&pending)
                        .bind(lease_until)
                        .bind(now)
                        .bind(integration)
                        .bind(limit - taken)
                        .fetch_all(&mut *tx)
                        .await?,
                );
            }
        }
        tx.commit().await?;
        if rows.is_empty() {
            return Ok(vec![]);
        }
        let integrations: Vec<Arc<Integration>> = self
            .integrations_by_ids(&distinct(&rows, "integration_id")?)
            .await?
            .into_iter()
            .map(Arc::new)
            .collect();
        let payloads = self.payloads(&distinct(&rows, "payload_id")?).await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let integration_id: i64 = col(row, "integration_id")?;
            let payload_id: i64 = col(row, "payload_id")?;
            // An integration deleted since the claim: its deletion failed its messages.
            let Some(integration) = integrations.iter().find(|i| i.id == integration_id) else {
                continue;
            };
            let Some(body) = payloads.get(&payload_id) else {
                anyhow::bail!("message payload {payload_id} is missing");
            };
            out.push(Claimed {
                id: col(row, "id")?,
                public_id: col(row, "public_id")?,
                kind: named(row, "kind")?,
                body: body.clone(),
                attempts: col(row, "attempts")?,
                integration: integration.clone(),
                lease_until,
            });
        }
        Ok(out)
    }

    /// Bodies by payload id. Payloads never change once written, so any connection reads
    /// them.
    async fn payloads(&self, ids: &[i64]) -> anyhow::Result<HashMap<i64, Bytes>> {
        let list: Vec<String> = ids.iter().map(i64::to_string).collect();
        let sql = format!(
            "SELECT id, body FROM payloads WHERE id IN ({})",
            list.join(",")
        );
        sqlx::query(&sql)
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(|r| Ok((col(r, "id")?, Bytes::from(col::<String>(r, "body")?))))
            .collect()
    }

    /// Logs a batch of attempts and moves their messages on, in one transaction; tracks
    /// each integration's failure streak, disabling it on `410 Gone` or after failing
    /// continuously for `disable_after`.
    pub async fn record_attempts(
        &self,
        records: &[AttemptRecord],
        disable_after: Micros,
    ) -> anyhow::Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        // Per integration, the batch's last outcome decides the streak.
        let mut last: Vec<&AttemptRecord> = Vec::new();
        for r in records {
            match last
                .iter_mut()
                .find(|l| l.integration_id == r.integration_id)
            {
                Some(l) if l.attempted_at <= r.attempted_at => *l = r,
                Some(_) => {}
                None => last.push(r),
            }
        }
        let mut tx = self.begin_write().await?;
        self.relax_commit(&mut tx).await?;
        // The integrations first, then their messages: the order in which deleting an
        // integration takes them, so that the two never wait for each other.
        let streaks = self.lock_streaks(&mut tx, &last).await?;
        let rows: Vec<Vec<Cell>> = records
            .iter()
            .map(|r| {
                vec![
                    r.message_id.into(),
                    r.attempted_at.into(),
                    r.outcome
                        .status
                        .map_or(Cell::Null, |s| Cell::Int(i64::from(s))),
                    (r.outcome.latency.as_micros() as i64).into(),
                    r.outcome.excerpt.as_deref().into(),
                    r.outcome.error.as_deref().into(),
                ]
            })
            .collect();
        bulk_insert(
            &mut tx,
            self.backend(),
            "attempts",
            &[
                ("message_id", Ty::Int),
                ("attempted_at", Ty::Int),
                ("status_code", Ty::Int),
                ("latency_us", Ty::Int),
                ("response_excerpt", Ty::Text),
                ("error", Ty::Text),
            ],
            &rows,
            "",
        )
        .await?;
        // One statement moves every message of the batch on: those still being delivered
        // (not one that a resend queued again meanwhile, or that its integration's deletion
        // failed) under the claim the attempt was made under. A late outcome of an earlier
        // claim (its lease ran out mid-attempt, another claim took the message) moves it only
        // when it was delivered: the receiver has it, and the current claim's outcome then
        // finds it delivered. A late failure or retry would decide for the attempt under way.
        let moves: Vec<Value> = records
            .iter()
            .map(|r| {
                let (next_at, delivered_at) = match r.next {
                    Next::Delivered => (r.attempted_at, Some(r.attempted_at)),
                    Next::RetryAt(at) => (at, None),
                    Next::Failed => (r.attempted_at, None),
                };
                json!({"id": r.message_id, "status": r.next.status().as_str(), "next_at": next_at,
                       "delivered_at": delivered_at, "lease_until": r.lease_until})
            })
            .collect();
        let source = match self.backend() {
            Backend::Postgres => {
                "json_to_recordset($1::json) AS j(id bigint, status text, \
                 next_at bigint, delivered_at bigint, lease_until bigint)"
            }
            Backend::Sqlite => {
                "(SELECT json_extract(value, '$.id') AS id, \
                 json_extract(value, '$.status') AS status, \
                 json_extract(value, '$.next_at') AS next_at, \
                 json_extract(value, '$.delivered_at') AS delivered_at, \
                 json_extract(value, '$.lease_until') AS lease_until FROM json_each($1)) AS j"
            }
        };
        let sql = format!(
            "UPDATE messages SET status = j.status, attempts = messages.attempts + 1, \
             next_attempt_at = j.next_at, delivered_at = j.delivered_at, lease_until = NULL \
             FROM {source} WHERE messages.id = j.id AND messages.status = 'delivering' \
             AND (messages.lease_until = j.lease_until OR j.status = 'delivered')"
        );
        sqlx::query(&sql)
            .bind(Value::Array(moves).to_string())
            .execute(&mut *tx)
            .await?;
        let streaks_moved = self
            .apply_streaks(&mut tx, &last, &streaks, disable_after)
            .await?;
        tx.commit().await?;
        if streaks_moved {
            // Integrations as cached now hold an old streak (or say enabled).
            drop(self.integrations_changing());
        }
        Ok(())
    }

    /// Reads the failure streak of each integration of a batch, under lock on PostgreSQL
    /// (in id order, so two nodes recording at once neither wait for each other nor both
    /// start a streak). An integration deleted meanwhile is missing from the map.
    async fn lock_streaks(
        &self,
        tx: &mut Transaction<'static, Any>,
        last: &[&AttemptRecord],
    ) -> anyhow::Result<HashMap<i64, Option<Micros>>> {
        let ids: Vec<String> = last.iter().map(|r| r.integration_id.to_string()).collect();
        let lock = self.for_update();
        let rows = sqlx::query(&format!(
            "SELECT id, failing_since FROM integrations WHERE id IN ({}) ORDER BY id {lock}",
            ids.join(",")
        ))
        .fetch_all(&mut **tx)
        .await?;
        let mut since = HashMap::with_capacity(rows.len());
        for r in &rows {
            since.insert(col(r, "id")?, col(r, "failing_since")?);
        }
        Ok(since)
    }

    /// Moves each integration's failure streak on after its last attempt of a batch, as
    /// [`outbox::streak`] decides, from the streaks [`Self::lock_streaks`] read.
    async fn apply_streaks(
        &self,
        tx: &mut Transaction<'static, Any>,
        last: &[&AttemptRecord],
        since: &HashMap<i64, Option<Micros>>,
        disable_after: Micros,
    ) -> anyhow::Result<bool> {
        // Ended streaks: all of them in one statement.
        let mut ended = Vec::new();
        let mut moved = false;
        for r in last {
            // An integration deleted meanwhile has no streak left to move.
            let Some(&failing_since) = since.get(&r.integration_id) else {
                continue;
            };
            match outbox::streak(&r.outcome, failing_since, r.attempted_at, disable_after) {
                Streak::Ended if failing_since.is_some() => {
                    ended.push(r.integration_id.to_string())
                }
                Streak::Ended => {}
                Streak::Failing { since } if failing_since == Some(since) => {}
                Streak::Failing { since } => {
                    moved = true;
                    sqlx::query("UPDATE integrations SET failing_since = $1 WHERE id = $2")
                        .bind(since)
                        .bind(r.integration_id)
                        .execute(&mut **tx)
                        .await?;
                }
                Streak::Disable { since, reason } => {
                    moved = true;
                    sqlx::query(
                        "UPDATE integrations SET enabled = 0, disabled_reason = $1, \
                         failing_since = $2 WHERE id = $3",
                    )
                    .bind(reason)
                    .bind(since)
                    .bind(r.integration_id)
                    .execute(&mut **tx)
                    .await?;
                }
            }
        }
        if !ended.is_empty() {
            sqlx::query(&format!(
                "UPDATE integrations SET failing_since = NULL WHERE id IN ({})",
                ended.join(",")
            ))
            .execute(&mut **tx)
            .await?;
        }
        Ok(moved || !ended.is_empty())
    }

    /// Claims and attempt records need not wait for the disk: losing one in a crash only
    /// means a message is sent again (at-least-once, deduplicated by its `webhook-id`).
    /// The queueing of messages, with the scan outcome, always waits.
    async fn relax_commit(&self, tx: &mut Transaction<'static, Any>) -> anyhow::Result<()> {
        if self.backend() == Backend::Postgres {
            sqlx::query("SET LOCAL synchronous_commit = off")
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    /// The delivery log, newest first, optionally of one integration, status or scan
    /// (internal scan id).
    pub async fn list_messages(
        &self,
        deployment_id: DeploymentId,
        integration: Option<&IntegrationId>,
        status: Option<MessageStatus>,
        scan_id: Option<ScanId>,
        limit: i64,
    ) -> anyhow::Result<Vec<MessageRow>> {
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages m \
             JOIN payloads p ON p.id = m.payload_id \
             LEFT JOIN integrations i ON i.id = m.integration_id \
             WHERE m.deployment_id = $1 AND ($2 = '' OR i.public_id = $2) \
             AND ($3 = '' OR m.status = $3) AND ($4 = 0 OR m.scan_id = $4) \
             ORDER BY m.id DESC LIMIT $5"
        );
        let rows = sqlx::query(&sql)
            .bind(deployment_id)
            .bind(integration.map_or("", IntegrationId::as_str))
            .bind(status.map_or("", MessageStatus::as_str))
            .bind(scan_id.map_or(0, |s| s.0))
            .bind(limit)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(message_from_row).collect()
    }

    /// One message and its attempts.
    pub async fn message(
        &self,
        deployment_id: DeploymentId,
        public_id: &MessageId,
    ) -> anyhow::Result<Option<(MessageRow, Vec<AttemptRow>)>> {
        let sql = format!(
            "SELECT m.id, {MESSAGE_COLUMNS} FROM messages m \
             JOIN payloads p ON p.id = m.payload_id \
             LEFT JOIN integrations i ON i.id = m.integration_id \
             WHERE m.deployment_id = $1 AND m.public_id = $2"
        );
        let Some(row) = sqlx::query(&sql)
            .bind(deployment_id)
            .bind(public_id)
            .fetch_optional(self.pool())
            .await?
        else {
            return Ok(None);
        };
        let id: i64 = col(&row, "id")?;
        let attempts = sqlx::query(
            "SELECT attempted_at, status_code, latency_us, response_excerpt, error FROM attempts \
             WHERE message_id = $1 ORDER BY id",
        )
        .bind(id)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(|r| {
            Ok(AttemptRow {
                attempted_at: col(r, "attempted_at")?,
                status_code: col(r, "status_code")?,
                latency_us: col(r, "latency_us")?,
                response_excerpt: col(r, "response_excerpt")?,
                error: col(r, "error")?,
            })
        })
        .collect::<anyhow::Result<_>>()?;
        Ok(Some((message_from_row(&row)?, attempts)))
    }

    /// Queues a message again, due now (same `webhook-id`). Test notifications are not
    /// resent (the Test action sends a new one), nor messages of a deleted integration.
    pub async fn resend(
        &self,
        deployment_id: DeploymentId,
        public_id: &MessageId,
    ) -> anyhow::Result<Resend> {
        let done = sqlx::query(
            "UPDATE messages SET status = 'pending', next_attempt_at = $1, lease_until = NULL \
             WHERE deployment_id = $2 AND public_id = $3 AND kind <> $4 AND integration_id IN \
             (SELECT id FROM integrations WHERE deployment_id = $2)",
        )
        .bind(clock::now())
        .bind(deployment_id)
        .bind(public_id)
        .bind(EventKind::Test.as_str())
        .execute(self.writer())
        .await?;
        if done.rows_affected() == 1 {
            return Ok(Resend::Queued);
        }
        let left = sqlx::query(
            "SELECT 1 AS one FROM messages WHERE deployment_id = $1 AND public_id = $2 \
             AND kind <> $3",
        )
        .bind(deployment_id)
        .bind(public_id)
        .bind(EventKind::Test.as_str())
        .fetch_optional(self.pool())
        .await?;
        Ok(match left {
            Some(_) => Resend::IntegrationDeleted,
            None => Resend::Unknown,
        })
    }

    /// Fails the pending and delivering messages whose integration no longer exists, as
    /// deleting it does: those a node queued with integrations cached from before a
    /// deletion on another node (within the caches' second), and those that earlier
    /// versions left pending when they deleted an integration. Returns how many.
    pub async fn fail_orphaned_messages(&self) -> anyhow::Result<u64> {
        let mut failed = 0;
        // One statement per status, so that each reads its partial index.
        for status in ["pending", "delivering"] {
            failed += sqlx::query(&format!(
                "UPDATE messages SET status = 'failed', lease_until = NULL, next_attempt_at = $1 \
                 WHERE status = '{status}' AND integration_id NOT IN (SELECT id FROM integrations)"
            ))
            .bind(clock::now())
            .execute(self.writer())
            .await?
            .rows_affected();
        }
        Ok(failed)
    }

    /// Queues again every failed message of an integration created since `since`.
    pub async fn recover(
        &self,
        deployment_id: DeploymentId,
        integration_public_id: &IntegrationId,
        since: Micros,
    ) -> anyhow::Result<u64> {
        let done = sqlx::query(
            "UPDATE messages SET status = 'pending', next_attempt_at = $1, lease_until = NULL \
             WHERE deployment_id = $2 AND status = 'failed' AND created_at >= $3 \
             AND integration_id = (SELECT id FROM integrations WHERE deployment_id = $2 \
               AND public_id = $4)",
        )
        .bind(clock::now())
        .bind(deployment_id)
        .bind(since)
        .bind(integration_public_id)
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected())
    }

    /// Logs a Test action: a message of kind `test` with its one attempt.
    pub async fn record_test(
        &self,
        integration: &Integration,
        public_id: &MessageId,
        body: &str,
        attempted_at: Micros,
        outcome: &Outcome,
    ) -> anyhow::Result<()> {
        let status = if outcome.delivered() {
            MessageStatus::Delivered
        } else {
            MessageStatus::Failed
        };
        let mut tx = self.begin_write().await?;
        let payload_id = insert_payload(&mut tx, body).await?;
        let row = sqlx::query(
            "INSERT INTO messages (public_id, deployment_id, integration_id, kind, payload_id, \
             status, attempts, next_attempt_at, created_at, delivered_at) \
             VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $7, $8) RETURNING id",
        )
        .bind(public_id)
        .bind(integration.deployment_id)
        .bind(integration.id)
        .bind(EventKind::Test.as_str())
        .bind(payload_id)
        .bind(status.as_str())
        .bind(attempted_at)
        .bind(outcome.delivered().then_some(attempted_at))
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO attempts (message_id, attempted_at, status_code, latency_us, \
             response_excerpt, error) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(col::<i64>(&row, "id")?)
        .bind(attempted_at)
        .bind(outcome.status.map(i64::from))
        .bind(outcome.latency.as_micros() as i64)
        .bind(&outcome.excerpt)
        .bind(&outcome.error)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The database's size in bytes, and when the oldest pending message was queued.
    pub async fn storage_facts(&self) -> anyhow::Result<(i64, Option<Micros>)> {
        let size = match self.backend() {
            Backend::Sqlite => {
                "SELECT p.page_count * s.page_size AS n FROM pragma_page_count() p, pragma_page_size() s"
            }
            Backend::Postgres => "SELECT pg_database_size(current_database()) AS n",
        };
        let row = sqlx::query(size).fetch_one(self.pool()).await?;
        let bytes: i64 = col(&row, "n")?;
        // Pending rows are few when delivery keeps up, and a partial index holds them.
        let row = sqlx::query("SELECT MIN(created_at) AS t FROM messages WHERE status = 'pending'")
            .fetch_one(self.pool())
            .await?;
        Ok((bytes, col(&row, "t")?))
    }

    /// Messages by status, for readiness and metrics. Pending and delivering ones are
    /// counted through their partial indexes (they are few while delivery keeps up);
    /// delivered and failed ones, nearly every message ever sent, are read from
    /// `message_totals`, which triggers keep in the transaction of each change. So a
    /// scrape costs the same with a thousand or a million messages delivered.
    pub async fn queue_depth(&self) -> anyhow::Result<Vec<(MessageStatus, i64)>> {
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM messages WHERE status = 'pending') AS pending, \
             (SELECT COUNT(*) FROM messages WHERE status = 'delivering') AS delivering, \
             t.delivered, t.failed FROM message_totals t WHERE t.id = 1",
        )
        .fetch_one(self.pool())
        .await
        .context("reading the queue depth")?;
        Ok(vec![
            (MessageStatus::Pending, col(&row, "pending")?),
            (MessageStatus::Delivering, col(&row, "delivering")?),
            (MessageStatus::Delivered, col(&row, "delivered")?),
            (MessageStatus::Failed, col(&row, "failed")?),
        ])
    }
}
