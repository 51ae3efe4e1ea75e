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
//! - [`globs`]: glob lists for repositories, refs, rules and paths.
//! - [`tokens`]: token scopes and the checks a new token passes.
//! - [`throttle`]: failed attempts per key, bounded.
//! - [`client`]: the key a client's address is counted under, and the address behind a
//!   trusted proxy.
//! - [`text`]: what names and free text may hold.
//! - [`filters`]: what an integration receives, narrowed (globs, severity, CEL).
//! - [`events`]: the finding events' bodies and the JSON Schema of every body.
//! - [`event_kind`]: the event types messages carry and integrations subscribe to.
//! - [`outbox`]: queued and claimed messages, message states, attempt
//!   outcomes and the failure-streak policy.
//! - [`routing`]: which integration is sent which events, as one pure function.
//! - [`channels`]: chat messages (Slack, Teams, Discord) rendered from notes, and user
//!   templates.
//! - [`uploads`]: SARIF 2.1.0 and `semgrep scan --json` files converted into `/results`
//!   bodies, one per tool, with identities that survive moved code.

pub mod channels;
pub mod ci;
pub mod client;
pub mod event_kind;
pub mod events;
pub mod filters;
pub mod findings;
pub mod globs;
pub mod integration;
pub mod lifecycle;
pub mod mode;
pub mod outbox;
pub mod payload;
pub mod query;
pub mod routing;
pub mod rules;
pub mod scan;
pub mod text;
pub mod throttle;
pub mod tokens;
pub mod uploads;
pub mod webhook;
