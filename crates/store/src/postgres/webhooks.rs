//! The webhook part of the store contract on PostgreSQL, for several nodes
//! sharing one database. Semantics follow the SQLite reference
//! (`sqlite/webhooks.rs`); what differs is how several nodes share the work.
//!
//! - **Deliveries are born in the publish commit.** The publish task calls
//!   [`endpoints_for_publish`] and [`DeliveryRows`] inside its
//!   transaction (which holds the log lock), so an acknowledged message
//!   always has its deliveries.
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
//!   handed at publish (born leased, see `DeliveryRows`) but will not attempt
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

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use marquee_core::ids::{AttemptId, DeliveryId, EndpointId, MessageId, OrgId};
use marquee_core::message::{NewMessage, StoredMessage};
use marquee_core::names::Channel;
use marquee_core::timestamp::Timestamp;
use marquee_core::webhook::{EndpointFilter, ops};
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Row, Transaction};

use super::{PgStore, rows};
use crate::webhooks::*;
use crate::webhooks::{disable_reason, failure_notice, ops_message};
use crate::{Result, StoreError};

const EP_COLUMNS: &str = "id, org_id, url, description, types, channels, format, rate_limit, max_in_flight, \
     ordered, enabled, disabled_reason, secret, prev_secret, prev_secret_until, failing_since, created_at, updated_at";

const ATTEMPT_COLUMNS: &str = "id, delivery_id, org_id, endpoint_id, message_id, attempt_no, started_at, \
     duration_us, status_code, succeeded, error_kind, response_headers, response_body";

const LOG_LOCK: &str = "SELECT pg_advisory_xact_lock(hashtext(current_schema() || '/marquee-log'))";

