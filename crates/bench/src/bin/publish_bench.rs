//! Publish benchmark (issue 2): durable single publishes/s with 64 keep-alive
//! clients, messages/s in batches of 100, and p50/p99 latency at a fixed
//! 5,000 publishes/s — each beside `GET /ping` on the same server and client
//! in the same run.
//!
//! `cargo build --release -p marquee-server -p marquee-bench &&
//!  target/release/publish_bench --seconds 10`
//!
//! `--validation` (issue 9) runs instead, in one run: the same `fan_checkin`
//! single publishes for an organization without profiles (no schema) and for
//! one with the `revolution` profile (payload checked against the catalog's
//! schema), interleaved A/B `--rounds` times, and reports the median ratio.
//!
//! `--coalesce` (issue 11) runs instead, in one run: plain `fan_checkin`
//! publishes at `--rate` (the baseline), then Revento's coalesced
//! `activity.capacity_state_changed` at `--rate` spread round-robin over
//! `--keys` activities for `--seconds`; after the last window closed it
//! counts the committed messages per activity through the API (one per key
//! per 10 s window is the target).
//! `--scrape` (issue 14) runs instead, in one run: single publishes with
//! nobody reading `/metrics`, and with a scraper fetching `/metrics` every
//! second (far more often than Prometheus' usual 15 s), interleaved A/B
//! `--rounds` times; reports the median ratio.
//!
//! `--attendance` (issue 11) runs instead, in one run: single publishes of
//! Revolution's `fan_checkin` in an organization with the `revolution`
//! profile (schema + the attendance engine: each publish a distinct fan, so
//! every scan counts, after a `venue_opened` so capacity milestones fire)
//! against the same bodies in an organization without profiles (a type with
//! no rules), interleaved `--rounds` times; reports the median ratio and
//! checks the counts and the milestones fired.
//!
//! `--erasure` (issue 11) runs instead: per round, `--erase-messages`
//! messages are published on one channel, then single publishes at `--rate`
//! run for `--seconds` with no erasure (the baseline) and again while the
//! erasure of that channel runs (until it completes); p50/p99 of both.

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use clap::Parser;
use marquee_bench::{
    Template, closed_loop, default_marquee_bin, fixed_rate, fixed_rate_rotating, provision_key,
    provision_key_with, start_server,
};

#[derive(Parser)]
struct Args {
    /// Path of the marquee binary (default: next to this one).
    #[arg(long)]
    marquee_bin: Option<PathBuf>,
    /// Seconds per scenario.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 64)]
    conns: usize,
    /// Rate of the fixed-rate latency scenario.
    #[arg(long, default_value_t = 5000.0)]
    rate: f64,
    /// Measure schema validation's cost instead (see the module docs).
    #[arg(long)]
    validation: bool,
    /// Measure the per-type rules' cost instead (issue 11): dedup-keyed and
    /// projected publishes against plain ones, interleaved `--rounds` times.
    #[arg(long)]
    rules: bool,
    /// A/B rounds of `--validation`, `--rules` or `--scrape`.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Measure coalescing instead (see the module docs).
    #[arg(long)]
    coalesce: bool,
    /// Distinct coalescing keys of `--coalesce`.
    #[arg(long, default_value_t = 1000)]
    keys: usize,
    /// Measure a /metrics scraper's cost instead (see the module docs).
    #[arg(long)]
    scrape: bool,
    /// Measure the attendance engine's cost instead (see the module docs).
    #[arg(long)]
    attendance: bool,
    /// `venue_opened` capacity of `--attendance` (percent milestones).
    #[arg(long, default_value_t = 40_000)]
    capacity: u64,
    /// Measure publishing during a large erasure instead (module docs).
    #[arg(long)]
    erasure: bool,
    /// Messages on the erased channel per `--erasure` round.
    #[arg(long, default_value_t = 50_000)]
    erase_messages: usize,
}

fn main() {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run(args));
}

