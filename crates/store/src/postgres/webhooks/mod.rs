//! The webhook part of the store contract on PostgreSQL, for several nodes
//! sharing one database. Semantics follow the SQLite reference
//! (`sqlite/webhooks.rs`); what differs is how several nodes share the work.
//!
//! - **Deliveries are born in the publish commit.** The log append
//!   (`postgres/log.rs`) buffers them with their message inside the
//!   publish transaction (which holds the log lock), so an acknowledged
//!   message always has its deliveries.
//! - **Claims** are single statements: `UPDATE … FROM (SELECT … FOR UPDATE
//!   SKIP LOCKED)` setting `claimed_until = lease_until`. A row another node
//!   is claiming at that instant is skipped, and a row another node claimed
//!   a moment ago is re-checked on its newest version (READ COMMITTED
//!   re-evaluates locked rows), so each attempt has exactly one node. Lease
//!   times come from the claiming node's clock: node clocks must agree to
//!   well within the lease (120 s), which NTP gives.
//! - **Ordered endpoints** claim only the oldest pending delivery (by seq),
//!   locked with a plain `FOR UPDATE` (no `SKIP LOCKED`: skipping a head
//!   that another node is leasing would hand out the *next* one), and only
//!   if it is due and not leased. So one delivery of an ordered endpoint is
//!   in flight cluster-wide.
//! - **Leases are released early only by their holder.** `release_all_leases`
//!   is a single-node notion (at start-up nothing of a previous process is in
//!   flight); here another live node may hold them, so it is a no-op
//!   answering 0. `release_leases` gives back deliveries this node was
//!   handed at publish (born leased, see `postgres/log.rs`) but will not attempt
//!   now. A node that dies loses its leases when they expire (the
//!   dispatcher's lease, 120 s) and any node claims the rows again.
//! - **Attempt results** are recorded in one transaction per batch: the
//!   batch's endpoint rows are locked first (`FOR NO KEY UPDATE`, one
//!   statement, endpoint-id order), then its attempts are inserted and its
//!   successes settled in one statement each. So two nodes recording the
//!   same endpoints (or, after a lease expired mid-attempt, the same
//!   delivery) serialize on the endpoint locks instead of deadlocking, and
//!   never race on an endpoint's failure run. Operational messages (`endpoint.disabled`, …)
//!   are inserted into the log in the same transaction, which therefore
//!   takes the log lock (last, just before inserting) and advances
//!   `log_head` exactly like the publish task: seq order stays commit
//!   order. They get their own deliveries, and are announced to the commit
//!   listeners after the commit. A rare deadlock with `delete_endpoint` is
//!   detected by PostgreSQL and the batch is retried.
//! - `max_in_flight` and `rate_limit` are enforced by each node's dispatcher,
//!   so with N worker nodes they are per-node limits (up to N × the value
//!   cluster-wide); ordering is cluster-wide (above).

use std::sync::Arc;

use async_trait::async_trait;
use marquee_core::ids::{AttemptId, DeliveryId, EndpointId, MessageId, OrgId};
use marquee_core::message::StoredMessage;
use marquee_core::names::Channel;
use marquee_core::timestamp::Timestamp;
use marquee_core::webhook::EndpointFilter;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Row, Transaction};

use super::log::LOG_LOCK;
use super::{PgStore, rows};
use crate::webhooks::*;
use crate::{Result, StoreError};

mod deliveries;
mod results;

use deliveries::*;
use results::*;

pub(super) const EP_COLUMNS: &str = "id, org_id, url, description, types, channels, format, rate_limit, max_in_flight, \
     ordered, enabled, disabled_reason, secret, prev_secret, prev_secret_until, failing_since, created_at, updated_at";

pub(super) const ATTEMPT_COLUMNS: &str = "id, delivery_id, org_id, endpoint_id, message_id, attempt_no, started_at, \
     duration_us, status_code, succeeded, error_kind, response_headers, response_body";

