//! Signing secrets at rest: XChaCha20-Poly1305 under a key derived from the
//! server secret, with the endpoint id as associated data so a sealed secret
//! copied onto another endpoint's row does not open.
//!
//! Layout of a sealed value: `0x01 ‖ nonce (24 bytes) ‖ ciphertext+tag`.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use marquee_core::ids::EndpointId;
use marquee_core::wire::{SecretScheme, SigningSecret};

use crate::secrets::ServerSecrets;

const VERSION: u8 = 1;
const NONCE: usize = 24;

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("sealed webhook secret is malformed or was sealed under another server secret")]
    Open,
    #[error("sealing failed")]
    Seal,
}

#[derive(Clone)]
pub struct Sealer {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(<redacted>)")
    }
}

impl Sealer {
    pub fn new(secrets: &ServerSecrets) -> Self {
        let key = secrets.subkey(b"marquee/webhook-secrets/v1");
        Sealer {
            cipher: XChaCha20Poly1305::new((&key).into()),
        }
    }

    /// Seals `secret` as its format's `scheme` writes it at rest.
    pub fn seal(
        &self,
        endpoint: &EndpointId,
        scheme: SecretScheme,
        secret: &SigningSecret,
    ) -> Result<Vec<u8>, SealError> {
        let plain = scheme.to_sealable(secret);
        let mut nonce = [0u8; NONCE];
        marquee_core::ids::random_bytes(&mut nonce);
        let ct = self
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &plain,
                    aad: endpoint.as_str().as_bytes(),
                },
            )
            .map_err(|_| SealError::Seal)?;
        let mut out = Vec::with_capacity(1 + NONCE + ct.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    pub fn open(
        &self,
        endpoint: &EndpointId,
        scheme: SecretScheme,
        sealed: &[u8],
    ) -> Result<SigningSecret, SealError> {
        if sealed.len() < 1 + NONCE + 16 || sealed[0] != VERSION {
            return Err(SealError::Open);
        }
        let pt = self
            .cipher
            .decrypt(
                XNonce::from_slice(&sealed[1..1 + NONCE]),
                Payload {
                    msg: &sealed[1 + NONCE..],
                    aad: endpoint.as_str().as_bytes(),
                },
            )
            .map_err(|_| SealError::Open)?;
        scheme.from_sealed(pt).map_err(|_| SealError::Open)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_and_binds_to_the_endpoint() {
        let s = Sealer::new(&ServerSecrets::from_master([7; 32], None));
        let ep = EndpointId::generate();
        for scheme in [
            SecretScheme::Base64Whsec,
            SecretScheme::TextWhsec,
            SecretScheme::TextOrSupplied,
            SecretScheme::IdentifierAndText,
        ] {
            let secret = scheme.generate();
            let sealed = s.seal(&ep, scheme, &secret).unwrap();
            assert!(!sealed.windows(secret.key().len()).any(|w| w == secret.key()));
            assert_eq!(s.open(&ep, scheme, &sealed).unwrap(), secret);
            assert!(s.open(&EndpointId::generate(), scheme, &sealed).is_err());
            let other = Sealer::new(&ServerSecrets::from_master([8; 32], None));
            assert!(other.open(&ep, scheme, &sealed).is_err());
            assert!(s.open(&ep, scheme, &sealed[..10]).is_err());
        }
    }
}
