//! Background retention: deletes messages older than the retention period in
//! small chunks, each its own short write job, so pruning interleaves with
//! publishing instead of stalling it.

use std::time::Duration;

use marquee_core::timestamp::Timestamp;
use tokio::sync::watch;

use crate::state::AppState;

const CHUNK: usize = 2_000;

pub async fn run(state: AppState, mut stop: watch::Receiver<bool>) {
    let retention_us = i64::try_from(state.config.retention.as_micros()).unwrap_or(i64::MAX);
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let cutoff = Timestamp::now().saturating_sub_micros(retention_us);
        loop {
            match state.store.prune(cutoff, CHUNK).await {
                Ok(n) if n as usize == CHUNK => {
                    if *stop.borrow() {
                        return;
                    }
                    tokio::task::yield_now().await;
                }
                Ok(n) => {
                    if n > 0 {
                        tracing::debug!(deleted = n, "retention pruned messages");
                    }
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "retention pruning failed; will retry");
                    break;
                }
            }
        }
        state.limits.shrink();
    }
}
