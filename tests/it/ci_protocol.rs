//! The semgrep-ci protocol with the captured request bodies: idempotence of every retried
//! call, terminal states, rule metadata, triage, and deployment isolation.

use crate::harness::{fixture, fixture_text, Db, TestApp};
use crate::on_both;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// Creates a scan from the captured body with a fresh unique id; returns its numeric id.
async fn create(app: &TestApp, unique_id: &str, branch: &str, full: bool) -> i64 {
    let mut body = fixture("01-post-scans.request.json");
    body["scan_metadata"]["unique_id"] = json!(unique_id);
    body["project_metadata"]["branch"] = json!(branch);
    body["project_metadata"]["is_full_scan"] = json!(full);
    let v = app.ci_post("/api/cli/v2/scans", &body).await;
    v["info"]["id"].as_i64().unwrap()
}

async fn run_scan(app: &TestApp, unique_id: &str, results: &Value) -> i64 {
    let id = create(app, unique_id, "main", true).await;
    app.ci_post(&format!("/api/agent/scans/{id}/results"), results)
        .await;
    app.ci_post(
        &format!("/api/agent/scans/{id}/complete"),
        &fixture("04-post-complete.request.json"),
    )
    .await;
    id
}

async fn scan_creation_is_idempotent(db: Db) {
    let app = TestApp::spawn(db).await;
    let body = fixture("01-post-scans.request.json");
    let a = app.ci_post("/api/cli/v2/scans", &body).await;
    let b = app.ci_post("/api/cli/v2/scans", &body).await;
    assert_eq!(a["info"]["id"], b["info"]["id"]);
    assert_eq!(a["info"]["enabled_products"], json!(["sast"]));
    assert_eq!(a["info"]["deployment_name"], "acme");
    let scans = app
        .admin_post(
            &format!("/api/v1/deployments/{}/scans/search", app.slug),
            &json!({}),
        )
        .await;
    assert_eq!(scans["scans"].as_array().unwrap().len(), 1);
    app.stop().await;
}
on_both!(scan_creation_is_idempotent);

async fn config_carries_modes_on_every_rule(db: Db) {
    let app = TestApp::spawn(db).await;
    let rules = fixture_text("sample-rules.yml");
    app.add_rules(&rules, None, "monitor").await;
    app.add_rules(
        "rules:\n- id: python-eval-use\n  languages: [python]\n  severity: ERROR\n  message: eval\n  pattern: eval($X)\n",
        Some("Strict"),
        "block",
    )
    .await;
    app.set_mode("js-innerhtml", "comment").await;
    let uid = "7f1a1b7e-0000-4000-8000-000000000001";
    create(&app, uid, "main", true).await;
    let cfg = app.scan_config(uid).await;
    assert_eq!(cfg["status"], "success");
    assert!(
        cfg["engine_params"].is_object(),
        "engine_params must be present: {cfg}"
    );
    let served = cfg["config"]["rules"]["rules"].as_array().unwrap();
    assert_eq!(served.len(), 5);
    for r in served {
        let meta = &r["metadata"];
        assert!(meta["dev.semgrep.actions"].is_array(), "{r}");
        assert!(meta["semgrep.policy"]["slug"].is_string(), "{r}");
        assert_eq!(
            meta["semgrep.url"],
            format!("http://scanhook.test/rules/{}", r["id"].as_str().unwrap())
        );
    }
    let by_id = |id: &str| served.iter().find(|r| r["id"] == id).unwrap().clone();
    // In two policies: the strongest mode wins, and its policy is named.
    let eval = by_id("python-eval-use");
    assert_eq!(eval["metadata"]["dev.semgrep.actions"], json!(["block"]));
    assert_eq!(eval["metadata"]["semgrep.policy"]["slug"], "strict");
    assert_eq!(
        by_id("js-innerhtml")["metadata"]["dev.semgrep.actions"],
        json!(["comment"])
    );
    assert_eq!(
        by_id("js-innerhtml")["metadata"]["semgrep.policy"]["slug"],
        "rule-board-pr-comments"
    );
    let console = by_id("js-console-log");
    assert_eq!(console["metadata"]["dev.semgrep.actions"], json!([]));
    assert_eq!(
        console["metadata"]["semgrep.policy"]["slug"],
        "rule-board-audit"
    );
    // Served back as written apart from the platform keys.
    let written: Value = serde_yaml_ng::from_str(&rules).unwrap();
    let mut pw = by_id("python-hardcoded-password");
    for k in ["dev.semgrep.actions", "semgrep.policy", "semgrep.url"] {
        pw["metadata"].as_object_mut().unwrap().remove(k);
    }
    assert_eq!(pw, written["rules"][2]);
    app.stop().await;
}
on_both!(config_carries_modes_on_every_rule);