pub(super) fn endpoint_row(r: &Row) -> Result<EndpointRecord> {
    let types: String = r.try_get(4)?;
    let channels: String = r.try_get(5)?;
    let format: String = r.try_get(6)?;
    Ok(EndpointRecord {
        id: EndpointId::from_trusted(r.try_get(0)?),
        org_id: OrgId::from_trusted(r.try_get(1)?),
        url: r.try_get(2)?,
        description: r.try_get(3)?,
        filter: EndpointFilter::from_texts(&types, &channels),
        format: format
            .parse()
            .map_err(|_| StoreError::Internal(format!("unknown endpoint format {format:?}")))?,
        rate_limit: r
            .try_get::<_, Option<i64>>(7)?
            .map(|v| v.clamp(0, u32::MAX as i64) as u32),
        max_in_flight: r.try_get::<_, i64>(8)?.clamp(0, u32::MAX as i64) as u32, // 0: adaptive
        ordered: r.try_get(9)?,
        enabled: r.try_get(10)?,
        disabled_reason: r.try_get(11)?,
        secret_sealed: r.try_get(12)?,
        previous_secret_sealed: r.try_get(13)?,
        previous_secret_until: r.try_get::<_, Option<i64>>(14)?.map(Timestamp::from_micros),
        failing_since: r.try_get::<_, Option<i64>>(15)?.map(Timestamp::from_micros),
        created_at: Timestamp::from_micros(r.try_get(16)?),
        updated_at: Timestamp::from_micros(r.try_get(17)?),
    })
}

pub(super) fn attempt_row(r: &Row) -> Result<AttemptRecord> {
    Ok(AttemptRecord {
        id: AttemptId::from_trusted(r.try_get(0)?),
        delivery_id: DeliveryId::from_trusted(r.try_get(1)?),
        org_id: OrgId::from_trusted(r.try_get(2)?),
        endpoint_id: EndpointId::from_trusted(r.try_get(3)?),
        message_id: r.try_get::<_, Option<String>>(4)?.map(MessageId::from_trusted),
        attempt_no: r.try_get::<_, i64>(5)?.clamp(0, u32::MAX as i64) as u32,
        started_at: Timestamp::from_micros(r.try_get(6)?),
        duration_us: r.try_get(7)?,
        status_code: r.try_get::<_, Option<i32>>(8)?.map(|s| s.clamp(0, 999) as u16),
        succeeded: r.try_get(9)?,
        error_kind: r.try_get(10)?,
        response_headers: r.try_get(11)?,
        response_body: r.try_get(12)?,
    })
}

pub(super) fn split_channels(s: &str) -> Vec<Channel> {
    s.split(' ')
        .filter(|c| !c.is_empty())
        .map(|c| Channel::from_trusted(c.to_owned()))
        .collect()
}

/// A deadlock or serialization failure: the transaction may simply be run
/// again. (`StoreError` keeps the SQLSTATE at the end of its text.)
pub(super) fn retryable(e: &StoreError) -> bool {
    matches!(e, StoreError::Internal(m) if m.ends_with("(40P01)") || m.ends_with("(40001)"))
}

/// The first 15 endpoint columns (id … prev_secret_until) in `EP_COLUMNS`
/// order, shared by the insert and the update; `with` appends the rest.
pub(super) struct EndpointParams<'a> {
    ep: &'a EndpointRecord,
    id: &'a str,
    org: &'a str,
    format: &'a str,
    types: String,
    channels: String,
    rate_limit: Option<i64>,
    max_in_flight: i64,
    prev_until: Option<i64>,
}

impl<'a> EndpointParams<'a> {
    fn new(ep: &'a EndpointRecord) -> Self {
        EndpointParams {
            ep,
            id: ep.id.as_str(),
            org: ep.org_id.as_str(),
            format: ep.format.as_str(),
            types: ep.filter.types_text(),
            channels: ep.filter.channels_text(),
            rate_limit: ep.rate_limit.map(i64::from),
            max_in_flight: i64::from(ep.max_in_flight),
            prev_until: ep.previous_secret_until.map(|t| t.as_micros()),
        }
    }

