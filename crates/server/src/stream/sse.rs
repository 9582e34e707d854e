//! `GET /v1/stream/sse?channel=venue:stubbs-austin&channel=…`: the same
//! stream as Server-Sent Events, for clients that cannot open a WebSocket.
//!
//! Same authentication (headers or `?apiKey=`), tiers and per-key connection
//! limit as the WebSocket. Each event is `id: <cursor>` plus `data: <the
//! WebSocket frame JSON>`, so `EventSource.onmessage` sees the same objects.
//!
//! SSE has one resume position for all its channels (`Last-Event-ID`), so
//! events are sent in commit (`seq`) order across channels: the replay is a
//! merge of the channels' pages by `seq`, and live frames are drained from
//! every subscription, sorted and de-duplicated before they are written (the
//! feeder publishes in commit order, so nothing lower can still be on its
//! way). A message on two subscribed channels is sent once.
//!
//! The response body is fed through a small bounded queue by one task per
//! stream; a client that stops reading is cut off once its backlog passes
//! the limits (it resumes with `Last-Event-ID`).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::{BufMut, Bytes, BytesMut};
use futures_util::FutureExt;
use marquee_core::Cursor;
use marquee_core::ids::OrgId;
use marquee_core::names::Channel;
use marquee_store::DynStore;
use tokio::sync::mpsc;

use super::bus::{Frame, Lagged};
use super::replay::{self, ReplayError};
use super::subs::{Sub, Subs, over_limit};
use super::{ConnectionGuard, StopSignal, StreamConfig, StreamHub, ws};
use crate::error::ApiError;
use crate::state::AppState;

/// Body chunks buffered between the stream task and the socket.
const BODY_QUEUE: usize = 16;
const WATCH_INTERVAL: Duration = Duration::from_millis(100);

/// The live stream as Server-Sent Events.
///
/// Each event is `id: <cursor>` and `data: <the WebSocket frame JSON>`;
/// resume with `Last-Event-ID` (or `after=`). Needs a pro or enterprise key.
#[utoipa::path(
    get,
    path = "/v1/stream/sse",
    tag = "streams",
    operation_id = "stream_sse",
    params(
        ("channel" = Vec<String>, Query, description = "A channel (`kind:id`), repeated for several.", explode = true),
        ("after" = Option<String>, Query, description = "A cursor to resume after."),
        ("Last-Event-ID" = Option<String>, Header, description = "A cursor to resume after (EventSource sends it)."),
        ("apiKey" = Option<String>, Query, description = "The API key, for EventSource (which cannot set headers)."),
    ),
    responses(
        (status = 200, description = "An endless `text/event-stream`.", content_type = "text/event-stream", body = String),
        crate::api::openapi::Common, crate::api::openapi::KeyAuth, crate::api::openapi::BadRequest,
        crate::api::openapi::StreamForbidden,
    ),
    security(("api_key" = []), ("bearer" = []), ("apikey_header" = []), ("api_key_query" = [])),
)]
pub async fn handler(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let caller = ws::authorize(&state, &headers, query.as_deref()).await?;
    let hub = state.streams.clone();
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query.as_deref().unwrap_or(""))
        .map_err(|_| ApiError::invalid("Malformed query string."))?;
    let mut channels: Vec<Channel> = Vec::new();
    let mut after: Option<Cursor> = None;
    for (k, v) in &pairs {
        match k.as_str() {
            "channel" => {
                let ch: Channel = v.parse().map_err(|e: marquee_core::names::NameError| {
                    ApiError::invalid_param("channel", e.to_string())
                })?;
                if !channels.contains(&ch) {
                    channels.push(ch);
                }
            }
            "after" | "lastEventId" => after = Some(parse_cursor(v, k)?),
            _ => {}
        }
    }
    if let Some(v) = headers.get("last-event-id") {
        let v = v
            .to_str()
            .map_err(|_| ApiError::invalid_param("Last-Event-ID", "Last-Event-ID must be a cursor."))?;
        if !v.trim().is_empty() {
            after = Some(parse_cursor(v.trim(), "Last-Event-ID")?);
        }
    }
    if channels.is_empty() {
        return Err(ApiError::invalid_param(
            "channel",
            "Name at least one channel: /v1/stream/sse?channel=venue:stubbs-austin.",
        ));
    }
    if channels.len() > hub.config.max_subscriptions {
        return Err(ApiError::invalid_param(
            "channel",
            format!("At most {} channels per stream.", hub.config.max_subscriptions),
        ));
    }
    let mut guard = ws::admit(&hub, &caller)?;
    let stop = guard.stop_signal();
    // Subscribe before replaying (see the module docs of `stream`).
    let mut subs = Subs::default();
    for ch in channels {
        let stream = hub.bus.subscribe(&caller.org_id, &ch).await.map_err(|e| {
            tracing::warn!(error = %e, "stream bus subscribe failed");
            ApiError::Unavailable("Live delivery is unavailable; retry shortly.".into())
        })?;
        subs.list.push(Sub {
            channel: ch,
            stream,
            last_seq: 0,
        });
    }
    let (tx, rx) = mpsc::channel::<Bytes>(BODY_QUEUE);
    let task = SseTask {
        hub,
        store: state.store.clone(),
        org: caller.org_id,
        key: caller.key_id,
        subs,
        tx,
        last_sent: after.map(Cursor::seq).unwrap_or(0),
        stop,
        _guard: guard,
    };
    tokio::spawn(task.run(after));
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
    });
    let mut resp = Body::from_stream(body).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(resp)
}

