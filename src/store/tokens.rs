//! Bearer tokens: stored as hashes, found by hash, checked in constant time; listed,
//! revoked and expired by their public id.

use super::deployments::Deployment;
use super::{col, named, Store};
use crate::clock::{self, Micros};
use crate::domain::globs::Globs;
use crate::domain::tokens::{NewToken, Scope, TokenState};
use crate::ids::{self, DeploymentId, TokenId};
use sqlx::any::AnyRow;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// How stale `last_used_at` may be before a request writes it again: a busy CI token would
/// otherwise cost a write per request.
const LAST_USED_RESOLUTION: Micros = 60 * 1_000_000;

/// A token as listed (never its secret).
#[derive(Debug, Clone)]
pub struct TokenRow {
    pub public_id: TokenId,
    pub name: String,
    pub scope: Scope,
    pub created_at: Micros,
    pub last_used_at: Option<Micros>,
    pub expires_at: Option<Micros>,
    pub revoked_at: Option<Micros>,
    /// The repository globs of a CI token with a project scope.
    pub repos: Option<Vec<String>>,
}

impl TokenRow {
    pub fn state(&self, now: Micros) -> TokenState {
        TokenState::at(now, self.expires_at, self.revoked_at)
    }
}

/// Who a presented token is.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub deployment: Deployment,
    pub scope: Scope,
    pub token: TokenId,
    /// The projects a CI token may reach (`None`: all of its deployment's).
    pub repos: Option<Globs>,
}

/// A token as [`Store::authenticate`] keeps it in memory.
#[derive(Debug)]
pub struct KnownToken {
    pk: i64,
    expires_at: Option<Micros>,
    revoked_at: Option<Micros>,
    /// When it was last recorded as used ([`NEVER`]: not yet).
    last_used_at: AtomicI64,
    who: Authenticated,
}

/// `last_used_at` of a token never used.
const NEVER: Micros = Micros::MIN;

/// What revoking did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revoked {
    Now,
    Already,
    NoSuchToken,
}

const TOKEN_COLUMNS: &str = "t.public_id, t.name, t.scope, t.created_at, t.last_used_at, \
    t.expires_at, t.revoked_at, t.repos";

fn token_from_row(r: &AnyRow) -> anyhow::Result<TokenRow> {
    let repos: Option<String> = col(r, "repos")?;
    Ok(TokenRow {
        public_id: col(r, "public_id")?,
        name: col(r, "name")?,
        scope: named(r, "scope")?,
        created_at: col(r, "created_at")?,
        last_used_at: col(r, "last_used_at")?,
        expires_at: col(r, "expires_at")?,
        revoked_at: col(r, "revoked_at")?,
        repos: repos.map(|r| serde_json::from_str(&r)).transpose()?,
    })
}

impl Store {
    /// Creates an unnamed token that never expires (first start, tests); returns it.
    pub async fn create_token(
        &self,
        deployment_id: DeploymentId,
        scope: Scope,
    ) -> anyhow::Result<String> {
        let new =
            NewToken::new(scope, None, None, None, clock::now()).map_err(anyhow::Error::msg)?;
        Ok(self.issue_token(deployment_id, &new).await?.0)
    }

