//! Webhook wire formats: how one delivery of a message becomes the body and
//! headers of an HTTP POST, signature included.
//!
//! Why a trait: the native format is Standard Webhooks, but the reference
//! platforms each sign differently (Stripe-style `t=,v1=`, `sha256=<hex>`,
//! the X-Revento headers, `X-Signature: <ns>/<hex>`). Each of those becomes
//! one module implementing [`WireFormat`] plus one [`Format`] variant; the
//! dispatcher, the store and the API never learn a platform's header names.
//! Everything here is pure (no clock, no I/O): the caller supplies the
//! delivery id, the attempt timestamp and the secrets, so every scheme is
//! table-tested with fixed inputs.

pub mod secret;
pub mod standard;

use std::fmt;
use std::str::FromStr;

pub use secret::{BadSecret, SigningSecret};

use crate::message::StoredMessage;
use crate::timestamp::Timestamp;

/// The HTTP request one attempt sends, minus the URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireRequest {
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

/// One signing scheme and envelope.
pub trait WireFormat: Send + Sync {
    /// The name used in the API (`"format": "standard"`).
    fn name(&self) -> &'static str;

    /// The request body for one delivery. It must not depend on the attempt,
    /// so a retry sends the same bytes.
    fn render_body(&self, delivery_id: &str, message: &StoredMessage) -> Vec<u8>;

    /// The headers for one attempt at `at`, signed with every secret given
    /// (several during a rotation overlap). Includes `content-type`.
    fn headers(
        &self,
        delivery_id: &str,
        at: Timestamp,
        body: &[u8],
        secrets: &[&SigningSecret],
    ) -> Vec<(&'static str, String)>;

    /// Body and headers together.
    fn render(
        &self,
        delivery_id: &str,
        message: &StoredMessage,
        at: Timestamp,
        secrets: &[&SigningSecret],
    ) -> WireRequest {
        let body = self.render_body(delivery_id, message);
        let headers = self.headers(delivery_id, at, &body, secrets);
        WireRequest { headers, body }
    }
}

/// The wire formats an endpoint can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Format {
    /// Standard Webhooks (<https://www.standardwebhooks.com>).
    #[default]
    Standard,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown format; supported: standard")]
pub struct UnknownFormat;

impl Format {
    pub fn as_str(self) -> &'static str {
        self.wire().name()
    }

    pub fn wire(self) -> &'static dyn WireFormat {
        match self {
            Format::Standard => &standard::Standard,
        }
    }
}

impl FromStr for Format {
    type Err = UnknownFormat;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "standard" => Ok(Format::Standard),
            _ => Err(UnknownFormat),
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
