//! Platform profiles: one module per platform whose wire contract marquee
//! serves, registered in [`REGISTRY`].
//!
//! A profile is data plus small pure functions: its webhook format (envelope,
//! headers, signature, secret scheme — a [`WireFormat`]), and its event
//! catalog. The server adds a platform's HTTP routes and stream protocol in its
//! own `platforms/` module, registered there in one line. Tests iterate over
//! [`REGISTRY`], so a new profile is tested the day it is registered.
//!
//! Adding a platform: write `profile/<name>.rs` with a `pub static PROFILE`
//! (and `catalogs/<name>.json` + `catalogs/fixtures/<name>.json`), add one
//! line to [`REGISTRY`]. [`catalog`] holds the catalog model and the
//! compiled JSON Schemas.

pub mod attendee;
pub mod catalog;
pub mod eventium;
pub mod eventory;
pub mod revento;
pub mod revolution;
pub mod standard;

use std::sync::OnceLock;

use self::catalog::Catalog;
use crate::wire::WireFormat;

/// One platform's pure contract.
pub struct Profile {
    /// The name used in the API (`--profile eventium`, `"format": "eventium"`).
    pub name: &'static str,
    /// What the platform is, as its document names it.
    pub title: &'static str,
    /// Its webhook format, if it has webhooks.
    pub format: Option<&'static dyn WireFormat>,
    /// Whether an organization enables it (`standard` is always on).
    pub enableable: bool,
    /// Its event catalog (`catalogs/<name>.json`), if it has one.
    pub catalog_source: Option<&'static str>,
    pub catalog_cell: OnceLock<Catalog>,
}

impl Profile {
    /// The built-in catalog, parsed on first use.
    pub fn catalog(&self) -> Option<&Catalog> {
        let src = self.catalog_source?;
        Some(self.catalog_cell.get_or_init(|| {
            let c = Catalog::parse(src).unwrap_or_else(|e| panic!("built-in catalog {}: {e}", self.name));
            assert_eq!(
                c.profile, self.name,
                "built-in catalog {} names another profile",
                self.name
            );
            c
        }))
    }
}

/// Every profile marquee serves. One line per platform.
pub static REGISTRY: &[&Profile] = &[
    &standard::PROFILE,
    &revolution::PROFILE,
    &eventory::PROFILE,
    &eventium::PROFILE,
    &revento::PROFILE,
    &attendee::PROFILE,
];

/// A profile by name.
pub fn get(name: &str) -> Option<&'static Profile> {
    REGISTRY.iter().copied().find(|p| p.name == name)
}

/// The built-in catalog of `profile`.
pub fn builtin_catalog(profile: &str) -> Option<&'static Catalog> {
    get(profile)?.catalog()
}

/// Profiles that ship a built-in catalog, in registry order.
pub fn profiles_with_catalogs() -> Vec<&'static str> {
    REGISTRY
        .iter()
        .filter(|p| p.catalog_source.is_some())
        .map(|p| p.name)
        .collect()
}

/// The names an organization can enable, in registry order.
pub fn enableable() -> impl Iterator<Item = &'static str> {
    REGISTRY.iter().filter(|p| p.enableable).map(|p| p.name)
}

#[cfg(test)]
pub(crate) mod testkit;

#[cfg(test)]
mod tests {
    //! Table tests over the registry: every format, sign → verify.
    use super::*;
    use crate::timestamp::Timestamp;
    use crate::wire::{Format, Received, Render, VerifyError, WireRequest};

    fn render(f: &dyn WireFormat, at: Timestamp, secrets: &[&crate::wire::SigningSecret]) -> WireRequest {
        let m = testkit::message();
        f.render(&Render {
            delivery_id: "dlv_01JD0000000000000000000000",
            attempt: 1,
            at,
            secrets,
            message: &m,
        })
    }

    fn verify(
        f: &dyn WireFormat,
        s: &crate::wire::SigningSecret,
        req: &WireRequest,
        body: &[u8],
        now: Timestamp,
    ) -> Result<(), VerifyError> {
        let headers: Vec<(&str, &str)> = req.headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        f.verify(
            s,
            &Received {
                headers: &headers,
                body,
            },
            now,
        )
    }

