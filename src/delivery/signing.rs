//! Signatures on every attempt: Standard Webhooks (`webhook-signature: v1,<base64>`, keyed
//! by the base64-decoded secret after `whsec_`) and the platform's `X-Semgrep-Signature-256`
//! (hex HMAC-SHA256 of the body keyed by the whole secret string).

use crate::clock::Micros;
use crate::store::integrations::Integration;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// A fresh signing secret: `whsec_` + base64 of 24 random bytes.
pub fn new_secret() -> String {
    let mut key = [0u8; 24];
    rand::thread_rng().fill_bytes(&mut key);
    format!("whsec_{}", STANDARD.encode(key))
}

/// Whether `s` is a secret of the shape [`new_secret`] makes (at least 24 key bytes).
pub fn is_valid_secret(s: &str) -> bool {
    s.strip_prefix("whsec_")
        .and_then(|b64| STANDARD.decode(b64).ok())
        .is_some_and(|key| key.len() >= 24)
}

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

/// The `webhook-signature` header: one entry per valid secret, space-separated.
pub fn signature_header(
    secrets: &[&str],
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> anyhow::Result<String> {
    let sigs: anyhow::Result<Vec<String>> = secrets
        .iter()
        .map(|s| standard(s, msg_id, timestamp, body))
        .collect();
    Ok(sigs?.join(" "))
}

/// Every header a delivery carries, signed for an attempt at `now`: `webhook-id`,
/// `webhook-timestamp`, `webhook-signature` (one entry per valid secret),
/// `X-Semgrep-Signature-256` and `X-Scanhook-Event` (the message kind).
pub fn signed_headers(
    integration: &Integration,
    msg_id: &str,
    kind: &str,
    now: Micros,
    body: &[u8],
) -> anyhow::Result<Vec<(&'static str, String)>> {
    let timestamp = now / 1_000_000;
    let signature = signature_header(&integration.signing_secrets(now), msg_id, timestamp, body)?;
    Ok(vec![
        ("webhook-id", msg_id.to_string()),
        ("webhook-timestamp", timestamp.to_string()),
        ("webhook-signature", signature),
        (
            "x-semgrep-signature-256",
            semgrep(&integration.secret, body),
        ),
        ("x-scanhook-event", kind.to_string()),
    ])
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
    fn secrets_and_rotation_header() {
        let a = new_secret();
        let b = new_secret();
        assert!(a.starts_with("whsec_") && a != b);
        assert_eq!(key(&a).unwrap().len(), 24);
        let h = signature_header(&[&a, &b], "msg_1", 1, b"{}").unwrap();
        let parts: Vec<&str> = h.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert!(parts
            .iter()
            .all(|p| p.starts_with("v1,") && p.matches(',').count() == 1));
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
