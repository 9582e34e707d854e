//! WebSocket stream load harness (not a timed test).
//!
//! Drives the real `marquee` binary and, in the same run, a minimal
//! tokio-tungstenite broadcast server (the physical-limit baseline: same
//! socket settings, same feed-then-flush batching, no auth, no store, no
//! routing) with the same client processes, and reports for each:
//!
//! 1. server RSS per idle connection (`/proc/PID/status` VmRSS before and
//!    after opening `--idle-conns` subscribed connections);
//! 2. one publish fanned out to `--fanout-subs` subscribers of one channel:
//!    p50/p99 publish→receive over every (publish, subscriber) pair;
//! 3. sustained delivered frames/s while publishing at `--rate` messages/s.
//!
//! Clients run in `--procs` child processes (this binary, `client` role), each
//! from its own 127.0.0.x source address so the ephemeral-port range and the
//! per-process file-descriptor limit (20,000 here) are not a ceiling.
//!
//! ```text
//! cargo build --release -p marquee-server -p marquee-bench
//! target/release/ws_load run --idle-conns 19000 --fanout-subs 10000 --procs 4
//! ```

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use clap::{Parser, Subcommand};
use futures_util::{SinkExt, StreamExt};
use marquee_bench::{Conn, Template, percentile, provision_key, rss_kib, start_server};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{Mutex, broadcast};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    role: Role,
}

#[derive(Subcommand)]
enum Role {
    /// Coordinate a full run against marquee and the baseline.
    Run(RunArgs),
    /// The baseline broadcast server.
    BaselineServer {
        #[arg(long)]
        listen: SocketAddr,
    },
    /// A client process: opens connections, answers commands on stdin.
    Client(ClientArgs),
}

#[derive(Parser, Clone)]
struct RunArgs {
    #[arg(long, default_value_t = 19_000)]
    idle_conns: usize,
    #[arg(long, default_value_t = 10_000)]
    fanout_subs: usize,
    #[arg(long, default_value_t = 4)]
    procs: usize,
    /// Publishes for the latency phase.
    #[arg(long, default_value_t = 30)]
    publishes: usize,
    /// Offered messages/s in the throughput phase.
    #[arg(long, default_value_t = 300)]
    rate: u64,
    #[arg(long, default_value_t = 5)]
    throughput_secs: u64,
    /// Messages per publish request in the throughput phase.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Concurrent publishers in the throughput phase.
    #[arg(long, default_value_t = 4)]
    publishers: usize,
    /// The marquee binary (default: next to this one).
    #[arg(long)]
    marquee_bin: Option<PathBuf>,
    /// Only run one target: "marquee" or "baseline".
    #[arg(long)]
    only: Option<String>,
    /// Extra `marquee serve` flags, e.g. "--stream-read-buffer-bytes=4096".
    #[arg(long, allow_hyphen_values = true)]
    marquee_arg: Vec<String>,
}

#[derive(Parser, Clone)]
struct ClientArgs {
    #[arg(long)]
    addr: SocketAddr,
    #[arg(long)]
    key: Option<String>,
    #[arg(long)]
    conns: usize,
    #[arg(long)]
    src: IpAddr,
    #[arg(long)]
    channel: String,
}

fn main() {
    let cli = Cli::parse();
    match cli.role {
        Role::Run(a) => runtime(true).block_on(run(a)),
        Role::BaselineServer { listen } => runtime(true).block_on(baseline_server(listen)),
        // A client process is single-threaded: the harness should not
        // out-compete the server for the two cores more than necessary.
        Role::Client(a) => runtime(false).block_on(client(a)),
    }
}

