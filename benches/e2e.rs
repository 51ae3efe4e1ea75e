//! Benchmark (not a test): scans in, webhooks out, end to end.
//!
//! Run: `cargo bench --bench e2e` (add `SCANHOOK_TEST_PG_URL=postgres://…` for PostgreSQL).
//! For each backend × integration count × client count it starts a release `scanhook
//! serve` with delivery on, on a fresh database, and a fast local sink answering `204`; every
//! rule mode notifies every integration. Then `clients` synthetic `semgrep ci` clients run
//! the whole protocol in a closed loop (create, config, results with `findings` never-seen
//! findings, complete), `scans` scans in all, each on a branch of its own in one of 16
//! projects. It prints scans/s in; deliveries/s out at the sink, after checking that every
//! expected delivery arrived (a `semgrep_scan` and the finding arrays per scan and
//! integration) and none twice; the serve process's CPU per scan (utime +
//! stime from `/proc/PID/stat`, ingest and delivery together); p50/p99 per protocol step;
//! what it wrote to disk per scan (`write_bytes` of `/proc/PID/io`; on PostgreSQL the server
//! writes, not serve); its peak RSS (VmHWM); and the sink ceiling measured in the same run.
//!
//! Knobs: `E2E_CLIENTS=1,4,16,64`, `E2E_SCANS=4000`, `E2E_FINDINGS=1`,
//! `E2E_INTEGRATIONS=0,1,10`, `E2E_HISTORY=0` (findings and delivered messages stored before
//! measuring, by bulk SQL), `E2E_BACKENDS=sqlite,postgres`, `E2E_PERF=1` (records the serve
//! process with `perf record -g` during the first measured run into `perf-e2e-*.data`).

mod common;

use common::{
    ceiling, cpu_time, disk_written, peak_rss_mb, start_sink, stop, token, NO_CONTENT_204,
};
use serde_json::{json, Value};
use sqlx::{Connection, Executor};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Projects the scans are spread over (scan n goes to project n % 16).
const PROJECTS: usize = 16;
/// The protocol steps, in order.
const STEPS: [&str; 4] = ["create", "config", "results", "complete"];

struct Knobs {
    clients: Vec<usize>,
    scans: usize,
    findings: usize,
    integrations: Vec<usize>,
    history: usize,
    perf: bool,
}

fn list(name: &str, default: &str) -> Vec<usize> {
    std::env::var(name)
        .unwrap_or_else(|_| default.into())
        .split(',')
        .map(|v| {
            v.trim()
                .parse()
                .unwrap_or_else(|_| panic!("{name}: comma-separated counts"))
        })
        .collect()
}

fn number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{name}: a count")))
        .unwrap_or(default)
}

/// The bodies one synthetic client sends, built from the captured ones.
struct Bodies {
    create: Value,
    finding: Value,
    results: Value,
    complete: Vec<u8>,
}

impl Bodies {
    fn new() -> Bodies {
        let create: Value =
            serde_json::from_str(include_str!("../tests/data/01-post-scans.request.json")).unwrap();
        let results: Value =
            serde_json::from_str(include_str!("../tests/data/03-post-results.request.json"))
                .unwrap();
        let finding = results["findings"][1].clone();
        Bodies {
            create,
            finding,
            results,
            complete: include_bytes!("../tests/data/04-post-complete.request.json").to_vec(),
        }
    }

    /// `POST /api/cli/v2/scans` of scan `n` of run `run`.
    fn create(&self, run: &str, n: usize) -> Vec<u8> {
        let mut b = self.create.clone();
        let repo = format!("bench/p{}", n % PROJECTS);
        b["scan_metadata"]["unique_id"] = json!(format!("{run}-{n}"));
        b["project_metadata"]["repository"] = json!(repo);
        b["project_metadata"]["repo_display_name"] = json!(repo);
        b["project_metadata"]["branch"] = json!(format!("{run}-b{n}"));
        b["project_metadata"]["commit"] = json!(format!("{run}-{n}"));
        serde_json::to_vec(&b).unwrap()
    }

