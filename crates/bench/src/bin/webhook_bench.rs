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
//! `--only default-vs-tuned` (issue 9) measures, in one run, end-to-end
//! rates with endpoints created without `max_in_flight` (the default: an
//! adaptive limit) and with `max_in_flight` 64 (tuned), to 1 and to 10
//! endpoints, `--rounds` times in alternating order (default first in odd
//! rounds, tuned first in even ones), fresh endpoints per measurement, after
//! an uncounted warm-up that opens the server's connections to the receiver,
//! and
//! prints the default/tuned ratios with their medians, and the adaptive
//! limits the default endpoints reached (polled from the endpoint API).
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
    /// `max_in_flight` of the benchmark endpoints (0: not set, i.e. the
    /// adaptive default).
    #[arg(long, default_value_t = 64)]
    max_in_flight: u32,
    /// Rounds of `default-vs-tuned`.
    #[arg(long, default_value_t = 4)]
    rounds: usize,
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
    /// Scenarios to run (comma-separated subset of
    /// baseline,one,ten,latency,default-vs-tuned,formats).
    #[arg(long, value_delimiter = ',', default_value = "baseline,one,ten,latency")]
    only: Vec<String>,
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
    let body = if max_in_flight == 0 {
        format!(r#"{{"url":"{url}","channels":["{channel}"]}}"#)
    } else {
        format!(r#"{{"url":"{url}","channels":["{channel}"],"max_in_flight":{max_in_flight}}}"#)
    };
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
    // MARQUEE_LOG reaches the server (e.g. to watch adaptive limits move).
    let log = std::env::var("MARQUEE_LOG").unwrap_or_else(|_| "warn".into());
    let server = start_server(
        &bin,
        Some(dir.path()),
        &["--allow-private-endpoints"],
        &[
            ("MARQUEE_RATE_LIMIT_ENTERPRISE", "1000000"),
            ("MARQUEE_LOG", &log),
        ],
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
    let wants = |s: &str| args.only.iter().any(|o| o == s);
    if wants("baseline") {
        let base = closed_loop(rx, args.conns, d, raw).await;
        println!(
            "baseline raw signed POST loop -> receiver: {:.0}/s ({} errors)",
            base.per_sec(),
            base.errors
        );
        sink.reset();
    }

    // 2. One endpoint, end to end (its endpoint also serves scenario 4).
    let url = format!("http://{rx}/hook");
    let one = create_endpoint(server.addr, &key, &url, "venue:one", args.max_in_flight).await;
    if wants("one") {
        one_endpoint(&args, server.addr, &key, &sink, d).await;
        stats_cost(server.addr, &key, &one).await;
    }
    if wants("ten") {
        ten_endpoints(&args, &server, &key, &url, &sink, d).await;
    }
    if wants("latency") {
        latency(&args, server.addr, &key, &sink, d).await;
    }
    if wants("default-vs-tuned") {
        default_vs_tuned::run(&args, &server, &key, &url, &sink, d).await;
    }
    if wants("formats") {
        formats(&args, server.addr, &key, &url, &sink, d).await;
    }
    drop(server);
}

/// Issue 9: end-to-end deliveries/s to one endpoint per wire format, beside
/// `standard` measured first and last in the same run (their mean is the
/// baseline, so drift during the run shows as their difference).
async fn formats(args: &Args, server: SocketAddr, key: &str, url: &str, sink: &Sink, d: Duration) {
    let order = [
        "standard",
        "revolution",
        "eventium",
        "revento",
        "attendee",
        "standard",
    ];
    let mut rates: Vec<(&str, f64)> = Vec::new();
    for (i, f) in order.iter().enumerate() {
        let channel = format!("venue:fmt-{i}");
        let mut c = Conn::open(server).await.expect("connect");
        let body = format!(
            r#"{{"url":"{url}","channels":["{channel}"],"format":"{f}","max_in_flight":{}}}"#,
            args.max_in_flight
        );
        let tpl = Template {
            method: hyper::Method::POST,
            path: "/v1/endpoints".into(),
            headers: vec![
                ("x-api-key".into(), key.into()),
                ("content-type".into(), "application/json".into()),
            ],
            body: Bytes::from(body),
        };
        let (status, b) = c
            .send(tpl.build(&server.to_string()))
            .await
            .expect("create endpoint");
        assert_eq!(status, 201, "create endpoint: {}", String::from_utf8_lossy(&b));
        let start = now_us();
        let p = closed_loop(server, args.conns, d, publish_template(key, &channel)).await;
        let complete = sink.wait_for(p.ok, Duration::from_secs(120)).await;
        let got = sink.received.load(Ordering::SeqCst);
        let span = (sink.last_us.load(Ordering::SeqCst).saturating_sub(start)) as f64 / 1e6;
        let rate = got as f64 / span.max(1e-9);
        println!(
            "format {f:<10}: published {:.0}/s, delivered {got} of {} ({}) -> {rate:.0} msgs/s end to end",
            p.per_sec(),
            p.ok,
            if complete { "all" } else { "INCOMPLETE" },
        );
        rates.push((f, rate));
        sink.reset();
    }
    let base = (rates[0].1 + rates[rates.len() - 1].1) / 2.0;
    println!(
        "standard baseline {base:.0} msgs/s (first {:.0}, last {:.0})",
        rates[0].1,
        rates[rates.len() - 1].1
    );
    for (f, r) in &rates[1..rates.len() - 1] {
        println!("  {f:<10} {r:>8.0} msgs/s = {:.2} x standard", r / base);
    }
}

/// How long `GET /v1/endpoints/{id}/stats` takes on the endpoint that just
/// received the whole one-endpoint scenario (20 sequential calls).
async fn stats_cost(server: SocketAddr, key: &str, endpoint: &str) {
    let mut c = Conn::open(server).await.expect("connect");
    let tpl = Template {
        method: hyper::Method::GET,
        path: format!("/v1/endpoints/{endpoint}/stats"),
        headers: vec![("x-api-key".into(), key.into())],
        body: Bytes::new(),
    };
    let mut took: Vec<u64> = Vec::new();
    let mut last = String::new();
    for _ in 0..20 {
        let t0 = Instant::now();
        let (status, body) = c.send(tpl.build(&server.to_string())).await.expect("stats");
        took.push(t0.elapsed().as_micros() as u64);
        assert_eq!(status, 200, "stats: {}", String::from_utf8_lossy(&body));
        last = String::from_utf8_lossy(&body).into_owned();
    }
    took.sort_unstable();
    let v: serde_json::Value = serde_json::from_str(&last).unwrap_or_default();
    println!(
        "  stats of that endpoint (delivered {}, attempts_last_hour {}): p50 {:.2} ms, max {:.2} ms over 20 calls",
        v["delivered"],
        v["attempts_last_hour"],
        percentile(&took, 50.0) as f64 / 1000.0,
        took.last().copied().unwrap_or(0) as f64 / 1000.0,
    );
}

async fn one_endpoint(args: &Args, server: SocketAddr, key: &str, sink: &Sink, d: Duration) {
    let start = now_us();
    let p = closed_loop(server, args.conns, d, publish_template(key, "venue:one")).await;
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
}

/// CPU seconds used per thread name of a process (`/proc/PID/task`).
fn thread_cpu(pid: u32) -> HashMap<String, u64> {
    let mut out: HashMap<String, u64> = HashMap::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for e in dir.flatten() {
        let Some(tid) = e.file_name().to_str().and_then(|t| t.parse::<u32>().ok()) else {
            continue;
        };
        let name = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/comm")).unwrap_or_default();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat")).unwrap_or_default();
        let ticks = stat.rfind(')').and_then(|i| {
            let mut f = stat[i + 1..].split_whitespace().skip(11);
            Some(f.next()?.parse::<u64>().ok()? + f.next()?.parse::<u64>().ok()?)
        });
        *out.entry(name.trim().to_owned()).or_default() += ticks.unwrap_or(0);
    }
    out
}

