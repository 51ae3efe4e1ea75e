//! The delivery worker: claims due messages with a lease, sends each with bounded
//! concurrency per integration (a slow or dead endpoint only ever holds its own permits),
//! logs every attempt and schedules the next. Time comes from a [`Clock`], so tests drive
//! retry schedules step by step with [`Worker::run_until_idle`] instead of sleeping.

use super::metrics::Metrics;
use super::schedule::Schedule;
use super::sender::{Outcome, Sender};
use super::signing;
use crate::clock::Micros;
use crate::store::messages::{AttemptRecord, Claimed, Next};
use crate::store::Store;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

/// Where the worker reads the time.
pub trait Clock: Send + Sync {
    fn now(&self) -> Micros;
}

/// The system clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Micros {
        crate::clock::now()
    }
}

/// Delivery settings.
#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    pub schedule: Schedule,
    /// Per-attempt timeout.
    pub timeout: Duration,
    /// Requests in flight per integration.
    pub per_integration: usize,
    /// Messages claimed per round.
    pub batch: i64,
    /// An integration failing continuously this long is disabled.
    pub disable_after: Duration,
    /// How often an idle worker looks for due messages (it is also woken on enqueue).
    pub poll: Duration,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            schedule: Schedule::default(),
            timeout: Duration::from_secs(15),
            per_integration: 8,
            batch: 1000,
            disable_after: Duration::from_secs(5 * 86_400),
            poll: Duration::from_millis(500),
        }
    }
}

/// Claims and delivers messages.
pub struct Worker {
    store: Store,
    sender: Sender,
    config: DeliveryConfig,
    clock: Arc<dyn Clock>,
    /// Woken when messages are enqueued, so delivery starts at once.
    pub wake: Arc<Notify>,
    pub metrics: Arc<Metrics>,
}

/// One integration's share of a worker: the messages claimed for it, at most
/// `per_integration` of them in flight and the rest waiting their turn in memory.
#[derive(Default)]
struct Lane {
    /// Claimed messages not yet started, with their lease.
    waiting: VecDeque<(Claimed, Micros)>,
    running: usize,
    /// Moving average of its attempts' latency, in microseconds.
    latency_us: Option<f64>,
    /// The last claim found fewer of its messages due than it asked for.
    drained: bool,
}

impl Lane {
    fn claimed(&self) -> usize {
        self.waiting.len() + self.running
    }
}

/// What an attempt task hands back: its integration, and the attempt's record unless it
/// was not made.
type Done = (i64, Option<AttemptRecord>);

/// The state of one delivery loop: its lanes and in-flight attempts.
struct Dispatch {
    lanes: HashMap<i64, Lane>,
    tasks: JoinSet<Done>,
    /// Messages may have been queued or come due since the last claim (woken, or the poll
    /// interval passed): claim even for lanes that were found drained.
    fresh: bool,
}

impl Dispatch {
    fn new() -> Dispatch {
        Dispatch {
            lanes: HashMap::new(),
            tasks: JoinSet::new(),
            fresh: true,
        }
    }

    fn claimed(&self) -> usize {
        self.lanes.values().map(Lane::claimed).sum()
    }
}

impl Worker {
    pub fn new(
        store: Store,
        sender: Sender,
        config: DeliveryConfig,
        clock: Arc<dyn Clock>,
    ) -> Worker {
        Worker {
            store,
            sender,
            config,
            clock,
            wake: Arc::new(Notify::new()),
            metrics: Arc::new(Metrics::default()),
        }
    }

    fn lease(&self) -> Micros {
        // Long enough to wait for a turn and make one attempt (a lane holds no more than
        // it sends within one timeout, see `window`); a claim whose lease has run short is
        // left for the next claim rather than sent late (see `start`). A killed process's
        // claims are taken again after this long.
        (self.config.timeout * 2 + Duration::from_secs(5)).as_micros() as Micros
    }

    /// How many messages a lane may hold: what its requests in flight send within one
    /// attempt timeout at its recent latency, between `per_integration` and a batch. An
    /// integration not yet measured starts at four rounds of requests.
    fn window(&self, lane: Option<&Lane>) -> usize {
        let per = self.config.per_integration;
        let batch = (self.config.batch as usize).max(per);
        match lane.and_then(|l| l.latency_us) {
            Some(latency) => {
                let rounds = self.config.timeout.as_micros() as f64 / latency.max(1.0);
                ((per as f64 * rounds) as usize).clamp(per, batch)
            }
            None => (per * 4).min(batch),
        }
    }

