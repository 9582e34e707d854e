//! The log append on PostgreSQL: the one place a message row, its channel
//! rows and its deliveries are written ([`LogAppend::append`]). The publish
//! task (`writer.rs`) and the webhook recorder's operational messages
//! (`endpoint.disabled`, …) both open a [`LogAppend`] inside their
//! transaction, so whatever rule applies to an appended message (per-type
//! dedup, coalescing, projections) plugs in here once.
//!
//! [`LogAppend::begin`] takes the cluster-wide log lock and reads
//! `log_head`; [`LogAppend::finish`] writes the buffered rows (one `unnest`
//! statement per table, so the lock is held for a handful of round trips
//! however many messages the transaction carries) and advances `log_head`.
//! The caller commits while still holding the lock: seq order is commit
//! order across nodes.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use marquee_core::ids::{DeliveryId, EndpointId, OrgId};
use marquee_core::message::{Idempotency, NewMessage, StoredMessage};
use marquee_core::names::Channel;
use marquee_core::timestamp::Timestamp;
use marquee_core::webhook::EndpointFilter;
use tokio_postgres::Transaction;
use tokio_postgres::types::Type;

use crate::Result;
use crate::webhooks::ClaimedDelivery;

/// Serializes every transaction that appends to the log, cluster-wide.
pub const LOG_LOCK: &str = "SELECT pg_advisory_xact_lock(hashtext(current_schema() || '/marquee-log'))";

/// Appends to the log within one transaction that holds the log lock.
pub struct LogAppend {
    next_seq: u64,
    first_seq: u64,
    received: i64,
    rows: GroupRows,
    /// Enabled endpoints per organization, read once per transaction.
    endpoints: HashMap<String, Vec<PublishEndpoint>>,
    deliveries: DeliveryRows,
    committed: Vec<Arc<StoredMessage>>,
    /// Per-type rule rows (dedup records, projections): `postgres/rules.rs`.
    pub rules: super::rules::RuleRows,
}

/// The lease that deliveries are born with when a handoff is set, and the
/// endpoints (saturated) whose deliveries are not.
pub struct BornLeased {
    pub until: i64,
    pub skip: HashSet<String>,
}

impl LogAppend {
    /// Takes the log lock and reads `log_head`. With `leased`, new deliveries
    /// of unordered endpoints are born leased (see [`LogAppend::finish`]).
    pub async fn begin(tx: &Transaction<'_>, leased: Option<BornLeased>) -> Result<Self> {
        tx.execute(LOG_LOCK, &[]).await?;
        let head = tx
            .query_one("SELECT seq, received_at FROM log_head WHERE id = 1", &[])
            .await?;
        let next_seq = head.try_get::<_, i64>(0)? as u64 + 1;
        let received = Timestamp::now().as_micros().max(head.try_get::<_, i64>(1)?);
        let mut deliveries = DeliveryRows::default();
        if let Some(l) = leased {
            deliveries.lease_until = Some(l.until);
            deliveries.no_lease = l.skip;
        }
        Ok(LogAppend {
            next_seq,
            first_seq: next_seq,
            received,
            rows: GroupRows::default(),
            endpoints: HashMap::new(),
            deliveries,
            committed: Vec::new(),
            rules: Default::default(),
        })
    }

    /// The messages appended so far, in seq order.
    pub fn committed(&self) -> &[Arc<StoredMessage>] {
        &self.committed
    }

    /// Reads the organization's enabled endpoints unless already read (a
    /// caller may do this before its first append, to make every read
    /// before any write).
    pub async fn load_endpoints(&mut self, tx: &Transaction<'_>, org: &str) -> Result<()> {
        if !self.endpoints.contains_key(org) {
            let eps = endpoints_for_publish(tx, org).await?;
            self.endpoints.insert(org.to_owned(), eps);
        }
        Ok(())
    }

    /// Appends one message to the organization's log: assigns its `seq` and
    /// buffers its message row, its channel rows and one delivery per
    /// matching enabled endpoint, written by [`LogAppend::finish`].
    pub async fn append(
        &mut self,
        tx: &Transaction<'_>,
        org_id: &OrgId,
        mut m: NewMessage,
    ) -> Result<Arc<StoredMessage>> {
        let derived = m.derived.take();
        let stored = self.append_one(tx, org_id, m).await?;
        // Attendance / drops read models; a crossed milestone is appended next.
        if let Some(d) = derived {
            for milestone in super::attendance::apply(tx, &stored, &d).await? {
                self.append_one(tx, org_id, milestone).await?;
            }
        }
        Ok(stored)
    }

