//! The web UI over HTTP, as a browser sends it: sessions, CSRF, escaping of what users type,
//! forms that refuse bad input without changing anything, and snapshots of every page.

use crate::harness::{fixture, fixture_text, Db, TestApp};
use crate::on_both;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::StatusCode;
use serde_json::json;

/// A signed-in browser: the session cookie and the page's CSRF token.
pub(crate) struct Browser {
    pub(crate) http: reqwest::Client,
    pub(crate) base: String,
    pub(crate) cookie: String,
    pub(crate) csrf: String,
}

/// What a page answered.
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) location: Option<String>,
    pub(crate) html: String,
}

pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

pub(crate) async fn answer(r: reqwest::Response) -> Answer {
    Answer {
        status: r.status(),
        location: r
            .headers()
            .get(LOCATION)
            .map(|v| v.to_str().unwrap().to_string()),
        html: r.text().await.unwrap(),
    }
}

/// The `value` of the first `<input name="NAME">` in the page.
pub(crate) fn input_value(html: &str, name: &str) -> Option<String> {
    let at = html.find(&format!("name=\"{name}\" value=\""))?;
    let rest = &html[at + name.len() + 15..];
    Some(rest[..rest.find('"')?].to_string())
}

pub(crate) fn cookie_of(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with(&format!("{name}=")))
        .map(|c| c.split(';').next().unwrap().to_string())
}

/// Submits the sign-in form with `token`; returns the answer and the session cookie.
pub(crate) async fn sign_in_with(app: &TestApp, token: &str) -> (Answer, Option<String>) {
    let http = client();
    let form = http
        .get(format!("{}/login", app.base))
        .send()
        .await
        .unwrap();
    let login_cookie = cookie_of(&form, "scanhook_login").expect("the form sets its cookie");
    let nonce = input_value(&form.text().await.unwrap(), "csrf").unwrap();
    let r = http
        .post(format!("{}/login", app.base))
        .header(COOKIE, login_cookie)
        .form(&[
            ("csrf", nonce.as_str()),
            ("token", token),
            ("next", "/findings"),
        ])
        .send()
        .await
        .unwrap();
    let session = cookie_of(&r, "scanhook_session");
    (answer(r).await, session)
}

impl Browser {
    pub(crate) async fn sign_in(app: &TestApp) -> Browser {
        Browser::sign_in_as(app, &app.admin).await
    }

    /// Signs in with another admin token.
    pub(crate) async fn sign_in_as(app: &TestApp, token: &str) -> Browser {
        let (a, cookie) = sign_in_with(app, token).await;
        assert_eq!(a.status, StatusCode::SEE_OTHER);
        assert_eq!(a.location.as_deref(), Some("/findings"));
        let mut b = Browser {
            http: client(),
            base: app.base.clone(),
            cookie: cookie.expect("a session cookie"),
            csrf: String::new(),
        };
        let page = b.get("/projects").await;
        b.csrf = input_value(&page.html, "csrf").expect("pages carry the CSRF token");
        b
    }

    pub(crate) async fn get(&self, path: &str) -> Answer {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .header(COOKIE, &self.cookie)
            .send()
            .await
            .unwrap();
        answer(r).await
    }

    /// A page that must render.
    pub(crate) async fn page(&self, path: &str) -> String {
        let a = self.get(path).await;
        assert_eq!(a.status, StatusCode::OK, "GET {path}: {}", a.html);
        a.html
    }

    /// Posts a form with this session's CSRF token.
    pub(crate) async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Answer {
        let mut all = vec![("csrf", self.csrf.as_str())];
        all.extend_from_slice(fields);
        self.post_raw(path, &all).await
    }

    /// Posts exactly these fields.
    async fn post_raw(&self, path: &str, fields: &[(&str, &str)]) -> Answer {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .header(COOKIE, &self.cookie)
            .form(fields)
            .send()
            .await
            .unwrap();
        answer(r).await
    }

