//! One HTTP attempt: POST the signed body, follow no redirect, time out, and report what
//! happened in a form the delivery log keeps.

use super::guard::{Guard, GuardedResolver};
use crate::domain::outbox::Outcome;
use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The HTTP client of the delivery path.
#[derive(Debug, Clone)]
pub struct Sender {
    client: reqwest::Client,
    guard: Arc<Guard>,
}

const EXCERPT: usize = 4096;

impl Sender {
    pub fn new(guard: Guard, timeout: Duration) -> anyhow::Result<Sender> {
        let guard = Arc::new(guard);
        let client = reqwest::Client::builder()
            // HTTP_PROXY and the like would hand the target's name to a proxy to resolve,
            // so the guard would never see an address: every delivery connects itself.
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .pool_idle_timeout(Duration::from_secs(30))
            .dns_resolver(Arc::new(GuardedResolver(guard.clone())))
            .user_agent(concat!("scanhook/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Sender { client, guard })
    }

    /// POSTs `body` with `headers` to `url`.
    pub async fn post(&self, url: &str, headers: HeaderMap, body: Bytes) -> Outcome {
        match url::Url::parse(url) {
            Ok(url) => self.send(url, headers, body).await,
            Err(e) => Outcome::refused(format!("invalid URL: {e}")),
        }
    }

    /// POSTs `body` with `headers` (a JSON content type is added) to a parsed `url`.
    pub async fn send(&self, url: url::Url, mut headers: HeaderMap, body: Bytes) -> Outcome {
        let started = Instant::now();
        // IP-literal hosts never reach the resolver: check them here.
        let literal = match url.host() {
            Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            _ => None,
        };
        if let Some(why) = literal.and_then(|ip| self.guard.refusal(ip)) {
            return Outcome {
                error: Some(why),
                latency: started.elapsed(),
                ..Outcome::default()
            };
        }
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let mut req = reqwest::Request::new(reqwest::Method::POST, url);
        *req.headers_mut() = headers;
        *req.body_mut() = Some(body.into());
        match self.client.execute(req).await {
            Ok(mut resp) => {
                let status = resp.status().as_u16();
                let retry_after = resp
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                let mut excerpt = Vec::new();
                while excerpt.len() < EXCERPT {
                    match resp.chunk().await {
                        Ok(Some(chunk)) => excerpt.extend_from_slice(&chunk),
                        _ => break,
                    }
                }
                excerpt.truncate(EXCERPT);
                Outcome {
                    status: Some(status),
                    latency: started.elapsed(),
                    excerpt: Some(String::from_utf8_lossy(&excerpt).into_owned()),
                    error: None,
                    retry_after,
                }
            }
            Err(e) => Outcome {
                latency: started.elapsed(),
                error: Some(describe(&e)),
                ..Outcome::default()
            },
        }
    }
}

/// The error in words, with its causes (the guard's refusal sits deep in the chain).
fn describe(e: &reqwest::Error) -> String {
    let mut parts = vec![if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "could not connect".to_string()
    } else {
        e.to_string()
    }];
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}
