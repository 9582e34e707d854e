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

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    marquee_server::logging::init(cli.log_format);
    let result = match cli.command {
        Command::Serve(args) => serve(args.into_config()).await,
        Command::Migrate { store } => open(&store).await.map(|_| println!("schema is up to date")),
        Command::Org(cmd) => org(cmd).await,
        Command::Key(cmd) => key(cmd).await,
        Command::Listen(a) => marquee_server::devcli::listen(a).await,
        Command::Tail(a) => marquee_server::devcli::tail(a).await,
        Command::Publish(a) => marquee_server::devcli::publish(a).await,
        Command::Verify(a) => marquee_server::devcli::verify(a),
        Command::Replay(a) => marquee_server::devcli::replay(a).await,
        Command::Recover(a) => marquee_server::devcli::recover(a).await,
        Command::Erase(a) => marquee_server::devcli::erase(a).await,
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
/// does). The default `--max-connections` is lowered to what that limit
/// allows (said once, at info); an explicit one that does not fit is kept
/// and warned about, with what to do.
fn raise_open_files_limit(http: &mut marquee_server::http::HttpConfig) {
    use marquee_server::http::{ConnectionCap, connection_cap};
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => match connection_cap(limit, http) {
            ConnectionCap::Fits => {
                tracing::info!(limit, max_connections = http.max_connections, "open files limit");
            }
            ConnectionCap::Lowered(room) => {
                http.max_connections = room;
                tracing::info!(
                    limit,
                    max_connections = room,
                    "open files limit: HTTP connections capped at {room} (to serve more, raise the hard limit, \
                     e.g. `ulimit -Hn` or LimitNOFILE=, and set --max-connections)"
                );
            }
            ConnectionCap::TooHigh(room) => tracing::warn!(
                limit,
                max_connections = http.max_connections,
                "--max-connections is above what the open files limit allows (about {room}); \
                 raise the hard limit (`ulimit -Hn`, LimitNOFILE=) or lower --max-connections"
            ),
        },
        Err(e) => tracing::warn!(error = %e, "could not raise the open files limit"),
    }
}

async fn serve(mut config: ServeConfig) -> Result<(), String> {
    raise_open_files_limit(&mut config.http);
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

/// Opens a store that must already exist: commands that read, or change
/// what is there, never create a data dir (a mistyped --data-dir says so
/// instead of answering from a new, empty store).
async fn open_existing(args: &StoreArgs) -> Result<(DynStore, ServerSecrets), String> {
    if args.database_url.as_deref().is_none_or(str::is_empty) {
        let db = args.data_dir.join(marquee_store::sqlite::DB_FILE);
        if !args.data_dir.is_dir() {
            return Err(format!(
                "no data dir at {} (give --data-dir or MARQUEE_DATA_DIR; `marquee serve` or \
                 `marquee org create` creates one)",
                args.data_dir.display()
            ));
        }
        if !db.is_file() {
            return Err(format!(
                "no marquee database in {} (no {}); `marquee serve` or `marquee org create` creates one",
                args.data_dir.display(),
                marquee_store::sqlite::DB_FILE
            ));
        }
    }
    open(args).await
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
        let text = human();
        if !text.is_empty() {
            println!("{text}");
        }
    }
}

fn parse_org(org: &str) -> Result<OrgId, String> {
    org.parse()
        .map_err(|_| format!("{org:?} is not an organization id (org_…)"))
}

/// The organization, or the same answer `key create` gives for a missing one.
async fn existing_org(store: &DynStore, org: &OrgId) -> Result<(), String> {
    match store.get_org(org).await.map_err(|e| e.to_string())? {
        Some(_) => Ok(()),
        None => Err(format!("No such organization: {org}.")),
    }
}

