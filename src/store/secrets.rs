//! The key that seals this database's secrets: checked at start against the fingerprint the
//! database keeps, secrets written before sealing sealed, and the key rotated.

use super::{col, Store};
use crate::clock;
use crate::secrets::{is_sealed, SecretKey};
use std::sync::Arc;

impl Store {
    /// This store with the key that seals and opens its secrets.
    pub fn with_key(mut self, key: SecretKey) -> Store {
        self.key = Some(Arc::new(key));
        self
    }

    /// This store with where the chat messages it routes link to (`--public-url`).
    pub fn with_public_url(mut self, public_url: &str) -> Store {
        self.links = Arc::new(crate::domain::routing::Links::new(public_url));
        self
    }

    pub fn links(&self) -> &crate::domain::routing::Links {
        &self.links
    }

    /// The key, or an error for a store opened without one (only roles that never touch
    /// secrets, such as `token`, run so).
    pub(crate) fn key(&self) -> anyhow::Result<&SecretKey> {
        self.key.as_deref().ok_or_else(|| {
            anyhow::anyhow!("this process has no secret key to seal or open secrets")
        })
    }

    /// Makes sure the database's secrets are sealed with this store's key: records its
    /// fingerprint on first use, refuses another key, and seals secrets that were stored
    /// in clear (before sealing existed).
    pub async fn adopt_key(&self) -> anyhow::Result<()> {
        let key = self.key()?;
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO secret_key_check (id, fingerprint, created_at) VALUES (1, $1, $2) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(key.fingerprint())
        .bind(clock::now())
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query("SELECT fingerprint FROM secret_key_check WHERE id = 1")
            .fetch_one(&mut *tx)
            .await?;
        let recorded: String = col(&row, "fingerprint")?;
        if recorded != key.fingerprint() {
            anyhow::bail!(
                "this database's secrets are sealed with the secret key {recorded}, not with \
                 this process's key {}: start every scanhook process with the same key file \
                 (--secret-key-file / SCANHOOK_SECRET_KEY_FILE)",
                key.fingerprint()
            );
        }
        let rows = sqlx::query("SELECT id, secret, old_secret FROM integrations")
            .fetch_all(&mut *tx)
            .await?;
        let mut sealed = 0;
        for row in &rows {
            let secret: String = col(row, "secret")?;
            let old: Option<String> = col(row, "old_secret")?;
            if is_sealed(&secret) && old.as_deref().is_none_or(is_sealed) {
                continue;
            }
            let seal = |s: &str| {
                if is_sealed(s) {
                    s.to_string()
                } else {
                    key.seal(s)
                }
            };
            sqlx::query("UPDATE integrations SET secret = $1, old_secret = $2 WHERE id = $3")
                .bind(seal(&secret))
                .bind(old.as_deref().map(seal))
                .bind(col::<i64>(row, "id")?)
                .execute(&mut *tx)
                .await?;
            sealed += 1;
        }
        tx.commit().await?;
        if sealed > 0 {
            tracing::info!(
                integrations = sealed,
                "sealed secrets that were stored in clear"
            );
        }
        Ok(())
    }

    /// Re-seals every secret under `new` in one transaction (each must open with the
    /// current key) and records `new` as the database's key. Every process must then be
    /// restarted with the new key file.
    pub async fn rotate_key(&self, new: &SecretKey) -> anyhow::Result<usize> {
        let old = self.key()?;
        let _changing = self.integrations_changing();
        let mut tx = self.begin_write().await?;
        let rows = sqlx::query("SELECT id, secret, old_secret, sealed_url FROM integrations")
            .fetch_all(&mut *tx)
            .await?;
        for row in &rows {
            let secret = old.open(&col::<String>(row, "secret")?)?;
            let reopen = |column: &str| -> anyhow::Result<Option<String>> {
                col::<Option<String>>(row, column)?
                    .map(|s| old.open(&s))
                    .transpose()
            };
            let previous = reopen("old_secret")?;
            let url = reopen("sealed_url")?;
            sqlx::query(
                "UPDATE integrations SET secret = $1, old_secret = $2, sealed_url = $3 WHERE id = $4",
            )
                .bind(new.seal(&secret))
                .bind(previous.as_deref().map(|p| new.seal(p)))
                .bind(url.as_deref().map(|u| new.seal(u)))
                .bind(col::<i64>(row, "id")?)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(
            "INSERT INTO secret_key_check (id, fingerprint, created_at) VALUES (1, $1, $2) \
             ON CONFLICT (id) DO UPDATE SET fingerprint = excluded.fingerprint, \
             created_at = excluded.created_at",
        )
        .bind(new.fingerprint())
        .bind(clock::now())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(rows.len())
    }
}
