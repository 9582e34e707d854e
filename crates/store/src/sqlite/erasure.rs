//! Erasure on SQLite: the erasure rows and the bounded step job. What a step
//! deletes and why is in `crate::erasure`; this file is only its SQL.

use std::collections::HashSet;

use marquee_core::ids::{ErasureId, OrgId};
use marquee_core::timestamp::Timestamp;
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::reader::ReaderPool;
use super::writer::Writer;
use crate::Result;
use crate::erasure::{self, ErasureRecord, ErasureStatus, ErasureStep};

const COLUMNS: &str = "id, org_id, channel, within, status, messages_erased, messages_total, \
                       through_seq, done_through, created_at, completed_at";

fn record(r: &Row<'_>) -> rusqlite::Result<ErasureRecord> {
    Ok(ErasureRecord {
        id: ErasureId::from_trusted(r.get(0)?),
        org_id: OrgId::from_trusted(r.get(1)?),
        channel: r.get(2)?,
        within: r.get(3)?,
        status: ErasureStatus::parse(&r.get::<_, String>(4)?),
        messages_erased: r.get::<_, i64>(5)?.max(0) as u64,
        messages_total: r.get::<_, i64>(6)?.max(0) as u64,
        through_seq: r.get::<_, i64>(7)?.max(0) as u64,
        cursor: r.get::<_, i64>(8)?.max(0) as u64,
        created_at: Timestamp::from_micros(r.get(9)?),
        completed_at: r.get::<_, Option<i64>>(10)?.map(Timestamp::from_micros),
    })
}

fn load(c: &Connection, id: &str) -> Result<Option<ErasureRecord>> {
    Ok(
        c.prepare_cached(&format!("SELECT {COLUMNS} FROM erasures WHERE id = ?1"))?
            .query_row([id], record)
            .optional()?,
    )
}

/// Messages an erasure covers, counted on a read connection (never on the
/// writer: a large channel takes a while to count).
fn count(c: &Connection, org: &str, channel: &str, within: Option<&str>, through: i64) -> Result<u64> {
    let n: i64 = match within {
        None => c.query_row(
            "SELECT COUNT(*) FROM message_channels WHERE org_id = ?1 AND channel = ?2 AND seq <= ?3",
            params![org, channel, through],
            |r| r.get(0),
        )?,
        Some(w) => c.query_row(
            "SELECT COUNT(*) FROM message_channels mc WHERE mc.org_id = ?1 AND mc.channel = ?2 AND mc.seq <= ?3 \
             AND EXISTS (SELECT 1 FROM message_channels w WHERE w.org_id = ?1 AND w.channel = ?4 AND w.seq = mc.seq)",
            params![org, channel, through, w],
            |r| r.get(0),
        )?,
    };
    Ok(n.max(0) as u64)
}

/// Drops the open coalescing windows of `org` whose channels include
/// `channel` (and `within`): they hold the channel's data published before
/// the erasure was accepted, and would otherwise commit after it.
fn drop_windows(c: &Connection, org: &str, channel: &str, within: Option<&str>) -> Result<()> {
    let on = |ch: &str| format!(" {ch} ");
    let w = within.map_or_else(String::new, on);
    let pending = "SELECT message_id FROM coalesce_pending WHERE org_id = ?1 \
         AND instr(' ' || channels || ' ', ?2) > 0 AND (?3 = '' OR instr(' ' || channels || ' ', ?3) > 0)";
    c.prepare_cached(&format!(
        "DELETE FROM coalesce_pending_keys WHERE message_id IN ({pending})"
    ))?
    .execute(params![org, on(channel), w])?;
    c.prepare_cached(&format!(
        "DELETE FROM coalesce_pending WHERE message_id IN ({pending})"
    ))?
    .execute(params![org, on(channel), w])?;
    Ok(())
}

