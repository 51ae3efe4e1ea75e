//! Retention on both backends, with time moved by an injected clock (no sleeps): what is
//! past its retention goes in batches, with its attempts and the payloads no message is
//! left on; what is still moving, and findings, their changes and triage, stay. The queue
//! depth metric agrees with a full count at every step, and SQLite gives the space back.

use crate::delivery::scan;
use crate::harness::{fixture, Db, TestApp};
use crate::on_both;
use crate::receiver::Receiver;
use scanhook::clock::{self, Clock, Micros};
use scanhook::delivery::guard::Guard;
use scanhook::delivery::sender::Sender;
use scanhook::delivery::worker::{DeliveryConfig, Worker};
use scanhook::retention::{prune_once, Pruned, Retention, Tally, Target};
use scanhook::store::prune::AutoVacuum;
use scanhook::store::Store;
use serde_json::json;
use sqlx::{AnyConnection, Connection, Row};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const DAY: Micros = 86_400_000_000;

struct ManualClock(AtomicI64);

impl Clock for ManualClock {
    fn now(&self) -> Micros {
        self.0.load(Ordering::SeqCst)
    }
}

/// A worker that sends from this test, on its clock.
fn worker(app: &TestApp, clock: Arc<ManualClock>) -> Arc<Worker> {
    let sender = Sender::new(
        Guard::new(vec!["127.0.0.0/8".parse().unwrap()]),
        Duration::from_secs(10),
        None,
    )
    .unwrap();
    Arc::new(Worker::new(
        app.store().clone(),
        sender,
        DeliveryConfig::default(),
        clock,
    ))
}

/// The app with no background pruning and no delivery: the test drives both.
async fn app(db: Db) -> TestApp {
    TestApp::spawn_with(db, |c| {
        c.deliver = false;
        c.retention = Retention::off();
    })
    .await
}

/// The defaults, in batches of `batch`, without pauses.
fn retention(batch: i64) -> Retention {
    Retention {
        batch,
        pause: Duration::ZERO,
        ..Retention::default()
    }
}

async fn prune(app: &TestApp, retention: &Retention, now: Micros) -> Pruned {
    prune_once(app.store(), retention, now, &CancellationToken::new())
        .await
        .unwrap()
}

