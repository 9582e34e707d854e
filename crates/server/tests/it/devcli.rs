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
