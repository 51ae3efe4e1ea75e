//! The identity of an uploaded finding: a SHA-256 over what stays the same when code moves
//! (see the parent module's "Identity"). Line numbers never enter it.

use sha2::{Digest, Sha256};
use std::fmt::Write;

/// What a finding's identity is computed from, best first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Basis {
    /// Semgrep's `matchBasedId/v1` (or `extra.fingerprint`): it already covers the path.
    MatchBased(String),
    /// Other fingerprints, sorted by key.
    Fingerprints(Vec<(String, String)>),
    /// The code matched, whitespace collapsed.
    Snippet(String),
    /// The message text.
    Message(String),
}

/// What `semgrep` writes as a fingerprint when not logged in.
pub(super) const REQUIRES_LOGIN: &str = "requires login";

impl Basis {
    /// The best basis among what a result offers. Fingerprints are `(key, value)` pairs in
    /// any order.
    pub fn choose(
        mut fingerprints: Vec<(String, String)>,
        snippet: Option<&str>,
        message: &str,
    ) -> Basis {
        // Semgrep without a login writes this placeholder for every result: it tells no
        // two findings apart.
        fingerprints.retain(|(_, v)| v != REQUIRES_LOGIN && !v.is_empty());
        if let Some((_, v)) = fingerprints.iter().find(|(k, _)| k == "matchBasedId/v1") {
            return Basis::MatchBased(v.clone());
        }
        if !fingerprints.is_empty() {
            fingerprints.sort();
            fingerprints.dedup();
            return Basis::Fingerprints(fingerprints);
        }
        match snippet.map(collapse_whitespace).filter(|s| !s.is_empty()) {
            Some(s) => Basis::Snippet(s),
            None => Basis::Message(message.to_string()),
        }
    }
}

/// Runs of whitespace become one space; the ends are trimmed. Re-indented code keeps its
/// identity.
pub(super) fn collapse_whitespace(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Each part is length-prefixed, so no two different lists of parts hash alike.
fn hash(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p.as_bytes());
    }
    let mut out = String::with_capacity(64);
    for b in h.finalize() {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// The identity of the first result with this basis.
pub(super) fn basis_hash(tool: &str, check_id: &str, path: &str, basis: &Basis) -> String {
    match basis {
        Basis::MatchBased(id) => hash(&["upload/v1", tool, check_id, "match", id]),
        Basis::Fingerprints(entries) => {
            let mut parts = vec!["upload/v1", tool, check_id, "fingerprints", path];
            for (k, v) in entries {
                parts.push(k);
                parts.push(v);
            }
            hash(&parts)
        }
        Basis::Snippet(s) => hash(&["upload/v1", tool, check_id, "snippet", path, s]),
        Basis::Message(m) => hash(&["upload/v1", tool, check_id, "message", path, m]),
    }
}

/// The identity of the `n`th further result with the same basis.
pub(super) fn occurrence(base: &str, n: i64) -> String {
    hash(&[base, &n.to_string()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn match_based_id_wins_and_fingerprints_are_sorted() {
        let fp = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            Basis::choose(
                fp(&[("a", "1"), ("matchBasedId/v1", "m")]),
                Some("x"),
                "msg"
            ),
            Basis::MatchBased("m".into())
        );
        assert_eq!(
            Basis::choose(
                fp(&[("matchBasedId/v1", "requires login")]),
                Some("x  y"),
                "msg"
            ),
            Basis::Snippet("x y".into()),
            "semgrep's placeholder of a user not logged in is no fingerprint"
        );
        assert_eq!(
            Basis::choose(fp(&[("b", "2"), ("a", "1")]), None, "msg"),
            Basis::choose(fp(&[("a", "1"), ("b", "2")]), None, "msg"),
        );
        assert_eq!(
            Basis::choose(vec![], Some("  eval(\n\tx )  "), "msg"),
            Basis::Snippet("eval( x )".into())
        );
        assert_eq!(
            Basis::choose(vec![], Some(" \n "), "msg"),
            Basis::Message("msg".into())
        );
    }

    #[test]
    fn parts_do_not_run_together() {
        assert_ne!(hash(&["ab", "c"]), hash(&["a", "bc"]));
        assert_eq!(hash(&["x"]).len(), 64);
    }
}
