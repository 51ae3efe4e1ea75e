//! Rules, policies and the mode of each rule in each policy.

use super::{col, json_list, Store};
use crate::clock;
use crate::domain::mode::{self, Membership, PolicyRef, RuleMode};
use crate::domain::rules::Rule;
use crate::ids::{slugify, DeploymentId};
use serde_json::Value;
use sqlx::{Any, Transaction};
use std::collections::{BTreeMap, HashMap, HashSet};

/// The policy that rules join when none is named. The CLI sees it as the platform's
/// rule-board columns (`rule-board-audit`, `rule-board-pr-comments`, `rule-board-block`).
pub const DEFAULT_POLICY: &str = "Rule Board";

/// A stored rule with the policies it is in.
#[derive(Debug, Clone)]
pub struct StoredRule {
    pub rule_id: String,
    pub body: Value,
    /// The scanner the rule belongs to (`semgrep`, or the tool of an upload).
    pub tool: String,
    /// Whether `semgrep ci` is given the rule: rules added as rule files are; rules known
    /// only from uploads are on the board for their modes, with no body to run.
    pub served: bool,
    pub memberships: Vec<Membership>,
}

/// A policy with `(rule_id, mode)` of each of its rules.
#[derive(Debug, Clone)]
pub struct PolicyRules {
    pub policy: PolicyRef,
    pub is_default: bool,
    pub rules: Vec<(String, RuleMode)>,
}

