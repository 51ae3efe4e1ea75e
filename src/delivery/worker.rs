//! The delivery worker: claims due messages with a lease into a lane per integration,
//! sends each lane's with bounded concurrency (a slow or dead endpoint only ever holds its
//! own lane), logs every attempt and schedules the next. Handlers of the same process may
//! hand it messages they claimed as they queued them ([`Handoff`]). Time comes from a
//! [`Clock`], so tests drive retry schedules step by step with [`Worker::run_until_idle`]
//! instead of sleeping.

use super::metrics::Metrics;
use super::schedule::Schedule;
use super::sender::Sender;
use super::signing::{self, Signer};
use crate::clock::{Clock, Micros};
use crate::domain::integration::Integration;
use crate::domain::outbox::{Claimant, Claimed};
use crate::domain::outbox::{Next, Outcome};
use crate::store::messages::AttemptRecord;
use crate::store::Store;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, Notify};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

/// Delivery settings.
#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    pub schedule: Schedule,
    /// Per-attempt timeout.
    pub timeout: Duration,
    /// Requests in flight per integration.
    pub per_integration: usize,
    /// Most messages one claim takes, and the largest window of a lane; a worker holds
    /// at most two batches claimed.
    pub batch: i64,
    /// An integration failing continuously this long is disabled.
    pub disable_after: Duration,
    /// How often the worker looks for due messages (retries come due; it is also woken
    /// when messages are queued pending).
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
    /// Messages claimed as they were queued, from [`Handoff`].
    handed: Mutex<Option<mpsc::UnboundedReceiver<Vec<Claimed>>>>,
    handoff: Handoff,
}

/// Lets a request handler of this process claim the messages it queues for this process's
/// worker, in the queueing transaction, and hand them over once it commits: delivery then
/// starts without a claim. An integration's messages are claimed so only while its lane
/// has room; the rest stay pending for the worker to claim. If this process dies first,
/// the lease runs out and any worker takes them.
#[derive(Clone)]
pub struct Handoff {
    sender: mpsc::UnboundedSender<Vec<Claimed>>,
    /// Messages each integration's lane can still take.
    room: Arc<Mutex<HashMap<i64, usize>>>,
    /// The room of a lane not seen yet.
    initial: usize,
    lease: Micros,
    clock: Arc<dyn Clock>,
}

impl Claimant for Handoff {
    /// The lease under which to claim `n` new messages of `integration`, if its lane has
    /// room for them.
    fn claim(&self, integration: i64, n: usize) -> Option<Micros> {
        let mut room = self.room.lock().expect("room lock");
        let free = room.entry(integration).or_insert(self.initial);
        if *free < n {
            return None;
        }
        *free -= n;
        Some(self.clock.now() + self.lease)
    }
}

impl Handoff {
    /// Hands claimed messages to the worker.
    pub fn hand(&self, claimed: Vec<Claimed>) {
        if !claimed.is_empty() {
            // A worker that has stopped leaves them to run out their lease.
            let _ = self.sender.send(claimed);
        }
    }
}

/// How long an attempt's record may wait for others to be written with.
const RECORD_LINGER: Duration = Duration::from_millis(20);

/// How often messages left without an integration are failed
/// ([`Store::fail_orphaned_messages`]).
const ORPHAN_SWEEP: Duration = Duration::from_secs(60);

/// How long a claim holds a message: long enough to wait for a turn and make one attempt
/// (a lane holds no more than it sends within one timeout, see `Worker::window`). A killed
/// process's claims are taken again after this long.
fn lease(config: &DeliveryConfig) -> Micros {
    (config.timeout * 2 + Duration::from_secs(5)).as_micros() as Micros
}

/// How many messages a lane may hold: what its requests in flight send within one attempt
/// timeout at its recent latency, between `per_integration` and a batch. An integration not
/// yet measured starts at two rounds of requests.
///
/// Every message of a window starts within its lease: with attempts taking `latency`, the
/// last round starts after `timeout - latency`, and a lease leaves `timeout + 5 s` to start.
fn window(config: &DeliveryConfig, lane: Option<&Lane>) -> usize {
    let per = config.per_integration;
    let batch = (config.batch as usize).max(per);
    match lane.and_then(|l| l.latency_us) {
        Some(latency) => {
            let rounds = config.timeout.as_micros() as f64 / latency.max(1.0);
            ((per as f64 * rounds) as usize).clamp(per, batch)
        }
        None => initial_window(config),
    }
}

