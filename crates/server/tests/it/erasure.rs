//! Erasure (issue 11) against the real server, on SQLite and PostgreSQL
//! (`MARQUEE_TEST_DATABASE_URL`; skipped with a reason without it): erased
//! messages are gone from polling, from the attempt log, from a webhook
//! replay and from a resumed WebSocket / SSE stream; `within` restricts; a
//! large erasure runs in the background while publishing goes on; a kill -9
//! mid-erasure resumes after the restart.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use marquee_server::config::DatabaseConfig;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::helpers::*;
use crate::webhooks::{Receiver, create_endpoint, fast};

const SECRET: &str = "7f3c1d2e4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";

/// A server on SQLite, or on PostgreSQL in a schema of its own (`None`
/// when no database is configured).
async fn server(pg: bool) -> Option<TestServer> {
    if !pg {
        return Some(TestServer::start_with(fast).await);
    }
    let url = crate::cluster::database_url()?;
    let schema = format!("mq_it_erase_{}", free_port());
    Some(
        TestServer::start_with(move |c| {
            fast(c);
            c.database = Some(DatabaseConfig {
                url,
                schema: Some(schema),
            });
            c.server_secret = Some(SECRET.into());
        })
        .await,
    )
}

async fn erase(s: &TestServer, key: &str, body: Value) -> Value {
    let r = s.post(key, "/v1/erasures").json(&body).send().await.unwrap();
    assert_eq!(r.status(), 202);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["object"], "erasure");
    assert!(v["id"].as_str().unwrap().starts_with("era_"), "{v}");
    v
}

