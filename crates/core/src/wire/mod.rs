//! Webhook wire formats: how one delivery of a message becomes the body and
//! headers of an HTTP POST, and how a receiver checks it.
//!
//! Why a trait: the native format is Standard Webhooks, but each reference
//! platform signs differently (Stripe-style `t=,v1=`, `sha256=<hex>`, the
//! X-Revento headers, `X-Signature: <ns>/<hex>`). Each format lives in its
//! platform's module under [`crate::profile`] and is found by name through the
//! profile registry, so the dispatcher, the store and the API never learn a
//! platform's header names. Everything here is pure (no clock, no I/O): the
//! caller supplies the delivery id, the attempt time and the secrets, so every
//! scheme is table-tested with fixed inputs, and `verify` is exactly what a
//! receiver does.

pub mod hmac_util;
pub mod secret;

use std::fmt;
use std::str::FromStr;

pub use secret::{BadSecret, ExposedSecret, SecretScheme, SigningSecret};

use crate::message::StoredMessage;
use crate::timestamp::Timestamp;

/// Everything rendering one attempt needs.
#[derive(Clone, Copy)]
pub struct Render<'a> {
    /// The delivery id (`dlv_…`), the same on every attempt of a delivery.
    pub delivery_id: &'a str,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// When this attempt is signed.
    pub at: Timestamp,
    /// The secrets in force at `at`, newest first (two during a rotation
    /// overlap; single-signature formats use only the first).
    pub secrets: &'a [&'a SigningSecret],
    pub message: &'a StoredMessage,
}

/// The HTTP request one attempt sends, minus the URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireRequest {
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

/// A request as a receiver got it: header names in any case.
#[derive(Debug, Clone, Copy)]
pub struct Received<'a> {
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
}

impl<'a> Received<'a> {
    /// The first header of that name (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }

    pub fn require(&self, name: &'static str) -> Result<&'a str, VerifyError> {
        self.header(name).ok_or(VerifyError::MissingHeader(name))
    }
}

/// Why a received webhook does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the {0} header is missing")]
    MissingHeader(&'static str),
    #[error("the {header} header is malformed: {why}")]
    Malformed { header: &'static str, why: &'static str },
    #[error("the signature's timestamp is outside the {tolerance_secs}-second tolerance")]
    Stale { tolerance_secs: i64 },
    #[error("no signature matches the secret")]
    Mismatch,
}

/// One envelope and signing scheme.
pub trait WireFormat: Send + Sync {
    /// The name used in the API (`"format": "standard"`) and in the store.
    fn name(&self) -> &'static str;

    /// How this format's secrets are made, shown and turned into HMAC keys.
    fn secret_scheme(&self) -> SecretScheme;

    /// Whether several secrets can sign one request (a rotation overlap).
    fn multi_signature(&self) -> bool;

    /// How old (or early) a signature's timestamp may be for [`verify`];
    /// `None` when the format signs no timestamp.
    ///
    /// [`verify`]: WireFormat::verify
    fn tolerance_secs(&self) -> Option<i64>;

    /// The request body. It must not depend on the attempt or its time, so a
    /// retry sends the same bytes.
    fn render_body(&self, r: &Render<'_>) -> Vec<u8>;

    /// The headers for one attempt (signed at `r.at`), `content-type` included.
    fn headers(&self, r: &Render<'_>, body: &[u8]) -> Vec<(&'static str, String)>;

    /// What a receiver does: checks the signature (constant time) and, where
    /// the format has one, the timestamp against `now`.
    fn verify(&self, secret: &SigningSecret, req: &Received<'_>, now: Timestamp) -> Result<(), VerifyError>;

    /// Body and headers together.
    fn render(&self, r: &Render<'_>) -> WireRequest {
        let body = self.render_body(r);
        let headers = self.headers(r, &body);
        WireRequest { headers, body }
    }
}

/// The envelope id of a message in the platform formats: `evt_` + the ULID of
/// its message id. Stable across retries, resends, replays and endpoints, and
/// reversible ([`message_id_of_event_id`]).
pub fn event_id(m: &StoredMessage) -> String {
    let id = m.id.as_str();
    format!("evt_{}", id.strip_prefix("msg_").unwrap_or(id))
}

/// The message id behind an envelope id made by [`event_id`].
pub fn message_id_of_event_id(evt: &str) -> Option<String> {
    evt.strip_prefix("evt_").map(|u| format!("msg_{u}"))
}

/// A format's envelope as JSON bytes, sized for the message's data plus the
/// envelope's own fields (`overhead`). Envelopes are plain strings, numbers
/// and the stored `RawValue`, which always serialize.
pub(crate) fn envelope_bytes<T: serde::Serialize>(body: &T, m: &StoredMessage, overhead: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(overhead + m.data.get().len());
    let _ = serde_json::to_writer(&mut out, body);
    out
}

/// Checks a Unix-seconds timestamp against `now` within `tolerance` seconds.
/// `ts_secs` is whatever a header said (any `i64`), so the difference is
/// taken in `i128`: `now - i64::MIN` overflows an `i64`.
pub(crate) fn check_age(ts_secs: i64, now: Timestamp, tolerance: i64) -> Result<(), VerifyError> {
    if (i128::from(now.as_secs()) - i128::from(ts_secs)).abs() > i128::from(tolerance) {
        Err(VerifyError::Stale {
            tolerance_secs: tolerance,
        })
    } else {
        Ok(())
    }
}

/// A wire format, by name: a handle on one registered format.
#[derive(Clone, Copy)]
pub struct Format(&'static dyn WireFormat);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown format; supported: {supported}")]
pub struct UnknownFormat {
    pub supported: String,
}

impl Format {
    /// The native format (Standard Webhooks).
    pub fn standard() -> Self {
        Format(&crate::profile::standard::Standard)
    }

    pub fn as_str(self) -> &'static str {
        self.0.name()
    }

    pub fn wire(self) -> &'static dyn WireFormat {
        self.0
    }

    /// Every registered format, in registry order.
    pub fn all() -> impl Iterator<Item = Format> {
        crate::profile::REGISTRY
            .iter()
            .filter_map(|p| p.format)
            .map(Format)
    }
}

impl Default for Format {
    fn default() -> Self {
        Format::standard()
    }
}

impl PartialEq for Format {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Format {}

impl std::hash::Hash for Format {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}

impl fmt::Debug for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Format({})", self.as_str())
    }
}

impl FromStr for Format {
    type Err = UnknownFormat;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Format::all()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| UnknownFormat {
                supported: Format::all().map(|f| f.as_str()).collect::<Vec<_>>().join(", "),
            })
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_age_takes_any_header_timestamp() {
        // Found by `fuzz/` (target verify): `now - i64::MIN` overflowed.
        let now = Timestamp::from_micros(1_780_000_000_000_000);
        for ts in [i64::MIN, i64::MIN + 1, i64::MAX, -1_780_000_000] {
            assert!(
                matches!(check_age(ts, now, 300), Err(VerifyError::Stale { .. })),
                "{ts}"
            );
        }
        for now in [Timestamp::from_micros(i64::MIN), Timestamp::from_micros(i64::MAX)] {
            assert!(check_age(i64::MIN, now, 300).is_err());
            assert!(check_age(i64::MAX, now, 300).is_err());
        }
        assert_eq!(check_age(1_780_000_300, now, 300), Ok(()));
        assert!(check_age(1_780_000_301, now, 300).is_err());
    }
}