async fn connect(app: &TestApp) -> AnyConnection {
    sqlx::any::install_default_drivers();
    AnyConnection::connect(&app.database_url).await.unwrap()
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    let mut conn = connect(app).await;
    let n: i64 = sqlx::query(sql)
        .fetch_one(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get(0);
    conn.close().await.ok();
    n
}

async fn exec(app: &TestApp, sql: &str) {
    let mut conn = connect(app).await;
    sqlx::query(sql)
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    conn.close().await.ok();
}

/// Messages by status, counted row by row: what the metric must say.
async fn truth(app: &TestApp) -> BTreeMap<String, i64> {
    let mut conn = connect(app).await;
    let mut out: BTreeMap<String, i64> = ["pending", "delivering", "delivered", "failed"]
        .iter()
        .map(|s| (s.to_string(), 0))
        .collect();
    for r in sqlx::query("SELECT status, COUNT(*) AS n FROM messages GROUP BY status")
        .fetch_all(&mut conn)
        .await
        .unwrap()
    {
        out.insert(r.get("status"), r.get("n"));
    }
    conn.close().await.ok();
    out
}

async fn depth_is_true(app: &TestApp) -> BTreeMap<String, i64> {
    let metric = crate::multinode::queue(&app.http, &app.base).await;
    let truth = truth(app).await;
    assert_eq!(
        metric, truth,
        "scanhook_queue_messages against a full count"
    );
    metric
}

fn states(pairs: &[(&str, i64)]) -> BTreeMap<String, i64> {
    let mut out: BTreeMap<String, i64> = ["pending", "delivering", "delivered", "failed"]
        .iter()
        .map(|s| (s.to_string(), 0))
        .collect();
    for (s, n) in pairs {
        out.insert(s.to_string(), *n);
    }
    out
}

/// What must never be pruned: findings, their change log and triage, row by row.
async fn kept_forever(app: &TestApp) -> Vec<String> {
    let mut conn = connect(app).await;
    let mut out = Vec::new();
    for sql in [
        "SELECT 'finding ' || id || ' ' || identity || ' ' || state AS r FROM findings",
        "SELECT 'change ' || scan_id || ' ' || finding_id || ' ' || change AS r FROM scan_changes",
        "SELECT 'identity ' || identity || ' ' || triage_state AS r FROM identities",
    ] {
        for row in sqlx::query(sql).fetch_all(&mut conn).await.unwrap() {
            out.push(row.get::<String, _>("r"));
        }
    }
    conn.close().await.ok();
    out.sort();
    out
}

async fn delivered_messages_go_with_their_attempts_and_a_shared_payload_with_the_last(db: Db) {
    let app = app(db).await;
    let up = Receiver::start().await;
    let flaky = Receiver::start().await;
    // Both integrations get the same bodies: every payload is shared by two messages.
    app.add_notified_integration(&json!({"name": "Up", "url": up.url}))
        .await;
    let flaky_hook = app
        .add_notified_integration(&json!({"name": "Flaky", "url": flaky.url}))
        .await;
    flaky.script(&[500, 500]);
    let scan_id = scan(&app, "dddddddd-0000-4000-8000-000000000001").await;
    // Triage one finding, so that triage is among what must stay.
    let finding = app.findings("").await[0]["id"].as_i64().unwrap();
    app.admin_post(
        &format!("/api/v1/deployments/{}/triage", app.slug),
        &json!({"issue_type": "sast", "issue_ids": [finding], "new_triage_state": "ignored",
                "new_triage_reason": "false_positive"}),
    )
    .await;
    let forever = kept_forever(&app).await;
    assert!(
        forever.iter().any(|r| r.starts_with("finding ")),
        "{forever:?}"
    );
    assert!(
        forever.iter().any(|r| r.starts_with("change ")),
        "{forever:?}"
    );
    assert!(
        forever.iter().any(|r| r.ends_with(" ignored")),
        "{forever:?}"
    );
    let payloads = count(&app, "SELECT COUNT(*) FROM payloads").await;
    assert_eq!(
        count(&app, "SELECT COUNT(DISTINCT payload_id) FROM messages").await,
        payloads
    );
    let messages = count(&app, "SELECT COUNT(*) FROM messages").await;
    assert_eq!(
        messages,
        2 * payloads,
        "{messages} messages on {payloads} payloads"
    );

    let t0 = clock::now();
    let clock = Arc::new(ManualClock(AtomicI64::new(t0)));
    let w = worker(&app, clock.clone());
    w.run_until_idle().await.unwrap();
    let half = messages / 2;
    assert_eq!(
        depth_is_true(&app).await,
        states(&[("delivered", half), ("pending", half)]),
        "Up delivered, Flaky waits for its retry"
    );
    assert_eq!(count(&app, "SELECT COUNT(*) FROM attempts").await, messages);

    // 29 days on, nothing is old enough.
    let r = retention(1000);
    assert!(prune(&app, &r, t0 + 29 * DAY).await.is_empty());
    // 31 days on, Up's messages go with their attempts; Flaky's pending ones, and so
    // every payload, stay.
    let pruned = prune(&app, &r, t0 + 31 * DAY).await;
    assert_eq!(
        pruned.of(Target::DeliveredMessages),
        Tally {
            rows: half as u64,
            attempts: half as u64,
            payloads: 0,
            batches: 1
        }
    );
    assert_eq!(depth_is_true(&app).await, states(&[("pending", half)]));
    assert_eq!(count(&app, "SELECT COUNT(*) FROM payloads").await, payloads);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM attempts").await, half);
    let flaky_id = flaky_hook["id"].as_str().unwrap();
    let log = app
        .admin_get(&format!("/api/v1/deliveries?integration={flaky_id}"))
        .await;
    assert_eq!(log["deliveries"].as_array().unwrap().len(), half as usize);

    // Flaky's retry succeeds; a year on its messages go too, and with the last message
    // of each payload, the payload.
    clock.0.store(t0 + 10_000_000, Ordering::SeqCst);
    w.run_until_idle().await.unwrap();
    assert_eq!(depth_is_true(&app).await, states(&[("delivered", half)]));
    let pruned = prune(&app, &r, t0 + 365 * DAY).await;
    assert_eq!(
        pruned.of(Target::DeliveredMessages),
        Tally {
            rows: half as u64,
            attempts: 2 * half as u64,
            payloads: payloads as u64,
            batches: 1
        }
    );
    for table in ["messages", "attempts", "payloads"] {
        assert_eq!(
            count(&app, &format!("SELECT COUNT(*) FROM {table}")).await,
            0,
            "{table}"
        );
    }
    assert_eq!(depth_is_true(&app).await, states(&[]));
    assert_eq!(
        kept_forever(&app).await,
        forever,
        "findings, changes, triage"
    );
    // The scan's own webhook objects (its page) are not messages: they stay.
    assert!(app.webhooks(scan_id).await["semgrep_scan"].is_object());
    app.stop().await;
}
on_both!(delivered_messages_go_with_their_attempts_and_a_shared_payload_with_the_last);

/// `n` messages of one status on one new payload, each with one attempt, their
/// `next_attempt_at` (when they were delivered or failed) at `at`.
async fn insert_messages(app: &TestApp, tag: &str, status: &str, n: usize, at: Micros) {
    let mut raw = connect(app).await;
    // One transaction: a pruner running meanwhile sees the payload with all its messages.
    // Its first statement writes, so it takes SQLite's write lock before reading anything.
    #[allow(clippy::disallowed_methods)]
    let mut conn = raw.begin().await.unwrap();
    let payload: i64 = sqlx::query("INSERT INTO payloads (body) VALUES ($1) RETURNING id")
        .bind(format!("{{\"tag\":\"{tag}\"}}"))
        .fetch_one(&mut *conn)
        .await
        .unwrap()
        .get("id");
    let lease = (status == "delivering").then_some(at);
    let delivered_at = (status == "delivered").then_some(at);
    for i in 0..n {
        let id: i64 = sqlx::query(
            "INSERT INTO messages (public_id, deployment_id, integration_id, kind, payload_id, \
             status, attempts, next_attempt_at, lease_until, created_at, delivered_at) \
             VALUES ($1, 1, 1, 'semgrep_scan', $2, $3, 1, $4, $5, $4, $6) RETURNING id",
        )
        .bind(format!("msg_{tag}{i}"))
        .bind(payload)
        .bind(status)
        .bind(at)
        .bind(lease)
        .bind(delivered_at)
        .fetch_one(&mut *conn)
        .await
        .unwrap()
        .get("id");
        sqlx::query(
            "INSERT INTO attempts (message_id, attempted_at, status_code, latency_us) \
             VALUES ($1, $2, 200, 1000)",
        )
        .bind(id)
        .bind(at)
        .execute(&mut *conn)
        .await
        .unwrap();
    }
    conn.commit().await.unwrap();
}

async fn the_pruner_goes_in_batches_and_never_takes_moving_messages(db: Db) {
    let app = app(db).await;
    let now = clock::now();
    let year = now - 365 * DAY;
    insert_messages(&app, "old", "delivered", 25, now - 31 * DAY).await;
    insert_messages(&app, "recent", "delivered", 3, now - 29 * DAY).await;
    insert_messages(&app, "waiting", "pending", 3, year).await;
    insert_messages(&app, "sending", "delivering", 2, year).await;
    insert_messages(&app, "failedrecently", "failed", 4, now - 60 * DAY).await;
    insert_messages(&app, "failedlongago", "failed", 6, now - 100 * DAY).await;
    assert_eq!(
        depth_is_true(&app).await,
        states(&[
            ("delivered", 28),
            ("pending", 3),
            ("delivering", 2),
            ("failed", 10)
        ])
    );

    let pruned = prune(&app, &retention(10), now).await;
    // 25 in batches of 10: three transactions; their shared payload goes in the last.
    assert_eq!(
        pruned.of(Target::DeliveredMessages),
        Tally {
            rows: 25,
            attempts: 25,
            payloads: 1,
            batches: 3
        }
    );
    assert_eq!(
        pruned.of(Target::FailedMessages),
        Tally {
            rows: 6,
            attempts: 6,
            payloads: 1,
            batches: 1
        }
    );
    assert_eq!(
        depth_is_true(&app).await,
        states(&[
            ("delivered", 3),
            ("pending", 3),
            ("delivering", 2),
            ("failed", 4)
        ])
    );
    assert_eq!(count(&app, "SELECT COUNT(*) FROM attempts").await, 12);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM payloads").await, 4);
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM payloads p WHERE NOT EXISTS \
             (SELECT 1 FROM messages m WHERE m.payload_id = p.id)"
        )
        .await,
        0,
        "no payload is left without a message"
    );
    // Off keeps everything, however old.
    let off = Retention {
        pause: Duration::ZERO,
        ..Retention::off()
    };
    assert!(prune(&app, &off, now + 3650 * DAY).await.is_empty());
    // Moving messages stay whatever their age.
    let pruned = prune(&app, &retention(10), now + 3650 * DAY).await;
    assert_eq!(pruned.of(Target::DeliveredMessages).rows, 3);
    assert_eq!(pruned.of(Target::FailedMessages).rows, 4);
    assert_eq!(
        depth_is_true(&app).await,
        states(&[("pending", 3), ("delivering", 2)])
    );
    assert_eq!(count(&app, "SELECT COUNT(*) FROM attempts").await, 5);
    app.stop().await;
}
on_both!(the_pruner_goes_in_batches_and_never_takes_moving_messages);

