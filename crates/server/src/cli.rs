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
}

#[derive(Args, Clone)]
pub struct StoreArgs {
    /// Directory holding the SQLite database and the server secret.
    #[arg(long, env = "MARQUEE_DATA_DIR", default_value = "./marquee-data")]
    pub data_dir: PathBuf,
    /// Explicit key pepper (otherwise derived from the data dir's secret).
    #[arg(long, env = "MARQUEE_KEY_PEPPER", hide_env_values = true)]
    pub key_pepper: Option<String>,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the server.
    Serve(ServeArgs),
    /// Manage organizations.
    #[command(subcommand)]
    Org(OrgCommand),
    /// Manage API keys.
    #[command(subcommand)]
    Key(KeyCommand),
}

#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "MARQUEE_LISTEN", default_value = "127.0.0.1:7400")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub store: StoreArgs,
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
    pub streams: crate::stream::StreamArgs,
    #[command(flatten)]
    pub webhooks: crate::webhooks::WebhookArgs,
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    marquee_core::duration::parse(s).map_err(|e| e.to_string())
}

impl ServeArgs {
    pub fn into_config(self) -> ServeConfig {
        ServeConfig {
            listen: self.listen,
            data_dir: self.store.data_dir,
            admin_token: self.admin_token.filter(|t| !t.is_empty()),
            key_pepper: self.store.key_pepper,
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
            streams: self.streams.into_config(),
            webhooks: self.webhooks.into_config(),
        }
    }
}

#[derive(Subcommand)]
pub enum OrgCommand {
    /// Create an organization.
    Create {
        name: String,
        #[command(flatten)]
        store: StoreArgs,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// List organizations.
    List {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum KeyCommand {
    /// Create an API key (shown once).
    Create {
        #[arg(long)]
        org: String,
        #[arg(long, value_parser = ["free", "pro", "enterprise"])]
        tier: String,
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        json: bool,
    },
    /// List an organization's keys (never their secrets).
    List {
        #[arg(long)]
        org: String,
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key; it stops working on the next request.
    Revoke {
        key_id: String,
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        json: bool,
    },
}
