//! All SQL lives here, as small named functions over one pool. Both backends run the same
//! statements (numbered `$N` parameters, `ON CONFLICT`, `RETURNING`); the dialect split is
//! only in the migrations (`migrations/sqlite`, `migrations/postgres`) and in connecting.
//!
//! - [`deployments`], [`tokens`]: tenants and their bearer tokens.
//! - [`rules`]: rules, policies and modes.
//! - [`cache`]: what every request reads (a deployment's rules and integrations, who a
//!   token is), kept in memory between the writes that change it.
//! - [`scans`]: scans as the CI protocol moves them through their states.
//! - [`complete`]: the one transaction that records a scan's outcome and its effects.
//! - [`kept`]: an upload as kept between `/results` and the `/complete` that applies it.
//! - [`findings`]: reading and triaging findings.
//! - [`integrations`], [`messages`]: webhook targets, the delivery queue and its log.
//! - [`routing`]: backfills and previews, routed over stored findings.
//! - [`prune`]: pruning what is past its retention, in batches, and giving space back.
//! - [`sessions`]: web UI sessions.
//! - [`secrets`]: the key that seals this database's secrets.

pub(crate) mod batch;
pub mod cache;
pub mod complete;
pub mod deployments;
pub mod findings;
pub mod integrations;
pub(crate) mod kept;
pub mod messages;
pub mod prune;
pub mod routing;
pub mod rules;
pub mod scans;
pub mod secrets;
pub mod sessions;
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
    /// Where writes go. On SQLite, one connection: writers queue here in order instead of
    /// colliding on SQLite's file lock and sleeping in its busy handler. On PostgreSQL, the
    /// same pool as reads.
    writer: AnyPool,
    backend: Backend,
    /// Seals and opens the secrets it stores (integration signing secrets).
    key: Option<std::sync::Arc<crate::secrets::SecretKey>>,
    /// Single statements on the writer, grouped into shared commits on SQLite.
    batcher: batch::Batcher,
    /// Where chat messages routed here link to (`--public-url`).
    links: std::sync::Arc<crate::domain::routing::Links>,
    /// What the hot path reads, between the writes that change it (shared by the store's
    /// clones).
    caches: std::sync::Arc<cache::Caches>,
}

/// How a SQLite transaction that writes begins ([`Store::begin_write`]).
pub(crate) const SQLITE_BEGIN_WRITE: &str = "BEGIN IMMEDIATE";

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
        let connecting = || format!("connecting to the database at {}", redact(url));
        match backend {
            Backend::Sqlite => {
                let url = if url.contains('?') {
                    url.to_string()
                } else {
                    format!("{url}?mode=rwc")
                };
                // The writer connects first: it creates the file and turns on WAL.
                let writer = sqlite_pool(1)
                    .connect(&url)
                    .await
                    .with_context(connecting)?;
                let pool = sqlite_pool(8)
                    .connect(&url)
                    .await
                    .with_context(connecting)?;
                Ok(Store {
                    pool,
                    batcher: batch::Batcher::new(writer.clone(), backend),
                    writer,
                    backend,
                    key: None,
                    links: Default::default(),
                    caches: Default::default(),
                })
            }
            Backend::Postgres => {
                let pool = AnyPoolOptions::new()
                    .acquire_timeout(Duration::from_secs(30))
                    .max_connections(16)
                    .connect(url)
                    .await
                    .with_context(connecting)?;
                Ok(Store {
                    batcher: batch::Batcher::new(pool.clone(), backend),
                    writer: pool.clone(),
                    pool,
                    backend,
                    key: None,
                    links: Default::default(),
                    caches: Default::default(),
                })
            }
        }
    }

    /// Runs the embedded migrations of this backend.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        let migrator = match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator.run(&self.pool).await.context("running migrations")
    }

    /// Writes a consistent copy of a SQLite database into `path` (an empty or missing
    /// file) with `VACUUM INTO`: one read transaction, so writers carry on meanwhile.
    pub async fn backup_into(&self, path: &std::path::Path) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.backend == Backend::Sqlite,
            "only SQLite databases are backed up by scanhook"
        );
        sqlx::query("VACUUM INTO $1")
            .bind(path.display().to_string())
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// For reads.
    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// For writing statements; transactions that write begin with [`Store::begin_write`].
    pub(crate) fn writer(&self) -> &AnyPool {
        &self.writer
    }

    /// Begins a transaction that writes. On SQLite it takes the write lock at `BEGIN`
    /// (`BEGIN IMMEDIATE`), queueing in the busy handler while another process (a second
    /// node, the CLI) holds it. A plain `BEGIN` reads first and takes the lock at its first
    /// write, and SQLite fails that upgrade at once with "database is locked" when another
    /// process wrote meanwhile or holds the lock: its busy handler never runs for it.
    pub(crate) async fn begin_write(&self) -> sqlx::Result<sqlx::Transaction<'static, sqlx::Any>> {
        match self.backend {
            Backend::Sqlite => self.writer.begin_with(SQLITE_BEGIN_WRITE).await,
            #[allow(clippy::disallowed_methods)]
            Backend::Postgres => self.writer.begin().await,
        }
    }

    /// Runs one writing statement, committed when this returns; on SQLite, in one
    /// transaction with the others queued for the writer meanwhile ([`batch`]).
    pub(crate) async fn write_one(
        &self,
        statement: batch::Statement,
    ) -> anyhow::Result<Vec<AnyRow>> {
        self.batcher.run(statement).await
    }

    /// On SQLite, checkpoints the WAL into the database file twice a second until shut
    /// down, beside the writers rather than inside one of their commits. Nothing to do on
    /// PostgreSQL.
    pub async fn checkpoint_loop(self, shutdown: tokio_util::sync::CancellationToken) {
        if self.backend != Backend::Sqlite {
            return;
        }
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
            if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(&self.pool)
                .await
            {
                tracing::warn!(error = ?e, "WAL checkpoint failed; will retry");
            }
        }
    }

    /// `FOR UPDATE` on PostgreSQL; nothing on SQLite, whose one writer is the lock.
    pub(crate) fn for_update(&self) -> &'static str {
        match self.backend {
            Backend::Postgres => "FOR UPDATE",
            Backend::Sqlite => "",
        }
    }

    /// `FOR UPDATE SKIP LOCKED` on PostgreSQL, where two processes may take the same rows
    /// at once; nothing on SQLite.
    pub(crate) fn skip_locked(&self) -> &'static str {
        match self.backend {
            Backend::Postgres => "FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        }
    }

    /// True when the database answers.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    pub async fn close(&self) {
        self.pool.close().await;
        self.writer.close().await;
    }
}