    async fn append_one(
        &mut self,
        tx: &Transaction<'_>,
        org_id: &OrgId,
        m: NewMessage,
    ) -> Result<Arc<StoredMessage>> {
        let org = org_id.as_str();
        self.load_endpoints(tx, org).await?;
        let seq = self.next_seq;
        self.next_seq += 1;
        self.rows.add_message(org, seq, &m);
        self.rules.add(org, seq, self.received, &m);
        if let Some(eps) = self.endpoints.get(org) {
            self.deliveries
                .add(eps, org, seq, m.id.as_str(), m.event_type.as_str(), &m.channels);
        }
        let stored = Arc::new(StoredMessage {
            seq,
            id: m.id,
            org_id: org_id.clone(),
            event_type: m.event_type,
            channels: m.channels,
            data: m.data,
            occurred_at: m.occurred_at,
            received_at: Timestamp::from_micros(self.received),
        });
        self.committed.push(stored.clone());
        super::eventory::after_append(self, tx, org_id, &stored).await?;
        Ok(stored)
    }

    /// Records an idempotency key for messages appended in this transaction.
    pub fn remember_idempotency(
        &mut self,
        org: &str,
        idem: &Idempotency,
        answers: &[StoredMessage],
        now: i64,
    ) {
        self.rows.add_idempotency(org, idem, answers, now);
    }

    /// Writes the buffered rows and advances `log_head`. Returns the
    /// appended messages and the deliveries born leased (to hand over once
    /// the caller committed).
    pub async fn finish(
        mut self,
        tx: &Transaction<'_>,
    ) -> Result<(Vec<Arc<StoredMessage>>, Vec<ClaimedDelivery>)> {
        self.rows.flush(tx, self.received).await?;
        self.deliveries.flush(tx, self.received).await?;
        self.rules.flush(tx, self.received).await?;
        if self.next_seq != self.first_seq {
            tx.execute(
                "UPDATE log_head SET seq = $1, received_at = $2 WHERE id = 1",
                &[&((self.next_seq - 1) as i64), &self.received],
            )
            .await?;
        }
        let handed = self.deliveries.handed(&self.committed);
        Ok((self.committed, handed))
    }
}

/// Every message, channel and idempotency row a transaction appends,
/// written in one statement per table.
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
}

impl GroupRows {
    fn add_message(&mut self, org: &str, seq: u64, m: &NewMessage) {
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
    }

    fn add_idempotency(&mut self, org: &str, idem: &Idempotency, answers: &[StoredMessage], now: i64) {
        self.idem_orgs.push(org.to_owned());
        self.idem_keys.push(idem.key.clone());
        self.idem_fps.push(idem.fingerprint.to_vec());
        self.idem_seqs.push(crate::coalesce::seqs_text(answers));
        self.idem_at.push(now);
    }

    async fn flush(&self, tx: &Transaction<'_>, received: i64) -> Result<()> {
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
        Ok(())
    }
}

/// An enabled endpoint as the publish path needs it.
pub struct PublishEndpoint {
    pub id: String,
    pub filter: EndpointFilter,
    pub ordered: bool,
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

/// The deliveries of a whole publish group, inserted in one statement.
#[derive(Default)]
struct DeliveryRows {
    ids: Vec<String>,
    orgs: Vec<String>,
    endpoints: Vec<String>,
    seqs: Vec<i64>,
    message_ids: Vec<String>,
    leases: Vec<Option<i64>>,
    /// With a delivery handoff: the lease new deliveries are born with.
    lease_until: Option<i64>,
    /// Endpoints whose new deliveries are not born leased (saturated).
    no_lease: HashSet<String>,
    /// (delivery, endpoint, seq) of the deliveries born leased.
    handed: Vec<(DeliveryId, EndpointId, u64)>,
}

impl DeliveryRows {
    /// Adds one pending delivery per matching endpoint of a message.
    fn add(
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

    async fn flush(&self, tx: &Transaction<'_>, now: i64) -> Result<()> {
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
    fn handed(&mut self, committed: &[Arc<StoredMessage>]) -> Vec<ClaimedDelivery> {
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
