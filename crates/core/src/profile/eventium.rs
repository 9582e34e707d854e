//! Eventium (ticketing, organizers; reference 002).
//!
//! Webhook: `X-Eventium-Signature: t=<Unix s>,v1=<hex HMAC-SHA256(secret,
//! t + "." + raw body)>` — Stripe's format, so Stripe's own verifiers accept
//! it. During a rotation overlap the header carries one `v1=` per secret
//! (Stripe's verifiers accept any). Body: `{"id":"evt_…","type","created":
//! <Unix s>,"data":{…}}` with `created` the message's `occurred_at`.
//! Secrets are `whsec_…`, generated and shown once; the HMAC key is the
//! secret text itself (what Stripe's libraries do). Every attempt is signed
//! anew: the reference verifier refuses signatures older than 5 minutes.

use serde::Serialize;
use serde_json::value::RawValue;

use super::Profile;
use crate::timestamp::Timestamp;
use crate::wire::hmac_util::{ct_eq, hmac_hex};
use crate::wire::{
    Received, Render, SecretScheme, SigningSecret, VerifyError, WireFormat, check_age, event_id,
};

pub static PROFILE: Profile = Profile {
    name: "eventium",
    title: "Eventium (ticketing, organizers)",
    format: Some(&Eventium),
    enableable: true,
    catalog_source: Some(include_str!("catalogs/eventium.json")),
    catalog_cell: std::sync::OnceLock::new(),
};

pub const SIGNATURE_HEADER: &str = "x-eventium-signature";
/// The reference verifier's replay window.
pub const TOLERANCE_SECS: i64 = 300;

pub struct Eventium;

#[derive(Serialize)]
struct Body<'a> {
    id: String,
    #[serde(rename = "type")]
    event_type: &'a str,
    created: i64,
    data: &'a RawValue,
}

/// The hex `v1` signature of one secret.
pub fn sign(secret: &SigningSecret, t: i64, body: &[u8]) -> String {
    hmac_hex(secret.key(), &[t.to_string().as_bytes(), b".", body])
}

/// `t=…` and every `v1=…` of a header; other schemes (`v0=`) are ignored
/// as Stripe's verifiers do.
fn parse(header: &str) -> Result<(i64, Vec<&str>), VerifyError> {
    let malformed = |why| VerifyError::Malformed {
        header: SIGNATURE_HEADER,
        why,
    };
    let mut t = None;
    let mut v1 = Vec::new();
    for item in header.split(',') {
        let (k, v) = item
            .trim()
            .split_once('=')
            .ok_or(malformed("an item is not key=value"))?;
        match k {
            "t" => t = Some(v.parse::<i64>().map_err(|_| malformed("t is not Unix seconds"))?),
            "v1" => v1.push(v),
            _ => {}
        }
    }
    let t = t.ok_or(malformed("no t= timestamp"))?;
    if v1.is_empty() {
        return Err(malformed("no v1= signature"));
    }
    Ok((t, v1))
}

impl WireFormat for Eventium {
    fn name(&self) -> &'static str {
        "eventium"
    }

    fn secret_scheme(&self) -> SecretScheme {
        SecretScheme::TextWhsec
    }

    fn multi_signature(&self) -> bool {
        true
    }

    fn tolerance_secs(&self) -> Option<i64> {
        Some(TOLERANCE_SECS)
    }

    fn render_body(&self, r: &Render<'_>) -> Vec<u8> {
        let m = r.message;
        let body = Body {
            id: event_id(m),
            event_type: m.event_type.as_str(),
            created: m.occurred_at.as_secs(),
            data: &m.data,
        };
        crate::wire::envelope_bytes(&body, m, 96)
    }

    fn headers(&self, r: &Render<'_>, body: &[u8]) -> Vec<(&'static str, String)> {
        let t = r.at.as_secs();
        let mut sig = format!("t={t}");
        for s in r.secrets {
            sig.push_str(",v1=");
            sig.push_str(&sign(s, t, body));
        }
        vec![
            ("content-type", "application/json".to_owned()),
            (SIGNATURE_HEADER, sig),
        ]
    }

    fn verify(&self, secret: &SigningSecret, req: &Received<'_>, now: Timestamp) -> Result<(), VerifyError> {
        let (t, v1) = parse(req.require(SIGNATURE_HEADER)?)?;
        let expected = sign(secret, t, req.body);
        let mut ok = false;
        for candidate in v1 {
            ok |= ct_eq(candidate.as_bytes(), expected.as_bytes());
        }
        if !ok {
            return Err(VerifyError::Mismatch);
        }
        check_age(t, now, TOLERANCE_SECS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vector() {
        // python3: hmac.new(b'whsec_test_eventium', b'1716490281.' + BODY, sha256)
        let body = br#"{"id":"evt_8nFwL2hQ","type":"order.completed","created":1716490281,"data":{"ticket_id":"tkt_8nFwL2hQ","quantity":2,"total":48.00}}"#;
        let s = SigningSecret::from_text("whsec_test_eventium", None);
        let want = "9592843c026e5d4b5ece0936c5be5d6ef0097ff5954ce24b7d845dc6b27c5123";
        assert_eq!(sign(&s, 1716490281, body), want);
        let at = Timestamp::from_micros(1716490281 * 1_000_000);
        for header in [
            format!("t=1716490281,v1={want}"),
            format!("t=1716490281,v1=00,v1={want}"),
            format!("t=1716490281, v0=abc, v1={want}"),
        ] {
            let h = [("X-Eventium-Signature", header.as_str())];
            let req = Received { headers: &h, body };
            assert_eq!(Eventium.verify(&s, &req, at), Ok(()), "{header}");
            let late = Timestamp::from_micros((1716490281 + 301) * 1_000_000);
            assert!(matches!(
                Eventium.verify(&s, &req, late),
                Err(VerifyError::Stale { .. })
            ));
        }
        for bad in ["", "t=1", "v1=ab", "t=x,v1=ab", "garbage"] {
            let h = [("X-Eventium-Signature", bad)];
            let req = Received { headers: &h, body };
            assert!(
                matches!(Eventium.verify(&s, &req, at), Err(VerifyError::Malformed { .. })),
                "{bad}"
            );
        }
    }
}
