//! Group commit on PostgreSQL.
//!
//! Each node runs one publishing task with its own connection. It drains the
//! queued publish requests and commits them in one transaction that first
//! takes the log lock (`pg_advisory_xact_lock`), reads and advances
//! `log_head`, inserts, and commits *while still holding the lock*. So:
//!
//! - seq order is commit order across all nodes: a transaction assigns seqs
//!   only after every earlier holder of the lock has committed, and
//! - a reader that sees a row with seq `n` also sees every row below `n`
//!   (those committed before the lock passed on), so a cursor never skips.
//!
//! The price is that publishing is serialized cluster-wide for the length of
//! one group's transaction; group commit amortizes it over many publishes.

use std::collections::HashMap;
use std::sync::Arc;

use deadpool_postgres::Pool;
use marquee_core::message::{Idempotency, StoredMessage};
use marquee_core::timestamp::Timestamp;
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::Transaction;

use super::log::{BornLeased, LogAppend};
use super::rows;
use crate::hooks::Hooks;
use crate::plan::Plan;
use crate::webhooks::ClaimedDelivery;
use crate::{IDEMPOTENCY_TTL_MICROS, PublishOutcome, PublishRequest, Result, StoreError};

pub struct Job {
    pub req: PublishRequest,
    pub reply: oneshot::Sender<Result<PublishOutcome>>,
}

const MAX_GROUP: usize = 512;

/// Idempotency keys first used in the current group: (org, key) →
/// (fingerprint, seqs).
type GroupKeys = HashMap<(String, String), ([u8; 32], Vec<u64>)>;

pub fn start(pool: Pool, hooks: Hooks) -> mpsc::Sender<Job> {
    let (tx, mut rx) = mpsc::channel::<Job>(4_096);
    tokio::spawn(async move {
        let mut jobs: Vec<Job> = Vec::with_capacity(MAX_GROUP);
        while let Some(first) = rx.recv().await {
            jobs.push(first);
            while jobs.len() < MAX_GROUP {
                match rx.try_recv() {
                    Ok(j) => jobs.push(j),
                    Err(_) => break,
                }
            }
            let batch: Vec<Job> = std::mem::take(&mut jobs);
            commit_group(&pool, batch, &hooks).await;
        }
        tracing::debug!("postgres publisher stopped");
    });
    tx
}

async fn commit_group(pool: &Pool, jobs: Vec<Job>, hooks: &Hooks) {
    let mut client = match pool.get().await {
        Ok(c) => c,
        Err(e) => {
            for j in jobs {
                let _ = j
                    .reply
                    .send(Err(StoreError::Unavailable(format!("database pool: {e}"))));
            }
            return;
        }
    };
    let mut results: Vec<Result<PublishOutcome>> = Vec::with_capacity(jobs.len());
    let handoff = hooks.lease();
    let leased = handoff.as_ref().map(|h| BornLeased {
        until: h.until,
        skip: h.skip.iter().map(|e| e.as_str().to_owned()).collect(),
    });
    let started = std::time::Instant::now();
    let outcome: Result<(Vec<Arc<StoredMessage>>, Vec<ClaimedDelivery>)> = async {
        let tx = client.transaction().await?;
        let mut log = LogAppend::begin(&tx, leased).await?;
        let mut group_keys: GroupKeys = HashMap::new();
        for job in &jobs {
            match publish_one(&tx, &job.req, &mut log, &mut group_keys).await {
                Ok(o) => results.push(Ok(o)),
                // Logical refusals (conflicts) write nothing; database
                // errors abort the transaction and fail the whole group.
                Err(StoreError::Conflict(m)) => results.push(Err(StoreError::Conflict(m))),
                Err(e) => return Err(e),
            }
        }
        let appended = log.finish(&tx).await?;
        tx.commit().await?;
        Ok(appended)
    }
    .await;
    let (n, head) = match &outcome {
        Ok((committed, _)) => (committed.len(), committed.last().map_or(0, |m| m.seq)),
        Err(_) => (0, 0),
    };
    crate::metrics::group_committed(
        "postgres",
        jobs.len(),
        n,
        started.elapsed(),
        outcome.is_ok(),
        head,
    );
    match outcome {
        Ok((committed, handed)) => {
            hooks.announce(handoff.as_ref().map(|h| &h.deliver), handed, &committed);
            for (j, r) in jobs.into_iter().zip(results) {
                let _ = j.reply.send(r);
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "postgres group commit failed");
            for j in jobs {
                let _ = j
                    .reply
                    .send(Err(StoreError::Internal(format!("commit failed: {e}"))));
            }
        }
    }
}

