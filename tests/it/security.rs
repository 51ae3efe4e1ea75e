//! What a review of the running server found (issue 10), each hole closed and tested as an
//! attacker would probe it: token lifecycle and project scope, sign-in throttling and
//! session caps, open redirects, cookies.

use crate::harness::{fixture, Db, TestApp};
use crate::on_both;
use crate::ui::{client, cookie_of, input_value, sign_in_with, Browser};
use reqwest::header::{COOKIE, LOCATION, RETRY_AFTER, SET_COOKIE};
use reqwest::{Method, StatusCode};
use scanhook::domain::tokens::{NewToken, Scope};
use serde_json::{json, Value};

async fn tokens(app: &TestApp) -> Vec<Value> {
    app.admin_get("/api/v1/tokens").await["tokens"]
        .as_array()
        .unwrap()
        .clone()
}

fn find<'a>(all: &'a [Value], id: &str) -> &'a Value {
    all.iter()
        .find(|t| t["id"] == id)
        .unwrap_or_else(|| panic!("{id} in {all:?}"))
}

async fn tokens_are_listed_revoked_and_expire(db: Db) {
    let app = TestApp::spawn(db).await;
    let made = app
        .admin_post(
            "/api/v1/tokens",
            &json!({"scope": "admin", "name": "ops laptop", "expires_in": "90d"}),
        )
        .await;
    let (id, secret) = (
        made["id"].as_str().unwrap().to_string(),
        made["token"].as_str().unwrap().to_string(),
    );
    assert!(
        id.starts_with("tok_") && secret.starts_with("shk_"),
        "{made}"
    );
    let listed = tokens(&app).await;
    let t = find(&listed, &id);
    assert_eq!(
        (t["name"].as_str(), t["scope"].as_str(), t["state"].as_str()),
        (Some("ops laptop"), Some("admin"), Some("active"))
    );
    assert!(
        t["expires_at"].is_string() && t["last_used_at"].is_null(),
        "{t}"
    );
    assert!(
        !serde_json::to_string(&listed).unwrap().contains(&secret),
        "a listing never shows a secret"
    );
    // Using it is recorded.
    let (status, _) = app
        .call(Method::GET, "/api/v1/rules", Some(&secret), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(find(&tokens(&app).await, &id)["last_used_at"].is_string());

    // A session opened with it ends when it is revoked, and so does the token.
    let b = Browser::sign_in_as(&app, &secret).await;
    assert_eq!(b.get("/projects").await.status, StatusCode::OK);
    let (status, v) = app
        .call(
            Method::DELETE,
            &format!("/api/v1/tokens/{id}"),
            Some(&app.admin),
            None,
        )
        .await;
    assert_eq!(
        (status, v["already"].as_bool()),
        (StatusCode::OK, Some(false)),
        "{v}"
    );
    let (status, v) = app
        .call(Method::GET, "/api/v1/rules", Some(&secret), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{v}");
    let page = b.get("/projects").await;
    assert_eq!(
        page.status,
        StatusCode::SEE_OTHER,
        "the session ended at once"
    );
    let (refused, cookie) = sign_in_with(&app, &secret).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert!(cookie.is_none());
    assert_eq!(find(&tokens(&app).await, &id)["state"], "revoked");
    let (status, v) = app
        .call(
            Method::DELETE,
            &format!("/api/v1/tokens/{id}"),
            Some(&app.admin),
            None,
        )
        .await;
    assert_eq!(
        (status, v["already"].as_bool()),
        (StatusCode::OK, Some(true))
    );
    let (status, _) = app
        .call(
            Method::DELETE,
            "/api/v1/tokens/tok_nope",
            Some(&app.admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // An expired token is refused everywhere.
    let dep = app.store().first_deployment().await.unwrap().unwrap();
    let mut old = NewToken::new(Scope::Ci, Some("old"), None, None, 0).unwrap();
    old.expires_at = Some(scanhook::clock::now() - 1);
    let (expired, row) = app.store().issue_token(dep.id, &old).await.unwrap();
    let (status, _) = app
        .call(
            Method::POST,
            "/api/cli/v2/scans",
            Some(&expired),
            Some(&fixture("01-post-scans.request.json")),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        find(&tokens(&app).await, row.public_id.as_str())["state"],
        "expired"
    );

    // What a new token asks for is checked.
    for bad in [
        json!({"scope": "admin", "repos": ["acme/*"]}),
        json!({"scope": "ci", "expires_in": "soon"}),
        json!({"scope": "ci", "repos": ["acme/["]}),
        json!({"scope": "ci", "name": "a\u{202e}b"}),
    ] {
        let (status, v) = app
            .call(Method::POST, "/api/v1/tokens", Some(&app.admin), Some(&bad))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {v}");
    }
    app.stop().await;
}
on_both!(tokens_are_listed_revoked_and_expire);

/// The status of a request that any token of the deployment may make.
async fn agent_status(app: &TestApp, token: &str) -> StatusCode {
    let (status, _) = app
        .call(
            Method::GET,
            "/api/agent/deployments/current",
            Some(token),
            None,
        )
        .await;
    status
}

/// Who a token is stays in the serving process's memory between token writes
/// (`store::cache`). A revocation made elsewhere (another node, or the CLI on the
/// database) reaches a node within `MAX_AGE`; one made through the node is seen at once.
async fn a_token_revoked_through_another_node_is_refused_within_a_second(db: Db) {
    use scanhook::store::cache::MAX_AGE;
    use scanhook::store::Store;
    let app = TestApp::spawn(db).await;
    let made = app
        .admin_post("/api/v1/tokens", &json!({"scope": "ci", "name": "builds"}))
        .await;
    let id: scanhook::ids::TokenId = made["id"].as_str().unwrap().parse().unwrap();
    let secret = made["token"].as_str().unwrap().to_string();
    let status = || agent_status(&app, &secret);
    assert_eq!(
        status().await,
        StatusCode::OK,
        "the token works (and is now cached)"
    );

    // The other node: a Store of its own on the same database.
    let other = Store::connect(&app.database_url).await.unwrap();
    let dep = other.first_deployment().await.unwrap().unwrap();
    let revoked = other.revoke_token(dep.id, &id).await.unwrap();
    assert_eq!(revoked, scanhook::store::tokens::Revoked::Now);
    let refused_at = tokio::time::Instant::now() + MAX_AGE * 5;
    loop {
        match status().await {
            StatusCode::UNAUTHORIZED => break,
            other => assert_eq!(other, StatusCode::OK),
        }
        assert!(
            tokio::time::Instant::now() < refused_at,
            "still accepted long after another node revoked it"
        );
        tokio::time::sleep(MAX_AGE / 10).await;
    }
    app.stop().await;
}
on_both!(a_token_revoked_through_another_node_is_refused_within_a_second);

/// While another process (a second node, the CLI) holds SQLite's write lock, a revocation
/// waits for it instead of failing. The revocation reads the token before it writes; a
/// transaction that takes the lock only at its first write is refused at once ("database is
/// locked", a 500) when the lock is held, since SQLite never runs the busy handler for that
/// upgrade.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_waits_for_another_process_holding_the_sqlite_write_lock() {
    use sqlx::{Connection, Executor};
    let app = TestApp::spawn(Db::Sqlite).await;
    let made = app
        .admin_post("/api/v1/tokens", &json!({"scope": "ci", "name": "builds"}))
        .await;
    let secret = made["token"].as_str().unwrap().to_string();
    let url = format!(
        "{}/api/v1/tokens/{}",
        app.base,
        made["id"].as_str().unwrap()
    );

    sqlx::any::install_default_drivers();
    let mut holder = sqlx::AnyConnection::connect(&app.database_url)
        .await
        .unwrap();
    holder.execute("BEGIN IMMEDIATE").await.unwrap();
    let mut revoking = tokio::spawn({
        let request = app.http.delete(url).bearer_auth(&app.admin);
        async move { request.send().await.unwrap().status() }
    });
    // Refused, it would have answered within milliseconds; waiting, it answers only after
    // the holder commits (or after the 30 s busy timeout).
    let early = tokio::time::timeout(std::time::Duration::from_millis(500), &mut revoking).await;
    assert!(
        early.is_err(),
        "the revocation answered while another process held the write lock: {early:?}"
    );
    holder.execute("COMMIT").await.unwrap();
    assert_eq!(revoking.await.unwrap(), StatusCode::OK);
    assert_eq!(
        agent_status(&app, &secret).await,
        StatusCode::UNAUTHORIZED,
        "the token is revoked"
    );
    app.stop().await;
}

/// A scan of `repo` with `token`; returns the scan id.
async fn scan_of(app: &TestApp, token: &str, repo: &str, unique_id: &str) -> (StatusCode, Value) {
    let mut body = fixture("01-post-scans.request.json");
    body["project_metadata"]["repository"] = json!(repo);
    body["scan_metadata"]["unique_id"] = json!(unique_id);
    app.call(Method::POST, "/api/cli/v2/scans", Some(token), Some(&body))
        .await
}

async fn ci_tokens_reach_only_their_projects(db: Db) {
    let app = TestApp::spawn(db).await;
    let scoped = app
        .admin_post(
            "/api/v1/tokens",
            &json!({"scope": "ci", "name": "acme builds", "repos": ["acme/*"]}),
        )
        .await["token"]
        .as_str()
        .unwrap()
        .to_string();
    // Another project's scan, made with the deployment-wide CI token, with open findings.
    let (status, v) = scan_of(&app, &app.ci, "other/app", "other-1").await;
    assert_eq!(status, StatusCode::OK);
    let other = v["info"]["id"].as_i64().unwrap();
    app.ci_post(
        &format!("/api/agent/scans/{other}/results"),
        &fixture("03-post-results.request.json"),
    )
    .await;
    app.ci_post(
        &format!("/api/agent/scans/{other}/complete"),
        &json!({"exit_code": 0}),
    )
    .await;
    let open_before = app.findings("repos=other/app&status=open").await.len();
    assert!(open_before > 0);

    // The scoped token scans its own projects only…
    let (status, v) = scan_of(&app, &scoped, "other/app", "other-2").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("acme/*"),
        "{v}"
    );
    let (status, _) = scan_of(&app, &scoped, "acme/sample", "acme-1").await;
    assert_eq!(status, StatusCode::OK);
    // …and another project's scan does not exist for it: it cannot close its findings.
    let empty =
        json!({"findings": [], "searched_paths": ["app.py"], "rule_ids": ["python-eval-use"]});
    for (method, path, body) in [
        (
            Method::POST,
            format!("/api/agent/scans/{other}/results"),
            Some(&empty),
        ),
        (
            Method::POST,
            format!("/api/agent/scans/{other}/complete"),
            Some(&json!({"exit_code": 0})),
        ),
        (
            Method::POST,
            format!("/api/agent/scans/{other}/error"),
            Some(&json!({"exit_code": 2})),
        ),
        (
            Method::GET,
            "/api/cli/v2/scans/other-1/config".to_string(),
            None,
        ),
    ] {
        let (status, v) = app.call(method.clone(), &path, Some(&scoped), body).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {v}");
    }
    assert_eq!(
        app.findings("repos=other/app&status=open").await.len(),
        open_before,
        "nothing of the other project changed"
    );
    app.stop().await;
}
on_both!(ci_tokens_reach_only_their_projects);

async fn sign_in_is_throttled_and_sessions_are_capped(db: Db) {
    let app = TestApp::spawn(db).await;
    // Ten sessions at most per token: the eleventh sign-in ends the first.
    let first = Browser::sign_in(&app).await;
    let mut last = None;
    for _ in 0..10 {
        last = Some(Browser::sign_in(&app).await);
    }
    assert_eq!(first.get("/projects").await.status, StatusCode::SEE_OTHER);
    assert_eq!(last.unwrap().get("/projects").await.status, StatusCode::OK);

    // Ten failures from one address, then even the right token waits.
    for _ in 0..scanhook::state::SIGN_IN_FAILURES {
        let (a, _) = sign_in_with(&app, "shk_wrong").await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    }
    let http = client();
    let form = http
        .get(format!("{}/login", app.base))
        .send()
        .await
        .unwrap();
    let login_cookie = cookie_of(&form, "scanhook_login").unwrap();
    let nonce = input_value(&form.text().await.unwrap(), "csrf").unwrap();
    let r = http
        .post(format!("{}/login", app.base))
        .header(COOKIE, login_cookie)
        .form(&[("csrf", nonce.as_str()), ("token", app.admin.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = r.headers()[RETRY_AFTER].to_str().unwrap().parse().unwrap();
    assert!((1..=600).contains(&wait), "{wait}");
    assert!(cookie_of(&r, "scanhook_session").is_none());
    assert!(r.text().await.unwrap().contains("Too many failed sign-ins"));
    app.stop().await;
}
on_both!(sign_in_is_throttled_and_sessions_are_capped);

/// Signs in with `next`; returns the status and where it sends the browser.
async fn sign_in_to(
    app: &TestApp,
    query_next: &str,
    form_next: &str,
) -> (StatusCode, Option<String>, Option<String>) {
    let http = client();
    let form = http
        .get(format!("{}/login?next={query_next}", app.base))
        .send()
        .await
        .unwrap();
    let login_cookie = cookie_of(&form, "scanhook_login").unwrap();
    let html = form.text().await.unwrap();
    let nonce = input_value(&html, "csrf").unwrap();
    let offered = input_value(&html, "next");
    let r = http
        .post(format!("{}/login", app.base))
        .header(COOKIE, login_cookie)
        .form(&[
            ("csrf", nonce.as_str()),
            ("token", app.admin.as_str()),
            ("next", form_next),
        ])
        .send()
        .await
        .unwrap();
    let to = r
        .headers()
        .get(LOCATION)
        .map(|l| l.to_str().unwrap().to_string());
    (r.status(), to, offered)
}

#[tokio::test]
async fn sign_in_returns_only_to_this_site() {
    let app = TestApp::spawn(Db::Sqlite).await;
    for next in [
        "/\t/evil.example/",
        "/\n/evil.example/",
        "/\r\nSet-Cookie: x=1",
        "//evil.example/",
        "/\\evil.example/",
        "/ /evil.example/",
        "/%09/evil.example/",
        "/%2F/evil.example/",
        "https://evil.example/",
        "javascript:alert(1)",
        "",
    ] {
        let encoded: String = url::form_urlencoded::byte_serialize(next.as_bytes()).collect();
        let (status, to, offered) = sign_in_to(&app, &encoded, next).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{next:?}");
        assert_eq!(to.as_deref(), Some("/projects"), "{next:?}");
        assert_eq!(
            offered.as_deref(),
            Some("/projects"),
            "the form does not carry {next:?}"
        );
    }
    let (_, to, _) = sign_in_to(&app, "%2Ffindings%3Fstatus%3Dopen", "/findings?status=open").await;
    assert_eq!(
        to.as_deref(),
        Some("/findings?status=open"),
        "a path of this site is followed"
    );

    // Triage's `back` is held to the same rule, on a finding that exists (so the redirect
    // is really made, not a 404 before it).
    let id = app
        .ci_post("/api/cli/v2/scans", &fixture("01-post-scans.request.json"))
        .await["info"]["id"]
        .as_i64()
        .unwrap();
    app.ci_post(
        &format!("/api/agent/scans/{id}/results"),
        &fixture("03-post-results.request.json"),
    )
    .await;
    app.ci_post(
        &format!("/api/agent/scans/{id}/complete"),
        &json!({"exit_code": 0}),
    )
    .await;
    let finding = app.findings("").await[0]["id"].as_i64().unwrap();
    let triage = format!("/findings/{finding}/triage");
    let b = Browser::sign_in(&app).await;
    for (action, back) in [
        ("ignore", "/\t/evil.example/"),
        ("reopen", "//evil.example/"),
        ("ignore", "/%2F/evil.example/"),
        ("reopen", "https://evil.example/"),
    ] {
        let r = b.post(&triage, &[("action", action), ("back", back)]).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{back:?}");
        let done = if action == "ignore" {
            "ignored"
        } else {
            "reopened"
        };
        assert_eq!(
            r.location.as_deref(),
            Some(format!("/findings?done={done}").as_str()),
            "{back:?} is not followed"
        );
    }
    let r = b
        .post(
            &triage,
            &[("action", "ignore"), ("back", "/findings?status=open")],
        )
        .await;
    assert_eq!(
        r.location.as_deref(),
        Some("/findings?status=open&done=ignored"),
        "a path of this site is followed"
    );
    app.stop().await;
}

#[tokio::test]
async fn over_https_the_session_cookie_is_host_prefixed_and_secure() {
    let app = TestApp::spawn_with(Db::Sqlite, |c| {
        c.public_url = "https://scanhook.example.com".into()
    })
    .await;
    let http = client();
    let form = http
        .get(format!("{}/login", app.base))
        .send()
        .await
        .unwrap();
    let login_cookie = cookie_of(&form, "scanhook_login").unwrap();
    let nonce = input_value(&form.text().await.unwrap(), "csrf").unwrap();
    let r = http
        .post(format!("{}/login", app.base))
        .header(COOKIE, login_cookie)
        .form(&[("csrf", nonce.as_str()), ("token", app.admin.as_str())])
        .send()
        .await
        .unwrap();
    let set: Vec<String> = r
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    let session = set
        .iter()
        .find(|c| c.starts_with("__Host-scanhook_session="))
        .unwrap_or_else(|| panic!("{set:?}"));
    for part in ["Secure", "Path=/", "HttpOnly", "SameSite=Strict"] {
        assert!(session.contains(part), "{session}");
    }
    assert!(!session.contains("Domain"), "{session}");
    let cookie = session.split(';').next().unwrap().to_string();
    let page = http
        .get(format!("{}/projects", app.base))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(
        page.status(),
        StatusCode::OK,
        "the prefixed cookie opens pages"
    );
    // The unprefixed name is not taken over https.
    let plain = cookie.replacen("__Host-", "", 1);
    let page = http
        .get(format!("{}/projects", app.base))
        .header(COOKIE, plain)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::SEE_OTHER);
    app.stop().await;
}

async fn the_tokens_page_makes_shows_once_and_revokes(db: Db) {
    let app = TestApp::spawn(db).await;
    let b = Browser::sign_in(&app).await;
    let page = b.page("/settings/tokens").await;
    assert!(
        page.contains("this session"),
        "the session's own token is marked"
    );
    let r = b
        .http
        .post(format!("{}/settings/tokens", b.base))
        .header(COOKIE, &b.cookie)
        .form(&[
            ("csrf", b.csrf.as_str()),
            ("scope", "ci"),
            ("name", "GitHub Actions"),
            ("repos", "acme/*, tools/*"),
            ("expires_in", "30d"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let html = r.text().await.unwrap();
    let at = html.find("id=\"new-token\">").expect("the token is shown") + 15;
    let secret = &html[at..at + html[at..].find('<').unwrap()];
    assert!(secret.starts_with("shk_"), "{secret}");
    assert!(
        !b.page("/settings/tokens").await.contains(secret),
        "shown once"
    );
    let made = tokens(&app).await;
    let t = made.iter().find(|t| t["name"] == "GitHub Actions").unwrap();
    assert_eq!(t["repos"], json!(["acme/*", "tools/*"]));
    let (status, _) = scan_of(&app, secret, "acme/sample", "ui-made").await;
    assert_eq!(status, StatusCode::OK, "the token works");

    let bad = b
        .post(
            "/settings/tokens",
            &[("scope", "admin"), ("repos", "acme/*")],
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.html.contains("only CI tokens"), "{}", bad.html);

    let id = t["id"].as_str().unwrap();
    let r = b.post(&format!("/settings/tokens/{id}/revoke"), &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let (status, _) = scan_of(&app, secret, "acme/sample", "ui-made-2").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Revoking this session's own token signs it out.
    let own = tokens(&app)
        .await
        .iter()
        .find(|t| t["scope"] == "admin")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = b.post(&format!("/settings/tokens/{own}/revoke"), &[]).await;
    assert_eq!(r.location.as_deref(), Some("/login"));
    assert_eq!(b.get("/projects").await.status, StatusCode::SEE_OTHER);
    app.stop().await;
}
on_both!(the_tokens_page_makes_shows_once_and_revokes);

async fn what_results_accepts_complete_processes(db: Db) {
    let app = TestApp::spawn(db).await;
    let id = app
        .ci_post("/api/cli/v2/scans", &fixture("01-post-scans.request.json"))
        .await["info"]["id"]
        .as_i64()
        .unwrap();
    let mut results = fixture("03-post-results.request.json");
    let mut deep = json!("bottom");
    for _ in 0..200 {
        deep = json!([deep]);
    }
    results["findings"][1]["metadata"]["nested"] = deep;
    let (status, v) = app
        .call(
            Method::POST,
            &format!("/api/agent/scans/{id}/results"),
            Some(&app.ci),
            Some(&results),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("findings[1]") && message.contains("nested"),
        "{message}"
    );
    // Depth the readers take is accepted, and the scan completes.
    let mut results = fixture("03-post-results.request.json");
    let mut ok = json!("bottom");
    for _ in 0..60 {
        ok = json!({"k": ok});
    }
    results["findings"][1]["metadata"]["nested"] = ok;
    app.ci_post(&format!("/api/agent/scans/{id}/results"), &results)
        .await;
    let done = app
        .ci_post(
            &format!("/api/agent/scans/{id}/complete"),
            &json!({"exit_code": 0}),
        )
        .await;
    assert_eq!(done["success"], true);
    app.stop().await;
}
on_both!(what_results_accepts_complete_processes);

async fn names_and_metadata_hide_nothing(db: Db) {
    let app = TestApp::spawn(db).await;
    let mut body = fixture("01-post-scans.request.json");
    for (key, value) in [
        (
            "branch",
            json!("main\n2026-12-01T00:00:00Z  INFO web UI session opened"),
        ),
        ("branch", json!("main\u{1b}[2J")),
        ("branch", json!("ma\u{0}in")),
        ("branch", json!("x".repeat(1_500_000))),
        ("repository", json!("acme/\u{202e}ipa")),
        ("commit_title", json!("fix\u{0}")),
        ("commit_author_name", json!("x".repeat(5000))),
    ] {
        let mut b = body.clone();
        b["project_metadata"][key] = value;
        let (status, v) = app
            .call(Method::POST, "/api/cli/v2/scans", Some(&app.ci), Some(&b))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{key}: {v}");
        assert!(v["error"]["message"].as_str().unwrap().contains(key), "{v}");
    }
    // A commit title may hold line breaks: it is free text.
    body["project_metadata"]["commit_title"] = json!("fix: a\n\nbody");
    app.ci_post("/api/cli/v2/scans", &body).await;
    for (path, field) in [("/api/v1/integrations", "name"), ("/api/v1/tokens", "name")] {
        let mut b = json!({"url": "https://hooks.example.com/x", "scope": "ci"});
        b[field] = json!("Alerts\u{202e}txt.exe");
        let (status, v) = app
            .call(Method::POST, path, Some(&app.admin), Some(&b))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {v}");
    }
    let (status, v) = app
        .call(
            Method::POST,
            "/api/v1/rules",
            Some(&app.admin),
            Some(&json!({"files": [{"name": "r.yml", "content": crate::harness::fixture_text("sample-rules.yml")}], "policy": "Web\u{2066} Apps"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    app.stop().await;
}
on_both!(names_and_metadata_hide_nothing);

async fn fail_open_reports_are_capped_and_rotated(db: Db) {
    let app = TestApp::spawn(db).await;
    let big = json!({"error": "x".repeat(300 * 1024), "request_id": "r", "exit_code": 2});
    let (status, v) = app
        .call(Method::POST, "/failure", Some(&app.ci), Some(&big))
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    let kept = scanhook::store::scans::FAILURES_KEPT;
    for n in 0..kept + 5 {
        app.ci_post(
            "/failure",
            &json!({"error": "boom", "request_id": format!("r{n}"), "exit_code": 2}),
        )
        .await;
    }
    let dep = app.store().first_deployment().await.unwrap().unwrap();
    assert_eq!(app.store().count_failures(dep.id).await.unwrap(), kept);
    app.stop().await;
}
on_both!(fail_open_reports_are_capped_and_rotated);

/// What a client sends is logged escaped: the real binary's log has one line per record.
/// The log filter is the one every Rust user types first, `RUST_LOG`.
#[tokio::test]
async fn clients_cannot_forge_log_lines() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_scanhook"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(dir.path())
        .env("RUST_LOG", "info,tower_http=debug")
        .env_remove("SCANHOOK_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let admin = BufReader::new(stdout)
        .lines()
        .map(Result::unwrap)
        .find_map(|l| l.trim().strip_prefix("shk_").map(|t| format!("shk_{t}")))
        .expect("the first start prints an admin token");
    let http = reqwest::Client::new();
    let ci: Value = http
        .post(format!("{base}/api/v1/tokens"))
        .bearer_auth(&admin)
        .json(&json!({"scope": "ci"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let forged = "r1\n2026-12-01T00:00:00.000000Z  INFO scanhook: web UI session opened\u{1b}[2J";
    let r = http
        .post(format!("{base}/failure"))
        .bearer_auth(ci["token"].as_str().unwrap())
        .json(&json!({"error": "x", "request_id": forged, "exit_code": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("tower_http"),
        "RUST_LOG is honoured (it turned tower_http's debug lines on):\n{log}"
    );
    let report = log
        .lines()
        .find(|l| l.contains("fail-open"))
        .unwrap_or_else(|| panic!("the report is logged (RUST_LOG=info is honoured):\n{log}"));
    assert!(
        report.contains("r1") && report.contains("web UI session opened"),
        "the whole value is on the report's own line: {report}"
    );
    assert!(
        !log.lines()
            .any(|l| l.starts_with("2026-12-01T00:00:00.000000Z")),
        "a forged line:\n{log}"
    );
    assert!(
        !log.contains('\u{1b}'),
        "no raw escape sequence reaches the terminal"
    );
}

/// The `secret` column of every integration, as the database holds it.
async fn stored_secrets(database_url: &str) -> Vec<String> {
    use sqlx::{Connection, Row};
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(database_url).await.unwrap();
    let rows = sqlx::query("SELECT secret FROM integrations ORDER BY id")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    conn.close().await.ok();
    rows.iter().map(|r| r.get::<String, _>("secret")).collect()
}

async fn secrets_are_sealed_at_rest_and_rotate(db: Db) {
    use scanhook::secrets::SecretKey;
    use scanhook::store::Store;
    let app = TestApp::spawn(db).await;
    let mut plain = Vec::new();
    for name in ["feed", "older"] {
        let made = app
            .admin_post(
                "/api/v1/integrations",
                &json!({"name": name, "url": "https://hooks.example.com/x"}),
            )
            .await;
        plain.push(made["secret"].as_str().unwrap().to_string());
    }
    // A chat URL is a credential too: sealed, and re-sealed by a rotation.
    let slack_url = "https://hooks.slack.com/services/T0/B0/sealedurlsecret";
    let made = app
        .admin_post(
            "/api/v1/integrations",
            &json!({"kind": "slack", "name": "chat", "url": slack_url}),
        )
        .await;
    plain.push(made["secret"].as_str().unwrap().to_string());
    assert!(plain[0].starts_with("whsec_"), "admins still see it");
    let stored = stored_secrets(&app.database_url).await;
    assert!(stored.iter().all(|s| s.starts_with("enc1:")), "{stored:?}");
    assert!(
        !stored[0].contains(&plain[0][6..]),
        "the database does not hold it in clear"
    );

    // Another key does not open this database.
    let store = Store::connect(&app.database_url).await.unwrap();
    let e = store
        .clone()
        .with_key(SecretKey::generate())
        .adopt_key()
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("same key file"), "{e}");

    // A secret written in clear (before sealing existed) is sealed on the next start.
    {
        use sqlx::Connection;
        let mut conn = sqlx::AnyConnection::connect(&app.database_url)
            .await
            .unwrap();
        sqlx::query("UPDATE integrations SET secret = $1 WHERE name = 'older'")
            .bind(&plain[1])
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.ok();
    }
    let key = SecretKey::read(&app.key_file).unwrap();
    store.clone().with_key(key).adopt_key().await.unwrap();
    let stored = stored_secrets(&app.database_url).await;
    assert!(stored[1].starts_with("enc1:"), "{stored:?}");

    // Rotation re-seals everything under the new key; the old one no longer opens it.
    let new_key = app.key_file.with_file_name("new.key");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_scanhook"))
        .args(["rotate-secret-key", "--new-key-file"])
        .arg(&new_key)
        .arg("--secret-key-file")
        .arg(&app.key_file)
        .arg("--database-url")
        .arg(&app.database_url)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("3 integration secret(s) re-sealed"), "{err}");
    let rotated = stored_secrets(&app.database_url).await;
    assert!(rotated
        .iter()
        .zip(&stored)
        .all(|(a, b)| a != b && a.starts_with("enc1:")));
    let new = store.clone().with_key(SecretKey::read(&new_key).unwrap());
    new.adopt_key().await.unwrap();
    let dep = new.first_deployment().await.unwrap().unwrap();
    let secrets: Vec<String> = new
        .list_integrations(dep.id)
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.secret.expose().to_string())
        .collect();
    assert_eq!(secrets, plain, "the same secrets, under the new key");
    let chat = new.list_integrations(dep.id).await.unwrap().pop().unwrap();
    assert_eq!(
        chat.url.as_str(),
        slack_url,
        "the chat URL opens under the new key"
    );
    {
        use sqlx::{Connection, Row};
        let mut conn = sqlx::AnyConnection::connect(&app.database_url)
            .await
            .unwrap();
        let row = sqlx::query("SELECT url, sealed_url FROM integrations WHERE name = 'chat'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        let (url, sealed): (String, String) = (row.get("url"), row.get("sealed_url"));
        conn.close().await.ok();
        assert!(!url.contains("sealedurlsecret") && !sealed.contains("sealedurlsecret"));
        assert!(sealed.starts_with("enc1:"), "{sealed}");
    }
    let old = store.with_key(SecretKey::read(&app.key_file).unwrap());
    assert!(old.adopt_key().await.is_err(), "the old key is refused");
    app.stop().await;
}
on_both!(secrets_are_sealed_at_rest_and_rotate);

/// The data directory and everything in it are its owner's only.
#[cfg(unix)]
#[tokio::test]
async fn the_data_directory_is_private() {
    use std::os::unix::fs::PermissionsExt;
    use std::process::{Command, Stdio};
    let parent = tempfile::tempdir().unwrap();
    let data = parent.path().join("data");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_scanhook"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(&data)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while reqwest::get(format!("http://127.0.0.1:{port}/readyz"))
        .await
        .is_err()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "serve did not come up"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700, "the data directory");
    for f in [
        "scanhook.db",
        "scanhook.db-wal",
        "scanhook.db-shm",
        "secret.key",
    ] {
        let p = data.join(f);
        assert!(p.exists(), "{f}");
        assert_eq!(mode(&p), 0o600, "{f}");
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

/// A body held open by a client that sends `sent` of its `declared` bytes, then stalls.
async fn stalled_upload(
    app: &TestApp,
    scan: i64,
    declared: usize,
    sent: usize,
) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let addr = app.base.trim_start_matches("http://").to_string();
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /api/agent/scans/{scan}/results HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {declared}\r\n\r\n",
        app.ci
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.write_all(&vec![b' '; sent]).await.unwrap();
    conn.flush().await.unwrap();
    conn
}

async fn uploads_in_flight_are_bounded(db: Db) {
    let app = TestApp::spawn_with(db, |c| {
        c.max_results_bytes = 1024 * 1024;
        c.max_uploads_in_flight_bytes = 1024 * 1024;
        c.upload_wait = std::time::Duration::from_millis(200);
    })
    .await;
    let scan = app
        .ci_post("/api/cli/v2/scans", &fixture("01-post-scans.request.json"))
        .await["info"]["id"]
        .as_i64()
        .unwrap();
    // A valid upload of 300 KB: more than the room the held one leaves.
    let mut padded = serde_json::to_vec(&fixture("03-post-results.request.json")).unwrap();
    padded.resize(300_000, b' ');
    // Wait until the stalled upload holds its room: a second one is turned away, to retry.
    let held = stalled_upload(&app, scan, 900_000, 10).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let refused = loop {
        let r = app
            .http
            .post(format!("{}/api/agent/scans/{scan}/results", app.base))
            .bearer_auth(&app.ci)
            .header("content-type", "application/json")
            .body(padded.clone())
            .send()
            .await
            .unwrap();
        if r.status() == StatusCode::SERVICE_UNAVAILABLE {
            break r;
        }
        assert_eq!(r.status(), StatusCode::OK);
        assert!(
            std::time::Instant::now() < deadline,
            "the held upload never took its room"
        );
    };
    assert_eq!(refused.headers()[RETRY_AFTER], "5");
    let v: Value = refused.json().await.unwrap();
    assert_eq!(v["error"]["code"], "uploads_busy", "{v}");
    // When the holder goes, its room comes back.
    drop(held);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (status, v) = app
            .raw(
                Method::POST,
                &format!("/api/agent/scans/{scan}/results"),
                Some(&app.ci),
                padded.clone(),
                "application/json",
            )
            .await;
        if status == StatusCode::OK {
            break;
        }
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{v}");
        assert!(
            std::time::Instant::now() < deadline,
            "the room never came back"
        );
    }
    app.ci_post(
        &format!("/api/agent/scans/{scan}/complete"),
        &json!({"exit_code": 0}),
    )
    .await;
    app.stop().await;
}
on_both!(uploads_in_flight_are_bounded);
