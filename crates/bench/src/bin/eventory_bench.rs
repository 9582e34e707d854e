//! Eventory fan-out benchmark (issue 12), one run, one server:
//!
//! - `--identities` API keys (identities) of one `eventory` organization,
//!   each with `--entries` watchlist entries on distinct events out of
//!   `--events` (identity `i` watches events `i + 25·j`, so every event has
//!   the same number of watchers);
//! - the platform publishes `inventory.snapshot` SeatMaps of `--sections`
//!   sections at `--rate`/s, round-robin over the events, through the native
//!   API (`marquee-client`); every snapshot changes something: 90 % raise the
//!   stock of 10 sections (at a price below or above 100 and with 2 or 6
//!   adjacent seats, each by a coin flip), every one lowers 10 others and
//!   moves 5 prices, so each snapshot's content is new (the default 15 min
//!   cooldown never hides a notification);
//! - the same identities connect to `/eventory/notifications/subscribe`
//!   (event + `change_type` only) and, in the other phase, to
//!   `/subscribe/filtered`, where the entries' filters (by identity `i % 4`:
//!   keywords + date + stock threshold, always true; `max_price_filter` 100;
//!   `seat_quantity` 4; both) pass a fraction the harness predicts exactly.
//!
//! Reported per phase: notifications evaluated/s (notifications × connected
//! watchers), frames received/s against the predicted count, p50/p99/max
//! snapshot→frame latency (from just before the publish to the frame's
//! arrival; the snapshot number travels in `event_infos.event_url`), closes,
//! server CPU; and server RSS before/after connecting (per identity).
//!
//! ```text
//! cargo build --release -p marquee-server -p marquee-bench
//! target/release/eventory_bench --identities 5000 --seconds 20
//! ```

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use futures_util::StreamExt;
use marquee_bench::{
    Conn, Template, cli_json, cpu_ticks, default_marquee_bin, percentile, rss_kib, start_server,
};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

const ADMIN_TOKEN: &str = "eventory-bench-admin-token";
const SUB: &str = "/eventory/notifications/subscribe";
const FILTERED: &str = "/eventory/notifications/subscribe/filtered";
/// Identity `i` watches events `i + STRIDE·j`.
const STRIDE: usize = 25;
const RISING: usize = 10;
const FALLING: usize = 10;
const REPRICED: usize = 5;

#[derive(Parser, Clone)]
struct Args {
    /// Path of the marquee binary (default: next to this one).
    #[arg(long)]
    marquee_bin: Option<PathBuf>,
    #[arg(long, default_value_t = 5000)]
    identities: usize,
    /// Watchlist entries per identity (distinct events).
    #[arg(long, default_value_t = 20)]
    entries: usize,
    #[arg(long, default_value_t = 500)]
    events: usize,
    /// Sections per SeatMap snapshot.
    #[arg(long, default_value_t = 200)]
    sections: usize,
    /// Snapshots per second.
    #[arg(long, default_value_t = 50.0)]
    rate: f64,
    /// Seconds of publishing per phase.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Unfiltered + filtered phase pairs.
    #[arg(long, default_value_t = 1)]
    rounds: usize,
    /// Concurrent WebSocket handshakes / setup requests.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Extra arguments for `marquee serve` (e.g. `--eventory-cooldown=1s`).
    #[arg(long, allow_hyphen_values = true)]
    serve_arg: Vec<String>,
}

fn main() {
    let args = Args::parse();
    let limit = marquee_bench::raise_nofile();
    println!("open-files limit: {limit:?}");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run(args));
}

/// The watched events of identity `i`.
fn watched(i: usize, a: &Args) -> Vec<usize> {
    (0..a.entries).map(|j| (i + STRIDE * j) % a.events).collect()
}

fn event_id(e: usize) -> String {
    format!("ev{e:04}")
}

