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
    ("GET", "/v1/messages/{id}/attempts/{attempt_id}/request"),
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
    ("GET", "/v1/entities/{kind}"),
    ("GET", "/v1/entities/{kind}/{id}"),
    ("POST", "/v1/erasures"),
    ("GET", "/v1/erasures"),
    ("GET", "/v1/erasures/{id}"),
    ("GET", "/v1/attendance"),
    ("GET", "/v1/attendance/settings"),
    ("PUT", "/v1/attendance/settings"),
    ("GET", "/v1/attendance/{event_id}"),
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
    // Revolution
    ("POST", "/api/v1/developers/webhooks"),
    ("GET", "/api/v1/developers/webhooks"),
    ("GET", "/api/v1/developers/webhooks/{id}"),
    ("DELETE", "/api/v1/developers/webhooks/{id}"),
    ("GET", "/api/v1/signal/events/{event_id}/checkins"),
    ("GET", "/api/v1/signal/artists/{artist_id}/drops"),
    ("GET", "/api/v1/signal/venues/{venue_id}/live"),
    // Eventium
    ("GET", "/v1/events"),
    // Eventory
    ("GET", "/eventory/ping"),
    ("GET", "/eventory/watchlist"),
    ("POST", "/eventory/watchlist"),
    ("GET", "/eventory/watchlist/{id}"),
    ("PATCH", "/eventory/watchlist/{id}"),
    ("DELETE", "/eventory/watchlist/{id}"),
    ("GET", "/eventory/notifications/subscribe"),
    ("GET", "/eventory/notifications/subscribe/filtered"),
];

/// The only routes registered outside `utoipa_axum::routes!` (so not in the
/// document), by path: pages and assets, not JSON API operations. Each is
/// checked to be served and to answer something other than JSON.
const PLAIN_ROUTES: &[(&str, &str)] = &[
    ("/dashboard", "the dashboard's page"),
    ("/dashboard/", "the dashboard's page"),
    ("/dashboard/app.js", "the dashboard's script"),
    ("/dashboard/app.css", "the dashboard's styles"),
    ("/dashboard/icon.svg", "the dashboard's icon"),
    ("/dashboard/api", "the API reference page (Swagger UI)"),
    ("/dashboard/api/init.js", "the API reference's script"),
    ("/dashboard/api/page.css", "the API reference's styles"),
    ("/dashboard/api/swagger-ui-bundle.js", "Swagger UI (vendored)"),
    ("/dashboard/api/swagger-ui.css", "Swagger UI (vendored)"),
    ("/metrics", "Prometheus text format"),
];

/// The key forms a request can present (`security` scheme names).
const KEY_SCHEMES: &[&str] = &["api_key", "bearer", "apikey_header", "api_key_query"];

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
        let concrete = concrete(path);
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
        assert!(PLAIN_ROUTES.iter().any(|(q, _)| q == p), "{p} in PLAIN_ROUTES");
    }
    // The routes outside the document are served, and none answers JSON.
    for (p, why) in PLAIN_ROUTES {
        let r = s.http.get(s.url(p)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{p} ({why})");
        let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(
            !ct.contains("json"),
            "{p} ({why}) answers {ct}: document it instead"
        );
        assert!(documented.iter().all(|(_, d)| d != p), "{p} is also documented");
    }
    s.stop().await;
}

