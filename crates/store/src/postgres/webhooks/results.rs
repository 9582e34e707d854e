//! Attempt results: one transaction per batch that locks the batch's
//! endpoints first (id order), appends the attempts, settles deliveries,
//! bumps the stats counters, tracks failure runs and publishes operational
//! messages under the log lock.

use std::collections::HashMap;
use std::sync::Arc;

use marquee_core::ids::OrgId;
use marquee_core::message::{NewMessage, StoredMessage};
use marquee_core::timestamp::Timestamp;
use marquee_core::webhook::ops;
use tokio_postgres::Transaction;
use tokio_postgres::types::Type;

use super::*;
use crate::Result;
use crate::postgres::log::LogAppend;
use crate::webhooks::{disable_reason, failure_notice, ops_message};

/// Appends operational messages to the log inside `tx` through the one log
/// append (which takes the log lock, assigns seqs from `log_head` and
/// creates their deliveries). Returns what to announce after the commit.
pub(super) async fn append_ops(
    tx: &Transaction<'_>,
    ops_out: Vec<(OrgId, NewMessage)>,
) -> Result<Vec<Arc<StoredMessage>>> {
    if ops_out.is_empty() {
        return Ok(Vec::new());
    }
    let mut log = LogAppend::begin(tx, None).await?;
    for (org, m) in ops_out {
        log.append(tx, &org, m).await?;
    }
    Ok(log.finish(tx).await?.0)
}

/// Failure state of one endpoint during a recording batch.
#[derive(Clone, Copy)]
pub(super) struct EpState {
    failing_since: Option<i64>,
    notified: bool,
    enabled: bool,
}

/// Adds settled deliveries to endpoints' counters (what stats read), in one
/// statement, in endpoint order.
pub(super) async fn bump_counters(c: &Transaction<'_>, counts: HashMap<String, (i64, i64)>) -> Result<()> {
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
pub(super) async fn bump_minutes(tx: &Transaction<'_>, inserted: &[(String, i64, bool)]) -> Result<()> {
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
pub(super) async fn insert_attempts(
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
                                  $13::text[]) AS u(i, d, o, e, m, n, s, du, st, ok, er, h, b)
             -- No attempt of a message no longer stored (erased while the
             -- POST was in flight): its response body must not come back.
             WHERE u.m IS NULL OR EXISTS (SELECT 1 FROM messages WHERE messages.id = u.m)
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
pub(super) async fn record_tx(
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
