//! Server configuration, validated once at start.
//!
//! Sources, lowest precedence first: documented defaults, `MARQUEE_*`
//! environment variables, command-line flags (clap reads both; see `cli`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::ratelimit::TierRates;

#[derive(Clone)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub admin_token: Option<String>,
    pub key_pepper: Option<String>,
    pub demo: bool,
    pub retention: Duration,
    pub max_body_bytes: usize,
    pub rates: TierRates,
    /// fsync every group commit (default). Off is only for experiments.
    pub fsync: bool,
    /// How often the retention pruner runs.
    pub retention_interval: Duration,
    /// Connection limits of the HTTP listener.
    pub http: crate::http::HttpConfig,
    /// WebSocket/SSE stream limits and timings.
    pub streams: crate::stream::StreamConfig,
    /// Webhook delivery settings.
    pub webhooks: crate::webhooks::WebhookConfig,
    /// The shared PostgreSQL store (instead of SQLite in `data_dir`).
    pub database: Option<DatabaseConfig>,
    /// The cluster's shared secret (64 hex characters); required with
    /// `database`, where every node must use the same one.
    pub server_secret: Option<String>,
    /// NATS for cross-node live fan-out (instead of the in-process bus).
    pub nats: Option<NatsConfig>,
    /// What this node does.
    pub role: Role,
    /// Eventory's cooldown and watchlist bounds.
    pub eventory: crate::platforms::eventory::EventoryConfig,
    /// `GET /metrics` settings.
    pub metrics: crate::metrics::MetricsConfig,
}

#[derive(Clone)]
pub struct DatabaseConfig {
    pub url: String,
    /// Schema to use (created if missing); tests isolate themselves this way.
    pub schema: Option<String>,
}

#[derive(Clone, Debug)]
pub struct NatsConfig {
    pub url: String,
    /// Subject prefix, so several clusters (or tests) can share one server.
    pub prefix: String,
}

/// `api` serves HTTP and streams, `worker` delivers webhooks (and answers
/// only health checks), `all` does both.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    Api,
    Worker,
    All,
}

impl Role {
    pub fn serves_api(self) -> bool {
        !matches!(self, Role::Worker)
    }
    pub fn delivers_webhooks(self) -> bool {
        !matches!(self, Role::Api)
    }
}

impl ServeConfig {
    /// Defaults for a given data directory (used by tests and the CLI).
    pub fn with_data_dir(data_dir: impl Into<PathBuf>) -> Self {
        ServeConfig {
            listen: "127.0.0.1:7400".parse().expect("valid"),
            data_dir: data_dir.into(),
            admin_token: None,
            key_pepper: None,
            demo: false,
            retention: Duration::from_secs(30 * 86_400),
            max_body_bytes: 256 * 1024,
            rates: TierRates::default(),
            fsync: true,
            retention_interval: Duration::from_secs(60),
            http: crate::http::HttpConfig::default(),
            streams: crate::stream::StreamConfig::default(),
            webhooks: crate::webhooks::WebhookConfig::default(),
            database: None,
            server_secret: None,
            nats: None,
            role: Role::All,
            eventory: crate::platforms::eventory::EventoryConfig::default(),
            metrics: crate::metrics::MetricsConfig::default(),
        }
    }
}

/// Redacted: the admin token and pepper never reach a log line.
impl std::fmt::Debug for ServeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeConfig")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field("admin_token", &self.admin_token.as_ref().map(|_| "<redacted>"))
            .field("key_pepper", &self.key_pepper.as_ref().map(|_| "<redacted>"))
            .field("database", &self.database.as_ref().map(|_| "<redacted url>"))
            .field("nats", &self.nats)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}
