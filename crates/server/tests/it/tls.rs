//! TLS on the listener: HTTPS and WSS with a certificate from a generated
//! private CA, plain HTTP refused with the envelope, bad files refused at
//! start; the Rust client and `marquee tail` trusting the CA by file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use marquee_server::ServeConfig;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

use crate::helpers::*;

/// A CA and a `localhost` leaf it signed, as PEM files in `dir`.
pub struct Certs {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

pub fn certs(dir: &Path) -> Certs {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &ca, &ca_key)
        .unwrap();
    let c = Certs {
        ca: dir.join("ca.pem"),
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
    };
    std::fs::write(&c.ca, ca.pem()).unwrap();
    std::fs::write(&c.cert, leaf.pem()).unwrap();
    std::fs::write(&c.key, leaf_key.serialize_pem()).unwrap();
    c
}

pub struct TlsServer {
    pub base: String,
    pub port: u16,
    pub http: reqwest::Client,
    pub certs: Certs,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl TlsServer {
    pub async fn start() -> TlsServer {
        init_log();
        let dir = tempfile::tempdir().unwrap();
        let certs = certs(dir.path());
        let mut config = ServeConfig::with_data_dir(dir.path().join("data"));
        config.admin_token = Some(ADMIN_TOKEN.into());
        config.http.tls_cert = Some(certs.cert.clone());
        config.http.tls_key = Some(certs.key.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            marquee_server::run(config, listener, async {
                let _ = stopped.await;
            })
            .await
            .expect("server run");
        });
        let ca = reqwest::Certificate::from_pem(&std::fs::read(&certs.ca).unwrap()).unwrap();
        let http = reqwest::Client::builder()
            .add_root_certificate(ca)
            .build()
            .unwrap();
        let base = format!("https://localhost:{port}");
        wait_up(&http, &base).await;
        TlsServer {
            base,
            port,
            http,
            certs,
            stop: Some(stop),
            task,
            _dir: dir,
        }
    }

    pub async fn tenant(&self) -> String {
        self.tenant_with(&[]).await
    }

