//! The marquee server as a library.
//!
//! [`run`] serves on a listener until a shutdown future resolves; `main.rs`
//! only parses flags and calls it, and the integration tests call the same
//! function on port 0 with a temporary data directory.
//!
//! Layout:
//! - [`cli`]: the command line (`serve`, `org`, `key`).
//! - [`config`]: validated server configuration.
//! - [`api`]: HTTP routes; [`extract`] and [`error`] are its edges (request
//!   parsing and the one error envelope).
//! - [`auth`], [`ratelimit`]: API keys, the admin token, per-key limits.
//! - [`ingest`]: validation on the publish path, where per-type rules plug in.
//! - [`catalog`]: each organization's known event types and compiled schemas.
//! - [`admin_ops`]: organization/key operations shared by CLI and admin API.
//! - [`secrets`]: the server secret and the key pepper.
//! - [`retention`]: background pruning.
//! - [`stream`]: WebSocket and SSE streams and the live fan-out bus.
//! - [`demo`]: the `--demo` door-opening simulation.
//! - [`webhooks`]: endpoints' delivery engine (dispatcher, signing, SSRF guard).
//! - [`dashboard`]: the web UI at `/dashboard` (embedded assets, strict CSP).
//! - [`http`]: the HTTP listener (connection cap, header-read timeout);
//!   [`tls`]: HTTPS/WSS on it.
//! - [`metrics`]: `GET /metrics` (Prometheus) and the recording helpers.
//! - [`logging`]: log output (`MARQUEE_LOG`, `--log-format`, colour).

pub mod admin_ops;
pub mod api;
pub mod api_reference;
pub mod auth;
pub mod catalog;
pub mod cli;
pub mod coalesce;
pub mod config;
pub mod dashboard;
pub mod demo;
pub mod devcli;
pub mod erasure;
pub mod error;
pub mod extract;
pub mod http;
pub mod ingest;
pub mod logging;
pub mod metrics;
pub mod platforms;
pub mod ratelimit;
pub mod retention;
pub mod secrets;
pub mod state;
pub mod stream;
pub mod tls;
pub mod webhooks;

use std::future::Future;
use std::sync::Arc;

use marquee_store::DynStore;
use marquee_store::sqlite::{SqliteOptions, SqliteStore};
use tokio::net::TcpListener;