    /// `/results` with `findings` findings no scan reported before.
    fn results(&self, run: &str, n: usize, findings: usize) -> Vec<u8> {
        let mut b = self.results.clone();
        let list: Vec<Value> = (0..findings)
            .map(|i| {
                let mut f = self.finding.clone();
                f["path"] = json!(format!("src/m{}/f{i}.py", n % 100));
                f["syntactic_id"] = json!(format!("{run}-{n}-{i}"));
                f["match_based_id"] = json!(format!("{run}-{n}-{i}_0"));
                f
            })
            .collect();
        b["findings"] = Value::Array(list);
        b["ignores"] = json!([]);
        serde_json::to_vec(&b).unwrap()
    }
}

/// One synthetic `semgrep ci` run; the time of each step.
async fn one_scan(
    http: &reqwest::Client,
    base: &str,
    ci: &str,
    bodies: &Bodies,
    run: &str,
    n: usize,
    findings: usize,
) -> [Duration; 4] {
    let create = bodies.create(run, n);
    let results = bodies.results(run, n, findings);
    let post = |path: String, body: Vec<u8>| {
        http.post(format!("{base}{path}"))
            .bearer_auth(ci)
            .header("content-type", "application/json")
            .body(body)
    };
    let t = Instant::now();
    let r = post("/api/cli/v2/scans".into(), create)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "create: {}", r.status());
    let v: Value = r.json().await.unwrap();
    let id = v["info"]["id"].as_i64().unwrap();
    let created = t.elapsed();

    let t = Instant::now();
    let r = http
        .get(format!("{base}/api/cli/v2/scans/{run}-{n}/config"))
        .bearer_auth(ci)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "config: {}", r.status());
    r.bytes().await.unwrap();
    let config = t.elapsed();

    let t = Instant::now();
    let r = post(format!("/api/agent/scans/{id}/results"), results)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "results: {}", r.status());
    r.bytes().await.unwrap();
    let uploaded = t.elapsed();

    let t = Instant::now();
    let r = post(
        format!("/api/agent/scans/{id}/complete"),
        bodies.complete.clone(),
    )
    .send()
    .await
    .unwrap();
    assert!(r.status().is_success(), "complete: {}", r.status());
    r.bytes().await.unwrap();
    [created, config, uploaded, t.elapsed()]
}

/// Runs `scans` scans on `clients` concurrent clients; every step's times.
async fn drive(
    base: &str,
    ci: &str,
    run: &str,
    clients: usize,
    scans: usize,
    findings: usize,
) -> Vec<[Duration; 4]> {
    let next = Arc::new(AtomicUsize::new(0));
    let bodies = Arc::new(Bodies::new());
    let mut tasks = Vec::new();
    for _ in 0..clients {
        // Each client has its own connection, as separate CI jobs do.
        let http = reqwest::Client::new();
        let (base, ci, run, next, bodies) = (
            base.to_string(),
            ci.to_string(),
            run.to_string(),
            next.clone(),
            bodies.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut times = Vec::new();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= scans {
                    return times;
                }
                times.push(one_scan(&http, &base, &ci, &bodies, &run, n, findings).await);
            }
        }));
    }
    let mut all = Vec::with_capacity(scans);
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all
}

