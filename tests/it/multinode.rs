//! Several `scanhook serve` processes on one PostgreSQL database: every message delivered,
//! none twice in normal operation; after `kill -9` of one under load the other delivers
//! the rest.

use crate::receiver::Receiver;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Node {
    child: Child,
    base: String,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `serve` process on the shared database. Every node of one database needs the same
/// secret key file.
async fn start_node(database_url: &str, key: &std::path::Path) -> Node {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_scanhook"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--database-url",
            database_url,
        ])
        .arg("--secret-key-file")
        .arg(key)
        .args([
            "--deliver-allow-cidrs",
            "127.0.0.0/8",
            "--delivery-timeout",
            "1s",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while reqwest::get(format!("{base}/healthz")).await.is_err() {
        assert!(Instant::now() < deadline, "node did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Node { child, base }
}

fn token(database_url: &str, scope: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_scanhook"))
        .args([
            "token",
            "create",
            "--scope",
            scope,
            "--database-url",
            database_url,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

async fn post(http: &reqwest::Client, url: String, token: &str, body: &Value) -> Value {
    let r = http
        .post(url)
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    r.json().await.unwrap()
}

/// `n` scans without findings, spread over the nodes: one message each.
async fn scans(http: &reqwest::Client, nodes: &[&str], ci: &str, tag: &str, n: usize) {
    let fixture: Value =
        serde_json::from_str(include_str!("../data/01-post-scans.request.json")).unwrap();
    for i in 0..n {
        let base = nodes[i % nodes.len()];
        let mut body = fixture.clone();
        body["scan_metadata"]["unique_id"] = json!(format!("{tag}-{i}"));
        let id = post(http, format!("{base}/api/cli/v2/scans"), ci, &body).await["info"]["id"]
            .as_i64()
            .unwrap();
        post(
            http,
            format!("{base}/api/agent/scans/{id}/complete"),
            ci,
            &json!({"exit_code": 0}),
        )
        .await;
    }
}

/// `scanhook_queue_messages` by state, as `/metrics` says.
pub(crate) async fn queue(http: &reqwest::Client, base: &str) -> BTreeMap<String, i64> {
    let text = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter_map(|l| l.strip_prefix("scanhook_queue_messages{state=\""))
        .filter_map(|l| l.split_once("\"} "))
        .map(|(k, v)| (k.to_string(), v.parse().unwrap()))
        .collect()
}

async fn wait_drained(http: &reqwest::Client, base: &str, delivered: i64) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let q = queue(http, base).await;
        if q.get("delivered") == Some(&delivered) {
            return;
        }
        assert!(Instant::now() < deadline, "not drained: {q:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg_attr(
    not(pg_tests),
    ignore = "SCANHOOK_TEST_PG_URL is not set: PostgreSQL test skipped"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_the_queue_and_survive_kill_9() {
    use sqlx::{Connection, Executor};
    sqlx::any::install_default_drivers();
    let server = std::env::var("SCANHOOK_TEST_PG_URL").unwrap();
    let name = format!(
        "scanhook_test_{}",
        scanhook::ids::public_scan_id().to_lowercase()
    );
    let mut admin_conn = sqlx::AnyConnection::connect(&server).await.unwrap();
    admin_conn
        .execute(format!("CREATE DATABASE {name}").as_str())
        .await
        .unwrap();
    let mut url = url::Url::parse(&server).unwrap();
    url.set_path(&format!("/{name}"));
    let db = url.to_string();

    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("secret.key");
    let mut a = start_node(&db, &key).await;
    let mut b = start_node(&db, &key).await;
    let admin = token(&db, "admin");
    let ci = token(&db, "ci");
    let http = reqwest::Client::new();
    let rx = Receiver::start().await;
    post(
        &http,
        format!("{}/api/v1/integrations", a.base),
        &admin,
        &json!({"name": "Feed", "url": rx.url}),
    )
    .await;

    // Normal operation: every message exactly once.
    scans(&http, &[&a.base, &b.base], &ci, "normal", 120).await;
    wait_drained(&http, &a.base, 120).await;
    let mut seen: HashMap<String, usize> = HashMap::new();
    for r in rx.received() {
        *seen
            .entry(r.header("webhook-id").unwrap().to_string())
            .or_default() += 1;
    }
    assert_eq!(seen.len(), 120);
    assert!(
        seen.values().all(|n| *n == 1),
        "a message was delivered twice"
    );

    // Under load, one node dies holding claims; the other delivers the rest.
    rx.hold();
    scans(&http, &[&b.base], &ci, "crash", 60).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while rx.received().len() < 120 + 4 {
        assert!(Instant::now() < deadline, "no deliveries under load");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    rx.release();
    wait_drained(&http, &b.base, 180).await;
    let ids: std::collections::HashSet<String> = rx
        .received()
        .iter()
        .map(|r| r.header("webhook-id").unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 180, "every message arrived at least once");

    b.child.kill().unwrap();
    b.child.wait().unwrap();
    admin_conn
        .execute(format!("DROP DATABASE {name} WITH (FORCE)").as_str())
        .await
        .unwrap();
}