fn runtime(multi: bool) -> tokio::runtime::Runtime {
    let mut b = if multi {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    b.enable_all().build().expect("runtime")
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

// ---------------------------------------------------------------- baseline

/// Minimal broadcast server: a text frame starting with `PUB <n> ` makes it
/// broadcast the rest `n` times to every connection; any other text frame is
/// answered `{"type":"subscribed"}`.
async fn baseline_server(listen: SocketAddr) {
    let listener = TcpListener::bind(listen).await.expect("bind");
    let (tx, _) = broadcast::channel::<tokio_tungstenite::tungstenite::Utf8Bytes>(4096);
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let tx = tx.clone();
        tokio::spawn(async move {
            let cfg = WebSocketConfig::default()
                .read_buffer_size(4096)
                .write_buffer_size(16 * 1024)
                .max_message_size(Some(4096));
            let Ok(mut ws) = tokio_tungstenite::accept_async_with_config(tcp, Some(cfg)).await else {
                return;
            };
            let mut rx = tx.subscribe();
            loop {
                tokio::select! {
                    m = ws.next() => match m {
                        Some(Ok(Message::Text(t))) => {
                            if let Some(rest) = t.as_str().strip_prefix("PUB ") {
                                let (n, body) = rest.split_once(' ').unwrap_or(("1", rest));
                                let body = tokio_tungstenite::tungstenite::Utf8Bytes::from(body.to_owned());
                                for _ in 0..n.parse::<usize>().unwrap_or(1) {
                                    let _ = tx.send(body.clone());
                                }
                            } else if ws.send(Message::text(r#"{"type":"subscribed"}"#)).await.is_err() {
                                return;
                            }
                        }
                        Some(Ok(_)) => {}
                        _ => return,
                    },
                    f = rx.recv() => {
                        let mut next = Some(f);
                        let mut n = 0;
                        while let Some(f) = next.take() {
                            match f {
                                Ok(t) => {
                                    if ws.feed(Message::Text(t)).await.is_err() {
                                        return;
                                    }
                                    n += 1;
                                }
                                Err(broadcast::error::RecvError::Lagged(_)) => {}
                                Err(broadcast::error::RecvError::Closed) => return,
                            }
                            if n < 256 {
                                next = match rx.try_recv() {
                                    Ok(t) => Some(Ok(t)),
                                    Err(broadcast::error::TryRecvError::Lagged(k)) => Some(Err(broadcast::error::RecvError::Lagged(k))),
                                    Err(_) => None,
                                };
                            }
                        }
                        if ws.flush().await.is_err() {
                            return;
                        }
                    }
                }
            }
        });
    }
}

// ------------------------------------------------------------------ client

struct ClientState {
    frames: AtomicU64,
    closed: AtomicU64,
    measuring: AtomicBool,
    /// (publish stamp, publish→receive µs) per received frame.
    latencies: Mutex<Vec<(u64, u32)>>,
}

async fn client(a: ClientArgs) {
    let state = Arc::new(ClientState {
        frames: AtomicU64::new(0),
        closed: AtomicU64::new(0),
        measuring: AtomicBool::new(false),
        latencies: Mutex::new(Vec::new()),
    });
    let ready = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let sem = Arc::new(tokio::sync::Semaphore::new(256));
    for _ in 0..a.conns {
        let (a, state, ready, failed) = (a.clone(), state.clone(), ready.clone(), failed.clone());
        let permit = sem.clone().acquire_owned().await.expect("semaphore");
        tokio::spawn(async move {
            match open(&a).await {
                Ok(mut ws) => {
                    ready.fetch_add(1, Ordering::Relaxed);
                    drop(permit);
                    while let Some(m) = ws.next().await {
                        match m {
                            Ok(Message::Text(t)) => {
                                state.frames.fetch_add(1, Ordering::Relaxed);
                                if state.measuring.load(Ordering::Relaxed)
                                    && let Some(sent) = stamp(t.as_str())
                                {
                                    let us = now_ns().saturating_sub(sent) / 1000;
                                    state
                                        .latencies
                                        .lock()
                                        .await
                                        .push((sent, us.min(u32::MAX as u64) as u32));
                                }
                            }
                            Ok(Message::Close(_)) | Err(_) => break,
                            Ok(_) => {}
                        }
                    }
                    state.closed.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    failed.fetch_add(1, Ordering::Relaxed);
                    drop(permit);
                    eprintln!("client connect failed: {e}");
                }
            }
        });
    }
    while ready.load(Ordering::Relaxed) + failed.load(Ordering::Relaxed) < a.conns as u64 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    say(json!({"ready": ready.load(Ordering::Relaxed), "failed": failed.load(Ordering::Relaxed)})).await;
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(cmd)) = lines.next_line().await {
        match cmd.trim() {
            "count" => {
                say(json!({"frames": state.frames.load(Ordering::Relaxed), "closed": state.closed.load(Ordering::Relaxed)})).await
            }
            "lat_start" => {
                state.latencies.lock().await.clear();
                state.measuring.store(true, Ordering::Relaxed);
                say(json!({"ok": true})).await;
            }
            "lat_report" => {
                state.measuring.store(false, Ordering::Relaxed);
                let l = std::mem::take(&mut *state.latencies.lock().await);
                let (stamps, us): (Vec<u64>, Vec<u32>) = l.into_iter().unzip();
                say(json!({"stamps": stamps, "lat_us": us})).await;
            }
            _ => break,
        }
    }
    std::process::exit(0);
}

async fn say(v: Value) {
    let mut out = tokio::io::stdout();
    let _ = out.write_all(format!("{v}\n").as_bytes()).await;
    let _ = out.flush().await;
}

/// The `"t":<ns>` stamp inside a frame's payload.
fn stamp(text: &str) -> Option<u64> {
    let i = text.find("\"t\":")? + 4;
    let digits: &str = &text[i..];
    let end = digits.find(|c: char| !c.is_ascii_digit()).unwrap_or(digits.len());
    digits[..end].parse().ok()
}

type ClientWs = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

async fn open(a: &ClientArgs) -> Result<ClientWs, String> {
    let sock = TcpSocket::new_v4().map_err(|e| e.to_string())?;
    sock.bind(SocketAddr::new(a.src, 0)).map_err(|e| e.to_string())?;
    let tcp = sock.connect(a.addr).await.map_err(|e| e.to_string())?;
    let _ = tcp.set_nodelay(true);
    let mut req = format!("ws://{}/v1/stream", a.addr)
        .into_client_request()
        .map_err(|e| e.to_string())?;
    if let Some(k) = &a.key {
        req.headers_mut()
            .insert("x-api-key", k.parse().map_err(|_| "bad key")?);
    }
    let cfg = WebSocketConfig::default()
        .read_buffer_size(16 * 1024)
        .write_buffer_size(0);
    let (mut ws, _) = tokio_tungstenite::client_async_with_config(req, tcp, Some(cfg))
        .await
        .map_err(|e| e.to_string())?;
    ws.send(Message::text(
        json!({"action": "subscribe", "channel": a.channel}).to_string(),
    ))
    .await
    .map_err(|e| e.to_string())?;
    // Wait for the ack so "ready" means subscribed.
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) if t.as_str().contains("subscribed") => return Ok(ws),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(e.to_string()),
            None => return Err("closed before ack".into()),
        }
    }
}

