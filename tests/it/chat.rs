//! Chat kinds (Slack, Microsoft Teams, Discord) and templates end to end: their URL is a
//! credential, sealed and shown masked everywhere; they post their own formats, unsigned
//! (chat) or signed (template); the real `semgrep ci` drives a digest per scan.

use crate::cli::as_admin;
use crate::delivery::drained;
use crate::e2e_semgrep::{semgrep_ci, Repo, APP_PY};
use crate::harness::{fixture, Db, TestApp};
use crate::on_both;
use crate::receiver::Receiver;
use crate::ui::Browser;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};

/// What stands for the credential in every chat URL of these tests.
const TOKEN: &str = "s3cr3t-chat-token-T0K3N";

fn chat_url(rx: &Receiver) -> String {
    format!("{}?token={TOKEN}", rx.url)
}

async fn add(app: &TestApp, body: Value) -> Value {
    app.add_notified_integration(&body).await
}

/// Drives the captured bodies of a full scan; returns the scan's public id.
async fn captured_scan(app: &TestApp) -> String {
    let id = crate::delivery::scan(app, "15cb1624-e1d0-4085-a3b7-433fba7a9bf9").await;
    app.public_scan_id(id).await
}

async fn chat_urls_are_sealed_and_shown_masked(db: Db) {
    let app = TestApp::spawn(db).await;
    let rx = Receiver::start().await;
    let mut ids = Vec::new();
    for kind in ["slack", "teams", "discord"] {
        let hook = add(
            &app,
            json!({"kind": kind, "name": format!("{kind} feed"), "url": chat_url(&rx)}),
        )
        .await;
        assert_eq!(hook["kind"], kind);
        let shown = hook["url"].as_str().unwrap();
        assert!(!shown.contains(TOKEN), "{shown}");
        assert!(
            shown.starts_with("http://127.0.0.1:") && shown.contains('…'),
            "{shown}"
        );
        ids.push(hook["id"].as_str().unwrap().to_string());
    }
    let webhook = add(&app, json!({"name": "plain", "url": rx.url})).await;
    assert_eq!(webhook["kind"], "webhook");
    assert_eq!(
        webhook["url"],
        rx.url.as_str(),
        "a webhook's URL is no secret"
    );

    // The Test action posts each kind's own test message to the real URL.
    for id in &ids {
        let t = app
            .admin_post(&format!("/api/v1/integrations/{id}/test"), &json!({}))
            .await;
        assert_eq!(t["delivered"], true, "{t}");
    }
    captured_scan(&app).await;
    drained(&app).await;
    let got = rx.received();
    let chat: Vec<_> = got
        .iter()
        .filter(|r| r.header("webhook-signature").is_none())
        .collect();
    assert_eq!(chat.len(), 6, "3 tests and 3 digests, unsigned");
    for r in &chat {
        assert_eq!(r.header("content-type"), Some("application/json"));
        let body = r.json();
        assert!(body.is_object(), "{body}");
    }
    assert_eq!(
        got.iter()
            .filter(|r| r.header("webhook-signature").is_some())
            .count(),
        2,
        "the webhook's scan and findings, signed"
    );

    // Nowhere shown in full: API, CLI, delivery log, pages.
    let listing = app.admin_get("/api/v1/integrations").await.to_string();
    assert!(!listing.contains(TOKEN));
    let deliveries = app.admin_get("/api/v1/deliveries?limit=1000").await;
    for d in deliveries["deliveries"].as_array().unwrap() {
        let detail = app
            .admin_get(&format!("/api/v1/deliveries/{}", d["id"].as_str().unwrap()))
            .await;
        assert!(!detail.to_string().contains(TOKEN), "{detail}");
    }
    let (ok, out, err) = as_admin(&app, &["integrations", "list"]);
    assert!(ok, "{err}");
    assert!(out.contains("slack") && !out.contains(TOKEN), "{out}");
    let b = Browser::sign_in(&app).await;
    let mut pages = vec![
        "/settings/integrations".to_string(),
        "/policies/modes".to_string(),
    ];
    for id in &ids {
        pages.push(format!("/settings/integrations/{id}"));
        pages.push(format!("/settings/integrations/{id}/deliveries"));
        pages.push(format!("/settings/integrations/{id}/delete"));
    }
    for p in &pages {
        let html = b.page(p).await;
        assert!(!html.contains(TOKEN), "{p} shows the URL");
    }

    // Saving the edit form with the masked URL as shown keeps the real one; a new URL
    // replaces it.
    let id = &ids[0];
    let edit = b.page(&format!("/settings/integrations/{id}")).await;
    let shown = crate::ui::input_value(&edit, "url").unwrap();
    let saved = b
        .post(
            &format!("/settings/integrations/{id}"),
            &[
                ("action", "save"),
                ("name", "slack feed"),
                ("url", shown.as_str()),
                ("events", "semgrep_scan"),
                ("events", "semgrep_finding"),
            ],
        )
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.html);
    let before = rx.received().len();
    let t = app
        .admin_post(&format!("/api/v1/integrations/{id}/test"), &json!({}))
        .await;
    assert_eq!(t["delivered"], true, "still the real URL: {t}");
    assert_eq!(rx.received().len(), before + 1);
    let other = Receiver::start().await;
    let (status, v) = app
        .call(
            Method::PATCH,
            &format!("/api/v1/integrations/{id}"),
            Some(&app.admin),
            Some(&json!({"url": chat_url(&other)})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert!(!v["url"].as_str().unwrap().contains(TOKEN));
    app.admin_post(&format!("/api/v1/integrations/{id}/test"), &json!({}))
        .await;
    assert_eq!(other.received().len(), 1, "the new URL took over");
    app.stop().await;
}
on_both!(chat_urls_are_sealed_and_shown_masked);

async fn templates_render_signed_bodies_and_refuse_bad_ones(db: Db) {
    let app = TestApp::spawn(db).await;
    let rx = Receiver::start().await;
    let (status, v) = app
        .call(
            Method::POST,
            "/api/v1/integrations",
            Some(&app.admin),
            Some(&json!({"kind": "template", "name": "T", "url": rx.url, "template": "line one\n{% for x in %}\n"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"]["code"], "invalid_template");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("line 2"),
        "{v}"
    );
    let (status, v) = app
        .call(
            Method::POST,
            "/api/v1/integrations",
            Some(&app.admin),
            Some(&json!({"kind": "slack", "name": "S", "url": rx.url, "template": "x"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");

    // The same through the UI's form: the error names the line, and nothing is saved.
    let b = Browser::sign_in(&app).await;
    let form = b.page("/settings/integrations/add/template").await;
    let secret = crate::ui::input_value(&form, "secret").unwrap();
    assert!(form.contains("Add Integration: Custom template"));
    let a = b
        .post(
            "/settings/integrations/add/template",
            &[
                ("action", "save"),
                ("name", "T"),
                ("url", rx.url.as_str()),
                ("secret", secret.as_str()),
                ("events", "semgrep_scan"),
                ("template", "ok\n{{ body.x | nosuchfilter }}"),
                ("content_type", "text/plain"),
            ],
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(a.html.contains("Template: line 2"), "{}", a.html);
    assert!(app.admin_get("/api/v1/integrations").await["integrations"]
        .as_array()
        .unwrap()
        .is_empty());

    let template = "{\"kind\": {{ event | tojson }}, \"items\": {% if body is sequence %}{{ body | length }}{% else %}1{% endif %}}";
    let hook = add(
        &app,
        json!({"kind": "template", "name": "Tickets", "url": rx.url, "template": template, "content_type": "application/json"}),
    )
    .await;
    assert_eq!(hook["template"], template);
    captured_scan(&app).await;
    drained(&app).await;
    let mut bodies: Vec<Value> = rx.received().iter().map(|r| r.json()).collect();
    bodies.sort_by_key(|b| b["kind"].as_str().unwrap_or_default().to_string());
    assert_eq!(
        bodies,
        [
            json!({"kind": "semgrep_finding", "items": 5}),
            json!({"kind": "semgrep_scan", "items": 1}),
        ]
    );
    assert_eq!(
        rx.verify_all_with_standardwebhooks(hook["secret"].as_str().unwrap(), true),
        2,
        "templates are signed like webhooks"
    );
    app.stop().await;
}
on_both!(templates_render_signed_bodies_and_refuse_bad_ones);

/// `scanhook serve` as a process: whatever its chat integrations do, no log line carries
/// their URL.
#[tokio::test]
async fn no_log_line_carries_a_chat_url() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let log = dir.path().join("serve.log");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_scanhook"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(dir.path())
        .args(["--deliver-allow-cidrs", "127.0.0.0/8"])
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(60);
    let admin = loop {
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .expect("serve prints its first admin token")
            .unwrap()
            .expect("serve is running");
        if let Some(t) = line.split_whitespace().find(|w| w.starts_with("shk_")) {
            break t.to_string();
        }
        assert!(Instant::now() < deadline);
    };
    let http = reqwest::Client::new();
    let call = |method: Method, path: &str, body: Value| {
        http.request(method, format!("{base}{path}"))
            .bearer_auth(&admin)
            .json(&body)
            .send()
    };
    // One that answers, one that refuses the connection, one that answers 500.
    let rx = Receiver::start().await;
    let failing = Receiver::start().await;
    failing.script(&[500, 500, 500]);
    let closed = format!(
        "http://127.0.0.1:{}/hook?token={TOKEN}",
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    );
    let mut ids = Vec::new();
    for (kind, url) in [
        ("slack", chat_url(&rx)),
        ("teams", closed),
        ("discord", chat_url(&failing)),
    ] {
        let r = call(
            Method::POST,
            "/api/v1/integrations",
            json!({"kind": kind, "name": kind, "url": url}),
        )
        .await
        .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        let v: Value = r.json().await.unwrap();
        let id = v["id"].as_str().unwrap().to_string();
        let r = call(
            Method::POST,
            &format!("/api/v1/integrations/{id}/test"),
            json!({}),
        )
        .await
        .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let r = call(
            Method::PATCH,
            &format!("/api/v1/integrations/{id}"),
            json!({"url": url, "enabled": true}),
        )
        .await
        .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        ids.push(id);
    }
    assert_eq!(rx.received().len(), 1, "the reachable one got its test");
    assert!(!failing.received().is_empty(), "the failing one was tried");
    // A scan: the worker's attempts, the failing ones logged with their error, go to all
    // three (the unreachable one's error is what would carry a URL).
    let r = call(Method::POST, "/api/v1/tokens", json!({"scope": "ci"}))
        .await
        .unwrap();
    let ci = r.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let ci_post = |path: String, body: Value| {
        http.post(format!("{base}{path}"))
            .bearer_auth(&ci)
            .json(&body)
            .send()
    };
    let v: Value = ci_post(
        "/api/cli/v2/scans".into(),
        fixture("01-post-scans.request.json"),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let scan = v["info"]["id"].as_i64().unwrap();
    for (step, body) in [
        ("results", "03-post-results.request.json"),
        ("complete", "04-post-complete.request.json"),
    ] {
        let r = ci_post(format!("/api/agent/scans/{scan}/{step}"), fixture(body))
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let unreachable = loop {
        let r = call(
            Method::GET,
            &format!("/api/v1/deliveries?integration={}", ids[1]),
            json!({}),
        )
        .await
        .unwrap();
        let log: Value = r.json().await.unwrap();
        let tried = log["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["kind"] == "semgrep_scan" && m["attempts"].as_i64() >= Some(1))
            .cloned();
        if let Some(m) = tried {
            break m;
        }
        assert!(
            Instant::now() < deadline,
            "the unreachable one was never tried"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let detail: Value = call(
        Method::GET,
        &format!("/api/v1/deliveries/{}", unreachable["id"].as_str().unwrap()),
        json!({}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let error = detail["attempt_log"][0]["error"].as_str().unwrap();
    assert!(error.contains("connect"), "{error}");
    assert!(
        !error.contains(TOKEN),
        "the attempt's error carries the URL: {error}"
    );
    // SIGTERM, so every line is flushed.
    let pid = child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = child.wait().await.unwrap();
    assert!(status.success());
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.lines().count() > 5 && ids.iter().all(|id| text.contains(id.as_str())),
        "the log says what happened to each integration:\n{text}"
    );
    assert!(
        !text.contains(TOKEN),
        "a log line carries a chat URL:\n{text}"
    );
}

/// Waits until `rx` has received `n` requests (a condition, bounded).
async fn received(rx: &Receiver, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while rx.received().len() < n {
        assert!(
            Instant::now() < deadline,
            "got {} of {n} requests",
            rx.received().len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn parse_time(s: &str) -> time::OffsetDateTime {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).unwrap()
}

async fn a_429_with_retry_after_holds_only_that_integration(db: Db) {
    // One request at a time per integration, so the 429 answers the first digest while
    // the other two wait in its lane.
    let app = TestApp::spawn_with(db, |c| c.delivery.per_integration = 1).await;
    let limited = Receiver::start().await;
    limited.script(&[429]);
    limited.retry_after("3600");
    limited.hold();
    let free = Receiver::start().await;
    let slack = add(
        &app,
        json!({"kind": "slack", "name": "Slack", "url": chat_url(&limited)}),
    )
    .await;
    add(&app, json!({"name": "Webhook", "url": free.url})).await;
    // Three scans: three digests for Slack, a scan object and a findings array each (the
    // first scan's) for the webhook.
    let mut scans = Vec::new();
    for n in 1..=3u64 {
        let id = crate::delivery::scan(&app, &format!("00000000-0000-4000-8000-{n:012}")).await;
        scans.push(id);
    }
    // The webhook gets everything while Slack's first request is still unanswered.
    received(&free, 4).await;
    received(&limited, 1).await;
    limited.release();
    // The answer is booked: the 429'd message is due again an hour on.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let log = app
            .admin_get(&format!(
                "/api/v1/deliveries?integration={}&status=pending",
                slack["id"].as_str().unwrap()
            ))
            .await;
        let all = log["deliveries"].as_array().unwrap();
        if all.len() == 3 && all.iter().any(|m| m["attempts"] == 1) {
            break;
        }
        assert!(Instant::now() < deadline, "not held: {log}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let log = app
        .admin_get(&format!(
            "/api/v1/deliveries?integration={}",
            slack["id"].as_str().unwrap()
        ))
        .await;
    let messages = log["deliveries"].as_array().unwrap();
    assert_eq!(messages.len(), 3, "{log}");
    let first = messages
        .iter()
        .find(|m| m["attempts"] == 1)
        .expect("the one that met the 429");
    let detail = app
        .admin_get(&format!(
            "/api/v1/deliveries/{}",
            first["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(detail["attempt_log"][0]["status"], 429);
    let limited_at = parse_time(detail["attempt_log"][0]["at"].as_str().unwrap());
    for m in messages {
        assert_eq!(m["status"], "pending", "{m}");
        let due = parse_time(m["next_attempt_at"].as_str().unwrap());
        assert!(
            due >= limited_at + time::Duration::seconds(3600),
            "every Slack message waits out the Retry-After: {m}"
        );
    }
    assert_eq!(
        limited.received().len(),
        1,
        "nothing more was sent to Slack"
    );
    assert_eq!(free.received().len(), 4, "{:?}", scans);
    app.stop().await;
}
on_both!(a_429_with_retry_after_holds_only_that_integration);

async fn a_slack_integration_gets_one_digest_per_semgrep_ci_scan(db: Db) {
    let app = TestApp::spawn(db).await;
    app.add_rules(
        &crate::harness::fixture_text("sample-rules.yml"),
        None,
        "monitor",
    )
    .await;
    let rx = Receiver::start().await;
    add(
        &app,
        json!({"kind": "slack", "name": "#appsec", "url": chat_url(&rx),
               "events": ["semgrep_scan", "semgrep_finding", "finding_fixed", "finding_reopened", "finding_triaged"]}),
    )
    .await;
    let repo = Repo::new();
    repo.write("src/app.py", APP_PY);
    repo.commit("Add the app");
    let mut digests = Vec::new();
    for (n, want) in [
        (1, "3 new · 0 fixed · 0 reopened"),
        (2, "0 new · 1 fixed · 0 reopened"),
    ] {
        if n == 2 {
            repo.write("src/app.py", &APP_PY.replace("shell=True", "shell=False"));
            repo.commit("No shell");
        }
        let (code, out) = semgrep_ci(&app, &repo, &[]).await;
        assert_eq!(code, 0, "{out}");
        drained(&app).await;
        let scan = app.latest_scan().await;
        let got = rx.received();
        assert_eq!(got.len(), n, "one digest per scan");
        let digest = got.last().unwrap();
        assert!(digest.header("webhook-signature").is_none());
        let body = digest.json();
        let text = body.to_string();
        assert!(text.contains(want), "{want} in {text}");
        let blocks = body["blocks"].as_array().unwrap();
        assert!(!blocks.is_empty() && blocks.len() <= 50);
        let scan_link = format!("/scans/{}", scan["public_id"].as_str().unwrap());
        assert!(text.contains(&scan_link), "links to its scan: {text}");
        digests.push(body);
    }
    let first = digests[0].to_string();
    for rule in [
        "python-eval-use",
        "python-subprocess-shell-true",
        "python-hardcoded-password",
    ] {
        assert!(first.contains(&format!("/rules/{rule}")), "{rule}: {first}");
    }
    assert!(digests[1]
        .to_string()
        .contains("python-subprocess-shell-true"));

    // A triage: its own short note, not a digest.
    let password = app
        .findings("status=open")
        .await
        .into_iter()
        .find(|f| f["rule_name"] == "python-hardcoded-password")
        .unwrap();
    app.admin_post(
        &format!("/api/v1/deployments/{}/triage", app.slug),
        &json!({"issue_ids": [password["id"]], "new_triage_state": "ignored",
                "new_triage_reason": "false_positive", "new_note": "test fixture"}),
    )
    .await;
    drained(&app).await;
    let got = rx.received();
    assert_eq!(got.len(), 3);
    assert_eq!(got[2].header("x-scanhook-event"), Some("finding_triaged"));
    let note = got[2].json().to_string();
    assert!(
        note.contains("python-hardcoded-password") && note.contains("test fixture"),
        "{note}"
    );
    assert!(!note.contains(" new · "), "a note, not a digest: {note}");
    app.stop().await;
}
on_both!(a_slack_integration_gets_one_digest_per_semgrep_ci_scan);

async fn the_cli_adds_every_kind(db: Db) {
    let app = TestApp::spawn(db).await;
    let rx = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ticket.j2");
    std::fs::write(&file, "{{ event }} for {{ scanhook_url }}").unwrap();
    let client = |args: &[&str]| as_admin(&app, args);
    let url = chat_url(&rx);
    let (ok, out, err) = client(&[
        "integrations",
        "add",
        "--kind",
        "discord",
        "--name",
        "D",
        "--url",
        &url,
        "--json",
    ]);
    assert!(ok, "{err}");
    let d: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(d["kind"], "discord");
    assert!(!out.contains(TOKEN), "{out}");
    let (ok, out, err) = client(&[
        "integrations",
        "add",
        "--kind",
        "template",
        "--name",
        "T",
        "--url",
        &rx.url,
        "--template",
        file.to_str().unwrap(),
        "--content-type",
        "text/plain",
        "--json",
    ]);
    assert!(ok, "{err}");
    let t: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (t["kind"].as_str(), t["content_type"].as_str()),
        (Some("template"), Some("text/plain"))
    );
    let (ok, out, err) = client(&["integrations", "test", t["id"].as_str().unwrap()]);
    assert!(ok && out.starts_with("HTTP 200"), "{out} {err}");
    let last = rx.received().pop().unwrap();
    assert_eq!(last.header("content-type"), Some("text/plain"));
    assert!(last.body.starts_with("test for "), "{}", last.body);
    let (ok, _, err) = client(&[
        "integrations",
        "add",
        "--kind",
        "irc",
        "--name",
        "X",
        "--url",
        &rx.url,
    ]);
    assert!(!ok && err.contains("slack"), "{err}");
    app.stop().await;
}
on_both!(the_cli_adds_every_kind);
