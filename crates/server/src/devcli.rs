//! The developer commands — `listen`, `tail`, `publish`, `verify`, and the
//! long operations `replay`, `recover`, `erase` (with a progress indicator on
//! a terminal, plain lines otherwise) — which talk to a running marquee as a
//! client (`marquee-client`), never to the store. Signing and verification are marquee-core's wire formats, the
//! same code the dispatcher runs.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use marquee_client::{Client, ClientOptions, NewMessage, StreamMessage};
use marquee_core::timestamp::Timestamp;
use marquee_core::wire::{Format, SigningSecret};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

#[derive(Args, Clone)]
pub struct ConnArgs {
    /// The marquee server.
    #[arg(long, env = "MARQUEE_URL", default_value = "http://127.0.0.1:7400")]
    pub url: String,
    /// An API key (pro or enterprise for streams).
    #[arg(long, env = "MARQUEE_API_KEY", hide_env_values = true)]
    pub api_key: String,
    /// Also trust the CA certificates in this PEM file, for an https://
    /// server with a certificate from a private CA.
    #[arg(long, env = "MARQUEE_CA_FILE", value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
}

impl ConnArgs {
    fn client(&self) -> Result<Client, String> {
        let mut options = ClientOptions::with_api_key(self.api_key.clone());
        if let Some(path) = &self.ca_file {
            let pem = std::fs::read(path)
                .map_err(|e| format!("cannot read the CA file {}: {e}", path.display()))?;
            options = options.ca_certificate_pem(pem);
        }
        options
            .event_callback(|e| {
                if let marquee_client::Event::ServerError { code, message } = e {
                    eprintln!("marquee: server: {code}: {message}");
                }
            })
            .connect(&self.url)
            .map_err(|e| match &self.ca_file {
                Some(p) => format!("{e} (CA file {})", p.display()),
                None => e.to_string(),
            })
    }
}

#[derive(Args)]
pub struct ListenArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Where to re-deliver each message (your local webhook handler).
    #[arg(long)]
    pub forward_to: String,
    /// Channels to listen on (comma-separated or repeated), e.g. venue:stubbs-austin.
    #[arg(long, value_delimiter = ',', required = true)]
    pub channels: Vec<String>,
    /// Only these types (comma-separated; a trailing `*` matches a prefix).
    #[arg(long, value_delimiter = ',')]
    pub types: Vec<String>,
    /// The webhook format to sign in: standard, revolution, eventium, revento, attendee.
    #[arg(long, default_value = "standard")]
    pub format: String,
}

#[derive(Args)]
pub struct TailArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Channels to show (repeatable or comma-separated).
    #[arg(long = "channel", value_delimiter = ',', required = true)]
    pub channels: Vec<String>,
    /// Only these types (repeatable; a trailing `*` matches a prefix).
    #[arg(long = "type", value_delimiter = ',')]
    pub types: Vec<String>,
    /// One JSON object per line (the stream frame), no colour.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct PublishArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    /// The event type, e.g. fan_checkin.
    pub event_type: String,
    /// Channels (repeatable or comma-separated).
    #[arg(long = "channel", value_delimiter = ',', required = true)]
    pub channels: Vec<String>,
    /// The data: a JSON object, or @file.json.
    #[arg(long, default_value = "{}")]
    pub data: String,
    #[arg(long)]
    pub idempotency_key: Option<String>,
}

#[derive(Args)]
pub struct VerifyArgs {
    /// The webhook format: standard, revolution, eventium, revento, attendee.
    #[arg(long, default_value = "standard")]
    pub format: String,
    /// The endpoint's secret as shown (whsec_…, or the Revolution secret you chose).
    #[arg(long, env = "MARQUEE_WEBHOOK_SECRET", hide_env_values = true)]
    pub secret: String,
    /// The channel identifier (attendee only, chn_…).
    #[arg(long)]
    pub identifier: Option<String>,
    /// A received header, 'Name: value' (repeatable). The raw body is read from stdin.
    #[arg(long = "header", short = 'H')]
    pub headers: Vec<String>,
}

