//! Uploads of other scanners' findings (`scanhook upload`, `POST /api/v1/uploads`), with
//! the real tools from the registries (installed by `scripts/test`): Bandit, Ruff and
//! Checkov from PyPI, ESLint with `@microsoft/eslint-formatter-sarif` from npm, and
//! `semgrep scan --sarif` / `--json`, over a sample git repository of three commits: the
//! first introduces findings, the second moves them (lines inserted above) and adds new
//! ones, the third fixes some.

use crate::e2e_semgrep::Repo;
use crate::harness::{fixture, fixture_text, Db, TestApp};
use crate::on_both;
use crate::receiver::Receiver;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use tokio::sync::OnceCell;

/// A tool's binary: Python tools from `SCANHOOK_SCANNERS` (the venv's `bin`), ESLint from
/// `tests/browser/node_modules`.
fn tool(name: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let path = match name {
        "eslint" => root.join("tests/browser/node_modules/.bin/eslint"),
        "semgrep" => std::env::var("SCANHOOK_SEMGREP")
            .map(PathBuf::from)
            .unwrap_or_else(|_| root.join(".venv/bin/semgrep")),
        _ => std::env::var("SCANHOOK_SCANNERS")
            .map(PathBuf::from)
            .unwrap_or_else(|_| root.join(".venv-scanners/bin"))
            .join(name),
    };
    assert!(
        path.exists(),
        "{name} not found at {}: run ./scripts/test, which installs the scanners",
        path.display()
    );
    path
}

const APP_PY: &str = "import subprocess\n\n\ndef run(cmd):\n    subprocess.call(cmd, shell=True)\n\n\ndef calc(expr):\n    return eval(expr)\n";
const APP_PY_FIXED: &str =
    "import subprocess\n\n\ndef run(cmd):\n    subprocess.call(cmd, shell=True)\n";
const UTIL_PY: &str = "def danger(expr):\n    return eval(expr)\n";
const MAIN_JS: &str = "export function calc(x) {\n  return eval(x);\n}\n";
const MAIN_JS_FIXED: &str = "export function calc(x) {\n  return Number(x);\n}\n";
const UTIL_JS: &str = "export function run(code) {\n  return eval(code);\n}\n";
const MAIN_TF: &str = "resource \"aws_s3_bucket\" \"logs\" {\n  bucket = \"acme-logs\"\n}\n";
const ESLINT_CONFIG: &str =
    "export default [{ files: [\"**/*.js\"], rules: { \"no-eval\": \"error\" } }];\n";
/// Inserted above everything in the second commit: every finding moves down.
const MOVED: &str = "# moved down\n# by three\n# lines\n";

/// One commit's tool outputs: file name → bytes.
struct Outputs {
    commit: String,
    files: BTreeMap<&'static str, PathBuf>,
}

/// The sample repository and each commit's tool outputs, made once for both backends.
struct Sample {
    repo: Repo,
    _out: tempfile::TempDir,
    commits: Vec<Outputs>,
}

static SAMPLE: OnceCell<Sample> = OnceCell::const_new();

async fn sample() -> &'static Sample {
    SAMPLE.get_or_init(make_sample).await
}

async fn make_sample() -> Sample {
    let repo = Repo::new();
    repo.git(&[
        "remote",
        "add",
        "origin",
        "https://git.example.com/acme/multi.git",
    ]);
    let out = tempfile::tempdir().unwrap();
    let rules = out.path().join("rules.yml");
    std::fs::write(&rules, fixture_text("sample-rules.yml")).unwrap();
    let mut commits = Vec::new();
    let steps: [&[(&str, &str)]; 3] = [
        &[
            ("src/app.py", APP_PY),
            ("web/main.js", MAIN_JS),
            ("eslint.config.mjs", ESLINT_CONFIG),
            ("infra/main.tf", MAIN_TF),
        ],
        &[
            ("src/app.py", &format!("{MOVED}{APP_PY}")),
            ("web/main.js", &format!("// moved\n// down\n{MAIN_JS}")),
            ("infra/main.tf", &format!("{MOVED}{MAIN_TF}")),
            ("src/util.py", UTIL_PY),
            ("web/util.js", UTIL_JS),
        ],
        &[
            ("src/app.py", &format!("{MOVED}{APP_PY_FIXED}")),
            (
                "web/main.js",
                &format!("// moved\n// down\n{MAIN_JS_FIXED}"),
            ),
        ],
    ];
    for (n, files) in steps.iter().enumerate() {
        for (path, text) in files.iter() {
            repo.write(path, text);
        }
        repo.commit(&format!("Step {}", n + 1));
        let dir = out.path().join(format!("c{n}"));
        std::fs::create_dir_all(&dir).unwrap();
        commits.push(Outputs {
            commit: repo.git(&["rev-parse", "HEAD"]),
            files: run_tools(repo.path(), &dir, &rules).await,
        });
    }
    Sample {
        repo,
        _out: out,
        commits,
    }
}

