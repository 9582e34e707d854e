//! Publishing, idempotency, batches, fetching and cursor pagination.

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn publish_returns_the_stored_message() {
    let s = TestServer::start().await;
    let (_, key) = s.tenant().await;
    let r = s
        .post(&key, "/v1/messages")
        .json(&json!({
            "type": "fan_checkin",
            "channels": ["venue:stubbs-austin", "event:evt_928xA"],
            "data": {"fan_id": "fan_1", "gate": "MAIN"},
            "occurred_at": "2026-05-14T21:00:00-05:00"
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["cache-control"], "private, no-store");
    let m: Value = r.json().await.unwrap();
    assert_eq!(m["object"], "message");
    assert!(m["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(m["type"], "fan_checkin");
    assert_eq!(m["channels"], json!(["venue:stubbs-austin", "event:evt_928xA"]));
    assert_eq!(m["data"]["gate"], "MAIN");
    assert_eq!(m["occurred_at"], "2026-05-15T02:00:00Z");
    assert!(m["received_at"].is_string() && m["cursor"].is_string());
    let id = m["id"].as_str().unwrap();
    let got: Value = s
        .get(&key, &format!("/v1/messages/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got, m);
}

#[tokio::test]
async fn idempotency_replays_and_conflicts() {
    let s = TestServer::start().await;
    let (_, key) = s.tenant().await;
    let body = json!({"type": "order.completed", "channels": ["event:e1"], "data": {"total": 48.0}, "idempotency_key": "order-1"});
    let first = s.publish(&key, body.clone()).await;
    let r = s.post(&key, "/v1/messages").json(&body).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["idempotent-replayed"], "true");
    let again: Value = r.json().await.unwrap();
    assert_eq!(again, first);

    // The header form, and the same key with another body.
    let h = json!({"type": "order.completed", "channels": ["event:e1"], "data": {"total": 1}});
    let r = s
        .post(&key, "/v1/messages")
        .header("Idempotency-Key", "order-2")
        .json(&h)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = s
        .post(&key, "/v1/messages")
        .header("Idempotency-Key", "order-2")
        .json(&h)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let other = json!({"type": "order.completed", "channels": ["event:e1"], "data": {"total": 2}});
    let r = s
        .post(&key, "/v1/messages")
        .header("Idempotency-Key", "order-2")
        .json(&other)
        .send()
        .await
        .unwrap();
    assert_error(r, 409, "conflict").await;
    assert_eq!(
        s.list_all(&key, "").await.len(),
        2,
        "replays and conflicts store nothing"
    );

    // Keys are per organization.
    let (_, key_b) = s.tenant().await;
    let r = s.post(&key_b, "/v1/messages").json(&body).send().await.unwrap();
    assert_eq!(r.status(), 201);
}

#[tokio::test]
async fn batches_are_all_or_nothing_and_ordered() {
    let s = TestServer::start().await;
    let (_, key) = s.tenant().await;
    let msgs: Vec<Value> = (0..250).map(|i| checkin("venue:v", i)).collect();
    let r = s
        .post(&key, "/v1/messages/batch")
        .json(&json!({"messages": msgs}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    let data = v["data"].as_array().unwrap();
    assert_eq!(data.len(), 250);
    for (i, m) in data.iter().enumerate() {
        assert_eq!(m["data"]["n"], i as u64);
    }
    let cursors: Vec<&str> = data.iter().map(|m| m["cursor"].as_str().unwrap()).collect();
    assert!(cursors.windows(2).all(|w| w[0] < w[1]));

    // One bad message rejects the whole batch, naming it.
    let mut bad: Vec<Value> = (0..5).map(|i| checkin("venue:v", i)).collect();
    bad[3]["channels"] = json!(["not a channel"]);
    let r = s
        .post(&key, "/v1/messages/batch")
        .json(&json!({"messages": bad}))
        .send()
        .await
        .unwrap();
    let e = assert_error(r, 400, "invalid_request").await;
    assert_eq!(e["error"]["param"], "messages[3].channels[0]");
    for n in [0usize, 1001] {
        let msgs: Vec<Value> = (0..n as u64).map(|i| checkin("venue:v", i)).collect();
        let r = s
            .post(&key, "/v1/messages/batch")
            .json(&json!({"messages": msgs}))
            .send()
            .await
            .unwrap();
        assert_error(r, 400, "invalid_request").await;
    }
    assert_eq!(s.list_all(&key, "").await.len(), 250);

    // Batch-level idempotency.
    let small: Vec<Value> = (0..3).map(|i| checkin("venue:w", i)).collect();
    let send = || {
        s.post(&key, "/v1/messages/batch")
            .header("Idempotency-Key", "batch-1")
            .json(&json!({"messages": small}))
            .send()
    };
    let a: Value = send().await.unwrap().json().await.unwrap();
    let r = send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["idempotent-replayed"], "true");
    let b: Value = r.json().await.unwrap();
    assert_eq!(a, b);
    assert_eq!(s.list_all(&key, "").await.len(), 253);
}

#[tokio::test]
async fn filters_and_limits() {
    let s = TestServer::start().await;
    let (_, key) = s.tenant().await;
    for i in 0..10 {
        s.publish(
            &key,
            checkin(if i % 2 == 0 { "venue:even" } else { "venue:odd" }, i),
        )
        .await;
    }
    let filler: Vec<Value> = (100..120).map(|i| checkin("venue:filler", i)).collect();
    let r = s
        .post(&key, "/v1/messages/batch")
        .json(&json!({"messages": filler}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    s.publish(
        &key,
        json!({"type": "venue_opened", "channels": ["venue:even"], "data": {}}),
    )
    .await;
    assert_eq!(s.list_all(&key, "&channel=venue:even").await.len(), 6);
    assert_eq!(s.list_all(&key, "&type=venue_opened").await.len(), 1);
    assert_eq!(
        s.list_all(&key, "&type=fan_checkin&channel=venue:odd")
            .await
            .len(),
        5
    );
    let page: Value = s
        .get(&key, "/v1/messages")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["object"], "list");
    assert_eq!(page["data"].as_array().unwrap().len(), 25, "default limit 25");
    assert_eq!(page["has_more"], true);
    let page: Value = s
        .get(&key, "/v1/messages?limit=4")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["data"].as_array().unwrap().len(), 4);
    assert_eq!(page["has_more"], true);
    let future = "2999-01-01T00:00:00Z";
    let page: Value = s
        .get(&key, &format!("/v1/messages?since={future}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(page["data"].as_array().unwrap().is_empty());
    let past = "2000-01-01T00:00:00Z";
    assert_eq!(s.list_all(&key, &format!("&since={past}")).await.len(), 31);
    // A cursor beyond the head is an empty page that keeps its position.
    let page: Value = s
        .get(&key, "/v1/messages?after=7ZZZZZZZZZZZZ")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(page["data"].as_array().unwrap().is_empty());
    assert_eq!(page["next_cursor"], "7ZZZZZZZZZZZZ");
}

/// A rare type in a big channel: each page examines a bounded number of the
/// channel's messages, so it may come back short (even empty) with
/// `has_more` and a cursor past what it examined; following the cursors
/// finds every match.
#[tokio::test]
async fn a_rare_type_in_a_big_channel_pages_in_bounded_steps() {
    let s = TestServer::start_with(|c| c.rates.enterprise = 100_000).await;
    let org = s.create_org("big").await;
    let (_, key) = s.create_key(&org, "enterprise").await;
    let rare = |n: u64| json!({"type": "refund_issued", "channels": ["venue:big"], "data": {"n": n}});
    s.publish(&key, rare(0)).await;
    for chunk in 0..11u64 {
        s.publish_batch(
            &key,
            (0..1000)
                .map(|n| checkin("venue:big", chunk * 1000 + n))
                .collect(),
        )
        .await;
    }
    s.publish(&key, rare(1)).await;
    let first = s
        .get_json(&key, "/v1/messages?channel=venue:big&type=refund_issued&limit=10")
        .await;
    assert_eq!(first["data"].as_array().unwrap().len(), 1, "{first}");
    assert_eq!(first["has_more"], true, "the scan stopped at its budget");
    let found = s.list_all(&key, "&channel=venue:big&type=refund_issued").await;
    let ns: Vec<u64> = found.iter().map(|m| m["data"]["n"].as_u64().unwrap()).collect();
    assert_eq!(ns, [0, 1], "following the cursors finds every match once");
}

#[tokio::test]
async fn pagination_under_concurrent_publishing_sees_everything_once() {
    let s = Arc::new(TestServer::start().await);
    let (_, key) = s.tenant().await;
    const WRITERS: u64 = 8;
    const PER: u64 = 150;
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let (s, key) = (s.clone(), key.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..PER {
                s.publish(&key, checkin("venue:busy", w * 1000 + i)).await;
            }
        }));
    }
    // Follow cursors while the writers run, then drain after they finish.
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut done = false;
    loop {
        let finished = tasks.iter().all(|t| t.is_finished());
        let mut q = "/v1/messages?limit=7".to_string();
        if let Some(a) = &after {
            q.push_str(&format!("&after={a}"));
        }
        let v: Value = s.get(&key, &q).send().await.unwrap().json().await.unwrap();
        let data = v["data"].as_array().unwrap();
        seen.extend(data.iter().map(|m| m["data"]["n"].as_u64().unwrap()));
        if let Some(c) = v["next_cursor"].as_str() {
            after = Some(c.to_owned());
        }
        if !v["has_more"].as_bool().unwrap() {
            if done {
                break;
            }
            if finished {
                done = true;
            }
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    let unique: HashSet<u64> = seen.iter().copied().collect();
    assert_eq!(unique.len(), seen.len(), "a message was returned twice");
    assert_eq!(seen.len() as u64, WRITERS * PER, "a message was skipped");
}

#[tokio::test]
async fn data_survives_a_graceful_restart() {
    let s = TestServer::start().await;
    let (_, key) = s.tenant().await;
    for i in 0..20 {
        s.publish(&key, checkin("venue:v", i)).await;
    }
    let data_dir = s.data_dir.clone();
    let dir = s.stop().await;
    let s2 = TestServer::start_in(&data_dir, |_| {}).await;
    let all = s2.list_all(&key, "").await;
    assert_eq!(all.len(), 20);
    let m = s2.publish(&key, checkin("venue:v", 99)).await;
    assert!(m["cursor"].as_str().unwrap() > all[19]["cursor"].as_str().unwrap());
    drop(dir);
}

#[tokio::test]
async fn concurrent_publishes_with_one_key_store_one_message() {
    let s = Arc::new(TestServer::start().await);
    let (_, key) = s.tenant().await;
    let body = json!({"type": "order.completed", "channels": ["event:e"], "data": {"n": 1}, "idempotency_key": "race"});
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (s, key, body) = (s.clone(), key.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            let r = s.post(&key, "/v1/messages").json(&body).send().await.unwrap();
            let status = r.status().as_u16();
            let v: Value = r.json().await.unwrap();
            (status, v["id"].as_str().unwrap().to_owned())
        }));
    }
    let mut created = 0;
    let mut ids = HashSet::new();
    for t in tasks {
        let (status, id) = t.await.unwrap();
        assert!(status == 201 || status == 200, "{status}");
        created += usize::from(status == 201);
        ids.insert(id);
    }
    assert_eq!(created, 1, "exactly one request creates the message");
    assert_eq!(ids.len(), 1, "every request answers with the same message");
    assert_eq!(s.list_all(&key, "").await.len(), 1);
}

#[tokio::test]
async fn idempotency_edge_cases() {
    let s = TestServer::start().await;
    let (_, key) = s.tenant().await;
    // Body key and header key must agree.
    let r = s
        .post(&key, "/v1/messages")
        .header("Idempotency-Key", "a")
        .json(&json!({"type": "t", "channels": ["a:b"], "data": {}, "idempotency_key": "b"}))
        .send()
        .await
        .unwrap();
    assert_error(r, 400, "invalid_request").await;
    // A batch-level key reused with another batch conflicts.
    let one = json!({"messages": [checkin("venue:v", 1)]});
    let two = json!({"messages": [checkin("venue:v", 2)]});
    let r = s
        .post(&key, "/v1/messages/batch")
        .header("Idempotency-Key", "k")
        .json(&one)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = s
        .post(&key, "/v1/messages/batch")
        .header("Idempotency-Key", "k")
        .json(&two)
        .send()
        .await
        .unwrap();
    assert_error(r, 409, "conflict").await;
    // Batch keys and per-message keys do not collide.
    let r = s
        .post(&key, "/v1/messages")
        .header("Idempotency-Key", "k")
        .json(&checkin("venue:v", 3))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    // One key used for two different messages of one batch.
    let mut a = checkin("venue:v", 4);
    a["idempotency_key"] = json!("dup");
    let mut b = checkin("venue:v", 5);
    b["idempotency_key"] = json!("dup");
    let r = s
        .post(&key, "/v1/messages/batch")
        .json(&json!({"messages": [a, b]}))
        .send()
        .await
        .unwrap();
    assert_error(r, 409, "conflict").await;
    assert_eq!(s.list_all(&key, "").await.len(), 2);
}