fn endpoint_row(r: &Row) -> Result<EndpointRecord> {
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
        max_in_flight: r.try_get::<_, i64>(8)?.clamp(1, u32::MAX as i64) as u32,
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

fn attempt_row(r: &Row) -> Result<AttemptRecord> {
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

fn split_channels(s: &str) -> Vec<Channel> {
    s.split(' ')
        .filter(|c| !c.is_empty())
        .map(|c| Channel::from_trusted(c.to_owned()))
        .collect()
}

/// A deadlock or serialization failure: the transaction may simply be run
/// again. (`StoreError` keeps the SQLSTATE at the end of its text.)
fn retryable(e: &StoreError) -> bool {
    matches!(e, StoreError::Internal(m) if m.ends_with("(40P01)") || m.ends_with("(40001)"))
}

/// The first 15 endpoint columns (id … prev_secret_until) in `EP_COLUMNS`
/// order, shared by the insert and the update; `with` appends the rest.
struct EndpointParams<'a> {
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

/// An enabled endpoint as the publish path needs it.
pub struct PublishEndpoint {
    id: String,
    filter: EndpointFilter,
    ordered: bool,
}

/// The organization's enabled endpoints, read once per publish request.
pub async fn endpoints_for_publish(tx: &Transaction<'_>, org: &str) -> Result<Vec<PublishEndpoint>> {
    // Typed queries are one round trip (no separate prepare): this runs under
    // the log lock on the publish path.
    tx.query_typed(
        "SELECT id, types, channels, ordered FROM endpoints WHERE org_id = $1 AND enabled",
        &[(&org, Type::TEXT)],
    )
    .await?
    .iter()
    .map(|r| {
        let types: String = r.try_get(1)?;
        let channels: String = r.try_get(2)?;
        Ok(PublishEndpoint {
            id: r.try_get(0)?,
            filter: EndpointFilter::from_texts(&types, &channels),
            ordered: r.try_get(3)?,
        })
    })
    .collect()
}

/// Inserts one pending delivery per matching endpoint for a message being
/// committed (inside the publish transaction), in one statement.
#[allow(clippy::too_many_arguments)]
pub async fn insert_deliveries(
    tx: &Transaction<'_>,
    endpoints: &[PublishEndpoint],
    org: &str,
    seq: u64,
    message_id: &str,
    event_type: &str,
    channels: &[Channel],
    now: i64,
) -> Result<()> {
    let eps: Vec<&str> = endpoints
        .iter()
        .filter(|e| e.filter.matches(event_type, channels))
        .map(|e| e.id.as_str())
        .collect();
    if eps.is_empty() {
        return Ok(());
    }
    let ids: Vec<String> = eps
        .iter()
        .map(|_| DeliveryId::generate().as_str().to_owned())
        .collect();
    tx.query_typed(
        "INSERT INTO deliveries (id, org_id, endpoint_id, seq, message_id, state, next_at, created_at, updated_at)
         SELECT d, $1, e, $2, $3, 'pending', $4, $4, $4 FROM unnest($5::text[], $6::text[]) AS u(d, e)
         ON CONFLICT DO NOTHING",
        &[
            (&org, Type::TEXT),
            (&(seq as i64), Type::INT8),
            (&message_id, Type::TEXT),
            (&now, Type::INT8),
            (&ids, Type::TEXT_ARRAY),
            (&eps, Type::TEXT_ARRAY),
        ],
    )
    .await?;
    Ok(())
}

/// The deliveries of a whole publish group, inserted in one statement.
#[derive(Default)]
pub struct DeliveryRows {
    ids: Vec<String>,
    orgs: Vec<String>,
    endpoints: Vec<String>,
    seqs: Vec<i64>,
    message_ids: Vec<String>,
    leases: Vec<Option<i64>>,
    /// With a delivery handoff: the lease new deliveries are born with.
    pub lease_until: Option<i64>,
    /// Endpoints whose new deliveries are not born leased (saturated).
    pub no_lease: std::collections::HashSet<String>,
    /// (delivery, endpoint, seq) of the deliveries born leased.
    handed: Vec<(DeliveryId, EndpointId, u64)>,
}

impl DeliveryRows {
    /// Adds one pending delivery per matching endpoint of a message.
    pub fn add(
        &mut self,
        endpoints: &[PublishEndpoint],
        org: &str,
        seq: u64,
        message_id: &str,
        event_type: &str,
        channels: &[Channel],
    ) {
        for e in endpoints
            .iter()
            .filter(|e| e.filter.matches(event_type, channels))
        {
            let id = DeliveryId::generate();
            let lease = self
                .lease_until
                .filter(|_| !e.ordered && !self.no_lease.contains(&e.id));
            if lease.is_some() {
                self.handed
                    .push((id.clone(), EndpointId::from_trusted(e.id.clone()), seq));
            }
            self.ids.push(id.as_str().to_owned());
            self.orgs.push(org.to_owned());
            self.endpoints.push(e.id.clone());
            self.seqs.push(seq as i64);
            self.message_ids.push(message_id.to_owned());
            self.leases.push(lease);
        }
    }

    pub async fn flush(&self, tx: &Transaction<'_>, now: i64) -> Result<()> {
        if self.ids.is_empty() {
            return Ok(());
        }
        // Every row is new (its seq was just assigned): none is skipped.
        tx.query_typed(
            "INSERT INTO deliveries
                 (id, org_id, endpoint_id, seq, message_id, state, next_at, claimed_until, created_at, updated_at)
             SELECT d, o, e, s, m, 'pending', $6, l, $6, $6
             FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::text[], $7::int8[])
               AS u(d, o, e, s, m, l)
             ON CONFLICT DO NOTHING",
            &[
                (&self.ids, Type::TEXT_ARRAY),
                (&self.orgs, Type::TEXT_ARRAY),
                (&self.endpoints, Type::TEXT_ARRAY),
                (&self.seqs, Type::INT8_ARRAY),
                (&self.message_ids, Type::TEXT_ARRAY),
                (&now, Type::INT8),
                (&self.leases, Type::INT8_ARRAY),
            ],
        )
        .await?;
        Ok(())
    }

    /// The born-leased deliveries with their committed messages (`committed`
    /// is in seq order).
    pub fn handed(&mut self, committed: &[Arc<StoredMessage>]) -> Vec<ClaimedDelivery> {
        std::mem::take(&mut self.handed)
            .into_iter()
            .filter_map(|(id, endpoint_id, seq)| {
                let i = committed.binary_search_by_key(&seq, |m| m.seq).ok()?;
                Some(ClaimedDelivery {
                    id,
                    endpoint_id,
                    attempts: 0,
                    attempt_count: 0,
                    message: committed[i].clone(),
                    lease_until: Timestamp::from_micros(self.lease_until.unwrap_or(0)),
                })
            })
            .collect()
    }
}

/// Queues (or re-queues) the delivery of message `seq` to `endpoint`.
async fn upsert_delivery(
    tx: &Transaction<'_>,
    org: &str,
    endpoint: &str,
    seq: i64,
    message_id: &str,
    now: i64,
) -> Result<()> {
    tx.execute(
        "INSERT INTO deliveries (id, org_id, endpoint_id, seq, message_id, state, next_at, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, 'pending', $6, $6, $6)
         ON CONFLICT (endpoint_id, seq) DO UPDATE SET state = 'pending', attempts = 0,
             next_at = LEAST(deliveries.next_at, excluded.next_at), updated_at = excluded.updated_at",
        &[
            &DeliveryId::generate().as_str(),
            &org,
            &endpoint,
            &seq,
            &message_id,
            &now,
        ],
    )
    .await?;
    Ok(())
}

async fn load_endpoint(tx: &Transaction<'_>, org: &str, id: &str) -> Result<Option<EndpointRecord>> {
    tx.query_opt(
        &format!("SELECT {EP_COLUMNS} FROM endpoints WHERE id = $1 AND org_id = $2"),
        &[&id, &org],
    )
    .await?
    .map(|r| endpoint_row(&r))
    .transpose()
}

/// Builds an operational message published into the organization's log.
/// Appends operational messages to the log inside `tx`: takes the log lock,
/// assigns seqs from `log_head` and creates their deliveries, like the
/// publish task. Returns what to announce after the commit.
async fn append_ops(
    tx: &Transaction<'_>,
    ops_out: Vec<(OrgId, NewMessage)>,
) -> Result<Vec<Arc<StoredMessage>>> {
    let mut out = Vec::with_capacity(ops_out.len());
    if ops_out.is_empty() {
        return Ok(out);
    }
    tx.execute(LOG_LOCK, &[]).await?;
    let head = tx
        .query_one("SELECT seq, received_at FROM log_head WHERE id = 1", &[])
        .await?;
    let mut seq = head.try_get::<_, i64>(0)?;
    let received = Timestamp::now().as_micros().max(head.try_get::<_, i64>(1)?);
    let mut endpoints: HashMap<OrgId, Vec<PublishEndpoint>> = HashMap::new();
    for (org, m) in ops_out {
        seq += 1;
        let channels: Vec<&str> = m.channels.iter().map(|c| c.as_str()).collect();
        tx.execute(
            "INSERT INTO messages (seq, id, org_id, type, channels, data, occurred_at, received_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[
                &seq,
                &m.id.as_str(),
                &org.as_str(),
                &m.event_type.as_str(),
                &channels.join(" "),
                &m.data.get(),
                &m.occurred_at.as_micros(),
                &received,
            ],
        )
        .await?;
        tx.execute(
            "INSERT INTO message_channels (org_id, channel, seq)
             SELECT $1, c, $3 FROM unnest($2::text[]) AS c ON CONFLICT DO NOTHING",
            &[&org.as_str(), &channels, &seq],
        )
        .await?;
        if !endpoints.contains_key(&org) {
            let eps = endpoints_for_publish(tx, org.as_str()).await?;
            endpoints.insert(org.clone(), eps);
        }
        if let Some(eps) = endpoints.get(&org) {
            insert_deliveries(
                tx,
                eps,
                org.as_str(),
                seq as u64,
                m.id.as_str(),
                m.event_type.as_str(),
                &m.channels,
                received,
            )
            .await?;
        }
        out.push(Arc::new(StoredMessage {
            seq: seq as u64,
            id: m.id,
            org_id: org,
            event_type: m.event_type,
            channels: m.channels,
            data: m.data,
            occurred_at: m.occurred_at,
            received_at: Timestamp::from_micros(received),
        }));
    }
    tx.execute(
        "UPDATE log_head SET seq = $1, received_at = $2 WHERE id = 1",
        &[&seq, &received],
    )
    .await?;
    Ok(out)
}

