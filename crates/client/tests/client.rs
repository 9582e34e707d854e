//! The client against a real marquee server started in-process (port 0, a
//! temporary data dir): publish, batch, poll by cursor, stream with resume
//! across a server restart, 4003 not retried, replay pages, stats and erasures.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use marquee_client::{ClientOptions, Event, ListParams, NewMessage, StreamErrorKind};
use serde_json::{Value, json};
use tokio::sync::oneshot;

const ADMIN: &str = "client-test-admin";
const WAIT: Duration = Duration::from_secs(10);

struct Server {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

async fn start(dir: &Path, addr: &str, ping: Option<Duration>) -> Server {
    let mut config = marquee_server::ServeConfig::with_data_dir(dir);
    config.admin_token = Some(ADMIN.into());
    // Webhook endpoints on 127.0.0.1 (never a host on the internet).
    config.webhooks.allow_private = true;
    if let Some(p) = ping {
        config.streams.ping_interval = p;
    }
    let mut listener = None;
    for _ in 0..100 {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => {
                listener = Some(l);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    let listener = listener.expect("bind");
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        marquee_server::run(config, listener, async {
            let _ = stopped.await;
        })
        .await
        .expect("server run");
    });
    for _ in 0..200 {
        if let Ok(r) = reqwest::get(format!("http://{addr}/readyz")).await
            && r.status().is_success()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    Server { addr, stop, task }
}

impl Server {
    fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = tokio::time::timeout(WAIT, self.task).await;
    }

    async fn admin(&self, path: &str, body: Value) -> Value {
        let r = reqwest::Client::new()
            .post(format!("{}{path}", self.base()))
            .bearer_auth(ADMIN)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.json().await.unwrap()
    }

    /// A new organization's pro key: (key id, key).
    async fn tenant(&self) -> (String, String) {
        let org = self.admin("/admin/v1/orgs", json!({"name": "client"})).await;
        let org = org["id"].as_str().unwrap();
        let k = self
            .admin(&format!("/admin/v1/orgs/{org}/keys"), json!({"tier": "pro"}))
            .await;
        (
            k["id"].as_str().unwrap().into(),
            k["key"].as_str().unwrap().into(),
        )
    }
}

fn checkin(n: u64) -> NewMessage {
    NewMessage::new("fan_checkin", json!({"n": n})).channel("venue:x")
}

#[tokio::test]
async fn publish_batch_and_poll_with_cursor_iteration() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), "127.0.0.1:0", None).await;
    let (_, key) = s.tenant().await;
    let c = ClientOptions::with_api_key(key).connect(&s.base()).unwrap();

    let first = c.publish(checkin(0)).await.unwrap();
    assert!(first.id.starts_with("msg_"));
    assert_eq!(first.channels, ["venue:x"]);
    let batch = c.publish_batch((1..=5).map(checkin).collect()).await.unwrap();
    assert_eq!(batch.len(), 5);
    assert_eq!(c.get_message(&batch[2].id).await.unwrap().data, json!({"n": 3}));

    // Two per page: three pages, in commit order, none repeated.
    let mut pages = c.messages(ListParams::default().channel("venue:x").limit(2));
    let mut seen = Vec::new();
    while let Some(m) = pages.next().await {
        seen.push(m.unwrap().data["n"].as_u64().unwrap());
    }
    assert_eq!(seen, [0, 1, 2, 3, 4, 5]);
    assert_eq!(pages.cursor(), Some(batch[4].cursor.as_str()));
    // Polling on from the cursor sees only what is new.
    c.publish(checkin(6)).await.unwrap();
    let page = c
        .list(&ListParams::default().after(pages.cursor().unwrap()))
        .await
        .unwrap();
    assert_eq!(page.data.len(), 1);
    assert_eq!(page.data[0].data["n"], 6);

    // Errors are Error<RequestErrorKind> with the server's body.
    let e = c
        .publish(NewMessage::new("Bad Type", json!({})).channel("venue:x"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), marquee_client::RequestErrorKind::Api);
    assert_eq!(e.api_error().unwrap().status, 400);
    assert_eq!(e.api_error().unwrap().code, "invalid_request");
    s.stop().await;
}

