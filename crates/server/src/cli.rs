//! The command line: `serve`, and the administrative `org` / `key` commands
//! that work on the store directly (so the first key needs no server).
//!
//! No type here derives `Debug`: they hold the admin token and the pepper.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::ServeConfig;
use crate::ratelimit::TierRates;

#[derive(Parser)]
#[command(
    name = "marquee",
    version,
    about = "Real-time event delivery gateway for live-event platforms"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log output on stderr: text (coloured only on a terminal, never with
    /// NO_COLOR set) or json (one object per line). The filter is MARQUEE_LOG.
    #[arg(
        long,
        global = true,
        env = "MARQUEE_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub log_format: crate::logging::LogFormat,
}

#[derive(Args, Clone)]
pub struct StoreArgs {
    /// Directory holding the SQLite database and the server secret.
    #[arg(long, env = "MARQUEE_DATA_DIR", default_value = "./marquee-data")]
    pub data_dir: PathBuf,
    /// Explicit key pepper (otherwise derived from the server secret).
    #[arg(long, env = "MARQUEE_KEY_PEPPER", hide_env_values = true)]
    pub key_pepper: Option<String>,
    /// PostgreSQL URL: use the shared PostgreSQL store instead of SQLite.
    #[arg(long = "database", env = "MARQUEE_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// PostgreSQL schema to use (created if missing).
    #[arg(long, env = "MARQUEE_DATABASE_SCHEMA")]
    pub database_schema: Option<String>,
    /// The cluster secret, 64 hex characters; required with --database and
    /// identical on every node (a node with another one refuses to start).
    #[arg(long, env = "MARQUEE_SERVER_SECRET", hide_env_values = true)]
    pub server_secret: Option<String>,
}

impl StoreArgs {
    /// The part of a server configuration that selects the store.
    pub fn apply(&self, c: &mut ServeConfig) {
        c.data_dir = self.data_dir.clone();
        c.key_pepper = self.key_pepper.clone();
        c.database =
            self.database_url
                .clone()
                .filter(|u| !u.is_empty())
                .map(|url| crate::config::DatabaseConfig {
                    url,
                    schema: self.database_schema.clone(),
                });
        c.server_secret = self.server_secret.clone();
    }
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the server.
    Serve(Box<ServeArgs>),
    /// Create or upgrade the database schema, then exit (`serve` also does
    /// this on start; safe when several nodes start at once).
    Migrate {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Manage organizations.
    #[command(subcommand)]
    Org(OrgCommand),
    /// Manage API keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Developer: forward a server's stream to a local URL, signed in a webhook format.
    Listen(crate::devcli::ListenArgs),
    /// Developer: show the live stream in the terminal.
    Tail(crate::devcli::TailArgs),
    /// Developer: publish one message.
    Publish(crate::devcli::PublishArgs),
    /// Developer: check a captured webhook (body on stdin) and say why not.
    Verify(crate::devcli::VerifyArgs),
    /// Developer: replay an endpoint's messages from a time or cursor, with progress.
    Replay(crate::devcli::ReplayArgs),
    /// Developer: queue an endpoint's failed deliveries of a time range again.
    Recover(crate::devcli::RecoverArgs),
    /// Developer: erase a channel's stored messages (`--wait`: with progress).
    Erase(crate::devcli::EraseArgs),
}

#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "MARQUEE_LISTEN", default_value = "127.0.0.1:7400")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub store: StoreArgs,
    /// NATS URL for cross-node live fan-out (several nodes need it).
    #[arg(long, env = "MARQUEE_NATS_URL")]
    pub nats: Option<String>,
    /// NATS subject prefix.
    #[arg(long, env = "MARQUEE_NATS_PREFIX", default_value = "marquee")]
    pub nats_prefix: String,
    /// What this node does: api, worker or all.
    #[arg(long, env = "MARQUEE_ROLE", value_enum, default_value = "all")]
    pub role: crate::config::Role,
    /// Bearer token for /admin/v1 (admin API disabled without it).
    #[arg(long, env = "MARQUEE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Create a demo organization and key, and publish a simulated door opening.
    #[arg(long, env = "MARQUEE_DEMO")]
    pub demo: bool,
    /// How long messages are kept (e.g. 30d, 12h).
    #[arg(long, env = "MARQUEE_RETENTION", default_value = "30d", value_parser = parse_duration)]
    pub retention: std::time::Duration,
    /// Largest accepted request body, in bytes.
    #[arg(long, env = "MARQUEE_MAX_BODY_BYTES", default_value_t = 256 * 1024)]
    pub max_body_bytes: usize,
    /// Requests per second per free key (burst twice that).
    #[arg(long, env = "MARQUEE_RATE_LIMIT_FREE", default_value_t = TierRates::default().free)]
    pub rate_limit_free: u32,
    /// Requests per second per pro key.
    #[arg(long, env = "MARQUEE_RATE_LIMIT_PRO", default_value_t = TierRates::default().pro)]
    pub rate_limit_pro: u32,
    /// Requests per second per enterprise key.
    #[arg(long, env = "MARQUEE_RATE_LIMIT_ENTERPRISE", default_value_t = TierRates::default().enterprise)]
    pub rate_limit_enterprise: u32,
    #[command(flatten)]
    pub http: crate::http::HttpArgs,
    #[command(flatten)]
    pub streams: crate::stream::StreamArgs,
    #[command(flatten)]
    pub webhooks: crate::webhooks::WebhookArgs,
    #[command(flatten)]
    pub eventory: crate::platforms::eventory::EventoryArgs,
    #[command(flatten)]
    pub metrics: crate::metrics::MetricsArgs,
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    marquee_core::duration::parse(s).map_err(|e| e.to_string())
}