fn parse_cursor(v: &str, param: &str) -> Result<Cursor, ApiError> {
    v.parse().map_err(|_| {
        ApiError::invalid_param(param, format!("{param} must be a cursor from an earlier event."))
    })
}

fn event(out: &mut BytesMut, f: &Frame) {
    crate::metrics::frames_sent(crate::metrics::Protocol::Sse, 1);
    out.put_slice(b"id: ");
    out.put_slice(Cursor::from_seq(f.seq).encode().as_bytes());
    out.put_slice(b"\ndata: ");
    out.put_slice(f.text.as_bytes());
    out.put_slice(b"\n\n");
}

/// Why the stream task stops.
enum Stop {
    /// The client went away, or the server is shutting down.
    Gone,
    /// Fell behind its limits.
    Slow,
}

struct SseTask {
    hub: Arc<StreamHub>,
    store: DynStore,
    org: OrgId,
    key: marquee_core::ids::KeyId,
    subs: Subs,
    tx: mpsc::Sender<Bytes>,
    /// Highest seq sent; everything at or below it is skipped.
    last_sent: u64,
    stop: Option<StopSignal>,
    _guard: ConnectionGuard,
}

impl SseTask {
    async fn run(mut self, after: Option<Cursor>) {
        let _open = crate::metrics::stream_open(crate::metrics::Protocol::Sse);
        let result = async {
            self.send(Bytes::from_static(b"retry: 2000\n\n")).await?;
            if let Some(after) = after {
                self.replay(after.seq()).await?;
            }
            self.live().await
        }
        .await;
        if let Err(Stop::Slow) = result {
            tracing::debug!("closing slow SSE consumer");
            crate::metrics::slow_consumer_closed(crate::metrics::Protocol::Sse);
        }
    }

    /// Sends a chunk, watching the backlog while the client is not reading.
    async fn send(&self, chunk: Bytes) -> Result<(), Stop> {
        send_watched(&self.tx, chunk, &self.subs, &self.hub.config).await
    }

