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
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, Notify, Semaphore};
use tokio::task::JoinSet;
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
    permits: Mutex<HashMap<i64, Arc<Semaphore>>>,
    /// Woken when messages are enqueued, so delivery starts at once.
    pub wake: Arc<Notify>,
    pub metrics: Arc<Metrics>,
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
            permits: Mutex::new(HashMap::new()),
            wake: Arc::new(Notify::new()),
            metrics: Arc::new(Metrics::default()),
        }
    }

    fn lease(&self) -> Micros {
        // Long enough to wait a little for a permit and make one attempt; a claim whose
        // lease has run short is left for the next claim rather than sent late (see
        // `deliver`). A killed process's claims are taken again after this long.
        (self.config.timeout * 2 + Duration::from_secs(5)).as_micros() as Micros
    }

    /// Integrations with no free permit: their messages are not claimed this round.
    fn saturated(&self) -> Vec<i64> {
        let permits = self.permits.lock().expect("permits lock");
        permits
            .iter()
            .filter(|(_, s)| s.available_permits() == 0)
            .map(|(id, _)| *id)
            .collect()
    }

    fn permit_for(&self, integration: i64) -> Arc<Semaphore> {
        let mut permits = self.permits.lock().expect("permits lock");
        permits
            .entry(integration)
            .or_insert_with(|| Arc::new(Semaphore::new(self.config.per_integration)))
            .clone()
    }

    /// Claims what is due now and starts sending it; each task yields its attempt's record.
    pub async fn dispatch(
        self: &Arc<Self>,
        tasks: &mut JoinSet<Option<AttemptRecord>>,
    ) -> anyhow::Result<usize> {
        let now = self.clock.now();
        let claimed = self
            .store
            .claim_messages(
                now,
                now + self.lease(),
                self.config.batch,
                &self.saturated(),
            )
            .await?;
        let n = claimed.len();
        for message in claimed {
            let worker = self.clone();
            let lease_until = now + self.lease();
            tasks.spawn(async move { worker.deliver(message, lease_until).await });
        }
        Ok(n)
    }

    /// Claims and delivers until nothing is due at the clock's time; returns how many
    /// messages were attempted.
    pub async fn run_until_idle(self: &Arc<Self>) -> anyhow::Result<usize> {
        let mut total = 0;
        loop {
            let mut tasks = JoinSet::new();
            let n = self.dispatch(&mut tasks).await?;
            let mut records = Vec::new();
            while let Some(done) = tasks.join_next().await {
                records.extend(done?);
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

    /// Runs until shut down. Claims whenever woken, every `poll`, or as in-flight work
    /// drops below half a batch; never waits for slow deliveries before claiming more.
    /// Attempt records are written in batches by a recorder task.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let (records_tx, records_rx) = mpsc::unbounded_channel();
        let recorder = tokio::spawn(self.clone().recorder(records_rx));
        let mut tasks = JoinSet::new();
        let low_water = (self.config.batch / 2).max(1) as usize;
        loop {
            self.metrics.beat(self.clock.now());
            if tasks.len() < low_water {
                if let Err(e) = self.dispatch(&mut tasks).await {
                    tracing::warn!(error = ?e, "claiming messages failed; will retry");
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(self.config.poll) => {}
                Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                    if let Ok(Some(record)) = done {
                        let _ = records_tx.send(record);
                    }
                }
            }
        }
        // In-flight attempts finish (bounded by the timeout); unsent claims expire.
        while let Some(done) = tasks.join_next().await {
            if let Ok(Some(record)) = done {
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
        let semaphore = self.permit_for(message.integration.id);
        let _permit = semaphore.acquire_owned().await.ok()?;
        let now = self.clock.now();
        if now + (self.config.timeout.as_micros() as Micros) > lease_until {
            // The lease would run out mid-attempt: another claim will send it.
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
        let body = message.body.as_bytes();
        let headers = match signing::signed_headers(
            &message.integration,
            &message.public_id,
            &message.kind,
            now,
            body,
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
            .post(&message.integration.url, &headers, body.to_vec())
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
