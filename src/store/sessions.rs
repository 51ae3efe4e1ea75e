//! Web UI sessions: opened with an admin token, kept as the hash of a random id, ended by
//! signing out, by expiry, or with the token.

use super::deployments::Deployment;
use super::{col, Store};
use crate::clock::{self, Micros};
use crate::ids::{self, TokenId};

/// How long a session lasts from sign-in.
pub const SESSION_LIFETIME_MICROS: Micros = 12 * 3600 * 1_000_000;

/// Most live sessions one token holds; signing in again ends its oldest.
pub const SESSIONS_PER_TOKEN: i64 = 10;

/// An open session: whose it is and the token every form of it must carry.
#[derive(Debug, Clone)]
pub struct UiSession {
    pub deployment: Deployment,
    pub csrf: String,
    /// The admin token it was opened with.
    pub token: TokenId,
}

impl Store {
    /// Opens a session for an admin token; `None` when the token is not an admin token.
    /// Returns the cookie value (only its hash is stored) and the session.
    pub async fn open_session(&self, token: &str) -> anyhow::Result<Option<(String, UiSession)>> {
        let row = sqlx::query(
            "SELECT t.id AS token_id, t.public_id, d.id, d.slug, d.name FROM tokens t \
             JOIN deployments d ON d.id = t.deployment_id \
             WHERE t.token_hash = $1 AND t.scope = 'admin' AND t.revoked_at IS NULL \
             AND (t.expires_at IS NULL OR t.expires_at > $2)",
        )
        .bind(ids::token_hash(token))
        .bind(clock::now())
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let now = clock::now();
        let token_id: i64 = col(&row, "token_id")?;
        sqlx::query("DELETE FROM ui_sessions WHERE expires_at < $1")
            .bind(now)
            .execute(self.writer())
            .await?;
        let id = ids::random_base62(43);
        let csrf = ids::random_base62(43);
        sqlx::query(
            "INSERT INTO ui_sessions (id_hash, token_id, csrf, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(ids::token_hash(&id))
        .bind(token_id)
        .bind(&csrf)
        .bind(now)
        .bind(now + SESSION_LIFETIME_MICROS)
        .execute(self.writer())
        .await?;
        // Every sign-in adds a session; a token keeps only its newest few.
        sqlx::query(
            "DELETE FROM ui_sessions WHERE token_id = $1 AND id_hash NOT IN \
             (SELECT id_hash FROM ui_sessions WHERE token_id = $1 \
              ORDER BY created_at DESC, id_hash LIMIT $2)",
        )
        .bind(token_id)
        .bind(SESSIONS_PER_TOKEN)
        .execute(self.writer())
        .await?;
        let deployment = Deployment {
            id: col(&row, "id")?,
            slug: col(&row, "slug")?,
            name: col(&row, "name")?,
        };
        let token = col(&row, "public_id")?;
        Ok(Some((
            id,
            UiSession {
                deployment,
                csrf,
                token,
            },
        )))
    }

    /// The live session a cookie names, if any.
    pub async fn session(&self, id: &str) -> anyhow::Result<Option<UiSession>> {
        let row = sqlx::query(
            "SELECT s.csrf, t.public_id, d.id, d.slug, d.name FROM ui_sessions s \
             JOIN tokens t ON t.id = s.token_id JOIN deployments d ON d.id = t.deployment_id \
             WHERE s.id_hash = $1 AND s.expires_at > $2 AND t.scope = 'admin' \
             AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > $2)",
        )
        .bind(ids::token_hash(id))
        .bind(clock::now())
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| {
            Ok(UiSession {
                deployment: super::deployments::from_row(&r)?,
                csrf: col(&r, "csrf")?,
                token: col(&r, "public_id")?,
            })
        })
        .transpose()
    }

    /// Ends a session (signing out). Unknown ids are fine.
    pub async fn close_session(&self, id: &str) -> anyhow::Result<()> {
        sqlx::query("DELETE FROM ui_sessions WHERE id_hash = $1")
            .bind(ids::token_hash(id))
            .execute(self.writer())
            .await?;
        Ok(())
    }
}