    fn with<'b>(&'b self, rest: &[&'b (dyn ToSql + Sync)]) -> Vec<&'b (dyn ToSql + Sync)> {
        let mut v: Vec<&'b (dyn ToSql + Sync)> = vec![
            &self.id,
            &self.org,
            &self.ep.url,
            &self.ep.description,
            &self.types,
            &self.channels,
            &self.format,
            &self.rate_limit,
            &self.max_in_flight,
            &self.ep.ordered,
            &self.ep.enabled,
            &self.ep.disabled_reason,
            &self.ep.secret_sealed,
            &self.ep.previous_secret_sealed,
            &self.prev_until,
        ];
        v.extend_from_slice(rest);
        v
    }
}

pub(super) async fn load_endpoint(
    tx: &Transaction<'_>,
    org: &str,
    id: &str,
) -> Result<Option<EndpointRecord>> {
    tx.query_opt(
        &format!("SELECT {EP_COLUMNS} FROM endpoints WHERE id = $1 AND org_id = $2"),
        &[&id, &org],
    )
    .await?
    .map(|r| endpoint_row(&r))
    .transpose()
}

#[async_trait]
impl WebhookStore for PgStore {
    async fn create_endpoint(&self, ep: EndpointRecord) -> Result<()> {
        let c = self.pool.get().await?;
        c.execute(
            &format!(
                "INSERT INTO endpoints ({EP_COLUMNS})
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)"
            ),
            &EndpointParams::new(&ep).with(&[
                &ep.failing_since.map(|t| t.as_micros()),
                &ep.created_at.as_micros(),
                &ep.updated_at.as_micros(),
            ]),
        )
        .await?;
        Ok(())
    }

    async fn get_endpoint(&self, org: &OrgId, id: &EndpointId) -> Result<Option<EndpointRecord>> {
        let c = self.pool.get().await?;
        c.query_opt(
            &format!("SELECT {EP_COLUMNS} FROM endpoints WHERE id = $1 AND org_id = $2"),
            &[&id.as_str(), &org.as_str()],
        )
        .await?
        .map(|r| endpoint_row(&r))
        .transpose()
    }

    async fn list_endpoints(
        &self,
        org: &OrgId,
        after: Option<&EndpointId>,
        limit: usize,
    ) -> Result<EndpointPage> {
        let c = self.pool.get().await?;
        let after = after.map(|a| a.as_str()).unwrap_or_default();
        let mut v = c
            .query(
                &format!(
                    "SELECT {EP_COLUMNS} FROM endpoints WHERE org_id = $1 AND id > $2 ORDER BY id LIMIT $3"
                ),
                &[&org.as_str(), &after, &((limit + 1) as i64)],
            )
            .await?
            .iter()
            .map(endpoint_row)
            .collect::<Result<Vec<_>>>()?;
        let has_more = v.len() > limit;
        v.truncate(limit);
        Ok(EndpointPage {
            endpoints: v,
            has_more,
        })
    }

    async fn all_endpoints(&self) -> Result<Vec<EndpointRecord>> {
        let c = self.pool.get().await?;
        c.query(&format!("SELECT {EP_COLUMNS} FROM endpoints ORDER BY id"), &[])
            .await?
            .iter()
            .map(endpoint_row)
            .collect()
    }

    async fn update_endpoint(&self, ep: EndpointRecord, expected: Timestamp) -> Result<()> {
        let c = self.pool.get().await?;
        let n = c
            .execute(
                "UPDATE endpoints SET url = $3, description = $4, types = $5, channels = $6, format = $7,
                 rate_limit = $8, max_in_flight = $9, ordered = $10,
                 failing_since = CASE WHEN $11 AND NOT enabled THEN NULL ELSE failing_since END,
                 notified_failing = CASE WHEN $11 AND NOT enabled THEN FALSE ELSE notified_failing END,
                 enabled = $11, disabled_reason = $12, secret = $13, prev_secret = $14,
                 prev_secret_until = $15, updated_at = $16
                 WHERE id = $1 AND org_id = $2 AND updated_at = $17",
                &EndpointParams::new(&ep).with(&[&ep.updated_at.as_micros(), &expected.as_micros()]),
            )
            .await?;
        if n == 0 {
            let exists = c
                .query_opt(
                    "SELECT 1 FROM endpoints WHERE id = $1 AND org_id = $2",
                    &[&ep.id.as_str(), &ep.org_id.as_str()],
                )
                .await?;
            return Err(match exists {
                Some(_) => StoreError::Conflict("the endpoint changed meanwhile".into()),
                None => StoreError::NotFound,
            });
        }
        Ok(())
    }

    async fn delete_endpoint(&self, org: &OrgId, id: &EndpointId) -> Result<bool> {
        let mut c = self.pool.get().await?;
        let mut tries = 0;
        loop {
            let r: Result<bool> = async {
                let tx = c.transaction().await?;
                let n = tx
                    .execute(
                        "DELETE FROM endpoints WHERE id = $1 AND org_id = $2",
                        &[&id.as_str(), &org.as_str()],
                    )
                    .await?;
                if n == 0 {
                    return Ok(false);
                }
                // Wait for a publish that may have read the endpoint before
                // it went: its deliveries are committed (and deleted here)
                // once the log lock is ours; later publishes cannot see it.
                tx.execute(LOG_LOCK, &[]).await?;
                tx.execute("DELETE FROM deliveries WHERE endpoint_id = $1", &[&id.as_str()])
                    .await?;
                tx.execute(
                    "DELETE FROM endpoint_counters WHERE endpoint_id = $1",
                    &[&id.as_str()],
                )
                .await?;
                tx.execute(
                    "DELETE FROM endpoint_minutes WHERE endpoint_id = $1",
                    &[&id.as_str()],
                )
                .await?;
                tx.commit().await?;
                Ok(true)
            }
            .await;
            match r {
                Err(e) if retryable(&e) && tries < 3 => tries += 1,
                r => return r,
            }
        }
    }

    async fn claim_deliveries(
        &self,
        reqs: Vec<ClaimRequest>,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<Vec<ClaimedDelivery>> {
        let c = self.pool.get().await?;
        let mut out = Vec::new();
        for r in &reqs {
            if r.limit > 0 {
                claim_one(&c, r, now.as_micros(), lease_until.as_micros(), &mut out).await?;
            }
        }
        Ok(out)
    }

    /// A no-op: other live nodes may hold leases, and this node's own leases
    /// of a previous run expire by themselves.
    async fn release_all_leases(&self) -> Result<u64> {
        Ok(0)
    }

    fn set_delivery_handoff(&self, handoff: Option<Handoff>) {
        self.hooks.set_handoff(handoff);
    }

    async fn release_leases(&self, leases: Vec<(DeliveryId, Timestamp)>) -> Result<u64> {
        let c = self.pool.get().await?;
        let ids: Vec<&str> = leases.iter().map(|(i, _)| i.as_str()).collect();
        let until: Vec<i64> = leases.iter().map(|(_, t)| t.as_micros()).collect();
        let n = c
            .execute(
                "UPDATE deliveries SET claimed_until = NULL
                 FROM unnest($1::text[], $2::int8[]) AS u(id, lease)
                 WHERE deliveries.id = u.id AND deliveries.claimed_until = u.lease
                   AND deliveries.state = 'pending'",
                &[&ids, &until],
            )
            .await?;
        Ok(n)
    }

    async fn pending_endpoints(&self) -> Result<Vec<(EndpointId, Timestamp)>> {
        let c = self.pool.get().await?;
        let st = c
            .prepare_cached(
                "SELECT e.id, m.next_at FROM endpoints e
                 CROSS JOIN LATERAL (SELECT d.next_at FROM deliveries d
                                     WHERE d.endpoint_id = e.id AND d.state = 'pending'
                                     ORDER BY d.next_at LIMIT 1) m
                 WHERE e.enabled",
            )
            .await?;
        c.query(&st, &[])
            .await?
            .iter()
            .map(|r| {
                Ok((
                    EndpointId::from_trusted(r.try_get(0)?),
                    Timestamp::from_micros(r.try_get(1)?),
                ))
            })
            .collect()
    }

    async fn record_attempts(
        &self,
        mut outcomes: Vec<AttemptOutcome>,
        policy: OutcomePolicy,
    ) -> Result<RecordSummary> {
        // Endpoint rows are locked in this order in every batch on every
        // node (stable: attempts of one endpoint keep their order).
        outcomes.sort_by(|a, b| a.attempt.endpoint_id.as_str().cmp(b.attempt.endpoint_id.as_str()));
        let mut c = self.pool.get().await?;
        let mut tries = 0;
        loop {
            let r: Result<(RecordSummary, Vec<Arc<StoredMessage>>)> = async {
                let tx = c.transaction().await?;
                let (summary, ops_out) = record_tx(&tx, &outcomes, policy).await?;
                let committed = append_ops(&tx, ops_out).await?;
                tx.commit().await?;
                Ok((summary, committed))
            }
            .await;
            match r {
                Ok((summary, committed)) => {
                    self.hooks.announce(None, Vec::new(), &committed);
                    return Ok(summary);
                }
                Err(e) if retryable(&e) && tries < 3 => tries += 1,
                Err(e) => return Err(e),
            }
        }
    }

    async fn list_attempts(&self, org: &OrgId, q: &AttemptQuery) -> Result<AttemptPage> {
        let c = self.pool.get().await?;
        let mut sql = format!("SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE org_id = $1");
        let mut args: Vec<Box<dyn ToSql + Sync + Send>> = vec![Box::new(org.as_str().to_owned())];
        if let Some(e) = &q.endpoint_id {
            args.push(Box::new(e.as_str().to_owned()));
            sql.push_str(&format!(" AND endpoint_id = ${}", args.len()));
        }
        if let Some(m) = &q.message_id {
            args.push(Box::new(m.as_str().to_owned()));
            sql.push_str(&format!(" AND message_id = ${}", args.len()));
        }
        if let Some(s) = q.succeeded {
            args.push(Box::new(s));
            sql.push_str(&format!(" AND succeeded = ${}", args.len()));
        }
        if let Some(a) = &q.after {
            args.push(Box::new(a.as_str().to_owned()));
            sql.push_str(&format!(" AND id > ${}", args.len()));
        }
        args.push(Box::new((q.limit + 1) as i64));
        sql.push_str(&format!(" ORDER BY id LIMIT ${}", args.len()));
        let refs: Vec<&(dyn ToSql + Sync)> = args.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync)).collect();
        let mut v = c
            .query(&sql, &refs)
            .await?
            .iter()
            .map(attempt_row)
            .collect::<Result<Vec<_>>>()?;
        let has_more = v.len() > q.limit;
        v.truncate(q.limit);
        Ok(AttemptPage {
            attempts: v,
            has_more,
        })
    }

    async fn resend(&self, org: &OrgId, message: &MessageId, endpoint: Option<&EndpointId>) -> Result<u64> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        let n = resend_tx(&tx, org.as_str(), message.as_str(), endpoint.map(|e| e.as_str())).await?;
        tx.commit().await?;
        Ok(n)
    }

    async fn recover(
        &self,
        org: &OrgId,
        endpoint: &EndpointId,
        since: Timestamp,
        until: Timestamp,
    ) -> Result<u64> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        // The endpoint row is locked first, as by `record_tx`.
        let exists = tx
            .query_opt(
                "SELECT 1 FROM endpoints WHERE id = $1 AND org_id = $2 FOR NO KEY UPDATE",
                &[&endpoint.as_str(), &org.as_str()],
            )
            .await?
            .is_some();
        if !exists {
            return Err(StoreError::NotFound);
        }
        let now = Timestamp::now().as_micros();
        let n = tx
            .execute(
                "UPDATE deliveries SET state = 'pending', attempts = 0, next_at = $4, updated_at = $4
                 WHERE endpoint_id = $1 AND created_at >= $2 AND created_at < $3
                   AND (state = 'exhausted'
                        OR (state = 'pending' AND attempt_count > 0
                            AND (claimed_until IS NULL OR claimed_until < $4)))",
                &[&endpoint.as_str(), &since.as_micros(), &until.as_micros(), &now],
            )
            .await?;
        tx.commit().await?;
        Ok(n)
    }

    async fn replay_chunk(
        &self,
        org: &OrgId,
        endpoint: &EndpointId,
        from: ReplayFrom,
        chunk: usize,
    ) -> Result<ReplayProgress> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        let p = replay_tx(&tx, org.as_str(), endpoint.as_str(), from, chunk.max(1)).await?;
        tx.commit().await?;
        Ok(p)
    }

    async fn endpoint_stats(
        &self,
        org: &OrgId,
        endpoint: &EndpointId,
        now: Timestamp,
    ) -> Result<EndpointStats> {
        let c = self.pool.get().await?;
        let ep = endpoint.as_str();
        let exists = c
            .query_opt(
                "SELECT 1 FROM endpoints WHERE id = $1 AND org_id = $2",
                &[&ep, &org.as_str()],
            )
            .await?
            .is_some();
        if !exists {
            return Err(StoreError::NotFound);
        }
        let mut s = EndpointStats::default();
        // Settled counts from the counters, pending ones through the
        // pending-only index, the last hour from per-minute buckets: none of
        // it grows with the endpoint's history.
        let r = c
            .query_one(
                "SELECT
                   (SELECT delivered FROM endpoint_counters WHERE endpoint_id = $1),
                   (SELECT exhausted FROM endpoint_counters WHERE endpoint_id = $1),
                   (SELECT COUNT(*) FROM deliveries WHERE endpoint_id = $1 AND state = 'pending'),
                   (SELECT COUNT(*) FROM deliveries WHERE endpoint_id = $1 AND state = 'pending' AND attempt_count > 0),
                   (SELECT MAX(started_at) FROM attempts WHERE endpoint_id = $1 AND succeeded),
                   (SELECT MAX(started_at) FROM attempts WHERE endpoint_id = $1 AND NOT succeeded),
                   (SELECT SUM(succeeded)::int8 FROM endpoint_minutes WHERE endpoint_id = $1 AND minute >= $2),
                   (SELECT SUM(failed)::int8 FROM endpoint_minutes WHERE endpoint_id = $1 AND minute >= $2)",
                &[&ep, &crate::webhooks::hour_window_start(now)],
            )
            .await?;
        let n = |i: usize| -> Result<u64> { Ok(r.try_get::<_, Option<i64>>(i)?.unwrap_or(0).max(0) as u64) };
        s.delivered = n(0)?;
        s.exhausted = n(1)?;
        s.pending = n(2)?;
        s.retrying = n(3)?;
        s.last_success_at = r.try_get::<_, Option<i64>>(4)?.map(Timestamp::from_micros);
        s.last_failure_at = r.try_get::<_, Option<i64>>(5)?.map(Timestamp::from_micros);
        let (ok, failed) = (n(6)?, n(7)?);
        s.attempts_last_hour = ok + failed;
        s.succeeded_last_hour = ok;
        Ok(s)
    }
}

/// Retention, inside the prune transaction: deliveries of pruned messages
/// (their body is gone) and attempts older than `before` (bounded).
pub async fn prune(tx: &Transaction<'_>, max_seq: i64, before: Timestamp, limit: usize) -> Result<()> {
    // Per endpoint, so the (endpoint_id, seq) index serves the delete.
    tx.execute(
        "DELETE FROM deliveries d USING endpoints e WHERE d.endpoint_id = e.id AND d.seq <= $1",
        &[&max_seq],
    )
    .await?;
    let boundary = AttemptId::lower_bound_at(before.as_millis().max(0) as u64);
    tx.execute(
        "DELETE FROM attempts WHERE id IN (SELECT id FROM attempts WHERE id < $1 ORDER BY id LIMIT $2)",
        &[&boundary.as_str(), &(limit as i64)],
    )
    .await?;
    Ok(())
}