/// Creates a scan and uploads its results; its id.
async fn uploaded(app: &TestApp, unique_id: &str) -> i64 {
    let mut body = fixture("01-post-scans.request.json");
    body["scan_metadata"]["unique_id"] = json!(unique_id);
    let id = app.ci_post("/api/cli/v2/scans", &body).await["info"]["id"]
        .as_i64()
        .unwrap();
    app.ci_post(
        &format!("/api/agent/scans/{id}/results"),
        &fixture("03-post-results.request.json"),
    )
    .await;
    id
}

async fn raw_uploads_of_unfinished_scans_and_old_fail_open_reports_go(db: Db) {
    let app = app(db).await;
    let errored = uploaded(&app, "eeeeeeee-0000-4000-8000-000000000001").await;
    app.ci_post(
        &format!("/api/agent/scans/{errored}/error"),
        &fixture("error.request.json"),
    )
    .await;
    let abandoned = uploaded(&app, "eeeeeeee-0000-4000-8000-000000000002").await;
    assert_eq!(
        app.store()
            .abandon_stale(clock::now() + 1_000_000)
            .await
            .unwrap(),
        1
    );
    let running = uploaded(&app, "eeeeeeee-0000-4000-8000-000000000003").await;
    scan(&app, "eeeeeeee-0000-4000-8000-000000000004").await;
    app.ci_post("/failure", &fixture("fail-open.request.json"))
        .await;
    let with_upload = "SELECT COUNT(*) FROM scans WHERE results IS NOT NULL";
    assert_eq!(
        count(&app, with_upload).await,
        3,
        "the completed scan's is applied"
    );
    let forever = kept_forever(&app).await;

    let now = clock::now();
    assert!(prune(&app, &retention(1000), now + 13 * DAY)
        .await
        .is_empty());
    let pruned = prune(&app, &retention(1000), now + 15 * DAY).await;
    assert_eq!(pruned.of(Target::Uploads).rows, 2);
    assert_eq!(pruned.of(Target::FailOpenReports).rows, 1);
    assert_eq!(count(&app, with_upload).await, 1);
    assert_eq!(
        count(
            &app,
            &format!("SELECT COUNT(*) FROM scans WHERE id = {running} AND results IS NOT NULL")
        )
        .await,
        1,
        "a running scan keeps its upload: its /complete may still come"
    );
    for id in [errored, abandoned] {
        let scan = app
            .admin_get(&format!("/api/v1/deployments/{}/scan/{id}", app.slug))
            .await;
        assert!(["error", "abandoned"].contains(&scan["status"].as_str().unwrap()));
    }
    assert_eq!(count(&app, "SELECT COUNT(*) FROM failures").await, 0);
    assert_eq!(kept_forever(&app).await, forever);
    app.stop().await;
}
on_both!(raw_uploads_of_unfinished_scans_and_old_fail_open_reports_go);

