//! Erasure on PostgreSQL: the erasure rows and the bounded step transaction.
//! What a step deletes and why is in `crate::erasure`; this file is only its
//! SQL. Steps take no log lock (deleting never moves the log head), and the
//! lease is taken with `FOR UPDATE SKIP LOCKED`, so on a cluster one node
//! works an erasure at a time.

use std::collections::HashSet;

use deadpool_postgres::Pool;
use marquee_core::ids::{ErasureId, OrgId};
use marquee_core::timestamp::Timestamp;
use tokio_postgres::Row;
use tokio_postgres::types::Type;

use crate::erasure::{self, ErasureRecord, ErasureStatus, ErasureStep};
use crate::{Result, StoreError};

const COLUMNS: &str = "id, org_id, channel, within, status, messages_erased, messages_total, \
                       through_seq, done_through, created_at, completed_at";

fn record(r: &Row) -> Result<ErasureRecord> {
    let n = |i: usize| -> Result<u64> { Ok(r.try_get::<_, i64>(i)?.max(0) as u64) };
    Ok(ErasureRecord {
        id: ErasureId::from_trusted(r.try_get(0)?),
        org_id: OrgId::from_trusted(r.try_get(1)?),
        channel: r.try_get(2)?,
        within: r.try_get(3)?,
        status: ErasureStatus::parse(r.try_get::<_, &str>(4)?),
        messages_erased: n(5)?,
        messages_total: n(6)?,
        through_seq: n(7)?,
        cursor: n(8)?,
        created_at: Timestamp::from_micros(r.try_get(9)?),
        completed_at: r.try_get::<_, Option<i64>>(10)?.map(Timestamp::from_micros),
    })
}

pub async fn create(pool: &Pool, org: &OrgId, channel: &str, within: Option<&str>) -> Result<ErasureRecord> {
    let c = pool.get().await?;
    let through: i64 = c
        .query_one("SELECT seq FROM log_head WHERE id = 1", &[])
        .await?
        .get(0);
    let total: i64 = match within {
        None => c
            .query_one(
                "SELECT COUNT(*) FROM message_channels WHERE org_id = $1 AND channel = $2 AND seq <= $3",
                &[&org.as_str(), &channel, &through],
            )
            .await?
            .get(0),
        Some(w) => c
            .query_one(
                "SELECT COUNT(*) FROM message_channels mc WHERE mc.org_id = $1 AND mc.channel = $2 AND mc.seq <= $3
                 AND EXISTS (SELECT 1 FROM message_channels w WHERE w.org_id = $1 AND w.channel = $4 AND w.seq = mc.seq)",
                &[&org.as_str(), &channel, &through, &w],
            )
            .await?
            .get(0),
    };
    let id = ErasureId::generate();
    let now = Timestamp::now().as_micros();
    let mut c = c;
    let tx = c.transaction().await?;
    // Open coalescing windows on the channel hold its data published before
    // now: dropped with the erasure's acceptance, under the log lock that
    // publishes and flushes take, in one statement.
    tx.execute(super::log::LOG_LOCK, &[]).await?;
    let on = |ch: &str| format!(" {ch} ");
    let w = within.map_or_else(String::new, on);
    tx.execute(
        "WITH gone AS (
             DELETE FROM coalesce_pending WHERE org_id = $1
               AND strpos(' ' || channels || ' ', $2) > 0 AND ($3 = '' OR strpos(' ' || channels || ' ', $3) > 0)
             RETURNING message_id)
         DELETE FROM coalesce_pending_keys WHERE message_id IN (SELECT message_id FROM gone)",
        &[&org.as_str(), &on(channel), &w],
    )
    .await?;
    let r = tx
        .query_one(
            &format!(
                "INSERT INTO erasures (id, org_id, channel, within, status, messages_total, through_seq, created_at)
                 VALUES ($1, $2, $3, $4, 'running', $5, $6, $7) RETURNING {COLUMNS}"
            ),
            &[&id.as_str(), &org.as_str(), &channel, &within, &total, &through, &now],
        )
        .await?;
    tx.commit().await?;
    record(&r)
}

