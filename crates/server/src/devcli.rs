//! The developer commands — `listen`, `tail`, `publish`, `verify` — which
//! talk to a running marquee as a client (`marquee-client`), never to the
//! store. Signing and verification are marquee-core's wire formats, the
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
