//! Eventory (ticket-inventory monitor): the backend-independent part of its
//! state — watchlist records, the cooldown window arithmetic, and the
//! notification message a snapshot derives. Each backend keeps only its
//! SQL (`sqlite/eventory.rs`, `postgres/eventory.rs`).

use marquee_core::ids::{KeyId, MessageId, OrgId};
use marquee_core::message::NewMessage;
use marquee_core::profile::eventory::{NOTIFICATION_TYPE, SNAPSHOT_TYPE, diff};
use marquee_core::timestamp::Timestamp;
use serde_json::value::RawValue;

/// One watchlist entry of one identity (API key); `entry` is its JSON, as
/// validated by the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchRecord {
    pub id: String,
    pub org_id: OrgId,
    pub key_id: KeyId,
    pub entry: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// Content sent at or before this instant is out of its cooldown.
pub fn cooldown_since(now: i64, window_micros: i64) -> i64 {
    now.saturating_sub(window_micros)
}

/// What appending `m` derives: `None` unless it is an inventory snapshot
/// (of the document's shape). The key it is kept under, and the
/// notification to append after it when something changed.
pub fn snapshot_of(m: &NewMessage) -> Option<diff::SnapshotKey> {
    if m.event_type.as_str() != SNAPSHOT_TYPE {
        return None;
    }
    diff::key_of(m.data.get()).ok()
}

/// The notification message for a snapshot: same channels, the §4 envelope
/// as `data`. `None` when nothing changed (or the snapshot is unreadable,
/// which the catalog's schema normally refuses at the door).
pub fn notification(m: &NewMessage, prev: Option<&str>, at: Timestamp) -> Option<NewMessage> {
    let d = diff::derive(prev, m.data.get(), at).ok()?;
    let text = d.notification?;
    Some(NewMessage {
        id: MessageId::generate(),
        event_type: NOTIFICATION_TYPE.parse().ok()?,
        channels: m.channels.clone(),
        data: RawValue::from_string(text).ok()?,
        occurred_at: m.occurred_at,
        idempotency: None,
        dedup: None,
        project: None,
        coalesce: None,
        derived: None,
    })
}
