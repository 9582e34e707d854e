//! `GET /openapi.json`: an OpenAPI 3.1 document that lists exactly the
//! server's routes, whose references all resolve, and whose response
//! schemas the live server's answers match on both backends. (Schemathesis
//! fuzzes the same document in CI: `crates/server/tests/schemathesis/run.sh`.)

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::cluster::database_url;
use crate::helpers::*;

/// Every API operation the server serves. A new route is added here and
/// registered with `utoipa_axum::routes!` (README, "OpenAPI").
const ROUTES: &[(&str, &str)] = &[
    ("GET", "/ping"),
    ("GET", "/readyz"),
    ("GET", "/openapi.json"),
    ("POST", "/v1/messages"),
    ("GET", "/v1/messages"),
    ("POST", "/v1/messages/batch"),
    ("GET", "/v1/messages/{id}"),
    ("GET", "/v1/messages/{id}/attempts"),
    ("POST", "/v1/messages/{id}/resend"),
    ("POST", "/v1/endpoints"),
    ("GET", "/v1/endpoints"),
    ("GET", "/v1/endpoints/{id}"),
    ("PATCH", "/v1/endpoints/{id}"),
    ("DELETE", "/v1/endpoints/{id}"),
    ("POST", "/v1/endpoints/{id}/secret/rotate"),
    ("GET", "/v1/endpoints/{id}/attempts"),
    ("POST", "/v1/endpoints/{id}/recover"),
    ("POST", "/v1/endpoints/{id}/replay"),
    ("POST", "/v1/endpoints/{id}/test"),
    ("GET", "/v1/endpoints/{id}/stats"),
    ("GET", "/v1/event-types"),
    ("GET", "/v1/event-types/{type}"),
    ("PUT", "/v1/event-types/{type}"),
    ("DELETE", "/v1/event-types/{type}"),
    ("GET", "/v1/stream"),
    ("GET", "/v1/stream/sse"),
    ("POST", "/admin/v1/orgs"),
    ("GET", "/admin/v1/orgs"),
    ("GET", "/admin/v1/orgs/{id}"),
    ("PATCH", "/admin/v1/orgs/{id}"),
    ("POST", "/admin/v1/orgs/{id}/keys"),
    ("GET", "/admin/v1/orgs/{id}/keys"),
    ("PATCH", "/admin/v1/keys/{id}"),
    ("POST", "/admin/v1/keys/{id}/revoke"),
    ("POST", "/api/v1/developers/webhooks"),
    ("GET", "/api/v1/developers/webhooks"),
    ("GET", "/api/v1/developers/webhooks/{id}"),
    ("DELETE", "/api/v1/developers/webhooks/{id}"),
];

/// Source files allowed to register routes outside `utoipa_axum::routes!`
/// (pages, not API operations), and why.
const PLAIN_ROUTE_FILES: &[(&str, &str)] = &[
    ("api_reference.rs", "the /dashboard/api page and its assets"),
    ("metrics.rs", "GET /metrics: Prometheus text, not JSON"),
    // `dashboard/mod.rs` (HTML pages and assets) and, until they are
    // annotated, `api/mod.rs`'s and `platforms/mod.rs`'s plain routers of the
    // routes below (attempt requests, erasures).
    (
        "mod.rs",
        "the dashboard's HTML, and routes not yet documented (below)",
    ),
    // Not yet in the document (issue 14 follow-up): annotate with
    // #[utoipa::path], register with routes!, add to ROUTES, remove here.
    ("entities.rs", "not yet documented: /v1/entities"),
    ("eventium.rs", "not yet documented: Eventium GET /v1/events"),
    (
        "eventory.rs",
        "not yet documented: Eventory's /eventory/* surface",
    ),
    ("attendance.rs", "not yet documented: /v1/attendance"),
    (
        "revolution.rs",
        "not yet documented: Revolution's /api/v1/signal/* polling",
    ),
];

const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "patch", "head", "options", "trace",
];

async fn document(s: &TestServer) -> Value {
    let r = s.http.get(s.url("/openapi.json")).send().await.unwrap();
    assert_eq!(r.status(), 200, "no auth needed");
    assert_eq!(r.headers()["content-type"], "application/json");
    r.json().await.unwrap()
}

fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().unwrap() {
            if METHODS.contains(&method.as_str()) {
                out.push((method.to_uppercase(), path.clone(), op));
            }
        }
    }
    out
}

/// Every `$ref` in `v` (recursively).
fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                match (k.as_str(), x) {
                    ("$ref", Value::String(r)) => out.push(r),
                    _ => refs(x, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
        _ => {}
    }
}

fn pointer(doc: &Value, r: &str) -> Option<Value> {
    doc.pointer(r.strip_prefix('#')?).cloned()
}

#[tokio::test]
async fn openapi_json_is_an_openapi_3_1_document_whose_references_resolve() {
    let s = TestServer::start().await;
    let doc = document(&s).await;
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["title"], "marquee");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    for (k, v) in doc.as_object().unwrap() {
        assert!(
            ["openapi", "info", "paths", "components", "tags"].contains(&k.as_str()),
            "unexpected top-level field {k}: {v}"
        );
    }

    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    for name in [
        "api_key",
        "bearer",
        "apikey_header",
        "api_key_query",
        "admin_token",
    ] {
        assert!(schemes.contains_key(name), "security scheme {name}");
    }
    assert_eq!(schemes["api_key"]["in"], "header");
    assert_eq!(schemes["api_key"]["name"], "x-api-key");
    assert_eq!(schemes["api_key_query"]["in"], "query");
    assert_eq!(schemes["api_key_query"]["name"], "apiKey");

    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    for r in all {
        assert!(pointer(&doc, r).is_some(), "dangling $ref {r}");
    }

    let mut ids = BTreeSet::new();
    for (method, path, op) in operations(&doc) {
        let at = format!("{method} {path}");
        let id = op["operationId"]
            .as_str()
            .unwrap_or_else(|| panic!("{at}: operationId"));
        assert!(ids.insert(id.to_owned()), "{at}: duplicate operationId {id}");
        assert!(
            op["tags"].as_array().is_some_and(|t| !t.is_empty()),
            "{at}: a tag"
        );
        assert!(
            op["summary"].is_string(),
            "{at}: a summary (the handler's doc comment)"
        );
        assert!(
            op["security"].is_array(),
            "{at}: security stated (`security(())` when none)"
        );
        let responses = op["responses"].as_object().unwrap();
        assert!(
            responses.keys().any(|k| k.starts_with('2') || k == "101"),
            "{at}: a success response"
        );
        // Every operation documents its error envelope: 500 at least, and
        // 401 wherever it needs a credential.
        assert!(responses.contains_key("500"), "{at}: 500");
        let needs_auth = op["security"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r.as_object().is_some_and(|m| !m.is_empty()));
        if needs_auth {
            assert!(responses.contains_key("401"), "{at}: 401");
        }
        for (status, r) in responses {
            if status.starts_with('4') || status.starts_with('5') {
                let r = r["$ref"]
                    .as_str()
                    .and_then(|p| pointer(&doc, p))
                    .unwrap_or_else(|| r.clone());
                assert_eq!(
                    r["content"]["application/json"]["schema"]["$ref"], "#/components/schemas/ErrorEnvelope",
                    "{at} {status}: the error envelope"
                );
            }
        }
        // Every `{param}` of the path is declared.
        for seg in path.split('/') {
            if let Some(name) = seg.strip_prefix('{').and_then(|x| x.strip_suffix('}')) {
                let declared = op["parameters"].as_array().is_some_and(|ps| {
                    ps.iter()
                        .any(|p| p["in"] == "path" && p["name"] == name && p["required"] == true)
                });
                assert!(declared, "{at}: path parameter {name}");
            }
        }
    }
    s.stop().await;
}

