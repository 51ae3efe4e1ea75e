//! Benchmark (not a test): peak memory of `scanhook serve` taking large `/results` uploads.
//! Starts the real binary on a fresh SQLite data directory, uploads one body of
//! `BENCH_UPLOAD_MB` (default 240) and reads the process's peak RSS (VmHWM) before and
//! after; then three such uploads at once under `--max-uploads-in-flight-mb` of twice the
//! upload, which holds at most two of them while the third waits.
//!
//! Then a SARIF log of `BENCH_SARIF_RESULTS` results (default 100,000; about 150 MB) sent
//! to `POST /api/v1/uploads`: the server's time for it and its peak RSS (issue 13).
//!
//! Run: `cargo bench --bench upload_memory` (BENCH_UPLOAD_MB=N to change the size;
//! `BENCH_ONLY=sarif` for the SARIF case alone).
//! Goal (issue 10): the peak grows by at most 2× the upload for one upload.

use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{peak_rss_mb, BIN};

fn upload_mb() -> usize {
    std::env::var("BENCH_UPLOAD_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(240)
}

/// A `/results` body of about `mb` MiB: findings shaped like the captured client's.
fn body(mb: usize) -> Vec<u8> {
    let fixture: Value =
        serde_json::from_str(include_str!("../tests/data/03-post-results.request.json")).unwrap();
    let template = fixture["findings"][1].clone();
    let one = serde_json::to_vec(&template).unwrap().len() + 200;
    let n = mb * 1024 * 1024 / one;
    let findings: Vec<Value> = (0..n)
        .map(|i| {
            let mut f = template.clone();
            f["path"] = json!(format!("src/module_{}/file_{}.py", i / 100, i % 100));
            f["syntactic_id"] = json!(format!("{:032x}", i as u128 * 0x9e37_79b9_7f4a_7c15));
            f["match_based_id"] = json!(format!("{:0128x}_0", i as u128 * 0x5851_f42d_4c95_7f2d));
            f
        })
        .collect();
    serde_json::to_vec(&json!({
        "findings": findings, "ignores": [], "searched_paths": [], "renamed_paths": [],
        "skipped_paths": [], "rule_ids": ["python-hardcoded-password"],
    }))
    .unwrap()
}

struct Server {
    child: Child,
    base: String,
    ci: String,
    _dir: tempfile::TempDir,
}

async fn start(in_flight_mb: usize) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(dir.path())
        .args([
            "--max-results-mb",
            &(upload_mb().max(in_flight_mb / 4) + 16).to_string(),
        ])
        .args(["--max-uploads-in-flight-mb", &in_flight_mb.to_string()])
        .env("SCANHOOK_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let admin = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map(Result::unwrap)
        .find_map(|l| l.trim().strip_prefix("shk_").map(|t| format!("shk_{t}")))
        .expect("an admin token");
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let ci: Value = http
        .post(format!("{base}/api/v1/tokens"))
        .bearer_auth(&admin)
        .json(&json!({"scope": "ci"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    Server {
        child,
        base,
        ci: ci["token"].as_str().unwrap().to_string(),
        _dir: dir,
    }
}

async fn new_scan(s: &Server, n: usize) -> i64 {
    let mut create: Value =
        serde_json::from_str(include_str!("../tests/data/01-post-scans.request.json")).unwrap();
    create["scan_metadata"]["unique_id"] = json!(format!("memory-{n}"));
    let v: Value = reqwest::Client::new()
        .post(format!("{}/api/cli/v2/scans", s.base))
        .bearer_auth(&s.ci)
        .json(&create)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["info"]["id"].as_i64().unwrap()
}

async fn upload(base: &str, ci: &str, scan: i64, body: Vec<u8>) -> (u16, Duration) {
    let t = Instant::now();
    let r = reqwest::Client::new()
        .post(format!("{base}/api/agent/scans/{scan}/results"))
        .bearer_auth(ci)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), t.elapsed())
}

/// A SARIF log of `n` results of 50 rules over 2,000 files, shaped like a real tool's: rules
/// with help text and tags, results with a region, a snippet and a context region.
fn sarif(n: usize) -> Vec<u8> {
    let rules: Vec<Value> = (0..50)
        .map(|r| {
            json!({
                "id": format!("R{r:03}"),
                "name": format!("rule-number-{r}"),
                "shortDescription": {"text": format!("Rule {r}: a short description of what it finds")},
                "fullDescription": {"text": "A longer description of the problem, why it matters, and what to do about it. ".repeat(4)},
                "help": {"text": "How to fix it: validate the input, use the safe API, and add a test.", "markdown": "**How to fix it**"},
                "helpUri": format!("https://example.com/rules/R{r:03}"),
                "defaultConfiguration": {"level": "warning"},
                "properties": {"tags": ["security", format!("CWE-{}: Some weakness", 70 + r)], "precision": "high", "security-severity": format!("{}.5", r % 10)}
            })
        })
        .collect();
    let results: Vec<Value> = (0..n)
        .map(|i| {
            let line = 10 + (i % 400);
            json!({
                "ruleId": format!("R{:03}", i % 50),
                "ruleIndex": i % 50,
                "level": "warning",
                "message": {"text": format!("Possible problem number {i} found in this function: the value flows from the request into a sensitive call without validation")},
                "locations": [{"physicalLocation": {
                    "artifactLocation": {"uri": format!("src/module_{}/file_{}.py", i % 2000 / 100, i % 2000), "uriBaseId": "%SRCROOT%"},
                    "region": {"startLine": line, "startColumn": 5, "endLine": line + 2, "endColumn": 40,
                               "snippet": {"text": format!("    result = dangerous_call(user_input_{i}, shell=True)  # line {line}\n")}},
                    "contextRegion": {"startLine": line - 2, "endLine": line + 4,
                                      "snippet": {"text": format!("def handler_{i}(request):\n    user_input_{i} = request.args['q']\n    result = dangerous_call(user_input_{i}, shell=True)\n    return result\n")}}
                }}],
                "properties": {"issue_confidence": "HIGH", "issue_severity": "MEDIUM"}
            })
        })
        .collect();
    serde_json::to_vec(&json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "BenchTool", "version": "1.0.0", "rules": rules}},
            "originalUriBaseIds": {"%SRCROOT%": {"uri": "file:///work/repo/"}},
            "results": results
        }]
    }))
    .unwrap()
}

