//! Standard Webhooks: `webhook-id`, `webhook-timestamp` (Unix seconds) and
//! `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`,
//! space-separated when several secrets sign (a rotation overlap).
//!
//! `webhook-id` is the delivery id, identical on every retry, so receivers
//! deduplicate on it. The body is marquee's message envelope:
//! `{"type","timestamp","id","cursor","channels","occurred_at","data"}` where
//! `id` is the message id and `timestamp` the time marquee received it.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use serde::Serialize;
use serde_json::value::RawValue;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::Profile;
use crate::timestamp::Timestamp;
use crate::wire::{Received, Render, SecretScheme, SigningSecret, VerifyError, WireFormat, check_age};

pub static PROFILE: Profile = Profile {
    name: "standard",
    title: "Standard Webhooks (marquee's native format)",
    format: Some(&Standard),
    enableable: false,
    catalog_source: None,
    catalog_cell: std::sync::OnceLock::new(),
};

/// The Standard Webhooks libraries' default tolerance.
pub const TOLERANCE_SECS: i64 = 300;

pub struct Standard;

#[derive(Serialize)]
struct Body<'a> {
    #[serde(rename = "type")]
    event_type: &'a str,
    timestamp: String,
    id: &'a str,
    cursor: String,
    channels: Vec<&'a str>,
    occurred_at: String,
    data: &'a RawValue,
}

/// `v1,<base64>` for one secret.
pub fn sign(secret: &SigningSecret, msg_id: &str, unix_secs: i64, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.key()).expect("HMAC takes any key length");
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(unix_secs.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", B64.encode(mac.finalize().into_bytes()))
}

/// Checks a `webhook-signature` header value against one secret (what a
/// receiver does); true when any `v1,` signature in it matches, compared in
/// constant time.
pub fn verify(secret: &SigningSecret, msg_id: &str, unix_secs: i64, body: &[u8], header: &str) -> bool {
    let expected = sign(secret, msg_id, unix_secs, body);
    let mut ok = false;
    for candidate in header.split(' ') {
        ok |=
            candidate.len() == expected.len() && bool::from(candidate.as_bytes().ct_eq(expected.as_bytes()));
    }
    ok
}

impl WireFormat for Standard {
    fn name(&self) -> &'static str {
        "standard"
    }

    fn secret_scheme(&self) -> SecretScheme {
        SecretScheme::Base64Whsec
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
            event_type: m.event_type.as_str(),
            timestamp: m.received_at.to_rfc3339(),
            id: m.id.as_str(),
            cursor: m.cursor().encode(),
            channels: m.channels.iter().map(|c| c.as_str()).collect(),
            occurred_at: m.occurred_at.to_rfc3339(),
            data: &m.data,
        };
        crate::wire::envelope_bytes(&body, m, 192)
    }

    fn headers(&self, r: &Render<'_>, body: &[u8]) -> Vec<(&'static str, String)> {
        let ts = r.at.as_secs();
        let sigs: Vec<String> = r
            .secrets
            .iter()
            .map(|s| sign(s, r.delivery_id, ts, body))
            .collect();
        vec![
            ("content-type", "application/json".into()),
            ("webhook-id", r.delivery_id.to_owned()),
            ("webhook-timestamp", ts.to_string()),
            ("webhook-signature", sigs.join(" ")),
        ]
    }

    fn verify(&self, secret: &SigningSecret, req: &Received<'_>, now: Timestamp) -> Result<(), VerifyError> {
        let id = req.require("webhook-id")?;
        let ts: i64 =
            req.require("webhook-timestamp")?
                .trim()
                .parse()
                .map_err(|_| VerifyError::Malformed {
                    header: "webhook-timestamp",
                    why: "not Unix seconds",
                })?;
        check_age(ts, now, TOLERANCE_SECS)?;
        if verify(secret, id, ts, req.body, req.require("webhook-signature")?) {
            Ok(())
        } else {
            Err(VerifyError::Mismatch)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> SigningSecret {
        s.parse().unwrap()
    }

    fn header<'a>(h: &'a [(&'static str, String)], name: &str) -> &'a str {
        h.iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
            .unwrap()
    }

    #[test]
    fn known_vectors() {
        // The Standard Webhooks specification's published example.
        let s = secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let body = br#"{"test": 2432232314}"#;
        let cases: &[(&str, i64, &[u8], &str)] = &[(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            body,
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        )];
        for (id, ts, body, want) in cases {
            assert_eq!(sign(&s, id, *ts, body), *want);
            assert!(verify(&s, id, *ts, body, want));
            assert!(verify(&s, id, *ts, body, &format!("v1,bm9wZQ== {want}")));
            assert!(!verify(&s, id, *ts + 1, body, want));
            assert!(!verify(&s, "other", *ts, body, want));
            assert!(!verify(&s, id, *ts, b"{}", want));
            assert!(!verify(&s, id, *ts, body, ""));
        }
    }

    #[test]
    fn headers_carry_every_secret() {
        let a = SigningSecret::generate();
        let b = SigningSecret::generate();
        let m = super::super::testkit::message();
        let at = Timestamp::from_micros(1_700_000_000_123_456);
        let r = Render {
            delivery_id: "dlv_x",
            attempt: 1,
            at,
            secrets: &[&a, &b],
            message: &m,
        };
        let body = b"{}";
        let h = Standard.headers(&r, body);
        assert_eq!(header(&h, "webhook-id"), "dlv_x");
        assert_eq!(header(&h, "webhook-timestamp"), "1700000000");
        assert_eq!(header(&h, "content-type"), "application/json");
        let sig = header(&h, "webhook-signature");
        assert_eq!(sig.split(' ').count(), 2);
        assert!(verify(&a, "dlv_x", 1_700_000_000, body, sig));
        assert!(verify(&b, "dlv_x", 1_700_000_000, body, sig));
        assert!(!verify(
            &SigningSecret::generate(),
            "dlv_x",
            1_700_000_000,
            body,
            sig
        ));
    }

    #[test]
    fn body_has_the_envelope() {
        let m = super::super::testkit::message();
        let req = Standard.render(&Render {
            delivery_id: "dlv_1",
            attempt: 1,
            at: Timestamp::from_micros(3_000_000),
            secrets: &[],
            message: &m,
        });
        let v: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
        assert_eq!(v["type"], "order.completed");
        assert_eq!(v["id"], m.id.as_str());
        assert_eq!(v["cursor"], m.cursor().encode());
        assert_eq!(v["channels"][1], "artist:b");
        assert_eq!(v["occurred_at"], "1970-01-01T00:00:01Z");
        assert_eq!(v["timestamp"], "1970-01-01T00:00:02Z");
        assert_eq!(v["data"]["total"], 12);
        assert_eq!(header(&req.headers, "webhook-signature"), "");
    }
}
