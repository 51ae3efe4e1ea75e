//! The OpenAPI document is generated from the code: the committed `openapi.json` and the
//! served one are that document, and every operation in it answers a real request with a
//! body that its documented schema accepts.

use crate::harness::{fixture, fixture_text, Db, TestApp};
use crate::on_both;
use crate::receiver::Receiver;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::BTreeSet;

#[tokio::test]
async fn the_committed_document_is_the_generated_one() {
    let generated = scanhook::http::openapi_json();
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json"))
        .expect("openapi.json is committed");
    assert!(
        committed == generated,
        "openapi.json is out of date: run `cargo run -- openapi > openapi.json`"
    );
    let app = TestApp::spawn(Db::Sqlite).await;
    let served = app
        .http
        .get(format!("{}/api/openapi.json", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(served.status(), StatusCode::OK);
    assert_eq!(served.text().await.unwrap(), generated);
    let doc: Value = serde_json::from_str(&generated).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    // The checks below would see a wrong answer.
    let ok = StatusCode::OK;
    assert!(problems(&doc, "GET", "/healthz", ok, &json!({"status": "ok"})).is_empty());
    assert!(!problems(&doc, "GET", "/healthz", ok, &json!({})).is_empty());
    let wrong_id = json!({"deleted": "msg_x"});
    assert!(!problems(&doc, "DELETE", "/api/v1/integrations/{id}", ok, &wrong_id).is_empty());
    // Every operation has an id, a summary and a success response with a named schema.
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            assert!(op["operationId"].is_string(), "{method} {path}");
            assert!(op["summary"].is_string(), "{method} {path} has no summary");
            for (status, response) in op["responses"].as_object().unwrap() {
                let schema = response
                    .pointer("/content/application~1json/schema")
                    .or_else(|| response.pointer("/content/application~1schema+json/schema"));
                let Some(schema) = schema else {
                    continue;
                };
                assert!(
                    schema.get("$ref").is_some() || schema["type"] == "object",
                    "{method} {path} {status}: the body is not a named type: {schema}"
                );
            }
        }
    }
    app.stop().await;
}

/// What the schema `doc` gives `method path` for `status` finds wrong with `body`.
fn problems(
    doc: &Value,
    method: &str,
    path: &str,
    status: StatusCode,
    body: &Value,
) -> Vec<String> {
    let op = &doc["paths"][path][method.to_lowercase()];
    assert!(op.is_object(), "{method} {path} is not documented");
    let response = &op["responses"][status.as_str()];
    assert!(
        response.is_object(),
        "{method} {path} answered {status}, which is not documented"
    );
    let schema = response
        .pointer("/content/application~1json/schema")
        .or_else(|| response.pointer("/content/application~1schema+json/schema"));
    let Some(schema) = schema else {
        panic!("{method} {path} {status}: no JSON schema documented");
    };
    let mut root = schema.clone();
    root["components"] = doc["components"].clone();
    let validator = jsonschema::validator_for(&root)
        .unwrap_or_else(|e| panic!("{method} {path} {status}: the schema does not compile: {e}"));
    validator
        .iter_errors(body)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect()
}

/// Checks `body` against the schema `doc` gives `method path` for `status`.
fn check(doc: &Value, method: &str, path: &str, status: StatusCode, body: &Value) {
    let errors = problems(doc, method, path, status, body);
    assert!(
        errors.is_empty(),
        "{method} {path} {status}: the answer does not match its schema:\n{}\n{body:#}",
        errors.join("\n")
    );
}

/// Calls an operation and checks its answer; records it as exercised.
struct Walk<'a> {
    app: &'a TestApp,
    doc: Value,
    seen: BTreeSet<(String, String)>,
}

impl Walk<'_> {
    async fn call(
        &mut self,
        method: Method,
        template: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
        want: StatusCode,
    ) -> Value {
        let (status, v) = self.app.call(method.clone(), path, token, body).await;
        assert_eq!(status, want, "{method} {path}: {v}");
        check(&self.doc, method.as_str(), template, status, &v);
        self.seen
            .insert((method.as_str().to_lowercase(), template.to_string()));
        v
    }
}

