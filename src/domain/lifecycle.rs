//! What a scan does to the findings of its (project, ref): the rules of DOMAIN.md
//! "What is NEW", as one pure function over values.
//!
//! After a scan, the open findings of the ref are exactly those it uploaded, plus those
//! open before under `skipped_paths`. Every other finding open before closes as ignored
//! (now in `ignores`), fixed (its path searched and its rule run) or removed. A finding is
//! notified the first time its identity is seen open anywhere in the project, and again when
//! it regresses (fixed on this ref, then back); never when triaged as ignored.

use super::ci::Results;
use super::findings::Change;
use serde::{Deserialize, Serialize};
use std::borrow::Borrow;
use std::collections::{HashMap, HashSet};
use std::str::FromStr;

/// The state of a finding on one ref.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Open,
    Fixed,
    /// Suppressed by a `nosemgrep` comment.
    Ignored,
    /// File deleted, renamed or no longer scanned; rule no longer run.
    Removed,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Open => "open",
            State::Fixed => "fixed",
            State::Ignored => "ignored",
            State::Removed => "removed",
        }
    }
}

impl FromStr for State {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "open" => State::Open,
            "fixed" => State::Fixed,
            "ignored" => State::Ignored,
            "removed" => State::Removed,
            other => return Err(format!("unknown finding state {other:?}")),
        })
    }
}

/// A finding already stored on the scanned (project, ref).
#[derive(Debug, Clone)]
pub struct Prior {
    pub state: State,
    pub path: String,
    pub rule_id: String,
}

/// What the project already knows about an identity (any ref).
#[derive(Debug, Clone, Default)]
pub struct Known {
    pub triage_ignored: bool,
}

/// How an uploaded finding came to be open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Opened {
    /// First detection of the identity in the project.
    New,
    /// Already open on this ref.
    StillOpen,
    /// Fixed on this ref before, and back.
    Regression,
    /// Ignored or removed on this ref before, and back.
    Reopened,
    /// Known from another ref (a merged PR), new on this one.
    FromOtherRef,
}

impl Opened {
    /// The change the scan's log records, `None` for a finding that stays open.
    pub fn change(self) -> Option<Change> {
        match self {
            Opened::New => Some(Change::New),
            Opened::StillOpen => None,
            Opened::Regression => Some(Change::Regression),
            Opened::Reopened => Some(Change::Reopened),
            Opened::FromOtherRef => Some(Change::FromOtherRef),
        }
    }
}

impl State {
    /// The change that closing a finding into this state records.
    pub fn closing(self) -> Option<Change> {
        match self {
            State::Open => None,
            State::Fixed => Some(Change::Fixed),
            State::Ignored => Some(Change::Ignored),
            State::Removed => Some(Change::Removed),
        }
    }
}

/// The decision for one uploaded finding, by its index in `Results::findings`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenDecision {
    pub index: usize,
    pub how: Opened,
    pub notify: bool,
}

/// Everything a scan changes. Keys are finding identities.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decision {
    pub open: Vec<OpenDecision>,
    /// Indexes into `Results::ignores` of the nosemgrep matches to record as ignored.
    pub ignores: Vec<usize>,
    /// Findings open before that this scan closes, with their new state.
    pub closed: Vec<(String, State)>,
}

impl Decision {
    pub fn notified(&self) -> impl Iterator<Item = &OpenDecision> {
        self.open.iter().filter(|d| d.notify)
    }
}