async fn run(args: Args) {
    let bin = args.marquee_bin.clone().unwrap_or_else(default_marquee_bin);
    if args.validation {
        return validation(&args, &bin).await;
    }
    if args.coalesce {
        return coalesce(&args, &bin).await;
    }
    if args.rules {
        return rules(&args, &bin).await;
    }
    if args.scrape {
        return scrape(&args, &bin).await;
    }
    if args.attendance {
        return attendance(&args, &bin).await;
    }
    if args.erasure {
        return erasure(&args, &bin).await;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let key = provision_key(&bin, dir.path());
    let server = start_server(&bin, Some(dir.path()), &[], &[]).await;
    let addr = server.addr;
    let d = Duration::from_secs(args.seconds);
    let auth = vec![
        ("x-api-key".to_string(), key.clone()),
        ("content-type".to_string(), "application/json".to_string()),
    ];
    let single = br#"{"type":"fan_checkin","channels":["venue:stubbs-austin","event:evt_928xA"],"data":{"fan_id":"fan_0xc3f","event_id":"evt_928xA","gate":"MAIN","ts":1745123456789}}"#;
    let one = std::str::from_utf8(single).expect("utf8");
    let batch = format!("{{\"messages\":[{}]}}", vec![one; 100].join(","));
    let ping = Template {
        method: hyper::Method::GET,
        path: "/ping".into(),
        headers: vec![],
        body: Bytes::new(),
    };
    let publish = Template {
        method: hyper::Method::POST,
        path: "/v1/messages".into(),
        headers: auth.clone(),
        body: Bytes::from_static(single),
    };
    let batch_tpl = Template {
        method: hyper::Method::POST,
        path: "/v1/messages/batch".into(),
        headers: auth.clone(),
        body: Bytes::from(batch),
    };

    println!(
        "marquee publish benchmark: {} s per scenario, {} connections",
        args.seconds, args.conns
    );
    let base = closed_loop(addr, args.conns, d, ping.clone()).await;
    row("baseline GET /ping", &base, 1);
    let pubs = closed_loop(addr, args.conns, d, publish.clone()).await;
    row("durable single publishes", &pubs, 1);
    let batches = closed_loop(addr, args.conns, d, batch_tpl).await;
    row("durable batches of 100 (messages)", &batches, 100);
    let base_fixed = fixed_rate(addr, args.conns, args.rate, d, ping).await;
    row(&format!("baseline GET /ping at {}/s", args.rate), &base_fixed, 1);
    let fixed = fixed_rate(addr, args.conns, args.rate, d, publish).await;
    row(&format!("single publishes at {}/s", args.rate), &fixed, 1);
    println!();
    println!(
        "ratios: publishes/ping = {:.2}; batch msgs/ping = {:.2}; p99 at {}/s = {:.2} ms (ping p99 {:.2} ms)",
        pubs.per_sec() / base.per_sec(),
        batches.per_sec() * 100.0 / base.per_sec(),
        args.rate,
        fixed.pct_ms(99.0),
        base_fixed.pct_ms(99.0)
    );
    if let Some(kib) = marquee_bench::rss_kib(server.child.id()) {
        println!("server RSS after run: {:.1} MiB", kib as f64 / 1024.0);
    }
}

fn row(name: &str, s: &marquee_bench::Stats, per_req: u64) {
    println!(
        "| {name:<40} | {:>10.0}/s | p50 {:>7.2} ms | p99 {:>7.2} ms | errors {} |",
        s.per_sec() * per_req as f64,
        s.pct_ms(50.0),
        s.pct_ms(99.0),
        s.errors
    );
}

const CHECKIN: &[u8] = br#"{"type":"fan_checkin","channels":["venue:stubbs-austin","event:evt_928xA"],"data":{"fan_id":"fan_0xc3f","event_id":"evt_928xA","gate":"MAIN","ts":1745123456789}}"#;

fn publish_tpl(key: &str) -> Template {
    Template {
        method: hyper::Method::POST,
        path: "/v1/messages".into(),
        headers: vec![
            ("x-api-key".to_string(), key.to_owned()),
            ("content-type".to_string(), "application/json".to_string()),
        ],
        body: Bytes::from_static(CHECKIN),
    }
}

async fn validation(args: &Args, bin: &std::path::Path) {
    let dir = tempfile::tempdir().expect("tempdir");
    let plain = provision_key(bin, dir.path());
    let typed = provision_key_with(bin, dir.path(), &["revolution"]);
    let server = start_server(bin, Some(dir.path()), &[], &[]).await;
    let d = Duration::from_secs(args.seconds);
    println!(
        "schema validation cost: fan_checkin single publishes, {} s per run, {} connections, {} A/B rounds",
        args.seconds, args.conns, args.rounds
    );
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..args.rounds {
        let off = closed_loop(server.addr, args.conns, d, publish_tpl(&plain)).await;
        row("no profile (no schema)", &off, 1);
        let on = closed_loop(server.addr, args.conns, d, publish_tpl(&typed)).await;
        row("revolution profile (schema checked)", &on, 1);
        assert_eq!(on.errors, 0, "validated publishes must succeed");
        a.push(off.per_sec());
        b.push(on.per_sec());
    }
    let med = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (ma, mb) = (med(&mut a), med(&mut b));
    println!(
        "median: {ma:.0}/s without, {mb:.0}/s with validation; ratio {:.3}",
        mb / ma
    );
}

const CAPACITY: &str = "activity.capacity_state_changed";
/// Revento's window for [`CAPACITY`] (its catalog).
const WINDOW_S: u64 = 10;

/// Publish `k` of the coalescing run: activity `k % keys`, its `n`-th
/// snapshot (`committed_signups_count` = n), and a `snapshot_at` unique to
/// the publish (the type's dedup key is `(activity_id, snapshot_at)`: a
/// repeated one would be answered as a duplicate, not coalesced).
fn capacity_tpl(key: &str, activity: usize, n: usize, k: usize) -> Template {
    let t = 52_200_000 + k; // ms after midnight: 14:30:00.000 + k ms
    let (h, m, sec, ms) = (t / 3_600_000, t / 60_000 % 60, t / 1000 % 60, t % 1000);
    let body = format!(
        r#"{{"type":"{CAPACITY}","channels":["activity:act_{activity:04}"],"data":{{"activity_id":"act_{activity:04}","capacity":80,"committed_signups_count":{n},"sign_ups_enabled":true,"signed_up_participant_ids":["ptp_010","ptp_011"],"snapshot_at":"2026-08-15T{h:02}:{m:02}:{sec:02}.{ms:03}Z"}}}}"#
    );
    Template {
        method: hyper::Method::POST,
        path: "/v1/messages".into(),
        headers: vec![
            ("x-api-key".to_string(), key.to_owned()),
            ("content-type".to_string(), "application/json".to_string()),
        ],
        body: Bytes::from(body),
    }
}

/// Every committed message of `ty`, through `GET /v1/messages` pages.
async fn committed_of(addr: std::net::SocketAddr, key: &str, ty: &str) -> Vec<serde_json::Value> {
    let mut c = marquee_bench::Conn::open(addr).await.expect("connect");
    let mut out = Vec::new();
    let mut after = String::new();
    loop {
        let tpl = Template {
            method: hyper::Method::GET,
            path: format!("/v1/messages?type={ty}&limit=100{after}"),
            headers: vec![("x-api-key".to_string(), key.to_owned())],
            body: Bytes::new(),
        };
        let (st, body) = c.send(tpl.build(&addr.to_string())).await.expect("list");
        assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
        let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
        out.extend(v["data"].as_array().cloned().unwrap_or_default());
        match v["next_cursor"].as_str() {
            Some(n) if v["has_more"] == true => after = format!("&after={n}"),
            _ => return out,
        }
    }
}

async fn coalesce(args: &Args, bin: &std::path::Path) {
    let dir = tempfile::tempdir().expect("tempdir");
    let plain = provision_key(bin, dir.path());
    let revento = provision_key_with(bin, dir.path(), &["revento"]);
    let server = start_server(bin, Some(dir.path()), &[], &[]).await;
    let d = Duration::from_secs(args.seconds);
    println!(
        "coalescing: {} s per scenario at {}/s, {} connections, {} keys, {WINDOW_S} s window",
        args.seconds, args.rate, args.conns, args.keys
    );
    let base = fixed_rate(server.addr, args.conns, args.rate, d, publish_tpl(&plain)).await;
    row(&format!("plain publishes at {}/s", args.rate), &base, 1);
    // One template per scheduled publish (request k sends tpls[k]): each
    // key sees a run of distinct snapshots, n = 0, 1, 2, … in its window.
    let total = (args.rate * args.seconds as f64).ceil() as usize;
    let tpls: Vec<Template> = (0..total)
        .map(|k| capacity_tpl(&revento, k % args.keys, k / args.keys, k))
        .collect();
    let started = std::time::Instant::now();
    let co = fixed_rate_rotating(server.addr, args.conns, args.rate, d, tpls).await;
    row(&format!("coalesced publishes at {}/s", args.rate), &co, 1);
    // Let the last windows close (and the flusher commit them): a window
    // opened by the last publish closes WINDOW_S after it, however late
    // the run ended.
    let ended = std::time::Instant::now().max(started + d);
    let last_window = ended + Duration::from_secs(WINDOW_S + 2);
    tokio::time::sleep_until(last_window.into()).await;
    let msgs = committed_of(server.addr, &revento, CAPACITY).await;
    let mut per_key: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    // The highest snapshot number committed per key.
    let mut latest: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
    for m in &msgs {
        let k = m["data"]["activity_id"].as_str().unwrap_or("").to_owned();
        *per_key.entry(k.clone()).or_default() += 1;
        let n = m["data"]["committed_signups_count"].as_u64().unwrap_or(0);
        let l = latest.entry(k).or_default();
        *l = (*l).max(n);
    }
    // Keys whose last commit carries their last acknowledged snapshot.
    let fresh = (0..args.keys.min(total))
        .filter(|a| latest.get(&format!("act_{a:04}")).copied() == Some(((total - 1 - a) / args.keys) as u64))
        .count();
    // Windows each key can have had: one per WINDOW_S of publishing (as
    // long as the run really took: a server that falls behind stretches it).
    let windows = (co.elapsed.as_secs_f64() / WINDOW_S as f64).ceil().max(1.0) as usize;
    let most = per_key.values().copied().max().unwrap_or(0);
    println!(
        "committed {} messages for {} keys from {} acknowledged publishes ({} errors); \
         at most {most} per key (target ≤ {windows} windows per key in {:.1} s of publishing)",
        msgs.len(),
        per_key.len(),
        co.ok,
        co.errors,
        co.elapsed.as_secs_f64()
    );
    println!(
        "{fresh} of {} keys' last committed message carries their last snapshot",
        args.keys.min(total)
    );
    println!(
        "ratios: coalesced/plain publishes = {:.3}; p99 coalesced {:.2} ms vs plain {:.2} ms",
        co.per_sec() / base.per_sec(),
        co.pct_ms(99.0),
        base.pct_ms(99.0)
    );
}

/// Fetches `/metrics` every second until dropped; counts the scrapes.
fn scraper(
    addr: std::net::SocketAddr,
) -> (
    tokio::task::JoinHandle<()>,
    std::sync::Arc<std::sync::atomic::AtomicU64>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let n = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let count = n.clone();
    let task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            let Ok(mut s) = tokio::net::TcpStream::connect(addr).await else {
                continue;
            };
            let req = "GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n";
            if s.write_all(req.as_bytes()).await.is_err() {
                continue;
            }
            let mut out = Vec::new();
            if s.read_to_end(&mut out).await.is_ok() && out.starts_with(b"HTTP/1.1 200") {
                count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    });
    (task, n)
}

