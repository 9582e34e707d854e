//! SQLite implementation of [`WebhookStore`].
//!
//! Deliveries are inserted by the log append inside the same transaction as
//! their message (`sqlite/log.rs`), so a crash
//! can never leave an acknowledged message without its deliveries. Claims and
//! attempt results are ordinary write jobs and therefore ride the group
//! commit: a batch of results costs one fsync.
//!
//! With a delivery handoff set (the dispatcher of this process), new
//! deliveries of unordered endpoints are inserted with their lease already
//! set and handed over after the commit: the hot path then costs one insert
//! and one settle per delivery, with no claim query and no lease write.

use async_trait::async_trait;
use marquee_core::ids::{AttemptId, DeliveryId, EndpointId, MessageId, OrgId};
use marquee_core::timestamp::Timestamp;
use marquee_core::webhook::EndpointFilter;
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{SqliteStore, rows, writer};
use crate::webhooks::{
    AttemptOutcome, AttemptPage, AttemptQuery, AttemptRecord, ClaimRequest, ClaimedDelivery, EndpointPage,
    EndpointRecord, EndpointStats, OutcomePolicy, RecordSummary, ReplayFrom, ReplayProgress, WebhookStore,
};
use crate::{Result, StoreError};

mod deliveries;
mod results;

use deliveries::*;
use results::*;

pub(super) const EP_COLUMNS: &str = "id, org_id, url, description, types, channels, format, rate_limit, max_in_flight, \
     ordered, enabled, disabled_reason, secret, prev_secret, prev_secret_until, failing_since, created_at, updated_at";

pub(super) const ATTEMPT_COLUMNS: &str = "id, delivery_id, org_id, endpoint_id, message_id, attempt_no, started_at, \
     duration_us, status_code, succeeded, error_kind, response_headers, response_body";

pub(super) fn conv_err(msg: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        0,
        rusqlite::types::Type::Text,
        Box::new(std::io::Error::other(msg.to_owned())),
    )
}

pub(super) fn endpoint_row(r: &Row<'_>) -> rusqlite::Result<EndpointRecord> {
    let types: String = r.get(4)?;
    let channels: String = r.get(5)?;
    let format: String = r.get(6)?;
    Ok(EndpointRecord {
        id: EndpointId::from_trusted(r.get(0)?),
        org_id: OrgId::from_trusted(r.get(1)?),
        url: r.get(2)?,
        description: r.get(3)?,
        filter: EndpointFilter::from_texts(&types, &channels),
        format: format.parse().map_err(|_| conv_err("unknown endpoint format"))?,
        rate_limit: r
            .get::<_, Option<i64>>(7)?
            .map(|v| v.clamp(0, u32::MAX as i64) as u32),
        max_in_flight: r.get::<_, i64>(8)?.clamp(0, u32::MAX as i64) as u32, // 0: adaptive
        ordered: r.get(9)?,
        enabled: r.get(10)?,
        disabled_reason: r.get(11)?,
        secret_sealed: r.get(12)?,
        previous_secret_sealed: r.get(13)?,
        previous_secret_until: r.get::<_, Option<i64>>(14)?.map(Timestamp::from_micros),
        failing_since: r.get::<_, Option<i64>>(15)?.map(Timestamp::from_micros),
        created_at: Timestamp::from_micros(r.get(16)?),
        updated_at: Timestamp::from_micros(r.get(17)?),
    })
}

pub(super) fn attempt_row(r: &Row<'_>) -> rusqlite::Result<AttemptRecord> {
    Ok(AttemptRecord {
        id: AttemptId::from_trusted(r.get(0)?),
        delivery_id: DeliveryId::from_trusted(r.get(1)?),
        org_id: OrgId::from_trusted(r.get(2)?),
        endpoint_id: EndpointId::from_trusted(r.get(3)?),
        message_id: r.get::<_, Option<String>>(4)?.map(MessageId::from_trusted),
        attempt_no: r.get::<_, i64>(5)?.max(0) as u32,
        started_at: Timestamp::from_micros(r.get(6)?),
        duration_us: r.get(7)?,
        status_code: r.get::<_, Option<i64>>(8)?.map(|s| s.clamp(0, 999) as u16),
        succeeded: r.get(9)?,
        error_kind: r.get(10)?,
        response_headers: r.get(11)?,
        response_body: r.get(12)?,
    })
}

