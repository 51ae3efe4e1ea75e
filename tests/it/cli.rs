//! The `scanhook` binary as users run it: `serve` on a fresh data directory, `token create`
//! on the database, and the `rules` commands against a running server.

use crate::harness::{fixture, fixture_text, Db, TestApp};
use crate::on_both;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub(crate) fn scanhook() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_scanhook"));
    cmd.env_remove("SCANHOOK_TOKEN").env_remove("SCANHOOK_URL");
    cmd
}

/// Runs the CLI as a client of `app` with its admin token.
pub(crate) fn as_admin(app: &TestApp, args: &[&str]) -> (bool, String, String) {
    run(scanhook()
        .args(args)
        .args(["--server", &app.base, "--token", &app.admin]))
}

pub(crate) fn run(cmd: &mut Command) -> (bool, String, String) {
    let out = cmd.output().expect("scanhook runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn token_and_rules_commands(db: Db) {
    let app = TestApp::spawn(db).await;
    // `token create` prints the token alone, and it works.
    let (ok, out, err) = run(scanhook()
        .args(["token", "create", "--scope", "ci", "--database-url"])
        .arg(&app.database_url));
    assert!(ok, "{err}");
    let token = out.trim();
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(token.starts_with("shk_"), "{out}");
    let (status, _) = app
        .call(
            Method::POST,
            "/api/cli/v2/scans",
            Some(token),
            Some(&fixture("01-post-scans.request.json")),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.yml");
    std::fs::write(&rules, fixture_text("sample-rules.yml")).unwrap();
    let client = |args: &[&str]| as_admin(&app, args);
    let (ok, out, err) = client(&[
        "rules",
        "add",
        rules.to_str().unwrap(),
        "--policy",
        "Web Apps",
        "--mode",
        "comment",
        "--json",
    ]);
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["rules"].as_array().unwrap().len(), 5);
    assert_eq!(v["policy"]["slug"], "web-apps");
    let (ok, _, err) = client(&["rules", "mode", "python-eval-use", "block"]);
    assert!(ok, "{err}");
    let (ok, out, _) = client(&["rules", "list", "--json"]);
    assert!(ok);
    let v: Value = serde_json::from_str(&out).unwrap();
    let eval = v["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["rule_id"] == "python-eval-use")
        .unwrap();
    assert_eq!(eval["mode"], "block");
    let (ok, out, _) = client(&["rules", "list"]);
    assert!(ok);
    assert!(
        out.contains("python-eval-use") && out.contains("block"),
        "{out}"
    );

    // Errors reach the user as the server's message, with a failing exit status.
    std::fs::write(&rules, "rules:\n- id: broken\n").unwrap();
    let (ok, _, err) = client(&["rules", "add", rules.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("rules.yml") && err.contains("broken"), "{err}");
    let (ok, _, err) = run(scanhook().args(["rules", "list", "--server", &app.base]));
    assert!(!ok);
    assert!(err.contains("SCANHOOK_TOKEN"), "{err}");
    app.stop().await;
}
on_both!(token_and_rules_commands);

/// `scanhook serve` on an empty data directory: prints an admin token once, serves, and
/// stops cleanly on SIGTERM. The second start takes the same settings from a config file.
#[tokio::test]
async fn serve_prints_a_token_once_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let config = dir.path().join("scanhook.toml");
    std::fs::write(
        &config,
        format!(
            "listen = {listen:?}\ndata_dir = {:?}\n",
            dir.path().display().to_string()
        ),
    )
    .unwrap();
    let spawn = |from_file: bool| {
        let mut cmd = scanhook();
        if from_file {
            cmd.args(["serve", "--config"]).arg(&config);
        } else {
            cmd.args(["serve", "--listen", &listen, "--data-dir"])
                .arg(dir.path());
        }
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let http = reqwest::Client::new();
    let wait_up = || async {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = http.get(format!("http://{listen}/healthz")).send().await {
                assert_eq!(r.status(), StatusCode::OK);
                return;
            }
            assert!(Instant::now() < deadline, "serve did not come up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    for first in [true, false] {
        let child = spawn(!first);
        wait_up().await;
        let ready = http
            .get(format!("http://{listen}/readyz"))
            .send()
            .await
            .unwrap();
        assert_eq!(ready.status(), StatusCode::OK);
        let pid = child.id().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "serve exits 0 on SIGTERM");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            stdout.contains("shk_"),
            first,
            "token printed on first start only (the file names the same database): {stdout}"
        );
        if first {
            assert!(
                stdout.contains("scanhook token create --scope ci"),
                "{stdout}"
            );
        }
    }
    assert!(dir.path().join("scanhook.db").exists());
}

/// A config file with a mistake stops `serve` before it listens, naming the key.
#[test]
fn a_bad_config_file_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.toml");
    for (text, names) in [
        ("delivery_timout = \"3s\"\n", "`delivery_timout`"),
        ("delivery_timeout = \"soon\"\n", "`delivery_timeout`"),
        ("max_results_mb = 0\n", "`max_results_mb`"),
    ] {
        std::fs::write(&config, text).unwrap();
        let (ok, _, err) = run(scanhook()
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(&config)
            .arg("--data-dir")
            .arg(dir.path()));
        assert!(!ok, "{text}");
        assert!(
            err.contains(names) && err.contains("bad.toml"),
            "{text}: {err}"
        );
    }
    let (ok, _, err) = run(scanhook()
        .args(["serve", "--config"])
        .arg(dir.path().join("missing.toml")));
    assert!(!ok && err.contains("missing.toml"), "{err}");
}

async fn integration_commands(db: Db) {
    let app = TestApp::spawn(db).await;
    let rx = crate::receiver::Receiver::start().await;
    let client = |args: &[&str]| as_admin(&app, args);
    let (ok, out, err) = client(&[
        "integrations",
        "add",
        "--name",
        "Feed",
        "--url",
        &rx.url,
        "--json",
    ]);
    assert!(ok, "{err}");
    let i: Value = serde_json::from_str(&out).unwrap();
    let id = i["id"].as_str().unwrap();
    assert!(i["secret"].as_str().unwrap().starts_with("whsec_"));
    let (ok, _, err) = client(&["modes", "notify", "block", id]);
    assert!(ok, "{err}");
    let (ok, out, _) = client(&["modes", "list", "--json"]);
    assert!(ok);
    let modes: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(modes["modes"][2]["mode"], "block");
    assert_eq!(modes["modes"][2]["integrations"][0], id);
    let (ok, out, err) = client(&["integrations", "test", id]);
    assert!(ok, "{err}");
    assert!(out.starts_with("HTTP 200"), "{out}");
    assert_eq!(rx.received().len(), 1);
    let (ok, out, _) = client(&["deliveries", "list", "--json"]);
    assert!(ok);
    let log: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(log["deliveries"][0]["kind"], "test");
    let (ok, out, _) = client(&["integrations", "update", id, "--disable", "--json"]);
    assert!(ok);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["enabled"],
        false
    );
    let (ok, _, err) = client(&["integrations", "add", "--name", "Bad", "--url", "ftp://x/y"]);
    assert!(!ok);
    assert!(err.contains("http or https"), "{err}");
    let (ok, _, _) = client(&["integrations", "delete", id]);
    assert!(ok);
    // The delivery log outlives the integration.
    let (ok, out, _) = client(&["deliveries", "list", "--json"]);
    assert!(ok);
    let log: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        log["deliveries"][0]["id"].as_str().map(|i| &i[..4]),
        Some("msg_")
    );
    assert_eq!(
        log["deliveries"][0]["integration_id"],
        Value::Null,
        "a deleted integration is named by no id"
    );
    app.stop().await;
}
on_both!(integration_commands);

