//! This process's delivery counters, exposed by `/metrics` through `prometheus-client`
//! (the OpenMetrics text format) together with the queue depth read from the database.
//! One registry per process, owned by its worker: no global recorder.

use crate::domain::outbox::MessageStatus;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// Upper bounds of the latency histogram, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 15.0,
];

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct IntegrationLabel {
    integration: String,
}

/// Counters of this process's delivery attempts, and the queue depth gauge that a scrape
/// fills in.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    queue: Family<StateLabel, Gauge>,
    attempts: Family<OutcomeLabel, Counter>,
    latency: Histogram,
    failures: Family<IntegrationLabel, Counter>,
    filter_errors: Family<IntegrationLabel, Counter>,
    database_bytes: Gauge,
    oldest_pending: Gauge,
    /// When the delivery loop last went round (microseconds; 0 before its first turn).
    last_loop: AtomicI64,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let queue = Family::<StateLabel, Gauge>::default();
        registry.register(
            "scanhook_queue_messages",
            "Webhook messages by state",
            queue.clone(),
        );
        let attempts = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "scanhook_delivery_attempts",
            "Delivery attempts by outcome",
            attempts.clone(),
        );
        let latency = Histogram::new(BUCKETS);
        registry.register(
            "scanhook_delivery_latency_seconds",
            "Latency of delivery attempts",
            latency.clone(),
        );
        let failures = Family::<IntegrationLabel, Counter>::default();
        registry.register(
            "scanhook_integration_failures",
            "Failed attempts per integration",
            failures.clone(),
        );
        let filter_errors = Family::<IntegrationLabel, Counter>::default();
        registry.register(
            "scanhook_filter_errors",
            "Events not sent because an integration's filter expression failed on them",
            filter_errors.clone(),
        );
        let database_bytes = Gauge::default();
        registry.register(
            "scanhook_database_bytes",
            "Size of the database (SQLite: its pages; PostgreSQL: pg_database_size)",
            database_bytes.clone(),
        );
        let oldest_pending = Gauge::default();
        registry.register(
            "scanhook_oldest_pending_message_age_seconds",
            "Age of the oldest message waiting to be delivered (0 when none waits)",
            oldest_pending.clone(),
        );
        // Every outcome and state shows from the first scrape, at zero.
        for outcome in ["delivered", "http_failure", "error"] {
            let _ = attempts.get_or_create(&OutcomeLabel { outcome });
        }
        Metrics {
            registry,
            queue,
            attempts,
            latency,
            failures,
            filter_errors,
            database_bytes,
            oldest_pending,
            last_loop: AtomicI64::new(0),
        }
    }
}

impl Metrics {
    /// The delivery loop is alive at `now`.
    pub fn beat(&self, now: i64) {
        self.last_loop.store(now, Ordering::Relaxed);
    }

    /// When the delivery loop last went round, if it has started.
    pub fn last_loop(&self) -> Option<i64> {
        Some(self.last_loop.load(Ordering::Relaxed)).filter(|t| *t > 0)
    }

    /// Counts events an integration's filter expression failed on.
    pub fn filter_errors(&self, integration: &str, n: usize) {
        self.filter_errors
            .get_or_create(&IntegrationLabel {
                integration: integration.to_string(),
            })
            .inc_by(n as u64);
    }

    /// Records one attempt: `status` is the HTTP status, `None` for a network error.
    pub fn attempt(&self, integration: &str, status: Option<u16>, latency: Duration) {
        let delivered = status.is_some_and(|s| (200..300).contains(&s));
        let outcome = match status {
            _ if delivered => "delivered",
            Some(_) => "http_failure",
            None => "error",
        };
        self.attempts.get_or_create(&OutcomeLabel { outcome }).inc();
        if !delivered {
            self.failures
                .get_or_create(&IntegrationLabel {
                    integration: integration.to_string(),
                })
                .inc();
        }
        self.latency.observe(latency.as_secs_f64());
    }

    /// The exposition text, with the queue depth by state passed in.
    /// Sets the storage gauges: the database's size, and the age at `now` of the oldest
    /// pending message (created at `oldest_pending_at`).
    pub fn storage(&self, database_bytes: i64, oldest_pending_at: Option<i64>, now: i64) {
        self.database_bytes.set(database_bytes);
        let age = oldest_pending_at.map_or(0, |at| (now - at).max(0) / 1_000_000);
        self.oldest_pending.set(age);
    }

    pub fn render(&self, queue: &[(MessageStatus, i64)]) -> String {
        for &state in MessageStatus::ALL {
            let n = queue
                .iter()
                .find(|(s, _)| *s == state)
                .map_or(0, |(_, n)| *n);
            self.queue
                .get_or_create(&StateLabel {
                    state: state.as_str(),
                })
                .set(n);
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts_and_buckets() {
        let m = Metrics::default();
        m.attempt("int_a", Some(200), Duration::from_millis(3));
        m.attempt("int_b", Some(500), Duration::from_millis(30));
        m.attempt("int_b", None, Duration::from_secs(20));
        let text = m.render(&[(MessageStatus::Pending, 2)]);
        for line in [
            "scanhook_queue_messages{state=\"pending\"} 2",
            "scanhook_queue_messages{state=\"failed\"} 0",
            "scanhook_delivery_attempts_total{outcome=\"delivered\"} 1",
            "scanhook_delivery_attempts_total{outcome=\"error\"} 1",
            "scanhook_delivery_latency_seconds_bucket{le=\"0.005\"} 1",
            "scanhook_delivery_latency_seconds_bucket{le=\"+Inf\"} 3",
            "scanhook_delivery_latency_seconds_count 3",
            "scanhook_integration_failures_total{integration=\"int_b\"} 2",
            "# EOF",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in:\n{text}");
        }
    }
}
