//! Pruning what is past its retention, one small batch per transaction, and giving the
//! space back. Each batch reads its rows off an index that holds only what it may prune
//! (migration 0011), oldest first, and stops at its limit, so the writer is held for a
//! batch's worth of work whatever the size of the log. The caller (the retention task)
//! decides the cutoffs and the pace; nothing here knows the settings.
//!
//! Never pruned: pending and delivering messages, findings, their change log
//! (`scan_changes`) and triage (`identities`).

use super::{col, Backend, Store};
use crate::clock::Micros;
use crate::domain::outbox::MessageStatus;

/// What one batch of messages removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MessageBatch {
    pub messages: u64,
    pub attempts: u64,
    /// Payloads whose last message this batch removed.
    pub payloads: u64,
}

/// SQLite's `auto_vacuum` modes (`PRAGMA auto_vacuum`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoVacuum {
    None,
    Full,
    Incremental,
}

impl Store {
    /// Deletes up to `limit` messages of a terminal `status` that reached it before
    /// `before` (their `next_attempt_at`: when they were delivered, or failed), with their
    /// attempts, and the payloads no message is left on.
    pub async fn prune_messages(
        &self,
        status: MessageStatus,
        before: Micros,
        limit: i64,
    ) -> anyhow::Result<MessageBatch> {
        anyhow::ensure!(
            matches!(status, MessageStatus::Delivered | MessageStatus::Failed),
            "only delivered and failed messages are pruned, not {status:?} ones"
        );
        let lock = self.skip_locked();
        let mut tx = self.begin_write().await?;
        let rows = sqlx::query(&format!(
            "SELECT id, payload_id FROM messages WHERE status = $1 AND next_attempt_at < $2 \
             ORDER BY next_attempt_at LIMIT $3 {lock}"
        ))
        .bind(status.as_str())
        .bind(before)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            tx.commit().await?;
            return Ok(MessageBatch::default());
        }
        let mut ids = Vec::with_capacity(rows.len());
        let mut payloads = Vec::with_capacity(rows.len());
        for r in &rows {
            ids.push(col::<i64>(r, "id")?);
            payloads.push(col::<i64>(r, "payload_id")?);
        }
        payloads.sort_unstable();
        payloads.dedup();
        let ids = id_list(&ids);
        let payloads = id_list(&payloads);
        if self.backend() == Backend::Postgres {
            // Two processes pruning the last two messages of one payload would each still
            // see the other's message and both keep the payload: the payload rows are locked
            // (in id order) so the second one waits and then sees the first one's delete.
            sqlx::query(&format!(
                "SELECT id FROM payloads WHERE id IN ({payloads}) ORDER BY id FOR UPDATE"
            ))
            .fetch_all(&mut *tx)
            .await?;
        }
        let attempts = sqlx::query(&format!("DELETE FROM attempts WHERE message_id IN ({ids})"))
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let messages = sqlx::query(&format!(
            "DELETE FROM messages WHERE id IN ({ids}) AND status = $1"
        ))
        .bind(status.as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let payloads = sqlx::query(&format!(
            "DELETE FROM payloads WHERE id IN ({payloads}) \
             AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.payload_id = payloads.id)"
        ))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(MessageBatch {
            messages,
            attempts,
            payloads,
        })
    }

