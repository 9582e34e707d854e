//! The README's path, as printed: its blocks marked `<!-- readme-test: … -->`
//! run against the built `marquee` binary, in the order a new user meets
//! them — the demo (`cargo run --release -- serve --demo` is this binary
//! with the arguments after `--`), the commands the demo prints, the SSE
//! stream and newest-messages examples, the local webhook receiver and its
//! endpoint, the WebSocket handler's logic, and the CLI (with `marquee` on
//! PATH, as the README's install step puts it). Substituted, and nothing
//! else: the demo's port (`127.0.0.1:7400`, so a demo you run yourself does
//! not collide) and the receiver's (`9911`).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::*;

const README: &str = include_str!("../../../../README.md");
const SERVER_MANIFEST: &str = include_str!("../../Cargo.toml");

/// The fenced block after the `<!-- readme-test: TAG … -->` marker.
fn block(tag: &str) -> String {
    let marker = format!("<!-- readme-test: {tag}");
    let mut found = Vec::new();
    let mut lines = README.lines();
    while let Some(l) = lines.next() {
        if !(l.starts_with(&marker) && l[marker.len()..].starts_with([' ', '-'])) {
            continue;
        }
        let fence = lines.next().expect("a block after the marker");
        assert!(
            fence.starts_with("```"),
            "{tag}: the marker must precede a fenced block"
        );
        let body: Vec<&str> = lines.by_ref().take_while(|l| !l.starts_with("```")).collect();
        found.push(body.join("\n"));
    }
    assert!(!found.is_empty(), "README has no block marked readme-test: {tag}");
    found.join("\n")
}

/// A child process (killed on drop) whose stdout lines are collected as
/// they come. Shell blocks that keep running are started with `exec`, so the
/// child is the command itself and signals reach it.
pub struct Proc {
    pub child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
    stderr: Arc<Mutex<String>>,
}

