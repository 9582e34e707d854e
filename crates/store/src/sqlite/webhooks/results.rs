//! Attempt results: one write job per batch appends the attempts, settles
//! deliveries, bumps the stats counters, tracks failure runs and publishes
//! operational messages.

use marquee_core::ids::OrgId;
use marquee_core::message::NewMessage;
use marquee_core::timestamp::Timestamp;
use marquee_core::webhook::ops;
use rusqlite::{Connection, OptionalExtension, params};

use super::*;
use crate::Result;
use crate::sqlite::log;
use crate::webhooks::*;
use crate::webhooks::{disable_reason, failure_notice, ops_message};

/// Adds settled deliveries to an endpoint's counters (what stats read).
pub(super) fn bump_counters(conn: &Connection, endpoint: &str, delivered: i64, exhausted: i64) -> Result<()> {
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

/// Records a batch of attempt results in the open transaction: appends the
/// attempts, settles deliveries, bumps the stats counters, tracks failure
/// runs (disabling endpoints) and publishes operational messages.
pub(super) fn record(
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
                // No attempt of a message no longer stored (erased while the
                // POST was in flight): its response body must not come back.
                "INSERT OR IGNORE INTO attempts ({ATTEMPT_COLUMNS}) SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13 \
                 WHERE ?5 IS NULL OR EXISTS (SELECT 1 FROM messages WHERE id = ?5)"
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
    if !ops_out.is_empty() {
        let received = log::received_now(ctx);
        for (org_id, m) in ops_out {
            log::append(ctx, &org_id, m, received)?;
        }
    }
    Ok(summary)
}
