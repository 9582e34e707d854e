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
use marquee_core::attendance::{AttendanceRule, DropRule};
use marquee_core::names::EventType;
use marquee_core::profile::catalog::{Coalesce, CompiledSchema, Project, TypeDef, TypeRules};
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

/// Adds a type's rules to its rendering (the same fields for built-in and
/// own types).
fn add_rules(v: &mut Value, r: &TypeRules) {
    if let Some(k) = &r.dedup {
        v["dedup"] = json!(k);
    }
    if let Some(w) = r.dedup_window_ms {
        v["dedup_window_ms"] = json!(w);
    }
    if let Some(c) = &r.coalesce {
        v["coalesce"] = json!({"key": c.key, "window_ms": c.window_ms});
    }
    if let Some(p) = &r.project {
        v["project"] = json!({"kind": p.kind, "id": p.id, "version": p.version, "delete": p.delete});
        if let Some(sort) = &p.sort {
            v["project"]["sort"] = json!(sort);
        }
    }
    if let Some(a) = &r.attendance {
        v["attendance"] = json!(a);
    }
    if let Some(d) = &r.drop {
        v["drop"] = json!(d);
    }
}

fn builtin_json(profile: &str, d: &TypeDef) -> Value {
    let mut v = json!({
        "object": "event_type",
        "type": d.name,
        "source": profile,
        "description": d.description,
        "schema": d.schema,
    });
    add_rules(&mut v, &d.rules());
    v
}

/// The stored rules of an own type (checked when they were stored).
fn stored_rules(t: &EventTypeRecord) -> TypeRules {
    t.rules
        .as_deref()
        .and_then(|r| serde_json::from_str(r).ok())
        .unwrap_or_default()
}

fn own_json(t: &EventTypeRecord) -> Value {
    let mut v = json!({
        "object": "event_type",
        "type": t.name,
        "source": "organization",
        "description": t.description,
        "schema": serde_json::from_str::<Value>(&t.schema).unwrap_or(Value::Null),
        "created_at": t.created_at.to_rfc3339(),
        "updated_at": t.updated_at.to_rfc3339(),
    });
    add_rules(&mut v, &stored_rules(t));
    v
}

/// Bounds of an organization type's `coalesce.window_ms`: a window shorter
/// than 100 ms coalesces nothing useful, one longer than an hour holds
/// messages back longer than any integration expects.
pub const MIN_COALESCE_WINDOW_MS: u64 = 100;
pub const MAX_COALESCE_WINDOW_MS: u64 = 3_600_000;

/// Checks an own type's rules as the catalog's are checked, plus the
/// coalescing window's bounds.
fn check_rules(r: &TypeRules) -> ApiResult<()> {
    use marquee_core::profile::catalog::RuleError;
    let probe = r
        .clone()
        .into_def("probe".into(), String::new(), Value::Bool(true));
    probe.check_rules().map_err(|e| {
        let param = match &e {
            RuleError::BadPointer { field, .. } => field.clone(),
            RuleError::EmptyDedup => "dedup".into(),
            RuleError::ZeroWindow => "coalesce.window_ms".into(),
            RuleError::BadDedupWindow => "dedup_window_ms".into(),
            RuleError::BadProjectKind(_) => "project.kind".into(),
        };
        ApiError::invalid_param(param, e.to_string())
    })?;
    if r.dedup_window_ms.is_some_and(|w| w > MAX_DEDUP_WINDOW_MS) {
        return Err(ApiError::invalid_param(
            "dedup_window_ms",
            format!("dedup_window_ms is at most {MAX_DEDUP_WINDOW_MS} (400 days)"),
        ));
    }
    if let Some(d) = &r.dedup
        && d.len() > MAX_DEDUP_POINTERS
    {
        return Err(ApiError::invalid_param(
            "dedup",
            format!("dedup names at most {MAX_DEDUP_POINTERS} fields"),
        ));
    }
    if let Some(c) = &r.coalesce {
        check_coalesce(c)?;
        // A window's message is committed by the flusher as a plain
        // message: it would neither project, count nor drop anything.
        for (rule, set) in [
            ("project", r.project.is_some()),
            ("attendance", r.attendance.is_some()),
            ("drop", r.drop.is_some()),
        ] {
            if set {
                return Err(ApiError::invalid_param(
                    "coalesce",
                    format!(
                        "a coalesced type cannot also carry a {rule} rule: the window's message is committed when \
                         the window closes, after the publishes that would apply it; define two types"
                    ),
                ));
            }
        }
    }
    let text = serde_json::to_value(r).map_err(|e| ApiError::Internal(e.to_string()))?;
    if text.to_string().len() > MAX_RULES_BYTES {
        // Named after its largest rule.
        let largest = text
            .as_object()
            .and_then(|o| o.iter().max_by_key(|(_, v)| v.to_string().len()))
            .map_or("dedup".to_owned(), |(k, _)| k.clone());
        return Err(ApiError::invalid_param(
            largest,
            format!("a type's rules are at most {MAX_RULES_BYTES} bytes of JSON"),
        ));
    }
    if let Some((field, _)) = rule_pointers(&probe).find(|(_, p)| p.len() > MAX_POINTER_BYTES) {
        return Err(ApiError::invalid_param(
            field,
            format!("a JSON pointer is at most {MAX_POINTER_BYTES} bytes"),
        ));
    }
    Ok(())
}