impl ServeArgs {
    pub fn into_config(self) -> ServeConfig {
        let mut c = ServeConfig {
            listen: self.listen,
            data_dir: self.store.data_dir.clone(),
            admin_token: self.admin_token.filter(|t| !t.is_empty()),
            key_pepper: None,
            demo: self.demo,
            retention: self.retention,
            max_body_bytes: self.max_body_bytes,
            rates: TierRates {
                free: self.rate_limit_free,
                pro: self.rate_limit_pro,
                enterprise: self.rate_limit_enterprise,
            },
            fsync: true,
            retention_interval: std::time::Duration::from_secs(60),
            http: self.http.into_config(),
            streams: self.streams.into_config(),
            webhooks: self.webhooks.into_config(),
            database: None,
            server_secret: None,
            nats: self
                .nats
                .clone()
                .filter(|u| !u.is_empty())
                .map(|url| crate::config::NatsConfig {
                    url,
                    prefix: self.nats_prefix.clone(),
                }),
            role: self.role,
            eventory: self.eventory.clone().into_config(),
            metrics: self.metrics.clone().into_config(),
        };
        self.store.apply(&mut c);
        c
    }
}

#[derive(Subcommand)]
pub enum OrgCommand {
    /// Create an organization (creates the data dir on first use).
    Create {
        /// The organization's display name (1 to 200 characters). Names need
        /// not be unique: a duplicate is created with a warning, or refused
        /// with --unique.
        name: String,
        /// Profiles to enable, comma-separated or repeated (attendee,
        /// eventium, eventory, revento, revolution).
        #[arg(long = "profile", value_name = "PROFILE", value_delimiter = ',')]
        profiles: Vec<String>,
        /// Refuse to create an organization whose name is already taken.
        #[arg(long)]
        unique: bool,
        #[command(flatten)]
        store: StoreArgs,
        /// Print one JSON object instead of a line of text.
        #[arg(long)]
        json: bool,
    },
    /// Replace an organization's enabled profiles (none given: disable all).
    SetProfiles {
        /// The organization (org_…).
        org_id: String,
        /// Profiles to enable, comma-separated or repeated.
        #[arg(long = "profile", value_name = "PROFILE", value_delimiter = ',')]
        profiles: Vec<String>,
        #[command(flatten)]
        store: StoreArgs,
        /// Print the organization as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// List organizations (id and name, one a line).
    List {
        #[command(flatten)]
        store: StoreArgs,
        /// Print one JSON list object instead of lines of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum KeyCommand {
    /// Create an API key (shown once).
    Create {
        /// The organization the key belongs to (org_…, from `org create` or `org list`).
        #[arg(long)]
        org: String,
        /// free (REST only, 20 requests/s), pro (streams, 500/s) or enterprise (100000/s).
        #[arg(long, value_parser = ["free", "pro", "enterprise"])]
        tier: String,
        /// A label for the key (e.g. the app that uses it), shown by `key list`.
        #[arg(long)]
        name: Option<String>,
        /// This key's concurrent stream connections per node (default: its
        /// tier's, see `marquee serve --stream-max-connections-per-key`).
        #[arg(long, value_name = "N")]
        max_stream_connections: Option<u32>,
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        limits: StreamLimitArgs,
        /// Print one JSON object (with the key) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List an organization's keys: id, tier, name, prefix, status (never the keys).
    List {
        /// The organization whose keys to list (org_…).
        #[arg(long)]
        org: String,
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        limits: StreamLimitArgs,
        /// Print one JSON list object instead of lines of text.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key; it stops working on the next request.
    Revoke {
        /// The key's id (key_…, from `key list`), not the key itself.
        key_id: String,
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        limits: StreamLimitArgs,
        /// Print the revoked key's record as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Set a key's concurrent stream connections per node; `default` goes
    /// back to its tier's. Running servers apply it to new connections.
    SetLimit {
        /// The key's id (key_…).
        key_id: String,
        /// A number of connections, or `default`.
        #[arg(long, value_name = "N|default", value_parser = parse_key_limit)]
        max_stream_connections: KeyLimit,
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        limits: StreamLimitArgs,
        /// Print the key's record as one JSON object.
        #[arg(long)]
        json: bool,
    },
}

/// The per-tier stream connection defaults, read like `serve` reads them,
/// so `stream_connection_limit` in the output is the one servers apply.
#[derive(Args, Clone)]
pub struct StreamLimitArgs {
    /// Per-tier stream connection defaults, as for `marquee serve`.
    #[arg(
        long,
        env = "MARQUEE_STREAM_MAX_CONNECTIONS_PER_KEY",
        default_value = "free=0,pro=50000,enterprise=100000",
        value_parser = crate::stream::ConnectionLimits::parse
    )]
    pub stream_max_connections_per_key: crate::stream::ConnectionLimits,
}

/// A key's stream connection limit: a number, or the tier default.
#[derive(Clone, Copy)]
pub struct KeyLimit(pub Option<u32>);

fn parse_key_limit(s: &str) -> Result<KeyLimit, String> {
    if s.eq_ignore_ascii_case("default") {
        return Ok(KeyLimit(None));
    }
    s.parse::<u32>()
        .map(|n| KeyLimit(Some(n)))
        .map_err(|_| format!("{s:?}: expected a number of connections or `default`"))
}
