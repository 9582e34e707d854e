//! Coalescing's SQL on PostgreSQL (decisions in `crate::coalesce`). The
//! pending upsert runs in the publish group's transaction and the flush in
//! its own; both hold the cluster-wide log lock, so a publish and a flush of
//! the same key never interleave, and the flush's `DELETE … RETURNING`
//! (with `FOR UPDATE SKIP LOCKED` for good measure) hands each due row to
//! exactly one node, which appends it and commits before the lock passes on.

use marquee_core::ids::{MessageId, OrgId};
use marquee_core::message::{NewMessage, StoredMessage};
use marquee_core::timestamp::Timestamp;
use tokio_postgres::Transaction;
use tokio_postgres::types::Type;

use super::log::LogAppend;
use super::rows;
use crate::coalesce::{self, FlushReport, PendingRow};
use crate::hooks::Hooks;
use crate::{Result, StoreError};

const PENDING_COLUMNS: &str = "org_id, type, message_id, channels, data, occurred_at, due_at";

fn pending_row(r: &tokio_postgres::Row) -> Result<PendingRow> {
    Ok(PendingRow {
        org_id: r.try_get(0)?,
        event_type: r.try_get(1)?,
        message_id: r.try_get(2)?,
        channels: r.try_get(3)?,
        data: r.try_get(4)?,
        occurred_at: r.try_get(5)?,
        due_at: r.try_get(6)?,
    })
}

/// Before any write of the publish: refuses a message that would open a new
/// pending key beyond the organization's cap.
pub async fn admit(tx: &Transaction<'_>, org: &str, m: &NewMessage) -> Result<()> {
    let Some(c) = &m.coalesce else { return Ok(()) };
    let exists = tx
        .query_typed(
            "SELECT 1 FROM coalesce_pending WHERE org_id = $1 AND type = $2 AND key = $3",
            &[
                (&org, Type::TEXT),
                (&m.event_type.as_str(), Type::TEXT),
                (&c.key, Type::TEXT),
            ],
        )
        .await?;
    if !exists.is_empty() {
        return Ok(());
    }
    let n: i64 = tx
        .query_typed(
            "SELECT COUNT(*) FROM coalesce_pending WHERE org_id = $1",
            &[(&org, Type::TEXT)],
        )
        .await?
        .first()
        .map(|r| r.try_get(0))
        .transpose()?
        .unwrap_or(0);
    if n >= coalesce::MAX_PENDING_PER_ORG {
        return Err(coalesce::over_cap());
    }
    Ok(())
}

/// Opens the key's pending row (due one window from now) or replaces its
/// data, channels and `occurred_at`; records the idempotency key, if any.
/// Answers the preview.
pub async fn pend(tx: &Transaction<'_>, org_id: &OrgId, m: NewMessage, now: i64) -> Result<StoredMessage> {
    let Some(c) = m.coalesce.clone() else {
        return Err(StoreError::Internal("pend without a coalesce rule".into()));
    };
    let org = org_id.as_str();
    let channels = m
        .channels
        .iter()
        .map(|c| c.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    let due = now.saturating_add(coalesce::window_micros(c.window_ms));
    let occurred = m.occurred_at.as_micros();
    let row = tx
        .query_typed(
            "INSERT INTO coalesce_pending
                 (org_id, type, key, message_id, channels, data, occurred_at, first_at, due_at, publishes)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 1)
             ON CONFLICT (org_id, type, key) DO UPDATE SET
                 channels = EXCLUDED.channels, data = EXCLUDED.data,
                 occurred_at = EXCLUDED.occurred_at, publishes = coalesce_pending.publishes + 1
             RETURNING message_id, due_at",
            &[
                (&org, Type::TEXT),
                (&m.event_type.as_str(), Type::TEXT),
                (&c.key, Type::TEXT),
                (&m.id.as_str(), Type::TEXT),
                (&channels, Type::TEXT),
                (&m.data.get(), Type::TEXT),
                (&occurred, Type::INT8),
                (&now, Type::INT8),
                (&due, Type::INT8),
            ],
        )
        .await?;
    let row = row
        .first()
        .ok_or_else(|| StoreError::Internal("coalesce upsert returned nothing".into()))?;
    let mut m = m;
    m.id = MessageId::from_trusted(row.try_get(0)?);
    let due: i64 = row.try_get(1)?;
    if let Some(k) = &m.dedup {
        tx.query_typed(
            "INSERT INTO coalesce_pending_keys (message_id, key, window_us) VALUES ($1, $2, $3)
             ON CONFLICT (message_id, key) DO UPDATE SET window_us = EXCLUDED.window_us",
            &[
                (&m.id.as_str(), Type::TEXT),
                (&&k.key[..], Type::BYTEA),
                (&k.window_micros, Type::INT8),
            ],
        )
        .await?;
    }
    if let Some(idem) = &m.idempotency {
        tx.query_typed(
            "INSERT INTO idempotency (org_id, key, fingerprint, seqs, created_at)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (org_id, key) DO UPDATE
               SET fingerprint = EXCLUDED.fingerprint, seqs = EXCLUDED.seqs, created_at = EXCLUDED.created_at",
            &[
                (&org, Type::TEXT),
                (&idem.key, Type::TEXT),
                (&idem.fingerprint.as_slice(), Type::BYTEA),
                (&coalesce::idempotency_marker(&m.id), Type::TEXT),
                (&now, Type::INT8),
            ],
        )
        .await?;
    }
    Ok(coalesce::preview(org_id, m, due))
}

