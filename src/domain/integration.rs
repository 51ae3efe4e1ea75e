//! An integration as a value: where it delivers, how it signs, which rule modes notify it,
//! and whether it is sent to. `store/` persists it; `delivery/` sends to it.

use crate::clock::Micros;
use crate::domain::mode::RuleMode;
use crate::ids::{DeploymentId, IntegrationId};

/// How long a rotated-out secret keeps signing beside the new one.
pub const ROTATION_OVERLAP_MICROS: Micros = 24 * 3600 * 1_000_000;

/// A webhook target.
#[derive(Debug, Clone)]
pub struct Integration {
    /// The row id (never shown; `public_id` is what people and the API see).
    pub id: i64,
    pub deployment_id: DeploymentId,
    pub public_id: IntegrationId,
    pub name: String,
    pub url: String,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub secret: String,
    pub old_secret: Option<String>,
    pub old_secret_until: Option<Micros>,
    pub failing_since: Option<Micros>,
    pub modes: Vec<RuleMode>,
    pub created_at: Micros,
    pub updated_at: Micros,
}

impl Integration {
    /// The secret that was rotated out, while it still signs at `now`.
    pub fn previous_secret(&self, now: Micros) -> Option<(&str, Micros)> {
        match (&self.old_secret, self.old_secret_until) {
            (Some(s), Some(until)) if until > now => Some((s.as_str(), until)),
            _ => None,
        }
    }
}
