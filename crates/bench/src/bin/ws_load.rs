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
//! `cluster` (issue 5) instead starts several `marquee serve` nodes on
//! PostgreSQL + NATS, spreads idle subscribers of one channel over them and
//! publishes through node 1 (see the `cluster` module).
//!
//! ```text
//! cargo build --release -p marquee-server -p marquee-bench
//! target/release/ws_load run --idle-conns 19000 --fanout-subs 10000 --procs 4
//! target/release/ws_load cluster --subs 50000 --procs-per-node 2 --publishes 20 --interval-ms 3000
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
    /// Several `marquee serve` nodes on PostgreSQL + NATS, idle subscribers
    /// of one channel spread over them, publishes on node 1 (issue 5).
    Cluster(cluster::ClusterArgs),
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
    /// Give up on connections still not open after this long.
    #[arg(long, default_value_t = 600)]
    setup_timeout_secs: u64,
}

fn main() {
    let cli = Cli::parse();
    match cli.role {
        Role::Run(a) => runtime(true).block_on(run(a)),
        Role::BaselineServer { listen } => runtime(true).block_on(baseline_server(listen)),
        // A client process is single-threaded: the harness should not
        // out-compete the server for the two cores more than necessary.
        Role::Client(a) => {
            raise_nofile();
            runtime(false).block_on(client(a))
        }
        Role::Cluster(a) => {
            raise_nofile();
            runtime(true).block_on(cluster::run(a))
        }
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

/// Raises this process's soft RLIMIT_NOFILE to its hard limit (children
/// inherit it), with util-linux `prlimit` on our own pid: the bench crate
/// has no libc binding, and the hard limit (20,000 here) is the real ceiling.
fn raise_nofile() {
    let Ok(limits) = std::fs::read_to_string("/proc/self/limits") else {
        return;
    };
    let Some(line) = limits.lines().find(|l| l.starts_with("Max open files")) else {
        return;
    };
    let f: Vec<&str> = line.split_whitespace().collect();
    let (Some(soft), Some(hard)) = (f.get(3), f.get(4)) else {
        return;
    };
    if soft == hard {
        return;
    }
    let ok = std::process::Command::new("prlimit")
        .arg("--pid")
        .arg(std::process::id().to_string())
        .arg(format!("--nofile={hard}:{hard}"))
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("warning: could not raise the open-files limit from {soft} to {hard}");
    }
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
/// answered `{"event":"subscribed"}`.
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
                            } else if ws.send(Message::text(r#"{"event":"subscribed"}"#)).await.is_err() {
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
    /// (connection index, publish stamp, publish→receive µs) per received
    /// frame.
    latencies: Mutex<Vec<(u32, u64, u32)>>,
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
    let setup_deadline = Instant::now() + Duration::from_secs(a.setup_timeout_secs);
    for idx in 0..a.conns {
        let (a, state, ready, failed) = (a.clone(), state.clone(), ready.clone(), failed.clone());
        let Ok(Ok(permit)) =
            tokio::time::timeout_at(setup_deadline.into(), sem.clone().acquire_owned()).await
        else {
            break;
        };
        tokio::spawn(async move {
            let opened = tokio::time::timeout(Duration::from_secs(30), open(&a))
                .await
                .unwrap_or_else(|_| Err("connect timed out after 30 s".into()));
            match opened {
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
                                    state.latencies.lock().await.push((
                                        idx as u32,
                                        sent,
                                        us.min(u32::MAX as u64) as u32,
                                    ));
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
    while ready.load(Ordering::Relaxed) + failed.load(Ordering::Relaxed) < a.conns as u64
        && Instant::now() < setup_deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (r, f) = (ready.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    // Connections neither open nor failed by the deadline count as failed.
    let pending = (a.conns as u64).saturating_sub(r + f);
    say(json!({"ready": r, "failed": f + pending, "timed_out": pending})).await;
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
                let mut conns = Vec::with_capacity(l.len());
                let mut stamps = Vec::with_capacity(l.len());
                let mut us = Vec::with_capacity(l.len());
                for (c, s, u) in l {
                    conns.push(c);
                    stamps.push(s);
                    us.push(u);
                }
                say(json!({"conns": conns, "stamps": stamps, "lat_us": us})).await;
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
    /// Connections it opened (and subscribed).
    ready: u64,
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

/// What one client process connects to.
struct ClientSpec {
    addr: SocketAddr,
    key: Option<String>,
    conns: usize,
}

impl Fleet {
    async fn spawn(target: &Target, total: usize, procs: usize, channel: &str) -> (Fleet, u64, u64) {
        let specs: Vec<ClientSpec> = (0..procs)
            .map(|i| ClientSpec {
                addr: target.addr,
                key: target.key.clone(),
                conns: total / procs + usize::from(i < total % procs),
            })
            .collect();
        Fleet::spawn_specs(&specs, channel, &[]).await
    }

    /// One client process per spec, the i-th from source 127.0.0.(10+i).
    async fn spawn_specs(specs: &[ClientSpec], channel: &str, extra: &[String]) -> (Fleet, u64, u64) {
        let me = std::env::current_exe().expect("exe");
        let mut fleet = Vec::new();
        for (i, spec) in specs.iter().enumerate() {
            let n = spec.conns;
            let mut cmd = tokio::process::Command::new(&me);
            cmd.arg("client")
                .arg("--addr")
                .arg(spec.addr.to_string())
                .arg("--conns")
                .arg(n.to_string())
                .arg("--src")
                .arg(format!("127.0.0.{}", 10 + i))
                .arg("--channel")
                .arg(channel)
                .args(extra)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .kill_on_drop(true);
            if let Some(k) = &spec.key {
                cmd.arg("--key").arg(k);
            }
            let mut child = cmd.spawn().expect("spawn client");
            let stdin = child.stdin.take().expect("stdin");
            let stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
            fleet.push(ClientProc {
                child,
                stdin,
                stdout,
                ready: 0,
            });
        }
        let (mut ready, mut failed) = (0, 0);
        for c in &mut fleet {
            let v = c.read().await;
            c.ready = v["ready"].as_u64().unwrap_or(0);
            ready += c.ready;
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
    _proc: Box<dyn std::any::Any + Send + Sync>,
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

    /// Returns the send stamp carried in the payload.
    async fn publish(&mut self, channel: &str, n: usize) -> u64 {
        let stamp = now_ns();
        let data = json!({"fan_id": "fan_1", "gate": "MAIN", "t": stamp});
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
        stamp
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

// ----------------------------------------------------------------- cluster

/// `ws_load cluster`: issue 5's "beyond one process" proof. Several real
/// `marquee serve` nodes share one PostgreSQL schema and one NATS prefix;
/// `--subs` idle WebSocket subscribers of one channel are spread evenly over
/// the nodes from `--procs-per-node` client processes per node (each from
/// its own 127.0.0.x source); `--publishes` single-message publishes go
/// through node 1, and every (publish, subscriber) pair is accounted for.
mod cluster {
    use std::collections::HashMap;

    use super::*;
    use marquee_bench::{clk_tck, cpu_ticks, loadavg, machine_jiffies, pids_by_comm};

    /// CPU ticks used so far by: each node, all client processes,
    /// PostgreSQL (every `postgres` process), NATS; and the machine's
    /// (busy, total) jiffies.
    struct Cpu {
        nodes: Vec<u64>,
        clients: u64,
        postgres: u64,
        nats: u64,
        machine: (u64, u64),
    }

    fn cpu(nodes: &[Target], fleet: &Fleet) -> Cpu {
        let sum = |pids: Vec<u32>| pids.into_iter().filter_map(cpu_ticks).sum();
        Cpu {
            nodes: nodes.iter().map(|n| cpu_ticks(n.pid).unwrap_or(0)).collect(),
            clients: sum(fleet.0.iter().filter_map(|c| c.child.id()).collect()),
            postgres: sum(pids_by_comm("postgres")),
            nats: sum(pids_by_comm("nats-server")),
            machine: machine_jiffies().unwrap_or((0, 0)),
        }
    }

    const ADMIN_TOKEN: &str = "ws-load-cluster-admin-token";
    /// The shared server secret (every node must be given the same one).
    const SECRET: &str = "5a1e0c4d3b2a19f8e7d6c5b4a3928170605f4e3d2c1b0a99887766554433221f";
    const CHANNEL: &str = "venue:stadium";

    #[derive(Parser, Clone)]
    pub struct ClusterArgs {
        /// Idle subscribers in total, spread evenly over the nodes.
        #[arg(long, default_value_t = 50_000)]
        subs: usize,
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        /// Client processes per node (each at most ~19,000 sockets).
        #[arg(long, default_value_t = 2)]
        procs_per_node: usize,
        /// Single-message publishes through node 1.
        #[arg(long, default_value_t = 20)]
        publishes: usize,
        /// Pause between publishes.
        #[arg(long, default_value_t = 1000)]
        interval_ms: u64,
        #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/test")]
        database_url: String,
        #[arg(long, default_value = "nats://127.0.0.1:4222")]
        nats: String,
        /// The marquee binary (default: next to this one).
        #[arg(long)]
        marquee_bin: Option<PathBuf>,
        /// Extra `marquee serve` flags for every node.
        #[arg(long, allow_hyphen_values = true)]
        marquee_arg: Vec<String>,
        /// Connections not open after this long count as failed.
        #[arg(long, default_value_t = 600)]
        setup_timeout_secs: u64,
        /// The whole run (after the quiet wait) stops by itself after this.
        #[arg(long, default_value_t = 1200)]
        deadline_secs: u64,
        /// Before starting, wait up to this long for no other benchmark and
        /// a 1-minute load average below `--max-load`.
        #[arg(long, default_value_t = 600)]
        quiet_wait_secs: u64,
        #[arg(long, default_value_t = 2.0)]
        max_load: f64,
    }

    pub async fn run(args: ClusterArgs) {
        let load_at_start = wait_quiet(&args).await;
        let tag = format!("{}_{}", std::process::id(), now_ns() / 1_000_000 % 100_000_000);
        let schema = format!("mq_wsload_{tag}");
        let prefix = format!("wsload_{tag}");
        let mut task = tokio::spawn(body(args.clone(), schema.clone(), prefix, load_at_start));
        let deadline = Duration::from_secs(args.deadline_secs);
        let outcome = tokio::select! {
            r = tokio::time::timeout(deadline, &mut task) => match r {
                Ok(Ok(report)) => Some(report),
                Ok(Err(e)) => {
                    eprintln!("[cluster] the run failed: {e}");
                    None
                }
                Err(_) => {
                    eprintln!("[cluster] deadline of {} s reached: stopping", args.deadline_secs);
                    None
                }
            },
            _ = terminated() => {
                eprintln!("[cluster] interrupted: stopping");
                None
            }
        };
        // Dropping the task kills the nodes and the client processes.
        if !task.is_finished() {
            task.abort();
            let _ = task.await;
        }
        drop_schema(&args.database_url, &schema);
        match outcome {
            Some(report) => println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default()),
            None => std::process::exit(1),
        }
    }

    async fn terminated() {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut term) = signal(SignalKind::terminate()) else {
            return std::future::pending().await;
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }

    fn load1() -> f64 {
        loadavg()
            .split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    }

    /// Waits until no other benchmark runs and the load is below the bound
    /// (at most `--quiet-wait-secs`); returns the load average then.
    async fn wait_quiet(args: &ClusterArgs) -> String {
        let start = Instant::now();
        let mut last_note = None::<Instant>;
        loop {
            let others = std::process::Command::new("pgrep")
                .arg("-f")
                .arg("webhook_bench|publish_bench|ws_load run")
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).split_whitespace().count())
                .unwrap_or(0);
            let load = load1();
            if others == 0 && load < args.max_load {
                eprintln!(
                    "[cluster] quiet after {:.0} s: load average {}",
                    start.elapsed().as_secs_f64(),
                    loadavg()
                );
                return loadavg();
            }
            if start.elapsed() > Duration::from_secs(args.quiet_wait_secs) {
                eprintln!(
                    "[cluster] still not quiet after {} s ({others} other benchmark processes, load average {}): going ahead",
                    args.quiet_wait_secs,
                    loadavg()
                );
                return loadavg();
            }
            if last_note.is_none_or(|t| t.elapsed() > Duration::from_secs(30)) {
                eprintln!(
                    "[cluster] waiting: {others} other benchmark processes, load average {}",
                    loadavg()
                );
                last_note = Some(Instant::now());
            }
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
    }

    fn drop_schema(url: &str, schema: &str) {
        let ok = std::process::Command::new("psql")
            .arg(url)
            .arg("-qc")
            .env("PGOPTIONS", "-c client_min_messages=warning")
            .arg(format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            eprintln!("[cluster] dropped schema {schema}");
        } else {
            eprintln!("[cluster] could not drop schema {schema}: run DROP SCHEMA \"{schema}\" CASCADE");
        }
    }

    /// POST to node `addr`'s admin API; the JSON answer.
    async fn admin_post(addr: SocketAddr, path: &str, body: Value) -> Value {
        let mut c = Conn::open(addr).await.expect("admin connection");
        let tpl = Template {
            method: hyper::Method::POST,
            path: path.into(),
            headers: vec![
                ("authorization".into(), format!("Bearer {ADMIN_TOKEN}")),
                ("content-type".into(), "application/json".into()),
            ],
            body: Bytes::from(body.to_string()),
        };
        let (status, body) = c.send(tpl.build(&addr.to_string())).await.expect("admin request");
        assert!(status == 200 || status == 201, "admin {path}: {status} {body:?}");
        serde_json::from_slice(&body).expect("admin JSON")
    }

    fn rss_all(nodes: &[Target]) -> Vec<u64> {
        nodes.iter().map(|n| rss_kib(n.pid).unwrap_or(0)).collect()
    }

    async fn body(args: ClusterArgs, schema: String, prefix: String, load_at_start: String) -> Value {
        let bin = args
            .marquee_bin
            .clone()
            .unwrap_or_else(marquee_bench::default_marquee_bin);
        let nodes_n = args.nodes.max(1);
        let ppn = args.procs_per_node.max(1);
        let per_proc_max = args.subs.div_ceil(nodes_n * ppn);
        assert!(
            per_proc_max <= 19_000,
            "{per_proc_max} sockets per client process: raise --procs-per-node (a process may hold 20,000 fds)"
        );
        let env = [
            ("MARQUEE_DATABASE_URL", args.database_url.as_str()),
            ("MARQUEE_DATABASE_SCHEMA", schema.as_str()),
            ("MARQUEE_SERVER_SECRET", SECRET),
            ("MARQUEE_ADMIN_TOKEN", ADMIN_TOKEN),
        ];
        let max_conns = args.subs.max(1000).to_string();
        let mut flags: Vec<&str> = vec![
            "--nats",
            &args.nats,
            "--nats-prefix",
            &prefix,
            "--stream-max-connections-per-key",
            &max_conns,
            "--rate-limit-enterprise",
            "1000000",
        ];
        flags.extend(args.marquee_arg.iter().map(String::as_str));
        eprintln!("[cluster] schema {schema}, NATS prefix {prefix}; starting {nodes_n} nodes");
        let mut nodes = Vec::new();
        for i in 0..nodes_n {
            let server = start_server(&bin, None, &flags, &env).await;
            eprintln!(
                "[cluster] node {} on {} (pid {})",
                i + 1,
                server.addr,
                server.child.id()
            );
            nodes.push(Target {
                name: "node",
                addr: server.addr,
                key: None,
                pid: server.child.id(),
                _proc: Box::new(server),
            });
        }
        let org = admin_post(
            nodes[0].addr,
            "/admin/v1/orgs",
            json!({"name": "ws-load-cluster"}),
        )
        .await;
        let org = org["id"].as_str().expect("org id").to_owned();
        let key = admin_post(
            nodes[0].addr,
            &format!("/admin/v1/orgs/{org}/keys"),
            json!({"tier": "enterprise"}),
        )
        .await;
        let key = key["key"].as_str().expect("key").to_owned();
        for n in &mut nodes {
            n.key = Some(key.clone());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let rss_idle = rss_all(&nodes);

        // Subscribers: node i gets subs/nodes (+1 for the first remainders),
        // split over its client processes.
        let mut specs = Vec::new();
        let mut proc_node = Vec::new();
        for (i, n) in nodes.iter().enumerate() {
            let on_node = args.subs / nodes_n + usize::from(i < args.subs % nodes_n);
            for j in 0..ppn {
                specs.push(ClientSpec {
                    addr: n.addr,
                    key: Some(key.clone()),
                    conns: on_node / ppn + usize::from(j < on_node % ppn),
                });
                proc_node.push(i);
            }
        }
        eprintln!(
            "[cluster] opening {} subscribers of {CHANNEL}: {} client processes, ≤ {per_proc_max} each",
            args.subs,
            specs.len()
        );
        let t0 = Instant::now();
        let extra = vec![
            "--setup-timeout-secs".to_owned(),
            args.setup_timeout_secs.to_string(),
        ];
        let (mut fleet, subs, failed) = Fleet::spawn_specs(&specs, CHANNEL, &extra).await;
        let setup_s = t0.elapsed().as_secs_f64();
        let load_after_setup = loadavg();
        eprintln!(
            "[cluster] {subs} subscribed ({failed} failed) in {setup_s:.1} s; load average {load_after_setup}"
        );
        let per_node_subs: Vec<u64> = (0..nodes_n)
            .map(|i| {
                fleet
                    .0
                    .iter()
                    .zip(&proc_node)
                    .filter(|(_, n)| **n == i)
                    .map(|(c, _)| c.ready)
                    .sum()
            })
            .collect();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let rss_subscribed = rss_all(&nodes);
        let client_rss: u64 = fleet
            .0
            .iter()
            .filter_map(|c| c.child.id().and_then(rss_kib))
            .sum();
        let (_, closed_before) = fleet.counts().await;
        let cpu0 = cpu(&nodes, &fleet);
        let phase = Instant::now();

        // Publishes through node 1, one message at a time.
        fleet.ask_all("lat_start").await;
        let mut publisher = Publisher::new(&nodes[0]).await;
        let mut published = Vec::new();
        let mut publish_us = Vec::new();
        for _ in 0..args.publishes {
            let t = Instant::now();
            published.push(publisher.publish(CHANNEL, 1).await);
            publish_us.push(t.elapsed().as_micros() as u64);
            tokio::time::sleep(Duration::from_millis(args.interval_ms)).await;
        }
        // Let the last publish (and any straggler) arrive everywhere.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let cpu1 = cpu(&nodes, &fleet);
        let phase_s = phase.elapsed().as_secs_f64();
        let (_, closed_after) = fleet.counts().await;
        let rss_after = rss_all(&nodes);
        let load_at_end = loadavg();
        let reports = fleet.ask_all("lat_report").await;
        let ready: Vec<u64> = fleet.0.iter().map(|c| c.ready).collect();
        let sizes: Vec<usize> = specs.iter().map(|s| s.conns).collect();
        fleet.stop().await;

        // Account for every (publish, subscriber) pair.
        let stamp_ix: HashMap<u64, usize> = published.iter().enumerate().map(|(i, s)| (*s, i)).collect();
        let p = published.len();
        let mut lat_all = Vec::new();
        let mut lat_node: Vec<Vec<u64>> = vec![Vec::new(); nodes_n];
        let mut per_publish: Vec<Vec<u64>> = vec![Vec::new(); p];
        // Per publish and node: its first subscriber's latency (node 1 is
        // local to the publish; the others add the NATS hop and their read
        // of the log from PostgreSQL).
        let mut first_on_node: Vec<Vec<u64>> = vec![vec![u64::MAX; nodes_n]; p];
        let (mut duplicates, mut unknown, mut incomplete_subs) = (0u64, 0u64, 0u64);
        for (k, v) in reports.iter().enumerate() {
            let field = |name: &str| -> Vec<u64> {
                v[name]
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_u64).collect())
                    .unwrap_or_default()
            };
            let (conns, stamps, us) = (field("conns"), field("stamps"), field("lat_us"));
            // seen[conn][publish]
            let mut seen = vec![vec![false; p]; sizes[k]];
            for ((c, s), u) in conns.iter().zip(&stamps).zip(&us) {
                let Some(&ix) = stamp_ix.get(s) else {
                    unknown += 1;
                    continue;
                };
                let Some(slot) = seen.get_mut(*c as usize).map(|r| &mut r[ix]) else {
                    unknown += 1;
                    continue;
                };
                if *slot {
                    duplicates += 1;
                    continue;
                }
                *slot = true;
                lat_all.push(*u);
                lat_node[proc_node[k]].push(*u);
                per_publish[ix].push(*u);
                let f = &mut first_on_node[ix][proc_node[k]];
                *f = (*f).min(*u);
            }
            // Connections that never opened receive nothing; do not count
            // them as subscribers that missed messages.
            let never_opened = sizes[k] as u64 - ready[k];
            let partial = seen.iter().filter(|r| r.iter().any(|b| !b)).count() as u64;
            incomplete_subs += partial.saturating_sub(never_opened);
        }
        let expected = subs * p as u64;
        let delivered = lat_all.len() as u64;
        lat_all.sort_unstable();
        for l in &mut lat_node {
            l.sort_unstable();
        }
        // Per publish: when its last subscriber got it (publish → all).
        let mut reach_all: Vec<u64> = per_publish
            .iter()
            .map(|l| l.iter().copied().max().unwrap_or(0))
            .collect();
        reach_all.sort_unstable();
        publish_us.sort_unstable();
        let (p50, p99) = (pct(&lat_all, 50.0), pct(&lat_all, 99.0));
        let max = lat_all.last().copied().unwrap_or(0) as f64 / 1000.0;
        eprintln!(
            "[cluster] {delivered} of {expected} (publish, subscriber) pairs delivered ({} missing, {incomplete_subs} subscribers missed ≥ 1, {duplicates} duplicates); publish→receive p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms; publish→last subscriber p50 {:.1} ms, max {:.1} ms",
            expected.saturating_sub(delivered),
            pct(&reach_all, 50.0),
            reach_all.last().copied().unwrap_or(0) as f64 / 1000.0,
        );
        // CPU used during the publish phase, in cores (of the machine's 2).
        let hz = clk_tck() * phase_s;
        let cores = |a: u64, b: u64| b.saturating_sub(a) as f64 / hz;
        let (busy, total) = (
            cpu1.machine.0.saturating_sub(cpu0.machine.0),
            cpu1.machine.1.saturating_sub(cpu0.machine.1),
        );
        let node_cores: Vec<f64> = (0..nodes_n)
            .map(|i| cores(cpu0.nodes[i], cpu1.nodes[i]))
            .collect();
        let cpu_report = json!({
            "phase_secs": phase_s,
            "nodes_cores": node_cores,
            "clients_cores": cores(cpu0.clients, cpu1.clients),
            "postgres_cores": cores(cpu0.postgres, cpu1.postgres),
            "nats_cores": cores(cpu0.nats, cpu1.nats),
            "machine_busy_fraction": busy as f64 / total.max(1) as f64,
        });
        eprintln!("[cluster] CPU during the publishes (cores): {cpu_report}");
        let mut per_node = Vec::new();
        for i in 0..nodes_n {
            let mut first: Vec<u64> = first_on_node
                .iter()
                .map(|r| r[i])
                .filter(|&u| u != u64::MAX)
                .collect();
            first.sort_unstable();
            eprintln!(
                "[cluster] node {}: first subscriber p50 {:.1} ms, max {:.1} ms",
                i + 1,
                pct(&first, 50.0),
                first.last().copied().unwrap_or(0) as f64 / 1000.0
            );
            eprintln!(
                "[cluster] node {}: {} subscribers, p50 {:.1} ms, p99 {:.1} ms; RSS {} -> {} -> {} KiB (idle, subscribed, after publishes)",
                i + 1,
                per_node_subs[i],
                pct(&lat_node[i], 50.0),
                pct(&lat_node[i], 99.0),
                rss_idle[i],
                rss_subscribed[i],
                rss_after[i],
            );
            per_node.push(json!({
                "node": i + 1, "addr": nodes[i].addr.to_string(), "subscribers": per_node_subs[i],
                "received": lat_node[i].len(), "p50_ms": pct(&lat_node[i], 50.0), "p99_ms": pct(&lat_node[i], 99.0),
                "first_subscriber_p50_ms": pct(&first, 50.0),
                "first_subscriber_max_ms": first.last().copied().unwrap_or(0) as f64 / 1000.0,
                "cpu_cores_during_publishes": node_cores[i],
                "rss_idle_kib": rss_idle[i], "rss_subscribed_kib": rss_subscribed[i], "rss_after_publishes_kib": rss_after[i],
            }));
        }
        let total_rss: u64 = rss_subscribed.iter().sum();
        let total_idle: u64 = rss_idle.iter().sum();
        eprintln!(
            "[cluster] total node RSS {total_rss} KiB subscribed ({:.2} KiB per subscriber above idle); client processes {client_rss} KiB; connections closed {} during publishes; load average {load_at_start} at start, {load_at_end} at end",
            total_rss.saturating_sub(total_idle) as f64 / subs.max(1) as f64,
            closed_after.saturating_sub(closed_before),
        );
        json!({
            "nodes": nodes_n, "subscribers": subs, "subscribe_failed": failed, "setup_secs": setup_s,
            "client_processes": specs.len(), "publishes": p, "interval_ms": args.interval_ms,
            "expected_pairs": expected, "delivered_pairs": delivered, "missing_pairs": expected.saturating_sub(delivered),
            "subscribers_missing_some": incomplete_subs, "duplicates": duplicates, "unknown_frames": unknown,
            "p50_ms": p50, "p99_ms": p99, "max_ms": max,
            "publish_to_last_subscriber_p50_ms": pct(&reach_all, 50.0),
            "publish_to_last_subscriber_max_ms": reach_all.last().copied().unwrap_or(0) as f64 / 1000.0,
            "publish_request_p50_ms": pct(&publish_us, 50.0),
            "publish_request_max_ms": publish_us.last().copied().unwrap_or(0) as f64 / 1000.0,
            "closed_before_publishes": closed_before, "closed_during_publishes": closed_after.saturating_sub(closed_before),
            "per_node": per_node, "node_rss_idle_kib_total": total_idle, "node_rss_subscribed_kib_total": total_rss,
            "node_rss_after_publishes_kib_total": rss_after.iter().sum::<u64>(), "client_rss_kib_total": client_rss,
            "cpu": cpu_report,
            "load_at_start": load_at_start, "load_after_setup": load_after_setup, "load_at_end": load_at_end,
        })
    }
}
