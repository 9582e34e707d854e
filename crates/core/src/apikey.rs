//! API keys in the Eventium format: `sk_live_` + 43 base64url characters
//! (32 random bytes), 51 characters in all.
//!
//! Only two things about a key are ever stored: its 4-character public prefix
//! (the first 4 characters after `sk_live_`, used to find candidate rows) and
//! a peppered digest, HMAC-SHA256(pepper, key). The pepper is a server secret
//! that never enters the database, so a stolen database file alone cannot be
//! used to test guesses. Digests are compared in constant time.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

pub const KEY_PREFIX: &str = "sk_live_";
pub const KEY_LEN: usize = 51;
pub const PUBLIC_PREFIX_LEN: usize = 4;

/// The server-side secret mixed into every key digest.
#[derive(Clone)]
pub struct Pepper(Vec<u8>);

impl Pepper {
    pub fn new(bytes: Vec<u8>) -> Self {
        Pepper(bytes)
    }
}

impl std::fmt::Debug for Pepper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pepper(<redacted>)")
    }
}

/// A digest of a key under the pepper.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyDigest(pub [u8; 32]);

impl std::fmt::Debug for KeyDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyDigest(<redacted>)")
    }
}

impl KeyDigest {
    pub fn ct_eq(&self, other: &[u8]) -> bool {
        other.len() == 32 && bool::from(self.0.ct_eq(other))
    }
}

/// A freshly generated key: the plaintext is shown once and then dropped.
pub struct NewKey {
    pub plaintext: String,
    pub public_prefix: String,
    pub digest: KeyDigest,
}

/// A key string that has the right shape (not yet known to exist).
pub struct PresentedKey<'a> {
    pub plaintext: &'a str,
    pub public_prefix: &'a str,
}

pub fn generate(pepper: &Pepper) -> NewKey {
    let mut bytes = [0u8; 32];
    crate::ids::random_bytes(&mut bytes);
    let plaintext = format!("{KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
    debug_assert_eq!(plaintext.len(), KEY_LEN);
    let digest = digest(pepper, &plaintext);
    let public_prefix = plaintext[KEY_PREFIX.len()..KEY_PREFIX.len() + PUBLIC_PREFIX_LEN].to_owned();
    NewKey {
        plaintext,
        public_prefix,
        digest,
    }
}

/// Checks the shape of a presented key; says nothing about whether it exists.
pub fn parse(s: &str) -> Option<PresentedKey<'_>> {
    let body = s.strip_prefix(KEY_PREFIX)?;
    if s.len() != KEY_LEN
        || !body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return None;
    }
    Some(PresentedKey {
        plaintext: s,
        public_prefix: &body[..PUBLIC_PREFIX_LEN],
    })
}

pub fn digest(pepper: &Pepper, plaintext: &str) -> KeyDigest {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&pepper.0).expect("hmac takes any key length");
    mac.update(plaintext.as_bytes());
    KeyDigest(mac.finalize().into_bytes().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_have_the_documented_shape() {
        let pepper = Pepper::new(b"pepper".to_vec());
        let k = generate(&pepper);
        assert_eq!(k.plaintext.len(), 51);
        assert!(k.plaintext.starts_with("sk_live_"));
        let p = parse(&k.plaintext).unwrap();
        assert_eq!(p.public_prefix, k.public_prefix);
        assert_eq!(k.public_prefix.len(), 4);
        assert!(digest(&pepper, &k.plaintext).ct_eq(&k.digest.0));
        let other = Pepper::new(b"other".to_vec());
        assert!(!digest(&other, &k.plaintext).ct_eq(&k.digest.0));
    }

    #[test]
    fn malformed_keys_do_not_parse() {
        let ok = format!("sk_live_{}", "A".repeat(43));
        assert!(parse(&ok).is_some());
        for bad in [
            String::new(),
            "sk_live_".into(),
            format!("sk_test_{}", "A".repeat(43)),
            format!("sk_live_{}", "A".repeat(42)),
            format!("sk_live_{}", "A".repeat(44)),
            format!("sk_live_{}+", "A".repeat(42)),
        ] {
            assert!(parse(&bad).is_none(), "{bad}");
        }
    }
}
