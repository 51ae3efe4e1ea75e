//! Webhook targets as users give them, checked before anything is stored.

use std::fmt;

/// An http(s) URL without credentials: where an integration delivers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl(url::Url);

impl WebhookUrl {
    pub fn parse(s: &str) -> Result<WebhookUrl, String> {
        let s = s.trim();
        if s.len() > 2048 {
            return Err("the webhook URL is longer than 2048 characters".into());
        }
        let url = url::Url::parse(s).map_err(|e| format!("{s:?} is not a URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "the webhook URL must use http or https, not {:?}",
                url.scheme()
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(
                "the webhook URL must not carry credentials; authenticate with the signature"
                    .into(),
            );
        }
        if url.host().is_none() {
            return Err("the webhook URL has no host".into());
        }
        Ok(WebhookUrl(url))
    }

    pub fn as_url(&self) -> &url::Url {
        &self.0
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl fmt::Display for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_str())
    }
}

/// An integration's name: 1 to 200 characters, nothing hidden ([`super::text::check_name`]).
pub fn check_name(name: &str) -> Result<&str, String> {
    super::text::check_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert!(WebhookUrl::parse("https://hooks.example.com/semgrep").is_ok());
        assert!(WebhookUrl::parse("http://127.0.0.1:9000/x").is_ok());
        assert!(WebhookUrl::parse("ftp://example.com/")
            .unwrap_err()
            .contains("http or https"));
        assert!(WebhookUrl::parse("https://user:pw@example.com/")
            .unwrap_err()
            .contains("credentials"));
        assert!(WebhookUrl::parse("file:///etc/passwd").is_err());
        assert!(WebhookUrl::parse("not a url").is_err());
    }

    #[test]
    fn names() {
        assert_eq!(check_name("  Alerts "), Ok("Alerts"));
        assert!(check_name("").is_err());
        assert!(check_name("a\nb").is_err());
    }
}
