//! The native message API: publish (one or a batch), fetch, and list by cursor.

use axum::extract::Path;
use axum::extract::State;
use axum::extract::rejection::PathRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use marquee_core::Cursor;
use marquee_core::ids::MessageId;
use marquee_core::message::Idempotency;
use marquee_core::timestamp::Timestamp;
use marquee_store::{MessageQuery, PublishRequest};
use serde::Deserialize;

use super::openapi::{BadRequest, Body, Common, Conflict, KeyAuth, NotFound};
use super::{render, schemas};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, QueryParams};
use crate::ingest::{self, BatchBody, MAX_BATCH, PublishBody};
use crate::state::AppState;

fn header_idempotency_key(headers: &HeaderMap) -> ApiResult<Option<&str>> {
    match headers.get("idempotency-key") {
        None => Ok(None),
        Some(v) => {
            let k = v.to_str().map_err(|_| {
                ApiError::invalid_param("Idempotency-Key", "Idempotency-Key must be visible ASCII")
            })?;
            ingest::check_idempotency_key(k, "Idempotency-Key")?;
            Ok(Some(k))
        }
    }
}

/// A publish answered with the stored original of its dedup key.
fn deduplicated(mut resp: Response) -> Response {
    resp.headers_mut()
        .insert("deduplicated", HeaderValue::from_static("true"));
    resp
}

fn replayed(mut resp: Response) -> Response {
    resp.headers_mut()
        .insert("idempotent-replayed", HeaderValue::from_static("true"));
    resp
}

/// Publish a message.
///
/// Answers 201 with the stored message once it is durable, or 200 with
/// `Idempotent-Replayed: true` when its idempotency key (the header or the
/// body's `idempotency_key`) was already used with the same body.
#[utoipa::path(
    post,
    path = "/v1/messages",
    tag = "messages",
    operation_id = "publish_message",
    request_body = PublishBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "1 to 255 visible ASCII bytes; a retry with the same key and body is answered, not published again.")),
    responses(
        (status = 201, description = "Published.", body = schemas::Message),
        (status = 200, description = "An idempotent replay: the message stored before.", body = schemas::Message,
            headers(("Idempotent-Replayed" = String, description = "`true`"))),
        Common, KeyAuth, Body, Conflict,
    ),
    security(("api_key" = []), ("bearer" = []), ("apikey_header" = [])),
)]
pub async fn publish(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    JsonBody(body): JsonBody<PublishBody>,
) -> ApiResult<Response> {
    let key = header_idempotency_key(&headers)?;
    let rules = state.ingest.catalogs.org(&state.store, &caller.org_id).await?;
    let msg = state.ingest.validate(body, "", key, &rules)?;
    let outcome = state
        .store
        .publish(PublishRequest {
            org_id: caller.org_id,
            messages: vec![msg],
            request_idempotency: None,
        })
        .await?;
    let m = outcome
        .messages
        .first()
        .ok_or_else(|| ApiError::Internal("publish returned no message".into()))?;
    if marquee_store::coalesce::is_pending(m) {
        state.ingest.coalescer.due(m.received_at);
        let mut body = Vec::new();
        render::published(&mut body, m);
        let status = if outcome.replayed {
            StatusCode::OK
        } else {
            StatusCode::ACCEPTED
        };
        let resp = crate::coalesce::mark(render::json_bytes(status, body));
        return Ok(if outcome.replayed { replayed(resp) } else { resp });
    }
    if outcome.replayed {
        Ok(replayed(render::json_bytes(StatusCode::OK, render::message(m))))
    } else if outcome.deduplicated.first() == Some(&true) {
        Ok(deduplicated(render::json_bytes(
            StatusCode::OK,
            render::message(m),
        )))
    } else {
        Ok(render::json_bytes(StatusCode::CREATED, render::message(m)))
    }
}