/// Failure state of one endpoint during a recording batch.
#[derive(Clone, Copy)]
struct EpState {
    failing_since: Option<i64>,
    notified: bool,
    enabled: bool,
}

/// Adds settled deliveries to endpoints' counters (what stats read), in one
/// statement, in endpoint order.
async fn bump_counters(c: &Transaction<'_>, counts: HashMap<String, (i64, i64)>) -> Result<()> {
    let mut rows: Vec<(String, (i64, i64))> = counts
        .into_iter()
        .filter(|(_, (d, x))| *d != 0 || *x != 0)
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    rows.sort();
    let ids: Vec<&str> = rows.iter().map(|(e, _)| e.as_str()).collect();
    let delivered: Vec<i64> = rows.iter().map(|(_, (d, _))| *d).collect();
    let exhausted: Vec<i64> = rows.iter().map(|(_, (_, x))| *x).collect();
    c.query_typed(
        "INSERT INTO endpoint_counters (endpoint_id, delivered, exhausted)
         SELECT * FROM unnest($1::text[], $2::int8[], $3::int8[])
         ON CONFLICT (endpoint_id) DO UPDATE SET
             delivered = endpoint_counters.delivered + EXCLUDED.delivered,
             exhausted = endpoint_counters.exhausted + EXCLUDED.exhausted",
        &[
            (&ids, Type::TEXT_ARRAY),
            (&delivered, Type::INT8_ARRAY),
            (&exhausted, Type::INT8_ARRAY),
        ],
    )
    .await?;
    Ok(())
}

