//! The live fan-out bus, keyed by (organization, channel).
//!
//! The stream endpoints never talk to each other or to the store's commit
//! path directly: the feeder publishes one pre-rendered [`Frame`] per
//! (message, channel) to the [`Bus`], and every WebSocket/SSE subscription
//! reads frames from it. Keeping this behind a trait is what lets the
//! scale-out work swap the in-process implementation for NATS without
//! touching the connection code, so the trait promises only what a network
//! bus can also keep:
//!
//! - `subscribe` is async (a remote bus needs a round trip) and resolves
//!   only once the subscription is live: every frame published after it
//!   resolves is delivered, or the subscription reports [`Lagged`]. The
//!   gap-free resume algorithm relies on exactly this and nothing more.
//! - Frames of one (organization, channel) arrive in publish order, and a
//!   frame becomes visible to a subscriber only after every frame published
//!   before it on the organization's other topics (SSE merges channels by
//!   `seq` on this). The in-process bus gets this for free; a NATS bus keeps
//!   it with one subject per organization.
//! - A subscription is bounded: a subscriber that falls too far behind gets
//!   [`Lagged`] instead of making the bus buffer without limit, and
//!   [`Subscription::backlog`] says how far behind it is right now.
//!
//! The in-process implementation is one `tokio::sync::broadcast` ring per
//! active (organization, channel). A frame's bytes are shared (`Utf8Bytes` is
//! a reference-counted `Bytes`), so a message is serialized once however
//! many sockets receive it.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::task::{Context, Poll};

use async_trait::async_trait;
use axum::extract::ws::Utf8Bytes;
use futures_util::Stream;
use marquee_core::ids::OrgId;
use marquee_core::names::Channel;
use tokio::sync::broadcast;

/// One stream frame, rendered once and shared by every subscriber.
#[derive(Debug, Clone)]
pub struct Frame {
    /// The message's commit sequence number (its cursor).
    pub seq: u64,
    /// The JSON text of the frame.
    pub text: Utf8Bytes,
    /// Bytes published on this frame's topic up to and including it; a
    /// subscriber that has consumed this frame is `published - end_offset`
    /// bytes behind. Set by the bus.
    pub end_offset: u64,
}

impl Frame {
    pub fn new(seq: u64, text: Utf8Bytes) -> Self {
        Frame {
            seq,
            text,
            end_offset: 0,
        }
    }
}

/// The subscriber fell behind and frames were dropped for it; it must
/// re-synchronize from the durable log (the stream endpoints close it so the
/// client resumes by cursor).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("subscriber lagged; {0} frames were skipped")]
pub struct Lagged(pub u64);

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("bus unavailable: {0}")]
    Unavailable(String),
}

/// How far a subscription is behind its topic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Backlog {
    pub frames: u64,
    pub bytes: u64,
}

/// A live subscription: a stream of frames, in publish order.
pub trait Subscription: Stream<Item = Result<Frame, Lagged>> + Send + Sync + Unpin {
    /// Frames and bytes published to the topic that this subscription has
    /// not yielded yet.
    fn backlog(&self) -> Backlog;
}

pub type BoxSubscription = Box<dyn Subscription>;

#[async_trait]
pub trait Bus: Send + Sync + 'static {
    /// Publishes frames of one (organization, channel), in order. Must not
    /// wait for subscribers: slow ones lag, they never slow the publisher.
    async fn publish(&self, org: &OrgId, channel: &Channel, frames: Vec<Frame>) -> Result<(), BusError>;

    /// Subscribes to one (organization, channel); live once this resolves.
    async fn subscribe(&self, org: &OrgId, channel: &Channel) -> Result<BoxSubscription, BusError>;

    /// Whether `publish` uses the frames it is given. A bus that only
    /// carries notifications (and renders frames from the log itself) says
    /// no, and the feeder skips rendering and sends each topic once per batch.
    fn carries_frames(&self) -> bool {
        true
    }

    /// Whether a frame published to (org, channel) now would reach anyone
    /// on this node; lets the feeder skip rendering for silent topics. A
    /// subscriber that arrives just after a skip loses nothing it is owed:
    /// the message is already committed, so its resume replay reads it.
    fn has_subscribers(&self, _org: &OrgId, _channel: &Channel) -> bool {
        true
    }
}

pub type DynBus = Arc<dyn Bus>;

