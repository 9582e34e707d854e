//! Eventory (reference 001): snapshots → computed `changes`, watchlists, the
//! two WebSocket endpoints with real clients, the cooldown (across
//! connections, identities, a restart and two nodes). Each scenario runs on
//! SQLite (in-process server) and on PostgreSQL (a `marquee` node process;
//! skipped with a reason without `MARQUEE_TEST_DATABASE_URL`).

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::cluster::Cluster;
use crate::helpers::*;

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A server on one backend: the in-process SQLite one, or PostgreSQL nodes.
enum Backend {
    Sqlite(TestServer),
    Pg(Cluster),
}

impl Backend {
    async fn start(pg: bool, tag: &str, extra: &[&str]) -> Option<Backend> {
        if pg {
            return Cluster::start(tag, 1, extra).await.map(Backend::Pg);
        }
        let flag = |name: &str| extra.windows(2).find(|w| w[0] == name).map(|w| w[1].to_owned());
        let cooldown = flag("--eventory-cooldown").map(|d| marquee_core::duration::parse(&d).unwrap());
        let max = flag("--eventory-max-watchlist").map(|n| n.parse::<usize>().unwrap());
        Some(Backend::Sqlite(
            TestServer::start_with(|c| {
                if let Some(d) = cooldown {
                    c.eventory.cooldown = d;
                }
                if let Some(n) = max {
                    c.eventory.max_entries = n;
                }
            })
            .await,
        ))
    }

