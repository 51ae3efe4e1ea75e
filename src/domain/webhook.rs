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
        // Parsing percent-encodes what needs it: the limit holds for what is stored too, so
        // that a stored URL is accepted again.
        if url.as_str().len() > 2048 {
            return Err("the webhook URL is longer than 2048 characters once encoded".into());
        }
        Ok(WebhookUrl(url))
    }

    pub fn as_url(&self) -> &url::Url {
        &self.0
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The URL with its credential hidden, for a chat kind whose URL is the credential:
    /// scheme, host and port, then `/…` and the last four characters of the rest (enough to
    /// tell two apart, too few to use).
    pub fn masked(&self) -> String {
        let u = &self.0;
        let origin = u.origin().ascii_serialization();
        let rest = &u.as_str()[origin.len().min(u.as_str().len())..];
        let tail: String = rest
            .chars()
            .rev()
            .take(4)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        if rest.chars().count() <= 8 {
            format!("{origin}/…")
        } else {
            format!("{origin}/…{tail}")
        }
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

    /// Found by `fuzz/fuzz_targets/webhook_url.rs`: 1,243 bytes that encode to more than
    /// 2,048 were accepted, and the stored URL was then refused.
    #[test]
    fn an_accepted_url_is_accepted_again() {
        let short = format!("http://example.com/{}", "é".repeat(600));
        assert!(short.len() <= 2048);
        assert!(WebhookUrl::parse(&short).is_err(), "encodes to 5,419 bytes");
        let fuzzed = include_bytes!("testdata/webhook_url_encodes_past_the_limit");
        if let Ok(url) = WebhookUrl::parse(std::str::from_utf8(fuzzed).unwrap()) {
            assert_eq!(WebhookUrl::parse(url.as_str()).unwrap(), url);
        }
        let fine = WebhookUrl::parse("https://example.com/a b").unwrap();
        assert_eq!(WebhookUrl::parse(fine.as_str()).unwrap(), fine);
    }

    #[test]
    fn masked_urls_keep_the_host_and_hide_the_credential() {
        let slack =
            WebhookUrl::parse("https://hooks.slack.com/services/T000/B000/XXXXsecretWXYZ").unwrap();
        assert_eq!(slack.masked(), "https://hooks.slack.com/…WXYZ");
        let teams = WebhookUrl::parse(
            "https://prod-1.westus.logic.azure.com:443/workflows/abc/paths/invoke?sig=s3cr3tvalue",
        )
        .unwrap();
        assert_eq!(
            teams.masked(),
            "https://prod-1.westus.logic.azure.com/…alue"
        );
        let short = WebhookUrl::parse("http://127.0.0.1:9/hook").unwrap();
        assert_eq!(short.masked(), "http://127.0.0.1:9/…");
    }

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