#[tokio::test]
async fn stream_resumes_across_a_server_restart_with_no_gap_and_no_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), "127.0.0.1:0", None).await;
    let addr = s.addr;
    let (_, key) = s.tenant().await;
    let events = Arc::new(Mutex::new(Vec::new()));
    let ev = events.clone();
    let c = ClientOptions::with_api_key(key)
        .reconnect_delay_callback(|n| Duration::from_millis(300 * n as u64))
        .event_callback(move |e| ev.lock().unwrap().push(e))
        .connect(&s.base())
        .unwrap();
    let first = c.publish(checkin(0)).await.unwrap();
    // Resume from the first message: the stream starts with the second.
    let mut sub = c.subscribe([("venue:x", Some(first.cursor.clone()))]);
    for n in 1..=3 {
        c.publish(checkin(n)).await.unwrap();
    }
    let mut got = Vec::new();
    let mut cursors = Vec::new();
    while got.len() < 3 {
        let m = tokio::time::timeout(WAIT, sub.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        got.push(m.payload["n"].as_u64().unwrap());
        cursors.push(m.cursor);
    }
    s.stop().await;
    let s = start(dir.path(), &addr.to_string(), None).await;
    // Published before the client is back (its delay is 300 ms+): replayed.
    for n in 4..=6 {
        c.publish(checkin(n)).await.unwrap();
    }
    while got.len() < 6 {
        let m = tokio::time::timeout(WAIT, sub.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        got.push(m.payload["n"].as_u64().unwrap());
        cursors.push(m.cursor);
    }
    // And live after the resume.
    c.publish(checkin(7)).await.unwrap();
    let m = tokio::time::timeout(WAIT, sub.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    got.push(m.payload["n"].as_u64().unwrap());
    assert_eq!(got, [1, 2, 3, 4, 5, 6, 7]);
    assert!(cursors.windows(2).all(|w| w[0] < w[1]));
    // Nothing else arrives (no duplicate).
    assert!(
        tokio::time::timeout(Duration::from_millis(300), sub.next())
            .await
            .is_err()
    );
    let events = events.lock().unwrap().clone();
    assert!(
        events.contains(&Event::Disconnected {
            close_code: Some(1001)
        }),
        "{events:?}"
    );
    assert!(events.iter().any(|e| matches!(e, Event::Reconnecting { .. })));
    assert_eq!(
        events.iter().filter(|e| **e == Event::Connected).count(),
        2,
        "{events:?}"
    );
    drop(sub);
    s.stop().await;
}

#[tokio::test]
async fn a_revoked_key_ends_the_stream_with_4003_and_no_reconnect() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), "127.0.0.1:0", Some(Duration::from_millis(100))).await;
    let (key_id, key) = s.tenant().await;
    let events = Arc::new(Mutex::new(Vec::new()));
    let ev = events.clone();
    let c = ClientOptions::with_api_key(key)
        .reconnect_delay_callback(|_| Duration::from_millis(10))
        .event_callback(move |e| ev.lock().unwrap().push(e))
        .connect(&s.base())
        .unwrap();
    c.publish(checkin(1)).await.unwrap();
    let mut sub = c.subscribe([("venue:x", Some("0000000000000"))]);
    let m = tokio::time::timeout(WAIT, sub.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(m.channel, "venue:x");
    s.admin(&format!("/admin/v1/keys/{key_id}/revoke"), json!({}))
        .await;
    let e = tokio::time::timeout(WAIT, sub.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert_eq!(e.kind(), StreamErrorKind::Revoked);
    assert!(tokio::time::timeout(WAIT, sub.next()).await.unwrap().is_none());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let events = events.lock().unwrap().clone();
    assert!(
        events.contains(&Event::Disconnected {
            close_code: Some(4003)
        }),
        "{events:?}"
    );
    assert!(
        !events.iter().any(|e| matches!(e, Event::Reconnecting { .. })),
        "{events:?}"
    );
    s.stop().await;
}

#[tokio::test]
async fn replay_pages_stats_and_erasure_progress() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), "127.0.0.1:0", None).await;
    let (_, key) = s.tenant().await;
    let c = ClientOptions::with_api_key(key.clone())
        .connect(&s.base())
        .unwrap();
    let batch = c.publish_batch((0..5).map(checkin).collect()).await.unwrap();

    // An endpoint created afterwards, on a local port nothing listens on
    // (only the queueing is checked here): a replay from the second
    // message's cursor.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let r = reqwest::Client::new()
        .post(format!("{}/v1/endpoints", s.base()))
        .header("x-api-key", &key)
        .json(&json!({"url": format!("http://{closed}/hook"), "channels": ["venue:x"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let ep: Value = r.json().await.unwrap();
    let ep = ep["id"].as_str().unwrap();
    let mut pages = Vec::new();
    let total = c
        .replay_all(
            ep,
            marquee_client::ReplayFrom::After(batch[1].cursor.clone()),
            |p, total| pages.push((p.queued, p.has_more, total)),
        )
        .await
        .unwrap();
    assert_eq!(total, 3);
    assert_eq!(pages, [(3, false, 3)]);
    let stats = c.endpoint_stats(ep).await.unwrap();
    assert_eq!(stats.endpoint_id, ep);
    assert!(stats.pending <= 3, "{stats:?}");

    // Erasure: accepted, then followed to completion.
    let e = c.create_erasure("venue:x", None).await.unwrap();
    assert_eq!((e.channel.as_str(), e.messages_total), ("venue:x", 5));
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut e = e;
    while !e.is_completed() {
        assert!(tokio::time::Instant::now() < deadline, "{e:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
        e = c.erasure(&e.id).await.unwrap();
    }
    assert_eq!(e.messages_erased, 5);
    assert!(e.completed_at.is_some());
    assert!(
        c.list(&ListParams::default().channel("venue:x"))
            .await
            .unwrap()
            .data
            .is_empty()
    );

    // Errors: the server's (404, 400), and ids the client refuses to put in a path.
    let err = c.erasure("era_01JD0000000000000000000000").await.unwrap_err();
    assert_eq!(err.api_error().unwrap().status, 404);
    let err = c.create_erasure("not a channel", None).await.unwrap_err();
    assert_eq!(err.api_error().unwrap().code, "invalid_request");
    let err = c.erasure("../v1/messages").await.unwrap_err();
    assert_eq!(err.kind(), marquee_client::RequestErrorKind::InvalidInput);
    let err = c
        .replay(ep, &marquee_client::ReplayFrom::Since("yesterday".into()))
        .await
        .unwrap_err();
    assert_eq!(err.api_error().unwrap().param.as_deref(), Some("since"));
    s.stop().await;
}
