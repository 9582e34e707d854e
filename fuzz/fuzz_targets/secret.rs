#![no_main]
//! Signing secrets an integrator supplies (`"secret"` at endpoint creation or
//! Revolution's registration) and sealed secrets read back from the store.
//!
//! Properties: never panics; for each scheme a supplied secret is accepted
//! exactly as documented (`whsec_` + base64 of 24–64 bytes for Standard
//! Webhooks, 8–256 printable ASCII characters where the format accepts a
//! supplied secret, never for generated-only formats); an accepted secret
//! shows as what was supplied (canonical base64 for `whsec_`) and survives
//! sealing; `from_sealed` of any bytes never panics and round-trips.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use libfuzzer_sys::fuzz_target;
use marquee_core::wire::{BadSecret, SecretScheme};

const ALL: [SecretScheme; 4] = [
    SecretScheme::Base64Whsec,
    SecretScheme::TextWhsec,
    SecretScheme::TextOrSupplied,
    SecretScheme::IdentifierAndText,
];

fuzz_target!(|bytes: &[u8]| {
    for scheme in ALL {
        if let Ok(back) = scheme.from_sealed(bytes.to_vec()) {
            assert_eq!(scheme.to_sealable(&back), bytes, "{scheme:?}");
        }
    }
    let Ok(s) = std::str::from_utf8(bytes) else { return };
    for scheme in ALL {
        let r = scheme.from_supplied(s);
        match scheme {
            SecretScheme::Base64Whsec => {
                let want = s
                    .strip_prefix("whsec_")
                    .filter(|b| b.len() <= 128)
                    .and_then(|b| STANDARD.decode(b).ok())
                    .filter(|k| (24..=64).contains(&k.len()));
                assert_eq!(r.as_ref().ok().map(|x| x.key().to_vec()), want, "{s:?}");
                if let Ok(x) = &r {
                    let shown = scheme.expose(x).secret;
                    assert_eq!(shown.parse::<marquee_core::wire::SigningSecret>().as_ref(), Ok(x));
                }
            }
            SecretScheme::TextOrSupplied => {
                let want = (8..=256).contains(&s.len()) && s.bytes().all(|b| (0x21..=0x7e).contains(&b));
                assert_eq!(r.is_ok(), want, "{s:?}");
                if let Ok(x) = &r {
                    assert_eq!(x.key(), s.as_bytes());
                    assert_eq!(scheme.expose(x).secret, s);
                }
            }
            _ => assert_eq!(r.as_ref().err(), Some(&BadSecret::NotSuppliable)),
        }
        if let Ok(x) = r {
            assert_eq!(scheme.from_sealed(scheme.to_sealable(&x)).as_ref(), Ok(&x));
        }
    }
});
