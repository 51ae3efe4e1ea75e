//! The outbox as values: what kinds of message scanhook sends, the states a message moves
//! through, what one delivery attempt did and what follows it. No I/O: `store/` persists
//! these, `delivery/` produces attempts.

use super::findings::named_enum;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// What a message carries; sent as `X-Scanhook-Event` so receivers can route without
/// parsing the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// `{"semgrep_scan": …}`: one per scan and integration.
    #[serde(rename = "semgrep_scan")]
    Scan,
    /// A JSON array of `{"semgrep_finding": …}`: the scan's newly notified findings.
    #[serde(rename = "semgrep_finding")]
    Finding,
    /// The Test action's notification.
    Test,
}

named_enum!(EventKind, "event kind", {
    Scan => "semgrep_scan",
    Finding => "semgrep_finding",
    Test => "test",
});

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
#[derive(Debug, Clone, Copy, PartialEq)]
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for k in EventKind::ALL {
            assert_eq!(k.as_str().parse::<EventKind>(), Ok(*k));
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
        }
        for s in MessageStatus::ALL {
            assert_eq!(s.as_str().parse::<MessageStatus>(), Ok(*s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert!("sent".parse::<MessageStatus>().is_err());
    }
}
