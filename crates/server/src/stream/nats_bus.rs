//! The NATS bus: live fan-out across marquee nodes.
//!
//! NATS carries *notifications*, the store stays the source of truth. When a
//! node commits, its feeder publishes, per (organization, channel), an empty
//! message on the subject `<prefix>.<org id>.<hex of the channel>`. A node
//! subscribes only to the subjects of channels that have local subscribers.
//! For each organization with local subscribers one reader task follows the
//! durable log by cursor (`list_messages` after the last seq it delivered) —
//! woken by a notification, by a NATS reconnect, and at least once a second —
//! renders the frames of the channels that have local subscribers and hands
//! them to the node's [`InProcessBus`], which fans them out to the sockets.
//!
//! Why this shape:
//! - A lost NATS message (at-most-once core NATS, a slow-consumer drop, a
//!   reconnect) can delay a frame by at most the poll interval, never lose
//!   it: the reader reads the log by cursor, so gaps cannot exist.
//! - Frames reach local subscribers in seq order across all of an
//!   organization's channels (one reader per organization), which SSE's
//!   multi-channel cursor relies on; the store guarantees that a reader that
//!   sees seq n sees everything below n (see the store's ordering contract).
//! - The cost of a notification is one log read per organization per node,
//!   shared by every local subscriber of that organization.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use marquee_core::ids::OrgId;
use marquee_core::names::Channel;
use marquee_store::{DynStore, MessageQuery};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::bus::{BoxSubscription, Bus, BusError, Frame, InProcessBus};
use super::frame;

/// The longest a frame waits when every notification about it was lost.
const POLL: Duration = Duration::from_secs(1);
const PAGE: usize = 500;
/// Longest a commit notification may wait for the NATS client.
const PUBLISH_WAIT: Duration = Duration::from_millis(20);

struct OrgReader {
    wake: Notify,
    /// NATS subscriptions of this organization's locally watched channels.
    nats: Mutex<HashMap<Channel, JoinHandle<()>>>,
}

struct Inner {
    local: InProcessBus,
    client: async_nats::Client,
    prefix: String,
    store: DynStore,
    readers: Mutex<HashMap<OrgId, Arc<OrgReader>>>,
    reconnected: Arc<Notify>,
}

#[derive(Clone)]
pub struct NatsBus {
    inner: Arc<Inner>,
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

impl NatsBus {
    /// Connects to NATS; `queue_frames` sizes each local subscriber's ring.
    pub async fn connect(
        url: &str,
        prefix: &str,
        store: DynStore,
        queue_frames: usize,
    ) -> Result<Self, BusError> {
        let reconnected = Arc::new(Notify::new());
        let r = reconnected.clone();
        let client = async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .event_callback(move |event| {
                let r = r.clone();
                async move {
                    match event {
                        async_nats::Event::Connected => {
                            tracing::info!("NATS (re)connected; live readers catch up from the log");
                            r.notify_waiters();
                        }
                        async_nats::Event::Disconnected => tracing::warn!("NATS disconnected"),
                        other => tracing::debug!(event = %other, "NATS event"),
                    }
                }
            })
            .connect(url)
            .await
            .map_err(|e| BusError::Unavailable(format!("connecting to NATS at {url}: {e}")))?;
        Ok(NatsBus {
            inner: Arc::new(Inner {
                local: InProcessBus::new(queue_frames),
                client,
                prefix: prefix.to_owned(),
                store,
                readers: Mutex::new(HashMap::new()),
                reconnected,
            }),
        })
    }

    /// The connection, for other notifications of this node (webhook
    /// wake-ups), and the subject prefix they live under.
    pub fn client(&self) -> (async_nats::Client, String) {
        (self.inner.client.clone(), self.inner.prefix.clone())
    }

    fn subject(&self, org: &OrgId, channel: &Channel) -> String {
        format!("{}.{}.{}", self.inner.prefix, org.as_str(), hex(channel.as_str()))
    }

    /// The organization's reader, started (at the current log head) if none.
    async fn reader(&self, org: &OrgId) -> Result<Arc<OrgReader>, BusError> {
        if let Some(r) = self.inner.readers.lock().ok().and_then(|m| m.get(org).cloned()) {
            return Ok(r);
        }
        // Read the head before registering: every message committed after
        // this point is delivered by the new reader.
        let head = self
            .inner
            .store
            .head_seq()
            .await
            .map_err(|e| BusError::Unavailable(e.to_string()))?;
        let mut map = self
            .inner
            .readers
            .lock()
            .map_err(|_| BusError::Unavailable("reader map poisoned".into()))?;
        if let Some(r) = map.get(org) {
            return Ok(r.clone());
        }
        let reader = Arc::new(OrgReader {
            wake: Notify::new(),
            nats: Mutex::new(HashMap::new()),
        });
        map.insert(org.clone(), reader.clone());
        tokio::spawn(run_reader(
            Arc::downgrade(&self.inner),
            org.clone(),
            reader.clone(),
            head,
        ));
        Ok(reader)
    }
}

#[async_trait]
impl Bus for NatsBus {
    fn carries_frames(&self) -> bool {
        false
    }

