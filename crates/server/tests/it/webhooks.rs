//! Webhook delivery against real receiver HTTP servers on 127.0.0.1: success
//! and signatures, retries, timeouts, Retry-After, 410, refused connections,
//! isolation, ordering, rate limits, the SSRF guard, secret rotation, resend,
//! recover, replay, test pings, stats and the endpoint API.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use marquee_core::profile::standard::verify;
use marquee_core::webhook::RetrySchedule;
use marquee_core::wire::SigningSecret;
use marquee_server::ServeConfig;
use serde_json::{Value, json};

use crate::helpers::*;

/// One request a receiver got.
#[derive(Debug, Clone)]
pub struct Hit {
    pub at: Instant,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub json: Value,
    /// Earlier requests with the same `webhook-id`.
    pub nth: usize,
    /// Requests open at the receiver when this one arrived, itself included.
    pub open: usize,
}

impl Hit {
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
    }

    pub fn n(&self) -> u64 {
        self.json["data"]["n"].as_u64().unwrap_or(u64::MAX)
    }
}

pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub delay: Duration,
}

impl Reply {
    pub fn status(status: u16) -> Self {
        Reply {
            status,
            headers: vec![],
            delay: Duration::ZERO,
        }
    }
}

type Behavior = Arc<dyn Fn(&Hit) -> Reply + Send + Sync>;

/// A webhook receiver: records every request and answers per `behavior`.
#[derive(Clone)]
pub struct Receiver {
    pub addr: SocketAddr,
    pub hits: Arc<Mutex<Vec<Hit>>>,
    behavior: Arc<Mutex<Behavior>>,
    /// Requests open now, and the most ever open at once.
    open: Arc<AtomicUsize>,
    max_open: Arc<AtomicUsize>,
    /// With `Some(n)`, at most n requests are served at a time (each for
    /// its reply's delay); the others wait, open, for a worker.
    workers: Option<Arc<tokio::sync::Semaphore>>,
}

