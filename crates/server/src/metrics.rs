//! Prometheus metrics at `GET /metrics` (the `metrics` facade with
//! `metrics-exporter-prometheus`'s recorder; nothing hand-rendered).
//!
//! Why it is cheap: every site records into atomics (the hot ones — stream
//! frames, connections — through handles resolved once, so no registry
//! lookup per frame); gauges that would need a store query (pending
//! deliveries) are set by the dispatcher's existing sweep, never computed
//! per scrape. A scrape only renders what is there.
//!
//! The recorder is process-wide (one per process, the first `run` installs
//! it): several servers in one process (the tests) share it.
//!
//! Auth: open by default (no tenant data: no organization, key or endpoint
//! ids in labels); with `--metrics-token` a scrape must send
//! `Authorization: Bearer <token>`. Deliberately not the admin token: a
//! scraper's credential should not be able to administer the server.
//!
//! The store crate records its own commit metrics (`marquee_store::metrics`).

use std::sync::OnceLock;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics::{Counter, Gauge, counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::error::ApiError;

#[derive(clap::Args, Debug, Clone, Default)]
pub struct MetricsArgs {
    /// Bearer token required by GET /metrics (default: no auth; the
    /// metrics carry no tenant data). Not the admin token, on purpose.
    #[arg(long, env = "MARQUEE_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
}

#[derive(Clone, Default)]
pub struct MetricsConfig {
    pub token: Option<String>,
}

impl MetricsArgs {
    pub fn into_config(self) -> MetricsConfig {
        MetricsConfig {
            token: self.metrics_token.filter(|t| !t.is_empty()),
        }
    }
}

/// Handles of the hot, fixed-label metrics.
struct Hot {
    ws_open: Gauge,
    sse_open: Gauge,
    ws_frames: Counter,
    sse_frames: Counter,
}

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
static HOT: OnceLock<Hot> = OnceLock::new();

/// Seconds buckets for latencies (commit, attempt): 0.5 ms to 30 s.
const SECONDS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Jobs per group commit.
const GROUP: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0];

/// Installs the process's recorder once and returns its handle.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS)
                .and_then(|b| b.set_buckets_for_metric(Matcher::Suffix("_group_size".into()), GROUP));
            let handle = match builder.and_then(|b| b.install_recorder()) {
                Ok(h) => h,
                // Another recorder is installed (an embedding program's):
                // keep serving, with an empty /metrics of our own.
                Err(e) => {
                    tracing::warn!(error = %e, "metrics recorder not installed");
                    PrometheusBuilder::new().build_recorder().handle()
                }
            };
            let _ = HOT.set(Hot {
                ws_open: gauge!("marquee_stream_connections", "protocol" => "ws"),
                sse_open: gauge!("marquee_stream_connections", "protocol" => "sse"),
                ws_frames: counter!("marquee_stream_frames_sent_total", "protocol" => "ws"),
                sse_frames: counter!("marquee_stream_frames_sent_total", "protocol" => "sse"),
            });
            handle
        })
        .clone()
}

/// Drains histogram buckets now and then (the exporter needs it), so memory
/// stays flat between scrapes.
pub async fn upkeep(handle: PrometheusHandle, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = tick.tick() => handle.run_upkeep(),
            _ = stop.changed() => return,
        }
    }
}

/// `GET /metrics`, beside whichever router the role serves.
pub fn router(handle: PrometheusHandle, config: MetricsConfig) -> Router {
    Router::new().route(
        "/metrics",
        get(move |headers: HeaderMap| {
            let handle = handle.clone();
            let token = config.token.clone();
            async move {
                let mut resp = scrape(&handle, token.as_deref(), &headers);
                // As every API response (this route sits outside the API's layers).
                resp.headers_mut().insert(
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("private, no-store"),
                );
                resp
            }
        }),
    )
}

fn scrape(handle: &PrometheusHandle, token: Option<&str>, headers: &HeaderMap) -> Response {
    if let Some(expected) = token {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let ok = presented
            .is_some_and(|p| bool::from(subtle::ConstantTimeEq::ct_eq(p.as_bytes(), expected.as_bytes())));
        if !ok {
            return ApiError::InvalidApiKey(
                "Missing or invalid metrics token: send Authorization: Bearer <--metrics-token>.",
            )
            .into_response();
        }
    }
    let mut resp = handle.render().into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    resp
}

