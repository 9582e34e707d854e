//! Attempt results: built from each POST, sent to one recorder task and
//! written in batches (one commit for up to `RESULT_BATCH` results), then
//! turned into the dispatcher's hints (retry times, an ordered endpoint's
//! next head).

use std::cmp::Reverse;
use std::sync::Arc;
use std::time::Duration;

use marquee_core::ids::{DeliveryId, MessageId};
use marquee_core::timestamp::Timestamp;
use marquee_store::webhooks::{AttemptOutcome, AttemptRecord, OutcomePolicy};
use tokio::sync::{mpsc, oneshot};

use super::live::Live;
use super::{Dispatcher, MAX_HINTS, micros};
use crate::webhooks::client::AttemptResult;

/// Most attempt results written in one commit.
pub(super) const RESULT_BATCH: usize = 2048;
/// Attempt results waiting for the recorder.
pub(super) const RESULT_QUEUE: usize = 2 * RESULT_BATCH;

pub(super) struct Done {
    pub(super) outcome: AttemptOutcome,
    pub(super) ordered: bool,
    pub(super) next_at: Option<i64>,
}

pub(super) enum ResultMsg {
    Done(Box<Done>),
    Flush(oneshot::Sender<()>),
}

impl Dispatcher {
    pub(super) fn policy(&self) -> OutcomePolicy {
        OutcomePolicy {
            disable_after_us: micros(self.config.disable_after),
            failing_after: self.config.failing_after,
        }
    }

    /// Writes attempt results in batches and turns them into hints.
    pub(super) async fn record_results(self: Arc<Self>, mut rx: mpsc::Receiver<ResultMsg>) {
        let mut batch: Vec<Done> = Vec::new();
        let mut flushes: Vec<oneshot::Sender<()>> = Vec::new();
        while let Some(first) = rx.recv().await {
            let mut next = Some(first);
            while let Some(m) = next.take() {
                match m {
                    ResultMsg::Done(d) => batch.push(*d),
                    ResultMsg::Flush(tx) => flushes.push(tx),
                }
                if batch.len() < RESULT_BATCH {
                    next = rx.try_recv().ok();
                }
            }
            if !batch.is_empty() {
                let outcomes: Vec<AttemptOutcome> = batch.iter().map(|d| d.outcome.clone()).collect();
                let mut delay = Duration::from_millis(50);
                let mut unavailable = 0;
                let summary = loop {
                    match self.store.record_attempts(outcomes.clone(), self.policy()).await {
                        Ok(s) => break Some(s),
                        // A job dropped from a failed group also reads as
                        // "unavailable": retry a few times before deciding
                        // the store is gone (the leases then expire and the
                        // deliveries are attempted again).
                        Err(marquee_store::StoreError::Unavailable(e)) if unavailable >= 3 => {
                            tracing::warn!(error = %e, n = outcomes.len(), "store unavailable; attempt results dropped");
                            break None;
                        }
                        Err(marquee_store::StoreError::Unavailable(_)) => {
                            unavailable += 1;
                            tokio::time::sleep(delay).await;
                            delay *= 2;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, n = outcomes.len(), "recording webhook attempts failed; retrying");
                            tokio::time::sleep(delay).await;
                            delay = (delay * 2).min(Duration::from_secs(5));
                        }
                    }
                };
                crate::metrics::endpoints_disabled(summary.as_ref().map_or(0, |s| s.disabled.len()));
                for id in summary.iter().flat_map(|s| &s.disabled) {
                    let why = batch
                        .iter()
                        .find_map(|d| {
                            (d.outcome.attempt.endpoint_id == *id).then(|| d.outcome.disable.clone())
                        })
                        .flatten()
                        .unwrap_or_else(|| "failing continuously for --webhook-disable-after".into());
                    tracing::info!(endpoint = %id, reason = %why, "webhook endpoint disabled");
                }
                let now = Timestamp::now().as_micros();
                if let Ok(mut st) = self.state.lock() {
                    for d in batch.drain(..) {
                        let Some(ep) = st.endpoints.get_mut(&d.outcome.attempt.endpoint_id) else {
                            continue;
                        };
                        match d.next_at {
                            // A future retry: remember when (the sweep finds
                            // it too if the hint list is full).
                            Some(t) if t > now && ep.later.len() < MAX_HINTS => ep.later.push(Reverse(t)),
                            Some(t) if t > now => {}
                            Some(_) => ep.mark_due(now),
                            // An ordered endpoint's head is settled: the next
                            // one may go.
                            None if d.ordered => ep.mark_due(now),
                            None => {}
                        }
                    }
                    if summary.is_some_and(|s| !s.disabled.is_empty()) {
                        st.reload = true;
                    }
                }
                batch.clear();
                self.notify.notify_one();
            }
            for f in flushes.drain(..) {
                let _ = f.send(());
            }
        }
    }
}

pub(super) fn attempt_record(
    r: &AttemptResult,
    live: &Live,
    delivery: DeliveryId,
    message: Option<MessageId>,
    attempt_no: u32,
) -> AttemptRecord {
    AttemptRecord {
        id: r.id.clone(),
        delivery_id: delivery,
        org_id: live.org_id.clone(),
        endpoint_id: live.id.clone(),
        message_id: message,
        attempt_no,
        started_at: r.started_at,
        duration_us: micros(r.duration),
        status_code: r.status,
        succeeded: r.succeeded(),
        error_kind: r.error_kind.map(str::to_owned),
        response_headers: r.headers_json.clone(),
        // No response, so no body: its place keeps the error reason
        // (`client::attempt_error` reads it back).
        response_body: match r.status {
            None => r.error.clone().unwrap_or_default(),
            Some(_) => r.body.clone(),
        },
    }
}