    /// Uploads rule files through the Policies form (multipart, as a browser sends it).
    async fn upload(&self, files: &[(&str, &str)], fields: &[(&str, &str)]) -> Answer {
        let boundary = "scanhookboundary7MA4YWxkTrZu0gW";
        let mut body = String::new();
        let mut all = vec![("csrf", self.csrf.as_str())];
        all.extend_from_slice(fields);
        for (k, v) in all {
            body.push_str(&format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n"
            ));
        }
        for (name, content) in files {
            body.push_str(&format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{name}\"\r\n\
                 Content-Type: application/x-yaml\r\n\r\n{content}\r\n"
            ));
        }
        body.push_str(&format!("--{boundary}--\r\n"));
        let r = self
            .http
            .post(format!("{}/policies/upload", self.base))
            .header(COOKIE, &self.cookie)
            .header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(body)
            .send()
            .await
            .unwrap();
        answer(r).await
    }
}

/// Every page of the UI.
const PAGES: &[&str] = &[
    "/projects",
    "/scans",
    "/findings",
    "/policies",
    "/policies/modes",
    "/policies/modes/block",
    "/settings/integrations",
    "/settings/integrations/add",
    "/settings/integrations/add/webhook",
];

/// Every form action of the UI (ids need not exist: the session is checked first).
const ACTIONS: &[&str] = &[
    "/logout",
    "/findings/1/triage",
    "/policies/mode",
    "/policies/upload",
    "/policies/modes/block",
    "/settings/integrations/add/webhook",
    "/settings/integrations/int_x",
    "/settings/integrations/int_x/enabled",
    "/settings/integrations/int_x/rotate",
    "/settings/integrations/int_x/reveal",
    "/settings/integrations/int_x/delete",
    "/settings/integrations/int_x/recover",
    "/deliveries/msg_x/resend",
];

async fn integrations(app: &TestApp) -> Vec<serde_json::Value> {
    app.admin_get("/api/v1/integrations").await["integrations"]
        .as_array()
        .unwrap()
        .clone()
}