/// SQLite connection options with scanhook's pragmas.
fn sqlite_pool(connections: u32) -> AnyPoolOptions {
    AnyPoolOptions::new()
        .acquire_timeout(Duration::from_secs(30))
        .max_connections(connections)
        // sqlx pings a connection before handing it out; a SQLite connection is a file in
        // this process, not a socket that can drop, and the ping is a round trip to the
        // connection's thread (a fifth of the statements of a scan, see docs/BENCHMARKS.md).
        .test_before_acquire(false)
        .after_connect(|conn, _| {
            Box::pin(async move {
                // A new database is made in incremental auto-vacuum mode, so that space
                // pruned rows leave goes back to the file system (`retention`); it must be
                // set before the first table. On an existing database it changes nothing
                // until a `VACUUM` (`scanhook vacuum`).
                // WAL lets readers run beside the one writer; the busy timeout makes a
                // writer of another process queue instead of failing. Checkpoints run in
                // `checkpoint_loop`, not in whichever commit crosses the WAL threshold: that
                // commit (a scan's outcome, a claim) would otherwise wait for the copy and
                // its fsync.
                conn.execute(
                    "PRAGMA auto_vacuum = INCREMENTAL; \
                     PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                     PRAGMA wal_autocheckpoint = 0; PRAGMA journal_size_limit = 67108864; \
                     PRAGMA busy_timeout = 30000; PRAGMA foreign_keys = ON;",
                )
                .await?;
                Ok(())
            })
        })
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

/// The type of a column of bulk rows.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Ty {
    Int,
    Text,
}

/// One value of a bulk row.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Cell<'a> {
    Int(i64),
    Text(&'a str),
    Null,
}

impl From<i64> for Cell<'_> {
    fn from(v: i64) -> Self {
        Cell::Int(v)
    }
}

macro_rules! id_cells {
    ($($id:ty),+) => {
        $(impl From<$id> for Cell<'_> {
            fn from(v: $id) -> Self {
                Cell::Int(v.0)
            }
        })+
    };
}
id_cells!(
    crate::ids::DeploymentId,
    crate::ids::ProjectId,
    crate::ids::ScanId,
    crate::ids::FindingId
);

impl<'a> From<&'a str> for Cell<'a> {
    fn from(v: &'a str) -> Self {
        Cell::Text(v)
    }
}

impl<'a> From<Option<&'a str>> for Cell<'a> {
    fn from(v: Option<&'a str>) -> Self {
        v.map_or(Cell::Null, Cell::Text)
    }
}

