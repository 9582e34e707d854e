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
    /// WebSocket/SSE stream limits and timings.
    pub streams: crate::stream::StreamConfig,
    /// Webhook delivery settings.
    pub webhooks: crate::webhooks::WebhookConfig,
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
            streams: crate::stream::StreamConfig::default(),
            webhooks: crate::webhooks::WebhookConfig::default(),
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
            .finish_non_exhaustive()
    }
}
