//! The developer commands against a real server: `listen` forwards to a
//! local receiver that verifies every request in the chosen format and
//! resumes after being killed; `verify` on real captures from the
//! dispatcher; `tail --json` and `publish`.

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::helpers::*;
use crate::webhooks::{Hit, Receiver};

const WAIT: Duration = Duration::from_secs(15);

struct Proc {
    child: tokio::process::Child,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

impl Proc {
    fn spawn(args: &[&str], envs: &[(&str, &str)]) -> Proc {
        let mut c = tokio::process::Command::new(marquee_bin());
        c.args(args)
            .env("MARQUEE_LOG", "warn")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        for (k, v) in envs {
            c.env(k, v);
        }
        let mut child = c.spawn().expect("spawn marquee");
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Proc { child, lines }
    }

    async fn line(&mut self) -> String {
        tokio::time::timeout(WAIT, self.lines.next_line())
            .await
            .expect("a line in time")
            .unwrap()
            .expect("the process ended")
    }

    /// Reads until a line starting with `prefix`; returns the rest.
    async fn value(&mut self, prefix: &str) -> String {
        loop {
            let l = self.line().await;
            if let Some(v) = l.strip_prefix(prefix) {
                return v.trim().to_owned();
            }
        }
    }
}

async fn hits(r: &Receiver, n: usize) -> Vec<Hit> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let h = r.hits.lock().unwrap().clone();
        if h.len() >= n || tokio::time::Instant::now() > deadline {
            return h;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn verify_hit(format: &str, secret: &str, identifier: Option<&str>, h: &Hit) -> Result<(), String> {
    let headers: Vec<(&str, &str)> = h
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.to_str().unwrap()))
        .collect();
    marquee_client::verify(format, secret, identifier, &headers, &h.body).map_err(|e| e.to_string())
}

