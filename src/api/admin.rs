//! scanhook's own management API: rules, policies and rule modes, tokens.

use crate::clock::{iso, Micros};
use crate::domain::mode::{self, PolicyRef, RuleMode};
use crate::domain::tokens::{Scope, TokenState};
use crate::ids::TokenId;
use crate::store::rules::{PolicyRules, StoredRule};
use crate::store::tokens::TokenRow;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `POST /api/v1/rules`: rule files as written, stored all or none.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AddRulesIn {
    pub files: Vec<RuleFileIn>,
    /// The policy to put them in, created if missing (default: the Rule Board).
    #[serde(default)]
    pub policy: Option<String>,
    /// monitor (default), comment or block.
    #[serde(default)]
    #[schema(value_type = Option<RuleMode>)]
    pub mode: Option<String>,
}

/// One rule file.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RuleFileIn {
    /// Its name, for error messages.
    pub name: String,
    /// Its YAML, with a top-level `rules:` list.
    pub content: String,
}

/// What `POST /api/v1/rules` stored.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RulesAdded {
    pub policy: PolicyRef,
    pub mode: RuleMode,
    /// The ids of the stored rules.
    pub rules: Vec<String>,
}

/// `GET /api/v1/rules`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RuleList {
    pub rules: Vec<RuleOut>,
}

/// A rule with its effective mode and the policies it is in.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RuleOut {
    pub rule_id: String,
    /// The scanner: `semgrep`, or the tool of the uploads that reported it.
    pub tool: String,
    /// Whether `semgrep ci` runs it (rules added as rule files); a rule known only from
    /// uploads is on the board for its mode.
    pub served: bool,
    /// The strongest mode of its policies (Block > Comment > Monitor).
    pub mode: Option<RuleMode>,
    /// The policy that decides that mode.
    pub policy: Option<PolicyRef>,
    pub policies: Vec<Membership>,
    /// The rule as written.
    pub rule: Value,
}

/// A rule's mode in one policy.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Membership {
    pub id: i64,
    pub name: String,
    pub slug: String,
    pub mode: RuleMode,
}

impl From<&StoredRule> for RuleOut {
    fn from(r: &StoredRule) -> Self {
        let decided = mode::effective(&r.memberships);
        RuleOut {
            rule_id: r.rule_id.clone(),
            tool: r.tool.clone(),
            served: r.served,
            mode: decided.map(|m| m.mode),
            policy: decided.map(|m| m.policy.clone()),
            policies: r
                .memberships
                .iter()
                .map(|m| Membership {
                    id: m.policy.id,
                    name: m.policy.name.clone(),
                    slug: m.policy.slug.clone(),
                    mode: m.mode,
                })
                .collect(),
            rule: r.body.clone(),
        }
    }
}

/// `PUT /api/v1/rules/{rule_id}/mode`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SetModeIn {
    /// monitor, comment or block.
    #[schema(value_type = RuleMode)]
    pub mode: String,
    /// The policy to change it in (needed when the rule is in several).
    #[serde(default)]
    pub policy: Option<String>,
}

/// A rule's new mode.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ModeSet {
    pub rule_id: String,
    pub policy: PolicyRef,
    pub mode: RuleMode,
}

/// `GET /api/v1/policies`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PolicyList {
    pub policies: Vec<PolicyOut>,
}

/// A policy with its rules and their modes.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PolicyOut {
    pub id: i64,
    pub name: String,
    pub slug: String,
    /// The Rule Board, where rules go when no policy is named.
    pub is_default: bool,
    pub rules: Vec<PolicyRule>,
}

/// A rule of a policy.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PolicyRule {
    pub rule_id: String,
    pub mode: RuleMode,
}

impl From<&PolicyRules> for PolicyOut {
    fn from(p: &PolicyRules) -> Self {
        PolicyOut {
            id: p.policy.id,
            name: p.policy.name.clone(),
            slug: p.policy.slug.clone(),
            is_default: p.is_default,
            rules: p
                .rules
                .iter()
                .map(|(rule_id, mode)| PolicyRule {
                    rule_id: rule_id.clone(),
                    mode: *mode,
                })
                .collect(),
        }
    }
}

/// `POST /api/v1/tokens`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CreateTokenIn {
    pub scope: Scope,
    /// What it is for (default: "ci token" or "admin token").
    #[serde(default)]
    pub name: Option<String>,
    /// How long it lasts, e.g. `90d` (1 minute to 10 years; default: until revoked).
    #[serde(default)]
    pub expires_in: Option<String>,
    /// For a CI token: the repositories it may scan, as globs (`acme/*`); default every
    /// project of the deployment.
    #[serde(default)]
    pub repos: Option<Vec<String>>,
}

/// A new token: the secret is in this answer only (the server keeps its hash).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TokenCreated {
    /// The secret, `shk_…`.
    pub token: String,
    /// Its id, to list and revoke it by.
    pub id: TokenId,
    pub scope: Scope,
    /// The deployment's slug.
    pub deployment: String,
    pub name: String,
    pub expires_at: Option<String>,
    pub repos: Option<Vec<String>>,
}

/// `GET /api/v1/tokens`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TokenList {
    pub tokens: Vec<TokenOut>,
}

/// A token as listed: never its secret.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TokenOut {
    pub id: TokenId,
    pub name: String,
    pub scope: Scope,
    pub state: TokenState,
    pub created_at: String,
    /// Within a minute.
    pub last_used_at: Option<String>,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
    /// A CI token's repository globs (null: every project).
    pub repos: Option<Vec<String>>,
}

impl TokenOut {
    pub fn new(t: &TokenRow, now: Micros) -> TokenOut {
        TokenOut {
            id: t.public_id.clone(),
            name: t.name.clone(),
            scope: t.scope,
            state: t.state(now),
            created_at: iso(t.created_at),
            last_used_at: t.last_used_at.map(iso),
            expires_at: t.expires_at.map(iso),
            revoked_at: t.revoked_at.map(iso),
            repos: t.repos.clone(),
        }
    }
}

/// `DELETE /api/v1/tokens/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TokenRevoked {
    pub revoked: TokenId,
    /// It had been revoked before.
    pub already: bool,
}