/// Adds attempts (endpoint, started_at µs, succeeded) to the per-minute
/// counts, in one statement.
async fn bump_minutes(tx: &Transaction<'_>, inserted: &[(String, i64, bool)]) -> Result<()> {
    let rows = crate::webhooks::minute_counts(inserted.iter().map(|(e, t, ok)| (e.as_str(), *t, *ok)));
    if rows.is_empty() {
        return Ok(());
    }
    let eps: Vec<&str> = rows.iter().map(|((e, _), _)| e.as_str()).collect();
    let minutes: Vec<i64> = rows.iter().map(|((_, m), _)| *m).collect();
    let ok: Vec<i64> = rows.iter().map(|(_, (o, _))| *o).collect();
    let failed: Vec<i64> = rows.iter().map(|(_, (_, f))| *f).collect();
    tx.query_typed(
        "INSERT INTO endpoint_minutes (endpoint_id, minute, succeeded, failed)
         SELECT * FROM unnest($1::text[], $2::int8[], $3::int8[], $4::int8[])
         ON CONFLICT (endpoint_id, minute) DO UPDATE SET
             succeeded = endpoint_minutes.succeeded + EXCLUDED.succeeded,
             failed = endpoint_minutes.failed + EXCLUDED.failed",
        &[
            (&eps, Type::TEXT_ARRAY),
            (&minutes, Type::INT8_ARRAY),
            (&ok, Type::INT8_ARRAY),
            (&failed, Type::INT8_ARRAY),
        ],
    )
    .await?;
    Ok(())
}