async fn ten_endpoints(
    args: &Args,
    server: &marquee_bench::ServerProcess,
    key: &str,
    url: &str,
    sink: &Sink,
    d: Duration,
) {
    for _ in 0..10 {
        create_endpoint(server.addr, key, url, "venue:ten", args.max_in_flight).await;
    }
    let pid = server.child.id();
    let me = std::process::id();
    let (cpu0, me0, threads0, m0) = (cpu_ticks(pid), cpu_ticks(me), thread_cpu(pid), machine_jiffies());
    let start = now_us();
    let t0 = Instant::now();
    let p = closed_loop(server.addr, args.conns, d, publish_template(key, "venue:ten")).await;
    let complete = sink.wait_for(p.ok * 10, Duration::from_secs(180)).await;
    let wall = t0.elapsed().as_secs_f64();
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
    let tck = clk_tck();
    let used =
        |a: Option<u64>, b: Option<u64>| b.unwrap_or(0).saturating_sub(a.unwrap_or(0)) as f64 / tck / wall;
    let machine = match (m0, machine_jiffies()) {
        (Some((b0, t0)), Some((b1, t1))) => 2.0 * (b1 - b0) as f64 / (t1 - t0).max(1) as f64,
        _ => 0.0,
    };
    println!(
        "  cpu (cores, over {wall:.1} s): marquee {:.2}, harness {:.2}, machine {machine:.2} of 2",
        used(cpu0, cpu_ticks(pid)),
        used(me0, cpu_ticks(me)),
    );
    let threads1 = thread_cpu(pid);
    let mut per: Vec<(String, f64)> = threads1
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.saturating_sub(*threads0.get(k).unwrap_or(&0)) as f64 / tck / wall,
            )
        })
        .collect();
    per.sort_by(|a, b| b.1.total_cmp(&a.1));
    let shown: Vec<String> = per.iter().take(6).map(|(k, v)| format!("{k} {v:.2}")).collect();
    println!("  marquee threads: {}", shown.join(", "));
    sink.reset();
}

