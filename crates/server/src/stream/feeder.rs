//! From commits to bus frames.
//!
//! The store calls the commit listener on its writer thread, where no work
//! may be done: the listener only queues the committed messages (`Arc`
//! clones) for the [`feed`] task. The queue is bounded; if the feeder ever
//! fell that far behind, the writer thread waits for it (back-pressure on
//! publishers) instead of the queue growing without bound.
//!
//! The feeder renders each (message, channel) once and publishes the frames
//! in commit order, across topics too.

use std::sync::Arc;

use marquee_core::ids::OrgId;
use marquee_core::message::StoredMessage;
use marquee_core::names::Channel;
use marquee_store::DynStore;
use tokio::sync::{mpsc, watch};

use super::bus::{DynBus, Frame};
use super::frame;

const QUEUE: usize = 4096;

pub type CommitBatch = Vec<Arc<StoredMessage>>;

/// Registers the listener and returns the receiving end for [`feed`].
pub fn register_commit_listener(store: &DynStore) -> mpsc::Receiver<CommitBatch> {
    let (tx, rx) = mpsc::channel::<CommitBatch>(QUEUE);
    store.add_commit_listener(Arc::new(move |msgs: &[Arc<StoredMessage>]| {
        let batch = msgs.to_vec();
        match tx.try_send(batch) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(batch)) => {
                tracing::warn!("stream feeder is behind; holding the commit path");
                // Blocking is only allowed outside the async runtime (the
                // store's writer thread is a plain thread).
                match tokio::runtime::Handle::try_current() {
                    Err(_) => {
                        let _ = tx.blocking_send(batch);
                    }
                    // The PostgreSQL publisher runs on the runtime: wait in
                    // place (the worker hands its other tasks to a new one).
                    Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                        tokio::task::block_in_place(|| {
                            let _ = tx.blocking_send(batch);
                        });
                    }
                    Ok(_) => {
                        tracing::error!(
                            "stream feeder queue full on a single-threaded runtime; live frames dropped"
                        )
                    }
                }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }));
    rx
}

/// Renders and publishes committed messages until `stop` or the store goes.
pub async fn feed(bus: DynBus, mut commits: mpsc::Receiver<CommitBatch>, mut stop: watch::Receiver<bool>) {
    loop {
        let batch = tokio::select! {
            b = commits.recv() => match b {
                Some(b) => b,
                None => return,
            },
            _ = stop.changed() => return,
        };
        if !bus.carries_frames() {
            // A notification bus (NATS) needs each touched topic once per
            // commit batch, and no rendered frames.
            let mut seen = std::collections::HashSet::new();
            for m in &batch {
                for ch in &m.channels {
                    if seen.insert((m.org_id.clone(), ch.clone())) {
                        publish(&bus, (m.org_id.clone(), ch.clone()), Vec::new()).await;
                    }
                }
            }
            continue;
        }
        // Publish in commit order across topics (SSE merges channels by seq
        // and relies on it); consecutive frames of one topic go together.
        let mut run: Option<((OrgId, Channel), Vec<Frame>)> = None;
        for m in &batch {
            for ch in &m.channels {
                if !bus.has_subscribers(&m.org_id, ch) {
                    continue;
                }
                let f = frame::render(m, ch);
                match &mut run {
                    Some((key, frames)) if key.0 == m.org_id && &key.1 == ch => frames.push(f),
                    _ => {
                        if let Some((key, frames)) = run.take() {
                            publish(&bus, key, frames).await;
                        }
                        run = Some(((m.org_id.clone(), ch.clone()), vec![f]));
                    }
                }
            }
        }
        if let Some((key, frames)) = run.take() {
            publish(&bus, key, frames).await;
        }
    }
}

async fn publish(bus: &DynBus, key: (OrgId, Channel), frames: Vec<Frame>) {
    if let Err(e) = bus.publish(&key.0, &key.1, frames).await {
        tracing::error!(error = %e, "publishing to the stream bus failed");
    }
}