fn type_matches(filters: &[String], t: &str) -> bool {
    filters.is_empty()
        || filters.iter().any(|f| match f.strip_suffix('*') {
            Some(p) => t.starts_with(p),
            None => f == t,
        })
}

/// What `listen` keeps between runs: the secret per format and each
/// channel's last forwarded cursor. Never the API key.
#[derive(Serialize, Deserialize, Default)]
struct ListenState {
    secrets: BTreeMap<String, StoredSecret>,
    cursors: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize, Clone)]
struct StoredSecret {
    secret: String,
    identifier: Option<String>,
}

/// `$MARQUEE_CONFIG_DIR` (or `~/.config/marquee`) `/listen/<hash of url and
/// a hash of the key>`.
fn state_dir(url: &str, key: &str) -> Result<PathBuf, String> {
    let root = match std::env::var_os("MARQUEE_CONFIG_DIR") {
        Some(d) => PathBuf::from(d),
        None => {
            let home = std::env::var_os("HOME").ok_or("set MARQUEE_CONFIG_DIR or HOME")?;
            PathBuf::from(home).join(".config").join("marquee")
        }
    };
    let key_hash = Sha256::digest(key.as_bytes());
    let mut h = Sha256::new();
    h.update(url.trim_end_matches('/').as_bytes());
    h.update(b"\n");
    h.update(key_hash);
    let hex: String = h.finalize()[..8].iter().map(|b| format!("{b:02x}")).collect();
    Ok(root.join("listen").join(hex))
}

fn save_state(path: &std::path::Path, st: &ListenState) -> Result<(), String> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(st).expect("json"))
        .map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
}

pub async fn listen(a: ListenArgs) -> Result<(), String> {
    let format: Format = a.format.parse().map_err(|e| format!("--format: {e}"))?;
    let dir = state_dir(&a.conn.url, &a.conn.api_key)?;
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let path = dir.join("state.json");
    let mut state: ListenState = match std::fs::read(&path) {
        Ok(b) => serde_json::from_slice(&b).map_err(|e| format!("{}: {e}", path.display()))?,
        Err(_) => ListenState::default(),
    };
    let stored = match state.secrets.get(format.as_str()) {
        Some(s) => s.clone(),
        None => {
            let scheme = format.wire().secret_scheme();
            let e = scheme.expose(&scheme.generate());
            let s = StoredSecret {
                secret: e.secret,
                identifier: e.identifier,
            };
            state.secrets.insert(format.as_str().into(), s.clone());
            save_state(&path, &state)?;
            s
        }
    };
    let secret: SigningSecret =
        marquee_client::parse_secret(format.as_str(), &stored.secret, stored.identifier.as_deref())
            .map_err(|e| e.to_string())?;
    let client = a.conn.client()?;
    let channels: Vec<(String, Option<String>)> = a
        .channels
        .iter()
        .map(|c| (c.clone(), state.cursors.get(c).cloned()))
        .collect();
    let resuming = channels.iter().any(|(_, c)| c.is_some());
    println!(
        "marquee listen: forwarding {} to {} as {}{}",
        a.channels.join(","),
        a.forward_to,
        format,
        if resuming { " (resuming)" } else { "" }
    );
    println!("secret: {}", stored.secret);
    if let Some(i) = &stored.identifier {
        println!("identifier: {i}");
    }
    println!("state: {}", path.display());
    let _ = std::io::stdout().flush();
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())?;
    let mut sub = client.subscribe(channels);
    while let Some(next) = sub.next().await {
        let frame = match next {
            Ok(f) => f,
            Err(e) if e.kind() == marquee_client::StreamErrorKind::CursorExpired => {
                eprintln!("marquee: {e}; continuing from now");
                continue;
            }
            Err(e) => return Err(e.to_string()),
        };
        if type_matches(&a.types, &frame.event_type) {
            forward(&http, &a.forward_to, format, &secret, &frame).await;
        }
        state.cursors.insert(frame.channel.clone(), frame.cursor.clone());
        save_state(&path, &state)?;
    }
    Ok(())
}

