//! The erasure API: `POST /v1/erasures` (accept an erasure of a channel's
//! messages, worked through in the background), `GET /v1/erasures/{id}`
//! (progress), `GET /v1/erasures` (newest first). See `crate::erasure`.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use marquee_core::ids::ErasureId;
use marquee_core::names::Channel;
use marquee_store::erasure::ErasureRecord;
use serde::Deserialize;
use serde_json::{Value, json};

use super::endpoints::{json_response, list_json};
use super::messages::parse_limit;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, QueryParams};
use crate::state::AppState;

pub fn erasure_json(r: &ErasureRecord) -> Value {
    json!({
        "object": "erasure",
        "id": r.id.as_str(),
        "status": r.status.as_str(),
        "channel": r.channel,
        "within": r.within,
        "messages_erased": r.messages_erased,
        "messages_total": r.messages_total,
        "created_at": r.created_at.to_rfc3339(),
        "completed_at": r.completed_at.map(|t| t.to_rfc3339()),
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    channel: Option<String>,
    within: Option<String>,
}

fn channel(param: &str, v: &str) -> ApiResult<Channel> {
    v.parse::<Channel>()
        .map_err(|e| ApiError::invalid_param(param, e.to_string()))
}

pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<CreateBody>,
) -> ApiResult<Response> {
    let Some(ch) = body.channel.as_deref() else {
        return Err(ApiError::invalid_param("channel", "channel is required"));
    };
    let ch = channel("channel", ch)?;
    let within = body.within.as_deref().map(|w| channel("within", w)).transpose()?;
    let rec = state
        .store
        .create_erasure(&caller.org_id, ch.as_str(), within.as_ref().map(Channel::as_str))
        .await?;
    state.erasures.kick();
    Ok(json_response(StatusCode::ACCEPTED, &erasure_json(&rec)))
}

fn not_found() -> ApiError {
    ApiError::NotFound("No such erasure.".into())
}

pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Response> {
    let Path(id) = path.map_err(|_| not_found())?;
    let id: ErasureId = id.parse().map_err(|_| not_found())?;
    let rec = state
        .store
        .get_erasure(&caller.org_id, &id)
        .await?
        .ok_or_else(not_found)?;
    Ok(json_response(StatusCode::OK, &erasure_json(&rec)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    before: Option<String>,
    limit: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(q): QueryParams<ListQuery>,
) -> ApiResult<Response> {
    let limit = parse_limit(q.limit.as_deref())?;
    let before: Option<ErasureId> = q
        .before
        .as_deref()
        .map(|b| {
            b.parse()
                .map_err(|_| ApiError::invalid_param("before", "before must be an erasure id"))
        })
        .transpose()?;
    let (recs, more) = state
        .store
        .list_erasures(&caller.org_id, before.as_ref(), limit)
        .await?;
    let next = if more {
        recs.last().map(|r| r.id.to_string())
    } else {
        None
    };
    let data = recs.iter().map(erasure_json).collect();
    Ok(json_response(StatusCode::OK, &list_json(data, more, next)))
}
