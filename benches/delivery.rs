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

use serde_json::{json, Value};
use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_scanhook");

#[derive(Default)]
struct Sink {
    count: AtomicU64,
    /// commit → when the sink received that scan's semgrep_scan object.
    arrivals: Mutex<HashMap<String, Instant>>,
    track: std::sync::atomic::AtomicBool,
}

impl Sink {
    fn received(&self, body: &[u8]) {
        self.count.fetch_add(1, Ordering::Relaxed);
        if self.track.load(Ordering::Relaxed) {
            if let Ok(v) = serde_json::from_slice::<Value>(body) {
                if let Some(commit) = v["semgrep_scan"]["commit"].as_str() {
                    self.arrivals
                        .lock()
                        .unwrap()
                        .insert(commit.to_string(), Instant::now());
                }
            }
        }
    }
}

/// The sink: a bare HTTP/1.1 keep-alive responder that answers every request `200 ok`, so
/// that the machine's two cores go to the sender being measured rather than to a web
/// framework on the receiving side.
async fn start_sink() -> (String, Arc<Sink>) {
    let sink = Arc::new(Sink::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let accepting = sink.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            socket.set_nodelay(true).unwrap();
            tokio::spawn(sink_connection(socket, accepting.clone()));
        }
    });
    (url, sink)
}

/// Serves one connection: answers each complete request in the buffer, then reads more.
async fn sink_connection(mut socket: tokio::net::TcpStream, sink: Arc<Sink>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const OK: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
    let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut out: Vec<u8> = Vec::new();
    loop {
        let mut start = 0;
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut req = httparse::Request::new(&mut headers);
            let Ok(httparse::Status::Complete(head)) = req.parse(&buf[start..]) else {
                break;
            };
            let length: usize = req
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse().ok())
                .unwrap_or(0);
            let end = start + head + length;
            if buf.len() < end {
                break;
            }
            sink.received(&buf[start + head..end]);
            out.extend_from_slice(OK);
            start = end;
        }
        buf.drain(..start);
        if !out.is_empty() {
            if socket.write_all(&out).await.is_err() {
                return;
            }
            out.clear();
        }
        match socket.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// Raw POST rate of the delivery client stack to the sink.
async fn ceiling(url: &str) -> f64 {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap();
    let body = r#"{"semgrep_scan":{"id":"ceiling"}}"#;
    let until = Instant::now() + Duration::from_secs(3);
    let done = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let (client, url, done) = (client.clone(), url.to_string(), done.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < until {
                client.post(&url).body(body).send().await.unwrap();
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let t = Instant::now();
    for task in tasks {
        task.await.unwrap();
    }
    done.load(Ordering::Relaxed) as f64 / t.elapsed().as_secs_f64()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The secret key file of one benchmark database: `serve` and `worker` must share it.
fn key_file(db: &str) -> String {
    let name: String = db
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    std::env::temp_dir()
        .join(format!("scanhook-bench-{name}.key"))
        .display()
        .to_string()
}

async fn serve(db: &str, deliver: bool) -> (Child, String) {
    let port = free_port();
    let mut cmd = Command::new(BIN);
    cmd.args([
        "serve",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--database-url",
        db,
    ])
    .args([
        "--deliver-allow-cidrs",
        "127.0.0.0/8",
        "--delivery-concurrency",
        "64",
    ])
    .env("SCANHOOK_LOG", "warn")
    .env("SCANHOOK_SECRET_KEY_FILE", key_file(db))
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    if !deliver {
        cmd.arg("--no-deliver");
    }
    let child = cmd.spawn().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while reqwest::get(format!("{base}/healthz")).await.is_err() {
        assert!(Instant::now() < deadline, "serve did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (child, base)
}

fn token(db: &str, scope: &str) -> String {
    let out = Command::new(BIN)
        .args(["token", "create", "--scope", scope, "--database-url", db])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn peak_rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn stop(mut child: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

/// One scan through the protocol (no findings: one semgrep_scan message per integration).
async fn one_scan(
    http: &reqwest::Client,
    base: &str,
    ci: &str,
    uid: &str,
    commit: &str,
) -> Instant {
    let mut body: Value =
        serde_json::from_str(include_str!("../tests/data/01-post-scans.request.json")).unwrap();
    body["scan_metadata"]["unique_id"] = json!(uid);
    body["project_metadata"]["commit"] = json!(commit);
    let v: Value = http
        .post(format!("{base}/api/cli/v2/scans"))
        .bearer_auth(ci)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = v["info"]["id"].as_i64().unwrap();
    let sent = Instant::now();
    let r = http
        .post(format!("{base}/api/agent/scans/{id}/complete"))
        .bearer_auth(ci)
        .json(&json!({"exit_code": 0}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    sent
}

/// Requests in flight per integration in the worker (`BENCH_CONCURRENCY`, default 16).
fn concurrency() -> String {
    std::env::var("BENCH_CONCURRENCY").unwrap_or_else(|_| "16".into())
}

async fn run(label: &str, db: &str, integrations: usize, messages: usize) {
    let (url, sink) = start_sink().await;
    let ceiling = ceiling(&url).await;
    sink.count.store(0, Ordering::Relaxed);

    // Queue the messages with delivery off.
    let (child, base) = serve(db, false).await;
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
        let (child, base) = serve(db, true).await;
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