async fn every_operation_answers_as_documented(db: Db) {
    let app = TestApp::spawn(db).await;
    let rx = Receiver::start().await;
    let doc: Value = serde_json::from_str(&scanhook::http::openapi_json()).unwrap();
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(p, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |m| (m.clone(), p.clone()))
        })
        .collect();
    let mut w = Walk {
        app: &app,
        doc,
        seen: BTreeSet::new(),
    };
    let (admin, ci) = (Some(app.admin.as_str()), Some(app.ci.as_str()));
    let dep = app.slug.clone();
    use Method as M;
    use StatusCode as S;

    // Not JSON: the document itself and the metrics text.
    for (template, kind) in [
        ("/api/openapi.json", "application/json"),
        ("/metrics", "application/openmetrics-text"),
    ] {
        let r = app
            .http
            .get(format!("{}{template}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), S::OK);
        let ct = r.headers()["content-type"].to_str().unwrap().to_string();
        assert!(ct.starts_with(kind), "{template}: {ct}");
        w.seen.insert(("get".into(), template.into()));
    }
    w.call(M::GET, "/healthz", "/healthz", None, None, S::OK)
        .await;
    w.call(M::GET, "/readyz", "/readyz", None, None, S::OK)
        .await;

    // Rules, policies, tokens.
    w.call(
        M::POST,
        "/api/v1/rules",
        "/api/v1/rules",
        admin,
        Some(&json!({"files": [{"name": "sample-rules.yml", "content": fixture_text("sample-rules.yml")}], "mode": "monitor"})),
        S::CREATED,
    )
    .await;
    let rules = w
        .call(M::GET, "/api/v1/rules", "/api/v1/rules", admin, None, S::OK)
        .await;
    let rule_id = rules["rules"][0]["rule_id"].as_str().unwrap().to_string();
    w.call(
        M::GET,
        "/api/v1/rules/{rule_id}",
        &format!("/api/v1/rules/{rule_id}"),
        admin,
        None,
        S::OK,
    )
    .await;
    w.call(
        M::PUT,
        "/api/v1/rules/{rule_id}/mode",
        &format!("/api/v1/rules/{rule_id}/mode"),
        admin,
        Some(&json!({"mode": "block"})),
        S::OK,
    )
    .await;
    w.call(
        M::GET,
        "/api/v1/policies",
        "/api/v1/policies",
        admin,
        None,
        S::OK,
    )
    .await;
    let token = w
        .call(
            M::POST,
            "/api/v1/tokens",
            "/api/v1/tokens",
            admin,
            Some(
                &json!({"scope": "ci", "name": "builds", "expires_in": "30d", "repos": ["acme/*"]}),
            ),
            S::CREATED,
        )
        .await;
    w.call(
        M::GET,
        "/api/v1/tokens",
        "/api/v1/tokens",
        admin,
        None,
        S::OK,
    )
    .await;
    w.call(
        M::DELETE,
        "/api/v1/tokens/{id}",
        &format!("/api/v1/tokens/{}", token["id"].as_str().unwrap()),
        admin,
        None,
        S::OK,
    )
    .await;

    // Integrations and the modes that notify them.
    let created = w
        .call(
            M::POST,
            "/api/v1/integrations",
            "/api/v1/integrations",
            admin,
            Some(&json!({"name": "feed", "url": rx.url})),
            S::CREATED,
        )
        .await;
    let int = created["id"].as_str().unwrap().to_string();
    let at = |suffix: &str| format!("/api/v1/integrations/{int}{suffix}");
    w.call(
        M::GET,
        "/api/v1/integrations",
        "/api/v1/integrations",
        admin,
        None,
        S::OK,
    )
    .await;
    w.call(
        M::GET,
        "/api/v1/integrations/{id}",
        &at(""),
        admin,
        None,
        S::OK,
    )
    .await;
    w.call(
        M::PATCH,
        "/api/v1/integrations/{id}",
        &at(""),
        admin,
        Some(&json!({"name": "security feed"})),
        S::OK,
    )
    .await;
    w.call(
        M::POST,
        "/api/v1/integrations/{id}/rotate-secret",
        &at("/rotate-secret"),
        admin,
        None,
        S::OK,
    )
    .await;
    let test = w
        .call(
            M::POST,
            "/api/v1/integrations/{id}/test",
            &at("/test"),
            admin,
            None,
            S::OK,
        )
        .await;
    assert_eq!(test["delivered"], true, "{test}");
    w.call(
        M::POST,
        "/api/v1/modes/{mode}/notify",
        "/api/v1/modes/block/notify",
        admin,
        Some(&json!({"integration_ids": [int]})),
        S::OK,
    )
    .await;
    w.call(M::GET, "/api/v1/modes", "/api/v1/modes", admin, None, S::OK)
        .await;

    // A scan through the protocol.
    w.call(
        M::GET,
        "/api/agent/deployments/current",
        "/api/agent/deployments/current",
        ci,
        None,
        S::OK,
    )
    .await;
    let created = w
        .call(
            M::POST,
            "/api/cli/v2/scans",
            "/api/cli/v2/scans",
            ci,
            Some(&fixture("01-post-scans.request.json")),
            S::OK,
        )
        .await;
    let scan_id = created["info"]["id"].as_i64().unwrap();
    let unique_id = fixture("01-post-scans.request.json")["scan_metadata"]["unique_id"]
        .as_str()
        .unwrap()
        .to_string();
    w.call(
        M::GET,
        "/api/cli/v2/scans/{unique_id}/config",
        &format!("/api/cli/v2/scans/{unique_id}/config"),
        ci,
        None,
        S::OK,
    )
    .await;
    w.call(
        M::POST,
        "/api/agent/scans/{scan_id}/results",
        &format!("/api/agent/scans/{scan_id}/results"),
        ci,
        Some(&fixture("03-post-results.request.json")),
        S::OK,
    )
    .await;
    w.call(
        M::POST,
        "/api/agent/scans/{scan_id}/complete",
        &format!("/api/agent/scans/{scan_id}/complete"),
        ci,
        Some(&fixture("04-post-complete.request.json")),
        S::OK,
    )
    .await;
    // A second scan that fails.
    let mut body = fixture("01-post-scans.request.json");
    body["scan_metadata"]["unique_id"] = json!("openapi-error");
    let failed = app.ci_post("/api/cli/v2/scans", &body).await["info"]["id"]
        .as_i64()
        .unwrap();
    w.call(
        M::POST,
        "/api/agent/scans/{scan_id}/error",
        &format!("/api/agent/scans/{failed}/error"),
        ci,
        Some(&fixture("error.request.json")),
        S::OK,
    )
    .await;
    w.call(
        M::POST,
        "/failure",
        "/failure",
        ci,
        Some(&fixture("fail-open.request.json")),
        S::OK,
    )
    .await;
    w.call(
        M::GET,
        "/api/agent/deployments/deepbinary/{platform}",
        "/api/agent/deployments/deepbinary/manylinux",
        ci,
        None,
        S::FORBIDDEN,
    )
    .await;

    // The v1 API over what the scan left.
    let v1 = |rest: &str| format!("/api/v1/deployments/{dep}{rest}");
    w.call(
        M::GET,
        "/api/v1/deployments",
        "/api/v1/deployments",
        admin,
        None,
        S::OK,
    )
    .await;
    w.call(
        M::GET,
        "/api/v1/deployments/{deployment}/projects",
        &v1("/projects"),
        admin,
        None,
        S::OK,
    )
    .await;
    let findings = w
        .call(
            M::GET,
            "/api/v1/deployments/{deployment}/findings",
            &v1("/findings?status=open&page_size=5"),
            admin,
            None,
            S::OK,
        )
        .await;
    let finding = findings["findings"][0]["id"]
        .as_i64()
        .expect("an open finding");
    w.call(
        M::POST,
        "/api/v1/deployments/{deployment}/triage",
        &v1("/triage"),
        admin,
        Some(&json!({"issue_type": "sast", "issue_ids": [finding, 999_999], "new_triage_state": "ignored", "new_triage_reason": "false_positive"})),
        S::OK,
    )
    .await;
    w.call(
        M::GET,
        "/api/v1/deployments/{deployment}/scan/{scan_id}",
        &v1(&format!("/scan/{scan_id}")),
        admin,
        None,
        S::OK,
    )
    .await;
    let changed = w
        .call(
            M::GET,
            "/api/v1/deployments/{deployment}/scan/{scan_id}/findings",
            &v1(&format!("/scan/{scan_id}/findings?change=opened")),
            admin,
            None,
            S::OK,
        )
        .await;
    assert!(!changed["findings"].as_array().unwrap().is_empty());
    w.call(
        M::GET,
        "/api/v1/deployments/{deployment}/scan/{scan_id}/webhooks",
        &v1(&format!("/scan/{scan_id}/webhooks")),
        admin,
        None,
        S::OK,
    )
    .await;
    w.call(
        M::POST,
        "/api/v1/deployments/{deployment}/scans/search",
        &v1("/scans/search"),
        admin,
        Some(&json!({"limit": 1})),
        S::OK,
    )
    .await;

    // The delivery log.
    let log = w
        .call(
            M::GET,
            "/api/v1/deliveries",
            &format!("/api/v1/deliveries?integration={int}"),
            admin,
            None,
            S::OK,
        )
        .await;
    let msg = log["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["kind"] != "test")
        .expect("a scan's message")["id"]
        .as_str()
        .unwrap()
        .to_string();
    w.call(
        M::GET,
        "/api/v1/deliveries/{msg_id}",
        &format!("/api/v1/deliveries/{msg}"),
        admin,
        None,
        S::OK,
    )
    .await;
    w.call(
        M::POST,
        "/api/v1/deliveries/{msg_id}/resend",
        &format!("/api/v1/deliveries/{msg}/resend"),
        admin,
        None,
        S::OK,
    )
    .await;
    let backfill = w
        .call(
            M::POST,
            "/api/v1/integrations/{id}/backfill",
            &at("/backfill"),
            admin,
            Some(&json!({"dry_run": true})),
            S::OK,
        )
        .await;
    assert_eq!(backfill["dry_run"], true, "{backfill}");
    w.call(
        M::POST,
        "/api/v1/filters/preview",
        "/api/v1/filters/preview",
        admin,
        Some(&json!({"filters": {"min_severity": "high", "paths": ["src/**"]}})),
        S::OK,
    )
    .await;
    w.call(
        M::POST,
        "/api/v1/filters/preview",
        "/api/v1/filters/preview",
        admin,
        Some(&json!({"filters": {"expression": "finding.line +"}})),
        S::BAD_REQUEST,
    )
    .await;
    w.call(
        M::GET,
        "/api/v1/schemas/{event}",
        "/api/v1/schemas/finding_fixed",
        None,
        None,
        S::OK,
    )
    .await;
    w.call(
        M::GET,
        "/api/v1/schemas/{event}",
        "/api/v1/schemas/nosuch",
        None,
        None,
        S::NOT_FOUND,
    )
    .await;
    w.call(
        M::POST,
        "/api/v1/integrations/{id}/recover",
        &at("/recover"),
        admin,
        Some(&json!({"since": "0"})),
        S::OK,
    )
    .await;
    w.call(
        M::POST,
        "/api/v1/modes/{mode}/unnotify",
        "/api/v1/modes/block/unnotify",
        admin,
        Some(&json!({"integration_ids": [int]})),
        S::OK,
    )
    .await;
    w.call(
        M::DELETE,
        "/api/v1/integrations/{id}",
        &at(""),
        admin,
        None,
        S::OK,
    )
    .await;

    // Refusals answer as documented too.
    w.call(
        M::GET,
        "/api/v1/integrations/{id}",
        &at(""),
        admin,
        None,
        S::NOT_FOUND,
    )
    .await;
    w.call(
        M::GET,
        "/api/v1/rules",
        "/api/v1/rules",
        None,
        None,
        S::UNAUTHORIZED,
    )
    .await;
    w.call(
        M::GET,
        "/api/v1/rules",
        "/api/v1/rules",
        ci,
        None,
        S::FORBIDDEN,
    )
    .await;
    w.call(
        M::GET,
        "/api/v1/deployments/{deployment}/findings",
        &v1("/findings?page=92233720368547759"),
        admin,
        None,
        S::BAD_REQUEST,
    )
    .await;
    w.call(
        M::POST,
        "/api/agent/scans/{scan_id}/results",
        &format!("/api/agent/scans/{scan_id}/results"),
        ci,
        Some(&fixture("03-post-results.request.json")),
        S::CONFLICT,
    )
    .await;

    let sarif = json!({"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "Bandit"}},
        "results": [{"ruleId": "B101", "message": {"text": "assert used"},
            "locations": [{"physicalLocation": {"artifactLocation": {"uri": "app.py"},
                "region": {"startLine": 1, "snippet": {"text": "assert x"}}}}]}]}]});
    w.call(
        M::POST,
        "/api/v1/uploads",
        "/api/v1/uploads?repository=acme/uploaded&ref=main&changes=true",
        ci,
        Some(&sarif),
        S::OK,
    )
    .await;
    w.call(
        M::POST,
        "/api/v1/uploads",
        "/api/v1/uploads?repository=acme/uploaded",
        ci,
        Some(&json!({"version": "1.0.0", "runs": []})),
        S::BAD_REQUEST,
    )
    .await;

    let missing: Vec<_> = documented.difference(&w.seen).collect();
    assert!(missing.is_empty(), "operations not exercised: {missing:?}");
    let undocumented: Vec<_> = w.seen.difference(&documented).collect();
    assert!(undocumented.is_empty(), "not documented: {undocumented:?}");
    app.stop().await;
}
on_both!(every_operation_answers_as_documented);
