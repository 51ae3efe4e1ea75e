//! Integrations (Settings › Integrations), the rule modes that notify them, and the
//! delivery log.

use crate::clock::{iso, Micros};
use crate::delivery::test_notification::TestResult;
use crate::domain::channels::ChannelKind;
use crate::domain::event_kind::EventKind;
use crate::domain::filters::FilterSpec;
use crate::domain::integration::Integration;
use crate::domain::mode::RuleMode;
use crate::domain::outbox::MessageStatus;
use crate::error::{AppError, AppResult};
use crate::ids::{IntegrationId, MessageId, ScanId};
use crate::store::messages::{AttemptRow, MessageRow, Resend};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// `POST /api/v1/integrations`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IntegrationIn {
    /// What it posts (default `webhook`: the seed's signed JSON).
    #[serde(default)]
    pub kind: Option<ChannelKind>,
    /// 1 to 200 characters.
    pub name: String,
    /// http or https, without credentials. For slack, teams and discord the URL is the
    /// credential: it is stored sealed and shown masked from then on.
    pub url: String,
    /// For `template`: a minijinja template over `event`, `body` (the webhook body) and
    /// `scanhook_url`; compiled and tried on a sample at save time.
    #[serde(default)]
    pub template: Option<String>,
    /// For `template`: the content type of what it renders (default application/json).
    #[serde(default)]
    pub content_type: Option<String>,
    /// The event types it receives (default: semgrep_scan and semgrep_finding).
    #[serde(default)]
    #[schema(value_type = Option<Vec<EventKind>>)]
    pub events: Option<Vec<String>>,
    /// What narrows them (default: nothing).
    #[serde(default)]
    pub filters: Option<FilterSpec>,
}

/// `PATCH /api/v1/integrations/{id}`: what is given changes.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IntegrationPatch {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
    /// Enabling clears the failure streak and the reason it was disabled.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Replaces the event types it receives.
    #[serde(default)]
    #[schema(value_type = Option<Vec<EventKind>>)]
    pub events: Option<Vec<String>>,
    /// Replaces all its filters (`{}` clears them).
    #[serde(default)]
    pub filters: Option<FilterSpec>,
    /// For `template` integrations: a new template (with `content_type`, or the current one).
    #[serde(default)]
    pub template: Option<String>,
    #[serde(default)]
    pub content_type: Option<String>,
}

/// An integration as admins see it (with its signing secret).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IntegrationOut {
    pub id: IntegrationId,
    pub kind: ChannelKind,
    pub name: String,
    /// Masked for slack, teams and discord (the URL is their credential).
    pub url: String,
    pub enabled: bool,
    /// Why it was disabled by scanhook (410 Gone, failing continuously).
    pub disabled_reason: Option<String>,
    /// `whsec_…`: the Standard Webhooks signing secret.
    pub secret: String,
    /// Until when the rotated-out secret also signs.
    pub previous_secret_valid_until: Option<String>,
    /// The rule modes that notify it of findings.
    pub modes: Vec<RuleMode>,
    /// The event types it receives.
    pub events: Vec<EventKind>,
    /// What narrows them.
    pub filters: FilterSpec,
    /// For `template`: its source and content type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl IntegrationOut {
    pub fn new(i: &Integration, now: Micros) -> IntegrationOut {
        IntegrationOut {
            id: i.public_id.clone(),
            kind: i.kind,
            name: i.name.clone(),
            url: i.shown_url(),
            enabled: i.enabled,
            disabled_reason: i.disabled_reason.clone(),
            secret: i.secret.expose().to_string(),
            previous_secret_valid_until: i.previous_secret(now).map(|(_, until)| iso(until)),
            modes: i.modes.clone(),
            events: i.events.clone(),
            filters: i.filters.spec().clone(),
            template: i.template.as_ref().map(|t| t.source().to_string()),
            content_type: i.template.as_ref().map(|t| t.content_type().to_string()),
            created_at: iso(i.created_at),
            updated_at: iso(i.updated_at),
        }
    }
}

/// `GET /api/v1/integrations`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IntegrationList {
    pub integrations: Vec<IntegrationOut>,
}

/// `DELETE /api/v1/integrations/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Deleted {
    pub deleted: IntegrationId,
}

/// What the Test action did.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TestOut {
    /// The test message's `webhook-id` (in the delivery log).
    pub message_id: MessageId,
    /// A 2xx answered.
    pub delivered: bool,
    pub status: Option<u16>,
    pub latency_ms: f64,
    /// The first 4 KiB of the answer.
    pub response: Option<String>,
    /// Why no answer came (refused address, timeout, connection error).
    pub error: Option<String>,
}

impl From<TestResult> for TestOut {
    fn from(r: TestResult) -> Self {
        TestOut {
            message_id: r.message_id,
            delivered: r.delivered,
            status: r.status,
            latency_ms: r.latency_ms,
            response: r.response,
            error: r.error,
        }
    }
}

/// `POST /api/v1/integrations/{id}/backfill`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BackfillIn {
    /// Count only: queue nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Send again the findings an earlier backfill sent.
    #[serde(default)]
    pub force: bool,
}