    /// Drops the stored `/results` upload of up to `limit` scans that ended without
    /// applying it (errored, abandoned) and received it before `before`. A running
    /// scan's upload is kept: its `/complete` may still come.
    pub async fn clear_uploads(&self, before: Micros, limit: i64) -> anyhow::Result<u64> {
        let lock = self.skip_locked();
        let done = sqlx::query(&format!(
            "UPDATE scans SET results = NULL WHERE id IN ( \
               SELECT id FROM scans WHERE results IS NOT NULL AND results_at < $1 \
               AND status <> 'running' ORDER BY results_at LIMIT $2 {lock})"
        ))
        .bind(before)
        .bind(limit)
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected())
    }

    /// Deletes up to `limit` fail-open reports received before `before`.
    pub async fn prune_failures(&self, before: Micros, limit: i64) -> anyhow::Result<u64> {
        let lock = self.skip_locked();
        let done = sqlx::query(&format!(
            "DELETE FROM failures WHERE id IN ( \
               SELECT id FROM failures WHERE created_at < $1 ORDER BY created_at LIMIT $2 {lock})"
        ))
        .bind(before)
        .bind(limit)
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected())
    }

    /// The `auto_vacuum` mode of a SQLite database; `None` on PostgreSQL (autovacuum
    /// makes pruned space reusable there).
    pub async fn auto_vacuum(&self) -> anyhow::Result<Option<AutoVacuum>> {
        if self.backend() != Backend::Sqlite {
            return Ok(None);
        }
        let row = sqlx::query("PRAGMA auto_vacuum")
            .fetch_one(self.pool())
            .await?;
        Ok(Some(match col::<i64>(&row, "auto_vacuum")? {
            1 => AutoVacuum::Full,
            2 => AutoVacuum::Incremental,
            _ => AutoVacuum::None,
        }))
    }

    /// On a SQLite database in incremental auto-vacuum mode, gives up to `pages` free
    /// pages back to the file system (the file shrinks; in another mode SQLite does
    /// nothing). Returns the free pages left.
    pub async fn reclaim_pages(&self, pages: i64) -> anyhow::Result<i64> {
        if self.backend() != Backend::Sqlite {
            return Ok(0);
        }
        // A pragma's argument cannot be a parameter; `pages` is a number.
        sqlx::query(&format!("PRAGMA incremental_vacuum({pages})"))
            .execute(self.writer())
            .await?;
        self.free_pages().await
    }

    /// Pages of a SQLite file that hold nothing (0 on PostgreSQL).
    pub async fn free_pages(&self) -> anyhow::Result<i64> {
        if self.backend() != Backend::Sqlite {
            return Ok(0);
        }
        let row = sqlx::query("PRAGMA freelist_count")
            .fetch_one(self.pool())
            .await?;
        col(&row, "freelist_count")
    }
}

/// `1,2,3`: internal ids, for `IN (…)`.
fn id_list(ids: &[i64]) -> String {
    ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
}

/// What `scanhook vacuum` did: the file's size and `auto_vacuum` mode before and after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vacuumed {
    pub bytes_before: i64,
    pub mode_before: AutoVacuum,
    pub bytes_after: i64,
    pub mode_after: AutoVacuum,
}

/// Rewrites the SQLite database at `url` in incremental auto-vacuum mode (`scanhook
/// vacuum`): the one-time `VACUUM` an existing database needs before pruned space can go
/// back to the file system. SQLite does not change `auto_vacuum` in WAL mode, so this
/// leaves WAL for the rewrite, which needs every other connection closed (serve stopped);
/// it holds the write lock until done. It all runs on one connection, opened before any
/// pool of this process: a pool's connection still closing would hold the file.
pub async fn vacuum_incremental(url: &str) -> anyhow::Result<Vacuumed> {
    use anyhow::Context;
    use sqlx::Connection;
    anyhow::ensure!(
        url.starts_with("sqlite:"),
        "only SQLite databases are vacuumed"
    );
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(url)
        .await
        .with_context(|| format!("connecting to {}", super::redact(url)))?;
    let (bytes_before, mode_before) = file_facts(&mut conn).await?;
    for step in [
        "PRAGMA journal_mode = DELETE",
        "PRAGMA auto_vacuum = INCREMENTAL",
        "VACUUM",
        "PRAGMA journal_mode = WAL",
    ] {
        sqlx::query(step)
            .execute(&mut conn)
            .await
            .with_context(|| format!("{step} (is a scanhook process still running?)"))?;
    }
    let (bytes_after, mode_after) = file_facts(&mut conn).await?;
    conn.close().await?;
    Ok(Vacuumed {
        bytes_before,
        mode_before,
        bytes_after,
        mode_after,
    })
}

/// A SQLite file's size and `auto_vacuum` mode.
async fn file_facts(conn: &mut sqlx::AnyConnection) -> anyhow::Result<(i64, AutoVacuum)> {
    let row = sqlx::query(
        "SELECT p.page_count * s.page_size AS n, a.auto_vacuum AS mode \
         FROM pragma_page_count() p, pragma_page_size() s, pragma_auto_vacuum() a",
    )
    .fetch_one(&mut *conn)
    .await?;
    let mode = match col::<i64>(&row, "mode")? {
        1 => AutoVacuum::Full,
        2 => AutoVacuum::Incremental,
        _ => AutoVacuum::None,
    };
    Ok((col(&row, "n")?, mode))
}
