//! Benchmark (not a test): webhook delivery through the real path.
//!
//! Run: `cargo bench --bench delivery` (add `SCANHOOK_TEST_PG_URL=postgres://…` for
//! PostgreSQL). For each backend and for 1 and 10 integrations it
//! 1. measures the ceiling: the raw POST rate of the same HTTP client stack (reqwest, no
//!    redirects, 64 in flight) to a fast local sink;
//! 2. queues messages through the semgrep-ci endpoints (create + complete per scan) on a
//!    `serve --no-deliver` process, then starts a `scanhook worker` process and times how
//!    fast the sink receives them all (sustained deliveries/s, its ratio to the ceiling, the
//!    worker's peak RSS);
//! 3. runs `serve` with delivery on and paces scans at 200/s for 5 s, reporting p50/p99 of
//!    the time from sending `/complete` to the sink receiving the `semgrep_scan` object.

mod common;

use common::{ceiling, key_file, one_scan, peak_rss_mb, start_sink, stop, token, BIN, OK_200};
use serde_json::json;
use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Requests in flight per integration in the worker (`BENCH_CONCURRENCY`, default 16).
fn concurrency() -> String {
    std::env::var("BENCH_CONCURRENCY").unwrap_or_else(|_| "16".into())
}

async fn run(label: &str, db: &str, integrations: usize, messages: usize) {
    let (url, sink) = start_sink(OK_200).await;
    let ceiling = ceiling(&url).await;
    sink.count.store(0, Ordering::Relaxed);

    // Queue the messages with delivery off.
    let (child, base) = common::serve(db, false, &["--delivery-concurrency", "64"]).await;
    let admin = token(db, "admin");
    let ci = token(db, "ci");
    let http = reqwest::Client::new();
    for i in 0..integrations {
        http.post(format!("{base}/api/v1/integrations"))
            .bearer_auth(&admin)
            .json(&json!({"name": format!("sink {i}"), "url": url}))
            .send()
            .await
            .unwrap();
    }
    let scans = messages / integrations;
    let t = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let mut drivers = Vec::new();
    for _ in 0..8 {
        let (http, base, ci, next) = (http.clone(), base.clone(), ci.clone(), next.clone());
        let label = label.to_string();
        drivers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                if i >= scans {
                    break;
                }
                one_scan(
                    &http,
                    &base,
                    &ci,
                    &format!("{label}-{integrations}-{i}"),
                    &format!("fill-{i}"),
                )
                .await;
            }
        }));
    }
    for d in drivers {
        d.await.unwrap();
    }
    let fill = t.elapsed();
    stop(child);

    // Deliver them with a worker process.
    let worker = Command::new(BIN)
        .args([
            "worker",
            "--database-url",
            db,
            "--deliver-allow-cidrs",
            "127.0.0.0/8",
        ])
        .args(["--delivery-concurrency", &concurrency()])
        .env("SCANHOOK_LOG", "warn")
        .env("SCANHOOK_SECRET_KEY_FILE", key_file(db))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let expected = (scans * integrations) as u64;
    // Sustained rate: timed from the first delivery, so the process start is not counted.
    let deadline = Instant::now() + Duration::from_secs(600);
    while sink.count.load(Ordering::Relaxed) == 0 {
        assert!(Instant::now() < deadline, "worker delivered nothing");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let t = Instant::now();
    while sink.count.load(Ordering::Relaxed) < expected {
        assert!(
            Instant::now() < deadline,
            "worker did not deliver everything"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let elapsed = t.elapsed();
    let rss = peak_rss_mb(worker.id());
    stop(worker);
    let rate = expected as f64 / elapsed.as_secs_f64();
    println!(
        "{label}, {integrations} integration(s): {expected} messages queued in {:.1} s; delivered in {:.2} s = {rate:.0}/s; ceiling {ceiling:.0}/s (ratio {:.2}); worker peak RSS {rss:.1} MB",
        fill.as_secs_f64(),
        elapsed.as_secs_f64(),
        rate / ceiling
    );

    // Latency at a steady 200 scans/s (one integration's worth of scan objects).
    if integrations == 1 {
        let (child, base) = common::serve(db, true, &["--delivery-concurrency", "64"]).await;
        sink.track.store(true, Ordering::Relaxed);
        let mut sent = HashMap::new();
        let start = Instant::now();
        for i in 0..1000u32 {
            let at = start + Duration::from_millis(5 * i as u64);
            tokio::time::sleep_until(at.into()).await;
            let commit = format!("lat-{i}");
            let s = one_scan(&http, &base, &ci, &format!("{label}-lat-{i}"), &commit).await;
            sent.insert(commit, s);
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while sink.arrivals.lock().unwrap().len() < sent.len() {
            assert!(Instant::now() < deadline, "latency run did not finish");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let rss = peak_rss_mb(child.id());
        stop(child);
        let arrivals = sink.arrivals.lock().unwrap();
        let mut lat: Vec<f64> = sent
            .iter()
            .map(|(c, s)| arrivals[c].duration_since(*s).as_secs_f64() * 1000.0)
            .collect();
        lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
        println!(
            "{label}: /complete → sink at 200 scans/s: p50 {:.2} ms, p99 {:.2} ms over {} scans; serve peak RSS {rss:.1} MB",
            lat[lat.len() / 2],
            lat[lat.len() * 99 / 100],
            lat.len()
        );
    }
}

#[tokio::main]
async fn main() {
    let messages: usize = std::env::var("BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let fanouts: Vec<usize> = std::env::var("BENCH_INTEGRATIONS")
        .unwrap_or_else(|_| "1,10".into())
        .split(',')
        .map(|v| {
            v.trim()
                .parse()
                .expect("BENCH_INTEGRATIONS: comma-separated counts")
        })
        .collect();
    let backends = std::env::var("BENCH_BACKENDS").unwrap_or_else(|_| "sqlite,postgres".into());
    for &integrations in fanouts.iter().filter(|_| backends.contains("sqlite")) {
        let dir = tempfile::tempdir().unwrap();
        let db = format!("sqlite://{}", dir.path().join("bench.db").display());
        run("SQLite", &db, integrations, messages).await;
    }
    match std::env::var("SCANHOOK_TEST_PG_URL") {
        Ok(server) if !server.is_empty() && backends.contains("postgres") => {
            use sqlx::{Connection, Executor};
            sqlx::any::install_default_drivers();
            for &integrations in &fanouts {
                let name = format!(
                    "scanhook_bench_{}",
                    scanhook::ids::public_scan_id().to_lowercase()
                );
                let mut admin = sqlx::AnyConnection::connect(&server).await.unwrap();
                admin
                    .execute(format!("CREATE DATABASE {name}").as_str())
                    .await
                    .unwrap();
                let mut url = url::Url::parse(&server).unwrap();
                url.set_path(&format!("/{name}"));
                run("PostgreSQL", url.as_str(), integrations, messages).await;
                admin
                    .execute(format!("DROP DATABASE {name} WITH (FORCE)").as_str())
                    .await
                    .unwrap();
            }
        }
        _ => println!("PostgreSQL: skipped (set SCANHOOK_TEST_PG_URL to run it)"),
    }
}
