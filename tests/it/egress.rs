//! How deliveries leave, with the real binary: `scanhook serve` with proxy variables in
//! its environment (ignored: they would take deliveries past the SSRF guard), and `serve`
//! and `worker` with `--outbound-proxy` (used, but every target vetted before the proxy
//! hears of it), against a recording stand-in proxy.

use crate::cli::{run, scanhook};
use crate::harness::fixture;
use crate::proxy::{RecordingProxy, ANSWER};
use crate::receiver::Receiver;
use serde_json::{json, Value};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};

/// `scanhook serve` as a process on `data_dir`, in an environment of exactly `env`, with
/// the admin token its first start printed.
struct Served {
    child: tokio::process::Child,
    base: String,
    admin: String,
    http: reqwest::Client,
    // Held open: serve prints more after the token, and a closed pipe would fail it.
    _stdout: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

impl Served {
    async fn start(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Served {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = data_dir.join(format!("serve-{port}.log"));
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_scanhook"))
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--data-dir",
            ])
            .arg(data_dir)
            .args(args)
            .env_clear()
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        // The token is printed once serve listens, so it is also the sign that serve is up.
        let token = tokio::time::timeout(Duration::from_secs(60), async {
            while let Ok(Some(line)) = stdout.next_line().await {
                if let Some(t) = line.split_whitespace().find(|w| w.starts_with("shk_")) {
                    return Some(t.to_string());
                }
            }
            None
        })
        .await;
        let Ok(Some(admin)) = token else {
            panic!(
                "serve printed no admin token: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        };
        Served {
            child,
            base: format!("http://127.0.0.1:{port}"),
            admin,
            // The test's own proxy variables must not come between it and serve.
            http: reqwest::Client::builder().no_proxy().build().unwrap(),
            _stdout: stdout,
        }
    }

    async fn post(&self, token: &str, path: &str, body: &Value) -> Value {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "POST {path}: {}", r.status());
        r.json().await.unwrap()
    }

    /// Adds an integration at `url` and runs its Test: what the Test answered.
    async fn test_action(&self, url: &str) -> Value {
        let i = self
            .post(
                &self.admin,
                "/api/v1/integrations",
                &json!({"name": "Internal", "url": url}),
            )
            .await;
        let id = i["id"].as_str().unwrap();
        self.post(
            &self.admin,
            &format!("/api/v1/integrations/{id}/test"),
            &json!({}),
        )
        .await
    }

