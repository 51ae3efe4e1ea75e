//! scanhook: a self-hosted findings hub that the real `semgrep ci` client talks to.
//!
//! Map of the crate (read `docs/ARCHITECTURE.md` first), from the bottom up; a module only
//! imports from modules above it in this list:
//! - [`clock`], [`ids`]: time and the clock seam; typed ids, tokens and secrets.
//! - [`secrets`], [`files`]: secrets sealed at rest under a key file; private files.
//! - [`domain`]: pure logic without I/O: rules and modes, the finding lifecycle, the
//!   webhook JSON objects, the CI protocol's request types, the outbox's values.
//! - [`store`]: all SQL, on SQLite or PostgreSQL; persists what `domain` decides.
//! - [`delivery`]: signing, the SSRF guard, retries, the delivery worker, the Test action.
//! - [`retention`]: how long delivered and failed messages, raw uploads and fail-open
//!   reports are kept, and the background pruner.
//! - [`config`]: layered, validated configuration for the server roles.
//! - [`error`]: the one error type that becomes an HTTP response.
//! - [`state`]: what every request handler reaches.
//! - [`edge`]: request parsing shared by the API and the UI.
//! - [`api`]: the JSON API's request and response types (the OpenAPI document's schemas).
//! - [`http`], [`ui`]: the JSON API and the web UI, siblings over everything above.
//! - [`serve`]: the accept loop: a connection cap, header and body timeouts, graceful stop.
//! - [`app`]: mounts both routers, runs the background tasks, shuts down.
//! - [`cli`]: the binary's roles (`serve`, `worker`, `migrate`, `token`, admin clients).

pub mod api;
pub mod app;
pub mod cli;
pub mod clock;
pub mod config;
pub mod delivery;
pub mod domain;
pub mod edge;
pub mod error;
pub mod files;
pub mod http;
pub mod ids;
pub mod retention;
pub mod secrets;
pub mod serve;
pub mod state;
pub mod store;
pub mod ui;
