//! All SQL lives here, as small named functions over one pool. Both backends run the same
//! statements (numbered `$N` parameters, `ON CONFLICT`, `RETURNING`); the dialect split is
//! only in the migrations (`migrations/sqlite`, `migrations/postgres`) and in connecting.
//!
//! - [`deployments`], [`tokens`]: tenants and their bearer tokens.
//! - [`rules`]: rules, policies and modes.
//! - [`scans`]: scans as the CI protocol moves them through their states.
//! - [`complete`]: the one transaction that records a scan's outcome and its effects.
//! - [`findings`]: reading and triaging findings.

pub mod complete;
pub mod deployments;
pub mod findings;
pub mod rules;
pub mod scans;
pub mod tokens;

use anyhow::Context;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor};
use std::time::Duration;

/// The closed set of storage backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The database, shared by every request and task.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

impl Store {
    /// Connects to `sqlite://…` (the file is created if missing) or `postgres://…`.
    pub async fn connect(url: &str) -> anyhow::Result<Store> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            anyhow::bail!("unsupported database URL {url:?}: use sqlite://PATH or postgres://…");
        };
        let options = AnyPoolOptions::new().acquire_timeout(Duration::from_secs(30));
        let pool = match backend {
            Backend::Sqlite => {
                let url = if url.contains('?') {
                    url.to_string()
                } else {
                    format!("{url}?mode=rwc")
                };
                options
                    .max_connections(8)
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            // WAL lets readers run beside the one writer; the busy timeout
                            // makes writers queue instead of failing.
                            conn.execute(
                                "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                                 PRAGMA busy_timeout = 30000; PRAGMA foreign_keys = ON;",
                            )
                            .await?;
                            Ok(())
                        })
                    })
                    .connect(&url)
                    .await
            }
            Backend::Postgres => options.max_connections(16).connect(url).await,
        }
        .with_context(|| format!("connecting to the database at {}", redact(url)))?;
        Ok(Store { pool, backend })
    }

    /// Runs the embedded migrations of this backend.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        let migrator = match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator.run(&self.pool).await.context("running migrations")
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// True when the database answers.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// A database URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

/// Rewrites `$1, $2, …` into anonymous `?` on SQLite, for large statements whose
/// numbered parameters each appear once and in order. SQLite looks a named parameter up
/// by a linear scan, so binding N named parameters costs O(N²): with thousands of
/// parameters that dominated a 10,000-finding upload.
pub(crate) fn positional(backend: Backend, sql: String) -> String {
    match backend {
        Backend::Postgres => sql,
        Backend::Sqlite => anonymous_placeholders(&sql),
    }
}

fn anonymous_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    let mut expected = 1usize;
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            let mut n = 0usize;
            while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
                n = n * 10 + d as usize;
                chars.next();
            }
            debug_assert_eq!(n, expected, "parameters must appear once, in order");
            expected += 1;
            out.push('?');
        } else {
            out.push(c);
        }
    }
    out
}

/// `($s,$s+1,…),(…)`: numbered placeholders for a multi-row `VALUES` list.
pub(crate) fn values_list(rows: usize, cols: usize, start: usize) -> String {
    let mut s = String::with_capacity(rows * cols * 5);
    let mut n = start;
    for r in 0..rows {
        if r > 0 {
            s.push(',');
        }
        s.push('(');
        for c in 0..cols {
            if c > 0 {
                s.push(',');
            }
            s.push('$');
            s.push_str(&n.to_string());
            n += 1;
        }
        s.push(')');
    }
    s
}

/// `$s,$s+1,…`: placeholders for an `IN (…)` list.
pub(crate) fn in_list(n: usize, start: usize) -> String {
    (start..start + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Reads a column, naming it in the error.
pub(crate) fn col<'r, T>(row: &'r AnyRow, name: &str) -> anyhow::Result<T>
where
    T: sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    use sqlx::Row;
    row.try_get(name)
        .with_context(|| format!("reading column {name}"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn placeholders() {
        assert_eq!(super::values_list(2, 2, 3), "($3,$4),($5,$6)");
        assert_eq!(super::in_list(3, 1), "$1,$2,$3");
        assert_eq!(
            super::anonymous_placeholders("WHERE a = $1 AND b IN ($2,$3)"),
            "WHERE a = ? AND b IN (?,?)"
        );
    }
}