    async fn stop(mut self) {
        self.child.kill().await.unwrap();
    }
}

fn assert_refused_by_the_guard(test: &Value) {
    assert_eq!(test["delivered"], false, "{test}");
    let error = test["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("refused") && error.contains("not a global address"),
        "{test}"
    );
    assert_eq!(test["response"], Value::Null, "nothing read back: {test}");
}

fn port_of(url: &str) -> u16 {
    url::Url::parse(url).unwrap().port().unwrap()
}

/// Proxy variables in serve's environment do not carry deliveries past the SSRF guard.
/// (They did: the proxy resolved `localhost` instead of the guard, and the Test action
/// read its answer back.) The delivery client ignores them and vets every target itself.
#[tokio::test]
async fn proxy_variables_do_not_carry_deliveries_past_the_guard() {
    let dir = tempfile::tempdir().unwrap();
    let proxy = RecordingProxy::start().await;
    let rx = Receiver::start().await;
    let port = port_of(&rx.url);
    let env = [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ]
    .map(|var| (var, proxy.url.as_str()));
    let serve = Served::start(dir.path(), &[], &env).await;
    for scheme in ["http", "https"] {
        let test = serve
            .test_action(&format!("{scheme}://localhost:{port}/hook"))
            .await;
        assert_refused_by_the_guard(&test);
    }
    assert_eq!(proxy.requests(), Vec::<String>::new(), "proxy contacted");
    assert!(rx.received().is_empty());
    serve.stop().await;
}

/// With --outbound-proxy, deliveries go through that proxy, which resolves names itself;
/// so the target's name is resolved here first and refused unless every address passes
/// the guard: the proxy never hears of an internal target. Allowed, it goes through.
#[tokio::test]
async fn the_outbound_proxy_carries_only_vetted_targets() {
    let (refusing, allowing) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let proxy = RecordingProxy::start().await;
    let rx = Receiver::start().await;
    let port = port_of(&rx.url);
    let via = ["--outbound-proxy", proxy.url.as_str()];
    let serve = Served::start(
        refusing.path(),
        &[&via[..], &["--deliver-allow-cidrs", ""]].concat(),
        &[],
    )
    .await;
    for host in ["localhost", "127.0.0.1", "[::ffff:7f00:1]"] {
        let test = serve
            .test_action(&format!("http://{host}:{port}/hook"))
            .await;
        assert_refused_by_the_guard(&test);
    }
    assert_eq!(proxy.requests(), Vec::<String>::new(), "proxy contacted");
    serve.stop().await;

    let serve = Served::start(
        allowing.path(),
        &[&via[..], &["--deliver-allow-cidrs", "127.0.0.0/8,::1/128"]].concat(),
        &[],
    )
    .await;
    let test = serve
        .test_action(&format!("http://localhost:{port}/hook"))
        .await;
    assert_eq!(
        (test["delivered"].as_bool(), test["response"].as_str()),
        (Some(true), Some(ANSWER)),
        "{test}"
    );
    assert_eq!(
        proxy.requests(),
        [format!("POST http://localhost:{port}/hook HTTP/1.1")]
    );
    assert!(
        rx.received().is_empty(),
        "only the proxy connects to targets"
    );
    serve.stop().await;
}

/// `scanhook worker` takes --outbound-proxy as serve does: a scan's messages, queued by
/// `serve --no-deliver`, reach the proxy addressed to the integration's URL.
#[tokio::test]
async fn the_worker_delivers_through_the_outbound_proxy() {
    let dir = tempfile::tempdir().unwrap();
    let proxy = RecordingProxy::start().await;
    let serve = Served::start(dir.path(), &["--no-deliver"], &[]).await;
    serve
        .post(
            &serve.admin,
            "/api/v1/integrations",
            &json!({"name": "Behind the proxy", "url": "http://localhost:9/hook"}),
        )
        .await;
    let (ok, ci, err) = run(scanhook()
        .args(["token", "create", "--scope", "ci", "--data-dir"])
        .arg(dir.path()));
    assert!(ok, "{err}");
    let ci = ci.trim();
    let id = serve
        .post(
            ci,
            "/api/cli/v2/scans",
            &fixture("01-post-scans.request.json"),
        )
        .await["info"]["id"]
        .as_i64()
        .unwrap();
    for (step, body) in [
        ("results", "03-post-results.request.json"),
        ("complete", "04-post-complete.request.json"),
    ] {
        serve
            .post(ci, &format!("/api/agent/scans/{id}/{step}"), &fixture(body))
            .await;
    }
    let _worker = tokio::process::Command::new(env!("CARGO_BIN_EXE_scanhook"))
        .args(["worker", "--data-dir"])
        .arg(dir.path())
        .args(["--outbound-proxy", &proxy.url])
        .args(["--deliver-allow-cidrs", "127.0.0.0/8,::1/128"])
        .env_clear()
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !proxy.requests().iter().any(|r| !r.is_empty()) {
        assert!(Instant::now() < deadline, "nothing reached the proxy");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let asked: Vec<String> = proxy
        .requests()
        .into_iter()
        .filter(|r| !r.is_empty())
        .collect();
    assert!(
        asked
            .iter()
            .all(|r| r == "POST http://localhost:9/hook HTTP/1.1"),
        "{asked:?}"
    );
    serve.stop().await;
}

/// A bad --outbound-proxy stops serve and worker at start, naming the setting, whichever
/// layer it came from; the value is not echoed (it may carry a password).
#[test]
fn a_bad_outbound_proxy_names_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("proxy.toml");
    std::fs::write(
        &config,
        "outbound_proxy = \"socks5://u:hunter2@127.0.0.1:1080\"\n",
    )
    .unwrap();
    // If a value were taken, the role would stop at this database instead of running on.
    let db = ["--database-url", "postgres://127.0.0.1:1/none"];
    for role in ["serve", "worker"] {
        for bad in [
            "socks5://u:hunter2@127.0.0.1:1080",
            "hunter2",
            "http://u:hunter2@proxy.internal:3128/path",
        ] {
            let (ok, _, err) = run(scanhook().args([role, "--outbound-proxy", bad]).args(db));
            assert!(!ok, "{role} {bad}");
            assert!(
                err.contains("--outbound-proxy / SCANHOOK_OUTBOUND_PROXY"),
                "{role} {bad}: {err}"
            );
            assert!(!err.contains("hunter2"), "{role} {bad}: {err}");
        }
        let (ok, _, err) = run(scanhook()
            .arg(role)
            .args(db)
            .env("SCANHOOK_OUTBOUND_PROXY", "ftp://proxy.internal"));
        assert!(!ok && err.contains("SCANHOOK_OUTBOUND_PROXY"), "{err}");
        let (ok, _, err) = run(scanhook().arg(role).args(db).arg("--config").arg(&config));
        assert!(!ok && err.contains("`outbound_proxy`"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }
}