/// Why a mode change was refused.
#[derive(Debug, thiserror::Error)]
pub enum ModeChangeError {
    #[error("no rule with id {0:?}")]
    NoRule(String),
    #[error("no policy named {0:?}")]
    NoPolicy(String),
    #[error("rule {0:?} is not in policy {1:?}")]
    NotInPolicy(String, String),
    #[error("rule {0:?} is in several policies ({1}); name one with --policy")]
    Ambiguous(String, String),
    #[error(transparent)]
    Db(#[from] anyhow::Error),
}

impl Store {
    /// Stores rules (replacing rules with the same id) into a policy, created if missing,
    /// all in one transaction.
    pub async fn add_rules(
        &self,
        deployment_id: DeploymentId,
        policy: Option<&str>,
        mode: RuleMode,
        rules: &[Rule],
    ) -> anyhow::Result<PolicyRef> {
        let _changing = self.rules_changing();
        let mut tx = self.begin_write().await?;
        let policy = ensure_policy(&mut tx, deployment_id, policy).await?;
        let now = clock::now();
        for rule in rules {
            let row = sqlx::query(
                "INSERT INTO rules (deployment_id, rule_id, body, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $4) \
                 ON CONFLICT (deployment_id, rule_id) \
                 DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at, \
                 tool = 'semgrep', served = 1 \
                 RETURNING id",
            )
            .bind(deployment_id)
            .bind(&rule.id)
            .bind(rule.body.to_string())
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
            let rule_pk: i64 = col(&row, "id")?;
            sqlx::query(
                "INSERT INTO policy_rules (policy_id, rule_pk, mode) VALUES ($1, $2, $3) \
                 ON CONFLICT (policy_id, rule_pk) DO UPDATE SET mode = excluded.mode",
            )
            .bind(policy.id)
            .bind(rule_pk)
            .bind(mode.as_str())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(policy)
    }

    /// Changes a rule's mode in one policy (the only one it is in, when none is named).
    pub async fn set_rule_mode(
        &self,
        deployment_id: DeploymentId,
        rule_id: &str,
        policy: Option<&str>,
        mode: RuleMode,
    ) -> Result<PolicyRef, ModeChangeError> {
        let _changing = self.rules_changing();
        let rules = self.list_rules(deployment_id).await?;
        let rule = rules
            .iter()
            .find(|r| r.rule_id == rule_id)
            .ok_or_else(|| ModeChangeError::NoRule(rule_id.into()))?;
        let target = match policy {
            Some(name) => {
                let slug = slugify(name);
                rule.memberships
                    .iter()
                    .find(|m| m.policy.slug == slug || m.policy.name == name)
                    .ok_or_else(|| ModeChangeError::NotInPolicy(rule_id.into(), name.into()))?
            }
            None => match rule.memberships.as_slice() {
                [only] => only,
                [] => return Err(ModeChangeError::NoPolicy(DEFAULT_POLICY.into())),
                many => {
                    let names: Vec<_> = many.iter().map(|m| m.policy.name.as_str()).collect();
                    return Err(ModeChangeError::Ambiguous(rule_id.into(), names.join(", ")));
                }
            },
        };
        sqlx::query(
            "UPDATE policy_rules SET mode = $1 WHERE policy_id = $2 AND rule_pk = \
             (SELECT id FROM rules WHERE deployment_id = $3 AND rule_id = $4)",
        )
        .bind(mode.as_str())
        .bind(target.policy.id)
        .bind(deployment_id)
        .bind(rule_id)
        .execute(self.writer())
        .await
        .map_err(anyhow::Error::from)?;
        Ok(target.policy.clone())
    }

    /// Every rule of the deployment with its memberships, ordered by rule id.
    pub async fn list_rules(&self, deployment_id: DeploymentId) -> anyhow::Result<Vec<StoredRule>> {
        let rows = sqlx::query(
            "SELECT r.rule_id, r.body, r.tool, r.served, p.id AS policy_id, p.name, p.slug, p.is_default, pr.mode \
             FROM rules r \
             LEFT JOIN policy_rules pr ON pr.rule_pk = r.id \
             LEFT JOIN policies p ON p.id = pr.policy_id \
             WHERE r.deployment_id = $1 ORDER BY r.rule_id, p.id",
        )
        .bind(deployment_id)
        .fetch_all(self.pool())
        .await?;
        let mut by_id: BTreeMap<String, StoredRule> = BTreeMap::new();
        for row in &rows {
            let rule_id: String = col(row, "rule_id")?;
            let entry = match by_id.get_mut(&rule_id) {
                Some(e) => e,
                None => {
                    let body: String = col(row, "body")?;
                    by_id.entry(rule_id.clone()).or_insert(StoredRule {
                        rule_id,
                        body: serde_json::from_str(&body)?,
                        tool: col(row, "tool")?,
                        served: col::<i64>(row, "served")? != 0,
                        memberships: vec![],
                    })
                }
            };
            if let Some(policy_id) = col::<Option<i64>>(row, "policy_id")? {
                let mode: String = col(row, "mode")?;
                entry.memberships.push(Membership {
                    policy: PolicyRef {
                        id: policy_id,
                        name: col(row, "name")?,
                        slug: col(row, "slug")?,
                    },
                    is_default: col::<i64>(row, "is_default")? != 0,
                    mode: mode.parse().map_err(anyhow::Error::msg)?,
                });
            }
        }
        Ok(by_id.into_values().collect())
    }

    /// Every policy of the deployment, with its rules.
    pub async fn list_policies(
        &self,
        deployment_id: DeploymentId,
    ) -> anyhow::Result<Vec<PolicyRules>> {
        let rows = sqlx::query(
            "SELECT p.id, p.name, p.slug, p.is_default, r.rule_id, pr.mode FROM policies p \
             LEFT JOIN policy_rules pr ON pr.policy_id = p.id \
             LEFT JOIN rules r ON r.id = pr.rule_pk \
             WHERE p.deployment_id = $1 ORDER BY p.id, r.rule_id",
        )
        .bind(deployment_id)
        .fetch_all(self.pool())
        .await?;
        let mut out: Vec<PolicyRules> = Vec::new();
        for row in &rows {
            let id: i64 = col(row, "id")?;
            if out.last().map(|p| p.policy.id) != Some(id) {
                out.push(PolicyRules {
                    policy: PolicyRef {
                        id,
                        name: col(row, "name")?,
                        slug: col(row, "slug")?,
                    },
                    is_default: col::<i64>(row, "is_default")? != 0,
                    rules: vec![],
                });
            }
            if let Some(rule_id) = col::<Option<String>>(row, "rule_id")? {
                let mode: String = col(row, "mode")?;
                let last = out.last_mut().expect("pushed above");
                last.rules
                    .push((rule_id, mode.parse().map_err(anyhow::Error::msg)?));
            }
        }
        Ok(out)
    }
}

impl Store {
    /// Puts the rules an upload of `tool` reported on the rule board, each given as its
    /// id and the body the board shows. A rule seen for the first time joins the tool's
    /// policy (named after the tool) in Monitor mode; a rule already on the board keeps
    /// its modes. Returns the policy that decides each rule's mode (none for a rule an
    /// admin left in no policy).
    pub async fn board_upload_rules(
        &self,
        deployment_id: DeploymentId,
        tool: &str,
        rules: &[(&str, Value)],
    ) -> anyhow::Result<HashMap<String, Membership>> {
        let ids: Vec<&str> = rules.iter().map(|(id, _)| *id).collect();
        let known = self.known_rule_ids(deployment_id, &ids).await?;
        let missing: Vec<&(&str, Value)> = rules
            .iter()
            .filter(|(id, _)| !known.contains(*id))
            .collect();
        if !missing.is_empty() {
            let _changing = self.rules_changing();
            let mut tx = self.begin_write().await?;
            let policy = ensure_policy(&mut tx, deployment_id, Some(tool)).await?;
            let now = clock::now();
            for (rule_id, body) in missing {
                // A concurrent upload may have added it since: then it keeps its modes.
                let inserted = sqlx::query(
                    "INSERT INTO rules (deployment_id, rule_id, body, created_at, updated_at, \
                     tool, served) VALUES ($1, $2, $3, $4, $4, $5, 0) \
                     ON CONFLICT (deployment_id, rule_id) DO NOTHING RETURNING id",
                )
                .bind(deployment_id)
                .bind(*rule_id)
                .bind(body.to_string())
                .bind(now)
                .bind(tool)
                .fetch_optional(&mut *tx)
                .await?;
                if let Some(row) = inserted {
                    sqlx::query(
                        "INSERT INTO policy_rules (policy_id, rule_pk, mode) VALUES ($1, $2, $3)",
                    )
                    .bind(policy.id)
                    .bind(col::<i64>(&row, "id")?)
                    .bind(RuleMode::Monitor.as_str())
                    .execute(&mut *tx)
                    .await?;
                }
            }
            tx.commit().await?;
        }
        let wanted: HashSet<&str> = ids.into_iter().collect();
        // The write above (if any) invalidated the cache: this read sees it.
        Ok(self
            .cached_rules(deployment_id)
            .await?
            .iter()
            .filter(|r| wanted.contains(r.rule_id.as_str()))
            .filter_map(|r| {
                let decided_by = mode::effective(&r.memberships)?.clone();
                Some((r.rule_id.clone(), decided_by))
            })
            .collect())
    }

