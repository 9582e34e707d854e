//! Every registered webhook format, end to end: a real receiver gets each
//! delivery, and code marquee did not write verifies it — the reference
//! documents' own verification code and Stripe's official library (run by
//! node from `tests/verifiers/`), and the official `standardwebhooks` crate.
//! Headers and envelope fields are checked exactly, including `null`s, the
//! Revento delivery id (a UUID v4 that repeats on retry) and `created` units;
//! a retry after a 500 sends the same body re-signed at a fresh time.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use marquee_core::webhook::RetrySchedule;
use marquee_core::wire::Format;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use crate::helpers::*;
use crate::webhooks::{Hit, Receiver, Reply, create_endpoint};

fn verifier_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/verifiers")
}

/// Runs the independent verifiers on `captures`; `None` (with the reason
/// printed) where node or the verifiers' dependencies are not installed.
pub async fn node_verify(captures: &[Value]) -> Option<Vec<Value>> {
    let dir = verifier_dir();
    if !dir.join("node_modules/stripe").exists() {
        skip(&format!(
            "independent webhook verifiers: run `npm ci` in {} (node ≥ 20)",
            dir.display()
        ));
        return None;
    }
    let mut child = match tokio::process::Command::new("node")
        .arg("verify.mjs")
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            skip(&format!("independent webhook verifiers: cannot run node ({e})"));
            return None;
        }
    };
    let input = serde_json::to_vec(captures).unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&input).await.unwrap();
    drop(stdin);
    let out = child.wait_with_output().await.unwrap();
    assert!(out.status.success(), "verify.mjs failed");
    Some(serde_json::from_slice(&out.stdout).unwrap())
}

fn capture(format: &str, ep: &Value, h: &Hit, body: &[u8]) -> Value {
    let headers: serde_json::Map<String, Value> = h
        .headers
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), json!(v.to_str().unwrap_or(""))))
        .collect();
    json!({
        "format": format,
        "secret": ep["secret"],
        "identifier": ep["identifier"],
        "headers": headers,
        "body": String::from_utf8_lossy(body),
    })
}

fn standard_verifies(ep: &Value, h: &Hit, body: &[u8]) -> bool {
    let wh = standardwebhooks::Webhook::new(ep["secret"].as_str().unwrap()).unwrap();
    let mut headers = http::HeaderMap::new();
    for (k, v) in &h.headers {
        headers.insert(k.clone(), v.clone());
    }
    wh.verify(body, &headers).is_ok()
}

fn retry_after_a_second(c: &mut ServeConfig) {
    crate::webhooks::fast(c);
    // Long enough that a re-signed retry carries a later Unix second even
    // with the schedule's ±20 % jitter (1.2 s at the least).
    c.webhooks.retry_schedule = RetrySchedule(vec![Duration::ZERO, Duration::from_millis(1500)]);
}

use marquee_server::ServeConfig;

fn evt_id(msg_id: &str) -> String {
    format!("evt_{}", msg_id.strip_prefix("msg_").unwrap())
}

/// Checks one delivery's headers and envelope against its format's document.
fn check_envelope(format: &str, h: &Hit, msg: &Value, with_event: bool) {
    let v = &h.json;
    let msg_id = msg["id"].as_str().unwrap();
    let occurred = msg["occurred_at"].as_str().unwrap();
    let occurred_us = marquee_core::Timestamp::parse_rfc3339(occurred)
        .unwrap()
        .as_micros();
    assert_eq!(h.header("content-type"), "application/json", "{format}");
    match format {
        "standard" => {
            assert_eq!(v["id"], msg_id);
            assert!(h.header("webhook-id").starts_with("dlv_"));
        }
        "revolution" => {
            let keys = top_level_keys(&h.body);
            assert_eq!(keys, ["id", "type", "created", "payload"]);
            assert_eq!(v["id"], evt_id(msg_id).as_str());
            assert_eq!(
                v["created"].as_i64().unwrap(),
                occurred_us / 1000,
                "created is Unix ms"
            );
            assert_eq!(v["payload"], msg["data"]);
            assert!(h.header("x-revolution-signature").starts_with("sha256="));
        }
        "eventium" => {
            let keys = top_level_keys(&h.body);
            assert_eq!(keys, ["id", "type", "created", "data"]);
            assert_eq!(v["id"], evt_id(msg_id).as_str());
            assert_eq!(
                v["created"].as_i64().unwrap(),
                occurred_us / 1_000_000,
                "created is Unix s"
            );
            assert_eq!(v["data"], msg["data"]);
            let sig = h.header("x-eventium-signature");
            assert!(sig.starts_with("t=") && sig.contains(",v1="), "{sig}");
        }
        "revento" => {
            let keys = top_level_keys(&h.body);
            assert_eq!(
                keys,
                ["id", "type", "occurred_at", "event_id", "organization_id", "data"]
            );
            assert_eq!(v["id"], evt_id(msg_id).as_str());
            assert_eq!(v["occurred_at"], occurred);
            if with_event {
                assert_eq!(v["event_id"], "evt_abc123");
                assert_eq!(v["organization_id"], "org_xyz789");
            } else {
                assert!(v["event_id"].is_null() && v["organization_id"].is_null());
            }
            assert_eq!(h.header("x-revento-event"), msg["type"].as_str().unwrap());
            let uuid = h.header("x-revento-delivery-id");
            let b = uuid.as_bytes();
            assert!(
                uuid.len() == 36 && b[14] == b'4' && matches!(b[19], b'8' | b'9' | b'a' | b'b'),
                "{uuid}"
            );
            let ts: i64 = h.header("x-revento-timestamp").parse().unwrap();
            assert!((ts - marquee_core::Timestamp::now().as_secs()).abs() < 60);
            assert!(h.header("x-revento-signature").starts_with("sha256="));
        }
        "attendee" => {
            let keys = top_level_keys(&h.body);
            assert_eq!(keys, ["id", "event", "data"]);
            assert_eq!(v["id"], evt_id(msg_id).as_str());
            assert_eq!(v["event"], msg["type"]);
            let sig = h.header("x-signature");
            let (ts, hex) = sig.split_once('/').unwrap();
            let ns: i128 = ts.parse().unwrap();
            let now_ns = i128::from(marquee_core::Timestamp::now().as_micros()) * 1000;
            assert!((now_ns - ns).abs() < 60_000_000_000, "timestamp is Unix ns");
            assert_eq!(hex.len(), 64);
        }
        other => panic!("format {other} has no envelope check here: add one"),
    }
}