/// The window of an integration not measured yet: two rounds of requests, which start
/// within the lease even if every attempt hangs until the timeout.
fn initial_window(config: &DeliveryConfig) -> usize {
    (config.per_integration * 2).min((config.batch as usize).max(config.per_integration))
}

/// One integration's share of a worker: the messages claimed for it, at most
/// `per_integration` of them in flight and the rest waiting their turn in memory.
#[derive(Default)]
struct Lane {
    /// Claimed messages not yet started.
    waiting: VecDeque<Claimed>,
    running: usize,
    /// Moving average of its attempts' latency, in microseconds.
    latency_us: Option<f64>,
    /// The last claim found fewer of its messages due than it asked for.
    drained: bool,
    /// Its URL and signing keys, for the integration as last claimed.
    target: Option<Arc<Target>>,
    /// Its endpoint answered 429 with `Retry-After`: nothing is sent to it before then.
    paused_until: Option<Micros>,
}

/// What the attempts to one integration share, prepared once per claim rather than per
/// attempt: the parsed URL and the keyed MACs.
struct Target {
    of: Arc<Integration>,
    prepared: Result<(url::Url, Signer), String>,
}

impl Target {
    fn new(of: Arc<Integration>, now: Micros) -> Target {
        let url = of.url.as_url().clone();
        let prepared = Signer::of(&of, now)
            .map(|signer| (url, signer))
            .map_err(|e| format!("cannot sign: {e}"));
        Target { of, prepared }
    }
}

impl Lane {
    fn claimed(&self) -> usize {
        self.waiting.len() + self.running
    }

    fn paused(&self, now: Micros) -> bool {
        self.paused_until.is_some_and(|until| until > now)
    }
}

/// What an attempt task hands back: its integration, and the attempt's record unless it
/// was not made.
type Done = (i64, Option<AttemptRecord>);

/// The lanes as a claim starts: per integration, (messages held, window, drained).
struct Plan {
    fresh: bool,
    lanes: HashMap<i64, (usize, usize, bool)>,
    held: usize,
}

