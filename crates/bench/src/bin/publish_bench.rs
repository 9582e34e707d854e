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

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use clap::Parser;
use marquee_bench::{
    Template, closed_loop, default_marquee_bin, fixed_rate, provision_key, provision_key_with, start_server,
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
    /// A/B rounds of `--validation` and `--rules`.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
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
    if args.rules {
        return rules(&args, &bin).await;
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
