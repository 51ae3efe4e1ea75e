//! Identifiers and secrets: the typed ids of what the API names (numeric row ids and the
//! prefixed public ids `int_…`, `msg_…`), API tokens and how tokens are stored, signing
//! secrets.
//!
//! An id is parsed where it enters (a path, a body, a flag) and travels as its type, so a
//! message id can never be passed where an integration id is expected.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rand::distributions::Alphanumeric;
use rand::{Rng, RngCore};
use serde::{Deserialize, Deserializer, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use std::str::FromStr;

/// A numeric row id that the API shows (the platform's ids are integers).
macro_rules! numeric_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
            sqlx::Type, utoipa::ToSchema,
        )]
        #[serde(transparent)]
        #[sqlx(transparent)]
        pub struct $name(pub i64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = std::num::ParseIntError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                s.parse().map($name)
            }
        }
    };
}

numeric_id!(
    /// A deployment (tenant).
    DeploymentId
);
numeric_id!(
    /// A project (repository).
    ProjectId
);
numeric_id!(
    /// A scan, as `semgrep ci` knows it (`/api/agent/scans/{id}/…`).
    ScanId
);
numeric_id!(
    /// A finding on one ref (the v1 API's `issue_ids`).
    FindingId
);

/// A public id: a prefix that names what it is, then base62 characters.
macro_rules! public_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $len:literal, $pattern:literal, $example:literal) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, sqlx::Type,
            utoipa::ToSchema,
        )]
        #[serde(transparent)]
        #[sqlx(transparent)]
        #[schema(value_type = String, pattern = $pattern, example = $example)]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            /// A fresh random id.
            pub fn generate() -> $name {
                $name(format!("{}{}", $prefix, random_base62($len)))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                let ok = s.strip_prefix($prefix).is_some_and(|rest| {
                    (1..=64).contains(&rest.len()) && rest.bytes().all(|b| b.is_ascii_alphanumeric())
                });
                if ok {
                    Ok($name(s.to_string()))
                } else {
                    Err(format!("{s:?} is not an id of the form {}…", $prefix))
                }
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

public_id!(
    /// An integration's public id: `int_` and 20 base62 characters.
    IntegrationId,
    "int_",
    20,
    "^int_[A-Za-z0-9]{1,64}$",
    "int_4bT0Xq9LmZ2vR7sKc1Dw"
);
public_id!(
    /// A message's public id, sent as its `webhook-id`: `msg_` and 24 base62 characters.
    MessageId,
    "msg_",
    24,
    "^msg_[A-Za-z0-9]{1,64}$",
    "msg_p5jXN8AQM9LWM0D4loKWxJek"
);

public_id!(
    /// An API token's public id (not the secret): `tok_` and 20 base62 characters.
    TokenId,
    "tok_",
    20,
    "^tok_[A-Za-z0-9]{1,64}$",
    "tok_8ZkQ2mW4cR7tY1bN5xLd"
);

/// A scan's public id: 12 base62 characters, the shape of the seed's `"xnkPGY8VL20o"`.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, sqlx::Type, utoipa::ToSchema,
)]
#[serde(transparent)]
#[sqlx(transparent)]
#[schema(value_type = String, pattern = "^[A-Za-z0-9]{12}$", example = "xnkPGY8VL20o")]
pub struct PublicScanId(String);

impl PublicScanId {
    pub fn generate() -> PublicScanId {
        PublicScanId(random_base62(12))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PublicScanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for PublicScanId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.len() == 12 && s.bytes().all(|b| b.is_ascii_alphanumeric()) {
            Ok(PublicScanId(s.to_string()))
        } else {
            Err(format!("{s:?} is not a scan id (12 letters and digits)"))
        }
    }
}

impl<'de> Deserialize<'de> for PublicScanId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// How a path names a scan: by its numeric id (as `semgrep ci` does) or its public id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanKey {
    Numeric(ScanId),
    Public(PublicScanId),
}

impl FromStr for ScanKey {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if let Ok(n) = s.parse::<i64>() {
            return Ok(ScanKey::Numeric(ScanId(n)));
        }
        s.parse()
            .map(ScanKey::Public)
            .map_err(|_| format!("{s:?} is not a scan id (a number or 12 letters and digits)"))
    }
}

/// A fresh 12-character base62 public scan id.
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

/// A fresh webhook signing secret: `whsec_` + base64 of 24 random bytes.
pub fn new_signing_secret() -> String {
    let mut key = [0u8; 24];
    rand::thread_rng().fill_bytes(&mut key);
    format!("whsec_{}", STANDARD.encode(key))
}

/// Whether `s` is a signing secret of the shape [`new_signing_secret`] makes (at least 24
/// key bytes).
pub fn is_signing_secret(s: &str) -> bool {
    s.strip_prefix("whsec_")
        .and_then(|b64| STANDARD.decode(b64).ok())
        .is_some_and(|key| key.len() >= 24)
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
        let (a, b) = (new_signing_secret(), new_signing_secret());
        assert!(a.starts_with("whsec_") && a != b);
        assert!(is_signing_secret(&a));
        assert!(!is_signing_secret("whsec_c2hvcnQ="), "too short");
        assert!(!is_signing_secret("whsec_!"));
        assert_ne!(new_token(), new_token());
    }

    #[test]
    fn public_ids_are_parsed_by_their_prefix() {
        let i = IntegrationId::generate();
        assert_eq!(i.as_str().len(), 24);
        assert_eq!(i.as_str().parse::<IntegrationId>(), Ok(i.clone()));
        assert!(
            i.as_str().parse::<MessageId>().is_err(),
            "another kind of id"
        );
        assert!("int_".parse::<IntegrationId>().is_err());
        assert!("int_a/b".parse::<IntegrationId>().is_err());
        assert!(serde_json::from_str::<MessageId>("\"msg_x\"").is_ok());
        assert!(serde_json::from_str::<MessageId>("\"x\"").is_err());
        assert_eq!("42".parse::<ScanKey>(), Ok(ScanKey::Numeric(ScanId(42))));
        assert!(matches!(
            "xnkPGY8VL20o".parse::<ScanKey>(),
            Ok(ScanKey::Public(_))
        ));
        assert!("../etc".parse::<ScanKey>().is_err());
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
