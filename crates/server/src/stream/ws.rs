//! `GET /v1/stream`: the WebSocket stream.
//!
//! Authentication, tier and the per-key connection limit are checked before
//! the upgrade, so a refusal is an ordinary HTTP error envelope. After the
//! upgrade one task owns the socket and serves, in one `select!` loop: client
//! frames (subscribe / unsubscribe / ping), live frames from its
//! subscriptions, the heartbeat, and shutdown. Live frames are written in
//! batches (feed up to [`BATCH_FRAMES`], flush once); every write is watched,
//! so a peer that stops reading is closed with 4008 once its backlog passes
//! the limits instead of stalling forever.

use std::future::Future;
use std::time::{Duration, Instant};

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::{FutureExt, SinkExt, StreamExt};
use marquee_core::Cursor;
use marquee_core::ids::OrgId;
use marquee_core::names::Channel;
use marquee_store::DynStore;
use serde::Deserialize;
use serde_json::json;

use super::bus::{Frame, Lagged};
use super::limits::FrameBudget;
use super::replay::{self, ReplayError};
use super::subs::{Sub, Subs, over_limit};
use super::{AdmitError, ConnectionGuard, StopSignal, StreamConfig, StreamHub, close_code, frame};
use crate::auth::{self, Caller};
use crate::error::ApiError;
use crate::state::AppState;

/// Frames fed to the socket before one flush.
pub const BATCH_FRAMES: usize = 256;
const BATCH_BYTES: usize = 256 * 1024;
/// How often a blocked write re-checks the connection's backlog.
const WATCH_INTERVAL: Duration = Duration::from_millis(100);
/// How long a closing handshake may take before the socket is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// WebSocket write buffer: frames are coalesced up to this before a write.
const WRITE_BUFFER: usize = 16 * 1024;

/// Authenticates a stream request (headers, or `?apiKey=` for browsers) and
/// checks the tier.
pub async fn authorize(
    state: &AppState,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<Caller, ApiError> {
    let from_query = query.and_then(|q| {
        serde_urlencoded::from_str::<Vec<(String, String)>>(q)
            .ok()?
            .into_iter()
            .find(|(k, _)| k == "apiKey" || k == "apikey")
            .map(|(_, v)| v)
    });
    let key = auth::presented_key(headers).or(from_query.as_deref());
    let caller = auth::authenticate(state, key).await?;
    if !caller.tier.can_stream() {
        return Err(ApiError::Forbidden(
            "Streaming needs a pro or enterprise key; this key is free tier. Use the REST API or upgrade the key."
                .into(),
        ));
    }
    Ok(caller)
}

/// Takes one of the key's connection slots on this node (its own
/// `max_stream_connections`, else its tier's default).
pub fn admit(hub: &std::sync::Arc<StreamHub>, caller: &Caller) -> Result<ConnectionGuard, ApiError> {
    let limit = hub
        .config
        .connections_per_key
        .effective(caller.tier, caller.max_stream_connections);
    hub.acquire(&caller.key_id, limit).map_err(|e| match e {
        AdmitError::TooManyConnections => ApiError::RateLimited { retry_after_secs: 1 },
        AdmitError::ShuttingDown => {
            ApiError::Unavailable("The server is shutting down; reconnect shortly.".into())
        }
    })
}

/// The live stream over WebSocket.
///
/// Upgrade, then send `{"action": "subscribe", "channel": "venue:…"}`
/// frames; messages arrive as JSON frames, resumable by cursor. Needs a pro
/// or enterprise key. Without an upgrade the request answers 400.
#[utoipa::path(
    get,
    path = "/v1/stream",
    tag = "streams",
    operation_id = "stream_websocket",
    params(("apiKey" = Option<String>, Query, description = "The API key, for clients that cannot set headers.")),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol."),
        crate::api::openapi::Common, crate::api::openapi::KeyAuth, crate::api::openapi::BadRequest,
        crate::api::openapi::StreamForbidden,
    ),
    security(("api_key" = []), ("bearer" = []), ("apikey_header" = []), ("api_key_query" = [])),
)]
pub async fn handler(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let caller = match authorize(&state, &headers, query.as_deref()).await {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let Ok(upgrade) = upgrade else {
        return ApiError::invalid(
            "GET /v1/stream needs a WebSocket upgrade; for a plain HTTP stream use /v1/stream/sse.",
        )
        .into_response();
    };
    let hub = state.streams.clone();
    let mut guard = match admit(&hub, &caller) {
        Ok(g) => g,
        Err(e) => return e.into_response(),
    };
    let stop = guard.stop_signal();
    let cfg = &hub.config;
    let store = state.store.clone();
    upgrade
        .read_buffer_size(cfg.read_buffer_bytes)
        .write_buffer_size(WRITE_BUFFER)
        .max_write_buffer_size(cfg.queue_bytes.max(BATCH_BYTES) * 2)
        .max_message_size(cfg.max_inbound_bytes)
        .max_frame_size(cfg.max_inbound_bytes)
        .on_upgrade(move |socket| async move {
            let _guard = guard;
            Connection::new(hub, store, &caller, stop).serve(socket).await;
        })
}

/// A recoverable client mistake, answered with an error frame.
struct ClientError {
    code: &'static str,
    message: String,
    channel: Option<Channel>,
}

impl ClientError {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        ClientError {
            code,
            message: message.into(),
            channel: None,
        }
    }

    fn on(mut self, channel: &Channel) -> Self {
        self.channel = Some(channel.clone());
        self
    }

    fn frame(&self) -> Utf8Bytes {
        let mut v = json!({"event": "error", "code": self.code, "message": self.message});
        if let Some(c) = &self.channel {
            v["channel"] = json!(c.as_str());
        }
        frame::control(v)
    }
}

