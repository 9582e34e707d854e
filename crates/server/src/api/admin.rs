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

use super::openapi::{AdminAuth, Body, Common, Conflict, NotFound};
use super::schemas;
use crate::admin_ops;
use crate::auth::Admin;
use crate::error::{ApiError, ApiResult};
use crate::extract::JsonBody;
use crate::state::AppState;

/// The body of `POST /admin/v1/orgs`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrg {
    #[schema(example = "Stubb's Austin")]
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

/// Create an organization.
#[utoipa::path(
    post,
    path = "/admin/v1/orgs",
    tag = "admin",
    operation_id = "create_org",
    request_body = CreateOrg,
    responses(
        (status = 201, description = "Created.", body = schemas::Organization),
        Common, AdminAuth, Body, Conflict,
    ),
    security(("admin_token" = [])),
)]
pub async fn create_org(
    State(state): State<AppState>,
    _admin: Admin,
    JsonBody(body): JsonBody<CreateOrg>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let org = admin_ops::create_org(state.store.as_ref(), &body.name, &body.profiles).await?;
    Ok((StatusCode::CREATED, Json(admin_ops::org_json(&org))))
}

/// List organizations.
#[utoipa::path(
    get,
    path = "/admin/v1/orgs",
    tag = "admin",
    operation_id = "list_orgs",
    responses(
        (status = 200, description = "Every organization.", body = schemas::OrganizationList),
        Common, AdminAuth,
    ),
    security(("admin_token" = [])),
)]
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

/// Fetch an organization.
#[utoipa::path(
    get,
    path = "/admin/v1/orgs/{id}",
    tag = "admin",
    operation_id = "get_org",
    params(("id" = String, Path, description = "An organization id (`org_…`).")),
    responses(
        (status = 200, description = "The organization.", body = schemas::Organization),
        Common, AdminAuth, NotFound,
    ),
    security(("admin_token" = [])),
)]
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

/// The body of `PATCH /admin/v1/orgs/{id}`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchOrg {
    /// Replaces the enabled profiles (required).
    #[serde(default)]
    profiles: Option<Vec<String>>,
}

/// `PATCH /admin/v1/orgs/{id}`: `{"profiles": [...]}` replaces the enabled
/// profiles.
/// Replace an organization's enabled profiles.
#[utoipa::path(
    patch,
    path = "/admin/v1/orgs/{id}",
    tag = "admin",
    operation_id = "update_org",
    params(("id" = String, Path, description = "An organization id (`org_…`).")),
    request_body = PatchOrg,
    responses(
        (status = 200, description = "The organization as changed.", body = schemas::Organization),
        Common, AdminAuth, Body, NotFound,
    ),
    security(("admin_token" = [])),
)]
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

/// The body of `POST /admin/v1/orgs/{id}/keys`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// `free`, `pro` or `enterprise`.
    #[schema(example = "pro")]
    tier: String,
    #[serde(default)]
    name: Option<String>,
    /// This key's stream connection limit per node (`null`: the tier's).
    #[serde(default)]
    max_stream_connections: Option<u32>,
}

/// The body of `PATCH /admin/v1/keys/{id}`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchKey {
    /// Connections per node (null: the tier default); required.
    #[serde(default, deserialize_with = "present")]
    max_stream_connections: Option<Option<u32>>,
}

/// Create an API key; its text is answered once as `key`.
#[utoipa::path(
    post,
    path = "/admin/v1/orgs/{id}/keys",
    tag = "admin",
    operation_id = "create_key",
    params(("id" = String, Path, description = "An organization id (`org_…`).")),
    request_body = CreateKey,
    responses(
        (status = 201, description = "Created, with `key`.", body = schemas::ApiKey),
        Common, AdminAuth, Body, NotFound,
    ),
    security(("admin_token" = [])),
)]
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

/// List an organization's keys (never their text).
#[utoipa::path(
    get,
    path = "/admin/v1/orgs/{id}/keys",
    tag = "admin",
    operation_id = "list_keys",
    params(("id" = String, Path, description = "An organization id (`org_…`).")),
    responses(
        (status = 200, description = "Every key of the organization.", body = schemas::ApiKeyList),
        Common, AdminAuth, NotFound,
    ),
    security(("admin_token" = [])),
)]
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

/// Revoke a key: refused from the next request on.
#[utoipa::path(
    post,
    path = "/admin/v1/keys/{id}/revoke",
    tag = "admin",
    operation_id = "revoke_key",
    params(("id" = String, Path, description = "A key id (`key_…`).")),
    responses(
        (status = 200, description = "The revoked key.", body = schemas::ApiKey),
        Common, AdminAuth, NotFound,
    ),
    security(("admin_token" = [])),
)]
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
/// Set a key's own stream connection limit.
#[utoipa::path(
    patch,
    path = "/admin/v1/keys/{id}",
    tag = "admin",
    operation_id = "update_key",
    params(("id" = String, Path, description = "A key id (`key_…`).")),
    request_body = PatchKey,
    responses(
        (status = 200, description = "The key as changed.", body = schemas::ApiKey),
        Common, AdminAuth, Body, NotFound,
    ),
    security(("admin_token" = [])),
)]
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