fn percentile(sorted: &[f64], p: usize) -> f64 {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

/// Fills a fresh database with `n` findings (open, on refs no bench scan uses, with their
/// identities) in the bench projects, and `n` delivered messages with one attempt each, by
/// bulk SQL: what a deployment has after a long life.
async fn prefill(db: &str, pg: bool, messages: bool, n: usize) {
    if n == 0 {
        return;
    }
    let t = Instant::now();
    let mut conn = sqlx::AnyConnection::connect(db).await.unwrap();
    // `seq`: the numbers 0..n, a table to select rows from.
    let seq = if pg {
        format!("WITH seq AS (SELECT generate_series(0, {}) AS i)", n - 1)
    } else {
        format!(
            "WITH RECURSIVE seq(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM seq WHERE i < {})",
            n - 1
        )
    };
    let first_integration = sqlx::query("SELECT id FROM integrations ORDER BY id LIMIT 1")
        .fetch_optional(&mut conn)
        .await
        .unwrap()
        .map(|r| sqlx::Row::get::<i64, _>(&r, "id"));
    let dep: i64 = sqlx::Row::get(
        &sqlx::query("SELECT id FROM deployments ORDER BY id LIMIT 1")
            .fetch_one(&mut conn)
            .await
            .unwrap(),
        "id",
    );
    let mut projects = Vec::new();
    for p in 0..PROJECTS {
        let row = sqlx::query(
            "INSERT INTO projects (deployment_id, name, created_at) VALUES ($1, $2, 0) \
             ON CONFLICT (deployment_id, name) DO UPDATE SET created_at = 0 RETURNING id",
        )
        .bind(dep)
        .bind(format!("bench/p{p}"))
        .fetch_one(&mut conn)
        .await
        .unwrap();
        projects.push(sqlx::Row::get::<i64, _>(&row, "id"));
    }
    let first_project = projects[0];
    assert!(
        projects.windows(2).all(|w| w[1] == w[0] + 1),
        "the bench projects have consecutive ids"
    );
    let row = sqlx::query(
        "INSERT INTO finding_metadata (deployment_id, hash, body) VALUES ($1, 'history', '{}') \
         RETURNING id",
    )
    .bind(dep)
    .fetch_one(&mut conn)
    .await
    .unwrap();
    let metadata: i64 = sqlx::Row::get(&row, "id");
    let text = |e: &str| {
        if pg {
            format!("({e})::text")
        } else {
            format!("CAST({e} AS TEXT)")
        }
    };
    // Filling the history before serve starts: no other process writes meanwhile.
    #[allow(clippy::disallowed_methods)]
    let tx = conn.begin().await.unwrap();
    let mut conn = tx;
    // Projects were inserted in one go, so their ids are consecutive.
    let project = format!("{first_project} + (i % {PROJECTS})");
    let identity = format!("'history-' || {}", text("i"));
    let git_ref = format!("'refs/heads/history-' || {}", text("i / 1000"));
    let findings = format!(
        "{} INSERT INTO findings (deployment_id, project_id, git_ref, identity, syntactic_id, \
         match_based_id, rule_id, path, line, col, end_line, end_col, message, severity, idx, \
         commit_date, metadata_id, mode, policy_slug, state, digest, created_at, relevant_since, \
         state_updated_at, last_scan_id) \
         SELECT {dep}, {project}, {git_ref}, {identity}, {identity}, {identity}, \
         'python-hardcoded-password', 'src/history.py', 1, 1, 1, 2, 'history', 0, 0, NULL, \
         {metadata}, 'monitor', NULL, 'open', 'history', 0, 0, 0, 0 FROM seq",
        seq
    );
    conn.execute(findings.as_str()).await.unwrap();
    let identities = format!(
        "{} INSERT INTO identities (project_id, identity, first_seen_scan_id, first_seen_at) \
         SELECT {project}, {identity}, 'scn_history', 0 FROM seq",
        seq
    );
    conn.execute(identities.as_str()).await.unwrap();
    if let Some(integration) = first_integration.filter(|_| messages) {
        let row = sqlx::query("INSERT INTO payloads (body) VALUES ('{}') RETURNING id")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        let payload: i64 = sqlx::Row::get(&row, "id");
        let messages = format!(
            "{} INSERT INTO messages (public_id, deployment_id, integration_id, scan_id, kind, \
             payload_id, status, attempts, next_attempt_at, created_at, delivered_at) \
             SELECT 'msg_history' || {}, {dep}, {integration}, NULL, 'semgrep_scan', {payload}, \
             'delivered', 1, 0, 0, 0 FROM seq",
            seq,
            text("i")
        );
        conn.execute(messages.as_str()).await.unwrap();
        let attempts = "INSERT INTO attempts (message_id, attempted_at, status_code, latency_us) \
             SELECT id, 0, 204, 100 FROM messages WHERE public_id LIKE 'msg_history%'";
        conn.execute(attempts).await.unwrap();
    }
    conn.commit().await.unwrap();
    let mut conn = sqlx::AnyConnection::connect(db).await.unwrap();
    let settle = if pg {
        "ANALYZE"
    } else {
        "PRAGMA wal_checkpoint(TRUNCATE)"
    };
    conn.execute(settle).await.unwrap();
    println!(
        "  history: {n} findings, {} delivered messages stored in {:.1} s",
        if first_integration.is_some() && messages {
            n
        } else {
            0
        },
        t.elapsed().as_secs_f64()
    );
}

/// Records the serve process with `perf record -g` until stopped.
fn start_perf(pid: u32, label: &str) -> Child {
    let out = format!("perf-e2e-{label}.data");
    println!("  perf: recording serve into {out}");
    Command::new("perf")
        .args([
            "record",
            "-e",
            "cpu-clock",
            "-g",
            "-o",
            &out,
            "-p",
            &pid.to_string(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("perf starts")
}

/// The sample rules, and `integrations` integrations on the sink that every mode notifies;
/// their public ids.
async fn setup(base: &str, admin: &str, url: &str, integrations: usize) -> Vec<String> {
    let http = reqwest::Client::new();
    let rules = include_str!("../tests/data/sample-rules.yml");
    let r = http
        .post(format!("{base}/api/v1/rules"))
        .bearer_auth(admin)
        .json(&json!({"files": [{"name": "sample-rules.yml", "content": rules}]}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "rules: {}", r.status());
    let mut ids = Vec::new();
    for i in 0..integrations {
        let hook: Value = http
            .post(format!("{base}/api/v1/integrations"))
            .bearer_auth(admin)
            .json(&json!({"name": format!("sink {i}"), "url": url}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for mode in ["monitor", "comment", "block"] {
            let r = http
                .post(format!("{base}/api/v1/modes/{mode}/notify"))
                .bearer_auth(admin)
                .json(&json!({"integration_ids": [hook["id"]]}))
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success(), "notify: {}", r.status());
        }
        ids.push(hook["id"].as_str().unwrap_or_default().to_string());
    }
    ids
}

/// One backend × integrations × clients measurement on a fresh database.
async fn run(label: &str, db: &str, pg: bool, integrations: usize, clients: usize, k: &Knobs) {
    let (url, sink) = start_sink(NO_CONTENT_204).await;
    let ceiling = ceiling(&url).await;
    sink.reset();
    sink.dedup.store(true, Ordering::Relaxed);

    let (child, base) = common::serve(db, true, &[]).await;
    let pid = child.id();
    let admin = token(db, "admin");
    let ci = token(db, "ci");
    let ids = setup(&base, &admin, &url, integrations).await;
    prefill(db, pg, !ids.is_empty(), k.history).await;

    // A semgrep_scan, and the findings in arrays of at most FINDINGS_PER_MESSAGE.
    let arrays = k
        .findings
        .div_ceil(scanhook::domain::outbox::FINDINGS_PER_MESSAGE) as u64;
    let per_scan = integrations as u64 * (1 + arrays);
    // Warm-up: connections, caches, lanes; not measured.
    let warm = clients.max(16);
    drive(&base, &ci, "warm", clients, warm, k.findings).await;
    let arrived = sink
        .wait_for(warm as u64 * per_scan, Duration::from_secs(60))
        .await;
    assert!(arrived, "the warm-up's deliveries did not all arrive");
    sink.reset();

    let perf = (k.perf).then(|| start_perf(pid, &format!("{label}-{integrations}-{clients}")));
    let cpu0 = cpu_time(pid);
    let disk0 = disk_written(pid);
    let start = Instant::now();
    let times = drive(&base, &ci, "run", clients, k.scans, k.findings).await;
    let ingest = start.elapsed();
    let expected = k.scans as u64 * per_scan;
    let all = sink.wait_for(expected, Duration::from_secs(120)).await;
    // Anything sent twice or more than expected would arrive just after.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let cpu = cpu_time(pid) - cpu0;
    let disk = disk_written(pid) - disk0;
    if let Some(mut p) = perf {
        let _ = Command::new("kill")
            .args(["-INT", &p.id().to_string()])
            .status();
        let _ = p.wait();
    }
    let received = sink.count.load(Ordering::Relaxed);
    let out = sink
        .last_arrival()
        .map_or(ingest, |t| t.duration_since(start).max(ingest));
    let rss = peak_rss_mb(pid);
    stop(child);

    let scans_in = k.scans as f64 / ingest.as_secs_f64();
    let deliveries = received as f64 / out.as_secs_f64();
    let mut steps = String::new();
    for (i, step) in STEPS.iter().enumerate() {
        let mut ms: Vec<f64> = times.iter().map(|t| t[i].as_secs_f64() * 1e3).collect();
        ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
        steps.push_str(&format!(
            " {step} {:.2}/{:.2}",
            percentile(&ms, 50),
            percentile(&ms, 99)
        ));
    }
    let check = if received == expected && sink.duplicates.load(Ordering::Relaxed) == 0 {
        "all arrived, none twice".to_string()
    } else {
        format!(
            "MISMATCH: {received} of {expected} arrived{}, {} duplicates",
            if all { "" } else { " (timed out)" },
            sink.duplicates.load(Ordering::Relaxed)
        )
    };
    println!(
        "{label} | {integrations} int | {clients} clients | {:.0} scans/s in | {deliveries:.0} deliveries/s out ({check}; drained {:.2} s after the last scan) | CPU {:.3} ms/scan ({:.2} cores) | p50/p99 ms:{steps} | serve wrote {:.1} KB/scan to disk | serve peak RSS {rss:.1} MB | sink ceiling {ceiling:.0}/s",
        scans_in,
        (out - ingest).as_secs_f64(),
        cpu.as_secs_f64() * 1e3 / k.scans as f64,
        cpu.as_secs_f64() / out.as_secs_f64(),
        disk as f64 / 1024.0 / k.scans as f64,
    );
}

/// A fresh database: a SQLite file in a directory of its own, or a PostgreSQL database
/// made on the server and dropped by [`drop_database`].
enum Fresh {
    /// The directory goes when this is dropped.
    Sqlite {
        _dir: tempfile::TempDir,
    },
    Postgres {
        server: String,
        name: String,
    },
}

async fn fresh(pg: Option<&str>) -> (String, Fresh) {
    match pg {
        None => {
            let dir = tempfile::tempdir().unwrap();
            let db = format!("sqlite://{}?mode=rwc", dir.path().join("e2e.db").display());
            (db, Fresh::Sqlite { _dir: dir })
        }
        Some(server) => {
            let name = format!(
                "scanhook_e2e_{}",
                scanhook::ids::public_scan_id().to_lowercase()
            );
            let mut admin = sqlx::AnyConnection::connect(server).await.unwrap();
            admin
                .execute(format!("CREATE DATABASE {name}").as_str())
                .await
                .unwrap();
            let mut url = url::Url::parse(server).unwrap();
            url.set_path(&format!("/{name}"));
            let server = server.to_string();
            (url.to_string(), Fresh::Postgres { server, name })
        }
    }
}

async fn drop_database(fresh: Fresh) {
    if let Fresh::Postgres { server, name } = fresh {
        let mut admin = sqlx::AnyConnection::connect(&server).await.unwrap();
        admin
            .execute(format!("DROP DATABASE {name} WITH (FORCE)").as_str())
            .await
            .unwrap();
    }
}

#[tokio::main]
async fn main() {
    let k = Knobs {
        clients: list("E2E_CLIENTS", "1,4,16,64"),
        scans: number("E2E_SCANS", 4000),
        findings: number("E2E_FINDINGS", 1),
        integrations: list("E2E_INTEGRATIONS", "0,1,10"),
        history: number("E2E_HISTORY", 0),
        perf: std::env::var("E2E_PERF").is_ok_and(|v| v == "1"),
    };
    let backends = std::env::var("E2E_BACKENDS").unwrap_or_else(|_| "sqlite,postgres".into());
    sqlx::any::install_default_drivers();
    println!(
        "e2e: {} scans per run, {} finding(s) each, history {}",
        k.scans, k.findings, k.history
    );
    let pg = std::env::var("SCANHOOK_TEST_PG_URL")
        .ok()
        .filter(|s| !s.is_empty());
    let mut runs: Vec<(&str, Option<&str>)> = Vec::new();
    if backends.contains("sqlite") {
        runs.push(("SQLite", None));
    }
    match pg.as_deref() {
        Some(server) if backends.contains("postgres") => runs.push(("PostgreSQL", Some(server))),
        _ => println!("PostgreSQL: skipped (set SCANHOOK_TEST_PG_URL to run it)"),
    }
    for (label, server) in runs {
        for &integrations in &k.integrations {
            for &clients in &k.clients {
                let (db, made) = fresh(server).await;
                run(label, &db, server.is_some(), integrations, clients, &k).await;
                drop_database(made).await;
            }
        }
    }
}
