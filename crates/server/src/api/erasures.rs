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
use super::openapi::{BadRequest, Body, Common, KeyAuth, NotFound};
use super::schemas;
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

/// An erasure to accept.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ErasureBody)]
pub struct CreateBody {
    /// The channel (`kind:id`) whose messages are erased.
    #[schema(value_type = String, required = true, example = "person:p-123")]
    channel: Option<String>,
    /// Only the messages also on this channel (omitted: all of `channel`'s).
    #[schema(nullable = true)]
    within: Option<String>,
}

fn channel(param: &str, v: &str) -> ApiResult<Channel> {
    v.parse::<Channel>()
        .map_err(|e| ApiError::invalid_param(param, e.to_string()))
}

/// Erase a channel's messages.
///
/// Accepted at once and worked through in the background: follow it with
/// `GET /v1/erasures/{id}`.
#[utoipa::path(
    post,
    path = "/v1/erasures",
    tag = "erasures",
    operation_id = "create_erasure",
    request_body = CreateBody,
    responses(
        (status = 202, description = "Accepted; `status` is `running`.", body = schemas::Erasure),
        Common, KeyAuth, Body,
    ),
    security(("api_key" = []), ("bearer" = []), ("apikey_header" = [])),
)]
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

/// Fetch an erasure (its progress).
#[utoipa::path(
    get,
    path = "/v1/erasures/{id}",
    tag = "erasures",
    operation_id = "get_erasure",
    params(("id" = String, Path, description = "An erasure id (`era_…`).")),
    responses(
        (status = 200, description = "The erasure.", body = schemas::Erasure),
        Common, KeyAuth, NotFound,
    ),
    security(("api_key" = []), ("bearer" = []), ("apikey_header" = [])),
)]
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

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// An erasure id: the erasures before it (older).
    before: Option<String>,
    /// 1 to 100 (default 25).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    limit: Option<String>,
}

/// List the organization's erasures, newest first.
#[utoipa::path(
    get,
    path = "/v1/erasures",
    tag = "erasures",
    operation_id = "list_erasures",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of erasures, newest first.", body = schemas::ErasureList),
        Common, KeyAuth, BadRequest,
    ),
    security(("api_key" = []), ("bearer" = []), ("apikey_header" = [])),
)]
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