/// Publish 1 to 1,000 messages in one commit.
///
/// All or nothing: one invalid message refuses the batch (`param` names it,
/// `messages[3].type`). A batch-level `Idempotency-Key` replays the whole
/// batch.
#[utoipa::path(
    post,
    path = "/v1/messages/batch",
    tag = "messages",
    operation_id = "publish_batch",
    request_body = BatchBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "A key for the whole batch.")),
    responses(
        (status = 201, description = "Published, in order.", body = schemas::MessageList),
        (status = 200, description = "An idempotent replay of the batch.", body = schemas::MessageList,
            headers(("Idempotent-Replayed" = String, description = "`true`"))),
        Common, KeyAuth, Body, Conflict,
    ),
    security(("api_key" = []), ("bearer" = []), ("apikey_header" = [])),
)]
pub async fn publish_batch(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    JsonBody(body): JsonBody<BatchBody>,
) -> ApiResult<Response> {
    let n = body.messages.len();
    if n == 0 || n > MAX_BATCH {
        return Err(ApiError::invalid_param(
            "messages",
            format!("a batch holds 1 to {MAX_BATCH} messages (got {n})"),
        ));
    }
    let request_idempotency = match header_idempotency_key(&headers)? {
        Some(k) => Some(Idempotency {
            // Batch-level keys live in their own namespace (a NUL can never
            // appear in a client's key), apart from per-message keys.
            key: format!("\u{0}batch\u{0}{k}"),
            fingerprint: ingest::batch_fingerprint(&body.messages),
        }),
        None => None,
    };
    let rules = state.ingest.catalogs.org(&state.store, &caller.org_id).await?;
    let mut messages = Vec::with_capacity(n);
    for (i, item) in body.messages.into_iter().enumerate() {
        messages.push(
            state
                .ingest
                .validate(item, &format!("messages[{i}]."), None, &rules)?,
        );
    }
    let outcome = state
        .store
        .publish(PublishRequest {
            org_id: caller.org_id,
            messages,
            request_idempotency,
        })
        .await?;
    let pending = state.ingest.coalescer.note(&outcome.messages);
    let body = render::published_list(&outcome.messages);
    if pending {
        let resp = crate::coalesce::mark(render::json_bytes(
            if outcome.replayed {
                StatusCode::OK
            } else {
                StatusCode::ACCEPTED
            },
            body,
        ));
        return Ok(if outcome.replayed { replayed(resp) } else { resp });
    }
    let dups: Vec<String> = (outcome.deduplicated.iter().enumerate())
        .filter(|(_, d)| **d)
        .map(|(i, _)| i.to_string())
        .collect();
    if outcome.replayed {
        Ok(replayed(render::json_bytes(StatusCode::OK, body)))
    } else if dups.len() == outcome.messages.len() {
        // Every message was a duplicate: nothing was stored.
        Ok(deduplicated(render::json_bytes(StatusCode::OK, body)))
    } else {
        let mut resp = render::json_bytes(StatusCode::CREATED, body);
        // The positions answered with a stored original instead.
        if !dups.is_empty()
            && let Ok(v) = HeaderValue::from_str(&dups.join(","))
        {
            resp.headers_mut().insert("deduplicated-messages", v);
        }
        Ok(resp)
    }
}