/// A SARIF upload of `BENCH_SARIF_RESULTS` results: the server's time and its peak RSS.
async fn sarif_upload() {
    let n: usize = std::env::var("BENCH_SARIF_RESULTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let payload = sarif(n);
    let size_mb = payload.len() as f64 / 1024.0 / 1024.0;
    let mut s = start(size_mb as usize * 4 + 64).await;
    let before = peak_rss_mb(s.child.id());
    let send = |uid: &str| {
        reqwest::Client::new()
            .post(format!(
                "{}/api/v1/uploads?repository=acme/big&ref=main&unique_id={uid}",
                s.base
            ))
            .bearer_auth(&s.ci)
            .header("content-type", "application/sarif+json")
            .body(payload.clone())
            .send()
    };
    for (what, uid) in [
        ("first upload (all new)", "big-1"),
        ("the same again", "big-2"),
    ] {
        let t = Instant::now();
        let r = send(uid).await.unwrap();
        let status = r.status().as_u16();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        let took = t.elapsed();
        let after = peak_rss_mb(s.child.id());
        println!(
            "SARIF {n} results, {size_mb:.0} MiB, {what}: status {status}, {:.2} s; opened {}; \
             serve peak RSS {before:.0} → {after:.0} MiB ({:.2}× the file)",
            took.as_secs_f64(),
            v["scans"][0]["scan"]["counts"]["opened"],
            (after - before) / size_mb
        );
    }
    let _ = s.child.kill();
    let _ = s.child.wait();
}

#[tokio::main]
async fn main() {
    if std::env::var("BENCH_ONLY").as_deref() == Ok("sarif") {
        sarif_upload().await;
        return;
    }
    let mb = upload_mb();
    let payload = body(mb);
    let size_mb = payload.len() as f64 / 1024.0 / 1024.0;
    println!("upload of {size_mb:.0} MiB");

    let one = start(mb * 4).await;
    let scan = new_scan(&one, 1).await;
    let before = peak_rss_mb(one.child.id());
    let (status, took) = upload(&one.base, &one.ci, scan, payload.clone()).await;
    let after = peak_rss_mb(one.child.id());
    println!(
        "one upload: status {status}, {:.0} ms; serve peak RSS {before:.0} → {after:.0} MiB: \
         grew {:.0} MiB = {:.2}× the upload [goal ≤ 2×]",
        took.as_secs_f64() * 1000.0,
        after - before,
        (after - before) / size_mb
    );
    let mut one = one;
    let _ = one.child.kill();
    let _ = one.child.wait();

    let ceiling = mb * 2 + 8;
    let three = start(ceiling).await;
    let before = peak_rss_mb(three.child.id());
    let mut tasks = Vec::new();
    for n in 0..3 {
        let scan = new_scan(&three, 10 + n).await;
        let body = payload.clone();
        let base = three.base.clone();
        let ci = three.ci.clone();
        tasks.push(tokio::spawn(
            async move { upload(&base, &ci, scan, body).await },
        ));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap().0);
    }
    let after = peak_rss_mb(three.child.id());
    println!(
        "three at once under --max-uploads-in-flight-mb {ceiling}: statuses {statuses:?}; serve \
         peak RSS {before:.0} → {after:.0} MiB: grew {:.0} MiB = {:.2}× one upload",
        after - before,
        (after - before) / size_mb
    );
    let mut three = three;
    let _ = three.child.kill();
    let _ = three.child.wait();
    sarif_upload().await;
}
