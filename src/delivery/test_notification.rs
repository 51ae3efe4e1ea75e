//! The Test action: the platform's test notification, posted now and signed like any
//! message, to a saved integration (the attempt joins its delivery log) or to one that is
//! still being added (nothing to log it under yet). The API and the UI both call [`send`].

use super::sender::Sender;
use super::signing::Signer;
use crate::clock::{self, Micros};
use crate::domain::integration::Integration;
use crate::domain::outbox::EventKind;
use crate::domain::webhook::WebhookUrl;
use crate::ids::MessageId;
use crate::store::Store;

/// The platform's test notification body.
pub const TEST_BODY: &str = r#"[{"text":"Test Notification","username":"Semgrep"}]"#;

/// Where a Test goes and how it is signed.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub url: &'a WebhookUrl,
    pub secret: &'a str,
    /// A rotated-out secret that still signs, until when.
    pub previous: Option<(&'a str, Micros)>,
    /// The saved integration whose delivery log gets the attempt.
    pub logged_under: Option<&'a Integration>,
}

impl<'a> Target<'a> {
    /// A saved integration, at `url` (its own, or one typed into its edit form).
    pub fn saved(integration: &'a Integration, url: &'a WebhookUrl, now: Micros) -> Target<'a> {
        Target {
            url,
            secret: integration.secret.expose(),
            previous: integration.previous_secret(now),
            logged_under: Some(integration),
        }
    }

    /// An integration being added, with the secret it will be saved with.
    pub fn unsaved(url: &'a WebhookUrl, secret: &'a str) -> Target<'a> {
        Target {
            url,
            secret,
            previous: None,
            logged_under: None,
        }
    }
}

/// What one Test attempt did.
#[derive(Debug, Clone)]
pub struct TestResult {
    pub message_id: MessageId,
    pub delivered: bool,
    pub status: Option<u16>,
    pub latency_ms: f64,
    pub response: Option<String>,
    pub error: Option<String>,
}

/// Posts the test notification to `target` now and reports what happened.
pub async fn send(
    store: &Store,
    sender: &Sender,
    target: Target<'_>,
) -> anyhow::Result<TestResult> {
    let msg_id = MessageId::generate();
    let now = clock::now();
    let body = TEST_BODY.as_bytes();
    let headers = Signer::new(target.secret, target.previous)?.headers(
        msg_id.as_str(),
        EventKind::Test.as_str(),
        now,
        body,
    )?;
    let outcome = sender
        .send(
            target.url.as_url().clone(),
            headers,
            bytes::Bytes::from_static(body),
        )
        .await;
    if let Some(integration) = target.logged_under {
        store
            .record_test(integration, &msg_id, TEST_BODY, now, &outcome)
            .await?;
    }
    Ok(TestResult {
        message_id: msg_id,
        delivered: outcome.delivered(),
        status: outcome.status,
        latency_ms: outcome.latency.as_secs_f64() * 1000.0,
        response: outcome.excerpt,
        error: outcome.error,
    })
}