/// Appends a batch of attempts to the log in one statement; returns the
/// (endpoint, started_at, succeeded) of those actually inserted (a retried
/// batch whose first commit went through inserts nothing twice).
async fn insert_attempts(
    tx: &Transaction<'_>,
    outcomes: &[AttemptOutcome],
) -> Result<Vec<(String, i64, bool)>> {
    if outcomes.is_empty() {
        return Ok(Vec::new());
    }
    let a = || outcomes.iter().map(|o| &o.attempt);
    let ids: Vec<&str> = a().map(|a| a.id.as_str()).collect();
    let deliveries: Vec<&str> = a().map(|a| a.delivery_id.as_str()).collect();
    let orgs: Vec<&str> = a().map(|a| a.org_id.as_str()).collect();
    let endpoints: Vec<&str> = a().map(|a| a.endpoint_id.as_str()).collect();
    let messages: Vec<Option<&str>> = a().map(|a| a.message_id.as_ref().map(|m| m.as_str())).collect();
    let numbers: Vec<i64> = a().map(|a| i64::from(a.attempt_no)).collect();
    let started: Vec<i64> = a().map(|a| a.started_at.as_micros()).collect();
    let durations: Vec<i64> = a().map(|a| a.duration_us).collect();
    let statuses: Vec<Option<i32>> = a().map(|a| a.status_code.map(i32::from)).collect();
    let succeeded: Vec<bool> = a().map(|a| a.succeeded).collect();
    let errors: Vec<Option<&str>> = a().map(|a| a.error_kind.as_deref()).collect();
    let headers: Vec<&str> = a().map(|a| a.response_headers.as_str()).collect();
    let bodies: Vec<&str> = a().map(|a| a.response_body.as_str()).collect();
    tx.query_typed(
        &format!(
            "INSERT INTO attempts ({ATTEMPT_COLUMNS})
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int8[],
                                  $7::int8[], $8::int8[], $9::int4[], $10::bool[], $11::text[], $12::text[],
                                  $13::text[])
             ON CONFLICT (id) DO NOTHING
             RETURNING endpoint_id, started_at, succeeded"
        ),
        &[
            (&ids, Type::TEXT_ARRAY),
            (&deliveries, Type::TEXT_ARRAY),
            (&orgs, Type::TEXT_ARRAY),
            (&endpoints, Type::TEXT_ARRAY),
            (&messages, Type::TEXT_ARRAY),
            (&numbers, Type::INT8_ARRAY),
            (&started, Type::INT8_ARRAY),
            (&durations, Type::INT8_ARRAY),
            (&statuses, Type::INT4_ARRAY),
            (&succeeded, Type::BOOL_ARRAY),
            (&errors, Type::TEXT_ARRAY),
            (&headers, Type::TEXT_ARRAY),
            (&bodies, Type::TEXT_ARRAY),
        ],
    )
    .await?
    .iter()
    .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
    .collect()
}