// ------------------------------------------------------------- coordinator

struct ClientProc {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    stdout: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

impl ClientProc {
    async fn ask(&mut self, cmd: &str) -> Value {
        self.stdin
            .write_all(format!("{cmd}\n").as_bytes())
            .await
            .expect("client stdin");
        self.read().await
    }

    async fn read(&mut self) -> Value {
        let line = self
            .stdout
            .next_line()
            .await
            .expect("client stdout")
            .expect("client line");
        serde_json::from_str(&line).expect("client JSON")
    }
}

struct Fleet(Vec<ClientProc>);

impl Fleet {
    async fn spawn(target: &Target, total: usize, procs: usize, channel: &str) -> (Fleet, u64, u64) {
        let me = std::env::current_exe().expect("exe");
        let mut fleet = Vec::new();
        for i in 0..procs {
            let n = total / procs + usize::from(i < total % procs);
            let mut cmd = tokio::process::Command::new(&me);
            cmd.arg("client")
                .arg("--addr")
                .arg(target.addr.to_string())
                .arg("--conns")
                .arg(n.to_string())
                .arg("--src")
                .arg(format!("127.0.0.{}", 10 + i))
                .arg("--channel")
                .arg(channel)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .kill_on_drop(true);
            if let Some(k) = &target.key {
                cmd.arg("--key").arg(k);
            }
            let mut child = cmd.spawn().expect("spawn client");
            let stdin = child.stdin.take().expect("stdin");
            let stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
            fleet.push(ClientProc { child, stdin, stdout });
        }
        let (mut ready, mut failed) = (0, 0);
        for c in &mut fleet {
            let v = c.read().await;
            ready += v["ready"].as_u64().unwrap_or(0);
            failed += v["failed"].as_u64().unwrap_or(0);
        }
        (Fleet(fleet), ready, failed)
    }