/// The first 15 endpoint columns (id … prev_secret_until), in `EP_COLUMNS`
/// order: shared by the insert and the update.
pub(super) fn endpoint_values(ep: &EndpointRecord) -> Vec<Value> {
    vec![
        Value::from(ep.id.as_str().to_owned()),
        Value::from(ep.org_id.as_str().to_owned()),
        Value::from(ep.url.clone()),
        Value::from(ep.description.clone()),
        Value::from(ep.filter.types_text()),
        Value::from(ep.filter.channels_text()),
        Value::from(ep.format.as_str().to_owned()),
        Value::from(ep.rate_limit.map(i64::from)),
        Value::from(i64::from(ep.max_in_flight)),
        Value::from(ep.ordered),
        Value::from(ep.enabled),
        Value::from(ep.disabled_reason.clone()),
        Value::from(ep.secret_sealed.clone()),
        Value::from(ep.previous_secret_sealed.clone()),
        Value::from(ep.previous_secret_until.map(|t| t.as_micros())),
    ]
}

pub(super) fn load_endpoint(conn: &Connection, org: &str, id: &str) -> Result<Option<EndpointRecord>> {
    conn.prepare_cached(&format!(
        "SELECT {EP_COLUMNS} FROM endpoints WHERE id = ?1 AND org_id = ?2"
    ))?
    .query_row([id, org], endpoint_row)
    .optional()
    .map_err(Into::into)
}

#[async_trait]
impl WebhookStore for SqliteStore {
    async fn create_endpoint(&self, ep: EndpointRecord) -> Result<()> {
        self.writer
            .write(move |ctx| {
                ctx.conn
                    .prepare_cached(&format!(
                        "INSERT INTO endpoints ({EP_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)"
                    ))?
                    .execute(rusqlite::params_from_iter(endpoint_values(&ep).into_iter().chain([
                        Value::from(ep.failing_since.map(|t| t.as_micros())),
                        Value::from(ep.created_at.as_micros()),
                        Value::from(ep.updated_at.as_micros()),
                    ])))?;
                Ok(())
            })
            .await
    }

    async fn get_endpoint(&self, org: &OrgId, id: &EndpointId) -> Result<Option<EndpointRecord>> {
        let (org, id) = (org.as_str().to_owned(), id.as_str().to_owned());
        self.readers.with(move |c| load_endpoint(c, &org, &id))
    }