/// Why the connection ends; `Some` closes with that code and reason.
type Close = Option<(u16, &'static str)>;

#[derive(Deserialize)]
struct ClientFrame {
    action: String,
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    after: Option<String>,
}

enum Action {
    Subscribe(Channel, Option<Cursor>),
    Unsubscribe(Channel),
    Ping,
}

fn parse_action(text: &str) -> Result<Action, ClientError> {
    let f: ClientFrame = serde_json::from_str(text).map_err(|_| {
        ClientError::new(
            "invalid_request",
            r#"Frames must be JSON objects like {"action":"subscribe","channel":"venue","id":"stubbs-austin"}."#,
        )
    })?;
    let channel = || -> Result<Channel, ClientError> {
        let parsed = match (&f.channel, &f.id) {
            (Some(kind), Some(id)) => Channel::from_parts(kind, id),
            (Some(full), None) => full.parse(),
            (None, _) => {
                return Err(ClientError::new("invalid_channel", "Missing \"channel\"."));
            }
        };
        parsed.map_err(|e| ClientError::new("invalid_channel", e.to_string()))
    };
    match f.action.as_str() {
        "subscribe" => {
            let ch = channel()?;
            let after = match &f.after {
                Some(a) => Some(a.parse::<Cursor>().map_err(|_| {
                    ClientError::new(
                        "invalid_cursor",
                        "\"after\" must be a cursor from an earlier frame.",
                    )
                    .on(&ch)
                })?),
                None => None,
            };
            Ok(Action::Subscribe(ch, after))
        }
        "unsubscribe" => Ok(Action::Unsubscribe(channel()?)),
        "ping" => Ok(Action::Ping),
        other => Err(ClientError::new(
            "unknown_action",
            format!("Unknown action {other:?}; use subscribe, unsubscribe or ping."),
        )),
    }
}

/// Runs a write while watching the backlog: a peer that does not read is
/// closed as a slow consumer rather than waited on forever.
pub(crate) async fn watched<F>(write: F, subs: &Subs, cfg: &StreamConfig) -> Result<(), Close>
where
    F: Future<Output = Result<(), axum::Error>>,
{
    let mut write = std::pin::pin!(write);
    // Fast path: a socket with room completes at once, without arming a timer.
    if let Some(r) = write.as_mut().now_or_never() {
        return r.map_err(|_| None);
    }
    let started = Instant::now();
    let mut check = tokio::time::interval(WATCH_INTERVAL);
    check.reset();
    loop {
        tokio::select! {
            r = &mut write => return r.map_err(|_| None),
            _ = check.tick() => {
                if over_limit(subs.backlog(), cfg) {
                    return Err(Some((close_code::SLOW_CONSUMER, "slow consumer")));
                }
                if started.elapsed() > cfg.idle_timeout {
                    return Err(None);
                }
            }
        }
    }
}

async fn write_all(socket: &mut WebSocket, frames: Vec<Utf8Bytes>) -> Result<(), axum::Error> {
    crate::metrics::frames_sent(crate::metrics::Protocol::Ws, frames.len());
    for f in frames {
        socket.feed(Message::Text(f)).await?;
    }
    socket.flush().await
}

struct Connection {
    hub: std::sync::Arc<StreamHub>,
    store: DynStore,
    org: OrgId,
    /// Re-checked at every heartbeat: a revoked key's streams are closed.
    key: marquee_core::ids::KeyId,
    subs: Subs,
    budget: FrameBudget,
    throttle_notice: Option<Instant>,
    stop: Option<StopSignal>,
}

enum Event {
    Shutdown,
    Inbound(Option<Result<Message, axum::Error>>),
    Live(usize, Option<Result<Frame, Lagged>>),
    Tick,
}

impl Connection {
    fn new(
        hub: std::sync::Arc<StreamHub>,
        store: DynStore,
        caller: &Caller,
        stop: Option<StopSignal>,
    ) -> Self {
        let budget = FrameBudget::new(hub.config.inbound_frames_per_sec);
        Connection {
            hub,
            store,
            org: caller.org_id.clone(),
            key: caller.key_id.clone(),
            subs: Subs::default(),
            budget,
            throttle_notice: None,
            stop,
        }
    }

    async fn serve(mut self, mut socket: WebSocket) {
        let _open = crate::metrics::stream_open(crate::metrics::Protocol::Ws);
        let close = self.run(&mut socket).await;
        if let Some((close_code::SLOW_CONSUMER, _)) = close {
            crate::metrics::slow_consumer_closed(crate::metrics::Protocol::Ws);
        }
        if let Some((code, reason)) = close {
            tracing::debug!(code, reason, "closing stream connection");
            let frame = CloseFrame {
                code,
                reason: Utf8Bytes::from_static(reason),
            };
            // Finish the closing handshake: send ours, then read until the
            // peer's close, so its queued frames (pongs) do not meet a reset.
            let _ = tokio::time::timeout(
                CLOSE_GRACE,
                Box::pin(async {
                    socket.send(Message::Close(Some(frame))).await?;
                    while let Some(m) = socket.next().await {
                        if let Message::Close(_) = m? {
                            break;
                        }
                    }
                    Ok::<(), axum::Error>(())
                }),
            )
            .await;
        }
    }

    async fn run(&mut self, socket: &mut WebSocket) -> Close {
        // Work that needs large futures (replay, batched writes) is boxed
        // while it runs, so an idle connection's task, which is allocated at
        // its largest state, stays small.
        match self.run_until_close(socket).await {
            Err(close) => close,
            Ok(never) => match never {},
        }
    }

    async fn run_until_close(&mut self, socket: &mut WebSocket) -> Result<std::convert::Infallible, Close> {
        let cfg = self.hub.config.clone();
        let mut heartbeat = tokio::time::interval_at(
            tokio::time::Instant::now() + cfg.ping_interval,
            cfg.ping_interval
                .min(cfg.idle_timeout / 2)
                .max(Duration::from_millis(10)),
        );
        let mut last_heard = Instant::now();
        loop {
            let event = tokio::select! {
                biased;
                () = stopped(&mut self.stop) => Event::Shutdown,
                // Before live frames: on a busy stream a frame is always
                // ready, and the heartbeat (pings, idle and revocation
                // checks) must still run.
                _ = heartbeat.tick() => Event::Tick,
                m = socket.next() => Event::Inbound(m),
                (i, f) = self.subs.next_frame() => Event::Live(i, f),
            };
            match event {
                Event::Shutdown => return Err(Some((close_code::GOING_AWAY, "server shutting down"))),
                Event::Inbound(None) => return Err(None),
                Event::Inbound(Some(Err(e))) => return Err(inbound_error(e)),
                Event::Inbound(Some(Ok(msg))) => {
                    last_heard = Instant::now();
                    match msg {
                        Message::Text(t) => Box::pin(self.on_text(socket, t.as_str())).await?,
                        Message::Binary(_) => {
                            let err =
                                ClientError::new("invalid_request", "Frames must be JSON text, not binary.");
                            Box::pin(self.send(socket, err.frame())).await?;
                        }
                        Message::Ping(_) | Message::Pong(_) => {}
                        Message::Close(_) => return Err(None),
                    }
                }
                Event::Live(i, item) => Box::pin(self.deliver(socket, i, item)).await?,
                Event::Tick => {
                    if last_heard.elapsed() >= cfg.idle_timeout {
                        return Err(Some((close_code::IDLE_TIMEOUT, "idle timeout")));
                    }
                    // A key revoked since the upgrade (through any node or
                    // the CLI) ends its streams within one heartbeat.
                    if self.hub.key_revoked(&self.store, &self.key).await {
                        return Err(Some((close_code::KEY_REVOKED, "api key revoked")));
                    }
                    let ping = async { socket.send(Message::Ping(Bytes::new())).await };
                    Box::pin(watched(ping, &self.subs, &cfg)).await?;
                }
            }
        }
    }

    async fn send(&self, socket: &mut WebSocket, text: Utf8Bytes) -> Result<(), Close> {
        crate::metrics::frames_sent(crate::metrics::Protocol::Ws, 1);
        watched(socket.send(Message::Text(text)), &self.subs, &self.hub.config).await
    }

    async fn on_text(&mut self, socket: &mut WebSocket, text: &str) -> Result<(), Close> {
        if !self.budget.take() {
            // Over budget: the frame is dropped, with at most one notice a second.
            let now = Instant::now();
            if self
                .throttle_notice
                .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1))
            {
                self.throttle_notice = Some(now);
                let err = ClientError::new("rate_limited", "Too many frames; this one was ignored.");
                self.send(socket, err.frame()).await?;
            }
            return Ok(());
        }
        match parse_action(text) {
            Ok(Action::Ping) => self.send(socket, frame::control(json!({"event": "pong"}))).await,
            Ok(Action::Unsubscribe(ch)) => {
                if let Some(i) = self.subs.position(&ch) {
                    self.subs.list.swap_remove(i);
                    self.subs.next = 0;
                }
                let ack = json!({"event": "unsubscribed", "channel": ch.as_str()});
                self.send(socket, frame::control(ack)).await
            }
            Ok(Action::Subscribe(ch, after)) => self.subscribe(socket, ch, after).await,
            Err(e) => self.send(socket, e.frame()).await,
        }
    }

    async fn subscribe(
        &mut self,
        socket: &mut WebSocket,
        ch: Channel,
        after: Option<Cursor>,
    ) -> Result<(), Close> {
        let ack = |ch: &Channel| {
            let mut v = json!({"event": "subscribed", "channel": ch.as_str()});
            if let Some(a) = after {
                v["after"] = json!(a.encode());
            }
            frame::control(v)
        };
        if let Some(i) = self.subs.position(&ch) {
            if after.is_none() {
                return self.send(socket, ack(&ch)).await;
            }
            // A resume on a live subscription starts it over from the cursor.
            self.subs.list.swap_remove(i);
            self.subs.next = 0;
        }
        if self.subs.list.len() >= self.hub.config.max_subscriptions {
            let msg = format!(
                "At most {} subscriptions per connection; unsubscribe first or open another connection.",
                self.hub.config.max_subscriptions
            );
            return self
                .send(
                    socket,
                    ClientError::new("too_many_subscriptions", msg).on(&ch).frame(),
                )
                .await;
        }
        // Subscribe first: from here on every new frame is buffered in `stream`.
        let stream = match self.hub.bus.subscribe(&self.org, &ch).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "stream bus subscribe failed");
                let err =
                    ClientError::new("unavailable", "Live delivery is unavailable; retry shortly.").on(&ch);
                return self.send(socket, err.frame()).await;
            }
        };
        let mut sub = Sub {
            channel: ch,
            stream,
            last_seq: 0,
        };
        if let Some(after) = after {
            let mut pos = after.seq();
            let mut first = true;
            loop {
                let (frames, more) = match replay::page(
                    &self.store,
                    &self.org,
                    &sub.channel,
                    pos,
                    replay::PAGE,
                )
                .await
                {
                    Ok(p) => p,
                    Err(ReplayError::Expired) => {
                        let err = ClientError::new(
                            "cursor_expired",
                            "The cursor is older than the retained log; subscribe without \"after\" (and backfill from the REST API) to continue.",
                        )
                        .on(&sub.channel);
                        return self.send(socket, err.frame()).await;
                    }
                    Err(ReplayError::Store(e)) => {
                        tracing::error!(error = %e, "stream replay failed");
                        return Err(Some((close_code::INTERNAL_ERROR, "replay failed")));
                    }
                };
                if first {
                    first = false;
                    self.send(socket, ack(&sub.channel)).await?;
                }
                if let Some(last) = frames.last() {
                    pos = last.seq;
                }
                let texts: Vec<Utf8Bytes> = frames
                    .into_iter()
                    .filter(|f| !self.hub.erased.contains(f.seq))
                    .map(|f| f.text)
                    .collect();
                watched(write_all(socket, texts), &self.subs, &self.hub.config).await?;
                if !more {
                    break;
                }
            }
            sub.last_seq = pos;
        } else {
            self.send(socket, ack(&sub.channel)).await?;
        }
        self.subs.list.push(sub);
        Ok(())
    }

    /// Writes one live frame and whatever else is ready, as one batch.
    async fn deliver(
        &mut self,
        socket: &mut WebSocket,
        first: usize,
        item: Option<Result<Frame, Lagged>>,
    ) -> Result<(), Close> {
        let mut batch: Vec<Utf8Bytes> = Vec::new();
        let mut full = false;
        let mut bytes = 0usize;
        let mut next = Some((first, item));
        while let Some((i, item)) = next.take() {
            match item {
                Some(Ok(f)) => {
                    let sub = &mut self.subs.list[i];
                    // Frames already sent by the replay are skipped.
                    // An erased message still in the ring is skipped.
                    if f.seq > sub.last_seq {
                        sub.last_seq = f.seq;
                        if !self.hub.erased.contains(f.seq) {
                            bytes += f.text.len();
                            batch.push(f.text);
                        }
                    }
                }
                Some(Err(Lagged(_))) => return Err(Some((close_code::SLOW_CONSUMER, "slow consumer"))),
                None => return Err(Some((close_code::INTERNAL_ERROR, "live feed ended"))),
            }
            if batch.len() < BATCH_FRAMES && bytes < BATCH_BYTES {
                next = self.subs.next_frame().now_or_never();
            } else {
                full = true;
            }
        }
        // A batch that ended because nothing else was ready means the
        // connection is keeping up; only a full one can hide a backlog. (The
        // topic counters are written per frame by the feeder: reading them on
        // every batch would bounce their cache line between cores.)
        if full && over_limit(self.subs.backlog(), &self.hub.config) {
            return Err(Some((close_code::SLOW_CONSUMER, "slow consumer")));
        }
        if batch.is_empty() {
            return Ok(());
        }
        watched(write_all(socket, batch), &self.subs, &self.hub.config).await
    }
}

