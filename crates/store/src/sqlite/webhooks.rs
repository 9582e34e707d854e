//! SQLite implementation of [`WebhookStore`], and the delivery-creation step
//! of the publish job.
//!
//! Deliveries are inserted by the writer inside the same transaction as their
//! message ([`insert_deliveries`], called from `writer::publish`), so a crash
//! can never leave an acknowledged message without its deliveries. Claims and
//! attempt results are ordinary write jobs and therefore ride the group
//! commit: a batch of results costs one fsync.
//!
//! With a delivery handoff set (the dispatcher of this process), new
//! deliveries of unordered endpoints are inserted with their lease already
//! set and handed over after the commit: the hot path then costs one insert
//! and one settle per delivery, with no claim query and no lease write.

use std::sync::Arc;

use async_trait::async_trait;
use marquee_core::ids::{AttemptId, DeliveryId, EndpointId, MessageId, OrgId};
use marquee_core::message::{NewMessage, StoredMessage};
use marquee_core::names::Channel;
use marquee_core::timestamp::Timestamp;
use marquee_core::webhook::{EndpointFilter, ops};
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde_json::value::RawValue;

use super::{SqliteStore, rows, writer};
use crate::webhooks::{
    AttemptOutcome, AttemptPage, AttemptQuery, AttemptRecord, ClaimRequest, ClaimedDelivery, EndpointPage,
    EndpointRecord, EndpointStats, OutcomePolicy, RecordSummary, ReplayFrom, ReplayProgress, Transition,
    WebhookStore,
};
use crate::webhooks::{disable_reason, failure_notice, ops_message};
use crate::{PublishRequest, Result, StoreError};

const EP_COLUMNS: &str = "id, org_id, url, description, types, channels, format, rate_limit, max_in_flight, \
     ordered, enabled, disabled_reason, secret, prev_secret, prev_secret_until, failing_since, created_at, updated_at";

const ATTEMPT_COLUMNS: &str = "id, delivery_id, org_id, endpoint_id, message_id, attempt_no, started_at, \
     duration_us, status_code, succeeded, error_kind, response_headers, response_body";

fn conv_err(msg: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        0,
        rusqlite::types::Type::Text,
        Box::new(std::io::Error::other(msg.to_owned())),
    )
}

