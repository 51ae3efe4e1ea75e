//! Pure core: no I/O here, only values in and values out, unit-tested without a database.
//! - [`mode`]: rule modes and how they reach the CLI through rule metadata.
//! - [`rules`]: parsing and validating rule files as users write them.
//! - [`ci`]: the request bodies of the semgrep-ci protocol, parsed at the edge.
//! - [`lifecycle`]: which findings open, close, and are notified after a scan.
//! - [`payload`]: the exact `semgrep_scan` and `semgrep_finding` JSON objects.
//! - [`webhook`]: webhook URLs and integration names, checked at the edge.
//! - [`integration`]: an integration as a value.
//! - [`findings`]: severities, changes, triage states, statuses and the findings filters.
//! - [`scan`]: a scan's lifecycle state.
//! - [`query`]: query strings as pairs with typed readers.
//! - [`outbox`]: event kinds, message states, attempt outcomes.

pub mod ci;
pub mod findings;
pub mod integration;
pub mod lifecycle;
pub mod mode;
pub mod outbox;
pub mod payload;
pub mod query;
pub mod rules;
pub mod scan;
pub mod webhook;
