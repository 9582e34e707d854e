//! `kill -9` the real binary while it publishes and delivers to receivers
//! that are down part of the time, one endpoint per registered wire format:
//! once the receivers stay up, every acknowledged message has been delivered
//! at least once to every endpoint, whatever its format.

use std::collections::{HashMap, HashSet};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::webhooks::{Receiver, Reply};
use crate::helpers::*;

fn spawn_server(data_dir: &std::path::Path, port: u16) -> Child {
    // 0 ms then 80 × 100 ms: about eight seconds of retries.
    let schedule = format!("0ms{}", ",100ms".repeat(80));
    spawn_serve(
        data_dir,
        port,
        &[
            ("MARQUEE_ALLOW_PRIVATE_ENDPOINTS", "true"),
            ("MARQUEE_RETRY_SCHEDULE", &schedule),
        ],
    )
}
fn cli_json(args: &[&str], dir: &std::path::Path) -> Value {
    let out = Command::new(marquee_bin())
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap()
}

fn jitter_ms(range: u64) -> u64 {
    (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64)
        % range
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_dash_nine_loses_no_acknowledged_delivery() {
    let dir = tempfile::tempdir().unwrap();
    let org = cli_json(&["org", "create", "crash", "--json"], dir.path());
    let key = cli_json(
        &[
            "key",
            "create",
            "--tier",
            "enterprise",
            "--json",
            "--org",
            org["id"].as_str().unwrap(),
        ],
        dir.path(),
    );
    let key = key["key"].as_str().unwrap().to_owned();
    let up = Arc::new(AtomicBool::new(true));
    let mut receivers = Vec::new();
    for f in marquee_core::wire::Format::all() {
        let delivered: Arc<Mutex<HashMap<u64, usize>>> = Arc::default();
        let rx = {
            let (up, delivered) = (up.clone(), delivered.clone());
            Receiver::start(move |h| {
                if up.load(Ordering::SeqCst) {
                    // `data.n`, or `payload.n` in the revolution envelope.
                    let n = h.json["data"]["n"].as_u64().or(h.json["payload"]["n"].as_u64());
                    *delivered
                        .lock()
                        .unwrap()
                        .entry(n.unwrap_or(u64::MAX))
                        .or_default() += 1;
                    Reply::status(204)
                } else {
                    Reply::status(503)
                }
            })
            .await
        };
        receivers.push((f, rx, delivered));
    }
    let http = reqwest::Client::new();
    let mut acked: HashSet<u64> = HashSet::new();
    let mut next = 0u64;
    for round in 0..3u64 {
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let mut child = spawn_server(dir.path(), port);
        wait_up(&http, &base).await;
        if round == 0 {
            for (f, rx, _) in &receivers {
                let r = http
                    .post(format!("{base}/v1/endpoints"))
                    .header("x-api-key", &key)
                    .json(&json!({"url": rx.url(), "format": f.as_str()}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 201);
            }
        }
        // The receiver flaps while the server runs.
        let flapper = {
            let up = up.clone();
            tokio::spawn(async move {
                loop {
                    up.store(false, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(150)).await;
                    up.store(true, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(150)).await;
                }
            })
        };
        let acks = Arc::new(Mutex::new(Vec::<u64>::new()));
        let mut tasks = Vec::new();
        for w in 0..8u64 {
            let (http, base, key, acks) = (http.clone(), base.clone(), key.clone(), acks.clone());
            let start = next + w * 100_000;
            tasks.push(tokio::spawn(async move {
                for i in 0.. {
                    let n = start + i;
                    match http
                        .post(format!("{base}/v1/messages"))
                        .header("x-api-key", &key)
                        .json(&checkin("venue:crash", n))
                        .send()
                        .await
                    {
                        Ok(r) if r.status() == 201 => acks.lock().unwrap().push(n),
                        _ => return,
                    }
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(300 + jitter_ms(500))).await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        flapper.abort();
        for t in tasks {
            let _ = t.await;
        }
        let got = acks.lock().unwrap().clone();
        assert!(!got.is_empty(), "round {round}: nothing acknowledged");
        acked.extend(got);
        next += 10_000_000;
    }
    // Restart with the receiver up for good.
    up.store(true, Ordering::SeqCst);
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = spawn_server(dir.path(), port);
    wait_up(&http, &base).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let missing_of = |delivered: &Mutex<HashMap<u64, usize>>| -> Vec<u64> {
        let got = delivered.lock().unwrap();
        acked.iter().filter(|n| !got.contains_key(n)).copied().collect()
    };
    loop {
        let all_in = receivers.iter().all(|(_, _, d)| missing_of(d).is_empty());
        if all_in || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    for (f, _, delivered) in &receivers {
        let missing = missing_of(delivered);
        let got = delivered.lock().unwrap().clone();
        let duplicates: usize = got.values().map(|c| c - 1).sum();
        eprintln!(
            "webhook crash test ({f}): {} acknowledged, {} delivered, {} duplicate deliveries across 3 kills",
            acked.len(),
            got.len(),
            duplicates
        );
        assert!(
            missing.is_empty(),
            "{f}: {} acknowledged messages never delivered, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(5)]
        );
    }
}
