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
//! - [`admin_ops`]: organization/key operations shared by CLI and admin API.
//! - [`secrets`]: the server secret and the key pepper.
//! - [`retention`]: background pruning.
//! - [`demo`]: the `--demo` door-opening simulation.

pub mod admin_ops;
pub mod api;
pub mod auth;
pub mod cli;
pub mod config;
pub mod demo;
pub mod error;
pub mod extract;
pub mod ingest;
pub mod ratelimit;
pub mod retention;
pub mod secrets;
pub mod state;

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
    #[error("serving HTTP: {0}")]
    Io(#[from] std::io::Error),
}

/// Opens the store selected by the configuration.
pub async fn open_store(config: &ServeConfig) -> Result<DynStore, ServeError> {
    let dir = config.data_dir.clone();
    let opts = SqliteOptions {
        fsync: config.fsync,
        ..SqliteOptions::default()
    };
    let store = tokio::task::spawn_blocking(move || SqliteStore::open(&dir, opts))
        .await
        .map_err(|e| marquee_store::StoreError::Internal(e.to_string()))??;
    Ok(Arc::new(store))
}

/// Serves marquee on `listener` until `shutdown` resolves, then finishes the
/// requests in flight and returns.
pub async fn run(
    config: ServeConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let secrets = secrets::ServerSecrets::load_or_create(&config.data_dir, config.key_pepper.as_deref())?;
    let store = open_store(&config).await?;
    let state = AppState {
        store: store.clone(),
        secrets,
        limits: ratelimit::RateLimits::new(config.rates),
        config: Arc::new(config),
        ingest: Arc::new(ingest::IngestRules::default()),
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut background = tokio::task::JoinSet::new();
    background.spawn(retention::run(state.clone(), stop_rx.clone()));
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
    let app = api::router(state);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    let _ = stop_tx.send(true);
    while background.join_next().await.is_some() {}
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
