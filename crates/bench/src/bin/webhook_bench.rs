//! Webhook benchmark (issue 3), against the real `marquee` binary and a
//! receiver in this process (hyper, HTTP/1.1 keep-alive, answers 204):
//!
//! 1. baseline: this harness's own keep-alive client POSTing a signed
//!    Standard Webhooks body to the same receiver (64 connections);
//! 2. end-to-end messages/s to one endpoint: 64 connections publish single
//!    messages for `--seconds`, then the run waits until every published
//!    message has been received; rate = received / (last receipt − start);
//! 3. deliveries/s across 10 endpoints (each message matches all 10);
//! 4. publish→delivery latency p50/p99 at a fixed publish rate below
//!    saturation, measured from the message's `timestamp` (the server's
//!    `received_at`, assigned at commit) to its arrival at the receiver.
//!
//! `cargo build --release -p marquee-server -p marquee-bench &&
//!  target/release/webhook_bench --seconds 10`
//!
//! `--scale-out` (issue 5) runs instead, in one run: the same baseline, then
//! end-to-end messages/s to one endpoint with 1 node on SQLite, 1 node on
//! PostgreSQL and `--nodes` (3) nodes on PostgreSQL + NATS (publishers spread
//! over the nodes, every node delivering), then the baseline again. For each
//! it reports CPU per process from `/proc/PID/stat` (harness, each node, all
//! `postgres` processes, the whole machine), deliveries per node (the
//! receiver's connections mapped to node pids through `/proc/net/tcp`), and
//! the endpoint's own `/stats` (attempts = messages means no double claim).
//! Each PostgreSQL scenario uses a fresh schema, dropped at the end (psql).

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use bytes::Bytes;
use clap::Parser;
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use marquee_bench::{
    Conn, ServerProcess, Stats, Template, clk_tck, closed_loop, cpu_ticks, default_marquee_bin, fixed_rate,
    loadavg, machine_jiffies, percentile, pids_by_comm, provision_key, socket_inodes, start_server,
    tcp_port_inodes,
};
use sha2::Sha256;

#[derive(Parser)]
struct Args {
    /// Path of the marquee binary (default: next to this one).
    #[arg(long)]
    marquee_bin: Option<PathBuf>,
    /// Seconds of publishing per scenario.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Concurrent publishing connections.
    #[arg(long, default_value_t = 64)]
    conns: usize,
    /// Publish rate of the latency scenario.
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// `max_in_flight` of the benchmark endpoints.
    #[arg(long, default_value_t = 64)]
    max_in_flight: u32,
    /// Run the scale-out comparison (issue 5) instead of the scenarios above.
    #[arg(long)]
    scale_out: bool,
    /// PostgreSQL of the scale-out scenarios (a fresh schema per scenario).
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/test")]
    database_url: String,
    /// NATS of the multi-node scenario.
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    nats_url: String,
    /// Nodes of the multi-node scenario.
    #[arg(long, default_value_t = 3)]
    nodes: usize,
}

