//! The attendee-webhooks platform of reference 004 (it has no name of its
//! own; marquee calls the profile `attendee`).
//!
//! Webhook: `X-Signature: <Unix ns>/<hex HMAC-SHA256(secret,
//! identifier/timestamp/raw body)>`, body `{"id","event":<type>,"data":{…}}`
//! where `data` is the message's data (the platform's typed `{type, id, …}`
//! structures). The channel identifier and the secret are generated
//! together and shown once; both are credentials. The timestamp is the
//! attempt's time in nanoseconds (marquee's clock has microsecond
//! resolution, so the last three digits are 0); every attempt is signed
//! anew because the document's verifier refuses timestamps older than 5
//! minutes. One signature per request: after a rotation the new secret signs
//! at once and the identifier stays.

use serde::Serialize;
use serde_json::value::RawValue;

use super::Profile;
use crate::timestamp::Timestamp;
use crate::wire::hmac_util::{ct_eq, hmac_hex};
use crate::wire::{Received, Render, SecretScheme, SigningSecret, VerifyError, WireFormat, event_id};

pub static PROFILE: Profile = Profile {
    name: "attendee",
    title: "Attendee webhooks (reference 004)",
    format: Some(&Attendee),
    enableable: true,
    catalog_source: Some(include_str!("catalogs/attendee.json")),
    catalog_cell: std::sync::OnceLock::new(),
};

pub const SIGNATURE_HEADER: &str = "x-signature";
pub const TOLERANCE_SECS: i64 = 300;

pub struct Attendee;

#[derive(Serialize)]
struct Body<'a> {
    id: String,
    event: &'a str,
    data: &'a RawValue,
}

pub fn sign(secret: &SigningSecret, ts_ns: &str, body: &[u8]) -> String {
    let identifier = secret.identifier().unwrap_or("");
    hmac_hex(
        secret.key(),
        &[identifier.as_bytes(), b"/", ts_ns.as_bytes(), b"/", body],
    )
}

impl WireFormat for Attendee {
    fn name(&self) -> &'static str {
        "attendee"
    }

    fn secret_scheme(&self) -> SecretScheme {
        SecretScheme::IdentifierAndText
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
            event: m.event_type.as_str(),
            data: &m.data,
        };
        crate::wire::envelope_bytes(&body, m, 64)
    }

    fn headers(&self, r: &Render<'_>, body: &[u8]) -> Vec<(&'static str, String)> {
        let mut h = vec![("content-type", "application/json".to_owned())];
        if let Some(s) = r.secrets.first() {
            let ts = (i128::from(r.at.as_micros()) * 1000).to_string();
            let sig = sign(s, &ts, body);
            h.push((SIGNATURE_HEADER, format!("{ts}/{sig}")));
        }
        h
    }

    /// The document's pseudocode: exactly two non-empty parts around one
    /// `/`; a zero timestamp or one older than 5 minutes fails (marquee also
    /// refuses one more than 5 minutes in the future).
    fn verify(&self, secret: &SigningSecret, req: &Received<'_>, now: Timestamp) -> Result<(), VerifyError> {
        let header = req.require(SIGNATURE_HEADER)?;
        let malformed = |why| VerifyError::Malformed {
            header: SIGNATURE_HEADER,
            why,
        };
        let parts: Vec<&str> = header.split('/').collect();
        if parts.len() != 2 || parts[0].is_empty() || parts[1].is_empty() {
            return Err(malformed("not <timestamp>/<signature>"));
        }
        let ts: i128 = parts[0]
            .parse()
            .map_err(|_| malformed("the timestamp is not nanoseconds"))?;
        let now_ns = i128::from(now.as_micros()) * 1000;
        let window = i128::from(TOLERANCE_SECS) * 1_000_000_000;
        if !ct_eq(parts[1].as_bytes(), sign(secret, parts[0], req.body).as_bytes()) {
            return Err(VerifyError::Mismatch);
        }
        if ts == 0 || ts < now_ns - window || ts > now_ns + window {
            return Err(VerifyError::Stale {
                tolerance_secs: TOLERANCE_SECS,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vector() {
        // python3: hmac.new(b'whsec_test_attendee',
        //   b'chn_test/1778336551000000000/' + BODY, sha256)
        let body = br#"{"id":"evt_1","event":"event.attendees.created","data":{"type":"event-attendees","id":"att_1"}}"#;
        let s = SigningSecret::from_text("whsec_test_attendee", Some("chn_test"));
        let want = "847f7eeace13fda2b8db7475d4fd94188dad5470262fa83d5840ac0f40393d35";
        assert_eq!(sign(&s, "1778336551000000000", body), want);
        let header = format!("1778336551000000000/{want}");
        let h = [("X-Signature", header.as_str())];
        let req = Received { headers: &h, body };
        let at = Timestamp::from_micros(1778336551 * 1_000_000);
        assert_eq!(Attendee.verify(&s, &req, at), Ok(()));
        let other = SigningSecret::from_text("whsec_test_attendee", Some("chn_other"));
        assert_eq!(Attendee.verify(&other, &req, at), Err(VerifyError::Mismatch));
        for bad in ["", "/", "1/", "/ab", "1/2/3", "x/ab"] {
            let h = [("X-Signature", bad)];
            let req = Received { headers: &h, body };
            assert!(
                matches!(Attendee.verify(&s, &req, at), Err(VerifyError::Malformed { .. })),
                "{bad}"
            );
        }
    }
}
