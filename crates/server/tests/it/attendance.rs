//! The attendance engine and Revolution's REST polling against the real
//! server: a replayed offline burst counts once, concurrent publishers cross
//! a threshold into exactly one milestone, a late burst never re-fires one,
//! in/out and gates, and the Revolution shapes. Each scenario runs on SQLite
//! and on PostgreSQL (two nodes, publishes spread over both) when
//! `MARQUEE_TEST_DATABASE_URL` is set.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::cluster::Cluster;
use crate::helpers::*;

const PROFILES: [&str; 3] = ["revolution", "eventium", "attendee"];

/// One organization on one server or a cluster: publishes go round-robin.
struct Target {
    http: reqwest::Client,
    bases: Vec<String>,
    key: String,
    _keep: Keep,
}

#[allow(dead_code)]
enum Keep {
    Sqlite(TestServer),
    Pg(Cluster),
}

impl Target {
    async fn sqlite() -> Target {
        let s = TestServer::start().await;
        let r = s
            .admin(reqwest::Method::POST, "/admin/v1/orgs")
            .json(&json!({"name": "venue", "profiles": PROFILES}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let org = r.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let (_, key) = s.create_key(&org, "enterprise").await;
        Target {
            http: reqwest::Client::new(),
            bases: vec![s.url("")],
            key,
            _keep: Keep::Sqlite(s),
        }
    }

    async fn pg(tag: &str) -> Option<Target> {
        let c = Cluster::start(tag, 2, &[]).await?;
        let (org, _, key) = c.tenant(0, "enterprise").await;
        let r = c
            .http
            .patch(format!("{}/admin/v1/orgs/{org}", c.base(0)))
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({"profiles": PROFILES}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        Some(Target {
            http: reqwest::Client::new(),
            bases: (0..2).map(|i| c.base(i).to_owned()).collect(),
            key,
            _keep: Keep::Pg(c),
        })
    }

    fn base(&self, i: usize) -> &str {
        &self.bases[i % self.bases.len()]
    }

    async fn batch(&self, i: usize, messages: Vec<Value>) {
        let r = self
            .http
            .post(format!("{}/v1/messages/batch", self.base(i)))
            .header("x-api-key", &self.key)
            .json(&json!({"messages": messages}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "batch: {}", r.text().await.unwrap());
    }

    async fn publish(&self, i: usize, m: Value) {
        let r = self
            .http
            .post(format!("{}/v1/messages", self.base(i)))
            .header("x-api-key", &self.key)
            .json(&m)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "publish: {}", r.text().await.unwrap());
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.base(0)))
            .header("x-api-key", &self.key)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    async fn ok(&self, path: &str) -> Value {
        let (s, v) = self.get(path).await;
        assert_eq!(s, 200, "GET {path}: {v}");
        v
    }

    /// The milestones in the log on `channel`, thresholds in log order.
    async fn milestones(&self, channel: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut after = String::new();
        loop {
            let v = self
                .ok(&format!(
                    "/v1/messages?type=attendance_milestone&channel={channel}&limit=100{after}"
                ))
                .await;
            out.extend(v["data"].as_array().unwrap().iter().map(|m| m["data"].clone()));
            if !v["has_more"].as_bool().unwrap() {
                return out;
            }
            after = format!("&after={}", v["next_cursor"].as_str().unwrap());
        }
    }
}

fn fan_checkin(event: &str, fan: u64, gate: &str, ts: i64) -> Value {
    json!({"type": "fan_checkin", "channels": [format!("event:{event}"), "venue:stubbs-austin"],
           "data": {"fan_id": format!("fan_{fan}"), "event_id": event, "gate": gate, "ts": ts}})
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn thresholds(ms: &[Value]) -> Vec<i64> {
    ms.iter().map(|m| m["threshold"].as_i64().unwrap()).collect()
}

/// 1,000 scans, then the scanner's offline replay of all of them: counted
/// once; the milestones crossed fire once each; a late burst after the
/// count dipped and came back fires nothing again.
async fn burst(t: &Target) {
    let ev = "evt_burst";
    let t0 = now_ms() - 3_600_000;
    t.publish(
        0,
        json!({"type": "venue_opened", "channels": [format!("event:{ev}"), "venue:stubbs-austin"],
               "data": {"venue_id": "stubbs-austin", "event_id": ev, "capacity": 400, "ts": t0}}),
    )
    .await;
    let scans: Vec<Value> = (0..1000)
        .map(|n| fan_checkin(ev, n, ["MAIN", "NORTH"][n as usize % 2], t0 + n as i64))
        .collect();
    for (i, chunk) in scans.chunks(250).enumerate() {
        t.batch(i, chunk.to_vec()).await;
    }
    // The replay: the same 1,000 scans again, in bursts, on every node.
    for (i, chunk) in scans.chunks(100).enumerate() {
        t.batch(i, chunk.to_vec()).await;
    }
    let a = t.ok(&format!("/v1/attendance/{ev}")).await;
    assert_eq!(a["object"], "attendance");
    assert_eq!(a["count"], 1000, "{a}");
    assert_eq!(a["capacity"], 400);
    assert_eq!(a["gates"], json!({"MAIN": 500, "NORTH": 500}));
    let fired = thresholds(&t.milestones(&format!("event:{ev}")).await);
    // 100, 500, 1,000 and 25/50/75/90/100 % of 400 (100 coincides).
    assert_eq!(fired, vec![100, 200, 300, 360, 400, 500, 1000]);
    let listed: Vec<i64> = a["milestones"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["threshold"].as_i64().unwrap())
        .collect();
    assert_eq!(listed, fired);
    // 20 leave, 20 new fans arrive late (their scans are an hour old): the
    // count returns to 1,000 and nothing fires again.
    let outs: Vec<Value> = (0..20)
        .map(|n| {
            json!({"type": "checkin.scanned", "channels": [format!("event:{ev}")],
                   "data": {"ticket_id": format!("tkt_{n}"), "event_id": ev, "organizer_id": "org_1",
                            "direction": "out", "scanned_at": "2026-05-15T00:30:00Z",
                            "scanned_by_name": "Door #2", "tier_name": "GA", "is_vip_table": false}})
        })
        .collect();
    t.batch(1, outs).await;
    assert_eq!(t.ok(&format!("/v1/attendance/{ev}")).await["count"], 980);
    let late: Vec<Value> = (5000..5020)
        .map(|n| fan_checkin(ev, n, "MAIN", t0 - 1000))
        .collect();
    t.batch(0, late).await;
    let a = t.ok(&format!("/v1/attendance/{ev}")).await;
    assert_eq!(a["count"], 1000);
    assert_eq!(a["gates"]["MAIN"], 520);
    assert_eq!(
        thresholds(&t.milestones(&format!("event:{ev}")).await),
        fired,
        "a late burst re-fired"
    );
    // The milestone's payload: the document's fields plus capacity.
    let m = &t.milestones(&format!("event:{ev}")).await[0];
    assert_eq!(
        m.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["event_id", "count", "threshold", "capacity", "ts"]
    );
    assert_eq!(
        (m["event_id"].as_str(), m["count"].as_i64()),
        (Some(ev), Some(100))
    );
    assert_eq!(m["ts"], t0 + 99, "ts is the crossing scan's own time");

    // Revolution check-ins: oldest scan first, the late scans (older ts)
    // first of all, received time what marquee saw.
    let page = t
        .ok(&format!("/api/v1/signal/events/{ev}/checkins?limit=30"))
        .await;
    assert_eq!(page["object"], "list");
    assert_eq!(page["has_more"], true);
    // The outs were scanned in May, so they come first; then the late ins.
    assert_eq!(
        page["data"][0].as_object().unwrap().keys().collect::<Vec<_>>(),
        ["id", "fan_id", "event_id", "gate", "direction", "ts", "created"]
    );
    assert_eq!(page["data"][0]["direction"], "out");
    let first = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["direction"] == "in")
        .unwrap();
    assert_eq!(first["ts"], t0 - 1000);
    assert_eq!(first["gate"], "MAIN");
    assert!(first["created"].as_i64().unwrap() > now_ms() - 600_000, "{first}");
    // Every check-in once, following the cursor.
    let mut seen = 0;
    let mut q = format!("/api/v1/signal/events/{ev}/checkins?limit=100");
    loop {
        let p = t.ok(&q).await;
        seen += p["data"].as_array().unwrap().len();
        let Some(c) = p["next_cursor"].as_str() else { break };
        q = format!("/api/v1/signal/events/{ev}/checkins?limit=100&cursor={c}");
    }
    assert_eq!(seen, 1040, "1,000 ins, 20 outs, 20 late ins");
    // `since` is on the scans' own time (and the key may come as ?apiKey=).
    let since = t
        .http
        .get(format!(
            "{}/api/v1/signal/events/{ev}/checkins?since=2026-06-01T00:00:00Z&limit=100&apiKey={}",
            t.base(0),
            t.key
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(since.status(), 200);
    let since: Value = since.json().await.unwrap();
    assert_eq!(since["data"].as_array().unwrap().len(), 100);
    assert!(
        since["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["direction"] == "in")
    );
}

/// 20 concurrent publishers cross 100: exactly one milestone.
async fn concurrent(t: Arc<Target>) {
    let ev = "evt_conc";
    let mut tasks = Vec::new();
    for p in 0..20u64 {
        let t = t.clone();
        tasks.push(tokio::spawn(async move {
            for n in 0..8u64 {
                t.publish((p + n) as usize, fan_checkin(ev, p * 100 + n, "MAIN", now_ms()))
                    .await;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(t.ok(&format!("/v1/attendance/{ev}")).await["count"], 160);
    assert_eq!(thresholds(&t.milestones(&format!("event:{ev}")).await), vec![100]);
}

/// In and out by Eventium's direction field, the attendee platform's
/// fixed-direction types, settings, the venue and drops endpoints, errors.
async fn shapes(t: &Target) {
    // Settings: defaults, then the organization's own.
    let s = t.ok("/v1/attendance/settings").await;
    assert_eq!(s["thresholds"], json!([100, 500, 1000, 5000, 10000]));
    assert_eq!(s["capacity_percents"], json!([25, 50, 75, 90, 100]));
    let put = |body: Value| {
        t.http
            .put(format!("{}/v1/attendance/settings", t.base(0)))
            .header("x-api-key", &t.key)
            .json(&body)
            .send()
    };
    assert_error(
        put(json!({"thresholds": [0], "capacity_percents": []}))
            .await
            .unwrap(),
        400,
        "invalid_request",
    )
    .await;
    assert_error(
        put(json!({"thresholds": [1], "capacity_percents": [101]}))
            .await
            .unwrap(),
        400,
        "invalid_request",
    )
    .await;
    let r = put(json!({"thresholds": [3, 2, 2], "capacity_percents": []}))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["thresholds"], json!([2, 3]));

    let ev = "evt_io";
    let scan = |ticket: &str, dir: &str, at: &str| {
        json!({"type": "checkin.scanned", "channels": [format!("event:{ev}")],
               "data": {"ticket_id": ticket, "event_id": ev, "organizer_id": "org_1", "direction": dir,
                        "scanned_at": at, "scanned_by_name": "Door", "tier_name": "GA", "is_vip_table": false}})
    };
    t.batch(
        0,
        vec![
            scan("t1", "in", "2026-05-15T00:30:00Z"),
            scan("t2", "in", "2026-05-15T00:31:00Z"),
            scan("t2", "in", "2026-05-15T00:31:00Z"),
            scan("t3", "in", "2026-05-15T00:32:00Z"),
            scan("t1", "out", "2026-05-15T00:40:00Z"),
        ],
    )
    .await;
    let a = t.ok(&format!("/v1/attendance/{ev}")).await;
    assert_eq!(a["count"], 2, "{a}");
    assert_eq!(a["gates"], json!({}));
    assert_eq!(a["capacity"], Value::Null);
    assert_eq!(a["opened_at"], Value::Null);
    assert_eq!(a["last_checkin_at"], "2026-05-15T00:32:00Z");
    assert_eq!(
        thresholds(&t.milestones(&format!("event:{ev}")).await),
        vec![2, 3]
    );
    // The attendee platform: in and out types.
    let att = |ty: &str, id: &str| {
        json!({"type": ty, "channels": ["event:evt_att"],
               "data": {"type": "event-attendees", "id": id, "isCheckedIn": ty.ends_with("in"),
                        "user": {"type": "users", "id": "u1"},
                        "event": {"type": "events", "id": "evt_att", "externalId": null, "url": null,
                                  "isVip": false, "isPaid": true, "isTicketed": true}}})
    };
    t.publish(0, att("event.attendees.checked-in", "a1")).await;
    t.publish(1, att("event.attendees.checked-in", "a2")).await;
    t.publish(0, att("event.attendees.checked-out", "a1")).await;
    assert_eq!(t.ok("/v1/attendance/evt_att").await["count"], 1);
    let list = t.ok("/v1/attendance?limit=1").await;
    assert_eq!(list["object"], "list");
    assert_eq!(list["data"][0]["event_id"], "evt_att");
    assert_eq!(list["has_more"], true);
    let next = list["next_cursor"].as_str().unwrap();
    let rest = t.ok(&format!("/v1/attendance?limit=100&cursor={next}")).await;
    assert_eq!(rest["data"][0]["event_id"], "evt_io");
    assert_eq!(rest["has_more"], false);
    let (s, v) = t.get("/v1/attendance/evt_nope").await;
    assert_eq!((s, v["error"]["code"].as_str()), (404, Some("not_found")));
    let (s, _) = t.get("/v1/attendance?limit=0").await;
    assert_eq!(s, 400);

    // Venue live: open, with the event's count and gates.
    let t0 = now_ms();
    let v = t.ok("/api/v1/signal/venues/the-mohawk/live").await;
    assert_eq!(
        (v["status"].as_str(), v["event_id"].clone()),
        (Some("closed"), Value::Null)
    );
    t.publish(
        1,
        json!({"type": "venue_opened", "channels": ["venue:the-mohawk"],
               "data": {"venue_id": "the-mohawk", "event_id": 1042, "capacity": 8, "ts": t0}}),
    )
    .await;
    for n in 0..2 {
        t.publish(
            n,
            json!({"type": "fan_checkin", "channels": ["venue:the-mohawk"],
                   "data": {"fan_id": format!("f{n}"), "event_id": 1042, "gate": "EAST", "ts": t0 + 5}}),
        )
        .await;
    }
    let v = t.ok("/api/v1/signal/venues/the-mohawk/live").await;
    assert_eq!(
        v,
        json!({"venue_id": "the-mohawk", "status": "open", "event_id": "1042", "capacity": 8, "count": 2,
               "percent": 25.0, "gates": {"EAST": 2}, "opened_at": t0, "last_checkin_at": t0 + 5})
    );
    // The milestone keeps the payload's integer event id (the org's own
    // thresholds 2 and 3 apply; no percents).
    let ms = t.milestones("venue:the-mohawk").await;
    assert_eq!(
        ms,
        vec![json!({"event_id": 1042, "count": 2, "threshold": 2, "capacity": 8, "ts": t0 + 5})]
    );

    // Drops: remaining quantity after distinct claims.
    let drop = |id: &str, q: i64| {
        json!({"type": "drop_published", "channels": ["artist:khruangbin"],
               "data": {"artist_id": "khruangbin", "drop_id": id, "title": "Poster", "price_usd": 35, "quantity": q}})
    };
    let claim = |id: &str, order: &str| {
        json!({"type": "drop_claimed", "channels": ["artist:khruangbin"],
               "data": {"fan_id": "f1", "drop_id": id, "order_id": order, "ts": t0}})
    };
    t.publish(0, drop("drp_1", 2)).await;
    t.publish(1, drop("drp_2", 5)).await;
    t.batch(
        0,
        vec![
            claim("drp_1", "o1"),
            claim("drp_1", "o2"),
            claim("drp_1", "o2"),
            claim("drp_2", "o3"),
        ],
    )
    .await;
    let active = t
        .ok("/api/v1/signal/artists/khruangbin/drops?status=active")
        .await;
    let d = &active["data"][0];
    assert_eq!(active["data"].as_array().unwrap().len(), 1);
    assert_eq!(
        (
            d["drop_id"].as_str(),
            d["remaining"].as_i64(),
            d["status"].as_str(),
            d["title"].as_str()
        ),
        (Some("drp_2"), Some(4), Some("active"), Some("Poster"))
    );
    let sold = t
        .ok("/api/v1/signal/artists/khruangbin/drops?status=sold_out")
        .await;
    assert_eq!(sold["data"][0]["drop_id"], "drp_1");
    assert_eq!(sold["data"][0]["remaining"], 0);
    let all = t.ok("/api/v1/signal/artists/khruangbin/drops?status=all").await;
    assert_eq!(all["data"].as_array().unwrap().len(), 2);
    let (s, v) = t.get("/api/v1/signal/artists/khruangbin/drops?status=gone").await;
    assert_eq!((s, v["error"]["param"].as_str()), (400, Some("status")));
    let (s, _) = t.get("/api/v1/signal/events/e/checkins?since=yesterday").await;
    assert_eq!(s, 400);
    let (s, _) = t.get("/api/v1/signal/events/e/checkins?cursor=zz").await;
    assert_eq!(s, 400);
    let r = t
        .http
        .get(format!("{}/api/v1/signal/venues/x/live", t.base(0)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn replayed_burst_counts_once_sqlite() {
    burst(&Target::sqlite().await).await;
}

#[tokio::test]
async fn replayed_burst_counts_once_postgres() {
    if let Some(t) = Target::pg("att_burst").await {
        burst(&t).await;
    }
}

#[tokio::test]
async fn concurrent_publishers_fire_one_milestone_sqlite() {
    concurrent(Arc::new(Target::sqlite().await)).await;
}

#[tokio::test]
async fn concurrent_publishers_fire_one_milestone_postgres() {
    if let Some(t) = Target::pg("att_conc").await {
        concurrent(Arc::new(t)).await;
    }
}

#[tokio::test]
async fn in_out_gates_settings_and_revolution_rest_sqlite() {
    shapes(&Target::sqlite().await).await;
}

#[tokio::test]
async fn in_out_gates_settings_and_revolution_rest_postgres() {
    if let Some(t) = Target::pg("att_shapes").await {
        shapes(&t).await;
    }
}
