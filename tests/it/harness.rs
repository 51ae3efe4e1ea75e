//! Test harness: the real app on 127.0.0.1:0 with a fresh SQLite file or a fresh
//! PostgreSQL database per test, and typed helpers to call it.

use reqwest::{Method, StatusCode};
use scanhook::app::{self, Running};
use scanhook::config::Config;
use scanhook::domain::tokens::Scope;
use serde_json::Value;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Which backend a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// Runs one async test body on both backends: `name::sqlite` and `name::postgres`.
/// Without `SCANHOOK_TEST_PG_URL` the PostgreSQL twin is reported as ignored.
#[macro_export]
macro_rules! on_both {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::harness::Db::Sqlite).await
            }

            #[cfg_attr(
                not(pg_tests),
                ignore = "SCANHOOK_TEST_PG_URL is not set: PostgreSQL test skipped"
            )]
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::harness::Db::Postgres).await
            }
        }
    };
}

pub struct TestApp {
    pub base: String,
    pub database_url: String,
    pub admin: String,
    pub ci: String,
    pub slug: String,
    pub running: Option<Running>,
    pub http: reqwest::Client,
    /// The file of the key that seals this app's secrets.
    pub key_file: std::path::PathBuf,
    pg: Option<PgDb>,
    _dir: tempfile::TempDir,
}

struct PgDb {
    server: String,
    name: String,
}

pub(crate) fn pg_server() -> String {
    std::env::var("SCANHOOK_TEST_PG_URL")
        .expect("SCANHOOK_TEST_PG_URL must be set for PostgreSQL tests")
}

/// `postgres://u@h:p/db` → the same server, another database.
pub(crate) fn with_database(server: &str, db: &str) -> String {
    let mut u = url::Url::parse(server).expect("SCANHOOK_TEST_PG_URL is a URL");
    u.set_path(&format!("/{db}"));
    u.to_string()
}

pub(crate) async fn pg_admin(server: &str, sql: &str) {
    use sqlx::{Connection, Executor};
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(server)
        .await
        .expect("connect to SCANHOOK_TEST_PG_URL");
    conn.execute(sql).await.expect(sql);
    conn.close().await.ok();
}

impl TestApp {
    pub async fn spawn(db: Db) -> TestApp {
        Self::spawn_with(db, |_| {}).await
    }

    /// Spawns with a configuration tweak.
    pub async fn spawn_with(db: Db, tweak: impl FnOnce(&mut Config)) -> TestApp {
        let dir = tempfile::tempdir().expect("tempdir");
        let (database_url, pg) = match db {
            Db::Sqlite => (
                format!("sqlite://{}", dir.path().join("scanhook.db").display()),
                None,
            ),
            Db::Postgres => {
                let server = pg_server();
                let name = format!(
                    "scanhook_test_{}",
                    scanhook::ids::public_scan_id().to_lowercase()
                );
                pg_admin(&server, &format!("CREATE DATABASE {name}")).await;
                (with_database(&server, &name), Some(PgDb { server, name }))
            }
        };
        let mut config = Config::local(database_url);
        config.deployment = "acme".into();
        config.abandon_after = Duration::from_secs(3600);
        config.max_results_bytes = 64 * 1024 * 1024;
        config.allow_cidrs = vec!["127.0.0.0/8".parse().unwrap()];
        config.secret_key_file = Some(dir.path().join("secret.key"));
        tweak(&mut config);
        let database_url = config.database_url.clone();
        let running = app::start(config, CancellationToken::new())
            .await
            .expect("app starts");
        let admin = running
            .first_admin_token
            .clone()
            .expect("first start prints a token");
        let dep = running.store.first_deployment().await.unwrap().unwrap();
        let ci = running.store.create_token(dep.id, Scope::Ci).await.unwrap();
        TestApp {
            base: format!("http://{}", running.addr),
            database_url,
            admin,
            ci,
            slug: dep.slug,
            running: Some(running),
            http: reqwest::Client::new(),
            key_file: dir.path().join("secret.key"),
            pg,
            _dir: dir,
        }
    }

    pub fn store(&self) -> &scanhook::store::Store {
        &self.running.as_ref().unwrap().store
    }

