//! Webhook settings and their flags (`MARQUEE_*` environment variables).

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use marquee_core::cidr::Cidr;
use marquee_core::webhook::RetrySchedule;

use super::client::AddressPolicy;

#[derive(Debug, Clone)]
pub struct WebhookConfig {
    pub retry_schedule: RetrySchedule,
    /// Per-attempt timeout, response body included.
    pub timeout: Duration,
    /// Deliver to loopback/private/link-local addresses (tests, on-premise).
    pub allow_private: bool,
    /// Networks that may receive webhooks although not public (the rest of
    /// the private ranges stay refused).
    pub allowed_cidrs: Vec<Cidr>,
    /// Disable an endpoint that has failed continuously for this long.
    pub disable_after: Duration,
    /// Attempts in flight across all endpoints.
    pub workers: usize,
    /// Most attempts in flight to one endpoint whose `max_in_flight` is not
    /// set (its limit adapts between 1 and this; starts at 8).
    pub adaptive_cap: u32,
    /// How long a rotated-out secret keeps signing beside the new one.
    pub secret_overlap: Duration,
    /// How long a claimed delivery stays leased to this node.
    pub lease: Duration,
    /// Publish `message.attempt.failing` after this many failed attempts.
    pub failing_after: u32,
    /// Run the dispatcher at all (an API-only node sets this false).
    pub dispatch: bool,
    /// PEM file of extra root certificates receivers' TLS may chain to (a
    /// private CA), trusted beside the bundled public roots.
    pub ca_file: Option<PathBuf>,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            retry_schedule: RetrySchedule::default(),
            timeout: Duration::from_secs(8),
            allow_private: false,
            allowed_cidrs: Vec::new(),
            disable_after: Duration::from_secs(5 * 86_400),
            workers: 512,
            adaptive_cap: super::dispatcher::DEFAULT_ADAPTIVE_CAP,
            secret_overlap: Duration::from_secs(86_400),
            lease: Duration::from_secs(120),
            failing_after: 4,
            dispatch: true,
            ca_file: None,
        }
    }
}

impl WebhookConfig {
    /// The destination addresses attempts may reach.
    pub fn address_policy(&self) -> AddressPolicy<'_> {
        AddressPolicy {
            allow_private: self.allow_private,
            allowed: &self.allowed_cidrs,
        }
    }
}

fn parse_cidr(s: &str) -> Result<Cidr, String> {
    s.parse().map_err(|e: marquee_core::cidr::BadCidr| e.to_string())
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    marquee_core::duration::parse(s).map_err(|e| e.to_string())
}

fn parse_schedule(s: &str) -> Result<RetrySchedule, String> {
    let v = marquee_core::duration::parse_list(s).map_err(|e| e.to_string())?;
    if v.is_empty() || v.len() > 100 {
        return Err("a retry schedule lists 1 to 100 durations".into());
    }
    Ok(RetrySchedule(v))
}

/// Flags of `marquee serve` for webhooks.
#[derive(Debug, Clone, Args)]
pub struct WebhookArgs {
    /// Waits before each attempt, comma-separated (first is normally 0s), each ±20 % jitter.
    #[arg(
        long,
        env = "MARQUEE_RETRY_SCHEDULE",
        default_value = "0s,5s,5m,30m,2h,5h,10h,14h,20h,24h",
        value_parser = parse_schedule
    )]
    pub retry_schedule: RetrySchedule,
    /// Timeout of one webhook attempt.
    #[arg(long, env = "MARQUEE_WEBHOOK_TIMEOUT", default_value = "8s", value_parser = parse_duration)]
    pub webhook_timeout: Duration,
    /// Allow webhook destinations on loopback, private and link-local addresses.
    #[arg(long, env = "MARQUEE_ALLOW_PRIVATE_ENDPOINTS")]
    pub allow_private_endpoints: bool,
    /// Allow webhook destinations inside these networks although they are
    /// private, e.g. 10.20.0.0/16,fd00:1::/64 (comma-separated or repeated;
    /// every other private address stays refused).
    #[arg(
        long = "allow-endpoint-cidr",
        env = "MARQUEE_ALLOW_ENDPOINT_CIDRS",
        value_name = "CIDR",
        value_delimiter = ',',
        value_parser = parse_cidr
    )]
    pub allow_endpoint_cidrs: Vec<Cidr>,
    /// Disable an endpoint after it has failed continuously for this long.
    #[arg(long, env = "MARQUEE_WEBHOOK_DISABLE_AFTER", default_value = "5d", value_parser = parse_duration)]
    pub webhook_disable_after: Duration,
    /// Webhook attempts in flight across all endpoints.
    #[arg(long, env = "MARQUEE_WEBHOOK_WORKERS", default_value_t = 512)]
    pub webhook_workers: usize,
    /// Most attempts in flight to one endpoint without a `max_in_flight`:
    /// such an endpoint's limit starts at 8 and adapts to the receiver
    /// (grows while latency holds, backs off on timeouts, 429/5xx and
    /// queueing) between 1 and this.
    #[arg(
        long,
        env = "MARQUEE_WEBHOOK_ADAPTIVE_CAP",
        default_value_t = super::dispatcher::DEFAULT_ADAPTIVE_CAP,
        value_parser = clap::value_parser!(u32).range(1..=1000)
    )]
    pub webhook_adaptive_cap: u32,
    /// How long a claimed delivery stays leased to a node; after a node dies,
    /// its claimed deliveries are attempted again by others after this.
    #[arg(long, env = "MARQUEE_WEBHOOK_LEASE", default_value = "120s", value_parser = parse_duration)]
    pub webhook_lease: Duration,
    /// How long a rotated-out signing secret keeps signing.
    #[arg(long, env = "MARQUEE_WEBHOOK_SECRET_OVERLAP", default_value = "24h", value_parser = parse_duration)]
    pub webhook_secret_overlap: Duration,
    /// PEM file of extra root certificates for HTTPS receivers signed by a
    /// private CA (trusted beside the bundled public roots).
    #[arg(long, env = "MARQUEE_WEBHOOK_CA_FILE", value_name = "PEM")]
    pub webhook_ca_file: Option<PathBuf>,
}

impl WebhookArgs {
    pub fn into_config(self) -> WebhookConfig {
        WebhookConfig {
            retry_schedule: self.retry_schedule,
            timeout: self.webhook_timeout,
            allow_private: self.allow_private_endpoints,
            allowed_cidrs: self.allow_endpoint_cidrs,
            disable_after: self.webhook_disable_after,
            workers: self.webhook_workers.max(1),
            adaptive_cap: self.webhook_adaptive_cap,
            secret_overlap: self.webhook_secret_overlap,
            lease: self.webhook_lease.max(Duration::from_secs(1)),
            ca_file: self.webhook_ca_file,
            ..WebhookConfig::default()
        }
    }
}
