//! `GET /metrics`, read with a real Prometheus text parser
//! (`prometheus-parse`), on both backends: values move as messages are
//! published, streamed and delivered. The recorder is process-wide, so
//! other tests running at once also move them: the checks are "at least".

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use marquee_server::config::DatabaseConfig;
use prometheus_parse::{Scrape, Value as PValue};
use serde_json::json;

use crate::helpers::*;
use crate::webhooks::{Receiver, Reply, create_endpoint, fast};

async fn scrape(s: &TestServer) -> Scrape {
    let r = s.http.get(s.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ct.starts_with("text/plain"), "{ct}");
    let text = r.text().await.unwrap();
    Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("valid Prometheus text format")
}

/// Sum of a metric's samples whose labels include `labels`; for a
/// histogram, its count.
fn value(s: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    s.samples
        .iter()
        .filter(|x| x.metric == name && labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .map(|x| match &x.value {
            PValue::Counter(v) | PValue::Gauge(v) | PValue::Untyped(v) => *v,
            PValue::Histogram(h) => h.last().map_or(0.0, |b| b.count),
            PValue::Summary(_) => 0.0,
        })
        .sum()
}

async fn flow(s: &TestServer, backend: &str) {
    let (_, key) = s.tenant().await;
    let receiver = Receiver::start(|_| Reply::status(200)).await;
    create_endpoint(s, &key, json!({"url": receiver.url()})).await;
    let before = scrape(s).await;
    assert_eq!(value(&before, "marquee_node_role", &[("role", "all")]), 1.0);

    // A live WebSocket subscriber.
    let url = format!("ws://{}/v1/stream", s.addr);
    let mut req = tungstenite::client::IntoClientRequest::into_client_request(url).unwrap();
    req.headers_mut().insert("x-api-key", key.parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    ws.send(tungstenite::Message::Text(
        json!({"action": "subscribe", "channel": "venue:m"})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    // The subscribe acknowledgement.
    let _ = tokio::time::timeout(Duration::from_secs(10), ws.next()).await;

    for n in 0..3 {
        s.publish(&key, checkin("venue:m", n)).await;
    }
    s.publish_batch(&key, vec![checkin("venue:m", 10), checkin("venue:m", 11)])
        .await;
    let bad = s
        .post(&key, "/v1/messages")
        .json(&json!({"type": ""}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    // Frames for all five reach the subscriber.
    for _ in 0..5 {
        tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a live frame")
            .unwrap()
            .unwrap();
    }
    // Five deliveries reach the receiver.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while receiver.hits().len() < 5 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(receiver.hits().len(), 5);

    // Attempt metrics are recorded as each attempt ends: allow a moment.
    let mut after = scrape(s).await;
    for _ in 0..100 {
        let attempts = value(
            &after,
            "marquee_delivery_attempts_total",
            &[("outcome", "succeeded")],
        ) - value(
            &before,
            "marquee_delivery_attempts_total",
            &[("outcome", "succeeded")],
        );
        if attempts >= 5.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        after = scrape(s).await;
    }
    let moved =
        |name: &str, labels: &[(&str, &str)]| value(&after, name, labels) - value(&before, name, labels);
    assert!(
        moved(
            "marquee_publish_requests_total",
            &[("kind", "single"), ("outcome", "created")]
        ) >= 3.0
    );
    assert!(
        moved(
            "marquee_publish_requests_total",
            &[("kind", "batch"), ("outcome", "created")]
        ) >= 1.0
    );
    assert!(
        moved(
            "marquee_publish_requests_total",
            &[("kind", "single"), ("outcome", "invalid")]
        ) >= 1.0
    );
    assert!(moved("marquee_messages_committed_total", &[("backend", backend)]) >= 5.0);
    assert!(
        moved(
            "marquee_commit_groups_total",
            &[("backend", backend), ("outcome", "committed")]
        ) >= 1.0
    );
    assert!(moved("marquee_commit_seconds", &[("backend", backend)]) >= 1.0);
    assert!(moved("marquee_commit_group_size", &[("backend", backend)]) >= 1.0);
    // A gauge: the in-process servers of other tests share the process's
    // recorder and set it too (last writer wins), so only its presence is
    // this test's to check; the counters above are sums and only grow.
    assert!(value(&after, "marquee_log_head_seq", &[]) >= 1.0);
    assert!(moved("marquee_delivery_attempts_total", &[("outcome", "succeeded")]) >= 5.0);
    assert!(moved("marquee_delivery_attempt_seconds", &[]) >= 5.0);
    assert!(moved("marquee_stream_frames_sent_total", &[("protocol", "ws")]) >= 5.0);
    assert!(value(&after, "marquee_stream_connections", &[("protocol", "ws")]) >= 1.0);
    // Histograms carry buckets (not summaries).
    assert!(
        after
            .samples
            .iter()
            .any(|x| x.metric == "marquee_commit_seconds" && matches!(x.value, PValue::Histogram(_)))
    );
    drop(ws);
}

#[tokio::test]
async fn metrics_move_as_messages_flow_sqlite() {
    let s = TestServer::start_with(fast).await;
    flow(&s, "sqlite").await;
    s.stop().await;
}

#[tokio::test]
async fn metrics_move_as_messages_flow_postgres() {
    let Some(url) = crate::cluster::database_url() else {
        return;
    };
    let schema = format!("mq_it_metrics_{}", free_port());
    let s = TestServer::start_with(|c| {
        fast(c);
        c.database = Some(DatabaseConfig {
            url,
            schema: Some(schema),
        });
        c.server_secret = Some("ab".repeat(32));
    })
    .await;
    flow(&s, "postgres").await;
    s.stop().await;
}

#[tokio::test]
async fn a_metrics_token_is_required_when_configured() {
    let s = TestServer::start_with(|c| c.metrics.token = Some("scrape-me".into())).await;
    let r = s.http.get(s.url("/metrics")).send().await.unwrap();
    assert_error(r, 401, "invalid_api_key").await;
    let r = s
        .http
        .get(s.url("/metrics"))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = s
        .http
        .get(s.url("/metrics"))
        .bearer_auth("scrape-me")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // The admin token is not a metrics token.
    let r = s
        .http
        .get(s.url("/metrics"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    s.stop().await;
}
