//! The log append on SQLite: the one place a message row, its channel rows
//! and its deliveries are written ([`append`]). The publish job calls it
//! after its idempotency decisions ([`publish`]), and so do the webhook jobs
//! for their operational messages (`endpoint.disabled`, …), so whatever rule
//! applies to an appended message (per-type dedup, coalescing, projections)
//! plugs in here once.

use std::sync::Arc;

use marquee_core::ids::{DeliveryId, OrgId};
use marquee_core::message::{Idempotency, NewMessage, StoredMessage};
use marquee_core::timestamp::Timestamp;
use rusqlite::{Connection, OptionalExtension, params};

use super::endpoints::PublishEndpoint;
use super::rows;
use super::writer::Ctx;
use crate::plan::Plan;
use crate::webhooks::ClaimedDelivery;
use crate::{IDEMPOTENCY_TTL_MICROS, PublishOutcome, PublishRequest, Result, StoreError};

/// The `received_at` for messages appended now: never below the newest one
/// already assigned, so `received_at` stays non-decreasing in `seq`.
pub fn received_now(ctx: &mut Ctx<'_>) -> i64 {
    let received = Timestamp::now().as_micros().max(*ctx.last_received);
    *ctx.last_received = received;
    received
}

/// Appends one message to the organization's log inside the open
/// transaction: assigns its `seq`, inserts the message row, its channel rows
/// and one delivery per matching enabled endpoint (born leased when a
/// handoff is set), and queues it for the post-commit announcement.
///
/// Callers make their decisions (idempotency, conflicts) before the first
/// append: a failure here is a database error, which fails the group.
pub fn append(
    ctx: &mut Ctx<'_>,
    org_id: &OrgId,
    mut m: NewMessage,
    received: i64,
) -> Result<Arc<StoredMessage>> {
    let derived = m.derived.take();
    let org = org_id.as_str();
    let endpoints = ctx.endpoints_for(org)?;
    let seq = *ctx.next_seq;
    *ctx.next_seq += 1;
    super::rules::on_append(ctx.conn, org, &m, seq, received)?;
    ctx.conn
        .prepare_cached(
            "INSERT INTO messages (seq, id, org_id, type, channels, data, occurred_at, received_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?
        .execute(params![
            seq as i64,
            m.id.as_str(),
            org,
            m.event_type.as_str(),
            rows::join_channels(&m.channels),
            m.data.get(),
            m.occurred_at.as_micros(),
            received
        ])?;
    let mut insert_ch = ctx.conn.prepare_cached(
        "INSERT OR IGNORE INTO message_channels (org_id, channel, seq) VALUES (?1, ?2, ?3)",
    )?;
    for c in &m.channels {
        insert_ch.execute(params![org, c.as_str(), seq as i64])?;
    }
    drop(insert_ch);
    let stored = Arc::new(StoredMessage {
        seq,
        id: m.id,
        org_id: org_id.clone(),
        event_type: m.event_type,
        channels: m.channels,
        data: m.data,
        occurred_at: m.occurred_at,
        received_at: Timestamp::from_micros(received),
    });
    insert_deliveries(ctx, &endpoints, &stored)?;
    ctx.committed.push(stored.clone());
    super::eventory::after_append(ctx, org_id, &stored, received)?;
    // Attendance / drops read models; a crossed milestone is appended next.
    if let Some(d) = derived {
        for milestone in super::attendance::apply(ctx, &stored, &d)? {
            append(ctx, org_id, milestone, received)?;
        }
    }
    Ok(stored)
}

/// Inserts one pending delivery per matching endpoint for a message being
/// appended. With a delivery handoff the deliveries of unordered endpoints
/// are born leased and queued for it.
fn insert_deliveries(ctx: &mut Ctx<'_>, endpoints: &[PublishEndpoint], m: &Arc<StoredMessage>) -> Result<()> {
    if endpoints.is_empty() {
        return Ok(());
    }
    let mut ins = ctx.conn.prepare_cached(
        "INSERT OR IGNORE INTO deliveries
             (id, org_id, endpoint_id, seq, message_id, state, next_at, claimed_until, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?6, ?7, ?6, ?6)",
    )?;
    let now = m.received_at.as_micros();
    for ep in endpoints {
        if !ep.filter.matches(m.event_type.as_str(), &m.channels) {
            continue;
        }
        let id = DeliveryId::generate();
        let lease = ctx
            .lease_until
            .filter(|_| !ep.ordered && !ctx.no_lease.contains(&ep.id));
        let n = ins.execute(params![
            id.as_str(),
            m.org_id.as_str(),
            ep.id.as_str(),
            m.seq as i64,
            m.id.as_str(),
            now,
            lease
        ])?;
        if n > 0
            && let Some(lease) = lease
        {
            ctx.handed.push(ClaimedDelivery {
                id,
                endpoint_id: ep.id.clone(),
                attempts: 0,
                attempt_count: 0,
                message: m.clone(),
                lease_until: Timestamp::from_micros(lease),
            });
        }
    }
    Ok(())
}

fn find_idempotent(
    conn: &Connection,
    org: &str,
    idem: &Idempotency,
    now: i64,
) -> Result<Option<Vec<StoredMessage>>> {
    let row: Option<(Vec<u8>, String, i64)> = conn
        .prepare_cached(
            "SELECT fingerprint, seqs, created_at FROM idempotency WHERE org_id = ?1 AND key = ?2",
        )?
        .query_row(params![org, idem.key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let Some((fp, seqs, created)) = row else {
        return Ok(None);
    };
    if created < now - IDEMPOTENCY_TTL_MICROS {
        return Ok(None);
    }
    if fp != idem.fingerprint {
        return Err(StoreError::Conflict(
            "this idempotency key was already used with a different request".into(),
        ));
    }
    let mut out = Vec::new();
    let mut st = conn.prepare_cached(&format!(
        "SELECT {} FROM messages WHERE seq = ?1",
        rows::MESSAGE_COLUMNS
    ))?;
    for s in seqs.split(',').filter(|s| !s.is_empty()) {
        if let Some(id) = crate::coalesce::parse_marker(s) {
            match super::coalesce::replay(conn, org, &id)? {
                Some(m) => out.push(m),
                None => return Ok(None),
            }
            continue;
        }
        let seq: i64 = s
            .parse()
            .map_err(|_| StoreError::Internal("corrupt idempotency record".into()))?;
        match st.query_row([seq], rows::message).optional()? {
            Some(m) => out.push(m),
            // The original was pruned by retention: the key no longer applies.
            None => return Ok(None),
        }
    }
    Ok(Some(out))
}

fn remember_idempotent(
    conn: &Connection,
    org: &str,
    idem: &Idempotency,
    messages: &[StoredMessage],
    now: i64,
) -> Result<()> {
    let list = crate::coalesce::seqs_text(messages);
    conn.prepare_cached(
        "INSERT OR REPLACE INTO idempotency (org_id, key, fingerprint, seqs, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![org, idem.key, &idem.fingerprint[..], list, now])?;
    Ok(())
}

/// The publish job: idempotency checks, then one [`append`] per new message.
pub fn publish(ctx: &mut Ctx<'_>, req: PublishRequest) -> Result<PublishOutcome> {
    let org = req.org_id.as_str();
    let now = Timestamp::now().as_micros();
    if let Some(idem) = &req.request_idempotency
        && let Some(messages) = find_idempotent(ctx.conn, org, idem, now)?
    {
        return Ok(PublishOutcome {
            deduplicated: vec![false; messages.len()],
            messages,
            replayed: true,
        });
    }
    // Phase 1: every idempotency decision before the first write, so the
    // job never fails half-way (it runs without a savepoint).
    let repeats = crate::plan::repeated_keys(&req.messages)?;
    let dups = crate::rules::repeated_dedup(&req.messages);
    let mut plans: Vec<Plan> = Vec::with_capacity(req.messages.len());
    for ((m, repeat), dup) in req.messages.iter().zip(repeats).zip(dups) {
        let mut plan = match (repeat, &m.idempotency) {
            (Some(j), _) => Plan::SameAs(j),
            (None, None) => Plan::Insert,
            (None, Some(idem)) => {
                match find_idempotent(ctx.conn, org, idem, now)?.and_then(|mut v| v.pop()) {
                    Some(e) => Plan::Replay(e),
                    None => Plan::Insert,
                }
            }
        };
        if let (Plan::Insert, Some(k)) = (&plan, &m.dedup) {
            if let Some(j) = dup {
                plan = Plan::DuplicateOf(j);
            } else if let Some(e) = super::rules::find_dedup(ctx.conn, org, &k.key, now)? {
                plan = Plan::Duplicate(e);
            }
        }
        if matches!(plan, Plan::Insert) {
            super::coalesce::admit(ctx.conn, org, m)?;
        }
        plans.push(plan);
    }
    let replayed_all = crate::plan::all_replayed(&plans);
    // The organization's enabled endpoints, read (and cached) before the
    // first write: deliveries are created by `append` in this same
    // transaction, so an acknowledged message never lacks them.
    ctx.endpoints_for(org)?;
    // Phase 2: appends.
    let received = received_now(ctx);
    let mut out: Vec<StoredMessage> = Vec::with_capacity(req.messages.len());
    let deduplicated: Vec<bool> = plans.iter().map(Plan::deduplicated).collect();
    for (mut m, plan) in req.messages.into_iter().zip(plans) {
        match plan {
            Plan::Insert => {}
            Plan::Replay(e) | Plan::Duplicate(e) => {
                out.push(e);
                continue;
            }
            Plan::SameAs(j) | Plan::DuplicateOf(j) => {
                let e = out[j].clone();
                out.push(e);
                continue;
            }
        }
        if m.coalesce.is_some() {
            // Held as a pending row until its window closes (coalesce.rs).
            out.push(super::coalesce::pend(ctx, &req.org_id, m, now)?);
            continue;
        }
        let idem = m.idempotency.take();
        let stored = append(ctx, &req.org_id, m, received)?;
        if let Some(idem) = &idem {
            remember_idempotent(ctx.conn, org, idem, std::slice::from_ref(&*stored), now)?;
        }
        out.push((*stored).clone());
    }
    if let Some(idem) = &req.request_idempotency {
        remember_idempotent(ctx.conn, org, idem, &out, now)?;
    }
    Ok(PublishOutcome {
        messages: out,
        replayed: replayed_all && req.request_idempotency.is_none(),
        deduplicated,
    })
}