    /// Creates a token; returns the secret (only its hash is kept) and the token as listed.
    pub async fn issue_token(
        &self,
        deployment_id: DeploymentId,
        new: &NewToken,
    ) -> anyhow::Result<(String, TokenRow)> {
        let token = ids::new_token();
        let public_id = TokenId::generate();
        let repos = new
            .repos
            .as_ref()
            .map(|g| serde_json::to_string(g.patterns()))
            .transpose()?;
        let now = clock::now();
        sqlx::query(
            "INSERT INTO tokens (deployment_id, scope, token_hash, created_at, public_id, name, \
             expires_at, repos) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(deployment_id)
        .bind(new.scope.as_str())
        .bind(ids::token_hash(&token))
        .bind(now)
        .bind(&public_id)
        .bind(&new.name)
        .bind(new.expires_at)
        .bind(&repos)
        .execute(self.writer())
        .await?;
        let row = TokenRow {
            public_id,
            name: new.name.clone(),
            scope: new.scope,
            created_at: now,
            last_used_at: None,
            expires_at: new.expires_at,
            revoked_at: None,
            repos: new.repos.as_ref().map(|g| g.patterns().to_vec()),
        };
        Ok((token, row))
    }

    /// The deployment's tokens, newest first.
    pub async fn list_tokens(&self, deployment_id: DeploymentId) -> anyhow::Result<Vec<TokenRow>> {
        let sql = format!(
            "SELECT {TOKEN_COLUMNS} FROM tokens t WHERE t.deployment_id = $1 ORDER BY t.id DESC"
        );
        sqlx::query(&sql)
            .bind(deployment_id)
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(token_from_row)
            .collect()
    }

    /// Revokes a token: its next request is refused and its UI sessions end now.
    pub async fn revoke_token(
        &self,
        deployment_id: DeploymentId,
        public_id: &TokenId,
    ) -> anyhow::Result<Revoked> {
        let _changing = self.tokens_changing();
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(
            "SELECT id, revoked_at FROM tokens WHERE deployment_id = $1 AND public_id = $2",
        )
        .bind(deployment_id)
        .bind(public_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(Revoked::NoSuchToken);
        };
        if col::<Option<Micros>>(&row, "revoked_at")?.is_some() {
            return Ok(Revoked::Already);
        }
        let id: i64 = col(&row, "id")?;
        sqlx::query("UPDATE tokens SET revoked_at = $1 WHERE id = $2")
            .bind(clock::now())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM ui_sessions WHERE token_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Revoked::Now)
    }

    /// Who a presented token is, if it is one of ours and still usable. Tokens found are
    /// kept in memory for a second (`store::cache`): a revocation through this process is
    /// seen by its next request, one through another node within that second.
    pub async fn authenticate(&self, token: &str) -> anyhow::Result<Option<Authenticated>> {
        let hash = ids::token_hash(token);
        let cache = &self.caches.tokens;
        let known = match cache.get(&hash) {
            Some(known) => known,
            None => {
                let generation = cache.generation();
                let Some(known) = self.known_token(&hash).await? else {
                    return Ok(None);
                };
                let known = Arc::new(known);
                cache.put(hash, generation, known.clone());
                known
            }
        };
        let now = clock::now();
        if TokenState::at(now, known.expires_at, known.revoked_at) != TokenState::Active {
            return Ok(None);
        }
        let last_used = known.last_used_at.load(Ordering::Relaxed);
        let stale = last_used == NEVER || last_used < now - LAST_USED_RESOLUTION;
        // One request of those that find it stale writes it.
        if stale
            && known
                .last_used_at
                .compare_exchange(last_used, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            sqlx::query("UPDATE tokens SET last_used_at = $1 WHERE id = $2")
                .bind(now)
                .bind(known.pk)
                .execute(self.writer())
                .await?;
        }
        Ok(Some(known.who.clone()))
    }

    /// The token with this hash, as [`Store::authenticate`] keeps it.
    async fn known_token(&self, hash: &str) -> anyhow::Result<Option<KnownToken>> {
        let row = sqlx::query(
            "SELECT t.id AS token_pk, t.token_hash, t.scope, t.public_id, t.repos, \
             t.last_used_at, t.expires_at, t.revoked_at, d.id, d.slug, d.name FROM tokens t \
             JOIN deployments d ON d.id = t.deployment_id WHERE t.token_hash = $1",
        )
        .bind(hash)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let stored: String = col(&row, "token_hash")?;
        // The index lookup already matched; this keeps the final comparison free of
        // early exits all the same.
        if !bool::from(stored.as_bytes().ct_eq(hash.as_bytes())) {
            return Ok(None);
        }
        let repos = col::<Option<String>>(&row, "repos")?
            .map(|r| -> anyhow::Result<Globs> {
                let patterns: Vec<String> = serde_json::from_str(&r)?;
                Globs::new(&patterns).map_err(anyhow::Error::msg)
            })
            .transpose()?;
        let last_used: Option<Micros> = col(&row, "last_used_at")?;
        Ok(Some(KnownToken {
            pk: col(&row, "token_pk")?,
            expires_at: col(&row, "expires_at")?,
            revoked_at: col(&row, "revoked_at")?,
            last_used_at: AtomicI64::new(last_used.unwrap_or(NEVER)),
            who: Authenticated {
                deployment: super::deployments::from_row(&row)?,
                scope: named(&row, "scope")?,
                token: col(&row, "public_id")?,
                repos,
            },
        }))
    }
}
