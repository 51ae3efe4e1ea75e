//! `scanhook backup` of a live SQLite database under load, and `scanhook restore` into a new
//! data directory that `serve` then runs on: every scan, finding and integration is there,
//! and the messages that were pending are delivered.

use crate::cli::{run, scanhook};
use crate::harness::{fixture, Db, TestApp};
use crate::receiver::Receiver;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// A full scan from the captured bodies under a unique id.
async fn scan(app: &TestApp, n: u64) {
    let mut create = fixture("01-post-scans.request.json");
    create["scan_metadata"]["unique_id"] = json!(format!("00000000-0000-4000-9000-{n:012}"));
    create["project_metadata"]["branch"] = json!(format!("branch-{n}"));
    app.drive_scan(&create, &fixture("03-post-results.request.json"))
        .await;
}

#[tokio::test]
async fn a_backup_under_load_restores_into_a_serving_copy() {
    // Delivery off: what the scans queue stays pending, to be delivered by the restored copy.
    let app = TestApp::spawn_with(Db::Sqlite, |c| c.deliver = false).await;
    let rx = Receiver::start().await;
    let hook = app
        .admin_post(
            "/api/v1/integrations",
            &json!({"name": "Feed", "url": rx.url}),
        )
        .await;
    for n in 0..5 {
        scan(&app, n).await;
    }
    // The backup runs while more scans come in; it holds what was committed when it began.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("backup.db");
    let backup = {
        let mut c = scanhook();
        c.args(["backup"])
            .arg(&file)
            .args(["--database-url", &app.database_url]);
        tokio::task::spawn_blocking(move || run(&mut c))
    };
    for n in 5..10 {
        scan(&app, n).await;
    }
    let (ok, _, err) = backup.await.unwrap();
    assert!(ok, "{err}");
    assert!(err.contains("Keep it with the secret key file"), "{err}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // A second backup to the same file is refused; so is a restore over a database.
    let (ok, _, err) = run(scanhook()
        .args(["backup"])
        .arg(&file)
        .args(["--database-url", &app.database_url]));
    assert!(!ok && err.contains("exists"), "{err}");
    let (ok, _, err) = run(scanhook()
        .args(["restore"])
        .arg(&file)
        .args(["--database-url", &app.database_url]));
    assert!(!ok && err.contains("never overwrites"), "{err}");
    let (ok, _, err) = run(scanhook()
        .args(["restore"])
        .arg(app.key_file.as_os_str())
        .args(["--data-dir"])
        .arg(dir.path().join("elsewhere")));
    assert!(!ok && err.contains("not a SQLite database"), "{err}");

    // What the original holds now, all of it committed.
    let scans_then = app
        .admin_post(
            &format!("/api/v1/deployments/{}/scans/search", app.slug),
            &json!({"limit": 100}),
        )
        .await["scans"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(scans_then, 10);
    let pending = app
        .admin_get("/api/v1/deliveries?status=pending&limit=1000")
        .await["deliveries"]
        .as_array()
        .unwrap()
        .len();

    // Restored into a new data directory, with the key the backup was sealed with.
    let restored = dir.path().join("restored");
    let (ok, _, err) = run(scanhook()
        .args(["restore"])
        .arg(&file)
        .arg("--data-dir")
        .arg(&restored));
    assert!(ok, "{err}");
    std::fs::copy(&app.key_file, restored.join("secret.key")).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_scanhook"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(&restored)
        .args(["--deliver-allow-cidrs", "127.0.0.0/8"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();
    let get = |path: String| {
        let http = http.clone();
        let admin = app.admin.clone();
        let base = base.clone();
        async move {
            let r = http
                .get(format!("{base}{path}"))
                .bearer_auth(admin)
                .send()
                .await?;
            anyhow::ensure!(r.status() == StatusCode::OK, "{path}: {}", r.status());
            Ok::<Value, anyhow::Error>(r.json().await?)
        }
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let listed = loop {
        if let Ok(v) = get("/api/v1/integrations".into()).await {
            break v;
        }
        assert!(
            Instant::now() < deadline,
            "the restored copy did not come up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(listed["integrations"][0]["id"], hook["id"]);
    assert_eq!(
        listed["integrations"][0]["secret"], hook["secret"],
        "the secret opens with the key"
    );
    // Every scan committed before the backup began, at least; the findings of the first.
    let findings = get(format!(
        "/api/v1/deployments/{}/findings?ref=branch-0",
        app.slug
    ))
    .await
    .unwrap();
    assert_eq!(findings["findings"].as_array().unwrap().len(), 5);
    let deliveries = get("/api/v1/deliveries?limit=1000".into()).await.unwrap();
    let in_copy = deliveries["deliveries"].as_array().unwrap().len();
    assert!((5..=pending).contains(&in_copy), "{in_copy} of {pending}");
    // The messages that were pending in the copy are delivered by it.
    let deadline = Instant::now() + Duration::from_secs(60);
    while rx.received().len() < in_copy {
        assert!(
            Instant::now() < deadline,
            "{} of {in_copy} delivered",
            rx.received().len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        rx.verify_all_with_standardwebhooks(hook["secret"].as_str().unwrap(), true),
        in_copy
    );
    child.kill().await.ok();
    app.stop().await;
}