pub async fn create(
    writer: &Writer,
    readers: &ReaderPool,
    org: &OrgId,
    channel: &str,
    within: Option<&str>,
) -> Result<ErasureRecord> {
    let through = writer.head_seq() as i64;
    let (o, ch, w) = (
        org.as_str().to_owned(),
        channel.to_owned(),
        within.map(str::to_owned),
    );
    let total = readers
        .with_blocking(move |c| count(c, &o, &ch, w.as_deref(), through))
        .await?;
    let rec = ErasureRecord {
        id: ErasureId::generate(),
        org_id: org.clone(),
        channel: channel.to_owned(),
        within: within.map(str::to_owned),
        status: ErasureStatus::Running,
        messages_erased: 0,
        messages_total: total,
        through_seq: through as u64,
        cursor: 0,
        created_at: Timestamp::now(),
        completed_at: None,
    };
    let r = rec.clone();
    writer
        .write(move |ctx| {
            drop_windows(ctx.conn, r.org_id.as_str(), &r.channel, r.within.as_deref())?;
            ctx.conn.execute(
                "INSERT INTO erasures (id, org_id, channel, within, status, messages_total, through_seq, created_at) \
                 VALUES (?1, ?2, ?3, ?4, 'running', ?5, ?6, ?7)",
                params![
                    r.id.as_str(),
                    r.org_id.as_str(),
                    r.channel,
                    r.within,
                    r.messages_total as i64,
                    through,
                    r.created_at.as_micros()
                ],
            )?;
            Ok(())
        })
        .await?;
    Ok(rec)
}

pub fn get(readers: &ReaderPool, org: &OrgId, id: &ErasureId) -> Result<Option<ErasureRecord>> {
    readers.with(|c| Ok(load(c, id.as_str())?.filter(|r| &r.org_id == org)))
}

pub fn list(
    readers: &ReaderPool,
    org: &OrgId,
    before: Option<&ErasureId>,
    limit: usize,
) -> Result<(Vec<ErasureRecord>, bool)> {
    // Ids are time-ordered: newest first is descending id order.
    let before = before.map_or("era_~".to_owned(), |b| b.as_str().to_owned());
    readers.with(|c| {
        let mut v = c
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM erasures WHERE org_id = ?1 AND id < ?2 ORDER BY id DESC LIMIT ?3"
            ))?
            .query_map(params![org.as_str(), before, limit as i64 + 1], record)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let more = v.len() > limit;
        v.truncate(limit);
        Ok((v, more))
    })
}

pub async fn claim(writer: &Writer, token: &str, lease_micros: i64) -> Result<Option<ErasureRecord>> {
    let token = token.to_owned();
    writer
        .write(move |ctx| {
            let now = Timestamp::now().as_micros();
            let id: Option<String> = ctx
                .conn
                .query_row(
                    // One server per data dir (the lock file): a lease left
                    // by a killed process is taken over at once.
                    "SELECT id FROM erasures WHERE status = 'running' ORDER BY id LIMIT 1",
                    [],
                    |r| r.get(0),
                )
                .optional()?;
            let Some(id) = id else { return Ok(None) };
            ctx.conn.execute(
                "UPDATE erasures SET lease_token = ?2, lease_until = ?3 WHERE id = ?1",
                params![id, token, now.saturating_add(lease_micros)],
            )?;
            load(ctx.conn, &id)
        })
        .await
}