async fn scrape(args: &Args, bin: &std::path::Path) {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = provision_key(bin, dir.path());
    let server = start_server(bin, Some(dir.path()), &[], &[]).await;
    let d = Duration::from_secs(args.seconds);
    println!(
        "/metrics scrape cost: single publishes, {} s per run, {} connections, {} A/B rounds",
        args.seconds, args.conns, args.rounds
    );
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..args.rounds {
        let off = closed_loop(server.addr, args.conns, d, publish_tpl(&key)).await;
        row("no scraper", &off, 1);
        let (task, scrapes) = scraper(server.addr);
        let on = closed_loop(server.addr, args.conns, d, publish_tpl(&key)).await;
        task.abort();
        row(
            &format!(
                "scraping /metrics every 1 s ({} scrapes)",
                scrapes.load(std::sync::atomic::Ordering::Relaxed)
            ),
            &on,
            1,
        );
        a.push(off.per_sec());
        b.push(on.per_sec());
    }
    let med = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (ma, mb) = (med(&mut a), med(&mut b));
    println!(
        "median: {ma:.0}/s without, {mb:.0}/s with a scraper; ratio {:.3}",
        mb / ma
    );
}

/// Issue 11: Revento's `application.submitted` (dedup key `(id,
/// submitted_at)`, every publish a new key) in a `revento` organization
/// against the same body in an organization without profiles (no schema, no
/// rules: "plain"), and Eventium's projected `event.updated` (every publish
/// a new entity) likewise; bodies differ per request (`@N@`).
async fn rules(args: &Args, bin: &std::path::Path) {
    let dir = tempfile::tempdir().expect("tempdir");
    let plain = provision_key(bin, dir.path());
    let revento = provision_key_with(bin, dir.path(), &["revento"]);
    let eventium = provision_key_with(bin, dir.path(), &["eventium"]);
    let server = start_server(bin, Some(dir.path()), &[], &[]).await;
    let d = Duration::from_secs(args.seconds);
    let app = r#"{"type":"application.submitted","channels":["event:evt_abc123"],"data":{"id":"app_@N@","participant_id":"ptp_001","user_id":"usr_def456","status":"pending","submitted_at":"2026-04-29T14:00:00Z","is_resubmission":false,"custom_form_fields":{"motivation":"Sample motivation...","arrival_day":"Friday"},"attachments":[]}}"#;
    let ev = r#"{"type":"event.updated","channels":["event:evt_@N@"],"data":{"id":"evt_@N@","name":"Reggaeton Saturday","slug":"reggaeton-saturday-bcn","date":"2026-03-21T22:00:00Z","location":"Apolo, Barcelona","status":"published","capacity":1200,"organizer_id":"org_8nFw","created_at":"2026-01-12T14:02:31Z","updated_at":"2026-02-04T09:11:08Z"}}"#;
    let tpl = |key: &str, body: &'static str| Template {
        method: hyper::Method::POST,
        path: "/v1/messages".into(),
        headers: vec![
            ("x-api-key".to_string(), key.to_owned()),
            ("content-type".to_string(), "application/json".to_string()),
        ],
        body: Bytes::from_static(body.as_bytes()),
    };
    println!(
        "per-type rules cost: single publishes, {} s per run, {} connections, {} rounds",
        args.seconds, args.conns, args.rounds
    );
    let (mut p, mut dd, mut pe, mut pr) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..args.rounds {
        let a = marquee_bench::closed_loop_varying(server.addr, args.conns, d, tpl(&plain, app)).await;
        row("plain application.submitted (no profile)", &a, 1);
        let b = marquee_bench::closed_loop_varying(server.addr, args.conns, d, tpl(&revento, app)).await;
        row("revento: schema + dedup key", &b, 1);
        let c = marquee_bench::closed_loop_varying(server.addr, args.conns, d, tpl(&plain, ev)).await;
        row("plain event.updated (no profile)", &c, 1);
        let e = marquee_bench::closed_loop_varying(server.addr, args.conns, d, tpl(&eventium, ev)).await;
        row("eventium: schema + projection", &e, 1);
        assert_eq!(b.errors + e.errors, 0, "rule-bearing publishes must succeed");
        p.push(a.per_sec());
        dd.push(b.per_sec());
        pe.push(c.per_sec());
        pr.push(e.per_sec());
    }
    let med = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (p, dd, pe, pr) = (med(&mut p), med(&mut dd), med(&mut pe), med(&mut pr));
    println!(
        "median: dedup-keyed {dd:.0}/s vs plain {p:.0}/s, ratio {:.3}",
        dd / p
    );
    println!(
        "median: projected {pr:.0}/s vs plain {pe:.0}/s, ratio {:.3}",
        pr / pe
    );
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn client(addr: std::net::SocketAddr, key: &str) -> marquee_client::Client {
    marquee_client::ClientOptions::with_api_key(key)
        .connect(&format!("http://{addr}"))
        .expect("client")
}

