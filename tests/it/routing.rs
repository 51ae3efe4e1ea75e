//! Routing per integration: event types, filters, backfill and the preview, driven by the
//! captured `semgrep ci` bodies and by the real `semgrep ci` over a git repository. Every
//! body a receiver gets is checked against the JSON Schema scanhook publishes for it.

use crate::cli::as_admin;
use crate::delivery::drained;
use crate::e2e_semgrep::{semgrep_ci, Repo, APP_PY, UTIL_PY};
use crate::harness::{fixture, fixture_text, Db, TestApp};
use crate::on_both;
use crate::receiver::Receiver;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const EVERY_EVENT: [&str; 5] = [
    "semgrep_scan",
    "semgrep_finding",
    "finding_fixed",
    "finding_reopened",
    "finding_triaged",
];

/// Adds an integration (with `events` and `filters` when given) that every rule mode notifies.
async fn integration(
    app: &TestApp,
    rx: &Receiver,
    events: Option<&[&str]>,
    filters: Value,
) -> Value {
    let mut body = json!({"name": "Feed", "url": rx.url, "filters": filters});
    if let Some(e) = events {
        body["events"] = json!(e);
    }
    app.add_notified_integration(&body).await
}

/// The objects a receiver got for one event type, in arrival order, unwrapped from their key.
fn objects(rx: &Receiver, event: &str) -> Vec<Value> {
    rx.received()
        .iter()
        .filter(|r| r.header("x-scanhook-event") == Some(event))
        .flat_map(|r| {
            r.json()
                .as_array()
                .cloned()
                .expect("finding events are arrays")
        })
        .map(|o| o[event].clone())
        .collect()
}

/// `path:rule@ref` of each object, sorted.
fn names(objects: &[Value]) -> Vec<String> {
    let mut n: Vec<String> = objects
        .iter()
        .map(|o| {
            format!(
                "{}:{}@{}",
                o["path"].as_str().unwrap(),
                o["check_id"].as_str().unwrap(),
                o["ref"].as_str().unwrap()
            )
        })
        .collect();
    n.sort();
    n
}

fn event_types(rx: &Receiver) -> Vec<String> {
    let mut t: Vec<String> = rx
        .received()
        .iter()
        .map(|r| r.header("x-scanhook-event").unwrap_or("none").to_string())
        .collect();
    t.sort();
    t.dedup();
    t
}

