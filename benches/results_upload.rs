//! Benchmark (not a test): server time of a 10,000-finding `/results` upload and of the
//! `/complete` that applies it, on SQLite and (with SCANHOOK_TEST_PG_URL) PostgreSQL.
//!
//! Run: `cargo bench --bench results_upload` (add `SCANHOOK_TEST_PG_URL=postgres://…`).
//! Goal: each request under 300 ms on the 2-core reference machine. `BENCH_LOG=…` (a log
//! filter such as `sqlx::query=debug`) shows what the server does meanwhile.

use scanhook::app;
use scanhook::config::Config;
use scanhook::domain::tokens::Scope;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const FINDINGS: usize = 10_000;
const ROUNDS: usize = 5;

fn finding(i: usize, template: &Value) -> Value {
    let mut f = template.clone();
    f["path"] = json!(format!("src/module_{}/file_{}.py", i / 100, i % 100));
    f["line"] = json!(10 + i % 300);
    f["end_line"] = json!(10 + i % 300);
    f["syntactic_id"] = json!(format!("{:032x}", i as u128 * 0x9e37_79b9_7f4a_7c15));
    f["match_based_id"] = json!(format!("{:0128x}_0", i as u128 * 0x5851_f42d_4c95_7f2d));
    f
}

fn body() -> Value {
    let fixture: Value =
        serde_json::from_str(include_str!("../tests/data/03-post-results.request.json")).unwrap();
    let template = fixture["findings"][1].clone();
    let findings: Vec<Value> = (0..FINDINGS).map(|i| finding(i, &template)).collect();
    let paths: Vec<Value> = findings.iter().map(|f| f["path"].clone()).collect();
    json!({
        "findings": findings, "ignores": [], "token": null, "searched_paths": paths,
        "renamed_paths": [], "skipped_paths": [], "rule_ids": ["python-hardcoded-password"],
        "contributions": [],
    })
}

struct Timing {
    results: Duration,
    complete: Duration,
}

async fn round(http: &reqwest::Client, base: &str, ci: &str, n: usize, body: &[u8]) -> Timing {
    let mut create: Value =
        serde_json::from_str(include_str!("../tests/data/01-post-scans.request.json")).unwrap();
    create["scan_metadata"]["unique_id"] =
        json!(format!("bench-{n}-{}", scanhook::ids::public_scan_id()));
    let v: Value = http
        .post(format!("{base}/api/cli/v2/scans"))
        .bearer_auth(ci)
        .json(&create)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = v["info"]["id"].as_i64().unwrap();
    let t = Instant::now();
    let r = http
        .post(format!("{base}/api/agent/scans/{id}/results"))
        .bearer_auth(ci)
        .header("content-type", "application/json")
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let results = t.elapsed();
    let complete: Value =
        serde_json::from_str(include_str!("../tests/data/04-post-complete.request.json")).unwrap();
    let t = Instant::now();
    let r = http
        .post(format!("{base}/api/agent/scans/{id}/complete"))
        .bearer_auth(ci)
        .json(&complete)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    Timing {
        results,
        complete: t.elapsed(),
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn bench(label: &str, database_url: String) {
    let mut config = Config::local(database_url);
    config.deployment = "bench".into();
    config.deliver = false;
    let running = app::start(config, CancellationToken::new())
        .await
        .expect("app starts");
    let dep = running.store.first_deployment().await.unwrap().unwrap();
    let ci = running.store.create_token(dep.id, Scope::Ci).await.unwrap();
    let base = format!("http://{}", running.addr);
    let http = reqwest::Client::new();
    let body = serde_json::to_vec(&body()).unwrap();
    println!(
        "{label}: /results body {:.1} MiB, {FINDINGS} findings",
        body.len() as f64 / 1048576.0
    );
    let mut results = vec![];
    let mut completes = vec![];
    for n in 0..ROUNDS {
        let t = round(&http, &base, &ci, n, &body).await;
        let what = if n == 0 {
            "first scan: all new"
        } else {
            "re-scan: all still open"
        };
        println!(
            "  round {n} ({what}): /results {:.0} ms, /complete {:.0} ms",
            ms(t.results),
            ms(t.complete)
        );
        results.push(t.results);
        completes.push(t.complete);
    }
    results.sort();
    completes.sort();
    println!(
        "  median over {ROUNDS}: /results {:.0} ms, /complete {:.0} ms (goal < 300 ms each)",
        ms(results[ROUNDS / 2]),
        ms(completes[ROUNDS / 2])
    );
    running.stop().await;
}

#[tokio::main]
async fn main() {
    // `BENCH_LOG=sqlx::query=debug` prints every statement with its time.
    if let Ok(filter) = std::env::var("BENCH_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .init();
    }
    let dir = tempfile::tempdir().unwrap();
    bench(
        "SQLite",
        format!("sqlite://{}", dir.path().join("bench.db").display()),
    )
    .await;
    match std::env::var("SCANHOOK_TEST_PG_URL") {
        Ok(server) if !server.is_empty() => {
            use sqlx::{Connection, Executor};
            sqlx::any::install_default_drivers();
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
            bench("PostgreSQL", url.to_string()).await;
            admin
                .execute(format!("DROP DATABASE {name} WITH (FORCE)").as_str())
                .await
                .unwrap();
        }
        _ => println!("PostgreSQL: skipped (set SCANHOOK_TEST_PG_URL to run it)"),
    }
}