    /// Whether a claim would bring anything: some lane is at most half full and not known
    /// to be drained, and the worker holds at most a batch (it holds two at most).
    fn wants_claim(&self, d: &Dispatch) -> bool {
        if d.claimed() > self.config.batch as usize {
            return false;
        }
        d.fresh
            || d.lanes
                .values()
                .any(|l| !l.drained && l.claimed() <= self.window(Some(l)) / 2)
    }

    /// Claims what each lane has room for, shared out so that one claim takes at most a
    /// batch, and starts sending; returns how many messages were claimed.
    async fn claim(self: &Arc<Self>, d: &mut Dispatch) -> anyhow::Result<usize> {
        let fresh = std::mem::take(&mut d.fresh);
        let enabled = self.store.enabled_integration_ids().await?;
        d.lanes
            .retain(|id, l| l.claimed() > 0 || enabled.contains(id));
        let candidates: Vec<(i64, usize)> = enabled
            .iter()
            .filter_map(|id| {
                let lane = d.lanes.get(id);
                let held = lane.map_or(0, Lane::claimed);
                let window = self.window(lane);
                let wanted = fresh || lane.is_none_or(|l| !l.drained);
                (wanted && held <= window / 2).then_some((*id, window - held))
            })
            .collect();
        if candidates.is_empty() {
            return Ok(0);
        }
        let room = (2 * self.config.batch as usize).saturating_sub(d.claimed());
        let share = (room / candidates.len()).max(self.config.per_integration);
        let limits: Vec<(i64, i64)> = candidates
            .iter()
            .map(|&(id, room)| (id, room.min(share) as i64))
            .collect();
        let now = self.clock.now();
        let claimed = self
            .store
            .claim_messages(now, now + self.lease(), &limits)
            .await?;
        let n = claimed.len();
        for &(id, asked) in &limits {
            let lane = d.lanes.entry(id).or_default();
            let got = claimed.iter().filter(|m| m.integration.id == id).count();
            lane.drained = (got as i64) < asked;
        }
        let lease_until = now + self.lease();
        for message in claimed {
            let id = message.integration.id;
            d.lanes
                .entry(id)
                .or_default()
                .waiting
                .push_back((message, lease_until));
            self.start(d, id);
        }
        Ok(n)
    }

    /// Starts a lane's waiting messages while it has requests to spare.
    fn start(self: &Arc<Self>, d: &mut Dispatch, integration: i64) {
        let Some(lane) = d.lanes.get_mut(&integration) else {
            return;
        };
        while lane.running < self.config.per_integration {
            let Some((message, lease_until)) = lane.waiting.pop_front() else {
                return;
            };
            lane.running += 1;
            let worker = self.clone();
            d.tasks.spawn(async move {
                let record = worker.deliver(message, lease_until).await;
                (integration, record)
            });
        }
    }

    /// Books a finished attempt to its lane and starts the lane's next message.
    fn finished(self: &Arc<Self>, d: &mut Dispatch, (integration, record): &Done) {
        if let Some(lane) = d.lanes.get_mut(integration) {
            lane.running -= 1;
            if let Some(r) = record {
                let us = r.outcome.latency.as_micros() as f64;
                lane.latency_us = Some(lane.latency_us.map_or(us, |avg| avg * 0.8 + us * 0.2));
            }
        }
        self.start(d, *integration);
    }

    /// Claims and delivers until nothing is due at the clock's time; returns how many
    /// messages were attempted.
    pub async fn run_until_idle(self: &Arc<Self>) -> anyhow::Result<usize> {
        let mut total = 0;
        let mut d = Dispatch::new();
        loop {
            d.fresh = true;
            let n = self.claim(&mut d).await?;
            let mut records = Vec::new();
            while let Some(done) = d.tasks.join_next().await {
                let done = done?;
                self.finished(&mut d, &done);
                records.extend(done.1);
            }
            self.record(&records).await?;
            if n == 0 {
                return Ok(total);
            }
            total += n;
        }
    }