async fn token_lifecycle_commands(db: Db) {
    let app = TestApp::spawn(db).await;
    let on_db = |args: &[&str]| {
        let mut c = scanhook();
        c.args(args).arg("--database-url").arg(&app.database_url);
        run(&mut c)
    };
    let (ok, out, err) = on_db(&[
        "token",
        "create",
        "--scope",
        "ci",
        "--name",
        "acme builds",
        "--expires-in",
        "30d",
        "--repos",
        "acme/*,tools/*",
        "--json",
    ]);
    assert!(ok, "{err}");
    let made: Value = serde_json::from_str(&out).unwrap();
    let id = made["id"].as_str().unwrap().to_string();
    assert_eq!(made["repos"], serde_json::json!(["acme/*", "tools/*"]));
    let secret = made["token"].as_str().unwrap().to_string();
    let (ok, out, _) = on_db(&["token", "list", "--json"]);
    assert!(ok);
    let list: Value = serde_json::from_str(&out).unwrap();
    let listed = list["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id.as_str())
        .unwrap();
    assert_eq!(
        (listed["state"].as_str(), listed["name"].as_str()),
        (Some("active"), Some("acme builds"))
    );
    assert!(!out.contains(&secret), "a listing never shows a secret");
    let (ok, out, _) = on_db(&["token", "list"]);
    assert!(
        ok && out.contains(&id) && out.contains("acme/*,tools/*"),
        "{out}"
    );
    let (ok, _, err) = on_db(&["token", "create", "--scope", "admin", "--repos", "acme/*"]);
    assert!(!ok && err.contains("only CI tokens"), "{err}");

    // Through the API, with an admin token.
    let via_api = |args: &[&str]| {
        let mut c = scanhook();
        c.args(args)
            .args(["--server", &app.base, "--token", &app.admin]);
        run(&mut c)
    };
    let (ok, out, err) = via_api(&["token", "revoke", &id]);
    assert!(ok && out.contains("revoked"), "{out}{err}");
    let (status, _) = app
        .call(
            Method::GET,
            "/api/cli/v2/scans/x/config",
            Some(&secret),
            None,
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a revoked token is refused"
    );
    let (ok, out, _) = on_db(&["token", "revoke", &id]);
    assert!(ok && out.contains("already revoked"), "{out}");
    let (ok, out, _) = via_api(&["token", "list", "--json"]);
    assert!(ok);
    assert!(out.contains(&id) && out.contains("\"revoked\""), "{out}");
    let (ok, _, err) = on_db(&["token", "revoke", "tok_nope"]);
    assert!(!ok && err.contains("no token"), "{err}");
    app.stop().await;
}
on_both!(token_lifecycle_commands);
