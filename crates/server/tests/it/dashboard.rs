//! `/dashboard`: the embedded assets are served with the right content types
//! and the strict security headers, and the attempt-request view the
//! dashboard shows is the request the receiver got (SQLite and PostgreSQL).
//! The pages themselves are tested in a real browser (`tests/browser/`).

use std::time::{Duration, Instant};

use marquee_server::ServeConfig;
use marquee_server::config::DatabaseConfig;
use serde_json::{Value, json};

use crate::cluster::database_url;
use crate::helpers::*;
use crate::webhooks::{Receiver, Reply, create_endpoint, fast};

#[tokio::test]
async fn dashboard_assets_are_served_with_a_strict_policy() {
    let s = TestServer::start().await;
    for (path, ctype) in [
        ("/dashboard", "text/html; charset=utf-8"),
        ("/dashboard/", "text/html; charset=utf-8"),
        ("/dashboard/app.js", "text/javascript; charset=utf-8"),
        ("/dashboard/app.css", "text/css; charset=utf-8"),
        ("/dashboard/icon.svg", "image/svg+xml"),
    ] {
        let r = s.http.get(s.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let h = r.headers();
        assert_eq!(h["content-type"], ctype, "{path}");
        let csp = h["content-security-policy"].to_str().unwrap();
        for part in [
            "default-src 'self'",
            "script-src 'self'",
            "frame-ancestors 'none'",
            "object-src 'none'",
        ] {
            assert!(csp.contains(part), "{path}: {csp}");
        }
        assert!(
            !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
            "{csp}"
        );
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
        assert!(!r.text().await.unwrap().is_empty());
    }
    // The page loads only its own script: no inline code, nothing from elsewhere.
    let html = s
        .http
        .get(s.url("/dashboard"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let scripts: Vec<&str> = html.split("<script").skip(1).collect();
    assert_eq!(scripts.len(), 1, "{html}");
    assert!(
        scripts[0].starts_with(" src=\"/dashboard/app.js\""),
        "{}",
        scripts[0]
    );
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no external assets"
    );
    for handler in ["onclick=", "onload=", "onerror=", "onsubmit=", "style="] {
        assert!(!html.contains(handler), "inline {handler} in the page");
    }
    // The script never writes data as HTML.
    let js = s
        .http
        .get(s.url("/dashboard/app.js"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !js.contains(".innerHTML") && !js.contains("insertAdjacentHTML") && !js.contains("document.write")
    );
    // Unknown dashboard paths are the API's 404 envelope.
    let r = s.http.get(s.url("/dashboard/nope.js")).send().await.unwrap();
    assert_error(r, 404, "not_found").await;
}

/// Reads the attempt log until `pred` finds an attempt.
async fn wait_attempt(s: &TestServer, key: &str, path: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let v = s.get_json(key, path).await;
        if let Some(a) = v["data"].as_array().and_then(|d| d.iter().find(|a| pred(a))) {
            return a.clone();
        }
        assert!(Instant::now() < deadline, "no such attempt on {path}: {v}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn attempt_request_is_what_the_receiver_got(tweak: impl FnOnce(&mut ServeConfig)) {
    let s = TestServer::start_with(|c| {
        fast(c);
        tweak(c);
    })
    .await;
    let rx = Receiver::start(|_| Reply::status(500)).await;
    let (_, key) = s.tenant().await;
    let ep = create_endpoint(&s, &key, json!({"url": rx.url(), "channels": ["venue:dash"]})).await;
    let m = s
        .publish(
            &key,
            json!({"type": "dash.order", "channels": ["venue:dash"], "data": {"note": "<script>x</script>", "n": 1}}),
        )
        .await;
    let mid = m["id"].as_str().unwrap();
    let hits = rx.wait_for(1, 10).await;
    let a = wait_attempt(&s, &key, &format!("/v1/messages/{mid}/attempts"), |a| {
        a["status_code"] == 500
    })
    .await;
    let r = s
        .get_json(
            &key,
            &format!(
                "/v1/messages/{mid}/attempts/{}/request",
                a["id"].as_str().unwrap()
            ),
        )
        .await;
    assert_eq!(r["object"], "attempt_request", "{r}");
    let keys: Vec<&str> = r.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "object",
            "attempt_id",
            "endpoint_id",
            "format",
            "method",
            "url",
            "headers",
            "body",
            "redacted"
        ],
        "the order README's Objects table documents"
    );
    assert_eq!(r["endpoint_id"], ep["id"]);
    assert_eq!(r["method"], "POST");
    assert_eq!(r["url"], rx.url().as_str());
    assert_eq!(r["format"], "standard");
    assert_eq!(r["redacted"], json!(["webhook-signature"]));
    assert_eq!(r["headers"]["webhook-signature"], "[redacted]");
    // Everything else is byte for byte what the first attempt sent.
    let first = &hits[0];
    assert_eq!(r["headers"]["webhook-id"], first.header("webhook-id"));
    assert_eq!(
        r["headers"]["webhook-timestamp"],
        first.header("webhook-timestamp")
    );
    assert_eq!(r["body"].as_str().unwrap().as_bytes(), &first.body[..]);
    // The secret appears nowhere in it.
    let secret = ep["secret"].as_str().unwrap();
    assert!(!r.to_string().contains(secret) && !r.to_string().contains(&secret[6..]));
    // Another organization's key cannot read it; unknown ids are 404.
    let (_, other) = s.tenant().await;
    let path = format!(
        "/v1/messages/{mid}/attempts/{}/request",
        a["id"].as_str().unwrap()
    );
    assert_error(s.get(&other, &path).send().await.unwrap(), 404, "not_found").await;
    let path = format!("/v1/messages/{mid}/attempts/att_nope/request");
    assert_error(s.get(&key, &path).send().await.unwrap(), 404, "not_found").await;
    // A test ping is not in the log: its request is not kept.
    let ping: Value = s
        .post(
            &key,
            &format!("/v1/endpoints/{}/test", ep["id"].as_str().unwrap()),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let path = format!(
        "/v1/messages/{}/attempts/{}/request",
        ping["message_id"].as_str().unwrap(),
        ping["id"].as_str().unwrap()
    );
    let e = assert_error(s.get(&key, &path).send().await.unwrap(), 404, "not_found").await;
    assert!(e.to_string().contains("test ping"), "{e}");
    s.stop().await;
}

#[tokio::test]
async fn attempt_request_is_what_the_receiver_got_sqlite() {
    attempt_request_is_what_the_receiver_got(|_| {}).await;
}

#[tokio::test]
async fn attempt_request_is_what_the_receiver_got_postgres() {
    let Some(url) = database_url() else { return };
    let schema = format!("mq_it_dash_{}", free_port());
    attempt_request_is_what_the_receiver_got(|c| {
        c.database = Some(DatabaseConfig {
            url: url.clone(),
            schema: Some(schema.clone()),
        });
        c.server_secret = Some("5a".repeat(32));
    })
    .await;
    if let Ok((client, conn)) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await {
        tokio::spawn(conn);
        let _ = client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .await;
    }
}
