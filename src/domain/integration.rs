//! An integration as a value: where it delivers, how it signs, which rule modes notify it,
//! which events it receives and what narrows them, and whether it is sent to. `store/`
//! persists it; `delivery/` sends to it.

use crate::clock::Micros;
use crate::domain::channels::template::Template;
use crate::domain::channels::ChannelKind;
use crate::domain::event_kind::EventKind;
use crate::domain::filters::Filters;
use crate::domain::mode::RuleMode;
use crate::domain::webhook::WebhookUrl;
use crate::ids::{DeploymentId, IntegrationId};
use std::fmt;
use std::sync::Arc;

/// How long a rotated-out secret keeps signing beside the new one.
pub const ROTATION_OVERLAP_MICROS: Micros = 24 * 3600 * 1_000_000;

/// A signing secret (`whsec_…`). Read with [`SigningSecret::expose`] where it signs or is
/// shown on request; `Debug` never prints it, so neither does a log of an integration.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningSecret(String);

impl SigningSecret {
    pub fn new(secret: String) -> SigningSecret {
        SigningSecret(secret)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningSecret(…)")
    }
}

/// An integration that never chose posts the seed's signed JSON.
impl Default for ChannelKind {
    fn default() -> ChannelKind {
        ChannelKind::Webhook
    }
}

/// A webhook target.
#[derive(Debug, Clone)]
pub struct Integration {
    /// The row id (never shown; `public_id` is what people and the API see).
    pub id: i64,
    pub deployment_id: DeploymentId,
    pub public_id: IntegrationId,
    pub name: String,
    /// What it posts: the seed's signed JSON, a chat platform's format, or a template.
    pub kind: ChannelKind,
    /// Where it posts. For chat kinds this is the credential: show [`Integration::shown_url`].
    pub url: WebhookUrl,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub secret: SigningSecret,
    pub old_secret: Option<SigningSecret>,
    pub old_secret_until: Option<Micros>,
    pub failing_since: Option<Micros>,
    /// The rule modes whose new findings it receives as `semgrep_finding`.
    pub modes: Vec<RuleMode>,
    /// The event types it receives.
    pub events: Vec<EventKind>,
    /// What narrows them.
    pub filters: Filters,
    /// For `template`: the compiled template (with its content type).
    pub template: Option<Arc<Template>>,
    pub created_at: Micros,
    pub updated_at: Micros,
}

impl Integration {
    /// The URL as listings, pages and logs show it: masked for chat kinds.
    pub fn shown_url(&self) -> String {
        if self.kind.is_chat() {
            self.url.masked()
        } else {
            self.url.to_string()
        }
    }

    /// The content type of what it posts.
    pub fn content_type(&self) -> &str {
        crate::domain::channels::content_type(self.kind, self.template.as_deref())
    }

    /// Whether it receives events of `kind`.
    pub fn receives(&self, kind: EventKind) -> bool {
        self.events.contains(&kind)
    }

    /// The secret that was rotated out, while it still signs at `now`.
    pub fn previous_secret(&self, now: Micros) -> Option<(&str, Micros)> {
        match (&self.old_secret, self.old_secret_until) {
            (Some(s), Some(until)) if until > now => Some((s.expose(), until)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_never_shows_in_debug() {
        let s = SigningSecret::new("whsec_c2VjcmV0".into());
        assert_eq!(format!("{s:?}"), "SigningSecret(…)");
        assert_eq!(s.expose(), "whsec_c2VjcmV0");
    }
}