/// Runs every tool over the checkout as its documentation says; each writes one file.
async fn run_tools(repo: &Path, dir: &Path, rules: &Path) -> BTreeMap<&'static str, PathBuf> {
    let file = |name: &str| dir.join(name);
    let formatter = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/browser/node_modules/@microsoft/eslint-formatter-sarif/sarif.js");
    let d = |p: &Path| p.to_str().unwrap().to_string();
    let runs: Vec<(&'static str, PathBuf, Vec<String>)> = vec![
        (
            "bandit",
            tool("bandit"),
            vec![
                "-r".into(),
                ".".into(),
                "-f".into(),
                "sarif".into(),
                "-o".into(),
                d(&file("bandit.sarif")),
                "-q".into(),
            ],
        ),
        (
            "ruff",
            tool("ruff"),
            vec![
                "check".into(),
                "--select".into(),
                "S".into(),
                "--no-cache".into(),
                "--output-format".into(),
                "sarif".into(),
                "-o".into(),
                d(&file("ruff.sarif")),
                ".".into(),
            ],
        ),
        (
            "checkov",
            tool("checkov"),
            vec![
                "-d".into(),
                ".".into(),
                "--framework".into(),
                "terraform".into(),
                "-o".into(),
                "sarif".into(),
                "--output-file-path".into(),
                d(dir),
                "--quiet".into(),
                "--skip-download".into(),
            ],
        ),
        (
            "eslint",
            tool("eslint"),
            // ESLint looks formatters up from the project; this one is the test's own.
            vec![
                "-f".into(),
                d(&formatter),
                "-o".into(),
                d(&file("eslint.sarif")),
                "web".into(),
            ],
        ),
        (
            "semgrep-sarif",
            tool("semgrep"),
            vec![
                "scan".into(),
                "--config".into(),
                d(rules),
                "--metrics=off".into(),
                "--disable-version-check".into(),
                "--sarif".into(),
                "--output".into(),
                d(&file("semgrep.sarif")),
                ".".into(),
            ],
        ),
        (
            "semgrep-json",
            tool("semgrep"),
            vec![
                "scan".into(),
                "--config".into(),
                d(rules),
                "--metrics=off".into(),
                "--disable-version-check".into(),
                "--json".into(),
                "--output".into(),
                d(&file("semgrep.json")),
                ".".into(),
            ],
        ),
    ];
    let home = tempfile::tempdir().unwrap();
    let mut files = BTreeMap::new();
    for (name, bin, args) in runs {
        let out = tokio::process::Command::new(&bin)
            .args(&args)
            .current_dir(repo)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", home.path())
            // Nothing may leave the machine: a tool that tries fails fast.
            .env("HTTP_PROXY", "http://127.0.0.1:9")
            .env("HTTPS_PROXY", "http://127.0.0.1:9")
            .env("NO_PROXY", "127.0.0.1,localhost")
            .env("SEMGREP_ENABLE_VERSION_CHECK", "0")
            .env("SEMGREP_SEND_METRICS", "off")
            .env("BC_SKIP_MAPPING", "TRUE")
            .env("CHECKOV_RUN_SCA_PACKAGE_SCAN_V2", "false")
            .env("ESLINT_USE_FLAT_CONFIG", "true")
            .output()
            .await
            .unwrap_or_else(|e| panic!("{name} runs: {e}"));
        let written = match name {
            "checkov" => dir.join("results_sarif.sarif"),
            "semgrep-sarif" => file("semgrep.sarif"),
            "semgrep-json" => file("semgrep.json"),
            other => file(&format!("{other}.sarif")),
        };
        assert!(
            written.exists(),
            "{name} wrote no {}: exit {:?}\n{}\n{}",
            written.display(),
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        files.insert(name, written);
    }
    files
}

