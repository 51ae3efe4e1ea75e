//! What the second security review found, each hole closed and probed as a client would:
//! characters no backend stores or no reader should trust in uploads, a scan id reused
//! across projects, bodies read outside the house reader, nesting that a later reader
//! cannot follow, database files left to the umask, and a sign-in throttle that one IPv6
//! host or a reverse proxy defeated. (The connection limits are in `limits.rs`.)

use crate::harness::{fixture, Db, TestApp};
use crate::on_both;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// A new scan of the fixture's repository; its numeric id.
async fn new_scan(app: &TestApp) -> i64 {
    app.ci_post("/api/cli/v2/scans", &fixture("01-post-scans.request.json"))
        .await["info"]["id"]
        .as_i64()
        .unwrap()
}

async fn ci_call(app: &TestApp, path: &str, body: &Value) -> (StatusCode, Value) {
    app.call(Method::POST, path, Some(&app.ci), Some(body))
        .await
}

/// NUL, other C0 controls and bidi controls in a finding's text are refused where they
/// arrive, naming the finding and the field; on PostgreSQL a NUL used to pass `/results`
/// and fail `/complete` with a 500. `message` keeps its tabs and line breaks.
async fn uploads_refuse_control_and_bidi_characters(db: Db) {
    let app = TestApp::spawn(db).await;
    let id = new_scan(&app).await;
    let results_path = format!("/api/agent/scans/{id}/results");
    for (list, i, field, value) in [
        ("findings", 1, "message", "eval\u{0} here"),
        ("findings", 2, "path", "app\u{1b}[2J.py"),
        ("findings", 0, "check_id", "js-console-log\u{202e}"),
        ("findings", 3, "syntactic_id", "abc\u{2066}"),
        ("findings", 4, "match_based_id", "m\nb"),
        ("findings", 0, "commit_date", "2024-01-02\u{7}"),
        ("findings", 1, "path", "a\tb.py"),
        ("ignores", 0, "message", "x\u{0}"),
    ] {
        let mut results = fixture("03-post-results.request.json");
        if list == "ignores" {
            results["ignores"] = json!([results["findings"][0].clone()]);
        }
        results[list][i][field] = json!(value);
        let (status, v) = ci_call(&app, &results_path, &results).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{list}[{i}].{field}: {v}");
        assert_eq!(v["error"]["code"], "invalid_body", "{v}");
        let message = v["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("{list}[{i}]")) && message.contains(&format!("`{field}`")),
            "the message names the finding and the field: {message}"
        );
    }
    // Line breaks and tabs are part of a message; the scan stores and completes with them.
    let mut results = fixture("03-post-results.request.json");
    results["findings"][1]["message"] = json!("first line\r\n\tsecond line");
    app.ci_post(&results_path, &results).await;
    let done = app
        .ci_post(
            &format!("/api/agent/scans/{id}/complete"),
            &json!({"exit_code": 0}),
        )
        .await;
    assert_eq!(done["success"], true, "{done}");
    let messages: Vec<Value> = app
        .findings("")
        .await
        .into_iter()
        .map(|f| f["rule_message"].clone())
        .collect();
    assert!(
        messages.contains(&json!("first line\r\n\tsecond line")),
        "{messages:?}"
    );

    // NUL in a failed scan's stderr and in a fail-open report's request id: 400, not 500.
    let other = {
        let mut body = fixture("01-post-scans.request.json");
        body["scan_metadata"]["unique_id"] = json!("nul-stderr");
        app.ci_post("/api/cli/v2/scans", &body).await["info"]["id"]
            .as_i64()
            .unwrap()
    };
    let error_path = format!("/api/agent/scans/{other}/error");
    let (status, v) = ci_call(
        &app,
        &error_path,
        &json!({"exit_code": 2, "stderr": "boom\u{0}"}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("stderr"),
        "{v}"
    );
    // Colour codes in stderr are what semgrep prints: kept.
    let (status, v) = ci_call(
        &app,
        &error_path,
        &json!({"exit_code": 2, "stderr": "\u{1b}[31mboom\u{1b}[0m\n"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let (status, v) = ci_call(
        &app,
        "/failure",
        &json!({"error": "x", "request_id": "r\u{0}1", "exit_code": 2}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("request_id"),
        "{v}"
    );
    let dep = app.store().first_deployment().await.unwrap().unwrap();
    assert_eq!(app.store().count_failures(dep.id).await.unwrap(), 0);
    app.stop().await;
}
on_both!(uploads_refuse_control_and_bidi_characters);

/// A scan of `repo` with `unique_id`, made with `token`.
async fn scan_of(app: &TestApp, token: &str, repo: &str, unique_id: &str) -> (StatusCode, Value) {
    let mut body = fixture("01-post-scans.request.json");
    body["project_metadata"]["repository"] = json!(repo);
    body["project_metadata"]["repo_url"] = json!(format!("https://git.example.com/{repo}"));
    body["scan_metadata"]["unique_id"] = json!(unique_id);
    app.call(Method::POST, "/api/cli/v2/scans", Some(token), Some(&body))
        .await
}

async fn project_names(app: &TestApp) -> Vec<String> {
    let v = app
        .admin_get(&format!("/api/v1/deployments/{}/projects", app.slug))
        .await;
    let mut names: Vec<String> = v["projects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

/// Creating a scan with the `unique_id` of another project's scan used to answer that
/// scan (its id, to a token that may not reach it) and leave the named project behind.
async fn a_unique_id_of_another_project_is_refused(db: Db) {
    let app = TestApp::spawn(db).await;
    let (status, v) = scan_of(&app, &app.ci, "other/app", "shared-id").await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let other = v["info"]["id"].as_i64().unwrap();
    let scoped = app
        .admin_post(
            "/api/v1/tokens",
            &json!({"scope": "ci", "name": "acme builds", "repos": ["acme/*"]}),
        )
        .await["token"]
        .as_str()
        .unwrap()
        .to_string();

    // A token that cannot reach other/app: 404, and nothing of that scan in the answer.
    let (status, v) = scan_of(&app, &scoped, "acme/api", "shared-id").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{v}");
    assert_eq!(v["error"]["code"], "not_found", "{v}");
    let text = v.to_string();
    assert!(
        !text.contains("other/app") && !text.contains(&other.to_string()),
        "{text}"
    );
    // A token that reaches it: 409 naming the conflict.
    let (status, v) = scan_of(&app, &app.ci, "third/app", "shared-id").await;
    assert_eq!(status, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["error"]["code"], "unique_id_conflict", "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("other/app"),
        "{v}"
    );
    assert_eq!(
        project_names(&app).await,
        ["other/app"],
        "no project was made for the refused scans"
    );
    // A retry for the same repository is still the same scan; its project is unchanged.
    let (status, v) = scan_of(&app, &app.ci, "other/app", "shared-id").await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["info"]["id"], other);
    // And the scoped token still starts its own scans.
    let (status, v) = scan_of(&app, &scoped, "acme/api", "acme-1").await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(project_names(&app).await, ["acme/api", "other/app"]);
    app.stop().await;
}
on_both!(a_unique_id_of_another_project_is_refused);

/// Posts `len` bytes to `path` as a chunked body (no length declared up front), from a
/// task of its own so that the answer is read while the body is still going out; the
/// server may stop reading, and the writes then fail, which is the point.
async fn chunked_post(app: &TestApp, path: &str, headers: &str, len: usize) -> (u16, Value) {
    use tokio::io::AsyncWriteExt;
    let conn = crate::limits::connect(app).await;
    let (mut rx, mut tx) = conn.into_split();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: scanhook.test\r\n{headers}Transfer-Encoding: chunked\r\n\r\n"
    );
    let writer = tokio::spawn(async move {
        tx.write_all(head.as_bytes()).await?;
        let piece = vec![b' '; 16 * 1024];
        let mut left = len;
        while left > 0 {
            let n = left.min(piece.len());
            tx.write_all(format!("{n:x}\r\n").as_bytes()).await?;
            tx.write_all(&piece[..n]).await?;
            tx.write_all(b"\r\n").await?;
            left -= n;
        }
        tx.write_all(b"0\r\n\r\n").await?;
        std::io::Result::Ok(tx)
    });
    let answer = crate::limits::read_response(&mut rx, path).await;
    drop(writer);
    answer
}

/// `/failure` and the sign-in form read their bodies through the house reader: a body with
/// no declared length is still capped, and refused with the JSON error every endpoint
/// answers (axum's own extractor answered these in plain text).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_reports_and_sign_ins_are_read_by_the_house_reader() {
    let app = TestApp::spawn(Db::Sqlite).await;
    let auth = format!(
        "Authorization: Bearer {}\r\nContent-Type: application/json\r\n",
        app.ci
    );
    let limit = scanhook::http::ci::MAX_FAILURE_REPORT;
    let (status, v) = chunked_post(&app, "/failure", &auth, limit + 64 * 1024).await;
    assert_eq!(status, 413, "{v}");
    assert_eq!(v["error"]["code"], "body_too_large", "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&limit.to_string()),
        "the message names the limit: {v}"
    );
    // A report within the limit is kept as before.
    let report =
        serde_json::to_vec(&json!({"error": "boom", "request_id": "r1", "exit_code": 2})).unwrap();
    let (status, v) = app
        .raw(
            Method::POST,
            "/failure",
            Some(&app.ci),
            report,
            "application/json",
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");

    let form = "Content-Type: application/x-www-form-urlencoded\r\n";
    let (status, v) = chunked_post(&app, "/login", form, 64 * 1024).await;
    assert_eq!(status, 413, "{v}");
    assert_eq!(v["error"]["code"], "body_too_large", "{v}");
    // A declared length over the form's limit is refused before a byte is read.
    let (status, v) = app
        .raw(
            Method::POST,
            "/login",
            None,
            vec![b'a'; 100 * 1024],
            "application/x-www-form-urlencoded",
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    assert_eq!(v["error"]["code"], "body_too_large", "{v}");
    app.stop().await;
}

/// A database URL with a relative path (`sqlite://rel.db`, `sqlite:rel.db`) names a file
/// in the working directory; it is made 0600 before SQLite opens it, as an absolute path
/// and the data directory's file are (relative ones used to be left to the umask).
#[cfg(unix)]
#[test]
fn relative_sqlite_files_are_private_too() {
    use std::os::unix::fs::PermissionsExt;
    let cwd = tempfile::tempdir().unwrap();
    std::fs::create_dir(cwd.path().join("sub")).unwrap();
    for (url, file) in [
        ("sqlite://rel.db", "rel.db"),
        ("sqlite:bare.db", "bare.db"),
        ("sqlite:sub/nested.db?mode=rwc", "sub/nested.db"),
    ] {
        // Under the usual umask, which alone would leave the file readable by all.
        let out = std::process::Command::new("sh")
            .args([
                "-c",
                "umask 022 && exec \"$0\" migrate --database-url \"$1\"",
            ])
            .arg(env!("CARGO_BIN_EXE_scanhook"))
            .arg(url)
            .current_dir(cwd.path())
            .env_remove("SCANHOOK_DATABASE_URL")
            .env_remove("SCANHOOK_CONFIG")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{url}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let path = cwd.path().join(file);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{url} made {}", path.display());
    }
}

/// `/complete` keeps `stats` as sent and reads them back into the scan's objects: nesting
/// past 32 levels is refused with its own code, and the scan stays open for a good retry.
async fn complete_refuses_deeply_nested_stats(db: Db) {
    let app = TestApp::spawn(db).await;
    let id = new_scan(&app).await;
    let complete = format!("/api/agent/scans/{id}/complete");
    let nested = |levels: usize| {
        let mut v = json!({"targets": 3});
        for _ in 1..levels {
            v = json!({"k": v});
        }
        v
    };
    let (status, v) = ci_call(
        &app,
        &complete,
        &json!({"exit_code": 0, "stats": nested(33)}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"]["code"], "stats_too_deep", "{v}");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("33") && message.contains("32"),
        "{message}"
    );
    let scan = app
        .admin_get(&format!("/api/v1/deployments/{}/scan/{id}", app.slug))
        .await;
    assert_eq!(scan["status"], "running", "nothing was recorded: {scan}");
    let (status, v) = ci_call(
        &app,
        &complete,
        &json!({"exit_code": 0, "stats": nested(32)}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "32 levels are kept: {v}");
    app.stop().await;
}
on_both!(complete_refuses_deeply_nested_stats);

/// Submits the sign-in form with `token`, saying `X-Forwarded-For: forwarded`.
async fn sign_in_forwarded_for(app: &TestApp, token: &str, forwarded: &str) -> StatusCode {
    use crate::ui::{client, cookie_of, input_value};
    let http = client();
    let form = http
        .get(format!("{}/login", app.base))
        .send()
        .await
        .unwrap();
    let login_cookie = cookie_of(&form, "scanhook_login").unwrap();
    let nonce = input_value(&form.text().await.unwrap(), "csrf").unwrap();
    http.post(format!("{}/login", app.base))
        .header(reqwest::header::COOKIE, login_cookie)
        .header("x-forwarded-for", forwarded)
        .form(&[("csrf", nonce.as_str()), ("token", token)])
        .send()
        .await
        .unwrap()
        .status()
}

/// Behind a trusted proxy the sign-in throttle counts the client the proxy names, and an
/// IPv6 client by its /64; a client cannot pick its key by writing the header itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sign_in_throttle_keys_clients_behind_a_trusted_proxy() {
    use scanhook::domain::client::TrustedProxies;
    let app = TestApp::spawn_with(Db::Sqlite, |c| {
        // The tests' client connects from 127.0.0.1: it plays the proxy.
        c.trusted_proxies = TrustedProxies::parse("127.0.0.1").unwrap();
    })
    .await;
    let failures = scanhook::state::SIGN_IN_FAILURES;
    // One IPv6 client, new address each try, and a forged entry left of the proxy's.
    for i in 0..failures {
        let xff = format!("203.0.113.{i}, 2001:db8:1:2::{:x}", i + 1);
        let status = sign_in_forwarded_for(&app, "shk_wrong", &xff).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "try {i}");
    }
    let locked = sign_in_forwarded_for(&app, &app.admin, "2001:db8:1:2:ffff::9").await;
    assert_eq!(
        locked,
        StatusCode::TOO_MANY_REQUESTS,
        "the /64 is one client"
    );
    // Another client behind the same proxy is not locked out with it.
    let other = sign_in_forwarded_for(&app, &app.admin, "2001:db8:1:3::1").await;
    assert_eq!(other, StatusCode::SEE_OTHER);
    let v4 = sign_in_forwarded_for(&app, &app.admin, "198.51.100.7").await;
    assert_eq!(v4, StatusCode::SEE_OTHER);
    app.stop().await;

    // Without trusted proxies the header is the client's own word: ignored.
    let app = TestApp::spawn(Db::Sqlite).await;
    for i in 0..failures {
        let status = sign_in_forwarded_for(&app, "shk_wrong", &format!("198.51.100.{i}")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "try {i}");
    }
    let locked = sign_in_forwarded_for(&app, &app.admin, "192.0.2.99").await;
    assert_eq!(locked, StatusCode::TOO_MANY_REQUESTS);
    app.stop().await;
}