async fn the_queue_depth_metric_follows_every_move(db: Db) {
    let app = app(db).await;
    let up = Receiver::start().await;
    let gone = Receiver::start().await;
    app.add_notified_integration(&json!({"name": "Up", "url": up.url}))
        .await;
    scan(&app, "ffffffff-0000-4000-8000-000000000001").await;
    let t0 = clock::now();
    let clock = Arc::new(ManualClock(AtomicI64::new(t0)));
    let w = worker(&app, clock.clone());
    assert_eq!(depth_is_true(&app).await, states(&[("pending", 2)]));
    w.run_until_idle().await.unwrap();
    assert_eq!(depth_is_true(&app).await, states(&[("delivered", 2)]));

    // Resent: delivered → pending → delivered.
    let log = app.admin_get("/api/v1/deliveries").await;
    let id = log["deliveries"][0]["id"].as_str().unwrap().to_string();
    app.admin_post(&format!("/api/v1/deliveries/{id}/resend"), &json!({}))
        .await;
    assert_eq!(
        depth_is_true(&app).await,
        states(&[("delivered", 1), ("pending", 1)])
    );
    // Resent messages are due at the system clock's now.
    clock.0.store(clock::now() + 1_000_000, Ordering::SeqCst);
    w.run_until_idle().await.unwrap();
    assert_eq!(depth_is_true(&app).await, states(&[("delivered", 2)]));

    // A 410 fails a message at once; recovering it makes it pending again.
    gone.script(&[410, 410]);
    let hook = app
        .add_notified_integration(&json!({"name": "Gone", "url": gone.url}))
        .await;
    let hook_id = hook["id"].as_str().unwrap();
    scan(&app, "ffffffff-0000-4000-8000-000000000002").await;
    w.run_until_idle().await.unwrap();
    let failing = depth_is_true(&app).await;
    assert!(failing["failed"] >= 1, "{failing:?}");
    let requeued = app
        .admin_post(
            &format!("/api/v1/integrations/{hook_id}/recover"),
            &json!({"since": "0"}),
        )
        .await["requeued"]
        .as_i64()
        .unwrap();
    assert_eq!(requeued, failing["failed"]);
    let waiting = failing["pending"] + failing["failed"];
    let now = depth_is_true(&app).await;
    assert_eq!((now["failed"], now["pending"]), (0, waiting), "{now:?}");

    // Pruned delivered messages leave the count, one batch at a time.
    let delivered = now["delivered"];
    assert!(delivered >= 3, "{now:?}");
    let pruned = prune(&app, &retention(1), t0 + 31 * DAY).await;
    assert_eq!(
        pruned.of(Target::DeliveredMessages).batches,
        delivered as u64
    );
    assert_eq!(depth_is_true(&app).await, states(&[("pending", waiting)]));
    app.stop().await;
}
on_both!(the_queue_depth_metric_follows_every_move);

