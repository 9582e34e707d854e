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
use marquee_core::profile::catalog::{Coalesce, CompiledSchema, TypeDef};
use marquee_store::EventTypeRecord;
use serde::Deserialize;
use serde_json::{Value, json};

use super::endpoints::{json_response, list_json};
use super::openapi::{BadRequest, Body, Common, Conflict, KeyAuth, NotFound};
use super::schemas;
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

fn own_json(t: &EventTypeRecord, coalesce: Option<&Coalesce>) -> Value {
    let mut v = json!({
        "object": "event_type",
        "type": t.name,
        "source": "organization",
        "description": t.description,
        "schema": serde_json::from_str::<Value>(&t.schema).unwrap_or(Value::Null),
        "created_at": t.created_at.to_rfc3339(),
        "updated_at": t.updated_at.to_rfc3339(),
    });
    if let Some(c) = coalesce {
        v["coalesce"] = json!({"key": c.key, "window_ms": c.window_ms});
    }
    v
}

/// Bounds of an organization type's `coalesce.window_ms`: a window shorter
/// than 100 ms coalesces nothing useful, one longer than an hour holds
/// messages back longer than any integration expects.
pub const MIN_COALESCE_WINDOW_MS: u64 = 100;
pub const MAX_COALESCE_WINDOW_MS: u64 = 3_600_000;

fn check_coalesce(c: &Coalesce) -> ApiResult<()> {
    let probe = TypeDef {
        name: "probe".into(),
        description: String::new(),
        schema: Value::Bool(true),
        dedup: None,
        dedup_window_ms: None,
        coalesce: Some(c.clone()),
        project: None,
        attendance: None,
        drop: None,
    };
    probe
        .check_rules()
        .map_err(|e| ApiError::invalid_param("coalesce.key", e.to_string()))?;
    if c.key.contains('\0') {
        return Err(ApiError::invalid_param(
            "coalesce.key",
            "coalesce.key may not contain NUL (U+0000)",
        ));
    }
    if !(MIN_COALESCE_WINDOW_MS..=MAX_COALESCE_WINDOW_MS).contains(&c.window_ms) {
        return Err(ApiError::invalid_param(
            "coalesce.window_ms",
            format!(
                "coalesce.window_ms must be {MIN_COALESCE_WINDOW_MS} to {MAX_COALESCE_WINDOW_MS} (one hour)"
            ),
        ));
    }
    Ok(())
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

/// The `coalesce` rules of the organization's own types.
async fn own_rules(
    state: &AppState,
    caller: &Caller,
) -> ApiResult<std::collections::HashMap<String, Coalesce>> {
    Ok(state
        .store
        .coalesce_rules(&caller.org_id)
        .await?
        .into_iter()
        .map(|(t, r)| {
            (
                t,
                Coalesce {
                    key: r.key,
                    window_ms: r.window_ms,
                },
            )
        })
        .collect())
}

/// The organization's event types: its enabled profiles' built-ins, then its own.
#[utoipa::path(
    get,
    path = "/v1/event-types",
    tag = "event-types",
    operation_id = "list_event_types",
    responses(
        (status = 200, description = "Every type (not paginated).", body = schemas::EventTypeList),
        Common, KeyAuth,
    ),
    security(("api_key" = []), ("bearer" = []), ("apikey_header" = [])),
)]
pub async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<Response> {
    let profiles = profiles(&state, &caller).await?;
    let mut data: Vec<Value> = builtins_of(&profiles)
        .into_iter()
        .map(|(p, d)| builtin_json(p, d))
        .collect();
    let rules = own_rules(&state, &caller).await?;
    data.extend(
        state
            .store
            .list_event_types(&caller.org_id)
            .await?
            .iter()
            .map(|t| own_json(t, rules.get(&t.name))),
    );
    Ok(json_response(StatusCode::OK, &list_json(data, false, None)))
}

/// Fetch an event type (built-in or the organization's own).
#[utoipa::path(
    get,
    path = "/v1/event-types/{type}",
    tag = "event-types",
    operation_id = "get_event_type",
    params(("type" = String, Path, description = "An event type name.")),
    responses(
        (status = 200, description = "The type.", body = schemas::EventType),
        Common, KeyAuth, BadRequest, NotFound,
    ),
    security(("api_key" = []), ("bearer" = []), ("apikey_header" = [])),
)]
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
        Some(t) => {
            let rules = own_rules(&state, &caller).await?;
            Ok(json_response(StatusCode::OK, &own_json(&t, rules.get(&t.name))))
        }
        None => Err(ApiError::NotFound("No such event type.".into())),
    }
}

/// The body of `PUT /v1/event-types/{type}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutBody {
    #[serde(default)]
    #[schema(max_length = 1024)]
    description: String,
    /// JSON Schema 2020-12 for `data` (local `$ref`s only, at most 64 KiB).
    #[schema(value_type = Object)]
    schema: Value,
    /// Debounce messages of this type per key (see README, Coalescing):
    /// `{"key": "/json/pointer", "window_ms": 100..=3600000}`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    coalesce: Option<Coalesce>,
}

/// Define or replace one of the organization's own event types.
///
/// The schema is compiled before it is stored; from then on every publish
/// of the type is validated against it. Built-in types answer 409.
#[utoipa::path(
    put,
    path = "/v1/event-types/{type}",
    tag = "event-types",
    operation_id = "put_event_type",
    params(("type" = String, Path, description = "An event type name.")),
    request_body = PutBody,
    responses(
        (status = 201, description = "Defined.", body = schemas::EventType),
        (status = 200, description = "Replaced.", body = schemas::EventType),
        Common, KeyAuth, Body, Conflict,
    ),
    security(("api_key" = []), ("bearer" = []), ("apikey_header" = [])),
)]
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
    if b.description.contains('\0') {
        return Err(ApiError::invalid_param(
            "description",
            "description may not contain NUL (U+0000)",
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
    if let Some(c) = &b.coalesce {
        check_coalesce(c)?;
    }
    let existing = state.store.get_event_type(&caller.org_id, &name).await?;
    if existing.is_none() && state.store.list_event_types(&caller.org_id).await?.len() >= MAX_OWN_TYPES {
        return Err(ApiError::invalid_param(
            "type",
            format!("an organization defines at most {MAX_OWN_TYPES} event types"),
        ));
    }
    // The rule first: a failure between the two leaves a rule for a type
    // that does not exist (ignored), never a type that lost its rule.
    let rule = b.coalesce.as_ref().map(|c| marquee_store::coalesce::Rule {
        key: c.key.clone(),
        window_ms: c.window_ms,
    });
    state.store.put_coalesce_rule(&caller.org_id, &name, rule).await?;
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
    Ok(json_response(status, &own_json(&rec, b.coalesce.as_ref())))
}

/// Delete one of the organization's own event types.
#[utoipa::path(
    delete,
    path = "/v1/event-types/{type}",
    tag = "event-types",
    operation_id = "delete_event_type",
    params(("type" = String, Path, description = "An event type name.")),
    responses(
        (status = 200, description = "Deleted.", body = schemas::EventTypeDeleted),
        Common, KeyAuth, BadRequest, NotFound, Conflict,
    ),
    security(("api_key" = []), ("bearer" = []), ("apikey_header" = [])),
)]
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
