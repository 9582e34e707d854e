//! Live streams: the WebSocket (`GET /v1/stream`) and SSE
//! (`GET /v1/stream/sse`) endpoints, and the bus that feeds them.
//!
//! Data path: the store calls a commit listener on its writer thread after
//! every commit; the listener only hands the committed messages to the
//! [`feeder`] task (a bounded queue, so it never does work on the writer
//! thread), which renders each (message, channel) as one [`bus::Frame`] and
//! publishes it on the [`bus::Bus`]. Each connection subscribes to the
//! topics it wants and writes the shared frame bytes to its socket.
//!
//! Resume (a subscribe with `after`, or SSE's `Last-Event-ID`): subscribe to
//! the bus *first*, so everything committed from then on is buffered in the
//! subscription; then replay the durable log after the cursor page by page;
//! then continue with the buffered live frames, skipping any `seq` already
//! replayed. A message committed before the subscription is in the log, one
//! committed after it is in the subscription, one in both is dropped by the
//! `seq` filter: no gap and no duplicate at the seam, whatever is published
//! meanwhile. A cursor older than what retention kept answers
//! `cursor_expired` rather than silently skipping.
//!
//! Memory: a topic's frames live in one bounded ring shared by its
//! subscribers; a connection whose backlog exceeds `queue_bytes` or
//! `queue_frames` (or that the ring overtakes) is closed with 4008 and
//! resumes by cursor. Socket writes are batched (feed several frames, then
//! flush once) and the WebSocket read buffer is small, so an idle connection
//! costs a few KiB.

pub mod bus;
mod feeder;
mod frame;
mod limits;
mod nats_bus;
mod replay;
pub mod sse;
pub(crate) mod subs;
pub mod ws;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use marquee_core::Tier;
use marquee_core::ids::KeyId;
use tokio::sync::oneshot;

pub use bus::{Bus, DynBus, InProcessBus};
pub use feeder::{feed, register_commit_listener};
pub use nats_bus::NatsBus;

/// Close codes sent on a stream WebSocket (also in ARCHITECTURE.md).
pub mod close_code {
    /// The server is shutting down; reconnect (to another node) and resume.
    pub const GOING_AWAY: u16 = 1001;
    /// An inbound frame was larger than the limit; do not resend it.
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    /// A server-side failure (e.g. the store failed during replay); reconnect
    /// with backoff and resume.
    pub const INTERNAL_ERROR: u16 = 1011;
    /// The peer sent nothing (not even a pong) within the idle timeout.
    pub const IDLE_TIMEOUT: u16 = 4000;
    /// The connection's API key was revoked; do not reconnect with it.
    pub const KEY_REVOKED: u16 = 4003;
    /// The consumer fell behind its bounded queue; reconnect and resume by
    /// cursor.
    pub const SLOW_CONSUMER: u16 = 4008;
}

/// Stream limits and timings; see `cli` for the flags.
#[derive(Debug, Clone)]
pub struct StreamConfig {
    /// Server ping interval.
    pub ping_interval: Duration,
    /// A peer silent this long is closed (4000).
    pub idle_timeout: Duration,
    /// Outbound backlog per connection, in bytes, before 4008.
    pub queue_bytes: usize,
    /// Outbound backlog per connection, in frames, before 4008 (also the
    /// bus ring size per topic).
    pub queue_frames: usize,
    pub max_subscriptions: usize,
    /// Concurrent stream connections per key on this node, by tier; a key's
    /// own `max_stream_connections` overrides its tier's number.
    pub connections_per_key: ConnectionLimits,
    /// Largest inbound WebSocket message; larger closes with 1009.
    pub max_inbound_bytes: usize,
    /// Inbound client frames per second per connection (burst: 2×).
    pub inbound_frames_per_sec: u32,
    /// WebSocket read buffer per connection. Client frames are tiny, and
    /// this buffer is most of an idle connection's memory; it grows on
    /// demand for a frame up to `max_inbound_bytes`.
    pub read_buffer_bytes: usize,
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            ping_interval: Duration::from_secs(25),
            idle_timeout: Duration::from_secs(60),
            queue_bytes: 1024 * 1024,
            queue_frames: 4096,
            max_subscriptions: 100,
            connections_per_key: ConnectionLimits::default(),
            max_inbound_bytes: 4096,
            inbound_frames_per_sec: 20,
            read_buffer_bytes: 2048,
        }
    }
}

/// Concurrent stream connections per key on one node, by tier. Counted per
/// node: behind a load balancer with N nodes a key may hold up to N × its
/// limit cluster-wide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    pub free: u32,
    pub pro: u32,
    pub enterprise: u32,
}

impl Default for ConnectionLimits {
    /// Free keys cannot stream; a pro key must carry a stadium's worth of
    /// fans on one node (one shared app key, 30,000 seats).
    fn default() -> Self {
        ConnectionLimits {
            free: 0,
            pro: 50_000,
            enterprise: 100_000,
        }
    }
}

impl ConnectionLimits {
    /// The same limit for every tier.
    pub fn uniform(n: u32) -> Self {
        ConnectionLimits {
            free: n,
            pro: n,
            enterprise: n,
        }
    }

