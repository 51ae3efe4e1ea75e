//! The web UI in a real headless Chromium (Debian's `chromium`, driven by Playwright from
//! `tests/browser/ui.mjs`): the seed's two procedures, then a real `semgrep ci` run whose
//! webhooks arrive signed, the delivery log, Resend and triage. Screenshots of every page
//! land in `target/ui-screenshots/<backend>/`.

use crate::delivery::drained;
use crate::e2e_semgrep::{semgrep_ci, Repo, APP_PY};
use crate::harness::{Db, TestApp};
use crate::on_both;
use crate::receiver::Receiver;
use serde_json::Value;
use std::path::PathBuf;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn chromium() -> String {
    let path = std::env::var("SCANHOOK_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&path).exists(),
        "Chromium not found at {path}: run ./scripts/test, which installs Debian's chromium \
         (or set SCANHOOK_CHROMIUM)"
    );
    path
}

/// Runs one phase of the browser script; returns the JSON it printed last.
async fn phase(name: &str, db: Db, env: &[(&str, &str)]) -> Value {
    let browser_dir = PathBuf::from(ROOT).join("tests/browser");
    assert!(
        browser_dir.join("node_modules/playwright-core").exists(),
        "tests/browser/node_modules is missing: run ./scripts/test, which runs npm ci there"
    );
    let shots = PathBuf::from(ROOT)
        .join("target/ui-screenshots")
        .join(format!("{db:?}").to_lowercase());
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg("ui.mjs")
        .current_dir(&browser_dir)
        .env("PHASE", name)
        .env("CHROMIUM", chromium())
        .env("SCREENSHOTS", &shots);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().await.expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "browser phase {name} failed (screenshots in {}):\n{stdout}\n{}",
        shots.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("phase {name} printed {last:?}: {e}"))
}

async fn seed_procedures_then_a_real_scan(db: Db) {
    let app = TestApp::spawn(db).await;
    let rx = Receiver::start().await;
    let chat = Receiver::start().await;
    let slack_url = format!("{}?token=slack-credential-0123456789", chat.url);
    // A port nobody listens on: bound, then released.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_url = format!("http://{}/hook", closed.local_addr().unwrap());
    drop(closed);
    let rules = format!("{ROOT}/tests/data/sample-rules.yml");
    let public_url = scanhook::config::Config::local(String::new()).public_url;
    let common = [
        ("BASE_URL", app.base.as_str()),
        ("ADMIN_TOKEN", app.admin.as_str()),
        ("BLOCK_RULE", "python-eval-use"),
    ];

    let mut env = common.to_vec();
    env.extend([
        ("RECEIVER_URL", rx.url.as_str()),
        ("SLACK_URL", slack_url.as_str()),
        ("CLOSED_URL", closed_url.as_str()),
        ("RULES_FILE", rules.as_str()),
        ("PUBLIC_URL", public_url.as_str()),
    ]);
    let made = phase("setup", db, &env).await;
    let integration = made["integration"].as_str().unwrap();
    // The Slack integration added in the browser: its Test reached the real URL, unsigned.
    let slack = app
        .admin_get(&format!(
            "/api/v1/integrations/{}",
            made["slack"].as_str().unwrap()
        ))
        .await;
    assert_eq!(slack["kind"], "slack");
    assert!(!slack["url"].as_str().unwrap().contains("slack-credential"));
    let tests = chat.received();
    assert_eq!(tests.len(), 1, "the Test before Save");
    assert!(tests[0].header("webhook-signature").is_none());
    assert!(tests[0].json().is_object());
    let secret = made["secret"].as_str().unwrap();

    // What the clicks did, seen through the API.
    let hook = app
        .admin_get(&format!("/api/v1/integrations/{integration}"))
        .await;
    assert_eq!(hook["name"], "Security alerts");
    assert_eq!(hook["url"], rx.url);
    assert_eq!(hook["secret"], secret);
    assert_eq!(hook["modes"], serde_json::json!(["block"]));
    let rule = app.admin_get("/api/v1/rules/python-eval-use").await;
    assert_eq!(rule["mode"], "block");
    // The successful Test arrived, signed with the secret the integration then kept; the
    // failing one (closed port) did not arrive anywhere.
    let tests = rx.received();
    assert_eq!(tests.len(), 1);
    assert_eq!(tests[0].header("x-scanhook-event"), Some("test"));

    // A real `semgrep ci`: the Block rule fails the job and its finding is notified.
    let repo = Repo::new();
    repo.write("src/app.py", APP_PY);
    repo.commit("Add the app");
    let (code, out) = semgrep_ci(&app, &repo, &[]).await;
    assert_eq!(code, 1, "a Block finding fails the CI job\n{out}");
    drained(&app).await;
    let got = rx.received();
    let mut kinds: Vec<&str> = got
        .iter()
        .map(|r| r.header("x-scanhook-event").unwrap())
        .collect();
    kinds.sort();
    assert_eq!(kinds, ["semgrep_finding", "semgrep_scan", "test"]);
    let finding_message = got
        .iter()
        .find(|r| r.header("x-scanhook-event") == Some("semgrep_finding"))
        .unwrap()
        .clone();
    let findings = finding_message.json();
    let rules: Vec<&str> = findings
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["semgrep_finding"]["check_id"].as_str().unwrap())
        .collect();
    assert!(
        rules.iter().all(|r| *r == "python-eval-use"),
        "only the Block rule notifies: {rules:?}"
    );

    let seen = phase("after-scan", db, &common).await;

    // Resend sent the same message again, with the same webhook-id.
    let finding_id = finding_message.header("webhook-id").unwrap();
    assert_eq!(seen["webhook_id"], finding_id);
    let got = rx.received();
    assert_eq!(got.len(), 4);
    assert_eq!(got[3].header("webhook-id"), Some(finding_id));
    assert_eq!(got[3].body, finding_message.body);
    assert_eq!(rx.verify_all_with_standardwebhooks(secret, true), 4);

    // Ignore in the browser is the triage state of the API.
    let ignored = seen["ignored"].as_i64().unwrap();
    let open: Vec<i64> = app
        .findings("status=open")
        .await
        .iter()
        .map(|f| f["id"].as_i64().unwrap())
        .collect();
    assert!(!open.contains(&ignored));
    let muted = app.findings("status=ignored").await;
    assert_eq!(muted.len(), 1);
    assert_eq!(muted[0]["id"], ignored);

    // The events and filters saved in the browser are the integration's in the API.
    let i = app
        .admin_get(&format!("/api/v1/integrations/{integration}"))
        .await;
    assert_eq!(
        i["events"],
        serde_json::json!(["semgrep_scan", "semgrep_finding", "finding_fixed"])
    );
    assert_eq!(
        i["filters"],
        serde_json::json!({"rules": ["python-eval-use"]})
    );
    app.stop().await;
}
on_both!(seed_procedures_then_a_real_scan);
