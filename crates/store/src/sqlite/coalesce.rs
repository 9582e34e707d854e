//! Coalescing's SQL on SQLite (decisions in `crate::coalesce`): the pending
//! upsert of the publish job, and the flush job that appends due rows
//! through the ordinary log append. Both run on the single writer thread, so
//! a publish and a flush of the same key never interleave.

use marquee_core::ids::{MessageId, OrgId};
use marquee_core::message::{NewMessage, StoredMessage};
use marquee_core::timestamp::Timestamp;
use rusqlite::{Connection, OptionalExtension, params};

use super::log::{append, received_now};
use super::rows;
use super::writer::Ctx;
use crate::Result;
use crate::coalesce::{self, FlushReport, PendingRow};

const PENDING_COLUMNS: &str = "org_id, type, message_id, channels, data, occurred_at, due_at";

fn pending_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<PendingRow> {
    Ok(PendingRow {
        org_id: r.get(0)?,
        event_type: r.get(1)?,
        message_id: r.get(2)?,
        channels: r.get(3)?,
        data: r.get(4)?,
        occurred_at: r.get(5)?,
        due_at: r.get(6)?,
    })
}

/// Phase 1 of the publish job (before any write): refuses a message that
/// would open a new pending key beyond the organization's cap.
pub fn admit(conn: &Connection, org: &str, m: &NewMessage) -> Result<()> {
    let Some(c) = &m.coalesce else { return Ok(()) };
    let exists: Option<i64> = conn
        .prepare_cached("SELECT 1 FROM coalesce_pending WHERE org_id = ?1 AND type = ?2 AND key = ?3")?
        .query_row(params![org, m.event_type.as_str(), c.key], |r| r.get(0))
        .optional()?;
    if exists.is_some() {
        return Ok(());
    }
    let n: i64 = conn
        .prepare_cached("SELECT COUNT(*) FROM coalesce_pending WHERE org_id = ?1")?
        .query_row([org], |r| r.get(0))?;
    if n >= coalesce::MAX_PENDING_PER_ORG {
        return Err(coalesce::over_cap());
    }
    Ok(())
}

/// Holds a coalesced message: opens its key's pending row (due one window
/// from now) or replaces the row's data, channels and `occurred_at` with
/// this publish's. Answers the preview (the eventual id and due time).
pub fn pend(ctx: &mut Ctx<'_>, org_id: &OrgId, m: NewMessage, now: i64) -> Result<StoredMessage> {
    let Some(c) = m.coalesce.clone() else {
        return Err(crate::StoreError::Internal("pend without a coalesce rule".into()));
    };
    let org = org_id.as_str();
    let (id, due): (String, i64) = ctx
        .conn
        .prepare_cached(
            "INSERT INTO coalesce_pending
                 (org_id, type, key, message_id, channels, data, occurred_at, first_at, due_at, publishes)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 1)
             ON CONFLICT (org_id, type, key) DO UPDATE SET
                 channels = excluded.channels, data = excluded.data,
                 occurred_at = excluded.occurred_at, publishes = publishes + 1
             RETURNING message_id, due_at",
        )?
        .query_row(
            params![
                org,
                m.event_type.as_str(),
                c.key,
                m.id.as_str(),
                rows::join_channels(&m.channels),
                m.data.get(),
                m.occurred_at.as_micros(),
                now,
                now.saturating_add(coalesce::window_micros(c.window_ms)),
            ],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
    let mut m = m;
    m.id = MessageId::from_trusted(id);
    if let Some(k) = &m.dedup {
        ctx.conn
            .prepare_cached(
                "INSERT OR REPLACE INTO coalesce_pending_keys (message_id, key, window_us) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![m.id.as_str(), &k.key[..], k.window_micros])?;
    }
    if let Some(idem) = &m.idempotency {
        ctx.conn
            .prepare_cached(
                "INSERT OR REPLACE INTO idempotency (org_id, key, fingerprint, seqs, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                org,
                idem.key,
                &idem.fingerprint[..],
                coalesce::idempotency_marker(&m.id),
                now
            ])?;
    }
    Ok(coalesce::preview(org_id, m, due))
}

/// An idempotent replay of a coalesced publish: the committed message once
/// its window closed, the pending preview before; `None` once pruned.
pub fn replay(conn: &Connection, org: &str, id: &MessageId) -> Result<Option<StoredMessage>> {
    let stored = conn
        .prepare_cached(&format!(
            "SELECT {} FROM messages WHERE id = ?1 AND org_id = ?2",
            rows::MESSAGE_COLUMNS
        ))?
        .query_row(params![id.as_str(), org], rows::message)
        .optional()?;
    if stored.is_some() {
        return Ok(stored);
    }
    let row = conn
        .prepare_cached(&format!(
            "SELECT {PENDING_COLUMNS} FROM coalesce_pending WHERE message_id = ?1 AND org_id = ?2"
        ))?
        .query_row(params![id.as_str(), org], pending_row)
        .optional()?;
    row.map(|r| r.preview()).transpose()
}

/// The flush job: appends the rows due by `now` (oldest first, at most
/// [`coalesce::FLUSH_BATCH`]) and deletes them, in this one transaction.
pub fn flush(ctx: &mut Ctx<'_>, now: Timestamp) -> Result<FlushReport> {
    let due: Vec<PendingRow> = ctx
        .conn
        .prepare_cached(&format!(
            "SELECT {PENDING_COLUMNS} FROM coalesce_pending WHERE due_at <= ?1 ORDER BY due_at LIMIT ?2"
        ))?
        .query_map(
            params![now.as_micros(), coalesce::FLUSH_BATCH as i64],
            pending_row,
        )?
        .collect::<rusqlite::Result<_>>()?;
    let flushed = due.len();
    if flushed > 0 {
        let received = received_now(ctx);
        for row in due {
            let id = row.message_id.clone();
            let (org, m) = row.into_message()?;
            ctx.endpoints_for(org.as_str())?;
            let stored = append(ctx, &org, m, received)?;
            // The window's publishes' dedup keys now name the committed message.
            ctx.conn
                .prepare_cached(
                    "INSERT OR REPLACE INTO dedup (org_id, key, seq, expires_at)
                     SELECT ?1, key, ?2, CASE WHEN window_us IS NULL THEN NULL
                       WHEN window_us > 9223372036854775807 - ?3 THEN 9223372036854775807 ELSE ?3 + window_us END
                     FROM coalesce_pending_keys WHERE message_id = ?4",
                )?
                .execute(params![org.as_str(), stored.seq as i64, received, id])?;
            ctx.conn
                .prepare_cached("DELETE FROM coalesce_pending_keys WHERE message_id = ?1")?
                .execute([&id])?;
            ctx.conn
                .prepare_cached("DELETE FROM coalesce_pending WHERE message_id = ?1")?
                .execute([id])?;
        }
    }
    let next: Option<i64> = ctx
        .conn
        .query_row("SELECT MIN(due_at) FROM coalesce_pending", [], |r| r.get(0))?;
    Ok(FlushReport {
        flushed,
        next_due: next.map(Timestamp::from_micros),
    })
}
