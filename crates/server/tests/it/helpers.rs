//! Test helpers: start a real server on port 0 with its own temp data dir,
//! create organizations and keys through the admin API, talk HTTP.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::Duration;

use marquee_server::ServeConfig;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const ADMIN_TOKEN: &str = "test-admin-token";

static LOG: Once = Once::new();

pub fn init_log() {
    LOG.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new("debug"))
                .with_test_writer()
                .try_init();
        }
    });
}

/// Says that the running test is skipped, and why, where a plain `cargo
/// test` shows it: written to the process's stderr directly, which the
/// harness does not capture (it captures only `print!`/`eprint!`), so a
/// skipped test never passes silently. Names the test (the harness names
/// each test's thread after it). Under `MARQUEE_TEST_STRICT=1` (CI) a skip
/// is a failure: whatever the test needs must be there.
pub fn skip(reason: &str) {
    use std::io::Write;
    let thread = std::thread::current();
    let name = thread.name().unwrap_or("a test");
    if std::env::var("MARQUEE_TEST_STRICT").is_ok_and(|v| v == "1") {
        panic!("MARQUEE_TEST_STRICT=1 but {name} cannot run: {reason}");
    }
    let _ = writeln!(std::io::stderr().lock(), "SKIPPED {name}: {reason}");
}

