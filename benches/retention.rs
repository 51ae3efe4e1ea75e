//! Benchmark (not a test): pruning 1,000,000 delivered messages past retention, with
//! their attempts and shared payloads, on SQLite and (with SCANHOOK_TEST_PG_URL)
//! PostgreSQL, while scans keep coming.
//!
//! Run: `cargo bench --bench retention` (add `SCANHOOK_TEST_PG_URL=postgres://…`;
//! `BENCH_ROWS` changes the row count, at most 1,000,000; `BENCH_BACKENDS=sqlite` runs one).
//! For each backend it
//! 1. fills a fresh database with bulk SQL: BENCH_ROWS delivered messages 40 days old,
//!    one attempt each, four messages per ~600-byte payload;
//! 2. times `/metrics` (the queue depth read) against the old full `GROUP BY` count;
//! 3. runs scans (create + complete through the semgrep-ci endpoints, 4 clients) for 10 s
//!    without pruning, then again for as long as one pruning round takes (the server's
//!    defaults: batches of 1,000, 20 ms apart), and reports scans/s for both and the
//!    round's time (bounded: a round that runs past 15 minutes, or BENCH_PRUNE_BOUND_S, is
//!    stopped and reported as such);
//! 4. reports the database's size before and after (SQLite: incremental vacuum as it
//!    prunes, then a full VACUUM for comparison; PostgreSQL: after a plain VACUUM).

mod common;

use common::one_scan;
use scanhook::app;
use scanhook::config::Config;
use scanhook::domain::tokens::Scope;
use scanhook::retention::{prune_once, Retention, Target};
use scanhook::store::Store;
use serde_json::json;
use sqlx::{AnyConnection, Connection, Executor};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const MAX_ROWS: i64 = 1_000_000;
/// Rows per fill statement: a multiple of 4, so that chunks share no payload.
const CHUNK: i64 = 100_000;
const DAY: i64 = 86_400_000_000;
/// Bench rows' ids start here, clear of what the sequences hand out to the load's rows.
const BASE: i64 = 1_000_000_000;
const CLIENTS: usize = 4;
/// How long a pruning round may run before it is stopped (`BENCH_PRUNE_BOUND_S`).
fn prune_bound() -> Duration {
    let secs = std::env::var("BENCH_PRUNE_BOUND_S")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(15 * 60);
    Duration::from_secs(secs)
}