/// Every message of `ty` (optionally on `channel`), through the client's
/// cursor pages.
async fn all_of(c: &marquee_client::Client, ty: &str, channel: Option<&str>) -> Vec<marquee_client::Message> {
    let mut p = marquee_client::ListParams::default().event_type(ty).limit(100);
    if let Some(ch) = channel {
        p = p.channel(ch);
    }
    let mut pages = c.messages(p);
    let mut out = Vec::new();
    while let Some(m) = pages.next().await {
        out.push(m.expect("list messages"));
    }
    out
}

/// A GET or POST with a JSON answer on a fresh keep-alive connection.
async fn api_json(
    addr: std::net::SocketAddr,
    key: &str,
    method: hyper::Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let mut c = marquee_bench::Conn::open(addr).await.expect("connect");
    let mut headers = vec![("x-api-key".to_string(), key.to_owned())];
    if body.is_some() {
        headers.push(("content-type".to_string(), "application/json".to_string()));
    }
    let tpl = Template {
        method,
        path: path.into(),
        headers,
        body: body.map(|b| Bytes::from(b.to_string())).unwrap_or_default(),
    };
    let (st, body) = c.send(tpl.build(&addr.to_string())).await.expect("request");
    (
        st,
        serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
    )
}

/// Issue 11: the attendance engine's cost on single publishes.
async fn attendance(args: &Args, bin: &std::path::Path) {
    let dir = tempfile::tempdir().expect("tempdir");
    let plain = provision_key(bin, dir.path());
    let revolution = provision_key_with(bin, dir.path(), &["revolution"]);
    let server = start_server(bin, Some(dir.path()), &[], &[]).await;
    let addr = server.addr;
    let d = Duration::from_secs(args.seconds);
    let rc = client(addr, &revolution);
    println!(
        "attendance cost: fan_checkin single publishes, {} s per run, {} connections, {} A/B rounds, capacity {}",
        args.seconds, args.conns, args.rounds, args.capacity
    );
    let tpl = |key: &str, event: &str| Template {
        method: hyper::Method::POST,
        path: "/v1/messages".into(),
        headers: vec![
            ("x-api-key".to_string(), key.to_owned()),
            ("content-type".to_string(), "application/json".to_string()),
        ],
        // A distinct fan per publish (`@N@`): every scan counts.
        body: Bytes::from(format!(
            r#"{{"type":"fan_checkin","channels":["venue:ven_{event}","event:{event}"],"data":{{"fan_id":"fan_@N@","event_id":"{event}","gate":"MAIN","ts":1745123456789}}}}"#
        )),
    };
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let mut rounds = Vec::new();
    for r in 0..args.rounds {
        let event = format!("evt_att{r}");
        let opened = marquee_client::NewMessage::new(
            "venue_opened",
            serde_json::json!({"venue_id": format!("ven_{event}"), "event_id": event,
                "capacity": args.capacity, "ts": 1745123000000u64}),
        )
        .channel(format!("venue:ven_{event}"))
        .channel(format!("event:{event}"));
        rc.publish(opened).await.expect("venue_opened");
        // A B B A …: odd rounds measure attendance first, so a trend over
        // the run (the log growing) does not favour one side.
        let mut pair = Vec::new();
        for attendance_run in [r % 2 == 1, r % 2 == 0] {
            if attendance_run {
                let on =
                    marquee_bench::closed_loop_varying(addr, args.conns, d, tpl(&revolution, &event)).await;
                row("revolution (schema + attendance)", &on, 1);
                pair.push((true, on));
            } else {
                let off = marquee_bench::closed_loop_varying(addr, args.conns, d, tpl(&plain, &event)).await;
                row("plain org (no rules)", &off, 1);
                pair.push((false, off));
            }
        }
        let on = pair.iter().find(|p| p.0).map(|p| p.1.clone()).expect("on");
        let off = pair.iter().find(|p| !p.0).map(|p| p.1.clone()).expect("off");
        println!("round {r}: ratio {:.3}", on.per_sec() / off.per_sec());
        assert_eq!(on.errors, 0, "check-ins must succeed");
        a.push(off.per_sec());
        b.push(on.per_sec());
        rounds.push((event, on.ok));
    }
    // The paired statistic: each round's two runs are back to back, so
    // their ratio holds even when the machine's speed drifts between rounds
    // (the median of each side alone then pairs different rounds).
    let mut paired: Vec<f64> = a.iter().zip(&b).map(|(off, on)| on / off).collect();
    let (ma, mb) = (median(&mut a), median(&mut b));
    println!(
        "median: {mb:.0}/s with attendance vs {ma:.0}/s plain; ratio {:.3}; median of the rounds' ratios {:.3}",
        mb / ma,
        median(&mut paired)
    );
    // Every check-in counted once; the milestones that fired.
    let milestones = all_of(&rc, "attendance_milestone", None).await;
    for (event, ok) in &rounds {
        let (st, v) = api_json(
            addr,
            &revolution,
            hyper::Method::GET,
            &format!("/v1/attendance/{event}"),
            None,
        )
        .await;
        let fired: Vec<u64> = milestones
            .iter()
            .filter(|m| {
                m.data["event_id"] == event.as_str() && m.channels.contains(&format!("event:{event}"))
            })
            .filter_map(|m| m.data["threshold"].as_u64())
            .collect();
        println!(
            "{event}: {ok} check-ins acknowledged, attendance count {} (HTTP {st}); milestones fired at {fired:?}",
            v["count"]
        );
    }
}