    /// Sends a request with a JSON body (or none) and returns status and JSON answer.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.request(method, path, token);
        if let Some(b) = body {
            req = req.json(b);
        }
        answer(req).await
    }

    /// Sends raw bytes as the body.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Vec<u8>,
        content_type: &str,
    ) -> (StatusCode, Value) {
        let req = self
            .request(method, path, token)
            .header("content-type", content_type)
            .body(body);
        answer(req).await
    }

    fn request(&self, method: Method, path: &str, token: Option<&str>) -> reqwest::RequestBuilder {
        let req = self.http.request(method, format!("{}{}", self.base, path));
        match token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    pub async fn admin_get(&self, path: &str) -> Value {
        let (status, v) = self.call(Method::GET, path, Some(&self.admin), None).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {v}");
        v
    }

    pub async fn admin_post(&self, path: &str, body: &Value) -> Value {
        let (status, v) = self
            .call(Method::POST, path, Some(&self.admin), Some(body))
            .await;
        assert!(status.is_success(), "POST {path}: {status} {v}");
        v
    }

    /// `GET /api/cli/v2/scans/{uid}/config` with the CI token, which must answer 200.
    pub async fn scan_config(&self, uid: &str) -> Value {
        let path = format!("/api/cli/v2/scans/{uid}/config");
        let (status, v) = self.call(Method::GET, &path, Some(&self.ci), None).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {v}");
        v
    }

    pub async fn ci_post(&self, path: &str, body: &Value) -> Value {
        let (status, v) = self
            .call(Method::POST, path, Some(&self.ci), Some(body))
            .await;
        assert!(status.is_success(), "POST {path}: {status} {v}");
        v
    }

    /// Loads rule files' contents into a policy with a mode.
    pub async fn add_rules(&self, yaml: &str, policy: Option<&str>, mode: &str) {
        self.admin_post(
            "/api/v1/rules",
            &serde_json::json!({"files": [{"name": "rules.yml", "content": yaml}], "policy": policy, "mode": mode}),
        )
        .await;
    }

    pub async fn set_mode(&self, rule: &str, mode: &str) {
        let (status, v) = self
            .call(
                Method::PUT,
                &format!("/api/v1/rules/{rule}/mode"),
                Some(&self.admin),
                Some(&serde_json::json!({"mode": mode})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{v}");
    }

    /// Runs a scan through the protocol with these create and `/results` bodies and the
    /// captured `/complete`; returns the scan id.
    pub async fn drive_scan(&self, create: &Value, results: &Value) -> i64 {
        let v = self.ci_post("/api/cli/v2/scans", create).await;
        let id = v["info"]["id"].as_i64().unwrap();
        self.ci_post(&format!("/api/agent/scans/{id}/results"), results)
            .await;
        self.ci_post(
            &format!("/api/agent/scans/{id}/complete"),
            &fixture("04-post-complete.request.json"),
        )
        .await;
        id
    }

    /// A scan's public id (`scn_…`).
    pub async fn public_scan_id(&self, id: i64) -> String {
        self.admin_get(&format!("/api/v1/deployments/{}/scan/{id}", self.slug))
            .await["public_id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Adds an integration (`body` as the API takes it) that every rule mode notifies.
    pub async fn add_notified_integration(&self, body: &Value) -> Value {
        let hook = self.admin_post("/api/v1/integrations", body).await;
        for mode in ["monitor", "comment", "block"] {
            self.admin_post(
                &format!("/api/v1/modes/{mode}/notify"),
                &serde_json::json!({"integration_ids": [hook["id"]]}),
            )
            .await;
        }
        hook
    }

    /// The newest scan of the deployment.
    pub async fn latest_scan(&self) -> Value {
        let v = self
            .admin_post(
                &format!("/api/v1/deployments/{}/scans/search", self.slug),
                &serde_json::json!({"limit": 1}),
            )
            .await;
        v["scans"][0].clone()
    }

    /// Findings a scan changed: `change` as the API takes it.
    pub async fn scan_changes(&self, scan_id: i64, change: &str) -> Vec<Value> {
        let v = self
            .admin_get(&format!(
                "/api/v1/deployments/{}/scan/{scan_id}/findings?change={change}",
                self.slug
            ))
            .await;
        v["findings"].as_array().unwrap().clone()
    }

    /// The webhook objects a scan produced.
    pub async fn webhooks(&self, scan_id: i64) -> Value {
        self.admin_get(&format!(
            "/api/v1/deployments/{}/scan/{scan_id}/webhooks",
            self.slug
        ))
        .await
    }

    /// Findings listed by the v1 API with a query string.
    pub async fn findings(&self, query: &str) -> Vec<Value> {
        let v = self
            .admin_get(&format!(
                "/api/v1/deployments/{}/findings?{query}",
                self.slug
            ))
            .await;
        v["findings"].as_array().unwrap().clone()
    }

    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.stop().await;
        }
        if let Some(pg) = self.pg.take() {
            pg_admin(
                &pg.server,
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", pg.name),
            )
            .await;
        }
    }
}

/// Sends a request; returns its status and JSON answer (every answer must be JSON).
async fn answer(req: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let resp = req.send().await.expect("request sent");
    let status = resp.status();
    let text = resp.text().await.unwrap();
    let value = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("{status} answer is not JSON: {text:?}"));
    (status, value)
}

/// A fixture from `tests/data`.
pub fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).expect(&path)).expect("fixture is JSON")
}

pub fn fixture_text(name: &str) -> String {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).expect(&path)
}
