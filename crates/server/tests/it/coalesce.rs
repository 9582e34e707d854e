//! Coalescing (a type's `coalesce` rule): floods of Revento's
//! `activity.capacity_state_changed` become one message per activity per
//! 10 s window, delivered once with the last snapshot — on SQLite, after a
//! `kill -9` inside the window, and on a 2-node PostgreSQL + NATS cluster.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::cluster::Cluster;
use super::webhooks::{Hit, Receiver, create_endpoint, fast};
use crate::helpers::*;

const TYPE: &str = "activity.capacity_state_changed";
const WINDOW: Duration = Duration::from_secs(10);

fn snapshot(activity: &str, n: u64) -> Value {
    let ids: Vec<String> = (0..n).map(|i| format!("ptp_{i:03}")).collect();
    json!({
        "type": TYPE,
        "channels": [format!("activity:{activity}")],
        "data": {
            "activity_id": activity,
            "capacity": 80,
            "committed_signups_count": n,
            "sign_ups_enabled": true,
            "signed_up_participant_ids": ids,
            "snapshot_at": format!("2026-08-15T14:30:{:02}.{:03}Z", n / 20, (n % 20) * 50),
        }
    })
}

/// The flood of the issue: 40 snapshots for `act_001` and 10 for `act_002`
/// within 2 s, through `post` (which answers status, headers' `coalesced`
/// and body). Returns the time of the first publish and the answered ids.
async fn flood<F, Fut>(post: F) -> (Instant, Vec<String>)
where
    F: Fn(usize, Value) -> Fut,
    Fut: std::future::Future<Output = (u16, Option<String>, Value)>,
{
    let start = Instant::now();
    let mut ids = Vec::new();
    for i in 0..40u64 {
        let mut batch = vec![snapshot("act_001", i + 1)];
        if i % 4 == 3 {
            batch.push(snapshot("act_002", i / 4 + 1));
        }
        for body in batch {
            let (status, coalesced, v) = post(i as usize, body).await;
            assert_eq!(status, 202, "{v}");
            assert_eq!(coalesced.as_deref(), Some("true"));
            assert_eq!(v["object"], "pending_message", "{v}");
            ids.push(v["id"].as_str().unwrap().to_owned());
        }
        tokio::time::sleep(Duration::from_millis(45)).await;
    }
    assert!(start.elapsed() < WINDOW, "the flood took {:?}", start.elapsed());
    (start, ids)
}

