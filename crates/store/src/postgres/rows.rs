//! Row ↔ model conversions for PostgreSQL.

use marquee_core::ids::{KeyId, MessageId, OrgId};
use marquee_core::message::StoredMessage;
use marquee_core::names::{Channel, EventType};
use marquee_core::timestamp::Timestamp;
use serde_json::value::RawValue;
use tokio_postgres::Row;

use crate::{ApiKeyRecord, EventTypeRecord, Org, Result, StoreError};

pub const KEY_COLUMNS: &str =
    "id, org_id, tier, name, public_prefix, created_at, revoked_at, max_stream_connections";
pub const ORG_COLUMNS: &str = "id, name, created_at, profiles";
pub const EVENT_TYPE_COLUMNS: &str = "name, description, schema, created_at, updated_at, rules";
pub const MESSAGE_COLUMNS: &str = "seq, id, org_id, type, channels, data, occurred_at, received_at";

pub fn org(r: &Row) -> Result<Org> {
    Ok(Org {
        id: OrgId::from_trusted(r.try_get(0)?),
        name: r.try_get(1)?,
        created_at: Timestamp::from_micros(r.try_get(2)?),
        profiles: r.try_get(3)?,
    })
}

pub fn event_type(r: &Row) -> Result<EventTypeRecord> {
    Ok(EventTypeRecord {
        name: r.try_get(0)?,
        description: r.try_get(1)?,
        schema: r.try_get(2)?,
        created_at: Timestamp::from_micros(r.try_get(3)?),
        updated_at: Timestamp::from_micros(r.try_get(4)?),
        rules: r.try_get(5)?,
    })
}

pub fn key(r: &Row) -> Result<ApiKeyRecord> {
    let tier: String = r.try_get(2)?;
    Ok(ApiKeyRecord {
        id: KeyId::from_trusted(r.try_get(0)?),
        org_id: OrgId::from_trusted(r.try_get(1)?),
        tier: tier
            .parse()
            .map_err(|e: marquee_core::tier::UnknownTier| StoreError::Internal(e.to_string()))?,
        name: r.try_get(3)?,
        public_prefix: r.try_get(4)?,
        created_at: Timestamp::from_micros(r.try_get(5)?),
        revoked_at: r.try_get::<_, Option<i64>>(6)?.map(Timestamp::from_micros),
        max_stream_connections: r
            .try_get::<_, Option<i64>>(7)?
            .map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
    })
}

pub fn message(r: &Row) -> Result<StoredMessage> {
    let channels: String = r.try_get(4)?;
    let data: String = r.try_get(5)?;
    Ok(StoredMessage {
        seq: r.try_get::<_, i64>(0)? as u64,
        id: MessageId::from_trusted(r.try_get(1)?),
        org_id: OrgId::from_trusted(r.try_get(2)?),
        event_type: EventType::from_trusted(r.try_get(3)?),
        channels: channels
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(|s| Channel::from_trusted(s.to_owned()))
            .collect(),
        data: RawValue::from_string(data).map_err(|e| StoreError::Internal(e.to_string()))?,
        occurred_at: Timestamp::from_micros(r.try_get(6)?),
        received_at: Timestamp::from_micros(r.try_get(7)?),
    })
}
