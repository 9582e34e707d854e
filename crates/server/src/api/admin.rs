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
}

pub async fn create_org(
    State(state): State<AppState>,
    _admin: Admin,
    JsonBody(body): JsonBody<CreateOrg>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let org = admin_ops::create_org(state.store.as_ref(), &body.name).await?;
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
pub struct CreateKey {
    tier: String,
    #[serde(default)]
    name: Option<String>,
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
    let (record, plaintext) =
        admin_ops::create_key(state.store.as_ref(), &state.secrets, &org, tier, body.name).await?;
    let mut v = admin_ops::key_json(&record);
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
    let data: Vec<Value> = keys.iter().map(admin_ops::key_json).collect();
    Ok(Json(
        json!({"object": "list", "data": data, "has_more": false, "next_cursor": null}),
    ))
}

pub async fn revoke_key(
    State(state): State<AppState>,
    _admin: Admin,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<Value>> {
    let id: KeyId = path
        .ok()
        .and_then(|Path(id)| id.parse().ok())
        .ok_or_else(|| ApiError::NotFound("No such key.".into()))?;
    let record = state.store.revoke_key(&id).await?;
    tracing::info!(key_id = %record.id, org = %record.org_id, "API key revoked");
    Ok(Json(admin_ops::key_json(&record)))
}
