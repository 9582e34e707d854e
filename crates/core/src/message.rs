//! The native message model and its JSON rendering.
//!
//! `data` is kept as the raw JSON text the publisher sent (validated, never
//! re-encoded), so publishing and rendering cost one parse and no rebuild of
//! the payload tree.

use serde::Serialize;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use crate::cursor::Cursor;
use crate::ids::{MessageId, OrgId};
use crate::names::{Channel, EventType};
use crate::timestamp::Timestamp;

pub const MAX_CHANNELS: usize = 16;
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// An idempotency key and the fingerprint of the request it was first used
/// with; a reuse with another fingerprint is a conflict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idempotency {
    pub key: String,
    pub fingerprint: [u8; 32],
}

/// A validated message about to be committed.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub id: MessageId,
    pub event_type: EventType,
    pub channels: Vec<Channel>,
    pub data: Box<RawValue>,
    pub occurred_at: Timestamp,
    pub idempotency: Option<Idempotency>,
    /// The catalog's dedup key for this message ([`crate::rules`]).
    pub dedup: Option<crate::rules::DedupKey>,
    /// The catalog's projection of this message ([`crate::rules`]).
    pub project: Option<crate::rules::ProjectOp>,
    /// Set for a message of a coalesced type: it is held as a pending row
    /// and committed with the latest data of its key when the window closes.
    pub coalesce: Option<Coalescing>,
    /// What the message states for the read models (a door scan, a drop…),
    /// read by its type's catalog rule at ingest; applied in the publish
    /// commit ([`crate::attendance`]).
    pub derived: Option<crate::attendance::Derived>,
}

/// How one message of a coalesced type is held back (from its type's
/// `coalesce` rule and the key's value in its `data`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coalescing {
    /// The value at the rule's key pointer (a string as itself, any other
    /// JSON value as its JSON text).
    pub key: String,
    pub window_ms: u64,
}

/// A message as committed to the log.
#[derive(Debug, Clone)]
pub struct StoredMessage {
    pub seq: u64,
    pub id: MessageId,
    pub org_id: OrgId,
    pub event_type: EventType,
    pub channels: Vec<Channel>,
    pub data: Box<RawValue>,
    pub occurred_at: Timestamp,
    pub received_at: Timestamp,
}

impl StoredMessage {
    pub fn cursor(&self) -> Cursor {
        Cursor::from_seq(self.seq)
    }
}

/// Fingerprint of the caller-controlled parts of a publish request.
pub fn fingerprint(
    event_type: &str,
    channels: &[Channel],
    data: &RawValue,
    occurred_at: Option<&str>,
) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(event_type.as_bytes());
    h.update([0]);
    for c in channels {
        h.update(c.as_str().as_bytes());
        h.update([1]);
    }
    h.update([0]);
    h.update(data.get().as_bytes());
    h.update([0]);
    h.update(occurred_at.unwrap_or("").as_bytes());
    h.finalize().into()
}

#[derive(Serialize)]
struct NativeJson<'a> {
    object: &'static str,
    id: &'a str,
    cursor: String,
    #[serde(rename = "type")]
    event_type: &'a str,
    channels: Vec<&'a str>,
    data: &'a RawValue,
    occurred_at: String,
    received_at: String,
}

/// Renders the native `{"object":"message",…}` representation.
pub fn native_json(m: &StoredMessage) -> serde_json::Value {
    serde_json::to_value(native_view(m)).unwrap_or(serde_json::Value::Null)
}

/// The same representation written straight into a byte buffer.
pub fn write_native_json(out: &mut Vec<u8>, m: &StoredMessage) {
    // Serializing plain strings and a RawValue cannot fail.
    let _ = serde_json::to_writer(out, &native_view(m));
}

fn native_view(m: &StoredMessage) -> NativeJson<'_> {
    NativeJson {
        object: "message",
        id: m.id.as_str(),
        cursor: m.cursor().encode(),
        event_type: m.event_type.as_str(),
        channels: m.channels.iter().map(|c| c.as_str()).collect(),
        data: &m.data,
        occurred_at: m.occurred_at.to_rfc3339(),
        received_at: m.received_at.to_rfc3339(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_rendering_has_every_field() {
        let m = StoredMessage {
            seq: 7,
            id: MessageId::generate(),
            org_id: OrgId::generate(),
            event_type: "fan_checkin".parse().unwrap(),
            channels: vec!["venue:stubbs-austin".parse().unwrap()],
            data: RawValue::from_string(r#"{"gate":"MAIN"}"#.into()).unwrap(),
            occurred_at: Timestamp::from_micros(1_000_000),
            received_at: Timestamp::from_micros(2_000_000),
        };
        let mut buf = Vec::new();
        write_native_json(&mut buf, &m);
        let v: serde_json::Value = serde_json::from_slice(&buf).unwrap();
        assert_eq!(v["object"], "message");
        assert_eq!(v["type"], "fan_checkin");
        assert_eq!(v["cursor"], Cursor::from_seq(7).encode());
        assert_eq!(v["channels"][0], "venue:stubbs-austin");
        assert_eq!(v["data"]["gate"], "MAIN");
        assert_eq!(v["occurred_at"], "1970-01-01T00:00:01Z");
        assert_eq!(v, native_json(&m));
    }

    #[test]
    fn fingerprint_distinguishes_bodies() {
        let ch: Vec<Channel> = vec!["venue:a".parse().unwrap()];
        let d1 = RawValue::from_string("{}".into()).unwrap();
        let d2 = RawValue::from_string(r#"{"a":1}"#.into()).unwrap();
        assert_ne!(fingerprint("t", &ch, &d1, None), fingerprint("t", &ch, &d2, None));
        assert_eq!(fingerprint("t", &ch, &d1, None), fingerprint("t", &ch, &d1, None));
        assert_ne!(
            fingerprint("t", &ch, &d1, None),
            fingerprint("t", &ch, &d1, Some("x"))
        );
    }
}
