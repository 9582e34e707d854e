//! The event-type catalog API: `GET /v1/event-types` (the built-in types of
//! the organization's enabled profiles and its own), `GET`, `PUT` and
//! `DELETE /v1/event-types/{type}` (its own types).
//!
//! A `PUT` schema is JSON Schema 2020-12 with local `$ref`s only; it is
//! compiled before it is stored, so a publish never meets a schema that does
//! not compile. Built-in types cannot be redefined (409) or deleted.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use marquee_core::names::EventType;
use marquee_core::profile::catalog::{CompiledSchema, TypeDef};
use marquee_store::EventTypeRecord;
use serde::Deserialize;
use serde_json::{Value, json};

use super::endpoints::{json_response, list_json};
use crate::auth::Caller;
use crate::catalog::{builtin, builtins_of};
use crate::error::{ApiError, ApiResult};
use crate::extract::JsonBody;
use crate::state::AppState;

/// Own types per organization at most.
pub const MAX_OWN_TYPES: usize = 1_000;
/// Bytes of a schema's JSON text at most.
pub const MAX_SCHEMA_BYTES: usize = 64 * 1024;
const MAX_DESCRIPTION: usize = 1024;

fn builtin_json(profile: &str, d: &TypeDef) -> Value {
    let mut v = json!({
        "object": "event_type",
        "type": d.name,
        "source": profile,
        "description": d.description,
        "schema": d.schema,
    });
    if let Some(k) = &d.dedup {
        v["dedup"] = json!(k);
    }
    if let Some(c) = &d.coalesce {
        v["coalesce"] = json!({"key": c.key, "window_ms": c.window_ms});
    }
    if let Some(p) = &d.project {
        v["project"] = json!({"kind": p.kind, "id": p.id, "version": p.version, "delete": p.delete});
    }
    if let Some(a) = &d.attendance {
        v["attendance"] = json!(a);
    }
    if let Some(r) = &d.drop {
        v["drop"] = json!(r);
    }
    v
}

fn own_json(t: &EventTypeRecord) -> Value {
    json!({
        "object": "event_type",
        "type": t.name,
        "source": "organization",
        "description": t.description,
        "schema": serde_json::from_str::<Value>(&t.schema).unwrap_or(Value::Null),
        "created_at": t.created_at.to_rfc3339(),
        "updated_at": t.updated_at.to_rfc3339(),
    })
}

fn type_name(path: Result<Path<String>, PathRejection>) -> ApiResult<String> {
    let Path(name) = path.map_err(|_| ApiError::NotFound("No such event type.".into()))?;
    name.parse::<EventType>()
        .map(|t| t.as_str().to_owned())
        .map_err(|e| ApiError::invalid_param("type", e.to_string()))
}

async fn profiles(state: &AppState, caller: &Caller) -> ApiResult<Vec<String>> {
    Ok(state
        .ingest
        .catalogs
        .org(&state.store, &caller.org_id)
        .await?
        .profiles
        .clone())
}

pub async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<Response> {
    let profiles = profiles(&state, &caller).await?;
    let mut data: Vec<Value> = builtins_of(&profiles)
        .into_iter()
        .map(|(p, d)| builtin_json(p, d))
        .collect();
    data.extend(
        state
            .store
            .list_event_types(&caller.org_id)
            .await?
            .iter()
            .map(own_json),
    );
    Ok(json_response(StatusCode::OK, &list_json(data, false, None)))
}

pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Response> {
    let name = type_name(path)?;
    let profiles = profiles(&state, &caller).await?;
    if let Some(b) = builtin(&profiles, &name) {
        return Ok(json_response(StatusCode::OK, &builtin_json(b.profile, b.def)));
    }
    match state.store.get_event_type(&caller.org_id, &name).await? {
        Some(t) => Ok(json_response(StatusCode::OK, &own_json(&t))),
        None => Err(ApiError::NotFound("No such event type.".into())),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutBody {
    #[serde(default)]
    description: String,
    schema: Value,
}

pub async fn put(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
    JsonBody(b): JsonBody<PutBody>,
) -> ApiResult<Response> {
    let name = type_name(path)?;
    let profiles = profiles(&state, &caller).await?;
    if let Some(bi) = builtin(&profiles, &name) {
        return Err(ApiError::Conflict(format!(
            "{name} is a built-in type of the {} profile; its schema cannot be replaced",
            bi.profile
        )));
    }
    if b.description.len() > MAX_DESCRIPTION {
        return Err(ApiError::invalid_param(
            "description",
            format!("description is at most {MAX_DESCRIPTION} bytes"),
        ));
    }
    if !b.schema.is_object() && !b.schema.is_boolean() {
        return Err(ApiError::invalid_param(
            "schema",
            "schema must be a JSON Schema (an object)",
        ));
    }
    let text = b.schema.to_string();
    if text.len() > MAX_SCHEMA_BYTES {
        return Err(ApiError::invalid_param(
            "schema",
            format!("schema is at most {MAX_SCHEMA_BYTES} bytes"),
        ));
    }
    CompiledSchema::compile(&b.schema).map_err(|e| ApiError::invalid_param("schema", e.to_string()))?;
    let existing = state.store.get_event_type(&caller.org_id, &name).await?;
    if existing.is_none() && state.store.list_event_types(&caller.org_id).await?.len() >= MAX_OWN_TYPES {
        return Err(ApiError::invalid_param(
            "type",
            format!("an organization defines at most {MAX_OWN_TYPES} event types"),
        ));
    }
    let (rec, created) = state
        .store
        .put_event_type(&caller.org_id, &name, &b.description, &text)
        .await?;
    state.ingest.catalogs.invalidate(&caller.org_id);
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(json_response(status, &own_json(&rec)))
}

pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Response> {
    let name = type_name(path)?;
    let profiles = profiles(&state, &caller).await?;
    if let Some(bi) = builtin(&profiles, &name) {
        return Err(ApiError::Conflict(format!(
            "{name} is a built-in type of the {} profile; disable the profile instead",
            bi.profile
        )));
    }
    if !state.store.delete_event_type(&caller.org_id, &name).await? {
        return Err(ApiError::NotFound("No such event type.".into()));
    }
    state.ingest.catalogs.invalidate(&caller.org_id);
    Ok(json_response(
        StatusCode::OK,
        &json!({"object": "event_type", "type": name, "deleted": true}),
    ))
}