/// The filter kind of identity `i` (see the module docs).
fn entry(i: usize, e: usize) -> Value {
    let ev = event_id(e);
    match i % 4 {
        0 => json!({"event_id": ev, "keywords": ["world tour"], "stock_threshold_filter": 1,
            "date_filter": {"from": "2026-01-01T00:00:00Z", "to": "2027-12-31T00:00:00Z"}}),
        1 => json!({"event_id": ev, "max_price_filter": 100, "resale_tickets": false}),
        2 => json!({"event_id": ev, "seat_quantity": 4}),
        _ => json!({"event_id": ev, "max_price_filter": 100, "seat_quantity": 4}),
    }
}

/// Whether identity kind `kind` passes a rising snapshot on `/filtered`.
fn passes(kind: usize, cheap: bool, wide: bool) -> bool {
    match kind {
        0 => true,
        1 => cheap,
        2 => wide,
        _ => cheap && wide,
    }
}

/// What the harness published as snapshot `n`.
#[derive(Clone, Copy)]
struct Snap {
    event: usize,
    rise: bool,
    cheap: bool,
    wide: bool,
    /// Nanoseconds since the bench's epoch, just before the publish.
    sent_ns: u64,
}

struct Section {
    stock: i64,
    price: f64,
    adjacent: i64,
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// The inventory model: every event's sections, changed per snapshot.
struct Model {
    events: Vec<Vec<Section>>,
}

impl Model {
    fn new(a: &Args) -> Model {
        let events = (0..a.events)
            .map(|e| {
                (0..a.sections)
                    .map(|s| Section {
                        stock: 20 + ((e + s) % 10) as i64,
                        price: 100.0 + (s % 50) as f64,
                        adjacent: 2,
                    })
                    .collect()
            })
            .collect();
        Model { events }
    }

