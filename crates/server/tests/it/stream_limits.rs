//! Per-key stream connection limits over real WebSockets: a key's own limit
//! overrides its tier's default (pro: 50,000 per node, so one shared fan-app
//! key is not refused at fan 1,001), and a change reaches the running
//! server for new connections.

use std::time::Duration;

use futures_util::future::join_all;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::helpers::*;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Opens a stream WebSocket; `Err(status)` when the upgrade was refused.
async fn open(s: &TestServer, key: &str) -> Result<Ws, (u16, Value)> {
    let mut req = format!("ws://{}/v1/stream", s.addr)
        .into_client_request()
        .unwrap();
    req.headers_mut().insert("x-api-key", key.parse().unwrap());
    match tokio_tungstenite::connect_async(req).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            let body = resp.body().clone().unwrap_or_default();
            Err((
                resp.status().as_u16(),
                serde_json::from_slice(&body).unwrap_or(Value::Null),
            ))
        }
        Err(e) => panic!("unexpected error {e}"),
    }
}

fn assert_rate_limited(r: Result<Ws, (u16, Value)>) {
    match r {
        Ok(_) => panic!("the connection should have been refused"),
        Err((status, body)) => assert_eq!(
            (status, body["error"]["code"].as_str()),
            (429, Some("rate_limited")),
            "{body}"
        ),
    }
}

async fn create_key(s: &TestServer, org: &str, body: Value) -> (String, String) {
    let r = s
        .admin(Method::POST, &format!("/admin/v1/orgs/{org}/keys"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    (
        v["id"].as_str().unwrap().to_owned(),
        v["key"].as_str().unwrap().to_owned(),
    )
}

async fn set_limit(s: &TestServer, key_id: &str, limit: Value) {
    let r = s
        .admin(Method::PATCH, &format!("/admin/v1/keys/{key_id}"))
        .json(&json!({ "max_stream_connections": limit }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn a_keys_own_limit_overrides_its_tier_and_patch_applies_to_new_connections() {
    let s = TestServer::start().await;
    let org = s.create_org("fans").await;
    let (key_id, key) = create_key(&s, &org, json!({"tier": "pro", "max_stream_connections": 2})).await;
    let _a = open(&s, &key).await.expect("first");
    let _b = open(&s, &key).await.expect("second");
    assert_rate_limited(open(&s, &key).await);
    // Another key of the same organization has its own count.
    let (_, other) = create_key(&s, &org, json!({"tier": "pro"})).await;
    let _o = open(&s, &other).await.expect("another key");
    // Raised: the next connection is admitted (open ones are kept).
    set_limit(&s, &key_id, json!(3)).await;
    let _c = open(&s, &key).await.expect("third, after the raise");
    assert_rate_limited(open(&s, &key).await);
    // Lowered below what is open: nothing is closed, nothing new admitted.
    set_limit(&s, &key_id, json!(1)).await;
    assert_rate_limited(open(&s, &key).await);
    // Back to the tier default (pro: 50,000).
    set_limit(&s, &key_id, Value::Null).await;
    let _d = open(&s, &key).await.expect("tier default");
    // Zero: this key may not stream at all.
    set_limit(&s, &key_id, json!(0)).await;
    assert_rate_limited(open(&s, &key).await);
}

#[tokio::test]
async fn per_tier_defaults_are_configurable() {
    let s = TestServer::start_with(|c| {
        c.streams.connections_per_key = marquee_server::stream::ConnectionLimits::parse("pro=1").unwrap()
    })
    .await;
    let org = s.create_org("tiers").await;
    let (_, pro) = create_key(&s, &org, json!({"tier": "pro"})).await;
    let (_, ent) = create_key(&s, &org, json!({"tier": "enterprise"})).await;
    let (_, own) = create_key(&s, &org, json!({"tier": "pro", "max_stream_connections": 2})).await;
    let _p = open(&s, &pro).await.expect("pro, first");
    assert_rate_limited(open(&s, &pro).await);
    let _e1 = open(&s, &ent).await.expect("enterprise keeps its default");
    let _e2 = open(&s, &ent).await.expect("enterprise keeps its default");
    let _o1 = open(&s, &own).await.expect("own limit");
    let _o2 = open(&s, &own).await.expect("own limit above the tier's");
    // The key JSON shows the effective limit under this configuration.
    let list: Value = s
        .admin(Method::GET, &format!("/admin/v1/orgs/{org}/keys"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut limits: Vec<i64> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["stream_connection_limit"].as_i64().unwrap())
        .collect();
    limits.sort();
    assert_eq!(limits, vec![1, 2, 100_000]);
}

/// One pro key shared by a stadium's fan app: far more than the old fixed
/// 1,000 connections per key are admitted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pro_key_without_its_own_limit_accepts_more_than_1000_connections() {
    const N: usize = 1_050;
    // Both ends of every socket live in this process.
    let limit = rlimit::increase_nofile_limit(u64::MAX).unwrap_or(0);
    assert!(
        limit >= 2 * N as u64 + 1_024,
        "the open files limit ({limit}) is too low for {N} WebSocket pairs; raise ulimit -Hn"
    );
    let s = TestServer::start().await;
    let org = s.create_org("stadium").await;
    let (_, key) = s.create_key(&org, "pro").await;
    let mut open_sockets: Vec<Ws> = Vec::with_capacity(N);
    for _ in 0..N.div_ceil(50) {
        let batch = join_all((0..50).map(|_| open(&s, &key))).await;
        for r in batch {
            open_sockets.push(r.expect("admitted under the pro default"));
        }
    }
    assert!(open_sockets.len() > 1_000);
    // And they are live streams: one of the last can subscribe.
    use futures_util::{SinkExt, StreamExt};
    let ws = open_sockets.last_mut().unwrap();
    ws.send(tokio_tungstenite::tungstenite::Message::text(
        json!({"action": "subscribe", "channel": "venue:stadium"}).to_string(),
    ))
    .await
    .unwrap();
    let ack = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t))) = ws.next().await {
                return serde_json::from_str::<Value>(t.as_str()).unwrap();
            }
        }
    })
    .await
    .expect("an answer to subscribe");
    assert_eq!(ack["channel"], "venue:stadium", "{ack}");
    drop(open_sockets);
    s.stop().await;
}

/// The CLI changes a key's limit while the server runs (SQLite: through the
/// key cache's change token); the next connection sees it.
#[tokio::test]
async fn a_limit_set_by_the_cli_reaches_the_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_in(dir.path(), |_| {}).await;
    let org = s.create_org("cli").await;
    let (key_id, key) = create_key(&s, &org, json!({"tier": "pro", "max_stream_connections": 1})).await;
    let _a = open(&s, &key).await.expect("first");
    assert_rate_limited(open(&s, &key).await);
    let out = std::process::Command::new(marquee_bin())
        .args([
            "key",
            "set-limit",
            &key_id,
            "--max-stream-connections",
            "2",
            "--data-dir",
        ])
        .arg(dir.path())
        .env("MARQUEE_LOG", "warn")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let _b = open(&s, &key)
        .await
        .expect("admitted after the CLI raised the limit");
    assert_rate_limited(open(&s, &key).await);
    s.stop().await;
}
