//! Deliveries: re-queued by resend and replay, and claimed under leases
//! (they are created by the log append, `sqlite/log.rs`).

use std::sync::Arc;

use marquee_core::ids::{DeliveryId, MessageId, OrgId};
use marquee_core::names::Channel;
use marquee_core::timestamp::Timestamp;
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde_json::value::RawValue;

use super::*;
use crate::sqlite::endpoints::endpoints_for_publish;
use crate::webhooks::*;
use crate::{Result, StoreError};

/// Queues (or re-queues) the delivery of message `seq` to `endpoint`.
pub(super) fn upsert_delivery(
    conn: &Connection,
    org: &str,
    endpoint: &str,
    seq: i64,
    message_id: &str,
    now: i64,
) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO deliveries (id, org_id, endpoint_id, seq, message_id, state, next_at, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?6, ?6, ?6)
         ON CONFLICT(endpoint_id, seq) DO UPDATE SET state = 'pending', attempts = 0,
             next_at = MIN(next_at, excluded.next_at), updated_at = excluded.updated_at",
    )?
    .execute(params![DeliveryId::generate().as_str(), org, endpoint, seq, message_id, now])?;
    Ok(())
}

pub(super) fn claim_one(
    conn: &Connection,
    req: &ClaimRequest,
    now: i64,
    lease_until: i64,
    out: &mut Vec<ClaimedDelivery>,
) -> Result<()> {
    let cols = format!(
        "d.id, d.attempts, d.attempt_count, d.next_at, d.claimed_until, m.{}",
        rows::MESSAGE_COLUMNS.replace(", ", ", m.")
    );
    let sql = if req.ordered {
        format!(
            "SELECT {cols} FROM deliveries d LEFT JOIN messages m ON m.seq = d.seq
             WHERE d.endpoint_id = ?1 AND d.state = 'pending' ORDER BY d.seq LIMIT 1"
        )
    } else {
        format!(
            "SELECT {cols} FROM deliveries d LEFT JOIN messages m ON m.seq = d.seq
             WHERE d.endpoint_id = ?1 AND d.state = 'pending' AND d.next_at <= ?2
               AND (d.claimed_until IS NULL OR d.claimed_until < ?2)
             ORDER BY d.next_at LIMIT ?3"
        )
    };
    let mut st = conn.prepare_cached(&sql)?;
    type Row5 = (
        String,
        i64,
        i64,
        i64,
        Option<i64>,
        Option<rusqlite::Result<marquee_core::message::StoredMessage>>,
    );
    let map = |r: &Row<'_>| -> rusqlite::Result<Row5> {
        let has_msg = r.get::<_, Option<i64>>(5)?.is_some();
        Ok((
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            has_msg.then(|| message_at(r, 5)),
        ))
    };
    let found: Vec<Row5> = if req.ordered {
        st.query_map([req.endpoint_id.as_str()], map)?
            .collect::<rusqlite::Result<_>>()?
    } else {
        st.query_map(params![req.endpoint_id.as_str(), now, req.limit as i64], map)?
            .collect::<rusqlite::Result<_>>()?
    };
    let mut lease = conn.prepare_cached("UPDATE deliveries SET claimed_until = ?2 WHERE id = ?1")?;
    let mut gone = conn.prepare_cached(
        "UPDATE deliveries SET state = 'exhausted', claimed_until = NULL, updated_at = ?2 WHERE id = ?1",
    )?;
    for (id, attempts, count, next_at, claimed, msg) in found {
        if req.ordered && (next_at > now || claimed.is_some_and(|c| c >= now)) {
            continue;
        }
        match msg {
            Some(Ok(message)) => {
                lease.execute(params![id, lease_until])?;
                out.push(ClaimedDelivery {
                    id: DeliveryId::from_trusted(id),
                    endpoint_id: req.endpoint_id.clone(),
                    attempts: attempts.max(0) as u32,
                    attempt_count: count.max(0) as u32,
                    message: Arc::new(message),
                    lease_until: Timestamp::from_micros(lease_until),
                });
            }
            // A row that cannot be read back can never be delivered: settle
            // it rather than fail the claim (which, after the leases above,
            // would fail the whole group).
            Some(Err(e)) => {
                tracing::error!(delivery = %id, error = %e, "undecodable message row; marking its delivery exhausted");
                let n = gone.execute(params![id, now])?;
                bump_counters(conn, req.endpoint_id.as_str(), 0, n as i64)?;
            }
            // The message was pruned by retention: nothing left to deliver.
            None => {
                let n = gone.execute(params![id, now])?;
                bump_counters(conn, req.endpoint_id.as_str(), 0, n as i64)?;
            }
        }
    }
    Ok(())
}