async fn forward(
    http: &reqwest::Client,
    url: &str,
    format: Format,
    secret: &SigningSecret,
    frame: &StreamMessage,
) {
    let now = Timestamp::now();
    let outcome = match marquee_client::message_from_frame(frame) {
        Err(e) => Err(e),
        Ok(m) => {
            let delivery = format!("dlv_{}", frame.id.strip_prefix("msg_").unwrap_or(&frame.id));
            let req =
                marquee_client::sign(format.as_str(), secret, &m, &delivery, now).map_err(|e| e.to_string());
            match req {
                Err(e) => Err(e),
                Ok(req) => {
                    let mut r = http.post(url);
                    for (n, v) in &req.headers {
                        r = r.header(*n, v);
                    }
                    let start = Instant::now();
                    match r.body(req.body).send().await {
                        Ok(resp) => Ok((resp.status().as_u16(), start.elapsed())),
                        Err(e) => Err(if e.is_timeout() {
                            "timeout".into()
                        } else if e.is_connect() {
                            "connection refused".into()
                        } else {
                            "request failed".into()
                        }),
                    }
                }
            }
        }
    };
    let status = match outcome {
        Ok((code, took)) => format!("{code}  {}ms", took.as_millis()),
        Err(e) => format!("error: {e}"),
    };
    println!(
        "{}  {}  {}  {status}",
        now.to_rfc3339(),
        frame.event_type,
        frame.id
    );
    let _ = std::io::stdout().flush();
}

pub async fn tail(a: TailArgs) -> Result<(), String> {
    let client = a.conn.client()?;
    let colour = !a.json && std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let mut sub = client.subscribe(a.channels.iter().map(|c| (c.clone(), None::<String>)));
    while let Some(next) = sub.next().await {
        let f = next.map_err(|e| e.to_string())?;
        if !type_matches(&a.types, &f.event_type) {
            continue;
        }
        let mut out = std::io::stdout().lock();
        let _ = if a.json {
            writeln!(out, "{}", serde_json::to_string(&f).expect("json"))
        } else if colour {
            writeln!(
                out,
                "\x1b[2m{}\x1b[0m  \x1b[1;36m{}\x1b[0m  \x1b[33m{}\x1b[0m  \x1b[2m{}\x1b[0m  {}",
                f.occurred_at, f.event_type, f.channel, f.id, f.payload
            )
        } else {
            writeln!(
                out,
                "{}  {}  {}  {}  {}",
                f.occurred_at, f.event_type, f.channel, f.id, f.payload
            )
        };
        let _ = out.flush();
    }
    Ok(())
}

pub async fn publish(a: PublishArgs) -> Result<(), String> {
    let text = match a.data.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?,
        None => a.data.clone(),
    };
    let data: Value = serde_json::from_str(&text).map_err(|e| format!("--data is not JSON: {e}"))?;
    let mut m = NewMessage::new(a.event_type.clone(), data);
    m.channels = a.channels.clone();
    m.idempotency_key = a.idempotency_key.clone();
    let stored = a.conn.client()?.publish(m).await.map_err(|e| e.to_string())?;
    println!("{}", serde_json::to_string(&stored).expect("json"));
    Ok(())
}