/// Resolves on shutdown; never without a signal.
pub(crate) async fn stopped(stop: &mut Option<StopSignal>) {
    match stop {
        Some(s) => s.await,
        None => std::future::pending().await,
    }
}

fn inbound_error(e: axum::Error) -> Close {
    let inner = e.into_inner();
    match inner.downcast_ref::<tungstenite::Error>() {
        Some(tungstenite::Error::Capacity(_)) => Some((close_code::MESSAGE_TOO_BIG, "frame too large")),
        _ => {
            tracing::debug!(error = %inner, "stream connection read failed");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_channel_forms() {
        for text in [
            r#"{"action":"subscribe","channel":"venue","id":"stubbs-austin"}"#,
            r#"{"action":"subscribe","channel":"venue:stubbs-austin"}"#,
        ] {
            match parse_action(text) {
                Ok(Action::Subscribe(ch, None)) => assert_eq!(ch.as_str(), "venue:stubbs-austin"),
                _ => panic!("{text}"),
            }
        }
    }

    #[test]
    fn mistakes_are_client_errors() {
        let cases = [
            ("not json", "invalid_request"),
            (r#"{"action":"dance"}"#, "unknown_action"),
            (r#"{"action":"subscribe","channel":"Venue:x"}"#, "invalid_channel"),
            (r#"{"action":"subscribe"}"#, "invalid_channel"),
            (
                r#"{"action":"subscribe","channel":"venue:x","after":"nope"}"#,
                "invalid_cursor",
            ),
            (r#"[1,2]"#, "invalid_request"),
        ];
        for (text, code) in cases {
            match parse_action(text) {
                Err(e) => assert_eq!(e.code, code, "{text}"),
                Ok(_) => panic!("{text} parsed"),
            }
        }
    }
}
