//! Per-type rules of the catalogs (issue 11): dedup keys (Revento's), projected
//! entities (`/v1/entities`) and Eventium's `GET /v1/events` built on them.
//! Every scenario runs on SQLite (a `TestServer`) and on PostgreSQL (real
//! `marquee` processes; skipped without `MARQUEE_TEST_DATABASE_URL`), through
//! the same HTTP code; the cross-node dedup test uses two nodes.

use std::collections::HashSet;
use std::time::Duration;

use marquee_core::profile::standard::verify;
use marquee_core::wire::SigningSecret;
use serde_json::{Value, json};

use crate::cluster::Cluster;
use crate::helpers::*;
use crate::webhooks::{Hit, Receiver, fast};

/// One organization's view of a server: base URL and API key.
#[derive(Clone)]
struct Api {
    http: reqwest::Client,
    base: String,
    key: String,
}

impl Api {
    /// A new organization with `profiles` and an enterprise key, through the
    /// admin API at `base`.
    async fn tenant(base: &str, profiles: &[&str]) -> Api {
        let http = reqwest::Client::new();
        let org: Value = http
            .post(format!("{base}/admin/v1/orgs"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({"name": "rules", "profiles": profiles}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let org = org["id"].as_str().unwrap().to_owned();
        let key: Value = http
            .post(format!("{base}/admin/v1/orgs/{org}/keys"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({"tier": "enterprise"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        Api {
            http,
            base: base.to_owned(),
            key: key["key"].as_str().unwrap().to_owned(),
        }
    }

    fn on(&self, base: &str) -> Api {
        Api {
            base: base.to_owned(),
            ..self.clone()
        }
    }

    /// POST → (status, headers, body).
    async fn post(&self, path: &str, body: &Value) -> (u16, reqwest::header::HeaderMap, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .header("x-api-key", &self.key)
            .json(body)
            .send()
            .await
            .unwrap();
        let (status, headers) = (r.status().as_u16(), r.headers().clone());
        (status, headers, r.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> (u16, reqwest::header::HeaderMap, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .header("x-api-key", &self.key)
            .send()
            .await
            .unwrap();
        let (status, headers) = (r.status().as_u16(), r.headers().clone());
        (status, headers, r.json().await.unwrap_or(Value::Null))
    }

    async fn ok(&self, path: &str) -> Value {
        let (status, _, v) = self.get(path).await;
        assert_eq!(status, 200, "GET {path}: {v}");
        v
    }

    /// Publishes; asserts 201.
    async fn publish(&self, ty: &str, channel: &str, data: Value) -> Value {
        let (status, _, v) = self
            .post(
                "/v1/messages",
                &json!({"type": ty, "channels": [channel], "data": data}),
            )
            .await;
        assert_eq!(status, 201, "publish {ty}: {v}");
        v
    }

    async fn messages(&self) -> Vec<Value> {
        let mut out = Vec::new();
        let mut after = String::new();
        loop {
            let v = self.ok(&format!("/v1/messages?limit=100{after}")).await;
            out.extend(v["data"].as_array().unwrap().iter().cloned());
            if v["has_more"] != true {
                return out;
            }
            after = format!("&after={}", v["next_cursor"].as_str().unwrap());
        }
    }
}

fn fixture(profile: &str, ty: &str) -> Value {
    let all: Value = serde_json::from_str(match profile {
        "revento" => include_str!("../../../core/src/profile/catalogs/fixtures/revento.json"),
        _ => include_str!("../../../core/src/profile/catalogs/fixtures/eventium.json"),
    })
    .unwrap();
    all.as_array()
        .unwrap()
        .iter()
        .find(|f| f["type"] == ty)
        .unwrap_or_else(|| panic!("no fixture for {ty}"))["data"]
        .clone()
}

async fn sqlite() -> TestServer {
    TestServer::start_with(fast).await
}

const PG_ARGS: &[&str] = &["--allow-private-endpoints", "--retry-schedule", "0ms,50ms,200ms"];

async fn postgres(tag: &str, nodes: usize) -> Option<Cluster> {
    Cluster::start(tag, nodes, PG_ARGS).await
}

fn verifies(secret: &SigningSecret, h: &Hit) -> bool {
    let ts: i64 = h.header("webhook-timestamp").parse().unwrap();
    verify(
        secret,
        h.header("webhook-id"),
        ts,
        &h.body,
        h.header("webhook-signature"),
    )
}

// ------------------------------------------------------------------------------------------------
// Dedup

/// Revento's `application.submitted` is deduplicated by (id, submitted_at):
/// the same key twice is one message and one delivery; a re-submission (a new
/// `submitted_at`) is a second; a batch's own duplicate and a duplicate of a
/// stored message are caught too. Every other Revento type's key, once each.
async fn dedup_scenario(api: &Api) {
    let rx = Receiver::ok().await;
    let (status, _, ep) = api
        .post(
            "/v1/endpoints",
            &json!({"url": rx.url(), "types": ["application.submitted"]}),
        )
        .await;
    assert_eq!(status, 201, "{ep}");
    let secret: SigningSecret = ep["secret"].as_str().unwrap().parse().unwrap();
    let body = |data: &Value| json!({"type": "application.submitted", "channels": ["event:evt_abc123"], "data": data});
    let first = fixture("revento", "application.submitted");
    let (s1, h1, m1) = api.post("/v1/messages", &body(&first)).await;
    assert_eq!(s1, 201, "{m1}");
    assert!(h1.get("deduplicated").is_none());
    let (s2, h2, m2) = api.post("/v1/messages", &body(&first)).await;
    assert_eq!(s2, 200, "{m2}");
    assert_eq!(h2.get("deduplicated").unwrap(), "true");
    assert_eq!(m2, m1, "the duplicate answers the original message");
    // The re-submission has a different submitted_at: a new message.
    let mut again = first.clone();
    again["submitted_at"] = json!("2026-05-02T10:00:00Z");
    let (s3, _, m3) = api.post("/v1/messages", &body(&again)).await;
    assert_eq!(s3, 201, "{m3}");
    assert_ne!(m3["id"], m1["id"]);
    // A batch: a third submission twice, and the first one again.
    let mut third = first.clone();
    third["submitted_at"] = json!("2026-05-03T10:00:00Z");
    let (sb, hb, b) = api
        .post(
            "/v1/messages/batch",
            &json!({"messages": [body(&third), body(&third), body(&first)]}),
        )
        .await;
    assert_eq!(sb, 201, "{b}");
    assert_eq!(hb.get("deduplicated-messages").unwrap(), "1,2");
    let ids: Vec<&Value> = b["data"].as_array().unwrap().iter().map(|m| &m["id"]).collect();
    assert_eq!(ids[0], ids[1]);
    assert_eq!(ids[2], &m1["id"]);
    // A batch of duplicates only stores nothing: 200 and Deduplicated.
    let (sd, hd, _) = api
        .post(
            "/v1/messages/batch",
            &json!({"messages": [body(&first), body(&third)]}),
        )
        .await;
    assert_eq!(sd, 200);
    assert_eq!(hd.get("deduplicated").unwrap(), "true");
    // Three messages, three deliveries, each signed; no more arrive.
    let hits = rx.wait_for(3, 20).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let hits_after = rx.hits();
    assert_eq!(hits_after.len(), 3, "one delivery per distinct key");
    let delivered: HashSet<String> = hits
        .iter()
        .map(|h| h.json["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(delivered.len(), 3);
    assert!(hits.iter().all(|h| verifies(&secret, h)));
    let stored = api.messages().await;
    assert_eq!(stored.len(), 3);

    // Every Revento type with its document's fixture: once stored, then
    // deduplicated.
    let catalog = marquee_core::profile::catalog::Catalog::parse(include_str!(
        "../../../core/src/profile/catalogs/revento.json"
    ))
    .unwrap();
    let fixtures: Value = serde_json::from_str(include_str!(
        "../../../core/src/profile/catalogs/fixtures/revento.json"
    ))
    .unwrap();
    let mut seen = HashSet::new();
    for f in fixtures.as_array().unwrap() {
        let ty = f["type"].as_str().unwrap();
        // A coalesced type answers 202 and is held for its window
        // (tests/it/coalesce.rs covers it).
        if ty == "application.submitted"
            || catalog.get(ty).unwrap().coalesce.is_some()
            || !seen.insert(ty.to_owned())
        {
            continue;
        }
        assert!(
            catalog.get(ty).unwrap().dedup.is_some(),
            "{ty} declares a dedup key"
        );
        let b = json!({"type": ty, "channels": ["event:evt_abc123"], "data": f["data"]});
        let (s, _, v) = api.post("/v1/messages", &b).await;
        assert_eq!(s, 201, "{ty}: {v}");
        let (s, h, _) = api.post("/v1/messages", &b).await;
        assert_eq!(
            (s, h.get("deduplicated").map(|v| v.to_str().unwrap().to_owned())),
            (200, Some("true".into())),
            "{ty}"
        );
    }
}

#[tokio::test]
async fn dedup_per_revento_key_on_sqlite() {
    let s = sqlite().await;
    let api = Api::tenant(&s.base, &["revento"]).await;
    dedup_scenario(&api).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dedup_per_revento_key_on_postgres() {
    let Some(c) = postgres("dedup", 1).await else {
        return;
    };
    let api = Api::tenant(c.base(0), &["revento"]).await;
    dedup_scenario(&api).await;
}

/// The same key published concurrently through two PostgreSQL nodes is
/// stored once: one 201, every other answer the same original message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dedup_holds_across_two_postgres_nodes() {
    let Some(c) = postgres("dedup2", 2).await else {
        return;
    };
    let a = Api::tenant(c.base(0), &["revento"]).await;
    let b = a.on(c.base(1));
    for round in 0..5 {
        let mut data = fixture("revento", "application.submitted");
        data["submitted_at"] = json!(format!("2026-06-0{}T10:00:00Z", round + 1));
        let body = json!({"type": "application.submitted", "channels": ["event:evt_abc123"], "data": data});
        let mut tasks = Vec::new();
        for i in 0..8 {
            let (api, body) = (if i % 2 == 0 { a.clone() } else { b.clone() }, body.clone());
            tasks.push(tokio::spawn(async move { api.post("/v1/messages", &body).await }));
        }
        let mut created = 0;
        let mut ids = HashSet::new();
        for t in tasks {
            let (s, h, v) = t.await.unwrap();
            match s {
                201 => created += 1,
                200 => assert_eq!(h.get("deduplicated").unwrap(), "true"),
                _ => panic!("{s}: {v}"),
            }
            ids.insert(v["id"].as_str().unwrap().to_owned());
        }
        assert_eq!((created, ids.len()), (1, 1), "round {round}");
    }
    assert_eq!(a.messages().await.len(), 5);
    assert_eq!(b.messages().await.len(), 5);
}

// ------------------------------------------------------------------------------------------------
// Projections

fn event(id: &str, status: &str, created_at: &str, updated_at: &str) -> Value {
    json!({
        "id": id, "name": format!("Event {id}"), "slug": id, "date": "2026-03-21T22:00:00Z",
        "location": "Apolo, Barcelona", "status": status, "capacity": 1200,
        "organizer_id": "org_8nFw", "created_at": created_at, "updated_at": updated_at,
        "extra": "not in the document's object"
    })
}

async fn projection_scenario(api: &Api, other: &Api) {
    let ch = "event:evt_a";
    api.publish(
        "event.created",
        ch,
        event("evt_a", "draft", "2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z"),
    )
    .await;
    api.publish(
        "event.updated",
        ch,
        event(
            "evt_a",
            "published",
            "2026-01-01T00:00:00Z",
            "2026-01-03T00:00:00Z",
        ),
    )
    .await;
    // Late and older: ignored.
    api.publish(
        "event.updated",
        ch,
        event(
            "evt_a",
            "archived",
            "2026-01-01T00:00:00Z",
            "2026-01-02T00:00:00Z",
        ),
    )
    .await;
    let e = api.ok("/v1/entities/events/evt_a").await;
    assert_eq!(e["object"], "entity");
    assert_eq!(e["kind"], "events");
    assert_eq!(e["id"], "evt_a");
    assert_eq!(e["data"]["status"], "published");
    // The same instant in another offset is the same version: the later commit wins.
    api.publish(
        "event.updated",
        ch,
        event(
            "evt_a",
            "draft",
            "2026-01-01T00:00:00Z",
            "2026-01-03T01:00:00+01:00",
        ),
    )
    .await;
    assert_eq!(
        api.ok("/v1/entities/events/evt_a").await["data"]["status"],
        "draft"
    );
    // A bad version is refused, nothing changes.
    let (s, _, v) = api
        .post(
            "/v1/messages",
            &json!({"type": "event.updated", "channels": [ch], "data": event("evt_a", "archived", "2026-01-01T00:00:00Z", "soon")}),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["error"]["code"], "invalid_request");
    // Delete, then a late older update: still gone.
    api.publish("event.deleted", ch, json!({"id": "evt_a"})).await;
    let (s, _, v) = api.get("/v1/entities/events/evt_a").await;
    assert_eq!((s, v["error"]["code"].as_str()), (404, Some("not_found")));
    api.publish(
        "event.updated",
        ch,
        event(
            "evt_a",
            "published",
            "2026-01-01T00:00:00Z",
            "2026-01-05T00:00:00Z",
        ),
    )
    .await;
    assert_eq!(api.get("/v1/entities/events/evt_a").await.0, 404);
    // Another organization sees nothing, exactly like a missing entity.
    api.publish(
        "event.created",
        "event:evt_b",
        event("evt_b", "draft", "2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z"),
    )
    .await;
    assert_eq!(api.get("/v1/entities/events/evt_b").await.0, 200);
    let (s, _, v) = other.get("/v1/entities/events/evt_b").await;
    let (s2, _, v2) = other.get("/v1/entities/events/evt_nope").await;
    assert_eq!((s, &v), (s2, &v2));
    assert_eq!(other.ok("/v1/entities/events").await["data"], json!([]));
    // Bad limits and cursors.
    for q in [
        "limit=0",
        "limit=101",
        "limit=x",
        "cursor=%25%25",
        "cursor=",
        "bogus=1",
    ] {
        let (s, _, v) = api.get(&format!("/v1/entities/events?{q}")).await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (400, Some("invalid_request")),
            "{q}: {v}"
        );
    }

    // Pagination while every entity keeps being updated: each id exactly once.
    let ids: Vec<String> = (0..30).map(|i| format!("evt_p{i:02}")).collect();
    for id in &ids {
        api.publish(
            "event.created",
            "event:p",
            event(id, "draft", "2026-02-01T00:00:00Z", "2026-02-01T00:00:00Z"),
        )
        .await;
    }
    let writer = {
        let (api, ids) = (api.clone(), ids.clone());
        tokio::spawn(async move {
            for round in 0..6u32 {
                for id in ids.iter().rev() {
                    let at = format!("2026-02-02T00:{:02}:00Z", round);
                    api.publish(
                        "event.updated",
                        "event:p",
                        event(id, "published", "2026-02-01T00:00:00Z", &at),
                    )
                    .await;
                }
            }
        })
    };
    let mut walked = Vec::new();
    let mut cursor = String::new();
    loop {
        let v = api.ok(&format!("/v1/entities/events?limit=7{cursor}")).await;
        let page = v["data"].as_array().unwrap();
        assert!(page.len() <= 7);
        walked.extend(page.iter().map(|e| e["id"].as_str().unwrap().to_owned()));
        tokio::time::sleep(Duration::from_millis(30)).await;
        match v["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
    writer.await.unwrap();
    let mut want: Vec<String> = ids.clone();
    want.push("evt_b".into());
    want.sort();
    assert_eq!(walked, want, "every entity once, in id order");
    let (default_page, _) = (api.ok("/v1/entities/events").await, ());
    assert_eq!(default_page["data"].as_array().unwrap().len(), 25);
    assert_eq!(default_page["has_more"], true);
}

#[tokio::test]
async fn projections_on_sqlite() {
    let s = sqlite().await;
    let api = Api::tenant(&s.base, &["eventium"]).await;
    let other = Api::tenant(&s.base, &["eventium"]).await;
    projection_scenario(&api, &other).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projections_on_postgres() {
    let Some(c) = postgres("proj", 1).await else {
        return;
    };
    let api = Api::tenant(c.base(0), &["eventium"]).await;
    let other = Api::tenant(c.base(0), &["eventium"]).await;
    projection_scenario(&api, &other).await;
}

// ------------------------------------------------------------------------------------------------
// Eventium GET /v1/events

const DOC_FIELDS: &[&str] = &[
    "id",
    "name",
    "slug",
    "date",
    "location",
    "status",
    "capacity",
    "organizer_id",
    "created_at",
    "updated_at",
];

async fn eventium_scenario(api: &Api, other: &Api) {
    // Seven events; three share one created_at.
    let plan = [
        ("evt_1", "draft", "2026-01-01T00:00:00Z"),
        ("evt_2", "published", "2026-01-02T00:00:00Z"),
        ("evt_3", "published", "2026-01-03T00:00:00Z"),
        ("evt_4", "archived", "2026-01-03T00:00:00Z"),
        ("evt_5", "draft", "2026-01-03T00:00:00Z"),
        ("evt_6", "published", "2026-01-04T00:00:00Z"),
        ("evt_7", "published", "2026-01-05T00:00:00.5Z"),
    ];
    for (id, status, at) in plan {
        api.publish("event.created", &format!("event:{id}"), event(id, status, at, at))
            .await;
    }
    api.publish("event.deleted", "event:evt_6", json!({"id": "evt_6"}))
        .await;
    let (s, h, v) = api.get("/v1/events").await;
    assert_eq!(s, 200);
    assert_eq!(h.get("cache-control").unwrap(), "private, no-store");
    assert_eq!(v["object"], "list");
    assert_eq!(v["has_more"], false);
    assert_eq!(v["next_cursor"], Value::Null);
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["object", "data", "has_more", "next_cursor"]);
    let data = v["data"].as_array().unwrap();
    assert_eq!(data.len(), 6);
    let first = data[0].as_object().unwrap();
    assert_eq!(first.keys().map(String::as_str).collect::<Vec<_>>(), DOC_FIELDS);
    assert_eq!(data[0]["id"], "evt_7");
    assert_eq!(data[0]["capacity"], 1200);
    // Newest first; the three at one instant newest commit first.
    let all: Vec<&str> = data.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(all, ["evt_7", "evt_5", "evt_4", "evt_3", "evt_2", "evt_1"]);
    // Pages of 2 (a boundary falls inside the tie): each once, same order.
    for limit in [1, 2, 4] {
        let mut walked = Vec::new();
        let mut cursor = String::new();
        loop {
            let v = api.ok(&format!("/v1/events?limit={limit}{cursor}")).await;
            walked.extend(
                v["data"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e["id"].as_str().unwrap().to_owned()),
            );
            match v["next_cursor"].as_str() {
                Some(c) => {
                    assert!(
                        marquee_core::timestamp::Timestamp::parse_rfc3339(&c[..19]).is_err() || c.len() > 20
                    );
                    assert!(c.ends_with('Z') && c.starts_with("2026-01-"), "{c}");
                    assert_eq!(v["has_more"], true);
                    cursor = format!("&cursor={c}");
                }
                None => break,
            }
        }
        assert_eq!(walked, all, "limit={limit}");
    }
    // A plain ISO timestamp: events created strictly before it.
    let v = api.ok("/v1/events?cursor=2026-01-03T00:00:00Z").await;
    let ids: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["evt_2", "evt_1"]);
    let v = api.ok("/v1/events?cursor=2026-01-03T01:00:00%2B01:00").await;
    assert_eq!(v["data"].as_array().unwrap().len(), 2, "offsets are instants");
    // Status filter, with paging.
    let v = api.ok("/v1/events?status=published&limit=1").await;
    assert_eq!(v["data"][0]["id"], "evt_7");
    let c = v["next_cursor"].as_str().unwrap().to_owned();
    let v = api
        .ok(&format!("/v1/events?status=published&limit=5&cursor={c}"))
        .await;
    let ids: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["evt_3", "evt_2"]);
    assert_eq!(
        api.ok("/v1/events?status=archived").await["data"][0]["id"],
        "evt_4"
    );
    assert_eq!(
        api.ok("/v1/events?status=draft").await["data"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // Updates show the latest version, in place.
    api.publish(
        "event.updated",
        "event:evt_1",
        event(
            "evt_1",
            "archived",
            "2026-01-01T00:00:00Z",
            "2026-02-01T00:00:00Z",
        ),
    )
    .await;
    let v = api.ok("/v1/events?limit=100").await;
    let last = v["data"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (last["id"].as_str(), last["status"].as_str()),
        (Some("evt_1"), Some("archived"))
    );
    // Bad parameters: the envelope, and still no-store.
    for q in [
        "limit=0",
        "limit=101",
        "limit=-1",
        "limit=ten",
        "status=live",
        "status=",
        "cursor=yesterday",
        "cursor=2026-13-01T00:00:00Z",
        "cursor=",
        "page=2",
    ] {
        let (s, h, v) = api.get(&format!("/v1/events?{q}")).await;
        assert_eq!(s, 400, "{q}: {v}");
        assert_eq!(v["error"]["code"], "invalid_request", "{q}");
        assert!(v["error"]["message"].is_string());
        assert_eq!(h.get("cache-control").unwrap(), "private, no-store", "{q}");
    }
    let r = api
        .http
        .get(format!("{}/v1/events", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers().get("cache-control").unwrap(), "private, no-store");
    // Another organizer's events are invisible.
    let v = other.ok("/v1/events").await;
    assert_eq!(v["data"], json!([]));
}

#[tokio::test]
async fn eventium_events_on_sqlite() {
    let s = sqlite().await;
    let api = Api::tenant(&s.base, &["eventium"]).await;
    let other = Api::tenant(&s.base, &["eventium"]).await;
    eventium_scenario(&api, &other).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eventium_events_on_postgres() {
    let Some(c) = postgres("evts", 1).await else {
        return;
    };
    let api = Api::tenant(c.base(0), &["eventium"]).await;
    let other = Api::tenant(c.base(0), &["eventium"]).await;
    eventium_scenario(&api, &other).await;
}

// ------------------------------------------------------------------------------------------------
// An organization's own types carry rules too

impl Api {
    async fn put_type(&self, name: &str, body: &Value) -> (u16, Value) {
        let r = self
            .http
            .put(format!("{}/v1/event-types/{name}", self.base))
            .header("x-api-key", &self.key)
            .json(body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }
}

/// `PUT /v1/event-types/{type}` takes every rule a catalog type can:
/// a dedup key, a projection and an attendance rule, each checked (400
/// naming the field) and applied at publish from the next publish on; a
/// PUT without the rule removes it.
async fn own_rules_scenario(api: &Api) {
    let schema = json!({"type": "object"});
    for (body, param) in [
        (json!({"schema": schema, "dedup": []}), "dedup"),
        (json!({"schema": schema, "dedup": ["order_id"]}), "dedup[0]"),
        (
            json!({"schema": schema, "dedup_window_ms": 1000}),
            "dedup_window_ms",
        ),
        (
            json!({"schema": schema, "dedup": ["/id"], "dedup_window_ms": u64::MAX}),
            "dedup_window_ms",
        ),
        (
            json!({"schema": schema, "project": {"kind": "Seats", "id": "/seat"}}),
            "project.kind",
        ),
        (
            json!({"schema": schema, "project": {"kind": "seats", "id": "seat"}}),
            "project.id",
        ),
        (
            json!({"schema": schema, "coalesce": {"key": "/seat", "window_ms": 1000},
                   "project": {"kind": "seats", "id": "/seat"}}),
            "coalesce",
        ),
        (
            json!({"schema": schema, "dedup": [format!("/{}", "x".repeat(300))]}),
            "dedup[0]",
        ),
        (
            json!({"schema": schema, "attendance": {"role": "scan", "event": "/e", "person": "/p",
                   "direction": {"pointer": "/d", "in": "x".repeat(9000), "out": "o"}}}),
            "attendance",
        ),
    ] {
        let (status, v) = api.put_type("order.placed", &body).await;
        assert_eq!(status, 400, "{body}: {v}");
        assert_eq!(v["error"]["param"], param, "{body}: {v}");
    }
    let (status, v) = api
        .put_type(
            "order.placed",
            &json!({"schema": schema, "dedup": ["/order_id"], "nonsense": 1}),
        )
        .await;
    assert_eq!(status, 400, "an unknown field is refused: {v}");
    assert_eq!(
        api.ok("/v1/event-types").await["data"],
        json!([]),
        "a refused PUT stores nothing"
    );

    // Dedup.
    let (status, v) = api
        .put_type("order.placed", &json!({"schema": schema, "dedup": ["/order_id"]}))
        .await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["dedup"], json!(["/order_id"]));
    assert_eq!(
        api.ok("/v1/event-types/order.placed").await["dedup"],
        json!(["/order_id"])
    );
    let body = json!({"type": "order.placed", "channels": ["order:o1"], "data": {"order_id": "o1"}});
    let (s1, h1, first) = api.post("/v1/messages", &body).await;
    assert_eq!(s1, 201, "{first}");
    assert!(h1.get("deduplicated").is_none());
    let (s2, h2, again) = api.post("/v1/messages", &body).await;
    assert_eq!((s2, again["id"].clone()), (200, first["id"].clone()));
    assert_eq!(h2.get("deduplicated").unwrap(), "true");
    // Without the rule the same body is a new message.
    let (status, v) = api.put_type("order.placed", &json!({"schema": schema})).await;
    assert_eq!(status, 200, "{v}");
    assert!(v.get("dedup").is_none(), "{v}");
    let (s3, _, third) = api.post("/v1/messages", &body).await;
    assert_eq!(s3, 201, "{third}");

    // Projection: the newest version wins, a late older one is ignored.
    let (status, v) = api
        .put_type(
            "seat.updated",
            &json!({"schema": schema, "project": {"kind": "seats", "id": "/seat", "version": "/v"}}),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["project"]["kind"], "seats");
    api.publish(
        "seat.updated",
        "seat:s1",
        json!({"seat": "s1", "v": 2, "state": "sold"}),
    )
    .await;
    api.publish(
        "seat.updated",
        "seat:s1",
        json!({"seat": "s1", "v": 1, "state": "held"}),
    )
    .await;
    let e = api.ok("/v1/entities/seats/s1").await;
    assert_eq!(e["data"]["state"], "sold", "{e}");
    let (status, _, v) = api
        .post(
            "/v1/messages",
            &json!({"type": "seat.updated", "channels": ["seat:s2"], "data": {"v": 1}}),
        )
        .await;
    assert_eq!(
        (status, v["error"]["param"].clone()),
        (400, json!("data.seat")),
        "{v}"
    );

    // Attendance: door scans of an own type count once each.
    let (status, v) = api
        .put_type(
            "gate.scan",
            &json!({"schema": schema, "attendance": {
                "role": "scan", "event": "/event", "person": "/ticket", "direction": "in", "at": "/ts"}}),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    for (ticket, ts) in [
        ("t1", "2026-06-01T18:00:00Z"),
        ("t2", "2026-06-01T18:00:01Z"),
        ("t1", "2026-06-01T18:00:00Z"),
    ] {
        api.publish(
            "gate.scan",
            "event:evt_own",
            json!({"event": "evt_own", "ticket": ticket, "ts": ts}),
        )
        .await;
    }
    let a = api.ok("/v1/attendance/evt_own").await;
    assert_eq!(a["count"], 2, "a replayed scan counts once: {a}");
}

#[tokio::test]
async fn organization_types_carry_rules_on_sqlite() {
    let s = sqlite().await;
    let api = Api::tenant(&s.base, &[]).await;
    own_rules_scenario(&api).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn organization_types_carry_rules_on_postgres() {
    let Some(c) = postgres("ownrules", 1).await else {
        return;
    };
    let api = Api::tenant(c.base(0), &[]).await;
    own_rules_scenario(&api).await;
}
