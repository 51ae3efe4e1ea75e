//! Webhook delivery: durable, signed, retried, isolated, observable.
//! - [`signing`]: Standard Webhooks and `X-Semgrep-Signature-256` signatures.
//! - [`guard`]: which addresses may be delivered to (SSRF guard), checked on resolution.
//! - [`sender`]: one HTTP attempt, with its outcome.
//! - [`schedule`]: when to try again.
//! - [`worker`]: claims due messages with leases and delivers them.
//! - [`test_notification`]: the Test action, for saved integrations and ones being added.
//! - [`metrics`]: attempt counters and latencies for `/metrics`.

pub mod guard;
pub mod metrics;
pub mod schedule;
pub mod sender;
pub mod signing;
pub mod test_notification;
pub mod worker;