    async fn list_endpoints(
        &self,
        org: &OrgId,
        after: Option<&EndpointId>,
        limit: usize,
    ) -> Result<EndpointPage> {
        let org = org.as_str().to_owned();
        let after = after.map(|a| a.as_str().to_owned()).unwrap_or_default();
        self.readers.with(move |c| {
            let mut v = c
                .prepare_cached(&format!(
                    "SELECT {EP_COLUMNS} FROM endpoints WHERE org_id = ?1 AND id > ?2 ORDER BY id LIMIT ?3"
                ))?
                .query_map(params![org, after, (limit + 1) as i64], endpoint_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let has_more = v.len() > limit;
            v.truncate(limit);
            Ok(EndpointPage {
                endpoints: v,
                has_more,
            })
        })
    }

    async fn all_endpoints(&self) -> Result<Vec<EndpointRecord>> {
        self.readers
            .with_blocking(|c| {
                let v = c
                    .prepare_cached(&format!("SELECT {EP_COLUMNS} FROM endpoints ORDER BY id"))?
                    .query_map([], endpoint_row)?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok(v)
            })
            .await
    }

    async fn update_endpoint(&self, ep: EndpointRecord, expected: Timestamp) -> Result<()> {
        self.writer
            .write(move |ctx| {
                let n = ctx
                    .conn
                    .prepare_cached(
                        "UPDATE endpoints SET url = ?3, description = ?4, types = ?5, channels = ?6, format = ?7,
                         rate_limit = ?8, max_in_flight = ?9, ordered = ?10,
                         failing_since = CASE WHEN ?11 AND enabled = 0 THEN NULL ELSE failing_since END,
                         notified_failing = CASE WHEN ?11 AND enabled = 0 THEN 0 ELSE notified_failing END,
                         enabled = ?11, disabled_reason = ?12, secret = ?13, prev_secret = ?14,
                         prev_secret_until = ?15, updated_at = ?16
                         WHERE id = ?1 AND org_id = ?2 AND updated_at = ?17",
                    )?
                    .execute(rusqlite::params_from_iter(endpoint_values(&ep).into_iter().chain([
                        Value::from(ep.updated_at.as_micros()),
                        Value::from(expected.as_micros()),
                    ])))?;
                if n == 0 {
                    let exists: Option<i64> = ctx
                        .conn
                        .query_row(
                            "SELECT 1 FROM endpoints WHERE id = ?1 AND org_id = ?2",
                            params![ep.id.as_str(), ep.org_id.as_str()],
                            |r| r.get(0),
                        )
                        .optional()?;
                    return Err(match exists {
                        Some(_) => StoreError::Conflict("the endpoint changed meanwhile".into()),
                        None => StoreError::NotFound,
                    });
                }
                Ok(())
            })
            .await
    }

    async fn delete_endpoint(&self, org: &OrgId, id: &EndpointId) -> Result<bool> {
        let (org, id) = (org.as_str().to_owned(), id.as_str().to_owned());
        self.writer
            .write(move |ctx| {
                let n = ctx
                    .conn
                    .execute("DELETE FROM endpoints WHERE id = ?1 AND org_id = ?2", [&id, &org])?;
                if n > 0 {
                    ctx.conn
                        .execute("DELETE FROM deliveries WHERE endpoint_id = ?1", [&id])?;
                    ctx.conn
                        .execute("DELETE FROM endpoint_counters WHERE endpoint_id = ?1", [&id])?;
                    ctx.conn
                        .execute("DELETE FROM endpoint_minutes WHERE endpoint_id = ?1", [&id])?;
                }
                Ok(n > 0)
            })
            .await
    }

    async fn claim_deliveries(
        &self,
        reqs: Vec<ClaimRequest>,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<Vec<ClaimedDelivery>> {
        // Unguarded: a claim fails only on a database error, which fails
        // its group anyway; and it never changes endpoints.
        self.writer
            .write_unguarded(move |ctx| {
                let mut out = Vec::new();
                for r in &reqs {
                    if r.limit > 0 {
                        claim_one(ctx.conn, r, now.as_micros(), lease_until.as_micros(), &mut out)?;
                    }
                }
                Ok(out)
            })
            .await
    }

    async fn release_all_leases(&self) -> Result<u64> {
        self.writer
            .write(|ctx| {
                let n = ctx.conn.execute(
                    "UPDATE deliveries SET claimed_until = NULL WHERE state = 'pending' AND claimed_until IS NOT NULL",
                    [],
                )?;
                Ok(n as u64)
            })
            .await
    }

    fn set_delivery_handoff(&self, handoff: Option<crate::webhooks::Handoff>) {
        self.hooks.set_handoff(handoff);
    }

    async fn release_leases(&self, leases: Vec<(DeliveryId, Timestamp)>) -> Result<u64> {
        self.writer
            .write_unguarded(move |ctx| {
                let mut st = ctx.conn.prepare_cached(
                    "UPDATE deliveries SET claimed_until = NULL
                     WHERE id = ?1 AND claimed_until = ?2 AND state = 'pending'",
                )?;
                let mut n = 0;
                for (id, until) in &leases {
                    n += st.execute(params![id.as_str(), until.as_micros()])? as u64;
                }
                Ok(n)
            })
            .await
    }

    async fn pending_endpoints(&self) -> Result<Vec<(EndpointId, Timestamp)>> {
        self.readers
            .with_blocking(|c| {
                let v = c
                    .prepare_cached(
                        "SELECT e.id, (SELECT MIN(d.next_at) FROM deliveries d
                                       WHERE d.endpoint_id = e.id AND d.state = 'pending')
                         FROM endpoints e WHERE e.enabled = 1",
                    )?
                    .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, Option<i64>>(1)?)))?
                    .filter_map(|r| match r {
                        Ok((id, Some(t))) => {
                            Some(Ok((EndpointId::from_trusted(id), Timestamp::from_micros(t))))
                        }
                        Ok((_, None)) => None,
                        Err(e) => Some(Err(e)),
                    })
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok(v)
            })
            .await
    }

    async fn record_attempts(
        &self,
        outcomes: Vec<AttemptOutcome>,
        policy: OutcomePolicy,
    ) -> Result<RecordSummary> {
        // Unguarded (no savepoint): `record` fails only on database errors,
        // which fail the whole group; it forgets cached endpoints itself
        // when it disables one.
        self.writer
            .write_unguarded(move |ctx| record(ctx, outcomes, policy))
            .await
    }

    async fn list_attempts(&self, org: &OrgId, q: &AttemptQuery) -> Result<AttemptPage> {
        let org = org.as_str().to_owned();
        let q = q.clone();
        self.readers
            .with_blocking(move |c| {
                use rusqlite::types::Value;
                let mut sql = format!("SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE org_id = ?1");
                let mut args: Vec<Value> = vec![Value::Text(org)];
                if let Some(e) = &q.endpoint_id {
                    args.push(Value::Text(e.as_str().to_owned()));
                    sql.push_str(&format!(" AND endpoint_id = ?{}", args.len()));
                }
                if let Some(m) = &q.message_id {
                    args.push(Value::Text(m.as_str().to_owned()));
                    sql.push_str(&format!(" AND message_id = ?{}", args.len()));
                }
                if let Some(s) = q.succeeded {
                    args.push(Value::Integer(i64::from(s)));
                    sql.push_str(&format!(" AND succeeded = ?{}", args.len()));
                }
                if let Some(a) = &q.after {
                    args.push(Value::Text(a.as_str().to_owned()));
                    sql.push_str(&format!(" AND id > ?{}", args.len()));
                }
                sql.push_str(&format!(" ORDER BY id LIMIT {}", q.limit + 1));
                let mut v = c
                    .prepare_cached(&sql)?
                    .query_map(rusqlite::params_from_iter(args), attempt_row)?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                let has_more = v.len() > q.limit;
                v.truncate(q.limit);
                Ok(AttemptPage {
                    attempts: v,
                    has_more,
                })
            })
            .await
    }

    async fn resend(&self, org: &OrgId, message: &MessageId, endpoint: Option<&EndpointId>) -> Result<u64> {
        let (org, message) = (org.as_str().to_owned(), message.as_str().to_owned());
        let endpoint = endpoint.map(|e| e.as_str().to_owned());
        self.writer
            .write(move |ctx| resend(ctx, &org, &message, endpoint.as_deref()))
            .await
    }

    async fn recover(
        &self,
        org: &OrgId,
        endpoint: &EndpointId,
        since: Timestamp,
        until: Timestamp,
    ) -> Result<u64> {
        let (org, ep) = (org.as_str().to_owned(), endpoint.as_str().to_owned());
        self.writer
            .write(move |ctx| {
                load_endpoint(ctx.conn, &org, &ep)?.ok_or(StoreError::NotFound)?;
                let now = Timestamp::now().as_micros();
                let n = ctx.conn.execute(
                    "UPDATE deliveries SET state = 'pending', attempts = 0, next_at = ?4, updated_at = ?4
                     WHERE endpoint_id = ?1 AND created_at >= ?2 AND created_at < ?3
                       AND (state = 'exhausted'
                            OR (state = 'pending' AND attempt_count > 0
                                AND (claimed_until IS NULL OR claimed_until < ?4)))",
                    params![ep, since.as_micros(), until.as_micros(), now],
                )?;
                Ok(n as u64)
            })
            .await
    }

    async fn replay_chunk(
        &self,
        org: &OrgId,
        endpoint: &EndpointId,
        from: ReplayFrom,
        chunk: usize,
    ) -> Result<ReplayProgress> {
        let (org, ep) = (org.as_str().to_owned(), endpoint.as_str().to_owned());
        self.writer
            .write(move |ctx| replay(ctx, &org, &ep, from, chunk.max(1)))
            .await
    }

    async fn endpoint_stats(
        &self,
        org: &OrgId,
        endpoint: &EndpointId,
        now: Timestamp,
    ) -> Result<EndpointStats> {
        let (org, ep) = (org.as_str().to_owned(), endpoint.as_str().to_owned());
        self.readers
            .with_blocking(move |c| {
                load_endpoint(c, &org, &ep)?.ok_or(StoreError::NotFound)?;
                let mut s = EndpointStats::default();
                // Settled counts from the counters, pending ones through the
                // pending-only index, the last hour from per-minute buckets:
                // none of it grows with the history.
                let (delivered, exhausted): (i64, i64) = c
                    .prepare_cached(
                        "SELECT delivered, exhausted FROM endpoint_counters WHERE endpoint_id = ?1",
                    )?
                    .query_row([&ep], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?
                    .unwrap_or((0, 0));
                let (pending, retrying): (i64, i64) = c
                    .prepare_cached(
                        "SELECT COUNT(*), COALESCE(SUM(attempt_count > 0), 0) FROM deliveries
                         WHERE endpoint_id = ?1 AND state = 'pending'",
                    )?
                    .query_row([&ep], |r| Ok((r.get(0)?, r.get(1)?)))?;
                s.delivered = delivered.max(0) as u64;
                s.exhausted = exhausted.max(0) as u64;
                s.pending = pending.max(0) as u64;
                s.retrying = retrying.max(0) as u64;
                let last = |ok: bool| -> Result<Option<Timestamp>> {
                    let v: Option<i64> = c
                        .prepare_cached(
                            "SELECT MAX(started_at) FROM attempts WHERE endpoint_id = ?1 AND succeeded = ?2",
                        )?
                        .query_row(params![ep, ok], |r| r.get(0))?;
                    Ok(v.map(Timestamp::from_micros))
                };
                s.last_success_at = last(true)?;
                s.last_failure_at = last(false)?;
                let (ok, failed): (i64, i64) = c
                    .prepare_cached(
                        "SELECT COALESCE(SUM(succeeded), 0), COALESCE(SUM(failed), 0) FROM endpoint_minutes
                         WHERE endpoint_id = ?1 AND minute >= ?2",
                    )?
                    .query_row(params![ep, crate::webhooks::hour_window_start(now)], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })?;
                s.attempts_last_hour = (ok + failed).max(0) as u64;
                s.succeeded_last_hour = ok.max(0) as u64;
                Ok(s)
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use marquee_core::message::NewMessage;
    use marquee_core::wire::Format;
    use serde_json::value::RawValue;

    use super::*;
    use crate::sqlite::{SqliteOptions, SqliteStore};
    use crate::webhooks::{AttemptOutcome, ClaimRequest, OutcomePolicy, Transition};
    use crate::{PublishRequest, Store};

    fn endpoint(org: &OrgId, types: &str) -> EndpointRecord {
        EndpointRecord {
            id: EndpointId::generate(),
            org_id: org.clone(),
            url: "https://example.com/h".into(),
            description: None,
            filter: EndpointFilter::from_texts(types, ""),
            format: Format::standard(),
            rate_limit: None,
            max_in_flight: 8,
            ordered: false,
            enabled: true,
            disabled_reason: None,
            secret_sealed: vec![1, 2, 3],
            previous_secret_sealed: None,
            previous_secret_until: None,
            failing_since: None,
            created_at: Timestamp::now(),
            updated_at: Timestamp::now(),
        }
    }

    fn msg(ty: &str) -> NewMessage {
        NewMessage {
            id: MessageId::generate(),
            event_type: ty.parse().unwrap(),
            channels: vec!["venue:a".parse().unwrap()],
            data: RawValue::from_string("{}".into()).unwrap(),
            occurred_at: Timestamp::now(),
            idempotency: None,
            dedup: None,
            project: None,
            coalesce: None,
            derived: None,
        }
    }

    #[tokio::test]
    async fn publish_creates_deliveries_that_claim_once_and_settle() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap();
        let org = store.create_org("o", &[]).await.unwrap();
        let ep = endpoint(&org.id, "fan_*");
        store.create_endpoint(ep.clone()).await.unwrap();
        store
            .publish(PublishRequest {
                org_id: org.id.clone(),
                messages: vec![msg("fan_checkin"), msg("order.completed")],
                request_idempotency: None,
            })
            .await
            .unwrap();
        let req = vec![ClaimRequest {
            endpoint_id: ep.id.clone(),
            limit: 10,
            ordered: false,
        }];
        let now = Timestamp::now();
        let lease = now.saturating_add_micros(60_000_000);
        let claimed = store.claim_deliveries(req.clone(), now, lease).await.unwrap();
        assert_eq!(claimed.len(), 1, "only the matching message has a delivery");
        assert_eq!(claimed[0].message.event_type.as_str(), "fan_checkin");
        assert!(
            store
                .claim_deliveries(req.clone(), now, lease)
                .await
                .unwrap()
                .is_empty(),
            "leased"
        );
        let d = &claimed[0];
        let attempt = AttemptRecord {
            id: AttemptId::generate(),
            delivery_id: d.id.clone(),
            org_id: org.id.clone(),
            endpoint_id: ep.id.clone(),
            message_id: Some(d.message.id.clone()),
            attempt_no: 1,
            started_at: now,
            duration_us: 10,
            status_code: Some(200),
            succeeded: true,
            error_kind: None,
            response_headers: "{}".into(),
            response_body: String::new(),
        };
        let policy = OutcomePolicy {
            disable_after_us: i64::MAX,
            failing_after: 4,
        };
        store
            .record_attempts(
                vec![AttemptOutcome {
                    attempt,
                    transition: Transition::Delivered,
                    message_type: "fan_checkin".into(),
                    disable: None,
                }],
                policy,
            )
            .await
            .unwrap();
        let stats = store
            .endpoint_stats(&org.id, &ep.id, Timestamp::now())
            .await
            .unwrap();
        assert_eq!((stats.delivered, stats.pending), (1, 0));
        assert!(store.release_all_leases().await.unwrap() == 0);
        assert!(store.claim_deliveries(req, now, lease).await.unwrap().is_empty());
        drop(store);
        // A version-2 database (no counters yet, nor anything of v4) gets
        // them filled from its delivery rows when it is opened.
        {
            let c = Connection::open(dir.path().join(super::super::DB_FILE)).unwrap();
            c.execute_batch(
                "DROP TABLE endpoint_counters; DROP TABLE event_types;
                 ALTER TABLE orgs DROP COLUMN profiles;
                 ALTER TABLE api_keys DROP COLUMN max_stream_connections;
                 PRAGMA user_version = 2;",
            )
            .unwrap();
        }
        let store = SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap();
        let stats = store
            .endpoint_stats(&org.id, &ep.id, Timestamp::now())
            .await
            .unwrap();
        assert_eq!(
            (stats.delivered, stats.pending, stats.attempts_last_hour),
            (1, 0, 1)
        );
    }

    #[test]
    fn a_version_1_database_migrates() {
        let dir = tempfile::tempdir().unwrap();
        {
            let c = Connection::open(dir.path().join(super::super::DB_FILE)).unwrap();
            c.execute_batch(super::super::SCHEMA).unwrap();
            c.pragma_update(None, "user_version", 1).unwrap();
        }
        let _store = SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap();
        let c = Connection::open(dir.path().join(super::super::DB_FILE)).unwrap();
        let v: i64 = c.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
        assert_eq!(v, super::super::SCHEMA_VERSION);
        let n: i64 = c
            .query_row("SELECT COUNT(*) FROM endpoints", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 0);
    }
}
