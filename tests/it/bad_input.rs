//! Bad input gets a 4xx JSON error with a stable code, and writes nothing.

use crate::harness::{fixture, Db, TestApp};
use crate::on_both;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

fn assert_error(status: StatusCode, v: &Value, want: StatusCode, code: &str) {
    assert_eq!(status, want, "{v}");
    assert_eq!(v["error"]["code"], code, "{v}");
    assert!(
        !v["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .is_empty(),
        "{v}"
    );
}

async fn new_scan(app: &TestApp) -> i64 {
    let v = app
        .ci_post("/api/cli/v2/scans", &fixture("01-post-scans.request.json"))
        .await;
    v["info"]["id"].as_i64().unwrap()
}

async fn malformed_json_and_wrong_types(db: Db) {
    let app = TestApp::spawn(db).await;
    let id = new_scan(&app).await;
    let posts: Vec<(String, &str)> = vec![
        ("/api/cli/v2/scans".into(), &app.ci),
        (format!("/api/agent/scans/{id}/results"), &app.ci),
        (format!("/api/agent/scans/{id}/complete"), &app.ci),
        (format!("/api/agent/scans/{id}/error"), &app.ci),
        ("/failure".into(), &app.ci),
        ("/api/v1/rules".into(), &app.admin),
        ("/api/v1/tokens".into(), &app.admin),
        (
            format!("/api/v1/deployments/{}/triage", app.slug),
            &app.admin,
        ),
        (
            format!("/api/v1/deployments/{}/scans/search", app.slug),
            &app.admin,
        ),
    ];
    for (path, token) in &posts {
        let (s, v) = app
            .raw(
                Method::POST,
                path,
                Some(token),
                b"{\"findings\": [".to_vec(),
                "application/json",
            )
            .await;
        assert_error(s, &v, StatusCode::BAD_REQUEST, "invalid_json");
    }
    // Wrong types name the offending field.
    let mut results = fixture("03-post-results.request.json");
    results["findings"][2]["line"] = json!("twelve");
    let (s, v) = app
        .call(
            Method::POST,
            &format!("/api/agent/scans/{id}/results"),
            Some(&app.ci),
            Some(&results),
        )
        .await;
    assert_error(s, &v, StatusCode::BAD_REQUEST, "invalid_body");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("findings[2].line"),
        "{v}"
    );
    let (s, v) = app
        .call(
            Method::POST,
            "/api/cli/v2/scans",
            Some(&app.ci),
            Some(&json!({"scan_metadata": 1})),
        )
        .await;
    assert_error(s, &v, StatusCode::BAD_REQUEST, "invalid_body");
    let (s, v) = app
        .call(
            Method::POST,
            &format!("/api/agent/scans/{id}/complete"),
            Some(&app.ci),
            Some(&json!({"exit_code": "0"})),
        )
        .await;
    assert_error(s, &v, StatusCode::BAD_REQUEST, "invalid_body");
    let (s, v) = app
        .call(
            Method::POST,
            "/api/v1/tokens",
            Some(&app.admin),
            Some(&json!({"scope": "root"})),
        )
        .await;
    assert_error(s, &v, StatusCode::BAD_REQUEST, "invalid_body");
    let (s, v) = app
        .call(
            Method::PUT,
            "/api/v1/rules/x/mode",
            Some(&app.admin),
            Some(&json!({"mode": "loud"})),
        )
        .await;
    assert_error(s, &v, StatusCode::BAD_REQUEST, "invalid_mode");
    let (s, v) = app
        .raw(
            Method::POST,
            "/api/cli/v2/scans",
            Some(&app.ci),
            b"scan=1".to_vec(),
            "application/x-www-form-urlencoded",
        )
        .await;
    assert_error(
        s,
        &v,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );
    let (s, v) = app
        .call(
            Method::GET,
            &format!("/api/v1/deployments/{}/findings?page_size=lots", app.slug),
            Some(&app.admin),
            None,
        )
        .await;
    assert_error(s, &v, StatusCode::BAD_REQUEST, "invalid_query");
    let (s, v) = app
        .call(
            Method::GET,
            &format!("/api/v1/deployments/{}/findings?severities=loud", app.slug),
            Some(&app.admin),
            None,
        )
        .await;
    assert_error(s, &v, StatusCode::BAD_REQUEST, "invalid_query");

    // Nothing of the refused uploads was kept: completing applies no results.
    app.ci_post(
        &format!("/api/agent/scans/{id}/complete"),
        &fixture("04-post-complete.request.json"),
    )
    .await;
    let scan = app
        .admin_get(&format!("/api/v1/deployments/{}/scan/{id}", app.slug))
        .await;
    assert_eq!(scan["counts"]["findings"], 0);
    assert_eq!(app.findings("").await.len(), 0);
    app.stop().await;
}
on_both!(malformed_json_and_wrong_types);

