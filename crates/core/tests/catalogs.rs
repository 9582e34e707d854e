//! The built-in catalogs against the reference documents' example payloads.
//!
//! Every profile in `profiles_with_catalogs()` is covered: its catalog parses, every schema
//! compiles, every fixture (`catalogs/fixtures/<profile>.json`) validates, every type has a
//! fixture, and removing or mistyping any required top-level field of a fixture is reported on
//! that field.

use std::collections::BTreeSet;
use std::hint::black_box;
use std::time::Instant;

use marquee_core::profile::catalog::{
    Catalog, CatalogError, CompiledSchema, RuleError, SchemaError, TypeDef,
};
use marquee_core::profile::{builtin_catalog, profiles_with_catalogs};
use serde_json::{Value, json};

const CATALOG_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/profile/catalogs");

struct Fixture {
    ty: String,
    data: Value,
    source: String,
}

fn fixtures(profile: &str) -> Vec<Fixture> {
    let path = format!("{CATALOG_DIR}/fixtures/{profile}.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let list: Vec<Value> = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    list.into_iter()
        .map(|f| {
            let obj = f
                .as_object()
                .unwrap_or_else(|| panic!("{path}: fixture is not an object: {f}"));
            for key in obj.keys() {
                assert!(
                    matches!(key.as_str(), "type" | "data" | "source" | "note"),
                    "{path}: field {key}"
                );
            }
            Fixture {
                ty: obj["type"].as_str().expect("fixture type").to_owned(),
                data: obj["data"].clone(),
                source: obj["source"].as_str().expect("fixture source").to_owned(),
            }
        })
        .collect()
}

fn catalog(profile: &str) -> &'static Catalog {
    builtin_catalog(profile).unwrap_or_else(|| panic!("no built-in catalog for {profile}"))
}

fn compiled(t: &TypeDef) -> CompiledSchema {
    t.compile().unwrap_or_else(|e| panic!("{}: {e}", t.name))
}

fn compiled_type(profile: &str, ty: &str) -> CompiledSchema {
    compiled(
        catalog(profile)
            .get(ty)
            .unwrap_or_else(|| panic!("{profile} has no {ty}")),
    )
}

fn fixture_data(profile: &str, ty: &str) -> Value {
    fixtures(profile)
        .into_iter()
        .find(|f| f.ty == ty)
        .expect("fixture")
        .data
}

#[test]
fn catalog_files_are_the_listed_profiles() {
    let on_disk = |dir: &str| -> BTreeSet<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| {
                let name = e.unwrap().file_name().into_string().unwrap();
                name.strip_suffix(".json").map(str::to_owned)
            })
            .collect()
    };
    let listed: BTreeSet<String> = profiles_with_catalogs().iter().map(|p| p.to_string()).collect();
    assert_eq!(
        on_disk(CATALOG_DIR),
        listed,
        "catalogs/*.json vs profiles_with_catalogs()"
    );
    assert_eq!(
        on_disk(&format!("{CATALOG_DIR}/fixtures")),
        listed,
        "fixtures/*.json vs profiles_with_catalogs()"
    );
    assert!(builtin_catalog("nope").is_none());
}

#[test]
fn every_catalog_parses_and_every_schema_compiles() {
    for profile in profiles_with_catalogs() {
        let c = catalog(profile);
        assert_eq!(c.profile, *profile);
        assert!(!c.types.is_empty(), "{profile} has no types");
        for t in &c.types {
            assert!(
                !t.description.is_empty(),
                "{profile} {} has no description",
                t.name
            );
            assert_eq!(
                t.schema["$schema"], "https://json-schema.org/draft/2020-12/schema",
                "{}",
                t.name
            );
            compiled(t);
            t.check_rules().unwrap();
        }
        // The embedded copy and the file on disk are the same document.
        let text = std::fs::read_to_string(format!("{CATALOG_DIR}/{profile}.json")).unwrap();
        assert_eq!(&Catalog::parse(&text).unwrap(), c);
    }
}

fn names(profile: &str) -> Vec<&'static str> {
    catalog(profile).types.iter().map(|t| t.name.as_str()).collect()
}

