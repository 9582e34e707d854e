//! Administrative operations shared by the CLI and the admin HTTP API, so
//! both create organizations and keys exactly the same way.

use marquee_core::Tier;
use marquee_core::apikey;
use marquee_core::ids::{KeyId, OrgId};
use marquee_store::{ApiKeyRecord, NewApiKey, Org, Store, StoreError};
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::secrets::ServerSecrets;
use crate::stream::ConnectionLimits;

pub const MAX_NAME_LEN: usize = 200;

fn check_name(name: &str, what: &str) -> Result<(), ApiError> {
    if name.trim().is_empty() || name.len() > MAX_NAME_LEN || name.chars().any(char::is_control) {
        return Err(ApiError::invalid_param(
            "name",
            format!("{what} name must be 1 to {MAX_NAME_LEN} characters without control characters"),
        ));
    }
    Ok(())
}

/// Profiles an organization may enable (the lead will point this at the
/// core profile registry).
/// Checks profile names against the enableable profiles of the registry
/// (`marquee_core::profile`); answers them sorted and without repeats.
pub fn check_profiles(profiles: &[String]) -> Result<Vec<String>, ApiError> {
    let mut out: Vec<String> = Vec::with_capacity(profiles.len());
    for p in profiles {
        if !marquee_core::profile::enableable().any(|e| e == p) {
            return Err(ApiError::invalid_param(
                "profiles",
                format!("unknown profile {p:?}: expected one of {}", {
                    let mut names: Vec<_> = marquee_core::profile::enableable().collect();
                    names.sort_unstable();
                    names.join(", ")
                }),
            ));
        }
        out.push(p.clone());
    }
    out.sort();
    out.dedup();
    Ok(out)
}

pub async fn create_org(store: &dyn Store, name: &str, profiles: &[String]) -> Result<Org, ApiError> {
    check_name(name, "an organization")?;
    let profiles = check_profiles(profiles)?;
    Ok(store.create_org(name, &profiles).await?)
}

/// Replaces an organization's enabled profiles.
pub async fn set_org_profiles(store: &dyn Store, id: &OrgId, profiles: &[String]) -> Result<Org, ApiError> {
    let profiles = check_profiles(profiles)?;
    store.set_org_profiles(id, &profiles).await.map_err(|e| match e {
        StoreError::NotFound => ApiError::NotFound("No such organization.".into()),
        other => other.into(),
    })
}

/// Sets (or, with `None`, clears back to the tier default) a key's stream
/// connection limit; running servers apply it to new connections.
pub async fn set_key_stream_limit(
    store: &dyn Store,
    id: &KeyId,
    limit: Option<u32>,
) -> Result<ApiKeyRecord, ApiError> {
    store.set_key_stream_limit(id, limit).await.map_err(|e| match e {
        StoreError::NotFound => ApiError::NotFound("No such key.".into()),
        other => other.into(),
    })
}

/// Creates a key; the plaintext is returned once and never stored.
pub async fn create_key(
    store: &dyn Store,
    secrets: &ServerSecrets,
    org: &OrgId,
    tier: Tier,
    name: Option<String>,
    max_stream_connections: Option<u32>,
) -> Result<(ApiKeyRecord, String), ApiError> {
    if let Some(n) = &name {
        check_name(n, "a key")?;
    }
    let new = apikey::generate(&secrets.pepper);
    let record = store
        .create_key(NewApiKey {
            id: KeyId::generate(),
            org_id: org.clone(),
            tier,
            name,
            public_prefix: new.public_prefix.clone(),
            digest: new.digest,
            max_stream_connections,
        })
        .await
        .map_err(|e| match e {
            StoreError::NotFound => ApiError::NotFound("No such organization.".into()),
            other => other.into(),
        })?;
    Ok((record, new.plaintext))
}

pub fn org_json(o: &Org) -> Value {
    json!({
        "object": "organization",
        "id": o.id.as_str(),
        "name": o.name,
        "profiles": o.profiles,
        "created_at": o.created_at.to_rfc3339(),
    })
}

/// A key's JSON; `limits` are the per-tier stream connection defaults in
/// force, for `stream_connection_limit` (the effective per-node limit).
pub fn key_json(k: &ApiKeyRecord, limits: &ConnectionLimits) -> Value {
    json!({
        "object": "api_key",
        "id": k.id.as_str(),
        "org_id": k.org_id.as_str(),
        "tier": k.tier.as_str(),
        "name": k.name,
        "prefix": format!("{}{}", apikey::KEY_PREFIX, k.public_prefix),
        "created_at": k.created_at.to_rfc3339(),
        "revoked_at": k.revoked_at.map(|t| t.to_rfc3339()),
        "max_stream_connections": k.max_stream_connections,
        "stream_connection_limit": limits.effective(k.tier, k.max_stream_connections),
    })
}
