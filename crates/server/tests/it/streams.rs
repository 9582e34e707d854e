//! Live streams over real sockets: the WebSocket protocol (acks, errors,
//! limits, close codes), gap-free resume, org isolation, slow consumers, and
//! SSE with `Last-Event-ID`.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::helpers::{TestServer, checkin};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

const WAIT: Duration = Duration::from_secs(10);

async fn connect(s: &TestServer, key: &str) -> Ws {
    let mut req = format!("ws://{}/v1/stream", s.addr)
        .into_client_request()
        .unwrap();
    req.headers_mut().insert("x-api-key", key.parse().unwrap());
    tokio_tungstenite::connect_async(req).await.expect("upgrade").0
}

/// The HTTP status and error code of a refused upgrade.
async fn refused(url: String, header: Option<(&'static str, &str)>) -> (u16, Value) {
    let mut req = url.into_client_request().unwrap();
    if let Some((k, v)) = header {
        req.headers_mut().insert(k, v.parse().unwrap());
    }
    match tokio_tungstenite::connect_async(req).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            let body = resp.body().clone().unwrap_or_default();
            (
                resp.status().as_u16(),
                serde_json::from_slice(&body).unwrap_or(Value::Null),
            )
        }
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("upgrade should have been refused"),
    }
}

async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::text(v.to_string())).await.unwrap();
}

