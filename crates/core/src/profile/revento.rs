//! Revento (conventions, applications, programs; reference 003).
//!
//! Webhook headers: `X-Revento-Event: <type>`, `X-Revento-Delivery-Id: <UUID
//! v4>`, `X-Revento-Timestamp: <Unix s>`, `X-Revento-Signature:
//! sha256=<hex HMAC-SHA256(secret, timestamp + "." + raw body)>`. Body:
//! `{"id","type","occurred_at","event_id","organization_id","data"}`, every
//! field always present: `event_id` / `organization_id` are the ids of the
//! message's `event:` / `organization:` channels, `null` when it has none
//! (integration-level events such as `integration.suspended`).
//!
//! The delivery id is a UUID v4 *derived* from marquee's delivery id (its
//! SHA-256, with the version and variant bits set), so it is the same on
//! every retry, resend and replay of that delivery without storing another
//! column. The document sets no replay window; marquee's verifier (and SDK)
//! use 5 minutes, like the other formats, and every attempt is signed anew.
//! One signature per request: after a rotation the new secret signs at once.

use serde::Serialize;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use super::Profile;
use crate::message::StoredMessage;
use crate::timestamp::Timestamp;
use crate::wire::hmac_util::{ct_eq, hex, hmac_hex};
use crate::wire::{
    Received, Render, SecretScheme, SigningSecret, VerifyError, WireFormat, check_age, event_id,
};

pub static PROFILE: Profile = Profile {
    name: "revento",
    title: "Revento (conventions, applications, programs)",
    format: Some(&Revento),
    enableable: true,
    catalog_source: Some(include_str!("catalogs/revento.json")),
    catalog_cell: std::sync::OnceLock::new(),
};

pub const EVENT_HEADER: &str = "x-revento-event";
pub const DELIVERY_HEADER: &str = "x-revento-delivery-id";
pub const TIMESTAMP_HEADER: &str = "x-revento-timestamp";
pub const SIGNATURE_HEADER: &str = "x-revento-signature";
pub const TOLERANCE_SECS: i64 = 300;

pub struct Revento;

#[derive(Serialize)]
struct Body<'a> {
    id: String,
    #[serde(rename = "type")]
    event_type: &'a str,
    occurred_at: String,
    event_id: Option<&'a str>,
    organization_id: Option<&'a str>,
    data: &'a RawValue,
}

/// The UUID v4 that stands for a marquee delivery id.
pub fn delivery_uuid(delivery_id: &str) -> String {
    let mut b: [u8; 16] = Sha256::digest(delivery_id.as_bytes())[..16]
        .try_into()
        .expect("16 bytes");
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

pub fn sign(secret: &SigningSecret, ts: i64, body: &[u8]) -> String {
    format!(
        "sha256={}",
        hmac_hex(secret.key(), &[ts.to_string().as_bytes(), b".", body])
    )
}

fn channel_id<'a>(m: &'a StoredMessage, kind: &str) -> Option<&'a str> {
    m.channels.iter().find(|c| c.kind() == kind).map(|c| c.id())
}

