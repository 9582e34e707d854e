//! Cross-node webhook wake-ups over NATS, for clusters split by `--role`.
//!
//! A node that commits a publish hands the deliveries to its own dispatcher
//! (the store's handoff) or marks its endpoints due (commit listener). An
//! `--role api` node has no dispatcher, so without help the worker nodes
//! would find its deliveries only at their next one-second sweep. Here the
//! api node publishes, after each commit, the organizations that got new
//! messages on `<prefix>.webhooks.wake`; every delivering node subscribed
//! to it marks those organizations' endpoints due and claims at once.
//!
//! Notifications only: a lost or late one costs at most the sweep interval,
//! never a delivery (the store stays the source of truth). Nodes that
//! deliver their own publishes do not announce, so an all-role cluster pays
//! nothing for this.

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use marquee_core::ids::OrgId;
use marquee_core::message::StoredMessage;
use marquee_store::DynStore;
use tokio::sync::{mpsc, watch};

use super::Dispatcher;

/// Organizations waiting to be announced (beyond: dropped, the sweep covers).
const PENDING: usize = 4_096;

fn subject(prefix: &str) -> String {
    format!("{prefix}.webhooks.wake")
}

/// On a node that publishes but does not deliver: announces, after each
/// commit, the organizations with new messages (each once per batch).
pub fn announce(store: &DynStore, client: async_nats::Client, prefix: &str) {
    let (tx, mut rx) = mpsc::channel::<OrgId>(PENDING);
    store.add_commit_listener(Arc::new(move |msgs: &[Arc<StoredMessage>]| {
        let mut last: Option<&OrgId> = None;
        for m in msgs {
            if last != Some(&m.org_id) {
                let _ = tx.try_send(m.org_id.clone());
                last = Some(&m.org_id);
            }
        }
    }));
    let subject = subject(prefix);
    tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            let mut orgs = HashSet::from([first]);
            while let Ok(o) = rx.try_recv() {
                orgs.insert(o);
            }
            for org in orgs {
                let payload = Bytes::from(org.as_str().to_owned());
                if let Err(e) = client.publish(subject.clone(), payload).await {
                    tracing::debug!(error = %e, "webhook wake-up not sent; workers sweep anyway");
                }
            }
        }
    });
}

/// On a delivering node: wakes the dispatcher for each announced
/// organization until `stop`.
pub async fn listen(
    client: async_nats::Client,
    prefix: String,
    dispatcher: Arc<Dispatcher>,
    mut stop: watch::Receiver<bool>,
) {
    let mut sub = match client.subscribe(subject(&prefix)).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot subscribe to webhook wake-ups; relying on the sweep");
            return;
        }
    };
    loop {
        tokio::select! {
            m = sub.next() => match m {
                Some(m) => match std::str::from_utf8(&m.payload).ok().and_then(|s| s.parse::<OrgId>().ok()) {
                    Some(org) => dispatcher.wake_org(&org),
                    None => tracing::debug!("ignoring a malformed webhook wake-up"),
                },
                None => return,
            },
            _ = stop.changed() => return,
        }
    }
}
