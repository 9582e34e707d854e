//! Erasure, the server side (issue 11): the background worker that works
//! accepted erasures through in small store steps, and the in-memory filter
//! of erased seqs that stops this node from still serving what an erasure
//! removed.
//!
//! Why a filter: the store forgets an erased message in the step's commit,
//! and every path that *reads* the store (REST polls, stream resume and
//! replay, webhook claims, replay and resend) no longer finds it. But a few
//! things hold messages in memory past their commit: webhook deliveries
//! queued under a lease (born leased at publish, or claimed), frames in the
//! stream bus rings and a subscription's buffer. Those check
//! [`ErasedSeqs::contains`] right before they are sent and drop an erased
//! seq. The filter is fed by this node's own steps at once and by the
//! store's `erased_seqs` list (polled every second), which is how the other
//! nodes of a cluster learn — so on a cluster another node stops within
//! about a second of the step. A POST already on the wire cannot be
//! recalled; its attempt result is not recorded (the store records no
//! attempt of a message it no longer holds). Entries stay for
//! `ERASED_SEQS_KEPT` (10 min, longer than a delivery lease); while the
//! filter is empty a check is one atomic load.
//!
//! Durability: the erasure row is stored before the API answers; the worker
//! claims running erasures at start, so one accepted before a kill -9
//! resumes after the restart from its last committed step.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use marquee_core::ids::ErasureId;
use marquee_core::timestamp::Timestamp;
use marquee_store::erasure::{ERASED_SEQS_KEPT, ErasureStatus, STEP_ROWS};
use tokio::sync::{Notify, watch};

use crate::state::AppState;

/// How long a worker's lease on an erasure lasts (renewed by every step).
const LEASE: Duration = Duration::from_secs(15);
/// How often the store's list of erased seqs is read.
const POLL: Duration = Duration::from_secs(1);

/// Seqs erased in the last minutes (see the module doc).
#[derive(Default)]
pub struct ErasedSeqs {
    any: AtomicBool,
    /// seq → erased_at (µs).
    set: Mutex<HashMap<u64, i64>>,
}

impl ErasedSeqs {
    /// Whether `seq` was erased recently: one atomic load when nothing was.
    pub fn contains(&self, seq: u64) -> bool {
        if !self.any.load(Ordering::Acquire) {
            return false;
        }
        self.set.lock().map(|s| s.contains_key(&seq)).unwrap_or(false)
    }

    pub fn add(&self, seqs: impl IntoIterator<Item = (u64, i64)>) {
        if let Ok(mut s) = self.set.lock() {
            s.extend(seqs);
            self.any.store(!s.is_empty(), Ordering::Release);
        }
    }

    /// Forgets entries older than the store keeps them.
    fn expire(&self, now: Timestamp) {
        let oldest = now.as_micros() - ERASED_SEQS_KEPT;
        if let Ok(mut s) = self.set.lock() {
            s.retain(|_, at| *at >= oldest);
            self.any.store(!s.is_empty(), Ordering::Release);
        }
    }
}

/// The erasure worker's handle in the application state.
#[derive(Default)]
pub struct Erasures {
    pub erased: std::sync::Arc<ErasedSeqs>,
    wake: Notify,
}

impl Erasures {
    /// A new erasure was stored: start on it now rather than at the next poll.
    pub fn kick(&self) {
        self.wake.notify_one();
    }
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// Reads the store's recently erased seqs newer than `seen` into the filter.
async fn poll(state: &AppState, seen: &mut Timestamp) {
    match state.store.recently_erased(*seen).await {
        Ok(v) => {
            if let Some(max) = v.iter().map(|(_, at)| *at).max() {
                *seen = max;
            }
            state
                .erasures
                .erased
                .add(v.into_iter().map(|(s, at)| (s, at.as_micros())));
        }
        Err(e) => tracing::warn!(error = %e, "reading erased seqs failed; will retry"),
    }
    state.erasures.erased.expire(Timestamp::now());
}

pub async fn run(state: AppState, mut stop: watch::Receiver<bool>) {
    // Unique per process: a lease left by a previous run is not ours.
    let token = ErasureId::generate().as_str().to_owned();
    let mut seen = Timestamp::now().saturating_sub_micros(ERASED_SEQS_KEPT);
    let mut last_poll = tokio::time::Instant::now();
    poll(&state, &mut seen).await;
    loop {
        if *stop.borrow() {
            return;
        }
        let claimed = match state.store.claim_erasure(&token, micros(LEASE)).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "claiming an erasure failed; will retry");
                None
            }
        };
        if let Some(rec) = claimed {
            tracing::info!(erasure = %rec.id, channel = %rec.channel, "erasure running");
            loop {
                if *stop.borrow() {
                    return;
                }
                match state
                    .store
                    .erase_step(&rec.id, &token, micros(LEASE), STEP_ROWS)
                    .await
                {
                    Ok(Some(step)) => {
                        let at = Timestamp::now().as_micros();
                        state.erasures.erased.add(step.erased.iter().map(|s| (*s, at)));
                        if step.record.status == ErasureStatus::Completed {
                            tracing::info!(
                                erasure = %rec.id,
                                erased = step.record.messages_erased,
                                "erasure completed"
                            );
                            break;
                        }
                    }
                    // Lease lost (another node took it over) or no longer running.
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, erasure = %rec.id, "erasure step failed; will retry");
                        tokio::time::sleep(POLL).await;
                        break;
                    }
                }
                if last_poll.elapsed() >= POLL {
                    poll(&state, &mut seen).await;
                    last_poll = tokio::time::Instant::now();
                }
                // Let publishes and other writers in between steps.
                tokio::task::yield_now().await;
            }
            continue;
        }
        tokio::select! {
            () = state.erasures.wake.notified() => {}
            () = tokio::time::sleep(POLL) => {}
            _ = stop.changed() => return,
        }
        poll(&state, &mut seen).await;
        last_poll = tokio::time::Instant::now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_is_empty_until_told_and_forgets_old_entries() {
        let f = ErasedSeqs::default();
        assert!(!f.contains(3));
        let now = Timestamp::now();
        f.add([(3, now.as_micros()), (4, now.as_micros() - 2 * ERASED_SEQS_KEPT)]);
        assert!(f.contains(3) && f.contains(4));
        f.expire(now);
        assert!(f.contains(3));
        assert!(!f.contains(4));
    }
}