#[derive(Default)]
struct Sink {
    received: AtomicU64,
    last_us: AtomicU64,
    latencies_us: Mutex<Vec<u64>>,
    /// (peer port, requests) per accepted connection, to attribute
    /// deliveries to the node process that made them.
    conns: Mutex<Vec<(u16, Arc<AtomicU64>)>>,
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// The `"timestamp":"…"` of a Standard Webhooks body, in µs.
fn body_timestamp_us(body: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(body).ok()?;
    let start = text.find("\"timestamp\":\"")? + 13;
    let end = start + text[start..].find('"')?;
    let t = time::OffsetDateTime::parse(&text[start..end], &time::format_description::well_known::Rfc3339)
        .ok()?;
    u64::try_from(t.unix_timestamp_nanos() / 1000).ok()
}

async fn start_receiver(sink: Arc<Sink>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind receiver");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let per_conn = Arc::new(AtomicU64::new(0));
            if let (Ok(peer), Ok(mut c)) = (stream.peer_addr(), sink.conns.lock()) {
                c.push((peer.port(), per_conn.clone()));
            }
            let sink = sink.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let sink = sink.clone();
                    let per_conn = per_conn.clone();
                    async move {
                        per_conn.fetch_add(1, Ordering::Relaxed);
                        let body = req
                            .into_body()
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        let now = now_us();
                        sink.received.fetch_add(1, Ordering::Relaxed);
                        sink.last_us.fetch_max(now, Ordering::Relaxed);
                        if let Some(t) = body_timestamp_us(&body)
                            && let Ok(mut l) = sink.latencies_us.lock()
                        {
                            l.push(now.saturating_sub(t));
                        }
                        let mut resp = Response::new(Full::new(Bytes::new()));
                        *resp.status_mut() = hyper::StatusCode::NO_CONTENT;
                        Ok::<_, Infallible>(resp)
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

impl Sink {
    fn reset(&self) {
        self.received.store(0, Ordering::SeqCst);
        self.last_us.store(0, Ordering::SeqCst);
        if let Ok(mut l) = self.latencies_us.lock() {
            l.clear();
        }
        if let Ok(mut c) = self.conns.lock() {
            c.clear();
        }
    }

    /// Requests received per node (index into `pids`), and those whose
    /// sender could not be attributed (connection already closed).
    fn per_node(&self, pids: &[u32]) -> (Vec<u64>, u64) {
        let ports = tcp_port_inodes();
        let owners: Vec<_> = pids.iter().map(|&p| socket_inodes(p)).collect();
        let mut out = vec![0u64; pids.len()];
        let mut unknown = 0;
        if let Ok(c) = self.conns.lock() {
            for (port, n) in c.iter() {
                let n = n.load(Ordering::Relaxed);
                match ports
                    .get(port)
                    .and_then(|inode| owners.iter().position(|o| o.contains(inode)))
                {
                    Some(i) => out[i] += n,
                    None => unknown += n,
                }
            }
        }
        (out, unknown)
    }

    async fn wait_for(&self, n: u64, max: Duration) -> bool {
        let deadline = Instant::now() + max;
        while self.received.load(Ordering::SeqCst) < n {
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }

    fn latencies(&self) -> Vec<u64> {
        let mut v = self.latencies_us.lock().map(|l| l.clone()).unwrap_or_default();
        v.sort_unstable();
        v
    }
}

async fn create_endpoint(
    server: SocketAddr,
    key: &str,
    url: &str,
    channel: &str,
    max_in_flight: u32,
) -> String {
    let mut c = Conn::open(server).await.expect("connect");
    let body = format!(r#"{{"url":"{url}","channels":["{channel}"],"max_in_flight":{max_in_flight}}}"#);
    let tpl = Template {
        method: hyper::Method::POST,
        path: "/v1/endpoints".into(),
        headers: vec![
            ("x-api-key".into(), key.into()),
            ("content-type".into(), "application/json".into()),
        ],
        body: Bytes::from(body),
    };
    let (status, body) = c
        .send(tpl.build(&server.to_string()))
        .await
        .expect("create endpoint");
    assert_eq!(status, 201, "create endpoint: {}", String::from_utf8_lossy(&body));
    let v: serde_json::Value = serde_json::from_slice(&body).expect("endpoint JSON");
    v["id"].as_str().expect("endpoint id").to_owned()
}

fn publish_template(key: &str, channel: &str) -> Template {
    let body = format!(
        r#"{{"type":"fan_checkin","channels":["{channel}"],"data":{{"fan_id":"fan_0xc3f","event_id":"evt_928xA","gate":"MAIN","ts":1745123456789}}}}"#
    );
    Template {
        method: hyper::Method::POST,
        path: "/v1/messages".into(),
        headers: vec![
            ("x-api-key".into(), key.into()),
            ("content-type".into(), "application/json".into()),
        ],
        body: Bytes::from(body),
    }
}

fn main() {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    if args.scale_out {
        rt.block_on(scale_out::run(args));
    } else {
        rt.block_on(run(args));
    }
}

async fn run(args: Args) {
    let bin = args.marquee_bin.clone().unwrap_or_else(default_marquee_bin);
    let dir = tempfile::tempdir().expect("tempdir");
    let key = provision_key(&bin, dir.path());
    let server = start_server(
        &bin,
        Some(dir.path()),
        &["--allow-private-endpoints"],
        &[("MARQUEE_RATE_LIMIT_ENTERPRISE", "1000000")],
    )
    .await;
    let sink = Arc::new(Sink::default());
    let rx = start_receiver(sink.clone()).await;
    let d = Duration::from_secs(args.seconds);

    // 1. Baseline: raw signed POSTs from this harness to the same receiver.
    let body =
        br#"{"type":"fan_checkin","timestamp":"2026-01-01T00:00:00Z","id":"msg_x","data":{"gate":"MAIN"}}"#;
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&[7u8; 32]).expect("key");
    mac.update(b"dlv_x.1700000000.");
    mac.update(body);
    let sig = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    let raw = Template {
        method: hyper::Method::POST,
        path: "/hook".into(),
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("webhook-id".into(), "dlv_x".into()),
            ("webhook-timestamp".into(), "1700000000".into()),
            ("webhook-signature".into(), sig),
        ],
        body: Bytes::from_static(body),
    };
    let base = closed_loop(rx, args.conns, d, raw).await;
    println!(
        "baseline raw signed POST loop -> receiver: {:.0}/s ({} errors)",
        base.per_sec(),
        base.errors
    );
    sink.reset();

    // 2. One endpoint, end to end.
    let url = format!("http://{rx}/hook");
    create_endpoint(server.addr, &key, &url, "venue:one", args.max_in_flight).await;
    let start = now_us();
    let p = closed_loop(server.addr, args.conns, d, publish_template(&key, "venue:one")).await;
    let complete = sink.wait_for(p.ok, Duration::from_secs(120)).await;
    let got = sink.received.load(Ordering::SeqCst);
    let span = (sink.last_us.load(Ordering::SeqCst).saturating_sub(start)) as f64 / 1e6;
    let lat = sink.latencies();
    println!(
        "1 endpoint: published {:.0}/s ({} ok, {} errors); delivered {got} of {} ({}) -> {:.0} msgs/s end to end; \
         publish->delivery p50 {:.1} ms p99 {:.1} ms (saturated)",
        p.per_sec(),
        p.ok,
        p.errors,
        p.ok,
        if complete { "all" } else { "INCOMPLETE" },
        got as f64 / span.max(1e-9),
        percentile(&lat, 50.0) as f64 / 1000.0,
        percentile(&lat, 99.0) as f64 / 1000.0,
    );
    sink.reset();

    // 3. Ten endpoints, each receiving every message.
    for _ in 0..10 {
        create_endpoint(server.addr, &key, &url, "venue:ten", args.max_in_flight).await;
    }
    let start = now_us();
    let p = closed_loop(server.addr, args.conns, d, publish_template(&key, "venue:ten")).await;
    let complete = sink.wait_for(p.ok * 10, Duration::from_secs(180)).await;
    let got = sink.received.load(Ordering::SeqCst);
    let span = (sink.last_us.load(Ordering::SeqCst).saturating_sub(start)) as f64 / 1e6;
    println!(
        "10 endpoints: published {:.0}/s ({} ok); delivered {got} of {} ({}) -> {:.0} deliveries/s",
        p.per_sec(),
        p.ok,
        p.ok * 10,
        if complete { "all" } else { "INCOMPLETE" },
        got as f64 / span.max(1e-9),
    );
    sink.reset();

    // 4. Latency below saturation, one endpoint.
    let p = fixed_rate(
        server.addr,
        args.conns.min(16),
        args.rate,
        d,
        publish_template(&key, "venue:one"),
    )
    .await;
    sink.wait_for(p.ok, Duration::from_secs(60)).await;
    let lat = sink.latencies();
    println!(
        "latency at {:.0} publishes/s to 1 endpoint: publish->delivery p50 {:.1} ms, p99 {:.1} ms ({} samples); \
         publish request p50 {:.1} ms p99 {:.1} ms",
        args.rate,
        percentile(&lat, 50.0) as f64 / 1000.0,
        percentile(&lat, 99.0) as f64 / 1000.0,
        lat.len(),
        p.pct_ms(50.0),
        p.pct_ms(99.0),
    );
    drop(server);
}
