//! Web UI sessions: opened with an admin token, kept as the hash of a random id, ended by
//! signing out, by expiry, or with the token.

use super::deployments::Deployment;
use super::{col, Store};
use crate::clock::{self, Micros};
use crate::ids;

/// How long a session lasts from sign-in.
pub const SESSION_LIFETIME_MICROS: Micros = 12 * 3600 * 1_000_000;

/// An open session: whose it is and the token every form of it must carry.
#[derive(Debug, Clone)]
pub struct UiSession {
    pub deployment: Deployment,
    pub csrf: String,
}

impl Store {
    /// Opens a session for an admin token; `None` when the token is not an admin token.
    /// Returns the cookie value (only its hash is stored) and the session.
    pub async fn open_session(&self, token: &str) -> anyhow::Result<Option<(String, UiSession)>> {
        let row = sqlx::query(
            "SELECT t.id AS token_id, d.id, d.slug, d.name FROM tokens t \
             JOIN deployments d ON d.id = t.deployment_id \
             WHERE t.token_hash = $1 AND t.scope = 'admin'",
        )
        .bind(ids::token_hash(token))
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let now = clock::now();
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
        .bind(col::<i64>(&row, "token_id")?)
        .bind(&csrf)
        .bind(now)
        .bind(now + SESSION_LIFETIME_MICROS)
        .execute(self.writer())
        .await?;
        let deployment = Deployment {
            id: col(&row, "id")?,
            slug: col(&row, "slug")?,
            name: col(&row, "name")?,
        };
        Ok(Some((id, UiSession { deployment, csrf })))
    }

    /// The live session a cookie names, if any.
    pub async fn session(&self, id: &str) -> anyhow::Result<Option<UiSession>> {
        let row = sqlx::query(
            "SELECT s.csrf, d.id, d.slug, d.name FROM ui_sessions s \
             JOIN tokens t ON t.id = s.token_id JOIN deployments d ON d.id = t.deployment_id \
             WHERE s.id_hash = $1 AND s.expires_at > $2 AND t.scope = 'admin'",
        )
        .bind(ids::token_hash(id))
        .bind(clock::now())
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| {
            Ok(UiSession {
                deployment: Deployment {
                    id: col(&r, "id")?,
                    slug: col(&r, "slug")?,
                    name: col(&r, "name")?,
                },
                csrf: col(&r, "csrf")?,
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
