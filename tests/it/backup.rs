//! `scanhook backup` of a live SQLite database under load, and `scanhook restore` into a new
//! data directory that `serve` then runs on; a PostgreSQL database through `pg_dump` and
//! `pg_restore` as the README says. Either way every scan, finding and integration is there,
//! and the messages that were pending are delivered.

use crate::cli::{run, scanhook};
use crate::harness::{fixture, pg_admin, pg_server, with_database, Db, TestApp};
use crate::receiver::Receiver;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::ffi::OsString;
use std::ops::RangeInclusive;
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

/// An integration on a local receiver, then five scans (their messages stay pending while
/// delivery is off).
async fn feed_and_five_scans(app: &TestApp) -> (Receiver, Value) {
    let rx = Receiver::start().await;
    let hook = app
        .admin_post(
            "/api/v1/integrations",
            &json!({"name": "Feed", "url": rx.url}),
        )
        .await;
    for n in 0..5 {
        scan(app, n).await;
    }
    (rx, hook)
}

#[tokio::test]
async fn a_backup_under_load_restores_into_a_serving_copy() {
    // Delivery off: what the scans queue stays pending, to be delivered by the restored copy.
    let app = TestApp::spawn_with(Db::Sqlite, |c| c.deliver = false).await;
    let (rx, hook) = feed_and_five_scans(&app).await;
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
    let copy = ServingCopy::start(&["--data-dir".into(), restored.into_os_string()], &app).await;
    // Every scan committed before the backup began, at least.
    copy.holds_what_was_saved(&app, &hook, &rx, 5..=scans_then, 5..=pending)
        .await;
    app.stop().await;
}

/// `pg_dump` of a live database whose messages are pending, `pg_restore` into a fresh
/// database, and `serve` on that one: the README's commands for PostgreSQL.
#[cfg_attr(
    not(pg_tests),
    ignore = "SCANHOOK_TEST_PG_URL is not set: PostgreSQL test skipped"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pg_dump_restores_into_a_serving_database() {
    let app = TestApp::spawn_with(Db::Postgres, |c| c.deliver = false).await;
    let (rx, hook) = feed_and_five_scans(&app).await;
    let pending = app
        .admin_get("/api/v1/deliveries?status=pending&limit=1000")
        .await["deliveries"]
        .as_array()
        .unwrap()
        .len();
    assert!(pending >= 5, "{pending}");

    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("scanhook.dump");
    let status = std::process::Command::new("pg_dump")
        .args(["-Fc", "-f"])
        .arg(&dump)
        .arg(&app.database_url)
        .status()
        .expect("pg_dump runs");
    assert!(status.success(), "pg_dump: {status}");
    let name = format!(
        "scanhook_test_{}",
        scanhook::ids::public_scan_id().to_lowercase()
    );
    let server = pg_server();
    pg_admin(&server, &format!("CREATE DATABASE {name}")).await;
    let restored = with_database(&server, &name);
    let status = std::process::Command::new("pg_restore")
        .args(["-d", &restored])
        .arg(&dump)
        .status()
        .expect("pg_restore runs");
    assert!(status.success(), "pg_restore: {status}");

    let copy = ServingCopy::start(
        &[
            "--database-url".into(),
            restored.into(),
            "--secret-key-file".into(),
            app.key_file.clone().into_os_string(),
        ],
        &app,
    )
    .await;
    copy.holds_what_was_saved(&app, &hook, &rx, 5..=5, pending..=pending)
        .await;
    drop(copy);
    pg_admin(
        &server,
        &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
    )
    .await;
    app.stop().await;
}

/// `scanhook serve` (delivering) on a restored copy of `app`'s database; killed on drop.
struct ServingCopy {
    _child: tokio::process::Child,
    base: String,
    admin: String,
    http: reqwest::Client,
}

impl ServingCopy {
    /// Starts it with `args` naming the database, and waits until it answers.
    async fn start(args: &[OsString], app: &TestApp) -> ServingCopy {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_scanhook"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .args(args)
            .args(["--deliver-allow-cidrs", "127.0.0.0/8"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let copy = ServingCopy {
            _child: child,
            base: format!("http://127.0.0.1:{port}"),
            admin: app.admin.clone(),
            http: reqwest::Client::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while copy.get("/api/v1/integrations").await.is_err() {
            assert!(
                Instant::now() < deadline,
                "the restored copy did not come up"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        copy
    }

    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.admin)
            .send()
            .await?;
        anyhow::ensure!(r.status() == StatusCode::OK, "{path}: {}", r.status());
        Ok(r.json().await?)
    }

    /// The copy has `app`'s integration (its secret opened with the key), `scans` of its
    /// scans with every finding of each, `messages` of the messages that were pending, and
    /// delivers them all.
    async fn holds_what_was_saved(
        &self,
        app: &TestApp,
        hook: &Value,
        rx: &Receiver,
        scans: RangeInclusive<usize>,
        messages: RangeInclusive<usize>,
    ) {
        let listed = self.get("/api/v1/integrations").await.unwrap();
        assert_eq!(listed["integrations"][0]["id"], hook["id"]);
        assert_eq!(
            listed["integrations"][0]["secret"], hook["secret"],
            "the secret opens with the key"
        );
        let deliveries = self.get("/api/v1/deliveries?limit=1000").await.unwrap();
        let in_copy = deliveries["deliveries"].as_array().unwrap().len();
        assert!(
            messages.contains(&in_copy),
            "{in_copy}, expected {messages:?}"
        );
        let listed_scans = self
            .http
            .post(format!(
                "{}/api/v1/deployments/{}/scans/search",
                self.base, app.slug
            ))
            .bearer_auth(&self.admin)
            .json(&json!({"limit": 100}))
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap();
        let in_copy_scans = listed_scans["scans"].as_array().unwrap().len();
        assert!(
            scans.contains(&in_copy_scans),
            "{in_copy_scans} scans, expected {scans:?}"
        );
        // Each completed scan, on a branch of its own, opened the fixture's five findings (a
        // backup under load may hold a scan that had not completed yet).
        let completed = listed_scans["scans"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["status"] == "completed")
            .count();
        assert!(completed >= *scans.start(), "{completed} completed scans");
        let findings = self
            .get(&format!(
                "/api/v1/deployments/{}/findings?page_size=1000",
                app.slug
            ))
            .await
            .unwrap();
        assert_eq!(
            findings["findings"].as_array().unwrap().len(),
            5 * completed
        );
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
    }
}