    async fn publish(&self, org: &OrgId, channel: &Channel, _frames: Vec<Frame>) -> Result<(), BusError> {
        // Local subscribers: wake this node's reader at once (no NATS hop).
        if let Some(r) = self.inner.readers.lock().ok().and_then(|m| m.get(org).cloned()) {
            r.wake.notify_one();
        }
        // While NATS is away the client buffers; never let that hold the
        // commit path. A dropped notification only delays remote readers
        // until their next poll.
        match tokio::time::timeout(
            PUBLISH_WAIT,
            self.inner
                .client
                .publish(self.subject(org, channel), Bytes::new()),
        )
        .await
        {
            Ok(r) => r.map_err(|e| BusError::Unavailable(format!("NATS publish: {e}"))),
            Err(_) => Ok(()),
        }
    }

    async fn subscribe(&self, org: &OrgId, channel: &Channel) -> Result<BoxSubscription, BusError> {
        let sub = self.inner.local.subscribe(org, channel).await?;
        let reader = self.reader(org).await?;
        let needs_nats = reader
            .nats
            .lock()
            .map(|m| !m.contains_key(channel))
            .unwrap_or(true);
        if needs_nats {
            let mut nats_sub = self
                .inner
                .client
                .subscribe(self.subject(org, channel))
                .await
                .map_err(|e| BusError::Unavailable(format!("NATS subscribe: {e}")))?;
            let _ = self.inner.client.flush().await;
            let r = Arc::downgrade(&reader);
            let forward = tokio::spawn(async move {
                while nats_sub.next().await.is_some() {
                    match r.upgrade() {
                        Some(r) => r.wake.notify_one(),
                        None => return,
                    }
                }
            });
            if let Ok(mut m) = reader.nats.lock()
                && let Some(old) = m.insert(channel.clone(), forward)
            {
                old.abort();
            }
        }
        Ok(sub)
    }
}

/// Follows one organization's log and feeds the local bus, until the
/// organization has no local subscriber left.
async fn run_reader(inner: Weak<Inner>, org: OrgId, reader: Arc<OrgReader>, mut last: u64) {
    loop {
        let Some(bus) = inner.upgrade() else { return };
        let reconnected = bus.reconnected.clone();
        drop(bus);
        tokio::select! {
            _ = reader.wake.notified() => {}
            _ = reconnected.notified() => {}
            _ = tokio::time::sleep(POLL) => {}
        }
        let Some(bus) = inner.upgrade() else { return };
        // Drop NATS subscriptions of channels nobody here watches any more.
        let watched: std::collections::HashSet<Channel> = {
            let Ok(mut subs) = reader.nats.lock() else { return };
            subs.retain(|ch, task| {
                let keep = bus.local.has_topic(&org, ch);
                if !keep {
                    task.abort();
                }
                keep
            });
            subs.keys().cloned().collect()
        };
        if watched.is_empty() {
            let Ok(mut map) = bus.readers.lock() else { return };
            // Re-check under the map lock: a subscriber registers its local
            // topic before it looks up the reader.
            if !bus.local.has_org_topics(&org) {
                map.remove(&org);
                return;
            }
            continue;
        }
        loop {
            let query = MessageQuery {
                after_seq: Some(last),
                limit: PAGE,
                ..Default::default()
            };
            let page = match bus.store.list_messages(&org, &query).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(error = %e, "live reader could not read the log; retrying");
                    break;
                }
            };
            let mut run: Option<(Channel, Vec<Frame>)> = None;
            for m in &page.messages {
                for ch in &m.channels {
                    if !watched.contains(ch) {
                        continue;
                    }
                    let f = frame::render(m, ch);
                    match &mut run {
                        Some((c, frames)) if c == ch => frames.push(f),
                        _ => {
                            if let Some((c, frames)) = run.take() {
                                let _ = bus.local.publish(&org, &c, frames).await;
                            }
                            run = Some((ch.clone(), vec![f]));
                        }
                    }
                }
            }
            if let Some((c, frames)) = run.take() {
                let _ = bus.local.publish(&org, &c, frames).await;
            }
            if let Some(m) = page.messages.last() {
                last = m.seq;
            }
            if !page.has_more {
                break;
            }
        }
    }
}