    /// A new organization with `profiles` and a pro key.
    pub async fn tenant_with(&self, profiles: &[&str]) -> String {
        let org: Value = self
            .http
            .post(format!("{}/admin/v1/orgs", self.base))
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({"name": "tls", "profiles": profiles}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let key: Value = self
            .http
            .post(format!(
                "{}/admin/v1/orgs/{}/keys",
                self.base,
                org["id"].as_str().unwrap()
            ))
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({"tier": "pro"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        key["key"].as_str().expect("a key").to_owned()
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
    }
}

/// Sends `request` over plain TCP and reads until the server closes.
async fn plain(port: u16, request: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .expect("the server closes the plain connection")
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn https_and_wss_share_the_listener_and_plain_http_is_refused() {
    let s = TlsServer::start().await;
    let key = s.tenant().await;

    // REST over HTTPS.
    let r = s
        .http
        .post(format!("{}/v1/messages", s.base))
        .header("x-api-key", &key)
        .json(&checkin("venue:tls", 1))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);

    // The Rust client: REST and a wss:// stream, trusting the CA by PEM.
    let client = marquee_client::ClientOptions::with_api_key(key.clone())
        .ca_certificate_pem(std::fs::read(&s.certs.ca).unwrap())
        .connect(&s.base)
        .unwrap();
    let first = client
        .messages(marquee_client::ListParams::default().channel("venue:tls"))
        .next()
        .await
        .expect("one message")
        .unwrap();
    let mut sub = client.subscribe([("venue:tls", Some(first.cursor.clone()))]);
    let published = client
        .publish(marquee_client::NewMessage::new("fan_checkin", json!({"fan_id": "f2"})).channel("venue:tls"))
        .await
        .unwrap();
    let frame = tokio::time::timeout(Duration::from_secs(15), sub.next())
        .await
        .expect("a frame over wss")
        .expect("stream open")
        .unwrap();
    assert_eq!(frame.id, published.id);

    // Without the CA, the certificate is not trusted.
    let untrusting = reqwest::Client::new();
    assert!(untrusting.get(format!("{}/readyz", s.base)).send().await.is_err());
    let untrusted = marquee_client::ClientOptions::with_api_key(key.clone())
        .connect(&s.base)
        .unwrap();
    assert!(
        untrusted
            .list(&marquee_client::ListParams::default())
            .await
            .is_err()
    );

    // Plain HTTP: one 400 in the envelope saying to use https, then closed.
    let answer = plain(s.port, "GET /readyz HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    let body: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {answer}"));
    assert_eq!(body["error"]["code"], "invalid_request", "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("https://"),
        "{body}"
    );
    // A plain WebSocket upgrade is refused the same way.
    let ws = plain(
        s.port,
        "GET /v1/stream HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .await;
    assert!(ws.starts_with("HTTP/1.1 400"), "{ws}");

    // A client that connects and sends nothing is dropped after the
    // header-read timeout (10 s default) instead of holding a slot; the
    // server still serves others meanwhile.
    let _idle = tokio::net::TcpStream::connect(("127.0.0.1", s.port))
        .await
        .unwrap();
    let r = s.http.get(format!("{}/readyz", s.base)).send().await.unwrap();
    assert!(r.status().is_success());
    s.stop().await;
}

async fn start_err(tweak: impl FnOnce(&mut ServeConfig)) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServeConfig::with_data_dir(dir.path().join("data"));
    tweak(&mut config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let err = tokio::time::timeout(
        Duration::from_secs(10),
        marquee_server::run(config, listener, async {}),
    )
    .await
    .expect("start refused promptly")
    .expect_err("bad TLS files must stop the start");
    err.to_string()
}

#[tokio::test]
async fn bad_certificate_or_key_files_stop_the_start_with_the_file_named() {
    let dir = tempfile::tempdir().unwrap();
    let c = certs(dir.path());
    let missing = dir.path().join("nope.pem");
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not pem at all").unwrap();

    let e = start_err(|cfg| {
        cfg.http.tls_cert = Some(missing.clone());
        cfg.http.tls_key = Some(c.key.clone());
    })
    .await;
    assert!(
        e.contains("cannot read the TLS certificate file") && e.contains("nope.pem"),
        "{e}"
    );

    let e = start_err(|cfg| {
        cfg.http.tls_cert = Some(c.cert.clone());
        cfg.http.tls_key = Some(garbage.clone());
    })
    .await;
    assert!(e.contains("TLS key file") && e.contains("garbage.pem"), "{e}");

    let e = start_err(|cfg| {
        cfg.http.tls_cert = Some(garbage.clone());
        cfg.http.tls_key = Some(c.key.clone());
    })
    .await;
    assert!(
        e.contains("TLS certificate file") && e.contains("garbage.pem"),
        "{e}"
    );

    // A key that is not the certificate's.
    let e = start_err(|cfg| {
        cfg.http.tls_cert = Some(c.ca.clone());
        cfg.http.tls_key = Some(c.key.clone());
    })
    .await;
    assert!(e.contains("do not make a usable server identity"), "{e}");

    let e = start_err(|cfg| cfg.http.tls_cert = Some(c.cert.clone())).await;
    assert!(e.contains("--tls-key"), "{e}");
}

/// `marquee tail` over wss:// with `--ca-file`; without it, refused.
#[tokio::test]
async fn tail_streams_over_wss_with_a_ca_file() {
    let s = TlsServer::start().await;
    let key = s.tenant().await;
    let ca = s.certs.ca.display().to_string();
    let mut child = tokio::process::Command::new(marquee_bin())
        .args(["tail", "--channel", "venue:tls", "--json", "--ca-file", &ca])
        .args(["--url", &s.base, "--api-key", &key])
        .env("MARQUEE_LOG", "warn")
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines =
        tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(child.stdout.take().unwrap()));
    let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(16);
    tokio::spawn(async move {
        while let Ok(Some(l)) = lines.next_line().await {
            if tx.send(l).await.is_err() {
                break;
            }
        }
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut got = None;
    let mut n = 0;
    // Publish until tail (which connects in the background) shows one.
    while got.is_none() && tokio::time::Instant::now() < deadline {
        n += 1;
        s.http
            .post(format!("{}/v1/messages", s.base))
            .header("x-api-key", &key)
            .json(&checkin("venue:tls", n))
            .send()
            .await
            .unwrap();
        if let Ok(Some(l)) = tokio::time::timeout(Duration::from_millis(700), rx.recv()).await {
            got = Some(l);
        }
    }
    let line: Value = serde_json::from_str(&got.expect("a frame from tail over wss")).unwrap();
    assert_eq!(line["type"], "fan_checkin");
    let _ = child.kill().await;

    // `publish` without the CA file fails with a clear TLS error.
    let out = tokio::process::Command::new(marquee_bin())
        .args(["publish", "fan_checkin", "--channel", "venue:tls", "--data", "{}"])
        .args(["--url", &s.base, "--api-key", &key])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    s.stop().await;
}

/// Eventory's notification WebSockets over `wss://` on the TLS listener,
/// with the key in the `apikey` header (the document: "ws:// is not
/// accepted"); a plain `ws://` upgrade of the same path is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eventory_notifications_stream_over_wss_and_plain_ws_is_refused() {
    use futures_util::StreamExt;
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    let s = TlsServer::start().await;
    let key = s.tenant_with(&["eventory"]).await;
    let r = s
        .http
        .post(format!("{}/eventory/watchlist", s.base))
        .header("x-api-key", &key)
        .json(&json!({"event_id": "tls1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);

    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(&s.certs.ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let path = "/eventory/notifications/subscribe";
    let mut req = format!("wss://localhost:{}{path}", s.port)
        .into_client_request()
        .unwrap();
    req.headers_mut().insert("apikey", key.parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async_tls_with_config(
        req,
        None,
        false,
        Some(tokio_tungstenite::Connector::Rustls(std::sync::Arc::new(config))),
    )
    .await
    .expect("a wss upgrade with the CA trusted");

    let snapshot = json!({"website": "ticketmaster", "region": "US", "event_id": "tls1",
        "sections_type": "OfferSections", "stock": 4,
        "sections": {"floor": {"offer_name": "Floor", "available": true, "price": 99.0,
            "price_label": "$99.00", "stock": 4, "atc": "https://x/atc"}}});
    let r = s
        .http
        .post(format!("{}/v1/messages", s.base))
        .header("x-api-key", &key)
        .json(&json!({"type": "inventory.snapshot", "channels": ["event:tls1"], "data": snapshot}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let frame = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => return t.as_str().to_owned(),
                Some(Ok(_)) => continue,
                other => panic!("stream ended: {other:?}"),
            }
        }
    })
    .await
    .expect("a notification over wss");
    let v: Value = serde_json::from_str(&frame).unwrap();
    assert_eq!(v["event_id"], "tls1");
    assert_eq!(v["changes"], json!({"stock_increase": ["Floor"]}));

    // ws:// (plain HTTP) to the same path: the envelope's 400, no upgrade.
    let answer = plain(
        s.port,
        &format!(
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\napikey: {key}\r\n\r\n"
        ),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    s.stop().await;
}