/// Inserts `rows` delivered messages, each with one attempt, four per payload.
async fn fill(store: &Store, url: &str, rows: i64) {
    let pg = url.starts_with("postgres");
    let mut conn = AnyConnection::connect(url).await.unwrap();
    if pg {
        // Bulk fill only: no per-row triggers or foreign-key checks; the totals are set
        // once below (the rows are valid by construction).
        conn.execute("SET session_replication_role = replica")
            .await
            .unwrap();
    }
    let at = scanhook::clock::now() - 40 * DAY;
    let series = |from: i64, to: i64| {
        if pg {
            format!("SELECT i FROM generate_series({from}, {to}) AS s(i)")
        } else {
            format!(
                "WITH RECURSIVE s(i) AS (SELECT {from} UNION ALL SELECT i + 1 FROM s WHERE i < {to}) \
                 SELECT i FROM s"
            )
        }
    };
    let pad = if pg {
        "md5(i::text) || repeat('x', 500)"
    } else {
        "hex(randomblob(16)) || printf('%.500c', 'x')"
    };
    let mut start = 0;
    while start < rows {
        let end = (start + CHUNK).min(rows) - 1;
        let (p0, p1) = (BASE + start / 4, BASE + end / 4);
        for sql in [
            format!(
                "INSERT INTO payloads (id, body) SELECT i, '{{\"semgrep_scan\":{{\"id\":\"' || i || '\",\"pad\":\"' || {pad} || '\"}}}}' \
                 FROM ({}) AS n",
                series(p0, p1)
            ),
            format!(
                "INSERT INTO messages (id, public_id, deployment_id, integration_id, kind, payload_id, \
                 status, attempts, next_attempt_at, created_at, delivered_at) \
                 SELECT i, 'msg_bench' || i, 1, 1, 'semgrep_scan', {BASE} + (i - {BASE}) / 4, 'delivered', 1, \
                 {at}, {at}, {at} FROM ({}) AS n",
                series(BASE + start, BASE + end)
            ),
            format!(
                "INSERT INTO attempts (message_id, attempted_at, status_code, latency_us) \
                 SELECT i, {at}, 200, 1500 FROM ({}) AS n",
                series(BASE + start, BASE + end)
            ),
        ] {
            conn.execute(sql.as_str())
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
        start = end + 1;
    }
    if pg {
        conn.execute(format!("UPDATE message_totals SET delivered = delivered + {rows}").as_str())
            .await
            .unwrap();
        conn.execute("ANALYZE").await.unwrap();
    }
    conn.close().await.ok();
    let depth = store.queue_depth().await.unwrap();
    println!("  filled: {depth:?}");
}

/// Scans from CLIENTS clients until `stop`; how many completed.
fn load(base: &str, ci: &str, tag: &str, stop: Arc<AtomicBool>) -> tokio::task::JoinSet<u64> {
    let mut set = tokio::task::JoinSet::new();
    let next = Arc::new(AtomicU64::new(0));
    for _ in 0..CLIENTS {
        let (http, base, ci, tag) = (
            reqwest::Client::new(),
            base.to_string(),
            ci.to_string(),
            tag.to_string(),
        );
        let (stop, next) = (stop.clone(), next.clone());
        set.spawn(async move {
            let mut done = 0;
            while !stop.load(Ordering::Relaxed) {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let uid = format!("{tag}-{i}");
                one_scan(&http, &base, &ci, &uid, &uid).await;
                done += 1;
            }
            done
        });
    }
    set
}

async fn total(mut set: tokio::task::JoinSet<u64>) -> u64 {
    let mut n = 0;
    while let Some(r) = set.join_next().await {
        n += r.unwrap();
    }
    n
}

/// Median time of `f` over `n` runs, in ms.
async fn median_ms<F, Fut>(n: usize, mut f: F) -> f64
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        f().await;
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    times[n / 2]
}

fn mb(bytes: i64) -> f64 {
    bytes as f64 / 1_048_576.0
}

