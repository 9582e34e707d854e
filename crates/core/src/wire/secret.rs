//! Webhook signing secrets: `whsec_` followed by the base64 of the key bytes
//! (the Standard Webhooks convention, also used by Svix and Stripe).
//!
//! The type never prints its bytes (`Debug` is redacted) and compares in
//! constant time, so a secret cannot leak through a log line or a timing
//! side channel by accident.

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use subtle::ConstantTimeEq;

pub const PREFIX: &str = "whsec_";
/// Bytes in a generated secret.
pub const GENERATED_LEN: usize = 32;

#[derive(Clone)]
pub struct SigningSecret(Vec<u8>);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a signing secret is whsec_ followed by the base64 of 24 to 64 bytes")]
pub struct BadSecret;

impl SigningSecret {
    pub fn generate() -> Self {
        let mut b = vec![0u8; GENERATED_LEN];
        crate::ids::random_bytes(&mut b);
        SigningSecret(b)
    }

    pub fn from_bytes(b: Vec<u8>) -> Result<Self, BadSecret> {
        if (24..=64).contains(&b.len()) {
            Ok(SigningSecret(b))
        } else {
            Err(BadSecret)
        }
    }

    /// The HMAC key.
    pub fn key(&self) -> &[u8] {
        &self.0
    }

    /// The `whsec_…` text; show it only to the endpoint's owner.
    pub fn expose(&self) -> String {
        format!("{PREFIX}{}", B64.encode(&self.0))
    }
}

impl FromStr for SigningSecret {
    type Err = BadSecret;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let body = s.strip_prefix(PREFIX).ok_or(BadSecret)?;
        if body.len() > 128 {
            return Err(BadSecret);
        }
        let bytes = B64.decode(body).map_err(|_| BadSecret)?;
        SigningSecret::from_bytes(bytes)
    }
}

impl PartialEq for SigningSecret {
    fn eq(&self, other: &Self) -> bool {
        self.0.len() == other.0.len() && bool::from(self.0.ct_eq(&other.0))
    }
}

impl Eq for SigningSecret {}

impl fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningSecret(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_redacts() {
        let s = SigningSecret::generate();
        let text = s.expose();
        assert!(text.starts_with("whsec_"));
        assert_eq!(text.parse::<SigningSecret>().unwrap(), s);
        assert_eq!(format!("{s:?}"), "SigningSecret(<redacted>)");
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "whsec_",
            "sk_abc",
            "whsec_!!!",
            "whsec_AAAA",
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        ] {
            assert_eq!(bad.parse::<SigningSecret>(), Err(BadSecret), "{bad}");
        }
    }
}
