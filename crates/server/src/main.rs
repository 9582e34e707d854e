//! The `marquee` binary: parses flags and hands over to the library.

use std::process::ExitCode;

use clap::Parser;
use marquee_core::ids::{KeyId, OrgId};
use marquee_server::cli::{Cli, Command, KeyCommand, OrgCommand, StoreArgs};
use marquee_server::error::ApiError;
use marquee_server::secrets::ServerSecrets;
use marquee_server::{ServeConfig, admin_ops};
use marquee_store::DynStore;
use serde_json::{Value, json};

/// mimalloc: measurably cheaper than the system allocator for the many
/// short-lived request allocations (see BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("MARQUEE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let result = match cli.command {
        Command::Serve(args) => serve(args.into_config()).await,
        Command::Migrate { store } => open(&store).await.map(|_| println!("schema is up to date")),
        Command::Org(cmd) => org(cmd).await,
        Command::Key(cmd) => key(cmd).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("marquee: {msg}");
            ExitCode::FAILURE
        }
    }
}

/// Every connection is a file descriptor, and many systems start processes
/// with a soft limit of 1,024: raise it to the hard limit (as Go's runtime
/// does), and say when `--max-connections` cannot be reached.
fn raise_open_files_limit(max_connections: usize) {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => {
            tracing::info!(limit, "open files limit");
            // Room for the store, the webhook client and the listener.
            if limit < (max_connections as u64).saturating_add(1_024) {
                tracing::warn!(
                    limit,
                    max_connections,
                    "the open files limit is below --max-connections; raise the hard limit (ulimit -Hn) or lower --max-connections"
                );
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not raise the open files limit"),
    }
}

async fn serve(config: ServeConfig) -> Result<(), String> {
    raise_open_files_limit(config.http.max_connections);
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    marquee_server::run(config, listener, marquee_server::shutdown_signal())
        .await
        .map_err(|e| e.to_string())
}

async fn open(args: &StoreArgs) -> Result<(DynStore, ServerSecrets), String> {
    let mut config = ServeConfig::with_data_dir(&args.data_dir);
    args.apply(&mut config);
    marquee_server::open_backend(&config)
        .await
        .map_err(|e| e.to_string())
}

fn api_err(e: ApiError) -> String {
    e.public_message()
}

fn profiles_text(profiles: &[String]) -> String {
    if profiles.is_empty() {
        String::new()
    } else {
        format!(", profiles: {}", profiles.join(", "))
    }
}

fn print(json_out: bool, v: &Value, human: impl FnOnce() -> String) {
    if json_out {
        println!("{v}");
    } else {
        println!("{}", human());
    }
}

async fn org(cmd: OrgCommand) -> Result<(), String> {
    match cmd {
        OrgCommand::Create {
            name,
            profiles,
            store,
            json,
        } => {
            admin_ops::check_profiles(&profiles).map_err(api_err)?;
            let (store, _) = open(&store).await?;
            let org = admin_ops::create_org(store.as_ref(), &name, &profiles)
                .await
                .map_err(api_err)?;
            let v = admin_ops::org_json(&org);
            print(json, &v, || {
                format!(
                    "created organization {} ({}){}",
                    org.id,
                    org.name,
                    profiles_text(&org.profiles)
                )
            });
        }
        OrgCommand::SetProfiles {
            org_id,
            profiles,
            store,
            json,
        } => {
            let id: OrgId = org_id
                .parse()
                .map_err(|_| format!("{org_id:?} is not an organization id (org_…)"))?;
            admin_ops::check_profiles(&profiles).map_err(api_err)?;
            let (store, _) = open(&store).await?;
            let org = admin_ops::set_org_profiles(store.as_ref(), &id, &profiles)
                .await
                .map_err(api_err)?;
            let v = admin_ops::org_json(&org);
            print(json, &v, || {
                format!("organization {}{}", org.id, profiles_text(&org.profiles))
            });
        }
        OrgCommand::List { store, json } => {
            let (store, _) = open(&store).await?;
            let orgs = store.list_orgs().await.map_err(|e| e.to_string())?;
            let data: Vec<Value> = orgs.iter().map(admin_ops::org_json).collect();
            let v = json!({"object": "list", "data": data});
            print(json, &v, || {
                orgs.iter()
                    .map(|o| format!("{}\t{}", o.id, o.name))
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
    }
    Ok(())
}

async fn key(cmd: KeyCommand) -> Result<(), String> {
    match cmd {
        KeyCommand::Create {
            org,
            tier,
            name,
            max_stream_connections,
            store,
            limits,
            json,
        } => {
            let org: OrgId = org
                .parse()
                .map_err(|_| format!("{org:?} is not an organization id (org_…)"))?;
            let tier = tier
                .parse()
                .map_err(|e: marquee_core::tier::UnknownTier| e.to_string())?;
            let (store, secrets) = open(&store).await?;
            let (record, plaintext) =
                admin_ops::create_key(store.as_ref(), &secrets, &org, tier, name, max_stream_connections)
                    .await
                    .map_err(api_err)?;
            let limits = limits.stream_max_connections_per_key;
            let mut v = admin_ops::key_json(&record, &limits);
            v["key"] = json!(plaintext);
            print(json, &v, || {
                format!(
                    "created {} key {} for {}\n{}\n(the key is shown only this once)",
                    record.tier, record.id, record.org_id, plaintext
                )
            });
        }
        KeyCommand::List {
            org,
            store,
            limits,
            json,
        } => {
            let org: OrgId = org
                .parse()
                .map_err(|_| format!("{org:?} is not an organization id (org_…)"))?;
            let (store, _) = open(&store).await?;
            let keys = store.list_keys(&org).await.map_err(|e| e.to_string())?;
            let limits = limits.stream_max_connections_per_key;
            let data: Vec<Value> = keys.iter().map(|k| admin_ops::key_json(k, &limits)).collect();
            let v = json!({"object": "list", "data": data});
            print(json, &v, || {
                keys.iter()
                    .map(|k| {
                        format!(
                            "{}\t{}\tsk_live_{}…\t{}",
                            k.id,
                            k.tier,
                            k.public_prefix,
                            if k.revoked_at.is_some() {
                                "revoked"
                            } else {
                                "active"
                            }
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        KeyCommand::Revoke {
            key_id,
            store,
            limits,
            json,
        } => {
            let id: KeyId = key_id
                .parse()
                .map_err(|_| format!("{key_id:?} is not a key id (key_…)"))?;
            let (store, _) = open(&store).await?;
            let record = store.revoke_key(&id).await.map_err(|e| match e {
                marquee_store::StoreError::NotFound => format!("no key {id}"),
                other => other.to_string(),
            })?;
            let v = admin_ops::key_json(&record, &limits.stream_max_connections_per_key);
            print(json, &v, || format!("revoked key {}", record.id));
        }
        KeyCommand::SetLimit {
            key_id,
            max_stream_connections,
            store,
            limits,
            json,
        } => {
            let id: KeyId = key_id
                .parse()
                .map_err(|_| format!("{key_id:?} is not a key id (key_…)"))?;
            let (store, _) = open(&store).await?;
            let record = admin_ops::set_key_stream_limit(store.as_ref(), &id, max_stream_connections.0)
                .await
                .map_err(api_err)?;
            let limits = limits.stream_max_connections_per_key;
            let v = admin_ops::key_json(&record, &limits);
            print(json, &v, || {
                format!(
                    "key {}: {} stream connections per node{}",
                    record.id,
                    limits.effective(record.tier, record.max_stream_connections),
                    if record.max_stream_connections.is_some() {
                        ""
                    } else {
                        " (the tier default)"
                    }
                )
            });
        }
    }
    Ok(())
}
