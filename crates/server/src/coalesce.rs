//! Coalescing on the server: the publish path's key extraction (a type's
//! `coalesce` rule applied to a message's `data`), the `Coalesced: true`
//! answer, and the flusher task that commits pending messages when their
//! window closes (the store does the durable part: `marquee_store::coalesce`).
//!
//! Why a task that sleeps until the next due time: a pending row is already
//! durable, so the flusher needs no polling to be safe, only to be on time.
//! It sleeps until the earliest `due_at` the store reports, is woken early by
//! a publish that opens an earlier window on this node, and re-reads at
//! least every [`PEER_SWEEP`] so rows opened through another node of a
//! cluster (whose own flusher normally commits them) are committed even if
//! that node died. At start it flushes whatever is overdue (after a crash);
//! at shutdown it stops without flushing anything early.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use axum::http::HeaderValue;
use axum::response::Response;
use marquee_core::message::{Coalescing, StoredMessage};
use marquee_core::profile::catalog::Coalesce;
use marquee_core::timestamp::Timestamp;
use marquee_store::coalesce::{FLUSH_BATCH, is_pending};
use tokio::sync::{Notify, watch};

use crate::error::ApiError;
use crate::state::AppState;

/// The longest the flusher sleeps without re-reading the store.
pub const PEER_SWEEP: Duration = Duration::from_secs(5);
/// Bytes of a coalescing key's value at most.
pub const MAX_KEY_BYTES: usize = 512;

/// The coalescing key of a message of a type with a `coalesce` rule: the
/// value at the rule's pointer (a string as itself, any other value as its
/// JSON text). Missing is a 400 naming the field (`data.activity_id`).
pub fn key_of(rule: &Coalesce, data: &serde_json::Value, at: &str) -> Result<Coalescing, ApiError> {
    let param = format!("{at}data{}", rule.key.replace('/', "."));
    let key = match data.pointer(&rule.key) {
        None | Some(serde_json::Value::Null) => {
            return Err(ApiError::invalid_param(
                param,
                "this type is coalesced by this field, so every message must carry it",
            ));
        }
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
    };
    if key.len() > MAX_KEY_BYTES {
        return Err(ApiError::invalid_param(
            param,
            format!("a coalescing key is at most {MAX_KEY_BYTES} bytes"),
        ));
    }
    Ok(Coalescing {
        key,
        window_ms: rule.window_ms,
    })
}

/// Marks a publish answer as coalesced (`Coalesced: true`).
pub fn mark(mut resp: Response) -> Response {
    resp.headers_mut()
        .insert("coalesced", HeaderValue::from_static("true"));
    resp
}

/// The flusher's wake-up: the earliest due time a publish on this node
/// reported since the flusher last looked.
pub struct Wake {
    earliest: AtomicI64,
    notify: Notify,
}

impl Default for Wake {
    fn default() -> Self {
        Wake {
            earliest: AtomicI64::new(i64::MAX),
            notify: Notify::new(),
        }
    }
}

impl Wake {
    /// A pending message is due at `at`: wake the flusher if that is earlier
    /// than what it waits for.
    pub fn due(&self, at: Timestamp) {
        let at = at.as_micros();
        if self.earliest.fetch_min(at, Ordering::AcqRel) > at {
            self.notify.notify_one();
        }
    }

    /// Reports every pending answer of a publish; true if there was one.
    pub fn note(&self, answers: &[StoredMessage]) -> bool {
        let mut any = false;
        for m in answers.iter().filter(|m| is_pending(m)) {
            self.due(m.received_at);
            any = true;
        }
        any
    }

    fn take(&self) -> Option<i64> {
        match self.earliest.swap(i64::MAX, Ordering::AcqRel) {
            i64::MAX => None,
            v => Some(v),
        }
    }
}

/// The flusher task (every node runs one; see the module docs).
pub async fn run(state: AppState, mut stop: watch::Receiver<bool>) {
    let wake = &state.ingest.coalescer;
    loop {
        if *stop.borrow() {
            return;
        }
        // Commit everything due, a batch per write job.
        let mut next_due = None;
        let mut failed = false;
        loop {
            match state.store.flush_coalesced(Timestamp::now()).await {
                Ok(r) => {
                    if r.flushed > 0 {
                        tracing::debug!(flushed = r.flushed, "coalesced messages committed");
                    }
                    next_due = r.next_due;
                    if r.flushed < FLUSH_BATCH || *stop.borrow() {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "flushing coalesced messages failed; will retry");
                    failed = true;
                    break;
                }
            }
        }
        // What publishes reported meanwhile is covered by next_due, read
        // after them; anything reported from now on wakes us below.
        let reported = wake.take();
        let now = Timestamp::now().as_micros();
        let target = [next_due.map(|t| t.as_micros()), reported]
            .into_iter()
            .flatten()
            .min();
        let mut sleep = match target {
            Some(t) => Duration::from_micros(t.saturating_sub(now).max(0) as u64),
            None => PEER_SWEEP,
        }
        .min(PEER_SWEEP);
        if failed {
            sleep = sleep.max(Duration::from_secs(1));
        }
        if sleep.is_zero() {
            continue;
        }
        tokio::select! {
            _ = tokio::time::sleep(sleep) => {}
            // An earlier window opened: look again (the store has its row).
            _ = wake.notify.notified() => {}
            _ = stop.changed() => return,
        }
    }
}
