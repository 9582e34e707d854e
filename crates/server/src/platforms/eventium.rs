//! Eventium's `GET /v1/events`: the organizer's events, in the document's
//! object and list shape, from the projection that the Eventium catalog's
//! `event.created` / `event.updated` / `event.deleted` maintain (`project`
//! with `sort: /created_at`). Every response, errors included, carries
//! `Cache-Control: private, no-store`, as the document promises.
//!
//! Order and cursor: newest `created_at` first; events created at the same
//! instant are ordered by the commit that first created them, newest first.
//! `next_cursor` is the last event's `created_at` as an ISO 8601 / RFC 3339
//! timestamp whose fractional seconds carry six digits of microseconds and
//! then thirteen more digits naming that tie-breaker
//! (`2026-01-12T14:02:31.0000000000000000042Z`), so a page boundary between
//! two events sharing a timestamp neither skips nor repeats one. Any other
//! ISO timestamp is accepted too and means "created strictly before it".
//! An update never moves an event (`created_at` does not change), so
//! walking the pages while events are edited is stable.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use marquee_core::timestamp::Timestamp;
use marquee_store::rules::{Entity, EntityOrder, EntityQuery};
use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::endpoints::{json_response, list_json};
use crate::api::messages::parse_limit;
use crate::api::openapi::{BadRequest, Common, KeyAuth};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::QueryParams;
use crate::state::AppState;

/// The projected entity kind of Eventium's catalog.
const KIND: &str = "events";
/// The document's event object, in its field order.
const FIELDS: &[&str] = &[
    "id",
    "name",
    "slug",
    "date",
    "location",
    "status",
    "capacity",
    "organizer_id",
    "created_at",
    "updated_at",
];
const STATUSES: &[&str] = &["draft", "published", "archived"];
/// Digits after the microseconds that carry the tie-breaker.
const TIE_DIGITS: usize = 13;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .layer(axum::middleware::map_response(no_store))
}

async fn no_store(mut r: Response) -> Response {
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    r
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// An ISO 8601 timestamp (a `next_cursor`, or any): the events created
    /// before it.
    cursor: Option<String>,
    /// 1 to 100 (default 25).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    limit: Option<String>,
    /// Only events with this status.
    #[param(value_type = Option<EventStatus>, inline)]
    status: Option<String>,
}

#[derive(serde::Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
enum EventStatus {
    Draft,
    Published,
    Archived,
}

/// Eventium's event object (the document's). Every field is that of the
/// latest `event.created` / `event.updated`; null when it lacks the field
/// (or carries another type, which the built-in catalog refuses).
#[derive(serde::Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = eventium::Event)]
#[allow(dead_code)]
struct Event {
    #[schema(required = true)]
    id: Option<String>,
    #[schema(required = true)]
    name: Option<String>,
    #[schema(required = true)]
    slug: Option<String>,
    #[schema(required = true)]
    date: Option<String>,
    #[schema(required = true)]
    location: Option<String>,
    #[schema(required = true, inline)]
    status: Option<EventStatus>,
    #[schema(required = true)]
    capacity: Option<i64>,
    #[schema(required = true)]
    organizer_id: Option<String>,
    #[schema(required = true)]
    created_at: Option<String>,
    #[schema(required = true)]
    updated_at: Option<String>,
}

/// A page of events, newest `created_at` first.
#[derive(serde::Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = eventium::EventList)]
#[allow(dead_code)]
struct EventList {
    #[schema(example = "list")]
    object: String,
    data: Vec<Event>,
    has_more: bool,
    /// Continue with `cursor=`.
    #[schema(required = true)]
    next_cursor: Option<String>,
}

/// `created_at` (µs) and tie-breaker of the last event → `next_cursor`.
pub fn encode_cursor(at: i64, tie: u64) -> String {
    let secs = at.div_euclid(1_000_000);
    let micros = at.rem_euclid(1_000_000);
    let whole = Timestamp::from_micros(secs * 1_000_000).to_rfc3339();
    let base = whole.strip_suffix('Z').unwrap_or(&whole);
    format!("{base}.{micros:06}{tie:0width$}Z", width = TIE_DIGITS)
}