async fn find_idempotent(
    tx: &Transaction<'_>,
    org: &str,
    idem: &Idempotency,
    now: i64,
    group_keys: &GroupKeys,
    committed: &[Arc<StoredMessage>],
) -> Result<Option<Vec<StoredMessage>>> {
    // A key first used earlier in this same group.
    if let Some((fp, seqs)) = group_keys.get(&(org.to_owned(), idem.key.clone())) {
        if *fp != idem.fingerprint {
            return Err(StoreError::Conflict(
                "this idempotency key was already used with a different request".into(),
            ));
        }
        let by_seq: HashMap<u64, &Arc<StoredMessage>> = committed.iter().map(|m| (m.seq, m)).collect();
        return Ok(Some(
            seqs.iter()
                .filter_map(|s| by_seq.get(s).map(|m| (***m).clone()))
                .collect(),
        ));
    }
    let row = tx
        .query_opt(
            "SELECT fingerprint, seqs, created_at FROM idempotency WHERE org_id = $1 AND key = $2",
            &[&org, &idem.key],
        )
        .await?;
    let Some(row) = row else { return Ok(None) };
    let (fp, seqs, created): (Vec<u8>, String, i64) = (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
    if created < now - IDEMPOTENCY_TTL_MICROS {
        return Ok(None);
    }
    if fp != idem.fingerprint {
        return Err(StoreError::Conflict(
            "this idempotency key was already used with a different request".into(),
        ));
    }
    let entries: Vec<&str> = seqs.split(',').filter(|s| !s.is_empty()).collect();
    let seqs: Vec<i64> = entries.iter().filter_map(|s| s.parse().ok()).collect();
    let found = tx
        .query(
            &format!(
                "SELECT {} FROM messages WHERE seq = ANY($1)",
                rows::MESSAGE_COLUMNS
            ),
            &[&seqs],
        )
        .await?;
    let mut by_seq = HashMap::new();
    for r in &found {
        let m = rows::message(r)?;
        by_seq.insert(m.seq as i64, m);
    }
    let mut out = Vec::with_capacity(entries.len());
    for e in entries {
        // A coalesced publish's entry names its eventual message.
        let found = match crate::coalesce::parse_marker(e) {
            Some(id) => super::coalesce::replay(tx, org, &id).await?,
            None => e.parse::<i64>().ok().and_then(|s| by_seq.get(&s).cloned()),
        };
        match found {
            Some(m) => out.push(m),
            // Pruned by retention: the key no longer applies.
            None => return Ok(None),
        }
    }
    Ok(Some(out))
}

async fn publish_one(
    tx: &Transaction<'_>,
    req: &PublishRequest,
    log: &mut LogAppend,
    group_keys: &mut GroupKeys,
) -> Result<PublishOutcome> {
    let org = req.org_id.as_str();
    let now = Timestamp::now().as_micros();
    if let Some(idem) = &req.request_idempotency
        && let Some(messages) = find_idempotent(tx, org, idem, now, group_keys, log.committed()).await?
    {
        return Ok(PublishOutcome {
            deduplicated: vec![false; messages.len()],
            messages,
            replayed: true,
        });
    }
    // Phase 1: every idempotency decision before the first write.
    let repeats = crate::plan::repeated_keys(&req.messages)?;
    let dups = crate::rules::repeated_dedup(&req.messages);
    let mut plans: Vec<Plan> = Vec::with_capacity(req.messages.len());
    for ((m, repeat), dup) in req.messages.iter().zip(repeats).zip(dups) {
        let mut plan = match (repeat, &m.idempotency) {
            (Some(j), _) => Plan::SameAs(j),
            (None, None) => Plan::Insert,
            (None, Some(idem)) => {
                match find_idempotent(tx, org, idem, now, group_keys, log.committed())
                    .await?
                    .and_then(|mut v| v.pop())
                {
                    Some(e) => Plan::Replay(e),
                    None => Plan::Insert,
                }
            }
        };
        if let (Plan::Insert, Some(k)) = (&plan, &m.dedup) {
            if let Some(j) = dup {
                plan = Plan::DuplicateOf(j);
            } else if let Some(e) =
                super::rules::find_dedup(tx, org, &k.key, now, &log.rules, log.committed()).await?
            {
                plan = Plan::Duplicate(e);
            }
        }
        if matches!(plan, Plan::Insert) {
            super::coalesce::admit(tx, org, m).await?;
        }
        plans.push(plan);
    }
    let replayed_all = crate::plan::all_replayed(&plans);
    log.load_endpoints(tx, org).await?;
    // Phase 2: appends.
    let mut out: Vec<StoredMessage> = Vec::with_capacity(req.messages.len());
    let deduplicated: Vec<bool> = plans.iter().map(Plan::deduplicated).collect();
    for (m, plan) in req.messages.iter().zip(plans) {
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
            out.push(super::coalesce::pend(tx, &req.org_id, m.clone(), now).await?);
            continue;
        }
        let stored = log.append(tx, &req.org_id, m.clone()).await?;
        if let Some(idem) = &m.idempotency {
            log.remember_idempotency(org, idem, std::slice::from_ref(&*stored), now);
            group_keys.insert(
                (org.to_owned(), idem.key.clone()),
                (idem.fingerprint, vec![stored.seq]),
            );
        }
        out.push((*stored).clone());
    }
    if let Some(idem) = &req.request_idempotency {
        log.remember_idempotency(org, idem, &out, now);
        let seqs: Vec<u64> = out.iter().map(|m| m.seq).collect();
        group_keys.insert((org.to_owned(), idem.key.clone()), (idem.fingerprint, seqs));
    }
    Ok(PublishOutcome {
        messages: out,
        replayed: replayed_all && req.request_idempotency.is_none(),
        deduplicated,
    })
}