/// The served rules are cached between rule changes: a change is served by the next scan.
async fn config_follows_rule_and_mode_changes_at_once(db: Db) {
    let app = TestApp::spawn(db).await;
    app.add_rules(&fixture_text("sample-rules.yml"), None, "monitor")
        .await;
    let actions = |cfg: &Value, id: &str| {
        cfg["config"]["rules"]["rules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .map(|r| r["metadata"]["dev.semgrep.actions"].clone())
    };
    let config = |uid: &'static str| {
        let app = &app;
        async move {
            create(app, uid, "main", true).await;
            app.scan_config(uid).await
        }
    };
    let first = config("7f1a1b7e-0000-4000-8000-0000000000c1").await;
    assert_eq!(actions(&first, "js-innerhtml"), Some(json!([])));
    app.set_mode("js-innerhtml", "block").await;
    let second = config("7f1a1b7e-0000-4000-8000-0000000000c2").await;
    assert_eq!(actions(&second, "js-innerhtml"), Some(json!(["block"])));
    app.add_rules(
        "rules:\n- id: python-eval-use\n  languages: [python]\n  severity: ERROR\n  message: eval\n  pattern: eval($X)\n",
        None,
        "comment",
    )
    .await;
    let third = config("7f1a1b7e-0000-4000-8000-0000000000c3").await;
    assert_eq!(actions(&third, "python-eval-use"), Some(json!(["comment"])));
    app.stop().await;
}
on_both!(config_follows_rule_and_mode_changes_at_once);