async fn listen_story(format: &str) {
    let s = TestServer::start().await;
    let (_, key) = s.tenant().await;
    let recv = Receiver::ok().await;
    let config = tempfile::tempdir().unwrap();
    let forward = format!("http://{}/hooks", recv.addr);
    let cfg = config.path().to_str().unwrap().to_owned();
    let args = [
        "listen",
        "--url",
        s.base.as_str(),
        "--forward-to",
        forward.as_str(),
        "--channels",
        "venue:x",
        "--types",
        "fan_*",
        "--format",
        format,
    ];
    let envs = [
        ("MARQUEE_API_KEY", key.as_str()),
        ("MARQUEE_CONFIG_DIR", cfg.as_str()),
    ];
    let mut l = Proc::spawn(&args, &envs);
    let secret = l.value("secret:").await;
    let identifier = if format == "attendee" {
        Some(l.value("identifier:").await)
    } else {
        None
    };
    l.value("state:").await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let mut ids = Vec::new();
    for n in 0..3 {
        let m = s
            .publish(
                &key,
                json!({"type": "fan_checkin", "channels": ["venue:x"], "data": {"n": n, "fan_id": "f"}}),
            )
            .await;
        ids.push(m["id"].as_str().unwrap().to_owned());
    }
    // Filtered out by --types (but its cursor is kept).
    s.publish(
        &key,
        json!({"type": "merch_drop", "channels": ["venue:x"], "data": {}}),
    )
    .await;
    let got = hits(&recv, 3).await;
    assert_eq!(got.len(), 3);
    for (h, id) in got.iter().zip(&ids) {
        verify_hit(format, &secret, identifier.as_deref(), h).unwrap_or_else(|e| panic!("{format}: {e}"));
        assert!(
            String::from_utf8_lossy(&h.body).contains(&id[4..]),
            "{format}: body names {id}"
        );
    }
    for id in &ids {
        let line = l.line().await;
        assert!(
            line.contains("fan_checkin") && line.contains(id.as_str()) && line.contains(" 204 "),
            "{line}"
        );
        assert!(line.ends_with("ms"), "{line}");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    l.child.kill().await.unwrap();

    // While it is down: two more. The restarted listen forwards exactly those.
    for n in 3..5 {
        let m = s
            .publish(
                &key,
                json!({"type": "fan_checkin", "channels": ["venue:x"], "data": {"n": n, "fan_id": "f"}}),
            )
            .await;
        ids.push(m["id"].as_str().unwrap().to_owned());
    }
    let mut l = Proc::spawn(&args, &envs);
    assert_eq!(
        l.value("secret:").await,
        secret,
        "the secret is stable across restarts"
    );
    let got = hits(&recv, 5).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got2 = recv.hits.lock().unwrap().clone();
    assert_eq!(got.len(), 5, "no gap");
    assert_eq!(got2.len(), 5, "no duplicate");
    for (h, id) in got2[3..].iter().zip(&ids[3..]) {
        verify_hit(format, &secret, identifier.as_deref(), h).unwrap();
        assert!(String::from_utf8_lossy(&h.body).contains(&id[4..]));
    }
    l.child.kill().await.unwrap();
    // The API key is never stored.
    for e in walk(config.path()) {
        let text = std::fs::read_to_string(&e).unwrap();
        assert!(!text.contains(&key), "{} holds the key", e.display());
    }
}

fn walk(p: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(p).unwrap() {
        let e = e.unwrap().path();
        if e.is_dir() {
            out.extend(walk(&e));
        } else {
            out.push(e);
        }
    }
    out
}

#[tokio::test]
async fn listen_forwards_standard_signed_and_resumes_after_kill() {
    listen_story("standard").await;
}

#[tokio::test]
async fn listen_forwards_attendee_signed_and_resumes_after_kill() {
    listen_story("attendee").await;
}

fn verify_cli(format: &str, secret: &str, identifier: Option<&str>, h: &Hit, body: &[u8]) -> (bool, String) {
    let mut c = Command::new(marquee_bin());
    c.args(["verify", "--format", format, "--secret", secret]);
    if let Some(i) = identifier {
        c.args(["--identifier", i]);
    }
    for (n, v) in &h.headers {
        c.arg("--header").arg(format!("{}: {}", n, v.to_str().unwrap()));
    }
    let mut child: Child = c
        .env("MARQUEE_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(body).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[tokio::test]
async fn verify_checks_real_captures_and_says_why_not() {
    let s = TestServer::start_with(|c| c.webhooks.allow_private = true).await;
    let (_, key) = s.tenant().await;
    for format in ["standard", "eventium", "revento"] {
        let recv = Receiver::ok().await;
        let r = s
            .post(&key, "/v1/endpoints")
            .json(&json!({"url": format!("http://{}/hook", recv.addr), "format": format}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let ep: Value = r.json().await.unwrap();
        let secret = ep["secret"].as_str().unwrap().to_owned();
        s.post(
            &key,
            &format!("/v1/endpoints/{}/test", ep["id"].as_str().unwrap()),
        )
        .send()
        .await
        .unwrap();
        let got = hits(&recv, 1).await;
        let h = &got[0];
        let (ok, out) = verify_cli(format, &secret, None, h, &h.body);
        assert!(ok, "{format}: {out}");
        assert!(out.contains("verified"), "{out}");
        let mut tampered = h.body.to_vec();
        tampered.extend_from_slice(b" ");
        let (ok, out) = verify_cli(format, &secret, None, h, &tampered);
        assert!(!ok);
        assert!(
            out.contains("not verified: no signature matches the secret"),
            "{format}: {out}"
        );
    }
    // Missing header: says which.
    let h = Hit {
        at: std::time::Instant::now(),
        headers: Default::default(),
        body: Default::default(),
        json: Value::Null,
        nth: 0,
        open: 1,
    };
    let (ok, out) = verify_cli(
        "standard",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        None,
        &h,
        b"{}",
    );
    assert!(!ok);
    assert!(out.contains("header is missing"), "{out}");
}

#[tokio::test]
async fn tail_json_shows_what_publish_sends() {
    let s = TestServer::start().await;
    let (_, key) = s.tenant().await;
    let envs = [
        ("MARQUEE_API_KEY", key.as_str()),
        ("MARQUEE_URL", s.base.as_str()),
    ];
    let mut t = Proc::spawn(
        &["tail", "--channel", "venue:x", "--type", "fan_checkin", "--json"],
        &envs,
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("data.json");
    std::fs::write(&file, r#"{"fan_id":"fan_1","gate":"NORTH"}"#).unwrap();
    let data = format!("@{}", file.display());
    // Async: the in-process server shares this runtime's thread.
    let out = tokio::process::Command::new(marquee_bin())
        .args(["publish", "fan_checkin", "--channel", "venue:x", "--data", &data])
        .envs(envs)
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let published: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(published["data"]["gate"], "NORTH");
    s.publish(
        &key,
        json!({"type": "merch_drop", "channels": ["venue:x"], "data": {}}),
    )
    .await;
    let line: Value = serde_json::from_str(&t.line().await).unwrap();
    assert_eq!(line["type"], "fan_checkin");
    assert_eq!(line["id"], published["id"]);
    assert_eq!(line["cursor"], published["cursor"]);
    assert_eq!(line["channel"], "venue:x");
    assert_eq!(line["payload"], json!({"fan_id":"fan_1","gate":"NORTH"}));
    // merch_drop is filtered out by --type.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), t.lines.next_line())
            .await
            .is_err()
    );
    t.child.kill().await.unwrap();
}

// ------------------------------------------------------------------------------------------------
// Long operations (replay, recover, erase): progress on stderr as plain lines
// when it is not a terminal (here: a pipe), the result on stdout.

struct Run {
    ok: bool,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `marquee args…` to the end (async: the in-process server shares
/// this runtime's thread).
async fn run(args: &[&str], envs: &[(&str, &str)]) -> Run {
    let out = tokio::process::Command::new(marquee_bin())
        .args(args)
        .env("MARQUEE_LOG", "warn")
        .env_remove("TERM")
        .envs(envs.iter().copied())
        .output()
        .await
        .unwrap();
    Run {
        ok: out.status.success(),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Not a terminal: no carriage returns, no escape sequences, whole lines.
fn assert_plain(text: &str) {
    assert!(!text.contains('\r') && !text.contains('\x1b'), "{text:?}");
    assert!(text.is_empty() || text.ends_with('\n'), "{text:?}");
}

fn client(s: &TestServer, key: &str) -> marquee_client::Client {
    marquee_client::ClientOptions::with_api_key(key)
        .connect(&s.base)
        .unwrap()
}

async fn publish_many(c: &marquee_client::Client, n: usize, channels: &[&str], tag: &str) {
    let batch = (0..n)
        .map(|i| {
            let mut m = marquee_client::NewMessage::new(
                "fan_checkin",
                json!({"fan_id": format!("{tag}{i}"), "n": i}),
            );
            m.channels = channels.iter().map(|c| c.to_string()).collect();
            m
        })
        .collect();
    c.publish_batch(batch).await.unwrap();
}

async fn count_on(c: &marquee_client::Client, channel: &str) -> usize {
    let mut pages = c.messages(marquee_client::ListParams::default().channel(channel).limit(100));
    let mut n = 0;
    while let Some(m) = pages.next().await {
        m.unwrap();
        n += 1;
    }
    n
}

#[tokio::test]
async fn erase_waits_with_progress_lines_when_not_a_terminal() {
    let s = TestServer::start().await;
    let (_, key) = s.tenant().await;
    let c = client(&s, &key);
    publish_many(&c, 600, &["user:u1", "event:e1"], "a").await;
    publish_many(&c, 40, &["user:u1", "event:e2"], "b").await;
    publish_many(&c, 30, &["user:u2"], "c").await;
    let envs = [
        ("MARQUEE_API_KEY", key.as_str()),
        ("MARQUEE_URL", s.base.as_str()),
    ];

    // --wait: progress lines on stderr, the outcome on stdout.
    let r = run(
        &["erase", "--channel", "user:u1", "--within", "event:e1", "--wait"],
        &envs,
    )
    .await;
    assert!(r.ok, "{}{}", r.stdout, r.stderr);
    assert_plain(&r.stderr);
    assert_plain(&r.stdout);
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert!(!lines.is_empty(), "{}", r.stderr);
    let mut last_erased = 0;
    for l in &lines {
        // erasure era_… running: 250/600 messages erased (41%)
        let rest = l.strip_prefix("erasure era_").unwrap_or_else(|| panic!("{l}"));
        let (_, rest) = rest.split_once(' ').unwrap();
        let (status, rest) = rest.split_once(": ").unwrap();
        assert!(status == "running" || status == "completed", "{l}");
        let (counts, rest) = rest.split_once(" messages erased (").unwrap();
        let (done, total) = counts.split_once('/').unwrap();
        let done: u64 = done.parse().unwrap();
        assert_eq!(total, "600", "{l}");
        assert!(done >= last_erased, "progress only grows: {l}");
        last_erased = done;
        assert!(rest.ends_with("%)"), "{l}");
    }
    assert!(
        lines
            .last()
            .unwrap()
            .contains(" completed: 600/600 messages erased (100%)"),
        "{}",
        r.stderr
    );
    let out = r.stdout.trim();
    assert!(
        out.starts_with("erasure era_")
            && out.contains(" completed: 600 of 600 messages on user:u1 within event:e1 erased at 20"),
        "{out}"
    );
    assert_eq!(
        count_on(&c, "user:u1").await,
        40,
        "only the other event's messages are left"
    );
    assert_eq!(count_on(&c, "event:e1").await, 0);

    // Without --wait: accepted at once; --id … --wait follows it; --json.
    let r = run(&["erase", "--channel", "user:u2", "--json"], &envs).await;
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(r.stderr, "", "no progress without --wait");
    let e: Value = serde_json::from_str(r.stdout.trim()).unwrap();
    assert_eq!(
        (e["channel"].as_str(), e["messages_total"].as_u64()),
        (Some("user:u2"), Some(30))
    );
    assert_eq!(e["within"], Value::Null);
    let id = e["id"].as_str().unwrap();
    let r = run(&["erase", "--id", id, "--wait", "--json"], &envs).await;
    assert!(r.ok, "{}", r.stderr);
    assert_plain(&r.stderr);
    let e: Value = serde_json::from_str(r.stdout.trim()).unwrap();
    assert_eq!(
        (e["status"].as_str(), e["messages_erased"].as_u64()),
        (Some("completed"), Some(30))
    );
    assert!(e["completed_at"].is_string());
    assert_eq!(count_on(&c, "user:u2").await, 0);

    // Errors: the server's envelope, said plainly; usage errors from clap.
    let r = run(&["erase", "--channel", "not a channel"], &envs).await;
    assert_eq!(r.code, Some(1));
    assert!(
        r.stderr.starts_with("marquee: 400 invalid_request: "),
        "{}",
        r.stderr
    );
    let r = run(
        &["erase", "--id", "era_01JD0000000000000000000000", "--wait"],
        &envs,
    )
    .await;
    assert_eq!(r.code, Some(1));
    assert!(r.stderr.starts_with("marquee: 404 not_found: "), "{}", r.stderr);
    let r = run(&["erase", "--id", "../v1/messages"], &envs).await;
    assert_eq!(r.code, Some(1));
    assert!(r.stderr.contains("is not an id"), "{}", r.stderr);
    let r = run(&["erase", "--wait"], &envs).await;
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    let r = run(
        &["erase", "--channel", "user:u1"],
        &[
            ("MARQUEE_API_KEY", "sk_live_wrong"),
            ("MARQUEE_URL", s.base.as_str()),
        ],
    )
    .await;
    assert_eq!(r.code, Some(1));
    assert!(
        r.stderr.starts_with("marquee: 401 invalid_api_key: "),
        "{}",
        r.stderr
    );
}

#[tokio::test]
async fn replay_and_recover_with_progress_lines_when_not_a_terminal() {
    let s = TestServer::start_with(crate::webhooks::fast).await;
    let (_, key) = s.tenant().await;
    let c = client(&s, &key);
    let envs = [
        ("MARQUEE_API_KEY", key.as_str()),
        ("MARQUEE_URL", s.base.as_str()),
    ];
    // Published before the endpoint exists: only a replay delivers them.
    publish_many(&c, 5, &["venue:replay"], "r").await;
    let early = c
        .list(&marquee_client::ListParams::default().channel("venue:replay"))
        .await
        .unwrap();
    let rx = Receiver::ok().await;
    let ep = crate::webhooks::create_endpoint(
        &s,
        &key,
        json!({"url": format!("http://{}/hooks", rx.addr), "channels": ["venue:replay"]}),
    )
    .await;
    let ep_id = ep["id"].as_str().unwrap().to_owned();

    let r = run(
        &["replay", "--endpoint", &ep_id, "--since", "1h", "--wait"],
        &envs,
    )
    .await;
    assert!(r.ok, "{}{}", r.stdout, r.stderr);
    assert_plain(&r.stderr);
    assert_eq!(r.stdout, format!("replay {ep_id}: 5 deliveries queued\n"));
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(
        lines[0],
        format!("replaying to {ep_id}: 5 queued"),
        "{}",
        r.stderr
    );
    let last = lines.last().unwrap();
    assert!(
        last.starts_with(&format!("delivering to {ep_id}: 5/5 attempted, ")) && last.ends_with("(100%)"),
        "{}",
        r.stderr
    );
    // --wait returned once every delivery had its first attempt.
    assert_eq!(hits(&rx, 5).await.len(), 5);

    // From a cursor: the two after the third message; --json.
    let third = &early.data[2].cursor;
    let r = run(
        &["replay", "--endpoint", &ep_id, "--after", third, "--json"],
        &envs,
    )
    .await;
    assert!(r.ok, "{}", r.stderr);
    let v: Value = serde_json::from_str(r.stdout.trim()).unwrap();
    assert_eq!(
        (v["queued"].as_u64(), v["requests"].as_u64()),
        (Some(2), Some(1)),
        "{v}"
    );
    assert_eq!(hits(&rx, 7).await.len(), 7);

    // Recover: a delivery exhausted while the receiver failed, queued again.
    rx.set(|_| crate::webhooks::Reply::status(500));
    c.publish(
        marquee_client::NewMessage::new("fan_checkin", json!({"fan_id": "late"})).channel("venue:replay"),
    )
    .await
    .unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while c.endpoint_stats(&ep_id).await.unwrap().failed < 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the delivery was not exhausted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    rx.set(|_| crate::webhooks::Reply::status(204));
    let r = run(
        &["recover", "--endpoint", &ep_id, "--since", "1h", "--wait"],
        &envs,
    )
    .await;
    assert!(r.ok, "{}{}", r.stdout, r.stderr);
    assert_plain(&r.stderr);
    assert_eq!(
        r.stdout,
        format!("recover {ep_id}: 1 failed deliveries queued again\n")
    );
    assert!(
        r.stderr.contains(&format!("delivering to {ep_id}: 1/1 settled")),
        "{}",
        r.stderr
    );
    let got = rx.hits.lock().unwrap().clone();
    assert!(
        got.iter()
            .skip(7)
            .any(|h| String::from_utf8_lossy(&h.body).contains("late"))
    );

    // Errors.
    let r = run(&["replay", "--endpoint", &ep_id, "--since", "yesterday"], &envs).await;
    assert_eq!(r.code, Some(1));
    assert!(r.stderr.contains("give an RFC 3339 time"), "{}", r.stderr);
    let r = run(&["replay", "--endpoint", &ep_id], &envs).await;
    assert_eq!(
        r.code,
        Some(2),
        "one of --since / --after is required: {}",
        r.stderr
    );
    let r = run(
        &["replay", "--endpoint", &ep_id, "--since", "1h", "--after", third],
        &envs,
    )
    .await;
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    let r = run(
        &[
            "replay",
            "--endpoint",
            "ep_01JD0000000000000000000000",
            "--since",
            "1h",
        ],
        &envs,
    )
    .await;
    assert_eq!(r.code, Some(1));
    assert!(r.stderr.starts_with("marquee: 404 not_found: "), "{}", r.stderr);
    let r = run(
        &["replay", "--endpoint", &ep_id, "--after", "not-a-cursor"],
        &envs,
    )
    .await;
    assert_eq!(r.code, Some(1));
    assert!(
        r.stderr.starts_with("marquee: 400 invalid_request: "),
        "{}",
        r.stderr
    );
}

#[tokio::test]
async fn erase_on_a_terminal_draws_one_progress_line() {
    // util-linux `script` runs the command on a pseudo-terminal.
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
    {
        skip("no `script` (util-linux) to run the CLI on a terminal");
        return;
    }
    let s = TestServer::start().await;
    let (_, key) = s.tenant().await;
    publish_many(&client(&s, &key), 300, &["user:tty"], "t").await;
    let dir = tempfile::tempdir().unwrap();
    let typescript = dir.path().join("tty.out");
    let cmd = format!("{} erase --channel user:tty --wait", marquee_bin());
    let out = tokio::process::Command::new("script")
        .args(["-qec", &cmd])
        .arg(&typescript)
        .env("MARQUEE_API_KEY", &key)
        .env("MARQUEE_URL", &s.base)
        .env("MARQUEE_LOG", "warn")
        .env("TERM", "xterm")
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&std::fs::read(&typescript).unwrap()).into_owned();
    // Redrawn in place (carriage return, clear line), a bar, then the outcome.
    assert!(
        text.contains("\r\x1b[2K[########################] 100% erasure era_"),
        "{text:?}"
    );
    assert!(
        text.contains("completed: 300/300 messages erased\r\n"),
        "{text:?}"
    );
    assert!(
        text.contains("completed: 300 of 300 messages on user:tty erased at "),
        "{text:?}"
    );
}
