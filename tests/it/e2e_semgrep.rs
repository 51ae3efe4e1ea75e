//! End to end with the real `semgrep ci --oss-only` (1.185.0, installed by `scripts/test`)
//! against a spawned scanhook, on a sample git repository with commits and branches.

use crate::harness::{fixture_text, Db, TestApp};
use crate::on_both;
use crate::receiver::Receiver;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn semgrep_bin() -> PathBuf {
    let path = std::env::var("SCANHOOK_SEMGREP")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/semgrep"));
    assert!(
        path.exists(),
        "semgrep not found at {}: run ./scripts/test, which installs semgrep==1.185.0 into .venv",
        path.display()
    );
    path
}

/// A git repository in a temporary directory.
pub(crate) struct Repo {
    dir: tempfile::TempDir,
    home: tempfile::TempDir,
}

impl Repo {
    pub(crate) fn new() -> Repo {
        let repo = Repo {
            dir: tempfile::tempdir().unwrap(),
            home: tempfile::tempdir().unwrap(),
        };
        repo.git(&["init", "-q", "-b", "main"]);
        repo.git(&["config", "user.email", "alice@example.com"]);
        repo.git(&["config", "user.name", "Alice Author"]);
        repo
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn git(&self, args: &[&str]) -> String {
        let out = Command::new("git")
            .args(args)
            .current_dir(self.dir.path())
            .env("HOME", self.home.path())
            .output()
            .expect("git runs");
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    pub(crate) fn write(&self, path: &str, content: &str) {
        let p = self.dir.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }

    pub(crate) fn commit(&self, message: &str) {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "-m", message]);
    }
}