type TopicKey = (OrgId, Channel);

struct Topic {
    tx: broadcast::Sender<Frame>,
    /// Frames and bytes ever published on this topic (only while it exists).
    frames: AtomicU64,
    bytes: AtomicU64,
}

struct Inner {
    topics: RwLock<HashMap<TopicKey, Arc<Topic>>>,
    capacity: usize,
}

/// The in-process bus: a broadcast ring of `capacity` frames per active
/// topic. A topic exists only while it has subscribers; publishing to a topic
/// without one costs a map lookup.
#[derive(Clone)]
pub struct InProcessBus {
    inner: Arc<Inner>,
}

impl InProcessBus {
    /// `capacity`: frames a subscriber may fall behind before it lags.
    pub fn new(capacity: usize) -> Self {
        InProcessBus {
            inner: Arc::new(Inner {
                topics: RwLock::new(HashMap::new()),
                capacity: capacity.max(1),
            }),
        }
    }

    /// Topics with at least one subscriber (for tests and metrics).
    pub fn topic_count(&self) -> usize {
        self.inner.topics.read().map(|t| t.len()).unwrap_or(0)
    }

    /// Whether (org, channel) has a local subscriber.
    pub fn has_topic(&self, org: &OrgId, channel: &Channel) -> bool {
        self.inner
            .topics
            .read()
            .map(|t| t.contains_key(&(org.clone(), channel.clone())))
            .unwrap_or(false)
    }

    /// Whether any channel of `org` has a local subscriber.
    pub fn has_org_topics(&self, org: &OrgId) -> bool {
        self.inner
            .topics
            .read()
            .map(|t| t.keys().any(|(o, _)| o == org))
            .unwrap_or(false)
    }
}

#[async_trait]
impl Bus for InProcessBus {
    fn has_subscribers(&self, org: &OrgId, channel: &Channel) -> bool {
        self.has_topic(org, channel)
    }

    async fn publish(&self, org: &OrgId, channel: &Channel, frames: Vec<Frame>) -> Result<(), BusError> {
        let topic = {
            let topics = self
                .inner
                .topics
                .read()
                .map_err(|_| BusError::Unavailable("topic map poisoned".into()))?;
            match topics.get(&(org.clone(), channel.clone())) {
                Some(t) => t.clone(),
                None => return Ok(()),
            }
        };
        for mut f in frames {
            // One feeder publishes per topic, so offsets follow send order.
            let len = f.text.len() as u64;
            f.end_offset = topic.bytes.fetch_add(len, Ordering::AcqRel) + len;
            topic.frames.fetch_add(1, Ordering::AcqRel);
            // No receivers left is not an error: the topic is being removed.
            let _ = topic.tx.send(f);
        }
        Ok(())
    }

    async fn subscribe(&self, org: &OrgId, channel: &Channel) -> Result<BoxSubscription, BusError> {
        let key = (org.clone(), channel.clone());
        let poisoned = || BusError::Unavailable("topic map poisoned".into());
        // Receivers are created under the map lock (read or write), and a
        // topic is removed under the write lock only with no receivers left,
        // so a new receiver never lands on a removed topic.
        let existing = {
            let topics = self.inner.topics.read().map_err(|_| poisoned())?;
            topics.get(&key).map(|t| (t.clone(), t.tx.subscribe()))
        };
        let (topic, rx) = match existing {
            Some(v) => v,
            None => {
                let mut topics = self.inner.topics.write().map_err(|_| poisoned())?;
                let topic = topics
                    .entry(key.clone())
                    .or_insert_with(|| {
                        Arc::new(Topic {
                            tx: broadcast::channel(self.inner.capacity).0,
                            frames: AtomicU64::new(0),
                            bytes: AtomicU64::new(0),
                        })
                    })
                    .clone();
                let rx = topic.tx.subscribe();
                (topic, rx)
            }
        };
        let consumed_bytes = topic.bytes.load(Ordering::Acquire);
        let consumed_frames = topic.frames.load(Ordering::Acquire);
        Ok(Box::new(InProcessSubscription {
            topic,
            key: Some(key),
            bus: Arc::downgrade(&self.inner),
            consumed_bytes,
            consumed_frames,
            frames: Some(Box::pin(receiver_stream(rx))),
        }))
    }
}