    /// Changes event `e` for snapshot `n`; the first snapshot of an event
    /// (`first`) publishes the initial state (every section a stock_increase).
    fn step(&mut self, n: u64, e: usize, first: bool) -> (Snap, Value) {
        let mut rng = Rng(n.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let secs = &mut self.events[e];
        let len = secs.len();
        let (rise, cheap, wide) = if first {
            (true, false, false)
        } else {
            let r = rng.next();
            (!r.is_multiple_of(10), (r >> 8) & 1 == 1, (r >> 9) & 1 == 1)
        };
        if !first {
            let base = (rng.next() as usize) % len;
            // Rising, falling and repriced sections are disjoint.
            for k in 0..RISING.min(len) {
                if !rise {
                    break;
                }
                let s = &mut secs[(base + k) % len];
                s.stock += 1 + (rng.next() % 3) as i64;
                s.price = if cheap {
                    70.0 + (rng.next() % 20) as f64
                } else {
                    110.0 + (rng.next() % 50) as f64
                };
                s.adjacent = if wide {
                    4 + (rng.next() % 4) as i64
                } else {
                    1 + (rng.next() % 3) as i64
                };
            }
            for k in 0..FALLING {
                let s = &mut secs[(base + RISING + k) % len];
                // Never up: only the rising sections may be a stock_increase.
                if s.stock > 1 {
                    s.stock -= 1;
                }
            }
            for k in 0..REPRICED {
                let s = &mut secs[(base + RISING + FALLING + k) % len];
                s.price += if rng.next().is_multiple_of(2) { 5.0 } else { -5.0 };
                s.price = s.price.max(10.0);
            }
        }
        let mut sections = serde_json::Map::new();
        let mut total = 0;
        for (k, s) in secs.iter().enumerate() {
            total += s.stock;
            let name = format!("{:03}", k + 1);
            sections.insert(
                format!("sec-{name}"),
                json!({"stock": s.stock, "o": {"offer_name": "Standard", "price": s.price,
                    "price_without_fees": s.price - 10.0, "price_label": format!("${:.2}", s.price),
                    "section": name, "inventory_type": "primary", "is_active": true, "stock": s.stock,
                    "stock_not_available": 2, "atc": "https://x/atc", "longest_adjacent_seats": s.adjacent,
                    "general_admission": false}}),
            );
        }
        let data = json!({"website": "axs", "region": "UK", "event_id": event_id(e),
            "sections_type": "SeatMapSections", "sections": sections, "stock": total,
            "event_infos": {"event_name": "Artist World Tour", "event_date": "2026-06-15T20:00:00Z",
                "event_time": "20:00", "event_venue": "Madison Square Garden",
                "event_venue_url": "https://v", "event_artist_name": "Artist",
                "event_location": "New York, NY", "event_url": format!("https://e/{n}"),
                "event_image": "https://i"}});
        let snap = Snap {
            event: e,
            rise,
            cheap,
            wide,
            sent_ns: 0,
        };
        (snap, data)
    }
}

/// The snapshot number a frame carries (`event_infos.event_url`).
fn snapshot_no(text: &str) -> Option<u64> {
    const MARK: &str = "\"https://e/";
    let at = text.rfind(MARK)? + MARK.len();
    let rest = &text[at..];
    let end = rest.find('"')?;
    rest[..end].parse().ok()
}

/// What every client task reports into.
#[derive(Default)]
struct Shared {
    frames: AtomicU64,
    bytes: AtomicU64,
    duplicates: AtomicU64,
    unknown: AtomicU64,
    latencies_us: Mutex<Vec<u64>>,
    closes: Mutex<HashMap<String, u64>>,
}

async fn request(
    c: &mut Conn,
    addr: SocketAddr,
    method: hyper::Method,
    path: &str,
    auth: (&str, &str),
    body: Option<&Value>,
) -> (u16, Value) {
    let mut headers = vec![(auth.0.to_string(), auth.1.to_string())];
    if body.is_some() {
        headers.push(("content-type".into(), "application/json".into()));
    }
    let tpl = Template {
        method,
        path: path.into(),
        headers,
        body: body.map(|b| Bytes::from(b.to_string())).unwrap_or_default(),
    };
    let (st, b) = c.send(tpl.build(&addr.to_string())).await.expect("request");
    (st, serde_json::from_slice(&b).unwrap_or(Value::Null))
}

/// Runs `f(i)` for every `i < n` on `workers` keep-alive connections.
async fn pool<F, Fut>(addr: SocketAddr, n: usize, workers: usize, f: F)
where
    F: Fn(Conn, usize) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = Conn> + Send + 'static,
{
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let (f, next) = (f.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut c = Conn::open(addr).await.expect("connect");
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                if i >= n {
                    return;
                }
                c = f(c, i).await;
            }
        }));
    }
    for t in tasks {
        t.await.expect("setup worker");
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

async fn run(args: Args) {
    let bin = args.marquee_bin.clone().unwrap_or_else(default_marquee_bin);
    let dir = tempfile::tempdir().expect("tempdir");
    let org = cli_json(
        &bin,
        dir.path(),
        &["org", "create", "monitor", "--profile", "eventory"],
    );
    let org = org["id"].as_str().expect("org id").to_owned();
    let platform = cli_json(
        &bin,
        dir.path(),
        &["key", "create", "--org", &org, "--tier", "enterprise"],
    );
    let platform = platform["key"].as_str().expect("key").to_owned();
    let serve: Vec<&str> = args.serve_arg.iter().map(String::as_str).collect();
    let server = start_server(
        &bin,
        Some(dir.path()),
        &serve,
        &[("MARQUEE_ADMIN_TOKEN", ADMIN_TOKEN)],
    )
    .await;
    let addr = server.addr;
    let pid = server.child.id();
    println!(
        "eventory fan-out: {} identities × {} entries over {} events ({} watchers per event), \
         {}-section SeatMaps at {}/s, {} s per phase, load average {}",
        args.identities,
        args.entries,
        args.events,
        args.identities * args.entries / args.events,
        args.sections,
        args.rate,
        args.seconds,
        marquee_bench::loadavg()
    );

    // Identities.
    let t = Instant::now();
    let keys: Arc<Mutex<Vec<Option<String>>>> = Arc::new(Mutex::new(vec![None; args.identities]));
    {
        let (keys, org) = (keys.clone(), org.clone());
        pool(addr, args.identities, args.concurrency, move |mut c, i| {
            let (keys, org) = (keys.clone(), org.clone());
            async move {
                let bearer = format!("Bearer {ADMIN_TOKEN}");
                let (st, v) = request(
                    &mut c,
                    addr,
                    hyper::Method::POST,
                    &format!("/admin/v1/orgs/{org}/keys"),
                    ("authorization", &bearer),
                    Some(&json!({"tier": "enterprise"})),
                )
                .await;
                assert!(st == 200 || st == 201, "key create: {st} {v}");
                keys.lock().expect("keys")[i] = v["key"].as_str().map(str::to_owned);
                c
            }
        })
        .await;
    }
    let keys: Arc<Vec<String>> = Arc::new(
        keys.lock()
            .expect("keys")
            .iter()
            .map(|k| k.clone().expect("every key created"))
            .collect(),
    );
    println!("{} keys in {:.1} s", keys.len(), t.elapsed().as_secs_f64());

    // Watchlists.
    let t = Instant::now();
    {
        let (keys, a) = (keys.clone(), args.clone());
        pool(
            addr,
            args.identities * args.entries,
            args.concurrency,
            move |mut c, k| {
                let (keys, a) = (keys.clone(), a.clone());
                async move {
                    let (i, j) = (k / a.entries, k % a.entries);
                    let e = watched(i, &a)[j];
                    let (st, v) = request(
                        &mut c,
                        addr,
                        hyper::Method::POST,
                        "/eventory/watchlist",
                        ("x-api-key", &keys[i]),
                        Some(&entry(i, e)),
                    )
                    .await;
                    assert_eq!(st, 201, "watchlist create: {v}");
                    c
                }
            },
        )
        .await;
    }
    println!(
        "{} watchlist entries in {:.1} s",
        args.identities * args.entries,
        t.elapsed().as_secs_f64()
    );

    // Watchers of each event (identity, kind).
    let mut watchers: Vec<Vec<usize>> = vec![Vec::new(); args.events];
    for i in 0..args.identities {
        for e in watched(i, &args) {
            watchers[e].push(i);
        }
    }
    let watchers = Arc::new(watchers);

    let platform_client = marquee_client::ClientOptions::with_api_key(&platform)
        .connect(&format!("http://{addr}"))
        .expect("client");
    let epoch = Instant::now();
    let model = Arc::new(Mutex::new(Model::new(&args)));
    let snaps: Arc<Mutex<Vec<Snap>>> = Arc::new(Mutex::new(Vec::new()));

    // Warm-up: every event's first snapshot, before anyone listens.
    let t = Instant::now();
    for e in 0..args.events {
        let (mut snap, data) = {
            let n = snaps.lock().expect("snaps").len() as u64;
            model.lock().expect("model").step(n, e, true)
        };
        snap.sent_ns = epoch.elapsed().as_nanos() as u64;
        let m = marquee_client::NewMessage::new("inventory.snapshot", data)
            .channel(format!("event:{}", event_id(e)));
        if e == 0 {
            println!(
                "snapshot body: {} bytes",
                serde_json::to_vec(&m).map(|v| v.len()).unwrap_or(0)
            );
        }
        platform_client.publish(m).await.expect("warm-up snapshot");
        snaps.lock().expect("snaps").push(snap);
    }
    println!(
        "{} warm-up snapshots in {:.1} s",
        args.events,
        t.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_idle = rss_kib(pid).unwrap_or(0);
    println!("server RSS before connecting: {:.1} MiB", mib(rss_idle));

    let mut results: Vec<(bool, Phase)> = Vec::new();
    for _ in 0..args.rounds {
        for filtered in [false, true] {
            let p = phase(
                &args,
                addr,
                pid,
                filtered,
                &keys,
                &watchers,
                &platform_client,
                &model,
                &snaps,
                epoch,
                rss_idle,
            )
            .await;
            results.push((filtered, p));
        }
    }
    println!();
    println!(
        "| phase | connected | evaluated/s | frames/s (received / predicted) | p50 | p99 | max | server CPU | closes |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for (filtered, p) in &results {
        println!(
            "| {} | {} | {:.0} | {:.0} ({} / {}) | {:.1} ms | {:.1} ms | {:.1} ms | {:.0} % | {:?} |",
            if *filtered {
                "/subscribe/filtered"
            } else {
                "/subscribe"
            },
            p.connected,
            p.evaluated as f64 / p.window,
            p.received as f64 / p.window,
            p.received,
            p.predicted,
            p.p50,
            p.p99,
            p.max,
            p.cpu,
            p.closes
        );
    }
    let med = |f: bool, g: fn(&Phase) -> f64| {
        let mut v: Vec<f64> = results.iter().filter(|r| r.0 == f).map(|r| g(&r.1)).collect();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    };
    let complete =
        |p: &Phase| p.evaluated as f64 / p.window * (p.received as f64 / p.predicted.max(1) as f64);
    println!(
        "filtered/unfiltered: evaluations completed/s {:.3} (evaluated/s × received/predicted); frames/s {:.3}; \
         predicted frame share on /filtered {:.3}",
        med(true, complete) / med(false, complete).max(1e-9),
        med(true, |p| p.received as f64 / p.window) / med(false, |p| p.received as f64 / p.window).max(1e-9),
        med(true, |p| p.predicted as f64) / med(false, |p| p.predicted as f64).max(1e-9),
    );
    println!("load average at the end: {}", marquee_bench::loadavg());
}

struct Phase {
    connected: usize,
    /// Notifications × connected watchers.
    evaluated: u64,
    predicted: u64,
    received: u64,
    /// Seconds of publishing.
    window: f64,
    p50: f64,
    p99: f64,
    max: f64,
    cpu: f64,
    closes: HashMap<String, u64>,
}

#[allow(clippy::too_many_arguments)]
async fn phase(
    a: &Args,
    addr: SocketAddr,
    pid: u32,
    filtered: bool,
    keys: &Arc<Vec<String>>,
    watchers: &Arc<Vec<Vec<usize>>>,
    client: &marquee_client::Client,
    model: &Arc<Mutex<Model>>,
    snaps: &Arc<Mutex<Vec<Snap>>>,
    epoch: Instant,
    rss_idle: u64,
) -> Phase {
    let path = if filtered { FILTERED } else { SUB };
    let shared = Arc::new(Shared::default());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let first_n = snaps.lock().expect("snaps").len() as u64;
    let table = snaps.clone();
    // Connect everyone (`concurrency` handshakes at a time).
    let t = Instant::now();
    let sem = Arc::new(tokio::sync::Semaphore::new(a.concurrency));
    let mut handshakes = Vec::new();
    for i in 0..a.identities {
        let (sem, key, shared, stop, table) = (
            sem.clone(),
            keys[i].clone(),
            shared.clone(),
            stop_rx.clone(),
            table.clone(),
        );
        handshakes.push(tokio::spawn(async move {
            let permit = sem.acquire_owned().await.expect("semaphore");
            let ws = connect(addr, path, &key).await;
            drop(permit);
            let ws = match ws {
                Ok(ws) => ws,
                Err(e) => return Err(e),
            };
            Ok(tokio::spawn(read_frames(ws, shared, stop, table, epoch, first_n)))
        }));
    }
    let mut readers = Vec::new();
    let mut connected = vec![false; a.identities];
    let mut failures: HashMap<String, u64> = HashMap::new();
    for (i, h) in handshakes.into_iter().enumerate() {
        match h.await.expect("handshake task") {
            Ok(r) => {
                connected[i] = true;
                readers.push(r);
            }
            Err(e) => *failures.entry(e).or_default() += 1,
        }
    }
    let n_conn = connected.iter().filter(|c| **c).count();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_conn = rss_kib(pid).unwrap_or(0);
    println!(
        "[{path}] {n_conn} of {} connected in {:.1} s (failures {failures:?}); server RSS {:.1} MiB, \
         +{:.1} KiB per connected identity over the idle server",
        a.identities,
        t.elapsed().as_secs_f64(),
        mib(rss_conn),
        (rss_conn.saturating_sub(rss_idle)) as f64 / n_conn.max(1) as f64
    );

    // Publish at `rate` for `seconds`.
    let cpu0 = cpu_ticks(pid).unwrap_or(0);
    let me0 = cpu_ticks(std::process::id()).unwrap_or(0);
    let machine0 = marquee_bench::machine_jiffies().unwrap_or((0, 0));
    let t0 = Instant::now();
    let total = (a.rate * a.seconds as f64).round() as u64;
    let interval = Duration::from_secs_f64(1.0 / a.rate);
    let errors = Arc::new(AtomicU64::new(0));
    let mut pubs = Vec::new();
    for k in 0..total {
        tokio::time::sleep_until((t0 + interval.mul_f64(k as f64)).into()).await;
        let n = first_n + k;
        let e = (n as usize) % a.events;
        let (snap, data) = model.lock().expect("model").step(n, e, false);
        let m = marquee_client::NewMessage::new("inventory.snapshot", data)
            .channel(format!("event:{}", event_id(e)));
        {
            let mut s = snaps.lock().expect("snaps");
            assert_eq!(s.len() as u64, n, "snapshot numbering");
            s.push(Snap {
                sent_ns: epoch.elapsed().as_nanos() as u64,
                ..snap
            });
        }
        let (client, errors) = (client.clone(), errors.clone());
        pubs.push(tokio::spawn(async move {
            if let Err(e) = client.publish(m).await
                && errors.fetch_add(1, Ordering::Relaxed) < 3
            {
                eprintln!("snapshot publish failed: {e}");
            }
        }));
    }
    for p in pubs {
        let _ = p.await;
    }
    let window = t0.elapsed().as_secs_f64();
    // Let the last notifications arrive.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let cpu = (cpu_ticks(pid).unwrap_or(0).saturating_sub(cpu0)) as f64
        / marquee_bench::clk_tck()
        / t0.elapsed().as_secs_f64()
        * 100.0;
    let me = (cpu_ticks(std::process::id()).unwrap_or(0).saturating_sub(me0)) as f64
        / marquee_bench::clk_tck()
        / t0.elapsed().as_secs_f64()
        * 100.0;
    let machine1 = marquee_bench::machine_jiffies().unwrap_or((0, 0));
    let busy = (machine1.0.saturating_sub(machine0.0)) as f64
        / (machine1.1.saturating_sub(machine0.1)).max(1) as f64
        * 100.0;
    println!(
        "[{path}] CPU over the phase: server {cpu:.0} %, this harness {me:.0} %, machine {busy:.0} % busy \
         (of 2 cores = 200 %: {:.0} %), load average {}",
        busy * 2.0,
        marquee_bench::loadavg()
    );
    let rss_after = rss_kib(pid).unwrap_or(0);
    let _ = stop_tx.send(true);
    for r in readers {
        let _ = r.await;
    }

    // What should have arrived.
    let (mut evaluated, mut predicted) = (0u64, 0u64);
    {
        let s = snaps.lock().expect("snaps");
        for snap in &s[first_n as usize..] {
            for &i in &watchers[snap.event] {
                if !connected[i] {
                    continue;
                }
                evaluated += 1;
                if snap.rise && (!filtered || passes(i % 4, snap.cheap, snap.wide)) {
                    predicted += 1;
                }
            }
        }
    }
    let received = shared.frames.load(Ordering::Relaxed);
    let mut lat = std::mem::take(&mut *shared.latencies_us.lock().expect("latencies"));
    lat.sort_unstable();
    let ms = |p: f64| percentile(&lat, p) as f64 / 1000.0;
    let closes = shared.closes.lock().expect("closes").clone();
    println!(
        "[{path}] {total} snapshots in {window:.1} s ({} publish errors); {received} frames \
         ({:.1} MiB, {} duplicates, {} unattributed) of {predicted} predicted, {evaluated} evaluations; \
         p50 {:.1} ms p99 {:.1} ms max {:.1} ms; server CPU {cpu:.0} %; RSS after {:.1} MiB; closes {closes:?}",
        errors.load(Ordering::Relaxed),
        shared.bytes.load(Ordering::Relaxed) as f64 / 1048576.0,
        shared.duplicates.load(Ordering::Relaxed),
        shared.unknown.load(Ordering::Relaxed),
        ms(50.0),
        ms(99.0),
        ms(100.0),
        mib(rss_after),
    );
    // Give the server a moment to see the closes before the next phase.
    tokio::time::sleep(Duration::from_secs(3)).await;
    Phase {
        connected: n_conn,
        evaluated,
        predicted,
        received,
        window,
        p50: ms(50.0),
        p99: ms(99.0),
        max: ms(100.0),
        cpu,
        closes,
    }
}

type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

async fn connect(addr: SocketAddr, path: &str, key: &str) -> Result<Ws, String> {
    let mut req = format!("ws://{addr}{path}")
        .into_client_request()
        .map_err(|e| e.to_string())?;
    req.headers_mut()
        .insert("apikey", key.parse().map_err(|_| "bad key".to_string())?);
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
    let cfg = WebSocketConfig::default()
        .read_buffer_size(64 * 1024)
        .write_buffer_size(0);
    let (ws, _) = tokio_tungstenite::client_async_with_config(req, tcp, Some(cfg))
        .await
        .map_err(|e| match e {
            tokio_tungstenite::tungstenite::Error::Http(r) => format!("HTTP {}", r.status()),
            e => e.to_string(),
        })?;
    Ok(ws)
}

async fn read_frames(
    mut ws: Ws,
    shared: Arc<Shared>,
    mut stop: tokio::sync::watch::Receiver<bool>,
    snaps: Arc<Mutex<Vec<Snap>>>,
    epoch: Instant,
    first_n: u64,
) {
    let mut seen: HashSet<u64> = HashSet::new();
    loop {
        let m = tokio::select! {
            _ = stop.changed() => return,
            m = ws.next() => m,
        };
        match m {
            Some(Ok(Message::Text(t))) => {
                let at = epoch.elapsed().as_nanos() as u64;
                shared.bytes.fetch_add(t.len() as u64, Ordering::Relaxed);
                let Some(n) = snapshot_no(t.as_str()).filter(|n| *n >= first_n) else {
                    shared.unknown.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                if !seen.insert(n) {
                    shared.duplicates.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let sent = snaps.lock().expect("snaps").get(n as usize).map(|s| s.sent_ns);
                let Some(sent) = sent else {
                    shared.unknown.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                shared.frames.fetch_add(1, Ordering::Relaxed);
                shared
                    .latencies_us
                    .lock()
                    .expect("latencies")
                    .push(at.saturating_sub(sent) / 1000);
            }
            Some(Ok(Message::Close(c))) => {
                let why = c
                    .map(|f| format!("{} {}", u16::from(f.code), f.reason))
                    .unwrap_or_else(|| "close".into());
                *shared.closes.lock().expect("closes").entry(why).or_default() += 1;
                return;
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                *shared
                    .closes
                    .lock()
                    .expect("closes")
                    .entry(format!("error: {e}"))
                    .or_default() += 1;
                return;
            }
            None => {
                *shared
                    .closes
                    .lock()
                    .expect("closes")
                    .entry("eof".into())
                    .or_default() += 1;
                return;
            }
        }
    }
}
