//! Deliveries: re-queued by resend and replay, and claimed with `FOR UPDATE
//! SKIP LOCKED` under leases (they are created by the log append,
//! `postgres/log.rs`).

use std::collections::HashMap;
use std::sync::Arc;

use marquee_core::ids::DeliveryId;
use marquee_core::message::StoredMessage;
use marquee_core::timestamp::Timestamp;
use tokio_postgres::Transaction;
use tokio_postgres::types::Type;

use super::*;
use crate::postgres::log::endpoints_for_publish;
use crate::{Result, StoreError};

/// Queues (or re-queues) deliveries, each `(endpoint, seq, message id)`,
/// in one statement: a re-queued one restarts its schedule.
pub(super) async fn upsert_deliveries(
    tx: &Transaction<'_>,
    org: &str,
    rows: &[(&str, i64, &str)],
    now: i64,
) -> Result<u64> {
    if rows.is_empty() {
        return Ok(0);
    }
    let ids: Vec<String> = rows
        .iter()
        .map(|_| DeliveryId::generate().as_str().to_owned())
        .collect();
    let endpoints: Vec<&str> = rows.iter().map(|r| r.0).collect();
    let seqs: Vec<i64> = rows.iter().map(|r| r.1).collect();
    let messages: Vec<&str> = rows.iter().map(|r| r.2).collect();
    tx.query_typed(
        "INSERT INTO deliveries (id, org_id, endpoint_id, seq, message_id, state, next_at, created_at, updated_at)
         SELECT d, $1, e, s, m, 'pending', $2, $2, $2
         FROM unnest($3::text[], $4::text[], $5::int8[], $6::text[]) AS u(d, e, s, m)
         ON CONFLICT (endpoint_id, seq) DO UPDATE SET state = 'pending', attempts = 0,
             next_at = LEAST(deliveries.next_at, excluded.next_at), updated_at = excluded.updated_at",
        &[
            (&org, Type::TEXT),
            (&now, Type::INT8),
            (&ids, Type::TEXT_ARRAY),
            (&endpoints, Type::TEXT_ARRAY),
            (&seqs, Type::INT8_ARRAY),
            (&messages, Type::TEXT_ARRAY),
        ],
    )
    .await?;
    Ok(rows.len() as u64)
}

/// Claims for one endpoint (one statement, autocommit).
pub(super) async fn claim_one(
    c: &deadpool_postgres::Client,
    req: &ClaimRequest,
    now: i64,
    lease_until: i64,
    out: &mut Vec<ClaimedDelivery>,
) -> Result<()> {
    let ep = req.endpoint_id.as_str();
    let found = if req.ordered {
        let st = c
            .prepare_cached(
                "WITH head AS (
                     SELECT id, next_at, claimed_until FROM deliveries
                     WHERE endpoint_id = $1 AND state = 'pending'
                     ORDER BY seq LIMIT 1 FOR UPDATE
                 )
                 UPDATE deliveries d SET claimed_until = $3 FROM head
                 WHERE d.id = head.id AND head.next_at <= $2
                   AND (head.claimed_until IS NULL OR head.claimed_until < $2)
                 RETURNING d.id, d.seq, d.attempts, d.attempt_count, d.next_at",
            )
            .await?;
        c.query(&st, &[&ep, &now, &lease_until]).await?
    } else {
        let st = c
            .prepare_cached(
                "WITH c AS (
                     SELECT id FROM deliveries
                     WHERE endpoint_id = $1 AND state = 'pending' AND next_at <= $2
                       AND (claimed_until IS NULL OR claimed_until < $2)
                     ORDER BY next_at LIMIT $3
                     FOR UPDATE SKIP LOCKED
                 )
                 UPDATE deliveries d SET claimed_until = $4 FROM c WHERE d.id = c.id
                 RETURNING d.id, d.seq, d.attempts, d.attempt_count, d.next_at",
            )
            .await?;
        c.query(&st, &[&ep, &now, &(req.limit as i64), &lease_until])
            .await?
    };
    if found.is_empty() {
        return Ok(());
    }
    let mut leased: Vec<(i64, String, i64, i64, i64)> = found
        .iter()
        .map(|r| -> Result<_> {
            Ok((
                r.try_get::<_, i64>(4)?,
                r.try_get::<_, String>(0)?,
                r.try_get::<_, i64>(1)?,
                r.try_get::<_, i64>(2)?,
                r.try_get::<_, i64>(3)?,
            ))
        })
        .collect::<Result<_>>()?;
    leased.sort();
    let seqs: Vec<i64> = leased.iter().map(|l| l.2).collect();
    let st = c
        .prepare_cached(&format!(
            "SELECT {} FROM messages WHERE seq = ANY($1)",
            rows::MESSAGE_COLUMNS
        ))
        .await?;
    let mut messages: HashMap<u64, StoredMessage> = HashMap::new();
    for r in c.query(&st, &[&seqs]).await? {
        let m = rows::message(&r)?;
        messages.insert(m.seq, m);
    }
    let mut gone: Vec<String> = Vec::new();
    for (_, id, seq, attempts, count) in leased {
        match messages.remove(&(seq as u64)) {
            Some(message) => out.push(ClaimedDelivery {
                id: DeliveryId::from_trusted(id),
                endpoint_id: req.endpoint_id.clone(),
                attempts: attempts.clamp(0, u32::MAX as i64) as u32,
                attempt_count: count.clamp(0, u32::MAX as i64) as u32,
                message: Arc::new(message),
                lease_until: Timestamp::from_micros(lease_until),
            }),
            // The message was pruned by retention: nothing left to deliver.
            None => gone.push(id),
        }
    }
    if !gone.is_empty() {
        // Settled and counted in one statement (one autocommit transaction).
        c.execute(
            "WITH g AS (
                 UPDATE deliveries SET state = 'exhausted', claimed_until = NULL, updated_at = $2
                 WHERE id = ANY($1) AND state = 'pending' RETURNING endpoint_id)
             INSERT INTO endpoint_counters (endpoint_id, delivered, exhausted)
                 SELECT endpoint_id, 0, COUNT(*) FROM g GROUP BY endpoint_id
             ON CONFLICT (endpoint_id) DO UPDATE SET
                 exhausted = endpoint_counters.exhausted + EXCLUDED.exhausted",
            &[&gone, &now],
        )
        .await?;
    }
    Ok(())
}