async fn completed(s: &TestServer, key: &str, id: &str, secs: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let v = s.get_json(key, &format!("/v1/erasures/{id}")).await;
        if v["status"] == "completed" {
            assert!(v["completed_at"].is_string(), "{v}");
            return v;
        }
        assert!(Instant::now() < deadline, "erasure never completed: {v}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn ids(v: &[Value]) -> Vec<String> {
    v.iter().map(|m| m["id"].as_str().unwrap().to_owned()).collect()
}

async fn erased_everywhere(pg: bool) {
    let Some(s) = server(pg).await else { return };
    let (_, key) = s.tenant().await;
    let rx = Receiver::ok().await;
    let ep = create_endpoint(&s, &key, json!({"url": rx.url()})).await;
    let ep_id = ep["id"].as_str().unwrap().to_owned();
    let msg = |channels: Value, n: u64| json!({"type": "user.updated", "channels": channels, "data": {"name": "Ada", "n": n}});
    let keep = s.publish(&key, msg(json!(["user:usr_other"]), 0)).await;
    let a1 = s
        .publish(&key, msg(json!(["user:usr_def456", "event:evt_abc123"]), 1))
        .await;
    let a2 = s
        .publish(&key, msg(json!(["user:usr_def456", "event:evt_other"]), 2))
        .await;
    let r = s
        .post(&key, "/v1/messages")
        .header("idempotency-key", "profile-usr_def456")
        .json(&msg(json!(["user:usr_def456"]), 3))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let a3: Value = r.json().await.unwrap();
    // Every message delivered once: the attempt log has their responses.
    rx.wait_for(4, 20).await;
    for m in [&a1, &a2, &a3] {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let v = s
                .get_json(
                    &key,
                    &format!("/v1/messages/{}/attempts", m["id"].as_str().unwrap()),
                )
                .await;
            if !v["data"].as_array().unwrap().is_empty() {
                break;
            }
            assert!(Instant::now() < deadline, "no attempt logged for {m}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    // `within` restricts: only the message also on event:evt_abc123.
    let e1 = erase(
        &s,
        &key,
        json!({"channel": "user:usr_def456", "within": "event:evt_abc123"}),
    )
    .await;
    assert_eq!(e1["channel"], "user:usr_def456");
    assert_eq!(e1["within"], "event:evt_abc123");
    let e1 = completed(&s, &key, e1["id"].as_str().unwrap(), 20).await;
    assert_eq!(e1["messages_erased"], 1, "{e1}");
    assert_eq!(e1["messages_total"], 1, "{e1}");
    let left = s.list_all(&key, "&channel=user:usr_def456").await;
    assert_eq!(ids(&left), ids(&[a2.clone(), a3.clone()]));

    // The whole channel.
    let e2 = erase(&s, &key, json!({"channel": "user:usr_def456"})).await;
    assert_eq!(e2["within"], Value::Null);
    let e2 = completed(&s, &key, e2["id"].as_str().unwrap(), 20).await;
    assert_eq!(e2["messages_erased"], 2, "{e2}");

    // Gone from polling, by id, from the other channels they were on.
    assert!(s.list_all(&key, "&channel=user:usr_def456").await.is_empty());
    assert!(s.list_all(&key, "&channel=event:evt_abc123").await.is_empty());
    assert_eq!(ids(&s.list_all(&key, "").await), ids(std::slice::from_ref(&keep)));
    for m in [&a1, &a2, &a3] {
        let id = m["id"].as_str().unwrap();
        let r = s.get(&key, &format!("/v1/messages/{id}")).send().await.unwrap();
        assert_error(r, 404, "not_found").await;
    }
    // Gone from the attempt log (and with them their response bodies).
    let attempts = s
        .get_json(&key, &format!("/v1/endpoints/{ep_id}/attempts?limit=100"))
        .await;
    let logged: Vec<&str> = attempts["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["message_id"].as_str())
        .collect();
    assert_eq!(logged, vec![keep["id"].as_str().unwrap()], "{attempts}");

    // A replay of the whole range sends only what is left.
    let before = rx.count();
    let r = s
        .post(&key, &format!("/v1/endpoints/{ep_id}/replay"))
        .json(&json!({"since": "2020-01-01T00:00:00Z"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["queued"], 1, "{v}");
    let hits = rx.wait_for(before + 1, 20).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.count(), before + 1);
    assert_eq!(hits[before].json["data"]["n"], 0);

    // A resumed WebSocket with a cursor before them replays none of them.
    let mut req = format!("ws://{}/v1/stream", s.addr)
        .into_client_request()
        .unwrap();
    req.headers_mut().insert("x-api-key", key.parse().unwrap());
    let mut ws = tokio_tungstenite::connect_async(req).await.unwrap().0;
    let sub = json!({"action": "subscribe", "channel": "user:usr_def456", "after": keep["cursor"]});
    ws.send(Message::text(sub.to_string())).await.unwrap();
    ws.send(Message::text(json!({"action": "ping"}).to_string()))
        .await
        .unwrap();
    let mut frames = Vec::new();
    while frames.len() < 2 {
        match tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .unwrap()
        {
            Some(Ok(Message::Text(t))) => frames.push(serde_json::from_str::<Value>(t.as_str()).unwrap()),
            Some(Ok(_)) => {}
            other => panic!("stream ended: {other:?}"),
        }
    }
    assert_eq!(frames[0]["event"], "subscribed", "{frames:?}");
    assert_eq!(
        frames[1],
        json!({"event": "pong"}),
        "an erased message was replayed: {frames:?}"
    );

    // SSE with Last-Event-ID before them: the first event is a new message.
    let mut resp = s
        .get(&key, "/v1/stream/sse?channel=user:usr_def456")
        .header("last-event-id", keep["cursor"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let fresh = s.publish(&key, msg(json!(["user:usr_def456"]), 4)).await;
    let mut text = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !text.contains("\ndata: ") {
        let chunk = tokio::time::timeout_at(deadline.into(), resp.chunk())
            .await
            .expect("an SSE event in time")
            .unwrap()
            .expect("SSE open");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    let first_id = text
        .lines()
        .find_map(|l| l.strip_prefix("id: "))
        .expect("an event id");
    assert_eq!(first_id, fresh["cursor"].as_str().unwrap(), "{text}");

    // The idempotency record of an erased message is gone with it: the same
    // key publishes anew instead of answering the erased message.
    let r = s
        .post(&key, "/v1/messages")
        .header("idempotency-key", "profile-usr_def456")
        .json(&msg(json!(["user:usr_def456"]), 3))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert!(r.headers().get("idempotent-replayed").is_none());
    let again: Value = r.json().await.unwrap();
    assert_ne!(again["id"], a3["id"]);

    // Listing, newest first; another organization sees none of it.
    let list = s.get_json(&key, "/v1/erasures").await;
    let listed: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        listed,
        vec![e2["id"].as_str().unwrap(), e1["id"].as_str().unwrap()]
    );
    let (_, other) = s.tenant().await;
    let r = s
        .get(&other, &format!("/v1/erasures/{}", e2["id"].as_str().unwrap()))
        .send()
        .await
        .unwrap();
    assert_error(r, 404, "not_found").await;
    assert!(
        s.get_json(&other, "/v1/erasures").await["data"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erased_messages_are_gone_everywhere_sqlite() {
    erased_everywhere(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erased_messages_are_gone_everywhere_postgres() {
    erased_everywhere(true).await;
}

/// An open coalescing window on the erased channel holds that channel's
/// data too: it is dropped when the erasure completes, while a window on
/// other channels still commits.
async fn pending_windows_dropped(pg: bool) {
    let Some(s) = server(pg).await else { return };
    let (_, key) = s.tenant().await;
    let r = s
        .http
        .put(s.url("/v1/event-types/seat.state"))
        .header("x-api-key", &key)
        .json(&json!({"schema": {"type": "object"}, "coalesce": {"key": "/seat", "window_ms": 1500}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    for (channels, seat) in [
        (json!(["user:usr_pend", "seat:s1"]), "s1"),
        (json!(["seat:s2"]), "s2"),
    ] {
        let r = s
            .post(&key, "/v1/messages")
            .json(
                &json!({"type": "seat.state", "channels": channels, "data": {"seat": seat, "holder": "Ada"}}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
    }
    let e = erase(&s, &key, json!({"channel": "user:usr_pend"})).await;
    completed(&s, &key, e["id"].as_str().unwrap(), 20).await;
    // Past both windows: only the other channel's window was committed.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let got = s.list_all(&key, "&type=seat.state").await;
        if !got.is_empty() {
            tokio::time::sleep(Duration::from_millis(2500)).await;
            let got = s.list_all(&key, "&type=seat.state").await;
            let seats: Vec<&str> = got.iter().map(|m| m["data"]["seat"].as_str().unwrap()).collect();
            assert_eq!(seats, ["s2"], "the erased channel's window is gone: {got:?}");
            break;
        }
        assert!(Instant::now() < deadline, "the other window never committed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    s.stop().await;
}

/// Door scans are personal data (who came in, when): an erasure of the
/// fan's channel removes them from the check-ins listing, while the event's
/// count, an aggregate, stays.
async fn scans_erased(pg: bool) {
    let Some(s) = server(pg).await else { return };
    let (_, key) = s.tenant_with(&["revolution"]).await;
    for (fan, channels) in [
        ("fan_a", json!(["user:fan_a", "event:evt_s"])),
        ("fan_b", json!(["event:evt_s"])),
    ] {
        s.publish(
            &key,
            json!({"type": "fan_checkin", "channels": channels,
                   "data": {"fan_id": fan, "event_id": "evt_s", "gate": "N", "ts": 1745123456789u64}}),
        )
        .await;
    }
    let fans = |v: &Value| -> Vec<String> {
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["fan_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let before = s.get_json(&key, "/api/v1/signal/events/evt_s/checkins").await;
    assert_eq!(fans(&before), ["fan_a", "fan_b"], "{before}");
    let e = erase(&s, &key, json!({"channel": "user:fan_a"})).await;
    completed(&s, &key, e["id"].as_str().unwrap(), 20).await;
    let after = s.get_json(&key, "/api/v1/signal/events/evt_s/checkins").await;
    assert_eq!(fans(&after), ["fan_b"], "{after}");
    assert_eq!(s.get_json(&key, "/v1/attendance/evt_s").await["count"], 2);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fans_scans_are_erased_sqlite() {
    scans_erased(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fans_scans_are_erased_postgres() {
    scans_erased(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_windows_on_the_channel_are_dropped_sqlite() {
    pending_windows_dropped(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_windows_on_the_channel_are_dropped_postgres() {
    pending_windows_dropped(true).await;
}

#[tokio::test]
async fn bad_erasure_requests_are_refused_in_the_envelope() {
    let s = TestServer::start().await;
    let (_, key) = s.tenant().await;
    for body in [
        json!({"channel": "not a channel"}),
        json!({}),
        json!({"channel": "user:u1", "within": "nope"}),
        json!({"channel": "user:u1", "chanel": "x"}),
        json!({"channel": 5}),
    ] {
        let r = s.post(&key, "/v1/erasures").json(&body).send().await.unwrap();
        assert_error(r, 400, "invalid_request").await;
    }
    assert!(
        s.get_json(&key, "/v1/erasures").await["data"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    for path in [
        "/v1/erasures/era_nope",
        "/v1/erasures/era_01HZZZZZZZZZZZZZZZZZZZZZZZ",
    ] {
        let r = s.get(&key, path).send().await.unwrap();
        assert_error(r, 404, "not_found").await;
    }
    let r = s.get(&key, "/v1/erasures?limit=0").send().await.unwrap();
    assert_error(r, 400, "invalid_request").await;
    s.stop().await;
}

/// Publishes `n` messages on `channel` in batches of 1,000.
async fn fill(s_base: &str, http: &reqwest::Client, key: &str, channel: &str, n: u64) {
    for start in (0..n).step_by(1000) {
        let batch: Vec<Value> = (start..(start + 1000).min(n))
            .map(|i| checkin(channel, i))
            .collect();
        let r = http
            .post(format!("{s_base}/v1/messages/batch"))
            .header("x-api-key", key)
            .json(&json!({"messages": batch}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
}

async fn large_erasure(pg: bool) {
    let Some(s) = server(pg).await else { return };
    let (_, key) = s.tenant().await;
    const N: u64 = 20_000;
    fill(&s.base, &s.http, &key, "user:usr_big", N).await;
    let e = erase(&s, &key, json!({"channel": "user:usr_big"})).await;
    let id = e["id"].as_str().unwrap().to_owned();
    assert_eq!(e["status"], "running");
    assert_eq!(e["messages_total"], N);
    // Publishing keeps working while it runs; progress is visible.
    let mut published = Vec::new();
    let mut progress = Vec::new();
    let mut slowest = Duration::ZERO;
    for i in 0..40 {
        let t = Instant::now();
        published.push(s.publish(&key, checkin("venue:live", i)).await);
        slowest = slowest.max(t.elapsed());
        let v = s.get_json(&key, &format!("/v1/erasures/{id}")).await;
        progress.push((
            v["status"].as_str().unwrap().to_owned(),
            v["messages_erased"].as_u64().unwrap(),
        ));
    }
    assert!(
        progress.iter().any(|(st, n)| st == "running" && *n > 0 && *n < N) || progress[0].0 == "completed",
        "no progress seen: {progress:?}"
    );
    assert!(progress.windows(2).all(|w| w[0].1 <= w[1].1), "{progress:?}");
    let done = completed(&s, &key, &id, 120).await;
    assert_eq!(done["messages_erased"], N);
    assert!(s.list_all(&key, "&channel=user:usr_big").await.is_empty());
    assert_eq!(
        ids(&s.list_all(&key, "&channel=venue:live").await),
        ids(&published)
    );
    eprintln!("slowest publish during a {N}-message erasure: {slowest:?}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_erasure_runs_in_the_background_sqlite() {
    large_erasure(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_erasure_runs_in_the_background_postgres() {
    large_erasure(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_dash_nine_mid_erasure_resumes_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = spawn_serve(dir.path(), port, &[("MARQUEE_ADMIN_TOKEN", ADMIN_TOKEN)]);
    wait_up(&http, &base).await;
    let org: Value = http
        .post(format!("{base}/admin/v1/orgs"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"name": "erase"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let k: Value = http
        .post(format!(
            "{base}/admin/v1/orgs/{}/keys",
            org["id"].as_str().unwrap()
        ))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"tier": "enterprise"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = k["key"].as_str().unwrap().to_owned();
    const N: u64 = 20_000;
    fill(&base, &http, &key, "user:usr_kill", N).await;
    let r = http
        .post(format!("{base}/v1/erasures"))
        .header("x-api-key", &key)
        .json(&json!({"channel": "user:usr_kill"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let e: Value = r.json().await.unwrap();
    let era = e["id"].as_str().unwrap().to_owned();
    let path = format!("{base}/v1/erasures/{era}");
    // Kill it once some (not all) steps are committed.
    let at_kill = loop {
        let v: Value = http
            .get(&path)
            .header("x-api-key", &key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if v["messages_erased"].as_u64().unwrap() > 0 || v["status"] == "completed" {
            break v;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    child.kill().unwrap();
    let _ = child.wait();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let path = format!("{base}/v1/erasures/{era}");
    let mut child = spawn_serve(dir.path(), port, &[("MARQUEE_ADMIN_TOKEN", ADMIN_TOKEN)]);
    wait_up(&http, &base).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    let done = loop {
        let v: Value = http
            .get(&path)
            .header("x-api-key", &key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if v["status"] == "completed" {
            break v;
        }
        assert!(Instant::now() < deadline, "not resumed: {v} (at kill: {at_kill})");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(done["messages_erased"], N, "{done}");
    let page: Value = http
        .get(format!("{base}/v1/messages?channel=user:usr_kill"))
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(page["data"].as_array().unwrap().is_empty(), "{page}");
    child.kill().unwrap();
    let _ = child.wait();
}