    fn base(&self) -> String {
        match self {
            Backend::Sqlite(s) => s.base.clone(),
            Backend::Pg(c) => c.base(0).to_owned(),
        }
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::new()
}

/// A fresh organization with Eventory enabled and an enterprise key.
async fn tenant(base: &str) -> (String, String) {
    let org: Value = http()
        .post(format!("{base}/admin/v1/orgs"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"name": "monitor", "profiles": ["eventory"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let org = org["id"].as_str().unwrap().to_owned();
    let key = new_key(base, &org).await;
    (org, key)
}

async fn new_key(base: &str, org: &str) -> String {
    let k: Value = http()
        .post(format!("{base}/admin/v1/orgs/{org}/keys"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"tier": "enterprise"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    k["key"].as_str().unwrap().to_owned()
}

async fn watch(base: &str, key: &str, entry: Value) -> Value {
    let r = http()
        .post(format!("{base}/eventory/watchlist"))
        .header("x-api-key", key)
        .json(&entry)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "watchlist create");
    r.json().await.unwrap()
}

async fn publish(base: &str, key: &str, ty: &str, event: &str, data: Value) -> reqwest::Response {
    http()
        .post(format!("{base}/v1/messages"))
        .header("x-api-key", key)
        .json(&json!({"type": ty, "channels": [format!("event:{event}")], "data": data}))
        .send()
        .await
        .unwrap()
}

async fn snapshot(base: &str, key: &str, data: Value) {
    let event = data["event_id"].as_str().unwrap().to_owned();
    let r = publish(base, key, "inventory.snapshot", &event, data).await;
    assert_eq!(r.status(), 201, "snapshot: {}", r.text().await.unwrap());
}

async fn connect(base: &str, key: &str, path: &str) -> Ws {
    let mut req = format!("{}{path}", base.replace("http://", "ws://"))
        .into_client_request()
        .unwrap();
    req.headers_mut().insert("apikey", key.parse().unwrap());
    tokio_tungstenite::connect_async(req).await.unwrap().0
}

const SUB: &str = "/eventory/notifications/subscribe";
const FILTERED: &str = "/eventory/notifications/subscribe/filtered";

/// The next text frame within `wait`, as text.
async fn next_text(ws: &mut Ws, wait: Duration) -> Option<String> {
    let end = tokio::time::Instant::now() + wait;
    loop {
        let m = tokio::time::timeout_at(end, ws.next()).await.ok()??.ok()?;
        if let Message::Text(t) = m {
            return Some(t.as_str().to_owned());
        }
    }
}

async fn next_json(ws: &mut Ws) -> Value {
    let t = next_text(ws, Duration::from_secs(15))
        .await
        .expect("a notification in time");
    serde_json::from_str(&t).unwrap()
}

fn offer(name: &str, stock: i64, price: f64) -> Value {
    json!({"offer_name": name, "available": stock > 0, "price": price,
        "price_label": format!("${price:.2}"), "stock": stock, "atc": "https://x/atc"})
}

fn offers(event: &str, sections: Value) -> Value {
    let stock: i64 = sections
        .as_object()
        .unwrap()
        .values()
        .map(|o| o["stock"].as_i64().unwrap())
        .sum();
    json!({"website": "ticketmaster", "region": "US", "event_id": event,
        "sections_type": "OfferSections", "sections": sections, "stock": stock})
}

fn detail(section: &str, stock: i64, price: f64, kind: &str, adjacent: i64, ga: bool) -> Value {
    json!({"offer_name": "Standard", "price": price, "price_without_fees": price - 10.0,
        "price_label": format!("${price:.2}"), "section": section, "inventory_type": kind,
        "is_active": true, "stock": stock, "stock_not_available": 2, "atc": "https://x/atc",
        "longest_adjacent_seats": adjacent, "general_admission": ga})
}

fn seatmap(event: &str, sections: Value) -> Value {
    let stock: i64 = sections
        .as_object()
        .unwrap()
        .values()
        .map(|s| s["stock"].as_i64().unwrap())
        .sum();
    json!({"website": "axs", "region": "UK", "event_id": event,
        "sections_type": "SeatMapSections", "sections": sections, "stock": stock,
        "event_infos": infos()})
}

fn infos() -> Value {
    json!({"event_name": "Artist World Tour", "event_date": "2026-06-15T20:00:00Z", "event_time": "20:00",
        "event_venue": "Madison Square Garden", "event_venue_url": "https://v", "event_artist_name": "Artist",
        "event_location": "New York, NY", "event_url": "https://e", "event_image": "https://i"})
}

/// The `changes` of every notification in the log, oldest first.
async fn logged_changes(base: &str, key: &str) -> Vec<Value> {
    let r: Value = http()
        .get(format!(
            "{base}/v1/messages?type=inventory.notification&limit=100"
        ))
        .header("x-api-key", key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    r["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["data"]["changes"].clone())
        .collect()
}

// ---- ping, auth ----

#[tokio::test]
async fn ping_needs_no_key_and_the_stream_takes_the_key_only_from_the_apikey_header() {
    let b = Backend::start(false, "", &[]).await.unwrap();
    let base = b.base();
    let r = http().get(format!("{base}/eventory/ping")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let (_, key) = tenant(&base).await;
    let ws = base.replace("http://", "ws://");
    // No key, a bad key, a key in the query string, a key in another header:
    // refused before the upgrade, in the error envelope.
    let cases: Vec<(String, Option<(&str, String)>)> = vec![
        (format!("{ws}{SUB}"), None),
        (format!("{ws}{SUB}"), Some(("apikey", "sk_live_nope".to_owned()))),
        (format!("{ws}{FILTERED}?apikey={key}"), None),
        (format!("{ws}{SUB}?apiKey={key}"), Some(("apikey", key.clone()))),
        (format!("{ws}{SUB}"), Some(("x-api-key", key.clone()))),
    ];
    for (url, header) in cases {
        let mut req = url.clone().into_client_request().unwrap();
        if let Some((h, v)) = header {
            req.headers_mut().insert(h, v.parse().unwrap());
        }
        match tokio_tungstenite::connect_async(req).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                assert_eq!(resp.status(), 401, "{url}");
                let body: Value = serde_json::from_slice(resp.body().as_deref().unwrap_or_default()).unwrap();
                assert_eq!(body["error"]["code"], "invalid_api_key", "{url}");
            }
            other => panic!("{url}: expected a 401, got {:?}", other.map(|_| ())),
        }
    }
    // The header works.
    let mut c = connect(&base, &key, SUB).await;
    assert!(next_text(&mut c, Duration::from_millis(200)).await.is_none());
}

// ---- snapshots → changes ----

async fn snapshot_sequences(pg: bool) {
    let Some(b) = Backend::start(pg, "evsnap", &[]).await else {
        return;
    };
    let base = b.base();
    let (_, key) = tenant(&base).await;
    watch(&base, &key, json!({"event_id": "of1"})).await;
    watch(
        &base,
        &key,
        json!({"event_id": "sm1", "change_type": "price_decrease"}),
    )
    .await;
    let mut ws = connect(&base, &key, SUB).await;
    // OfferSections: first snapshot, no change, more stock + cheaper, sold out.
    let s1 = offers(
        "of1",
        json!({"floor-ga": offer("Floor GA", 2, 129.5), "vip": offer("VIP", 0, 300.0)}),
    );
    snapshot(&base, &key, s1.clone()).await;
    let n = next_text(&mut ws, Duration::from_secs(15)).await.unwrap();
    // Byte-for-byte the document's envelope, in its field order; no
    // event_infos when the snapshot has none.
    let v: Value = serde_json::from_str(&n).unwrap();
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "timestamp",
            "website",
            "version",
            "event_id",
            "region",
            "changes",
            "sections_type",
            "sections",
            "stock"
        ]
    );
    assert_eq!(v["version"], "1.0");
    assert_eq!(v["changes"], json!({"stock_increase": ["Floor GA"]}));
    assert_eq!(v["sections"], s1["sections"]);
    snapshot(&base, &key, s1.clone()).await;
    let s2 = offers(
        "of1",
        json!({"floor-ga": offer("Floor GA", 5, 99.0), "vip": offer("VIP", 4, 350.0)}),
    );
    snapshot(&base, &key, s2).await;
    let v = next_json(&mut ws).await;
    assert_eq!(
        v["changes"],
        json!({"stock_increase": ["Floor GA", "VIP"], "price_decrease": ["Floor GA"], "price_increase": ["VIP"]})
    );
    let s3 = offers(
        "of1",
        json!({"floor-ga": offer("Floor GA", 0, 99.0), "vip": offer("VIP", 1, 350.0)}),
    );
    snapshot(&base, &key, s3).await;
    // SeatMapSections: per offer and per section aggregate.
    let m1 = seatmap(
        "sm1",
        json!({"sec-101": {"stock": 5, "o1": detail("101", 5, 95.0, "primary", 3, false)},
               "sec-102": {"stock": 2, "o2": detail("102", 2, 80.0, "resale", 2, false)}}),
    );
    snapshot(&base, &key, m1).await;
    let m2 = seatmap(
        "sm1",
        json!({"sec-101": {"stock": 5, "o1": detail("101", 5, 90.0, "primary", 3, false)},
               "sec-102": {"stock": 1, "o2": detail("102", 1, 80.0, "resale", 1, false)},
               "sec-103": {"stock": 4, "o3": detail("103", 4, 70.0, "primary", 4, true)}}),
    );
    snapshot(&base, &key, m2).await;
    // /subscribe: the sm1 entry watches price_decrease only, so the first
    // SeatMap notification (stock_increase) is not sent; the second is.
    let v = next_json(&mut ws).await;
    assert_eq!(v["event_id"], "sm1");
    assert_eq!(
        v["changes"],
        json!({"stock_increase": ["sec-103"], "price_decrease": ["sec-101"], "stock_decrease": ["sec-102"]})
    );
    assert_eq!(v["event_infos"], infos());
    // Every notification is in the log, in order (REST-pollable).
    assert_eq!(
        logged_changes(&base, &key).await,
        vec![
            json!({"stock_increase": ["Floor GA"]}),
            json!({"stock_increase": ["Floor GA", "VIP"], "price_decrease": ["Floor GA"], "price_increase": ["VIP"]}),
            json!({"stock_decrease": ["VIP"], "sold_out": ["Floor GA"]}),
            json!({"stock_increase": ["sec-101", "sec-102"]}),
            json!({"stock_increase": ["sec-103"], "price_decrease": ["sec-101"], "stock_decrease": ["sec-102"]}),
        ]
    );
    // A ready notification passes through unchanged.
    let ready = json!({"timestamp": "2026-04-27T10:00:00Z", "website": "ticketmaster", "version": "1.0",
        "event_id": "of1", "region": "US", "changes": {"stock_increase": ["Pit"]},
        "sections_type": "OfferSections", "sections": {"pit": offer("Pit", 3, 10.0)}, "stock": 3});
    let r = publish(&base, &key, "inventory.notification", "of1", ready.clone()).await;
    assert_eq!(r.status(), 201);
    let t = next_text(&mut ws, Duration::from_secs(15)).await.unwrap();
    assert_eq!(t, ready.to_string());
}

#[tokio::test]
async fn snapshot_sequences_produce_the_expected_changes_sqlite() {
    snapshot_sequences(false).await;
}

#[tokio::test]
async fn snapshot_sequences_produce_the_expected_changes_postgres() {
    snapshot_sequences(true).await;
}

// ---- bad snapshots ----

async fn bad_snapshots(pg: bool) {
    let Some(b) = Backend::start(pg, "evbad", &[]).await else {
        return;
    };
    let base = b.base();
    let (_, key) = tenant(&base).await;
    let mut wrong = offers("b1", json!({"ga": offer("GA", 2, 10.0)}));
    wrong["sections_type"] = json!("Sections");
    let mut malformed = offers("b1", json!({"ga": offer("GA", 2, 10.0)}));
    malformed["sections"]["ga"]
        .as_object_mut()
        .unwrap()
        .remove("price");
    let mut seat_malformed = seatmap("b1", json!({"sec": {"stock": 1}}));
    seat_malformed["sections"]["sec"]["stock"] = json!("many");
    for bad in [wrong, malformed, seat_malformed] {
        let r = publish(&base, &key, "inventory.snapshot", "b1", bad).await;
        assert_error(r, 400, "invalid_request").await;
    }
    let mut huge = offers("b1", json!({}));
    let mut sections = serde_json::Map::new();
    for i in 0..50_000 {
        sections.insert(
            format!("s{i}"),
            offer(&format!("Section {i} with a long name"), 1, 1.0),
        );
    }
    huge["sections"] = Value::Object(sections);
    let body =
        serde_json::to_vec(&json!({"type": "inventory.snapshot", "channels": ["event:b1"], "data": huge}))
            .unwrap();
    assert!(body.len() > 5_000_000);
    let r = http()
        .post(format!("{base}/v1/messages"))
        .header("x-api-key", &key)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await;
    // Refused with 413 (larger than --max-body-bytes), or the server closed
    // the connection after answering it before the client finished writing.
    match r {
        Ok(r) => assert_eq!(r.status(), 413),
        Err(e) => assert!(e.is_request(), "{e}"),
    }
    // Nothing stored: no message, and no snapshot state (the next snapshot
    // is the first one of its key).
    let all: Value = http()
        .get(format!("{base}/v1/messages"))
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(all["data"], json!([]));
    snapshot(&base, &key, offers("b1", json!({"ga": offer("GA", 2, 10.0)}))).await;
    assert_eq!(
        logged_changes(&base, &key).await,
        vec![json!({"stock_increase": ["GA"]})]
    );
}

#[tokio::test]
async fn bad_snapshots_are_refused_and_nothing_is_stored_sqlite() {
    bad_snapshots(false).await;
}

#[tokio::test]
async fn bad_snapshots_are_refused_and_nothing_is_stored_postgres() {
    bad_snapshots(true).await;
}

// ---- watchlist API ----

async fn watchlist_api(pg: bool) {
    let Some(b) = Backend::start(pg, "evwatch", &["--eventory-max-watchlist", "3"]).await else {
        return;
    };
    let base = b.base();
    let (org, key) = tenant(&base).await;
    let other = new_key(&base, &org).await;
    let e = watch(
        &base,
        &key,
        json!({"event_id": "w1", "max_price_filter": 100, "keywords": ["Tour"]}),
    )
    .await;
    assert_eq!(e["object"], "watchlist_entry");
    assert_eq!(e["change_type"], "stock_increase");
    let id = e["id"].as_str().unwrap();
    let get = |k: &str, p: String| http().get(format!("{base}{p}")).header("x-api-key", k.to_owned());
    let list: Value = get(&key, "/eventory/watchlist".into())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["object"], "list");
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    // Another identity sees none of it.
    let list: Value = get(&other, "/eventory/watchlist".into())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["data"], json!([]));
    let r = get(&other, format!("/eventory/watchlist/{id}"))
        .send()
        .await
        .unwrap();
    assert_error(r, 404, "not_found").await;
    // PATCH merges; null removes.
    let r = http()
        .patch(format!("{base}/eventory/watchlist/{id}"))
        .header("x-api-key", &key)
        .json(&json!({"seat_quantity": 2, "max_price_filter": null}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["seat_quantity"], 2);
    assert!(v["max_price_filter"].is_null());
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys.len(), 2 + 15 + 2, "every field, absent ones null: {keys:?}");
    assert_eq!(v["keywords"], json!(["Tour"]));
    // Every field validated, with the field named.
    for (body, param) in [
        (json!({}), "event_id"),
        (json!({"event_id": "has space"}), "event_id"),
        (json!({"event_id": "e", "change_type": "Stock Up"}), "change_type"),
        (
            json!({"event_id": "e", "min_price_filter": -1}),
            "min_price_filter",
        ),
        (
            json!({"event_id": "e", "max_price_filter": "10"}),
            "max_price_filter",
        ),
        (
            json!({"event_id": "e", "stock_threshold_filter": 1.5}),
            "stock_threshold_filter",
        ),
        (json!({"event_id": "e", "seat_quantity": 0}), "seat_quantity"),
        (json!({"event_id": "e", "section": ""}), "section"),
        (json!({"event_id": "e", "keywords": []}), "keywords"),
        (json!({"event_id": "e", "keywords": ["ok", 3]}), "keywords[1]"),
        (
            json!({"event_id": "e", "standard_tickets": "yes"}),
            "standard_tickets",
        ),
        (json!({"event_id": "e", "resale_tickets": 1}), "resale_tickets"),
        (
            json!({"event_id": "e", "general_admission_tickets": null, "platinum_tickets": []}),
            "platinum_tickets",
        ),
        (
            json!({"event_id": "e", "date_filter": {"from": "soon"}}),
            "date_filter.from",
        ),
        (json!({"event_id": "e", "date_filter": {}}), "date_filter"),
        (json!({"event_id": "e", "row_filter": 7}), "row_filter"),
        (
            json!({"event_id": "e", "muted_until": "2026-13-01T00:00:00Z"}),
            "muted_until",
        ),
        (json!({"event_id": "e", "colour": "red"}), "colour"),
    ] {
        let r = http()
            .post(format!("{base}/eventory/watchlist"))
            .header("x-api-key", &key)
            .json(&body)
            .send()
            .await
            .unwrap();
        let err = assert_error(r, 400, "invalid_request").await;
        assert_eq!(err["error"]["param"], param, "{body}");
    }
    // Bounded per identity (3 here).
    watch(&base, &key, json!({"event_id": "w2"})).await;
    watch(&base, &key, json!({"event_id": "w3"})).await;
    let r = http()
        .post(format!("{base}/eventory/watchlist"))
        .header("x-api-key", &key)
        .json(&json!({"event_id": "w4"}))
        .send()
        .await
        .unwrap();
    assert_error(r, 400, "invalid_request").await;
    let r = http()
        .delete(format!("{base}/eventory/watchlist/{id}"))
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = get(&key, format!("/eventory/watchlist/{id}"))
        .send()
        .await
        .unwrap();
    assert_error(r, 404, "not_found").await;
}

#[tokio::test]
async fn watchlist_crud_validates_every_field_sqlite() {
    watchlist_api(false).await;
}

#[tokio::test]
async fn watchlist_crud_validates_every_field_postgres() {
    watchlist_api(true).await;
}

// ---- /filtered: one case per filter field ----

/// A ready notification for `event` with one changed section.
fn notice(
    event: &str,
    seatmap_sections: Option<Value>,
    offer_sections: Option<Value>,
    with_infos: bool,
) -> Value {
    let (ty, sections, changed) = match (seatmap_sections, offer_sections) {
        (Some(s), _) => {
            let k: Vec<String> = s.as_object().unwrap().keys().cloned().collect();
            ("SeatMapSections", s, k)
        }
        (None, Some(o)) => {
            let k: Vec<String> = o
                .as_object()
                .unwrap()
                .values()
                .map(|x| x["offer_name"].as_str().unwrap().to_owned())
                .collect();
            ("OfferSections", o, k)
        }
        _ => unreachable!(),
    };
    let stock: i64 = sections
        .as_object()
        .unwrap()
        .values()
        .map(|s| s["stock"].as_i64().unwrap())
        .sum();
    let mut v = json!({"timestamp": "2026-04-27T10:00:00Z", "website": "w", "version": "1.0", "event_id": event,
        "region": "US", "changes": {"stock_increase": changed}, "sections_type": ty, "sections": sections,
        "stock": stock});
    if with_infos {
        v["event_infos"] = infos();
    }
    v
}

fn sm(section: &str, stock: i64, price: f64, kind: &str, adjacent: i64, ga: bool, name: &str) -> Value {
    let mut d = detail(section, stock, price, kind, adjacent, ga);
    d["offer_name"] = json!(name);
    json!({ format!("sec-{section}"): {"stock": stock, "o": d} })
}

async fn filter_cases(pg: bool) {
    let Some(b) = Backend::start(pg, "evfilter", &[]).await else {
        return;
    };
    let base = b.base();
    let (org, _) = tenant(&base).await;
    let std = |s: &str| sm(s, 4, 50.0, "primary", 2, false, "Standard");
    // (field, entry filters, a notification it must drop, one it must pass)
    let cases: Vec<(&str, Value, Value, Value)> = vec![
        (
            "min_price_filter",
            json!({"min_price_filter": 40}),
            notice(
                "",
                Some(sm("1", 4, 30.0, "primary", 2, false, "Standard")),
                None,
                false,
            ),
            notice("", Some(std("1")), None, false),
        ),
        (
            "max_price_filter",
            json!({"max_price_filter": 60}),
            notice(
                "",
                Some(sm("1", 4, 70.0, "primary", 2, false, "Standard")),
                None,
                false,
            ),
            notice("", Some(std("1")), None, false),
        ),
        (
            "stock_threshold_filter",
            json!({"stock_threshold_filter": 4}),
            notice(
                "",
                Some(sm("1", 3, 50.0, "primary", 2, false, "Standard")),
                None,
                false,
            ),
            notice("", Some(std("1")), None, false),
        ),
        (
            "seat_quantity",
            json!({"seat_quantity": 3}),
            notice(
                "",
                Some(sm("1", 4, 50.0, "primary", 2, false, "Standard")),
                None,
                false,
            ),
            notice(
                "",
                Some(sm("1", 4, 50.0, "primary", 3, false, "Standard")),
                None,
                false,
            ),
        ),
        (
            "seat_quantity (OfferSections: stock)",
            json!({"seat_quantity": 3}),
            notice("", None, Some(json!({"ga": offer("GA", 2, 10.0)})), false),
            notice("", None, Some(json!({"ga": offer("GA", 3, 10.0)})), false),
        ),
        (
            "section",
            json!({"section": "102"}),
            notice("", Some(std("101")), None, false),
            notice("", Some(std("102")), None, false),
        ),
        (
            "keywords",
            json!({"keywords": ["garden"]}),
            notice("", Some(std("1")), None, false),
            notice("", Some(std("1")), None, true),
        ),
        (
            "standard_tickets",
            json!({"standard_tickets": false}),
            notice("", Some(std("1")), None, false),
            notice(
                "",
                Some(sm("1", 4, 50.0, "resale", 2, false, "Standard")),
                None,
                false,
            ),
        ),
        (
            "resale_tickets",
            json!({"resale_tickets": false}),
            notice(
                "",
                Some(sm("1", 4, 50.0, "resale", 2, false, "Standard")),
                None,
                false,
            ),
            notice("", Some(std("1")), None, false),
        ),
        (
            "general_admission_tickets",
            json!({"general_admission_tickets": false}),
            notice(
                "",
                Some(sm("1", 4, 50.0, "primary", 2, true, "Standard")),
                None,
                false,
            ),
            notice("", Some(std("1")), None, false),
        ),
        (
            "platinum_tickets",
            json!({"platinum_tickets": false}),
            notice(
                "",
                Some(sm("1", 4, 50.0, "primary", 2, false, "Platinum")),
                None,
                false,
            ),
            notice("", Some(std("1")), None, false),
        ),
        (
            "date_filter",
            json!({"date_filter": {"from": "2026-06-01T00:00:00Z", "to": "2026-06-30T00:00:00Z"}}),
            notice("", Some(std("1")), None, false),
            notice("", Some(std("1")), None, true),
        ),
        (
            "row_filter",
            json!({"row_filter": "row a"}),
            notice(
                "",
                Some(sm("1", 4, 50.0, "primary", 2, false, "Row B")),
                None,
                false,
            ),
            notice(
                "",
                Some(sm("1", 4, 50.0, "primary", 2, false, "Row A")),
                None,
                false,
            ),
        ),
        (
            "muted_until",
            json!({"muted_until": "2999-01-01T00:00:00Z"}),
            notice("", Some(std("1")), None, false),
            notice("", Some(std("1")), None, false),
        ),
        (
            "change_type",
            json!({"change_type": "price_decrease"}),
            notice("", Some(std("1")), None, false),
            {
                let mut n = notice("", Some(std("1")), None, false);
                n["changes"] = json!({"price_decrease": ["sec-1"]});
                n
            },
        ),
    ];
    for (i, (field, filters, drop, pass)) in cases.into_iter().enumerate() {
        let event = format!("f{i}");
        let key = new_key(&base, &org).await;
        let mut entry = filters.clone();
        entry["event_id"] = json!(event);
        watch(&base, &key, entry).await;
        let mut ws = connect(&base, &key, FILTERED).await;
        let mut drop = drop;
        drop["event_id"] = json!(event);
        let mut pass = pass;
        pass["event_id"] = json!(event);
        // A notification of an event not on the watchlist is never sent.
        let mut stranger = pass.clone();
        stranger["event_id"] = json!("not-watched");
        assert_eq!(
            publish(&base, &key, "inventory.notification", "not-watched", stranger)
                .await
                .status(),
            201
        );
        assert_eq!(
            publish(&base, &key, "inventory.notification", &event, drop.clone())
                .await
                .status(),
            201
        );
        if field == "muted_until" {
            // Muted: nothing at all.
            assert_eq!(
                publish(&base, &key, "inventory.notification", &event, pass)
                    .await
                    .status(),
                201
            );
            assert!(
                next_text(&mut ws, Duration::from_secs(1)).await.is_none(),
                "{field}"
            );
            continue;
        }
        assert_eq!(
            publish(&base, &key, "inventory.notification", &event, pass.clone())
                .await
                .status(),
            201
        );
        // Same topic, publish order: the first frame is the passing one.
        let got = next_json(&mut ws).await;
        assert_eq!(
            got, pass,
            "{field}: the drop case got through, or the pass case did not"
        );
        // The unfiltered endpoint applies only membership + change_type.
        let key2 = new_key(&base, &org).await;
        let mut entry = filters;
        entry["event_id"] = json!(event);
        watch(&base, &key2, entry).await;
        let mut plain = connect(&base, &key2, SUB).await;
        let mut again = drop;
        again["stock"] = json!(1000 + i);
        assert_eq!(
            publish(&base, &key2, "inventory.notification", &event, again.clone())
                .await
                .status(),
            201
        );
        if field == "change_type" {
            assert!(
                next_text(&mut plain, Duration::from_secs(1)).await.is_none(),
                "{field}"
            );
        } else {
            assert_eq!(next_json(&mut plain).await, again, "{field} on /subscribe");
        }
    }
}

#[tokio::test]
async fn filtered_applies_every_field_subscribe_only_two_sqlite() {
    filter_cases(false).await;
}

#[tokio::test]
async fn filtered_applies_every_field_subscribe_only_two_postgres() {
    filter_cases(true).await;
}

// ---- cooldown ----

async fn cooldown(pg: bool) {
    let Some(b) = Backend::start(pg, "evcool", &["--eventory-cooldown", "3s"]).await else {
        return;
    };
    let base = b.base();
    let (org, a) = tenant(&base).await;
    let bkey = new_key(&base, &org).await;
    // Two entries of A match the same notification: it is still sent once.
    for k in [&a, &a, &bkey] {
        watch(&base, k, json!({"event_id": "c1"})).await;
    }
    let mut a1 = connect(&base, &a, SUB).await;
    let mut a2 = connect(&base, &a, FILTERED).await;
    let mut b1 = connect(&base, &bkey, SUB).await;
    let n = notice("c1", None, Some(json!({"ga": offer("GA", 3, 10.0)})), false);
    publish(&base, &a, "inventory.notification", "c1", n.clone()).await;
    assert_eq!(next_json(&mut b1).await, n);
    let got1 = next_text(&mut a1, Duration::from_secs(2)).await;
    let got2 = next_text(&mut a2, Duration::from_secs(1)).await;
    assert_eq!(
        [&got1, &got2].iter().filter(|g| g.is_some()).count(),
        1,
        "one identity, two connections: exactly one frame ({got1:?}, {got2:?})"
    );
    // The same content again, within the window: nobody.
    publish(&base, &a, "inventory.notification", "c1", n.clone()).await;
    assert!(next_text(&mut b1, Duration::from_millis(800)).await.is_none());
    assert!(next_text(&mut a1, Duration::from_millis(200)).await.is_none());
    assert!(next_text(&mut a2, Duration::from_millis(200)).await.is_none());
    // After the window, the next matching change is delivered.
    tokio::time::sleep(Duration::from_millis(3200)).await;
    publish(&base, &a, "inventory.notification", "c1", n.clone()).await;
    assert_eq!(next_json(&mut b1).await, n);
}

#[tokio::test]
async fn cooldown_is_per_identity_and_shared_by_its_connections_sqlite() {
    cooldown(false).await;
}

#[tokio::test]
async fn cooldown_is_per_identity_and_shared_by_its_connections_postgres() {
    cooldown(true).await;
}

#[tokio::test]
async fn a_restart_inside_the_cooldown_keeps_it_sqlite() {
    let s = TestServer::start().await;
    let base = s.base.clone();
    let (_, key) = tenant(&base).await;
    watch(&base, &key, json!({"event_id": "r1"})).await;
    let mut ws = connect(&base, &key, SUB).await;
    let n = notice("r1", None, Some(json!({"ga": offer("GA", 3, 10.0)})), false);
    publish(&base, &key, "inventory.notification", "r1", n.clone()).await;
    assert_eq!(next_json(&mut ws).await, n);
    drop(ws);
    let data = s.data_dir.clone();
    let dir = s.stop().await;
    let s = TestServer::start_in(&data, |_| {}).await;
    let base = s.base.clone();
    let mut ws = connect(&base, &key, SUB).await;
    publish(&base, &key, "inventory.notification", "r1", n.clone()).await;
    let mut n2 = n.clone();
    n2["stock"] = json!(4);
    publish(&base, &key, "inventory.notification", "r1", n2.clone()).await;
    assert_eq!(
        next_json(&mut ws).await,
        n2,
        "the repeat inside the window was not sent"
    );
    drop(dir);
}

#[tokio::test]
async fn a_restart_inside_the_cooldown_keeps_it_postgres() {
    let Some(mut c) = Cluster::start("evrestart", 1, &[]).await else {
        return;
    };
    let base = c.base(0).to_owned();
    let (_, key) = tenant(&base).await;
    watch(&base, &key, json!({"event_id": "r1"})).await;
    let mut ws = connect(&base, &key, SUB).await;
    let n = notice("r1", None, Some(json!({"ga": offer("GA", 3, 10.0)})), false);
    publish(&base, &key, "inventory.notification", "r1", n.clone()).await;
    assert_eq!(next_json(&mut ws).await, n);
    drop(ws);
    let _ = c.nodes[0].0.kill();
    let _ = c.nodes[0].0.wait();
    c.add_node(&[]).await;
    let base = c.base(1).to_owned();
    let mut ws = connect(&base, &key, SUB).await;
    publish(&base, &key, "inventory.notification", "r1", n.clone()).await;
    let mut n2 = n.clone();
    n2["stock"] = json!(4);
    publish(&base, &key, "inventory.notification", "r1", n2.clone()).await;
    assert_eq!(
        next_json(&mut ws).await,
        n2,
        "the repeat inside the window was not sent"
    );
}

#[tokio::test]
async fn two_nodes_one_identity_receive_a_change_once_between_them() {
    let Some(nats) = crate::cluster_streams::nats_url() else {
        return;
    };
    let prefix = format!("mqev{}", free_port());
    let Some(c) = Cluster::start("evnodes", 2, &["--nats", &nats, "--nats-prefix", &prefix]).await else {
        return;
    };
    let (org, key) = tenant(c.base(0)).await;
    // A second identity of the same organization, made on node 1.
    let other = new_key(c.base(1), &org).await;
    for k in [&key, &other] {
        watch(c.base(0), k, json!({"event_id": "n1"})).await;
    }
    let mut on0 = connect(c.base(0), &key, SUB).await;
    let mut on1 = connect(c.base(1), &key, SUB).await;
    let mut other1 = connect(c.base(1), &other, SUB).await;
    snapshot(c.base(0), &key, offers("n1", json!({"ga": offer("GA", 3, 10.0)}))).await;
    let v = next_json(&mut other1).await;
    assert_eq!(v["changes"], json!({"stock_increase": ["GA"]}));
    let g0 = next_text(&mut on0, Duration::from_secs(3)).await;
    let g1 = next_text(&mut on1, Duration::from_secs(1)).await;
    assert_eq!(
        [&g0, &g1].iter().filter(|g| g.is_some()).count(),
        1,
        "one identity on two nodes: exactly one frame ({g0:?}, {g1:?})"
    );
}