type FrameStream = Pin<Box<dyn Stream<Item = Result<Frame, Lagged>> + Send + Sync>>;

/// A broadcast receiver as a stream; the receive future lives inside the
/// `unfold` state, so polling allocates nothing per frame.
fn receiver_stream(
    rx: broadcast::Receiver<Frame>,
) -> impl Stream<Item = Result<Frame, Lagged>> + Send + Sync {
    futures_util::stream::unfold(rx, |mut rx| async move {
        match rx.recv().await {
            Ok(f) => Some((Ok(f), rx)),
            Err(broadcast::error::RecvError::Lagged(n)) => Some((Err(Lagged(n)), rx)),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    })
}

struct InProcessSubscription {
    topic: Arc<Topic>,
    key: Option<TopicKey>,
    bus: Weak<Inner>,
    consumed_bytes: u64,
    consumed_frames: u64,
    frames: Option<FrameStream>,
}

impl Stream for InProcessSubscription {
    type Item = Result<Frame, Lagged>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let Some(frames) = self.frames.as_mut() else {
            return Poll::Ready(None);
        };
        let item = frames.as_mut().poll_next(cx);
        match &item {
            Poll::Ready(Some(Ok(f))) => {
                self.consumed_bytes = self.consumed_bytes.max(f.end_offset);
                self.consumed_frames += 1;
            }
            Poll::Ready(Some(Err(Lagged(n)))) => self.consumed_frames += n,
            _ => {}
        }
        item
    }
}

impl Subscription for InProcessSubscription {
    fn backlog(&self) -> Backlog {
        Backlog {
            frames: self
                .topic
                .frames
                .load(Ordering::Acquire)
                .saturating_sub(self.consumed_frames),
            bytes: self
                .topic
                .bytes
                .load(Ordering::Acquire)
                .saturating_sub(self.consumed_bytes),
        }
    }
}

impl Drop for InProcessSubscription {
    fn drop(&mut self) {
        // Drop the receiver first, then remove the topic if it was the last.
        self.frames = None;
        if self.topic.tx.receiver_count() > 0 {
            return;
        }
        let (Some(inner), Some(key)) = (self.bus.upgrade(), self.key.take()) else {
            return;
        };
        if let Ok(mut topics) = inner.topics.write()
            && let Some(t) = topics.get(&key)
            && Arc::ptr_eq(t, &self.topic)
            && t.tx.receiver_count() == 0
        {
            topics.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;

    use super::*;

    fn frame(seq: u64) -> Frame {
        Frame::new(seq, Utf8Bytes::from(format!("{{\"seq\":{seq}}}")))
    }

    #[tokio::test]
    async fn delivers_in_order_per_org_and_channel() {
        let bus = InProcessBus::new(16);
        let (a, b) = (OrgId::generate(), OrgId::generate());
        let ch: Channel = "venue:x".parse().unwrap();
        let mut sa = bus.subscribe(&a, &ch).await.unwrap();
        let mut sb = bus.subscribe(&b, &ch).await.unwrap();
        bus.publish(&a, &ch, vec![frame(1), frame(2)]).await.unwrap();
        assert_eq!(sa.backlog().frames, 2);
        assert_eq!(sa.next().await.unwrap().unwrap().seq, 1);
        assert_eq!(sa.next().await.unwrap().unwrap().seq, 2);
        assert_eq!(sa.backlog(), Backlog::default());
        bus.publish(&b, &ch, vec![frame(3)]).await.unwrap();
        assert_eq!(sb.next().await.unwrap().unwrap().seq, 3);
        assert_eq!(bus.topic_count(), 2);
        drop(sa);
        drop(sb);
        assert_eq!(bus.topic_count(), 0);
    }

    #[tokio::test]
    async fn slow_subscriber_lags_instead_of_buffering() {
        let bus = InProcessBus::new(4);
        let org = OrgId::generate();
        let ch: Channel = "venue:x".parse().unwrap();
        let mut s = bus.subscribe(&org, &ch).await.unwrap();
        bus.publish(&org, &ch, (1..=10).map(frame).collect())
            .await
            .unwrap();
        assert_eq!(s.backlog().frames, 10);
        assert!(matches!(s.next().await, Some(Err(Lagged(6)))));
        assert_eq!(s.next().await.unwrap().unwrap().seq, 7);
    }
}
