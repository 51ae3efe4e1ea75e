//! What the admin commands share: the server's address, the token, and a JSON client
//! that turns the server's error objects into readable messages.

use clap::Args;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use std::fmt;

/// A secret that never shows up in `Debug` output or logs.
#[derive(Clone)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_string()))
    }
}

#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// Base URL of the scanhook server.
    #[arg(
        long,
        env = "SCANHOOK_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub server: String,
    /// Admin token.
    #[arg(long, env = "SCANHOOK_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<Secret>,
    /// Print machine-readable JSON.
    #[arg(long, global = true)]
    pub json: bool,
}

/// A thin JSON client of the scanhook API.
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Secret,
}

impl Client {
    pub fn new(args: &ClientArgs) -> anyhow::Result<Client> {
        let token = args.token.clone().ok_or_else(|| {
            anyhow::anyhow!("no token: pass --token or set SCANHOOK_TOKEN (an admin token)")
        })?;
        Ok(Client {
            http: reqwest::Client::builder()
                .user_agent(concat!("scanhook-cli/", env!("CARGO_PKG_VERSION")))
                .build()?,
            base: args.server.trim_end_matches('/').to_string(),
            token,
        })
    }

    /// Sends a request and reads the answer as the API's type for it, or fails with the
    /// server's message.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> anyhow::Result<T> {
        let value = self.call_value(method, path, body).await?;
        serde_json::from_value(value).map_err(|e| {
            anyhow::anyhow!("the server's answer to {path} is not what this CLI expects: {e}")
        })
    }

    /// POSTs `body` (a JSON file) and reads the answer as `T`. A 503 (the server is
    /// full) or an unreachable server is retried up to `tries` times in all, after the
    /// server's `Retry-After` (at most `max_wait`) or a second.
    pub async fn post_bytes<T: DeserializeOwned>(
        &self,
        path: &str,
        body: Vec<u8>,
        tries: u32,
        max_wait: std::time::Duration,
    ) -> anyhow::Result<T> {
        let url = format!("{}{}", self.base, path);
        // Shared, so a retry does not copy the file again.
        let body = bytes::Bytes::from(body);
        let mut attempt = 1;
        loop {
            let sent = self
                .http
                .post(&url)
                .bearer_auth(&self.token.0)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone())
                .send()
                .await;
            let wait = match &sent {
                Ok(r) if r.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE => r
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok()?.parse().ok())
                    .map_or(
                        std::time::Duration::from_secs(1),
                        std::time::Duration::from_secs,
                    ),
                Ok(_) => std::time::Duration::ZERO,
                Err(e) if e.is_connect() => std::time::Duration::from_secs(1),
                Err(_) => std::time::Duration::ZERO,
            };
            if wait.is_zero() || attempt >= tries {
                let resp = sent
                    .map_err(|e| anyhow::anyhow!("cannot reach scanhook at {}: {e}", self.base))?;
                let value = answer(resp).await?;
                return serde_json::from_value(value).map_err(|e| {
                    anyhow::anyhow!(
                        "the server's answer to {path} is not what this CLI expects: {e}"
                    )
                });
            }
            tokio::time::sleep(wait.min(max_wait)).await;
            attempt += 1;
        }
    }

    /// Sends a request and returns the JSON answer as it came.
    async fn call_value(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> anyhow::Result<Value> {
        let url = format!("{}{}", self.base, path);
        let mut req = self.http.request(method, &url).bearer_auth(&self.token.0);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("cannot reach scanhook at {}: {e}", self.base))?;
        answer(resp).await
    }
}

/// The JSON of a success, or the server's message as the error.
async fn answer(resp: reqwest::Response) -> anyhow::Result<Value> {
    let status = resp.status();
    let text = resp.text().await?;
    let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    if status.is_success() {
        return Ok(value);
    }
    let message = serde_json::from_value::<crate::error::ErrorBody>(value.clone())
        .map(|e| e.error.message)
        .unwrap_or_else(|_| value.to_string());
    anyhow::bail!("{status}: {message}")
}

/// Prints `out` as JSON with `--json`, else as `human` words it.
pub fn print<T: Serialize>(client: &ClientArgs, out: &T, human: impl FnOnce(&T) -> String) {
    if client.json {
        println!(
            "{}",
            serde_json::to_string(out).expect("API types serialise")
        );
    } else {
        println!("{}", human(out));
    }
}

/// No request body.
pub const NO_BODY: Option<&()> = None;
