//! Live streams across nodes: a WebSocket subscriber on node B and an SSE
//! subscriber on node C receive, in order and without a gap, what is
//! published on node A — also across a NATS restart. Needs
//! `MARQUEE_TEST_DATABASE_URL` and `MARQUEE_TEST_NATS_URL` (CI sets both);
//! skips with a reason otherwise.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::cluster::Cluster;
use crate::helpers::*;

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub fn nats_url() -> Option<String> {
    match std::env::var("MARQUEE_TEST_NATS_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            skip("MARQUEE_TEST_NATS_URL is not set (NATS tests need it; .ci/run sets it)");
            None
        }
    }
}

async fn ws_subscribe(base: &str, key: &str, channel: &str) -> Ws {
    let mut req = format!("{}/v1/stream", base.replace("http://", "ws://"))
        .into_client_request()
        .unwrap();
    req.headers_mut().insert("x-api-key", key.parse().unwrap());
    let mut ws = tokio_tungstenite::connect_async(req).await.unwrap().0;
    ws.send(Message::text(
        json!({"action": "subscribe", "channel": channel}).to_string(),
    ))
    .await
    .unwrap();
    let ack = ws_next(&mut ws).await;
    assert_eq!(ack["event"], "subscribed", "{ack}");
    ws
}

async fn ws_next(ws: &mut Ws) -> Value {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(15), ws.next())
            .await
            .expect("frame in time")
            .expect("open")
            .expect("no error");
        if let Message::Text(t) = m {
            return serde_json::from_str(t.as_str()).unwrap();
        }
    }
}

/// Minimal SSE reader: the `data:` JSON of each event.
struct Sse {
    resp: reqwest::Response,
    buf: String,
}

impl Sse {
    async fn next(&mut self) -> Value {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let event: String = self.buf.drain(..end + 2).collect();
                if let Some(data) = event.lines().find_map(|l| l.strip_prefix("data:")) {
                    return serde_json::from_str(data.trim()).unwrap();
                }
                continue;
            }
            let chunk = tokio::time::timeout(Duration::from_secs(15), self.resp.chunk())
                .await
                .expect("SSE event in time")
                .unwrap()
                .expect("SSE stream open");
            self.buf.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

async fn publish_on(c: &Cluster, node: usize, key: &str, n: u64) -> Value {
    let r = c
        .http
        .post(format!("{}/v1/messages", c.base(node)))
        .header("x-api-key", key)
        .json(&checkin("venue:live", n))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    r.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_on_a_reaches_websocket_on_b_and_sse_on_c_in_order() {
    let Some(nats) = nats_url() else { return };
    let prefix = format!("mqtest{}", free_port());
    let Some(c) = Cluster::start("streams", 3, &["--nats", &nats, "--nats-prefix", &prefix]).await else {
        return;
    };
    let (_org, _key_id, key) = c.tenant(0, "pro").await;
    let mut ws = ws_subscribe(c.base(1), &key, "venue:live").await;
    let resp = c
        .http
        .get(format!("{}/v1/stream/sse?channel=venue:live", c.base(2)))
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut sse = Sse {
        resp,
        buf: String::new(),
    };
    // Let C's subscription settle (its reader starts at the current head).
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut published = Vec::new();
    for n in 0..100 {
        published.push(
            publish_on(&c, 0, &key, n).await["cursor"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    for (n, cursor) in published.iter().enumerate() {
        let f = ws_next(&mut ws).await;
        assert_eq!(
            f["cursor"].as_str(),
            Some(cursor.as_str()),
            "WebSocket on B, message {n}"
        );
        assert_eq!(f["payload"]["n"], n as u64);
        let e = sse.next().await;
        assert_eq!(
            e["cursor"].as_str(),
            Some(cursor.as_str()),
            "SSE on C, message {n}"
        );
    }
}

fn nats_server(port: u16) -> Child {
    Command::new("nats-server")
        .args(["-a", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nats-server on PATH")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_restart_mid_stream_leaves_no_gap() {
    if nats_url().is_none() {
        return;
    }
    if Command::new("nats-server").arg("--version").output().is_err() {
        skip("no nats-server binary on PATH to run a private NATS server");
        return;
    }
    // A private NATS server, so restarting it disturbs no other test.
    let port = free_port();
    let mut nats = nats_server(port);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let url = format!("nats://127.0.0.1:{port}");
    let Some(c) = Cluster::start("natsrestart", 2, &["--nats", &url]).await else {
        let _ = nats.kill();
        let _ = nats.wait();
        return;
    };
    let (_org, _key_id, key) = c.tenant(0, "pro").await;
    let mut ws = ws_subscribe(c.base(1), &key, "venue:live").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut cursors = Vec::new();
    for n in 0..20 {
        cursors.push(
            publish_on(&c, 0, &key, n).await["cursor"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    nats.kill().unwrap();
    nats.wait().unwrap();
    // Published while NATS is down: the notifications are lost.
    for n in 20..40 {
        cursors.push(
            publish_on(&c, 0, &key, n).await["cursor"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let mut nats = nats_server(port);
    for n in 40..60 {
        cursors.push(
            publish_on(&c, 0, &key, n).await["cursor"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    for (n, cursor) in cursors.iter().enumerate() {
        let f = ws_next(&mut ws).await;
        assert_eq!(
            f["cursor"].as_str(),
            Some(cursor.as_str()),
            "message {n} after a NATS restart"
        );
    }
    let _ = nats.kill();
    let _ = nats.wait();
}
