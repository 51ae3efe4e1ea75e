//! Signatures on every attempt: Standard Webhooks (`webhook-signature: v1,<base64>`, keyed
//! by the base64-decoded secret after `whsec_`) and the platform's `X-Semgrep-Signature-256`
//! (hex HMAC-SHA256 of the body keyed by the whole secret string).

use crate::clock::Micros;
use crate::domain::integration::Integration;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use reqwest::header::{HeaderMap, HeaderValue};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The HMAC key of a `whsec_` secret.
fn key(secret: &str) -> anyhow::Result<Vec<u8>> {
    let b64 = secret.strip_prefix("whsec_").unwrap_or(secret);
    STANDARD
        .decode(b64)
        .map_err(|e| anyhow::anyhow!("the signing secret is not base64 after whsec_: {e}"))
}

/// `v1,<base64 HMAC-SHA256(key, "id.timestamp.body")>`.
pub fn standard(secret: &str, msg_id: &str, timestamp: i64, body: &[u8]) -> anyhow::Result<String> {
    let mut mac = HmacSha256::new_from_slice(&key(secret)?)?;
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Ok(format!(
        "v1,{}",
        STANDARD.encode(mac.finalize().into_bytes())
    ))
}

/// Signs attempts to one integration, its HMAC keys set up once: the current secret, the
/// previous one until its overlap ends, and the `X-Semgrep-Signature-256` key.
#[derive(Clone)]
pub struct Signer {
    /// Keyed MACs of the Standard Webhooks signature, each valid until (`None`: always).
    standard: Vec<(HmacSha256, Option<Micros>)>,
    semgrep: HmacSha256,
}

impl Signer {
    /// Keys for `secret`, and for a rotated-out secret until its overlap ends.
    pub fn new(secret: &str, previous: Option<(&str, Micros)>) -> anyhow::Result<Signer> {
        let mut standard = vec![(HmacSha256::new_from_slice(&key(secret)?)?, None)];
        if let Some((old, until)) = previous {
            standard.push((HmacSha256::new_from_slice(&key(old)?)?, Some(until)));
        }
        let semgrep = HmacSha256::new_from_slice(secret.as_bytes())?;
        Ok(Signer { standard, semgrep })
    }

    /// The keys of an integration as it stands at `now`.
    pub fn of(integration: &Integration, now: Micros) -> anyhow::Result<Signer> {
        Signer::new(
            integration.secret.expose(),
            integration.previous_secret(now),
        )
    }

    /// Every header a delivery carries, signed for an attempt at `now`: `webhook-id`,
    /// `webhook-timestamp`, `webhook-signature` (one entry per valid secret),
    /// `X-Semgrep-Signature-256` and `X-Scanhook-Event` (the message kind).
    pub fn headers(
        &self,
        msg_id: &str,
        kind: &str,
        now: Micros,
        body: &[u8],
    ) -> anyhow::Result<HeaderMap> {
        let timestamp = (now / 1_000_000).to_string();
        let mut signatures = String::new();
        for (mac, until) in &self.standard {
            if until.is_some_and(|until| now >= until) {
                continue;
            }
            let mut mac = mac.clone();
            mac.update(msg_id.as_bytes());
            mac.update(b".");
            mac.update(timestamp.as_bytes());
            mac.update(b".");
            mac.update(body);
            if !signatures.is_empty() {
                signatures.push(' ');
            }
            signatures.push_str("v1,");
            STANDARD.encode_string(mac.finalize().into_bytes(), &mut signatures);
        }
        let mut semgrep = self.semgrep.clone();
        semgrep.update(body);
        let semgrep = crate::ids::hex(&semgrep.finalize().into_bytes());
        let mut h = HeaderMap::with_capacity(12);
        h.insert("webhook-id", HeaderValue::from_str(msg_id)?);
        h.insert("webhook-timestamp", HeaderValue::from_str(&timestamp)?);
        h.insert("webhook-signature", HeaderValue::from_str(&signatures)?);
        h.insert("x-semgrep-signature-256", HeaderValue::from_str(&semgrep)?);
        h.insert("x-scanhook-event", HeaderValue::from_str(kind)?);
        Ok(h)
    }
}

/// The headers of one attempt: signed by `signer` (webhook and template kinds), or, for
/// chat kinds that take no signature, only `webhook-id` and `X-Scanhook-Event`; and the
/// body's content type.
pub fn delivery_headers(
    signer: Option<&Signer>,
    msg_id: &str,
    kind: &str,
    now: Micros,
    body: &[u8],
    content_type: &str,
) -> anyhow::Result<HeaderMap> {
    let mut h = match signer {
        Some(s) => s.headers(msg_id, kind, now, body)?,
        None => {
            let mut h = HeaderMap::with_capacity(4);
            h.insert("webhook-id", HeaderValue::from_str(msg_id)?);
            h.insert("x-scanhook-event", HeaderValue::from_str(kind)?);
            h
        }
    };
    h.insert(
        reqwest::header::CONTENT_TYPE,
        HeaderValue::from_str(content_type)?,
    );
    Ok(h)
}

/// `X-Semgrep-Signature-256`: hex HMAC-SHA256 of the body, keyed by the secret string.
pub fn semgrep(secret: &str, body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(body);
    crate::ids::hex(&mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_webhooks_test_vector() {
        let sig = standard(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        )
        .unwrap();
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn fresh_secrets_are_24_byte_keys() {
        assert_eq!(key(&crate::ids::new_signing_secret()).unwrap().len(), 24);
    }

    #[test]
    fn signer_headers_match_the_reference_and_end_the_overlap() {
        let now = 1_614_265_330 * 1_000_000;
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let old = crate::ids::new_signing_secret();
        let signer = Signer::new(secret, Some((&old, now + 1))).unwrap();
        let body = br#"{"test": 2432232314}"#;
        let h = signer
            .headers("msg_p5jXN8AQM9LWM0D4loKWxJek", "test", now, body)
            .unwrap();
        let sigs = h["webhook-signature"].to_str().unwrap();
        assert!(sigs.starts_with("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE= v1,"));
        assert_eq!(h["webhook-timestamp"], "1614265330");
        assert_eq!(h["x-scanhook-event"], "test");
        assert_eq!(h["x-semgrep-signature-256"], semgrep(secret, body).as_str());
        let later = signer.headers("msg_p5jXN8AQM9LWM0D4loKWxJek", "test", now + 1, body);
        assert_eq!(
            later.unwrap()["webhook-signature"]
                .to_str()
                .unwrap()
                .split(' ')
                .count(),
            1,
            "the previous secret stops signing when its overlap ends"
        );
        assert!(
            Signer::new("whsec_!", None).is_err(),
            "a secret that is not base64 cannot sign"
        );
    }

    #[test]
    fn semgrep_signature_is_hex_hmac_of_the_body() {
        // HMAC-SHA256("key", "The quick brown fox jumps over the lazy dog"), RFC 4231 style.
        assert_eq!(
            semgrep("key", b"The quick brown fox jumps over the lazy dog"),
            "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
    }
}