/// The schema the API serves for `event`, checked equal to the committed `docs/schemas` copy.
async fn published_schema(app: &TestApp, event: &str) -> Value {
    let resp = app
        .http
        .get(format!("{}/api/v1/schemas/{event}", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "{event}");
    assert_eq!(
        resp.headers()["content-type"],
        "application/schema+json",
        "{event}"
    );
    let served: Value = resp.json().await.unwrap();
    let path = format!("{}/docs/schemas/{event}.json", env!("CARGO_MANIFEST_DIR"));
    let committed: Value = serde_json::from_str(&std::fs::read_to_string(&path).expect(&path))
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    assert_eq!(
        served, committed,
        "{path} is stale: regenerate it with `cargo run -- schemas`"
    );
    served
}

/// Checks every body `rx` got against the schema of its `X-Scanhook-Event`; returns how many.
async fn validate_bodies(app: &TestApp, rx: &Receiver) -> usize {
    let mut checked = 0;
    for r in rx.received() {
        let event = r
            .header("x-scanhook-event")
            .expect("every message names its event");
        let schema = published_schema(app, event).await;
        let validator = jsonschema::validator_for(&schema)
            .unwrap_or_else(|e| panic!("the {event} schema does not compile: {e}"));
        let body = r.json();
        let errors: Vec<String> = validator
            .iter_errors(&body)
            .map(|e| format!("{e} at {}", e.instance_path))
            .collect();
        assert!(
            errors.is_empty(),
            "{event} body against its schema: {errors:?}\n{body}"
        );
        checked += 1;
    }
    checked
}

/// A full scan of main from the captured bodies, without the findings of `drop`; returns
/// its public id.
async fn full_scan(app: &TestApp, n: u64, drop: &[&str]) -> String {
    let mut create = fixture("01-post-scans.request.json");
    create["scan_metadata"]["unique_id"] = json!(format!("00000000-0000-4000-8000-{n:012}"));
    create["project_metadata"]["commit"] = json!(format!("{n:040}"));
    let mut results = fixture("03-post-results.request.json");
    results["findings"]
        .as_array_mut()
        .unwrap()
        .retain(|f| !drop.contains(&f["check_id"].as_str().unwrap()));
    let id = app.drive_scan(&create, &results).await;
    app.public_scan_id(id).await
}

/// The open finding of `rule` (its v1 id).
async fn finding_id(app: &TestApp, rule: &str) -> Value {
    app.findings("status=open")
        .await
        .into_iter()
        .find(|f| f["rule_name"] == rule)
        .unwrap_or_else(|| panic!("no open {rule} finding"))["id"]
        .clone()
}

async fn triage(app: &TestApp, id: &Value, state: &str, reason: Option<&str>, note: Option<&str>) {
    app.admin_post(
        &format!("/api/v1/deployments/{}/triage", app.slug),
        &json!({"issue_ids": [id], "new_triage_state": state, "new_triage_reason": reason, "new_note": note}),
    )
    .await;
}

async fn new_event_bodies_match_their_schemas(db: Db) {
    let app = TestApp::spawn(db).await;
    let every = Receiver::start().await;
    let hook = integration(&app, &every, Some(&EVERY_EVENT), json!({})).await;
    // Subscribed to nothing new: the seed's two, in the same bodies as before.
    let seed = Receiver::start().await;
    let seed_hook = integration(&app, &seed, None, json!({})).await;
    assert_eq!(
        seed_hook["events"],
        json!(["semgrep_scan", "semgrep_finding"])
    );

    full_scan(&app, 1, &[]).await;
    let fixed_in = full_scan(&app, 2, &["python-eval-use"]).await;
    let password = finding_id(&app, "python-hardcoded-password").await;
    triage(
        &app,
        &password,
        "ignored",
        Some("false_positive"),
        Some("test data"),
    )
    .await;
    // The same triage again changes nothing, so it sends nothing.
    triage(
        &app,
        &password,
        "ignored",
        Some("false_positive"),
        Some("test data"),
    )
    .await;
    triage(&app, &password, "reopened", None, Some("it is real")).await;
    let reopened_in = full_scan(&app, 3, &[]).await;
    app.admin_post(
        &format!("/api/v1/integrations/{}/test", hook["id"].as_str().unwrap()),
        &json!({}),
    )
    .await;
    drained(&app).await;

    let fixed = objects(&every, "finding_fixed");
    assert_eq!(names(&fixed), ["src/app.py:python-eval-use@main"]);
    assert_eq!(fixed[0]["fixed_in_scan_id"], fixed_in.as_str());
    let reopened = objects(&every, "finding_reopened");
    assert_eq!(names(&reopened), ["src/app.py:python-eval-use@main"]);
    assert_eq!(reopened[0]["reopened_in_scan_id"], reopened_in.as_str());
    let triaged = objects(&every, "finding_triaged");
    let states: Vec<(&Value, &Value, &Value)> = triaged
        .iter()
        .map(|t| (&t["triage_state"], &t["triage_reason"], &t["comment"]))
        .collect();
    assert_eq!(
        states,
        [
            (
                &json!("ignored"),
                &json!("false_positive"),
                &json!("test data")
            ),
            (&json!("reopened"), &Value::Null, &json!("it is real")),
        ],
        "one event per change; the repeated triage sent none"
    );
    assert_eq!(
        objects(&every, "semgrep_finding").len(),
        6,
        "5 on the first scan and the regression"
    );
    // The default integration got the seed's two only, byte for byte what the other got.
    assert_eq!(event_types(&seed), ["semgrep_finding", "semgrep_scan"]);
    let bodies = |rx: &Receiver| -> Vec<String> {
        rx.received()
            .iter()
            .filter(|r| r.header("x-scanhook-event") != Some("test"))
            .filter(|r| {
                matches!(
                    r.header("x-scanhook-event"),
                    Some("semgrep_scan" | "semgrep_finding")
                )
            })
            .map(|r| r.body.clone())
            .collect()
    };
    let (mut a, mut b) = (bodies(&every), bodies(&seed));
    a.sort();
    b.sort();
    assert_eq!(a, b);

    assert_eq!(
        event_types(&every).len(),
        6,
        "every body type, the test one too"
    );
    assert_eq!(validate_bodies(&app, &every).await, every.received().len());
    assert_eq!(validate_bodies(&app, &seed).await, seed.received().len());
    let (status, v) = app
        .call(Method::GET, "/api/v1/schemas/nosuch", None, None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("finding_triaged"),
        "{v}"
    );

    let body = |event: &str| -> Value {
        every
            .received()
            .iter()
            .find(|r| r.header("x-scanhook-event") == Some(event))
            .unwrap()
            .json()
    };
    insta::assert_json_snapshot!("finding_fixed_body", body("finding_fixed"), {
        "[].finding_fixed.start_date" => "[time]",
        "[].finding_fixed.first_seen_scan_id" => "[public_id]",
        "[].finding_fixed.fixed_in_scan_id" => "[public_id]",
        "[].finding_fixed.fixed_at" => "[time]",
    });
    insta::assert_json_snapshot!("finding_reopened_body", body("finding_reopened"), {
        "[].finding_reopened.start_date" => "[time]",
        "[].finding_reopened.first_seen_scan_id" => "[public_id]",
        "[].finding_reopened.reopened_in_scan_id" => "[public_id]",
        "[].finding_reopened.reopened_at" => "[time]",
    });
    insta::assert_json_snapshot!("finding_triaged_body", body("finding_triaged"), {
        "[].finding_triaged.start_date" => "[time]",
        "[].finding_triaged.first_seen_scan_id" => "[public_id]",
        "[].finding_triaged.triaged_at" => "[time]",
    });
    app.stop().await;
}
on_both!(new_event_bodies_match_their_schemas);

/// Runs `semgrep ci` and waits until what it queued is delivered.
async fn scan(app: &TestApp, repo: &Repo) {
    let (code, out) = semgrep_ci(app, repo, &[]).await;
    assert_eq!(code, 0, "semgrep ci exit code\n{out}");
    assert_eq!(app.latest_scan().await["status"], "completed");
    drained(app).await;
}

async fn routing_with_semgrep_ci(db: Db) {
    let app = TestApp::spawn(db).await;
    app.add_rules(&fixture_text("sample-rules.yml"), None, "monitor")
        .await;
    let all = Receiver::start().await;
    integration(&app, &all, None, json!({})).await;
    let fixed_only = Receiver::start().await;
    let fixed_hook = integration(&app, &fixed_only, Some(&["finding_fixed"]), json!({})).await;
    let narrow = Receiver::start().await;
    integration(
        &app,
        &narrow,
        None,
        json!({"min_severity": "high", "paths": ["app/**"]}),
    )
    .await;
    let lifecycle = Receiver::start().await;
    integration(
        &app,
        &lifecycle,
        Some(&["finding_reopened", "finding_triaged"]),
        json!({}),
    )
    .await;

    // A filter that does not compile is refused, naming where.
    let (status, v) = app
        .call(
            Method::POST,
            "/api/v1/integrations",
            Some(&app.admin),
            Some(&json!({"name": "Bad", "url": all.url, "filters": {"expression": "finding.cwe.contains("}})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"]["code"], "invalid_filter");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("filters.expression:") && message.contains("line 1"),
        "{message}"
    );

    let repo = Repo::new();
    repo.write("app/main.py", APP_PY);
    repo.write("lib/util.py", UTIL_PY);
    repo.commit("Initial commit");
    scan(&app, &repo).await;
    let first = objects(&all, "semgrep_finding");
    assert_eq!(
        names(&first),
        [
            "app/main.py:python-eval-use@main",
            "app/main.py:python-hardcoded-password@main",
            "app/main.py:python-subprocess-shell-true@main",
            "lib/util.py:python-eval-use@main",
        ]
    );
    assert!(fixed_only.received().is_empty(), "nothing fixed yet");

    // Two fixes: the fixed-only integration gets exactly those, and nothing else.
    repo.write("lib/util.py", "def danger(expr):\n    return int(expr)\n");
    repo.write("app/main.py", &APP_PY.replace("shell=True", "shell=False"));
    repo.commit("Fix two");
    scan(&app, &repo).await;
    assert_eq!(event_types(&fixed_only), ["finding_fixed"]);
    assert_eq!(
        names(&objects(&fixed_only, "finding_fixed")),
        [
            "app/main.py:python-subprocess-shell-true@main",
            "lib/util.py:python-eval-use@main",
        ]
    );

    // Both back: regressions, sent as finding_reopened and, as DOMAIN.md says, notified
    // again as semgrep_finding.
    repo.git(&["revert", "--no-edit", "HEAD"]);
    scan(&app, &repo).await;
    let regressions = [
        "app/main.py:python-subprocess-shell-true@main",
        "lib/util.py:python-eval-use@main",
    ];
    assert_eq!(names(&objects(&lifecycle, "finding_reopened")), regressions);
    let all_findings = objects(&all, "semgrep_finding");
    assert_eq!(names(&all_findings[first.len()..]), regressions);

    // A triage through the API.
    let password = finding_id(&app, "python-hardcoded-password").await;
    triage(&app, &password, "ignored", Some("acceptable_risk"), None).await;
    drained(&app).await;
    let triaged = objects(&lifecycle, "finding_triaged");
    assert_eq!(
        names(&triaged),
        ["app/main.py:python-hardcoded-password@main"]
    );
    assert_eq!(triaged[0]["triage_reason"], "acceptable_risk");
    assert_eq!(
        event_types(&lifecycle),
        ["finding_reopened", "finding_triaged"]
    );

    // The filtered integration got exactly the part of the unfiltered one's that matches.
    let want: Vec<Value> = all_findings
        .iter()
        .filter(|f| {
            f["severity"].as_i64().unwrap() >= 2 && f["path"].as_str().unwrap().starts_with("app/")
        })
        .cloned()
        .collect();
    let got = objects(&narrow, "semgrep_finding");
    assert_eq!(names(&got), names(&want));
    assert_eq!(names(&got), ["app/main.py:python-eval-use@main"]);
    assert!(got.len() < all_findings.len());
    assert_eq!(
        narrow
            .received()
            .iter()
            .filter(|r| r.header("x-scanhook-event") == Some("semgrep_scan"))
            .count(),
        3,
        "semgrep_scan is filtered by repository and ref only"
    );

    // The preview counts the recent findings the filters pass, each identity once.
    let p = app
        .admin_post(
            "/api/v1/filters/preview",
            &json!({"filters": {"min_severity": "high", "paths": ["app/**"]}}),
        )
        .await;
    assert_eq!(
        (p["recent"].as_u64(), p["matching"].as_u64()),
        (Some(4), Some(1)),
        "{p}"
    );

    // Backfill: a new integration gets the open findings that match, once.
    let late = Receiver::start().await;
    let late_hook = integration(&app, &late, None, json!({"paths": ["app/**"]})).await;
    let late_id = late_hook["id"].as_str().unwrap();
    let dry = app
        .admin_post(
            &format!("/api/v1/integrations/{late_id}/backfill"),
            &json!({"dry_run": true}),
        )
        .await;
    assert_eq!(
        (dry["dry_run"].as_bool(), dry["findings"].as_u64()),
        (Some(true), Some(2)),
        "{dry}"
    );
    drained(&app).await;
    assert!(late.received().is_empty(), "a dry run queues nothing");
    let open_matching: Vec<Value> = app
        .findings("status=open")
        .await
        .into_iter()
        .filter(|f| {
            f["location"]["file_path"]
                .as_str()
                .unwrap()
                .starts_with("app/")
        })
        .collect();
    assert_eq!(
        open_matching.len(),
        2,
        "the ignored password finding is not open"
    );
    let done = app
        .admin_post(
            &format!("/api/v1/integrations/{late_id}/backfill"),
            &json!({}),
        )
        .await;
    assert_eq!(
        (done["findings"].as_u64(), done["messages"].as_u64()),
        (Some(2), Some(1)),
        "{done}"
    );
    drained(&app).await;
    assert_eq!(
        names(&objects(&late, "semgrep_finding")),
        [
            "app/main.py:python-eval-use@main",
            "app/main.py:python-subprocess-shell-true@main",
        ]
    );
    let again = app
        .admin_post(
            &format!("/api/v1/integrations/{late_id}/backfill"),
            &json!({}),
        )
        .await;
    assert_eq!(
        (again["findings"].as_u64(), again["already_sent"].as_u64()),
        (Some(0), Some(2)),
        "{again}"
    );
    // Backfilled messages are in the delivery log like any other.
    let log = app
        .admin_get(&format!("/api/v1/deliveries?integration={late_id}"))
        .await;
    assert_eq!(log["deliveries"].as_array().unwrap().len(), 1, "{log}");
    assert_eq!(log["deliveries"][0]["kind"], "semgrep_finding");

    // Not subscribed to semgrep_finding: nothing to backfill, and it says why.
    let (status, v) = app
        .call(
            Method::POST,
            &format!(
                "/api/v1/integrations/{}/backfill",
                fixed_hook["id"].as_str().unwrap()
            ),
            Some(&app.admin),
            Some(&json!({})),
        )
        .await;
    assert_eq!(
        (status, &v["error"]["code"]),
        (StatusCode::CONFLICT, &json!("not_subscribed")),
        "{v}"
    );

    for rx in [&all, &fixed_only, &narrow, &lifecycle, &late] {
        assert_eq!(validate_bodies(&app, rx).await, rx.received().len());
    }
    app.stop().await;
}
on_both!(routing_with_semgrep_ci);

async fn routing_from_the_cli(db: Db) {
    let app = TestApp::spawn(db).await;
    let rx = Receiver::start().await;
    let client = |args: &[&str]| as_admin(&app, args);
    let (ok, out, err) = client(&[
        "integrations",
        "add",
        "--name",
        "Main only",
        "--url",
        &rx.url,
        "--events",
        "semgrep_scan,finding_fixed",
        "--min-severity",
        "high",
        "--refs",
        "refs/heads/main,main",
        "--paths",
        "app/**",
        "--filter",
        "\"CWE-89\" in finding.cwe",
        "--json",
    ]);
    assert!(ok, "{err}");
    let added: Value = serde_json::from_str(&out).unwrap();
    let id = added["id"].as_str().unwrap().to_string();
    let (ok, out, _) = client(&["integrations", "list", "--json"]);
    assert!(ok);
    let listed: Value = serde_json::from_str(&out).unwrap();
    let i = &listed["integrations"][0];
    assert_eq!(i["events"], json!(["semgrep_scan", "finding_fixed"]));
    assert_eq!(i["filters"]["min_severity"], "high");
    assert_eq!(i["filters"]["refs"], json!(["refs/heads/main", "main"]));
    assert_eq!(i["filters"]["paths"], json!(["app/**"]));
    assert_eq!(i["filters"]["expression"], "\"CWE-89\" in finding.cwe");

    // Flags change what they name; the other filters stay.
    let (ok, out, err) = client(&[
        "integrations",
        "update",
        &id,
        "--min-severity",
        "medium",
        "--json",
    ]);
    assert!(ok, "{err}");
    let updated: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(updated["filters"]["min_severity"], "medium");
    assert_eq!(updated["filters"]["paths"], json!(["app/**"]));
    let (ok, out, err) = client(&[
        "integrations",
        "update",
        &id,
        "--clear-filters",
        "--events",
        "semgrep_finding",
        "--json",
    ]);
    assert!(ok, "{err}");
    let cleared: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(cleared["events"], json!(["semgrep_finding"]));
    assert_eq!(cleared["filters"], json!({}));

    let (ok, _, err) = client(&[
        "integrations",
        "update",
        &id,
        "--filter",
        "finding.nosuch +",
    ]);
    assert!(!ok);
    assert!(err.contains("filters.expression"), "{err}");
    let (ok, _, err) = client(&[
        "integrations",
        "add",
        "--name",
        "X",
        "--url",
        &rx.url,
        "--events",
        "semgrep_findings",
    ]);
    assert!(!ok);
    assert!(
        err.contains("semgrep_findings") && err.contains("finding_fixed"),
        "{err}"
    );

    // A backfill with nothing open: the count, and nothing queued.
    let (ok, out, err) = client(&["integrations", "backfill", &id, "--dry-run"]);
    assert!(ok, "{err}");
    assert!(out.contains("would queue 0 open findings"), "{out}");
    app.stop().await;
}
on_both!(routing_from_the_cli);