/// Every JSON pointer of a type's rules, named as its field.
fn rule_pointers(d: &TypeDef) -> impl Iterator<Item = (String, &str)> {
    let dedup = d
        .dedup
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, p)| (format!("dedup[{i}]"), p.as_str()));
    let coalesce = d
        .coalesce
        .iter()
        .map(|c| ("coalesce.key".to_owned(), c.key.as_str()));
    let project = d.project.iter().flat_map(|p| {
        std::iter::once(("project.id".to_owned(), p.id.as_str()))
            .chain(
                p.version
                    .iter()
                    .map(|v| ("project.version".to_owned(), v.as_str())),
            )
            .chain(p.sort.iter().map(|v| ("project.sort".to_owned(), v.as_str())))
    });
    let attendance = d
        .attendance
        .iter()
        .flat_map(|a| a.pointers())
        .map(|(f, p)| (f.to_owned(), p));
    let drop = d
        .drop
        .iter()
        .flat_map(|r| r.pointers())
        .map(|(f, p)| (f.to_owned(), p));
    dedup.chain(coalesce).chain(project).chain(attendance).chain(drop)
}

/// Fields of a dedup key at most.
pub const MAX_DEDUP_POINTERS: usize = 16;
/// The longest dedup window an own type may give (400 days; absent means
/// as long as the message is retained).
pub const MAX_DEDUP_WINDOW_MS: u64 = 400 * 24 * 3_600_000;
/// Bytes of one rule pointer at most.
pub const MAX_POINTER_BYTES: usize = 256;
/// Bytes of a type's rules as JSON at most (pointers, an attendance
/// rule's `in`/`out` values).
pub const MAX_RULES_BYTES: usize = 8 * 1024;

fn check_coalesce(c: &Coalesce) -> ApiResult<()> {
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
        Some(t) => Ok(json_response(StatusCode::OK, &own_json(&t))),
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
    /// JSON pointers into `data` whose values together identify a duplicate
    /// (see README, Per-type rules): `["/id", "/submitted_at"]`.
    #[serde(default)]
    #[schema(value_type = Option<Vec<String>>)]
    dedup: Option<Vec<String>>,
    /// How long a dedup key is remembered (ms); absent: the retention.
    #[serde(default)]
    dedup_window_ms: Option<u64>,
    /// Debounce messages of this type per key (see README, Coalescing):
    /// `{"key": "/json/pointer", "window_ms": 100..=3600000}`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    coalesce: Option<Coalesce>,
    /// Keep the latest version of an entity (see README, Projections):
    /// `{"kind", "id": "/id", "version": "/updated_at"?, "sort"?, "delete"?}`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    project: Option<Project>,
    /// Count door scans or door openings (see README, Attendance).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    attendance: Option<AttendanceRule>,
    /// Publish or claim a drop (Revolution's drops read model).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    drop: Option<DropRule>,
}

impl PutBody {
    fn rules(&self) -> TypeRules {
        TypeRules {
            dedup: self.dedup.clone(),
            dedup_window_ms: self.dedup_window_ms,
            coalesce: self.coalesce.clone(),
            project: self.project.clone(),
            attendance: self.attendance.clone(),
            drop: self.drop.clone(),
        }
    }
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
    let rules = b.rules();
    check_rules(&rules)?;
    let existing = state.store.get_event_type(&caller.org_id, &name).await?;
    if existing.is_none() && state.store.list_event_types(&caller.org_id).await?.len() >= MAX_OWN_TYPES {
        return Err(ApiError::invalid_param(
            "type",
            format!("an organization defines at most {MAX_OWN_TYPES} event types"),
        ));
    }
    let rules_text = (!rules.is_empty())
        .then(|| serde_json::to_string(&rules))
        .transpose()
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let (rec, created) = state
        .store
        .put_event_type(
            &caller.org_id,
            &name,
            &b.description,
            &text,
            rules_text.as_deref(),
        )
        .await?;
    state.ingest.catalogs.invalidate(&caller.org_id);
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(json_response(status, &own_json(&rec)))
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