/// What a backfill queued (or, in a dry run, would queue).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BackfillOut {
    pub dry_run: bool,
    /// Open findings sent (or to send) as `semgrep_finding` objects.
    pub findings: u64,
    /// The messages that carry them (at most 500 findings each).
    pub messages: u64,
    /// Matching open findings left out because an earlier backfill sent them.
    pub already_sent: u64,
}

/// `POST /api/v1/filters/preview`: filters to try.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewIn {
    /// Event types (default: the seed's two); only finding events are counted.
    #[serde(default)]
    pub events: Option<Vec<String>>,
    #[serde(default)]
    pub filters: FilterSpec,
    /// Count as this integration's rule modes would (otherwise every mode counts).
    #[serde(default)]
    pub integration: Option<IntegrationId>,
}

/// How many of the deployment's recent findings filters would have sent.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PreviewOut {
    /// Findings opened in the window (at most the 5,000 newest).
    pub recent: u64,
    /// Of those, how many the filters pass.
    pub matching: u64,
    /// Of those, how many a rule mode notifying the integration covers (with
    /// `integration`; otherwise equal to `matching`).
    pub notified: u64,
    /// Findings the expression failed on (they would not be sent).
    pub failed: u64,
    /// The window: findings opened since then (ISO 8601).
    pub since: String,
}

/// `POST /api/v1/integrations/{id}/recover`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RecoverIn {
    /// Failed messages created since then: epoch seconds or RFC 3339.
    pub since: String,
}

/// How many messages were queued again.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Requeued {
    pub requeued: u64,
}

/// `GET /api/v1/modes`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ModeList {
    pub modes: Vec<ModeIntegrations>,
}

/// The integrations a rule mode notifies.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ModeIntegrations {
    pub mode: RuleMode,
    pub integrations: Vec<IntegrationId>,
}

/// `POST /api/v1/modes/{mode}/notify` and `/unnotify`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NotifyIn {
    /// At least one integration id.
    #[schema(min_items = 1)]
    pub integration_ids: Vec<IntegrationId>,
}

/// A rule mode's notifications, changed.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ModeNotifies {
    pub mode: RuleMode,
    /// True after `notify`, false after `unnotify`.
    pub notify: bool,
    pub integration_ids: Vec<IntegrationId>,
}

/// `GET /api/v1/deliveries`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeliveryList {
    pub deliveries: Vec<DeliveryOut>,
}

/// A message of the delivery log.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeliveryOut {
    /// Its `webhook-id`, the same on every attempt.
    pub id: MessageId,
    /// Null once the integration was deleted (its log stays).
    pub integration_id: Option<IntegrationId>,
    pub scan_id: Option<ScanId>,
    pub kind: EventKind,
    pub status: MessageStatus,
    pub attempts: i64,
    /// When a pending message is tried next.
    pub next_attempt_at: Option<String>,
    pub created_at: String,
    pub delivered_at: Option<String>,
}

impl From<&MessageRow> for DeliveryOut {
    fn from(m: &MessageRow) -> Self {
        DeliveryOut {
            id: m.public_id.clone(),
            integration_id: m.integration.clone(),
            scan_id: m.scan_id,
            kind: m.kind,
            status: m.status,
            attempts: m.attempts,
            next_attempt_at: (m.status == MessageStatus::Pending).then(|| iso(m.next_attempt_at)),
            created_at: iso(m.created_at),
            delivered_at: m.delivered_at.map(iso),
        }
    }
}

/// One message with its body and every attempt.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeliveryDetail {
    #[serde(flatten)]
    pub message: DeliveryOut,
    /// The exact body every attempt sends.
    #[schema(value_type = serde_json::Value)]
    pub body: Box<RawValue>,
    pub attempt_log: Vec<AttemptOut>,
}

/// One logged attempt.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AttemptOut {
    pub at: String,
    pub status: Option<i64>,
    pub latency_ms: f64,
    /// The first 4 KiB of the answer.
    pub response: Option<String>,
    pub error: Option<String>,
}

impl From<&AttemptRow> for AttemptOut {
    fn from(a: &AttemptRow) -> Self {
        AttemptOut {
            at: iso(a.attempted_at),
            status: a.status_code,
            latency_ms: a.latency_us as f64 / 1000.0,
            response: a.response_excerpt.clone(),
            error: a.error.clone(),
        }
    }
}

/// `POST /api/v1/deliveries/{msg_id}/resend`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Resent {
    pub resent: MessageId,
}

/// What a resend that queued nothing answers: `delivery` not found, or 409
/// `integration_deleted`.
pub fn resent(r: Resend) -> AppResult<()> {
    match r {
        Resend::Queued => Ok(()),
        Resend::Unknown => Err(AppError::not_found("delivery")),
        Resend::IntegrationDeleted => Err(AppError::conflict(
            "integration_deleted",
            "the integration this delivery was for has been deleted, so nothing would send it; \
             its log stays readable",
        )),
    }
}