async fn the_server_prunes_in_the_background(db: Db) {
    let app = TestApp::spawn_with(db, |c| {
        c.deliver = false;
        c.retention = Retention {
            delivered: Some(Duration::from_secs(3600)),
            every: Duration::from_millis(50),
            ..Retention::default()
        };
    })
    .await;
    let now = clock::now();
    insert_messages(&app, "old", "delivered", 5, now - 2 * 3600 * 1_000_000).await;
    insert_messages(&app, "new", "delivered", 2, now).await;
    // A condition with a deadline, not a guess: the pruner's next round takes them.
    let deadline = Instant::now() + Duration::from_secs(30);
    while count(&app, "SELECT COUNT(*) FROM messages").await > 2 {
        assert!(
            Instant::now() < deadline,
            "the background pruner did not run"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(depth_is_true(&app).await, states(&[("delivered", 2)]));
    app.stop().await;
}
on_both!(the_server_prunes_in_the_background);

/// A new SQLite database is made in incremental auto-vacuum mode, and pruning shrinks
/// the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_gives_pruned_space_back() {
    let app = app(Db::Sqlite).await;
    assert_eq!(
        app.store().auto_vacuum().await.unwrap(),
        Some(AutoVacuum::Incremental)
    );
    let old = clock::now() - 31 * DAY;
    // 2,000 delivered messages, each with a 4 KB body of its own: 8 MB.
    exec(
        &app,
        "INSERT INTO payloads (id, body) WITH RECURSIVE n(i) AS \
         (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000) \
         SELECT i, hex(randomblob(2000)) FROM n",
    )
    .await;
    exec(
        &app,
        &format!(
            "INSERT INTO messages (public_id, deployment_id, integration_id, kind, payload_id, \
             status, attempts, next_attempt_at, created_at, delivered_at) \
             SELECT 'msg_' || id, 1, 1, 'semgrep_scan', id, 'delivered', 1, {old}, {old}, {old} \
             FROM payloads"
        ),
    )
    .await;
    let size = || async { app.store().storage_facts().await.unwrap().0 };
    let before = size().await;
    assert!(before > 8_000_000, "{before}");
    let pruned = prune(&app, &retention(500), clock::now()).await;
    assert_eq!(pruned.of(Target::DeliveredMessages).batches, 4);
    let after = size().await;
    assert!(after < 1_000_000, "{before} → {after} bytes");
    assert_eq!(app.store().free_pages().await.unwrap(), 0);
    app.stop().await;
}

/// A database made before incremental auto-vacuum became the default is switched by the
/// one-time `scanhook vacuum`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scanhook_vacuum_makes_an_older_database_incremental() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    let url = format!("sqlite://{}", path.display());
    {
        sqlx::any::install_default_drivers();
        let mut conn = AnyConnection::connect(&format!("{url}?mode=rwc"))
            .await
            .unwrap();
        sqlx::query("PRAGMA auto_vacuum = NONE; CREATE TABLE before_upgrade (x INTEGER)")
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.ok();
    }
    let mode = |url: String| async move {
        let store = Store::connect(&url).await.unwrap();
        let mode = store.auto_vacuum().await.unwrap();
        store.close().await;
        mode
    };
    assert_eq!(
        mode(url.clone()).await,
        Some(AutoVacuum::None),
        "connecting alone does not change an existing database"
    );
    let (ok, _, stderr) =
        crate::cli::run(crate::cli::scanhook().args(["vacuum", "--database-url", &url]));
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("auto_vacuum is incremental (was none)"),
        "{stderr}"
    );
    assert_eq!(mode(url).await, Some(AutoVacuum::Incremental));
}

/// On PostgreSQL there is nothing to vacuum: autovacuum does it.
#[cfg_attr(
    not(pg_tests),
    ignore = "SCANHOOK_TEST_PG_URL is not set: PostgreSQL test skipped"
)]
#[test]
fn scanhook_vacuum_leaves_postgresql_to_autovacuum() {
    let url = crate::harness::pg_server();
    let (ok, _, stderr) =
        crate::cli::run(crate::cli::scanhook().args(["vacuum", "--database-url", &url]));
    assert!(!ok);
    assert!(stderr.contains("autovacuum"), "{stderr}");
}