    async fn record(&self, records: &[AttemptRecord]) -> anyhow::Result<()> {
        let disable_after = self.config.disable_after.as_micros() as Micros;
        self.store.record_attempts(records, disable_after).await
    }

    /// Runs until shut down. Claims when woken, every `poll`, and whenever a lane it is
    /// not known to have emptied runs down to half its window; never waits for slow
    /// deliveries before claiming more. Attempt records are written in batches by a
    /// recorder task.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let (records_tx, records_rx) = mpsc::unbounded_channel();
        let recorder = tokio::spawn(self.clone().recorder(records_rx));
        let mut d = Dispatch::new();
        let mut poll = tokio::time::interval(self.config.poll);
        poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            self.metrics.beat(self.clock.now());
            if self.wants_claim(&d) {
                if let Err(e) = self.claim(&mut d).await {
                    tracing::warn!(error = ?e, "claiming messages failed; will retry");
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.wake.notified() => d.fresh = true,
                _ = poll.tick() => d.fresh = true,
                Some(done) = d.tasks.join_next(), if !d.tasks.is_empty() => {
                    if let Ok(done) = done {
                        self.finished(&mut d, &done);
                        if let Some(record) = done.1 {
                            let _ = records_tx.send(record);
                        }
                    }
                }
            }
        }
        // In-flight attempts finish (bounded by the timeout); unsent claims expire.
        while let Some(done) = d.tasks.join_next().await {
            if let Ok((_, Some(record))) = done {
                let _ = records_tx.send(record);
            }
        }
        drop(records_tx);
        let _ = recorder.await;
    }

    /// Writes attempt records as they come, many per transaction.
    async fn recorder(self: Arc<Self>, mut rx: mpsc::UnboundedReceiver<AttemptRecord>) {
        let mut batch = Vec::with_capacity(1024);
        while rx.recv_many(&mut batch, 1024).await > 0 {
            if let Err(e) = self.record(&batch).await {
                // The messages stay claimed until their lease runs out, then are sent
                // again: at-least-once.
                tracing::error!(error = ?e, n = batch.len(), "recording attempts failed");
            }
            batch.clear();
        }
    }

    async fn deliver(&self, message: Claimed, lease_until: Micros) -> Option<AttemptRecord> {
        let now = self.clock.now();
        if now + (self.config.timeout.as_micros() as Micros) > lease_until {
            // The lease would run out mid-attempt: another claim will send it.
            return None;
        }
        if !message.integration.enabled {
            // Disabled since the claim: it waits, as its other messages do.
            return None;
        }
        let outcome = self.attempt(&message, now).await;
        self.metrics.attempt(
            &message.integration.public_id,
            outcome.status,
            outcome.latency,
        );
        let next = self.next_step(&message, &outcome, now);
        tracing::debug!(
            msg.id = %message.public_id, integration.id = %message.integration.public_id,
            attempt = message.attempts + 1, status = ?outcome.status, error = ?outcome.error,
            "delivery attempt"
        );
        Some(AttemptRecord {
            message_id: message.id,
            integration_id: message.integration.id,
            attempted_at: now,
            outcome,
            next,
        })
    }

    /// Signs and sends one attempt.
    async fn attempt(&self, message: &Claimed, now: Micros) -> Outcome {
        let headers = match signing::signed_headers(
            &message.integration,
            &message.public_id,
            &message.kind,
            now,
            &message.body,
        ) {
            Ok(h) => h,
            Err(e) => {
                return Outcome {
                    error: Some(format!("cannot sign: {e}")),
                    ..Outcome::default()
                }
            }
        };
        self.sender
            .post(&message.integration.url, &headers, message.body.clone())
            .await
    }

    fn next_step(&self, message: &Claimed, outcome: &Outcome, now: Micros) -> Next {
        if outcome.delivered() {
            return Next::Delivered;
        }
        if outcome.status == Some(410) {
            return Next::Failed;
        }
        let failed_attempts = (message.attempts + 1) as usize;
        match self.config.schedule.next_delay(
            failed_attempts,
            outcome.retry_after,
            rand::random::<f64>(),
        ) {
            Some(delay) => Next::RetryAt(now + delay.as_micros() as Micros),
            None => Next::Failed,
        }
    }
}