async fn a_bad_finding_rejects_the_whole_upload(db: Db) {
    let app = TestApp::spawn(db).await;
    let id = new_scan(&app).await;
    let good = fixture("03-post-results.request.json");
    app.ci_post(&format!("/api/agent/scans/{id}/results"), &good)
        .await;
    // A retry with one broken finding: refused, and the earlier upload stays as it was.
    let mut bad = good.clone();
    bad["findings"][4]["syntactic_id"] = json!("");
    let (s, v) = app
        .call(
            Method::POST,
            &format!("/api/agent/scans/{id}/results"),
            Some(&app.ci),
            Some(&bad),
        )
        .await;
    assert_error(s, &v, StatusCode::BAD_REQUEST, "invalid_body");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("findings[4]"),
        "{v}"
    );
    app.ci_post(
        &format!("/api/agent/scans/{id}/complete"),
        &fixture("04-post-complete.request.json"),
    )
    .await;
    assert_eq!(app.findings("").await.len(), 5);
    app.stop().await;
}
on_both!(a_bad_finding_rejects_the_whole_upload);

/// An upload larger than what is read inline (256 KiB; read on a blocking thread) is
/// refused the same way when bad, naming the field, and applied whole when good.
async fn a_large_upload_is_checked_and_applied_like_a_small_one(db: Db) {
    let app = TestApp::spawn(db).await;
    let id = new_scan(&app).await;
    let sample = fixture("03-post-results.request.json");
    let template = sample["findings"][1].clone();
    let findings: Vec<Value> = (0..400)
        .map(|i| {
            let mut f = template.clone();
            f["syntactic_id"] = json!(format!("{i:032x}"));
            f["match_based_id"] = json!(format!("{i:0128x}_0"));
            f["line"] = json!(i + 1);
            f
        })
        .collect();
    let mut good = sample.clone();
    good["findings"] = json!(findings);
    assert!(serde_json::to_vec(&good).unwrap().len() > 256 * 1024);
    let mut bad = good.clone();
    bad["findings"][399]["line"] = json!("four hundred");
    let (s, v) = app
        .call(
            Method::POST,
            &format!("/api/agent/scans/{id}/results"),
            Some(&app.ci),
            Some(&bad),
        )
        .await;
    assert_error(s, &v, StatusCode::BAD_REQUEST, "invalid_body");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(message.contains("findings[399].line"), "{v}");
    app.ci_post(&format!("/api/agent/scans/{id}/results"), &good)
        .await;
    app.ci_post(
        &format!("/api/agent/scans/{id}/complete"),
        &fixture("04-post-complete.request.json"),
    )
    .await;
    let scan = app
        .admin_get(&format!("/api/v1/deployments/{}/scan/{id}", app.slug))
        .await;
    assert_eq!(scan["counts"]["findings"], 400, "{scan}");
    assert_eq!(scan["counts"]["opened"], 400, "{scan}");
    app.stop().await;
}
on_both!(a_large_upload_is_checked_and_applied_like_a_small_one);