    /// Replays every channel after `after` up to the log head read at the
    /// start, merged in `seq` order. Everything committed after that head is
    /// already waiting in the live subscriptions (made before this task
    /// started). Bounding every channel by the same head matters: channels
    /// are read one after another, and a later channel's page must not carry
    /// a seq past a message an earlier channel's page could not yet see —
    /// the single SSE cursor would then skip it.
    async fn replay(&mut self, after: u64) -> Result<(), Stop> {
        let head = match self.store.head_seq().await {
            Ok(h) => h,
            Err(e) => {
                tracing::error!(error = %e, "SSE replay failed");
                return Err(Stop::Gone);
            }
        };
        struct Source {
            channel: Channel,
            buf: VecDeque<Frame>,
            more: bool,
            pos: u64,
        }
        let mut sources: Vec<Source> = self
            .subs
            .list
            .iter()
            .map(|s| Source {
                channel: s.channel.clone(),
                buf: VecDeque::new(),
                more: true,
                pos: after,
            })
            .collect();
        // One SSE request buffers at most PAGE frames of replay in total,
        // however many channels it merges.
        let per_source = (replay::PAGE / sources.len().max(1)).max(16);
        let mut out = BytesMut::new();
        loop {
            for s in sources.iter_mut().filter(|s| s.buf.is_empty() && s.more) {
                match replay::page(&self.store, &self.org, &s.channel, s.pos, per_source).await {
                    Ok((mut frames, more)) => {
                        if let Some(last) = frames.last() {
                            s.pos = last.seq;
                        }
                        s.more = more;
                        if let Some(past) = frames.iter().position(|f| f.seq > head) {
                            frames.truncate(past);
                            s.more = false;
                        }
                        s.buf.extend(frames);
                    }
                    Err(ReplayError::Expired) => {
                        let err = serde_json::json!({
                            "event": "error",
                            "code": "cursor_expired",
                            "message": "Last-Event-ID is older than the retained log; reconnect without it (and backfill from the REST API).",
                            "channel": s.channel.as_str(),
                        });
                        let text = format!("event: error\ndata: {err}\n\n");
                        let _ = self.send(Bytes::from(text)).await;
                        return Err(Stop::Gone);
                    }
                    Err(ReplayError::Store(e)) => {
                        tracing::error!(error = %e, "SSE replay failed");
                        return Err(Stop::Gone);
                    }
                }
            }
            let next = sources
                .iter()
                .enumerate()
                .filter_map(|(i, s)| s.buf.front().map(|f| (f.seq, i)))
                .min();
            let Some((_, i)) = next else { break };
            if let Some(f) = sources[i].buf.pop_front()
                && f.seq > self.last_sent
            {
                self.last_sent = f.seq;
                if !self.hub.erased.contains(f.seq) {
                    event(&mut out, &f);
                }
            }
            if out.len() >= 64 * 1024 {
                self.send(out.split().freeze()).await?;
            }
        }
        if !out.is_empty() {
            self.send(out.freeze()).await?;
        }
        // Live frames up to the head were covered by the replay.
        self.last_sent = self.last_sent.max(head);
        Ok(())
    }

    async fn live(&mut self) -> Result<(), Stop> {
        let cfg = self.hub.config.clone();
        let mut keepalive =
            tokio::time::interval_at(tokio::time::Instant::now() + cfg.ping_interval, cfg.ping_interval);
        loop {
            let first = tokio::select! {
                biased;
                () = ws::stopped(&mut self.stop) => return Err(Stop::Gone),
                _ = self.tx.closed() => return Err(Stop::Gone),
                // Before live frames, so a busy stream still runs its
                // keepalive and revocation check.
                _ = keepalive.tick() => {
                    // A key revoked since the request ends the stream.
                    if self.hub.key_revoked(&self.store, &self.key).await {
                        return Err(Stop::Gone);
                    }
                    self.send(Bytes::from_static(b": keepalive\n\n")).await?;
                    continue;
                }
                (_, item) = self.subs.next_frame() => item,
            };
            // Drain everything that is ready, then send it in seq order.
            let mut ready: Vec<Frame> = Vec::new();
            let mut item = Some(first);
            while let Some(it) = item.take() {
                match it {
                    Some(Ok(f)) => ready.push(f),
                    Some(Err(Lagged(_))) => return Err(Stop::Slow),
                    None => return Err(Stop::Gone),
                }
                if ready.len() >= cfg.queue_frames {
                    return Err(Stop::Slow);
                }
                item = self.subs.next_frame().now_or_never().map(|(_, it)| it);
            }
            if over_limit(self.subs.backlog(), &cfg) {
                return Err(Stop::Slow);
            }
            ready.sort_by_key(|f| f.seq);
            let mut out = BytesMut::new();
            for f in &ready {
                if f.seq > self.last_sent {
                    self.last_sent = f.seq;
                    // An erased message still in the ring is skipped.
                    if !self.hub.erased.contains(f.seq) {
                        event(&mut out, f);
                    }
                }
            }
            if !out.is_empty() {
                self.send(out.freeze()).await?;
            }
        }
    }
}

async fn send_watched(
    tx: &mpsc::Sender<Bytes>,
    chunk: Bytes,
    subs: &Subs,
    cfg: &StreamConfig,
) -> Result<(), Stop> {
    let mut send = std::pin::pin!(tx.send(chunk));
    if let Some(r) = send.as_mut().now_or_never() {
        return r.map_err(|_| Stop::Gone);
    }
    let started = Instant::now();
    let mut check = tokio::time::interval(WATCH_INTERVAL);
    check.reset();
    loop {
        tokio::select! {
            r = &mut send => return r.map_err(|_| Stop::Gone),
            _ = check.tick() => {
                if over_limit(subs.backlog(), cfg) {
                    return Err(Stop::Slow);
                }
                if started.elapsed() > cfg.idle_timeout {
                    return Err(Stop::Slow);
                }
            }
        }
    }
}
