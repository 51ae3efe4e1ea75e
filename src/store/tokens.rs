//! Bearer tokens: stored as hashes, found by hash, checked in constant time.

use super::deployments::Deployment;
use super::{col, Store};
use crate::clock;
use crate::ids::{self, DeploymentId};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

/// What a token may do.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// What `semgrep ci` needs: the CI protocol endpoints only.
    Ci,
    /// Everything in its deployment.
    Admin,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Ci => "ci",
            Scope::Admin => "admin",
        }
    }
}

impl Store {
    /// Creates a token and returns it; only its hash is kept.
    pub async fn create_token(
        &self,
        deployment_id: DeploymentId,
        scope: Scope,
    ) -> anyhow::Result<String> {
        let token = ids::new_token();
        sqlx::query(
            "INSERT INTO tokens (deployment_id, scope, token_hash, created_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(deployment_id)
        .bind(scope.as_str())
        .bind(ids::token_hash(&token))
        .bind(clock::now())
        .execute(self.writer())
        .await?;
        Ok(token)
    }

    /// The deployment and scope of a presented token, if it is one of ours.
    pub async fn authenticate(&self, token: &str) -> anyhow::Result<Option<(Deployment, Scope)>> {
        let hash = ids::token_hash(token);
        let row = sqlx::query(
            "SELECT t.token_hash, t.scope, d.id, d.slug, d.name FROM tokens t \
             JOIN deployments d ON d.id = t.deployment_id WHERE t.token_hash = $1",
        )
        .bind(&hash)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let stored: String = col(&row, "token_hash")?;
        // The index lookup already matched; this keeps the final comparison free of
        // early exits all the same.
        if !bool::from(stored.as_bytes().ct_eq(hash.as_bytes())) {
            return Ok(None);
        }
        let scope = match col::<String>(&row, "scope")?.as_str() {
            "admin" => Scope::Admin,
            _ => Scope::Ci,
        };
        let deployment = Deployment {
            id: col(&row, "id")?,
            slug: col(&row, "slug")?,
            name: col(&row, "name")?,
        };
        Ok(Some((deployment, scope)))
    }
}
