//! Retention: how long what piles up is kept, and the background task that prunes it.
//!
//! A busy deployment sends webhooks for every scan; their messages, attempts and bodies
//! would grow the database without end. Delivered messages are kept long enough to debug
//! a receiver (30 days), failed ones long enough to notice and recover them (90 days),
//! raw uploads that no `/complete` applied and fail-open reports long enough to look at a
//! broken pipeline (14 days). Open findings, their change log and triage are the product,
//! never pruned.
//!
//! The pruner works in small batches, one transaction each (`store::prune`), with a
//! pause between them, so scans and deliveries keep getting the writer while a large
//! backlog goes. On SQLite in incremental auto-vacuum mode it gives the freed pages back
//! to the file system as it goes; PostgreSQL's autovacuum makes the space reusable.
//! Every round reads the time from a [`Clock`], so tests age data by moving the clock.

use crate::clock::{Clock, Micros};
use crate::domain::outbox::MessageStatus;
use crate::store::prune::{AutoVacuum, MessageBatch};
use crate::store::Store;
use anyhow::Context;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const DAY: Duration = Duration::from_secs(86_400);

/// Free pages given back to the file system after each batch (16 MiB of 4 KiB pages):
/// enough to keep up with a batch, little enough to be quick.
const RECLAIM_PAGES: i64 = 4096;

/// How long each kind of data is kept (`None`: forever), and the pruner's pace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retention {
    /// Delivered messages and their attempts, from their delivery.
    pub delivered: Option<Duration>,
    /// Failed messages and their attempts, from their last attempt.
    pub failed: Option<Duration>,
    /// `/results` uploads of scans that ended without applying them, from their upload;
    /// fail-open reports, from their arrival.
    pub uploads: Option<Duration>,
    /// Rows per batch (one transaction).
    pub batch: i64,
    /// Time between pruning rounds.
    pub every: Duration,
    /// Pause between two batches, in which other writers go first.
    pub pause: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            delivered: Some(30 * DAY),
            failed: Some(90 * DAY),
            uploads: Some(14 * DAY),
            batch: 1000,
            every: Duration::from_secs(600),
            pause: Duration::from_millis(20),
        }
    }
}

impl Retention {
    /// Nothing is ever pruned.
    pub fn off() -> Self {
        Retention {
            delivered: None,
            failed: None,
            uploads: None,
            ..Retention::default()
        }
    }

    fn keep(&self, target: Target) -> Option<Duration> {
        match target {
            Target::DeliveredMessages => self.delivered,
            Target::FailedMessages => self.failed,
            Target::Uploads | Target::FailOpenReports => self.uploads,
        }
    }

    fn enabled(&self) -> bool {
        Target::ALL.iter().any(|t| self.keep(*t).is_some())
    }
}

/// A retention as typed: a duration (`30d`, `12h`), or `0` / `off` to keep forever.
pub fn parse_retention(s: &str) -> Result<Option<Duration>, String> {
    if s.trim().eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    let d =
        crate::clock::parse_duration(s).map_err(|e| format!("{e}, or 0 / off to keep forever"))?;
    Ok(Some(d).filter(|d| !d.is_zero()))
}

/// Data older than this time at `now` is past a retention of `keep`.
pub fn cutoff(now: Micros, keep: Option<Duration>) -> Option<Micros> {
    let keep = i64::try_from(keep?.as_micros()).unwrap_or(i64::MAX);
    Some(now.saturating_sub(keep))
}

/// What the pruner removes, in the order it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    DeliveredMessages,
    FailedMessages,
    Uploads,
    FailOpenReports,
}

impl Target {
    pub const ALL: [Target; 4] = [
        Target::DeliveredMessages,
        Target::FailedMessages,
        Target::Uploads,
        Target::FailOpenReports,
    ];
}

/// What one target's pruning removed in a round.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Messages, uploads or reports.
    pub rows: u64,
    pub attempts: u64,
    pub payloads: u64,
    /// Transactions that removed something.
    pub batches: u64,
}

impl Tally {
    fn add(&mut self, b: MessageBatch) {
        self.rows += b.messages;
        self.attempts += b.attempts;
        self.payloads += b.payloads;
        self.batches += 1;
    }
}

/// What one round removed, per target.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pruned {
    tallies: [Tally; 4],
}

impl Pruned {
    pub fn of(&self, target: Target) -> Tally {
        self.tallies[target as usize]
    }

    pub fn is_empty(&self) -> bool {
        self.tallies.iter().all(|t| t.rows == 0)
    }
}

/// One batch of one target: what it removed (uploads and reports count as messages).
async fn batch(
    store: &Store,
    target: Target,
    before: Micros,
    limit: i64,
) -> anyhow::Result<MessageBatch> {
    let rows = |messages| MessageBatch {
        messages,
        ..MessageBatch::default()
    };
    Ok(match target {
        Target::DeliveredMessages => {
            store
                .prune_messages(MessageStatus::Delivered, before, limit)
                .await?
        }
        Target::FailedMessages => {
            store
                .prune_messages(MessageStatus::Failed, before, limit)
                .await?
        }
        Target::Uploads => rows(store.clear_uploads(before, limit).await?),
        Target::FailOpenReports => rows(store.prune_failures(before, limit).await?),
    })
}

