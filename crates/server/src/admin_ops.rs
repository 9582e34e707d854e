//! Administrative operations shared by the CLI and the admin HTTP API, so
//! both create organizations and keys exactly the same way.

use marquee_core::Tier;
use marquee_core::apikey;
use marquee_core::ids::{KeyId, OrgId};
use marquee_store::{ApiKeyRecord, NewApiKey, Org, Store, StoreError};
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::secrets::ServerSecrets;

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

pub async fn create_org(store: &dyn Store, name: &str) -> Result<Org, ApiError> {
    check_name(name, "an organization")?;
    Ok(store.create_org(name).await?)
}

/// Creates a key; the plaintext is returned once and never stored.
pub async fn create_key(
    store: &dyn Store,
    secrets: &ServerSecrets,
    org: &OrgId,
    tier: Tier,
    name: Option<String>,
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
        "created_at": o.created_at.to_rfc3339(),
    })
}

pub fn key_json(k: &ApiKeyRecord) -> Value {
    json!({
        "object": "api_key",
        "id": k.id.as_str(),
        "org_id": k.org_id.as_str(),
        "tier": k.tier.as_str(),
        "name": k.name,
        "prefix": format!("{}{}", apikey::KEY_PREFIX, k.public_prefix),
        "created_at": k.created_at.to_rfc3339(),
        "revoked_at": k.revoked_at.map(|t| t.to_rfc3339()),
    })
}