/// A cursor back into (µs, tie-breaker if it is one of ours).
pub fn decode_cursor(s: &str) -> Option<(i64, Option<u64>)> {
    if let Some(body) = s.strip_suffix('Z')
        && let Some((base, frac)) = body.rsplit_once('.')
        && frac.len() == 6 + TIE_DIGITS
        && frac.bytes().all(|b| b.is_ascii_digit())
    {
        let secs = Timestamp::parse_rfc3339(&format!("{base}Z")).ok()?.as_micros();
        let micros: i64 = frac[..6].parse().ok()?;
        let tie: u64 = frac[6..].parse().ok()?;
        return Some((secs + micros, Some(tie)));
    }
    Timestamp::parse_rfc3339(s).ok().map(|t| (t.as_micros(), None))
}

/// Whether `v` has the type the document gives field `f`.
fn typed(f: &str, v: &Value) -> bool {
    match f {
        "capacity" => v.is_i64() || v.is_u64(),
        "status" => v.as_str().is_some_and(|s| STATUSES.contains(&s)),
        _ => v.is_string(),
    }
}

fn event_json(e: &Entity) -> Value {
    let data: Value = serde_json::from_str(&e.data).unwrap_or(Value::Null);
    let mut out = Map::new();
    for f in FIELDS {
        let v = data.get(*f).filter(|v| typed(f, v)).cloned();
        out.insert((*f).to_owned(), v.unwrap_or(Value::Null));
    }
    Value::Object(out)
}

/// List the organizer's events (Eventium's `GET /v1/events`).
///
/// Newest `created_at` first; `next_cursor` is an ISO timestamp that also
/// orders events created at the same instant.
#[utoipa::path(
    get,
    path = "/v1/events",
    tag = "eventium",
    operation_id = "eventium_list_events",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of events.", body = EventList),
        Common, KeyAuth, BadRequest,
    ),
    security(("api_key" = []), ("bearer" = []), ("apikey_header" = [])),
)]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(q): QueryParams<ListQuery>,
) -> ApiResult<Response> {
    let limit = parse_limit(q.limit.as_deref())?;
    let before = match &q.cursor {
        None => None,
        Some(c) => Some(decode_cursor(c).ok_or_else(|| {
            ApiError::invalid_param(
                "cursor",
                "cursor must be an ISO 8601 timestamp, such as a next_cursor returned by this endpoint",
            )
        })?),
    };
    let field = match q.status {
        None => None,
        Some(s) if STATUSES.contains(&s.as_str()) => Some(("status".to_owned(), s)),
        Some(_) => {
            return Err(ApiError::invalid_param(
                "status",
                "status must be one of draft, published, archived",
            ));
        }
    };
    let page = state
        .store
        .list_entities(
            &caller.org_id,
            &EntityQuery {
                kind: KIND.into(),
                order: EntityOrder::BySortDesc { before },
                field,
                limit,
            },
        )
        .await?;
    let next = match page.entities.last() {
        Some(e) if page.has_more => e.sort_at.map(|at| encode_cursor(at, e.created_seq)),
        _ => None,
    };
    let data = page.entities.iter().map(event_json).collect();
    Ok(json_response(
        StatusCode::OK,
        &list_json(data, page.has_more, next),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_stay_timestamps() {
        let at = Timestamp::parse_rfc3339("2026-01-12T14:02:31.25Z")
            .unwrap()
            .as_micros();
        let c = encode_cursor(at, 42);
        assert_eq!(c, "2026-01-12T14:02:31.2500000000000000042Z");
        assert_eq!(decode_cursor(&c), Some((at, Some(42))));
        assert_eq!(decode_cursor("2026-01-12T14:02:31Z"), Some((at - 250_000, None)));
        assert_eq!(decode_cursor("yesterday"), None);
        assert_eq!(decode_cursor("2026-13-12T14:02:31.0000000000000000042Z"), None);
    }
}