/// Decides a scan's effect. `prior` holds the findings of the scanned (project, ref);
/// `known` the project's identities among the uploaded ones.
pub fn decide<P: Borrow<Prior>, K: Borrow<Known>>(
    results: &Results,
    prior: &HashMap<String, P>,
    known: &HashMap<String, K>,
) -> Decision {
    let mut decision = Decision::default();
    let mut uploaded: HashSet<&str> = HashSet::with_capacity(results.findings.len());
    for (index, f) in results.findings.iter().enumerate() {
        let key = f.key();
        // A client never sends one identity twice; if one did, the first copy wins.
        if !uploaded.insert(key) {
            continue;
        }
        let how = match (
            prior.get(key).map(|p| p.borrow().state),
            known.contains_key(key),
        ) {
            (Some(State::Open), _) => Opened::StillOpen,
            (Some(State::Fixed), _) => Opened::Regression,
            (Some(State::Ignored | State::Removed), _) => Opened::Reopened,
            (None, true) => Opened::FromOtherRef,
            (None, false) => Opened::New,
        };
        let triage_ignored = known.get(key).is_some_and(|k| k.borrow().triage_ignored);
        let notify = matches!(how, Opened::New | Opened::Regression) && !triage_ignored;
        decision.open.push(OpenDecision { index, how, notify });
    }

    let mut ignored: HashSet<&str> = HashSet::new();
    for (i, f) in results.ignores.iter().enumerate() {
        let key = f.key();
        if !uploaded.contains(key) && ignored.insert(key) {
            decision.ignores.push(i);
        }
    }

    let skipped: HashSet<&str> = results.skipped_paths.iter().map(|p| p.path()).collect();
    let searched: HashSet<&str> = results.searched_paths.iter().map(String::as_str).collect();
    let rules: HashSet<&str> = results.rule_ids.iter().map(String::as_str).collect();
    let mut closed: Vec<(String, State)> = prior
        .iter()
        .map(|(key, p)| (key, p.borrow()))
        .filter(|(key, p)| {
            p.state == State::Open
                && !uploaded.contains(key.as_str())
                && !skipped.contains(p.path.as_str())
        })
        .map(|(key, p)| {
            let state = if ignored.contains(key.as_str()) {
                State::Ignored
            } else if searched.contains(p.path.as_str()) && rules.contains(p.rule_id.as_str()) {
                State::Fixed
            } else {
                State::Removed
            };
            (key.clone(), state)
        })
        .collect();
    closed.sort();
    decision.closed = closed;
    decision
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ci::{Finding, SkippedPath};

    fn finding(key: &str, path: &str, rule: &str) -> Finding<'static> {
        Finding {
            check_id: rule.to_string().into(),
            path: path.to_string().into(),
            line: 1,
            column: 1,
            end_line: 1,
            end_column: 2,
            message: "m".into(),
            severity: 1,
            index: 0,
            commit_date: None,
            syntactic_id: format!("syn-{key}").into(),
            match_based_id: Some(key.to_string().into()),
            raw_metadata: None,
            is_blocking: false,
        }
    }

    fn results(findings: Vec<Finding<'static>>) -> Results<'static> {
        Results {
            findings,
            ignores: vec![],
            searched_paths: vec!["a.py".into(), "b.py".into()],
            renamed_paths: vec![],
            skipped_paths: vec![],
            rule_ids: vec!["r".into()],
        }
    }

    fn prior(state: State, path: &str) -> Prior {
        Prior {
            state,
            path: path.into(),
            rule_id: "r".into(),
        }
    }

    fn hows(d: &Decision) -> Vec<(Opened, bool)> {
        d.open.iter().map(|o| (o.how, o.notify)).collect()
    }

    #[test]
    fn first_detection_notifies_once() {
        let r = results(vec![finding("k1", "a.py", "r")]);
        let d = decide(
            &r,
            &HashMap::<String, Prior>::new(),
            &HashMap::<String, Known>::new(),
        );
        assert_eq!(hows(&d), [(Opened::New, true)]);
        // The same scan again: open on the ref already.
        let p = HashMap::from([("k1".to_string(), prior(State::Open, "a.py"))]);
        let k = HashMap::from([("k1".to_string(), Known::default())]);
        let d = decide(&r, &p, &k);
        assert_eq!(hows(&d), [(Opened::StillOpen, false)]);
        assert!(d.closed.is_empty());
    }

    #[test]
    fn known_on_another_ref_is_not_notified_again() {
        let r = results(vec![finding("k1", "a.py", "r")]);
        let k = HashMap::from([("k1".to_string(), Known::default())]);
        let d = decide(&r, &HashMap::<String, Prior>::new(), &k);
        assert_eq!(hows(&d), [(Opened::FromOtherRef, false)]);
    }

    #[test]
    fn regression_notifies_reopen_does_not() {
        let r = results(vec![finding("k1", "a.py", "r"), finding("k2", "a.py", "r")]);
        let p = HashMap::from([
            ("k1".to_string(), prior(State::Fixed, "a.py")),
            ("k2".to_string(), prior(State::Removed, "a.py")),
        ]);
        let k = HashMap::from([
            ("k1".to_string(), Known::default()),
            ("k2".to_string(), Known::default()),
        ]);
        let d = decide(&r, &p, &k);
        assert_eq!(
            hows(&d),
            [(Opened::Regression, true), (Opened::Reopened, false)]
        );
    }

    #[test]
    fn triage_ignored_is_never_notified() {
        let r = results(vec![finding("k1", "a.py", "r")]);
        let p = HashMap::from([("k1".to_string(), prior(State::Fixed, "a.py"))]);
        let k = HashMap::from([(
            "k1".to_string(),
            Known {
                triage_ignored: true,
            },
        )]);
        assert_eq!(hows(&decide(&r, &p, &k)), [(Opened::Regression, false)]);
    }

    #[test]
    fn closing_reasons() {
        let mut r = results(vec![]);
        r.ignores = vec![finding("ign", "a.py", "r")];
        r.skipped_paths = vec![SkippedPath::Path("skip.py".into())];
        let mut other_rule = prior(State::Open, "a.py");
        other_rule.rule_id = "gone".into();
        let p = HashMap::from([
            ("ign".to_string(), prior(State::Open, "a.py")),
            ("fix".to_string(), prior(State::Open, "b.py")),
            ("deleted".to_string(), prior(State::Open, "c.py")),
            ("rule-gone".to_string(), other_rule),
            ("skipped".to_string(), prior(State::Open, "skip.py")),
            ("already-fixed".to_string(), prior(State::Fixed, "b.py")),
        ]);
        let d = decide(&r, &p, &HashMap::<String, Known>::new());
        assert_eq!(
            d.closed,
            [
                ("deleted".to_string(), State::Removed),
                ("fix".to_string(), State::Fixed),
                ("ign".to_string(), State::Ignored),
                ("rule-gone".to_string(), State::Removed),
            ]
        );
        assert_eq!(d.ignores, [0]);
        assert!(d.open.is_empty());
    }

    #[test]
    fn duplicate_identities_count_once() {
        let r = results(vec![finding("k", "a.py", "r"), finding("k", "a.py", "r")]);
        let d = decide(
            &r,
            &HashMap::<String, Prior>::new(),
            &HashMap::<String, Known>::new(),
        );
        assert_eq!(d.open.len(), 1);
    }
}
