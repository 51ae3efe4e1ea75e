//! Findings as people look at them: severities by name, what a scan did to a finding
//! (its change), triage states, the status a person sees, and the filters of the findings
//! list, parsed from a query string. The API and the UI read findings through these.

use super::query::{QueryError, QueryPairs};
use crate::clock::{self, Micros};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Writes the `as_str`, `Display`, `FromStr` and `ALL` of a field-less enum whose serde
/// names are its `as_str` names.
macro_rules! named_enum {
    ($name:ident, $what:literal, { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            /// Every name, comma-separated (for error messages).
            pub fn names() -> String {
                [$($text),+].join(", ")
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(format!(
                        concat!("unknown ", $what, " {:?}: use one of {}"),
                        other,
                        $name::names()
                    )),
                }
            }
        }
    };
}
pub(crate) use named_enum;

/// A finding's severity as the API names it. The CLI uploads integers: 0 (info, low) to 3
/// (critical); 4 and above are experiments.
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
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
    Experiment,
}

named_enum!(Severity, "severity", {
    Low => "low",
    Medium => "medium",
    High => "high",
    Critical => "critical",
    Experiment => "experiment",
});

impl Severity {
    /// The severity of an uploaded severity number.
    pub fn from_level(level: i64) -> Severity {
        match level {
            i64::MIN..=0 => Severity::Low,
            1 => Severity::Medium,
            2 => Severity::High,
            3 => Severity::Critical,
            _ => Severity::Experiment,
        }
    }

    /// The severity number stored for findings of this severity.
    pub fn level(self) -> i64 {
        match self {
            Severity::Low => 0,
            Severity::Medium => 1,
            Severity::High => 2,
            Severity::Critical => 3,
            Severity::Experiment => 4,
        }
    }

    /// Reads a severity as people and rule files write it: the API's names, or Semgrep's
    /// rule severities (`INFO`, `WARNING`, `ERROR`, …) in any case.
    pub fn parse_loose(s: &str) -> Result<Severity, String> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "low" | "info" | "inventory" => Severity::Low,
            "medium" | "warning" => Severity::Medium,
            "high" | "error" => Severity::High,
            "critical" => Severity::Critical,
            "experiment" => Severity::Experiment,
            other => {
                return Err(format!(
                    "unknown severity {other:?}: use low, medium, high or critical"
                ))
            }
        })
    }
}

/// What a scan did to a finding, as its change log records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// First detection of the identity in the project.
    New,
    /// Fixed on this ref before, and back.
    Regression,
    /// Ignored or removed on this ref before, and back.
    Reopened,
    /// Known from another ref, new on this one.
    FromOtherRef,
    /// Closed: its path was searched and its rule run, and it was not found.
    Fixed,
    /// Closed by a `nosemgrep` comment.
    Ignored,
    /// Closed: file deleted or no longer scanned, rule no longer run.
    Removed,
    /// Recorded as a `nosemgrep` match.
    Nosemgrep,
}

named_enum!(Change, "change", {
    New => "new",
    Regression => "regression",
    Reopened => "reopened",
    FromOtherRef => "from_other_ref",
    Fixed => "fixed",
    Ignored => "ignored",
    Removed => "removed",
    Nosemgrep => "nosemgrep",
});

impl Change {
    /// The changes that open a finding.
    pub const OPENINGS: [Change; 4] = [
        Change::New,
        Change::Regression,
        Change::Reopened,
        Change::FromOtherRef,
    ];
}

/// A triage state of an identity (it follows the finding across refs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TriageState {
    Untriaged,
    Ignored,
    Reviewing,
    Fixing,
    ProvisionallyIgnored,
    Reopened,
}

named_enum!(TriageState, "triage state", {
    Untriaged => "untriaged",
    Ignored => "ignored",
    Reviewing => "reviewing",
    Fixing => "fixing",
    ProvisionallyIgnored => "provisionally_ignored",
    Reopened => "reopened",
});

impl TriageState {
    /// The states a person may set (`untriaged` is only where nothing was set).
    pub const SETTABLE: [TriageState; 5] = [
        TriageState::Ignored,
        TriageState::Reviewing,
        TriageState::Fixing,
        TriageState::Reopened,
        TriageState::ProvisionallyIgnored,
    ];

    /// Whether an open finding in this state shows it as its status.
    pub fn shows(self) -> bool {
        matches!(
            self,
            TriageState::Ignored
                | TriageState::Reviewing
                | TriageState::Fixing
                | TriageState::ProvisionallyIgnored
        )
    }
}

/// What a person sees of a finding: its state on the ref, or the triage state of an open
/// finding that has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Open,
    Fixed,
    Ignored,
    Removed,
    Reviewing,
    Fixing,
    ProvisionallyIgnored,
}

