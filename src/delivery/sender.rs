//! One HTTP attempt: POST the signed body, follow no redirect, time out, and report what
//! happened in a form the delivery log keeps. Targets are reached directly, or through the
//! outbound proxy an operator configured; never through a proxy named by the environment.

use super::guard::{Guard, GuardedResolver};
use crate::domain::outbox::Outcome;
use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The HTTP client of the delivery path.
#[derive(Debug, Clone)]
pub struct Sender {
    client: reqwest::Client,
    guard: Arc<Guard>,
    /// Through a proxy, which resolves target names itself.
    proxied: bool,
    timeout: Duration,
}

const EXCERPT: usize = 4096;

impl Sender {
    /// A client that connects to targets itself, vetting the addresses it resolves, or
    /// with `proxy` only through that proxy, vetting each target's name first.
    pub fn new(
        guard: Guard,
        timeout: Duration,
        proxy: Option<&OutboundProxy>,
    ) -> anyhow::Result<Sender> {
        let guard = Arc::new(guard);
        let builder = reqwest::Client::builder()
            // HTTP_PROXY and the like would hand the target's name to a proxy to resolve,
            // so the guard would never see an address: only a configured proxy is used.
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .pool_idle_timeout(Duration::from_secs(30))
            .user_agent(concat!("scanhook/", env!("CARGO_PKG_VERSION")));
        let builder = match proxy {
            Some(proxy) => {
                tracing::info!(%proxy, "deliveries go through the outbound proxy");
                // Only the proxy's own name is resolved here, and it is the operator's
                // (often private): no guard on it.
                builder.proxy(reqwest::Proxy::all(proxy.0.clone())?)
            }
            None => builder.dns_resolver(Arc::new(GuardedResolver(guard.clone()))),
        };
        Ok(Sender {
            client: builder.build()?,
            guard,
            proxied: proxy.is_some(),
            timeout,
        })
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
        if let Some(why) = self.vet(&url).await {
            return Outcome {
                error: Some(why),
                latency: started.elapsed(),
                ..Outcome::default()
            };
        }
        headers
            .entry(CONTENT_TYPE)
            .or_insert(HeaderValue::from_static("application/json"));
        let mut req = reqwest::Request::new(reqwest::Method::POST, url);
        *req.headers_mut() = headers;
        *req.body_mut() = Some(body.into());
        // The vetting counts against the attempt's timeout: leases are sized by it.
        *req.timeout_mut() = Some(self.timeout.saturating_sub(started.elapsed()));
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
            // Without the URL: for chat kinds it is the credential, and it is in the log.
            Err(e) => Outcome {
                latency: started.elapsed(),
                error: Some(describe(&e.without_url())),
                ..Outcome::default()
            },
        }
    }

    /// Why `url` may not be delivered to, where the guarded resolver cannot tell: an
    /// IP-literal host is never resolved, and through a proxy no name is resolved here.
    async fn vet(&self, url: &url::Url) -> Option<String> {
        match url.host()? {
            url::Host::Ipv4(ip) => self.guard.refusal(ip.into()),
            url::Host::Ipv6(ip) => self.guard.refusal(ip.into()),
            url::Host::Domain(name) if self.proxied => {
                tokio::time::timeout(self.timeout, self.guard.refusal_of_name(name))
                    .await
                    .unwrap_or_else(|_| Some(format!("timed out resolving {name} to vet it")))
            }
            url::Host::Domain(_) => None,
        }
    }
}

/// The forward proxy deliveries go through (`--outbound-proxy`): an http(s) URL, perhaps
/// with credentials, which nothing prints.
#[derive(Clone, PartialEq, Eq)]
pub struct OutboundProxy(url::Url);

impl OutboundProxy {
    /// Parses `http(s)://[USER:PASSWORD@]HOST[:PORT]`. An error never repeats the value:
    /// it may hold a password.
    pub fn parse(s: &str) -> Result<OutboundProxy, String> {
        let url = url::Url::parse(s.trim())
            .map_err(|e| format!("not a URL like http://proxy.internal:3128 ({e})"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "must be an http or https URL, not {}:",
                url.scheme()
            ));
        }
        if url.host().is_none() {
            return Err("the proxy URL has no host".into());
        }
        if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
            return Err("a proxy URL is scheme://host:port, without a path or query".into());
        }
        Ok(OutboundProxy(url))
    }
}

impl fmt::Display for OutboundProxy {
    /// The URL with its password, if any, as `***`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut url = self.0.clone();
        if url.password().is_some() {
            let _ = url.set_password(Some("***"));
        }
        write!(f, "{url}")
    }
}

impl fmt::Debug for OutboundProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OutboundProxy({self})")
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
