//! Bad input answers the documented envelope, stores nothing, and the server
//! keeps serving.

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn bad_publishes_are_refused_and_store_nothing() {
    let s = TestServer::start_with(|c| c.max_body_bytes = 64 * 1024).await;
    let (_, key) = s.tenant().await;
    let deep = format!(
        "{{\"type\":\"t\",\"channels\":[\"a:b\"],\"data\":{}{}}}",
        "{\"a\":".repeat(5000),
        "1".to_owned() + &"}".repeat(5000)
    );
    let big = format!(
        "{{\"type\":\"t\",\"channels\":[\"a:b\"],\"data\":{{\"x\":\"{}\"}}}}",
        "x".repeat(70 * 1024)
    );
    let too_many: Vec<String> = (0..17).map(|i| format!("venue:v{i}")).collect();
    let cases: Vec<(String, u16, &str, Option<&str>)> = vec![
        ("{not json".into(), 400, "invalid_request", None),
        ("".into(), 400, "invalid_request", None),
        ("[]".into(), 400, "invalid_request", None),
        (
            r#"{"type":5,"channels":["a:b"],"data":{}}"#.into(),
            400,
            "invalid_request",
            Some("type"),
        ),
        (
            r#"{"type":"t","channels":"a:b","data":{}}"#.into(),
            400,
            "invalid_request",
            Some("channels"),
        ),
        (
            r#"{"type":"t","channels":["a:b"],"data":{}} trailing"#.into(),
            400,
            "invalid_request",
            None,
        ),
        (
            r#"{"channels":["a:b"],"data":{}}"#.into(),
            400,
            "invalid_request",
            None,
        ),
        (
            r#"{"type":"t","channels":["a:b"],"data":{},"extra":1}"#.into(),
            400,
            "invalid_request",
            None,
        ),
        (
            r#"{"type":"Bad Type","channels":["a:b"],"data":{}}"#.into(),
            400,
            "invalid_request",
            Some("type"),
        ),
        (
            r#"{"type":"t","channels":["nocolon"],"data":{}}"#.into(),
            400,
            "invalid_request",
            Some("channels[0]"),
        ),
        (
            r#"{"type":"t","channels":[],"data":{}}"#.into(),
            400,
            "invalid_request",
            Some("channels"),
        ),
        (
            json!({"type":"t","channels":too_many,"data":{}}).to_string(),
            400,
            "invalid_request",
            Some("channels"),
        ),
        (
            r#"{"type":"t","channels":["a:b"],"data":[1]}"#.into(),
            400,
            "invalid_request",
            Some("data"),
        ),
        (
            r#"{"type":"t","channels":["a:b"],"data":{},"occurred_at":"yesterday"}"#.into(),
            400,
            "invalid_request",
            Some("occurred_at"),
        ),
        (
            r#"{"type":"t","channels":["a:b"],"data":{},"idempotency_key":""}"#.into(),
            400,
            "invalid_request",
            Some("idempotency_key"),
        ),
        (deep, 400, "invalid_request", None),
        (big, 413, "payload_too_large", None),
        // I-JSON (RFC 7493): what JavaScript and Python would read back as
        // something else than was sent.
        (
            r#"{"type":"t","channels":["a:b"],"data":{"n":1e99999}}"#.into(),
            400,
            "invalid_request",
            Some("data.n"),
        ),
        (
            r#"{"type":"t","channels":["a:b"],"data":{"a":[1,{"m":-1e400}]}}"#.into(),
            400,
            "invalid_request",
            Some("data.a[1].m"),
        ),
        (
            r#"{"type":"t","channels":["a:b"],"data":{"tiny":1e-400}}"#.into(),
            400,
            "invalid_request",
            Some("data.tiny"),
        ),
        (
            r#"{"type":"t","channels":["a:b"],"data":{"s":"\ud800"}}"#.into(),
            400,
            "invalid_request",
            Some("data.s"),
        ),
        (
            r#"{"type":"t","channels":["a:b"],"data":{"s":"ok \udc00"}}"#.into(),
            400,
            "invalid_request",
            Some("data.s"),
        ),
    ];
    for (body, status, code, param) in cases {
        let r = s
            .post(&key, "/v1/messages")
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), status, "{body:.120}");
        let v = assert_error(r, status, code).await;
        if let Some(p) = param {
            assert_eq!(v["error"]["param"], p, "{body:.80}");
        }
    }
    assert!(
        s.list_all(&key, "").await.is_empty(),
        "bad input stored something"
    );
    // Still serving.
    s.publish(&key, checkin("venue:v", 1)).await;
    assert_eq!(s.list_all(&key, "").await.len(), 1);
}

#[tokio::test]
async fn bad_queries_are_refused() {
    let s = TestServer::start().await;
    let (_, key) = s.tenant().await;
    for (q, param) in [
        ("limit=0", Some("limit")),
        ("limit=101", Some("limit")),
        ("limit=ten", Some("limit")),
        ("after=garbage", Some("after")),
        ("after=Z000000000000", Some("after")),
        ("since=yesterday", Some("since")),
        ("type=NOPE", Some("type")),
        ("channel=nocolon", Some("channel")),
        ("bogus=1", None),
    ] {
        let r = s.get(&key, &format!("/v1/messages?{q}")).send().await.unwrap();
        let v = assert_error(r, 400, "invalid_request").await;
        if let Some(p) = param {
            assert_eq!(v["error"]["param"], p, "{q}");
        }
    }
    for path in [
        "/v1/messages/not-an-id",
        "/v1/messages/msg_01M89JVQM538DR69SR2HYPCXS4",
        "/v1/nothing-here",
    ] {
        assert_error(s.get(&key, path).send().await.unwrap(), 404, "not_found").await;
    }
    let r = s
        .http
        .delete(s.url("/v1/messages"))
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert!(!r.text().await.unwrap().is_empty(), "never an empty body");
}

#[tokio::test]
async fn ping_needs_no_auth_and_readyz_checks_the_store() {
    let s = TestServer::start().await;
    let r = s.http.get(s.url("/ping")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "private, no-store");
    assert_eq!(s.http.get(s.url("/readyz")).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn oversized_headers_are_refused_in_the_envelope() {
    let s = TestServer::start().await;
    let (_, key) = s.tenant().await;
    // 40 KB of headers: above the 32 KiB cap, inside hyper's buffer.
    let big = "x".repeat(40_000);
    let r = s
        .post(&key, "/v1/messages")
        .header("x-padding", &big)
        .json(&checkin("venue:v", 1))
        .send()
        .await
        .unwrap();
    assert_error(r, 431, "headers_too_large").await;
    // Several headers adding up count too.
    let mut req = s.get(&key, "/v1/messages");
    for i in 0..5 {
        req = req.header(format!("x-pad-{i}"), "y".repeat(8_000));
    }
    assert_error(req.send().await.unwrap(), 431, "headers_too_large").await;
    // 200 KB: hyper refuses before any handler; never a 200.
    let r = s
        .get(&key, "/v1/messages")
        .header("x-padding", "z".repeat(200_000))
        .send()
        .await;
    if let Ok(r) = r {
        assert_eq!(r.status().as_u16(), 431);
    }
    // Ordinary requests are unaffected, and nothing was stored.
    assert!(s.list_all(&key, "").await.is_empty());
    s.publish(&key, checkin("venue:v", 1)).await;
}