/// Reads message columns starting at `offset` (the claim join).
pub(super) fn message_at(
    r: &Row<'_>,
    offset: usize,
) -> rusqlite::Result<marquee_core::message::StoredMessage> {
    let channels: String = r.get(offset + 4)?;
    let data: String = r.get(offset + 5)?;
    Ok(marquee_core::message::StoredMessage {
        seq: r.get::<_, i64>(offset)? as u64,
        id: MessageId::from_trusted(r.get(offset + 1)?),
        org_id: OrgId::from_trusted(r.get(offset + 2)?),
        event_type: marquee_core::names::EventType::from_trusted(r.get(offset + 3)?),
        channels: channels
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(|s| Channel::from_trusted(s.to_owned()))
            .collect(),
        data: RawValue::from_string(data).map_err(|_| conv_err("stored data is not JSON"))?,
        occurred_at: Timestamp::from_micros(r.get(offset + 6)?),
        received_at: Timestamp::from_micros(r.get(offset + 7)?),
    })
}

pub(super) fn replay(
    ctx: &mut writer::Ctx<'_>,
    org: &str,
    endpoint: &str,
    from: ReplayFrom,
    chunk: usize,
) -> Result<ReplayProgress> {
    let conn = ctx.conn;
    let ep = load_endpoint(conn, org, endpoint)?.ok_or(StoreError::NotFound)?;
    let after: i64 = match from {
        ReplayFrom::AfterSeq(s) => s as i64,
        ReplayFrom::Since(t) => match crate::sqlite::reader::first_seq_received_since(conn, t.as_micros())? {
            Some(s) => s - 1,
            None => {
                return Ok(ReplayProgress {
                    queued: 0,
                    next: None,
                });
            }
        },
    };
    let found: Vec<(i64, String, String, String)> = conn
        .prepare_cached(
            "SELECT seq, id, type, channels FROM messages WHERE org_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
        )?
        .query_map(params![org, after, chunk as i64], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let now = Timestamp::now().as_micros();
    let mut queued = 0;
    let mut last = None;
    for (seq, id, ty, channels) in &found {
        last = Some(*seq as u64);
        let chans: Vec<Channel> = channels
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(|s| Channel::from_trusted(s.to_owned()))
            .collect();
        if ep.filter.matches(ty, &chans) {
            upsert_delivery(conn, org, endpoint, *seq, id, now)?;
            queued += 1;
        }
    }
    Ok(ReplayProgress {
        queued,
        next: if found.len() < chunk { None } else { last },
    })
}

pub(super) fn resend(
    ctx: &mut writer::Ctx<'_>,
    org: &str,
    message: &str,
    endpoint: Option<&str>,
) -> Result<u64> {
    let conn = ctx.conn;
    let row: Option<(i64, String, String)> = conn
        .prepare_cached("SELECT seq, type, channels FROM messages WHERE id = ?1 AND org_id = ?2")?
        .query_row([message, org], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let (seq, ty, channels) = row.ok_or(StoreError::NotFound)?;
    let now = Timestamp::now().as_micros();
    match endpoint {
        Some(ep) => {
            load_endpoint(conn, org, ep)?.ok_or(StoreError::NotFound)?;
            upsert_delivery(conn, org, ep, seq, message, now)?;
            Ok(1)
        }
        None => {
            let chans: Vec<Channel> = channels
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(|s| Channel::from_trusted(s.to_owned()))
                .collect();
            let mut n = 0;
            for ep in endpoints_for_publish(conn, org)? {
                if ep.filter.matches(&ty, &chans) {
                    upsert_delivery(conn, org, ep.id.as_str(), seq, message, now)?;
                    n += 1;
                }
            }
            Ok(n)
        }
    }
}
