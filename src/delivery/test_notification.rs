//! The Test action: the platform's test notification, posted now and signed like any
//! message, to a saved integration (the attempt joins its delivery log) or to one that is
//! still being added (nothing to log it under yet). The API and the UI both call [`send`].

use super::sender::Sender;
use super::signing::{self, Signer};
use crate::clock::{self, Micros};
use crate::domain::channels::template::{message_context, Template};
use crate::domain::channels::{render_chat, ChannelKind, Note, TestNote};
use crate::domain::event_kind::EventKind;
use crate::domain::integration::Integration;
use crate::domain::outbox::Outcome;
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
    /// What it posts, and (for chat kinds) the name its test message gives.
    pub kind: ChannelKind,
    pub name: &'a str,
    pub template: Option<&'a Template>,
}

impl<'a> Target<'a> {
    /// A saved integration, at `url` (its own, or one typed into its edit form).
    pub fn saved(integration: &'a Integration, url: &'a WebhookUrl, now: Micros) -> Target<'a> {
        Target {
            url,
            secret: integration.secret.expose(),
            previous: integration.previous_secret(now),
            logged_under: Some(integration),
            kind: integration.kind,
            name: &integration.name,
            template: integration.template.as_deref(),
        }
    }

    /// An integration being added, with the secret it will be saved with.
    pub fn unsaved(
        url: &'a WebhookUrl,
        secret: &'a str,
        kind: ChannelKind,
        name: &'a str,
        template: Option<&'a Template>,
    ) -> Target<'a> {
        Target {
            url,
            secret,
            previous: None,
            logged_under: None,
            kind,
            name,
            template,
        }
    }

    /// The test message in the target's format.
    fn body(&self, server_url: &str) -> Result<String, String> {
        match self.kind {
            ChannelKind::Webhook => Ok(TEST_BODY.to_string()),
            ChannelKind::Template => {
                let t = self.template.ok_or("its template no longer compiles")?;
                let body = serde_json::from_str(TEST_BODY).expect("the test body is JSON");
                t.render(&message_context(EventKind::Test, body, server_url))
                    .map(|o| o.body)
                    .map_err(|e| format!("the template failed: {e}"))
            }
            chat => {
                let note = Note::Test(TestNote {
                    integration: self.name,
                    server_url,
                });
                render_chat(chat, &note)
                    .map(|r| r.body)
                    .ok_or_else(|| "no test message for this kind".into())
            }
        }
    }

    fn content_type(&self) -> &str {
        crate::domain::channels::content_type(self.kind, self.template)
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
    let (body, outcome) = match target.body(&store.links().base) {
        Ok(body) => {
            let signer = Signer::new(target.secret, target.previous)?;
            let headers = signing::delivery_headers(
                target.kind.signs().then_some(&signer),
                msg_id.as_str(),
                EventKind::Test.as_str(),
                now,
                body.as_bytes(),
                target.content_type(),
            )?;
            let outcome = sender
                .send(
                    target.url.as_url().clone(),
                    headers,
                    bytes::Bytes::from(body.clone()),
                )
                .await;
            (body, outcome)
        }
        Err(why) => (String::new(), Outcome::refused(why)),
    };
    if let Some(integration) = target.logged_under {
        store
            .record_test(integration, &msg_id, &body, now, &outcome)
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