pub fn verify(a: VerifyArgs) -> Result<(), String> {
    let mut body = Vec::new();
    std::io::stdin()
        .read_to_end(&mut body)
        .map_err(|e| format!("reading the body from stdin: {e}"))?;
    let mut headers = Vec::new();
    for h in &a.headers {
        let (n, v) = h
            .split_once(':')
            .ok_or_else(|| format!("--header {h:?}: write it as 'Name: value'"))?;
        headers.push((n.trim(), v.trim()));
    }
    marquee_client::verify(&a.format, &a.secret, a.identifier.as_deref(), &headers, &body)
        .map_err(|e| format!("not verified: {e}"))?;
    println!("verified: the {} signature matches", a.format);
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// Long operations: replay, recover, erase — with progress on stderr.

#[derive(Args)]
#[command(group(clap::ArgGroup::new("from").required(true).args(["since", "after"])))]
pub struct ReplayArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    /// The endpoint (ep_…).
    #[arg(long)]
    pub endpoint: String,
    /// Every matching message received from then on: RFC 3339, or a
    /// duration back from now (30m, 2h, 1d).
    #[arg(long)]
    pub since: Option<String>,
    /// Every matching message after this cursor.
    #[arg(long)]
    pub after: Option<String>,
    /// Then wait until every queued delivery has had its first attempt.
    #[arg(long)]
    pub wait: bool,
    /// With --wait: give up waiting after this long (the operation goes on
    /// in the server), exit 1.
    #[arg(long, default_value = "30m", value_name = "DURATION")]
    pub wait_timeout: String,
    /// Print the result as one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct RecoverArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    /// The endpoint (ep_…).
    #[arg(long)]
    pub endpoint: String,
    /// Failed deliveries of messages received from then on: RFC 3339, or a
    /// duration back from now (30m, 2h, 1d).
    #[arg(long)]
    pub since: String,
    /// Up to (RFC 3339 or a duration back from now; default now).
    #[arg(long)]
    pub until: Option<String>,
    /// Then wait until every queued delivery has had its attempt.
    #[arg(long)]
    pub wait: bool,
    /// With --wait: give up waiting after this long (the operation goes on
    /// in the server), exit 1.
    #[arg(long, default_value = "30m", value_name = "DURATION")]
    pub wait_timeout: String,
    /// Print the result as one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["channel", "id"])))]
pub struct EraseArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Erase every stored message on this channel (e.g. user:usr_def456).
    #[arg(long)]
    pub channel: Option<String>,
    /// Only the messages also on this channel (e.g. event:evt_abc123).
    #[arg(long, requires = "channel")]
    pub within: Option<String>,
    /// Do not start one: follow this erasure (era_…).
    #[arg(long, conflicts_with = "channel")]
    pub id: Option<String>,
    /// Wait until the erasure is completed, showing its progress.
    #[arg(long)]
    pub wait: bool,
    /// With --wait: give up waiting after this long (the operation goes on
    /// in the server), exit 1.
    #[arg(long, default_value = "30m", value_name = "DURATION")]
    pub wait_timeout: String,
    /// Print the result (the erasure object) as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// How often `--wait` asks the server.
const POLL: std::time::Duration = std::time::Duration::from_millis(250);

/// When `--wait` gives up: `--wait-timeout` from now.
fn wait_deadline(timeout: &str) -> Result<tokio::time::Instant, String> {
    let d = marquee_core::duration::parse(timeout)
        .map_err(|_| format!("--wait-timeout {timeout:?}: give a duration (90s, 30m, 2h)"))?;
    Ok(tokio::time::Instant::now() + d)
}

/// Progress of a long operation, on stderr: one line rewritten in place on a
/// terminal (`\r`), plain lines otherwise — each state once, at most one a
/// second while it changes — so a log file or pipe stays readable.
struct Progress<W: Write = std::io::Stderr> {
    out: W,
    tty: bool,
    drawn: bool,
    last_line: String,
    last_at: Option<Instant>,
    spin: usize,
}

impl Progress {
    fn new() -> Progress {
        let tty = std::io::stderr().is_terminal() && std::env::var_os("TERM").is_none_or(|t| t != "dumb");
        Progress::to(std::io::stderr(), tty)
    }
}

impl<W: Write> Progress<W> {
    fn to(out: W, tty: bool) -> Progress<W> {
        Progress {
            out,
            tty,
            drawn: false,
            last_line: String::new(),
            last_at: None,
            spin: 0,
        }
    }

    /// `done` of `total` (a bar), or a spinner when the total is unknown.
    fn update(&mut self, label: &str, done: u64, total: Option<u64>) {
        if self.tty {
            const SPIN: [char; 4] = ['|', '/', '-', '\\'];
            let line = match total {
                Some(t) => format!("{} {label}", bar(done, t, 24)),
                None => {
                    self.spin = (self.spin + 1) % SPIN.len();
                    format!("{} {label}", SPIN[self.spin])
                }
            };
            let _ = write!(self.out, "\r\x1b[2K{line}");
            let _ = self.out.flush();
            self.drawn = true;
        } else {
            let line = match total {
                Some(t) => format!("{label} ({}%)", percent(done, t)),
                None => label.to_owned(),
            };
            let due = self
                .last_at
                .is_none_or(|t| t.elapsed() >= std::time::Duration::from_secs(1));
            if line != self.last_line && due {
                let _ = writeln!(self.out, "{line}");
                self.last_line = line;
                self.last_at = Some(Instant::now());
            }
        }
    }

    /// The final state: always printed once (ends the terminal line).
    fn finish(&mut self, label: &str, done: u64, total: Option<u64>) {
        if self.tty {
            self.update(label, done, total);
            let _ = writeln!(self.out);
            self.drawn = false;
        } else {
            self.last_at = None;
            self.update(label, done, total);
        }
    }
}

impl<W: Write> Drop for Progress<W> {
    fn drop(&mut self) {
        // An error mid-way: the error message starts on a line of its own.
        if self.drawn {
            let _ = writeln!(self.out);
        }
    }
}

fn percent(done: u64, total: u64) -> u64 {
    // u128: no overflow whatever numbers the server answers.
    (u128::from(done.min(total)) * 100)
        .checked_div(u128::from(total))
        .map_or(100, |p| p as u64)
}

/// `[##########--------------] 42%`.
fn bar(done: u64, total: u64, width: usize) -> String {
    let p = percent(done, total);
    let full = (p as usize * width) / 100;
    format!("[{}{}] {p:>3}%", "#".repeat(full), "-".repeat(width - full))
}

/// RFC 3339 as given, or a duration (`30m`, `2h`, `1d`) back from now.
fn time_arg(param: &str, s: &str) -> Result<String, String> {
    if Timestamp::parse_rfc3339(s).is_ok() {
        return Ok(s.to_owned());
    }
    match marquee_core::duration::parse(s) {
        Ok(d) => {
            let us = i64::try_from(d.as_micros()).unwrap_or(i64::MAX);
            Ok(Timestamp::now().saturating_sub_micros(us).to_rfc3339())
        }
        Err(_) => Err(format!(
            "--{param} {s:?}: give an RFC 3339 time (2026-05-14T21:00:00Z) or a duration back from now (30m, 2h, 1d)"
        )),
    }
}

fn request_error(e: marquee_client::RequestError) -> String {
    e.to_string()
}

/// How `--wait` knows a delivery it queued is done.
enum WaitFor {
    /// Replay: every queued delivery has had its first attempt (pending
    /// deliveries that never failed reach 0).
    FirstAttempt,
    /// Recover: the recovered deliveries (which have failed before, so they
    /// count as retrying at once) have settled — delivered or exhausted
    /// again — counted from the endpoint's settled total before the request.
    Settled { before: u64 },
}

/// `--wait` of replay / recover: polls the endpoint's stats until the
/// deliveries this command queued are done (see [`WaitFor`]).
async fn wait_deliveries(
    client: &Client,
    endpoint: &str,
    queued: u64,
    what: WaitFor,
    deadline: tokio::time::Instant,
) -> Result<Value, String> {
    let mut p = Progress::new();
    loop {
        let s = client.endpoint_stats(endpoint).await.map_err(request_error)?;
        let (done, word, finished) = match what {
            WaitFor::FirstAttempt => {
                let fresh = s.pending.saturating_sub(s.retrying);
                (queued.saturating_sub(fresh), "attempted", fresh == 0)
            }
            WaitFor::Settled { before } => {
                let settled = s
                    .delivered
                    .saturating_add(s.failed)
                    .saturating_sub(before)
                    .min(queued);
                (settled, "settled", settled >= queued || s.pending == 0)
            }
        };
        let done = if finished { queued } else { done };
        let label = format!(
            "delivering to {endpoint}: {done}/{queued} {word}, {} delivered, {} retrying, {} failed",
            s.delivered, s.retrying, s.failed
        );
        if finished {
            p.finish(&label, done, Some(queued));
            return Ok(serde_json::to_value(&s).expect("json"));
        }
        if !s.enabled {
            p.finish(&label, done, Some(queued));
            return Err(format!(
                "endpoint {endpoint} is disabled: its deliveries wait until it is enabled again"
            ));
        }
        if tokio::time::Instant::now() >= deadline {
            p.finish(&label, done, Some(queued));
            return Err(format!(
                "gave up waiting (--wait-timeout): {done}/{queued} {word}; the deliveries go on in the server \
                 (the count is the endpoint's, so other traffic to it keeps it from reaching the end)"
            ));
        }
        p.update(&label, done, Some(queued));
        tokio::time::sleep(POLL).await;
    }
}

pub async fn replay(a: ReplayArgs) -> Result<(), String> {
    let from = match (&a.since, &a.after) {
        (Some(s), None) => marquee_client::ReplayFrom::Since(time_arg("since", s)?),
        (None, Some(c)) => marquee_client::ReplayFrom::After(c.clone()),
        _ => return Err("give exactly one of --since or --after".into()),
    };
    let deadline = wait_deadline(&a.wait_timeout)?;
    let client = a.conn.client()?;
    let mut p = Progress::new();
    let ep = a.endpoint.clone();
    let mut requests = 0u32;
    let mut last: Option<String> = None;
    let total = client
        .replay_all(&a.endpoint, from, |r, total| {
            requests += 1;
            if let Some(c) = &r.next_cursor {
                last = Some(c.clone());
            }
            let label = match (&r.has_more, &r.next_cursor) {
                (true, Some(c)) => format!("replaying to {ep}: {total} queued, continuing after {c}"),
                _ => format!("replaying to {ep}: {total} queued"),
            };
            if r.has_more {
                p.update(&label, total, None);
            } else {
                p.finish(&label, total, None);
            }
        })
        .await
        .map_err(|e| match &last {
            // What was queued stays queued: go on from there, not again from --since.
            Some(c) => format!("{e} (queued up to cursor {c}; continue with --after {c})"),
            None => request_error(e),
        })?;
    drop(p);
    let stats = if a.wait && total > 0 {
        Some(wait_deliveries(&client, &a.endpoint, total, WaitFor::FirstAttempt, deadline).await?)
    } else {
        None
    };
    if a.json {
        println!(
            "{}",
            serde_json::json!({"object": "replay", "endpoint_id": a.endpoint, "queued": total,
                "requests": requests, "stats": stats})
        );
    } else {
        println!("replay {}: {total} deliveries queued", a.endpoint);
    }
    Ok(())
}

pub async fn recover(a: RecoverArgs) -> Result<(), String> {
    let since = time_arg("since", &a.since)?;
    let until = a.until.as_deref().map(|u| time_arg("until", u)).transpose()?;
    let deadline = wait_deadline(&a.wait_timeout)?;
    let client = a.conn.client()?;
    let before = if a.wait {
        let s = client.endpoint_stats(&a.endpoint).await.map_err(request_error)?;
        s.delivered.saturating_add(s.failed)
    } else {
        0
    };
    let r = client
        .recover(&a.endpoint, &since, until.as_deref())
        .await
        .map_err(request_error)?;
    let stats = if a.wait && r.queued > 0 {
        Some(
            wait_deliveries(
                &client,
                &a.endpoint,
                r.queued,
                WaitFor::Settled { before },
                deadline,
            )
            .await?,
        )
    } else {
        None
    };
    if a.json {
        println!(
            "{}",
            serde_json::json!({"object": "recover", "endpoint_id": r.endpoint_id, "queued": r.queued, "stats": stats})
        );
    } else {
        println!(
            "recover {}: {} failed deliveries queued again",
            r.endpoint_id, r.queued
        );
    }
    Ok(())
}

fn erasure_label(e: &marquee_client::Erasure) -> String {
    format!(
        "erasure {} {}: {}/{} messages erased",
        e.id, e.status, e.messages_erased, e.messages_total
    )
}

pub async fn erase(a: EraseArgs) -> Result<(), String> {
    let client = a.conn.client()?;
    let mut e = match (&a.id, &a.channel) {
        (Some(id), _) => client.erasure(id).await.map_err(request_error)?,
        (None, Some(ch)) => client
            .create_erasure(ch, a.within.as_deref())
            .await
            .map_err(request_error)?,
        (None, None) => return Err("give --channel (a new erasure) or --id (an existing one)".into()),
    };
    if a.wait {
        let deadline = wait_deadline(&a.wait_timeout)?;
        let mut p = Progress::new();
        while !e.is_completed() {
            if tokio::time::Instant::now() >= deadline {
                p.finish(&erasure_label(&e), e.messages_erased, Some(e.messages_total));
                return Err(format!(
                    "gave up waiting (--wait-timeout): {}; it goes on in the server (marquee erase --id {} --wait)",
                    erasure_label(&e),
                    e.id
                ));
            }
            p.update(&erasure_label(&e), e.messages_erased, Some(e.messages_total));
            tokio::time::sleep(POLL).await;
            e = client.erasure(&e.id).await.map_err(request_error)?;
        }
        p.finish(&erasure_label(&e), e.messages_erased, Some(e.messages_total));
    }
    if a.json {
        println!("{}", serde_json::to_string(&e).expect("json"));
    } else if e.is_completed() {
        println!(
            "erasure {} completed: {} of {} messages on {}{} erased at {}",
            e.id,
            e.messages_erased,
            e.messages_total,
            e.channel,
            e.within
                .as_deref()
                .map(|w| format!(" within {w}"))
                .unwrap_or_default(),
            e.completed_at.as_deref().unwrap_or("?")
        );
    } else {
        println!(
            "erasure {} {}: {}/{} messages erased (follow it: marquee erase --id {} --wait)",
            e.id, e.status, e.messages_erased, e.messages_total, e.id
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bar_and_percent() {
        assert_eq!(bar(0, 10, 10), "[----------]   0%");
        assert_eq!(bar(5, 10, 10), "[#####-----]  50%");
        assert_eq!(bar(12, 10, 10), "[##########] 100%");
        assert_eq!(percent(0, 0), 100);
        assert_eq!(
            percent(u64::MAX, u64::MAX),
            100,
            "no overflow on a server's numbers"
        );
    }

    fn drawn(tty: bool, steps: &[(u64, bool)]) -> String {
        let mut buf = Vec::new();
        {
            let mut p = Progress::to(&mut buf, tty);
            for (done, last) in steps {
                let label = format!("erasure era_x: {done}/4 messages erased");
                if *last {
                    p.finish(&label, *done, Some(4));
                } else {
                    p.update(&label, *done, Some(4));
                }
            }
        }
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn progress_on_a_terminal_and_off() {
        let steps = [(0, false), (0, false), (1, false), (2, false), (4, true)];
        // A terminal: every update redraws the line; the end closes it.
        let t = drawn(true, &steps);
        assert!(
            t.starts_with("\r\x1b[2K[------------------------]   0% erasure era_x: 0/4"),
            "{t:?}"
        );
        assert_eq!(t.matches('\r').count(), 5);
        assert!(
            t.ends_with("[########################] 100% erasure era_x: 4/4 messages erased\n"),
            "{t:?}"
        );
        // Not a terminal: whole lines, the first at once, then at most one a
        // second (here: none within the second), and always the end.
        let p = drawn(false, &steps);
        assert_eq!(
            p,
            "erasure era_x: 0/4 messages erased (0%)\nerasure era_x: 4/4 messages erased (100%)\n"
        );
        // An unknown total: a spinner on a terminal, the label alone otherwise.
        let mut buf = Vec::new();
        Progress::to(&mut buf, false).finish("replaying to ep_x: 7 queued", 7, None);
        assert_eq!(String::from_utf8(buf).unwrap(), "replaying to ep_x: 7 queued\n");
        // Dropped mid-way on a terminal (an error follows): the line is closed.
        let mut buf = Vec::new();
        Progress::to(&mut buf, true).update("x", 1, None);
        assert!(String::from_utf8(buf).unwrap().ends_with("x\n"));
    }

    #[test]
    fn time_args() {
        assert_eq!(
            time_arg("since", "2026-05-14T21:00:00Z").unwrap(),
            "2026-05-14T21:00:00Z"
        );
        let t = time_arg("since", "2h").unwrap();
        let back = Timestamp::now().as_micros() - Timestamp::parse_rfc3339(&t).unwrap().as_micros();
        assert!((7_199_000_000..7_201_000_000).contains(&back), "{back}");
        assert!(time_arg("since", "yesterday").unwrap_err().contains("RFC 3339"));
    }
}
