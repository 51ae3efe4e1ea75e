//! Rule modes (Monitor, Comment, Block) and the rule metadata that carries them to the CLI.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::fmt;
use std::str::FromStr;

/// A rule mode. The derived order is the strength order: Block > Comment > Monitor.
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
pub enum RuleMode {
    Monitor,
    Comment,
    Block,
}

impl RuleMode {
    pub const ALL: [RuleMode; 3] = [RuleMode::Monitor, RuleMode::Comment, RuleMode::Block];

    pub fn as_str(self) -> &'static str {
        match self {
            RuleMode::Monitor => "monitor",
            RuleMode::Comment => "comment",
            RuleMode::Block => "block",
        }
    }

    /// The mode's name for people.
    pub fn label(self) -> &'static str {
        match self {
            RuleMode::Monitor => "Monitor",
            RuleMode::Comment => "Comment",
            RuleMode::Block => "Block",
        }
    }

    /// The value of `dev.semgrep.actions`. The client treats a missing key as Block, so it
    /// is always sent, `[]` for Monitor.
    pub fn actions(self) -> Value {
        match self {
            RuleMode::Monitor => json!([]),
            RuleMode::Comment => json!(["comment"]),
            RuleMode::Block => json!(["block"]),
        }
    }

    /// The platform's rule-board column for this mode: `(name, slug)`.
    pub fn board_column(self) -> (&'static str, &'static str) {
        match self {
            RuleMode::Monitor => ("Rule Board - Audit column", "rule-board-audit"),
            RuleMode::Comment => ("Rule Board - PR Comments column", "rule-board-pr-comments"),
            RuleMode::Block => ("Rule Board - Block column", "rule-board-block"),
        }
    }

    /// Reads the mode back from a finding's `dev.semgrep.actions`, as the client does:
    /// a missing key means Block.
    pub fn from_actions(actions: Option<&[String]>) -> RuleMode {
        match actions {
            None => RuleMode::Block,
            Some(a) if a.iter().any(|v| v == "block") => RuleMode::Block,
            Some(a) if a.iter().any(|v| v == "comment") => RuleMode::Comment,
            Some(_) => RuleMode::Monitor,
        }
    }
}

impl fmt::Display for RuleMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RuleMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "monitor" | "audit" => Ok(RuleMode::Monitor),
            "comment" => Ok(RuleMode::Comment),
            "block" => Ok(RuleMode::Block),
            other => Err(format!(
                "unknown rule mode {other:?}: use monitor, comment or block"
            )),
        }
    }
}

/// The policy that decided a rule's mode, as `semgrep.policy` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PolicyRef {
    pub id: i64,
    pub name: String,
    pub slug: String,
}

/// One membership of a rule in a policy.
#[derive(Debug, Clone)]
pub struct Membership {
    pub policy: PolicyRef,
    /// The default policy shows itself to the CLI as the platform's rule-board columns.
    pub is_default: bool,
    pub mode: RuleMode,
}

/// A rule in several policies takes the strongest mode; ties go to the oldest policy.
pub fn effective(memberships: &[Membership]) -> Option<&Membership> {
    memberships
        .iter()
        .min_by_key(|m| (std::cmp::Reverse(m.mode), m.policy.id))
}

/// The rule as served to `semgrep ci`: the stored rule, unchanged but for the platform
/// metadata keys `dev.semgrep.actions`, `semgrep.policy` and `semgrep.url`.
pub fn decorate(rule: &Value, decided_by: &Membership, rule_url: &str) -> Value {
    let mut rule = rule.clone();
    let Some(obj) = rule.as_object_mut() else {
        return rule;
    };
    let meta = obj
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !meta.is_object() {
        *meta = Value::Object(Map::new());
    }
    let meta = meta.as_object_mut().expect("metadata is an object");
    meta.extend(platform_keys(Some(decided_by), rule_url));
    rule
}

/// The platform metadata keys that carry a rule's mode: `dev.semgrep.actions`,
/// `semgrep.policy` (when a policy decided it) and `semgrep.url`. A rule in no policy is
/// in Monitor mode (the key is never left out: the client reads a missing one as Block).
pub fn platform_keys(decided_by: Option<&Membership>, rule_url: &str) -> Map<String, Value> {
    let mut keys = Map::new();
    let mode = decided_by.map_or(RuleMode::Monitor, |m| m.mode);
    keys.insert("dev.semgrep.actions".into(), mode.actions());
    if let Some(m) = decided_by {
        let policy = if m.is_default {
            let (name, slug) = m.mode.board_column();
            json!({"id": m.policy.id, "name": name, "slug": slug})
        } else {
            json!(m.policy)
        };
        keys.insert("semgrep.policy".into(), policy);
    }
    keys.insert("semgrep.url".into(), Value::String(rule_url.to_string()));
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: i64, mode: RuleMode) -> Membership {
        Membership {
            policy: PolicyRef {
                id,
                name: format!("p{id}"),
                slug: format!("p{id}"),
            },
            is_default: false,
            mode,
        }
    }

    #[test]
    fn strongest_mode_wins() {
        let ms = [
            member(1, RuleMode::Monitor),
            member(2, RuleMode::Block),
            member(3, RuleMode::Comment),
        ];
        assert_eq!(effective(&ms).unwrap().policy.id, 2);
        assert!(effective(&[]).is_none());
    }

    #[test]
    fn decorate_always_sets_actions_and_keeps_the_rest() {
        let rule = json!({"id": "r", "pattern": "x", "metadata": {"cwe": "CWE-1"}});
        let mut m = member(7, RuleMode::Monitor);
        m.is_default = true;
        let served = decorate(&rule, &m, "http://h/rules/r");
        assert_eq!(served["metadata"]["dev.semgrep.actions"], json!([]));
        assert_eq!(served["metadata"]["cwe"], "CWE-1");
        assert_eq!(
            served["metadata"]["semgrep.policy"]["slug"],
            "rule-board-audit"
        );
        assert_eq!(served["pattern"], "x");
        let no_meta = decorate(&json!({"id": "r"}), &member(1, RuleMode::Block), "u");
        assert_eq!(no_meta["metadata"]["dev.semgrep.actions"], json!(["block"]));
        assert_eq!(no_meta["metadata"]["semgrep.policy"]["slug"], "p1");
    }

    #[test]
    fn mode_from_actions_follows_the_client() {
        assert_eq!(RuleMode::from_actions(None), RuleMode::Block);
        assert_eq!(RuleMode::from_actions(Some(&[])), RuleMode::Monitor);
        assert_eq!(
            RuleMode::from_actions(Some(&["comment".to_string()])),
            RuleMode::Comment
        );
    }
}
