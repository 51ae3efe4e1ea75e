//! The kinds of event (and message) scanhook sends: what `X-Scanhook-Event` names, what
//! integrations subscribe to. A leaf of `domain/`: filters, integrations, routing and the
//! outbox all read it.

use super::findings::named_enum;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

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
    /// A JSON array of `{"finding_fixed": …}`: findings a scan closed as fixed.
    FindingFixed,
    /// A JSON array of `{"finding_reopened": …}`: fixed findings back on the same ref.
    FindingReopened,
    /// A JSON array of `{"finding_triaged": …}`: triage changes.
    FindingTriaged,
    /// The Test action's notification.
    Test,
}

named_enum!(EventKind, "event type", {
    Scan => "semgrep_scan",
    Finding => "semgrep_finding",
    FindingFixed => "finding_fixed",
    FindingReopened => "finding_reopened",
    FindingTriaged => "finding_triaged",
    Test => "test",
});

impl EventKind {
    /// The event types an integration can subscribe to.
    pub const SUBSCRIBABLE: [EventKind; 5] = [
        EventKind::Scan,
        EventKind::Finding,
        EventKind::FindingFixed,
        EventKind::FindingReopened,
        EventKind::FindingTriaged,
    ];

    /// What an integration that never chose receives: the seed's two.
    pub const DEFAULT: [EventKind; 2] = [EventKind::Scan, EventKind::Finding];

    /// Parses a subscription list (`semgrep_scan,finding_fixed`), refusing `test` and
    /// unknown names; sorted, without repeats.
    pub fn parse_subscriptions<S: AsRef<str>>(names: &[S]) -> Result<Vec<EventKind>, String> {
        let mut out = Vec::new();
        for n in names {
            let n = n.as_ref().trim();
            if n.is_empty() {
                continue;
            }
            let kind: EventKind = n.parse().map_err(|_| {
                let known: Vec<&str> = EventKind::SUBSCRIBABLE.iter().map(|k| k.as_str()).collect();
                format!("unknown event type {n:?}: use {}", known.join(", "))
            })?;
            if kind == EventKind::Test {
                return Err(
                    "`test` is not an event to subscribe to: it is what the Test action sends"
                        .into(),
                );
            }
            if !out.contains(&kind) {
                out.push(kind);
            }
        }
        if out.is_empty() {
            return Err("subscribe to at least one event type".into());
        }
        out.sort_by_key(|k| EventKind::SUBSCRIBABLE.iter().position(|s| s == k));
        Ok(out)
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
    }
}