/// A marquee server running inside the test process.
pub struct TestServer {
    pub addr: SocketAddr,
    pub base: String,
    pub http: reqwest::Client,
    pub dir: Option<TempDir>,
    pub data_dir: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut ServeConfig)) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let data_dir = dir.path().to_path_buf();
        let mut s = Self::start_in(&data_dir, tweak).await;
        s.dir = Some(dir);
        s
    }

    /// Starts on an existing data dir (for restart tests).
    pub async fn start_in(data_dir: &Path, tweak: impl FnOnce(&mut ServeConfig)) -> Self {
        init_log();
        let mut config = ServeConfig::with_data_dir(data_dir);
        config.admin_token = Some(ADMIN_TOKEN.into());
        config.listen = "127.0.0.1:0".parse().unwrap();
        tweak(&mut config);
        let listener = tokio::net::TcpListener::bind(config.listen).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            marquee_server::run(config, listener, async {
                let _ = stopped.await;
            })
            .await
            .expect("server run");
        });
        let s = TestServer {
            addr,
            base: format!("http://{addr}"),
            http: reqwest::Client::new(),
            dir: None,
            data_dir: data_dir.to_path_buf(),
            stop: Some(stop),
            task: Some(task),
        };
        s.wait_ready().await;
        s
    }

    pub async fn wait_ready(&self) {
        for _ in 0..200 {
            if let Ok(r) = self.http.get(self.url("/readyz")).send().await
                && r.status().is_success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("server at {} never became ready", self.addr);
    }

    /// Graceful shutdown; returns the temp dir so the data survives.
    pub async fn stop(mut self) -> Option<TempDir> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
        }
        self.dir.take()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn admin(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, self.url(path)).bearer_auth(ADMIN_TOKEN)
    }

    pub async fn create_org(&self, name: &str) -> String {
        self.create_org_with(name, &[]).await
    }

    /// An organization with `profiles` enabled; its id.
    pub async fn create_org_with(&self, name: &str, profiles: &[&str]) -> String {
        let r = self
            .admin(reqwest::Method::POST, "/admin/v1/orgs")
            .json(&json!({"name": name, "profiles": profiles}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        r.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Creates a key; returns (key id, plaintext).
    pub async fn create_key(&self, org: &str, tier: &str) -> (String, String) {
        let r = self
            .admin(reqwest::Method::POST, &format!("/admin/v1/orgs/{org}/keys"))
            .json(&json!({"tier": tier}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let v: Value = r.json().await.unwrap();
        (
            v["id"].as_str().unwrap().to_owned(),
            v["key"].as_str().unwrap().to_owned(),
        )
    }

    /// A fresh organization with an enterprise key: (org id, key).
    pub async fn tenant(&self) -> (String, String) {
        self.tenant_with(&[]).await
    }

    /// A fresh organization with `profiles` and an enterprise key: (org id, key).
    pub async fn tenant_with(&self, profiles: &[&str]) -> (String, String) {
        let org = self.create_org_with("tenant", profiles).await;
        let (_, key) = self.create_key(&org, "enterprise").await;
        (org, key)
    }

    pub fn get(&self, key: &str, path: &str) -> reqwest::RequestBuilder {
        self.http.get(self.url(path)).header("x-api-key", key)
    }

    pub fn post(&self, key: &str, path: &str) -> reqwest::RequestBuilder {
        self.http.post(self.url(path)).header("x-api-key", key)
    }

    pub async fn publish(&self, key: &str, body: Value) -> Value {
        let r = self.post(key, "/v1/messages").json(&body).send().await.unwrap();
        assert_eq!(r.status(), 201, "publish failed");
        r.json().await.unwrap()
    }

    /// `GET path` answered 200; its JSON.
    pub async fn get_json(&self, key: &str, path: &str) -> Value {
        let r = self.get(key, path).send().await.unwrap();
        assert_eq!(r.status(), 200, "GET {path}");
        r.json().await.unwrap()
    }

    /// Publishes `messages` as one batch (asserting 201).
    pub async fn publish_batch(&self, key: &str, messages: Vec<Value>) {
        let r = self
            .post(key, "/v1/messages/batch")
            .json(&serde_json::json!({"messages": messages}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "batch publish failed");
    }

    /// Every message visible to `key`, following cursors.
    pub async fn list_all(&self, key: &str, query: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut q = format!("/v1/messages?limit=100{query}");
            if let Some(a) = &after {
                q.push_str(&format!("&after={a}"));
            }
            let v: Value = self.get(key, &q).send().await.unwrap().json().await.unwrap();
            out.extend(v["data"].as_array().unwrap().iter().cloned());
            if !v["has_more"].as_bool().unwrap() {
                return out;
            }
            after = v["next_cursor"].as_str().map(str::to_owned);
        }
    }
}

pub fn checkin(channel: &str, n: u64) -> Value {
    json!({"type": "fan_checkin", "channels": [channel], "data": {"fan_id": format!("fan_{n}"), "gate": "MAIN", "n": n}})
}

/// Asserts the documented error envelope and returns its code.
pub async fn assert_error(resp: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(resp.status().as_u16(), status, "status");
    assert_eq!(
        resp.headers().get("cache-control").and_then(|v| v.to_str().ok()),
        Some("private, no-store")
    );
    let v: Value = resp.json().await.expect("error body is JSON");
    assert_eq!(v["error"]["code"], code, "{v}");
    assert!(
        v["error"]["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{v}"
    );
    v
}

/// Path of the real `marquee` binary built for these tests.
pub fn marquee_bin() -> &'static str {
    env!("CARGO_BIN_EXE_marquee")
}

/// A free local port (for spawning the binary).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until a server (a spawned process) answers `/readyz`.
pub async fn wait_up(http: &reqwest::Client, base: &str) {
    for _ in 0..400 {
        if http
            .get(format!("{base}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("server at {base} did not come up");
}

/// `marquee serve` as a child process on `port` over `data_dir` (logs at
/// warn, output discarded), with `envs` added: for the tests that `kill -9`
/// and restart a real process on the same data dir.
pub fn spawn_serve(data_dir: &Path, port: u16, envs: &[(&str, &str)]) -> std::process::Child {
    std::process::Command::new(marquee_bin())
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(data_dir)
        .env("MARQUEE_LOG", "warn")
        .envs(envs.iter().copied())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// A CLI command on the data dir `dir` with `--json`: asserts it succeeded
/// and answers its JSON.
pub fn cli_json(dir: &Path, args: &[&str]) -> Value {
    let out = std::process::Command::new(marquee_bin())
        .args(args)
        .args(["--json", "--data-dir"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// An organization named `name` (with `--profile` args in `org_args`) and
/// an enterprise key, made with the real CLI on `dir`: (key id, key).
pub fn provision(dir: &Path, name: &str, org_args: &[&str]) -> (String, String) {
    let mut args = vec!["org", "create", name];
    args.extend_from_slice(org_args);
    let org = cli_json(dir, &args);
    let key = cli_json(
        dir,
        &[
            "key",
            "create",
            "--tier",
            "enterprise",
            "--org",
            org["id"].as_str().unwrap(),
        ],
    );
    (
        key["id"].as_str().unwrap().to_owned(),
        key["key"].as_str().unwrap().to_owned(),
    )
}