    async fn ask_all(&mut self, cmd: &str) -> Vec<Value> {
        let mut out = Vec::new();
        for c in &mut self.0 {
            out.push(c.ask(cmd).await);
        }
        out
    }

    async fn counts(&mut self) -> (u64, u64) {
        let vs = self.ask_all("count").await;
        let f = vs.iter().map(|v| v["frames"].as_u64().unwrap_or(0)).sum();
        let c = vs.iter().map(|v| v["closed"].as_u64().unwrap_or(0)).sum();
        (f, c)
    }

    async fn stop(mut self) {
        for c in &mut self.0 {
            let _ = c.stdin.write_all(b"quit\n").await;
            let _ = c.child.wait().await;
        }
    }
}

struct Target {
    name: &'static str,
    addr: SocketAddr,
    key: Option<String>,
    pid: u32,
    _proc: Box<dyn std::any::Any>,
}

async fn start_target(name: &'static str, args: &RunArgs) -> Target {
    if name == "baseline" {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        let child = tokio::process::Command::new(std::env::current_exe().expect("exe"))
            .arg("baseline-server")
            .arg("--listen")
            .arg(addr.to_string())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn baseline");
        let pid = child.id().unwrap_or(0);
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        return Target {
            name,
            addr,
            key: None,
            pid,
            _proc: Box::new(child),
        };
    }
    let bin = args
        .marquee_bin
        .clone()
        .unwrap_or_else(marquee_bench::default_marquee_bin);
    let dir = tempfile::tempdir().expect("tempdir");
    let key = provision_key(&bin, dir.path());
    let mut flags = vec![
        "--stream-max-connections-per-key",
        "100000",
        "--rate-limit-enterprise",
        "10000000",
    ];
    flags.extend(args.marquee_arg.iter().map(String::as_str));
    let server = start_server(&bin, Some(dir.path()), &flags, &[]).await;
    Target {
        name,
        addr: server.addr,
        key: Some(key),
        pid: server.child.id(),
        _proc: Box::new((server, dir)),
    }
}

/// Publishes `n` messages (one request) whose payload carries a send stamp.
struct Publisher {
    http: Option<(Conn, String)>,
    ws: Option<ClientWs>,
    addr: SocketAddr,
}

impl Publisher {
    async fn new(t: &Target) -> Publisher {
        match &t.key {
            Some(k) => Publisher {
                http: Some((Conn::open(t.addr).await.expect("publisher conn"), k.clone())),
                ws: None,
                addr: t.addr,
            },
            None => {
                let (ws, _) = tokio_tungstenite::client_async(
                    format!("ws://{}/", t.addr),
                    tokio::net::TcpStream::connect(t.addr).await.expect("connect"),
                )
                .await
                .expect("baseline publisher");
                Publisher {
                    http: None,
                    ws: Some(ws),
                    addr: t.addr,
                }
            }
        }
    }