pub async fn get(pool: &Pool, org: &OrgId, id: &ErasureId) -> Result<Option<ErasureRecord>> {
    let c = pool.get().await?;
    c.query_opt(
        &format!("SELECT {COLUMNS} FROM erasures WHERE id = $1 AND org_id = $2"),
        &[&id.as_str(), &org.as_str()],
    )
    .await?
    .as_ref()
    .map(record)
    .transpose()
}

pub async fn list(
    pool: &Pool,
    org: &OrgId,
    before: Option<&ErasureId>,
    limit: usize,
) -> Result<(Vec<ErasureRecord>, bool)> {
    let c = pool.get().await?;
    let before = before.map_or("era_~", |b| b.as_str());
    let rows = c
        .query(
            &format!(
                "SELECT {COLUMNS} FROM erasures WHERE org_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3"
            ),
            &[&org.as_str(), &before, &(limit as i64 + 1)],
        )
        .await?;
    let mut v = rows.iter().map(record).collect::<Result<Vec<_>>>()?;
    let more = v.len() > limit;
    v.truncate(limit);
    Ok((v, more))
}

pub async fn claim(pool: &Pool, token: &str, lease_micros: i64) -> Result<Option<ErasureRecord>> {
    let c = pool.get().await?;
    let now = Timestamp::now().as_micros();
    c.query_opt(
        &format!(
            "UPDATE erasures SET lease_token = $2, lease_until = $3 WHERE id = (
                 SELECT id FROM erasures WHERE status = 'running'
                   AND (lease_until IS NULL OR lease_until < $1 OR lease_token = $2)
                 ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
             RETURNING {COLUMNS}"
        ),
        &[&now, &token, &now.saturating_add(lease_micros)],
    )
    .await?
    .as_ref()
    .map(record)
    .transpose()
}