/// A documented path with every `{param}` filled with an unknown id.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|seg| {
            if seg.starts_with('{') {
                if seg == "{type}" { "x.unknown" } else { "x_unknown" }
            } else {
                seg
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Every operation authenticates exactly as its `security` says: without a
/// credential a secured one answers 401 and an open one does not; each key
/// form it lists is accepted and each form it does not list is refused.
#[tokio::test]
async fn every_operation_authenticates_as_its_security_says() {
    let s = TestServer::start().await;
    let doc = document(&s).await;
    let (_, key) = s.tenant().await;
    let send = |method: &str, url: String, form: Option<&str>| {
        let mut req = s.http.request(method.parse().unwrap(), url);
        req = match form {
            None => req,
            Some("api_key") => req.header("x-api-key", &key),
            Some("bearer") => req.bearer_auth(&key),
            Some("apikey_header") => req.header("apikey", &key),
            Some("api_key_query") => req.query(&[("apiKey", &key)]),
            Some("admin_token") => req.bearer_auth(ADMIN_TOKEN),
            Some(f) => panic!("unknown form {f}"),
        };
        // Status only: a stream's body never ends.
        async move { req.send().await.unwrap().status().as_u16() }
    };
    for (method, path, op) in operations(&doc) {
        let at = format!("{method} {path}");
        let url = s.url(&concrete(&path));
        let listed: Vec<String> = op["security"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| r.as_object().unwrap().keys().cloned())
            .collect();
        let bare = send(&method, url.clone(), None).await;
        if listed.is_empty() {
            assert_ne!(bare, 401, "{at}: open, yet refused without a credential");
            continue;
        }
        assert_eq!(bare, 401, "{at}: secured, yet served without a credential");
        for scheme in listed.iter() {
            assert!(
                KEY_SCHEMES.contains(&scheme.as_str()) || scheme == "admin_token",
                "{at}: unknown scheme {scheme}"
            );
            let got = send(&method, url.clone(), Some(scheme)).await;
            assert_ne!(got, 401, "{at}: refuses its listed scheme {scheme}");
        }
        for scheme in KEY_SCHEMES.iter().chain(&["admin_token"]) {
            if !listed.iter().any(|l| l == scheme) {
                let got = send(&method, url.clone(), Some(scheme)).await;
                assert_eq!(got, 401, "{at}: accepts {scheme}, which it does not list");
            }
        }
    }
    s.stop().await;
}

/// A route registered with plain axum (`.route(…)`) would be served but
/// missing from the document; only the paths in `PLAIN_ROUTES` may be, and
/// nothing is nested (a nested router's routes would escape this check).
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
    let mut plain = BTreeSet::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        // The code without `//` comments, so a route's path can be read
        // even when rustfmt puts it on the next line.
        let code: String = text
            .lines()
            .map(|l| format!("{}\n", l.split("//").next().unwrap_or("")))
            .collect();
        for pat in [".route_service(", ".nest(", ".nest_service("] {
            for (i, _) in code.match_indices(pat) {
                let line = code[..i].lines().count();
                offenders.push(format!("{}:{line}: {pat}", f.display()));
            }
        }
        for (i, _) in code.match_indices(".route(") {
            let line = code[..i].lines().count();
            let rest = &code[i + ".route(".len()..];
            let path = rest
                .trim_start()
                .strip_prefix('"')
                .and_then(|r| r.split_once('"'))
                .map(|(p, _)| p.to_owned());
            match path {
                Some(p) if PLAIN_ROUTES.iter().any(|(q, _)| *q == p) => {
                    plain.insert(p);
                }
                Some(p) => offenders.push(format!("{}:{line}: .route(\"{p}\", …)", f.display())),
                None => offenders.push(format!("{}:{line}: .route(<not a literal path>)", f.display())),
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "routes registered outside utoipa_axum::routes! (so missing from /openapi.json): \
         annotate the handler with #[utoipa::path] and register it with .routes(routes!(…)), \
         or list the path in PLAIN_ROUTES if it serves a page, not JSON:\n{}",
        offenders.join("\n")
    );
    let unused: Vec<_> = PLAIN_ROUTES.iter().filter(|(p, _)| !plain.contains(*p)).collect();
    assert!(unused.is_empty(), "PLAIN_ROUTES no source registers: {unused:?}");
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

    // Projected entities, and Eventium's events (the same projection).
    let ev = json!({
        "id": "ev1", "name": "Show", "slug": "show", "date": "2026-06-01T20:00:00Z",
        "location": "Austin", "status": "published", "capacity": 100, "organizer_id": "o1",
        "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z"
    });
    c.call(
        "POST",
        "/v1/messages",
        "/v1/messages",
        Some(json!({"type": "event.created", "channels": ["event:ev1"], "data": ev})),
        201,
    )
    .await;
    let page = c
        .call(
            "GET",
            "/v1/entities/{kind}",
            "/v1/entities/events?limit=1",
            None,
            200,
        )
        .await;
    assert_eq!(page["data"][0]["data"], ev);
    c.call(
        "GET",
        "/v1/entities/{kind}",
        "/v1/entities/events?cursor=%25",
        None,
        400,
    )
    .await;
    c.call(
        "GET",
        "/v1/entities/{kind}/{id}",
        "/v1/entities/events/ev1",
        None,
        200,
    )
    .await;
    c.call(
        "GET",
        "/v1/entities/{kind}/{id}",
        "/v1/entities/events/nope",
        None,
        404,
    )
    .await;
    let events = c
        .call("GET", "/v1/events", "/v1/events?status=published", None, 200)
        .await;
    assert_eq!(events["data"][0], ev);
    c.call("GET", "/v1/events", "/v1/events?status=gone", None, 400)
        .await;
    c.call("GET", "/v1/events", "/v1/events?cursor=yesterday", None, 400)
        .await;

    // Erasures.
    let era = c
        .call(
            "POST",
            "/v1/erasures",
            "/v1/erasures",
            Some(json!({"channel": "event:ev1"})),
            202,
        )
        .await;
    let era_id = era["id"].as_str().unwrap().to_owned();
    c.call(
        "POST",
        "/v1/erasures",
        "/v1/erasures",
        Some(json!({"within": "venue:a"})),
        400,
    )
    .await;
    c.call(
        "GET",
        "/v1/erasures/{id}",
        &format!("/v1/erasures/{era_id}"),
        None,
        200,
    )
    .await;
    c.call("GET", "/v1/erasures/{id}", "/v1/erasures/era_nope", None, 404)
        .await;
    c.call("GET", "/v1/erasures", "/v1/erasures?limit=1", None, 200)
        .await;
    c.call("GET", "/v1/erasures", "/v1/erasures?before=nope", None, 400)
        .await;

    // Attendance, and Revolution's polling of the same read models.
    let t0 = marquee_core::timestamp::Timestamp::now().as_millis();
    for body in [
        json!({"type": "venue_opened", "channels": ["venue:stubbs"],
               "data": {"venue_id": "stubbs", "event_id": "evt_oa", "capacity": 10, "ts": t0}}),
        json!({"type": "fan_checkin", "channels": ["venue:stubbs"],
               "data": {"fan_id": "f1", "event_id": "evt_oa", "gate": "MAIN", "ts": t0 + 1}}),
        json!({"type": "drop_published", "channels": ["artist:a1"],
               "data": {"artist_id": "a1", "drop_id": "d1", "title": "Poster", "price_usd": 35, "quantity": 2}}),
    ] {
        c.call("POST", "/v1/messages", "/v1/messages", Some(body), 201)
            .await;
    }
    let att = c.call("GET", "/v1/attendance", "/v1/attendance", None, 200).await;
    assert_eq!(att["data"][0]["event_id"], "evt_oa");
    c.call("GET", "/v1/attendance", "/v1/attendance?limit=101", None, 400)
        .await;
    c.call(
        "GET",
        "/v1/attendance/{event_id}",
        "/v1/attendance/evt_oa",
        None,
        200,
    )
    .await;
    c.call(
        "GET",
        "/v1/attendance/{event_id}",
        "/v1/attendance/evt_nope",
        None,
        404,
    )
    .await;
    c.call(
        "GET",
        "/v1/attendance/settings",
        "/v1/attendance/settings",
        None,
        200,
    )
    .await;
    c.call(
        "PUT",
        "/v1/attendance/settings",
        "/v1/attendance/settings",
        Some(json!({"thresholds": [5, 1], "capacity_percents": [50]})),
        200,
    )
    .await;
    c.call(
        "PUT",
        "/v1/attendance/settings",
        "/v1/attendance/settings",
        Some(json!({"thresholds": [0], "capacity_percents": []})),
        400,
    )
    .await;
    let checkins = c
        .call(
            "GET",
            "/api/v1/signal/events/{event_id}/checkins",
            "/api/v1/signal/events/evt_oa/checkins?limit=1",
            None,
            200,
        )
        .await;
    assert_eq!(checkins["data"][0]["fan_id"], "f1");
    c.call(
        "GET",
        "/api/v1/signal/events/{event_id}/checkins",
        "/api/v1/signal/events/evt_oa/checkins?since=nope",
        None,
        400,
    )
    .await;
    let drops = c
        .call(
            "GET",
            "/api/v1/signal/artists/{artist_id}/drops",
            "/api/v1/signal/artists/a1/drops?status=all",
            None,
            200,
        )
        .await;
    assert_eq!(drops["data"][0]["remaining"], 2);
    c.call(
        "GET",
        "/api/v1/signal/artists/{artist_id}/drops",
        "/api/v1/signal/artists/a1/drops?status=gone",
        None,
        400,
    )
    .await;
    let live = c
        .call(
            "GET",
            "/api/v1/signal/venues/{venue_id}/live",
            "/api/v1/signal/venues/stubbs/live",
            None,
            200,
        )
        .await;
    assert_eq!(live["status"], "open");
    c.call(
        "GET",
        "/api/v1/signal/venues/{venue_id}/live",
        "/api/v1/signal/venues/never/live",
        None,
        200,
    )
    .await;

    // Eventory: ping, the watchlist.
    c.call("GET", "/eventory/ping", "/eventory/ping", None, 200).await;
    let wl = c
        .call(
            "POST",
            "/eventory/watchlist",
            "/eventory/watchlist",
            Some(
                json!({"event_id": "evt-1", "min_price_filter": 10, "keywords": ["vip"],
                        "date_filter": {"from": "2026-06-01T00:00:00Z"}}),
            ),
            201,
        )
        .await;
    let wl_id = wl["id"].as_str().unwrap().to_owned();
    let wl_at = format!("/eventory/watchlist/{wl_id}");
    c.call(
        "POST",
        "/eventory/watchlist",
        "/eventory/watchlist",
        Some(json!({"change_type": "stock_increase"})),
        400,
    )
    .await;
    c.call("GET", "/eventory/watchlist", "/eventory/watchlist", None, 200)
        .await;
    c.call("GET", "/eventory/watchlist/{id}", &wl_at, None, 200).await;
    c.call(
        "PATCH",
        "/eventory/watchlist/{id}",
        &wl_at,
        Some(json!({"keywords": null, "seat_quantity": 2})),
        200,
    )
    .await;
    c.call(
        "PATCH",
        "/eventory/watchlist/{id}",
        &wl_at,
        Some(json!({"seat_quantity": 0})),
        400,
    )
    .await;
    c.call("DELETE", "/eventory/watchlist/{id}", &wl_at, None, 200)
        .await;
    c.call("GET", "/eventory/watchlist/{id}", &wl_at, None, 404).await;

    // NUL (U+0000) in ids, cursors and stored text: refused alike on both
    // stores (PostgreSQL text cannot hold it; these were 500s there).
    for (method, path, concrete, body, status) in [
        ("GET", "/v1/entities/{kind}", "/v1/entities/%00", None, 200),
        (
            "GET",
            "/v1/entities/{kind}",
            "/v1/entities/events?cursor=AA",
            None,
            400,
        ),
        (
            "GET",
            "/v1/entities/{kind}/{id}",
            "/v1/entities/events/%00",
            None,
            404,
        ),
        (
            "GET",
            "/v1/attendance/{event_id}",
            "/v1/attendance/%00",
            None,
            404,
        ),
        ("GET", "/v1/attendance", "/v1/attendance?cursor=%00", None, 400),
        (
            "GET",
            "/api/v1/signal/events/{event_id}/checkins",
            "/api/v1/signal/events/%00/checkins",
            None,
            400,
        ),
        (
            "GET",
            "/api/v1/signal/artists/{artist_id}/drops",
            "/api/v1/signal/artists/%00/drops",
            None,
            400,
        ),
        (
            "GET",
            "/api/v1/signal/venues/{venue_id}/live",
            "/api/v1/signal/venues/%00/live",
            None,
            400,
        ),
        (
            "GET",
            "/eventory/watchlist/{id}",
            "/eventory/watchlist/wl_%00",
            None,
            404,
        ),
        (
            "POST",
            "/v1/endpoints",
            "/v1/endpoints",
            Some(json!({"url": "https://example.com/nul", "description": "a\u{0}b"})),
            400,
        ),
        (
            "PUT",
            "/v1/event-types/{type}",
            "/v1/event-types/nul",
            Some(json!({"description": "\u{0}", "schema": {"type": "object"}})),
            400,
        ),
        (
            "POST",
            "/v1/messages",
            "/v1/messages",
            Some(json!({"type": "event.created", "channels": ["event:ev2"],
                        "data": {"id": "a\u{0}", "name": "n", "slug": "s", "date": "d", "location": "l",
                                 "status": "draft", "capacity": 1, "organizer_id": "o",
                                 "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z"}})),
            400,
        ),
        (
            "POST",
            "/v1/messages",
            "/v1/messages",
            Some(json!({"type": "fan_checkin", "channels": ["venue:stubbs"],
                        "data": {"fan_id": "f\u{0}", "event_id": "evt_oa", "gate": "MAIN", "ts": t0}})),
            400,
        ),
    ] {
        c.call(method, path, concrete, body, status).await;
    }

    // The attempt request of a message that has none.
    c.call(
        "GET",
        "/v1/messages/{id}/attempts/{attempt_id}/request",
        &format!("/v1/messages/{msg}/attempts/atmpt_nope/request"),
        None,
        404,
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

/// The rebuilt request of a real attempt, and the Eventory WebSocket's
/// refusals and upgrade, against the document.
#[tokio::test]
async fn attempt_requests_and_eventory_upgrades_match_the_document() {
    use crate::webhooks::{Receiver, Reply, create_endpoint, fast};
    let s = TestServer::start_with(fast).await;
    let doc = document(&s).await;
    let (_, key) = s.tenant().await;
    let rx = Receiver::start(|_| Reply::status(500)).await;
    create_endpoint(&s, &key, json!({"url": format!("http://{}/", rx.addr)})).await;
    let m = s
        .publish(
            &key,
            json!({"type": "note", "channels": ["venue:a"], "data": {"n": 1}}),
        )
        .await;
    let mid = m["id"].as_str().unwrap().to_owned();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let aid = loop {
        let v = s.get_json(&key, &format!("/v1/messages/{mid}/attempts")).await;
        if let Some(id) = v["data"][0]["id"].as_str() {
            break id.to_owned();
        }
        assert!(std::time::Instant::now() < deadline, "no attempt: {v}");
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    };
    let c = Client {
        http: &s.http,
        base: s.url(""),
        doc: &doc,
        key: key.clone(),
    };
    let r = c
        .call(
            "GET",
            "/v1/messages/{id}/attempts/{attempt_id}/request",
            &format!("/v1/messages/{mid}/attempts/{aid}/request"),
            None,
            200,
        )
        .await;
    assert_eq!(r["redacted"], json!(["webhook-signature"]));

    // The WebSocket routes: refusals are envelopes of documented statuses.
    for path in [
        "/eventory/notifications/subscribe",
        "/eventory/notifications/subscribe/filtered",
    ] {
        let doc = &doc;
        let check = |r: reqwest::Response, status: u16| async move {
            assert_eq!(r.status().as_u16(), status, "{path}");
            let v: Value = r.json().await.unwrap();
            conforms(doc, "GET", path, status, &v);
        };
        // No upgrade: 400, once the `apikey` header authenticated.
        let r = s
            .http
            .get(s.url(path))
            .header("apikey", &key)
            .send()
            .await
            .unwrap();
        check(r, 400).await;
        // The key anywhere but `apikey`: 401.
        let r = s
            .http
            .get(s.url(path))
            .header("x-api-key", &key)
            .send()
            .await
            .unwrap();
        check(r, 401).await;
        let r = s
            .http
            .get(s.url(path))
            .header("apikey", &key)
            .query(&[("apikey", &key)])
            .send()
            .await
            .unwrap();
        check(r, 401).await;
        // The upgrade itself: 101.
        let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
            s.url(path).replace("http://", "ws://"),
        )
        .unwrap();
        req.headers_mut().insert("apikey", key.parse().unwrap());
        let (_, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
        assert_eq!(resp.status().as_u16(), 101, "{path}");
        assert!(doc["paths"][path]["get"]["responses"]["101"].is_object());
    }
    s.stop().await;
}