/// `scanhook upload` from inside the checkout, with nothing in its environment but the
/// server and the token: repository, ref and the commit's facts come from git.
async fn upload(app: &TestApp, dir: &Path, args: &[&str]) -> (i32, Value, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_scanhook"))
        .arg("upload")
        .args(args)
        .args(["--json", "--server", &app.base, "--token", &app.ci])
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .output()
        .await
        .expect("scanhook runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let v = serde_json::from_str(&stdout).unwrap_or(Value::Null);
    (out.status.code().unwrap_or(-1), v, stderr)
}

/// `path:rule` of a finding as the API shows it.
fn place(f: &Value) -> String {
    format!(
        "{}:{}",
        f["location"]["file_path"].as_str().unwrap(),
        f["rule_name"].as_str().unwrap()
    )
}

/// `path:rule` of each finding a scan changed in this way (`new`, `fixed`, …).
fn changed(scan: &Value, change: &str) -> BTreeSet<String> {
    scan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["scan_change"]["change"] == change)
        .map(place)
        .collect()
}

/// The open findings of one tool on `main`, as `path:rule`.
async fn open_set(app: &TestApp, repo: &str, prefix: &str) -> BTreeSet<String> {
    app.findings(&format!("repos={repo}&ref=main&status=open&page_size=1000"))
        .await
        .iter()
        .filter(|f| f["rule_name"].as_str().unwrap().starts_with(prefix))
        .map(place)
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

async fn real_scanners_over_three_commits(db: Db) {
    let sample = sample().await;
    let app = TestApp::spawn(db).await;
    let rx = Receiver::start().await;
    let hook = app
        .add_notified_integration(&json!({"name": "All tools", "url": rx.url}))
        .await;
    let dir = sample.repo.path();
    let pytools = ["bandit", "ruff", "checkov", "eslint"];
    let mut scans: Vec<Value> = Vec::new();
    let mut by_commit: Vec<BTreeMap<&str, Value>> = Vec::new();
    for (n, c) in sample.commits.iter().enumerate() {
        let mut tools = BTreeMap::new();
        for name in pytools {
            let file = c.files[name].to_str().unwrap();
            let (code, out, err) = upload(&app, dir, &["--commit", &c.commit, file]).await;
            assert_eq!(code, 0, "{name} at commit {n}: {err}");
            let scan = out["uploads"][0]["scans"][0].clone();
            assert_eq!(scan["tool"], name, "{out}");
            assert_eq!(scan["scan"]["repository"], "acme/multi", "from origin");
            assert_eq!(scan["scan"]["branch"], "main", "from the checkout");
            assert_eq!(scan["scan"]["meta"]["commit"], c.commit.as_str());
            assert_eq!(
                scan["scan"]["meta"]["commit_title"],
                format!("Step {}", n + 1)
            );
            scans.push(scan.clone());
            tools.insert(name, scan);
        }
        for (name, format, repo) in [
            ("semgrep-sarif", "sarif", "acme/multi-sarif"),
            ("semgrep-json", "semgrep-json", "acme/multi-json"),
        ] {
            let file = c.files[name].to_str().unwrap();
            let args = [
                "--commit", &c.commit, "--format", format, "--repo", repo, file,
            ];
            let (code, out, err) = upload(&app, dir, &args).await;
            assert_eq!(code, 0, "{name} at commit {n}: {err}");
            let scan = out["uploads"][0]["scans"][0].clone();
            assert_eq!(scan["tool"], "semgrep", "{out}");
            scans.push(scan.clone());
            tools.insert(name, scan);
        }
        by_commit.push(tools);
    }

    // Commit 1: everything is new.
    let c1 = &by_commit[0];
    assert_eq!(
        changed(&c1["bandit"], "new"),
        set(&[
            "src/app.py:bandit.B404",
            "src/app.py:bandit.B602",
            "src/app.py:bandit.B307"
        ])
    );
    assert_eq!(
        changed(&c1["ruff"], "new"),
        set(&["src/app.py:ruff.S602", "src/app.py:ruff.S307"])
    );
    assert_eq!(
        changed(&c1["eslint"], "new"),
        set(&["web/main.js:eslint.no-eval"])
    );
    let checkov_new = changed(&c1["checkov"], "new");
    assert!(
        !checkov_new.is_empty()
            && checkov_new
                .iter()
                .all(|f| f.starts_with("infra/main.tf:checkov.CKV")),
        "{checkov_new:?}"
    );
    for name in ["semgrep-sarif", "semgrep-json"] {
        let new: Vec<String> = changed(&c1[name], "new")
            .into_iter()
            .map(|f| f.split(':').next().unwrap().to_string() + ":" + f.rsplit('.').next().unwrap())
            .collect();
        assert_eq!(
            new,
            [
                "src/app.py:python-eval-use",
                "src/app.py:python-subprocess-shell-true"
            ],
            "{name}"
        );
    }

    // Commit 2: lines inserted above every finding move them; only the new files' findings
    // are new, nothing is fixed.
    let c2 = &by_commit[1];
    let expect_new = [
        ("bandit", set(&["src/util.py:bandit.B307"])),
        ("ruff", set(&["src/util.py:ruff.S307"])),
        ("eslint", set(&["web/util.js:eslint.no-eval"])),
        ("checkov", set(&[])),
    ];
    for (name, new) in expect_new {
        assert_eq!(changed(&c2[name], "new"), new, "{name} at commit 2");
        assert_eq!(changed(&c2[name], "fixed"), set(&[]), "{name} at commit 2");
        let opened = c2[name]["scan"]["counts"]["opened"].as_i64().unwrap();
        assert_eq!(
            opened as usize,
            new.len(),
            "{name}: the moved ones stay open"
        );
    }
    for name in ["semgrep-sarif", "semgrep-json"] {
        let new = changed(&c2[name], "new");
        assert_eq!(new.len(), 1, "{name}: {new:?}");
        assert!(
            new.iter().next().unwrap().starts_with("src/util.py:"),
            "{name}: {new:?}"
        );
        assert_eq!(changed(&c2[name], "fixed"), set(&[]), "{name}");
    }

    // Commit 3: the eval in app.py and main.js is gone.
    let c3 = &by_commit[2];
    let expect_fixed = [
        ("bandit", set(&["src/app.py:bandit.B307"])),
        ("ruff", set(&["src/app.py:ruff.S307"])),
        ("eslint", set(&["web/main.js:eslint.no-eval"])),
        ("checkov", set(&[])),
    ];
    for (name, fixed) in expect_fixed {
        assert_eq!(changed(&c3[name], "fixed"), fixed, "{name} at commit 3");
        assert_eq!(changed(&c3[name], "new"), set(&[]), "{name} at commit 3");
    }
    for name in ["semgrep-sarif", "semgrep-json"] {
        let fixed = changed(&c3[name], "fixed");
        assert_eq!(fixed.len(), 1, "{name}: {fixed:?}");
        assert!(
            fixed.iter().next().unwrap().starts_with("src/app.py:"),
            "{name}: {fixed:?}"
        );
    }

    // The open set at the end: each tool's own, none closed by another tool's uploads.
    assert_eq!(
        open_set(&app, "acme/multi", "bandit.").await,
        set(&[
            "src/app.py:bandit.B404",
            "src/app.py:bandit.B602",
            "src/util.py:bandit.B307"
        ])
    );
    assert_eq!(
        open_set(&app, "acme/multi", "ruff.").await,
        set(&["src/app.py:ruff.S602", "src/util.py:ruff.S307"])
    );
    assert_eq!(
        open_set(&app, "acme/multi", "eslint.").await,
        set(&["web/util.js:eslint.no-eval"])
    );
    assert_eq!(open_set(&app, "acme/multi", "checkov.").await, checkov_new);

    // Webhooks: one semgrep_scan per scan, and exactly the notified findings, verified
    // with standardwebhooks; the tool is named in each finding's metadata.
    crate::delivery::drained(&app).await;
    let got = rx.received();
    let scan_objects = got
        .iter()
        .filter(|r| r.header("x-scanhook-event") == Some("semgrep_scan"))
        .count();
    assert_eq!(scan_objects, scans.len());
    let mut received: Vec<String> = got
        .iter()
        .filter(|r| r.header("x-scanhook-event") == Some("semgrep_finding"))
        .flat_map(|r| r.json().as_array().unwrap().clone())
        .map(|f| {
            let f = &f["semgrep_finding"];
            let tool = f["metadata"]["tool"].as_str().unwrap().to_string();
            let check = f["check_id"].as_str().unwrap();
            assert!(
                tool == "semgrep" || check.starts_with(&format!("{tool}.")),
                "{f}"
            );
            format!("{}:{check}:{}", f["path"].as_str().unwrap(), f["line"])
        })
        .collect();
    let mut expected: Vec<String> = scans
        .iter()
        .flat_map(|s| s["changes"].as_array().unwrap().clone())
        .filter(|f| f["scan_change"]["notify"] == true)
        .map(|f| {
            format!(
                "{}:{}:{}",
                f["location"]["file_path"].as_str().unwrap(),
                f["rule_name"].as_str().unwrap(),
                f["location"]["line"]
            )
        })
        .collect();
    received.sort();
    expected.sort();
    assert!(!expected.is_empty());
    assert_eq!(received, expected);
    let secret = hook["secret"].as_str().unwrap();
    assert_eq!(rx.verify_all_with_standardwebhooks(secret, true), got.len());

    // Every tool's rules are on the rule board, under a policy of its own, in Monitor
    // mode, and none of them is given to `semgrep ci`.
    let rules = app.admin_get("/api/v1/rules").await;
    let b602 = rules["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["rule_id"] == "bandit.B602")
        .expect("bandit.B602 on the board")
        .clone();
    assert_eq!(b602["tool"], "bandit");
    assert_eq!(b602["served"], false);
    assert_eq!(b602["mode"], "monitor");
    assert_eq!(b602["policy"]["slug"], "bandit");
    let policies = app.admin_get("/api/v1/policies").await;
    let slugs: BTreeSet<String> = policies["policies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["slug"].as_str().unwrap().to_string())
        .collect();
    for tool in ["bandit", "ruff", "checkov", "eslint", "semgrep"] {
        assert!(slugs.contains(tool), "{slugs:?}");
    }
    app.ci_post("/api/cli/v2/scans", &fixture("01-post-scans.request.json"))
        .await;
    let uid = fixture("01-post-scans.request.json")["scan_metadata"]["unique_id"]
        .as_str()
        .unwrap()
        .to_string();
    let config = app.scan_config(&uid).await;
    assert_eq!(
        config["config"]["rules"]["rules"].as_array().unwrap().len(),
        0,
        "no uploaded rule is served to semgrep ci: {config}"
    );
    app.stop().await;
}
on_both!(real_scanners_over_three_commits);

/// A minimal SARIF log of one tool: `(rule, path, snippet)` per result.
fn sarif(tool: &str, results: &[(&str, &str, &str)]) -> Vec<u8> {
    let results: Vec<Value> = results
        .iter()
        .map(|(rule, path, snippet)| {
            json!({
                "ruleId": rule,
                "level": "error",
                "message": {"text": format!("{rule} in {path}")},
                "locations": [{"physicalLocation": {
                    "artifactLocation": {"uri": path},
                    "region": {"startLine": 3, "snippet": {"text": snippet}}
                }}]
            })
        })
        .collect();
    serde_json::to_vec(&json!({
        "version": "2.1.0",
        // The tool says what it ran and what it looked at, so a finding gone is fixed.
        "runs": [{"tool": {"driver": {"name": tool, "rules": [{"id": "B101"}, {"id": "B602"}]}},
                  "artifacts": [{"location": {"uri": "app.py"}}],
                  "results": results}]
    }))
    .unwrap()
}

async fn post_upload(app: &TestApp, query: &str, body: Vec<u8>) -> (StatusCode, Value) {
    app.raw(
        Method::POST,
        &format!("/api/v1/uploads?{query}"),
        Some(&app.ci),
        body,
        "application/sarif+json",
    )
    .await
}

/// Block mode gates the build: `scanhook upload` exits 1 when the upload opens a finding
/// of a rule in Block mode, 0 when nothing new is in Block mode.
async fn block_mode_fails_the_upload(db: Db) {
    let app = TestApp::spawn(db).await;
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, body: Vec<u8>| {
        let p = dir.path().join(name);
        std::fs::write(&p, body).unwrap();
        p.to_str().unwrap().to_string()
    };
    let first = write(
        "1.sarif",
        sarif("Bandit", &[("B602", "a.py", "call(x, shell=True)")]),
    );
    let run = |file: String| {
        let app = &app;
        let dir = dir.path().to_path_buf();
        async move { upload(app, &dir, &["--repo", "acme/gate", "--ref", "main", &file]).await }
    };
    let (code, out, err) = run(first.clone()).await;
    assert_eq!(code, 0, "a new Monitor-mode finding does not block: {err}");
    assert_eq!(out["blocking"], 0);
    app.set_mode("bandit.B602", "block").await;
    // The same finding again: not new, so not blocking.
    let (code, _, err) = run(first).await;
    assert_eq!(code, 0, "{err}");
    let second = write(
        "2.sarif",
        sarif(
            "Bandit",
            &[
                ("B602", "a.py", "call(x, shell=True)"),
                ("B602", "b.py", "Popen(y, shell=True)"),
            ],
        ),
    );
    let (code, out, err) = run(second.clone()).await;
    assert_eq!(code, 1, "a new finding of a Block rule fails: {err}");
    assert_eq!(out["blocking"], 1, "{out}");
    assert!(err.contains("Block mode"), "{err}");
    assert_eq!(
        out["uploads"][0]["scans"][0]["scan"]["counts"]["blocking"],
        1
    );
    // Gone, then back: blocks again.
    let third = write(
        "3.sarif",
        sarif("Bandit", &[("B602", "a.py", "call(x, shell=True)")]),
    );
    let (code, _, err) = run(third).await;
    assert_eq!(code, 0, "b.py fixed, nothing new: {err}");
    let (code, out, err) = run(second).await;
    assert_eq!(code, 1, "b.py back blocks again: {err}");
    // Bandit lists no artifacts, so b.py gone from the upload closed as removed (not
    // known to be scanned), and coming back reopens it.
    assert_eq!(
        out["uploads"][0]["scans"][0]["changes"][0]["scan_change"]["change"], "reopened",
        "{out}"
    );
    app.stop().await;
}
on_both!(block_mode_fails_the_upload);

/// A Bandit upload never closes another tool's findings on the same ref (here those of a
/// `semgrep ci` scan), and a retry of an upload with its `unique_id` changes nothing twice.
async fn tools_keep_their_own_findings_and_retries_are_harmless(db: Db) {
    let app = TestApp::spawn(db).await;
    app.add_rules(&fixture_text("sample-rules.yml"), None, "monitor")
        .await;
    let create = fixture("01-post-scans.request.json");
    let repo = create["project_metadata"]["repository"]
        .as_str()
        .unwrap()
        .to_string();
    let git_ref = create["project_metadata"]["branch"]
        .as_str()
        .unwrap()
        .to_string();
    app.drive_scan(&create, &fixture("03-post-results.request.json"))
        .await;
    let semgrep_open = app
        .findings(&format!("repos={repo}&status=open"))
        .await
        .len();
    assert!(semgrep_open > 0);
    let q = format!("repository={repo}&ref={git_ref}&unique_id=up-1&changes=true");
    let body = sarif("Bandit", &[("B101", "app.py", "assert x")]);
    let (status, first) = post_upload(&app, &q, body.clone()).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let (status, again) = post_upload(&app, &q, body).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(
        first["scans"][0]["scan"]["public_id"], again["scans"][0]["scan"]["public_id"],
        "the retry finds the scan it made"
    );
    assert_eq!(again["scans"][0]["scan"]["counts"]["opened"], 1);
    // An empty Bandit upload (everything of Bandit's fixed) leaves Semgrep's findings open.
    let q2 = format!("repository={repo}&ref={git_ref}&unique_id=up-2");
    let (status, out) = post_upload(&app, &q2, sarif("Bandit", &[])).await;
    assert_eq!(status, StatusCode::OK, "{out}");
    assert_eq!(out["scans"][0]["scan"]["counts"]["fixed"], 1, "{out}");
    let open = app.findings(&format!("repos={repo}&status=open")).await;
    assert_eq!(open.len(), semgrep_open, "only Bandit's finding closed");
    assert!(open
        .iter()
        .all(|f| !f["rule_name"].as_str().unwrap().starts_with("bandit.")));
    // The retry notified nothing twice: one scan object per distinct scan.
    let scans = app
        .admin_post(
            &format!("/api/v1/deployments/{}/scans/search", app.slug),
            &json!({"limit": 10}),
        )
        .await;
    assert_eq!(scans["scans"].as_array().unwrap().len(), 3, "{scans}");
    app.stop().await;
}
on_both!(tools_keep_their_own_findings_and_retries_are_harmless);

/// What is refused gets a 4xx with the stable error shape, and nothing of it is stored.
async fn bad_uploads_are_refused_and_store_nothing(db: Db) {
    let app = TestApp::spawn_with(db, |c| c.max_results_bytes = 64 * 1024).await;
    let q = "repository=acme/bad&ref=main";
    let no_location = serde_json::to_vec(&json!({
        "version": "2.1.0",
        "runs": [{"tool": {"driver": {"name": "Bandit"}},
                  "results": [{"ruleId": "B1", "message": {"text": "x"}}]}]
    }))
    .unwrap();
    let cases: Vec<(&str, Vec<u8>, StatusCode, &str, &str)> = vec![
        (
            "not JSON",
            b"{not json".to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid_upload",
            "not JSON",
        ),
        (
            "wrong version",
            br#"{"version":"1.0.0","runs":[]}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid_upload",
            "version",
        ),
        (
            "neither format",
            br#"{"hello":1}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid_upload",
            "neither SARIF",
        ),
        (
            "no location",
            no_location,
            StatusCode::BAD_REQUEST,
            "invalid_upload",
            "runs[0]",
        ),
        (
            "oversized",
            vec![b' '; 65 * 1024],
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "bytes",
        ),
    ];
    for (what, body, status, code, says) in cases {
        let (got, v) = post_upload(&app, q, body).await;
        assert_eq!(got, status, "{what}: {v}");
        assert_eq!(v["error"]["code"], code, "{what}: {v}");
        let message = v["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{what}: {message}");
    }
    let (got, v) = post_upload(&app, "ref=main", sarif("Bandit", &[])).await;
    assert_eq!(got, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["code"], "invalid_query");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("repository"));
    let (got, v) = post_upload(&app, "repository=acme/bad&format=xml", sarif("Bandit", &[])).await;
    assert_eq!(got, StatusCode::BAD_REQUEST, "{v}");
    // Nothing was stored: no project, no scan, no rule.
    let projects = app
        .admin_get(&format!("/api/v1/deployments/{}/projects", app.slug))
        .await;
    assert_eq!(
        projects["projects"].as_array().unwrap().len(),
        0,
        "{projects}"
    );
    let rules = app.admin_get("/api/v1/rules").await;
    assert_eq!(rules["rules"].as_array().unwrap().len(), 0, "{rules}");
    assert!(app.latest_scan().await.is_null());
    app.stop().await;
}
on_both!(bad_uploads_are_refused_and_store_nothing);