    async fn publish(&mut self, channel: &str, n: usize) {
        let data = json!({"fan_id": "fan_1", "gate": "MAIN", "t": now_ns()});
        if let Some((conn, key)) = &mut self.http {
            let msg = json!({"type": "fan_checkin", "channels": [channel], "data": data});
            let (path, body) = if n == 1 {
                ("/v1/messages", msg)
            } else {
                ("/v1/messages/batch", json!({"messages": vec![msg; n]}))
            };
            let tpl = Template {
                method: hyper::Method::POST,
                path: path.into(),
                headers: vec![
                    ("x-api-key".into(), key.clone()),
                    ("content-type".into(), "application/json".into()),
                ],
                body: Bytes::from(body.to_string()),
            };
            let (status, body) = conn
                .send(tpl.build(&self.addr.to_string()))
                .await
                .expect("publish");
            assert!(status == 201 || status == 200, "publish: {status} {body:?}");
        } else if let Some(ws) = &mut self.ws {
            // The same frame shape marquee sends, so the clients parse alike.
            let frame = json!({"type": "fan_checkin", "id": "msg_x", "cursor": "0000000000001", "channel": channel, "payload": data, "occurred_at": "2026-01-01T00:00:00Z"});
            ws.send(Message::text(format!("PUB {n} {frame}")))
                .await
                .expect("baseline publish");
        }
    }
}

fn pct(sorted: &[u64], p: f64) -> f64 {
    percentile(sorted, p) as f64 / 1000.0
}

async fn run(args: RunArgs) {
    let targets: Vec<&'static str> = match args.only.as_deref() {
        Some("marquee") => vec!["marquee"],
        Some("baseline") => vec!["baseline"],
        _ => vec!["baseline", "marquee"],
    };
    let mut report = Vec::new();
    for name in targets {
        // 1. RSS per idle connection, on a fresh server.
        let t = start_target(name, &args).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let rss0 = rss_kib(t.pid).unwrap_or(0);
        let (fleet, ready, failed) = Fleet::spawn(&t, args.idle_conns, args.procs, "venue:idle").await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let rss1 = rss_kib(t.pid).unwrap_or(0);
        let per_conn_kib = (rss1.saturating_sub(rss0)) as f64 / ready.max(1) as f64;
        eprintln!(
            "[{name}] idle: {ready} connected ({failed} failed), RSS {rss0} -> {rss1} KiB = {per_conn_kib:.2} KiB/conn"
        );
        fleet.stop().await;
        drop(t);

        // 2. Fan-out latency and 3. throughput, on another fresh server.
        let t = start_target(name, &args).await;
        let (mut fleet, subs, sub_failed) = Fleet::spawn(&t, args.fanout_subs, args.procs, "venue:fan").await;
        let mut publisher = Publisher::new(&t).await;
        fleet.ask_all("lat_start").await;
        // How long the publish request itself takes (for marquee: HTTP and
        // the durable commit), to read the fan-out numbers against.
        let mut publish_us: Vec<u64> = Vec::new();
        for _ in 0..args.publishes {
            let t0 = Instant::now();
            publisher.publish("venue:fan", 1).await;
            publish_us.push(t0.elapsed().as_micros() as u64);
            tokio::time::sleep(Duration::from_millis(400)).await;
        }
        publish_us.sort_unstable();
        let publish_p50 = pct(&publish_us, 50.0);
        let publish_max = publish_us.last().copied().unwrap_or(0) as f64 / 1000.0;
        tokio::time::sleep(Duration::from_millis(500)).await;
        // Per (publish, subscriber): publish→receive, and the fan-out spread
        // (receive − that publish's first receive), which leaves out the
        // publish path (for marquee: HTTP and the durable commit).
        let mut pairs: Vec<(u64, u64)> = Vec::new();
        for v in fleet.ask_all("lat_report").await {
            let stamps = v["stamps"].as_array().cloned().unwrap_or_default();
            let us = v["lat_us"].as_array().cloned().unwrap_or_default();
            pairs.extend(
                stamps
                    .iter()
                    .zip(us.iter())
                    .filter_map(|(s, u)| Some((s.as_u64()?, u.as_u64()?))),
            );
        }
        let mut first: std::collections::HashMap<u64, u64> = std::collections::HashMap::new();
        for &(s, u) in &pairs {
            let e = first.entry(s).or_insert(u);
            *e = (*e).min(u);
        }
        let mut lats: Vec<u64> = pairs.iter().map(|p| p.1).collect();
        let mut spread: Vec<u64> = pairs.iter().map(|&(s, u)| u - first[&s]).collect();
        lats.sort_unstable();
        spread.sort_unstable();
        let expected = subs * args.publishes as u64;
        let (p50, p99) = (pct(&lats, 50.0), pct(&lats, 99.0));
        let (s50, s99) = (pct(&spread, 50.0), pct(&spread, 99.0));
        eprintln!(
            "[{name}] fan-out to {subs} subs ({sub_failed} failed): {} of {expected} received; publish→receive p50 {p50:.1} ms, p99 {p99:.1} ms; fan-out spread p50 {s50:.1} ms, p99 {s99:.1} ms (publish request p50 {publish_p50:.2} ms, max {publish_max:.2} ms)",
            lats.len()
        );

        let batch = args.batch.max(1);
        let (f0, c0) = fleet.counts().await;
        let start = Instant::now();
        let dur = Duration::from_secs(args.throughput_secs);
        // Several open-loop publishers, each offering its share of the
        // rate, so one slow (durable) publish does not throttle the offer.
        let publishers = args.publishers.max(1);
        let per_batch = Duration::from_secs_f64(batch as f64 * publishers as f64 / args.rate.max(1) as f64);
        let mut tasks = Vec::new();
        let mut pubs = vec![publisher];
        for _ in 1..publishers {
            pubs.push(Publisher::new(&t).await);
        }
        for (k, mut p) in pubs.into_iter().enumerate() {
            tasks.push(tokio::spawn(async move {
                let mut next = start + per_batch.mul_f64(k as f64 / publishers as f64);
                tokio::time::sleep_until(next.into()).await;
                let mut sent = 0u64;
                while start.elapsed() < dur {
                    p.publish("venue:fan", batch).await;
                    sent += batch as u64;
                    next += per_batch;
                    if let Some(wait) = next.checked_duration_since(Instant::now()) {
                        tokio::time::sleep(wait).await;
                    }
                }
                sent
            }));
        }
        let mut published = 0u64;
        for task in tasks {
            published += task.await.unwrap_or(0);
        }
        let (f_end, _) = fleet.counts().await;
        let window = start.elapsed().as_secs_f64();
        // Let the tail drain, then count everything delivered.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (f1, c1) = fleet.counts().await;
        let fps = (f_end - f0) as f64 / window;
        let delivered = f1 - f0;
        let offered = (args.rate as f64 * window) as u64 * subs;
        eprintln!(
            "[{name}] throughput: {fps:.0} frames/s delivered during the {window:.1} s window; {published} messages published, {delivered} of ~{offered} offered frames delivered in total; {} connections closed",
            c1 - c0
        );
        fleet.stop().await;
        report.push(json!({
            "target": t.name,
            "idle_conns": ready, "idle_failed": failed, "rss_before_kib": rss0, "rss_after_kib": rss1,
            "rss_per_idle_conn_kib": per_conn_kib,
            "fanout_subs": subs, "fanout_received": lats.len(), "fanout_expected": expected,
            "p50_ms": p50, "p99_ms": p99, "spread_p50_ms": s50, "spread_p99_ms": s99, "publish_request_p50_ms": publish_p50, "publish_request_max_ms": publish_max,
            "throughput_frames_per_sec": fps, "throughput_delivered": delivered, "throughput_closed": c1 - c0,
        }));
        drop(t);
    }
    println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
}