async fn retried_results_and_complete_change_nothing_twice(db: Db) {
    let app = TestApp::spawn(db).await;
    let id = create(&app, "11111111-1111-4111-8111-111111111111", "main", true).await;
    let results = fixture("03-post-results.request.json");
    for _ in 0..3 {
        let v = app
            .ci_post(&format!("/api/agent/scans/{id}/results"), &results)
            .await;
        assert_eq!(v["errors"], json!([]));
    }
    let complete = fixture("04-post-complete.request.json");
    for _ in 0..3 {
        let v = app
            .ci_post(&format!("/api/agent/scans/{id}/complete"), &complete)
            .await;
        assert_eq!(v["success"], true);
    }
    let scan = app
        .admin_get(&format!("/api/v1/deployments/{}/scan/{id}", app.slug))
        .await;
    assert_eq!(
        scan["counts"],
        json!({"findings": 5, "opened": 5, "fixed": 0, "notified": 5, "blocking": 0})
    );
    assert_eq!(app.findings("").await.len(), 5);
    assert_eq!(
        app.webhooks(id).await["semgrep_finding"]
            .as_array()
            .unwrap()
            .len(),
        5
    );
    // Results after the end are refused, not applied.
    let (status, v) = app
        .call(
            Method::POST,
            &format!("/api/agent/scans/{id}/results"),
            Some(&app.ci),
            Some(&results),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(v["error"]["code"], "scan_ended");
    app.stop().await;
}
on_both!(retried_results_and_complete_change_nothing_twice);

/// A scan whose upload an older version kept (the JSON as sent, in an LZ4 frame) and that
/// completes after the upgrade is applied as one whose upload this version kept: the same
/// findings, the same webhook objects.
async fn an_upload_kept_before_the_upgrade_completes_after_it(db: Db) {
    let app = TestApp::spawn(db).await;
    let results = fixture("03-post-results.request.json");
    let mut ids = vec![];
    for repository in ["acme/kept-before", "acme/kept-now"] {
        let mut body = fixture("01-post-scans.request.json");
        body["scan_metadata"]["unique_id"] = json!(scanhook::ids::public_scan_id());
        body["project_metadata"]["repository"] = json!(repository);
        let v = app.ci_post("/api/cli/v2/scans", &body).await;
        let id = v["info"]["id"].as_i64().unwrap();
        app.ci_post(&format!("/api/agent/scans/{id}/results"), &results)
            .await;
        ids.push(id);
    }
    // The first scan's upload as an older version kept it.
    let mut frame = lz4_flex::frame::FrameEncoder::new(Vec::new());
    std::io::Write::write_all(&mut frame, &serde_json::to_vec(&results).unwrap()).unwrap();
    let pool = sqlx::AnyPool::connect(&app.database_url).await.unwrap();
    let done = sqlx::query("UPDATE scans SET results = $1 WHERE id = $2")
        .bind(frame.finish().unwrap())
        .bind(ids[0])
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(done.rows_affected(), 1);
    pool.close().await;
    let mut seen = vec![];
    for id in &ids {
        app.ci_post(
            &format!("/api/agent/scans/{id}/complete"),
            &fixture("04-post-complete.request.json"),
        )
        .await;
        // What the scan opened and sent, without what differs between two projects.
        let mut opened = app.scan_changes(*id, "opened").await;
        for f in &mut opened {
            for key in [
                "id",
                "first_seen_scan_id",
                "created_at",
                "relevant_since",
                "state_updated_at",
                "repository",
            ] {
                f.as_object_mut().unwrap().remove(key);
            }
        }
        opened.sort_by_key(|f| f["syntactic_id"].to_string());
        let mut sent = app.webhooks(*id).await["semgrep_finding"].clone();
        for f in sent.as_array_mut().unwrap() {
            let f = f["semgrep_finding"].as_object_mut().unwrap();
            for key in ["start_date", "first_seen_scan_id"] {
                assert!(f.remove(key).is_some(), "{key}");
            }
        }
        seen.push((opened, sent));
    }
    assert_eq!(seen[0].0.len(), 5, "{:?}", seen[0].0);
    assert_eq!(seen[0].1.as_array().unwrap().len(), 5);
    assert!(seen[0] == seen[1], "the two scans differ: {seen:#?}");
    app.stop().await;
}
on_both!(an_upload_kept_before_the_upgrade_completes_after_it);

/// A rule switched to Block while the scan ran: `/complete` names its findings, which the
/// client did not block, for the client to fail the build on.
async fn a_rule_switched_to_block_during_the_scan_blocks_it(db: Db) {
    let app = TestApp::spawn(db).await;
    app.add_rules(&fixture_text("sample-rules.yml"), None, "monitor")
        .await;
    let uid = "33333333-3333-4333-8333-333333333333";
    let id = create(&app, uid, "main", true).await;
    app.scan_config(uid).await;
    let results = fixture("03-post-results.request.json");
    app.ci_post(&format!("/api/agent/scans/{id}/results"), &results)
        .await;
    app.set_mode("python-eval-use", "block").await;
    let v = app
        .ci_post(
            &format!("/api/agent/scans/{id}/complete"),
            &fixture("04-post-complete.request.json"),
        )
        .await;
    let eval = results["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["check_id"] == "python-eval-use")
        .unwrap();
    assert_eq!(v["app_block_override"], true, "{v}");
    assert_eq!(
        v["app_blocking_match_based_ids"],
        json!([eval["match_based_id"]]),
        "{v}"
    );
    // A retry gets the same answer.
    let again = app
        .ci_post(
            &format!("/api/agent/scans/{id}/complete"),
            &fixture("04-post-complete.request.json"),
        )
        .await;
    assert_eq!(again, v);
    app.stop().await;
}
on_both!(a_rule_switched_to_block_during_the_scan_blocks_it);

async fn error_is_terminal_and_abandoned_scans_end(db: Db) {
    let app = TestApp::spawn(db).await;
    let id = create(&app, "22222222-2222-4222-8222-222222222222", "main", true).await;
    app.ci_post(
        &format!("/api/agent/scans/{id}/error"),
        &fixture("error.request.json"),
    )
    .await;
    let scan = app
        .admin_get(&format!("/api/v1/deployments/{}/scan/{id}", app.slug))
        .await;
    assert_eq!(scan["status"], "error");
    assert_eq!(scan["exit_code"], 7);
    let hooks = app.webhooks(id).await;
    assert_eq!(hooks["semgrep_scan"]["semgrep_scan"]["exit_code"], 7);
    assert!(hooks["semgrep_scan"]["semgrep_scan"]["completed_at"].is_string());
    let (status, _) = app
        .call(
            Method::POST,
            &format!("/api/agent/scans/{id}/complete"),
            Some(&app.ci),
            Some(&fixture("04-post-complete.request.json")),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);

    let id2 = create(&app, "33333333-3333-4333-8333-333333333333", "main", true).await;
    let n = app
        .store()
        .abandon_stale(scanhook::clock::now() + 1)
        .await
        .unwrap();
    assert_eq!(n, 1);
    let scan = app
        .admin_get(&format!("/api/v1/deployments/{}/scan/{id2}", app.slug))
        .await;
    assert_eq!(scan["status"], "abandoned");
    let obj = &app.webhooks(id2).await["semgrep_scan"]["semgrep_scan"];
    assert_eq!(obj["completed_at"], Value::Null);
    assert_eq!(obj["exit_code"], Value::Null);
    app.stop().await;
}
on_both!(error_is_terminal_and_abandoned_scans_end);

async fn fail_open_reports_and_agent_endpoints(db: Db) {
    let app = TestApp::spawn(db).await;
    let v = app
        .ci_post("/failure", &fixture("fail-open.request.json"))
        .await;
    assert_eq!(v["success"], true);
    let dep = app.store().first_deployment().await.unwrap().unwrap();
    assert_eq!(app.store().count_failures(dep.id).await.unwrap(), 1);
    let (status, v) = app
        .call(
            Method::GET,
            "/api/agent/deployments/current",
            Some(&app.ci),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["deployment"]["name"], "acme");
    let (status, v) = app
        .call(
            Method::GET,
            "/api/agent/deployments/deepbinary/manylinux-x86?version=1.185.0",
            Some(&app.ci),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(v["error"]["code"], "pro_engine_unavailable");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("--oss-only"));
    app.stop().await;
}
on_both!(fail_open_reports_and_agent_endpoints);

async fn tokens_are_checked_and_scoped(db: Db) {
    let app = TestApp::spawn(db).await;
    let body = fixture("01-post-scans.request.json");
    for token in [None, Some("shk_wrong")] {
        let (status, v) = app
            .call(Method::POST, "/api/cli/v2/scans", token, Some(&body))
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(v["error"]["code"], "unauthorized");
    }
    let (status, v) = app
        .call(Method::GET, "/api/v1/rules", Some(&app.ci), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{v}");
    let (status, v) = app
        .call(
            Method::GET,
            &format!("/api/v1/deployments/{}/findings", app.slug),
            Some(&app.ci),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{v}");
    // A token made through the API works.
    let v = app
        .admin_post("/api/v1/tokens", &json!({"scope": "ci"}))
        .await;
    let (status, _) = app
        .call(
            Method::POST,
            "/api/cli/v2/scans",
            v["token"].as_str(),
            Some(&body),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    app.stop().await;
}
on_both!(tokens_are_checked_and_scoped);

async fn a_token_never_reaches_another_deployment(db: Db) {
    let app = TestApp::spawn(db).await;
    let id = run_scan(
        &app,
        "44444444-4444-4444-8444-444444444444",
        &fixture("03-post-results.request.json"),
    )
    .await;
    let other = app
        .store()
        .create_deployment("other", "Other")
        .await
        .unwrap();
    let admin2 = app
        .store()
        .create_token(other.id, scanhook::domain::tokens::Scope::Admin)
        .await
        .unwrap();
    let ci2 = app
        .store()
        .create_token(other.id, scanhook::domain::tokens::Scope::Ci)
        .await
        .unwrap();
    let first = &app.slug;
    for path in [
        format!("/api/v1/deployments/{first}/findings"),
        format!("/api/v1/deployments/{first}/scan/{id}"),
        format!("/api/v1/deployments/other/scan/{id}"),
        format!("/api/v1/deployments/other/scan/{id}/webhooks"),
    ] {
        let (status, v) = app.call(Method::GET, &path, Some(&admin2), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {v}");
    }
    let (status, _) = app
        .call(
            Method::POST,
            &format!("/api/agent/scans/{id}/complete"),
            Some(&ci2),
            Some(&fixture("04-post-complete.request.json")),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let uid = "44444444-4444-4444-8444-444444444444";
    let (status, _) = app
        .call(
            Method::GET,
            &format!("/api/cli/v2/scans/{uid}/config"),
            Some(&ci2),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, v) = app
        .call(
            Method::GET,
            "/api/v1/deployments/other/findings",
            Some(&admin2),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["findings"], json!([]));
    app.stop().await;
}
on_both!(a_token_never_reaches_another_deployment);

async fn triage_ignored_findings_go_to_the_client_and_are_never_notified(db: Db) {
    let app = TestApp::spawn(db).await;
    let full = fixture("03-post-results.request.json");
    run_scan(&app, "55555555-5555-4555-8555-555555555555", &full).await;
    let target = app
        .findings("rules=js-console-log")
        .await
        .pop()
        .expect("the console.log finding");
    let fid = target["id"].as_i64().unwrap();
    let v = app
        .admin_post(
            &format!("/api/v1/deployments/{}/triage", app.slug),
            &json!({"issue_type": "sast", "issue_ids": [fid, 999999], "new_triage_state": "ignored", "new_triage_reason": "false_positive"}),
        )
        .await;
    assert_eq!(v["succeeded"][0]["issue_ids"], json!([fid]));
    assert_eq!(v["failed"][0]["issue_ids"], json!([999999]));
    assert_eq!(app.findings("status=ignored").await.len(), 1);
    assert_eq!(app.findings("status=open").await.len(), 4);

    // The next scan's config tells the client.
    let uid = "66666666-6666-4666-8666-666666666666";
    create(&app, uid, "main", true).await;
    let cfg = app.scan_config(uid).await;
    assert_eq!(
        cfg["config"]["triage_ignored_syntactic_ids"],
        json!([target["syntactic_id"]])
    );
    assert_eq!(
        cfg["config"]["triage_ignored_match_based_ids"],
        json!([target["match_based_id"]])
    );

    // Fixed, then back: a regression, but triaged as ignored, so not notified.
    let mut without = full.clone();
    without["findings"]
        .as_array_mut()
        .unwrap()
        .retain(|f| f["check_id"] != "js-console-log");
    let id2 = run_scan(&app, "77777777-7777-4777-8777-777777777777", &without).await;
    assert_eq!(app.scan_changes(id2, "fixed").await.len(), 1);
    let id3 = run_scan(&app, "88888888-8888-4888-8888-888888888888", &full).await;
    let regressed = app.scan_changes(id3, "regression").await;
    assert_eq!(regressed.len(), 1);
    assert_eq!(regressed[0]["scan_change"]["notify"], false);
    assert_eq!(app.scan_changes(id3, "notified").await.len(), 0);
    app.stop().await;
}
on_both!(triage_ignored_findings_go_to_the_client_and_are_never_notified);

async fn rule_uploads_are_all_or_nothing(db: Db) {
    let app = TestApp::spawn(db).await;
    let good = fixture_text("sample-rules.yml");
    let bad = "rules:\n- id: no-pattern\n  languages: [python]\n  severity: ERROR\n  message: m\n";
    let (status, v) = app
        .call(
            Method::POST,
            "/api/v1/rules",
            Some(&app.admin),
            Some(&json!({"files": [{"name": "good.yml", "content": good}, {"name": "bad.yml", "content": bad}]})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["code"], "invalid_rule");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("bad.yml") && msg.contains("no-pattern") && msg.contains("pattern"),
        "{msg}"
    );
    assert_eq!(app.admin_get("/api/v1/rules").await["rules"], json!([]));
    assert_eq!(
        app.admin_get("/api/v1/policies").await["policies"],
        json!([])
    );

    let (status, v) = app
        .call(
            Method::POST,
            "/api/v1/rules",
            Some(&app.admin),
            Some(&json!({"files": [{"name": "broken.yml", "content": "rules: [\n"}]})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("broken.yml: invalid YAML"),
        "{v}"
    );

    // A rule in two policies needs the policy named to change its mode.
    app.add_rules(&good, None, "monitor").await;
    app.add_rules(&good, Some("Web Apps"), "comment").await;
    let (status, v) = app
        .call(
            Method::PUT,
            "/api/v1/rules/js-console-log/mode",
            Some(&app.admin),
            Some(&json!({"mode": "block"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(v["error"]["code"], "ambiguous_policy");
    let (status, _) = app
        .call(
            Method::PUT,
            "/api/v1/rules/js-console-log/mode",
            Some(&app.admin),
            Some(&json!({"mode": "block", "policy": "Web Apps"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let rule = app.admin_get("/api/v1/rules/js-console-log").await;
    assert_eq!(rule["mode"], "block");
    assert_eq!(rule["policy"]["slug"], "web-apps");
    app.stop().await;
}
on_both!(rule_uploads_are_all_or_nothing);