/// One pruning round at `now`: every target in batches until none is left past its
/// retention (or `stop` is cancelled, between batches). Freed SQLite pages go back to the
/// file system when the database is in incremental auto-vacuum mode.
pub async fn prune_once(
    store: &Store,
    retention: &Retention,
    now: Micros,
    stop: &CancellationToken,
) -> anyhow::Result<Pruned> {
    let reclaim = store.auto_vacuum().await? == Some(AutoVacuum::Incremental);
    let mut pruned = Pruned::default();
    for target in Target::ALL {
        let Some(before) = cutoff(now, retention.keep(target)) else {
            continue;
        };
        let tally = &mut pruned.tallies[target as usize];
        while !stop.is_cancelled() {
            let removed = batch(store, target, before, retention.batch)
                .await
                .with_context(|| format!("pruning {target:?}"))?;
            if removed.messages == 0 {
                break;
            }
            tally.add(removed);
            if reclaim {
                store
                    .reclaim_pages(RECLAIM_PAGES)
                    .await
                    .context("giving pruned pages back")?;
            }
            if removed.messages < retention.batch as u64 {
                break;
            }
            pause(retention.pause, stop).await;
        }
    }
    // What the batches left free, in steps, for as long as each step gets somewhere.
    let mut free = if reclaim {
        store.free_pages().await?
    } else {
        0
    };
    while free > 0 && !stop.is_cancelled() {
        let left = store
            .reclaim_pages(RECLAIM_PAGES)
            .await
            .context("giving pruned pages back")?;
        if left >= free {
            break;
        }
        free = left;
        pause(retention.pause, stop).await;
    }
    Ok(pruned)
}

async fn pause(d: Duration, stop: &CancellationToken) {
    if d.is_zero() {
        return;
    }
    tokio::select! {
        _ = stop.cancelled() => {}
        _ = tokio::time::sleep(d) => {}
    }
}

/// Prunes every `retention.every` until shut down (a round that fails is logged and tried
/// again next time).
pub async fn run(
    store: Store,
    retention: Retention,
    clock: Arc<dyn Clock>,
    shutdown: CancellationToken,
) {
    if !retention.enabled() {
        return;
    }
    match store.auto_vacuum().await {
        Ok(Some(AutoVacuum::None)) => tracing::warn!(
            "this SQLite database is not in incremental auto-vacuum mode: pruned space is \
             reused but the file does not shrink; run `scanhook vacuum` once (serve stopped)"
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = ?e, "cannot read the database's auto_vacuum mode"),
    }
    loop {
        match prune_once(&store, &retention, clock.now(), &shutdown).await {
            Ok(p) if !p.is_empty() => tracing::info!(
                delivered = p.of(Target::DeliveredMessages).rows,
                failed = p.of(Target::FailedMessages).rows,
                attempts = p.of(Target::DeliveredMessages).attempts
                    + p.of(Target::FailedMessages).attempts,
                payloads = p.of(Target::DeliveredMessages).payloads
                    + p.of(Target::FailedMessages).payloads,
                uploads = p.of(Target::Uploads).rows,
                fail_open_reports = p.of(Target::FailOpenReports).rows,
                "pruned what is past its retention"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = ?e, "pruning failed; will retry"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(retention.every) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_and_off_keep_forever() {
        assert_eq!(parse_retention("off"), Ok(None));
        assert_eq!(parse_retention("OFF"), Ok(None));
        assert_eq!(parse_retention("0"), Ok(None));
        assert_eq!(parse_retention("0d"), Ok(None));
        assert_eq!(parse_retention("30d"), Ok(Some(30 * DAY)));
        assert_eq!(
            parse_retention("12h"),
            Ok(Some(Duration::from_secs(43_200)))
        );
        let e = parse_retention("a month").unwrap_err();
        assert!(e.contains("0 / off"), "{e}");
    }

    #[test]
    fn cutoffs_are_now_minus_the_retention() {
        let now = 100 * 86_400_000_000;
        assert_eq!(cutoff(now, None), None);
        assert_eq!(cutoff(now, Some(30 * DAY)), Some(70 * 86_400_000_000));
        // A retention longer than the epoch is old keeps everything, without overflow.
        assert_eq!(
            cutoff(now, Some(Duration::from_secs(u64::MAX))),
            Some(now - i64::MAX)
        );
    }

    #[test]
    fn defaults_are_what_a_team_would_pick() {
        let r = Retention::default();
        assert_eq!(r.keep(Target::DeliveredMessages), Some(30 * DAY));
        assert_eq!(r.keep(Target::FailedMessages), Some(90 * DAY));
        assert_eq!(r.keep(Target::Uploads), Some(14 * DAY));
        assert_eq!(r.keep(Target::FailOpenReports), Some(14 * DAY));
        assert!(r.enabled());
        assert!(!Retention::off().enabled());
    }
}
