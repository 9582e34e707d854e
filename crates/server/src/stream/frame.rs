//! The stream wire format: `{"type","id","cursor","channel","payload","occurred_at"}`.
//!
//! `type` and `payload` are named as in the Revolution stream document, so
//! its example client (`event.type`, `event.payload`) works unchanged. This
//! is the only place that knows the shape; the bus carries rendered bytes.
//!
//! Control frames (acknowledgements, `pong`, errors) never carry `type`:
//! they say what they are in `event` (`{"event":"subscribed","channel":…}`),
//! so a frame with a `type` is always a message, and a client that
//! dispatches on `type` (as the Revolution client does) passes over them.

use axum::extract::ws::Utf8Bytes;
use marquee_core::message::StoredMessage;
use marquee_core::names::Channel;
use serde::Serialize;
use serde_json::value::RawValue;

use super::bus::Frame;

#[derive(Serialize)]
struct StreamFrameJson<'a> {
    #[serde(rename = "type")]
    event_type: &'a str,
    id: &'a str,
    cursor: String,
    channel: &'a str,
    payload: &'a RawValue,
    occurred_at: String,
}

/// Renders one message as delivered on one of its channels.
pub fn render(m: &StoredMessage, channel: &Channel) -> Frame {
    let mut out = Vec::with_capacity(160 + channel.as_str().len() + m.data.get().len());
    // Plain strings and a RawValue cannot fail to serialize.
    let _ = serde_json::to_writer(
        &mut out,
        &StreamFrameJson {
            event_type: m.event_type.as_str(),
            id: m.id.as_str(),
            cursor: m.cursor().encode(),
            channel: channel.as_str(),
            payload: &m.data,
            occurred_at: m.occurred_at.to_rfc3339(),
        },
    );
    // serde_json writes UTF-8 only.
    let text = String::from_utf8(out).unwrap_or_default();
    Frame::new(m.seq, Utf8Bytes::from(text))
}

/// Control frames (acks, pongs and errors: `{"event": …}`, never `type`)
/// are small and rare: `serde_json::json!`.
pub fn control(v: serde_json::Value) -> Utf8Bytes {
    Utf8Bytes::from(v.to_string())
}

#[cfg(test)]
mod tests {
    use marquee_core::Cursor;
    use marquee_core::ids::{MessageId, OrgId};
    use marquee_core::timestamp::Timestamp;

    use super::*;

    #[test]
    fn frame_matches_the_revolution_shape() {
        let ch: Channel = "venue:stubbs-austin".parse().unwrap();
        let m = StoredMessage {
            seq: 42,
            id: MessageId::generate(),
            org_id: OrgId::generate(),
            event_type: "fan_checkin".parse().unwrap(),
            channels: vec![ch.clone()],
            data: RawValue::from_string(r#"{"fan_id":"f1","gate":"A"}"#.into()).unwrap(),
            occurred_at: Timestamp::from_micros(1_000_000),
            received_at: Timestamp::from_micros(2_000_000),
        };
        let f = render(&m, &ch);
        assert_eq!(f.seq, 42);
        let v: serde_json::Value = serde_json::from_str(f.text.as_str()).unwrap();
        assert_eq!(v["type"], "fan_checkin");
        assert_eq!(v["payload"]["gate"], "A");
        assert_eq!(v["channel"], "venue:stubbs-austin");
        assert_eq!(v["cursor"], Cursor::from_seq(42).encode());
        assert_eq!(v["id"], m.id.as_str());
        assert_eq!(v["occurred_at"], "1970-01-01T00:00:01Z");
    }
}