/// The next JSON frame (pings and pongs skipped).
async fn recv(ws: &mut Ws) -> Value {
    loop {
        let m = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("frame in time")
            .expect("stream open")
            .expect("no socket error");
        match m {
            Message::Text(t) => return serde_json::from_str(t.as_str()).unwrap(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// Reads until the close frame; returns its code.
async fn close_code(ws: &mut Ws) -> u16 {
    loop {
        match tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("close in time")
        {
            Some(Ok(Message::Close(Some(f)))) => return u16::from(f.code),
            Some(Ok(Message::Close(None))) => panic!("close without a code"),
            Some(Ok(_)) => continue,
            Some(Err(e)) => panic!("socket error before close: {e}"),
            None => panic!("stream ended without a close frame"),
        }
    }
}

/// Proves nothing else is queued: a ping's pong is the next frame.
async fn assert_quiet(ws: &mut Ws) {
    send(ws, json!({"action": "ping"})).await;
    assert_eq!(recv(ws).await, json!({"event": "pong"}));
}

async fn subscribe(ws: &mut Ws, channel: &str) {
    send(ws, json!({"action": "subscribe", "channel": channel})).await;
    let ack = recv(ws).await;
    assert_eq!(ack["event"], "subscribed", "{ack}");
    assert!(
        ack.get("type").is_none(),
        "an ack is never taken for a message: {ack}"
    );
    assert_eq!(ack["channel"], channel);
}

#[tokio::test]
async fn subscribe_receive_unsubscribe() {
    let s = TestServer::start().await;
    let (_, key) = s.tenant().await;
    let mut ws = connect(&s, &key).await;
    // Kind and id apart, exactly as the Revolution client sends it.
    send(
        &mut ws,
        json!({"action": "subscribe", "channel": "venue", "id": "stubbs-austin"}),
    )
    .await;
    let ack = recv(&mut ws).await;
    assert_eq!(
        ack,
        json!({"event": "subscribed", "channel": "venue:stubbs-austin"})
    );
    assert_quiet(&mut ws).await;

    let published = s.publish(&key, checkin("venue:stubbs-austin", 1)).await;
    s.publish(&key, checkin("venue:elsewhere", 2)).await;
    let f = recv(&mut ws).await;
    assert_eq!(f["type"], "fan_checkin");
    assert_eq!(f["payload"]["fan_id"], "fan_1");
    assert_eq!(f["channel"], "venue:stubbs-austin");
    assert_eq!(f["id"], published["id"]);
    assert_eq!(f["cursor"], published["cursor"]);
    assert_eq!(f["occurred_at"], published["occurred_at"]);
    assert_quiet(&mut ws).await;

    send(
        &mut ws,
        json!({"action": "unsubscribe", "channel": "venue:stubbs-austin"}),
    )
    .await;
    assert_eq!(
        recv(&mut ws).await,
        json!({"event": "unsubscribed", "channel": "venue:stubbs-austin"})
    );
    s.publish(&key, checkin("venue:stubbs-austin", 3)).await;
    assert_quiet(&mut ws).await;
}

#[tokio::test]
async fn client_mistakes_answer_errors_and_keep_the_connection() {
    let s = TestServer::start().await;
    let (_, key) = s.tenant().await;
    let mut ws = connect(&s, &key).await;
    let cases = [
        (Message::text("{not json"), "invalid_request"),
        (Message::text(r#"{"action":"dance"}"#), "unknown_action"),
        (
            Message::text(r#"{"action":"subscribe","channel":"Venue","id":"x y"}"#),
            "invalid_channel",
        ),
        (Message::text(r#"{"action":"subscribe"}"#), "invalid_channel"),
        (
            Message::text(r#"{"action":"subscribe","channel":"venue:x","after":"zzz"}"#),
            "invalid_cursor",
        ),
        (Message::binary(vec![1u8, 2, 3]), "invalid_request"),
    ];
    for (frame, code) in cases {
        ws.send(frame).await.unwrap();
        let e = recv(&mut ws).await;
        assert_eq!(e["event"], "error", "{e}");
        assert_eq!(e["code"], code, "{e}");
        assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    assert_quiet(&mut ws).await;
}

#[tokio::test]
async fn auth_and_tier_are_checked_before_the_upgrade() {
    let s = TestServer::start().await;
    let (org, key) = s.tenant().await;
    let url = format!("ws://{}/v1/stream", s.addr);

    let (status, body) = refused(url.clone(), None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("invalid_api_key"))
    );
    let (status, body) = refused(url.clone(), Some(("x-api-key", "sk_live_nope"))).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("invalid_api_key"))
    );

    let (_, free) = s.create_key(&org, "free").await;
    let (status, body) = refused(url.clone(), Some(("x-api-key", &free))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("forbidden")));
    let (status, _) = refused(format!("{url}?apiKey={free}"), None).await;
    assert_eq!(status, 403);

    // Browsers: ?apiKey= ; servers: Bearer or apikey; pro keys may stream.
    let (ws, _) = tokio_tungstenite::connect_async(format!("{url}?apiKey={key}"))
        .await
        .unwrap();
    drop(ws);
    let (_, pro) = s.create_key(&org, "pro").await;
    let mut req = url.clone().into_client_request().unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {pro}").parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_quiet(&mut ws).await;

    // A plain GET (no upgrade) with a good key is a 400 envelope.
    let r = s.get(&key, "/v1/stream").send().await.unwrap();
    crate::helpers::assert_error(r, 400, "invalid_request").await;
}

#[tokio::test]
async fn same_channel_in_two_orgs_is_two_channels() {
    let s = TestServer::start().await;
    let (_, key_a) = s.tenant().await;
    let (_, key_b) = s.tenant().await;
    let mut a = connect(&s, &key_a).await;
    let mut b = connect(&s, &key_b).await;
    subscribe(&mut a, "venue:stubbs-austin").await;
    subscribe(&mut b, "venue:stubbs-austin").await;
    s.publish(&key_a, checkin("venue:stubbs-austin", 1)).await;
    assert_eq!(recv(&mut a).await["payload"]["fan_id"], "fan_1");
    assert_quiet(&mut b).await;
    s.publish(&key_b, checkin("venue:stubbs-austin", 2)).await;
    assert_eq!(recv(&mut b).await["payload"]["fan_id"], "fan_2");
    assert_quiet(&mut a).await;
}

#[tokio::test]
async fn resume_is_gap_free_and_duplicate_free_under_concurrent_publishing() {
    let s = TestServer::start_with(|c| c.fsync = false).await;
    let (_, key) = s.tenant().await;
    let ch = "venue:stubbs-austin";
    let mut cursors = Vec::new();
    for n in 0..40 {
        let m = s.publish(&key, checkin(ch, n)).await;
        cursors.push(m["cursor"].as_str().unwrap().to_owned());
        // Noise on another channel interleaves seqs.
        s.publish(&key, checkin("venue:other", n)).await;
    }
    let after = cursors[9].clone();

    // Keep publishing while the client resumes.
    let publisher = {
        let http = s.http.clone();
        let url = s.url("/v1/messages");
        let key = key.clone();
        tokio::spawn(async move {
            for n in 1000..1300 {
                let r = http
                    .post(&url)
                    .header("x-api-key", &key)
                    .json(&checkin(ch, n))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 201);
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut ws = connect(&s, &key).await;
    send(
        &mut ws,
        json!({"action": "subscribe", "channel": "venue", "id": "stubbs-austin", "after": after}),
    )
    .await;
    let ack = recv(&mut ws).await;
    assert_eq!(ack["event"], "subscribed", "{ack}");
    assert!(
        ack.get("type").is_none(),
        "an ack is never taken for a message: {ack}"
    );
    assert_eq!(ack["after"], after.as_str());
    publisher.await.unwrap();

    let expected: Vec<String> = s
        .list_all(&key, &format!("&channel={ch}"))
        .await
        .iter()
        .map(|m| m["cursor"].as_str().unwrap().to_owned())
        .filter(|c| *c > after)
        .collect();
    assert_eq!(expected.len(), 30 + 300);
    let mut got = Vec::new();
    while got.len() < expected.len() {
        let f = recv(&mut ws).await;
        assert_eq!(f["channel"], ch, "{f}");
        got.push(f["cursor"].as_str().unwrap().to_owned());
    }
    // Cursors sort like seqs: strictly increasing means no duplicate and
    // commit order; equal to the log means no gap.
    assert!(got.windows(2).all(|w| w[0] < w[1]), "cursor order");
    assert_eq!(got, expected);
    assert_quiet(&mut ws).await;
}

#[tokio::test]
async fn cursor_older_than_retention_is_expired() {
    let s = TestServer::start_with(|c| {
        c.retention = Duration::from_millis(500);
        c.retention_interval = Duration::from_millis(100);
    })
    .await;
    let (_, key) = s.tenant().await;
    let ch = "venue:stubbs-austin";
    let m1 = s.publish(&key, checkin(ch, 1)).await;
    let m2 = s.publish(&key, checkin(ch, 2)).await;
    // Wait until the pruner removed both.
    let mut pruned = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if s.list_all(&key, "").await.is_empty() {
            pruned = true;
            break;
        }
    }
    assert!(pruned, "retention never pruned");
    let m3 = s.publish(&key, checkin(ch, 3)).await;

    let mut ws = connect(&s, &key).await;
    send(
        &mut ws,
        json!({"action": "subscribe", "channel": ch, "after": m1["cursor"]}),
    )
    .await;
    let e = recv(&mut ws).await;
    assert_eq!(e["event"], "error", "{e}");
    assert_eq!(e["code"], "cursor_expired");
    assert_eq!(e["channel"], ch);
    // The connection stays usable; the newest pruned cursor is still exact.
    send(
        &mut ws,
        json!({"action": "subscribe", "channel": ch, "after": m2["cursor"]}),
    )
    .await;
    assert_eq!(recv(&mut ws).await["event"], "subscribed");
    let f = recv(&mut ws).await;
    assert_eq!(f["cursor"], m3["cursor"]);
}

/// A client socket with a tiny receive window, so the server's writes block
/// as soon as the client stops reading.
async fn connect_small_window(s: &TestServer, key: &str) -> Ws {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let tcp = sock.connect(s.addr).await.unwrap();
    let mut req = format!("ws://{}/v1/stream", s.addr)
        .into_client_request()
        .unwrap();
    req.headers_mut().insert("x-api-key", key.parse().unwrap());
    tokio_tungstenite::client_async(req, MaybeTlsStream::Plain(tcp))
        .await
        .unwrap()
        .0
}

#[tokio::test]
async fn slow_consumer_is_closed_with_4008_while_others_keep_receiving() {
    let s = TestServer::start_with(|c| {
        c.fsync = false;
        c.streams.queue_bytes = 256 * 1024;
    })
    .await;
    let (_, key) = s.tenant().await;
    let ch = "venue:stubbs-austin";
    let mut slow = connect_small_window(&s, &key).await;
    subscribe(&mut slow, ch).await;
    let mut fast = connect(&s, &key).await;
    subscribe(&mut fast, ch).await;

    let blob = "x".repeat(64 * 1024);
    let total = 150;
    let reader = tokio::spawn(async move {
        let mut n = 0;
        while n < total {
            let f = recv(&mut fast).await;
            assert_eq!(f["payload"]["n"], n);
            n += 1;
        }
        fast
    });
    for n in 0..total {
        s.publish(
            &key,
            json!({"type": "fan_checkin", "channels": [ch], "data": {"n": n, "blob": blob}}),
        )
        .await;
    }
    let mut fast = tokio::time::timeout(Duration::from_secs(30), reader)
        .await
        .expect("fast subscriber received everything")
        .unwrap();
    assert_eq!(close_code(&mut slow).await, 4008);
    assert_quiet(&mut fast).await;
}

#[tokio::test]
async fn oversized_frame_closes_with_1009() {
    let s = TestServer::start().await;
    let (_, key) = s.tenant().await;
    let mut ws = connect(&s, &key).await;
    let big = json!({"action": "subscribe", "channel": "venue:x", "pad": "p".repeat(5000)});
    send(&mut ws, big).await;
    assert_eq!(close_code(&mut ws).await, 1009);
}

#[tokio::test]
async fn silent_peer_is_closed_and_pings_are_sent() {
    let s = TestServer::start_with(|c| {
        c.streams.ping_interval = Duration::from_millis(100);
        c.streams.idle_timeout = Duration::from_millis(400);
    })
    .await;
    let (_, key) = s.tenant().await;
    // A reading client answers pings (tungstenite does it) and stays open.
    let mut live = connect(&s, &key).await;
    let mut pings = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(1200);
    while tokio::time::Instant::now() < deadline {
        if let Ok(Some(Ok(Message::Ping(_)))) =
            tokio::time::timeout(Duration::from_millis(200), live.next()).await
        {
            pings += 1;
        }
    }
    assert!(pings >= 3, "pings: {pings}");
    assert_quiet(&mut live).await;
    // A client that never reads sends no pong: closed with 4000.
    let mut silent = connect(&s, &key).await;
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(close_code(&mut silent).await, 4000);
}

#[tokio::test]
async fn connections_per_key_are_limited() {
    let s = TestServer::start_with(|c| {
        c.streams.connections_per_key = marquee_server::stream::ConnectionLimits::uniform(2)
    })
    .await;
    let (_, key) = s.tenant().await;
    let a = connect(&s, &key).await;
    let _b = connect(&s, &key).await;
    let url = format!("ws://{}/v1/stream", s.addr);
    let (status, body) = refused(url.clone(), Some(("x-api-key", &key))).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (429, Some("rate_limited"))
    );
    drop(a);
    // The slot is released once the server notices the close.
    for _ in 0..50 {
        let mut req = url.clone().into_client_request().unwrap();
        req.headers_mut().insert("x-api-key", key.parse().unwrap());
        if tokio_tungstenite::connect_async(req).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("slot never released");
}

#[tokio::test]
async fn subscriptions_per_connection_are_limited() {
    let s = TestServer::start_with(|c| c.streams.max_subscriptions = 2).await;
    let (_, key) = s.tenant().await;
    let mut ws = connect(&s, &key).await;
    subscribe(&mut ws, "venue:a").await;
    subscribe(&mut ws, "venue:b").await;
    subscribe(&mut ws, "venue:a").await; // already subscribed: fine
    send(&mut ws, json!({"action": "subscribe", "channel": "venue:c"})).await;
    let e = recv(&mut ws).await;
    assert_eq!(e["code"], "too_many_subscriptions", "{e}");
    assert_quiet(&mut ws).await;
}

/// Reads SSE events (`id`, parsed `data`) from a streaming response.
struct SseReader {
    resp: reqwest::Response,
    buf: String,
}

impl SseReader {
    async fn next_event(&mut self) -> (Option<String>, Option<String>, Value) {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let (mut id, mut event, mut data) = (None, None, None);
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id: ") {
                        id = Some(v.to_owned());
                    } else if let Some(v) = line.strip_prefix("event: ") {
                        event = Some(v.to_owned());
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        data = Some(serde_json::from_str(v).unwrap());
                    }
                }
                if let Some(data) = data {
                    return (id, event, data);
                }
                continue;
            }
            let chunk = tokio::time::timeout(WAIT, self.resp.chunk())
                .await
                .expect("SSE data in time")
                .unwrap()
                .expect("SSE stream open");
            self.buf.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }
}

#[tokio::test]
async fn sse_streams_and_resumes_with_last_event_id() {
    let s = TestServer::start_with(|c| c.fsync = false).await;
    let (org, key) = s.tenant().await;
    let mut all = Vec::new();
    for n in 0..6 {
        let ch = if n % 2 == 0 { "venue:a" } else { "artist:b" };
        all.push(s.publish(&key, checkin(ch, n)).await);
        s.publish(&key, checkin("venue:unrelated", n)).await;
    }
    let path = "/v1/stream/sse?channel=venue:a&channel=artist:b";
    let resp = s
        .get(&key, path)
        .header("last-event-id", all[1]["cursor"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut sse = SseReader {
        resp,
        buf: String::new(),
    };
    // Replay: both channels merged in commit order, after the cursor.
    for m in &all[2..] {
        let (id, _, data) = sse.next_event().await;
        assert_eq!(id.as_deref(), m["cursor"].as_str());
        assert_eq!(data["id"], m["id"]);
        assert_eq!(data["type"], "fan_checkin");
    }
    // Then live, in commit order, each message once even on two channels.
    let both = s
        .publish(
            &key,
            json!({"type": "fan_checkin", "channels": ["venue:a", "artist:b"], "data": {}}),
        )
        .await;
    let live = s.publish(&key, checkin("artist:b", 99)).await;
    let (id, _, _) = sse.next_event().await;
    assert_eq!(id.as_deref(), both["cursor"].as_str());
    let (id, _, data) = sse.next_event().await;
    assert_eq!(id.as_deref(), live["cursor"].as_str());
    assert_eq!(data["payload"]["n"], 99);

    // Same auth and tiers as the WebSocket.
    let (_, free) = s.create_key(&org, "free").await;
    crate::helpers::assert_error(s.get(&free, path).send().await.unwrap(), 403, "forbidden").await;
    let r = s.http.get(s.url(path)).send().await.unwrap();
    crate::helpers::assert_error(r, 401, "invalid_api_key").await;
    let r = s.get(&key, "/v1/stream/sse").send().await.unwrap();
    crate::helpers::assert_error(r, 400, "invalid_request").await;
    let r = s.get(&key, "/v1/stream/sse?channel=nope").send().await.unwrap();
    crate::helpers::assert_error(r, 400, "invalid_request").await;
    // ?apiKey= works for EventSource, which cannot set headers.
    let r = s
        .http
        .get(s.url(&format!("{path}&apiKey={key}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn inbound_frame_flood_is_throttled_not_fatal() {
    let s = TestServer::start_with(|c| c.streams.inbound_frames_per_sec = 5).await;
    let (_, key) = s.tenant().await;
    let mut ws = connect(&s, &key).await;
    for _ in 0..40 {
        send(&mut ws, json!({"action": "ping"})).await;
    }
    let (mut pongs, mut limited) = (0, 0);
    while pongs + limited < 11 {
        let f = recv(&mut ws).await;
        match f["event"].as_str() {
            Some("pong") => pongs += 1,
            Some("error") if f["code"] == "rate_limited" => limited += 1,
            _ => panic!("{f}"),
        }
    }
    assert_eq!(limited, 1, "one notice per second");
    assert!(pongs >= 10);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // Drain anything still in flight, then the connection still works.
    send(&mut ws, json!({"action": "subscribe", "channel": "venue:x"})).await;
    loop {
        let f = recv(&mut ws).await;
        if f["event"] == "subscribed" {
            break;
        }
    }
}

#[tokio::test]
async fn shutdown_closes_streams_with_1001() {
    let s = TestServer::start().await;
    let (_, key) = s.tenant().await;
    let mut ws = connect(&s, &key).await;
    subscribe(&mut ws, "venue:x").await;
    let sse = s
        .get(&key, "/v1/stream/sse?channel=venue:x")
        .send()
        .await
        .unwrap();
    assert_eq!(sse.status(), 200);
    let stopping = tokio::spawn(s.stop());
    assert_eq!(close_code(&mut ws).await, 1001);
    drop(ws);
    // The SSE response ends too, so graceful shutdown finishes.
    let body = tokio::time::timeout(WAIT, sse.text()).await.expect("SSE ended");
    assert!(body.is_ok());
    tokio::time::timeout(WAIT, stopping)
        .await
        .expect("server stopped")
        .unwrap();
}

#[tokio::test]
async fn a_revoked_key_loses_its_open_streams() {
    let s = TestServer::start_with(|c| c.streams.ping_interval = Duration::from_millis(100)).await;
    let org = s.create_org("revoke").await;
    let (key_id, key) = s.create_key(&org, "pro").await;
    let mut ws = connect(&s, &key).await;
    subscribe(&mut ws, "venue:a").await;
    let r = s
        .admin(reqwest::Method::POST, &format!("/admin/v1/keys/{key_id}/revoke"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(close_code(&mut ws).await, 4003);
}

/// SSE with two channels resumes by `Last-Event-ID` while a publisher keeps
/// alternating between them: the events are exactly the log's messages on
/// either channel after the cursor, in order, none missing, none repeated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_resume_over_two_channels_under_concurrent_publishing_is_exact() {
    let s = std::sync::Arc::new(TestServer::start_with(|c| c.fsync = false).await);
    let (_, key) = s.tenant().await;
    let mut first = None;
    for n in 0..300 {
        let ch = if n % 2 == 0 { "venue:a" } else { "artist:b" };
        let m = s.publish(&key, checkin(ch, n)).await;
        if n == 10 {
            first = Some(m["cursor"].as_str().unwrap().to_owned());
        }
    }
    let writer = {
        let (s, key) = (s.clone(), key.clone());
        tokio::spawn(async move {
            for n in 300..700 {
                let ch = if n % 2 == 0 { "venue:a" } else { "artist:b" };
                s.publish(&key, checkin(ch, n)).await;
            }
        })
    };
    let resp = s
        .get(&key, "/v1/stream/sse?channel=venue:a&channel=artist:b")
        .header("last-event-id", first.unwrap())
        .send()
        .await
        .unwrap();
    let mut sse = SseReader {
        resp,
        buf: String::new(),
    };
    let mut got = Vec::new();
    while got.len() < 689 {
        let (id, _, _) = sse.next_event().await;
        got.push(id.unwrap());
    }
    writer.await.unwrap();
    let expected: Vec<String> = s
        .list_all(&key, "")
        .await
        .iter()
        .skip(11)
        .map(|m| m["cursor"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(expected.len(), 689);
    assert_eq!(got, expected);
}

#[tokio::test]
async fn a_revoked_key_loses_its_sse_stream_even_while_it_is_busy() {
    let s = std::sync::Arc::new(
        TestServer::start_with(|c| {
            c.fsync = false;
            c.streams.ping_interval = Duration::from_millis(100);
        })
        .await,
    );
    let org = s.create_org("revoke-sse").await;
    let (key_id, key) = s.create_key(&org, "pro").await;
    let (_, publisher_key) = s.create_key(&org, "enterprise").await;
    let resp = s
        .get(&key, "/v1/stream/sse?channel=venue:busy")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // Keep the stream busy so live frames are always ready.
    let busy = {
        let (s, k) = (s.clone(), publisher_key.clone());
        tokio::spawn(async move {
            for n in 0..400 {
                s.publish(&k, checkin("venue:busy", n)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = s
        .admin(reqwest::Method::POST, &format!("/admin/v1/keys/{key_id}/revoke"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // The body ends (within a heartbeat and the 5 s status cache).
    let mut resp = resp;
    let ended = tokio::time::timeout(Duration::from_secs(8), async {
        while let Ok(Some(_)) = resp.chunk().await {}
    })
    .await;
    assert!(ended.is_ok(), "the SSE stream of a revoked key kept going");
    busy.abort();
}
