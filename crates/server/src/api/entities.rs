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

use axum::Router;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use marquee_store::rules::{Entity, EntityOrder, EntityQuery};
use serde::Deserialize;
use serde_json::{Value, json};

use super::endpoints::{json_response, list_json};
use super::messages::parse_limit;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::QueryParams;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/entities/{kind}", get(list))
        .route("/v1/entities/{kind}/{id}", get(get_one))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    cursor: Option<String>,
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

async fn list(
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
                .filter(|s| !s.is_empty())
                .ok_or_else(|| {
                    ApiError::invalid_param("cursor", "cursor must be a next_cursor returned by this API")
                })?,
        ),
    };
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

async fn get_one(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<(String, String)>, PathRejection>,
) -> ApiResult<Response> {
    let Path((kind, id)) = path.map_err(|_| not_found())?;
    let e = state
        .store
        .get_entity(&caller.org_id, &kind, &id)
        .await?
        .ok_or_else(not_found)?;
    Ok(json_response(StatusCode::OK, &entity_json(&e)))
}
