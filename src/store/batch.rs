//! Group commit of single statements on SQLite's one writer connection.
//!
//! Creating a scan and storing its results are one statement each. Run alone, each is its
//! own transaction, and each commit writes every page the statement dirtied to the WAL:
//! a third of the writer's time per scan (docs/BENCHMARKS.md). Here the statements that
//! queue while the writer is busy run together, in one transaction, and each caller is
//! answered once that transaction commits. A statement that fails takes its batch back:
//! the batch is rolled back and its statements run again one by one, each answered with
//! its own outcome, so one bad statement never fails another's.
//!
//! The statements run in a spawned task, not in their callers: a caller that goes away
//! (its client hung up) leaves neither a transaction open nor its batch unanswered.

use super::Backend;
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Connection};
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// Statements per transaction at most.
const MAX_BATCH: usize = 64;

/// A value bound to a statement.
#[derive(Debug, Clone)]
pub(crate) enum Bind {
    Int(i64),
    Text(String),
    Blob(Vec<u8>),
    Null,
}

impl From<i64> for Bind {
    fn from(v: i64) -> Self {
        Bind::Int(v)
    }
}

impl From<&str> for Bind {
    fn from(v: &str) -> Self {
        Bind::Text(v.to_string())
    }
}

impl From<Option<&str>> for Bind {
    fn from(v: Option<&str>) -> Self {
        v.map_or(Bind::Null, Bind::from)
    }
}

/// One statement with its values: run again as it is if its batch is taken back.
#[derive(Debug, Clone)]
pub(crate) struct Statement {
    pub sql: &'static str,
    pub binds: Vec<Bind>,
}

impl Statement {
    pub(crate) async fn run_in(
        &self,
        conn: &mut sqlx::AnyConnection,
    ) -> anyhow::Result<Vec<AnyRow>> {
        let mut q = sqlx::query(self.sql);
        for b in &self.binds {
            q = match b {
                Bind::Int(i) => q.bind(*i),
                Bind::Text(t) => q.bind(t.as_str()),
                Bind::Blob(b) => q.bind(b.as_slice()),
                Bind::Null => q.bind(None::<String>),
            };
        }
        Ok(q.fetch_all(conn).await?)
    }
}

struct Job {
    statement: Statement,
    reply: oneshot::Sender<anyhow::Result<Vec<AnyRow>>>,
}

/// The statements waiting for the writer, whether a task is running them, and how many
/// transactions of several statements committed.
#[derive(Default)]
struct Queue {
    jobs: Vec<Job>,
    running: bool,
    shared_commits: u64,
}

/// Runs single statements on the writer, grouping those that queue together into one
/// transaction on SQLite; on PostgreSQL, each on its own (the server groups commits).
#[derive(Clone)]
pub(crate) struct Batcher {
    writer: AnyPool,
    backend: Backend,
    queue: Arc<Mutex<Queue>>,
}

impl std::fmt::Debug for Batcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher").finish_non_exhaustive()
    }
}

impl Batcher {
    pub(crate) fn new(writer: AnyPool, backend: Backend) -> Batcher {
        Batcher {
            writer,
            backend,
            queue: Default::default(),
        }
    }

    /// Runs the statement, committed when this returns; its rows (what it `RETURNING`s).
    pub(crate) async fn run(&self, statement: Statement) -> anyhow::Result<Vec<AnyRow>> {
        if self.backend == Backend::Postgres {
            let mut conn = self.writer.acquire().await?;
            return statement.run_in(&mut conn).await;
        }
        let (reply, answer) = oneshot::channel();
        let start = {
            let mut queue = self.queue.lock().expect("the batch queue's lock");
            queue.jobs.push(Job { statement, reply });
            !std::mem::replace(&mut queue.running, true)
        };
        if start {
            tokio::spawn(self.clone().drain());
        }
        answer
            .await
            .map_err(|_| anyhow::anyhow!("the writer's batch task ended without answering"))?
    }

    /// Runs what is queued, batch after batch, until nothing is.
    async fn drain(self) {
        // Should this task end any other way (a panic, its runtime shutting down), the
        // next statement queued starts another instead of waiting forever.
        let mut running = Running(&self.queue, true);
        loop {
            let jobs: Vec<Job> = {
                let mut queue = self.queue.lock().expect("the batch queue's lock");
                if queue.jobs.is_empty() {
                    queue.running = false;
                    running.1 = false;
                    return;
                }
                let n = queue.jobs.len().min(MAX_BATCH);
                queue.jobs.drain(..n).collect()
            };
            self.run_batch(jobs).await;
        }
    }

    async fn run_batch(&self, jobs: Vec<Job>) {
        let mut conn = match self.writer.acquire().await {
            Ok(conn) => conn,
            Err(e) => {
                for job in jobs {
                    let _ = job
                        .reply
                        .send(Err(anyhow::anyhow!("acquiring the writer: {e}")));
                }
                return;
            }
        };
        if jobs.len() > 1 {
            match together(&mut conn, &jobs).await {
                Ok(rows) => {
                    self.queue
                        .lock()
                        .expect("the batch queue's lock")
                        .shared_commits += 1;
                    for (job, rows) in jobs.into_iter().zip(rows) {
                        let _ = job.reply.send(Ok(rows));
                    }
                    return;
                }
                Err(e) => tracing::debug!(error = ?e, n = jobs.len(), "a batch was taken back"),
            }
        }
        for job in jobs {
            let done = job.statement.run_in(&mut conn).await;
            let _ = job.reply.send(done);
        }
    }
}