/// One attempt of recording a batch; the caller retries on deadlock.
async fn record_tx(
    tx: &Transaction<'_>,
    outcomes: &[AttemptOutcome],
    policy: OutcomePolicy,
) -> Result<(RecordSummary, Vec<(OrgId, NewMessage)>)> {
    let now = Timestamp::now().as_micros();
    let mut summary = RecordSummary::default();
    let mut ops_out: Vec<(OrgId, NewMessage)> = Vec::new();
    let mut ep_cache: HashMap<String, Option<EpState>> = HashMap::new();
    // Lock order, the same in every batch on every node: the batch's
    // endpoint rows first (in id order), then its delivery rows. Two
    // recorders touching the same endpoints serialize on the first lock
    // instead of deadlocking on deliveries.
    let mut eps: Vec<&str> = outcomes
        .iter()
        .filter(|o| o.transition != Transition::None)
        .map(|o| o.attempt.endpoint_id.as_str())
        .collect();
    eps.sort_unstable();
    eps.dedup();
    if !eps.is_empty() {
        for id in &eps {
            ep_cache.insert((*id).to_owned(), None);
        }
        let rows = tx
            .query_typed(
                "SELECT id, failing_since, notified_failing, enabled FROM endpoints
                 WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE",
                &[(&eps, Type::TEXT_ARRAY)],
            )
            .await?;
        for r in rows {
            let id: String = r.try_get(0)?;
            let state = EpState {
                failing_since: r.try_get(1)?,
                notified: r.try_get(2)?,
                enabled: r.try_get(3)?,
            };
            ep_cache.insert(id, Some(state));
        }
    }
    let inserted = insert_attempts(tx, outcomes).await?;
    bump_minutes(tx, &inserted).await?;
    // Successes, the bulk of every batch, settle in one statement.
    let delivered: Vec<&str> = outcomes
        .iter()
        .filter(|o| o.transition == Transition::Delivered)
        .map(|o| o.attempt.delivery_id.as_str())
        .collect();
    // Deliveries settled per endpoint in this batch: (delivered, exhausted).
    let mut counts: HashMap<String, (i64, i64)> = HashMap::new();
    if !delivered.is_empty() {
        let settled = tx
            .query_typed(
                "UPDATE deliveries SET state = 'delivered', attempt_count = attempt_count + 1,
                     claimed_until = NULL, updated_at = $2
                 FROM unnest($1::text[]) AS u(id)
                 WHERE deliveries.id = u.id AND deliveries.state = 'pending'
                 RETURNING deliveries.endpoint_id",
                &[(&delivered, Type::TEXT_ARRAY), (&now, Type::INT8)],
            )
            .await?;
        for r in settled {
            counts.entry(r.try_get(0)?).or_default().0 += 1;
        }
    }
    for o in outcomes {
        let a = &o.attempt;
        let ep = a.endpoint_id.as_str();
        let operational = ops::is_operational(&o.message_type);
        let mut exhausted = false;
        let mut attempts_now = 0i64;
        match o.transition {
            Transition::None => continue,
            // Settled above, with the batch's other successes.
            Transition::Delivered => {}
            Transition::Retry { next_at } => {
                attempts_now = tx
                    .query_opt(
                        "UPDATE deliveries SET attempts = attempts + 1, attempt_count = attempt_count + 1,
                         next_at = $2, claimed_until = NULL, updated_at = $3 WHERE id = $1 AND state = 'pending'
                         RETURNING attempts",
                        &[&a.delivery_id.as_str(), &next_at.as_micros(), &now],
                    )
                    .await?
                    .map(|r| r.try_get::<_, i64>(0))
                    .transpose()?
                    .unwrap_or(0);
            }
            Transition::Exhausted => {
                let n = tx
                    .execute(
                        "UPDATE deliveries SET state = 'exhausted', attempts = attempts + 1,
                         attempt_count = attempt_count + 1, claimed_until = NULL, updated_at = $2
                         WHERE id = $1 AND state = 'pending'",
                        &[&a.delivery_id.as_str(), &now],
                    )
                    .await?;
                exhausted = n > 0;
                counts.entry(ep.to_owned()).or_default().1 += n as i64;
            }
        }
        // Endpoint failure state, read (and locked) once per endpoint per
        // batch: recorders on other nodes wait for this commit.
        let row = match ep_cache.get(ep) {
            Some(r) => *r,
            None => {
                let r = tx
                    .query_opt(
                        "SELECT failing_since, notified_failing, enabled FROM endpoints WHERE id = $1
                         FOR NO KEY UPDATE",
                        &[&ep],
                    )
                    .await?
                    .map(|r| -> Result<EpState> {
                        Ok(EpState {
                            failing_since: r.try_get(0)?,
                            notified: r.try_get(1)?,
                            enabled: r.try_get(2)?,
                        })
                    })
                    .transpose()?;
                ep_cache.insert(ep.to_owned(), r);
                r
            }
        };
        let Some(EpState {
            failing_since,
            notified,
            enabled,
        }) = row
        else {
            continue;
        };
        if a.succeeded {
            if failing_since.is_some() {
                ep_cache.insert(
                    ep.to_owned(),
                    Some(EpState {
                        failing_since: None,
                        notified: false,
                        enabled,
                    }),
                );
                tx.execute(
                    "UPDATE endpoints SET failing_since = NULL, notified_failing = FALSE WHERE id = $1",
                    &[&ep],
                )
                .await?;
                if notified
                    && let Some(m) = ops_message(
                        ops::ENDPOINT_RECOVERED,
                        ep,
                        serde_json::json!({"endpoint_id": ep, "recovered_at": Timestamp::from_micros(now).to_rfc3339()}),
                    )
                {
                    ops_out.push((a.org_id.clone(), m));
                }
            }
            continue;
        }
        let since = failing_since.unwrap_or(a.started_at.as_micros());
        ep_cache.insert(
            ep.to_owned(),
            Some(EpState {
                failing_since: Some(since),
                notified,
                enabled,
            }),
        );
        if failing_since.is_none() {
            tx.execute(
                "UPDATE endpoints SET failing_since = $2 WHERE id = $1",
                &[&ep, &since],
            )
            .await?;
        }
        let mut notify = false;
        if !operational {
            let (notice, ends_silence) = failure_notice(a, ep, exhausted, attempts_now, &policy);
            if let Some(m) = notice {
                ops_out.push((a.org_id.clone(), m));
            }
            notify = ends_silence;
        }
        let reason = disable_reason(o, now, since, &policy);
        if enabled && let Some(reason) = reason {
            tx.execute(
                "UPDATE endpoints SET enabled = FALSE, disabled_reason = $2, notified_failing = TRUE,
                 updated_at = $3 WHERE id = $1",
                &[&ep, &reason, &now],
            )
            .await?;
            summary.disabled.push(a.endpoint_id.clone());
            ep_cache.insert(
                ep.to_owned(),
                Some(EpState {
                    failing_since: Some(since),
                    notified: true,
                    enabled: false,
                }),
            );
            if let Some(m) = ops_message(
                ops::ENDPOINT_DISABLED,
                ep,
                serde_json::json!({"endpoint_id": ep, "reason": reason, "failing_since": Timestamp::from_micros(since).to_rfc3339()}),
            ) {
                ops_out.push((a.org_id.clone(), m));
            }
        } else if notify {
            ep_cache.insert(
                ep.to_owned(),
                Some(EpState {
                    failing_since: Some(since),
                    notified: true,
                    enabled,
                }),
            );
            tx.execute(
                "UPDATE endpoints SET notified_failing = TRUE WHERE id = $1",
                &[&ep],
            )
            .await?;
        }
    }
    bump_counters(tx, counts).await?;
    Ok((summary, ops_out))
}