/// Runs `semgrep ci` as a user would, with every outbound call pinned to scanhook.
/// `--no-suppress-errors` makes any protocol failure fail the test instead of failing open.
pub(crate) async fn semgrep_ci(
    app: &TestApp,
    repo: &Repo,
    extra_env: &[(&str, &str)],
) -> (i32, String) {
    let mut cmd = tokio::process::Command::new(semgrep_bin());
    cmd.args(["ci", "--oss-only", "--metrics=off", "--no-suppress-errors"])
        .current_dir(repo.dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", repo.home.path())
        .env("SEMGREP_APP_TOKEN", &app.ci)
        .env("SEMGREP_APP_URL", &app.base)
        .env("SEMGREP_FAIL_OPEN_URL", &app.base)
        .env("SEMGREP_ENABLE_VERSION_CHECK", "0")
        .env("SEMGREP_SEND_METRICS", "off")
        .env("SEMGREP_REPO_NAME", "acme/sample")
        .env("SEMGREP_REPO_URL", "https://git.example.com/acme/sample")
        .env("HTTP_PROXY", "http://127.0.0.1:9")
        .env("HTTPS_PROXY", "http://127.0.0.1:9")
        .env("NO_PROXY", "127.0.0.1,localhost");
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let out = cmd.output().await.expect("semgrep runs");
    let text = format!(
        "--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

pub(crate) const APP_PY: &str = r#"import subprocess


def run(user_input):
    return eval(user_input)


db_password = "hunter2"


def shell(cmd):
    subprocess.call(cmd, shell=True)
"#;

const MAIN_JS: &str =
    "function show(x) {\n  document.body.innerHTML = x;\n  console.log(\"shown\", x);\n}\n";

pub(crate) const UTIL_PY: &str = "def danger(expr):\n    return eval(expr)\n";

fn paths(findings: &[Value]) -> Vec<String> {
    let mut p: Vec<String> = findings
        .iter()
        .map(|f| {
            format!(
                "{}:{}",
                f["location"]["file_path"].as_str().unwrap(),
                f["rule_name"].as_str().unwrap()
            )
        })
        .collect();
    p.sort();
    p
}

/// Runs a scan and returns (exit code, the scan as the API shows it).
async fn scan(app: &TestApp, repo: &Repo, env: &[(&str, &str)], want_exit: i32) -> Value {
    let (code, out) = semgrep_ci(app, repo, env).await;
    assert_eq!(code, want_exit, "semgrep ci exit code\n{out}");
    let s = app.latest_scan().await;
    assert_eq!(s["status"], "completed", "{s}");
    s
}

async fn full_lifecycle(db: Db) {
    let app = TestApp::spawn(db).await;
    app.add_rules(&fixture_text("sample-rules.yml"), None, "monitor")
        .await;
    // Every mode notifies the receiver, so it must get exactly the notified findings.
    let rx = Receiver::start().await;
    let hook = app
        .admin_post(
            "/api/v1/integrations",
            &serde_json::json!({"name": "Security feed", "url": rx.url}),
        )
        .await;
    for mode in ["monitor", "comment", "block"] {
        app.admin_post(
            &format!("/api/v1/modes/{mode}/notify"),
            &serde_json::json!({"integration_ids": [hook["id"]]}),
        )
        .await;
    }
    let mut scans = Vec::new();
    let repo = Repo::new();
    repo.write("src/app.py", APP_PY);
    repo.write("web/main.js", MAIN_JS);
    repo.commit("Initial commit with some issues\n\nA longer body.");

    // 1. Full scan of main: every finding is new and notified.
    let s1 = scan(&app, &repo, &[], 0).await;
    scans.push(s1.clone());
    assert_eq!(s1["is_full_scan"], true);
    assert_eq!(s1["branch"], "main");
    let id1 = s1["id"].as_i64().unwrap();
    let notified = app.scan_changes(id1, "notified").await;
    assert_eq!(
        paths(&notified),
        [
            "src/app.py:python-eval-use",
            "src/app.py:python-hardcoded-password",
            "src/app.py:python-subprocess-shell-true",
            "web/main.js:js-console-log",
            "web/main.js:js-innerhtml",
        ]
    );
    let hooks = app.webhooks(id1).await;
    assert_eq!(hooks["semgrep_finding"].as_array().unwrap().len(), 5);
    let scan_obj = &hooks["semgrep_scan"]["semgrep_scan"];
    assert_eq!(scan_obj["exit_code"], 0);
    assert_eq!(scan_obj["repository"], "acme/sample");
    assert_eq!(scan_obj["commit_title"], "Initial commit with some issues");
    assert_eq!(scan_obj["id"], s1["public_id"]);

    // 2. A diff-aware PR scan that adds one finding and moves the others.
    repo.git(&["checkout", "-q", "-b", "feature"]);
    repo.write(
        "src/app.py",
        &format!("# moved down\n# by three\n# lines\n{APP_PY}"),
    );
    repo.write("src/util.py", UTIL_PY);
    repo.commit("Feature: add danger()");
    let pr = [
        ("SEMGREP_BASELINE_REF", "main"),
        ("SEMGREP_PR_ID", "7"),
        ("SEMGREP_PR_TITLE", "Add danger"),
    ];
    let s2 = scan(&app, &repo, &pr, 0).await;
    scans.push(s2.clone());
    let id2 = s2["id"].as_i64().unwrap();
    assert_eq!(s2["is_full_scan"], false);
    assert_eq!(
        s2["counts"]["findings"], 1,
        "only the new finding is uploaded: {s2}"
    );
    let notified = app.scan_changes(id2, "notified").await;
    assert_eq!(paths(&notified), ["src/util.py:python-eval-use"]);
    let pr_obj = app.webhooks(id2).await;
    assert_eq!(pr_obj["semgrep_scan"]["semgrep_scan"]["on"], "pull_request");
    assert_eq!(
        pr_obj["semgrep_scan"]["semgrep_scan"]["pull_request_id"],
        "7"
    );
    assert_eq!(
        pr_obj["semgrep_finding"][0]["semgrep_finding"]["ref"],
        "feature"
    );

    // 3. The same scan again: nothing new, nothing doubled.
    let s3 = scan(&app, &repo, &pr, 0).await;
    scans.push(s3.clone());
    assert_eq!(
        app.scan_changes(s3["id"].as_i64().unwrap(), "notified")
            .await
            .len(),
        0
    );
    assert_eq!(app.findings("ref=feature&status=open").await.len(), 1);

    // 4. The rule in Block mode: the same PR now fails the build.
    app.set_mode("python-eval-use", "block").await;
    let s4 = scan(&app, &repo, &pr, 1).await;
    scans.push(s4.clone());
    assert_eq!(s4["exit_code"], 1);
    assert_eq!(
        app.scan_changes(s4["id"].as_i64().unwrap(), "notified")
            .await
            .len(),
        0
    );
    app.set_mode("python-eval-use", "monitor").await;

    // 5. The PR merged: the finding reaches main without a second notification.
    repo.git(&["checkout", "-q", "main"]);
    repo.git(&["merge", "-q", "--no-ff", "feature", "-m", "Merge feature"]);
    let s5 = scan(&app, &repo, &[], 0).await;
    scans.push(s5.clone());
    let id5 = s5["id"].as_i64().unwrap();
    assert_eq!(app.scan_changes(id5, "notified").await.len(), 0);
    let opened = app.scan_changes(id5, "opened").await;
    assert_eq!(paths(&opened), ["src/util.py:python-eval-use"]);
    assert_eq!(opened[0]["scan_change"]["change"], "from_other_ref");

    // 6. A fix: the finding closes as fixed.
    repo.write("src/util.py", "def danger(expr):\n    return int(expr)\n");
    repo.commit("Fix danger()");
    let s6 = scan(&app, &repo, &[], 0).await;
    scans.push(s6.clone());
    let fixed = app.scan_changes(s6["id"].as_i64().unwrap(), "fixed").await;
    assert_eq!(paths(&fixed), ["src/util.py:python-eval-use"]);
    assert_eq!(app.findings("ref=main&status=fixed").await.len(), 1);

    // 7. The code back: a regression, notified again, first seen in the PR scan.
    repo.git(&["revert", "--no-edit", "HEAD"]);
    let s7 = scan(&app, &repo, &[], 0).await;
    scans.push(s7.clone());
    let id7 = s7["id"].as_i64().unwrap();
    let notified = app.scan_changes(id7, "notified").await;
    assert_eq!(paths(&notified), ["src/util.py:python-eval-use"]);
    assert_eq!(notified[0]["scan_change"]["change"], "regression");
    let obj = &app.webhooks(id7).await["semgrep_finding"][0]["semgrep_finding"];
    assert_eq!(obj["first_seen_scan_id"], s2["public_id"]);
    assert_eq!(obj["path"], "src/util.py");

    // 8. A deleted file: its findings close as removed.
    repo.git(&["rm", "-q", "web/main.js"]);
    repo.commit("Drop the web page");
    let s8 = scan(&app, &repo, &[], 0).await;
    scans.push(s8.clone());
    let removed = app
        .scan_changes(s8["id"].as_i64().unwrap(), "removed")
        .await;
    assert_eq!(
        paths(&removed),
        ["web/main.js:js-console-log", "web/main.js:js-innerhtml"]
    );

    // 9. A nosemgrep comment: the finding closes as ignored and is never notified.
    let merged_app = repo.dir.path().join("src/app.py");
    let text = std::fs::read_to_string(&merged_app).unwrap();
    repo.write(
        "src/app.py",
        &text.replace(
            "db_password = \"hunter2\"",
            "db_password = \"hunter2\"  # nosemgrep",
        ),
    );
    repo.commit("Silence the password finding");
    let s9 = scan(&app, &repo, &[], 0).await;
    scans.push(s9.clone());
    let id9 = s9["id"].as_i64().unwrap();
    let ignored = app.scan_changes(id9, "ignored").await;
    assert_eq!(paths(&ignored), ["src/app.py:python-hardcoded-password"]);
    assert_eq!(app.scan_changes(id9, "notified").await.len(), 0);
    let open_main = paths(&app.findings("ref=main&status=open").await);
    assert_eq!(
        open_main,
        [
            "src/app.py:python-eval-use",
            "src/app.py:python-subprocess-shell-true",
            "src/util.py:python-eval-use",
        ]
    );

    // The receiver got one semgrep_scan per scan and, per scan, exactly its notified
    // findings; every request verifies with the PyPI standardwebhooks library.
    crate::delivery::drained(&app).await;
    let got = rx.received();
    let scan_ids: Vec<Value> = got
        .iter()
        .filter(|r| r.header("x-scanhook-event") == Some("semgrep_scan"))
        .map(|r| r.json()["semgrep_scan"]["id"].clone())
        .collect();
    assert_eq!(scan_ids.len(), scans.len());
    let mut received_findings: Vec<String> = got
        .iter()
        .filter(|r| r.header("x-scanhook-event") == Some("semgrep_finding"))
        .flat_map(|r| r.json().as_array().unwrap().clone())
        .map(|f| {
            format!(
                "{}:{}@{}",
                f["semgrep_finding"]["path"].as_str().unwrap(),
                f["semgrep_finding"]["check_id"].as_str().unwrap(),
                f["semgrep_finding"]["ref"].as_str().unwrap()
            )
        })
        .collect();
    let mut expected = Vec::new();
    for s in &scans {
        for f in app
            .scan_changes(s["id"].as_i64().unwrap(), "notified")
            .await
        {
            expected.push(format!(
                "{}@{}",
                paths(std::slice::from_ref(&f))[0],
                f["ref"].as_str().unwrap()
            ));
        }
    }
    received_findings.sort();
    expected.sort();
    assert_eq!(received_findings, expected);
    assert_eq!(
        received_findings.len(),
        7,
        "5 on the first scan, the PR's new one, the regression"
    );
    assert_eq!(
        rx.verify_all_with_standardwebhooks(hook["secret"].as_str().unwrap(), true),
        got.len()
    );
    app.stop().await;
}
on_both!(full_lifecycle);