/// Issue 11: single-publish latency with and without a large erasure running.
async fn erasure(args: &Args, bin: &std::path::Path) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let dir = tempfile::tempdir().expect("tempdir");
    let key = provision_key(bin, dir.path());
    let server = start_server(bin, Some(dir.path()), &[], &[]).await;
    let addr = server.addr;
    let d = Duration::from_secs(args.seconds);
    let c = client(addr, &key);
    println!(
        "publishing during an erasure: single publishes at {}/s, {} connections, {} s baseline, {} rounds, {} messages erased per round",
        args.rate, args.conns, args.seconds, args.rounds, args.erase_messages
    );
    let mut base_p = (Vec::new(), Vec::new());
    let mut during_p = (Vec::new(), Vec::new());
    for r in 0..args.rounds {
        let channel = format!("user:usr_big{r}");
        let t = std::time::Instant::now();
        for start in (0..args.erase_messages).step_by(1000) {
            let batch = (start..(start + 1000).min(args.erase_messages))
                .map(|i| {
                    marquee_client::NewMessage::new(
                        "fan_checkin",
                        serde_json::json!({"fan_id": format!("fan_{i}"), "event_id": "evt_928xA",
                            "gate": "MAIN", "ts": 1745123456789u64}),
                    )
                    .channel(channel.clone())
                })
                .collect();
            c.publish_batch(batch).await.expect("fill");
        }
        println!(
            "round {r}: {} messages on {channel} in {:.1} s",
            args.erase_messages,
            t.elapsed().as_secs_f64()
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
        let base = fixed_rate(addr, args.conns, args.rate, d, publish_tpl(&key)).await;
        row("no erasure running", &base, 1);
        let (st, e) = api_json(
            addr,
            &key,
            hyper::Method::POST,
            "/v1/erasures",
            Some(serde_json::json!({"channel": channel})),
        )
        .await;
        assert_eq!(st, 202, "erasure: {e}");
        let id = e["id"].as_str().expect("erasure id").to_owned();
        let started = std::time::Instant::now();
        let done = Arc::new(AtomicBool::new(false));
        let watcher = {
            let (done, key, id) = (done.clone(), key.clone(), id.clone());
            tokio::spawn(async move {
                loop {
                    let (_, v) = api_json(
                        addr,
                        &key,
                        hyper::Method::GET,
                        &format!("/v1/erasures/{id}"),
                        None,
                    )
                    .await;
                    if v["status"] == "completed" {
                        done.store(true, Ordering::Relaxed);
                        return (started.elapsed(), v);
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
        };
        let during = marquee_bench::fixed_rate_until(
            addr,
            args.conns,
            args.rate,
            Duration::from_secs(300),
            done.clone(),
            publish_tpl(&key),
        )
        .await;
        let (took, v) = watcher.await.expect("watcher");
        row(
            &format!("while erasing ({:.1} s)", took.as_secs_f64()),
            &during,
            1,
        );
        println!(
            "round {r}: erasure {id} {} messages_erased {} of {} in {:.2} s",
            v["status"],
            v["messages_erased"],
            v["messages_total"],
            took.as_secs_f64()
        );
        assert_eq!(base.errors + during.errors, 0, "publishes must succeed");
        base_p.0.push(base.pct_ms(50.0));
        base_p.1.push(base.pct_ms(99.0));
        during_p.0.push(during.pct_ms(50.0));
        during_p.1.push(during.pct_ms(99.0));
    }
    println!(
        "median over rounds: no erasure p50 {:.2} ms p99 {:.2} ms; during erasure p50 {:.2} ms p99 {:.2} ms",
        median(&mut base_p.0),
        median(&mut base_p.1),
        median(&mut during_p.0),
        median(&mut during_p.1)
    );
}