#[test]
fn type_counts_and_names_per_catalog() {
    assert_eq!(
        names("revolution"),
        [
            "fan_checkin",
            "drop_published",
            "drop_claimed",
            "autograph_requested",
            "shoutout_requested",
            "signal_posted",
            "venue_opened",
            "attendance_milestone"
        ]
    );
    assert_eq!(
        names("eventory"),
        ["inventory.snapshot", "inventory.notification"]
    );
    assert_eq!(
        names("eventium"),
        [
            "order.completed",
            "ticket.refunded",
            "checkin.scanned",
            "promoter.registered",
            "event.created",
            "event.updated",
            "event.deleted"
        ]
    );
    // 004 names 3 + 3 + 4 + 4 webhooks.
    assert_eq!(
        names("attendee"),
        [
            "events.created",
            "events.updated",
            "events.deleted",
            "ticket-types.created",
            "ticket-types.updated",
            "ticket-types.deleted",
            "event.attendees.created",
            "event.attendees.deleted",
            "event.attendees.checked-in",
            "event.attendees.checked-out",
            "event.tickets.created",
            "event.tickets.deleted",
            "event.tickets.checked-in",
            "event.tickets.checked-out"
        ]
    );
    // Every "event type" heading of 003.
    assert_eq!(
        names("revento"),
        [
            "event.published",
            "event.unpublished",
            "event.visibility_changed",
            "event.access_mode_changed",
            "application.submitted",
            "application.approved",
            "application.rejected",
            "application.revision_requested",
            "participant.registered",
            "participant.profile_updated",
            "participant.removed",
            "activity.created",
            "activity.updated",
            "activity.deleted",
            "activity.capacity_state_changed",
            "thread.created",
            "thread.updated",
            "thread.deleted",
            "location.created",
            "location.updated",
            "location.deleted",
            "registration_wave.started",
            "registration_wave.finished",
            "data.deletion_required",
            "user.revoked_access",
            "integration.suspended",
            "integration.unpublished"
        ]
    );
    let counts: Vec<(&str, usize)> = profiles_with_catalogs()
        .iter()
        .map(|p| (*p, catalog(p).types.len()))
        .collect();
    assert_eq!(
        counts,
        [
            ("revolution", 8),
            ("eventory", 2),
            ("eventium", 4 + 3),
            ("revento", 27),
            ("attendee", 14)
        ]
    );
}

#[test]
fn every_fixture_validates_and_every_type_has_one() {
    for profile in profiles_with_catalogs() {
        let c = catalog(profile);
        let fixtures = fixtures(profile);
        for f in &fixtures {
            let t = c
                .get(&f.ty)
                .unwrap_or_else(|| panic!("{profile}: fixture for unknown type {}", f.ty));
            if let Err(v) = compiled(t).validate(&f.data) {
                panic!(
                    "{profile} fixture {:?} ({}): {} [{}]",
                    f.source, f.ty, v.message, v.param
                );
            }
        }
        for t in &c.types {
            assert!(
                fixtures.iter().any(|f| f.ty == t.name),
                "{profile}: type {} has no fixture",
                t.name
            );
        }
    }
}

#[test]
fn every_rule_pointer_resolves_in_the_fixtures() {
    for profile in profiles_with_catalogs() {
        let c = catalog(profile);
        for f in fixtures(profile) {
            let t = c.get(&f.ty).unwrap();
            let mut pointers: Vec<&str> = t.dedup.iter().flatten().map(String::as_str).collect();
            pointers.extend(t.coalesce.as_ref().map(|c| c.key.as_str()));
            if let Some(p) = &t.project {
                pointers.push(&p.id);
                pointers.extend(p.version.as_deref());
            }
            for p in pointers {
                let v = f.data.pointer(p);
                assert!(
                    v.is_some_and(|v| !v.is_null()),
                    "{profile} {} ({}): {p} is not in the data",
                    f.ty,
                    f.source
                );
            }
        }
    }
}

