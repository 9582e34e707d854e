//! What a new user meets in the first minutes, beyond the README walk
//! (`readme.rs`): the logs of the real binary (plain in a pipe, failed
//! attempts with their reason, request lines, state changes, never a key),
//! `--log-format json`, the WAL after a clean stop, the demo across
//! restarts, and the order of fields in every object.

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::readme::Proc;

const README: &str = include_str!("../../../../README.md");

fn serve(dir: &std::path::Path, port: u16, extra: &[&str], log: &str) -> Proc {
    let mut cmd = Command::new(marquee_bin());
    cmd.args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(dir)
        .args(extra)
        .env("MARQUEE_LOG", log)
        .env("MARQUEE_ADMIN_TOKEN", ADMIN_TOKEN)
        .env_remove("NO_COLOR")
        .env_remove("MARQUEE_LOG_FORMAT");
    Proc::spawn(cmd)
}

/// Waits until the process's stderr holds `needle`.
async fn log_shows(p: &Proc, needle: &str, secs: u64) -> String {
    let t0 = Instant::now();
    loop {
        let log = p.stderr();
        if log.contains(needle) {
            return log;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(secs),
            "no {needle:?} in the log:\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn stop(mut p: Proc) -> String {
    p.terminate();
    let t0 = Instant::now();
    loop {
        if let Some(status) = p.child.try_wait().unwrap() {
            assert!(status.success(), "{status:?}\n{}", p.stderr());
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "no clean stop");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The reader thread drains what is left.
    tokio::time::sleep(Duration::from_millis(100)).await;
    p.stderr()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_are_plain_in_a_pipe_name_failures_and_never_show_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let (key_id, key) = provision(dir.path(), "logs", &[]);
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let server = serve(
        dir.path(),
        port,
        &[
            "--allow-endpoint-cidr",
            "127.0.0.1/32",
            "--retry-schedule",
            "0s,100ms",
        ],
        "debug",
    );
    let http = reqwest::Client::new();
    wait_up(&http, &base).await;
    // Nothing listens here: every attempt is refused. The token in the
    // URL's query must never reach the log.
    let closed = free_port();
    let ep: Value = http
        .post(format!("{base}/v1/endpoints"))
        .header("x-api-key", &key)
        .json(&json!({"url": format!("http://127.0.0.1:{closed}/hook?token=s3cret-token")}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ep_id = ep["id"].as_str().unwrap().to_owned();
    let r = http
        .post(format!("{base}/v1/messages"))
        .header("x-api-key", &key)
        .json(&checkin("venue:logs", 1))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    // A stream opened with the key in its query string.
    let sse = http
        .get(format!("{base}/v1/stream/sse?channel=venue:logs&apiKey={key}"))
        .send()
        .await
        .unwrap();
    assert_eq!(sse.status(), 200);
    drop(sse);
    let log = log_shows(&server, "webhook attempt failed", 10).await;
    assert!(
        log.contains(&ep_id) && log.contains("connection refused"),
        "{log}"
    );
    // State changes: an endpoint disabled through the API, a key revoked.
    let r = http
        .patch(format!("{base}/v1/endpoints/{ep_id}"))
        .header("x-api-key", &key)
        .json(&json!({"enabled": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    log_shows(&server, "webhook endpoint disabled through the API", 5).await;
    let r = http
        .request(Method::POST, format!("{base}/admin/v1/keys/{key_id}/revoke"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    log_shows(&server, "API key revoked", 5).await;
    let log = stop(server).await;

    assert!(!log.contains('\u{1b}'), "ANSI escapes in a piped log:\n{log}");
    assert!(
        !log.contains(&key) && !log.contains(&key[8..]),
        "the API key was logged:\n{log}"
    );
    assert!(!log.contains("s3cret-token"), "a URL's query was logged:\n{log}");
    // One line per request: method, route pattern, status, key id.
    let publish = log
        .lines()
        .find(|l| l.contains("request") && l.contains("POST") && l.contains("route=/v1/messages "))
        .unwrap_or_else(|| panic!("no request line for the publish:\n{log}"));
    assert!(
        publish.contains("status=201") && publish.contains(&key_id),
        "{publish}"
    );
    assert!(publish.contains("latency_ms="), "{publish}");
    assert!(
        log.lines()
            .any(|l| l.contains("route=/v1/stream/sse") && l.contains("status=200")),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_and_a_clean_stop_leaves_an_empty_wal() {
    let dir = tempfile::tempdir().unwrap();
    let (_, key) = provision(dir.path(), "logs", &[]);
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let server = serve(
        dir.path(),
        port,
        &["--log-format", "json"],
        "info,marquee::http=debug",
    );
    let http = reqwest::Client::new();
    wait_up(&http, &base).await;
    for b in 0..6 {
        let messages: Vec<Value> = (0..500).map(|n| checkin("venue:wal", b * 500 + n)).collect();
        let r = http
            .post(format!("{base}/v1/messages/batch"))
            .header("x-api-key", &key)
            .json(&json!({"messages": messages}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    let wal = dir.path().join("marquee.db-wal");
    let wal_len = || std::fs::metadata(&wal).map_or(0, |m| m.len());
    assert!(wal_len() > 0, "the WAL is in use while serving");
    let log = stop(server).await;
    assert_eq!(
        wal_len(),
        0,
        "a clean stop checkpoints and truncates the WAL:\n{log}"
    );
    let mut requests = 0;
    for line in log.lines() {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        assert!(v["level"].is_string() && v["fields"].is_object(), "{v}");
        if v["fields"]["message"] == "request" && v["fields"]["route"] == "/v1/messages/batch" {
            assert_eq!(v["fields"]["status"], 201, "{v}");
            requests += 1;
        }
    }
    assert_eq!(requests, 6, "{log}");
    // Everything is still there.
    let s = TestServer::start_in(dir.path(), |_| {}).await;
    let page = s
        .get_json(&key, "/v1/messages?channel=venue:wal&order=desc&limit=1")
        .await;
    assert_eq!(page["data"][0]["data"]["n"], 2999);
    s.stop().await;
}

/// A demo key for the demo organization a server created in `dir`.
async fn demo_key(s: &TestServer) -> String {
    let org = std::fs::read_to_string(s.data_dir.join("demo-org")).unwrap();
    s.create_key(org.trim(), "pro").await.1
}

/// `(type, event_id, data)` of every message the demo published.
async fn demo_log(s: &TestServer, key: &str) -> Vec<(String, String, Value)> {
    s.list_all(key, "&channel=venue:stubbs-austin")
        .await
        .into_iter()
        .map(|m| {
            (
                m["type"].as_str().unwrap().to_owned(),
                m["data"]["event_id"].as_str().unwrap_or_default().to_owned(),
                m["data"].clone(),
            )
        })
        .collect()
}

fn check_ins(log: &[(String, String, Value)], event: &str) -> Vec<u64> {
    log.iter()
        .filter(|(t, e, _)| t == "fan_checkin" && e == event)
        .map(|(_, _, d)| d["attendance"].as_u64().unwrap())
        .collect()
}

fn count(log: &[(String, String, Value)], ty: &str, event: &str) -> usize {
    log.iter().filter(|(t, e, _)| t == ty && e == event).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_demo_resumes_its_show_and_never_repeats_one() {
    let demo = |c: &mut marquee_server::ServeConfig| c.demo = true;
    let s = TestServer::start_with(demo).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let key = demo_key(&s).await;
    let dir = s.data_dir.clone();
    let tmp = s.stop().await;
    let reader = TestServer::start_in(&dir, |_| {}).await;
    let first = demo_log(&reader, &key).await;
    reader.stop().await;
    let before = check_ins(&first, "evt_demo1").len();
    assert!(before > 0, "{first:?}");

    let s = TestServer::start_in(&dir, demo).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    s.stop().await;
    // Read after the demo stopped: a check-in published between a read and the stop would
    // otherwise be missing from `seen` and appear in the last run's log.
    let reader = TestServer::start_in(&dir, |_| {}).await;
    let log = demo_log(&reader, &key).await;
    reader.stop().await;
    assert_eq!(
        count(&log, "venue_opened", "evt_demo1"),
        1,
        "one opening per show: {log:?}"
    );
    let seen = check_ins(&log, "evt_demo1");
    assert!(seen.len() > before, "the show went on after the restart");
    assert_eq!(
        seen,
        (1..=seen.len() as u64).collect::<Vec<_>>(),
        "attendance counts on from where it stopped, no repeats"
    );
    let mut milestones: Vec<u64> = log
        .iter()
        .filter(|(t, _, _)| t == "attendance_milestone")
        .map(|(_, _, d)| d["threshold"].as_u64().unwrap())
        .collect();
    let n = milestones.len();
    milestones.dedup();
    assert_eq!(milestones.len(), n, "a milestone fired twice");
    assert!(log.iter().all(|(_, e, _)| e == "evt_demo1"));

    // A show that closed is over: the next start opens a new event.
    let s = TestServer::start_in(&dir, |_| {}).await;
    s.publish(
        &key,
        json!({"type": "doors_closed", "channels": ["venue:stubbs-austin", "event:evt_demo1"],
               "data": {"event_id": "evt_demo1", "attendance": seen.len()}}),
    )
    .await;
    s.stop().await;
    let s = TestServer::start_in(&dir, demo).await;
    let t0 = Instant::now();
    let log = loop {
        let log = demo_log(&s, &key).await;
        if !check_ins(&log, "evt_demo2").is_empty() {
            break log;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "no new show: {log:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    s.stop().await;
    assert_eq!(count(&log, "venue_opened", "evt_demo1"), 1);
    assert_eq!(count(&log, "venue_opened", "evt_demo2"), 1);
    assert_eq!(check_ins(&log, "evt_demo2")[0], 1);
    assert_eq!(
        check_ins(&log, "evt_demo1").len(),
        seen.len(),
        "the closed show stays closed"
    );
    drop(tmp);
}

/// The field order the README's "Objects" table documents, per object.
fn documented_orders() -> HashMap<String, Vec<String>> {
    let start = README.find("### Objects").expect("an Objects section");
    README[start..]
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').collect();
            let fields: Vec<String> = cells[2]
                .split('(')
                .next()
                .unwrap()
                .split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_owned)
                .collect();
            (cells[1].trim().trim_matches('`').to_owned(), fields)
        })
        .filter(|(_, fields)| !fields.is_empty())
        .collect()
}

/// Asserts `text` (one JSON object) has exactly the documented keys in the
/// documented order, with `extra` allowed at the end.
fn assert_order(text: &str, docs: &HashMap<String, Vec<String>>, extra: &[&str]) {
    let v: Value = serde_json::from_str(text).unwrap();
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    let object = v["object"].as_str().unwrap();
    let mut want: Vec<&str> = docs[object].iter().map(String::as_str).collect();
    want.extend(extra);
    assert_eq!(keys, want, "{object}: {text}");
    for item in v["data"].as_array().into_iter().flatten() {
        assert_order(&item.to_string(), docs, &[]);
    }
}

#[tokio::test]
async fn every_object_starts_with_object_and_id_in_the_documented_order() {
    let docs = documented_orders();
    for (object, fields) in &docs {
        assert_eq!(fields[0], "object", "{object}");
        if fields.contains(&"id".to_owned()) {
            assert_eq!(fields[1], "id", "{object}");
        }
    }
    let s = TestServer::start_with(|c| {
        c.webhooks.allow_private = true;
        c.webhooks.retry_schedule = marquee_core::webhook::RetrySchedule(vec![Duration::ZERO]);
    })
    .await;
    let (org, key) = s.tenant().await;
    let text = |r: reqwest::Response| async move { r.text().await.unwrap() };
    let m = s
        .post(&key, "/v1/messages")
        .json(&checkin("venue:o", 1))
        .send()
        .await
        .unwrap();
    let m = text(m).await;
    assert_order(&m, &docs, &[]);
    let id = serde_json::from_str::<Value>(&m).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_order(
        &text(s.get(&key, "/v1/messages").send().await.unwrap()).await,
        &docs,
        &[],
    );
    let closed = free_port();
    let ep = s
        .post(&key, "/v1/endpoints")
        .json(&json!({"url": format!("http://127.0.0.1:{closed}/x")}))
        .send()
        .await
        .unwrap();
    let ep = text(ep).await;
    assert_order(&ep, &docs, &["secret"]);
    let ep_id = serde_json::from_str::<Value>(&ep).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_order(
        &text(
            s.get(&key, &format!("/v1/endpoints/{ep_id}"))
                .send()
                .await
                .unwrap(),
        )
        .await,
        &docs,
        &[],
    );
    assert_order(
        &text(s.get(&key, "/v1/endpoints").send().await.unwrap()).await,
        &docs,
        &[],
    );
    s.post(&key, "/v1/messages")
        .json(&checkin("venue:o", 2))
        .send()
        .await
        .unwrap();
    let t0 = Instant::now();
    let attempts = loop {
        let a = text(
            s.get(&key, &format!("/v1/endpoints/{ep_id}/attempts"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        let v: Value = serde_json::from_str(&a).unwrap();
        if !v["data"].as_array().unwrap().is_empty() {
            break a;
        }
        assert!(t0.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_order(&attempts, &docs, &[]);
    let a: Value = serde_json::from_str(&attempts).unwrap();
    assert_eq!(a["data"][0]["test"], false);
    assert_eq!(a["data"][0]["error"], "connection refused");
    assert_order(
        &text(
            s.get(&key, &format!("/v1/endpoints/{ep_id}/stats"))
                .send()
                .await
                .unwrap(),
        )
        .await,
        &docs,
        &[],
    );
    let ping = s
        .post(&key, &format!("/v1/endpoints/{ep_id}/test"))
        .send()
        .await
        .unwrap();
    assert_order(&text(ping).await, &docs, &[]);
    let org_json = s
        .admin(Method::GET, &format!("/admin/v1/orgs/{org}"))
        .send()
        .await
        .unwrap();
    assert_order(&text(org_json).await, &docs, &[]);
    let keys = s
        .admin(Method::GET, &format!("/admin/v1/orgs/{org}/keys"))
        .send()
        .await
        .unwrap();
    assert_order(&text(keys).await, &docs, &[]);
    let created = s
        .admin(Method::POST, &format!("/admin/v1/orgs/{org}/keys"))
        .json(&json!({"tier": "pro"}))
        .send()
        .await
        .unwrap();
    assert_order(&text(created).await, &docs, &["key"]);
    assert_order(
        &text(s.get(&key, &format!("/v1/messages/{id}")).send().await.unwrap()).await,
        &docs,
        &[],
    );
    let era = s
        .post(&key, "/v1/erasures")
        .json(&json!({"channel": "user:nobody"}))
        .send()
        .await
        .unwrap();
    assert_order(&text(era).await, &docs, &[]);
    assert_order(
        &text(s.get(&key, "/v1/erasures").send().await.unwrap()).await,
        &docs,
        &[],
    );
    s.stop().await;
}
