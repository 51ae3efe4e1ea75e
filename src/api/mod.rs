//! The JSON API's request and response types: what goes over the wire, separate from the
//! rows `store/` reads and the values `domain/` decides on. The handlers in `http/`
//! serialise them, the admin CLI deserialises them, and the OpenAPI document is generated
//! from them (`GET /api/openapi.json`).
//!
//! - [`ops`]: health, readiness.
//! - [`ci`]: what the semgrep-ci protocol answers.
//! - [`v1`]: the platform-compatible read API and per-scan views.
//! - [`admin`]: rules, policies, tokens.
//! - [`integrations`]: integrations, rule-mode notifications, the delivery log.
//! - [`uploads`]: what a SARIF or `semgrep scan --json` upload did.

pub mod admin;
pub mod ci;
pub mod integrations;
pub mod ops;
pub mod uploads;
pub mod v1;

use crate::error::ErrorBody;
use serde::{Deserialize, Serialize};

/// `{"success": true}`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Success {
    pub success: bool,
}

impl Success {
    pub fn yes() -> Success {
        Success { success: true }
    }
}

/// The errors every authenticated operation may answer.
#[derive(utoipa::IntoResponses)]
pub enum Refusals {
    /// The request is wrong; the message says what to fix.
    #[response(status = 400)]
    BadRequest(ErrorBody),
    /// No token, or one that is not valid.
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// Nothing of this deployment is found at this path.
    #[response(status = 404)]
    NotFound(ErrorBody),
    /// The body stopped arriving for longer than the server waits (`body_read_timeout`).
    #[response(status = 408)]
    Timeout(ErrorBody),
    /// The body is larger than this endpoint accepts.
    #[response(status = 413)]
    TooLarge(ErrorBody),
    /// The body is not `application/json`.
    #[response(status = 415)]
    NotJson(ErrorBody),
}

/// The errors of operations that need an admin token, beyond [`Refusals`].
#[derive(utoipa::IntoResponses)]
pub enum AdminRefusals {
    /// The token is valid but has the `ci` scope.
    #[response(status = 403)]
    Forbidden(ErrorBody),
}

/// A conflict with the state of what the request names.
#[derive(utoipa::IntoResponses)]
pub enum Conflict {
    /// The request conflicts with the current state; the message says which.
    #[response(status = 409)]
    Conflict(ErrorBody),
}