async fn run(label: &str, url: &str, rows: i64) {
    println!("{label}: {rows} delivered messages past retention");
    let mut config = Config::local(url.to_string());
    config.deliver = false;
    config.retention = Retention::off();
    let running = app::start(config, CancellationToken::new()).await.unwrap();
    let store = running.store.clone();
    let base = format!("http://{}", running.addr);
    let admin = running.first_admin_token.clone().unwrap();
    let deployment = store.first_deployment().await.unwrap().unwrap();
    let ci = store.create_token(deployment.id, Scope::Ci).await.unwrap();
    let http = reqwest::Client::new();
    // One integration: every scan queues one message, as in a real deployment.
    http.post(format!("{base}/api/v1/integrations"))
        .bearer_auth(&admin)
        .json(&json!({"name": "sink", "url": "http://127.0.0.1:9/hook"}))
        .send()
        .await
        .unwrap();

    let t = Instant::now();
    fill(&store, url, rows).await;
    println!("  bulk fill: {:.1} s", t.elapsed().as_secs_f64());
    let before = store.storage_facts().await.unwrap().0;

    let scrape = median_ms(21, || async {
        let r = http.get(format!("{base}/metrics")).send().await.unwrap();
        assert!(r.status().is_success());
        r.text().await.unwrap();
    })
    .await;
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    let group_by = median_ms(5, || {
        let pool = pool.clone();
        async move {
            sqlx::query("SELECT status, COUNT(*) AS n FROM messages GROUP BY status")
                .fetch_all(&pool)
                .await
                .unwrap();
        }
    })
    .await;
    println!(
        "  /metrics scrape: median {scrape:.2} ms (the old full GROUP BY count alone: {group_by:.1} ms)"
    );

    let stop = Arc::new(AtomicBool::new(false));
    let idle = load(&base, &ci, "idle", stop.clone());
    let t = Instant::now();
    tokio::time::sleep(Duration::from_secs(10)).await;
    stop.store(true, Ordering::Relaxed);
    let idle_rate = total(idle).await as f64 / t.elapsed().as_secs_f64();

    let stop = Arc::new(AtomicBool::new(false));
    let busy = load(&base, &ci, "busy", stop.clone());
    let bound = CancellationToken::new();
    let timer = {
        let bound = bound.clone();
        tokio::spawn(async move {
            tokio::time::sleep(prune_bound()).await;
            bound.cancel();
        })
    };
    let t = Instant::now();
    let retention = Retention::default();
    let pruned = prune_once(&store, &retention, scanhook::clock::now(), &bound)
        .await
        .unwrap();
    let prune_time = t.elapsed();
    stop.store(true, Ordering::Relaxed);
    let busy_rate = total(busy).await as f64 / t.elapsed().as_secs_f64();
    timer.abort();
    let d = pruned.of(Target::DeliveredMessages);
    println!(
        "  prune: {} messages, {} attempts, {} payloads in {} batches, {:.1} s ({:.0} messages/s){}",
        d.rows,
        d.attempts,
        d.payloads,
        d.batches,
        prune_time.as_secs_f64(),
        d.rows as f64 / prune_time.as_secs_f64(),
        if bound.is_cancelled() {
            " — STOPPED at the time bound"
        } else {
            ""
        }
    );
    println!(
        "  scans/s (create + complete, {CLIENTS} clients): {idle_rate:.0} without pruning, {busy_rate:.0} during pruning ({:.0} %)",
        100.0 * busy_rate / idle_rate
    );
    let scrape_after = median_ms(21, || async {
        http.get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
    })
    .await;
    let after = store.storage_facts().await.unwrap().0;
    if url.starts_with("sqlite") {
        pool.execute("VACUUM").await.unwrap();
        let vacuumed = store.storage_facts().await.unwrap().0;
        println!(
            "  database: {:.1} MB before, {:.1} MB after pruning (incremental vacuum as it went), {:.1} MB after a full VACUUM",
            mb(before),
            mb(after),
            mb(vacuumed)
        );
    } else {
        pool.execute("VACUUM").await.unwrap();
        let vacuumed = store.storage_facts().await.unwrap().0;
        println!(
            "  database: {:.1} MB before, {:.1} MB after pruning, {:.1} MB after a plain VACUUM (space reusable, files not shrunk)",
            mb(before),
            mb(after),
            mb(vacuumed)
        );
    }
    println!("  /metrics scrape after: median {scrape_after:.2} ms");
    pool.close().await;
    running.stop().await;
}

#[tokio::main]
async fn main() {
    let rows: i64 = std::env::var("BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(MAX_ROWS);
    assert!(
        (4..=MAX_ROWS).contains(&rows),
        "BENCH_ROWS: 4 to {MAX_ROWS}"
    );
    sqlx::any::install_default_drivers();
    let backends = std::env::var("BENCH_BACKENDS").unwrap_or_else(|_| "sqlite,postgres".into());
    if backends.contains("sqlite") {
        let dir = tempfile::tempdir().unwrap();
        let db = format!("sqlite://{}", dir.path().join("bench.db").display());
        run("SQLite", &db, rows).await;
    }
    match std::env::var("SCANHOOK_TEST_PG_URL") {
        Ok(server) if !server.is_empty() && backends.contains("postgres") => {
            let name = format!(
                "scanhook_bench_{}",
                scanhook::ids::public_scan_id().to_lowercase()
            );
            let mut admin = AnyConnection::connect(&server).await.unwrap();
            admin
                .execute(format!("CREATE DATABASE {name}").as_str())
                .await
                .unwrap();
            let mut url = url::Url::parse(&server).unwrap();
            url.set_path(&format!("/{name}"));
            run("PostgreSQL", url.as_str(), rows).await;
            admin
                .execute(format!("DROP DATABASE {name} WITH (FORCE)").as_str())
                .await
                .unwrap();
        }
        _ => println!("PostgreSQL: skipped (set SCANHOOK_TEST_PG_URL to run it)"),
    }
}