impl Proc {
    pub fn spawn(mut cmd: Command) -> Proc {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn");
        let (tx, lines) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines() {
                let Ok(l) = l else { break };
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let err = child.stderr.take().unwrap();
        let sink = stderr.clone();
        std::thread::spawn(move || {
            for l in BufReader::new(err).lines() {
                let Ok(l) = l else { break };
                let mut s = sink.lock().unwrap();
                s.push_str(&l);
                s.push('\n');
            }
        });
        Proc {
            child,
            lines,
            seen: Vec::new(),
            stderr,
        }
    }

    /// The first new stdout line matching `pred`, within `secs`.
    pub fn wait_line(&mut self, secs: u64, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if pred(&l) {
                        return l;
                    }
                }
                Err(_) => panic!(
                    "waited {secs} s for {what}; stdout so far:\n{}\nstderr:\n{}",
                    self.seen.join("\n"),
                    self.stderr()
                ),
            }
        }
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Sends `SIGTERM` (a clean stop) to the process itself.
    pub fn terminate(&self) {
        let _ = Command::new("kill")
            .args(["-s", "TERM", &self.child.id().to_string()])
            .status();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `sh -c` a README block with the environment the README sets up.
fn sh(block: &str, env: &Env) -> Command {
    let mut cmd = Command::new("sh");
    cmd.arg("-eu").arg("-c").arg(env.apply(block));
    cmd.current_dir(&env.cwd)
        .env("KEY", &env.key)
        .env("PATH", &env.path)
        .env_remove("MARQUEE_DATA_DIR")
        .env_remove("MARQUEE_DATABASE_URL");
    cmd
}

struct Env {
    cwd: std::path::PathBuf,
    port: u16,
    receiver_port: u16,
    key: String,
    path: String,
}

impl Env {
    fn apply(&self, text: &str) -> String {
        text.replace("127.0.0.1:7400", &format!("127.0.0.1:{}", self.port))
            .replace("9911", &self.receiver_port.to_string())
    }

    fn run(&self, block: &str) -> String {
        let out = sh(block, self).output().unwrap();
        assert!(
            out.status.success(),
            "README block failed:\n{block}\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

fn python3() -> bool {
    Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn curl() -> bool {
    Command::new("curl")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// An SSE `data:` line's JSON.
fn sse_data(line: &str) -> Option<Value> {
    serde_json::from_str(line.strip_prefix("data:")?.trim()).ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_works_as_printed() {
    if !curl() {
        skip("no curl on PATH: the README's examples use it");
        return;
    }
    // The install step names the package that builds `marquee`.
    assert!(README.contains("cargo install --path crates/server --locked"));
    assert!(SERVER_MANIFEST.contains("[[bin]]\nname = \"marquee\""));
    let bin_dir = std::path::Path::new(marquee_bin()).parent().unwrap();
    let cwd = tempfile::tempdir().unwrap();
    let mut env = Env {
        cwd: cwd.path().to_path_buf(),
        port: free_port(),
        receiver_port: free_port(),
        key: String::new(),
        path: format!(
            "{}:{}",
            bin_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        ),
    };

    // 1. The run command, as printed.
    let serve = block("serve");
    let args = serve
        .strip_prefix("cargo run --release -- ")
        .expect("the README runs the server with `cargo run --release -- …`");
    let mut cmd = Command::new(marquee_bin());
    cmd.args(args.split_whitespace())
        .current_dir(cwd.path())
        .env("MARQUEE_LISTEN", format!("127.0.0.1:{}", env.port))
        .env("MARQUEE_LOG", "info")
        .env_remove("MARQUEE_DATA_DIR")
        .env_remove("NO_COLOR");
    let mut demo = Proc::spawn(cmd);
    let key_line = demo.wait_line(30, "the demo's key", |l| l.contains("API key"));
    env.key = key_line.rsplit(' ').next().unwrap().to_owned();
    assert!(env.key.starts_with("sk_live_"), "{key_line}");
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{}", env.port);
    wait_up(&http, &base).await;
    let mut printed = Vec::new();
    loop {
        let l = demo.wait_line(10, "the demo's commands", |_| true);
        let cmd = l.trim();
        if cmd.starts_with("curl ") || cmd.starts_with("marquee ") || cmd.contains("/marquee ") {
            printed.push(cmd.to_owned());
        }
        if l.contains(" key create ") {
            break;
        }
    }
    assert!(
        demo.stderr()
            .contains("demo mode: webhooks may go to loopback receivers"),
        "{}",
        demo.stderr()
    );

    // 2. What the demo printed: the live stream, the newest messages and
    //    another key, run exactly as printed.
    let sse_cmd = printed
        .iter()
        .find(|c| c.starts_with("curl -N"))
        .expect("a curl -N line");
    let mut sse = Proc::spawn({
        let mut c = Command::new("sh");
        c.arg("-c").arg(format!("exec {sse_cmd}"));
        c
    });
    let frame = sse.wait_line(15, "a live frame from the printed curl -N", |l| {
        sse_data(l).is_some_and(|v| v["type"].is_string())
    });
    assert_eq!(sse_data(&frame).unwrap()["channel"], "venue:stubbs-austin");
    let newest_cmd = printed
        .iter()
        .find(|c| c.contains("order=desc"))
        .expect("a newest-messages line");
    let t0 = Instant::now();
    loop {
        let out = env.run(newest_cmd);
        let page: Value = serde_json::from_str(&out).expect(&out);
        let n = page["data"].as_array().map_or(0, Vec::len);
        if n == 5 {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(15), "{page}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let cli_line = printed.iter().find(|c| c.contains(" key create ")).unwrap();
    let new_key = env.run(cli_line);
    assert!(new_key.trim().starts_with("sk_live_"), "{new_key}");

    // 3. The README's stream example: what is flowing now, including the
    //    merch drop's claims (on the venue channel, where the examples look).
    let mut stream = Proc::spawn(sh(&format!("exec {}", block("stream")), &env));
    let mut types = std::collections::HashSet::new();
    while !types.contains("drop_claimed") {
        let l = stream.wait_line(30, "a drop claim on the venue's stream", |l| {
            sse_data(l).is_some()
        });
        let v = sse_data(&l).unwrap();
        assert_eq!(v["channel"], "venue:stubbs-austin", "{v}");
        assert!(v["payload"].is_object() && v["cursor"].is_string(), "{v}");
        types.insert(v["type"].as_str().unwrap().to_owned());
    }
    assert!(types.contains("fan_checkin"), "{types:?}");
    drop(stream);
    let drops = http
        .get(format!(
            "{base}/v1/messages?channel=venue:stubbs-austin&type=drop_published"
        ))
        .header("x-api-key", &env.key)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(
        drops["data"].as_array().map(Vec::len),
        Some(1),
        "the drop, once: {drops}"
    );

    // 4. The newest messages, newest first.
    let out = env.run(&block("sh"));
    let page: Value = serde_json::from_str(&out).expect(&out);
    let cursors: Vec<&str> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["cursor"].as_str().unwrap())
        .collect();
    assert_eq!(cursors.len(), 5, "{page}");
    assert!(
        cursors.windows(2).all(|w| w[0] > w[1]),
        "newest first: {cursors:?}"
    );

    // 5. A local receiver and the webhook example.
    let fallback;
    let mut receiver = None;
    if python3() {
        let r = Proc::spawn(sh(&format!("exec {}", block("receiver")), &env));
        let addr = format!("127.0.0.1:{}", env.receiver_port);
        let t0 = Instant::now();
        while std::net::TcpStream::connect(&addr).is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "receiver never listened: {}",
                r.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        receiver = Some(r);
    } else {
        skip("no python3: the README's receiver is replaced by the test's own");
        fallback = crate::webhooks::Receiver::ok().await;
        env.receiver_port = fallback.addr.port();
    }
    let out = env.run(&block("webhook"));
    let ep: Value = serde_json::from_str(out.lines().next().unwrap()).expect(&out);
    assert_eq!(ep["object"], "endpoint", "{ep}");
    assert!(ep["secret"].as_str().unwrap().starts_with("whsec_"), "{ep}");
    if let Some(r) = receiver.as_mut() {
        let line = r.wait_line(20, "a delivery printed by the receiver", |l| {
            l.starts_with("dlv_")
        });
        let (_, body) = line.split_once(' ').unwrap();
        let body: Value = serde_json::from_str(body).unwrap();
        let keys: Vec<&str> = body.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "type",
                "timestamp",
                "id",
                "cursor",
                "channels",
                "occurred_at",
                "data"
            ],
            "the body the README shows"
        );
        assert!(
            body["type"] == "fan_checkin" || body["type"].as_str().unwrap().starts_with("drop_"),
            "{body}"
        );
        // Its id is the message's.
        let r = http
            .get(format!("{base}/v1/messages/{}", body["id"].as_str().unwrap()))
            .header("x-api-key", &env.key)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    drop(receiver);

    // 6. The WebSocket example: its URL, its subscribe frame, and its
    //    handler's rule (a frame with `type` is a message with payload and
    //    cursor; anything else is marquee's, with `event`).
    let js = block("js");
    let url = js.split('\'').nth(1).expect("new WebSocket('…')");
    let url = env.apply(url).replace("sk_live_…", &env.key);
    let literal = js
        .split("JSON.stringify(")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .expect("ws.send(JSON.stringify({…}))");
    let mut subscribe = literal.replace('\'', "\"");
    for k in ["action", "channel", "id"] {
        subscribe = subscribe.replace(&format!("{k}:"), &format!("\"{k}\":"));
    }
    assert!(js.contains("if (e.type)") && js.contains("e.event"), "{js}");
    let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str()).await.unwrap();
    ws.send(Message::text(subscribe)).await.unwrap();
    let mut events = 0;
    let mut first = true;
    while events < 3 {
        let m = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a frame in time")
            .unwrap()
            .unwrap();
        let Message::Text(t) = m else { continue };
        let e: Value = serde_json::from_str(t.as_str()).unwrap();
        if first {
            assert_eq!(e["event"], "subscribed", "the ack comes first: {e}");
            first = false;
        }
        if e.get("type").is_some() {
            assert!(e["payload"].is_object() && e["cursor"].is_string(), "{e}");
            events += 1;
        } else {
            assert!(e["event"].is_string(), "neither a message nor marquee's own: {e}");
        }
    }

    // 7. The CLI examples, with `marquee` on PATH, on the demo's data dir
    //    while it runs.
    let out = env.run(&block("cli"));
    let last: Value = serde_json::from_str(out.trim().lines().last().unwrap()).expect(&out);
    assert!(
        last["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["name"] == "Stubb's"),
        "{last}"
    );
    assert!(
        out.contains("\tpro\tdoor\t"),
        "key list shows the key's name: {out}"
    );

    // A clean stop: no colour in the piped log, nothing after it.
    demo.terminate();
    let status = demo.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let log = demo.stderr();
    assert!(!log.contains('\u{1b}'), "ANSI escapes in a piped log:\n{log}");
    assert!(log.contains("marquee stopped"), "{log}");
}
