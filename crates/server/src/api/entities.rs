//! Projected entities, served generically: `GET /v1/entities/{kind}` (a
//! page, by entity id) and `GET /v1/entities/{kind}/{id}`. A catalog type
//! with a `project` rule keeps each entity's latest version in the store,
//! updated in the publish commit (`marquee_store::rules`); these routes read
//! it back, scoped to the caller's organization (another organization's
//! entity is a 404 like a missing one).
//!
//! Pages are ordered by entity id and the cursor is the last id (base64url,
//! opaque): an update never moves an entity, so following `next_cursor`
//! while entities change neither skips nor repeats one (an entity created
//! behind the cursor is seen by the next walk).

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use marquee_store::rules::{Entity, EntityOrder, EntityQuery};
use serde::Deserialize;
use serde_json::{Value, json};

use super::endpoints::{json_response, list_json};
use super::messages::parse_limit;
use super::openapi::{BadRequest, Common, KeyAuth, NotFound};
use super::schemas;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::QueryParams;
use crate::state::AppState;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// A `next_cursor` this route answered: the entities after it.
    cursor: Option<String>,
    /// 1 to 100 (default 25).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    limit: Option<String>,
}

pub fn entity_json(e: &Entity) -> Value {
    let data: Value = serde_json::from_str(&e.data).unwrap_or(Value::Null);
    json!({
        "object": "entity",
        "id": e.id,
        "kind": e.kind,
        "data": data,
        "updated_at": e.updated_at.to_rfc3339(),
    })
}

fn not_found() -> ApiError {
    ApiError::NotFound("No such entity.".into())
}

/// List a kind's projected entities, by entity id.
///
/// A kind no type projects (or that has no entities yet) is an empty page.
#[utoipa::path(
    get,
    path = "/v1/entities/{kind}",
    tag = "entities",
    operation_id = "list_entities",
    params(
        ("kind" = String, Path, description = "The entity kind a `project` rule names (`events`)."),
        ListQuery,
    ),
    responses(
        (status = 200, description = "A page of entities, by id.", body = schemas::EntityList),
        Common, KeyAuth, BadRequest, NotFound,
    ),
    security(("api_key" = []), ("bearer" = []), ("apikey_header" = [])),
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
    QueryParams(q): QueryParams<ListQuery>,
) -> ApiResult<Response> {
    let Path(kind) = path.map_err(|_| not_found())?;
    let limit = parse_limit(q.limit.as_deref())?;
    let after = match &q.cursor {
        None => None,
        Some(c) => Some(
            URL_SAFE_NO_PAD
                .decode(c)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .filter(|s| !s.is_empty() && !s.contains('\0'))
                .ok_or_else(|| {
                    ApiError::invalid_param("cursor", "cursor must be a next_cursor returned by this API")
                })?,
        ),
    };
    // No entity is stored under a NUL (nor can PostgreSQL be asked for one).
    if kind.contains('\0') {
        return Ok(json_response(StatusCode::OK, &list_json(Vec::new(), false, None)));
    }
    let page = state
        .store
        .list_entities(
            &caller.org_id,
            &EntityQuery {
                kind,
                order: EntityOrder::ById { after },
                field: None,
                limit,
            },
        )
        .await?;
    let next = if page.has_more {
        page.entities
            .last()
            .map(|e| URL_SAFE_NO_PAD.encode(e.id.as_bytes()))
    } else {
        None
    };
    let data = page.entities.iter().map(entity_json).collect();
    Ok(json_response(
        StatusCode::OK,
        &list_json(data, page.has_more, next),
    ))
}

/// Fetch a projected entity.
#[utoipa::path(
    get,
    path = "/v1/entities/{kind}/{id}",
    tag = "entities",
    operation_id = "get_entity",
    params(
        ("kind" = String, Path, description = "The entity kind (`events`)."),
        ("id" = String, Path, description = "The entity's id (the value at the rule's `id` pointer)."),
    ),
    responses(
        (status = 200, description = "The entity's latest version.", body = schemas::Entity),
        Common, KeyAuth, NotFound,
    ),
    security(("api_key" = []), ("bearer" = []), ("apikey_header" = [])),
)]
pub async fn get_one(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<(String, String)>, PathRejection>,
) -> ApiResult<Response> {
    let Path((kind, id)) = path.map_err(|_| not_found())?;
    if kind.contains('\0') || id.contains('\0') {
        return Err(not_found());
    }
    let e = state
        .store
        .get_entity(&caller.org_id, &kind, &id)
        .await?
        .ok_or_else(not_found)?;
    Ok(json_response(StatusCode::OK, &entity_json(&e)))
}