    #[test]
    fn names_are_unique_and_formats_resolve() {
        let mut names: Vec<_> = REGISTRY.iter().map(|p| p.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), REGISTRY.len());
        for f in Format::all() {
            assert_eq!(f.as_str().parse::<Format>().unwrap(), f);
            assert_eq!(get(f.as_str()).unwrap().format.unwrap().name(), f.as_str());
        }
        assert!(
            "nope"
                .parse::<Format>()
                .unwrap_err()
                .supported
                .contains("eventium")
        );
        assert_eq!(Format::default().as_str(), "standard");
    }

    #[test]
    fn every_format_signs_and_verifies() {
        let now = Timestamp::from_micros(1_780_000_000_000_000);
        for f in Format::all().map(Format::wire) {
            let scheme = f.secret_scheme();
            let new = scheme.generate();
            let old = scheme.generate();
            let req = render(f, now, &[&new, &old]);
            assert_eq!(verify(f, &new, &req, &req.body, now), Ok(()), "{}", f.name());
            let old_ok = verify(f, &old, &req, &req.body, now).is_ok();
            assert_eq!(old_ok, f.multi_signature(), "{}: rotation overlap", f.name());
            // A stranger's secret, a tampered body, a missing signature.
            let stranger = scheme.generate();
            assert_eq!(
                verify(f, &stranger, &req, &req.body, now),
                Err(VerifyError::Mismatch),
                "{}",
                f.name()
            );
            let mut tampered = req.body.clone();
            tampered[3] ^= 1;
            assert_eq!(
                verify(f, &new, &req, &tampered, now),
                Err(VerifyError::Mismatch),
                "{}",
                f.name()
            );
            let unsigned = render(f, now, &[]);
            assert!(
                verify(f, &new, &unsigned, &unsigned.body, now).is_err(),
                "{}",
                f.name()
            );
            // The body never depends on the attempt's time; headers carry it.
            let later = Timestamp::from_micros(now.as_micros() + 61_000_000);
            let retry = render(f, later, &[&new]);
            assert_eq!(retry.body, req.body, "{}: a retry sends the same body", f.name());
            assert_eq!(
                verify(f, &new, &retry, &retry.body, later),
                Ok(()),
                "{}",
                f.name()
            );
            // A stale signature is refused where the format signs a time.
            match f.tolerance_secs() {
                Some(t) => {
                    let far = Timestamp::from_micros(now.as_micros() + (t + 1) * 1_000_000);
                    assert!(
                        matches!(
                            verify(f, &new, &req, &req.body, far),
                            Err(VerifyError::Stale { .. })
                        ),
                        "{}",
                        f.name()
                    );
                    assert_ne!(retry.headers, req.headers, "{}: re-signed", f.name());
                }
                None => assert_eq!(verify(f, &new, &req, &req.body, later), Ok(())),
            }
            assert!(
                req.headers
                    .iter()
                    .any(|(k, v)| *k == "content-type" && v == "application/json")
            );
            for (k, _) in &req.headers {
                assert_eq!(*k, k.to_ascii_lowercase(), "header names are lower case");
            }
            // Bodies are JSON objects.
            let v: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
            assert!(v.is_object(), "{}", f.name());
        }
    }

    #[test]
    fn extreme_signed_timestamps_are_stale() {
        // Found by `fuzz/` (target verify): a timestamp near i64::MIN
        // overflowed the age check (a panic with overflow checks on).
        let now = Timestamp::from_micros(1_780_000_000_000_000);
        let body = b"{}";
        for t in [i64::MIN, i64::MIN + 1, i64::MAX] {
            let s = crate::wire::SecretScheme::TextWhsec.generate();
            let ev = format!("t={t},v1={}", eventium::sign(&s, t, body));
            let h = [("x-eventium-signature", ev.as_str())];
            let r = eventium::Eventium.verify(&s, &Received { headers: &h, body }, now);
            assert!(matches!(r, Err(VerifyError::Stale { .. })), "eventium {t}: {r:?}");
            let rv = revento::sign(&s, t, body);
            let ts = t.to_string();
            let h = [
                ("x-revento-timestamp", ts.as_str()),
                ("x-revento-signature", rv.as_str()),
            ];
            let r = revento::Revento.verify(&s, &Received { headers: &h, body }, now);
            assert!(matches!(r, Err(VerifyError::Stale { .. })), "revento {t}: {r:?}");
            let s = crate::wire::SigningSecret::generate();
            let sw = standard::sign(&s, "msg_1", t, body);
            let h = [
                ("webhook-id", "msg_1"),
                ("webhook-timestamp", ts.as_str()),
                ("webhook-signature", sw.as_str()),
            ];
            let r = standard::Standard.verify(&s, &Received { headers: &h, body }, now);
            assert!(matches!(r, Err(VerifyError::Stale { .. })), "standard {t}: {r:?}");
        }
    }

    #[test]
    fn verify_never_panics_on_garbage_headers() {
        let now = Timestamp::now();
        let junk = [
            "",
            "=",
            ",",
            "/",
            "//",
            "t=",
            "v1=",
            "t=99999999999999999999999,v1=00",
            "sha256=",
            "é/é",
            "-1/ab",
            "0/ab",
        ];
        for f in Format::all().map(Format::wire) {
            let s = f.secret_scheme().generate();
            for j in junk {
                let names = [
                    "webhook-id",
                    "webhook-timestamp",
                    "webhook-signature",
                    "x-eventium-signature",
                    "x-revolution-signature",
                    "x-revento-timestamp",
                    "x-revento-signature",
                    "x-signature",
                ];
                let headers: Vec<(&str, &str)> = names.iter().map(|n| (*n, j)).collect();
                assert!(
                    f.verify(
                        &s,
                        &Received {
                            headers: &headers,
                            body: b"{}"
                        },
                        now
                    )
                    .is_err()
                );
            }
        }
    }
}
