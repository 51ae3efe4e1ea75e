//! In-process delivery counters, exposed by `/metrics` in the Prometheus text format
//! together with the queue depth read from the database.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the latency histogram, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 15.0,
];

/// Counters of this process's delivery attempts.
#[derive(Debug, Default)]
pub struct Metrics {
    delivered: AtomicU64,
    http_failure: AtomicU64,
    error: AtomicU64,
    latency_buckets: [AtomicU64; 12],
    latency_count: AtomicU64,
    latency_sum_micros: AtomicU64,
    failures_by_integration: Mutex<BTreeMap<String, u64>>,
    /// When the delivery loop last went round (microseconds; 0 before its first turn).
    last_loop: AtomicI64,
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

    /// Records one attempt: `status` is the HTTP status, `None` for a network error.
    pub fn attempt(&self, integration: &str, status: Option<u16>, latency: Duration) {
        match status {
            Some(s) if (200..300).contains(&s) => self.delivered.fetch_add(1, Ordering::Relaxed),
            Some(_) => self.http_failure.fetch_add(1, Ordering::Relaxed),
            None => self.error.fetch_add(1, Ordering::Relaxed),
        };
        if !status.is_some_and(|s| (200..300).contains(&s)) {
            let mut f = self.failures_by_integration.lock().expect("metrics lock");
            *f.entry(integration.to_string()).or_default() += 1;
        }
        let secs = latency.as_secs_f64();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                self.latency_buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_micros
            .fetch_add(latency.as_micros() as u64, Ordering::Relaxed);
    }

    /// The exposition text, with the queue depth by state passed in.
    pub fn render(&self, queue: &[(String, i64)]) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "# HELP scanhook_queue_messages Webhook messages by state."
        );
        let _ = writeln!(s, "# TYPE scanhook_queue_messages gauge");
        for state in crate::store::messages::STATES {
            let n = queue
                .iter()
                .find(|(k, _)| k == state)
                .map_or(0, |(_, n)| *n);
            let _ = writeln!(s, "scanhook_queue_messages{{state=\"{state}\"}} {n}");
        }
        let _ = writeln!(
            s,
            "# HELP scanhook_delivery_attempts_total Delivery attempts by outcome."
        );
        let _ = writeln!(s, "# TYPE scanhook_delivery_attempts_total counter");
        for (outcome, n) in [
            ("delivered", &self.delivered),
            ("http_failure", &self.http_failure),
            ("error", &self.error),
        ] {
            let _ = writeln!(
                s,
                "scanhook_delivery_attempts_total{{outcome=\"{outcome}\"}} {}",
                n.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            s,
            "# HELP scanhook_delivery_latency_seconds Latency of delivery attempts."
        );
        let _ = writeln!(s, "# TYPE scanhook_delivery_latency_seconds histogram");
        for (i, bound) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                s,
                "scanhook_delivery_latency_seconds_bucket{{le=\"{bound}\"}} {}",
                self.latency_buckets[i].load(Ordering::Relaxed)
            );
        }
        let count = self.latency_count.load(Ordering::Relaxed);
        let _ = writeln!(
            s,
            "scanhook_delivery_latency_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let sum = self.latency_sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(s, "scanhook_delivery_latency_seconds_sum {sum}");
        let _ = writeln!(s, "scanhook_delivery_latency_seconds_count {count}");
        let _ = writeln!(
            s,
            "# HELP scanhook_integration_failures_total Failed attempts per integration."
        );
        let _ = writeln!(s, "# TYPE scanhook_integration_failures_total counter");
        for (id, n) in self
            .failures_by_integration
            .lock()
            .expect("metrics lock")
            .iter()
        {
            let _ = writeln!(
                s,
                "scanhook_integration_failures_total{{integration=\"{id}\"}} {n}"
            );
        }
        s
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
        let text = m.render(&[("pending".into(), 2)]);
        assert!(text.contains("scanhook_queue_messages{state=\"pending\"} 2"));
        assert!(text.contains("scanhook_delivery_attempts_total{outcome=\"delivered\"} 1"));
        assert!(text.contains("scanhook_delivery_latency_seconds_bucket{le=\"0.005\"} 1"));
        assert!(text.contains("scanhook_delivery_latency_seconds_bucket{le=\"+Inf\"} 3"));
        assert!(text.contains("scanhook_integration_failures_total{integration=\"int_b\"} 2"));
    }
}
