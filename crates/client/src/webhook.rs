//! Webhook verification and local signing, on marquee-core's wire formats
//! (the same pure code the server's dispatcher signs with, not a copy).

use marquee_core::cursor::Cursor;
use marquee_core::ids::{MessageId, OrgId};
use marquee_core::message::StoredMessage;
use marquee_core::names::{Channel, EventType};
use marquee_core::timestamp::Timestamp;
use marquee_core::wire::{Format, Received, Render, SecretScheme, SigningSecret, WireRequest};

use crate::error::{Error, VerifyErrorKind};
use crate::{StreamMessage, VerifyError};

fn format_of(name: &str) -> Result<Format, VerifyError> {
    name.parse::<Format>()
        .map_err(|e| Error::new(VerifyErrorKind::UnknownFormat, format!("{name:?}: {e}")))
}

/// The HMAC secret as its owner wrote it down: for `standard`, the
/// `whsec_…` base64 text; for the platform formats, the secret text itself
/// (its UTF-8 bytes are the key), with the channel identifier for `attendee`.
pub fn parse_secret(
    format: &str,
    secret: &str,
    identifier: Option<&str>,
) -> Result<SigningSecret, VerifyError> {
    let f = format_of(format)?;
    match f.wire().secret_scheme() {
        SecretScheme::Base64Whsec => secret
            .parse::<SigningSecret>()
            .map_err(|e| Error::new(VerifyErrorKind::BadSecret, e.to_string())),
        SecretScheme::IdentifierAndText => match identifier {
            Some(i) => Ok(SigningSecret::from_text(secret, Some(i))),
            None => Err(Error::new(
                VerifyErrorKind::MissingIdentifier,
                format!("the {format} format signs the channel identifier too: give it (chn_…)"),
            )),
        },
        SecretScheme::TextWhsec | SecretScheme::TextOrSupplied => Ok(SigningSecret::from_text(secret, None)),
    }
}

/// Checks a received webhook (headers in any case, the raw body) the way a
/// receiver of `format` does, at the current time. The error says why not.
pub fn verify(
    format: &str,
    secret: &str,
    identifier: Option<&str>,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<(), VerifyError> {
    let f = format_of(format)?;
    let s = parse_secret(format, secret, identifier)?;
    f.wire()
        .verify(&s, &Received { headers, body }, Timestamp::now())
        .map_err(|e| Error::new(VerifyErrorKind::Signature, e.to_string()))
}

/// The stored message a stream frame stands for (what the server would
/// have rendered): id, type, the frame's channel, payload as `data`,
/// `occurred_at`, and the commit position from the cursor. `received_at`
/// is unknown to a stream client and set to `occurred_at`.
pub fn message_from_frame(m: &StreamMessage) -> Result<StoredMessage, String> {
    let cursor: Cursor = m
        .cursor
        .parse()
        .map_err(|_| format!("bad cursor {:?}", m.cursor))?;
    let at = Timestamp::parse_rfc3339(&m.occurred_at)
        .map_err(|_| format!("bad occurred_at {:?}", m.occurred_at))?;
    let data = serde_json::value::to_raw_value(&m.payload).map_err(|e| e.to_string())?;
    Ok(StoredMessage {
        seq: cursor.seq(),
        id: MessageId::from_trusted(m.id.clone()),
        org_id: OrgId::from_trusted("org_local".into()),
        event_type: EventType::from_trusted(m.event_type.clone()),
        channels: vec![Channel::from_trusted(m.channel.clone())],
        data,
        occurred_at: at,
        received_at: at,
    })
}

/// Signs `message` as one attempt of delivery `delivery_id` in `format`,
/// at `at`: body and headers, exactly as marquee's dispatcher would.
pub fn sign(
    format: &str,
    secret: &SigningSecret,
    message: &StoredMessage,
    delivery_id: &str,
    at: Timestamp,
) -> Result<WireRequest, VerifyError> {
    let f = format_of(format)?;
    Ok(f.wire().render(&Render {
        delivery_id,
        attempt: 1,
        at,
        secrets: &[secret],
        message,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use marquee_core::wire::Format;

    #[test]
    fn every_format_signs_and_verifies_and_says_why_not() {
        let frame = StreamMessage {
            event_type: "fan_checkin".into(),
            id: "msg_01JT0000000000000000000000".into(),
            cursor: Cursor::from_seq(42).encode(),
            channel: "venue:x".into(),
            payload: serde_json::json!({"fan_id": "f1"}),
            occurred_at: "2026-05-01T19:02:11.532104Z".into(),
        };
        let m = message_from_frame(&frame).unwrap();
        assert_eq!(m.seq, 42);
        for f in Format::all() {
            let scheme = f.wire().secret_scheme();
            let exposed = scheme.expose(&scheme.generate());
            let name = f.as_str();
            let s = parse_secret(name, &exposed.secret, exposed.identifier.as_deref()).unwrap();
            let req = sign(name, &s, &m, "dlv_x", Timestamp::now()).unwrap();
            let headers: Vec<(&str, &str)> = req.headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
            verify(
                name,
                &exposed.secret,
                exposed.identifier.as_deref(),
                &headers,
                &req.body,
            )
            .unwrap_or_else(|e| panic!("{name}: {e}"));
            let mut tampered = req.body.clone();
            tampered.push(b' ');
            let e = verify(
                name,
                &exposed.secret,
                exposed.identifier.as_deref(),
                &headers,
                &tampered,
            )
            .unwrap_err();
            assert_eq!(e.kind(), VerifyErrorKind::Signature, "{name}");
            let e = verify(
                name,
                &exposed.secret,
                exposed.identifier.as_deref(),
                &[],
                &req.body,
            )
            .unwrap_err();
            assert!(e.to_string().contains("header is missing"), "{name}: {e}");
        }
        assert_eq!(
            verify("nope", "x", None, &[], b"").unwrap_err().kind(),
            VerifyErrorKind::UnknownFormat
        );
    }
}
