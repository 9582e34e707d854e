//! Revolution "Event Stream" (fan app; reference 000).
//!
//! Webhook: `X-Revolution-Signature: sha256=<hex HMAC-SHA256(secret, raw body)>`
//! — the document shows the verifier (`createHmac('sha256', secret)
//! .update(payload)`, compared with `sha256=${expected}`) but leaves the header
//! name open; marquee uses `X-Revolution-Signature`. Body:
//! `{"id":"evt_…","type","created":<Unix ms>,"payload":{…}}` where `payload`
//! is the message's `data` and `created` its `occurred_at`.
//!
//! The body carries no timestamp, so there is no replay window (the document
//! has none); a retry sends byte-identical bytes and the same signature. One
//! signature per request: after a rotation the new secret signs at once.
//! Integrators may supply their own secret at registration (the document's
//! `rev.developers.createWebhook({secret})`).

use serde::Serialize;
use serde_json::value::RawValue;

use super::Profile;
use crate::timestamp::Timestamp;
use crate::wire::hmac_util::{ct_eq, hmac_hex};
use crate::wire::{Received, Render, SecretScheme, SigningSecret, VerifyError, WireFormat, event_id};

pub static PROFILE: Profile = Profile {
    name: "revolution",
    title: "Revolution Event Stream (fan app)",
    format: Some(&Revolution),
    enableable: true,
    catalog_source: Some(include_str!("catalogs/revolution.json")),
    catalog_cell: std::sync::OnceLock::new(),
};

pub const SIGNATURE_HEADER: &str = "x-revolution-signature";

/// The document's eight event types.
pub const EVENT_TYPES: &[&str] = &[
    "fan_checkin",
    "drop_published",
    "drop_claimed",
    "autograph_requested",
    "shoutout_requested",
    "signal_posted",
    "venue_opened",
    "attendance_milestone",
];

pub struct Revolution;

#[derive(Serialize)]
struct Body<'a> {
    id: String,
    #[serde(rename = "type")]
    event_type: &'a str,
    created: i64,
    payload: &'a RawValue,
}

pub fn sign(secret: &SigningSecret, body: &[u8]) -> String {
    format!("sha256={}", hmac_hex(secret.key(), &[body]))
}

impl WireFormat for Revolution {
    fn name(&self) -> &'static str {
        "revolution"
    }

    fn secret_scheme(&self) -> SecretScheme {
        SecretScheme::TextOrSupplied
    }

    fn multi_signature(&self) -> bool {
        false
    }

    fn tolerance_secs(&self) -> Option<i64> {
        None
    }

    fn render_body(&self, r: &Render<'_>) -> Vec<u8> {
        let m = r.message;
        let body = Body {
            id: event_id(m),
            event_type: m.event_type.as_str(),
            created: m.occurred_at.as_millis(),
            payload: &m.data,
        };
        crate::wire::envelope_bytes(&body, m, 96)
    }

    fn headers(&self, r: &Render<'_>, body: &[u8]) -> Vec<(&'static str, String)> {
        let mut h = vec![("content-type", "application/json".to_owned())];
        if let Some(s) = r.secrets.first() {
            h.push((SIGNATURE_HEADER, sign(s, body)));
        }
        h
    }

    fn verify(&self, secret: &SigningSecret, req: &Received<'_>, _now: Timestamp) -> Result<(), VerifyError> {
        let got = req.require(SIGNATURE_HEADER)?;
        if ct_eq(got.as_bytes(), sign(secret, req.body).as_bytes()) {
            Ok(())
        } else {
            Err(VerifyError::Mismatch)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vector() {
        // Computed independently: python3 -c "import hmac,hashlib;
        // print(hmac.new(b'whsec_xxxx', BODY, hashlib.sha256).hexdigest())"
        let body = br#"{"id":"evt_01HX7ZQK4ABCDEFGH","type":"fan_checkin","created":1745123456789,"payload":{"fan_id":"fan_0xc3f","event_id":"evt_928xA","gate":"MAIN","ts":1745123456789}}"#;
        let s = SigningSecret::from_text("whsec_xxxx", None);
        assert_eq!(sign(&s, body), VECTOR);
        let headers = [("X-Revolution-Signature", VECTOR)];
        let req = Received {
            headers: &headers,
            body,
        };
        assert_eq!(Revolution.verify(&s, &req, Timestamp::now()), Ok(()));
    }

    const VECTOR: &str = "sha256=ca2e17fd8af2527ec7d8be24fe9659ec18b018432904807b84102f4c6e59ad8d";

    #[test]
    fn event_types_are_the_catalog() {
        let c = PROFILE.catalog().unwrap();
        let names: Vec<&str> = c.types.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, EVENT_TYPES);
    }

    #[test]
    fn body_shape() {
        let m = super::super::testkit::message();
        let b = Revolution.render_body(&Render {
            delivery_id: "dlv_1",
            attempt: 1,
            at: Timestamp::now(),
            secrets: &[],
            message: &m,
        });
        assert_eq!(
            std::str::from_utf8(&b).unwrap(),
            r#"{"id":"evt_01JD0000000000000000000000","type":"order.completed","created":1000,"payload":{"total":12}}"#
        );
    }
}