/// Counts a request as open until dropped.
struct OpenGuard(Arc<AtomicUsize>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Receiver {
    pub async fn start(behavior: impl Fn(&Hit) -> Reply + Send + Sync + 'static) -> Self {
        Self::start_with(None, behavior).await
    }

    /// A receiver that serves `workers` requests at a time and queues the
    /// rest (a slow application with a small worker pool).
    pub async fn with_workers(
        workers: usize,
        behavior: impl Fn(&Hit) -> Reply + Send + Sync + 'static,
    ) -> Self {
        Self::start_with(Some(workers), behavior).await
    }

    async fn start_with(
        workers: Option<usize>,
        behavior: impl Fn(&Hit) -> Reply + Send + Sync + 'static,
    ) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let r = Receiver {
            addr,
            hits: Arc::new(Mutex::new(Vec::new())),
            behavior: Arc::new(Mutex::new(Arc::new(behavior))),
            open: Arc::default(),
            max_open: Arc::default(),
            workers: workers.map(|n| Arc::new(tokio::sync::Semaphore::new(n))),
        };
        let rc = r.clone();
        let app = axum::Router::new().fallback(move |headers: HeaderMap, body: Bytes| {
            let rc = rc.clone();
            async move {
                let open = rc.open.fetch_add(1, Ordering::SeqCst) + 1;
                let _open = OpenGuard(rc.open.clone());
                rc.max_open.fetch_max(open, Ordering::SeqCst);
                let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let reply = {
                    let mut hits = rc.hits.lock().unwrap();
                    let id = headers.get("webhook-id").cloned();
                    let nth = hits
                        .iter()
                        .filter(|h| h.headers.get("webhook-id") == id.as_ref())
                        .count();
                    let hit = Hit {
                        at: Instant::now(),
                        headers,
                        body,
                        json,
                        nth,
                        open,
                    };
                    let b = rc.behavior.lock().unwrap().clone();
                    let reply = b(&hit);
                    hits.push(hit);
                    reply
                };
                let _worker = match &rc.workers {
                    Some(w) => Some(w.acquire().await.unwrap()),
                    None => None,
                };
                tokio::time::sleep(reply.delay).await;
                let mut resp = StatusCode::from_u16(reply.status).unwrap().into_response();
                for (k, v) in reply.headers {
                    resp.headers_mut().insert(k, v.parse().unwrap());
                }
                resp
            }
        });
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        r
    }

    pub async fn ok() -> Self {
        Self::start(|_| Reply::status(204)).await
    }

    pub fn set(&self, behavior: impl Fn(&Hit) -> Reply + Send + Sync + 'static) {
        *self.behavior.lock().unwrap() = Arc::new(behavior);
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.hits.lock().unwrap().len()
    }

    /// The most requests that were ever open at once.
    pub fn max_open(&self) -> usize {
        self.max_open.load(Ordering::SeqCst)
    }

    /// Waits until at least `n` requests arrived (or panics after `secs`).
    pub async fn wait_for(&self, n: usize, secs: u64) -> Vec<Hit> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let h = self.hits();
            if h.len() >= n {
                return h;
            }
            assert!(
                Instant::now() < deadline,
                "receiver got {} of {n} requests",
                h.len()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

pub fn fast(c: &mut ServeConfig) {
    c.webhooks.allow_private = true;
    c.webhooks.retry_schedule = RetrySchedule(vec![
        Duration::ZERO,
        Duration::from_millis(50),
        Duration::from_millis(100),
        Duration::from_millis(150),
    ]);
    c.webhooks.timeout = Duration::from_millis(1500);
}

async fn server() -> TestServer {
    TestServer::start_with(fast).await
}

pub async fn create_endpoint(s: &TestServer, key: &str, body: Value) -> Value {
    let r = s.post(key, "/v1/endpoints").json(&body).send().await.unwrap();
    assert_eq!(r.status(), 201, "{:?}", r.text().await);
    r.json().await.unwrap()
}

async fn post_json(s: &TestServer, key: &str, path: &str, body: Value) -> (u16, Value) {
    let r = s.post(key, path).json(&body).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Polls `path` until `pred` holds (or panics after `secs`).
async fn eventually(
    s: &TestServer,
    key: &str,
    path: &str,
    secs: u64,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let v = s.get_json(key, path).await;
        if pred(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "condition on {path} never held: {v}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn secret_of(ep: &Value) -> SigningSecret {
    ep["secret"].as_str().unwrap().parse().unwrap()
}

fn verifies(secret: &SigningSecret, h: &Hit) -> bool {
    let ts: i64 = h.header("webhook-timestamp").parse().unwrap();
    verify(
        secret,
        h.header("webhook-id"),
        ts,
        &h.body,
        h.header("webhook-signature"),
    )
}

fn data(v: &Value) -> &Vec<Value> {
    v["data"].as_array().unwrap()
}

#[tokio::test]
async fn delivers_a_signed_message_and_logs_the_attempt() {
    let s = server().await;
    let rx = Receiver::ok().await;
    let (_, key) = s.tenant().await;
    let ep = create_endpoint(&s, &key, json!({"url": rx.url(), "types": ["fan_*"]})).await;
    assert!(ep["secret"].as_str().unwrap().starts_with("whsec_"));
    let ep_id = ep["id"].as_str().unwrap().to_owned();
    let m = s.publish(&key, checkin("venue:a", 1)).await;
    s.publish(
        &key,
        json!({"type": "order.completed", "channels": ["venue:a"], "data": {}}),
    )
    .await;
    let hits = rx.wait_for(1, 10).await;
    let h = &hits[0];
    assert!(h.header("webhook-id").starts_with("dlv_"));
    assert!(verifies(&secret_of(&ep), h), "signature verifies");
    assert_eq!(h.json["type"], "fan_checkin");
    assert_eq!(h.json["id"], m["id"]);
    assert_eq!(h.json["cursor"], m["cursor"]);
    assert_eq!(h.json["channels"][0], "venue:a");
    assert_eq!(h.json["data"]["n"], 1);
    assert!(h.json["occurred_at"].is_string());
    let path = format!("/v1/messages/{}/attempts", m["id"].as_str().unwrap());
    let log = eventually(&s, &key, &path, 5, |v| data(v).len() == 1).await;
    let a = &data(&log)[0];
    assert_eq!(a["status"], "succeeded");
    assert_eq!(a["status_code"], 204);
    assert_eq!(a["endpoint_id"], ep_id.as_str());
    assert_eq!(a["delivery_id"], h.header("webhook-id"));
    let stats = eventually(&s, &key, &format!("/v1/endpoints/{ep_id}/stats"), 5, |v| {
        v["delivered"] == 1
    })
    .await;
    assert_eq!(stats["pending"], 0);
    assert_eq!(stats["success_rate_last_hour"], 1.0);
    // Not subscribed to order.*: nothing more arrives.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(rx.count(), 1);
}

#[tokio::test]
async fn retries_with_the_same_delivery_id_until_success() {
    let s = server().await;
    let rx = Receiver::start(|h| Reply::status(if h.nth < 2 { 500 } else { 200 })).await;
    let (_, key) = s.tenant().await;
    let ep = create_endpoint(&s, &key, json!({"url": rx.url()})).await;
    let ep_id = ep["id"].as_str().unwrap();
    let m = s.publish(&key, checkin("venue:a", 1)).await;
    let hits = rx.wait_for(3, 10).await;
    let id = hits[0].header("webhook-id");
    assert!(hits.iter().all(|h| h.header("webhook-id") == id));
    assert!(hits.iter().all(|h| verifies(&secret_of(&ep), h)));
    let path = format!("/v1/messages/{}/attempts", m["id"].as_str().unwrap());
    let log = eventually(&s, &key, &path, 5, |v| data(v).len() == 3).await;
    let statuses: Vec<&str> = data(&log).iter().map(|a| a["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["failed", "failed", "succeeded"]);
    assert_eq!(data(&log)[0]["status_code"], 500);
    assert_eq!(data(&log)[0]["error_kind"], "http_status");
    let attempts: Vec<u64> = data(&log)
        .iter()
        .map(|a| a["attempt"].as_u64().unwrap())
        .collect();
    assert_eq!(attempts, [1, 2, 3]);
    let failed = s
        .get_json(&key, &format!("/v1/endpoints/{ep_id}/attempts?status=failed"))
        .await;
    assert_eq!(data(&failed).len(), 2);
    let first = data(&failed)[0]["id"].as_str().unwrap().to_owned();
    let after = s
        .get_json(
            &key,
            &format!("/v1/endpoints/{ep_id}/attempts?status=failed&after={first}"),
        )
        .await;
    assert_eq!(data(&after).len(), 1);
    assert_eq!(rx.count(), 3);
}

#[tokio::test]
async fn timeouts_fail_and_exhaustion_is_published() {
    let s = TestServer::start_with(|c| {
        fast(c);
        c.webhooks.timeout = Duration::from_millis(200);
        c.webhooks.retry_schedule = RetrySchedule(vec![Duration::ZERO, Duration::from_millis(20)]);
    })
    .await;
    let rx = Receiver::start(|_| Reply {
        status: 200,
        headers: vec![],
        delay: Duration::from_secs(3),
    })
    .await;
    let (_, key) = s.tenant().await;
    // A second endpoint subscribed to operational messages.
    let ops = Receiver::ok().await;
    let ep = create_endpoint(&s, &key, json!({"url": rx.url(), "types": ["fan_checkin"]})).await;
    create_endpoint(
        &s,
        &key,
        json!({"url": ops.url(), "types": ["message.attempt.*"]}),
    )
    .await;
    let m = s.publish(&key, checkin("venue:a", 1)).await;
    let path = format!("/v1/messages/{}/attempts", m["id"].as_str().unwrap());
    let log = eventually(&s, &key, &path, 10, |v| data(v).len() == 2).await;
    for a in data(&log) {
        assert_eq!(a["status"], "failed");
        assert_eq!(a["error_kind"], "timeout");
        assert!(a["status_code"].is_null());
    }
    let exhausted = ops.wait_for(1, 10).await;
    let e = exhausted
        .iter()
        .find(|h| h.json["type"] == "message.attempt.exhausted")
        .expect("exhausted notice");
    assert_eq!(e.json["data"]["message_id"], m["id"]);
    assert_eq!(e.json["data"]["endpoint_id"], ep["id"]);
    let logged = s.list_all(&key, "&type=message.attempt.exhausted").await;
    assert_eq!(logged.len(), 1);
    let stats = s
        .get_json(
            &key,
            &format!("/v1/endpoints/{}/stats", ep["id"].as_str().unwrap()),
        )
        .await;
    assert_eq!(stats["failed"], 1);
}

#[tokio::test]
async fn retry_after_on_429_is_honoured() {
    let s = server().await;
    let rx = Receiver::start(|h| {
        if h.nth == 0 {
            Reply {
                status: 429,
                headers: vec![("retry-after", "1".into())],
                delay: Duration::ZERO,
            }
        } else {
            Reply::status(200)
        }
    })
    .await;
    let (_, key) = s.tenant().await;
    create_endpoint(&s, &key, json!({"url": rx.url()})).await;
    s.publish(&key, checkin("venue:a", 1)).await;
    let hits = rx.wait_for(2, 10).await;
    let gap = hits[1].at - hits[0].at;
    assert!(
        gap >= Duration::from_millis(950),
        "retried after {gap:?}, not after Retry-After: 1"
    );
    assert!(gap < Duration::from_secs(4), "{gap:?}");
}

/// An IMF-fixdate (`Wed, 21 Oct 2015 07:28:00 GMT`) `secs` or more ahead.
fn http_date_in(secs: u64) -> String {
    let fmt = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    // Rounded up to the next whole second: at least `secs` ahead.
    let t = time::OffsetDateTime::now_utc() + Duration::from_secs(secs + 1);
    t.replace_nanosecond(0).unwrap().format(&fmt).unwrap()
}

#[tokio::test]
async fn retry_after_as_an_http_date_is_honoured() {
    let s = server().await;
    let reply = |date: fn() -> String| {
        move |h: &Hit| {
            if h.nth == 0 {
                Reply {
                    status: 429,
                    headers: vec![("retry-after", date())],
                    delay: Duration::ZERO,
                }
            } else {
                Reply::status(200)
            }
        }
    };
    let later = Receiver::start(reply(|| http_date_in(2))).await;
    let past = Receiver::start(reply(|| "Thu, 01 Jan 1970 00:00:00 GMT".into())).await;
    let (_, key) = s.tenant().await;
    create_endpoint(&s, &key, json!({"url": later.url()})).await;
    create_endpoint(&s, &key, json!({"url": past.url()})).await;
    s.publish(&key, checkin("venue:a", 1)).await;
    let hits = past.wait_for(2, 10).await;
    let gap = hits[1].at - hits[0].at;
    assert!(
        gap < Duration::from_millis(900),
        "a date in the past adds no wait, yet the retry came after {gap:?}"
    );
    let hits = later.wait_for(2, 10).await;
    let gap = hits[1].at - hits[0].at;
    assert!(
        gap >= Duration::from_millis(1950),
        "retried after {gap:?}, before the Retry-After date"
    );
    assert!(gap < Duration::from_millis(4500), "{gap:?}");
}

#[tokio::test]
async fn gone_disables_the_endpoint_and_says_so() {
    let s = server().await;
    let rx = Receiver::start(|_| Reply::status(410)).await;
    let (_, key) = s.tenant().await;
    let ep = create_endpoint(&s, &key, json!({"url": rx.url(), "types": ["fan_checkin"]})).await;
    let ep_id = ep["id"].as_str().unwrap();
    s.publish(&key, checkin("venue:a", 1)).await;
    let v = eventually(&s, &key, &format!("/v1/endpoints/{ep_id}"), 10, |v| {
        v["enabled"] == false
    })
    .await;
    assert!(v["disabled_reason"].as_str().unwrap().contains("410"));
    let notices = s.list_all(&key, "&type=endpoint.disabled").await;
    assert_eq!(notices.len(), 1);
    assert_eq!(notices[0]["data"]["endpoint_id"], ep_id);
    assert_eq!(rx.count(), 1, "410 is not retried");
    s.publish(&key, checkin("venue:a", 2)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.count(), 1, "a disabled endpoint receives nothing");
}

#[tokio::test]
async fn refused_connections_fail_and_retry() {
    let s = server().await;
    let port = free_port();
    let (_, key) = s.tenant().await;
    create_endpoint(&s, &key, json!({"url": format!("http://127.0.0.1:{port}/hook")})).await;
    let m = s.publish(&key, checkin("venue:a", 1)).await;
    let path = format!("/v1/messages/{}/attempts", m["id"].as_str().unwrap());
    let log = eventually(&s, &key, &path, 10, |v| data(v).len() == 4).await;
    assert!(data(&log).iter().all(|a| a["error_kind"] == "connect"), "{log}");
}

#[tokio::test]
async fn a_slow_endpoint_does_not_delay_a_healthy_one() {
    let s = TestServer::start_with(|c| {
        fast(c);
        c.webhooks.timeout = Duration::from_secs(10);
    })
    .await;
    let slow = Receiver::start(|_| Reply {
        status: 200,
        headers: vec![],
        delay: Duration::from_secs(5),
    })
    .await;
    let healthy = Receiver::ok().await;
    let (_, key) = s.tenant().await;
    create_endpoint(&s, &key, json!({"url": slow.url(), "max_in_flight": 2})).await;
    create_endpoint(&s, &key, json!({"url": healthy.url()})).await;
    let t0 = Instant::now();
    for n in 0..20 {
        s.publish(&key, checkin("venue:a", n)).await;
    }
    healthy.wait_for(20, 10).await;
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "healthy endpoint took {:?}",
        t0.elapsed()
    );
    assert!(
        slow.count() <= 2,
        "the slow endpoint has at most max_in_flight attempts open"
    );
}

/// One commit creates more deliveries for an endpoint than its queue takes
/// (300 > twice its claim target of 64): the rest are given back and claimed
/// as slots free up, and the endpoint's next deliveries are not born leased
/// while it is saturated. Every message arrives, each exactly once.
#[tokio::test]
async fn an_endpoint_that_cannot_keep_up_still_gets_everything_once() {
    let s = server().await;
    let rx = Receiver::start(|_| Reply {
        status: 204,
        headers: vec![],
        delay: Duration::from_millis(3),
    })
    .await;
    let (_, key) = s.tenant().await;
    let ep = create_endpoint(&s, &key, json!({"url": rx.url(), "max_in_flight": 2})).await;
    s.publish_batch(&key, (0..300).map(|n| checkin("venue:a", n)).collect())
        .await;
    // The overflow marked the endpoint saturated: the next batch is not
    // born leased but claimed as slots free up.
    s.publish_batch(&key, (300..400).map(|n| checkin("venue:a", n)).collect())
        .await;
    rx.wait_for(400, 30).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let hits = rx.hits();
    assert_eq!(hits.len(), 400, "no delivery attempted twice");
    let mut ns: Vec<u64> = hits.iter().map(Hit::n).collect();
    ns.sort_unstable();
    assert_eq!(ns, (0..400).collect::<Vec<u64>>(), "every message delivered");
    let stats = s
        .get_json(
            &key,
            &format!("/v1/endpoints/{}/stats", ep["id"].as_str().unwrap()),
        )
        .await;
    assert_eq!(stats["delivered"], 400, "{stats}");
    assert_eq!(stats["pending"], 0, "{stats}");
}

/// An endpoint's `concurrency` as the API shows it.
async fn concurrency(s: &TestServer, key: &str, id: &str) -> Value {
    s.get_json(key, &format!("/v1/endpoints/{id}")).await["concurrency"].clone()
}

async fn patch_endpoint(s: &TestServer, key: &str, id: &str, body: Value) -> (u16, Value) {
    let r = s
        .http
        .patch(s.url(&format!("/v1/endpoints/{id}")))
        .header("x-api-key", key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Every message 0..n arrived, each exactly once.
fn exactly_once(hits: &[Hit], n: u64) {
    assert_eq!(hits.len() as u64, n, "no delivery attempted twice");
    let mut ns: Vec<u64> = hits.iter().map(Hit::n).collect();
    ns.sort_unstable();
    assert_eq!(ns, (0..n).collect::<Vec<u64>>(), "every message delivered");
}

/// A receiver that answers in 20 ms however many requests are open (a
/// healthy service across a network) needs more than the old fixed 8 in
/// flight to keep pace (8 / 20 ms = 400/s): an endpoint created without
/// `max_in_flight` grows well past 8, never past the cap, and delivers
/// everything once.
#[tokio::test]
async fn the_default_limit_grows_for_a_fast_receiver() {
    let s = server().await;
    let rx = Receiver::start(|_| Reply {
        status: 204,
        headers: vec![],
        delay: Duration::from_millis(20),
    })
    .await;
    let (_, key) = s.tenant().await;
    let ep = create_endpoint(&s, &key, json!({"url": rx.url()})).await;
    assert!(ep["max_in_flight"].is_null(), "{ep}");
    assert_eq!(
        ep["concurrency"],
        json!({"mode": "adaptive", "current": 8, "cap": 64})
    );
    let id = ep["id"].as_str().unwrap();
    const N: u64 = 3000;
    for chunk in 0..3 {
        s.publish_batch(
            &key,
            (chunk * 1000..(chunk + 1) * 1000)
                .map(|n| checkin("venue:a", n))
                .collect(),
        )
        .await;
    }
    let mut highest = 0;
    let deadline = Instant::now() + Duration::from_secs(90);
    while rx.count() < N as usize {
        assert!(Instant::now() < deadline, "receiver got {} of {N}", rx.count());
        let c = concurrency(&s, &key, id).await;
        highest = highest.max(c["current"].as_u64().unwrap());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    exactly_once(&rx.hits(), N);
    let most = rx.max_open();
    assert!(most >= 24, "at most {most} requests were open at once");
    assert!(most <= 64, "{most} requests open at once, above the cap");
    assert!(highest > 8, "the API never showed a limit above 8 ({highest})");
}

/// A receiver that serves two requests at a time (50 ms each) and queues
/// the rest: more concurrency only lengthens its queue. The adaptive limit
/// measures that and settles near what it serves (about 4) instead of piling
/// requests up to the cap; nothing is lost.
#[tokio::test]
async fn the_default_limit_backs_off_from_a_receiver_that_queues() {
    let s = server().await;
    let rx = Receiver::with_workers(2, |_| Reply {
        status: 204,
        headers: vec![],
        delay: Duration::from_millis(50),
    })
    .await;
    let (_, key) = s.tenant().await;
    let ep = create_endpoint(&s, &key, json!({"url": rx.url()})).await;
    let id = ep["id"].as_str().unwrap();
    const N: u64 = 240;
    s.publish_batch(&key, (0..N).map(|n| checkin("venue:a", n)).collect())
        .await;
    // The limits the API showed, for the failure messages.
    let mut limits: Vec<u64> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    while rx.count() < N as usize {
        assert!(Instant::now() < deadline, "receiver got {} of {N}", rx.count());
        let l = concurrency(&s, &key, id).await["current"].as_u64().unwrap();
        if limits.last() != Some(&l) {
            limits.push(l);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let hits = rx.hits();
    exactly_once(&hits, N);
    let most = rx.max_open();
    assert!(
        most <= 16,
        "{most} requests open at once at a receiver serving 2; limits {limits:?}"
    );
    let late = hits[2 * N as usize / 3..].iter().map(|h| h.open).max().unwrap();
    assert!(
        late <= 6,
        "{late} requests open at once in the last third; limits {limits:?}"
    );
    let c = concurrency(&s, &key, id).await;
    assert!(c["current"].as_u64().unwrap() <= 6, "{c}; limits {limits:?}");
}

/// A receiver that sheds load — 503 to any request beyond two open — and
/// recovers: the limit is halved at each burst of 503s instead of keeping
/// eight requests on it, so most attempts succeed; everything is delivered
/// (retried after the 503s).
#[tokio::test]
async fn the_default_limit_backs_off_from_a_receiver_that_sheds_load() {
    let s = TestServer::start_with(|c| {
        fast(c);
        let mut waits = vec![Duration::ZERO, Duration::from_millis(50)];
        waits.extend([Duration::from_millis(100); 20]);
        c.webhooks.retry_schedule = RetrySchedule(waits);
    })
    .await;
    let rx = Receiver::start(|h| {
        if h.open > 2 {
            Reply::status(503)
        } else {
            Reply {
                status: 204,
                headers: vec![],
                delay: Duration::from_millis(20),
            }
        }
    })
    .await;
    let (_, key) = s.tenant().await;
    let ep = create_endpoint(&s, &key, json!({"url": rx.url()})).await;
    let id = ep["id"].as_str().unwrap();
    const N: u64 = 200;
    s.publish_batch(&key, (0..N).map(|n| checkin("venue:a", n)).collect())
        .await;
    let stats = eventually(&s, &key, &format!("/v1/endpoints/{id}/stats"), 90, |v| {
        v["delivered"] == N && v["pending"] == 0
    })
    .await;
    assert_eq!(stats["failed"], 0, "{stats}");
    let hits = rx.hits();
    let shed = hits.iter().filter(|h| h.open > 2).count();
    // With 8 in flight, 6 of every 8 requests would be shed (~600 here).
    assert!(shed < N as usize / 4, "{shed} requests shed for {N} delivered");
    let most = rx.max_open();
    assert!(most <= 8, "{most} requests open at once, above the initial 8");
    let mut ns: Vec<u64> = hits.iter().filter(|h| h.open <= 2).map(Hit::n).collect();
    ns.sort_unstable();
    ns.dedup();
    assert_eq!(ns.len() as u64, N, "every message answered 2xx");
}

/// An explicit `max_in_flight` is a fixed limit: 2 means at most 2 open
/// requests, never adapted. PATCH switches between fixed and adaptive.
#[tokio::test]
async fn an_explicit_max_in_flight_is_a_fixed_limit() {
    let s = server().await;
    let rx = Receiver::start(|_| Reply {
        status: 204,
        headers: vec![],
        delay: Duration::from_millis(5),
    })
    .await;
    let (_, key) = s.tenant().await;
    let ep = create_endpoint(&s, &key, json!({"url": rx.url(), "max_in_flight": 2})).await;
    let id = ep["id"].as_str().unwrap();
    assert_eq!(ep["max_in_flight"], 2);
    assert_eq!(
        ep["concurrency"],
        json!({"mode": "fixed", "current": 2, "cap": 2})
    );
    const N: u64 = 400;
    s.publish_batch(&key, (0..N).map(|n| checkin("venue:a", n)).collect())
        .await;
    rx.wait_for(N as usize, 60).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    exactly_once(&rx.hits(), N);
    assert_eq!(rx.max_open(), 2, "exactly max_in_flight requests open at most");
    assert_eq!(concurrency(&s, &key, id).await["current"], 2);
    // null: adaptive from now on; a number: fixed again; other changes keep it.
    let (status, v) = patch_endpoint(&s, &key, id, json!({"max_in_flight": null})).await;
    assert_eq!(status, 200, "{v}");
    assert!(v["max_in_flight"].is_null(), "{v}");
    assert_eq!(v["concurrency"]["mode"], "adaptive", "{v}");
    assert_eq!(v["concurrency"]["current"], 8, "{v}");
    let (_, v) = patch_endpoint(&s, &key, id, json!({"max_in_flight": 5})).await;
    assert_eq!(
        (v["max_in_flight"].clone(), v["concurrency"].clone()),
        (json!(5), json!({"mode": "fixed", "current": 5, "cap": 5}))
    );
    let (_, v) = patch_endpoint(&s, &key, id, json!({"description": "kept"})).await;
    assert_eq!(v["max_in_flight"], 5, "{v}");
    let (status, v) = patch_endpoint(&s, &key, id, json!({"max_in_flight": 0})).await;
    assert_eq!(status, 400, "{v}");
}

#[tokio::test]
async fn an_ordered_endpoint_keeps_order_across_a_failure() {
    let s = server().await;
    // Message 2 fails twice before succeeding.
    let rx = Receiver::start(|h| Reply::status(if h.n() == 2 && h.nth < 2 { 503 } else { 200 })).await;
    let (_, key) = s.tenant().await;
    create_endpoint(&s, &key, json!({"url": rx.url(), "ordered": true})).await;
    for n in 0..6 {
        s.publish(&key, checkin("venue:a", n)).await;
    }
    let hits = rx.wait_for(8, 10).await;
    let seq: Vec<u64> = hits.iter().map(Hit::n).collect();
    assert_eq!(
        seq,
        [0, 1, 2, 2, 2, 3, 4, 5],
        "attempts in commit order, the failure holding back later ones"
    );
}

#[tokio::test]
async fn the_rate_limit_is_respected() {
    let s = server().await;
    let rx = Receiver::ok().await;
    let (_, key) = s.tenant().await;
    create_endpoint(&s, &key, json!({"url": rx.url(), "rate_limit": 10})).await;
    let batch: Vec<Value> = (0..15).map(|n| checkin("venue:a", n)).collect();
    let r = s
        .post(&key, "/v1/messages/batch")
        .json(&json!({"messages": batch}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let hits = rx.wait_for(15, 10).await;
    let span = hits[14].at - hits[0].at;
    assert!(
        span >= Duration::from_millis(1300),
        "15 deliveries at 10/s took only {span:?}"
    );
    // No window of one second holds more than 10 + 1 deliveries.
    for (i, h) in hits.iter().enumerate() {
        let within = hits[i..]
            .iter()
            .filter(|o| o.at - h.at < Duration::from_secs(1))
            .count();
        assert!(within <= 11, "{within} deliveries within one second");
    }
}

/// Asserts a 400 `invalid_request` about `url` and returns its message.
async fn refused_url(r: reqwest::Response) -> String {
    let v = assert_error(r, 400, "invalid_request").await;
    assert_eq!(v["error"]["param"], "url", "{v}");
    v["error"]["message"].as_str().unwrap().to_owned()
}

/// Creating an endpoint at `url` is refused (400, `param: "url"`); the message.
async fn refused_create(s: &TestServer, key: &str, url: &str) -> String {
    let r = s
        .post(key, "/v1/endpoints")
        .json(&json!({"url": url}))
        .send()
        .await
        .unwrap();
    refused_url(r).await
}

#[tokio::test]
async fn private_destinations_are_refused_without_the_allowance() {
    let s = TestServer::start_with(|c| {
        fast(c);
        c.webhooks.allow_private = false;
    })
    .await;
    let rx = Receiver::ok().await;
    let (_, key) = s.tenant().await;
    let port = rx.addr.port();
    // An IP literal is refused when the endpoint is created (see
    // private_ip_literals_are_refused_at_creation_and_update), and so is
    // `localhost`, which always resolves to loopback: create time and
    // attempt time judge it alike.
    refused_create(&s, &key, &format!("http://127.0.0.1:{port}/a")).await;
    let msg = refused_create(&s, &key, &format!("http://localhost:{port}/b")).await;
    assert!(
        msg.contains("localhost") && msg.contains("--allow-private-endpoints"),
        "{msg}"
    );
    refused_create(&s, &key, &format!("http://hooks.localhost.:{port}/b")).await;
    assert_eq!(data(&s.get_json(&key, "/v1/endpoints").await).len(), 0);
    // The same receiver is reachable once private endpoints are allowed
    // (every other test runs with the allowance).
    let allowed = server().await;
    let (_, key2) = allowed.tenant().await;
    create_endpoint(
        &allowed,
        &key2,
        json!({"url": format!("http://localhost:{port}/b")}),
    )
    .await;
    allowed.publish(&key2, checkin("venue:a", 1)).await;
    rx.wait_for(1, 10).await;
}

/// A hostname stored while private endpoints were allowed is judged again
/// at connect time after a restart without the allowance: refused, with the
/// reason (what it resolved to) in the attempt log.
#[tokio::test]
async fn a_stored_private_hostname_is_refused_at_attempt_time_with_its_reason() {
    let s = server().await;
    let rx = Receiver::ok().await;
    let (_, key) = s.tenant().await;
    let url = format!("http://localhost:{}/hook?token=s3cret", rx.addr.port());
    create_endpoint(&s, &key, json!({"url": url})).await;
    let data_dir = s.data_dir.clone();
    let dir = s.stop().await;
    let s = TestServer::start_in(&data_dir, |c| {
        fast(c);
        c.webhooks.allow_private = false;
    })
    .await;
    let m = s.publish(&key, checkin("venue:a", 1)).await;
    let path = format!("/v1/messages/{}/attempts", m["id"].as_str().unwrap());
    let log = eventually(&s, &key, &path, 10, |v| data(v).len() >= 2).await;
    for a in data(&log) {
        assert_eq!(a["error_kind"], "blocked_address", "{a}");
        let why = a["error"].as_str().unwrap();
        assert!(
            why.starts_with("localhost resolved to 127.0.0.1 (loopback)")
                && why.contains("refused by policy"),
            "{why}"
        );
        assert!(!why.contains("s3cret"), "{why}");
        assert_eq!(a["response_body"], "", "{a}");
    }
    assert_eq!(rx.count(), 0, "nothing reached the private address");
    s.stop().await;
    drop(dir);
}

/// Failed attempts carry a short reason: the connection refused, the
/// status answered.
#[tokio::test]
async fn failed_attempts_say_why() {
    let s = server().await;
    let (_, key) = s.tenant().await;
    // A port nothing listens on.
    let closed = free_port();
    let ep = create_endpoint(
        &s,
        &key,
        json!({"url": format!("http://127.0.0.1:{closed}/hook?sig=abc"), "channels": ["venue:refused"]}),
    )
    .await;
    let rx = Receiver::start(|_| Reply::status(503)).await;
    create_endpoint(&s, &key, json!({"url": rx.url(), "channels": ["venue:busy"]})).await;
    s.publish(&key, checkin("venue:refused", 1)).await;
    s.publish(&key, checkin("venue:busy", 2)).await;
    let ep_path = format!("/v1/endpoints/{}/attempts", ep["id"].as_str().unwrap());
    let log = eventually(&s, &key, &ep_path, 10, |v| !data(v).is_empty()).await;
    let a = &data(&log)[0];
    assert_eq!(
        (a["error_kind"].as_str(), a["error"].as_str()),
        (Some("connect"), Some("connection refused")),
        "{a}"
    );
    let m = eventually(&s, &key, "/v1/messages?channel=venue:busy", 5, |v| {
        !data(v).is_empty()
    })
    .await;
    let path = format!("/v1/messages/{}/attempts", data(&m)[0]["id"].as_str().unwrap());
    let log = eventually(&s, &key, &path, 10, |v| !data(v).is_empty()).await;
    let a = &data(&log)[0];
    assert_eq!(
        (a["error_kind"].as_str(), a["error"].as_str()),
        (Some("http_status"), Some("HTTP 503 Service Unavailable")),
        "{a}"
    );
    s.stop().await;
}

#[tokio::test]
async fn a_stored_private_literal_is_still_refused_at_attempt_time() {
    // Created while private endpoints were allowed; the server then
    // restarts without the allowance: the connect-time check still holds.
    let s = server().await;
    let rx = Receiver::ok().await;
    let (_, key) = s.tenant().await;
    create_endpoint(&s, &key, json!({"url": rx.url()})).await;
    let data_dir = s.data_dir.clone();
    let dir = s.stop().await;
    let s = TestServer::start_in(&data_dir, |c| {
        fast(c);
        c.webhooks.allow_private = false;
    })
    .await;
    let m = s.publish(&key, checkin("venue:a", 1)).await;
    let path = format!("/v1/messages/{}/attempts", m["id"].as_str().unwrap());
    let log = eventually(&s, &key, &path, 10, |v| data(v).len() == 4).await;
    assert!(
        data(&log).iter().all(|a| a["error_kind"] == "blocked_address"),
        "{log}"
    );
    assert_eq!(rx.count(), 0);
    s.stop().await;
    drop(dir);
}

#[tokio::test]
async fn private_ip_literals_are_refused_at_creation_and_update() {
    let s = TestServer::start().await;
    let (_, key) = s.tenant().await;
    for url in [
        "http://127.0.0.1:1/x",
        "http://10.0.0.5/hook",
        "http://127.1/x",
        "http://2130706433/x",
        "http://0.0.0.0/x",
        "http://169.254.169.254/latest/meta-data",
        "http://100.64.0.1/x",
        "http://[::1]:8080/x",
        "http://[::ffff:10.0.0.1]/x",
        "http://[fe80::1]/x",
        "https://[fd00::1]/x",
    ] {
        let msg = refused_create(&s, &key, url).await;
        assert!(msg.contains("private"), "{url}: {msg}");
    }
    let msg = refused_create(&s, &key, "http://10.0.0.5/hook").await;
    assert!(msg.contains("10.0.0.5"), "{msg}");
    let list = s.get_json(&key, "/v1/endpoints").await;
    assert_eq!(data(&list).len(), 0, "nothing was created");
    // Hostnames and public literals pass (hostnames other than localhost
    // are checked when resolved, at attempt time).
    refused_create(&s, &key, "http://localhost:1/x").await;
    for url in [
        "http://receiver.example:1/x",
        "http://8.8.8.8/x",
        "http://[2606:4700::1111]/x",
    ] {
        create_endpoint(&s, &key, json!({"url": url, "enabled": false})).await;
    }
    let ep = create_endpoint(
        &s,
        &key,
        json!({"url": "https://example.com/hooks", "description": "prod"}),
    )
    .await;
    let id = ep["id"].as_str().unwrap();
    let before = s.get_json(&key, &format!("/v1/endpoints/{id}")).await;
    for body in [
        json!({"url": "http://10.0.0.5/hook"}),
        json!({"url": "http://[::1]/x", "description": "changed"}),
    ] {
        let r = s
            .http
            .patch(s.url(&format!("/v1/endpoints/{id}")))
            .header("x-api-key", &key)
            .json(&body)
            .send()
            .await
            .unwrap();
        refused_url(r).await;
    }
    let after = s.get_json(&key, &format!("/v1/endpoints/{id}")).await;
    assert_eq!(before, after, "a refused update changes nothing");
    assert_eq!(after["url"], "https://example.com/hooks");
    // With the allowance the same literals are accepted.
    let allowed = server().await;
    let (_, key2) = allowed.tenant().await;
    create_endpoint(
        &allowed,
        &key2,
        json!({"url": "http://10.0.0.5/hook", "enabled": false}),
    )
    .await;
}

/// `WebhookArgs` as `marquee serve` parses them.
#[derive(clap::Parser)]
struct WebhookFlags {
    #[command(flatten)]
    webhooks: marquee_server::webhooks::WebhookArgs,
}

fn webhook_flags(extra: &[&str]) -> Result<marquee_server::webhooks::WebhookConfig, clap::Error> {
    use clap::Parser;
    let base = [
        "marquee",
        "--retry-schedule",
        "0ms,50ms,100ms,150ms",
        "--webhook-timeout",
        "1500ms",
    ];
    WebhookFlags::try_parse_from(base.iter().chain(extra)).map(|f| f.webhooks.into_config())
}

#[tokio::test]
async fn allowed_networks_are_reachable_and_other_private_addresses_are_not() {
    for (bad, why) in [
        ("127.0.0.1/33", "0 to 32"),
        ("fd00::/129", "0 to 128"),
        ("10.0.0.0/8,nope", "`nope` is not a CIDR network"),
    ] {
        let e = webhook_flags(&["--allow-endpoint-cidr", bad])
            .expect_err(bad)
            .to_string();
        assert!(e.contains("--allow-endpoint-cidr") && e.contains(why), "{e}");
    }
    let config = webhook_flags(&[
        "--allow-endpoint-cidr",
        "127.0.0.1/32,fd00:1::/64",
        "--allow-endpoint-cidr",
        "10.20.0.0/16",
    ])
    .unwrap();
    assert!(!config.allow_private);
    assert_eq!(config.allowed_cidrs.len(), 3);
    let s = TestServer::start_with(move |c| c.webhooks = config).await;
    let (_, key) = s.tenant().await;
    // Inside the allowed networks: accepted. Other private literals: refused.
    let literal = Receiver::ok().await;
    let named = Receiver::ok().await;
    create_endpoint(&s, &key, json!({"url": literal.url()})).await;
    // localhost resolves to 127.0.0.1 (allowed) and perhaps ::1 (dropped).
    create_endpoint(
        &s,
        &key,
        json!({"url": format!("http://localhost:{}/hook", named.addr.port())}),
    )
    .await;
    for url in ["http://10.20.1.2/x", "http://[fd00:1::9]/x"] {
        create_endpoint(&s, &key, json!({"url": url, "enabled": false})).await;
    }
    for url in [
        "http://10.255.255.1/x",
        "http://127.0.0.2/x",
        "http://[::1]/x",
        "http://[fd00:2::9]/x",
        "http://169.254.169.254/x",
    ] {
        refused_create(&s, &key, url).await;
    }
    let m = s.publish(&key, checkin("venue:a", 1)).await;
    literal.wait_for(1, 10).await;
    named.wait_for(1, 10).await;
    let path = format!("/v1/messages/{}/attempts", m["id"].as_str().unwrap());
    let log = eventually(&s, &key, &path, 10, |v| data(v).len() == 2).await;
    assert!(
        data(&log)
            .iter()
            .all(|a| a["status_code"] == 204 && a["error_kind"].is_null()),
        "{log}"
    );
}

#[tokio::test]
async fn a_rotated_secret_keeps_signing_during_the_overlap() {
    let s = server().await;
    let rx = Receiver::ok().await;
    let (_, key) = s.tenant().await;
    let ep = create_endpoint(&s, &key, json!({"url": rx.url()})).await;
    let ep_id = ep["id"].as_str().unwrap();
    let old = secret_of(&ep);
    let (status, rotated) = post_json(
        &s,
        &key,
        &format!("/v1/endpoints/{ep_id}/secret/rotate"),
        json!({}),
    )
    .await;
    assert_eq!(status, 200);
    let new = secret_of(&rotated);
    assert_ne!(old, new);
    assert!(rotated["previous_secret_expires_at"].is_string());
    let got = s.get_json(&key, &format!("/v1/endpoints/{ep_id}")).await;
    assert!(
        got.get("secret").is_none(),
        "the secret is shown only at create and rotate"
    );
    s.publish(&key, checkin("venue:a", 1)).await;
    let hits = rx.wait_for(1, 10).await;
    assert_eq!(hits[0].header("webhook-signature").split(' ').count(), 2);
    assert!(verifies(&old, &hits[0]) && verifies(&new, &hits[0]));
    assert!(!verifies(&SigningSecret::generate(), &hits[0]));
}

#[tokio::test]
async fn test_ping_resend_replay_and_recover() {
    let s = server().await;
    let rx = Receiver::ok().await;
    let (_, key) = s.tenant().await;
    // Published before the endpoint exists.
    let early: Vec<Value> = futures_join((0..3).map(|n| checkin("venue:old", n)).collect(), &s, &key).await;
    let ep = create_endpoint(
        &s,
        &key,
        json!({"url": rx.url(), "channels": ["venue:old", "venue:new"]}),
    )
    .await;
    let ep_id = ep["id"].as_str().unwrap().to_owned();

    // Test ping: signed, synchronous, logged.
    let (status, attempt) = post_json(&s, &key, &format!("/v1/endpoints/{ep_id}/test"), json!({})).await;
    assert_eq!(status, 200, "{attempt}");
    assert_eq!(attempt["status"], "succeeded");
    let ping = rx.wait_for(1, 5).await.remove(0);
    assert_eq!(ping.json["type"], "marquee.test");
    assert!(verifies(&secret_of(&ep), &ping));
    // Its ids are plainly test-only, in the body and in the attempt alike,
    // and looking the message up says why it is not in the log.
    let ping_id = ping.json["id"].as_str().unwrap().to_owned();
    assert!(ping_id.starts_with("msg_test_"), "{ping_id}");
    assert!(ping.header("webhook-id").starts_with("dlv_test_"));
    assert_eq!(attempt["message_id"], ping_id.as_str(), "{attempt}");
    assert_eq!(attempt["test"], true, "{attempt}");
    let r = s
        .get(&key, &format!("/v1/messages/{ping_id}"))
        .send()
        .await
        .unwrap();
    let e = assert_error(r, 404, "not_found").await;
    assert!(
        e["error"]["message"].as_str().unwrap().contains("test ping"),
        "{e}"
    );

    // Replay delivers what was logged before the endpoint existed.
    let (status, v) = post_json(
        &s,
        &key,
        &format!("/v1/endpoints/{ep_id}/replay"),
        json!({"since": "2020-01-01T00:00:00Z"}),
    )
    .await;
    assert_eq!(status, 202, "{v}");
    assert_eq!(v["queued"], 3);
    assert_eq!(
        (v["has_more"].clone(), v["next_cursor"].clone()),
        (json!(false), Value::Null)
    );
    let hits = rx.wait_for(4, 10).await;
    let mut ns: Vec<u64> = hits[1..].iter().map(Hit::n).collect();
    ns.sort();
    assert_eq!(ns, [0, 1, 2]);

    // Resend the first one: same delivery, again.
    let first_id = early[0]["id"].as_str().unwrap();
    let (status, v) = post_json(
        &s,
        &key,
        &format!("/v1/messages/{first_id}/resend"),
        json!({"endpoint_id": ep_id}),
    )
    .await;
    assert_eq!(status, 202, "{v}");
    let hits = rx.wait_for(5, 10).await;
    assert_eq!(hits[4].n(), 0);
    let orig = hits[1..4].iter().find(|h| h.n() == 0).unwrap();
    assert_eq!(hits[4].header("webhook-id"), orig.header("webhook-id"));

    // Recover: exhaust a delivery, fix the receiver, recover the window.
    rx.set(|_| Reply::status(500));
    let m = s.publish(&key, checkin("venue:new", 7)).await;
    let path = format!("/v1/messages/{}/attempts", m["id"].as_str().unwrap());
    eventually(&s, &key, &path, 10, |v| data(v).len() == 4).await;
    eventually(&s, &key, &format!("/v1/endpoints/{ep_id}/stats"), 5, |v| {
        v["failed"] == 1
    })
    .await;
    rx.set(|_| Reply::status(200));
    let (status, v) = post_json(
        &s,
        &key,
        &format!("/v1/endpoints/{ep_id}/recover"),
        json!({"since": "2020-01-01T00:00:00Z"}),
    )
    .await;
    assert_eq!(status, 202, "{v}");
    assert_eq!(v["queued"], 1);
    eventually(&s, &key, &path, 10, |v| {
        data(v).iter().any(|a| a["status"] == "succeeded")
    })
    .await;

    // Resend of an unknown message is a 404.
    let r = s
        .post(&key, "/v1/messages/msg_01JD0000000000000000000000/resend")
        .send()
        .await
        .unwrap();
    assert_error(r, 404, "not_found").await;
}

async fn futures_join(bodies: Vec<Value>, s: &TestServer, key: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for b in bodies {
        out.push(s.publish(key, b).await);
    }
    out
}

#[tokio::test]
async fn endpoint_api_validates_scopes_and_manages() {
    let s = server().await;
    let (_, key) = s.tenant().await;
    let (_, other) = s.tenant().await;
    for bad in [
        json!({"url": "not a url"}),
        json!({"url": "ftp://example.com/x"}),
        json!({"url": "https://example.com/x", "format": "stripe"}),
        json!({"url": "https://example.com/x", "types": ["Order.*"]}),
        json!({"url": "https://example.com/x", "channels": ["nocolon"]}),
        json!({"url": "https://example.com/x", "max_in_flight": 0}),
        json!({"url": "https://example.com/x", "surprise": 1}),
    ] {
        let r = s.post(&key, "/v1/endpoints").json(&bad).send().await.unwrap();
        assert_error(r, 400, "invalid_request").await;
    }
    let ep = create_endpoint(
        &s,
        &key,
        json!({"url": "https://example.com/hooks", "description": "prod", "types": ["order.*"], "rate_limit": 50}),
    )
    .await;
    let id = ep["id"].as_str().unwrap();
    assert_eq!(ep["format"], "standard");
    assert!(ep["max_in_flight"].is_null(), "not set: adaptive");
    assert_eq!(
        ep["concurrency"],
        json!({"mode": "adaptive", "current": 8, "cap": 64})
    );
    assert_eq!(ep["ordered"], false);
    assert_eq!(ep["enabled"], true);
    // Another organization sees nothing.
    for r in [
        s.get(&other, &format!("/v1/endpoints/{id}"))
            .send()
            .await
            .unwrap(),
        s.http
            .delete(s.url(&format!("/v1/endpoints/{id}")))
            .header("x-api-key", &other)
            .send()
            .await
            .unwrap(),
        s.post(&other, &format!("/v1/endpoints/{id}/test"))
            .send()
            .await
            .unwrap(),
        s.get(&key, "/v1/endpoints/ep_nope").send().await.unwrap(),
    ] {
        assert_error(r, 404, "not_found").await;
    }
    let list = s.get_json(&other, "/v1/endpoints").await;
    assert_eq!(data(&list).len(), 0);
    let list = s.get_json(&key, "/v1/endpoints").await;
    assert_eq!(list["object"], "list");
    assert_eq!(data(&list).len(), 1);
    assert!(data(&list)[0].get("secret").is_none());
    let r = s
        .http
        .patch(s.url(&format!("/v1/endpoints/{id}")))
        .header("x-api-key", &key)
        .json(&json!({"description": null, "rate_limit": null, "ordered": true, "enabled": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert!(v["description"].is_null() && v["rate_limit"].is_null());
    assert_eq!(v["ordered"], true);
    assert_eq!(v["enabled"], false);
    let r = s
        .http
        .delete(s.url(&format!("/v1/endpoints/{id}")))
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = s.get(&key, &format!("/v1/endpoints/{id}")).send().await.unwrap();
    assert_error(r, 404, "not_found").await;
}

#[tokio::test]
async fn secrets_are_not_stored_in_plaintext() {
    let s = server().await;
    let (_, key) = s.tenant().await;
    let ep = create_endpoint(&s, &key, json!({"url": "https://example.com/x"})).await;
    let secret = secret_of(&ep);
    let data_dir = s.data_dir.clone();
    // Keep the directory until the files are read (dropped at the end).
    let _dir = s.stop().await;
    let mut raw = Vec::new();
    for f in ["marquee.db", "marquee.db-wal"] {
        if let Ok(b) = std::fs::read(data_dir.join(f)) {
            raw.extend(b);
        }
    }
    let text = ep["secret"].as_str().unwrap();
    assert!(!raw.windows(text.len()).any(|w| w == text.as_bytes()));
    assert!(!raw.windows(secret.key().len()).any(|w| w == secret.key()));
    let _ = std::fs::remove_dir_all(&data_dir);
}

#[tokio::test]
async fn failing_recovered_and_continuous_failure_notices() {
    let s = TestServer::start_with(|c| {
        fast(c);
        c.webhooks.retry_schedule = RetrySchedule(vec![Duration::from_millis(40); 30]);
        c.webhooks.disable_after = Duration::from_millis(600);
    })
    .await;
    let (_, key) = s.tenant().await;
    // Fails four times, then recovers.
    let flaky = Receiver::start(|h| Reply::status(if h.nth < 4 { 500 } else { 200 })).await;
    let flaky_ep = create_endpoint(&s, &key, json!({"url": flaky.url(), "channels": ["venue:flaky"]})).await;
    s.publish(&key, checkin("venue:flaky", 1)).await;
    flaky.wait_for(5, 10).await;
    let flaky_id = flaky_ep["id"].as_str().unwrap();
    let mut failing = Vec::new();
    let mut recovered = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while (failing.is_empty() || recovered.is_empty()) && Instant::now() < deadline {
        failing = s.list_all(&key, "&type=message.attempt.failing").await;
        recovered = s.list_all(&key, "&type=endpoint.recovered").await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(failing.len(), 1, "one failing notice");
    assert_eq!(failing[0]["data"]["endpoint_id"], flaky_id);
    assert_eq!(failing[0]["channels"][0], format!("endpoint:{flaky_id}"));
    assert_eq!(recovered.len(), 1, "one recovered notice");
    // Always fails: disabled after failing continuously for 600 ms.
    let dead = Receiver::start(|_| Reply::status(500)).await;
    let dead_ep = create_endpoint(&s, &key, json!({"url": dead.url(), "channels": ["venue:dead"]})).await;
    let dead_id = dead_ep["id"].as_str().unwrap();
    s.publish(&key, checkin("venue:dead", 1)).await;
    let v = eventually(&s, &key, &format!("/v1/endpoints/{dead_id}"), 10, |v| {
        v["enabled"] == false
    })
    .await;
    assert!(
        v["disabled_reason"]
            .as_str()
            .unwrap()
            .contains("failing continuously"),
        "{v}"
    );
    let notices = s.list_all(&key, "&type=endpoint.disabled").await;
    assert_eq!(notices.len(), 1);
    // Re-enabling through the API clears the failure run.
    let r = s
        .http
        .patch(s.url(&format!("/v1/endpoints/{dead_id}")))
        .header("x-api-key", &key)
        .json(&json!({"enabled": true}))
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["enabled"], true);
    assert!(
        v["disabled_reason"].is_null() && v["failing_since"].is_null(),
        "{v}"
    );
}

/// An HTTPS receiver on 127.0.0.1 presenting `cert` (for `localhost`);
/// counts the requests it answers (204).
async fn tls_receiver(
    cert: tokio_rustls::rustls::pki_types::CertificateDer<'static>,
    key_der: Vec<u8>,
) -> (SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio_rustls::rustls;
    let config =
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert],
                rustls::pki_types::PrivateKeyDer::Pkcs8(key_der.into()),
            )
            .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let (acceptor, counted) = (acceptor.clone(), counted.clone());
            tokio::spawn(async move {
                // A client that does not trust the certificate fails here.
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc = hyper::service::service_fn(move |_req| {
                    counted.fetch_add(1, Ordering::SeqCst);
                    async {
                        let mut r = hyper::Response::new(String::new());
                        *r.status_mut() = StatusCode::NO_CONTENT;
                        Ok::<_, std::convert::Infallible>(r)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    (addr, hits)
}

/// HTTPS receivers signed by a private CA: refused (a TLS failure, logged)
/// unless `--webhook-ca-file` names the CA, then delivered.
#[tokio::test]
async fn a_private_ca_is_trusted_only_when_configured() {
    use std::sync::atomic::Ordering;
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &ca, &ca_key)
        .unwrap();
    let (addr, hits) = tls_receiver(leaf.der().clone(), leaf_key.serialize_der()).await;
    let url = format!("https://localhost:{}/hook", addr.port());

    // Without the CA: the attempt fails and is logged as such.
    let s = server().await;
    let (_, key) = s.tenant().await;
    create_endpoint(&s, &key, json!({"url": url})).await;
    let m = s.publish(&key, checkin("venue:a", 1)).await;
    let path = format!("/v1/messages/{}/attempts", m["id"].as_str().unwrap());
    let log = eventually(&s, &key, &path, 10, |v| !data(v).is_empty()).await;
    let first = &data(&log)[0];
    assert_eq!(first["status"], "failed", "{first}");
    assert_eq!(first["error_kind"], "tls", "{first}");
    assert_eq!(hits.load(Ordering::SeqCst), 0, "nothing reached the receiver");

    // With the CA file: delivered.
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let trusted = TestServer::start_with(|c| {
        fast(c);
        c.webhooks.ca_file = Some(ca_file.clone());
    })
    .await;
    let (_, key) = trusted.tenant().await;
    create_endpoint(&trusted, &key, json!({"url": url})).await;
    let m = trusted.publish(&key, checkin("venue:a", 2)).await;
    let path = format!("/v1/messages/{}/attempts", m["id"].as_str().unwrap());
    let log = eventually(&trusted, &key, &path, 10, |v| !data(v).is_empty()).await;
    assert_eq!(data(&log)[0]["status"], "succeeded", "{log}");
    assert_eq!(hits.load(Ordering::SeqCst), 1);

    // A CA file that is not PEM stops the server from starting.
    let bad = dir.path().join("bad.pem");
    std::fs::write(&bad, "not a certificate").unwrap();
    let mut config = ServeConfig::with_data_dir(dir.path().join("data"));
    config.webhooks.ca_file = Some(bad);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let err = marquee_server::run(config, listener, async {}).await.unwrap_err();
    assert!(err.to_string().contains("CA file"), "{err}");
}