/// A signature header value of `h`, for comparing attempts.
fn signature_of(h: &Hit) -> String {
    [
        "webhook-signature",
        "x-revolution-signature",
        "x-eventium-signature",
        "x-revento-signature",
        "x-signature",
    ]
    .iter()
    .map(|n| h.header(n))
    .collect::<Vec<_>>()
    .join("|")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_format_delivers_verifiable_webhooks_and_resigns_retries() {
    let s = TestServer::start_with(retry_after_a_second).await;
    let (_org, key) = s.tenant().await;
    let mut cases = Vec::new();
    for f in Format::all() {
        // Each delivery's first attempt gets a 500, the retry a 204 (keyed on
        // the envelope id: only standard has a webhook-id header).
        let seen = std::sync::Mutex::new(std::collections::HashSet::new());
        let rx = Receiver::start(move |h| {
            let first = seen.lock().unwrap().insert(h.json["id"].to_string());
            Reply::status(if first { 500 } else { 204 })
        })
        .await;
        let ep = create_endpoint(
            &s,
            &key,
            json!({"url": rx.url(), "format": f.as_str(), "channels": [format!("venue:{}", f.as_str())]}),
        )
        .await;
        assert_eq!(ep["format"], f.as_str());
        assert!(ep["secret"].as_str().unwrap().starts_with("whsec_"));
        assert_eq!(ep["identifier"].is_string(), f.as_str() == "attendee");
        cases.push((f, rx, ep));
    }
    let mut published = Vec::new();
    for (f, _, _) in &cases {
        let venue = format!("venue:{}", f.as_str());
        let with = s
            .publish(
                &key,
                json!({"type": "order.completed", "channels": [venue, "event:evt_abc123", "organization:org_xyz789"],
                       "data": {"ticket_id": "tkt_1", "total": 48.0, "note": "héllo \u{2603}"}}),
            )
            .await;
        let without = s
            .publish(&key, json!({"type": "integration.suspended", "channels": [venue], "data": {"integration_id": "int_1"}}))
            .await;
        published.push((with, without));
    }
    let mut captures = Vec::new();
    let mut expect = Vec::new();
    for ((f, rx, ep), (with, without)) in cases.iter().zip(&published) {
        let hits = rx.wait_for(4, 20).await;
        assert_eq!(
            hits.len(),
            4,
            "{f:?}: two deliveries, each failed once then delivered"
        );
        for msg in [with, without] {
            let tries: Vec<&Hit> = hits.iter().filter(|h| body_id_matches(h, msg)).collect();
            assert_eq!(tries.len(), 2, "{f:?}: one retry per delivery");
            for h in &tries {
                check_envelope(f.as_str(), h, msg, std::ptr::eq(msg, with));
            }
            assert_eq!(tries[0].body, tries[1].body, "{f:?}: a retry sends the same body");
            if f.wire().tolerance_secs().is_some() {
                assert_ne!(
                    signature_of(tries[0]),
                    signature_of(tries[1]),
                    "{f:?}: a retry is re-signed"
                );
            }
            if f.as_str() == "revento" {
                assert_eq!(
                    tries[0].header("x-revento-delivery-id"),
                    tries[1].header("x-revento-delivery-id"),
                    "the delivery id repeats on retry"
                );
            }
        }
        if f.as_str() == "revento" {
            let ids: std::collections::HashSet<&str> =
                hits.iter().map(|h| h.header("x-revento-delivery-id")).collect();
            assert_eq!(ids.len(), 2, "one delivery id per delivery");
        }
        for h in &hits {
            let mut tampered = h.body.to_vec();
            let i = tampered.len() / 2;
            tampered[i] ^= 1;
            if f.as_str() == "standard" {
                assert!(standard_verifies(ep, h, &h.body), "standardwebhooks verifies");
                assert!(!standard_verifies(ep, h, &tampered));
            } else {
                captures.push(capture(f.as_str(), ep, h, &h.body));
                expect.push(true);
                captures.push(capture(f.as_str(), ep, h, &tampered));
                expect.push(false);
            }
        }
    }
    if let Some(results) = node_verify(&captures).await {
        for ((c, r), want) in captures.iter().zip(&results).zip(&expect) {
            assert_eq!(
                r["ok"].as_bool(),
                Some(*want),
                "{} verifier said {r} for {c}",
                c["format"]
            );
        }
    }
    s.stop().await;
}

fn body_id_matches(h: &Hit, msg: &Value) -> bool {
    let id = msg["id"].as_str().unwrap();
    h.json["id"] == id || h.json["id"] == evt_id(id).as_str()
}

#[tokio::test]
async fn revolution_registration_api() {
    let s = TestServer::start_with(crate::webhooks::fast).await;
    let (_org, key) = s.tenant().await;
    let rx = Receiver::ok().await;
    let r = s
        .post(&key, "/api/v1/developers/webhooks")
        .json(&json!({"url": rx.url(), "events": ["fan_checkin", "drop_claimed"], "venueId": "stubbs-austin", "secret": "whsec_xxxx"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let hook: Value = r.json().await.unwrap();
    let mut keys: Vec<&str> = hook.as_object().unwrap().keys().map(|k| k.as_str()).collect();
    keys.sort();
    assert_eq!(
        keys,
        ["createdAt", "events", "id", "url", "venueId"],
        "the supplied secret is not echoed"
    );
    assert_eq!(hook["events"], json!(["fan_checkin", "drop_claimed"]));
    assert_eq!(hook["venueId"], "stubbs-austin");
    // Without a venue and a secret: all venues, a generated secret shown once.
    let all: Value = s
        .post(&key, "/api/v1/developers/webhooks")
        .json(&json!({"url": rx.url(), "events": ["venue_opened"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(all["venueId"].is_null());
    assert!(all["secret"].as_str().unwrap().starts_with("whsec_"));
    // Deliveries follow the registration's scope, signed with the integrator's secret.
    s.publish(&key, json!({"type": "fan_checkin", "channels": ["venue:stubbs-austin"], "data": {"fan_id": "fan_1", "event_id": "evt_1", "gate": "MAIN", "ts": 1745123456789u64}})).await;
    s.publish(&key, json!({"type": "fan_checkin", "channels": ["venue:elsewhere"], "data": {"fan_id": "fan_2", "event_id": "evt_1", "gate": "MAIN", "ts": 1745123456789u64}})).await;
    s.publish(&key, json!({"type": "signal_posted", "channels": ["venue:stubbs-austin"], "data": {"artist_id": "a", "signal_id": "s", "type": "text", "body": "hi"}})).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let hits = rx.hits();
    assert_eq!(hits.len(), 1, "only the scoped venue's fan_checkin");
    let ep = json!({"secret": "whsec_xxxx"});
    if let Some(r) = node_verify(&[capture("revolution", &ep, &hits[0], &hits[0].body)]).await {
        assert_eq!(r[0]["ok"], true, "{r:?}");
    }
    assert_eq!(hits[0].json["payload"]["fan_id"], "fan_1");
    // List, get, and the native view of the same endpoint.
    let list = s.get_json(&key, "/api/v1/developers/webhooks").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 2);
    let id = hook["id"].as_str().unwrap();
    let native = s.get_json(&key, &format!("/v1/endpoints/{id}")).await;
    assert_eq!(native["format"], "revolution");
    assert_eq!(native["channels"], json!(["venue:stubbs-austin"]));
    // Bad input: a type that is not Revolution's, a bad venue, a short secret.
    for (body, param) in [
        (
            json!({"url": rx.url(), "events": ["fan_checkin", "order.completed"]}),
            "events[1]",
        ),
        (json!({"url": rx.url(), "venueId": "no spaces"}), "venueId"),
        (json!({"url": rx.url(), "secret": "short"}), "secret"),
        (json!({"url": "not a url"}), "url"),
    ] {
        let r = s
            .post(&key, "/api/v1/developers/webhooks")
            .json(&body)
            .send()
            .await
            .unwrap();
        let e = assert_error(r, 400, "invalid_request").await;
        assert_eq!(e["error"]["param"], param, "{body}");
    }
    assert_eq!(
        s.get_json(&key, "/api/v1/developers/webhooks").await["data"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // Delete; another organization cannot see or delete it.
    let (_o2, other) = s.tenant().await;
    let r = s
        .http
        .delete(s.url(&format!("/api/v1/developers/webhooks/{id}")))
        .header("x-api-key", &other)
        .send()
        .await
        .unwrap();
    assert_error(r, 404, "not_found").await;
    let r = s
        .http
        .delete(s.url(&format!("/api/v1/developers/webhooks/{id}")))
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        s.get_json(&key, "/api/v1/developers/webhooks").await["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    s.stop().await;
}

/// The top-level keys of a JSON object in the order they were sent.
fn top_level_keys(body: &[u8]) -> Vec<String> {
    struct Keys;
    impl<'de> serde::de::Visitor<'de> for Keys {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some((k, _)) = m.next_entry::<String, serde::de::IgnoredAny>()? {
                out.push(k);
            }
            Ok(out)
        }
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    serde::Deserializer::deserialize_map(&mut de, Keys).unwrap()
}

/// Rotation and format changes, checked by the independent verifiers:
/// an `eventium` endpoint signs with both secrets during the overlap (two
/// `v1=` entries; Stripe's library accepts the delivery with either secret,
/// not with a third), and PATCHing a `standard` endpoint to `revento`
/// answers a new secret that the document's verifier accepts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eventium_rotation_signs_with_both_secrets_and_a_format_change_issues_a_secret() {
    let s = TestServer::start_with(retry_after_a_second).await;
    let (_org, key) = s.tenant().await;
    let rx = Receiver::ok().await;
    let ep = create_endpoint(
        &s,
        &key,
        json!({"url": rx.url(), "format": "eventium", "channels": ["venue:rot"]}),
    )
    .await;
    let id = ep["id"].as_str().unwrap();
    let r = s
        .post(&key, &format!("/v1/endpoints/{id}/secret/rotate"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let rotated: Value = r.json().await.unwrap();
    assert_ne!(rotated["secret"], ep["secret"]);
    s.publish(
        &key,
        json!({"type": "order.completed", "channels": ["venue:rot"], "data": {"n": 1}}),
    )
    .await;
    let hit = rx.wait_for(1, 10).await.remove(0);
    let sig = hit.header("x-eventium-signature").to_owned();
    assert_eq!(sig.matches("v1=").count(), 2, "{sig}");
    let mut stranger = ep.clone();
    stranger["secret"] = json!("whsec_c3RyYW5nZXJzdHJhbmdlcnN0cmFuZ2Vyc3RyYW5nZXI");
    let captures = [
        capture("eventium", &ep, &hit, &hit.body),
        capture("eventium", &rotated, &hit, &hit.body),
        capture("eventium", &stranger, &hit, &hit.body),
    ];

    // standard → revento: the PATCH answer carries the new scheme's secret.
    let rx2 = Receiver::ok().await;
    let std_ep = create_endpoint(&s, &key, json!({"url": rx2.url(), "channels": ["venue:fmt"]})).await;
    let r = s
        .http
        .patch(s.url(&format!("/v1/endpoints/{}", std_ep["id"].as_str().unwrap())))
        .header("x-api-key", &key)
        .json(&json!({"format": "revento"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let patched: Value = r.json().await.unwrap();
    assert_eq!(patched["format"], "revento");
    assert!(patched["secret"].is_string(), "{patched}");
    assert_ne!(patched["secret"], std_ep["secret"]);
    s.publish(
        &key,
        json!({"type": "order.completed", "channels": ["venue:fmt"], "data": {"n": 2}}),
    )
    .await;
    let hit2 = rx2.wait_for(1, 10).await.remove(0);
    assert!(hit2.headers.contains_key("x-revento-signature"));
    let mut all = captures.to_vec();
    all.push(capture("revento", &patched, &hit2, &hit2.body));
    all.push(capture("revento", &std_ep, &hit2, &hit2.body));
    if let Some(results) = node_verify(&all).await {
        let oks: Vec<Option<bool>> = results.iter().map(|r| r["ok"].as_bool()).collect();
        assert_eq!(
            oks,
            [Some(true), Some(true), Some(false), Some(true), Some(false)],
            "old and new eventium secrets verify, a stranger's does not; the PATCH's secret verifies revento, the old one does not: {results:?}"
        );
    }
    s.stop().await;
}