named_enum!(Status, "status", {
    Open => "open",
    Fixed => "fixed",
    Ignored => "ignored",
    Removed => "removed",
    Reviewing => "reviewing",
    Fixing => "fixing",
    ProvisionallyIgnored => "provisionally_ignored",
});

/// Largest page of findings.
pub const MAX_PAGE_SIZE: i64 = 10_000;
/// Highest page number: beyond it an offset could overflow.
pub const MAX_PAGE: i64 = 1_000_000;

/// Filters of the findings list. Empty lists filter nothing.
#[derive(Debug, Clone)]
pub struct FindingFilter {
    pub repos: Vec<String>,
    pub git_ref: Option<String>,
    /// Empty: everything but removed.
    pub statuses: Vec<Status>,
    pub severities: Vec<Severity>,
    pub rules: Vec<String>,
    pub policies: Vec<String>,
    pub modes: Vec<String>,
    pub since: Option<Micros>,
    /// One row per identity across refs (the most recently created).
    pub dedup: bool,
    pub page: i64,
    pub page_size: i64,
}

impl Default for FindingFilter {
    fn default() -> Self {
        FindingFilter {
            repos: vec![],
            git_ref: None,
            statuses: vec![],
            severities: vec![],
            rules: vec![],
            policies: vec![],
            modes: vec![],
            since: None,
            dedup: false,
            page: 0,
            page_size: 100,
        }
    }
}

impl FindingFilter {
    /// The filters of a query string (`repos`, `ref`, `status`, `severities`, `rules`,
    /// `policies`, `modes`, `since`, `dedup`, `page`, `page_size`), or an error naming the
    /// bad one.
    pub fn from_query(q: &QueryPairs) -> Result<FindingFilter, QueryError> {
        let statuses = q
            .list("status")
            .iter()
            .map(|s| {
                s.parse::<Status>()
                    .map_err(|e| QueryError(format!("`status`: {e}")))
            })
            .collect::<Result<_, _>>()?;
        let severities = q
            .list("severities")
            .iter()
            .map(|s| Severity::parse_loose(s).map_err(|e| QueryError(format!("`severities`: {e}"))))
            .collect::<Result<_, _>>()?;
        let since = q
            .given("since")
            .map(|s| {
                clock::parse_since(s)
                    .ok_or_else(|| QueryError("`since` must be epoch seconds or RFC 3339".into()))
            })
            .transpose()?;
        Ok(FindingFilter {
            repos: q.list("repos"),
            git_ref: q.given("ref").map(str::to_string),
            statuses,
            severities,
            rules: q.list("rules"),
            policies: q.list("policies"),
            modes: q.list("modes"),
            since,
            dedup: q.bool("dedup")?.unwrap_or(false),
            page: q.int_in("page", 0..=MAX_PAGE)?.unwrap_or(0),
            page_size: q.int_in("page_size", 1..=MAX_PAGE_SIZE)?.unwrap_or(100),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severities_by_level_and_name() {
        for s in Severity::ALL {
            assert_eq!(Severity::from_level(s.level()), *s);
            assert_eq!(s.as_str().parse::<Severity>(), Ok(*s));
        }
        assert_eq!(Severity::parse_loose("ERROR"), Ok(Severity::High));
        assert_eq!(Severity::parse_loose("Warning"), Ok(Severity::Medium));
        assert!(Severity::parse_loose("loud").is_err());
    }

    #[test]
    fn names_round_trip() {
        for c in Change::ALL {
            assert_eq!(c.as_str().parse::<Change>(), Ok(*c));
            assert_eq!(serde_json::to_value(c).unwrap(), c.as_str());
        }
        for t in TriageState::ALL {
            assert_eq!(t.as_str().parse::<TriageState>(), Ok(*t));
            assert_eq!(serde_json::to_value(t).unwrap(), t.as_str());
        }
        for s in Status::ALL {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert!("closed"
            .parse::<Status>()
            .unwrap_err()
            .contains("open, fixed"));
    }

    #[test]
    fn filters_from_a_query() {
        let q = QueryPairs::parse("repos=a,b&status=open&severities=high&page=2&page_size=10");
        let f = FindingFilter::from_query(&q).unwrap();
        assert_eq!(f.repos, ["a", "b"]);
        assert_eq!(f.statuses, [Status::Open]);
        assert_eq!(f.severities, [Severity::High]);
        assert_eq!((f.page, f.page_size), (2, 10));
        for bad in [
            "status=closed",
            "severities=loud",
            "page=-1",
            "page=92233720368547759",
            "page_size=0",
            "page_size=10001",
            "since=yesterday",
            "dedup=maybe",
        ] {
            let e = FindingFilter::from_query(&QueryPairs::parse(bad));
            assert!(e.is_err(), "{bad} must be refused");
        }
    }
}
