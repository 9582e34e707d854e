//! `GET /v1/messages/{id}/attempts/{attempt_id}/request`: the request an
//! attempt sent, rebuilt for the dashboard's attempt view.
//!
//! Attempts store only what the receiver answered. The request is the
//! dispatcher's own render, which is deterministic given the message, the
//! endpoint's format, the delivery id, the attempt number and the attempt's
//! time, so it is rendered again here rather than stored per attempt. The
//! exception is whatever the signing secret changes (signatures): that is
//! found by rendering with two throwaway secrets and answered as
//! `"[redacted]"`, so no format's header names are known here and no secret
//! material — not even a signature made with it — leaves the server.
//! It renders with the endpoint's format now: after a `format` change an older
//! attempt shows as the new format would send it (the response is as stored).

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use marquee_core::ids::{AttemptId, MessageId};
use marquee_core::wire::Render;
use marquee_store::webhooks::AttemptQuery;
use serde_json::{Map, Value, json};

use super::endpoints::json_response;
use super::openapi::{Common, KeyAuth, NotFound};
use super::schemas;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// What a secret-dependent header value is replaced with.
pub const REDACTED: &str = "[redacted]";

/// Attempts of one message are few (retries and resends); this bounds the
/// pages read to find one.
const MAX_PAGES: usize = 20;

/// The request an attempt sent, rebuilt (secrets redacted).
///
/// Rendered again with the endpoint's format now; values the signing secret
/// changes (signatures) answer `"[redacted]"`.
#[utoipa::path(
    get,
    path = "/v1/messages/{id}/attempts/{attempt_id}/request",
    tag = "endpoints",
    operation_id = "get_attempt_request",
    params(
        ("id" = String, Path, description = "A message id (`msg_…`)."),
        ("attempt_id" = String, Path, description = "One of its attempts (`atmpt_…`)."),
    ),
    responses(
        (status = 200, description = "The request as sent.", body = schemas::AttemptRequest),
        Common, KeyAuth, NotFound,
    ),
    security(("api_key" = []), ("bearer" = []), ("apikey_header" = [])),
)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<(String, String)>, PathRejection>,
) -> ApiResult<Response> {
    let nf = || ApiError::NotFound("No such message or attempt.".into());
    let Path((mid, aid)) = path.map_err(|_| nf())?;
    if marquee_core::webhook::ops::is_test_message_id(&mid) {
        return Err(ApiError::NotFound(
            "A test ping's request is not kept: it is not a message in the log.".into(),
        ));
    }
    let mid: MessageId = mid.parse().map_err(|_| nf())?;
    let aid: AttemptId = aid.parse().map_err(|_| nf())?;
    let message = state
        .store
        .get_message(&caller.org_id, &mid)
        .await?
        .ok_or_else(nf)?;
    let mut q = AttemptQuery {
        message_id: Some(mid),
        limit: 100,
        ..AttemptQuery::default()
    };
    let mut found = None;
    for _ in 0..MAX_PAGES {
        let page = state.store.list_attempts(&caller.org_id, &q).await?;
        if let Some(a) = page.attempts.iter().find(|a| a.id == aid) {
            found = Some(a.clone());
            break;
        }
        match page.attempts.last() {
            Some(last) if page.has_more => q.after = Some(last.id.clone()),
            _ => break,
        }
    }
    let attempt = found.ok_or_else(nf)?;
    let endpoint = state
        .store
        .get_endpoint(&caller.org_id, &attempt.endpoint_id)
        .await?
        .ok_or_else(|| ApiError::NotFound("The endpoint of this attempt was deleted.".into()))?;
    let wire = endpoint.format.wire();
    let (a, b) = (wire.secret_scheme().generate(), wire.secret_scheme().generate());
    let render = |s: &marquee_core::wire::SigningSecret| {
        wire.render(&Render {
            delivery_id: attempt.delivery_id.as_str(),
            attempt: attempt.attempt_no,
            at: attempt.started_at,
            secrets: &[s],
            message: &message,
        })
    };
    let (ra, rb) = (render(&a), render(&b));
    let mut headers = Map::new();
    let mut redacted = Vec::new();
    for (i, (name, value)) in ra.headers.iter().enumerate() {
        let same = rb.headers.get(i).is_some_and(|(n, v)| n == name && v == value);
        if same {
            headers.insert((*name).to_owned(), json!(value));
        } else {
            headers.insert((*name).to_owned(), json!(REDACTED));
            redacted.push(*name);
        }
    }
    let body = if ra.body == rb.body {
        Value::String(String::from_utf8_lossy(&ra.body).into_owned())
    } else {
        json!(REDACTED)
    };
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "object": "attempt_request",
            "attempt_id": attempt.id.as_str(),
            "endpoint_id": endpoint.id.as_str(),
            "format": endpoint.format.as_str(),
            "method": "POST",
            "url": endpoint.url,
            "headers": headers,
            "body": body,
            "redacted": redacted,
        }),
    ))
}
