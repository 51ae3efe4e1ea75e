//! Webhook delivery: signed (checked by the PyPI `standardwebhooks` verifier), routed by
//! rule mode, retried on a schedule driven by an injected clock, isolated per integration,
//! guarded against private addresses, observable in the delivery log.

use crate::harness::{fixture, Db, TestApp};
use crate::on_both;
use crate::receiver::Receiver;
use reqwest::{Method, StatusCode};
use scanhook::clock::Clock;
use scanhook::clock::Micros;
use scanhook::delivery::guard::Guard;
use scanhook::delivery::sender::Sender;
use scanhook::delivery::worker::{DeliveryConfig, Worker};
use scanhook::domain::outbox::MessageStatus;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct ManualClock(AtomicI64);

impl Clock for ManualClock {
    fn now(&self) -> Micros {
        self.0.load(Ordering::SeqCst)
    }
}

impl ManualClock {
    fn set(&self, t: Micros) {
        self.0.store(t, Ordering::SeqCst)
    }
}

const SEC: Micros = 1_000_000;

fn worker(app: &TestApp, clock: Arc<ManualClock>, allow_loopback: bool) -> Arc<Worker> {
    let allow = if allow_loopback {
        vec!["127.0.0.0/8".parse().unwrap()]
    } else {
        vec![]
    };
    let sender = Sender::new(Guard::new(allow), Duration::from_secs(10), None).unwrap();
    Arc::new(Worker::new(
        app.store().clone(),
        sender,
        DeliveryConfig::default(),
        clock,
    ))
}

async fn integration(app: &TestApp, name: &str, url: &str, modes: &[&str]) -> Value {
    let i = app
        .admin_post("/api/v1/integrations", &json!({"name": name, "url": url}))
        .await;
    for m in modes {
        app.admin_post(
            &format!("/api/v1/modes/{m}/notify"),
            &json!({"integration_ids": [i["id"]]}),
        )
        .await;
    }
    i
}

/// Runs the captured scan bodies through the protocol; returns the scan id.
pub(crate) async fn scan(app: &TestApp, unique_id: &str) -> i64 {
    let mut body = fixture("01-post-scans.request.json");
    body["scan_metadata"]["unique_id"] = json!(unique_id);
    app.drive_scan(&body, &fixture("03-post-results.request.json"))
        .await
}

/// Waits until no message is pending or in flight (a condition, bounded, not a guess).
pub(crate) async fn drained(app: &TestApp) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let depth = app.store().queue_depth().await.unwrap();
        if !depth
            .iter()
            .any(|(s, n)| matches!(s, MessageStatus::Pending | MessageStatus::Delivering) && *n > 0)
        {
            return;
        }
        assert!(Instant::now() < deadline, "queue not drained: {depth:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn deliveries(app: &TestApp, query: &str) -> Vec<Value> {
    app.admin_get(&format!("/api/v1/deliveries?{query}")).await["deliveries"]
        .as_array()
        .unwrap()
        .clone()
}

async fn signed_deliveries_routed_by_mode(db: Db) {
    let app = TestApp::spawn(db).await;
    let monitor = Receiver::start().await;
    let block = Receiver::start().await;
    let i1 = integration(&app, "Audit feed", &monitor.url, &["monitor"]).await;
    let i2 = integration(
        &app,
        "Comments and blocks",
        &block.url,
        &["comment", "block"],
    )
    .await;
    scan(&app, "aaaaaaaa-0000-4000-8000-000000000001").await;
    drained(&app).await;

    let got = monitor.received();
    let kinds: Vec<&str> = got
        .iter()
        .map(|r| r.header("x-scanhook-event").unwrap())
        .collect();
    assert_eq!(got.len(), 2, "{kinds:?}");
    assert!(
        kinds.contains(&"semgrep_scan") && kinds.contains(&"semgrep_finding"),
        "{kinds:?}"
    );
    let findings = got
        .iter()
        .find(|r| r.header("x-scanhook-event") == Some("semgrep_finding"))
        .unwrap();
    let array = findings.json();
    // The captured findings: four in Monitor mode, js-innerhtml in Comment mode.
    let rules: Vec<&str> = array
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["semgrep_finding"]["check_id"].as_str().unwrap())
        .collect();
    assert_eq!(rules.len(), 4, "{rules:?}");
    assert!(!rules.contains(&"js-innerhtml"));
    assert_eq!(array[0]["semgrep_finding"].as_object().unwrap().len(), 23);
    assert!(!findings.body.contains("\": "), "compact JSON on the wire");
    let scan_obj = got
        .iter()
        .find(|r| r.header("x-scanhook-event") == Some("semgrep_scan"))
        .unwrap();
    assert_eq!(
        scan_obj.json()["semgrep_scan"].as_object().unwrap().len(),
        26
    );
    // Comment and Block modes notify the second integration: the scan, and the one
    // Comment-mode finding.
    let got2 = block.received();
    assert_eq!(got2.len(), 2);
    let array2 = got2
        .iter()
        .find(|r| r.header("x-scanhook-event") == Some("semgrep_finding"))
        .unwrap()
        .json();
    assert_eq!(array2.as_array().unwrap().len(), 1);
    assert_eq!(array2[0]["semgrep_finding"]["check_id"], "js-innerhtml");

    assert_eq!(
        monitor.verify_all_with_standardwebhooks(i1["secret"].as_str().unwrap(), true),
        2
    );
    assert_eq!(
        block.verify_all_with_standardwebhooks(i2["secret"].as_str().unwrap(), true),
        2
    );
    let log = deliveries(&app, "status=delivered").await;
    assert_eq!(log.len(), 4);
    let metrics = app
        .http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("scanhook_queue_messages{state=\"delivered\"} 4"),
        "{metrics}"
    );
    assert!(
        metrics.contains("scanhook_delivery_attempts_total{outcome=\"delivered\"} 4"),
        "{metrics}"
    );
    assert!(
        metrics.contains("scanhook_delivery_latency_seconds_count 4"),
        "{metrics}"
    );
    app.stop().await;
}
on_both!(signed_deliveries_routed_by_mode);