/// What a claim brought: the integrations sent to, what it asked each for, and what it got.
struct Claim {
    enabled: Vec<i64>,
    limits: Vec<(i64, i64)>,
    claimed: Vec<Claimed>,
}

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
        let (tx, rx) = mpsc::unbounded_channel();
        let handoff = Handoff {
            sender: tx,
            room: Arc::default(),
            initial: initial_window(&config),
            lease: lease(&config),
            clock: clock.clone(),
        };
        Worker {
            store,
            sender,
            config,
            clock,
            wake: Arc::new(Notify::new()),
            metrics: Arc::new(Metrics::default()),
            handed: Mutex::new(Some(rx)),
            handoff,
        }
    }

    /// How request handlers of this process hand messages to this worker.
    pub fn handoff(&self) -> Handoff {
        self.handoff.clone()
    }

    /// A claim whose lease has run short is left for the next claim rather than sent late
    /// (see `deliver`).
    fn lease(&self) -> Micros {
        lease(&self.config)
    }

    fn window(&self, lane: Option<&Lane>) -> usize {
        window(&self.config, lane)
    }

    /// Tells handlers how much more a lane can take.
    fn publish_room(&self, d: &Dispatch, integration: i64) {
        let lane = d.lanes.get(&integration);
        let free = if lane.is_some_and(|l| l.paused(self.clock.now())) {
            0
        } else {
            self.window(lane)
                .saturating_sub(lane.map_or(0, Lane::claimed))
        };
        let mut room = self.handoff.room.lock().expect("room lock");
        room.insert(integration, free);
    }

    /// Takes messages into their lanes and starts what can be.
    fn take(self: &Arc<Self>, d: &mut Dispatch, claimed: Vec<Claimed>) {
        let mut touched = Vec::new();
        for message in claimed {
            let id = message.integration.id;
            d.lanes.entry(id).or_default().waiting.push_back(message);
            if !touched.contains(&id) {
                touched.push(id);
            }
        }
        let now = self.clock.now();
        for id in touched {
            // Taken while held (a claim that was under way): back to the queue with the rest.
            if let Some(lane) = d.lanes.get_mut(&id).filter(|l| l.paused(now)) {
                let until = lane.paused_until.expect("paused");
                self.pause(lane, id, until);
            }
            self.start(d, id);
            self.publish_room(d, id);
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

    /// What a claim needs to know of the lanes, taken when it starts: the claim runs beside
    /// the loop, which keeps starting attempts as others finish.
    fn plan(&self, d: &mut Dispatch) -> Plan {
        Plan {
            fresh: std::mem::take(&mut d.fresh),
            lanes: d
                .lanes
                .iter()
                .map(|(id, l)| {
                    // A paused lane asks for nothing: it counts as full.
                    let window = self.window(Some(l));
                    let held = if l.paused(self.clock.now()) {
                        window
                    } else {
                        l.claimed()
                    };
                    (*id, (held, window, l.drained))
                })
                .collect(),
            held: d.claimed(),
        }
    }

    /// Claims what each lane has room for, shared out so that one claim takes at most a
    /// batch.
    async fn claim(self: Arc<Self>, plan: Plan) -> anyhow::Result<Claim> {
        let enabled = self.store.enabled_integration_ids().await?;
        let candidates: Vec<(i64, usize)> = enabled
            .iter()
            .filter_map(|id| {
                let (held, window, drained) =
                    plan.lanes
                        .get(id)
                        .copied()
                        .unwrap_or((0, self.window(None), false));
                let wanted = plan.fresh || !drained;
                (wanted && held <= window / 2).then_some((*id, window - held))
            })
            .collect();
        let room = (2 * self.config.batch as usize).saturating_sub(plan.held);
        let share = (room / candidates.len().max(1)).max(self.config.per_integration);
        let limits: Vec<(i64, i64)> = candidates
            .iter()
            .map(|&(id, room)| (id, room.min(share) as i64))
            .collect();
        let now = self.clock.now();
        let claimed = self
            .store
            .claim_messages(now, now + self.lease(), &limits)
            .await?;
        Ok(Claim {
            enabled,
            limits,
            claimed,
        })
    }

    /// Takes a claim's messages into their lanes; returns how many there were.
    fn claimed(self: &Arc<Self>, d: &mut Dispatch, claim: Claim) -> usize {
        d.lanes
            .retain(|id, l| l.claimed() > 0 || claim.enabled.contains(id));
        // A lane of an integration no longer sent to only finishes what it holds.
        for (id, lane) in d.lanes.iter_mut() {
            if !claim.enabled.contains(id) {
                lane.drained = true;
            }
        }
        for &(id, asked) in &claim.limits {
            let lane = d.lanes.entry(id).or_default();
            let got = claim
                .claimed
                .iter()
                .filter(|m| m.integration.id == id)
                .count();
            lane.drained = (got as i64) < asked;
        }
        let n = claim.claimed.len();
        self.take(d, claim.claimed);
        n
    }

    /// Starts a lane's waiting messages while it has requests to spare.
    fn start(self: &Arc<Self>, d: &mut Dispatch, integration: i64) {
        let Some(lane) = d.lanes.get_mut(&integration) else {
            return;
        };
        if lane.paused(self.clock.now()) {
            return;
        }
        while lane.running < self.config.per_integration {
            let Some(message) = lane.waiting.pop_front() else {
                return;
            };
            let target = match &lane.target {
                Some(t) if Arc::ptr_eq(&t.of, &message.integration) => t.clone(),
                _ => Arc::new(Target::new(message.integration.clone(), self.clock.now())),
            };
            lane.target = Some(target.clone());
            lane.running += 1;
            let worker = self.clone();
            d.tasks.spawn(async move {
                let record = worker.deliver(message, &target).await;
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
                if let Some(until) = self.pause_for(r) {
                    self.pause(lane, *integration, until);
                }
            }
        }
        self.start(d, *integration);
        self.publish_room(d, *integration);
    }

    /// Until when an attempt's answer holds its integration: a 429 with `Retry-After`
    /// (chat platforms' rate limit), at most the schedule's longest delay.
    fn pause_for(&self, r: &AttemptRecord) -> Option<Micros> {
        if r.outcome.status != Some(429) {
            return None;
        }
        let wait = r.outcome.retry_after?.min(self.config.schedule.longest());
        Some(r.attempted_at + wait.as_micros() as Micros)
    }

    /// Holds a lane until `until`: what it was about to send goes back to the queue, due
    /// then, and so does every pending message of the integration (for every process);
    /// the other integrations' lanes carry on.
    fn pause(self: &Arc<Self>, lane: &mut Lane, integration: i64, until: Micros) {
        lane.paused_until = Some(lane.paused_until.map_or(until, |u| u.max(until)));
        let released: Vec<i64> = lane.waiting.drain(..).map(|m| m.id).collect();
        tracing::info!(
            integration.id = %lane.target.as_ref().map(|t| t.of.public_id.to_string()).unwrap_or_default(),
            held_for_ms = (until - self.clock.now()).max(0) / 1000,
            released = released.len(),
            "rate limited (429 with Retry-After): holding this integration's messages"
        );
        let store = self.store.clone();
        tokio::spawn(async move {
            if let Err(e) = store.hold_integration(integration, until, &released).await {
                tracing::warn!(error = ?e, "could not hold a rate-limited integration's messages");
            }
        });
    }

    /// Claims and delivers until nothing is due at the clock's time; returns how many
    /// messages were attempted.
    pub async fn run_until_idle(self: &Arc<Self>) -> anyhow::Result<usize> {
        let mut total = 0;
        let mut d = Dispatch::new();
        self.store.fail_orphaned_messages().await?;
        loop {
            d.fresh = true;
            let claim = self.clone().claim(self.plan(&mut d)).await?;
            let n = self.claimed(&mut d, claim);
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
        let mut handed = self
            .handed
            .lock()
            .expect("handoff lock")
            .take()
            .expect("a worker runs once");
        let mut d = Dispatch::new();
        let mut poll = tokio::time::interval(self.config.poll);
        poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut claiming: Option<JoinHandle<anyhow::Result<Claim>>> = None;
        // The first tick is at once: orphans an earlier version left go at start-up.
        let mut sweep = tokio::time::interval(ORPHAN_SWEEP);
        sweep.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            self.metrics.beat(self.clock.now());
            if claiming.is_none() && self.wants_claim(&d) {
                claiming = Some(tokio::spawn(self.clone().claim(self.plan(&mut d))));
            }
            tokio::select! {
                claim = async { claiming.as_mut().expect("a claim").await }, if claiming.is_some() => {
                    claiming = None;
                    match claim {
                        Ok(Ok(claim)) => {
                            self.claimed(&mut d, claim);
                        }
                        Ok(Err(e)) => {
                            tracing::warn!(error = ?e, "claiming messages failed; will retry");
                            // Next at the poll interval (or when woken), not at once.
                            d.lanes.values_mut().for_each(|l| l.drained = true);
                        }
                        Err(e) => tracing::error!(error = ?e, "the claim task failed"),
                    }
                }
                _ = shutdown.cancelled() => break,
                _ = self.wake.notified() => d.fresh = true,
                _ = poll.tick() => d.fresh = true,
                _ = sweep.tick() => {
                    let store = self.store.clone();
                    tokio::spawn(async move {
                        match store.fail_orphaned_messages().await {
                            Ok(0) => {}
                            Ok(n) => tracing::info!(messages = n, "failed messages of deleted integrations"),
                            Err(e) => tracing::warn!(error = ?e, "failing messages of deleted integrations failed; will retry"),
                        }
                    });
                }
                Some(claimed) = handed.recv() => self.take(&mut d, claimed),
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
        if let Some(claim) = claiming {
            claim.abort();
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

    /// Writes attempt records in batches: a batch is written when it is full or when its
    /// first record has waited `RECORD_LINGER`, so that a steady trickle of attempts costs
    /// a few transactions a second rather than one each (the writer is shared with claims
    /// and with the API's scan outcomes).
    async fn recorder(self: Arc<Self>, mut rx: mpsc::UnboundedReceiver<AttemptRecord>) {
        const MAX: usize = 1024;
        let mut batch = Vec::with_capacity(MAX);
        while rx.recv_many(&mut batch, MAX).await > 0 {
            let deadline = tokio::time::Instant::now() + RECORD_LINGER;
            while batch.len() < MAX {
                let room = MAX - batch.len();
                let more = rx.recv_many(&mut batch, room);
                match tokio::time::timeout_at(deadline, more).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
            if let Err(e) = self.record(&batch).await {
                // The messages stay claimed until their lease runs out, then are sent
                // again: at-least-once.
                tracing::error!(error = ?e, n = batch.len(), "recording attempts failed");
            }
            batch.clear();
        }
    }

    async fn deliver(&self, message: Claimed, target: &Target) -> Option<AttemptRecord> {
        let now = self.clock.now();
        if now + (self.config.timeout.as_micros() as Micros) > message.lease_until {
            // The lease would run out mid-attempt: another claim will send it.
            return None;
        }
        if !message.integration.enabled {
            // Disabled since the claim: it waits, as its other messages do.
            return None;
        }
        let outcome = self.attempt(&message, target, now).await;
        self.metrics.attempt(
            message.integration.public_id.as_str(),
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
            lease_until: message.lease_until,
            outcome,
            next,
        })
    }

    /// Signs and sends one attempt.
    async fn attempt(&self, message: &Claimed, target: &Target, now: Micros) -> Outcome {
        let refused = Outcome::refused;
        let (url, signer) = match &target.prepared {
            Ok(prepared) => prepared,
            Err(e) => return refused(e.clone()),
        };
        let of = &target.of;
        match signing::delivery_headers(
            of.kind.signs().then_some(signer),
            message.public_id.as_str(),
            message.kind.as_str(),
            now,
            &message.body,
            of.content_type(),
        ) {
            Ok(headers) => {
                self.sender
                    .send(url.clone(), headers, message.body.clone())
                    .await
            }
            Err(e) => refused(format!("cannot sign: {e}")),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handoff_claims_only_while_the_lane_has_room() {
        let (sender, _rx) = mpsc::unbounded_channel();
        let h = Handoff {
            sender,
            room: Arc::default(),
            initial: 4,
            lease: 10,
            clock: Arc::new(crate::clock::SystemClock),
        };
        assert!(
            h.claim(1, 3).is_some(),
            "a new lane starts with its initial room"
        );
        assert!(h.claim(1, 2).is_none(), "all of them or none");
        assert!(h.claim(1, 1).is_some());
        assert!(h.claim(1, 1).is_none(), "full");
        assert!(h.claim(2, 4).is_some(), "lanes are separate");
        h.room.lock().unwrap().insert(1, 1);
        assert!(h.claim(1, 1).is_some(), "the worker made room");
    }

    #[test]
    fn a_window_holds_what_one_timeout_sends() {
        let config = DeliveryConfig {
            per_integration: 8,
            batch: 1000,
            timeout: Duration::from_secs(15),
            ..DeliveryConfig::default()
        };
        let fast = Lane {
            latency_us: Some(1_000.0),
            ..Lane::default()
        };
        let slow = Lane {
            latency_us: Some(1_000_000.0),
            ..Lane::default()
        };
        let hung = Lane {
            latency_us: Some(15_000_000.0),
            ..Lane::default()
        };
        assert_eq!(window(&config, None), 16, "not measured: two rounds");
        assert_eq!(window(&config, Some(&fast)), 1000, "capped at a batch");
        assert_eq!(window(&config, Some(&slow)), 8 * 15);
        assert_eq!(window(&config, Some(&hung)), 8, "at least one round");
        // Whatever the latency, the last round of a window starts while its lease leaves
        // time for one attempt (the unmeasured window assumes attempts that hang).
        let start_by = (lease(&config) - config.timeout.as_micros() as Micros) as f64;
        for latency in [None, Some(1e3), Some(1e5), Some(3e6), Some(7e6), Some(15e6)] {
            let lane = latency.map(|l| Lane {
                latency_us: Some(l),
                ..Lane::default()
            });
            let rounds = window(&config, lane.as_ref()).div_ceil(8) as f64;
            let latency = latency.unwrap_or(15e6);
            assert!((rounds - 1.0) * latency <= start_by, "{latency} µs");
        }
    }
}