    pub fn for_tier(&self, tier: Tier) -> u32 {
        match tier {
            Tier::Free => self.free,
            Tier::Pro => self.pro,
            Tier::Enterprise => self.enterprise,
        }
    }

    /// The limit in force for a key: its own, else its tier's; 0 for a tier
    /// that cannot stream at all.
    pub fn effective(&self, tier: Tier, key_limit: Option<u32>) -> u32 {
        if !tier.can_stream() {
            return 0;
        }
        key_limit.unwrap_or_else(|| self.for_tier(tier))
    }

    /// `pro=50000,enterprise=100000` (tiers not named keep the default), or
    /// a bare number for pro and enterprise.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut out = ConnectionLimits::default();
        let s = s.trim();
        if let Ok(n) = s.parse::<u32>() {
            out.pro = n;
            out.enterprise = n;
            return Ok(out);
        }
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (tier, n) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?}: expected TIER=N, e.g. pro=50000,enterprise=100000"))?;
            let tier: Tier = tier
                .trim()
                .parse()
                .map_err(|e: marquee_core::tier::UnknownTier| e.to_string())?;
            let n: u32 = n
                .trim()
                .parse()
                .map_err(|_| format!("{part:?}: the limit must be a whole number of connections"))?;
            match tier {
                Tier::Free => out.free = n,
                Tier::Pro => out.pro = n,
                Tier::Enterprise => out.enterprise = n,
            }
        }
        Ok(out)
    }
}

/// Stream command-line flags (flattened into `marquee serve`).
#[derive(Debug, Clone, clap::Args)]
pub struct StreamArgs {
    /// WebSocket ping interval (e.g. 25s).
    #[arg(long, env = "MARQUEE_STREAM_PING_INTERVAL", default_value = "25s", value_parser = parse_duration)]
    pub stream_ping_interval: Duration,
    /// Close a stream peer silent this long (e.g. 60s).
    #[arg(long, env = "MARQUEE_STREAM_IDLE_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub stream_idle_timeout: Duration,
    /// Outbound backlog per connection in bytes before closing it with 4008.
    #[arg(long, env = "MARQUEE_STREAM_QUEUE_BYTES", default_value_t = 1024 * 1024)]
    pub stream_queue_bytes: usize,
    /// Outbound backlog per connection in frames before closing it with 4008.
    #[arg(long, env = "MARQUEE_STREAM_QUEUE_FRAMES", default_value_t = 4096)]
    pub stream_queue_frames: usize,
    /// Subscriptions per connection.
    #[arg(long, env = "MARQUEE_STREAM_MAX_SUBSCRIPTIONS", default_value_t = 100)]
    pub stream_max_subscriptions: usize,
    /// Concurrent stream connections per API key on each node, by tier:
    /// e.g. `pro=50000,enterprise=100000` (tiers not named keep their
    /// default: free 0, pro 50000, enterprise 100000; free keys cannot
    /// stream). A bare number sets pro and enterprise. A key's own limit
    /// (`marquee key set-limit`) overrides its tier's.
    #[arg(
        long,
        env = "MARQUEE_STREAM_MAX_CONNECTIONS_PER_KEY",
        default_value = "free=0,pro=50000,enterprise=100000",
        value_parser = ConnectionLimits::parse
    )]
    pub stream_max_connections_per_key: ConnectionLimits,
    /// Largest inbound WebSocket message in bytes (larger closes with 1009).
    #[arg(long, env = "MARQUEE_STREAM_MAX_INBOUND_BYTES", default_value_t = 4096)]
    pub stream_max_inbound_bytes: usize,
    /// Inbound client frames per second per connection.
    #[arg(long, env = "MARQUEE_STREAM_INBOUND_FRAMES_PER_SEC", default_value_t = 20)]
    pub stream_inbound_frames_per_sec: u32,
    /// WebSocket read buffer per connection, in bytes (idle memory).
    #[arg(long, env = "MARQUEE_STREAM_READ_BUFFER_BYTES", default_value_t = 2048)]
    pub stream_read_buffer_bytes: usize,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    marquee_core::duration::parse(s).map_err(|e| e.to_string())
}

impl StreamArgs {
    pub fn into_config(self) -> StreamConfig {
        StreamConfig {
            ping_interval: self.stream_ping_interval,
            idle_timeout: self.stream_idle_timeout,
            queue_bytes: self.stream_queue_bytes,
            queue_frames: self.stream_queue_frames,
            max_subscriptions: self.stream_max_subscriptions,
            connections_per_key: self.stream_max_connections_per_key,
            max_inbound_bytes: self.stream_max_inbound_bytes,
            inbound_frames_per_sec: self.stream_inbound_frames_per_sec,
            read_buffer_bytes: self.stream_read_buffer_bytes.max(256),
        }
    }
}

/// What every stream connection shares: the bus, the per-key connection
/// counts and the shutdown signal.
/// How stale a key's cached revocation status may be.
const KEY_CHECK_EVERY: Duration = Duration::from_secs(5);