/// Fetch a message.
#[utoipa::path(
    get,
    path = "/v1/messages/{id}",
    tag = "messages",
    operation_id = "get_message",
    params(("id" = String, Path, description = "A message id (`msg_…`).")),
    responses(
        (status = 200, description = "The message.", body = schemas::Message),
        Common, KeyAuth, NotFound,
    ),
    security(("api_key" = []), ("bearer" = []), ("apikey_header" = [])),
)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Response> {
    let not_found = || ApiError::NotFound("No such message.".into());
    let Path(id) = path.map_err(|_| not_found())?;
    if marquee_core::webhook::ops::is_test_message_id(&id) {
        return Err(ApiError::NotFound(
            "This is a test ping's id (POST /v1/endpoints/{id}/test): test pings are sent, and their \
             attempts logged, but they are not messages in the log."
                .into(),
        ));
    }
    let id: MessageId = id.parse().map_err(|_| not_found())?;
    let m = state
        .store
        .get_message(&caller.org_id, &id)
        .await?
        .ok_or_else(not_found)?;
    Ok(render::json_bytes(StatusCode::OK, render::message(&m)))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// A cursor: messages after it (ascending).
    after: Option<String>,
    /// A cursor: messages before it (with `order=desc`, newest first).
    before: Option<String>,
    /// `asc` (default) or `desc`.
    #[param(value_type = Option<ListOrder>, inline)]
    order: Option<String>,
    /// RFC 3339: messages received at or after it.
    since: Option<String>,
    /// Only this event type.
    #[serde(rename = "type")]
    #[param(pattern = "^[a-z0-9][a-z0-9_.-]{0,63}$")]
    event_type: Option<String>,
    /// Only this channel (`kind:id`).
    channel: Option<String>,
    /// 1 to 100 (default 25).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    limit: Option<String>,
}

/// The order of a message page.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum ListOrder {
    Asc,
    Desc,
}

pub const DEFAULT_LIMIT: usize = 25;
pub const MAX_LIMIT: usize = 100;

pub fn parse_limit(limit: Option<&str>) -> ApiResult<usize> {
    match limit {
        None => Ok(DEFAULT_LIMIT),
        Some(s) => match s.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            _ => Err(ApiError::invalid_param(
                "limit",
                format!("limit must be a whole number from 1 to {MAX_LIMIT}"),
            )),
        },
    }
}

/// List messages by cursor.
///
/// `{object: "list", data, has_more, next_cursor}`: continue with
/// `after=next_cursor` (or `before=` when newest first). A filtered page may
/// stop early on a bounded scan and still answer a `next_cursor`.
#[utoipa::path(
    get,
    path = "/v1/messages",
    tag = "messages",
    operation_id = "list_messages",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of messages.", body = schemas::MessageList),
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
    let after: Option<Cursor> =
        match &q.after {
            Some(c) => Some(c.parse().map_err(|_| {
                ApiError::invalid_param("after", "after must be a cursor returned by this API")
            })?),
            None => None,
        };
    let before: Option<Cursor> = match &q.before {
        Some(c) => Some(c.parse().map_err(|_| {
            ApiError::invalid_param("before", "before must be a cursor returned by this API")
        })?),
        None => None,
    };
    let descending = match q.order.as_deref() {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(_) => return Err(ApiError::invalid_param("order", "order must be asc or desc")),
    };
    let since = match &q.since {
        Some(s) => {
            Some(Timestamp::parse_rfc3339(s).map_err(|e| ApiError::invalid_param("since", e.to_string()))?)
        }
        None => None,
    };
    if let Some(t) = &q.event_type
        && !marquee_core::names::valid_type(t)
    {
        return Err(ApiError::invalid_param(
            "type",
            "type must match [a-z0-9][a-z0-9_.-]{0,63}",
        ));
    }
    if let Some(c) = &q.channel {
        c.parse::<marquee_core::Channel>()
            .map_err(|e| ApiError::invalid_param("channel", e.to_string()))?;
    }
    let query = MessageQuery {
        after_seq: after.map(Cursor::seq),
        before_seq: before.map(Cursor::seq),
        descending,
        since,
        event_type: q.event_type,
        channel: q.channel,
        limit,
    };
    let page = state.store.list_messages(&caller.org_id, &query).await?;
    // A bounded scan that stopped early continues past what it examined.
    // Ascending pages continue with `after=next_cursor`, descending ones
    // (newest first) with `before=next_cursor`.
    let next = page
        .scanned_to
        .map(Cursor::from_seq)
        .or_else(|| page.messages.last().map(|m| m.cursor()))
        .or(if descending { before } else { after });
    Ok(render::json_bytes(
        StatusCode::OK,
        render::message_list(&page.messages, page.has_more, next),
    ))
}
