//! Fixed inputs for the formats' unit tests.

use serde_json::value::RawValue;

use crate::ids::{MessageId, OrgId};
use crate::message::StoredMessage;
use crate::timestamp::Timestamp;

/// An `order.completed` on `venue:a` and `artist:b`, occurred at 1 s,
/// received at 2 s.
pub fn message() -> StoredMessage {
    message_on(&["venue:a", "artist:b"])
}

pub fn message_on(channels: &[&str]) -> StoredMessage {
    StoredMessage {
        seq: 9,
        id: "msg_01JD0000000000000000000000".parse::<MessageId>().unwrap(),
        org_id: OrgId::generate(),
        event_type: "order.completed".parse().unwrap(),
        channels: channels.iter().map(|c| c.parse().unwrap()).collect(),
        data: RawValue::from_string(r#"{"total":12}"#.into()).unwrap(),
        occurred_at: Timestamp::from_micros(1_000_000),
        received_at: Timestamp::from_micros(2_000_000),
    }
}