    /// Which of `ids` are rules of the deployment.
    async fn known_rule_ids(
        &self,
        deployment_id: DeploymentId,
        ids: &[&str],
    ) -> anyhow::Result<HashSet<String>> {
        let mut out = HashSet::new();
        for chunk in ids.chunks(1_000) {
            let sql = format!(
                "SELECT rule_id FROM rules WHERE deployment_id = $1 AND rule_id IN {}",
                json_list(self.backend(), 2)
            );
            let rows = sqlx::query(&sql)
                .bind(deployment_id)
                .bind(serde_json::to_string(chunk)?)
                .fetch_all(self.pool())
                .await?;
            for row in &rows {
                out.insert(col(row, "rule_id")?);
            }
        }
        Ok(out)
    }
}

/// Finds or creates a policy by name (`None`: the default policy).
async fn ensure_policy(
    tx: &mut Transaction<'static, Any>,
    deployment_id: DeploymentId,
    name: Option<&str>,
) -> anyhow::Result<PolicyRef> {
    let (name, is_default) = match name {
        Some(n) => (n.trim(), 0i64),
        None => (DEFAULT_POLICY, 1i64),
    };
    let slug = slugify(name);
    anyhow::ensure!(!slug.is_empty(), "a policy name needs letters or digits");
    sqlx::query(
        "INSERT INTO policies (deployment_id, name, slug, is_default, created_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (deployment_id, slug) DO NOTHING",
    )
    .bind(deployment_id)
    .bind(name)
    .bind(&slug)
    .bind(is_default)
    .bind(clock::now())
    .execute(&mut **tx)
    .await?;
    let row =
        sqlx::query("SELECT id, name, slug FROM policies WHERE deployment_id = $1 AND slug = $2")
            .bind(deployment_id)
            .bind(&slug)
            .fetch_one(&mut **tx)
            .await?;
    Ok(PolicyRef {
        id: col(&row, "id")?,
        name: col(&row, "name")?,
        slug: col(&row, "slug")?,
    })
}
