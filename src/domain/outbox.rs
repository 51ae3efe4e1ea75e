//! The outbox as values: what kinds of message scanhook sends, the messages routing
//! decided to queue, the states a message moves through, what one delivery attempt did,
//! what follows it, and what it does to the integration's failure streak. No I/O:
//! `store/` persists these, `delivery/` produces attempts.

use super::event_kind::EventKind;
use super::findings::named_enum;
use super::integration::Integration;
use crate::clock::Micros;
use crate::ids::MessageId;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// Most finding objects in one message; a larger set is split.
pub const FINDINGS_PER_MESSAGE: usize = 500;

/// A message to enqueue: its body is `payloads[payload]` of its [`Outbox`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    pub integration_id: i64,
    pub kind: EventKind,
    pub payload: usize,
}

/// What to queue: each distinct body once, and the messages that send them.
#[derive(Debug, Default)]
pub struct Outbox {
    pub payloads: Vec<String>,
    pub messages: Vec<NewMessage>,
}

/// A claimed message with what is needed to send it.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: i64,
    pub public_id: MessageId,
    pub kind: EventKind,
    /// The bytes every attempt sends and signs, shared with the messages of the same body.
    pub body: Bytes,
    pub attempts: i64,
    pub integration: Arc<Integration>,
    /// Until when this process holds it.
    pub lease_until: Micros,
}

/// Whoever may claim messages as they are queued (this process's delivery worker).
pub trait Claimant: Sync {
    /// Asked, per integration, with how many messages it is about to get: the lease
    /// until which they are claimed, or `None` to leave them pending.
    fn claim(&self, integration: i64, n: usize) -> Option<Micros>;
}

impl<F: Fn(i64, usize) -> Option<Micros> + Sync> Claimant for F {
    fn claim(&self, integration: i64, n: usize) -> Option<Micros> {
        self(integration, n)
    }
}

/// The states of a message, in the order it moves through them.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum MessageStatus {
    /// Waiting for its due time and a claim.
    Pending,
    /// Claimed by a worker under a lease.
    Delivering,
    /// A 2xx answered an attempt.
    Delivered,
    /// The retry schedule is spent (or the endpoint answered 410 Gone).
    Failed,
}

named_enum!(MessageStatus, "message status", {
    Pending => "pending",
    Delivering => "delivering",
    Delivered => "delivered",
    Failed => "failed",
});

/// What one attempt did.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub status: Option<u16>,
    pub latency: Duration,
    /// The first 4 KiB of the response body.
    pub excerpt: Option<String>,
    pub error: Option<String>,
    pub retry_after: Option<Duration>,
}

impl Outcome {
    /// An attempt that was not made, and why.
    pub fn refused(error: impl Into<String>) -> Outcome {
        Outcome {
            error: Some(error.into()),
            ..Outcome::default()
        }
    }

    pub fn delivered(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

/// What follows an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Delivered,
    RetryAt(crate::clock::Micros),
    Failed,
}

impl Next {
    /// The state the message moves to.
    pub fn status(self) -> MessageStatus {
        match self {
            Next::Delivered => MessageStatus::Delivered,
            Next::RetryAt(_) => MessageStatus::Pending,
            Next::Failed => MessageStatus::Failed,
        }
    }
}

/// Why an integration is disabled after a `410 Gone`.
pub const GONE: &str = "the endpoint answered 410 Gone";
/// Why an integration is disabled after failing for the whole disable window.
pub const FAILING: &str = "failing continuously";

/// What an integration's last attempt of a batch does to its failure streak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Streak {
    /// Delivered: a streak (if any) ends.
    Ended,
    /// Still failing, since then.
    Failing { since: Micros },
    /// Disabled (messages wait, nothing is lost), and why.
    Disable {
        since: Option<Micros>,
        reason: &'static str,
    },
}

/// The 410 / failure-streak policy: a `410 Gone` disables at once; any other failure
/// starts a streak (or continues one) that disables once it has lasted `disable_after`;
/// a delivery ends it.
pub fn streak(
    last: &Outcome,
    failing_since: Option<Micros>,
    attempted_at: Micros,
    disable_after: Micros,
) -> Streak {
    if last.delivered() {
        return Streak::Ended;
    }
    if last.status == Some(410) {
        return Streak::Disable {
            since: failing_since,
            reason: GONE,
        };
    }
    let since = failing_since.unwrap_or(attempted_at);
    if since <= attempted_at - disable_after {
        Streak::Disable {
            since: Some(since),
            reason: FAILING,
        }
    } else {
        Streak::Failing { since }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_streak_policy() {
        let ok = Outcome {
            status: Some(204),
            ..Outcome::default()
        };
        let gone = Outcome {
            status: Some(410),
            ..Outcome::default()
        };
        let down = Outcome::refused("connection refused");
        let day = 86_400_000_000;
        assert_eq!(streak(&ok, Some(5), 10, day), Streak::Ended);
        assert_eq!(
            streak(&gone, None, 10, day),
            Streak::Disable {
                since: None,
                reason: GONE
            }
        );
        assert_eq!(
            streak(&down, None, 10 * day, day),
            Streak::Failing { since: 10 * day }
        );
        assert_eq!(
            streak(&down, Some(9 * day + 1), 10 * day, day),
            Streak::Failing { since: 9 * day + 1 }
        );
        assert_eq!(
            streak(&down, Some(9 * day), 10 * day, day),
            Streak::Disable {
                since: Some(9 * day),
                reason: FAILING
            },
            "failing for exactly the window disables"
        );
    }

    #[test]
    fn names_round_trip() {
        for s in MessageStatus::ALL {
            assert_eq!(s.as_str().parse::<MessageStatus>(), Ok(*s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert!("sent".parse::<MessageStatus>().is_err());
    }
}