/// An idempotent replay of a coalesced publish: the committed message once
/// its window closed, the pending preview before; `None` once pruned.
pub async fn replay(tx: &Transaction<'_>, org: &str, id: &MessageId) -> Result<Option<StoredMessage>> {
    let stored = tx
        .query_opt(
            &format!(
                "SELECT {} FROM messages WHERE id = $1 AND org_id = $2",
                rows::MESSAGE_COLUMNS
            ),
            &[&id.as_str(), &org],
        )
        .await?;
    if let Some(r) = stored {
        return Ok(Some(rows::message(&r)?));
    }
    let pending = tx
        .query_opt(
            &format!("SELECT {PENDING_COLUMNS} FROM coalesce_pending WHERE message_id = $1 AND org_id = $2"),
            &[&id.as_str(), &org],
        )
        .await?;
    match pending {
        Some(r) => Ok(Some(pending_row(&r)?.preview()?)),
        None => Ok(None),
    }
}

/// The flush: under the log lock, deletes the rows due by `now` (oldest
/// first, at most [`coalesce::FLUSH_BATCH`]), appends them, commits, and
/// announces them like any publish.
pub async fn flush(pool: &deadpool_postgres::Pool, hooks: &Hooks, now: Timestamp) -> Result<FlushReport> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    // Cheap check first: no lock round when nothing is due.
    let due_any = tx
        .query_typed(
            "SELECT 1 FROM coalesce_pending WHERE due_at <= $1 LIMIT 1",
            &[(&now.as_micros(), Type::INT8)],
        )
        .await?;
    let mut committed = Vec::new();
    let mut flushed = 0;
    if !due_any.is_empty() {
        let mut log = LogAppend::begin(&tx, None).await?;
        let rows = tx
            .query_typed(
                &format!(
                    "DELETE FROM coalesce_pending WHERE (org_id, type, key) IN (
                         SELECT org_id, type, key FROM coalesce_pending WHERE due_at <= $1
                         ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED)
                     RETURNING {PENDING_COLUMNS}"
                ),
                &[
                    (&now.as_micros(), Type::INT8),
                    (&(coalesce::FLUSH_BATCH as i64), Type::INT8),
                ],
            )
            .await?;
        let mut due: Vec<PendingRow> = rows.iter().map(pending_row).collect::<Result<_>>()?;
        due.sort_by_key(|r| r.due_at);
        flushed = due.len();
        for row in due {
            let id = row.message_id.clone();
            let (org, m) = row.into_message()?;
            let stored = log.append(&tx, &org, m).await?;
            // The window's publishes' dedup keys now name the committed message.
            tx.query_typed(
                "INSERT INTO dedup (org_id, key, seq, expires_at)
                 SELECT $1, key, $2, CASE WHEN window_us IS NULL THEN NULL
                   WHEN window_us > 9223372036854775807 - $3 THEN 9223372036854775807 ELSE $3 + window_us END
                 FROM coalesce_pending_keys WHERE message_id = $4
                 ON CONFLICT (org_id, key) DO UPDATE SET seq = EXCLUDED.seq, expires_at = EXCLUDED.expires_at",
                &[
                    (&org.as_str(), Type::TEXT),
                    (&(stored.seq as i64), Type::INT8),
                    (&stored.received_at.as_micros(), Type::INT8),
                    (&id.as_str(), Type::TEXT),
                ],
            )
            .await?;
            tx.query_typed(
                "DELETE FROM coalesce_pending_keys WHERE message_id = $1",
                &[(&id.as_str(), Type::TEXT)],
            )
            .await?;
        }
        committed = log.finish(&tx).await?.0;
    }
    let next: Option<i64> = tx
        .query_typed("SELECT MIN(due_at) FROM coalesce_pending", &[])
        .await?
        .first()
        .map(|r| r.try_get(0))
        .transpose()?
        .flatten();
    tx.commit().await?;
    if !committed.is_empty() {
        hooks.announce(None, Vec::new(), &committed);
    }
    Ok(FlushReport {
        flushed,
        next_due: next.map(Timestamp::from_micros),
    })
}