fn endpoint_row(r: &Row<'_>) -> rusqlite::Result<EndpointRecord> {
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
        max_in_flight: r.get::<_, i64>(8)?.clamp(1, u32::MAX as i64) as u32,
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

fn attempt_row(r: &Row<'_>) -> rusqlite::Result<AttemptRecord> {
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
fn endpoint_values(ep: &EndpointRecord) -> Vec<Value> {
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

/// An enabled endpoint as the publish job needs it.
pub struct PublishEndpoint {
    id: EndpointId,
    filter: EndpointFilter,
    ordered: bool,
}

/// The organization's enabled endpoints, read once per publish job.
pub fn endpoints_for_publish(conn: &Connection, org: &str) -> Result<Vec<PublishEndpoint>> {
    let mut st = conn.prepare_cached(
        "SELECT id, types, channels, ordered FROM endpoints WHERE org_id = ?1 AND enabled = 1",
    )?;
    let v = st
        .query_map([org], |r| {
            let types: String = r.get(1)?;
            let channels: String = r.get(2)?;
            Ok(PublishEndpoint {
                id: EndpointId::from_trusted(r.get(0)?),
                filter: EndpointFilter::from_texts(&types, &channels),
                ordered: r.get(3)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(v)
}

/// Inserts one pending delivery per matching endpoint for a message being
/// committed (inside the publish transaction). With a delivery handoff the
/// deliveries of unordered endpoints are born leased and queued for it.
pub fn insert_deliveries(
    ctx: &mut writer::Ctx<'_>,
    endpoints: &[PublishEndpoint],
    m: &Arc<StoredMessage>,
) -> Result<()> {
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
        if n > 0 && lease.is_some() {
            ctx.handed.push(ClaimedDelivery {
                id,
                endpoint_id: ep.id.clone(),
                attempts: 0,
                attempt_count: 0,
                message: m.clone(),
                lease_until: Timestamp::from_micros(lease.unwrap_or(0)),
            });
        }
    }
    Ok(())
}

/// Queues (or re-queues) the delivery of message `seq` to `endpoint`.
fn upsert_delivery(
    conn: &Connection,
    org: &str,
    endpoint: &str,
    seq: i64,
    message_id: &str,
    now: i64,
) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO deliveries (id, org_id, endpoint_id, seq, message_id, state, next_at, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?6, ?6, ?6)
         ON CONFLICT(endpoint_id, seq) DO UPDATE SET state = 'pending', attempts = 0,
             next_at = MIN(next_at, excluded.next_at), updated_at = excluded.updated_at",
    )?
    .execute(params![DeliveryId::generate().as_str(), org, endpoint, seq, message_id, now])?;
    Ok(())
}

fn load_endpoint(conn: &Connection, org: &str, id: &str) -> Result<Option<EndpointRecord>> {
    conn.prepare_cached(&format!(
        "SELECT {EP_COLUMNS} FROM endpoints WHERE id = ?1 AND org_id = ?2"
    ))?
    .query_row([id, org], endpoint_row)
    .optional()
    .map_err(Into::into)
}

fn claim_one(
    conn: &Connection,
    req: &ClaimRequest,
    now: i64,
    lease_until: i64,
    out: &mut Vec<ClaimedDelivery>,
) -> Result<()> {
    let cols = format!(
        "d.id, d.attempts, d.attempt_count, d.next_at, d.claimed_until, m.{}",
        rows::MESSAGE_COLUMNS.replace(", ", ", m.")
    );
    let sql = if req.ordered {
        format!(
            "SELECT {cols} FROM deliveries d LEFT JOIN messages m ON m.seq = d.seq
             WHERE d.endpoint_id = ?1 AND d.state = 'pending' ORDER BY d.seq LIMIT 1"
        )
    } else {
        format!(
            "SELECT {cols} FROM deliveries d LEFT JOIN messages m ON m.seq = d.seq
             WHERE d.endpoint_id = ?1 AND d.state = 'pending' AND d.next_at <= ?2
               AND (d.claimed_until IS NULL OR d.claimed_until < ?2)
             ORDER BY d.next_at LIMIT ?3"
        )
    };
    let mut st = conn.prepare_cached(&sql)?;
    type Row5 = (
        String,
        i64,
        i64,
        i64,
        Option<i64>,
        Option<rusqlite::Result<marquee_core::message::StoredMessage>>,
    );
    let map = |r: &Row<'_>| -> rusqlite::Result<Row5> {
        let has_msg = r.get::<_, Option<i64>>(5)?.is_some();
        Ok((
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            has_msg.then(|| message_at(r, 5)),
        ))
    };
    let found: Vec<Row5> = if req.ordered {
        st.query_map([req.endpoint_id.as_str()], map)?
            .collect::<rusqlite::Result<_>>()?
    } else {
        st.query_map(params![req.endpoint_id.as_str(), now, req.limit as i64], map)?
            .collect::<rusqlite::Result<_>>()?
    };
    let mut lease = conn.prepare_cached("UPDATE deliveries SET claimed_until = ?2 WHERE id = ?1")?;
    let mut gone = conn.prepare_cached(
        "UPDATE deliveries SET state = 'exhausted', claimed_until = NULL, updated_at = ?2 WHERE id = ?1",
    )?;
    for (id, attempts, count, next_at, claimed, msg) in found {
        if req.ordered && (next_at > now || claimed.is_some_and(|c| c >= now)) {
            continue;
        }
        match msg {
            Some(Ok(message)) => {
                lease.execute(params![id, lease_until])?;
                out.push(ClaimedDelivery {
                    id: DeliveryId::from_trusted(id),
                    endpoint_id: req.endpoint_id.clone(),
                    attempts: attempts.max(0) as u32,
                    attempt_count: count.max(0) as u32,
                    message: Arc::new(message),
                    lease_until: Timestamp::from_micros(lease_until),
                });
            }
            // A row that cannot be read back can never be delivered: settle
            // it rather than fail the claim (which, after the leases above,
            // would fail the whole group).
            Some(Err(e)) => {
                tracing::error!(delivery = %id, error = %e, "undecodable message row; marking its delivery exhausted");
                let n = gone.execute(params![id, now])?;
                bump_counters(conn, req.endpoint_id.as_str(), 0, n as i64)?;
            }
            // The message was pruned by retention: nothing left to deliver.
            None => {
                let n = gone.execute(params![id, now])?;
                bump_counters(conn, req.endpoint_id.as_str(), 0, n as i64)?;
            }
        }
    }
    Ok(())
}

/// Adds settled deliveries to an endpoint's counters (what stats read).
fn bump_counters(conn: &Connection, endpoint: &str, delivered: i64, exhausted: i64) -> Result<()> {
    if delivered == 0 && exhausted == 0 {
        return Ok(());
    }
    conn.prepare_cached(
        "INSERT INTO endpoint_counters (endpoint_id, delivered, exhausted) VALUES (?1, ?2, ?3)
         ON CONFLICT (endpoint_id) DO UPDATE SET delivered = delivered + excluded.delivered,
             exhausted = exhausted + excluded.exhausted",
    )?
    .execute(params![endpoint, delivered, exhausted])?;
    Ok(())
}

/// Reads message columns starting at `offset` (the claim join).
fn message_at(r: &Row<'_>, offset: usize) -> rusqlite::Result<marquee_core::message::StoredMessage> {
    let channels: String = r.get(offset + 4)?;
    let data: String = r.get(offset + 5)?;
    Ok(marquee_core::message::StoredMessage {
        seq: r.get::<_, i64>(offset)? as u64,
        id: MessageId::from_trusted(r.get(offset + 1)?),
        org_id: OrgId::from_trusted(r.get(offset + 2)?),
        event_type: marquee_core::names::EventType::from_trusted(r.get(offset + 3)?),
        channels: channels
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(|s| Channel::from_trusted(s.to_owned()))
            .collect(),
        data: RawValue::from_string(data).map_err(|_| conv_err("stored data is not JSON"))?,
        occurred_at: Timestamp::from_micros(r.get(offset + 6)?),
        received_at: Timestamp::from_micros(r.get(offset + 7)?),
    })
}

/// Records a batch of attempt results in the open transaction: appends the
/// attempts, settles deliveries, bumps the stats counters, tracks failure
/// runs (disabling endpoints) and publishes operational messages.
fn record(
    ctx: &mut writer::Ctx<'_>,
    outcomes: Vec<AttemptOutcome>,
    policy: OutcomePolicy,
) -> Result<RecordSummary> {
    let now = Timestamp::now().as_micros();
    let mut summary = RecordSummary::default();
    let mut ops_out: Vec<(OrgId, NewMessage)> = Vec::new();
    let mut ep_cache: std::collections::HashMap<String, Option<(Option<i64>, bool, bool)>> =
        std::collections::HashMap::new();
    // Deliveries settled per endpoint in this batch: (delivered, exhausted).
    let mut counts: std::collections::HashMap<String, (i64, i64)> = std::collections::HashMap::new();
    // Attempts actually inserted (a repeated one is ignored): (endpoint,
    // started_at, succeeded), for the per-minute counts.
    let mut inserted: Vec<(String, i64, bool)> = Vec::with_capacity(outcomes.len());
    for o in outcomes {
        let a = &o.attempt;
        let n = ctx
            .conn
            .prepare_cached(&format!(
                "INSERT OR IGNORE INTO attempts ({ATTEMPT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
            ))?
            .execute(params![
                a.id.as_str(),
                a.delivery_id.as_str(),
                a.org_id.as_str(),
                a.endpoint_id.as_str(),
                a.message_id.as_ref().map(|m| m.as_str()),
                a.attempt_no as i64,
                a.started_at.as_micros(),
                a.duration_us,
                a.status_code.map(i64::from),
                a.succeeded,
                a.error_kind,
                a.response_headers,
                a.response_body,
            ])?;
        if n > 0 {
            inserted.push((
                a.endpoint_id.as_str().to_owned(),
                a.started_at.as_micros(),
                a.succeeded,
            ));
        }
        let ep = a.endpoint_id.as_str();
        let operational = ops::is_operational(&o.message_type);
        let mut exhausted = false;
        let mut attempts_now = 0i64;
        match o.transition {
            Transition::None => {}
            Transition::Delivered => {
                let n = ctx
                    .conn
                    .prepare_cached(
                        "UPDATE deliveries SET state = 'delivered', attempt_count = attempt_count + 1,
                         claimed_until = NULL, updated_at = ?2 WHERE id = ?1 AND state = 'pending'",
                    )?
                    .execute(params![a.delivery_id.as_str(), now])?;
                counts.entry(ep.to_owned()).or_default().0 += n as i64;
            }
            Transition::Retry { next_at } => {
                attempts_now = ctx
                    .conn
                    .prepare_cached(
                        "UPDATE deliveries SET attempts = attempts + 1, attempt_count = attempt_count + 1,
                         next_at = ?2, claimed_until = NULL, updated_at = ?3 WHERE id = ?1 AND state = 'pending'
                         RETURNING attempts",
                    )?
                    .query_row(params![a.delivery_id.as_str(), next_at.as_micros(), now], |r| r.get(0))
                    .optional()?
                    .unwrap_or(0);
            }
            Transition::Exhausted => {
                let n = ctx
                    .conn
                    .prepare_cached(
                        "UPDATE deliveries SET state = 'exhausted', attempts = attempts + 1,
                         attempt_count = attempt_count + 1, claimed_until = NULL, updated_at = ?2
                         WHERE id = ?1 AND state = 'pending'",
                    )?
                    .execute(params![a.delivery_id.as_str(), now])?;
                exhausted = n > 0;
                counts.entry(ep.to_owned()).or_default().1 += n as i64;
            }
        }
        if o.transition == Transition::None {
            continue;
        }
        // Endpoint failure state, read once per endpoint per batch.
        let row = match ep_cache.get(ep) {
            Some(r) => *r,
            None => {
                let r: Option<(Option<i64>, bool, bool)> = ctx
                    .conn
                    .prepare_cached(
                        "SELECT failing_since, notified_failing, enabled FROM endpoints WHERE id = ?1",
                    )?
                    .query_row([ep], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                    .optional()?;
                ep_cache.insert(ep.to_owned(), r);
                r
            }
        };
        let Some((failing_since, notified, enabled)) = row else {
            continue;
        };
        if a.succeeded {
            if failing_since.is_some() {
                ep_cache.insert(ep.to_owned(), Some((None, false, enabled)));
                ctx.conn
                    .prepare_cached(
                        "UPDATE endpoints SET failing_since = NULL, notified_failing = 0 WHERE id = ?1",
                    )?
                    .execute([ep])?;
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
        ep_cache.insert(ep.to_owned(), Some((Some(since), notified, enabled)));
        if failing_since.is_none() {
            ctx.conn
                .prepare_cached("UPDATE endpoints SET failing_since = ?2 WHERE id = ?1")?
                .execute(params![ep, since])?;
        }
        let mut notify = false;
        if !operational {
            let (notice, ends_silence) = failure_notice(a, ep, exhausted, attempts_now, &policy);
            if let Some(m) = notice {
                ops_out.push((a.org_id.clone(), m));
            }
            notify = ends_silence;
        }
        let reason = disable_reason(&o, now, since, &policy);
        if enabled && let Some(reason) = reason {
            ctx.conn
                .prepare_cached(
                    "UPDATE endpoints SET enabled = 0, disabled_reason = ?2, notified_failing = 1, updated_at = ?3 WHERE id = ?1",
                )?
                .execute(params![ep, reason, now])?;
            summary.disabled.push(a.endpoint_id.clone());
            ctx.forget_endpoints();
            ep_cache.insert(ep.to_owned(), Some((Some(since), true, false)));
            if let Some(m) = ops_message(
                ops::ENDPOINT_DISABLED,
                ep,
                serde_json::json!({"endpoint_id": ep, "reason": reason, "failing_since": Timestamp::from_micros(since).to_rfc3339()}),
            ) {
                ops_out.push((a.org_id.clone(), m));
            }
        } else if notify {
            ep_cache.insert(ep.to_owned(), Some((Some(since), true, enabled)));
            ctx.conn
                .prepare_cached("UPDATE endpoints SET notified_failing = 1 WHERE id = ?1")?
                .execute([ep])?;
        }
    }
    for (ep, (delivered, exhausted)) in counts {
        bump_counters(ctx.conn, &ep, delivered, exhausted)?;
    }
    let mut minute = ctx.conn.prepare_cached(
        "INSERT INTO endpoint_minutes (endpoint_id, minute, succeeded, failed) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (endpoint_id, minute) DO UPDATE SET succeeded = succeeded + excluded.succeeded,
             failed = failed + excluded.failed",
    )?;
    for ((ep, m), (ok, failed)) in
        crate::webhooks::minute_counts(inserted.iter().map(|(e, t, ok)| (e.as_str(), *t, *ok)))
    {
        minute.execute(params![ep, m, ok, failed])?;
    }
    drop(minute);
    for (org_id, m) in ops_out {
        writer::publish(
            ctx,
            PublishRequest {
                org_id,
                messages: vec![m],
                request_idempotency: None,
            },
        )?;
    }
    Ok(summary)
}

fn replay(
    ctx: &mut writer::Ctx<'_>,
    org: &str,
    endpoint: &str,
    from: ReplayFrom,
    chunk: usize,
) -> Result<ReplayProgress> {
    let conn = ctx.conn;
    let ep = load_endpoint(conn, org, endpoint)?.ok_or(StoreError::NotFound)?;
    let after: i64 = match from {
        ReplayFrom::AfterSeq(s) => s as i64,
        ReplayFrom::Since(t) => match super::reader::first_seq_received_since(conn, t.as_micros())? {
            Some(s) => s - 1,
            None => {
                return Ok(ReplayProgress {
                    queued: 0,
                    next: None,
                });
            }
        },
    };
    let found: Vec<(i64, String, String, String)> = conn
        .prepare_cached(
            "SELECT seq, id, type, channels FROM messages WHERE org_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
        )?
        .query_map(params![org, after, chunk as i64], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let now = Timestamp::now().as_micros();
    let mut queued = 0;
    let mut last = None;
    for (seq, id, ty, channels) in &found {
        last = Some(*seq as u64);
        let chans: Vec<Channel> = channels
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(|s| Channel::from_trusted(s.to_owned()))
            .collect();
        if ep.filter.matches(ty, &chans) {
            upsert_delivery(conn, org, endpoint, *seq, id, now)?;
            queued += 1;
        }
    }
    Ok(ReplayProgress {
        queued,
        next: if found.len() < chunk { None } else { last },
    })
}

fn resend(ctx: &mut writer::Ctx<'_>, org: &str, message: &str, endpoint: Option<&str>) -> Result<u64> {
    let conn = ctx.conn;
    let row: Option<(i64, String, String)> = conn
        .prepare_cached("SELECT seq, type, channels FROM messages WHERE id = ?1 AND org_id = ?2")?
        .query_row([message, org], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let (seq, ty, channels) = row.ok_or(StoreError::NotFound)?;
    let now = Timestamp::now().as_micros();
    match endpoint {
        Some(ep) => {
            load_endpoint(conn, org, ep)?.ok_or(StoreError::NotFound)?;
            upsert_delivery(conn, org, ep, seq, message, now)?;
            Ok(1)
        }
        None => {
            let chans: Vec<Channel> = channels
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(|s| Channel::from_trusted(s.to_owned()))
                .collect();
            let mut n = 0;
            for ep in endpoints_for_publish(conn, org)? {
                if ep.filter.matches(&ty, &chans) {
                    upsert_delivery(conn, org, ep.id.as_str(), seq, message, now)?;
                    n += 1;
                }
            }
            Ok(n)
        }
    }
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

    use super::*;
    use crate::Store;
    use crate::sqlite::{SqliteOptions, SqliteStore};
    use crate::webhooks::{AttemptOutcome, ClaimRequest, OutcomePolicy, Transition};

    fn endpoint(org: &OrgId, types: &str) -> EndpointRecord {
        EndpointRecord {
            id: EndpointId::generate(),
            org_id: org.clone(),
            url: "https://example.com/h".into(),
            description: None,
            filter: EndpointFilter::from_texts(types, ""),
            format: Format::Standard,
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
        }
    }

    #[tokio::test]
    async fn publish_creates_deliveries_that_claim_once_and_settle() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap();
        let org = store.create_org("o").await.unwrap();
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
        // A version-2 database (no counters yet) gets them filled from its
        // delivery rows when it is opened.
        {
            let c = Connection::open(dir.path().join(super::super::DB_FILE)).unwrap();
            c.execute_batch("DROP TABLE endpoint_counters; PRAGMA user_version = 2;")
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
        assert_eq!(v, 3);
        let n: i64 = c
            .query_row("SELECT COUNT(*) FROM endpoints", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 0);
    }
}
