//! Liveness and readiness.

use serde::{Deserialize, Serialize};

/// `GET /healthz`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: String,
}

/// `GET /readyz` when ready.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Ready {
    /// Always `ready`.
    pub status: String,
    /// Whether this process delivers webhooks.
    pub delivering: bool,
    /// How long ago the delivery loop last turned, when this process delivers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_loop_age_ms: Option<u64>,
}
