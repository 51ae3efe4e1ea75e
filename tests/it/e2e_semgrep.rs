//! End to end with the real `semgrep ci --oss-only` (1.185.0, installed by `scripts/test`)
//! against a spawned scanhook, on a sample git repository with commits and branches.

use crate::harness::{fixture_text, Db, TestApp};
use crate::on_both;
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
struct Repo {
    dir: tempfile::TempDir,
    home: tempfile::TempDir,
}

impl Repo {
    fn new() -> Repo {
        let repo = Repo {
            dir: tempfile::tempdir().unwrap(),
            home: tempfile::tempdir().unwrap(),
        };
        repo.git(&["init", "-q", "-b", "main"]);
        repo.git(&["config", "user.email", "alice@example.com"]);
        repo.git(&["config", "user.name", "Alice Author"]);
        repo
    }

    fn git(&self, args: &[&str]) -> String {
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

    fn write(&self, path: &str, content: &str) {
        let p = self.dir.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }

    fn commit(&self, message: &str) {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "-m", message]);
    }
}

/// Runs `semgrep ci` as a user would, with every outbound call pinned to scanhook.
/// `--no-suppress-errors` makes any protocol failure fail the test instead of failing open.
async fn semgrep_ci(app: &TestApp, repo: &Repo, extra_env: &[(&str, &str)]) -> (i32, String) {
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

const APP_PY: &str = r#"import subprocess


def run(user_input):
    return eval(user_input)


db_password = "hunter2"


def shell(cmd):
    subprocess.call(cmd, shell=True)
"#;

const MAIN_JS: &str =
    "function show(x) {\n  document.body.innerHTML = x;\n  console.log(\"shown\", x);\n}\n";

const UTIL_PY: &str = "def danger(expr):\n    return eval(expr)\n";

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
    let repo = Repo::new();
    repo.write("src/app.py", APP_PY);
    repo.write("web/main.js", MAIN_JS);
    repo.commit("Initial commit with some issues\n\nA longer body.");

    // 1. Full scan of main: every finding is new and notified.
    let s1 = scan(&app, &repo, &[], 0).await;
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
    let id5 = s5["id"].as_i64().unwrap();
    assert_eq!(app.scan_changes(id5, "notified").await.len(), 0);
    let opened = app.scan_changes(id5, "opened").await;
    assert_eq!(paths(&opened), ["src/util.py:python-eval-use"]);
    assert_eq!(opened[0]["scan_change"]["change"], "from_other_ref");

    // 6. A fix: the finding closes as fixed.
    repo.write("src/util.py", "def danger(expr):\n    return int(expr)\n");
    repo.commit("Fix danger()");
    let s6 = scan(&app, &repo, &[], 0).await;
    let fixed = app.scan_changes(s6["id"].as_i64().unwrap(), "fixed").await;
    assert_eq!(paths(&fixed), ["src/util.py:python-eval-use"]);
    assert_eq!(app.findings("ref=main&status=fixed").await.len(), 1);

    // 7. The code back: a regression, notified again, first seen in the PR scan.
    repo.git(&["revert", "--no-edit", "HEAD"]);
    let s7 = scan(&app, &repo, &[], 0).await;
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
    app.stop().await;
}
on_both!(full_lifecycle);
