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

use super::rows;
use crate::hooks::Hooks;
use crate::plan::Plan;
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
    let mut committed: Vec<Arc<StoredMessage>> = Vec::new();
    let handoff = hooks.lease();
    let mut rows = GroupRows::default();
    if let Some(h) = &handoff {
        rows.deliveries.lease_until = Some(h.until);
        rows.deliveries.no_lease = h.skip.iter().map(|e| e.as_str().to_owned()).collect();
    }
    let outcome: Result<()> = async {
        let tx = client.transaction().await?;
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtext(current_schema() || '/marquee-log'))",
            &[],
        )
        .await?;
        let head = tx
            .query_one("SELECT seq, received_at FROM log_head WHERE id = 1", &[])
            .await?;
        let mut next_seq = head.try_get::<_, i64>(0)? as u64 + 1;
        let first_seq = next_seq;
        let received = Timestamp::now().as_micros().max(head.try_get::<_, i64>(1)?);
        let mut group_keys: GroupKeys = HashMap::new();
        for job in &jobs {
            let r = publish_one(
                &tx,
                &job.req,
                &mut next_seq,
                received,
                &mut committed,
                &mut group_keys,
                &mut rows,
            )
            .await;
            match r {
                Ok(o) => results.push(Ok(o)),
                // Logical refusals (conflicts) write nothing; database
                // errors abort the transaction and fail the whole group.
                Err(StoreError::Conflict(m)) => results.push(Err(StoreError::Conflict(m))),
                Err(e) => return Err(e),
            }
        }
        rows.flush(&tx, received).await?;
        if next_seq != first_seq {
            tx.execute(
                "UPDATE log_head SET seq = $1, received_at = $2 WHERE id = 1",
                &[&((next_seq - 1) as i64), &received],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
    .await;
    match outcome {
        Ok(()) => {
            let handed = rows.deliveries.handed(&committed);
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
    let seqs: Vec<i64> = seqs.split(',').filter_map(|s| s.parse().ok()).collect();
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
    let mut out = Vec::with_capacity(seqs.len());
    for s in &seqs {
        match by_seq.get(s) {
            Some(m) => out.push(m.clone()),
            // Pruned by retention: the key no longer applies.
            None => return Ok(None),
        }
    }
    Ok(Some(out))
}

/// Every row a group inserts, written after the last job in one statement
/// per table: the log lock is held for a handful of round trips, however
/// many messages the group carries.
#[derive(Default)]
struct GroupRows {
    seqs: Vec<i64>,
    ids: Vec<String>,
    orgs: Vec<String>,
    types: Vec<String>,
    channels: Vec<String>,
    data: Vec<String>,
    occurred: Vec<i64>,
    ch_orgs: Vec<String>,
    ch_names: Vec<String>,
    ch_seqs: Vec<i64>,
    idem_orgs: Vec<String>,
    idem_keys: Vec<String>,
    idem_fps: Vec<Vec<u8>>,
    idem_seqs: Vec<String>,
    idem_at: Vec<i64>,
    /// Enabled endpoints per organization, read once per group.
    endpoints: HashMap<String, Vec<super::webhooks::PublishEndpoint>>,
    deliveries: super::webhooks::DeliveryRows,
}

impl GroupRows {
    fn add_message(&mut self, org: &str, seq: u64, m: &marquee_core::message::NewMessage) {
        let channels: Vec<&str> = m.channels.iter().map(|c| c.as_str()).collect();
        self.seqs.push(seq as i64);
        self.ids.push(m.id.as_str().to_owned());
        self.orgs.push(org.to_owned());
        self.types.push(m.event_type.as_str().to_owned());
        self.channels.push(channels.join(" "));
        self.data.push(m.data.get().to_owned());
        self.occurred.push(m.occurred_at.as_micros());
        for c in &m.channels {
            self.ch_orgs.push(org.to_owned());
            self.ch_names.push(c.as_str().to_owned());
            self.ch_seqs.push(seq as i64);
        }
        if let Some(eps) = self.endpoints.get(org) {
            self.deliveries
                .add(eps, org, seq, m.id.as_str(), m.event_type.as_str(), &m.channels);
        }
    }

    fn add_idempotency(&mut self, org: &str, idem: &Idempotency, seqs: &[u64], now: i64) {
        self.idem_orgs.push(org.to_owned());
        self.idem_keys.push(idem.key.clone());
        self.idem_fps.push(idem.fingerprint.to_vec());
        self.idem_seqs
            .push(seqs.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(","));
        self.idem_at.push(now);
    }

    async fn flush(&self, tx: &Transaction<'_>, received: i64) -> Result<()> {
        use tokio_postgres::types::Type;
        if !self.seqs.is_empty() {
            tx.query_typed(
                "INSERT INTO messages (seq, id, org_id, type, channels, data, occurred_at, received_at)
                 SELECT s, i, o, t, c, d, oc, $8
                 FROM unnest($1::int8[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::int8[])
                   AS u(s, i, o, t, c, d, oc)",
                &[
                    (&self.seqs, Type::INT8_ARRAY),
                    (&self.ids, Type::TEXT_ARRAY),
                    (&self.orgs, Type::TEXT_ARRAY),
                    (&self.types, Type::TEXT_ARRAY),
                    (&self.channels, Type::TEXT_ARRAY),
                    (&self.data, Type::TEXT_ARRAY),
                    (&self.occurred, Type::INT8_ARRAY),
                    (&received, Type::INT8),
                ],
            )
            .await?;
            tx.query_typed(
                "INSERT INTO message_channels (org_id, channel, seq)
                 SELECT * FROM unnest($1::text[], $2::text[], $3::int8[]) ON CONFLICT DO NOTHING",
                &[
                    (&self.ch_orgs, Type::TEXT_ARRAY),
                    (&self.ch_names, Type::TEXT_ARRAY),
                    (&self.ch_seqs, Type::INT8_ARRAY),
                ],
            )
            .await?;
        }
        if !self.idem_keys.is_empty() {
            // A key appears at most once per group (later uses in the group
            // replay the first), so one upsert statement is safe.
            tx.query_typed(
                "INSERT INTO idempotency (org_id, key, fingerprint, seqs, created_at)
                 SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[], $4::text[], $5::int8[])
                 ON CONFLICT (org_id, key) DO UPDATE
                   SET fingerprint = EXCLUDED.fingerprint, seqs = EXCLUDED.seqs, created_at = EXCLUDED.created_at",
                &[
                    (&self.idem_orgs, Type::TEXT_ARRAY),
                    (&self.idem_keys, Type::TEXT_ARRAY),
                    (&self.idem_fps, Type::BYTEA_ARRAY),
                    (&self.idem_seqs, Type::TEXT_ARRAY),
                    (&self.idem_at, Type::INT8_ARRAY),
                ],
            )
            .await?;
        }
        self.deliveries.flush(tx, received).await
    }
}

async fn publish_one(
    tx: &Transaction<'_>,
    req: &PublishRequest,
    next_seq: &mut u64,
    received: i64,
    committed: &mut Vec<Arc<StoredMessage>>,
    group_keys: &mut GroupKeys,
    rows: &mut GroupRows,
) -> Result<PublishOutcome> {
    let org = req.org_id.as_str();
    let now = Timestamp::now().as_micros();
    if let Some(idem) = &req.request_idempotency
        && let Some(messages) = find_idempotent(tx, org, idem, now, group_keys, committed).await?
    {
        return Ok(PublishOutcome {
            messages,
            replayed: true,
        });
    }
    // Phase 1: every idempotency decision before the first write.
    let repeats = crate::plan::repeated_keys(&req.messages)?;
    let mut plans: Vec<Plan> = Vec::with_capacity(req.messages.len());
    for (m, repeat) in req.messages.iter().zip(repeats) {
        plans.push(match (repeat, &m.idempotency) {
            (Some(j), _) => Plan::SameAs(j),
            (None, None) => Plan::Insert,
            (None, Some(idem)) => {
                match find_idempotent(tx, org, idem, now, group_keys, committed)
                    .await?
                    .and_then(|mut v| v.pop())
                {
                    Some(e) => Plan::Replay(e),
                    None => Plan::Insert,
                }
            }
        });
    }
    let replayed_all = crate::plan::all_replayed(&plans);
    if !rows.endpoints.contains_key(org) {
        let eps = super::webhooks::endpoints_for_publish(tx, org).await?;
        rows.endpoints.insert(org.to_owned(), eps);
    }
    // Phase 2: inserts.
    let mut out: Vec<StoredMessage> = Vec::with_capacity(req.messages.len());
    for (m, plan) in req.messages.iter().zip(plans) {
        match plan {
            Plan::Insert => {}
            Plan::Replay(e) => {
                out.push(e);
                continue;
            }
            Plan::SameAs(j) => {
                let e = out[j].clone();
                out.push(e);
                continue;
            }
        }
        let seq = *next_seq;
        *next_seq += 1;
        rows.add_message(org, seq, m);
        if let Some(idem) = &m.idempotency {
            rows.add_idempotency(org, idem, &[seq], now);
            group_keys.insert((org.to_owned(), idem.key.clone()), (idem.fingerprint, vec![seq]));
        }
        let stored = StoredMessage {
            seq,
            id: m.id.clone(),
            org_id: req.org_id.clone(),
            event_type: m.event_type.clone(),
            channels: m.channels.clone(),
            data: m.data.clone(),
            occurred_at: m.occurred_at,
            received_at: Timestamp::from_micros(received),
        };
        committed.push(Arc::new(stored.clone()));
        out.push(stored);
    }
    if let Some(idem) = &req.request_idempotency {
        let seqs: Vec<u64> = out.iter().map(|m| m.seq).collect();
        rows.add_idempotency(org, idem, &seqs, now);
        group_keys.insert((org.to_owned(), idem.key.clone()), (idem.fingerprint, seqs));
    }
    Ok(PublishOutcome {
        messages: out,
        replayed: replayed_all && req.request_idempotency.is_none(),
    })
}