pub struct StreamHub {
    pub bus: DynBus,
    pub config: StreamConfig,
    connections: Mutex<HashMap<KeyId, usize>>,
    /// One shutdown sender per live connection. A per-connection oneshot is
    /// polled without touching shared state, unlike a shared `watch`/`Notify`
    /// whose every poll takes a lock all connections contend on.
    stoppers: Mutex<HashMap<u64, oneshot::Sender<()>>>,
    next_id: AtomicU64,
    stopping: AtomicBool,
    /// Per key: when its revocation status was last read, and the answer.
    /// Shared by all of the key's connections on this node, so heartbeats of
    /// 50,000 idle sockets cost a handful of store reads, not 2,000/s.
    key_checks: Mutex<HashMap<KeyId, (std::time::Instant, bool)>>,
    /// Recently erased seqs: frames still held in rings and subscription
    /// buffers are checked against it before they are written
    /// (`crate::erasure`).
    pub erased: Arc<crate::erasure::ErasedSeqs>,
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdmitError {
    /// The key holds its maximum number of stream connections.
    TooManyConnections,
    ShuttingDown,
}

impl StreamHub {
    pub fn new(config: StreamConfig, bus: DynBus, erased: Arc<crate::erasure::ErasedSeqs>) -> Arc<Self> {
        Arc::new(StreamHub {
            erased,
            bus,
            config,
            connections: Mutex::new(HashMap::new()),
            stoppers: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            stopping: AtomicBool::new(false),
            key_checks: Mutex::new(HashMap::new()),
        })
    }

    /// Whether `key` has been revoked, read from the store at most once per
    /// `KEY_CHECK_EVERY` per key on this node.
    pub async fn key_revoked(&self, store: &marquee_store::DynStore, key: &KeyId) -> bool {
        if let Ok(m) = self.key_checks.lock()
            && let Some((at, revoked)) = m.get(key)
            && at.elapsed() < KEY_CHECK_EVERY
        {
            return *revoked;
        }
        let revoked = match store.get_key(key).await {
            Ok(Some(k)) => k.revoked_at.is_some(),
            Ok(None) => true,
            // A store hiccup is not a revocation: check again next time.
            Err(_) => return false,
        };
        if let Ok(mut m) = self.key_checks.lock() {
            if m.len() > 100_000 {
                m.retain(|_, (at, _)| at.elapsed() < KEY_CHECK_EVERY);
            }
            m.insert(key.clone(), (std::time::Instant::now(), revoked));
        }
        revoked
    }

    /// Counts a new connection for `key` (up to `limit`, the key's limit on
    /// this node) and registers its shutdown signal.
    pub fn acquire(self: &Arc<Self>, key: &KeyId, limit: u32) -> Result<ConnectionGuard, AdmitError> {
        if self.stopping.load(Ordering::SeqCst) {
            return Err(AdmitError::ShuttingDown);
        }
        {
            let mut conns = self.connections.lock().map_err(|_| AdmitError::ShuttingDown)?;
            let n = conns.entry(key.clone()).or_insert(0);
            if *n >= limit as usize {
                return Err(AdmitError::TooManyConnections);
            }
            *n += 1;
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        if let Ok(mut stoppers) = self.stoppers.lock() {
            stoppers.insert(id, tx);
        }
        let guard = ConnectionGuard {
            hub: self.clone(),
            key: key.clone(),
            id,
            stop: Some(StopSignal(rx)),
        };
        // `shutdown` sets the flag before draining the senders: one inserted
        // after the drain sees the flag here.
        if self.stopping.load(Ordering::SeqCst) {
            return Err(AdmitError::ShuttingDown);
        }
        Ok(guard)
    }

    /// Asks every stream connection to close (1001) and every SSE response
    /// to end, so graceful HTTP shutdown does not wait on them forever.
    pub fn shutdown(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        let senders = self
            .stoppers
            .lock()
            .map(|mut s| std::mem::take(&mut *s))
            .unwrap_or_default();
        for tx in senders.into_values() {
            let _ = tx.send(());
        }
    }
}

/// Resolves when the server shuts down.
pub struct StopSignal(oneshot::Receiver<()>);

impl Future for StopSignal {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // A dropped sender (hub gone) also means stop.
        Pin::new(&mut self.0).poll(cx).map(|_| ())
    }
}

/// Releases a per-key connection slot (and the shutdown registration) on
/// drop.
pub struct ConnectionGuard {
    hub: Arc<StreamHub>,
    key: KeyId,
    id: u64,
    stop: Option<StopSignal>,
}

impl ConnectionGuard {
    /// The connection's shutdown signal (once).
    pub fn stop_signal(&mut self) -> Option<StopSignal> {
        self.stop.take()
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        if let Ok(mut stoppers) = self.hub.stoppers.lock() {
            stoppers.remove(&self.id);
        }
        if let Ok(mut conns) = self.hub.connections.lock()
            && let Some(n) = conns.get_mut(&self.key)
        {
            *n -= 1;
            if *n == 0 {
                conns.remove(&self.key);
            }
        }
    }
}