async fn latency(args: &Args, server: SocketAddr, key: &str, sink: &Sink, d: Duration) {
    let p = fixed_rate(
        server,
        args.conns.min(16),
        args.rate,
        d,
        publish_template(key, "venue:one"),
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
}

/// Issue 5: end-to-end messages/s to one endpoint on 1 SQLite node, 1
/// PostgreSQL node and N PostgreSQL + NATS nodes, with CPU per process.
mod scale_out {
    use super::*;

    /// Shared by every node of a scenario (any 64 hex characters).
    const SECRET: &str = "5b1f0c9e8d7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c";
    const ADMIN: &str = "bench-admin-token";

    /// Runs one SQL command through `psql`; its unaligned output.
    fn psql(url: &str, sql: &str) -> Option<String> {
        let out = std::process::Command::new("psql")
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", url, "-c", sql])
            .output()
            .ok()?;
        if !out.status.success() {
            eprintln!("psql failed: {}", String::from_utf8_lossy(&out.stderr).trim());
            return None;
        }
        String::from_utf8(out.stdout).ok()
    }

    /// The fresh schemas of this run, dropped when this is dropped (also
    /// when the run panics).
    struct Schemas {
        url: String,
        names: Vec<String>,
    }

    impl Schemas {
        fn fresh(&mut self, tag: &str) -> String {
            let name = format!("mqbench_{tag}_{}_{}", std::process::id(), now_us() % 1_000_000);
            self.names.push(name.clone());
            name
        }
    }

    impl Drop for Schemas {
        fn drop(&mut self) {
            for s in &self.names {
                if psql(&self.url, &format!("DROP SCHEMA IF EXISTS {s} CASCADE")).is_some() {
                    println!("dropped schema {s}");
                }
            }
        }
    }

    /// Database-wide counters of the `test` database (shared with anyone
    /// else using it; PostgreSQL flushes them about once a second).
    fn pg_counters(url: &str) -> Option<[i64; 3]> {
        let out = psql(
            url,
            "SELECT xact_commit, tup_inserted, tup_updated + tup_deleted \
             FROM pg_stat_database WHERE datname = current_database()",
        )?;
        let v: Vec<i64> = out.trim().split('|').filter_map(|x| x.parse().ok()).collect();
        Some([*v.first()?, *v.get(1)?, *v.get(2)?])
    }

    /// Starts sampling `pg_stat_activity` every 100 ms, `n` times, in one
    /// psql session: (client port, state, wait event) of every backend that
    /// is inside a query or a transaction.
    fn start_activity_sampler(url: &str, n: u64) -> Option<std::process::Child> {
        let one = "SELECT client_port || '|' || state || '|' \
                   || coalesce(wait_event_type || ':' || wait_event, 'on CPU') \
                   FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND client_port IS NOT NULL \
                   AND state IN ('active', 'idle in transaction'); SELECT pg_sleep(0.1);\n";
        // Fed on stdin (not `-c`) so each sample is its own transaction and
        // sees a fresh pg_stat_activity snapshot.
        let mut child = std::process::Command::new("psql")
            .args(["-X", "-q", "-A", "-t", url, "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .ok()?;
        let script = one.repeat(n as usize);
        let mut stdin = child.stdin.take()?;
        std::thread::spawn(move || {
            use std::io::Write;
            let _ = stdin.write_all(script.as_bytes());
        });
        Some(child)
    }

    /// The sampler's rows for backends whose client socket belongs to one of
    /// `pids`: (state | wait event) → share of samples, and the mean number
    /// of such backends busy per sample.
    fn activity_summary(out: &str, pids: &[u32], samples: u64) -> (Vec<(String, u64)>, f64) {
        let ports = tcp_port_inodes();
        let ours: std::collections::HashSet<u64> = pids.iter().flat_map(|&p| socket_inodes(p)).collect();
        let mut by: HashMap<String, u64> = HashMap::new();
        let mut total = 0;
        for line in out.lines() {
            let mut f = line.splitn(2, '|');
            let (Some(port), Some(rest)) = (f.next(), f.next()) else {
                continue;
            };
            if let Ok(port) = port.trim().parse::<u16>()
                && ports.get(&port).is_some_and(|i| ours.contains(i))
            {
                *by.entry(rest.to_owned()).or_default() += 1;
                total += 1;
            }
        }
        let mut v: Vec<(String, u64)> = by.into_iter().collect();
        v.sort_by_key(|r| std::cmp::Reverse(r.1));
        (v, total as f64 / samples.max(1) as f64)
    }

    struct CpuSnap {
        at: Instant,
        harness: u64,
        nodes: Vec<u64>,
        postgres: HashMap<u32, u64>,
        machine: (u64, u64),
    }

    fn snap(node_pids: &[u32]) -> CpuSnap {
        CpuSnap {
            at: Instant::now(),
            harness: cpu_ticks(std::process::id()).unwrap_or(0),
            nodes: node_pids.iter().map(|&p| cpu_ticks(p).unwrap_or(0)).collect(),
            postgres: pids_by_comm("postgres")
                .into_iter()
                .filter_map(|p| Some((p, cpu_ticks(p)?)))
                .collect(),
            machine: machine_jiffies().unwrap_or((0, 0)),
        }
    }

    /// CPU used between two snapshots, in cores (CPU-seconds per second).
    struct CpuUse {
        secs: f64,
        harness: f64,
        nodes: Vec<f64>,
        postgres: f64,
        machine_busy: f64,
    }

    fn cpu_between(a: &CpuSnap, b: &CpuSnap, tck: f64) -> CpuUse {
        let secs = b.at.duration_since(a.at).as_secs_f64().max(1e-9);
        let cores = |ticks: u64| ticks as f64 / tck / secs;
        let pg: u64 = b
            .postgres
            .iter()
            .map(|(pid, t)| t.saturating_sub(a.postgres.get(pid).copied().unwrap_or(0)))
            .sum();
        let (busy, total) = (
            b.machine.0.saturating_sub(a.machine.0),
            b.machine.1.saturating_sub(a.machine.1),
        );
        CpuUse {
            secs,
            harness: cores(b.harness.saturating_sub(a.harness)),
            nodes: b
                .nodes
                .iter()
                .zip(&a.nodes)
                .map(|(b, a)| cores(b.saturating_sub(*a)))
                .collect(),
            postgres: cores(pg),
            // Busy share of all cores × core count = cores busy.
            machine_busy: busy as f64 / (total.max(1)) as f64 * num_cores(),
        }
    }

    fn num_cores() -> f64 {
        std::thread::available_parallelism().map_or(1, |n| n.get()) as f64
    }

    struct Outcome {
        label: String,
        published: Stats,
        delivered: u64,
        complete: bool,
        msgs_per_s: f64,
        lat_p50_ms: f64,
        lat_p99_ms: f64,
        cpu: CpuUse,
        per_node: (Vec<u64>, u64),
        stats: serde_json::Value,
        pg: Option<[i64; 3]>,
        /// (state | wait event, samples) of this scenario's backends, and
        /// their mean number busy per sample.
        activity: Option<(Vec<(String, u64)>, f64)>,
    }

    async fn send_json(
        addr: SocketAddr,
        method: hyper::Method,
        path: &str,
        auth: (&str, &str),
        body: &str,
    ) -> (u16, serde_json::Value) {
        let mut c = Conn::open(addr).await.expect("connect");
        let tpl = Template {
            method,
            path: path.into(),
            headers: vec![
                (auth.0.into(), auth.1.into()),
                ("content-type".into(), "application/json".into()),
            ],
            body: Bytes::from(body.to_owned()),
        };
        let (status, body) = c.send(tpl.build(&addr.to_string())).await.expect(path);
        (status, serde_json::from_slice(&body).unwrap_or_default())
    }

    /// An org and an enterprise key through a node's admin API.
    async fn admin_key(node: SocketAddr) -> String {
        let bearer = format!("Bearer {ADMIN}");
        let auth = ("authorization", bearer.as_str());
        let (st, org) = send_json(
            node,
            hyper::Method::POST,
            "/admin/v1/orgs",
            auth,
            r#"{"name":"bench"}"#,
        )
        .await;
        assert_eq!(st, 201, "create org: {org}");
        let path = format!("/admin/v1/orgs/{}/keys", org["id"].as_str().expect("org id"));
        let (st, key) = send_json(node, hyper::Method::POST, &path, auth, r#"{"tier":"enterprise"}"#).await;
        assert_eq!(st, 201, "create key: {key}");
        key["key"].as_str().expect("key").to_owned()
    }

    async fn pg_node(
        bin: &std::path::Path,
        url: &str,
        schema: &str,
        nats: Option<(&str, &str)>,
    ) -> ServerProcess {
        let mut args = vec!["--allow-private-endpoints"];
        if let Some((nats_url, prefix)) = nats {
            args.extend(["--nats", nats_url, "--nats-prefix", prefix]);
        }
        start_server(
            bin,
            None,
            &args,
            &[
                ("MARQUEE_DATABASE_URL", url),
                ("MARQUEE_DATABASE_SCHEMA", schema),
                ("MARQUEE_SERVER_SECRET", SECRET),
                ("MARQUEE_ADMIN_TOKEN", ADMIN),
                ("MARQUEE_RATE_LIMIT_ENTERPRISE", "1000000"),
            ],
        )
        .await
    }

    /// Publishes through every node (connections split evenly) for `d`,
    /// waits for every acknowledged message at the receiver, and measures.
    #[allow(clippy::too_many_arguments)]
    async fn e2e(
        label: &str,
        nodes: &[ServerProcess],
        key: &str,
        endpoint: &str,
        sink: &Sink,
        conns: usize,
        d: Duration,
        pg_url: Option<&str>,
    ) -> Outcome {
        sink.reset();
        let pids: Vec<u32> = nodes.iter().map(|n| n.child.id()).collect();
        let tck = clk_tck();
        let pg_before = pg_url.and_then(pg_counters);
        println!("[{label}] load average at start: {}", loadavg());
        let samples = d.as_millis() as u64 / 100;
        let sampler = pg_url.and_then(|u| start_activity_sampler(u, samples));
        let before = snap(&pids);
        let start = now_us();
        let mut tasks = Vec::new();
        for (i, n) in nodes.iter().enumerate() {
            let c = conns / nodes.len() + usize::from(i < conns % nodes.len());
            tasks.push(tokio::spawn(closed_loop(
                n.addr,
                c,
                d,
                publish_template(key, "venue:one"),
            )));
        }
        let mut published = Stats::default();
        for t in tasks {
            if let Ok(s) = t.await {
                published.ok += s.ok;
                published.errors += s.errors;
                published.elapsed = published.elapsed.max(s.elapsed);
                published.latencies_us.extend(s.latencies_us);
            }
        }
        let published = published.finish();
        let activity = match sampler {
            Some(child) => tokio::task::spawn_blocking(move || child.wait_with_output())
                .await
                .ok()
                .and_then(|r| r.ok())
                .map(|o| activity_summary(&String::from_utf8_lossy(&o.stdout), &pids, samples)),
            None => None,
        };
        let complete = sink.wait_for(published.ok, Duration::from_secs(120)).await;
        let after = snap(&pids);
        let delivered = sink.received.load(Ordering::SeqCst);
        let span = (sink.last_us.load(Ordering::SeqCst).saturating_sub(start)) as f64 / 1e6;
        let lat = sink.latencies();
        let per_node = sink.per_node(&pids);
        // Results are recorded just after the receiver answers, and
        // PostgreSQL publishes backend counters about once a second.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let bearer = ("x-api-key", key);
        let (_, stats) = send_json(
            nodes[0].addr,
            hyper::Method::GET,
            &format!("/v1/endpoints/{endpoint}/stats"),
            bearer,
            "",
        )
        .await;
        let pg = match (pg_url, pg_before) {
            (Some(url), Some(b)) => pg_counters(url).map(|a| [a[0] - b[0], a[1] - b[1], a[2] - b[2]]),
            _ => None,
        };
        let o = Outcome {
            label: label.into(),
            published,
            delivered,
            complete,
            msgs_per_s: delivered as f64 / span.max(1e-9),
            lat_p50_ms: percentile(&lat, 50.0) as f64 / 1000.0,
            lat_p99_ms: percentile(&lat, 99.0) as f64 / 1000.0,
            cpu: cpu_between(&before, &after, tck),
            per_node,
            stats,
            pg,
            activity,
        };
        print_outcome(&o);
        o
    }

    fn print_outcome(o: &Outcome) {
        let p = &o.published;
        println!(
            "[{}] published {:.0}/s ({} ok, {} errors; publish request p50 {:.1} ms p99 {:.1} ms); \
             delivered {} of {} ({}) -> {:.0} msgs/s end to end; publish->delivery p50 {:.1} ms p99 {:.1} ms",
            o.label,
            p.per_sec(),
            p.ok,
            p.errors,
            p.pct_ms(50.0),
            p.pct_ms(99.0),
            o.delivered,
            p.ok,
            if o.complete { "all" } else { "INCOMPLETE" },
            o.msgs_per_s,
            o.lat_p50_ms,
            o.lat_p99_ms,
        );
        let c = &o.cpu;
        let nodes: Vec<String> = c.nodes.iter().map(|x| format!("{x:.2}")).collect();
        let per_msg = |cores: f64| cores * c.secs / (p.ok.max(1) as f64) * 1e6;
        let node_sum: f64 = c.nodes.iter().sum();
        println!(
            "[{}] CPU over {:.1} s, in cores: harness {:.2}, marquee node(s) [{}] (sum {:.2}), postgres (all \
             processes) {:.2}, machine busy {:.2} of {:.0}; CPU-us per message: harness {:.0}, marquee {:.0}, \
             postgres {:.0}",
            o.label,
            c.secs,
            c.harness,
            nodes.join(", "),
            node_sum,
            c.postgres,
            c.machine_busy,
            num_cores(),
            per_msg(c.harness),
            per_msg(node_sum),
            per_msg(c.postgres),
        );
        let s = &o.stats;
        println!(
            "[{}] deliveries per node (receiver connections -> node pids): {:?}, unattributed {}; \
             endpoint /stats: delivered {} pending {} retrying {} failed {} attempts_last_hour {}",
            o.label,
            o.per_node.0,
            o.per_node.1,
            s["delivered"],
            s["pending"],
            s["retrying"],
            s["failed"],
            s["attempts_last_hour"],
        );
        print_activity(o);
        if let Some([x, i, u]) = o.pg {
            let n = p.ok.max(1) as f64;
            println!(
                "[{}] pg_stat_database (whole database, includes other users): {x} commits ({:.2}/msg), \
                 {i} rows inserted ({:.2}/msg), {u} rows updated/deleted ({:.2}/msg)",
                o.label,
                x as f64 / n,
                i as f64 / n,
                u as f64 / n,
            );
        }
    }

    fn print_activity(o: &Outcome) {
        let Some((rows, busy)) = &o.activity else {
            return;
        };
        let total: u64 = rows.iter().map(|r| r.1).sum();
        let top: Vec<String> = rows
            .iter()
            .take(8)
            .map(|(k, n)| format!("{k} {:.0}%", *n as f64 * 100.0 / total.max(1) as f64))
            .collect();
        println!(
            "[{}] pg_stat_activity of this scenario's backends during publishing: {busy:.1} busy per sample; \
             state|wait: {}",
            o.label,
            top.join(", ")
        );
    }

    async fn baseline(rx: SocketAddr, conns: usize, d: Duration) -> f64 {
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
        println!("[baseline] load average at start: {}", loadavg());
        let base = closed_loop(rx, conns, d, raw).await;
        println!(
            "[baseline] raw signed POST loop -> receiver: {:.0}/s ({} errors)",
            base.per_sec(),
            base.errors
        );
        base.per_sec()
    }

    pub async fn run(args: Args) {
        let bin = args.marquee_bin.clone().unwrap_or_else(default_marquee_bin);
        let d = Duration::from_secs(args.seconds);
        let mut schemas = Schemas {
            url: args.database_url.clone(),
            names: Vec::new(),
        };
        let sink = Arc::new(Sink::default());
        let rx = start_receiver(sink.clone()).await;
        let hook = format!("http://{rx}/hook");
        let settle = Duration::from_secs(1);
        println!(
            "scale-out run: {} s per scenario, {} publishing connections, max_in_flight {}, {} cores, load {}",
            args.seconds,
            args.conns,
            args.max_in_flight,
            num_cores(),
            loadavg()
        );

        let base_before = baseline(rx, args.conns, d).await;
        sink.reset();
        tokio::time::sleep(settle).await;

        // 1 node, SQLite.
        let sqlite = {
            let dir = tempfile::tempdir().expect("tempdir");
            let key = provision_key(&bin, dir.path());
            let node = start_server(
                &bin,
                Some(dir.path()),
                &["--allow-private-endpoints"],
                &[("MARQUEE_RATE_LIMIT_ENTERPRISE", "1000000")],
            )
            .await;
            let ep = create_endpoint(node.addr, &key, &hook, "venue:one", args.max_in_flight).await;
            let nodes = [node];
            e2e("sqlite x1", &nodes, &key, &ep, &sink, args.conns, d, None).await
        };
        tokio::time::sleep(settle).await;

        // 1 node, PostgreSQL (in-process bus).
        let pg1 = {
            let schema = schemas.fresh("x1");
            let node = pg_node(&bin, &args.database_url, &schema, None).await;
            let key = admin_key(node.addr).await;
            let ep = create_endpoint(node.addr, &key, &hook, "venue:one", args.max_in_flight).await;
            let nodes = [node];
            e2e(
                "postgres x1",
                &nodes,
                &key,
                &ep,
                &sink,
                args.conns,
                d,
                Some(&args.database_url),
            )
            .await
        };
        tokio::time::sleep(settle).await;

        // N nodes, PostgreSQL + NATS. Org, key and endpoint are created
        // through node 1 before the others start, so every dispatcher has
        // the endpoint from its start-up load.
        let pgn = {
            let schema = schemas.fresh(&format!("x{}", args.nodes));
            let prefix = format!("mqbench{}", std::process::id());
            let nats = Some((args.nats_url.as_str(), prefix.as_str()));
            let first = pg_node(&bin, &args.database_url, &schema, nats).await;
            let key = admin_key(first.addr).await;
            let ep = create_endpoint(first.addr, &key, &hook, "venue:one", args.max_in_flight).await;
            let mut nodes = vec![first];
            for _ in 1..args.nodes.max(1) {
                nodes.push(pg_node(&bin, &args.database_url, &schema, nats).await);
            }
            let label = format!("postgres x{}", nodes.len());
            e2e(
                &label,
                &nodes,
                &key,
                &ep,
                &sink,
                args.conns,
                d,
                Some(&args.database_url),
            )
            .await
        };
        tokio::time::sleep(settle).await;

        let base_after = baseline(rx, args.conns, d).await;

        println!();
        println!(
            "| scenario | publish rate /s | end to end msgs/s | vs baseline | vs SQLite x1 | p50 / p99 publish->delivery | \
             CPU cores: harness / marquee (per node) / postgres / machine |"
        );
        println!("| --- | --- | --- | --- | --- | --- | --- |");
        let base = (base_before + base_after) / 2.0;
        println!(
            "| baseline raw POST (before / after) | — | {base_before:.0} / {base_after:.0} | 1 | — | — | — |"
        );
        for o in [&sqlite, &pg1, &pgn] {
            let c = &o.cpu;
            let nodes: Vec<String> = c.nodes.iter().map(|x| format!("{x:.2}")).collect();
            println!(
                "| {}{} | {:.0} | {:.0} | {:.3} | {:.2} | {:.1} / {:.1} ms | {:.2} / {} / {:.2} / {:.2} |",
                o.label,
                if o.complete { "" } else { " (INCOMPLETE)" },
                o.published.per_sec(),
                o.msgs_per_s,
                o.msgs_per_s / base.max(1e-9),
                o.msgs_per_s / sqlite.msgs_per_s.max(1e-9),
                o.lat_p50_ms,
                o.lat_p99_ms,
                c.harness,
                nodes.join(" + "),
                c.postgres,
                c.machine_busy,
            );
        }
        drop(schemas);
    }
}

/// Issue 9: the default endpoint (no `max_in_flight`: adaptive) beside the
/// tuned one (`max_in_flight` 64), end to end, 1 and 10 endpoints, same run.
mod default_vs_tuned {
    use super::*;

    /// `max_in_flight` of the tuned endpoints.
    const TUNED: u32 = 64;

    struct Measured {
        rate: f64,
        published: f64,
        complete: bool,
        span: f64,
        /// Mean over the endpoints of their adaptive limit: highest and
        /// last value polled (default endpoints only).
        limits: Option<(f64, f64)>,
    }

    async fn call(server: SocketAddr, key: &str, method: hyper::Method, path: String) -> (u16, Bytes) {
        let mut c = Conn::open(server).await.expect("connect");
        let tpl = Template {
            method,
            path,
            headers: vec![("x-api-key".into(), key.into())],
            body: Bytes::new(),
        };
        c.send(tpl.build(&server.to_string())).await.expect("request")
    }

    /// Mean `concurrency.current` over `ids` (those the API reports).
    async fn mean_limit(server: SocketAddr, key: &str, ids: &[String]) -> Option<f64> {
        let (status, body) = call(server, key, hyper::Method::GET, "/v1/endpoints?limit=100".into()).await;
        if status != 200 {
            return None;
        }
        let v: serde_json::Value = serde_json::from_slice(&body).ok()?;
        let limits: Vec<f64> = v["data"]
            .as_array()?
            .iter()
            .filter(|e| ids.iter().any(|i| e["id"].as_str() == Some(i)))
            .filter_map(|e| e["concurrency"]["current"].as_f64())
            .collect();
        (!limits.is_empty()).then(|| limits.iter().sum::<f64>() / limits.len() as f64)
    }

    /// One measurement: `n` fresh endpoints with `max_in_flight` (0 = not
    /// set), publishing for `d`, until every delivery arrived.
    #[allow(clippy::too_many_arguments)]
    async fn measure(
        args: &Args,
        server: SocketAddr,
        key: &str,
        url: &str,
        sink: &Sink,
        d: Duration,
        n: usize,
        max_in_flight: u32,
        tag: &str,
    ) -> Measured {
        let channel = format!("venue:{tag}");
        let mut ids = Vec::new();
        for _ in 0..n {
            ids.push(create_endpoint(server, key, url, &channel, max_in_flight).await);
        }
        sink.reset();
        let polling = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let poller = {
            let (polling, key, ids) = (polling.clone(), key.to_owned(), ids.clone());
            let adaptive = max_in_flight == 0;
            tokio::spawn(async move {
                let mut seen: Option<(f64, f64)> = None;
                while adaptive && polling.load(Ordering::SeqCst) {
                    if let Some(m) = mean_limit(server, &key, &ids).await {
                        seen = Some((seen.map_or(m, |(max, _)| max.max(m)), m));
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                seen
            })
        };
        let start = now_us();
        let p = closed_loop(server, args.conns, d, publish_template(key, &channel)).await;
        let want = p.ok * n as u64;
        let complete = sink.wait_for(want, Duration::from_secs(300)).await;
        let got = sink.received.load(Ordering::SeqCst);
        let span = (sink.last_us.load(Ordering::SeqCst).saturating_sub(start)) as f64 / 1e6;
        polling.store(false, Ordering::SeqCst);
        let limits = poller.await.unwrap_or_default();
        for id in &ids {
            let (status, _) = call(server, key, hyper::Method::DELETE, format!("/v1/endpoints/{id}")).await;
            assert_eq!(status, 200, "delete endpoint");
        }
        sink.reset();
        Measured {
            rate: got as f64 / span.max(1e-9),
            published: p.per_sec(),
            complete: complete && got == want,
            span,
            limits,
        }
    }

    fn median(mut v: Vec<f64>) -> f64 {
        v.sort_by(f64::total_cmp);
        match v.len() {
            0 => 0.0,
            n if n % 2 == 1 => v[n / 2],
            n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        }
    }

    pub(super) async fn run(
        args: &Args,
        server: &ServerProcess,
        key: &str,
        url: &str,
        sink: &Sink,
        d: Duration,
    ) {
        println!(
            "default vs tuned: {} rounds, {} s publishing each, {} connections; default = no max_in_flight \
             (adaptive), tuned = max_in_flight {TUNED}; {} cores, load {}",
            args.rounds,
            args.seconds,
            args.conns,
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            loadavg(),
        );
        // Warm-up, not counted: the first 10-endpoint scenario of a run also
        // opens the server's pooled connections to the receiver (hundreds),
        // which would tax whichever configuration happens to go first.
        let w = measure(
            args,
            server.addr,
            key,
            url,
            sink,
            Duration::from_secs(2),
            10,
            TUNED,
            "warmup",
        )
        .await;
        println!(
            "  warm-up (10 tuned endpoints, 2 s, not counted): {:.0} deliveries/s",
            w.rate
        );
        let mut ratios: HashMap<usize, Vec<f64>> = HashMap::new();
        let mut rates: HashMap<(usize, bool), Vec<f64>> = HashMap::new();
        for round in 0..args.rounds {
            for n in [1usize, 10] {
                let order = if round % 2 == 0 {
                    [true, false]
                } else {
                    [false, true]
                };
                let mut got: HashMap<bool, Measured> = HashMap::new();
                for default in order {
                    let tag = format!("r{round}n{n}{}", if default { "d" } else { "t" });
                    let mif = if default { 0 } else { TUNED };
                    let m = measure(args, server.addr, key, url, sink, d, n, mif, &tag).await;
                    let unit = if n == 1 { "msgs/s" } else { "deliveries/s" };
                    println!(
                        "  round {} {:>2} endpoint{} {:<7} published {:>6.0} msgs/s; {} -> {:>6.0} {unit} end to end \
                         (last delivery at {:.2} s){}; load {}",
                        round + 1,
                        n,
                        if n == 1 { " " } else { "s" },
                        if default { "default" } else { "tuned" },
                        m.published,
                        if m.complete { "all delivered" } else { "INCOMPLETE" },
                        m.rate,
                        m.span,
                        match m.limits {
                            Some((max, last)) =>
                                format!("; adaptive limit per endpoint max {max:.0}, last {last:.0}"),
                            None if default => "; no adaptive limit reported".into(),
                            None => String::new(),
                        },
                        loadavg(),
                    );
                    rates.entry((n, default)).or_default().push(m.rate);
                    got.insert(default, m);
                }
                let ratio = got[&true].rate / got[&false].rate.max(1e-9);
                println!(
                    "  round {} {:>2} endpoint(s): default/tuned = {ratio:.3}",
                    round + 1,
                    n
                );
                ratios.entry(n).or_default().push(ratio);
            }
        }
        for n in [1usize, 10] {
            let r = ratios.remove(&n).unwrap_or_default();
            let shown: Vec<String> = r.iter().map(|x| format!("{x:.3}")).collect();
            println!(
                "{n:>2} endpoint(s): median default {:.0}/s, tuned {:.0}/s; default/tuned per round [{}], median {:.3} \
                 (target >= 0.90)",
                median(rates.remove(&(n, true)).unwrap_or_default()),
                median(rates.remove(&(n, false)).unwrap_or_default()),
                shown.join(", "),
                median(r),
            );
        }
    }
}
