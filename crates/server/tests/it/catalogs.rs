//! Event catalogs at publish, against the real server: every example payload
//! of the five documents (the core's fixtures) is accepted for an
//! organization that enabled its profile; each with a required field removed
//! or given a wrong type is refused with `param` naming the field, and stores
//! nothing. Organizations' own types (`/v1/event-types`), endpoint filters
//! checked against the catalog, batches.

use marquee_core::profile::catalog::CompiledSchema;
use marquee_core::profile::{builtin_catalog, profiles_with_catalogs};
use serde_json::{Value, json};

use crate::helpers::*;

/// An organization with `profiles` enabled and an enterprise key.
pub async fn profile_tenant(s: &TestServer, profiles: &[&str]) -> (String, String) {
    let r = s
        .admin(reqwest::Method::POST, "/admin/v1/orgs")
        .json(&json!({"name": "catalogs", "profiles": profiles}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let org = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, key) = s.create_key(&org, "enterprise").await;
    (org, key)
}

fn fixtures(profile: &str) -> Vec<Value> {
    let path = format!(
        "{}/../core/src/profile/catalogs/fixtures/{profile}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn publish_body(ty: &str, data: &Value) -> Value {
    json!({"type": ty, "channels": ["venue:fixtures"], "data": data})
}

async fn status_and_body(s: &TestServer, key: &str, body: &Value) -> (u16, Value) {
    let r = s.post(key, "/v1/messages").json(body).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn every_document_example_passes_and_every_mutation_fails() {
    let s = TestServer::start().await;
    let mut checked = 0;
    for profile in profiles_with_catalogs() {
        let (_org, key) = profile_tenant(&s, &[profile]).await;
        let catalog = builtin_catalog(profile).unwrap();
        let mut accepted = std::collections::HashSet::new();
        for f in fixtures(profile) {
            let ty = f["type"].as_str().unwrap();
            let data = &f["data"];
            let (st, v) = status_and_body(&s, &key, &publish_body(ty, data)).await;
            let def = catalog.get(ty).unwrap();
            if def.coalesce.is_some() {
                // Held until its window closes (tests/it/coalesce.rs).
                assert_eq!(st, 202, "{profile} {ty} fixture refused: {v}");
            } else {
                assert_eq!(st, 201, "{profile} {ty} fixture refused: {v}");
                accepted.insert(v["id"].as_str().unwrap().to_owned());
            }
            let schema = def.compile().unwrap();
            let required: Vec<String> = def.schema["required"]
                .as_array()
                .map(|a| a.iter().filter_map(|r| r.as_str().map(str::to_owned)).collect())
                .unwrap_or_default();
            for field in required {
                let mut missing = data.clone();
                missing.as_object_mut().unwrap().remove(&field);
                let (st, v) = status_and_body(&s, &key, &publish_body(ty, &missing)).await;
                assert_eq!(st, 400, "{profile} {ty} without {field}: {v}");
                assert_eq!(v["error"]["code"], "invalid_request");
                assert_eq!(
                    v["error"]["param"],
                    format!("data.{field}"),
                    "{profile} {ty}: {v}"
                );
                let msg = v["error"]["message"].as_str().unwrap();
                assert!(msg.contains(&field), "an actionable message: {msg}");
                // A value of a type the schema refuses.
                let wrong = [json!("x"), json!(12345), json!(true), json!({"k": 1}), json!([1])]
                    .into_iter()
                    .find(|w| {
                        let mut d = data.clone();
                        d[&field] = w.clone();
                        !schema.is_valid(&d)
                    });
                if let Some(w) = wrong {
                    let mut d = data.clone();
                    d[&field] = w.clone();
                    let (st, v) = status_and_body(&s, &key, &publish_body(ty, &d)).await;
                    assert_eq!(st, 400, "{profile} {ty} with {field} = {w}: {v}");
                    let param = v["error"]["param"].as_str().unwrap();
                    assert!(param.starts_with(&format!("data.{field}")), "{param}");
                }
                checked += 1;
            }
        }
        assert!(!accepted.is_empty());
        // Only the fixtures were stored, besides what marquee derives from
        // them itself (Eventory notifications, attendance milestones).
        let stored: Vec<Value> = s.list_all(&key, "").await;
        let (fixtures_stored, derived): (Vec<&Value>, Vec<&Value>) = stored
            .iter()
            .partition(|m| accepted.contains(m["id"].as_str().unwrap()));
        assert_eq!(fixtures_stored.len(), accepted.len(), "{profile}");
        assert!(
            derived.iter().all(|m| {
                let t = m["type"].as_str().unwrap();
                t == "inventory.notification" || t == "attendance_milestone"
            }),
            "{profile}: refused publishes stored nothing: {derived:?}"
        );
    }
    assert!(checked > 100, "{checked} mutations");
    s.stop().await;
}

#[tokio::test]
async fn catalogs_apply_only_to_enabled_profiles_and_batches_fail_whole() {
    let s = TestServer::start().await;
    let bad = json!({"fan_id": 7});
    // No profile enabled: anything goes, as before.
    let (_o, plain) = s.tenant().await;
    assert_eq!(
        status_and_body(&s, &plain, &publish_body("fan_checkin", &bad))
            .await
            .0,
        201
    );
    let (_o, rev) = profile_tenant(&s, &["revolution"]).await;
    let (st, v) = status_and_body(&s, &rev, &publish_body("fan_checkin", &bad)).await;
    assert_eq!(st, 400);
    assert!(v["error"]["param"].as_str().unwrap().starts_with("data."), "{v}");
    // Types outside every enabled catalog are accepted.
    assert_eq!(
        status_and_body(&s, &rev, &publish_body("order.completed", &bad))
            .await
            .0,
        201
    );
    // A batch with one bad message stores none of them.
    let good = json!({"fan_id": "fan_1", "event_id": "evt_1", "gate": "MAIN", "ts": 1745123456789u64});
    let r = s
        .post(&rev, "/v1/messages/batch")
        .json(&json!({"messages": [publish_body("fan_checkin", &good), publish_body("fan_checkin", &json!({"event_id": "e", "gate": "G", "ts": 1}))]}))
        .send()
        .await
        .unwrap();
    let v = assert_error(r, 400, "invalid_request").await;
    assert_eq!(v["error"]["param"], "messages[1].data.fan_id");
    assert_eq!(s.list_all(&rev, "").await.len(), 1);
    // Enabling a profile later applies to the next publishes.
    let (org, key) = s.tenant().await;
    assert_eq!(
        status_and_body(&s, &key, &publish_body("checkin.scanned", &bad))
            .await
            .0,
        201
    );
    let r = s
        .admin(reqwest::Method::PATCH, &format!("/admin/v1/orgs/{org}"))
        .json(&json!({"profiles": ["eventium"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        status_and_body(&s, &key, &publish_body("checkin.scanned", &bad))
            .await
            .0,
        400
    );
    s.stop().await;
}

#[tokio::test]
async fn organizations_define_their_own_types() {
    let s = TestServer::start().await;
    let (_o, key) = profile_tenant(&s, &["revolution"]).await;
    let schema = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "required": ["seat"],
        "properties": {"seat": {"$ref": "#/$defs/seat"}},
        "$defs": {"seat": {"type": "string", "pattern": "^[A-Z][0-9]+$"}}
    });
    let r = s
        .http
        .put(s.url("/v1/event-types/seat.assigned"))
        .header("x-api-key", &key)
        .json(&json!({"description": "A seat was assigned.", "schema": schema}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["source"], "organization");
    assert_eq!(v["type"], "seat.assigned");
    // A second PUT updates (200).
    let r = s
        .http
        .put(s.url("/v1/event-types/seat.assigned"))
        .header("x-api-key", &key)
        .json(&json!({"description": "A seat was assigned to a fan.", "schema": schema}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        status_and_body(&s, &key, &publish_body("seat.assigned", &json!({"seat": "A12"})))
            .await
            .0,
        201
    );
    let (st, v) = status_and_body(&s, &key, &publish_body("seat.assigned", &json!({"seat": "a-12"}))).await;
    assert_eq!(
        (st, v["error"]["param"].as_str()),
        (400, Some("data.seat")),
        "{v}"
    );
    // The list has the built-ins of enabled profiles and the own type.
    let list = s.get_json(&key, "/v1/event-types").await;
    let names: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["type"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 8 + 1);
    assert!(names.contains(&"fan_checkin") && names.contains(&"seat.assigned"));
    let one = s.get_json(&key, "/v1/event-types/fan_checkin").await;
    assert_eq!(one["source"], "revolution");
    assert!(one["schema"]["required"].is_array());
    // Bad definitions are refused and change nothing.
    for (path, body, status, param) in [
        ("/v1/event-types/fan_checkin", json!({"schema": {}}), 409, None),
        (
            "/v1/event-types/x.remote",
            json!({"schema": {"$ref": "https://example.com/s.json"}}),
            400,
            Some("schema"),
        ),
        (
            "/v1/event-types/x.bad",
            json!({"schema": {"type": "no-such-type"}}),
            400,
            Some("schema"),
        ),
        ("/v1/event-types/x.bad", json!({"schema": 5}), 400, Some("schema")),
        (
            "/v1/event-types/x.bad",
            json!({"schema": {}, "extra": 1}),
            400,
            None,
        ),
        (
            "/v1/event-types/bad%20name",
            json!({"schema": {}}),
            400,
            Some("type"),
        ),
    ] {
        let r = s
            .http
            .put(s.url(path))
            .header("x-api-key", &key)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), status, "{path} {body}");
        if let Some(p) = param {
            let v: Value = r.json().await.unwrap();
            assert_eq!(v["error"]["param"], p, "{v}");
        }
    }
    assert_eq!(
        s.get_json(&key, "/v1/event-types").await["data"]
            .as_array()
            .unwrap()
            .len(),
        9
    );
    // Another organization does not see it.
    let (_o2, other) = s.tenant().await;
    let r = s
        .get(&other, "/v1/event-types/seat.assigned")
        .send()
        .await
        .unwrap();
    assert_error(r, 404, "not_found").await;
    assert_eq!(
        status_and_body(&s, &other, &publish_body("seat.assigned", &json!({"seat": 1})))
            .await
            .0,
        201
    );
    // Deleted: no longer enforced.
    let r = s
        .http
        .delete(s.url("/v1/event-types/seat.assigned"))
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        status_and_body(&s, &key, &publish_body("seat.assigned", &json!({"seat": 1})))
            .await
            .0,
        201
    );
    let r = s
        .http
        .delete(s.url("/v1/event-types/fan_checkin"))
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    // The schema compiles the same way the core compiles it.
    assert!(CompiledSchema::compile(&schema).is_ok());
    s.stop().await;
}

#[tokio::test]
async fn endpoint_filters_must_name_known_types_in_profile_bound_orgs() {
    let s = TestServer::start_with(crate::webhooks::fast).await;
    let (_o, key) = profile_tenant(&s, &["revolution"]).await;
    let url = "https://example.com/hook";
    for (types, ok) in [
        (json!(["fan_checkin", "drop_*"]), true),
        (json!(["message.attempt.exhausted"]), true),
        (json!(["*"]), true),
        (json!(["fan_chekin"]), false),
        (json!(["fan_checkin", "nope.*"]), false),
    ] {
        let r = s
            .post(&key, "/v1/endpoints")
            .json(&json!({"url": url, "types": types}))
            .send()
            .await
            .unwrap();
        if ok {
            assert_eq!(r.status(), 201, "{types}");
        } else {
            let v = assert_error(r, 400, "invalid_request").await;
            assert!(v["error"]["param"].as_str().unwrap().starts_with("types["), "{v}");
        }
    }
    // PATCH is checked too; an org without profiles accepts any name.
    let ep: Value = s
        .post(&key, "/v1/endpoints")
        .json(&json!({"url": url}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let r = s
        .http
        .patch(s.url(&format!("/v1/endpoints/{}", ep["id"].as_str().unwrap())))
        .header("x-api-key", &key)
        .json(&json!({"types": ["venue_openned"]}))
        .send()
        .await
        .unwrap();
    assert_error(r, 400, "invalid_request").await;
    let (_o, plain) = s.tenant().await;
    let r = s
        .post(&plain, "/v1/endpoints")
        .json(&json!({"url": url, "types": ["anything.goes"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    s.stop().await;
}