/// This node's role, as `marquee_node_role{role} 1`.
pub fn node_role(role: crate::config::Role) {
    let name = match role {
        crate::config::Role::Api => "api",
        crate::config::Role::Worker => "worker",
        crate::config::Role::All => "all",
    };
    gauge!("marquee_node_role", "role" => name).set(1.0);
}

/// A publish request's outcome (`kind`: single or batch), from its status.
pub fn publish_request(kind: &'static str, status: u16) {
    let outcome = match status {
        201 => "created",
        200 => "replayed",
        400 | 413 | 422 => "invalid",
        401 | 403 => "unauthorized",
        409 => "conflict",
        429 => "rate_limited",
        s if s >= 500 => "failed",
        _ => "refused",
    };
    counter!("marquee_publish_requests_total", "kind" => kind, "outcome" => outcome).increment(1);
}

/// Counts native publish requests by outcome: a layer on the API router.
pub async fn track_publish(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let kind = if req.method() != axum::http::Method::POST {
        None
    } else {
        match req.uri().path() {
            "/v1/messages" => Some("single"),
            "/v1/messages/batch" => Some("batch"),
            _ => None,
        }
    };
    let resp = next.run(req).await;
    if let Some(kind) = kind {
        publish_request(kind, resp.status().as_u16());
    }
    resp
}

/// One webhook attempt: by outcome and `error_kind`, and its latency.
pub fn attempt(succeeded: bool, error_kind: Option<&str>, duration: Duration) {
    let outcome = if succeeded { "succeeded" } else { "failed" };
    let kind = error_kind
        .unwrap_or(if succeeded { "none" } else { "http_status" })
        .to_owned();
    counter!("marquee_delivery_attempts_total", "outcome" => outcome, "error_kind" => kind).increment(1);
    histogram!("marquee_delivery_attempt_seconds").record(duration.as_secs_f64());
}

/// Endpoints the dispatcher disabled (410, or failing too long).
pub fn endpoints_disabled(n: usize) {
    counter!("marquee_endpoints_disabled_total").increment(n as u64);
}

/// Set by each dispatcher sweep from what it already read: endpoints with
/// deliveries pending (due now or later) and those waiting for a retry.
pub fn pending(endpoints_due: usize, endpoints_retrying: usize, in_flight: usize, queued: usize) {
    gauge!("marquee_webhook_endpoints_pending").set(endpoints_due as f64);
    gauge!("marquee_webhook_endpoints_retrying").set(endpoints_retrying as f64);
    gauge!("marquee_webhook_deliveries_in_flight").set(in_flight as f64);
    gauge!("marquee_webhook_deliveries_queued").set(queued as f64);
}

/// Messages deleted by retention.
pub fn pruned(n: u64) {
    counter!("marquee_retention_pruned_total").increment(n);
}

/// Stream protocol, for the per-protocol metrics.
#[derive(Clone, Copy)]
pub enum Protocol {
    Ws,
    Sse,
}

/// An open stream connection: counted while this guard lives.
pub struct StreamOpen(Protocol);

pub fn stream_open(p: Protocol) -> StreamOpen {
    if let Some(h) = HOT.get() {
        match p {
            Protocol::Ws => h.ws_open.increment(1.0),
            Protocol::Sse => h.sse_open.increment(1.0),
        }
    }
    StreamOpen(p)
}

impl Drop for StreamOpen {
    fn drop(&mut self) {
        if let Some(h) = HOT.get() {
            match self.0 {
                Protocol::Ws => h.ws_open.decrement(1.0),
                Protocol::Sse => h.sse_open.decrement(1.0),
            }
        }
    }
}

pub fn frames_sent(p: Protocol, n: usize) {
    if let Some(h) = HOT.get() {
        match p {
            Protocol::Ws => h.ws_frames.increment(n as u64),
            Protocol::Sse => h.sse_frames.increment(n as u64),
        }
    }
}

pub fn slow_consumer_closed(p: Protocol) {
    let protocol = match p {
        Protocol::Ws => "ws",
        Protocol::Sse => "sse",
    };
    counter!("marquee_stream_slow_consumer_closes_total", "protocol" => protocol).increment(1);
}