/// The JSON types a property schema accepts (through a local `$ref`, `const`, `enum`, `anyOf`).
fn accepted_types(root: &Value, prop: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    if let Some(r) = prop.get("$ref").and_then(Value::as_str) {
        let target = root.pointer(&r[1..]).unwrap_or_else(|| panic!("unresolved {r}"));
        out.extend(accepted_types(root, target));
    }
    match prop.get("type") {
        Some(Value::String(t)) => {
            out.insert(t.clone());
        }
        Some(Value::Array(ts)) => out.extend(ts.iter().map(|t| t.as_str().unwrap().to_owned())),
        _ => {}
    }
    if let Some(c) = prop.get("const") {
        out.insert(json_type(c).to_owned());
    }
    for v in prop.get("enum").and_then(Value::as_array).into_iter().flatten() {
        out.insert(json_type(v).to_owned());
    }
    for branch in prop.get("anyOf").and_then(Value::as_array).into_iter().flatten() {
        out.extend(accepted_types(root, branch));
    }
    out
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn accepts(types: &BTreeSet<String>, candidate: &Value) -> bool {
    let t = json_type(candidate);
    types.contains(t) || (t == "integer" && types.contains("number"))
}

#[test]
fn removing_or_mistyping_a_required_field_is_reported_on_that_field() {
    let candidates = [
        json!(true),
        json!(7.5),
        json!(12),
        json!("x"),
        json!([]),
        json!({}),
        Value::Null,
    ];
    let mut mutations = 0;
    for profile in profiles_with_catalogs() {
        let c = catalog(profile);
        for f in fixtures(profile) {
            let t = c.get(&f.ty).unwrap();
            let schema = compiled(t);
            let required = t.schema["required"]
                .as_array()
                .unwrap_or_else(|| panic!("{}: no required", t.name));
            for prop in required {
                let prop = prop.as_str().unwrap();
                let param = format!("data.{prop}");
                let what = format!("{profile} {} ({}) {prop}", f.ty, f.source);

                let mut removed = f.data.clone();
                assert!(
                    removed.as_object_mut().unwrap().remove(prop).is_some(),
                    "{what}: not in fixture"
                );
                let v = schema.validate(&removed).expect_err(&what);
                assert_eq!(v.param, param, "{what}");
                assert_eq!(v.message, format!("{param} is required by {}", f.ty), "{what}");
                mutations += 1;

                let types = accepted_types(&t.schema, &t.schema["properties"][prop]);
                let mut tried = 0;
                for candidate in candidates.iter().filter(|c| !accepts(&types, c)) {
                    let mut wrong = f.data.clone();
                    wrong[prop] = candidate.clone();
                    let v = schema
                        .validate(&wrong)
                        .expect_err(&format!("{what} = {candidate}"));
                    assert_eq!(v.param, param, "{what} = {candidate}: {}", v.message);
                    assert!(
                        v.message.starts_with(&format!("{param} must be ")),
                        "{what}: {}",
                        v.message
                    );
                    tried += 1;
                }
                assert!(tried > 0, "{what}: the schema accepts any JSON type");
                mutations += tried;
            }
        }
    }
    assert!(mutations > 1000, "{mutations}");
}

#[test]
fn violations_name_the_field_and_say_what_to_do() {
    let check = |profile: &str, ty: &str, edit: &dyn Fn(&mut Value), param: &str, message: &str| {
        // `inventory.snapshot#SeatMapSections`: the fixture of that sections_type.
        let (ty, sections_type) = ty.split_once('#').map_or((ty, None), |(t, s)| (t, Some(s)));
        let mut data = fixtures(profile)
            .into_iter()
            .find(|f| f.ty == ty && sections_type.is_none_or(|s| f.data["sections_type"] == s))
            .expect("fixture")
            .data;
        edit(&mut data);
        let v = compiled_type(profile, ty).validate(&data).unwrap_err();
        assert_eq!(
            (v.param.as_str(), v.message.as_str()),
            (param, message),
            "{profile} {ty}"
        );
        // Deterministic: the same input gives the same answer.
        assert_eq!(compiled_type(profile, ty).validate(&data).unwrap_err(), v);
    };
    check(
        "revolution",
        "fan_checkin",
        &|d| {
            d.as_object_mut().unwrap().remove("fan_id");
        },
        "data.fan_id",
        "data.fan_id is required by fan_checkin",
    );
    check(
        "revolution",
        "attendance_milestone",
        &|d| d["count"] = json!("1100"),
        "data.count",
        "data.count must be an integer, got string",
    );
    check(
        "revolution",
        "attendance_milestone",
        &|d| d["count"] = json!(11.5),
        "data.count",
        "data.count must be an integer, got number",
    );
    check(
        "revolution",
        "fan_checkin",
        &|d| d["event_id"] = json!(false),
        "data.event_id",
        "data.event_id must be an integer or a string, got boolean",
    );
    check(
        "revolution",
        "fan_checkin",
        &|d| *d = json!([1]),
        "data",
        "data must be an object, got array",
    );
    check(
        "eventium",
        "checkin.scanned",
        &|d| d["direction"] = json!("sideways"),
        "data.direction",
        r#"data.direction must be one of "in", "out", got "sideways""#,
    );
    check(
        "eventory",
        "inventory.snapshot#SeatMapSections",
        &|d| d["sections"]["sec-101"]["stock"] = json!("5"),
        "data.sections.sec-101.stock",
        "data.sections.sec-101.stock must be a number, got string",
    );
    check(
        "eventory",
        "inventory.snapshot#SeatMapSections",
        &|d| {
            d["sections"]["sec-101"]["offer-abc"]
                .as_object_mut()
                .unwrap()
                .remove("price_label");
        },
        "data.sections.sec-101.offer-abc.price_label",
        "data.sections.sec-101.offer-abc.price_label is required by inventory.snapshot",
    );
    // A numeric section id is a key, not an index.
    check(
        "eventory",
        "inventory.snapshot#SeatMapSections",
        &|d| {
            let sec = d["sections"].as_object_mut().unwrap().remove("sec-101").unwrap();
            d["sections"]["101"] = sec;
            d["sections"]["101"]["offer-abc"]["inventory_type"] = json!("scalped");
        },
        "data.sections.101.offer-abc.inventory_type",
        r#"data.sections.101.offer-abc.inventory_type must be one of "primary", "resale", got "scalped""#,
    );
    // OfferSections sections are checked as offers, not as seat-map sections.
    check(
        "eventory",
        "inventory.notification#OfferSections",
        &|d| d["sections"]["floor-ga"]["available"] = json!("yes"),
        "data.sections.floor-ga.available",
        "data.sections.floor-ga.available must be a boolean, got string",
    );
    check(
        "eventory",
        "inventory.notification",
        &|d| d["changes"]["stock_increase"][1] = json!(101),
        "data.changes.stock_increase[1]",
        "data.changes.stock_increase[1] must be a string, got integer",
    );
    check(
        "eventory",
        "inventory.notification",
        &|d| d["sections_type"] = json!("Flat"),
        "data.sections_type",
        r#"data.sections_type must be one of "OfferSections", "SeatMapSections", got "Flat""#,
    );
    check(
        "revento",
        "user.revoked_access",
        &|d| d["granted_scopes"][0] = json!({"scope": "profile.read"}),
        "data.granted_scopes[0]",
        "data.granted_scopes[0] must be a string, got object",
    );
    check(
        "revento",
        "application.approved",
        &|d| d["review_message"] = json!(5),
        "data.review_message",
        "data.review_message must be a string or null, got integer",
    );
    check(
        "revento",
        "application.approved",
        &|d| d["status_history"][1]["status"] = json!("done"),
        "data.status_history[1].status",
        r#"data.status_history[1].status must be one of "pending", "approved", "rejected", "revision_requested", got "done""#,
    );
    // anyOf [Thread, null]: a wrong kind is reported with both accepted kinds ...
    check(
        "revento",
        "activity.created",
        &|d| d["thread"] = json!("thr_main"),
        "data.thread",
        "data.thread must be an object or null, got string",
    );
    // ... and a thread of the wrong shape by its own field.
    check(
        "revento",
        "activity.created",
        &|d| d["thread"]["sort_order"] = json!("0"),
        "data.thread.sort_order",
        "data.thread.sort_order must be an integer, got string",
    );
    check(
        "revento",
        "participant.profile_updated",
        &|d| d["actor"] = json!("admin"),
        "data.actor",
        r#"data.actor must be one of "self", "organizer", got "admin""#,
    );
    check(
        "attendee",
        "event.tickets.created",
        &|d| d["event"]["type"] = json!("users"),
        "data.event.type",
        r#"data.event.type must be "events", got "users""#,
    );
    check(
        "attendee",
        "event.attendees.checked-in",
        &|d| {
            d["user"].as_object_mut().unwrap().remove("id");
        },
        "data.user.id",
        "data.user.id is required by event.attendees.checked-in",
    );
}

#[test]
fn unknown_fields_are_allowed() {
    for profile in profiles_with_catalogs() {
        let c = catalog(profile);
        for f in fixtures(profile) {
            let mut data = f.data.clone();
            data["x_marquee_extra"] = json!({"anything": [1, "two"]});
            compiled(c.get(&f.ty).unwrap()).validate(&data).unwrap();
        }
    }
}

#[test]
fn only_local_refs_and_2020_12_schemas_compile() {
    let err = |schema: Value| CompiledSchema::compile(&schema).unwrap_err();

    let e = err(json!({"$ref": "https://example.com/fan.json"}));
    assert!(
        matches!(&e, SchemaError::NonLocalRef { keyword: "$ref", at, reference }
        if at == "#/$ref" && reference == "https://example.com/fan.json"),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "$ref at #/$ref is \"https://example.com/fan.json\"; only local references (starting with #) are \
         accepted, put the referenced schema under $defs"
    );
    let e = err(json!({"type": "object", "properties": {"fan": {"$ref": "fan.json#/$defs/Fan"}}}));
    assert!(
        matches!(&e, SchemaError::NonLocalRef { at, .. } if at == "#/properties/fan/$ref"),
        "{e:?}"
    );
    let e = err(
        json!({"allOf": [{"$ref": "#/$defs/A"}, {"$dynamicRef": "file:///etc/passwd"}], "$defs": {"A": {}}}),
    );
    assert!(
        matches!(&e, SchemaError::NonLocalRef { keyword: "$dynamicRef", at, .. } if at == "#/allOf/1/$dynamicRef")
    );
    let e = err(json!({"$defs": {"A": {"items": {"$ref": "urn:example:a"}}}}));
    assert!(
        matches!(&e, SchemaError::NonLocalRef { at, .. } if at == "#/$defs/A/items/$ref"),
        "{e:?}"
    );

    // A property called "$ref" or "enum" is a name, not a keyword.
    let ok = CompiledSchema::compile(&json!({
        "properties": {"$ref": {"type": "string"}, "enum": {"$ref": "#/$defs/E"}},
        "$defs": {"E": {"enum": ["a", "b"]}},
        "examples": [{"$ref": "https://example.com/is-data-here"}]
    }))
    .unwrap();
    assert!(ok.is_valid(&json!({"$ref": "x", "enum": "a"})));
    assert_eq!(ok.validate(&json!({"enum": "c"})).unwrap_err().param, "data.enum");

    let e = err(json!({"$schema": "http://json-schema.org/draft-07/schema#", "type": "object"}));
    assert!(
        matches!(&e, SchemaError::Dialect { at, .. } if at == "#/$schema"),
        "{e:?}"
    );
    assert!(e.to_string().contains("only JSON Schema 2020-12"), "{e}");
    CompiledSchema::compile(&json!({"$schema": "https://json-schema.org/draft/2020-12/schema#"})).unwrap();

    let e = err(json!({"type": "object", "properties": {"n": {"type": "strin"}}}));
    assert!(
        matches!(&e, SchemaError::Invalid { at, .. } if at == "#/properties/n/type"),
        "{e:?}"
    );
    assert!(
        e.to_string()
            .starts_with("schema is not valid JSON Schema 2020-12: at #/properties/n/type: "),
        "{e}"
    );
    let e = err(json!({"required": "fan_id"}));
    assert!(
        matches!(&e, SchemaError::Invalid { at, .. } if at == "#/required"),
        "{e:?}"
    );
    let e = err(json!({"properties": {"a": {"$ref": "#/$defs/Missing"}}, "$defs": {"B": {}}}));
    assert_eq!(
        e.to_string(),
        "schema is not valid JSON Schema 2020-12: at #/properties/a/$ref: $ref \"#/$defs/Missing\" points to \
         nothing in this schema"
    );
    let e = err(json!("not a schema"));
    assert!(matches!(&e, SchemaError::Invalid { .. }), "{e:?}");
}

#[test]
fn unnamed_schemas_and_root_failures() {
    let s = CompiledSchema::compile(&json!({"type": "object", "required": ["a"]})).unwrap();
    let v = s.validate(&json!({})).unwrap_err();
    assert_eq!(
        (v.param.as_str(), v.message.as_str()),
        ("data.a", "data.a is required")
    );
    let v = s.validate(&json!("a")).unwrap_err();
    assert_eq!(
        (v.param.as_str(), v.message.as_str()),
        ("data", "data must be an object, got string")
    );
    let s = s.named("x.y");
    assert_eq!(
        s.validate(&json!({})).unwrap_err().message,
        "data.a is required by x.y"
    );
    let odd = CompiledSchema::compile(&json!({"properties": {"a.b": {"minimum": 3}}})).unwrap();
    let v = odd.validate(&json!({"a.b": 1})).unwrap_err();
    assert_eq!(
        (v.param.as_str(), v.message.as_str()),
        (r#"data["a.b"]"#, r#"data["a.b"] must be at least 3, got 1"#)
    );
}

#[test]
fn rules_are_parsed_and_checked() {
    let revento = catalog("revento");
    for t in &revento.types {
        assert!(t.dedup.is_some(), "{} has no dedup key", t.name);
        assert!(t.project.is_none());
    }
    let cap = revento.get("activity.capacity_state_changed").unwrap();
    assert_eq!(
        cap.dedup.as_deref(),
        Some(&["/activity_id".to_owned(), "/snapshot_at".to_owned()][..])
    );
    let co = cap.coalesce.as_ref().unwrap();
    assert_eq!((co.key.as_str(), co.window_ms), ("/activity_id", 10_000));
    assert_eq!(revento.types.iter().filter(|t| t.coalesce.is_some()).count(), 1);
    let d = |ty: &str| revento.get(ty).unwrap().dedup.clone().unwrap();
    assert_eq!(d("event.unpublished"), ["/id", "/unpublished_at"]);
    assert_eq!(
        d("integration.unpublished"),
        [
            "/integration_id",
            "/affected_event_id",
            "/affected_organization_id",
            "/unpublished_at"
        ]
    );
    assert_eq!(
        d("data.deletion_required"),
        ["/event_id", "/organization_id", "/deadline"]
    );

    let eventium = catalog("eventium");
    let p = eventium.get("event.updated").unwrap().project.as_ref().unwrap();
    assert_eq!(
        (p.kind.as_str(), p.id.as_str(), p.version.as_deref(), p.delete),
        ("events", "/id", Some("/updated_at"), false)
    );
    let p = eventium.get("event.deleted").unwrap().project.as_ref().unwrap();
    assert_eq!(
        (p.kind.as_str(), p.id.as_str(), p.version.as_deref(), p.delete),
        ("events", "/id", None, true)
    );
    assert!(eventium.get("order.completed").unwrap().project.is_none());
    assert!(
        catalog("revolution")
            .types
            .iter()
            .all(|t| t.dedup.is_none() && t.coalesce.is_none() && t.project.is_none())
    );

    let with = |extra: Value| {
        let mut t = json!({"type": "a.b", "schema": {}});
        t.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        serde_json::from_value::<TypeDef>(t).unwrap().check_rules()
    };
    assert_eq!(with(json!({"dedup": ["/id", "/a~1b/0", "/~0"]})), Ok(()));
    assert_eq!(
        with(json!({"dedup": ["/id", "id"]})).unwrap_err().to_string(),
        "dedup[1] is \"id\", not a JSON pointer into data: it must start with /"
    );
    assert!(matches!(
        with(json!({"dedup": ["/a~2"]})),
        Err(RuleError::BadPointer { .. })
    ));
    assert!(matches!(
        with(json!({"dedup": ["/a~"]})),
        Err(RuleError::BadPointer { .. })
    ));
    assert!(matches!(
        with(json!({"dedup": [""]})),
        Err(RuleError::BadPointer { .. })
    ));
    assert_eq!(with(json!({"dedup": []})), Err(RuleError::EmptyDedup));
    assert_eq!(
        with(json!({"coalesce": {"key": "/k", "window_ms": 0}})),
        Err(RuleError::ZeroWindow)
    );
    assert!(
        matches!(with(json!({"coalesce": {"key": "k", "window_ms": 5}})), Err(RuleError::BadPointer { field, .. }) if field == "coalesce.key")
    );
    assert!(matches!(
        with(json!({"project": {"kind": "Events", "id": "/id"}})),
        Err(RuleError::BadProjectKind(_))
    ));
    assert!(
        matches!(with(json!({"project": {"kind": "events", "id": "/id", "version": "v"}})), Err(RuleError::BadPointer { field, .. }) if field == "project.version")
    );
    assert_eq!(
        with(json!({"project": {"kind": "events", "id": "/id", "delete": true}})),
        Ok(())
    );
}

#[test]
fn catalog_parse_refuses_bad_documents() {
    let parse = |v: Value| Catalog::parse(&v.to_string());
    let ok = parse(json!({"profile": "p", "types": [{"type": "a.b", "schema": {}}]})).unwrap();
    assert_eq!(ok.get("a.b").unwrap().description, "");
    assert!(ok.get("a.c").is_none());
    assert!(matches!(
        parse(json!({"profile": "", "types": []})),
        Err(CatalogError::EmptyProfile)
    ));
    assert!(matches!(
        parse(json!({"profile": "p", "types": [{"type": "A b", "schema": {}}]})),
        Err(CatalogError::BadTypeName { .. })
    ));
    assert!(matches!(
        parse(json!({"profile": "p", "types": [{"type": "a", "schema": {}}, {"type": "a", "schema": true}]})),
        Err(CatalogError::DuplicateType { .. })
    ));
    let e = parse(json!({"profile": "p", "types": [{"type": "a", "schema": {}, "dedupe": ["/id"]}]}))
        .unwrap_err();
    assert!(
        matches!(e, CatalogError::Json(_)) && e.to_string().contains("dedupe"),
        "{e}"
    );
    let e =
        parse(json!({"profile": "p", "types": [{"type": "a", "schema": {}, "dedup": ["id"]}]})).unwrap_err();
    assert_eq!(
        e.to_string(),
        "catalog p: type a: dedup[0] is \"id\", not a JSON pointer into data: it must start with /"
    );
    assert!(Catalog::parse("{").is_err());
}

fn seat_map_snapshot(sections: usize) -> Value {
    let mut map = serde_json::Map::new();
    for i in 0..sections {
        map.insert(
            format!("sec-{i}"),
            json!({
                "stock": 5,
                "offer-std": {
                    "offer_name": "Standard", "price": 95.00, "price_without_fees": 79.00,
                    "price_label": "$95.00", "section": format!("{i}"), "inventory_type": "primary",
                    "is_active": true, "stock": 5, "stock_not_available": 2, "atc": "https://example.com/atc",
                    "longest_adjacent_seats": 3, "general_admission": false
                }
            }),
        );
    }
    json!({"website": "ticketmaster", "region": "US", "event_id": "abc123", "sections_type": "SeatMapSections",
           "sections": map, "stock": 5 * sections})
}

#[test]
fn a_200_section_seat_map_validates() {
    let s = compiled_type("eventory", "inventory.snapshot");
    let mut data = seat_map_snapshot(200);
    s.validate(&data).unwrap();
    data["sections"]["sec-150"]["offer-std"]["longest_adjacent_seats"] = json!("3");
    assert_eq!(
        s.validate(&data).unwrap_err().param,
        "data.sections.sec-150.offer-std.longest_adjacent_seats"
    );
}

/// `cargo test -p marquee-core --release --test catalogs -- --ignored --nocapture validate_cost`
#[test]
#[ignore = "timing; run in release with --nocapture"]
fn validate_cost() {
    fn time(label: &str, iters: u32, mut f: impl FnMut()) -> f64 {
        for _ in 0..iters / 10 {
            f();
        }
        let start = Instant::now();
        for _ in 0..iters {
            f();
        }
        let us = start.elapsed().as_secs_f64() * 1e6 / f64::from(iters);
        println!("{label:<46} {us:>9.3} µs");
        us
    }
    let cases = [
        (
            "fan_checkin",
            compiled_type("revolution", "fan_checkin"),
            fixture_data("revolution", "fan_checkin"),
            200_000,
        ),
        (
            "activity.created",
            compiled_type("revento", "activity.created"),
            fixture_data("revento", "activity.created"),
            50_000,
        ),
        (
            "inventory.snapshot, 200-section SeatMap",
            compiled_type("eventory", "inventory.snapshot"),
            seat_map_snapshot(200),
            2_000,
        ),
    ];
    for (label, schema, data, iters) in cases {
        let text = data.to_string();
        println!("{label}: {} bytes of JSON", text.len());
        time("  serde_json::from_str::<Value>", iters, || {
            black_box(serde_json::from_str::<Value>(black_box(&text)).unwrap());
        });
        time("  validate (valid)", iters, || {
            black_box(schema.validate(black_box(&data))).unwrap();
        });
        let mut bad = data.clone();
        bad.as_object_mut()
            .unwrap()
            .remove("event_id")
            .or_else(|| bad.as_object_mut().unwrap().remove("id"));
        time("  validate (invalid, builds the Violation)", iters, || {
            black_box(schema.validate(black_box(&bad))).unwrap_err();
        });
    }
    let t = catalog("eventory").get("inventory.snapshot").unwrap();
    time("compile inventory.snapshot", 200, || {
        black_box(t.compile().unwrap());
    });
}
