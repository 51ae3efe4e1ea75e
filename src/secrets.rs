//! Secrets at rest: integration signing secrets (and chat URLs, which are credentials too)
//! are sealed with XChaCha20-Poly1305 before they are written, under a 256-bit key kept in a
//! file beside the database (mode 0600), never in it. A sealed value reads
//! `enc1:<base64 of nonce ‖ ciphertext>`; the random 192-bit nonce makes the same secret
//! seal differently every time.
//!
//! The database records the key's fingerprint, so a process started with another key (a
//! second node that generated its own) refuses to start instead of failing every delivery.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fmt;
use std::path::Path;

/// The prefix of a sealed value.
const SEALED: &str = "enc1:";
const NONCE_LEN: usize = 24;

/// The key that seals secrets. Never printed (its `Debug` shows the fingerprint only).
#[derive(Clone)]
pub struct SecretKey {
    cipher: XChaCha20Poly1305,
    fingerprint: String,
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey({})", self.fingerprint)
    }
}

impl SecretKey {
    fn from_bytes(bytes: &[u8; 32]) -> SecretKey {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(bytes).expect("HMAC takes any key");
        mac.update(b"scanhook secret key fingerprint");
        let fingerprint = crate::ids::hex(&mac.finalize().into_bytes()[..8]);
        SecretKey {
            cipher: XChaCha20Poly1305::new(bytes.into()),
            fingerprint,
        }
    }

    /// A fresh random key.
    pub fn generate() -> SecretKey {
        SecretKey::from_bytes(&XChaCha20Poly1305::generate_key(&mut OsRng).into())
    }

    /// Which key this is, without saying anything about it: safe to store and print.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Reads a key file: the base64 of 32 bytes.
    pub fn read(path: &Path) -> anyhow::Result<SecretKey> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            anyhow::anyhow!("cannot read the secret key file {}: {e}", path.display())
        })?;
        let bytes = STANDARD
            .decode(text.trim())
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "the secret key file {} does not hold a key (the base64 of 32 bytes)",
                    path.display()
                )
            })?;
        crate::files::warn_if_readable_by_others(path);
        Ok(SecretKey::from_bytes(&bytes))
    }

    /// Writes a fresh key to a new file that only its owner can read; fails if it exists.
    pub fn create(path: &Path) -> anyhow::Result<SecretKey> {
        let bytes: [u8; 32] = XChaCha20Poly1305::generate_key(&mut OsRng).into();
        let text = format!("{}\n", STANDARD.encode(bytes));
        crate::files::write_private_new(path, text.as_bytes()).map_err(|e| {
            anyhow::anyhow!("cannot create the secret key file {}: {e}", path.display())
        })?;
        Ok(SecretKey::from_bytes(&bytes))
    }

    /// The key in `path`, made there first if the file does not exist yet. The flag says
    /// whether it was made.
    pub fn read_or_create(path: &Path) -> anyhow::Result<(SecretKey, bool)> {
        if path.exists() {
            Ok((SecretKey::read(path)?, false))
        } else {
            Ok((SecretKey::create(path)?, true))
        }
    }

    /// Seals a secret.
    pub fn seal(&self, plaintext: &str) -> String {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let sealed = self
            .cipher
            .encrypt(&nonce, plaintext.as_bytes())
            .expect("XChaCha20-Poly1305 seals any length");
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        format!("{SEALED}{}", STANDARD.encode(out))
    }

    /// Opens a sealed secret; a value that was never sealed (written before sealing
    /// existed) is returned as it is.
    pub fn open(&self, stored: &str) -> anyhow::Result<String> {
        let Some(b64) = stored.strip_prefix(SEALED) else {
            return Ok(stored.to_string());
        };
        let bytes = STANDARD
            .decode(b64)
            .map_err(|_| anyhow::anyhow!("a sealed secret is not base64"))?;
        if bytes.len() < NONCE_LEN {
            anyhow::bail!("a sealed secret is too short");
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let plain = self
            .cipher
            .decrypt(XNonce::from_slice(nonce), sealed)
            .map_err(|_| {
                anyhow::anyhow!(
                    "a secret does not open with the secret key {}: was it sealed with another?",
                    self.fingerprint
                )
            })?;
        String::from_utf8(plain).map_err(|_| anyhow::anyhow!("a sealed secret is not text"))
    }
}

/// Whether a stored value is sealed.
pub fn is_sealed(stored: &str) -> bool {
    stored.starts_with(SEALED)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_open_and_differ() {
        let k = SecretKey::generate();
        let a = k.seal("whsec_abc");
        let b = k.seal("whsec_abc");
        assert_ne!(a, b, "a fresh nonce each time");
        assert!(is_sealed(&a) && !a.contains("whsec_abc"));
        assert_eq!(k.open(&a).unwrap(), "whsec_abc");
        assert_eq!(
            k.open("whsec_plain").unwrap(),
            "whsec_plain",
            "never sealed"
        );
        let other = SecretKey::generate();
        assert_ne!(k.fingerprint(), other.fingerprint());
        let e = other.open(&a).unwrap_err().to_string();
        assert!(e.contains(other.fingerprint()), "{e}");
        let mut tampered = a.clone();
        tampered.replace_range(10..11, if &a[10..11] == "A" { "B" } else { "A" });
        assert!(k.open(&tampered).is_err(), "tampering is detected");
        assert!(!format!("{k:?}").contains("whsec"));
    }

    #[test]
    fn key_files_round_trip_and_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret.key");
        let (made, created) = SecretKey::read_or_create(&path).unwrap();
        assert!(created);
        let (read, created) = SecretKey::read_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(made.fingerprint(), read.fingerprint());
        assert_eq!(read.open(&made.seal("x")).unwrap(), "x");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        assert!(SecretKey::create(&path).is_err(), "never overwrites a key");
        std::fs::write(&path, "not a key").unwrap();
        assert!(SecretKey::read(&path)
            .unwrap_err()
            .to_string()
            .contains("does not hold a key"));
    }
}
