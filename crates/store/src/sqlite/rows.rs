//! Row ↔ model conversions shared by the reader and the writer.

use marquee_core::ids::{KeyId, MessageId, OrgId};
use marquee_core::message::StoredMessage;
use marquee_core::names::{Channel, EventType};
use marquee_core::timestamp::Timestamp;
use rusqlite::Row;
use serde_json::value::RawValue;

use crate::{ApiKeyRecord, EventTypeRecord, Org};

pub const KEY_COLUMNS: &str =
    "id, org_id, tier, name, public_prefix, created_at, revoked_at, max_stream_connections";
pub const ORG_COLUMNS: &str = "id, name, created_at, profiles";
pub const EVENT_TYPE_COLUMNS: &str = "name, description, schema, created_at, updated_at, rules";
pub const MESSAGE_COLUMNS: &str = "seq, id, org_id, type, channels, data, occurred_at, received_at";

fn conv_err(e: impl std::error::Error + Send + Sync + 'static) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
}

pub fn org(row: &Row<'_>) -> rusqlite::Result<Org> {
    Ok(Org {
        id: OrgId::from_trusted(row.get(0)?),
        name: row.get(1)?,
        created_at: Timestamp::from_micros(row.get(2)?),
        profiles: serde_json::from_str(&row.get::<_, String>(3)?).map_err(conv_err)?,
    })
}

pub fn event_type(row: &Row<'_>) -> rusqlite::Result<EventTypeRecord> {
    Ok(EventTypeRecord {
        name: row.get(0)?,
        description: row.get(1)?,
        schema: row.get(2)?,
        created_at: Timestamp::from_micros(row.get(3)?),
        updated_at: Timestamp::from_micros(row.get(4)?),
        rules: row.get(5)?,
    })
}

/// Profiles as stored: a JSON array of names.
pub fn profiles_text(profiles: &[String]) -> String {
    serde_json::to_string(profiles).unwrap_or_else(|_| "[]".into())
}

pub fn key(row: &Row<'_>) -> rusqlite::Result<ApiKeyRecord> {
    let tier: String = row.get(2)?;
    Ok(ApiKeyRecord {
        id: KeyId::from_trusted(row.get(0)?),
        org_id: OrgId::from_trusted(row.get(1)?),
        tier: tier.parse().map_err(conv_err)?,
        name: row.get(3)?,
        public_prefix: row.get(4)?,
        created_at: Timestamp::from_micros(row.get(5)?),
        revoked_at: row.get::<_, Option<i64>>(6)?.map(Timestamp::from_micros),
        max_stream_connections: row
            .get::<_, Option<i64>>(7)?
            .map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
    })
}

/// Channels are stored space-separated (a space is never part of a channel).
pub fn join_channels(channels: &[Channel]) -> String {
    let mut s = String::new();
    for (i, c) in channels.iter().enumerate() {
        if i > 0 {
            s.push(' ');
        }
        s.push_str(c.as_str());
    }
    s
}

pub fn message(row: &Row<'_>) -> rusqlite::Result<StoredMessage> {
    let channels: String = row.get(4)?;
    let data: String = row.get(5)?;
    Ok(StoredMessage {
        seq: row.get::<_, i64>(0)? as u64,
        id: MessageId::from_trusted(row.get(1)?),
        org_id: OrgId::from_trusted(row.get(2)?),
        event_type: EventType::from_trusted(row.get(3)?),
        channels: channels
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(|s| Channel::from_trusted(s.to_owned()))
            .collect(),
        data: RawValue::from_string(data).map_err(conv_err)?,
        occurred_at: Timestamp::from_micros(row.get(6)?),
        received_at: Timestamp::from_micros(row.get(7)?),
    })
}