impl WireFormat for Revento {
    fn name(&self) -> &'static str {
        "revento"
    }

    fn secret_scheme(&self) -> SecretScheme {
        SecretScheme::TextWhsec
    }

    fn multi_signature(&self) -> bool {
        false
    }

    fn tolerance_secs(&self) -> Option<i64> {
        Some(TOLERANCE_SECS)
    }

    fn render_body(&self, r: &Render<'_>) -> Vec<u8> {
        let m = r.message;
        let body = Body {
            id: event_id(m),
            event_type: m.event_type.as_str(),
            occurred_at: m.occurred_at.to_rfc3339(),
            event_id: channel_id(m, "event"),
            organization_id: channel_id(m, "organization"),
            data: &m.data,
        };
        crate::wire::envelope_bytes(&body, m, 160)
    }

    fn headers(&self, r: &Render<'_>, body: &[u8]) -> Vec<(&'static str, String)> {
        let ts = r.at.as_secs();
        let mut h = vec![
            ("content-type", "application/json".to_owned()),
            (EVENT_HEADER, r.message.event_type.as_str().to_owned()),
            (DELIVERY_HEADER, delivery_uuid(r.delivery_id)),
            (TIMESTAMP_HEADER, ts.to_string()),
        ];
        if let Some(s) = r.secrets.first() {
            h.push((SIGNATURE_HEADER, sign(s, ts, body)));
        }
        h
    }

    fn verify(&self, secret: &SigningSecret, req: &Received<'_>, now: Timestamp) -> Result<(), VerifyError> {
        let ts_text = req.require(TIMESTAMP_HEADER)?;
        let ts: i64 = ts_text.trim().parse().map_err(|_| VerifyError::Malformed {
            header: TIMESTAMP_HEADER,
            why: "not Unix seconds",
        })?;
        let got = req.require(SIGNATURE_HEADER)?;
        // The document signs the timestamp exactly as sent in its header.
        let expected = format!(
            "sha256={}",
            hmac_hex(secret.key(), &[ts_text.as_bytes(), b".", req.body])
        );
        if !ct_eq(got.as_bytes(), expected.as_bytes()) {
            return Err(VerifyError::Mismatch);
        }
        check_age(ts, now, TOLERANCE_SECS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::testkit::message_on;

    #[test]
    fn known_vector() {
        // python3: hmac.new(b'whsec_test_revento', b'1778336551.' + BODY, sha256)
        let body = br#"{"id":"evt_delivery_xyz","type":"application.approved","occurred_at":"2026-05-09T14:22:31Z","event_id":"evt_abc123","organization_id":"org_xyz789","data":{"id":"app_xyz"}}"#;
        let s = SigningSecret::from_text("whsec_test_revento", None);
        let want = "sha256=b000694d15fce859ac34607c6e8379397df8edacfeecff85b973f01f6bf6ebf9";
        assert_eq!(sign(&s, 1778336551, body), want);
        let h = [
            ("X-Revento-Timestamp", "1778336551"),
            ("X-Revento-Signature", want),
        ];
        let req = Received { headers: &h, body };
        let at = Timestamp::from_micros(1778336551 * 1_000_000);
        assert_eq!(Revento.verify(&s, &req, at), Ok(()));
    }

    #[test]
    fn delivery_ids_are_stable_uuid_v4() {
        let a = delivery_uuid("dlv_01JD0000000000000000000000");
        assert_eq!(a, delivery_uuid("dlv_01JD0000000000000000000000"));
        assert_ne!(a, delivery_uuid("dlv_01JD0000000000000000000001"));
        let b = a.as_bytes();
        assert_eq!(a.len(), 36);
        assert_eq!((b[8], b[13], b[18], b[23]), (b'-', b'-', b'-', b'-'));
        assert_eq!(b[14], b'4');
        assert!(matches!(b[19], b'8' | b'9' | b'a' | b'b'));
    }

    #[test]
    fn nulls_not_absent() {
        let r = |m: &StoredMessage| {
            let body = Revento.render_body(&Render {
                delivery_id: "dlv_1",
                attempt: 1,
                at: Timestamp::now(),
                secrets: &[],
                message: m,
            });
            serde_json::from_slice::<serde_json::Value>(&body).unwrap()
        };
        let v = r(&message_on(&["venue:a"]));
        assert!(v["event_id"].is_null() && v.get("event_id").is_some());
        assert!(v["organization_id"].is_null() && v.get("organization_id").is_some());
        let v = r(&message_on(&["organization:org_xyz789", "event:evt_abc123"]));
        assert_eq!(v["event_id"], "evt_abc123");
        assert_eq!(v["organization_id"], "org_xyz789");
        assert_eq!(v["occurred_at"], "1970-01-01T00:00:01Z");
        assert_eq!(v["id"], "evt_01JD0000000000000000000000");
    }
}
