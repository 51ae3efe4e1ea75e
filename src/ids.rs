//! Identifiers and secrets: public scan ids, API tokens and how tokens are stored.

use rand::distributions::Alphanumeric;
use rand::Rng;
use sha2::{Digest, Sha256};

/// A fresh 12-character base62 public scan id, the shape of the seed's `"xnkPGY8VL20o"`.
pub fn public_scan_id() -> String {
    random_base62(12)
}

/// A fresh API token. The prefix makes leaked tokens easy to find with secret scanners.
pub fn new_token() -> String {
    format!("shk_{}", random_base62(40))
}

/// What the database keeps of a token: its SHA-256, hex. Tokens carry 238 bits of entropy,
/// so a fast hash is enough; lookups by hash never compare secrets byte by byte.
pub fn token_hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

/// `len` random base62 characters.
pub fn random_base62(len: usize) -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// Lower-case hex of bytes (a table lookup per nibble: it runs for every delivery's
/// signature and every stored finding's digest).
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// A URL-safe slug from a human name: `Web Apps Notify Only` → `web-apps-notify-only`.
pub fn slugify(name: &str) -> String {
    let mut out = String::new();
    for c in name.trim().chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_lower_case_two_digits_per_byte() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
        assert_eq!(hex(&[]), "");
    }

    #[test]
    fn ids_have_their_shapes() {
        let id = public_scan_id();
        assert_eq!(id.len(), 12);
        assert!(id.chars().all(|c| c.is_ascii_alphanumeric()));
        assert!(new_token().starts_with("shk_"));
        assert_ne!(new_token(), new_token());
    }

    #[test]
    fn slugs() {
        assert_eq!(slugify("Web Apps Notify Only"), "web-apps-notify-only");
        assert_eq!(
            slugify("  Rule Board - Block column "),
            "rule-board-block-column"
        );
    }
}