pub use config::ServeConfig;
use state::AppState;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Secrets(#[from] secrets::SecretsError),
    #[error("opening the store: {0}")]
    Store(#[from] marquee_store::StoreError),
    #[error("starting the webhook dispatcher: {0}")]
    Webhooks(#[from] webhooks::dispatcher::DispatchError),
    #[error("serving HTTP: {0}")]
    Io(#[from] std::io::Error),
    #[error("another marquee server is already using the data dir {0}")]
    DataDirBusy(String),
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
}

/// Opens the store selected by the configuration, with the server secrets
/// that go with it: SQLite keeps its secret in the data dir; PostgreSQL
/// needs the cluster secret (`MARQUEE_SERVER_SECRET`) and refuses to serve
/// if it (or the pepper) disagrees with what the cluster's first node
/// recorded in the database.
pub async fn open_backend(config: &ServeConfig) -> Result<(DynStore, secrets::ServerSecrets), ServeError> {
    match &config.database {
        None => {
            let secrets =
                secrets::ServerSecrets::load_or_create(&config.data_dir, config.key_pepper.as_deref())?;
            let dir = config.data_dir.clone();
            let opts = SqliteOptions {
                fsync: config.fsync,
                ..SqliteOptions::default()
            };
            let store = tokio::task::spawn_blocking(move || SqliteStore::open(&dir, opts))
                .await
                .map_err(|e| marquee_store::StoreError::Internal(e.to_string()))??;
            Ok((Arc::new(store), secrets))
        }
        Some(db) => {
            let hex = config.server_secret.as_deref().ok_or_else(|| {
                ServeError::Config(
                    "--database needs the cluster secret: set MARQUEE_SERVER_SECRET (64 hex characters, \
                     the same on every node; e.g. `openssl rand -hex 32`)"
                        .into(),
                )
            })?;
            let secrets =
                secrets::ServerSecrets::from_hex(hex, config.key_pepper.as_deref()).ok_or_else(|| {
                    ServeError::Config("MARQUEE_SERVER_SECRET must be 64 hex characters".into())
                })?;
            let pg = marquee_store::postgres::PgStore::connect(&db.url, db.schema.as_deref()).await?;
            let mine = secrets.cluster_check();
            let cluster = pg.meta_init("secret_check", &mine).await?;
            if cluster != mine {
                return Err(ServeError::Config(
                    "this node's MARQUEE_SERVER_SECRET or MARQUEE_KEY_PEPPER differs from the cluster's; \
                     refusing to start"
                        .into(),
                ));
            }
            Ok((Arc::new(pg), secrets))
        }
    }
}

/// How long a graceful shutdown waits for in-flight requests.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

fn lock_data_dir(dir: &std::path::Path) -> Result<std::fs::File, ServeError> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join("marquee.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(ServeError::DataDirBusy(dir.display().to_string())),
        Err(std::fs::TryLockError::Error(e)) => Err(e.into()),
    }
}

/// Serves marquee on `listener` until `shutdown` resolves, then finishes the
/// requests in flight and returns.
pub async fn run(
    mut config: ServeConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    // Bad certificate or key files stop the start before anything opens.
    let tls = tls::files(config.http.tls_cert.clone(), config.http.tls_key.clone())?
        .map(|f| tls::acceptor(&f))
        .transpose()?;
    if config.demo {
        demo::allow_local_receivers(&mut config.webhooks);
    }
    // One server per data dir: two would each assign sequence numbers. The
    // lock is held for the life of `run` and released by the OS on any exit,
    // kill -9 included. (The CLI does not publish and takes no lock.) This is
    // how a second SQLite node is refused; several nodes need --database.
    let _dir_lock = match config.database {
        None => Some(lock_data_dir(&config.data_dir)?),
        Some(_) => None,
    };
    let metrics_handle = metrics::install();
    metrics::node_role(config.role);
    let (store, secrets) = open_backend(&config).await?;
    // The NATS connection, kept for webhook wake-ups between roles.
    let mut nats: Option<(async_nats::Client, String)> = None;
    let bus: stream::DynBus = match &config.nats {
        Some(n) => {
            let b = stream::NatsBus::connect(&n.url, &n.prefix, store.clone(), config.streams.queue_frames)
                .await
                .map_err(|e| ServeError::Config(e.to_string()))?;
            nats = Some(b.client());
            Arc::new(b)
        }
        None => {
            if config.database.is_some() {
                tracing::warn!(
                    "--database without --nats: live streams only see this node's publishes; \
                     run several nodes with both"
                );
            }
            Arc::new(stream::InProcessBus::new(config.streams.queue_frames))
        }
    };
    let commits = stream::register_commit_listener(&store);
    let erasures = Arc::new(erasure::Erasures::default());
    let streams = stream::StreamHub::new(config.streams.clone(), bus.clone(), erasures.erased.clone());
    let webhooks = webhooks::Dispatcher::new(
        store.clone(),
        &secrets,
        config.webhooks.clone(),
        erasures.erased.clone(),
    )?;
    let http_config = config.http.clone();
    let state = AppState {
        store: store.clone(),
        secrets,
        limits: ratelimit::RateLimits::new(config.rates),
        config: Arc::new(config),
        ingest: Arc::new(ingest::IngestRules::default()),
        streams: streams.clone(),
        webhooks: webhooks.clone(),
        erasures,
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut background = tokio::task::JoinSet::new();
    background.spawn(retention::run(state.clone(), stop_rx.clone()));
    background.spawn(coalesce::run(state.clone(), stop_rx.clone()));
    background.spawn(erasure::run(state.clone(), stop_rx.clone()));
    background.spawn(metrics::upkeep(metrics_handle.clone(), stop_rx.clone()));
    background.spawn(stream::feed(bus, commits, stop_rx.clone()));
    let delivers = state.config.webhooks.dispatch && state.config.role.delivers_webhooks();
    if delivers {
        background.spawn(webhooks.clone().run(stop_rx.clone()));
    }
    if let Some((client, prefix)) = nats {
        if delivers {
            background.spawn(webhooks::wake::listen(client, prefix, webhooks, stop_rx.clone()));
        } else if state.config.role.serves_api() {
            webhooks::wake::announce(&store, client, &prefix);
        }
    }
    if state.config.demo {
        let addr = listener.local_addr()?;
        match demo::setup(&state, addr).await {
            Ok(org) => {
                background.spawn(demo::simulate(state.clone(), org, stop_rx.clone()));
            }
            Err(e) => tracing::error!(error = %e, "demo setup failed"),
        }
    }
    tracing::info!(addr = %listener.local_addr()?, data_dir = %state.config.data_dir.display(), "marquee serving");
    let metrics_routes = metrics::router(metrics_handle, state.config.metrics.clone());
    let app = if state.config.role.serves_api() {
        api::router(state)
    } else {
        api::health_router(state)
    };
    let app = app.merge(metrics_routes);
    // Streams never finish on their own: end them when shutdown starts, so
    // the graceful shutdown below does not wait for them.
    let (begun_tx, mut begun_rx) = tokio::sync::watch::channel(false);
    let shutdown = async move {
        shutdown.await;
        let _ = begun_tx.send(true);
        streams.shutdown();
    };
    // In-flight requests get SHUTDOWN_GRACE to finish; a client that holds
    // its connection open past that cannot keep the process alive. Nothing
    // acknowledged is at risk: every acknowledgement follows its commit.
    let deadline = async move {
        let _ = begun_rx.wait_for(|b| *b).await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    tokio::select! {
        () = http::serve(listener, app, http_config, tls, shutdown) => {},
        _ = deadline => tracing::warn!("shutdown grace period over; closing remaining connections"),
    }
    let _ = stop_tx.send(true);
    while background.join_next().await.is_some() {}
    // Leave no large write-ahead log behind (SQLite: checkpoint, truncate).
    if let Err(e) = store.close().await {
        tracing::warn!(error = %e, "closing the store");
    }
    tracing::info!("marquee stopped");
    Ok(())
}

/// Resolves on SIGTERM or ctrl-c.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown requested; finishing in-flight requests");
}