pub async fn step(
    writer: &Writer,
    id: &ErasureId,
    token: &str,
    lease_micros: i64,
    limit: usize,
) -> Result<Option<ErasureStep>> {
    let (id, token) = (id.as_str().to_owned(), token.to_owned());
    writer
        .write(move |ctx| {
            let c = ctx.conn;
            let held: Option<String> = c
                .query_row(
                    "SELECT lease_token FROM erasures WHERE id = ?1 AND status = 'running'",
                    [&id],
                    |r| r.get(0),
                )
                .optional()?
                .flatten();
            if held.as_deref() != Some(token.as_str()) {
                return Ok(None);
            }
            let Some(rec) = load(c, &id)? else { return Ok(None) };
            let org = rec.org_id.as_str();
            let candidates: Vec<i64> = c
                .prepare_cached(
                    "SELECT seq FROM message_channels WHERE org_id = ?1 AND channel = ?2 \
                     AND seq > ?3 AND seq <= ?4 ORDER BY seq LIMIT ?5",
                )?
                .query_map(
                    params![org, rec.channel, rec.cursor as i64, rec.through_seq as i64, limit as i64],
                    |r| r.get(0),
                )?
                .collect::<rusqlite::Result<_>>()?;
            let mut victims = candidates.clone();
            if let Some(w) = &rec.within {
                let mut on = c.prepare_cached(
                    "SELECT 1 FROM message_channels WHERE org_id = ?1 AND channel = ?2 AND seq = ?3",
                )?;
                victims.retain(|s| on.exists(params![org, w, s]).unwrap_or(false));
            }
            let now = Timestamp::now();
            let derived = erasure::derived_deletes("?1");
            let mut received = Vec::with_capacity(victims.len());
            let mut erased = Vec::with_capacity(victims.len());
            for seq in &victims {
                let m: Option<(String, String, i64)> = c
                    .prepare_cached("SELECT id, channels, received_at FROM messages WHERE seq = ?1 AND org_id = ?2")?
                    .query_row(params![seq, org], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                    .optional()?;
                let mut del_ch =
                    c.prepare_cached("DELETE FROM message_channels WHERE org_id = ?1 AND channel = ?2 AND seq = ?3")?;
                // The erased channel's own entry, even if retention took the
                // message row in the meantime.
                del_ch.execute(params![org, rec.channel, seq])?;
                let Some((msg_id, channels, recv)) = m else { continue };
                for ch in channels.split(' ').filter(|ch| !ch.is_empty()) {
                    del_ch.execute(params![org, ch, seq])?;
                }
                c.prepare_cached("DELETE FROM messages WHERE seq = ?1")?.execute([seq])?;
                c.prepare_cached(
                    "DELETE FROM deliveries WHERE endpoint_id IN (SELECT id FROM endpoints WHERE org_id = ?1) AND seq = ?2",
                )?
                .execute(params![org, seq])?;
                c.prepare_cached("DELETE FROM attempts WHERE message_id = ?1")?
                    .execute([&msg_id])?;
                for sql in &derived {
                    c.prepare_cached(sql)?.execute([seq])?;
                }
                c.prepare_cached("INSERT OR REPLACE INTO erased_seqs (seq, erased_at) VALUES (?1, ?2)")?
                    .execute(params![seq, now.as_micros()])?;
                received.push(recv);
                erased.push(*seq);
            }
            if let Some((lo, hi)) = erasure::idempotency_window(&received, now) {
                let set: HashSet<i64> = erased.iter().copied().collect();
                let keys: Vec<String> = c
                    .prepare_cached(
                        "SELECT key, seqs FROM idempotency WHERE created_at >= ?1 AND created_at <= ?2 AND org_id = ?3",
                    )?
                    .query_map(params![lo, hi, org], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
                    .filter_map(|r| r.ok())
                    .filter(|(_, seqs)| erasure::points_at(seqs, &set))
                    .map(|(k, _)| k)
                    .collect();
                for k in keys {
                    c.prepare_cached("DELETE FROM idempotency WHERE org_id = ?1 AND key = ?2")?
                        .execute(params![org, k])?;
                }
            }
            // Old entries of the erased-seq list, bounded per step.
            c.prepare_cached(
                "DELETE FROM erased_seqs WHERE seq IN \
                 (SELECT seq FROM erased_seqs WHERE erased_at < ?1 ORDER BY erased_at LIMIT 1000)",
            )?
            .execute([now.as_micros() - erasure::ERASED_SEQS_KEPT])?;
            let done = erasure::step_finishes(candidates.len(), limit);
            let cursor = candidates.last().copied().unwrap_or(rec.cursor as i64);
            c.prepare_cached(
                "UPDATE erasures SET done_through = ?2, messages_erased = messages_erased + ?3, \
                 lease_until = ?4, status = ?5, completed_at = ?6 WHERE id = ?1",
            )?
            .execute(params![
                id,
                cursor,
                erased.len() as i64,
                now.as_micros().saturating_add(lease_micros),
                if done { "completed" } else { "running" },
                done.then(|| now.as_micros()),
            ])?;
            let record = load(c, &id)?.ok_or(crate::StoreError::NotFound)?;
            Ok(Some(ErasureStep {
                erased: erased.into_iter().map(|s| s as u64).collect(),
                record,
            }))
        })
        .await
}

pub async fn recently_erased(readers: &ReaderPool, since: Timestamp) -> Result<Vec<(u64, Timestamp)>> {
    readers.with_blocking(move |c| {
        Ok(c.prepare_cached("SELECT seq, erased_at FROM erased_seqs WHERE erased_at >= ?1 ORDER BY erased_at LIMIT 100000")?
            .query_map([since.as_micros()], |r| {
                Ok((r.get::<_, i64>(0)?.max(0) as u64, Timestamp::from_micros(r.get(1)?)))
            })?
            .collect::<rusqlite::Result<_>>()?)
    })
    .await
}