/// Declares a body of `len` bytes, waits for the answer, and sends the body only if asked
/// to continue. A server that refuses on the declared length answers without reading it.
async fn declare_oversized(app: &TestApp, path: &str, token: &str, len: usize) -> (u16, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = app.base.trim_start_matches("http://");
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {len}\r\n\
         Expect: 100-continue\r\nConnection: close\r\n\r\n"
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    // Not a timing goal: a server that waits for the body would otherwise hang the test.
    tokio::time::timeout(
        std::time::Duration::from_secs(30),
        conn.read_to_end(&mut answer),
    )
    .await
    .expect("the server answers on the declared length alone")
    .unwrap();
    let text = String::from_utf8_lossy(&answer);
    let status: u16 = text[9..12].parse().unwrap();
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

async fn huge_bodies_are_refused(db: Db) {
    let app = TestApp::spawn_with(db, |c| c.max_results_bytes = 1024 * 1024).await;
    let id = new_scan(&app).await;
    let results = format!("/api/agent/scans/{id}/results");
    for (path, token, len) in [
        (results.as_str(), &app.ci, 2 * 1024 * 1024),
        ("/api/cli/v2/scans", &app.ci, 3 * 1024 * 1024),
        ("/api/v1/rules", &app.admin, 3 * 1024 * 1024),
    ] {
        let (status, v) = declare_oversized(&app, path, token, len).await;
        assert_eq!(status, 413, "{path}: {v}");
        assert_eq!(v["error"]["code"], "body_too_large", "{path}: {v}");
    }
    // Just under the limit is accepted.
    let mut body = fixture("03-post-results.request.json");
    body["findings"][0]["message"] = json!("x".repeat(60_000));
    app.ci_post(&results, &body).await;
    let scan = app
        .admin_get(&format!("/api/v1/deployments/{}/scan/{id}", app.slug))
        .await;
    assert_eq!(
        scan["counts"]["findings"], 0,
        "nothing applied before /complete"
    );
    app.stop().await;
}
on_both!(huge_bodies_are_refused);

async fn unknown_ids_and_routes(db: Db) {
    let app = TestApp::spawn(db).await;
    let complete = fixture("04-post-complete.request.json");
    for path in [
        "/api/agent/scans/999999/complete",
        "/api/agent/scans/not-a-number/complete",
        "/api/agent/scans/999999/error",
    ] {
        let (s, v) = app
            .call(Method::POST, path, Some(&app.ci), Some(&complete))
            .await;
        assert_error(s, &v, StatusCode::NOT_FOUND, "not_found");
    }
    let (s, v) = app
        .call(
            Method::POST,
            "/api/agent/scans/999999/results",
            Some(&app.ci),
            Some(&fixture("03-post-results.request.json")),
        )
        .await;
    assert_error(s, &v, StatusCode::NOT_FOUND, "not_found");
    for path in [
        "/api/cli/v2/scans/00000000-dead-beef-0000-000000000000/config".to_string(),
        format!("/api/v1/deployments/{}/scan/999999", app.slug),
        format!("/api/v1/deployments/{}/scan/nope/webhooks", app.slug),
        "/api/v1/deployments/no-such-deployment/findings".to_string(),
        "/api/v1/rules/no-such-rule".to_string(),
        "/api/v2/nothing-here".to_string(),
    ] {
        let (s, v) = app.call(Method::GET, &path, Some(&app.admin), None).await;
        assert_error(s, &v, StatusCode::NOT_FOUND, "not_found");
    }
    let (s, v) = app
        .call(
            Method::PUT,
            "/api/v1/rules/no-such-rule/mode",
            Some(&app.admin),
            Some(&json!({"mode": "block"})),
        )
        .await;
    assert_error(s, &v, StatusCode::NOT_FOUND, "not_found");
    let (s, v) = app
        .call(Method::DELETE, "/api/cli/v2/scans", Some(&app.ci), None)
        .await;
    assert_error(s, &v, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    app.stop().await;
}
on_both!(unknown_ids_and_routes);