/// `/metrics` as text.
async fn metrics(app: &TestApp) -> String {
    app.http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The value of an unlabelled metric line.
fn gauge(text: &str, name: &str) -> i64 {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

async fn metrics_tell_the_database_size_and_the_oldest_waiting_message(db: Db) {
    let app = TestApp::spawn_with(db, |c| c.deliver = false).await;
    let age = "scanhook_oldest_pending_message_age_seconds";
    let m = metrics(&app).await;
    assert_eq!(gauge(&m, age), 0, "nothing waits");
    assert!(gauge(&m, "scanhook_database_bytes") > 4096, "{m}");
    let rx = Receiver::start().await;
    integration(&app, "Feed", &rx.url, &[]).await;
    scan(&app, "cccccccc-0000-4000-8000-000000000001").await;
    // Queued two hours ago, as far as the rows say.
    {
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(&app.database_url)
            .await
            .unwrap();
        sqlx::query("UPDATE messages SET created_at = created_at - 7200000000")
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.ok();
    }
    let waited = gauge(&metrics(&app).await, age);
    assert!((7200..7200 + 600).contains(&waited), "{waited}");
    app.stop().await;
}
on_both!(metrics_tell_the_database_size_and_the_oldest_waiting_message);

async fn retries_follow_the_schedule(db: Db) {
    let app = TestApp::spawn_with(db, |c| c.deliver = false).await;
    let rx = Receiver::start().await;
    rx.script(&[500, 500]);
    integration(&app, "Flaky", &rx.url, &[]).await;
    scan(&app, "bbbbbbbb-0000-4000-8000-000000000001").await;
    let t0 = scanhook::clock::now();
    let clock = Arc::new(ManualClock(AtomicI64::new(t0)));
    let w = worker(&app, clock.clone(), true);

    assert_eq!(w.run_until_idle().await.unwrap(), 1);
    let msg = deliveries(&app, "").await.pop().unwrap();
    let id = msg["id"].as_str().unwrap().to_string();
    assert_eq!(
        (msg["status"].as_str(), msg["attempts"].as_i64()),
        (Some("pending"), Some(1))
    );
    // 5 s ± 20 %: not due before 4 s, due after 6 s.
    clock.set(t0 + 3 * SEC + 900_000);
    assert_eq!(w.run_until_idle().await.unwrap(), 0);
    clock.set(t0 + 6 * SEC);
    assert_eq!(w.run_until_idle().await.unwrap(), 1);
    // Then 5 min ± 20 %.
    clock.set(t0 + 6 * SEC + 239 * SEC);
    assert_eq!(w.run_until_idle().await.unwrap(), 0);
    clock.set(t0 + 6 * SEC + 361 * SEC);
    assert_eq!(w.run_until_idle().await.unwrap(), 1);

    let shown = app.admin_get(&format!("/api/v1/deliveries/{id}")).await;
    assert_eq!(shown["status"], "delivered");
    let statuses: Vec<i64> = shown["attempt_log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status"].as_i64().unwrap())
        .collect();
    assert_eq!(statuses, [500, 500, 200]);
    let got = rx.received();
    assert_eq!(got.len(), 3);
    assert!(
        got.iter()
            .all(|r| r.header("webhook-id") == Some(id.as_str())),
        "same webhook-id on every attempt"
    );

    // Resend: the same message again, same id.
    app.admin_post(&format!("/api/v1/deliveries/{id}/resend"), &json!({}))
        .await;
    assert_eq!(w.run_until_idle().await.unwrap(), 1);
    assert_eq!(rx.received().len(), 4);
    assert_eq!(rx.received()[3].header("webhook-id"), Some(id.as_str()));
    app.stop().await;
}
on_both!(retries_follow_the_schedule);

async fn a_receiver_down_then_up_gets_the_message(db: Db) {
    let app = TestApp::spawn_with(db, |c| c.deliver = false).await;
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    integration(&app, "Later", &format!("http://{addr}/hook"), &[]).await;
    scan(&app, "abababab-0000-4000-8000-000000000001").await;
    let t0 = scanhook::clock::now();
    let clock = Arc::new(ManualClock(AtomicI64::new(t0)));
    let w = worker(&app, clock.clone(), true);
    assert_eq!(w.run_until_idle().await.unwrap(), 1);
    let pending = deliveries(&app, "status=pending").await;
    let id = pending[0]["id"].as_str().unwrap().to_string();
    let shown = app.admin_get(&format!("/api/v1/deliveries/{id}")).await;
    assert!(
        shown["attempt_log"][0]["error"]
            .as_str()
            .unwrap()
            .contains("connect"),
        "{shown}"
    );
    let rx = Receiver::start_on(&addr.to_string()).await;
    clock.set(t0 + 10 * SEC);
    assert_eq!(w.run_until_idle().await.unwrap(), 1);
    assert_eq!(rx.received().len(), 1);
    assert_eq!(rx.received()[0].header("webhook-id"), Some(id.as_str()));
    app.stop().await;
}
on_both!(a_receiver_down_then_up_gets_the_message);

async fn exhausted_messages_fail_and_can_be_recovered(db: Db) {
    let app = TestApp::spawn_with(db, |c| c.deliver = false).await;
    let rx = Receiver::start().await;
    rx.script(&[503; 8]);
    let i = integration(&app, "Down", &rx.url, &[]).await;
    scan(&app, "cccccccc-0000-4000-8000-000000000001").await;
    let t0 = scanhook::clock::now();
    let clock = Arc::new(ManualClock(AtomicI64::new(t0)));
    let w = worker(&app, clock.clone(), true);
    let mut t = t0;
    for _ in 0..8 {
        assert_eq!(w.run_until_idle().await.unwrap(), 1);
        t += 13 * 3600 * SEC; // past the longest step with jitter
        clock.set(t);
    }
    assert_eq!(
        w.run_until_idle().await.unwrap(),
        0,
        "1 + 7 attempts, then failed"
    );
    assert_eq!(deliveries(&app, "status=failed").await.len(), 1);
    let v = app
        .admin_post(
            &format!("/api/v1/integrations/{}/recover", i["id"].as_str().unwrap()),
            &json!({"since": "0"}),
        )
        .await;
    assert_eq!(v["requeued"], 1);
    assert_eq!(w.run_until_idle().await.unwrap(), 1);
    assert_eq!(deliveries(&app, "status=delivered").await.len(), 1);
    app.stop().await;
}
on_both!(exhausted_messages_fail_and_can_be_recovered);

async fn gone_disables_and_private_addresses_are_refused(db: Db) {
    let app = TestApp::spawn_with(db, |c| c.deliver = false).await;
    let rx = Receiver::start().await;
    rx.script(&[410]);
    let i = integration(&app, "Gone", &rx.url, &[]).await;
    scan(&app, "dddddddd-0000-4000-8000-000000000001").await;
    let clock = Arc::new(ManualClock(AtomicI64::new(scanhook::clock::now())));
    assert_eq!(
        worker(&app, clock.clone(), true)
            .run_until_idle()
            .await
            .unwrap(),
        1
    );
    let shown = app
        .admin_get(&format!(
            "/api/v1/integrations/{}",
            i["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(shown["enabled"], false);
    assert!(
        shown["disabled_reason"].as_str().unwrap().contains("410"),
        "{shown}"
    );
    assert_eq!(deliveries(&app, "status=failed").await.len(), 1);
    // The worker's disabling reached the integrations this process keeps in memory
    // (`store::cache`): the next scan queues nothing for it.
    scan(&app, "dddddddd-0000-4000-8000-000000000003").await;
    assert!(deliveries(&app, "status=pending").await.is_empty());

    // Without the allow-list, loopback is refused before connecting, and the log says why.
    let private = Receiver::start().await;
    integration(&app, "Private", &private.url, &[]).await;
    scan(&app, "dddddddd-0000-4000-8000-000000000002").await;
    clock.set(scanhook::clock::now());
    assert_eq!(
        worker(&app, clock, false).run_until_idle().await.unwrap(),
        1
    );
    assert!(private.received().is_empty());
    let pending = deliveries(&app, "status=pending").await;
    let shown = app
        .admin_get(&format!(
            "/api/v1/deliveries/{}",
            pending[0]["id"].as_str().unwrap()
        ))
        .await;
    let error = shown["attempt_log"][0]["error"].as_str().unwrap();
    assert!(error.contains("not a global address"), "{error}");

    // Bad targets are refused when created.
    for url in [
        "ftp://example.com/x",
        "https://user:pw@example.com/x",
        "not a url",
    ] {
        let (status, v) = app
            .call(
                Method::POST,
                "/api/v1/integrations",
                Some(&app.admin),
                Some(&json!({"name": "x", "url": url})),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{url}: {v}");
        assert_eq!(v["error"]["code"], "invalid_body");
    }
    app.stop().await;
}
on_both!(gone_disables_and_private_addresses_are_refused);

async fn the_test_action_reports_and_is_logged(db: Db) {
    let app = TestApp::spawn(db).await;
    let rx = Receiver::start().await;
    let ok = integration(&app, "Works", &rx.url, &[]).await;
    let v = app
        .admin_post(
            &format!("/api/v1/integrations/{}/test", ok["id"].as_str().unwrap()),
            &json!({}),
        )
        .await;
    assert_eq!(
        (v["delivered"].as_bool(), v["status"].as_i64()),
        (Some(true), Some(200)),
        "{v}"
    );
    assert_eq!(
        rx.received()[0].body,
        r#"[{"text":"Test Notification","username":"Semgrep"}]"#
    );
    assert_eq!(rx.received()[0].header("x-scanhook-event"), Some("test"));
    assert_eq!(
        rx.verify_all_with_standardwebhooks(ok["secret"].as_str().unwrap(), true),
        1
    );

    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let bad = integration(&app, "Closed", &format!("http://{closed}/hook"), &[]).await;
    let v = app
        .admin_post(
            &format!("/api/v1/integrations/{}/test", bad["id"].as_str().unwrap()),
            &json!({}),
        )
        .await;
    assert_eq!(v["delivered"], false);
    assert!(v["error"].as_str().unwrap().contains("connect"), "{v}");
    let tests: Vec<Value> = deliveries(&app, "")
        .await
        .into_iter()
        .filter(|m| m["kind"] == "test")
        .collect();
    assert_eq!(tests.len(), 2);
    app.stop().await;
}
on_both!(the_test_action_reports_and_is_logged);

async fn a_hanging_endpoint_does_not_delay_others(db: Db) {
    let app = TestApp::spawn(db).await;
    let slow = Receiver::start().await;
    let fast = Receiver::start().await;
    slow.hold();
    integration(&app, "Slow", &slow.url, &[]).await;
    integration(&app, "Fast", &fast.url, &[]).await;
    scan(&app, "eeeeeeee-0000-4000-8000-000000000001").await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while deliveries(&app, "status=delivered").await.is_empty() || slow.received().is_empty() {
        assert!(Instant::now() < deadline, "deliveries did not happen");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The fast endpoint's message is delivered while the slow one still holds its request.
    assert_eq!(fast.received().len(), 1);
    let delivering = deliveries(&app, "status=delivering").await;
    assert_eq!(delivering.len(), 1, "{delivering:?}");
    slow.release();
    drained(&app).await;
    assert_eq!(deliveries(&app, "status=delivered").await.len(), 2);
    app.stop().await;
}
on_both!(a_hanging_endpoint_does_not_delay_others);

async fn rotation_signs_with_both_secrets(db: Db) {
    let app = TestApp::spawn(db).await;
    let rx = Receiver::start().await;
    let i = integration(&app, "Rotating", &rx.url, &[]).await;
    let old = i["secret"].as_str().unwrap().to_string();
    let rotated = app
        .admin_post(
            &format!(
                "/api/v1/integrations/{}/rotate-secret",
                i["id"].as_str().unwrap()
            ),
            &json!({}),
        )
        .await;
    let new = rotated["secret"].as_str().unwrap().to_string();
    assert_ne!(old, new);
    scan(&app, "ffffffff-0000-4000-8000-000000000001").await;
    drained(&app).await;
    let got = rx.received();
    assert_eq!(
        got[0]
            .header("webhook-signature")
            .unwrap()
            .split(' ')
            .count(),
        2
    );
    // Receivers holding either secret accept it during the overlap; the platform header is
    // keyed by the current secret.
    assert_eq!(rx.verify_all_with_standardwebhooks(&new, true), 1);
    assert_eq!(rx.verify_all_with_standardwebhooks(&old, false), 1);
    app.stop().await;
}
on_both!(rotation_signs_with_both_secrets);

async fn disabled_integrations_wait_and_expired_leases_are_taken_again(db: Db) {
    let app = TestApp::spawn_with(db, |c| c.deliver = false).await;
    let rx = Receiver::start().await;
    let i = integration(&app, "Paused", &rx.url, &[]).await;
    let path = format!("/api/v1/integrations/{}", i["id"].as_str().unwrap());
    // Queued while enabled, then paused before any worker ran.
    scan(&app, "eeeeeeee-0000-4000-8000-000000000001").await;
    let (status, _) = app
        .call(
            reqwest::Method::PATCH,
            &path,
            Some(&app.admin),
            Some(&json!({"enabled": false})),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::OK);
    let clock = Arc::new(ManualClock(AtomicI64::new(scanhook::clock::now())));
    let w = worker(&app, clock.clone(), true);
    assert_eq!(
        w.run_until_idle().await.unwrap(),
        0,
        "a disabled integration's message waits"
    );
    assert_eq!(deliveries(&app, "status=pending").await.len(), 1);

    // A claim whose process died: its lease runs out and the next claim takes it.
    let store = app.store();
    let now = scanhook::clock::now();
    app.call(
        reqwest::Method::PATCH,
        &path,
        Some(&app.admin),
        Some(&json!({"enabled": true})),
    )
    .await;
    let limits = each_enabled(store, 10).await;
    let first = store
        .claim_messages(now, now + 1_000_000, &limits)
        .await
        .unwrap();
    assert_eq!(first.len(), 1);
    assert!(store
        .claim_messages(now, now + 1_000_000, &limits)
        .await
        .unwrap()
        .is_empty());
    let later = now + 2_000_000;
    let again = store
        .claim_messages(later, later + 1_000_000, &limits)
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].public_id, first[0].public_id);
    clock.set(later + 2_000_000);
    assert_eq!(w.run_until_idle().await.unwrap(), 1);
    assert_eq!(rx.received().len(), 1);
    assert_eq!(deliveries(&app, "status=delivered").await.len(), 1);
    app.stop().await;
}
on_both!(disabled_integrations_wait_and_expired_leases_are_taken_again);

/// Claim limits of `n` messages for each enabled integration.
async fn each_enabled(store: &scanhook::store::Store, n: i64) -> Vec<(i64, i64)> {
    let ids = store.enabled_integration_ids().await.unwrap();
    ids.into_iter().map(|id| (id, n)).collect()
}

/// The statuses of the delivery log's messages, by integration (`None`: deleted).
async fn statuses(app: &TestApp) -> Vec<(Option<String>, String)> {
    let mut all: Vec<(Option<String>, String)> = deliveries(app, "limit=100")
        .await
        .iter()
        .map(|d| {
            (
                d["integration_id"].as_str().map(str::to_string),
                d["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    all.sort();
    all
}

async fn deleting_an_integration_fails_what_it_had_queued(db: Db) {
    use scanhook::domain::outbox::{Next, Outcome};
    use scanhook::store::messages::AttemptRecord;
    let app = TestApp::spawn_with(db, |c| c.deliver = false).await;
    let rx = Receiver::start().await;
    let gone = integration(&app, "Gone", &rx.url, &[]).await;
    let kept = integration(&app, "Kept", &rx.url, &[]).await;
    let kept_id = kept["id"].as_str().unwrap().to_string();
    scan(&app, "abababab-0000-4000-8000-000000000001").await;
    scan(&app, "abababab-0000-4000-8000-000000000002").await;
    let store = app.store();
    // One message of each is being delivered when the integration goes.
    let now = scanhook::clock::now();
    let limits = each_enabled(store, 1).await;
    let claimed = store
        .claim_messages(now, now + 60 * SEC, &limits)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 2);
    let before = statuses(&app).await;
    let per_integration = before.len() / 2;
    assert_eq!(per_integration, 2, "a semgrep_scan per scan: {before:?}");
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("/api/v1/integrations/{}", gone["id"].as_str().unwrap()),
            Some(&app.admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let after = statuses(&app).await;
    let expect_gone = vec![(None, "failed".to_string()); per_integration];
    assert_eq!(after[..per_integration], expect_gone[..], "{after:?}");
    assert!(after[per_integration..]
        .iter()
        .all(|(i, s)| i.as_deref() == Some(kept_id.as_str()) && s != "failed"));

    // The attempts in flight end: the deleted integration's message stays failed, the
    // other one is retried.
    let records: Vec<AttemptRecord> = claimed
        .iter()
        .map(|c| AttemptRecord {
            message_id: c.id,
            integration_id: c.integration.id,
            attempted_at: now,
            lease_until: c.lease_until,
            outcome: Outcome::refused("timed out"),
            next: Next::RetryAt(now + SEC),
        })
        .collect();
    store.record_attempts(&records, i64::MAX).await.unwrap();
    let after = statuses(&app).await;
    assert_eq!(after[..per_integration], expect_gone[..], "{after:?}");
    let kept_pending = vec![(Some(kept_id.clone()), "pending".to_string()); per_integration];
    assert_eq!(after[per_integration..], kept_pending[..]);
    let depth = store.queue_depth().await.unwrap();
    assert_eq!(
        depth[..2],
        [
            (MessageStatus::Pending, per_integration as i64),
            (MessageStatus::Delivering, 0)
        ]
    );

    // A resend of it is refused and says why.
    let gone_message = deliveries(&app, "status=failed").await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, body) = app
        .call(
            Method::POST,
            &format!("/api/v1/deliveries/{gone_message}/resend"),
            Some(&app.admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "integration_deleted");

    // A message queued for it after all (a node with its integrations cached from before
    // the deletion) fails at the worker's next sweep.
    {
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(&app.database_url)
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO messages (public_id, deployment_id, integration_id, scan_id, kind, \
             payload_id, status, attempts, next_attempt_at, created_at) \
             SELECT 'msg_orphan', deployment_id, 999999, scan_id, kind, payload_id, 'pending', \
             0, next_attempt_at, created_at FROM messages WHERE public_id = $1",
        )
        .bind(&gone_message)
        .execute(&mut conn)
        .await
        .unwrap();
        conn.close().await.ok();
    }
    let clock = Arc::new(ManualClock(AtomicI64::new(now + 2 * SEC)));
    let w = worker(&app, clock, true);
    assert_eq!(w.run_until_idle().await.unwrap(), per_integration);
    let depth = store.queue_depth().await.unwrap();
    assert_eq!(
        depth[..2],
        [(MessageStatus::Pending, 0), (MessageStatus::Delivering, 0)],
        "the orphan failed, the kept integration's messages went out"
    );
    assert_eq!(rx.received().len(), per_integration);
    app.stop().await;
}
on_both!(deleting_an_integration_fails_what_it_had_queued);

/// A worker whose lease ran out mid-attempt reports after another claim took the message:
/// its failure does not decide for the attempt under way, its success stands.
async fn a_late_outcome_of_an_expired_claim(db: Db) {
    use scanhook::domain::outbox::{Next, Outcome};
    use scanhook::store::messages::AttemptRecord;
    let app = TestApp::spawn_with(db, |c| c.deliver = false).await;
    let rx = Receiver::start().await;
    integration(&app, "Slow", &rx.url, &[]).await;
    scan(&app, "abababab-0000-4000-8000-000000000003").await;
    scan(&app, "abababab-0000-4000-8000-000000000004").await;
    let store = app.store();
    let limits = each_enabled(store, 2).await;
    let now = scanhook::clock::now();
    let first = store.claim_messages(now, now + SEC, &limits).await.unwrap();
    assert_eq!(first.len(), 2, "a semgrep_scan per scan");
    // The first claim's lease runs out; a second claim takes both messages again.
    let later = now + 2 * SEC;
    let second = store
        .claim_messages(later, later + 60 * SEC, &limits)
        .await
        .unwrap();
    assert_eq!(second.len(), 2);
    let record = |c: &scanhook::domain::outbox::Claimed, next: Next| AttemptRecord {
        message_id: c.id,
        integration_id: c.integration.id,
        attempted_at: later,
        lease_until: c.lease_until,
        outcome: Outcome::refused("timed out"),
        next,
    };
    // The first claim's late outcomes: a failure for one message, a success for the other.
    let (a, b) = (&first[0], &first[1]);
    store
        .record_attempts(
            &[record(a, Next::Failed), record(b, Next::Delivered)],
            i64::MAX,
        )
        .await
        .unwrap();
    let status_of = |all: &[Value], c: &scanhook::domain::outbox::Claimed| {
        all.iter()
            .find(|d| d["id"] == c.public_id.as_str())
            .map(|d| d["status"].as_str().unwrap().to_string())
            .unwrap()
    };
    let all = deliveries(&app, "limit=100").await;
    assert_eq!(
        status_of(&all, a),
        "delivering",
        "the stale failure left its message to the second claim"
    );
    assert_eq!(status_of(&all, b), "delivered", "the stale success stands");
    // The second claim's outcomes: the one still under way is retried; the one already
    // delivered stays delivered.
    let (a2, b2) = (
        second.iter().find(|c| c.id == a.id).unwrap(),
        second.iter().find(|c| c.id == b.id).unwrap(),
    );
    store
        .record_attempts(
            &[
                record(a2, Next::RetryAt(later + SEC)),
                record(b2, Next::Failed),
            ],
            i64::MAX,
        )
        .await
        .unwrap();
    let all = deliveries(&app, "limit=100").await;
    assert_eq!(
        status_of(&all, a),
        "pending",
        "the current claim's retry applies"
    );
    assert_eq!(status_of(&all, b), "delivered");
    app.stop().await;
}
on_both!(a_late_outcome_of_an_expired_claim);

/// Recording an attempt and deleting its integration take the same locks in the same
/// order (the integration, then its messages), so neither waits for the other forever
/// and PostgreSQL never breaks a deadlock by failing one. The interleaving that would
/// deadlock is forced: a third connection holds the message, the recording queues for
/// it first, the deletion next; then the message is let go.
#[cfg_attr(
    not(pg_tests),
    ignore = "SCANHOOK_TEST_PG_URL is not set: PostgreSQL test skipped"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recording_and_deleting_at_once_never_deadlock() {
    use scanhook::domain::outbox::{Next, Outcome};
    use scanhook::store::messages::AttemptRecord;
    use sqlx::{Connection, PgConnection};
    let app = TestApp::spawn_with(Db::Postgres, |c| c.deliver = false).await;
    let rx = Receiver::start().await;
    let i = integration(&app, "Going", &rx.url, &[]).await;
    scan(&app, "abababab-0000-4000-8000-000000000005").await;
    let store = app.store().clone();
    let now = scanhook::clock::now();
    let claimed = store
        .claim_messages(now, now + 60 * SEC, &each_enabled(&store, 10).await)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1, "the scan's semgrep_scan");
    let c = &claimed[0];
    let record = AttemptRecord {
        message_id: c.id,
        integration_id: c.integration.id,
        attempted_at: now,
        lease_until: c.lease_until,
        outcome: Outcome::refused("connection reset"),
        next: Next::Failed,
    };

    let mut holder = PgConnection::connect(&app.database_url).await.unwrap();
    let mut watcher = PgConnection::connect(&app.database_url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut holder).await.unwrap();
    sqlx::query("SELECT id FROM messages WHERE id = $1 FOR UPDATE")
        .bind(c.id)
        .execute(&mut holder)
        .await
        .unwrap();
    // Waits until `n` sessions wait for a lock (a condition, bounded, not a guess).
    async fn waiting(watcher: &mut PgConnection, n: i64) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (waiting,): (i64,) = sqlx::query_as(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
            )
            .fetch_one(&mut *watcher)
            .await
            .unwrap();
            if waiting >= n {
                return;
            }
            assert!(Instant::now() < deadline, "{waiting} of {n} sessions wait");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let recording = tokio::spawn({
        let store = store.clone();
        async move { store.record_attempts(&[record], i64::MAX).await }
    });
    waiting(&mut watcher, 1).await;
    let deleting = tokio::spawn(
        app.http
            .delete(format!(
                "{}/api/v1/integrations/{}",
                app.base,
                i["id"].as_str().unwrap()
            ))
            .bearer_auth(&app.admin)
            .send(),
    );
    waiting(&mut watcher, 2).await;
    sqlx::query("COMMIT").execute(&mut holder).await.unwrap();

    recording
        .await
        .unwrap()
        .expect("the attempt is recorded, not chosen as a deadlock victim");
    let deleted = deleting.await.unwrap().unwrap();
    assert_eq!(
        deleted.status(),
        StatusCode::OK,
        "the integration is deleted, not chosen as a deadlock victim: {}",
        deleted.text().await.unwrap()
    );
    let all = deliveries(&app, "limit=10").await;
    assert_eq!(all.len(), 1);
    assert_eq!(all[0]["status"], "failed");
    assert_eq!(all[0]["attempts"], 1, "the attempt was logged: {all:?}");
    app.stop().await;
}

async fn readyz_reports_the_delivery_loop(db: Db) {
    let app = TestApp::spawn(db).await;
    let (status, v) = app.call(reqwest::Method::GET, "/readyz", None, None).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{v}");
    assert_eq!(v["delivering"], true);
    assert!(v["delivery_loop_age_ms"].as_u64().unwrap() < 40_000, "{v}");
    app.stop().await;
    let api_only = TestApp::spawn_with(db, |c| c.deliver = false).await;
    let (status, v) = api_only
        .call(reqwest::Method::GET, "/readyz", None, None)
        .await;
    assert_eq!(status, reqwest::StatusCode::OK);
    assert_eq!(v["delivering"], false);
    assert!(v.get("delivery_loop_age_ms").is_none());
    api_only.stop().await;
}
on_both!(readyz_reports_the_delivery_loop);

/// A handler may claim the messages it queues (the serving process hands them to its own
/// worker): those are written as being delivered under its lease, in the scan outcome's
/// transaction; an integration it does not claim for stays pending for any worker. A
/// claimant that never sends them (it died) loses them only until the lease runs out.
async fn messages_claimed_as_they_are_queued(db: Db) {
    let app = TestApp::spawn_with(db, |c| c.deliver = false).await;
    let rx = Receiver::start().await;
    let modes = ["monitor", "comment", "block"];
    let a = integration(&app, "Claimed", &rx.url, &modes).await;
    let b = integration(&app, "Left pending", &rx.url, &modes).await;
    let store = app.store();
    let claimed_for = store.enabled_integration_ids().await.unwrap()[0];

    let mut body = fixture("01-post-scans.request.json");
    body["scan_metadata"]["unique_id"] = json!("abababab-0000-4000-8000-000000000001");
    let id = app.ci_post("/api/cli/v2/scans", &body).await["info"]["id"]
        .as_i64()
        .unwrap();
    app.ci_post(
        &format!("/api/agent/scans/{id}/results"),
        &fixture("03-post-results.request.json"),
    )
    .await;
    let dep = store.first_deployment().await.unwrap().unwrap();
    let key: scanhook::ids::ScanKey = id.to_string().parse().unwrap();
    let scan = store.scan(dep.id, &key).await.unwrap().unwrap();
    let now = scanhook::clock::now();
    let lease = now + 60 * SEC;
    let claim = move |integration: i64, _n: usize| (integration == claimed_for).then_some(lease);
    let done = store
        .complete_scan(&scan, 1, &json!({}), &Default::default(), Some(&claim))
        .await
        .unwrap();
    let scanhook::store::complete::Completion::Completed { queued, .. } = done else {
        panic!("the scan completes");
    };
    assert!(queued.claimed.len() >= 2, "a scan object and findings");
    assert!(queued
        .claimed
        .iter()
        .all(|m| m.integration.id == claimed_for && m.lease_until == lease && m.attempts == 0));
    assert_eq!(
        queued.pending,
        queued.claimed.len(),
        "the same messages for B"
    );

    let of = |i: &Value, status: &str| {
        let (i, status) = (i["id"].as_str().unwrap().to_string(), status.to_string());
        let app = &app;
        async move { deliveries(app, &format!("integration={i}&status={status}")).await }
    };
    assert_eq!(of(&a, "delivering").await.len(), queued.claimed.len());
    assert_eq!(of(&b, "pending").await.len(), queued.pending);
    // Both integrations notify the same modes: the same bodies, byte for byte.
    let bodies = |i: &Value| {
        let i = i["id"].as_str().unwrap().to_string();
        let app = &app;
        async move {
            let mut out = Vec::new();
            for m in deliveries(app, &format!("integration={i}")).await {
                let shown = app
                    .admin_get(&format!("/api/v1/deliveries/{}", m["id"].as_str().unwrap()))
                    .await;
                out.push(shown["body"].to_string());
            }
            out.sort();
            out
        }
    };
    assert_eq!(bodies(&a).await, bodies(&b).await);

    // A worker takes B's messages; A's wait for their claimant until the lease runs out.
    let clock = Arc::new(ManualClock(AtomicI64::new(scanhook::clock::now())));
    let w = worker(&app, clock.clone(), true);
    assert_eq!(w.run_until_idle().await.unwrap(), queued.pending);
    assert_eq!(of(&a, "delivering").await.len(), queued.claimed.len());
    clock.set(lease + SEC);
    assert_eq!(w.run_until_idle().await.unwrap(), queued.claimed.len());
    assert_eq!(of(&a, "delivered").await.len(), queued.claimed.len());
    assert_eq!(rx.received().len(), 2 * queued.pending);
    app.stop().await;
}
on_both!(messages_claimed_as_they_are_queued);

/// The serving process delivers what its handlers queue without waiting for a claim: with
/// a lease far longer than the wait, only the handoff can deliver in time.
async fn the_serving_process_hands_its_messages_to_its_worker(db: Db) {
    let app = TestApp::spawn_with(db, |c| {
        c.delivery.timeout = Duration::from_secs(600);
        c.delivery.poll = Duration::from_secs(3600);
    })
    .await;
    let rx = Receiver::start().await;
    integration(&app, "Fast path", &rx.url, &["monitor", "comment", "block"]).await;
    scan(&app, "acacacac-0000-4000-8000-000000000001").await;
    drained(&app).await;
    let all = deliveries(&app, "").await;
    assert!(all.len() >= 2);
    assert!(all
        .iter()
        .all(|m| m["status"] == "delivered" && m["attempts"] == 1));
    assert_eq!(rx.received().len(), all.len());
    app.stop().await;
}
on_both!(the_serving_process_hands_its_messages_to_its_worker);