pub async fn step(
    pool: &Pool,
    id: &ErasureId,
    token: &str,
    lease_micros: i64,
    limit: usize,
) -> Result<Option<ErasureStep>> {
    let mut c = pool.get().await?;
    let tx = c.transaction().await?;
    let Some(row) = tx
        .query_opt(
            &format!(
                "SELECT {COLUMNS} FROM erasures WHERE id = $1 AND status = 'running' AND lease_token = $2
                 FOR UPDATE"
            ),
            &[&id.as_str(), &token],
        )
        .await?
    else {
        return Ok(None);
    };
    let rec = record(&row)?;
    let org = rec.org_id.as_str();
    let candidates: Vec<i64> = tx
        .query(
            "SELECT seq FROM message_channels WHERE org_id = $1 AND channel = $2
               AND seq > $3 AND seq <= $4 ORDER BY seq LIMIT $5",
            &[
                &org,
                &rec.channel,
                &(rec.cursor as i64),
                &(rec.through_seq as i64),
                &(limit as i64),
            ],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let victims: Vec<i64> = match &rec.within {
        None => candidates.clone(),
        Some(w) => tx
            .query(
                "SELECT seq FROM message_channels WHERE org_id = $1 AND channel = $2 AND seq = ANY($3) ORDER BY seq",
                &[&org, w, &candidates],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect(),
    };
    let now = Timestamp::now();
    let gone = tx
        .query(
            "DELETE FROM messages WHERE seq = ANY($1) AND org_id = $2 RETURNING seq, id, channels, received_at",
            &[&victims, &org],
        )
        .await?;
    let mut erased: Vec<i64> = Vec::with_capacity(gone.len());
    let mut ids: Vec<String> = Vec::with_capacity(gone.len());
    let mut received: Vec<i64> = Vec::with_capacity(gone.len());
    let (mut ch_names, mut ch_seqs): (Vec<String>, Vec<i64>) = (Vec::new(), Vec::new());
    for r in &gone {
        let seq: i64 = r.get(0);
        erased.push(seq);
        ids.push(r.get(1));
        received.push(r.get(3));
        for ch in r.get::<_, &str>(2).split(' ').filter(|c| !c.is_empty()) {
            ch_names.push(ch.to_owned());
            ch_seqs.push(seq);
        }
    }
    // The erased channel's own entries, also of messages retention took.
    for s in &victims {
        ch_names.push(rec.channel.clone());
        ch_seqs.push(*s);
    }
    tx.query_typed(
        "DELETE FROM message_channels WHERE org_id = $1
           AND (channel, seq) IN (SELECT * FROM unnest($2::text[], $3::int8[]))",
        &[
            (&org, Type::TEXT),
            (&ch_names, Type::TEXT_ARRAY),
            (&ch_seqs, Type::INT8_ARRAY),
        ],
    )
    .await?;
    if !erased.is_empty() {
        tx.execute(
            "DELETE FROM deliveries d USING endpoints e WHERE e.org_id = $1 AND d.endpoint_id = e.id AND d.seq = ANY($2)",
            &[&org, &erased],
        )
        .await?;
        tx.execute("DELETE FROM attempts WHERE message_id = ANY($1)", &[&ids])
            .await?;
        for sql in erasure::derived_deletes("ANY($1)") {
            tx.execute(&sql, &[&erased]).await?;
        }
        tx.execute(
            "INSERT INTO erased_seqs (seq, erased_at) SELECT s, $2 FROM unnest($1::int8[]) AS s
             ON CONFLICT (seq) DO UPDATE SET erased_at = EXCLUDED.erased_at",
            &[&erased, &now.as_micros()],
        )
        .await?;
    }
    if let Some((lo, hi)) = erasure::idempotency_window(&received, now) {
        let set: HashSet<i64> = erased.iter().copied().collect();
        let keys: Vec<String> = tx
            .query(
                "SELECT key, seqs FROM idempotency WHERE created_at >= $1 AND created_at <= $2 AND org_id = $3",
                &[&lo, &hi, &org],
            )
            .await?
            .iter()
            .filter(|r| erasure::points_at(r.get::<_, &str>(1), &set))
            .map(|r| r.get(0))
            .collect();
        if !keys.is_empty() {
            tx.execute(
                "DELETE FROM idempotency WHERE org_id = $1 AND key = ANY($2)",
                &[&org, &keys],
            )
            .await?;
        }
    }
    tx.execute(
        "DELETE FROM erased_seqs WHERE seq IN
           (SELECT seq FROM erased_seqs WHERE erased_at < $1 ORDER BY erased_at LIMIT 1000)",
        &[&(now.as_micros() - erasure::ERASED_SEQS_KEPT)],
    )
    .await?;
    let done = erasure::step_finishes(candidates.len(), limit);
    let cursor = candidates.last().copied().unwrap_or(rec.cursor as i64);
    let status = if done { "completed" } else { "running" };
    let completed = done.then(|| now.as_micros());
    let row = tx
        .query_one(
            &format!(
                "UPDATE erasures SET done_through = $2, messages_erased = messages_erased + $3,
                   lease_until = $4, status = $5, completed_at = $6 WHERE id = $1 RETURNING {COLUMNS}"
            ),
            &[
                &id.as_str(),
                &cursor,
                &(erased.len() as i64),
                &now.as_micros().saturating_add(lease_micros),
                &status,
                &completed,
            ],
        )
        .await?;
    let record = record(&row)?;
    tx.commit().await?;
    Ok(Some(ErasureStep {
        erased: erased.into_iter().map(|s| s as u64).collect(),
        record,
    }))
}

pub async fn recently_erased(pool: &Pool, since: Timestamp) -> Result<Vec<(u64, Timestamp)>> {
    let c = pool.get().await?;
    c.query(
        "SELECT seq, erased_at FROM erased_seqs WHERE erased_at >= $1 ORDER BY erased_at LIMIT 100000",
        &[&since.as_micros()],
    )
    .await?
    .iter()
    .map(|r| {
        Ok((
            r.try_get::<_, i64>(0)?.max(0) as u64,
            Timestamp::from_micros(r.try_get(1)?),
        ))
    })
    .collect::<Result<_>>()
    .map_err(|e: StoreError| e)
}
