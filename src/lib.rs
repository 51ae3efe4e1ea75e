//! scanhook: a self-hosted findings hub that the real `semgrep ci` client talks to.
//!
//! Map of the crate (read `docs/ARCHITECTURE.md` first):
//! - [`cli`]: the binary's roles (`serve`, `migrate`, `token`, `rules`), one file each.
//! - [`config`]: layered, validated configuration for the server roles.
//! - [`app`]: wires config, storage and HTTP together; background tasks and shutdown.
//! - [`http`]: the HTTP surface: the semgrep-ci protocol, the v1 JSON API, auth.
//! - [`domain`]: pure logic without I/O: rules and modes, the finding lifecycle,
//!   the webhook JSON objects, the request types of the CI protocol.
//! - [`delivery`]: signing, the SSRF guard, retries and the delivery worker.
//! - [`store`]: all SQL, on SQLite or PostgreSQL.
//! - [`ui`]: the web UI: server-rendered pages behind a session.
//! - [`error`]: the one error type that becomes an HTTP response.
//! - [`ids`], [`clock`]: identifiers, secrets and time.

pub mod app;
pub mod cli;
pub mod clock;
pub mod config;
pub mod delivery;
pub mod domain;
pub mod error;
pub mod http;
pub mod ids;
pub mod store;
pub mod ui;
