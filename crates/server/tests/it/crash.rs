//! `kill -9` during concurrent publishing loses nothing that was acknowledged
//! and duplicates nothing.

use std::collections::{HashMap, HashSet};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_dash_nine_loses_no_acknowledged_message() {
    let dir = tempfile::tempdir().unwrap();
    let (_, key) = provision(dir.path(), "crash", &[]);
    let http = reqwest::Client::new();
    let mut acked: HashMap<u64, String> = HashMap::new();
    let unknown = Arc::new(Mutex::new(Vec::<u64>::new()));
    let mut next = 0u64;
    for round in 0..3u64 {
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let mut child = spawn_serve(dir.path(), port, &[]);
        wait_up(&http, &base).await;
        let acks = Arc::new(Mutex::new(Vec::<(u64, String)>::new()));
        let mut tasks = Vec::new();
        for w in 0..16u64 {
            let (http, base, key, acks) = (http.clone(), base.clone(), key.clone(), acks.clone());
            let unknown = unknown.clone();
            let start = next + w * 100_000;
            tasks.push(tokio::spawn(async move {
                for i in 0.. {
                    let n = start + i;
                    let mut body = checkin("venue:crash", n);
                    body["idempotency_key"] = serde_json::json!(format!("n-{n}"));
                    match http
                        .post(format!("{base}/v1/messages"))
                        .header("x-api-key", &key)
                        .json(&body)
                        .send()
                        .await
                    {
                        Ok(r) if r.status() == 201 => {
                            let v: Value = match r.json().await {
                                Ok(v) => v,
                                Err(_) => return,
                            };
                            acks.lock()
                                .unwrap()
                                .push((n, v["id"].as_str().unwrap().to_owned()));
                        }
                        _ => {
                            // In flight at the kill: unknown outcome.
                            unknown.lock().unwrap().push(n);
                            return;
                        }
                    }
                }
            }));
        }
        // Kill at a pseudo-random moment 150 to 650 ms after the first
        // acknowledgement (a loaded machine may take longer than that to
        // answer the first publish at all).
        let t0 = std::time::Instant::now();
        while acks.lock().unwrap().is_empty() && t0.elapsed() < Duration::from_secs(20) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let jitter = (std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
            % 500) as u64;
        tokio::time::sleep(Duration::from_millis(150 + jitter)).await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        for t in tasks {
            let _ = t.await;
        }
        let got = acks.lock().unwrap().clone();
        assert!(
            !got.is_empty(),
            "round {round}: nothing was acknowledged before the kill"
        );
        acked.extend(got);
        next += 10_000_000;
    }
    // Restart; a client retries every request whose outcome it never saw,
    // with the same idempotency key: each must end up stored exactly once.
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = spawn_serve(dir.path(), port, &[]);
    wait_up(&http, &base).await;
    let retried = unknown.lock().unwrap().clone();
    for n in &retried {
        let mut body = checkin("venue:crash", *n);
        body["idempotency_key"] = serde_json::json!(format!("n-{n}"));
        let r = http
            .post(format!("{base}/v1/messages"))
            .header("x-api-key", &key)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        assert!(status == 200 || status == 201, "retry of {n}: {status}");
        let v: Value = r.json().await.unwrap();
        acked.insert(*n, v["id"].as_str().unwrap().to_owned());
    }
    let mut seen: Vec<(u64, String)> = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut url = format!("{base}/v1/messages?limit=100");
        if let Some(a) = &after {
            url.push_str(&format!("&after={a}"));
        }
        let v: Value = http
            .get(&url)
            .header("x-api-key", &key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for m in v["data"].as_array().unwrap() {
            seen.push((
                m["data"]["n"].as_u64().unwrap(),
                m["id"].as_str().unwrap().to_owned(),
            ));
        }
        if !v["has_more"].as_bool().unwrap() {
            break;
        }
        after = v["next_cursor"].as_str().map(str::to_owned);
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let ns: HashSet<u64> = seen.iter().map(|(n, _)| *n).collect();
    assert_eq!(ns.len(), seen.len(), "a message was stored twice");
    let by_n: HashMap<u64, String> = seen.into_iter().collect();
    for (n, id) in &acked {
        assert_eq!(by_n.get(n), Some(id), "acknowledged message {n} ({id}) was lost");
    }
    eprintln!(
        "crash test: {} acknowledged messages across 3 kills, all present once",
        acked.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_in_flight_requests_and_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let (_, key) = provision(dir.path(), "crash", &[]);
    let http = reqwest::Client::new();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = spawn_serve(dir.path(), port, &[]);
    wait_up(&http, &base).await;
    let acks = Arc::new(Mutex::new(Vec::<u64>::new()));
    let mut tasks = Vec::new();
    for w in 0..8u64 {
        let (http, base, key, acks) = (http.clone(), base.clone(), key.clone(), acks.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0.. {
                let n = w * 100_000 + i;
                match http
                    .post(format!("{base}/v1/messages"))
                    .header("x-api-key", &key)
                    .json(&checkin("venue:t", n))
                    .send()
                    .await
                {
                    Ok(r) if r.status() == 201 => acks.lock().unwrap().push(n),
                    _ => return,
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(exit.success(), "marquee exits 0 after SIGTERM, got {exit:?}");
    for t in tasks {
        let _ = t.await;
    }
    let acked = acks.lock().unwrap().clone();
    assert!(!acked.is_empty());
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = spawn_serve(dir.path(), port, &[]);
    wait_up(&http, &base).await;
    let mut stored = HashSet::new();
    let mut after: Option<String> = None;
    loop {
        let mut url = format!("{base}/v1/messages?limit=100");
        if let Some(a) = &after {
            url.push_str(&format!("&after={a}"));
        }
        let v: Value = http
            .get(&url)
            .header("x-api-key", &key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for m in v["data"].as_array().unwrap() {
            stored.insert(m["data"]["n"].as_u64().unwrap());
        }
        if !v["has_more"].as_bool().unwrap() {
            break;
        }
        after = v["next_cursor"].as_str().map(str::to_owned);
    }
    child.kill().unwrap();
    child.wait().unwrap();
    for n in &acked {
        assert!(stored.contains(n), "acknowledged message {n} lost across SIGTERM");
    }
}