/// Inserts many rows with as few statements as each backend allows:
/// `INSERT INTO table (cols) <rows> <tail>`, returning what `tail`'s `RETURNING` yields.
///
/// On PostgreSQL the rows travel as one array parameter per column, read by `unnest`:
/// one statement, planned once, whatever the row count. On SQLite they are a multi-row
/// `VALUES` list of anonymous `?` parameters: SQLite looks *named* parameters up by a
/// linear scan (O(N²) to bind N of them), and its JSON functions re-parse every row.
pub(crate) async fn bulk_insert(
    conn: &mut sqlx::AnyConnection,
    backend: Backend,
    table: &str,
    cols: &[(&str, Ty)],
    rows: &[Vec<Cell<'_>>],
    tail: &str,
) -> anyhow::Result<Vec<AnyRow>> {
    let names: Vec<&str> = cols.iter().map(|(c, _)| *c).collect();
    let head = format!("INSERT INTO {table} ({})", names.join(", "));
    let mut out = Vec::new();
    match backend {
        Backend::Postgres => {
            for chunk in rows.chunks(5_000) {
                let sql = format!("{head} {} {tail}", pg_unnest(cols));
                let mut q = sqlx::query(&sql);
                for array in pg_arrays(cols, chunk) {
                    q = q.bind(array);
                }
                out.extend(q.fetch_all(&mut *conn).await?);
            }
        }
        Backend::Sqlite => {
            let per_chunk = (30_000 / cols.len()).max(1);
            for chunk in rows.chunks(per_chunk) {
                let one = format!("({})", vec!["?"; cols.len()].join(","));
                let sql = format!("{head} VALUES {} {tail}", vec![one; chunk.len()].join(","));
                let mut q = sqlx::query(&sql);
                for row in chunk {
                    for cell in row {
                        q = match *cell {
                            Cell::Int(i) => q.bind(i),
                            Cell::Text(t) => q.bind(t),
                            Cell::Null => q.bind(None::<String>),
                        };
                    }
                }
                out.extend(q.fetch_all(&mut *conn).await?);
            }
        }
    }
    Ok(out)
}

/// `SELECT j.a, … FROM unnest($1::text::bigint[], …) AS j(a, …)`: each column travels
/// as one array parameter ([`pg_arrays`]). PostgreSQL reads array literals about twice as
/// fast as the same rows as JSON objects for `json_to_recordset`, which looks every key
/// of every row up by name.
fn pg_unnest(cols: &[(&str, Ty)]) -> String {
    let names: Vec<String> = cols.iter().map(|(c, _)| format!("j.{c}")).collect();
    let arrays: Vec<String> = cols
        .iter()
        .enumerate()
        .map(|(i, (_, t))| match t {
            Ty::Int => format!("${}::text::bigint[]", i + 1),
            Ty::Text => format!("${}::text::text[]", i + 1),
        })
        .collect();
    let bare: Vec<&str> = cols.iter().map(|(c, _)| *c).collect();
    format!(
        "SELECT {} FROM unnest({}) AS j({})",
        names.join(", "),
        arrays.join(", "),
        bare.join(", ")
    )
}

/// The rows as one PostgreSQL array literal per column: `{1,NULL}`, `{"a\"b",NULL}`.
fn pg_arrays(cols: &[(&str, Ty)], rows: &[Vec<Cell<'_>>]) -> Vec<String> {
    use std::fmt::Write;
    let mut arrays: Vec<String> = cols
        .iter()
        .map(|_| String::with_capacity(rows.len() * 16 + 2))
        .collect();
    for row in rows {
        for (array, cell) in arrays.iter_mut().zip(row) {
            array.push(if array.is_empty() { '{' } else { ',' });
            match cell {
                Cell::Int(v) => {
                    let _ = write!(array, "{v}");
                }
                Cell::Text(t) => {
                    array.push('"');
                    for c in t.chars() {
                        if c == '"' || c == '\\' {
                            array.push('\\');
                        }
                        array.push(c);
                    }
                    array.push('"');
                }
                Cell::Null => array.push_str("NULL"),
            }
        }
    }
    for array in &mut arrays {
        if array.is_empty() {
            array.push('{');
        }
        array.push('}');
    }
    arrays
}

/// A subquery yielding the strings of a JSON array in parameter `$n`, for `IN (…)`.
pub(crate) fn json_list(backend: Backend, n: usize) -> String {
    match backend {
        Backend::Postgres => format!("(SELECT json_array_elements_text(${n}::json))"),
        Backend::Sqlite => format!("(SELECT value FROM json_each(${n}))"),
    }
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

/// Reads a text column holding the name of an enum value (a state, a kind).
pub(crate) fn named<T>(row: &AnyRow, name: &str) -> anyhow::Result<T>
where
    T: std::str::FromStr<Err = String>,
{
    let text: String = col(row, name)?;
    text.parse()
        .map_err(|e: String| anyhow::anyhow!("column {name}: {e}"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn placeholders() {
        assert_eq!(super::in_list(3, 1), "$1,$2,$3");
        let cols = [("a", super::Ty::Int), ("b", super::Ty::Text)];
        assert_eq!(
            super::pg_unnest(&cols),
            "SELECT j.a, j.b FROM unnest($1::text::bigint[], $2::text::text[]) AS j(a, b)"
        );
        let rows = vec![
            vec![super::Cell::Int(1), super::Cell::Text("x\"y\\z")],
            vec![super::Cell::Int(-2), super::Cell::Null],
        ];
        assert_eq!(
            super::pg_arrays(&cols, &rows),
            [r"{1,-2}", r#"{"x\"y\\z",NULL}"#]
        );
        assert_eq!(super::pg_arrays(&cols, &[]), ["{}", "{}"]);
    }
}