/// Claims for one endpoint (one statement, autocommit).
async fn claim_one(
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

async fn replay_tx(
    tx: &Transaction<'_>,
    org: &str,
    endpoint: &str,
    from: ReplayFrom,
    chunk: usize,
) -> Result<ReplayProgress> {
    let ep = load_endpoint(tx, org, endpoint)
        .await?
        .ok_or(StoreError::NotFound)?;
    lock_endpoints(tx, &[endpoint]).await?;
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
    let now = Timestamp::now().as_micros();
    let mut queued = 0;
    let mut last = None;
    for r in &found {
        let (seq, id, ty, channels): (i64, String, String, String) =
            (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?);
        last = Some(seq as u64);
        if ep.filter.matches(&ty, &split_channels(&channels)) {
            upsert_delivery(tx, org, endpoint, seq, &id, now).await?;
            queued += 1;
        }
    }
    Ok(ReplayProgress {
        queued,
        next: if found.len() < chunk { None } else { last },
    })
}

/// Locks endpoint rows (`FOR NO KEY UPDATE`, id order) before a statement
/// that touches their deliveries: the lock order `record_tx` uses, so the
/// two never wait on each other in a cycle.
async fn lock_endpoints(tx: &Transaction<'_>, ids: &[&str]) -> Result<()> {
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

async fn resend_tx(tx: &Transaction<'_>, org: &str, message: &str, endpoint: Option<&str>) -> Result<u64> {
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
            upsert_delivery(tx, org, ep, seq, message, now).await?;
            Ok(1)
        }
        None => {
            let chans = split_channels(&channels);
            let mut n = 0;
            let eps = endpoints_for_publish(tx, org).await?;
            let ids: Vec<&str> = eps.iter().map(|e| e.id.as_str()).collect();
            lock_endpoints(tx, &ids).await?;
            for ep in eps {
                if ep.filter.matches(&ty, &chans) {
                    upsert_delivery(tx, org, &ep.id, seq, message, now).await?;
                    n += 1;
                }
            }
            Ok(n)
        }
    }
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
