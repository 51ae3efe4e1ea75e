//! What the end-to-end benchmarks share: the fast local webhook sink, the ceiling of the
//! delivery client stack against it, and starting and reading `scanhook` processes.
//!
//! The sink is a bare HTTP/1.1 keep-alive responder rather than a web framework, so that
//! the machine's two cores go to the process being measured, not to the receiving side.

#![allow(dead_code)] // each benchmark uses its own part of this

use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_scanhook");

/// What the sink answers every request.
pub const OK_200: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
pub const NO_CONTENT_204: &[u8] = b"HTTP/1.1 204 No Content\r\n\r\n";

#[derive(Default)]
pub struct Sink {
    pub count: AtomicU64,
    /// Requests whose `webhook-id` had been received before (a message sent twice).
    pub duplicates: AtomicU64,
    /// When the last request arrived.
    last: Mutex<Option<Instant>>,
    /// `webhook-id`s seen, when `dedup` is on.
    seen: Mutex<HashSet<Vec<u8>>>,
    pub dedup: AtomicBool,
    /// commit → when the sink received that scan's semgrep_scan object, when `track` is on.
    pub arrivals: Mutex<HashMap<String, Instant>>,
    pub track: AtomicBool,
}

impl Sink {
    fn received(&self, webhook_id: Option<&[u8]>, body: &[u8]) {
        if self.dedup.load(Ordering::Relaxed) {
            if let Some(id) = webhook_id {
                if !self.seen.lock().unwrap().insert(id.to_vec()) {
                    self.duplicates.fetch_add(1, Ordering::Relaxed);
                }
            }
            *self.last.lock().unwrap() = Some(Instant::now());
        }
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

    /// Forgets what was received (counts, ids, the last arrival).
    pub fn reset(&self) {
        self.count.store(0, Ordering::Relaxed);
        self.duplicates.store(0, Ordering::Relaxed);
        self.seen.lock().unwrap().clear();
        *self.last.lock().unwrap() = None;
    }

    /// When the last request arrived (with `dedup` on).
    pub fn last_arrival(&self) -> Option<Instant> {
        *self.last.lock().unwrap()
    }

    /// Waits until `n` requests have arrived; false if `within` ran out first.
    pub async fn wait_for(&self, n: u64, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while self.count.load(Ordering::Relaxed) < n {
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }
}

/// Starts the sink on 127.0.0.1, answering every request with `answer`.
pub async fn start_sink(answer: &'static [u8]) -> (String, Arc<Sink>) {
    let sink = Arc::new(Sink::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let accepting = sink.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            socket.set_nodelay(true).unwrap();
            tokio::spawn(sink_connection(socket, accepting.clone(), answer));
        }
    });
    (url, sink)
}

/// Serves one connection: answers each complete request in the buffer, then reads more.
async fn sink_connection(mut socket: tokio::net::TcpStream, sink: Arc<Sink>, answer: &[u8]) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
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
            let header = |name: &str| {
                req.headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case(name))
                    .map(|h| h.value)
            };
            let length: usize = header("content-length")
                .and_then(|v| std::str::from_utf8(v).ok()?.trim().parse().ok())
                .unwrap_or(0);
            let end = start + head + length;
            if buf.len() < end {
                break;
            }
            sink.received(header("webhook-id"), &buf[start + head..end]);
            out.extend_from_slice(answer);
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

/// Raw POST rate of the delivery client stack to the sink (reqwest, no redirects, 64 in
/// flight, for 3 s).
pub async fn ceiling(url: &str) -> f64 {
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

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The secret key file of one benchmark database: `serve` and `worker` must share it.
pub fn key_file(db: &str) -> String {
    let name: String = db
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    std::env::temp_dir()
        .join(format!("scanhook-bench-{name}.key"))
        .display()
        .to_string()
}

/// Starts `scanhook serve` on the database (delivery on or off, `extra` flags after), and
/// waits until it answers.
pub async fn serve(db: &str, deliver: bool, extra: &[&str]) -> (Child, String) {
    let port = free_port();
    let mut cmd = Command::new(BIN);
    cmd.args([
        "serve",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--database-url",
        db,
    ])
    .args(["--deliver-allow-cidrs", "127.0.0.0/8"])
    .args(extra)
    // `BENCH_SERVE_LOG=sqlx::query=debug` shows every statement serve runs.
    .env(
        "SCANHOOK_LOG",
        std::env::var("BENCH_SERVE_LOG").unwrap_or_else(|_| "warn".into()),
    )
    .env("RUST_LOG", "warn")
    .env("SCANHOOK_SECRET_KEY_FILE", key_file(db))
    .stdout(Stdio::null())
    .stderr(Stdio::inherit());
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

/// A new token of `scope`, through the CLI.
pub fn token(db: &str, scope: &str) -> String {
    let out = Command::new(BIN)
        .args(["token", "create", "--scope", scope, "--database-url", db])
        .env("SCANHOOK_SECRET_KEY_FILE", key_file(db))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The process's peak resident set (VmHWM), in MB.
pub fn peak_rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// CPU time the process has used so far (user + system), from `/proc/PID/stat`.
pub fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name may hold spaces; fields are counted after its closing parenthesis.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<u64>().ok())
        .sum();
    // The kernel's USER_HZ is 100 on every Linux this runs on.
    Duration::from_millis(ticks * 10)
}

/// Bytes the process has caused to be written to storage so far (`write_bytes` of
/// `/proc/PID/io`: on SQLite, the WAL and the checkpoints into the database file).
pub fn disk_written(pid: u32) -> u64 {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap_or_default();
    io.lines()
        .find_map(|l| l.strip_prefix("write_bytes:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

pub fn stop(mut child: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

/// One scan through the protocol, create then complete, without findings (one
/// `semgrep_scan` message per integration); when `/complete` was sent.
pub async fn one_scan(
    http: &reqwest::Client,
    base: &str,
    ci: &str,
    uid: &str,
    commit: &str,
) -> Instant {
    let mut body: Value =
        serde_json::from_str(include_str!("../../tests/data/01-post-scans.request.json")).unwrap();
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