pub(super) async fn replay_tx(
    tx: &Transaction<'_>,
    org: &str,
    endpoint: &str,
    from: ReplayFrom,
    chunk: usize,
) -> Result<ReplayProgress> {
    let ep = load_endpoint(tx, org, endpoint)
        .await?
        .ok_or(StoreError::NotFound)?;
    let after: i64 = match from {
        ReplayFrom::AfterSeq(s) => s.min(i64::MAX as u64) as i64,
        ReplayFrom::Since(t) => {
            let first: Option<i64> = tx
                .query_one(
                    "SELECT MIN(seq) FROM messages WHERE received_at >= $1",
                    &[&t.as_micros()],
                )
                .await?
                .try_get(0)?;
            match first {
                Some(s) => s - 1,
                None => {
                    return Ok(ReplayProgress {
                        queued: 0,
                        next: None,
                    });
                }
            }
        }
    };
    let found = tx
        .query(
            "SELECT seq, id, type, channels FROM messages WHERE org_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
            &[&org, &after, &(chunk as i64)],
        )
        .await?;
    let mut matched: Vec<(i64, String)> = Vec::new();
    let mut last = None;
    for r in &found {
        let (seq, id, ty, channels): (i64, String, String, String) =
            (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?);
        last = Some(seq as u64);
        if ep.filter.matches(&ty, &split_channels(&channels)) {
            matched.push((seq, id));
        }
    }
    // The endpoint lock (taken before touching its deliveries, as by the
    // recorder) is held only for one statement and the commit.
    lock_endpoints(tx, &[endpoint]).await?;
    let rows: Vec<(&str, i64, &str)> = matched
        .iter()
        .map(|(s, id)| (endpoint, *s, id.as_str()))
        .collect();
    let queued = upsert_deliveries(tx, org, &rows, Timestamp::now().as_micros()).await?;
    Ok(ReplayProgress {
        queued,
        next: if found.len() < chunk { None } else { last },
    })
}

/// Locks endpoint rows (`FOR NO KEY UPDATE`, id order) before a statement
/// that touches their deliveries: the lock order `record_tx` uses, so the
/// two never wait on each other in a cycle.
pub(super) async fn lock_endpoints(tx: &Transaction<'_>, ids: &[&str]) -> Result<()> {
    let mut ids = ids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    tx.query_typed(
        "SELECT 1 FROM endpoints WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE",
        &[(&ids, Type::TEXT_ARRAY)],
    )
    .await?;
    Ok(())
}

pub(super) async fn resend_tx(
    tx: &Transaction<'_>,
    org: &str,
    message: &str,
    endpoint: Option<&str>,
) -> Result<u64> {
    let row = tx
        .query_opt(
            "SELECT seq, type, channels FROM messages WHERE id = $1 AND org_id = $2",
            &[&message, &org],
        )
        .await?
        .ok_or(StoreError::NotFound)?;
    let (seq, ty, channels): (i64, String, String) = (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
    let now = Timestamp::now().as_micros();
    match endpoint {
        Some(ep) => {
            load_endpoint(tx, org, ep).await?.ok_or(StoreError::NotFound)?;
            lock_endpoints(tx, &[ep]).await?;
            upsert_deliveries(tx, org, &[(ep, seq, message)], now).await
        }
        None => {
            let chans = split_channels(&channels);
            let eps = endpoints_for_publish(tx, org).await?;
            let ids: Vec<&str> = eps.iter().map(|e| e.id.as_str()).collect();
            lock_endpoints(tx, &ids).await?;
            let rows: Vec<(&str, i64, &str)> = eps
                .iter()
                .filter(|e| e.filter.matches(&ty, &chans))
                .map(|e| (e.id.as_str(), seq, message))
                .collect();
            upsert_deliveries(tx, org, &rows, now).await
        }
    }
}
