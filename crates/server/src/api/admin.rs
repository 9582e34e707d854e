//! The admin API (`/admin/v1`), authorized by the admin token: the same
//! operations as the `org` and `key` CLI commands.

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use marquee_core::Tier;
use marquee_core::ids::{KeyId, OrgId};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::admin_ops;
use crate::auth::Admin;
use crate::error::{ApiError, ApiResult};
use crate::extract::JsonBody;
use crate::state::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateOrg {
    name: String,
    /// Enabled profiles (see `admin_ops::ENABLEABLE_PROFILES`).
    #[serde(default)]
    profiles: Vec<String>,
}

/// Deserializes a field that is present (even as `null`) to `Some`, so a
/// missing field (`None`, by `default`) differs from an explicit `null`.
fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

pub async fn create_org(
    State(state): State<AppState>,
    _admin: Admin,
    JsonBody(body): JsonBody<CreateOrg>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let org = admin_ops::create_org(state.store.as_ref(), &body.name, &body.profiles).await?;
    Ok((StatusCode::CREATED, Json(admin_ops::org_json(&org))))
}

pub async fn list_orgs(State(state): State<AppState>, _admin: Admin) -> ApiResult<Json<Value>> {
    let orgs = state.store.list_orgs().await?;
    let data: Vec<Value> = orgs.iter().map(admin_ops::org_json).collect();
    Ok(Json(
        json!({"object": "list", "data": data, "has_more": false, "next_cursor": null}),
    ))
}

fn org_id(path: Result<Path<String>, PathRejection>) -> ApiResult<OrgId> {
    path.ok()
        .and_then(|Path(id)| id.parse().ok())
        .ok_or_else(|| ApiError::NotFound("No such organization.".into()))
}

pub async fn get_org(
    State(state): State<AppState>,
    _admin: Admin,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<Value>> {
    let id = org_id(path)?;
    let org = state
        .store
        .get_org(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound("No such organization.".into()))?;
    Ok(Json(admin_ops::org_json(&org)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchOrg {
    #[serde(default)]
    profiles: Option<Vec<String>>,
}

/// `PATCH /admin/v1/orgs/{id}`: `{"profiles": [...]}` replaces the enabled
/// profiles.
pub async fn patch_org(
    State(state): State<AppState>,
    _admin: Admin,
    path: Result<Path<String>, PathRejection>,
    JsonBody(body): JsonBody<PatchOrg>,
) -> ApiResult<Json<Value>> {
    let id = org_id(path)?;
    let profiles = body.profiles.ok_or_else(|| {
        ApiError::invalid_param("profiles", "profiles is required (a list of profile names)")
    })?;
    let org = admin_ops::set_org_profiles(state.store.as_ref(), &id, &profiles).await?;
    state.ingest.catalogs.invalidate(&id);
    Ok(Json(admin_ops::org_json(&org)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    tier: String,
    #[serde(default)]
    name: Option<String>,
    /// This key's stream connection limit per node (`null`: the tier's).
    #[serde(default)]
    max_stream_connections: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchKey {
    #[serde(default, deserialize_with = "present")]
    max_stream_connections: Option<Option<u32>>,
}

pub async fn create_key(
    State(state): State<AppState>,
    _admin: Admin,
    path: Result<Path<String>, PathRejection>,
    JsonBody(body): JsonBody<CreateKey>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let org = org_id(path)?;
    let tier: Tier = body
        .tier
        .parse()
        .map_err(|e: marquee_core::tier::UnknownTier| ApiError::invalid_param("tier", e.to_string()))?;
    let (record, plaintext) = admin_ops::create_key(
        state.store.as_ref(),
        &state.secrets,
        &org,
        tier,
        body.name,
        body.max_stream_connections,
    )
    .await?;
    let mut v = admin_ops::key_json(&record, &state.config.streams.connections_per_key);
    v["key"] = json!(plaintext);
    Ok((StatusCode::CREATED, Json(v)))
}

pub async fn list_keys(
    State(state): State<AppState>,
    _admin: Admin,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<Value>> {
    let org = org_id(path)?;
    if state.store.get_org(&org).await?.is_none() {
        return Err(ApiError::NotFound("No such organization.".into()));
    }
    let keys = state.store.list_keys(&org).await?;
    let limits = &state.config.streams.connections_per_key;
    let data: Vec<Value> = keys.iter().map(|k| admin_ops::key_json(k, limits)).collect();
    Ok(Json(
        json!({"object": "list", "data": data, "has_more": false, "next_cursor": null}),
    ))
}

fn key_id(path: Result<Path<String>, PathRejection>) -> ApiResult<KeyId> {
    path.ok()
        .and_then(|Path(id)| id.parse().ok())
        .ok_or_else(|| ApiError::NotFound("No such key.".into()))
}

pub async fn revoke_key(
    State(state): State<AppState>,
    _admin: Admin,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<Value>> {
    let id = key_id(path)?;
    let record = state.store.revoke_key(&id).await?;
    tracing::info!(key_id = %record.id, org = %record.org_id, "API key revoked");
    Ok(Json(admin_ops::key_json(
        &record,
        &state.config.streams.connections_per_key,
    )))
}

/// `PATCH /admin/v1/keys/{id}`: `{"max_stream_connections": N | null}`
/// (`null`: back to the tier default). New connections get the new limit
/// at once; open ones are not closed.
pub async fn patch_key(
    State(state): State<AppState>,
    _admin: Admin,
    path: Result<Path<String>, PathRejection>,
    JsonBody(body): JsonBody<PatchKey>,
) -> ApiResult<Json<Value>> {
    let id = key_id(path)?;
    let limit = body.max_stream_connections.ok_or_else(|| {
        ApiError::invalid_param(
            "max_stream_connections",
            "max_stream_connections is required (a number of connections, or null for the tier default)",
        )
    })?;
    let record = admin_ops::set_key_stream_limit(state.store.as_ref(), &id, limit).await?;
    Ok(Json(admin_ops::key_json(
        &record,
        &state.config.streams.connections_per_key,
    )))
}