/// Marks the queue as having no task when the running one ends unexpectedly.
struct Running<'a>(&'a Mutex<Queue>, bool);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        if self.1 {
            let mut queue = self.0.lock().unwrap_or_else(|e| e.into_inner());
            queue.running = false;
        }
    }
}

/// The jobs' statements in one transaction: every statement's rows, or nothing written.
async fn together(
    conn: &mut sqlx::AnyConnection,
    jobs: &[Job],
) -> anyhow::Result<Vec<Vec<AnyRow>>> {
    let mut tx = conn.begin_with(super::SQLITE_BEGIN_WRITE).await?;
    let mut out = Vec::with_capacity(jobs.len());
    for job in jobs {
        out.push(job.statement.run_in(&mut tx).await?);
    }
    tx.commit().await?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::any::AnyPoolOptions;

    fn insert(v: &str) -> Statement {
        Statement {
            sql: "INSERT INTO t (v) VALUES ($1) RETURNING id",
            binds: vec![v.into()],
        }
    }

    /// A one-connection in-memory database with a table `t` of unique values, and a
    /// batcher over it.
    async fn table() -> (AnyPool, Batcher) {
        sqlx::any::install_default_drivers();
        let pool: AnyPool = AnyPoolOptions::new()
            .max_connections(1)
            .connect("sqlite::memory:")
            .await
            .unwrap();
        sqlx::query("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL UNIQUE)")
            .execute(&pool)
            .await
            .unwrap();
        let batcher = Batcher::new(pool.clone(), Backend::Sqlite);
        (pool, batcher)
    }

    /// Runs the statements queued together (the batch task runs once this one waits):
    /// each one's row count or error.
    async fn together(batcher: &Batcher, values: &[&str]) -> Vec<Result<usize, String>> {
        futures_util::future::join_all(values.iter().map(|v| batcher.run(insert(v))))
            .await
            .into_iter()
            .map(|r| r.map(|rows| rows.len()).map_err(|e| format!("{e:#}")))
            .collect()
    }

    fn shared_commits(batcher: &Batcher) -> u64 {
        batcher.queue.lock().unwrap().shared_commits
    }

    #[tokio::test]
    async fn statements_queued_together_share_one_commit() {
        let (pool, batcher) = table().await;
        assert_eq!(
            together(&batcher, &["a", "b", "c"]).await,
            [Ok(1), Ok(1), Ok(1)]
        );
        assert_eq!(shared_commits(&batcher), 1, "one transaction for the three");
        assert_eq!(together(&batcher, &["d"]).await, [Ok(1)]);
        assert_eq!(
            shared_commits(&batcher),
            1,
            "a statement alone commits alone"
        );
        let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM t")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(stored, 4);
    }

    #[tokio::test]
    async fn one_failing_statement_does_not_fail_its_batch() {
        let (pool, batcher) = table().await;
        // One batch, whose fourth statement breaks the UNIQUE constraint of the first.
        let done = together(&batcher, &["a", "b", "c", "a", "d"]).await;
        assert_eq!(shared_commits(&batcher), 0, "the batch was taken back");
        assert_eq!(
            done[..3],
            [Ok(1), Ok(1), Ok(1)],
            "each answered with its row"
        );
        assert_eq!(done[4], Ok(1));
        let error = done[3].clone().unwrap_err();
        assert!(error.contains("UNIQUE"), "{error}");
        let stored: Vec<String> = sqlx::query_scalar("SELECT v FROM t ORDER BY v")
            .fetch_all(&pool)
            .await
            .unwrap();
        assert_eq!(stored, ["a", "b", "c", "d"], "the others committed");
        assert!(batcher.queue.lock().unwrap().jobs.is_empty());
        assert!(!batcher.queue.lock().unwrap().running, "the task ended");
    }

    #[test]
    fn a_task_that_ends_early_leaves_the_queue_to_the_next() {
        let first = tokio::runtime::Runtime::new().unwrap();
        let (pool, batcher, held) = first.block_on(async {
            let (pool, batcher) = table().await;
            // The writer is taken: the task waits for it with the statement in hand.
            let held = pool.acquire().await.unwrap();
            let waiting = batcher.clone();
            tokio::spawn(async move { waiting.run(insert("lost")).await });
            let taken = || {
                let queue = batcher.queue.lock().unwrap();
                queue.running && queue.jobs.is_empty()
            };
            while !taken() {
                tokio::task::yield_now().await;
            }
            (pool, batcher, held)
        });
        assert!(batcher.queue.lock().unwrap().running);
        // Its runtime goes away with the task mid-batch.
        drop(first);
        let next = tokio::runtime::Runtime::new().unwrap();
        // (The connection held must be dropped in a runtime, on every path.)
        let _context = next.enter();
        assert!(
            !batcher.queue.lock().unwrap().running,
            "no task is left running"
        );
        next.block_on(async move {
            drop(held);
            let rows = batcher.run(insert("next")).await.unwrap();
            assert_eq!(rows.len(), 1, "a new task runs the next statement");
            pool.close().await;
        });
    }
}