async fn nothing_works_without_a_session(db: Db) {
    let app = TestApp::spawn(db).await;
    let http = client();
    for path in PAGES
        .iter()
        .chain(&["/scans/x", "/rules/r", "/deliveries/m"])
    {
        let r = http
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "GET {path}");
        let to = r.headers()[LOCATION].to_str().unwrap();
        assert!(to.starts_with("/login?next="), "GET {path} → {to}");
    }
    // A stale or forged session cookie is no session either.
    let r = http
        .get(format!("{}/projects", app.base))
        .header(COOKIE, "scanhook_session=forged")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    // An API bearer token does not open UI pages.
    let r = http
        .get(format!("{}/projects", app.base))
        .bearer_auth(&app.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    for path in ACTIONS {
        let r = http
            .post(format!("{}{path}", app.base))
            .form(&[("name", "x"), ("url", "https://example.com/hook")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "POST {path}");
        assert!(r.text().await.unwrap().contains("not signed in"));
    }
    assert!(integrations(&app).await.is_empty());
    app.stop().await;
}
on_both!(nothing_works_without_a_session);

async fn every_form_needs_the_csrf_token(db: Db) {
    let app = TestApp::spawn(db).await;
    let b = Browser::sign_in(&app).await;
    let fields = [("name", "Feed"), ("url", "https://example.com/hook")];
    for path in ACTIONS {
        let missing = b.post_raw(path, &fields).await;
        assert_eq!(missing.status, StatusCode::FORBIDDEN, "POST {path}");
        assert!(missing.html.contains("CSRF"), "{}", missing.html);
        let mut wrong = vec![("csrf", "not-the-token")];
        wrong.extend_from_slice(&fields);
        assert_eq!(
            b.post_raw(path, &wrong).await.status,
            StatusCode::FORBIDDEN,
            "POST {path}"
        );
    }
    assert!(
        integrations(&app).await.is_empty(),
        "no form changed anything"
    );
    // Signing out needs the token too: the session above still works.
    assert_eq!(b.get("/projects").await.status, StatusCode::OK);
    app.stop().await;
}
on_both!(every_form_needs_the_csrf_token);

async fn sign_in_takes_admin_tokens_and_sign_out_ends_the_session(db: Db) {
    let app = TestApp::spawn(db).await;
    let (ci, cookie) = sign_in_with(&app, &app.ci).await;
    assert_eq!(ci.status, StatusCode::UNAUTHORIZED);
    assert!(ci.html.contains("CI tokens cannot sign in"));
    assert!(cookie.is_none());
    let (wrong, cookie) = sign_in_with(&app, "shk_not_a_token").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(cookie.is_none());

    // The sign-in form itself is guarded: no form cookie, no session.
    let r = client()
        .post(format!("{}/login", app.base))
        .form(&[("csrf", "guess"), ("token", app.admin.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(cookie_of(&r, "scanhook_session").is_none());

    // Only same-site paths are followed after signing in.
    let http = client();
    let form = http
        .get(format!("{}/login?next=//evil.example/x", app.base))
        .send()
        .await
        .unwrap();
    let login_cookie = cookie_of(&form, "scanhook_login").unwrap();
    let html = form.text().await.unwrap();
    let nonce = input_value(&html, "csrf").unwrap();
    assert_eq!(input_value(&html, "next").as_deref(), Some("/projects"));
    let r = http
        .post(format!("{}/login", app.base))
        .header(COOKIE, login_cookie)
        .form(&[
            ("csrf", nonce.as_str()),
            ("token", app.admin.as_str()),
            ("next", "https://evil.example/"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()[LOCATION], "/projects");
    let set = r
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("scanhook_session="))
        .unwrap();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );

    let b = Browser::sign_in(&app).await;
    let out = b.post("/logout", &[]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert_eq!(out.location.as_deref(), Some("/login"));
    assert_eq!(b.get("/projects").await.status, StatusCode::SEE_OTHER);
    assert_eq!(
        b.post("/settings/integrations/add/webhook", &[])
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    app.stop().await;
}
on_both!(sign_in_takes_admin_tokens_and_sign_out_ends_the_session);

/// Form fields with the events the form checks by default (the seed's two).
fn with_seed_events<'a>(fields: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut all = fields.to_vec();
    all.extend([("events", "semgrep_scan"), ("events", "semgrep_finding")]);
    all
}

const HOSTILE_RULE: &str = r#"rules:
  - id: hostile-message
    languages: [python]
    severity: ERROR
    message: <img src=x onerror=alert(1)> "quoted" & more
    pattern: eval(...)
"#;

async fn what_users_type_stays_text(db: Db) {
    let app = TestApp::spawn(db).await;
    let b = Browser::sign_in(&app).await;
    let name = r#"<script>alert("name")</script>"#;
    let url = r#"https://example.com/hook?a="><script>alert(2)</script>"#;
    let saved = b
        .post(
            "/settings/integrations/add/webhook",
            &with_seed_events(&[("action", "save"), ("name", name), ("url", url)]),
        )
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.html);
    let id = integrations(&app).await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    app.admin_post(
        "/api/v1/modes/comment/notify",
        &json!({"integration_ids": [id]}),
    )
    .await;
    let up = b.upload(&[("hostile.yml", HOSTILE_RULE)], &[]).await;
    assert_eq!(up.status, StatusCode::SEE_OTHER, "{}", up.html);
    for path in [
        "/settings/integrations".to_string(),
        format!("/settings/integrations/{id}"),
        format!("/settings/integrations/{id}/delete"),
        format!("/settings/integrations/{id}/deliveries"),
        "/policies".into(),
        "/policies/modes".into(),
        "/policies/modes/comment".into(),
        "/rules/hostile-message".into(),
    ] {
        let html = b.page(&path).await;
        assert!(
            !html.contains("<script>alert"),
            "{path} runs a typed script"
        );
        assert!(!html.contains("<img src=x"), "{path} renders a typed tag");
        assert!(
            html.contains("&lt;script&gt;alert") || html.contains("&lt;img src=x"),
            "{path} shows the typed text escaped"
        );
    }
    app.stop().await;
}
on_both!(what_users_type_stays_text);

async fn forms_refuse_bad_input_and_change_nothing(db: Db) {
    let app = TestApp::spawn(db).await;
    let b = Browser::sign_in(&app).await;
    for (url, says) in [
        ("ftp://example.com/hook", "Webhook URL:"),
        ("https://user:pw@example.com/hook", "Webhook URL:"),
        ("not a url", "Webhook URL:"),
    ] {
        let a = b
            .post(
                "/settings/integrations/add/webhook",
                &with_seed_events(&[("action", "save"), ("name", "Feed"), ("url", url)]),
            )
            .await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{url}");
        assert!(a.html.contains(says), "{url}: {}", a.html);
        assert!(
            a.html.contains("value=\"Feed\""),
            "the form keeps what was typed"
        );
    }
    let a = b
        .post(
            "/settings/integrations/add/webhook",
            &with_seed_events(&[
                ("action", "save"),
                ("name", ""),
                ("url", "https://example.com/h"),
            ]),
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(a.html.contains("Name:"));
    // Every event unchecked: nothing would be sent, so it is refused in words.
    let a = b
        .post(
            "/settings/integrations/add/webhook",
            &[
                ("action", "save"),
                ("name", "Feed"),
                ("url", "https://example.com/h"),
            ],
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(
        a.html
            .contains("Events: subscribe to at least one event type"),
        "{}",
        a.html
    );
    // A filter that does not compile names the field.
    let mut fields = with_seed_events(&[
        ("action", "save"),
        ("name", "Feed"),
        ("url", "https://example.com/h"),
    ]);
    fields.push(("expression", "finding.path.startsWith("));
    let a = b.post("/settings/integrations/add/webhook", &fields).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(
        a.html.contains("Filters: filters.expression:"),
        "{}",
        a.html
    );
    // Test refuses a bad URL in words, without sending anything.
    let a = b
        .post(
            "/settings/integrations/add/webhook",
            &[("action", "test"), ("name", "Feed"), ("url", "gopher://x")],
        )
        .await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.html.contains("Test not sent."));
    assert!(integrations(&app).await.is_empty());

    // A rule file with one bad rule stores none of the file's rules.
    let bad = "rules:\n  - id: ok-rule\n    languages: [python]\n    severity: ERROR\n    message: m\n    pattern: eval(...)\n  - id: broken\n    message: m\n";
    let a = b.upload(&[("mixed.yml", bad)], &[]).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(a.html.contains("mixed.yml"), "{}", a.html);
    let a = b.upload(&[("x.yml", "rules: [")], &[]).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(a.html.contains("invalid YAML"));
    let a = b.upload(&[], &[]).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(a.html.contains("Choose at least one rule file"));
    let rules = app.admin_get("/api/v1/rules").await;
    assert_eq!(rules["rules"], json!([]));

    // Unknown things and bad values are 4xx pages, not panics.
    let a = b
        .post("/policies/mode", &[("rule_id", "nope"), ("mode", "block")])
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert!(a.html.contains("no rule with id"));
    let a = b
        .post("/policies/mode", &[("rule_id", "nope"), ("mode", "loud")])
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        b.get("/policies/modes/loud").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        b.post("/policies/modes/block", &[("integration", "int_nope")])
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        b.get("/settings/integrations/int_nope").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(b.get("/scans/nope").await.status, StatusCode::NOT_FOUND);
    assert_eq!(b.get("/rules/nope").await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        b.get("/deliveries/msg_nope").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        b.post("/findings/999/triage", &[("action", "ignore")])
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        b.post("/findings/999/triage", &[("action", "delete")])
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    let a = b.get("/findings?severities=loud").await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(a.html.contains("unknown severity"));

    let hook = app
        .admin_post(
            "/api/v1/integrations",
            &json!({"name": "Feed", "url": "https://example.com/hook"}),
        )
        .await;
    let id = hook["id"].as_str().unwrap();
    let a = b
        .post(
            &format!("/settings/integrations/{id}"),
            &[
                ("action", "save"),
                ("name", "Renamed"),
                ("url", "file:///etc/passwd"),
            ],
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    let a = b
        .post(
            &format!("/settings/integrations/{id}/recover"),
            &[("since", "yesterday")],
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(a.html.contains("RFC 3339"));
    let now = app.admin_get(&format!("/api/v1/integrations/{id}")).await;
    assert_eq!(now["name"], "Feed");
    assert_eq!(now["url"], "https://example.com/hook");
    app.stop().await;
}
on_both!(forms_refuse_bad_input_and_change_nothing);

/// The captured full scan, through the protocol, with its own unique id.
async fn captured_scan(app: &TestApp) {
    let unique_id = fixture("01-post-scans.request.json")["scan_metadata"]["unique_id"]
        .as_str()
        .unwrap()
        .to_string();
    crate::delivery::scan(app, &unique_id).await;
}

/// HTML with one tag per line and every generated value (ids, times, tokens) replaced.
fn normalized(html: &str, known: &[(&str, &str)]) -> String {
    let mut s = html.replace("><", ">\n<");
    for (value, label) in known {
        s = s.replace(value, label);
    }
    s
}

macro_rules! assert_page_snapshot {
    ($name:expr, $html:expr) => {
        insta::with_settings!({
            filters => vec![
                (r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(\+00:00|Z)", "[time]"),
                (r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", "[time]"),
                (r"whsec_[A-Za-z0-9+/=]+", "[secret]"),
                (r"msg_[A-Za-z0-9]{24}", "[message]"),
                (r"tok_[A-Za-z0-9]{20}", "[token-id]"),
                (r#"name="csrf" value="[A-Za-z0-9]+""#, r#"name="csrf" value="[csrf]""#),
                (r"\b[0-9a-f]{40}\b", "[sha]"),
                (r"\d+(\.\d+)? ms", "[ms]"),
            ],
        }, {
            insta::assert_snapshot!($name, $html);
        });
    };
}

async fn every_page_renders(db: Db) {
    // Nothing is delivered, so every message stays pending and the pages stay the same.
    let app = TestApp::spawn_with(db, |c| c.deliver = false).await;
    let b = Browser::sign_in(&app).await;
    let empty: Vec<(String, String)> = pages_of(
        &b,
        &[
            "/projects",
            "/scans",
            "/findings",
            "/policies",
            "/settings/integrations",
        ],
    )
    .await;

    app.add_rules(&fixture_text("sample-rules.yml"), None, "block")
        .await;
    let hook = app
        .admin_post(
            "/api/v1/integrations",
            &json!({"name": "Security feed", "url": "https://hooks.example.com/semgrep"}),
        )
        .await;
    let hook_id = hook["id"].as_str().unwrap().to_string();
    for mode in ["monitor", "comment", "block"] {
        app.admin_post(
            &format!("/api/v1/modes/{mode}/notify"),
            &json!({"integration_ids": [hook_id]}),
        )
        .await;
    }
    captured_scan(&app).await;
    let public_id = app.latest_scan().await["public_id"]
        .as_str()
        .unwrap()
        .to_string();
    let messages = app
        .admin_get(&format!("/api/v1/deliveries?integration={hook_id}"))
        .await;
    let message = messages["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["kind"] == "semgrep_finding")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let rule = app.findings("").await[0]["rule_name"]
        .as_str()
        .unwrap()
        .to_string();
    let known = [
        (hook_id.as_str(), "[integration]"),
        (public_id.as_str(), "[scan]"),
        (app.base.as_str(), "[base]"),
    ];
    let pages = [
        ("projects", "/projects".to_string()),
        ("scans", "/scans".into()),
        ("scan", format!("/scans/{public_id}")),
        ("findings", "/findings".into()),
        ("findings_ignored", "/findings?status=ignored".into()),
        ("policies", "/policies".into()),
        ("rule", format!("/rules/{rule}")),
        ("rule_modes", "/policies/modes".into()),
        ("rule_mode_edit", "/policies/modes/block".into()),
        ("integrations", "/settings/integrations".into()),
        ("add_integration", "/settings/integrations/add".into()),
        ("add_webhook", "/settings/integrations/add/webhook".into()),
        ("integration", format!("/settings/integrations/{hook_id}")),
        (
            "delete_integration",
            format!("/settings/integrations/{hook_id}/delete"),
        ),
        (
            "deliveries",
            format!("/settings/integrations/{hook_id}/deliveries"),
        ),
        ("delivery", format!("/deliveries/{message}")),
        ("tokens", "/settings/tokens".into()),
    ];
    for (name, path) in &pages {
        let html = b.page(path).await;
        assert_page_snapshot!(format!("ui_{name}"), normalized(&html, &known));
    }
    for (path, html) in &empty {
        let name = format!(
            "ui_empty_{}",
            path.trim_start_matches('/').replace('/', "_")
        );
        assert_page_snapshot!(name, normalized(html, &known));
    }
    let login = client()
        .get(format!("{}/login", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_page_snapshot!("ui_login", normalized(&login, &known));
    app.stop().await;
}
on_both!(every_page_renders);

async fn pages_of(b: &Browser, paths: &[&str]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for p in paths {
        out.push((p.to_string(), b.page(p).await));
    }
    out
}

async fn integration_forms_edit_disable_rotate_delete(db: Db) {
    let app = TestApp::spawn_with(db, |c| c.deliver = false).await;
    let b = Browser::sign_in(&app).await;
    let add = b.page("/settings/integrations/add/webhook").await;
    let offered = input_value(&add, "secret").unwrap();
    let saved = b
        .post(
            "/settings/integrations/add/webhook",
            &with_seed_events(&[
                ("action", "save"),
                ("name", "Feed"),
                ("url", "https://example.com/hook"),
                ("secret", offered.as_str()),
            ]),
        )
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER);
    let hook = &integrations(&app).await[0];
    let id = hook["id"].as_str().unwrap().to_string();
    assert_eq!(
        saved.location.as_deref(),
        Some(format!("/settings/integrations/{id}?done=created").as_str())
    );
    assert_eq!(
        hook["secret"],
        offered.as_str(),
        "the secret the form offered is kept"
    );
    let path = format!("/settings/integrations/{id}");
    assert!(
        !b.page(&path).await.contains(&offered),
        "the secret is hidden until revealed"
    );

    let a = b
        .post(
            &path,
            &with_seed_events(&[
                ("action", "save"),
                ("name", "Renamed"),
                ("url", "https://example.com/v2"),
            ]),
        )
        .await;
    assert_eq!(a.location, Some(format!("{path}?done=saved")));
    let now = app.admin_get(&format!("/api/v1/integrations/{id}")).await;
    assert_eq!(
        (now["name"].as_str(), now["url"].as_str()),
        (Some("Renamed"), Some("https://example.com/v2"))
    );

    b.post(&format!("{path}/enabled"), &[("enabled", "false")])
        .await;
    let now = app.admin_get(&format!("/api/v1/integrations/{id}")).await;
    assert_eq!(now["enabled"], false);
    assert!(b
        .page(&format!("{path}?done=disabled"))
        .await
        .contains("Integration disabled"));
    b.post(&format!("{path}/enabled"), &[("enabled", "true")])
        .await;
    assert_eq!(
        app.admin_get(&format!("/api/v1/integrations/{id}")).await["enabled"],
        true
    );

    b.post(&format!("{path}/rotate"), &[]).await;
    let now = app.admin_get(&format!("/api/v1/integrations/{id}")).await;
    let new_secret = now["secret"].as_str().unwrap();
    assert_ne!(new_secret, offered);
    assert!(now["previous_secret_valid_until"].is_string());
    let shown = b.post(&format!("{path}/reveal"), &[]).await;
    assert_eq!(shown.status, StatusCode::OK);
    assert!(shown.html.contains(new_secret));
    assert!(shown.html.contains("The previous secret also signs until"));

    // Rule Modes > Edit: checking and unchecking.
    b.post("/policies/modes/block", &[("integration", id.as_str())])
        .await;
    assert_eq!(
        app.admin_get(&format!("/api/v1/integrations/{id}")).await["modes"],
        json!(["block"])
    );
    assert!(b.page("/policies/modes/block").await.contains("checked"));
    b.post("/policies/modes/block", &[]).await;
    assert_eq!(
        app.admin_get(&format!("/api/v1/integrations/{id}")).await["modes"],
        json!([])
    );

    // Delete asks first, then deletes.
    let confirm = b.page(&format!("{path}/delete")).await;
    assert!(confirm.contains("Delete integration"));
    assert!(
        !integrations(&app).await.is_empty(),
        "asking deletes nothing"
    );
    let gone = b.post(&format!("{path}/delete"), &[]).await;
    assert_eq!(
        gone.location.as_deref(),
        Some("/settings/integrations?done=deleted")
    );
    assert!(integrations(&app).await.is_empty());
    app.stop().await;
}
on_both!(integration_forms_edit_disable_rotate_delete);

async fn resend_recover_and_reopen_in_forms(db: Db) {
    let app = TestApp::spawn_with(db, |c| c.deliver = false).await;
    let b = Browser::sign_in(&app).await;
    app.add_rules(&fixture_text("sample-rules.yml"), None, "block")
        .await;
    let hook = app
        .admin_post(
            "/api/v1/integrations",
            &json!({"name": "Feed", "url": "https://hooks.example.com/x"}),
        )
        .await;
    let id = hook["id"].as_str().unwrap();
    captured_scan(&app).await;
    let msg = app
        .admin_get(&format!("/api/v1/deliveries?integration={id}"))
        .await["deliveries"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();

    let a = b.post(&format!("/deliveries/{msg}/resend"), &[]).await;
    assert_eq!(a.location, Some(format!("/deliveries/{msg}?done=resent")));
    assert!(b
        .page(&format!("/deliveries/{msg}?done=resent"))
        .await
        .contains("Queued again"));
    let a = b
        .post(
            &format!("/settings/integrations/{id}/recover"),
            &[("since", "2020-01-01T00:00:00Z")],
        )
        .await;
    // Nothing has failed, so nothing is re-queued; the count says so.
    assert_eq!(
        a.location,
        Some(format!(
            "/settings/integrations/{id}/deliveries?done=recovered-0"
        ))
    );

    let finding = app.findings("").await[0]["id"].as_i64().unwrap();
    let path = format!("/findings/{finding}/triage");
    let a = b
        .post(
            &path,
            &[
                ("action", "ignore"),
                ("reason", "false_positive"),
                ("back", "/findings?repos=x"),
            ],
        )
        .await;
    assert_eq!(
        a.location.as_deref(),
        Some("/findings?repos=x&done=ignored")
    );
    let f = app.findings("status=ignored").await;
    assert_eq!(f[0]["id"], finding);
    assert_eq!(f[0]["triage_reason"], "false_positive");
    assert!(!b
        .page("/findings")
        .await
        .contains(&format!("finding-{finding}\"")));
    let a = b
        .post(
            &path,
            &[("action", "reopen"), ("back", "https://evil.example/")],
        )
        .await;
    assert_eq!(
        a.location.as_deref(),
        Some("/findings?done=reopened"),
        "only local paths"
    );
    assert!(b
        .page("/findings")
        .await
        .contains(&format!("finding-{finding}\"")));

    // Once the integration is deleted, its message is not offered for resending, and a
    // resend posted anyway says why.
    let (status, _) = app
        .call(
            reqwest::Method::DELETE,
            &format!("/api/v1/integrations/{id}"),
            Some(&app.admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let page = b.page(&format!("/deliveries/{msg}")).await;
    assert!(page.contains("Its integration was deleted"), "{page}");
    assert!(!page.contains("/resend"), "{page}");
    let a = b.post(&format!("/deliveries/{msg}/resend"), &[]).await;
    assert_eq!(a.status, StatusCode::CONFLICT, "{}", a.html);
    assert!(a.html.contains("has been deleted"), "{}", a.html);
    app.stop().await;
}
on_both!(resend_recover_and_reopen_in_forms);
