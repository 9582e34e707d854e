//! marquee's Standard Webhooks signatures verify with the official
//! `standardwebhooks` library, including during a rotation overlap (two
//! signatures in one header).

use marquee_core::ids::{MessageId, OrgId};
use marquee_core::message::StoredMessage;
use marquee_core::timestamp::Timestamp;
use marquee_core::wire::{Format, Render, SigningSecret};
use serde_json::value::RawValue;

fn message() -> StoredMessage {
    StoredMessage {
        seq: 42,
        id: MessageId::generate(),
        org_id: OrgId::generate(),
        event_type: "fan_checkin".parse().unwrap(),
        channels: vec!["venue:stubbs-austin".parse().unwrap()],
        data: RawValue::from_string(r#"{"fan_id":"fan_1","gate":"MAIN"}"#.into()).unwrap(),
        occurred_at: Timestamp::now(),
        received_at: Timestamp::now(),
    }
}

#[test]
fn official_library_verifies_every_signing_secret() {
    let old = SigningSecret::generate();
    let new = SigningSecret::generate();
    let m = message();
    let req = Format::standard().wire().render(&Render {
        delivery_id: "dlv_01JD0000000000000000000000",
        attempt: 1,
        at: Timestamp::now(),
        secrets: &[&new, &old],
        message: &m,
    });
    let mut headers = http::HeaderMap::new();
    for (k, v) in &req.headers {
        headers.insert(*k, v.parse().unwrap());
    }
    for s in [&old, &new] {
        let wh = standardwebhooks::Webhook::new(&s.expose()).unwrap();
        wh.verify(&req.body, &headers).expect("verifies");
    }
    let stranger = standardwebhooks::Webhook::new(&SigningSecret::generate().expose()).unwrap();
    assert!(stranger.verify(&req.body, &headers).is_err());
    let mut tampered = req.body.clone();
    tampered[2] ^= 1;
    let wh = standardwebhooks::Webhook::new(&new.expose()).unwrap();
    assert!(wh.verify(&tampered, &headers).is_err());
}