async fn org(cmd: OrgCommand) -> Result<(), String> {
    match cmd {
        OrgCommand::Create {
            name,
            profiles,
            unique,
            store,
            json,
        } => {
            admin_ops::check_profiles(&profiles).map_err(api_err)?;
            let (store, _) = open(&store).await?;
            let same: Vec<OrgId> = store
                .list_orgs()
                .await
                .map_err(|e| e.to_string())?
                .into_iter()
                .filter(|o| o.name == name)
                .map(|o| o.id)
                .collect();
            if let Some(first) = same.first() {
                if unique {
                    return Err(format!(
                        "an organization named {name:?} already exists ({first}); nothing created"
                    ));
                }
                eprintln!(
                    "marquee: warning: an organization named {name:?} already exists ({}); creating another \
                     (--unique refuses instead)",
                    same.iter().map(OrgId::as_str).collect::<Vec<_>>().join(", ")
                );
            }
            let org = admin_ops::create_org(store.as_ref(), &name, &profiles)
                .await
                .map_err(api_err)?;
            let v = admin_ops::org_json(&org);
            // Text: the id alone on stdout (`ORG=$(marquee org create NAME)`).
            print(json, &v, || {
                eprintln!(
                    "created organization {} ({}){}",
                    org.id,
                    org.name,
                    profiles_text(&org.profiles)
                );
                org.id.to_string()
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
            let (store, _) = open_existing(&store).await?;
            let org = admin_ops::set_org_profiles(store.as_ref(), &id, &profiles)
                .await
                .map_err(api_err)?;
            let v = admin_ops::org_json(&org);
            print(json, &v, || {
                format!("organization {}{}", org.id, profiles_text(&org.profiles))
            });
        }
        OrgCommand::List { store, json } => {
            let (store, _) = open_existing(&store).await?;
            let orgs = store.list_orgs().await.map_err(|e| e.to_string())?;
            let data: Vec<Value> = orgs.iter().map(admin_ops::org_json).collect();
            let v = json!({"object": "list", "data": data});
            if !json && orgs.is_empty() {
                eprintln!("no organizations yet (create one with `marquee org create NAME`)");
            }
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
            let org = parse_org(&org)?;
            let tier = tier
                .parse()
                .map_err(|e: marquee_core::tier::UnknownTier| e.to_string())?;
            let (store, secrets) = open_existing(&store).await?;
            existing_org(&store, &org).await?;
            let (record, plaintext) =
                admin_ops::create_key(store.as_ref(), &secrets, &org, tier, name, max_stream_connections)
                    .await
                    .map_err(api_err)?;
            let limits = limits.stream_max_connections_per_key;
            let mut v = admin_ops::key_json(&record, &limits);
            v["key"] = json!(plaintext);
            // Text: the key alone on stdout (`KEY=$(marquee key create …)`).
            print(json, &v, || {
                eprintln!(
                    "created {} key {} for {} (the key is shown only this once)",
                    record.tier, record.id, record.org_id
                );
                plaintext.clone()
            });
        }
        KeyCommand::List {
            org,
            store,
            limits,
            json,
        } => {
            let org = parse_org(&org)?;
            let (store, _) = open_existing(&store).await?;
            existing_org(&store, &org).await?;
            let keys = store.list_keys(&org).await.map_err(|e| e.to_string())?;
            let limits = limits.stream_max_connections_per_key;
            let data: Vec<Value> = keys.iter().map(|k| admin_ops::key_json(k, &limits)).collect();
            let v = json!({"object": "list", "data": data});
            if !json && keys.is_empty() {
                eprintln!(
                    "{org} has no keys yet (create one with `marquee key create --org {org} --tier pro`)"
                );
            }
            print(json, &v, || {
                keys.iter()
                    .map(|k| {
                        format!(
                            "{}\t{}\t{}\tsk_live_{}…\t{}",
                            k.id,
                            k.tier,
                            k.name.as_deref().unwrap_or("-"),
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
            let (store, _) = open_existing(&store).await?;
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
            let (store, _) = open_existing(&store).await?;
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
