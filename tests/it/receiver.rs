//! A webhook receiver on 127.0.0.1:0 that records every request and answers with the
//! statuses a test scripts (then 200), or holds requests open until released.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

#[derive(Debug, Clone)]
pub struct Received {
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("a JSON body")
    }
}

#[derive(Default)]
struct Inner {
    received: Mutex<Vec<Received>>,
    script: Mutex<VecDeque<u16>>,
    hold: Mutex<bool>,
    release: Notify,
    arrived: Notify,
    /// Sent as `Retry-After` with every 429.
    retry_after: Mutex<Option<String>>,
}

#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    inner: Arc<Inner>,
}

async fn handle(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, HeaderMap, String) {
    let headers = headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                v.to_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    inner.received.lock().unwrap().push(Received {
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    inner.arrived.notify_waiters();
    let hold = *inner.hold.lock().unwrap();
    if hold {
        inner.release.notified().await;
    }
    let status = inner.script.lock().unwrap().pop_front().unwrap_or(200);
    let mut answer = HeaderMap::new();
    if status == 429 {
        if let Some(ra) = inner.retry_after.lock().unwrap().as_deref() {
            answer.insert("retry-after", ra.parse().unwrap());
        }
    }
    (
        StatusCode::from_u16(status).unwrap(),
        answer,
        format!("answered {status}"),
    )
}

impl Receiver {
    pub async fn start() -> Receiver {
        Self::start_on("127.0.0.1:0").await
    }

    /// Starts on a given address (a receiver that comes up where one was down).
    pub async fn start_on(addr: &str) -> Receiver {
        let inner = Arc::new(Inner::default());
        let app = Router::new()
            .route("/hook", post(handle))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { url, inner }
    }

    /// The next answers, in order; 200 after them.
    pub fn script(&self, statuses: &[u16]) {
        self.inner.script.lock().unwrap().extend(statuses);
    }

    /// The `Retry-After` every 429 carries.
    pub fn retry_after(&self, value: &str) {
        *self.inner.retry_after.lock().unwrap() = Some(value.to_string());
    }

    /// Holds every request open until [`Receiver::release`].
    pub fn hold(&self) {
        *self.inner.hold.lock().unwrap() = true;
    }

    pub fn release(&self) {
        *self.inner.hold.lock().unwrap() = false;
        self.inner.release.notify_waiters();
    }

    pub fn received(&self) -> Vec<Received> {
        self.inner.received.lock().unwrap().clone()
    }

    /// Verifies every request with the PyPI `standardwebhooks` library (and, with
    /// `platform_header`, `X-Semgrep-Signature-256` keyed by the same secret); returns how
    /// many requests passed. Panics on the first one that does not.
    pub fn verify_all_with_standardwebhooks(&self, secret: &str, platform_header: bool) -> usize {
        let received = self.received();
        let dump: Vec<Value> = received
            .iter()
            .map(|r| json!({"headers": r.headers.iter().cloned().collect::<std::collections::HashMap<_, _>>(), "body": r.body}))
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("received.json");
        std::fs::write(&file, serde_json::to_string(&dump).unwrap()).unwrap();
        let python = std::env::var("SCANHOOK_PYTHON")
            .unwrap_or_else(|_| format!("{}/.venv/bin/python", env!("CARGO_MANIFEST_DIR")));
        let script = r#"
import json, sys, hmac, hashlib
from standardwebhooks import Webhook
secret = sys.argv[2]
platform = sys.argv[3] == "1"
wh = Webhook(secret)
n = 0
for r in json.load(open(sys.argv[1])):
    wh.verify(r["body"], r["headers"])
    if platform:
        mine = hmac.new(secret.encode(), r["body"].encode(), hashlib.sha256).hexdigest()
        assert hmac.compare_digest(mine, r["headers"]["x-semgrep-signature-256"]), "X-Semgrep-Signature-256"
    n += 1
print(n)
"#;
        let out = std::process::Command::new(&python)
            .args(["-c", script, file.to_str().unwrap(), secret])
            .arg(if platform_header { "1" } else { "0" })
            .output()
            .unwrap_or_else(|e| panic!("{python}: {e}; run ./scripts/test to install the venv"));
        assert!(
            out.status.success(),
            "standardwebhooks refused a request: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    }
}
