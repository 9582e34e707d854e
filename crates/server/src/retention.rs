//! Background retention: deletes messages older than the retention period in
//! small chunks, each its own short write job, so pruning interleaves with
//! publishing instead of stalling it.

use marquee_core::timestamp::Timestamp;
use tokio::sync::watch;

use crate::state::AppState;

/// Messages deleted per write job: small enough that a prune job never holds
/// the writer for more than a few milliseconds.
const CHUNK: usize = 500;

pub async fn run(state: AppState, mut stop: watch::Receiver<bool>) {
    let retention_us = i64::try_from(state.config.retention.as_micros()).unwrap_or(i64::MAX);
    let mut tick = tokio::time::interval(state.config.retention_interval);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let cutoff = Timestamp::now().saturating_sub_micros(retention_us);
        loop {
            match state.store.prune(cutoff, CHUNK).await {
                // A chunk may come back short (batches are never split), so
                // keep going until a job deletes nothing.
                Ok(n) if n > 0 => {
                    crate::metrics::pruned(n);
                    if *stop.borrow() {
                        return;
                    }
                    tokio::task::yield_now().await;
                }
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "retention pruning failed; will retry");
                    break;
                }
            }
        }
        state.limits.shrink();
    }
}