#[tokio::test]
async fn the_document_lists_every_route_and_the_server_serves_every_documented_one() {
    let s = TestServer::start().await;
    let doc = document(&s).await;
    let documented: BTreeSet<(String, String)> =
        operations(&doc).into_iter().map(|(m, p, _)| (m, p)).collect();
    let expected: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    let missing: Vec<_> = expected.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&expected).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "routes not documented: {missing:?}; documented but not in ROUTES: {extra:?}"
    );
    // Every documented operation is routed: none answers the router's own
    // "No such route." 404 or a 405.
    for (method, path) in &documented {
        let concrete = path.replace("{id}", "x_unknown").replace("{type}", "x.unknown");
        let r = s
            .http
            .request(method.parse().unwrap(), s.url(&concrete))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body = r.text().await.unwrap_or_default();
        assert_ne!(status, 405, "{method} {path}: not routed");
        assert!(
            !(status == 404 && body.contains("No such route.")),
            "{method} {path}: not routed"
        );
    }
    // The reference page's own routes are served too.
    for p in marquee_server::api_reference::PATHS {
        let r = s.http.get(s.url(p)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{p}");
    }
    s.stop().await;
}

/// A route registered with plain axum (`.route(…)`) would be served but
/// missing from the document; only the files listed in
/// `PLAIN_ROUTE_FILES` may do that.
#[test]
fn routes_are_registered_only_through_utoipa_axum() {
    fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    walk(&src, &mut files);
    let mut offenders = Vec::new();
    for f in files {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        if PLAIN_ROUTE_FILES.iter().any(|(n, _)| *n == name) {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        for (i, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            if [".route(", ".route_service(", ".nest(", ".nest_service("]
                .iter()
                .any(|pat| code.contains(pat))
            {
                offenders.push(format!("{}:{}: {}", f.display(), i + 1, line.trim()));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "routes registered outside utoipa_axum::routes! (so missing from /openapi.json): \
         annotate the handler with #[utoipa::path] and register it with .routes(routes!(…)), \
         or list the file in PLAIN_ROUTE_FILES if it serves pages:\n{}",
        offenders.join("\n")
    );
}

/// Validates `body` against the schema the document gives `method path`
/// for `status`, and answers the body.
fn conforms(doc: &Value, method: &str, path: &str, status: u16, body: &Value) {
    let op = &doc["paths"][path][method.to_lowercase()];
    assert!(op.is_object(), "{method} {path} is documented");
    let mut resp = op["responses"][status.to_string()].clone();
    assert!(
        resp.is_object(),
        "{method} {path}: status {status} is documented ({body})"
    );
    if let Some(r) = resp["$ref"].as_str() {
        resp = pointer(doc, r).unwrap();
    }
    let schema = &resp["content"]["application/json"]["schema"];
    assert!(schema.is_object(), "{method} {path} {status}: a JSON schema");
    // The document is the root, so `#/components/schemas/…` resolves.
    let mut root = doc.clone();
    root.as_object_mut()
        .unwrap()
        .insert("$ref".into(), json!("#/$mq_schema"));
    root.as_object_mut()
        .unwrap()
        .insert("$mq_schema".into(), schema.clone());
    let v = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .build(&root)
        .expect("the response schema compiles");
    let errors: Vec<String> = v
        .iter_errors(body)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{method} {path} {status}: {errors:?}\n{body}");
}

struct Client<'a> {
    http: &'a reqwest::Client,
    base: String,
    doc: &'a Value,
    key: String,
}

impl Client<'_> {
    /// Sends a request (API key, or the admin token for `/admin`), checks
    /// its status and its body against the document.
    async fn call(
        &self,
        method: &str,
        path: &str,
        concrete: &str,
        body: Option<Value>,
        status: u16,
    ) -> Value {
        let mut req = self
            .http
            .request(method.parse().unwrap(), format!("{}{concrete}", self.base));
        req = if path.starts_with("/admin") {
            req.bearer_auth(ADMIN_TOKEN)
        } else {
            req.header("x-api-key", &self.key)
        };
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let got = r.status().as_u16();
        assert_eq!(
            r.headers()["content-type"],
            "application/json",
            "{method} {concrete}"
        );
        let v: Value = r.json().await.unwrap();
        assert_eq!(got, status, "{method} {concrete}: {v}");
        conforms(self.doc, method, path, got, &v);
        v
    }
}

/// One pass over every resource kind, each answer (success and error)
/// checked against its documented schema.
async fn answers_match_the_document(s: &TestServer) {
    let doc = document(s).await;
    let org = s
        .admin(reqwest::Method::POST, "/admin/v1/orgs")
        .json(&json!({"name": "openapi", "profiles": ["revolution", "eventium"]}))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    conforms(&doc, "POST", "/admin/v1/orgs", 201, &org);
    let org_id = org["id"].as_str().unwrap().to_owned();
    let mut c = Client {
        http: &s.http,
        base: s.base.clone(),
        doc: &doc,
        key: String::new(),
    };
    let k = c
        .call(
            "POST",
            "/admin/v1/orgs/{id}/keys",
            &format!("/admin/v1/orgs/{org_id}/keys"),
            Some(json!({"tier": "enterprise"})),
            201,
        )
        .await;
    c.key = k["key"].as_str().unwrap().to_owned();
    let key_id = k["id"].as_str().unwrap().to_owned();
    c.call("GET", "/admin/v1/orgs", "/admin/v1/orgs", None, 200).await;
    c.call(
        "GET",
        "/admin/v1/orgs/{id}",
        &format!("/admin/v1/orgs/{org_id}"),
        None,
        200,
    )
    .await;
    c.call(
        "GET",
        "/admin/v1/orgs/{id}/keys",
        &format!("/admin/v1/orgs/{org_id}/keys"),
        None,
        200,
    )
    .await;
    c.call(
        "PATCH",
        "/admin/v1/keys/{id}",
        &format!("/admin/v1/keys/{key_id}"),
        Some(json!({"max_stream_connections": 5})),
        200,
    )
    .await;
    c.call("GET", "/admin/v1/orgs/{id}", "/admin/v1/orgs/org_nope", None, 404)
        .await;

    c.call("GET", "/ping", "/ping", None, 200).await;
    c.call("GET", "/readyz", "/readyz", None, 200).await;
    let m = c
        .call(
            "POST",
            "/v1/messages",
            "/v1/messages",
            Some(json!({"type": "note", "channels": ["venue:a"], "data": {"n": 1}})),
            201,
        )
        .await;
    let msg = m["id"].as_str().unwrap().to_owned();
    c.call(
        "POST",
        "/v1/messages",
        "/v1/messages",
        Some(json!({"type": "", "channels": [], "data": 1})),
        400,
    )
    .await;
    c.call(
        "POST",
        "/v1/messages/batch",
        "/v1/messages/batch",
        Some(json!({"messages": [{"type": "note", "channels": ["venue:a"], "data": {}}]})),
        201,
    )
    .await;
    c.call("GET", "/v1/messages", "/v1/messages?limit=2", None, 200)
        .await;
    c.call("GET", "/v1/messages", "/v1/messages?limit=0", None, 400)
        .await;
    c.call(
        "GET",
        "/v1/messages/{id}",
        &format!("/v1/messages/{msg}"),
        None,
        200,
    )
    .await;
    c.call("GET", "/v1/messages/{id}", "/v1/messages/msg_nope", None, 404)
        .await;

    let ep = c
        .call(
            "POST",
            "/v1/endpoints",
            "/v1/endpoints",
            Some(json!({"url": "https://example.com/hook", "description": "d"})),
            201,
        )
        .await;
    let ep_id = ep["id"].as_str().unwrap().to_owned();
    let at = |p: &str| p.replace("{id}", &ep_id);
    c.call("GET", "/v1/endpoints", "/v1/endpoints", None, 200).await;
    c.call("GET", "/v1/endpoints/{id}", &at("/v1/endpoints/{id}"), None, 200)
        .await;
    c.call(
        "PATCH",
        "/v1/endpoints/{id}",
        &at("/v1/endpoints/{id}"),
        Some(json!({"enabled": false, "format": "eventium"})),
        200,
    )
    .await;
    c.call(
        "POST",
        "/v1/endpoints/{id}/secret/rotate",
        &at("/v1/endpoints/{id}/secret/rotate"),
        None,
        200,
    )
    .await;
    c.call(
        "GET",
        "/v1/endpoints/{id}/attempts",
        &at("/v1/endpoints/{id}/attempts"),
        None,
        200,
    )
    .await;
    c.call(
        "GET",
        "/v1/endpoints/{id}/stats",
        &at("/v1/endpoints/{id}/stats"),
        None,
        200,
    )
    .await;
    c.call(
        "POST",
        "/v1/endpoints/{id}/recover",
        &at("/v1/endpoints/{id}/recover"),
        Some(json!({"since": "2020-01-01T00:00:00Z"})),
        202,
    )
    .await;
    c.call(
        "POST",
        "/v1/endpoints/{id}/replay",
        &at("/v1/endpoints/{id}/replay"),
        Some(json!({"since": "2020-01-01T00:00:00Z"})),
        202,
    )
    .await;
    c.call(
        "POST",
        "/v1/messages/{id}/resend",
        &format!("/v1/messages/{msg}/resend"),
        None,
        202,
    )
    .await;
    c.call(
        "GET",
        "/v1/messages/{id}/attempts",
        &format!("/v1/messages/{msg}/attempts"),
        None,
        200,
    )
    .await;
    c.call(
        "DELETE",
        "/v1/endpoints/{id}",
        &at("/v1/endpoints/{id}"),
        None,
        200,
    )
    .await;
    c.call("GET", "/v1/endpoints/{id}", &at("/v1/endpoints/{id}"), None, 404)
        .await;

    c.call("GET", "/v1/event-types", "/v1/event-types", None, 200)
        .await;
    c.call(
        "GET",
        "/v1/event-types/{type}",
        "/v1/event-types/order.completed",
        None,
        200,
    )
    .await;
    let schema = json!({"type": "object", "properties": {"n": {"type": "integer"}}});
    c.call(
        "PUT",
        "/v1/event-types/{type}",
        "/v1/event-types/note",
        Some(json!({"description": "n", "schema": schema})),
        201,
    )
    .await;
    c.call(
        "PUT",
        "/v1/event-types/{type}",
        "/v1/event-types/note",
        Some(json!({"schema": schema})),
        200,
    )
    .await;
    c.call(
        "PUT",
        "/v1/event-types/{type}",
        "/v1/event-types/order.completed",
        Some(json!({"schema": schema})),
        409,
    )
    .await;
    c.call("GET", "/v1/event-types/{type}", "/v1/event-types/note", None, 200)
        .await;
    c.call(
        "DELETE",
        "/v1/event-types/{type}",
        "/v1/event-types/note",
        None,
        200,
    )
    .await;

    let hook = c
        .call(
            "POST",
            "/api/v1/developers/webhooks",
            "/api/v1/developers/webhooks",
            Some(json!({"url": "https://example.com/rev", "events": ["fan_checkin"], "venueId": "v1"})),
            201,
        )
        .await;
    let hook_id = hook["id"].as_str().unwrap().to_owned();
    c.call(
        "GET",
        "/api/v1/developers/webhooks",
        "/api/v1/developers/webhooks",
        None,
        200,
    )
    .await;
    c.call(
        "GET",
        "/api/v1/developers/webhooks/{id}",
        &format!("/api/v1/developers/webhooks/{hook_id}"),
        None,
        200,
    )
    .await;
    c.call(
        "DELETE",
        "/api/v1/developers/webhooks/{id}",
        &format!("/api/v1/developers/webhooks/{hook_id}"),
        None,
        200,
    )
    .await;

    c.call(
        "POST",
        "/admin/v1/keys/{id}/revoke",
        &format!("/admin/v1/keys/{key_id}/revoke"),
        None,
        200,
    )
    .await;
    c.call("GET", "/v1/messages", "/v1/messages", None, 401).await;
}

#[tokio::test]
async fn answers_match_the_document_on_sqlite() {
    let s = TestServer::start().await;
    answers_match_the_document(&s).await;
    s.stop().await;
}

#[tokio::test]
async fn answers_match_the_document_on_postgres() {
    let Some(url) = database_url() else { return };
    let s = TestServer::start_with(|c| {
        c.database = Some(marquee_server::config::DatabaseConfig {
            url,
            schema: Some(format!("mq_it_openapi_{}", free_port())),
        });
        c.server_secret = Some("5e".repeat(32));
    })
    .await;
    answers_match_the_document(&s).await;
    s.stop().await;
}