/// Checks the two deliveries: one per activity, the last snapshot each,
/// signed (verified with the Standard Webhooks library).
fn check_deliveries(hits: &[Hit], secret: &str) {
    assert_eq!(
        hits.len(),
        2,
        "{:?}",
        hits.iter().map(|h| &h.json).collect::<Vec<_>>()
    );
    let wh = standardwebhooks::Webhook::new(secret).unwrap();
    for h in hits {
        wh.verify(&h.body, &h.headers).expect("signature verifies");
    }
    let mut got: Vec<(String, u64)> = hits
        .iter()
        .map(|h| {
            let d = &h.json["data"];
            (
                d["activity_id"].as_str().unwrap().to_owned(),
                d["committed_signups_count"].as_u64().unwrap(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(got, [("act_001".to_owned(), 40), ("act_002".to_owned(), 10)]);
    let last = hits
        .iter()
        .find(|h| h.json["data"]["activity_id"] == "act_001")
        .unwrap();
    assert_eq!(last.json["data"], snapshot("act_001", 40)["data"]);
}

/// One id per activity, shared by every publish of its window.
fn check_ids(ids: &[String]) {
    let mut distinct = ids.to_vec();
    distinct.sort();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        2,
        "every publish of a window answers its eventual id"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_flood_becomes_one_delivery_per_activity() {
    let s = TestServer::start_with(fast).await;
    let (_, key) = s.tenant_with(&["revento"]).await;
    let rx = Receiver::ok().await;
    let ep = create_endpoint(&s, &key, json!({"url": rx.url(), "format": "standard"})).await;

    // An idempotent publish inside the window: replayed as pending.
    let mut keyed = snapshot("act_003", 1);
    keyed["idempotency_key"] = json!("cap-act_003-1");
    let first = s.post(&key, "/v1/messages").json(&keyed).send().await.unwrap();
    assert_eq!(first.status(), 202);
    let first: Value = first.json().await.unwrap();
    let again = s.post(&key, "/v1/messages").json(&keyed).send().await.unwrap();
    assert_eq!(again.status(), 200);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.headers()["coalesced"], "true");
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["id"], first["id"]);
    assert_eq!(again["object"], "pending_message");
    // Not in the log yet.
    let r = s
        .get(&key, &format!("/v1/messages/{}", first["id"].as_str().unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    let (start, ids) = flood(|_, body| {
        let req = s.post(&key, "/v1/messages").json(&body);
        async move {
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            let c = r
                .headers()
                .get("coalesced")
                .map(|v| v.to_str().unwrap().to_owned());
            (status, c, r.json().await.unwrap())
        }
    })
    .await;
    check_ids(&ids);
    // act_003's message plus one per activity of the flood.
    let hits = rx.wait_for(3, 30).await;
    let flood_hits: Vec<Hit> = hits
        .iter()
        .filter(|h| h.json["data"]["activity_id"] != "act_003")
        .cloned()
        .collect();
    // No second delivery arrives later.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(rx.count(), 3);
    check_deliveries(&flood_hits, ep["secret"].as_str().unwrap());

    // The log holds exactly those messages, committed within window + 1 s
    // of the first publish (judged by the server's own clock).
    let msgs = s.list_all(&key, &format!("&type={TYPE}")).await;
    assert_eq!(msgs.len(), 3);
    let first_publish =
        marquee_core::timestamp::Timestamp::now().as_micros() - start.elapsed().as_micros() as i64;
    for m in msgs.iter().filter(|m| m["data"]["activity_id"] != "act_003") {
        let committed = marquee_core::timestamp::Timestamp::parse_rfc3339(m["received_at"].as_str().unwrap())
            .unwrap()
            .as_micros();
        let after = Duration::from_micros((committed - first_publish).max(0) as u64);
        assert!(
            after <= WINDOW + Duration::from_secs(1),
            "committed {after:?} after the first publish"
        );
        assert!(ids.contains(&m["id"].as_str().unwrap().to_owned()));
    }
    // A snapshot of the flood re-sent after its window closed is a duplicate
    // of the committed message (the window recorded its publishes' dedup
    // keys), not a new window with old data.
    let act_001 = msgs
        .iter()
        .find(|m| m["data"]["activity_id"] == "act_001")
        .unwrap();
    let resent = s
        .post(&key, "/v1/messages")
        .json(&snapshot("act_001", 5))
        .send()
        .await
        .unwrap();
    assert_eq!(resent.status(), 200);
    assert_eq!(resent.headers()["deduplicated"], "true");
    let resent: Value = resent.json().await.unwrap();
    assert_eq!(
        (&resent["object"], &resent["id"]),
        (&json!("message"), &act_001["id"])
    );
    // The idempotency key now answers the committed message.
    let done = s.post(&key, "/v1/messages").json(&keyed).send().await.unwrap();
    assert_eq!(done.status(), 200);
    let done: Value = done.json().await.unwrap();
    assert_eq!(done["object"], "message");
    assert_eq!(done["id"], first["id"]);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_dash_nine_inside_the_window_still_commits_it() {
    let dir = tempfile::tempdir().unwrap();
    let (_, key) = provision(dir.path(), "crash", &["--profile", "revento"]);
    let http = reqwest::Client::new();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = spawn_serve(dir.path(), port, &[]);
    wait_up(&http, &base).await;
    let mut ids = Vec::new();
    for n in 1..=15u64 {
        let r = http
            .post(format!("{base}/v1/messages"))
            .header("x-api-key", &key)
            .json(&snapshot("act_001", n))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        ids.push(
            r.json::<Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let published = Instant::now();
    child.kill().unwrap(); // SIGKILL, well inside the 10 s window
    child.wait().unwrap();

    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = spawn_serve(dir.path(), port, &[]);
    wait_up(&http, &base).await;
    let deadline = Instant::now() + WINDOW + Duration::from_secs(20);
    let msgs = loop {
        let v: Value = http
            .get(format!("{base}/v1/messages?type={TYPE}"))
            .header("x-api-key", &key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let data = v["data"].as_array().unwrap().clone();
        if !data.is_empty() || Instant::now() > deadline {
            break data;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        published.elapsed() >= WINDOW - Duration::from_millis(500),
        "committed early"
    );
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    assert_eq!(msgs[0]["data"], snapshot("act_001", 15)["data"]);
    assert_eq!(msgs[0]["id"], ids[0]);
    // And only once.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let v: Value = http
        .get(format!("{base}/v1/messages?type={TYPE}"))
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["data"].as_array().unwrap().len(), 1);
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_two_node_cluster_commits_each_window_once() {
    let Some(nats) = super::cluster_streams::nats_url() else {
        return;
    };
    let prefix = format!("coal{}", free_port());
    let Some(c) = Cluster::start(
        "coalesce",
        2,
        &[
            "--allow-private-endpoints",
            "--nats",
            &nats,
            "--nats-prefix",
            &prefix,
        ],
    )
    .await
    else {
        return;
    };
    let org: Value = c
        .http
        .post(format!("{}/admin/v1/orgs", c.base(0)))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"name": "revento", "profiles": ["revento"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key: Value = c
        .http
        .post(format!(
            "{}/admin/v1/orgs/{}/keys",
            c.base(0),
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
    let key = key["key"].as_str().unwrap().to_owned();
    let rx = Receiver::ok().await;
    let ep: Value = c
        .http
        .post(format!("{}/v1/endpoints", c.base(0)))
        .header("x-api-key", &key)
        .json(&json!({"url": rx.url(), "format": "standard"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // Both nodes see the endpoint before the windows close (5 s refresh).
    let (_, ids) = flood(|i, body| {
        // Alternate nodes: both hold (and both flushers see) the same rows.
        let req = c
            .http
            .post(format!("{}/v1/messages", c.base(i % 2)))
            .header("x-api-key", &key)
            .json(&body);
        async move {
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            let co = r
                .headers()
                .get("coalesced")
                .map(|v| v.to_str().unwrap().to_owned());
            (status, co, r.json().await.unwrap())
        }
    })
    .await;
    check_ids(&ids);
    let hits = rx.wait_for(2, 40).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        rx.count(),
        2,
        "exactly one delivery per window across the cluster"
    );
    check_deliveries(&hits, ep["secret"].as_str().unwrap());
    let all = c.list_all(1, &key).await;
    assert_eq!(all.iter().filter(|m| m["type"] == TYPE).count(), 2);
    // Re-sent after the window, through either node: a duplicate of the
    // committed message.
    let act_001 = all
        .iter()
        .find(|m| m["data"]["activity_id"] == "act_001")
        .unwrap();
    for node in 0..2 {
        let r = c
            .http
            .post(format!("{}/v1/messages", c.base(node)))
            .header("x-api-key", &key)
            .json(&snapshot("act_001", 7))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "node {node}");
        assert_eq!(r.headers()["deduplicated"], "true");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["id"], act_001["id"]);
    }
    c.drop_schema().await;
}

/// An organization's own type carries a `coalesce` rule too (a short
/// window here); its bounds are checked and a message without the key is
/// refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_organization_type_coalesces_with_its_own_window() {
    let s = TestServer::start_with(fast).await;
    let (_, key) = s.tenant().await;
    let put = |body: Value| {
        s.http
            .put(s.url("/v1/event-types/seat.state"))
            .header("x-api-key", &key)
            .json(&body)
            .send()
    };
    let schema = json!({"type": "object"});
    let r = put(json!({"schema": schema, "coalesce": {"key": "/seat", "window_ms": 50}}))
        .await
        .unwrap();
    assert_eq!(
        assert_error(r, 400, "invalid_request").await["error"]["param"],
        "coalesce.window_ms"
    );
    let r = put(json!({"schema": schema, "coalesce": {"key": "seat", "window_ms": 2000}}))
        .await
        .unwrap();
    assert_eq!(
        assert_error(r, 400, "invalid_request").await["error"]["param"],
        "coalesce.key"
    );
    let r = put(json!({"schema": schema, "coalesce": {"key": "/seat", "window_ms": 2000}}))
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["coalesce"], json!({"key": "/seat", "window_ms": 2000}));
    let got = s.get_json(&key, "/v1/event-types/seat.state").await;
    assert_eq!(got["coalesce"], v["coalesce"]);

    let rx = Receiver::ok().await;
    let ep = create_endpoint(&s, &key, json!({"url": rx.url()})).await;
    let r = s
        .post(&key, "/v1/messages")
        .json(&json!({"type": "seat.state", "channels": ["seat:x"], "data": {"n": 1}}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        assert_error(r, 400, "invalid_request").await["error"]["param"],
        "data.seat"
    );

    let start = Instant::now();
    let mut bodies = Vec::new();
    for i in 1..=40u64 {
        bodies.push(json!({"type": "seat.state", "channels": ["seat:a1"], "data": {"seat": "A1", "n": i}}));
        if i % 4 == 0 {
            bodies.push(
                json!({"type": "seat.state", "channels": ["seat:b2"], "data": {"seat": "B2", "n": i / 4}}),
            );
        }
    }
    // Half singly, half in batches: both coalesce.
    let (single, batched) = bodies.split_at(bodies.len() / 2);
    for b in single {
        let r = s.post(&key, "/v1/messages").json(b).send().await.unwrap();
        assert_eq!(r.status(), 202);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for chunk in batched.chunks(5) {
        let r = s
            .post(&key, "/v1/messages/batch")
            .json(&json!({"messages": chunk}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        assert_eq!(r.headers()["coalesced"], "true");
        let v: Value = r.json().await.unwrap();
        assert!(
            v["data"]
                .as_array()
                .unwrap()
                .iter()
                .all(|m| m["object"] == "pending_message")
        );
    }
    let hits = rx.wait_for(2, 20).await;
    let first = hits.iter().map(|h| h.at).min().unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(rx.count(), 2, "one delivery per seat");
    let wh = standardwebhooks::Webhook::new(ep["secret"].as_str().unwrap()).unwrap();
    let mut got: Vec<(String, u64)> = rx
        .hits()
        .iter()
        .map(|h| {
            wh.verify(&h.body, &h.headers).expect("signature verifies");
            (
                h.json["data"]["seat"].as_str().unwrap().to_owned(),
                h.json["data"]["n"].as_u64().unwrap(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(got, [("A1".to_owned(), 40), ("B2".to_owned(), 10)]);
    // Committed when the window closed, not before (2 s after the first publish).
    assert!(first.duration_since(start) >= Duration::from_millis(1900));
    assert!(
        first.duration_since(start) <= Duration::from_secs(3) + Duration::from_secs(3),
        "first delivery {:?} after the first publish",
        first.duration_since(start)
    );
    s.stop().await;
}
