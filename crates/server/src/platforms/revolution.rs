//! Revolution's webhook registration (`rev.developers.createWebhook`):
//! `POST /api/v1/developers/webhooks {url, events, venueId?, secret?}` → 201
//! `{id, url, events, venueId, createdAt}`, plus `GET` (list) and `DELETE
//! /api/v1/developers/webhooks/{id}`.
//!
//! A registration is an ordinary endpoint in `revolution` format: `events`
//! become its types (omitted or empty = every Revolution type), `venueId` its
//! channel `venue:<id>` (omitted = all venues). The integrator's `secret` is
//! used as given (the document's flow); without one marquee generates a
//! `whsec_…` and answers it once as `secret`. The endpoint is visible and
//! manageable in the native `/v1/endpoints` API too (attempts, replay, …).
//!
//! REST polling under `/api/v1/signal/` (any key tier; the key as a header
//! or, like the stream, as `?apiKey=`): `events/{event_id}/checkins`,
//! `artists/{artist_id}/drops`, `venues/{venue_id}/live`. They read the
//! read models the publish commit keeps (`marquee_store::attendance`); the
//! shapes the document leaves open are documented in the README
//! ("Revolution REST polling"). Times are milliseconds since the epoch, the
//! document's `ts` unit.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::response::Response;
use marquee_core::ids::EndpointId;
use marquee_core::profile::revolution::EVENT_TYPES;
use marquee_core::timestamp::Timestamp;
use marquee_store::attendance::{CheckinQuery, DropStatus};
use marquee_store::webhooks::EndpointRecord;
use serde::Deserialize;
use serde_json::{Value, json};

use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::endpoints::{CreateBody, create_endpoint, expose, json_response, list_json};
use crate::api::openapi::{BadRequest, Body, Common, Conflict, KeyAuth, NotFound};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, QueryParams};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(remove, get))
        .routes(routes!(checkins))
        .routes(routes!(drops))
        .routes(routes!(venue_live))
}

/// `rev.developers.createWebhook`'s body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schema(as = revolution::RegisterBody)]
pub struct RegisterBody {
    #[schema(example = "https://example.com/revolution")]
    url: String,
    /// Revolution event types (`fan_checkin`, …); omitted or empty = all.
    #[serde(default)]
    events: Vec<String>,
    /// Only this venue (omitted = all venues).
    venue_id: Option<String>,
    /// The integrator's secret, used as given (omitted: generated and answered once).
    secret: Option<String>,
}

/// A Revolution webhook registration.
#[derive(serde::Serialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schema(as = revolution::Webhook)]
#[allow(dead_code)]
struct Webhook {
    id: String,
    url: String,
    events: Vec<String>,
    #[schema(required = true)]
    venue_id: Option<String>,
    created_at: String,
    /// The generated secret: only in the create answer, when none was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
}

#[derive(serde::Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = revolution::WebhookList)]
#[allow(dead_code)]
struct WebhookList {
    #[schema(example = "list")]
    object: String,
    data: Vec<Webhook>,
    has_more: bool,
    #[schema(required = true)]
    next_cursor: Option<String>,
}

#[derive(serde::Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = revolution::WebhookDeleted)]
#[allow(dead_code)]
struct WebhookDeleted {
    id: String,
    deleted: bool,
}

/// A door scan, deduplicated.
#[derive(serde::Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = revolution::Checkin)]
#[allow(dead_code)]
struct Checkin {
    /// The message id of the scan.
    id: String,
    fan_id: String,
    event_id: String,
    #[schema(required = true)]
    gate: Option<String>,
    #[schema(example = "in")]
    direction: String,
    /// The scan's time, ms since the epoch.
    ts: i64,
    /// When marquee received it, ms since the epoch.
    created: i64,
}

#[derive(serde::Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = revolution::CheckinList)]
#[allow(dead_code)]
struct CheckinList {
    #[schema(example = "list")]
    object: String,
    data: Vec<Checkin>,
    has_more: bool,
    /// Continue with `cursor=`.
    #[schema(required = true)]
    next_cursor: Option<String>,
}

#[derive(serde::Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
enum DropState {
    Active,
    SoldOut,
}

/// An artist's drop and what is left of it.
#[derive(serde::Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = revolution::Drop)]
#[allow(dead_code)]
struct Drop {
    drop_id: String,
    artist_id: String,
    #[schema(required = true)]
    title: Option<String>,
    #[schema(required = true)]
    price_usd: Option<f64>,
    quantity: i64,
    /// The quantity left after distinct claims.
    remaining: i64,
    #[schema(inline)]
    status: DropState,
    /// ms since the epoch.
    published_at: i64,
}

#[derive(serde::Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = revolution::DropList)]
#[allow(dead_code)]
struct DropList {
    #[schema(example = "list")]
    object: String,
    data: Vec<Drop>,
    has_more: bool,
    /// Continue with `cursor=`.
    #[schema(required = true)]
    next_cursor: Option<String>,
}

#[derive(serde::Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
enum VenueStatus {
    Open,
    Closed,
}

/// A venue's latest door opening and its event's attendance.
#[derive(serde::Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = revolution::VenueLive)]
#[allow(dead_code)]
struct VenueLive {
    venue_id: String,
    #[schema(inline)]
    status: VenueStatus,
    /// The event the doors opened for (null: never opened).
    #[schema(required = true)]
    event_id: Option<String>,
    #[schema(required = true)]
    capacity: Option<i64>,
    /// People inside now.
    count: i64,
    /// `count` as a percentage of `capacity`, one decimal (null without a capacity).
    #[schema(required = true)]
    percent: Option<f64>,
    /// Scans in by gate.
    gates: std::collections::BTreeMap<String, i64>,
    /// ms since the epoch.
    #[schema(required = true)]
    opened_at: Option<i64>,
    /// ms since the epoch.
    #[schema(required = true)]
    last_checkin_at: Option<i64>,
}

fn hook_json(e: &EndpointRecord) -> Value {
    json!({
        "id": e.id.as_str(),
        "url": e.url,
        "events": e.filter.types.iter().map(|t| t.to_string()).collect::<Vec<_>>(),
        "venueId": e.filter.channels.iter().find(|c| c.kind() == "venue").map(|c| c.id()),
        "createdAt": e.created_at.to_rfc3339(),
    })
}

fn not_found() -> ApiError {
    ApiError::NotFound("No such webhook.".into())
}

/// Register a Revolution webhook (`rev.developers.createWebhook`).
#[utoipa::path(
    post,
    path = "/api/v1/developers/webhooks",
    tag = "revolution",
    operation_id = "revolution_create_webhook",
    request_body = RegisterBody,
    responses(
        (status = 201, description = "Registered.", body = Webhook),
        Common, KeyAuth, Body, Conflict,
    ),
    security(("api_key" = []), ("bearer" = []), ("apikey_header" = [])),
)]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(b): JsonBody<RegisterBody>,
) -> ApiResult<Response> {
    for (i, e) in b.events.iter().enumerate() {
        if !EVENT_TYPES.contains(&e.as_str()) {
            return Err(ApiError::invalid_param(
                format!("events[{i}]"),
                format!(
                    "{e:?} is not a Revolution event type; one of: {}",
                    EVENT_TYPES.join(", ")
                ),
            ));
        }
    }
    let types = if b.events.is_empty() {
        EVENT_TYPES.iter().map(|t| t.to_string()).collect()
    } else {
        b.events
    };
    let channels = match &b.venue_id {
        Some(v) => {
            let c = marquee_core::Channel::from_parts("venue", v).map_err(|_| {
                ApiError::invalid_param(
                    "venueId",
                    "venueId must be 1 to 128 letters, digits, '-', '_' or '.'",
                )
            })?;
            vec![c.as_str().to_owned()]
        }
        None => Vec::new(),
    };
    let supplied = b.secret.is_some();
    let (rec, secret) = create_endpoint(
        &state,
        &caller,
        CreateBody {
            url: b.url,
            types,
            channels,
            format: Some("revolution".into()),
            secret: b.secret,
            ..CreateBody::default()
        },
    )
    .await?;
    let mut v = hook_json(&rec);
    if !supplied {
        v["secret"] = json!(expose(rec.format, &secret).secret);
    }
    Ok(json_response(StatusCode::CREATED, &v))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// A webhook id: the registrations after it.
    after: Option<String>,
}

/// The organization's Revolution webhooks, 100 a page.
#[utoipa::path(
    get,
    path = "/api/v1/developers/webhooks",
    tag = "revolution",
    operation_id = "revolution_list_webhooks",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of registrations.", body = WebhookList),
        Common, KeyAuth, BadRequest,
    ),
    security(("api_key" = []), ("bearer" = []), ("apikey_header" = [])),
)]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(q): QueryParams<ListQuery>,
) -> ApiResult<Response> {
    let mut after: Option<EndpointId> = match &q.after {
        Some(a) => Some(
            a.parse()
                .map_err(|_| ApiError::invalid_param("after", "after must be a webhook id"))?,
        ),
        None => None,
    };
    let mut data = Vec::new();
    let mut has_more = true;
    // Pages of all endpoints, keeping Revolution ones, until 100 are found.
    while has_more && data.len() < 100 {
        let page = state
            .store
            .list_endpoints(&caller.org_id, after.as_ref(), 100)
            .await?;
        has_more = page.has_more;
        for e in &page.endpoints {
            after = Some(e.id.clone());
            if e.format.as_str() == "revolution" && data.len() < 100 {
                data.push(hook_json(e));
            }
        }
        if page.endpoints.is_empty() {
            break;
        }
    }
    let next = if has_more {
        after.map(|a| a.to_string())
    } else {
        None
    };
    Ok(json_response(StatusCode::OK, &list_json(data, has_more, next)))
}

async fn load(
    state: &AppState,
    caller: &Caller,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<EndpointRecord> {
    let Path(id) = path.map_err(|_| not_found())?;
    let id: EndpointId = id.parse().map_err(|_| not_found())?;
    match state.store.get_endpoint(&caller.org_id, &id).await? {
        Some(e) if e.format.as_str() == "revolution" => Ok(e),
        _ => Err(not_found()),
    }
}

/// Fetch a Revolution webhook.
#[utoipa::path(
    get,
    path = "/api/v1/developers/webhooks/{id}",
    tag = "revolution",
    operation_id = "revolution_get_webhook",
    params(("id" = String, Path, description = "A webhook id (the endpoint's `ep_…`).")),
    responses(
        (status = 200, description = "The registration.", body = Webhook),
        Common, KeyAuth, NotFound,
    ),
    security(("api_key" = []), ("bearer" = []), ("apikey_header" = [])),
)]
async fn get(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Response> {
    let e = load(&state, &caller, path).await?;
    Ok(json_response(StatusCode::OK, &hook_json(&e)))
}

/// Delete a Revolution webhook.
#[utoipa::path(
    delete,
    path = "/api/v1/developers/webhooks/{id}",
    tag = "revolution",
    operation_id = "revolution_delete_webhook",
    params(("id" = String, Path, description = "A webhook id (the endpoint's `ep_…`).")),
    responses(
        (status = 200, description = "Deleted.", body = WebhookDeleted),
        Common, KeyAuth, NotFound,
    ),
    security(("api_key" = []), ("bearer" = []), ("apikey_header" = [])),
)]
async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Response> {
    let e = load(&state, &caller, path).await?;
    if !state.store.delete_endpoint(&caller.org_id, &e.id).await? {
        return Err(not_found());
    }
    state.webhooks.endpoint_changed(&caller.org_id, &e.id).await;
    Ok(json_response(
        StatusCode::OK,
        &json!({"id": e.id.as_str(), "deleted": true}),
    ))
}

// ------------------------------------------------------------------------------------------------
// REST polling

/// A venue counts as open this long after its latest `venue_opened` (the
/// document has no closing event; a show's doors do not stay open longer).
pub const VENUE_OPEN_MICROS: i64 = 12 * 3600 * 1_000_000;

/// The caller, from a key header or the stream's `?apiKey=` query.
async fn signal_caller(state: &AppState, headers: &HeaderMap, query_key: Option<&str>) -> ApiResult<Caller> {
    crate::auth::authenticate(state, crate::auth::presented_key(headers).or(query_key)).await
}

fn path_id(path: Result<Path<String>, PathRejection>) -> ApiResult<String> {
    let Path(id) = path.map_err(|_| ApiError::invalid("the path's id is not valid"))?;
    if id.is_empty() || id.len() > 256 || id.contains('\0') {
        return Err(ApiError::invalid("ids are 1 to 256 bytes without NUL (U+0000)"));
    }
    Ok(id)
}

/// The polling routes' query. `apiKey` is the `api_key_query` security
/// scheme (the key as a header is read first).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CheckinsQuery {
    /// RFC 3339: the scans at or after it.
    since: Option<String>,
    /// 1 to 100 (default 25).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    limit: Option<String>,
    /// A `next_cursor` this route answered.
    cursor: Option<String>,
    #[serde(rename = "apiKey")]
    #[param(ignore)]
    api_key: Option<String>,
}

/// An event's door scans (Revolution REST polling).
///
/// `GET /api/v1/signal/events/{event_id}/checkins?since=RFC3339`: the
/// event's (deduplicated) scans at or after `since`, oldest scan time first.
#[utoipa::path(
    get,
    path = "/api/v1/signal/events/{event_id}/checkins",
    tag = "revolution",
    operation_id = "revolution_list_checkins",
    params(
        ("event_id" = String, Path, description = "The event id the scans named (1 to 256 bytes)."),
        CheckinsQuery,
    ),
    responses(
        (status = 200, description = "A page of check-ins, oldest scan first.", body = CheckinList),
        Common, KeyAuth, BadRequest, NotFound,
    ),
    security(("api_key" = []), ("bearer" = []), ("apikey_header" = []), ("api_key_query" = [])),
)]
async fn checkins(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
    QueryParams(q): QueryParams<CheckinsQuery>,
) -> ApiResult<Response> {
    let caller = signal_caller(&state, &headers, q.api_key.as_deref()).await?;
    let event_id = path_id(path)?;
    let since = match &q.since {
        Some(s) => {
            Some(Timestamp::parse_rfc3339(s).map_err(|e| ApiError::invalid_param("since", e.to_string()))?)
        }
        None => None,
    };
    let limit = crate::api::attendance::parse_limit(q.limit.as_deref())?;
    let after = match &q.cursor {
        Some(c) => Some(parse_checkin_cursor(c).ok_or_else(|| {
            ApiError::invalid_param("cursor", "cursor must be a next_cursor this endpoint answered")
        })?),
        None => None,
    };
    let (rows, more) = state
        .store
        .list_checkins(&caller.org_id, &event_id, &CheckinQuery { since, after, limit })
        .await?;
    let next = if more {
        rows.last().map(|r| format!("{}_{}", r.at.as_micros(), r.seq))
    } else {
        None
    };
    let data = rows
        .iter()
        .map(|r| {
            json!({
                "id": r.message_id,
                "fan_id": r.person,
                "event_id": r.event_id,
                "gate": r.gate,
                "direction": r.direction,
                "ts": r.at.as_millis(),
                "created": r.received_at.as_millis(),
            })
        })
        .collect();
    Ok(json_response(StatusCode::OK, &list_json(data, more, next)))
}

fn parse_checkin_cursor(c: &str) -> Option<(i64, u64)> {
    let (at, seq) = c.split_once('_')?;
    Some((at.parse().ok()?, seq.parse().ok()?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DropsQuery {
    /// `active` (default: some left), `sold_out` or `all`.
    #[param(value_type = Option<DropsFilter>, inline)]
    status: Option<String>,
    /// 1 to 100 (default 25).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    limit: Option<String>,
    /// A `next_cursor` this route answered.
    cursor: Option<String>,
    #[serde(rename = "apiKey")]
    #[param(ignore)]
    api_key: Option<String>,
}

#[derive(serde::Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
enum DropsFilter {
    Active,
    SoldOut,
    All,
}

/// An artist's drops (Revolution REST polling).
///
/// `GET /api/v1/signal/artists/{artist_id}/drops?status=active|sold_out|all`
/// (default `active`): the artist's drops in publish order, with the
/// quantity left after distinct claims.
#[utoipa::path(
    get,
    path = "/api/v1/signal/artists/{artist_id}/drops",
    tag = "revolution",
    operation_id = "revolution_list_drops",
    params(
        ("artist_id" = String, Path, description = "The artist id (1 to 256 bytes)."),
        DropsQuery,
    ),
    responses(
        (status = 200, description = "A page of drops, in publish order.", body = DropList),
        Common, KeyAuth, BadRequest, NotFound,
    ),
    security(("api_key" = []), ("bearer" = []), ("apikey_header" = []), ("api_key_query" = [])),
)]
async fn drops(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
    QueryParams(q): QueryParams<DropsQuery>,
) -> ApiResult<Response> {
    let caller = signal_caller(&state, &headers, q.api_key.as_deref()).await?;
    let artist_id = path_id(path)?;
    let status = match q.status.as_deref() {
        None | Some("active") => DropStatus::Active,
        Some("sold_out") => DropStatus::SoldOut,
        Some("all") => DropStatus::All,
        Some(_) => {
            return Err(ApiError::invalid_param(
                "status",
                "status must be active, sold_out or all",
            ));
        }
    };
    let limit = crate::api::attendance::parse_limit(q.limit.as_deref())?;
    let after = match &q.cursor {
        Some(c) => Some(c.parse::<u64>().map_err(|_| {
            ApiError::invalid_param("cursor", "cursor must be a next_cursor this endpoint answered")
        })?),
        None => None,
    };
    let (rows, more) = state
        .store
        .list_drops(&caller.org_id, &artist_id, status, after, limit)
        .await?;
    let next = if more {
        rows.last().map(|r| r.seq.to_string())
    } else {
        None
    };
    let data = rows
        .iter()
        .map(|r| {
            let d: Value = serde_json::from_str(&r.data).unwrap_or(Value::Null);
            json!({
                "drop_id": r.drop_id,
                "artist_id": r.artist_id,
                "title": d.get("title").filter(|v| v.is_string()),
                "price_usd": d.get("price_usd").filter(|v| v.is_number()),
                "quantity": r.quantity,
                "remaining": r.remaining,
                "status": if r.remaining > 0 { "active" } else { "sold_out" },
                "published_at": r.published_at.as_millis(),
            })
        })
        .collect();
    Ok(json_response(StatusCode::OK, &list_json(data, more, next)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyQuery {
    #[serde(rename = "apiKey")]
    api_key: Option<String>,
}

/// A venue's doors and attendance now (Revolution REST polling).
///
/// `GET /api/v1/signal/venues/{venue_id}/live`: the venue's latest door
/// opening and its event's attendance. A venue is `open` for
/// [`VENUE_OPEN_MICROS`] after its latest `venue_opened`; a venue that never
/// opened answers `closed` with nulls.
#[utoipa::path(
    get,
    path = "/api/v1/signal/venues/{venue_id}/live",
    tag = "revolution",
    operation_id = "revolution_venue_live",
    params(("venue_id" = String, Path, description = "The venue id (1 to 256 bytes).")),
    responses(
        (status = 200, description = "The venue now.", body = VenueLive),
        Common, KeyAuth, BadRequest, NotFound,
    ),
    security(("api_key" = []), ("bearer" = []), ("apikey_header" = []), ("api_key_query" = [])),
)]
async fn venue_live(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
    QueryParams(q): QueryParams<KeyQuery>,
) -> ApiResult<Response> {
    let caller = signal_caller(&state, &headers, q.api_key.as_deref()).await?;
    let venue_id = path_id(path)?;
    let venue = state.store.get_venue(&caller.org_id, &venue_id).await?;
    let att = match &venue {
        Some(v) => state.store.get_attendance(&caller.org_id, &v.event_id).await?,
        None => None,
    };
    let open = venue
        .as_ref()
        .is_some_and(|v| Timestamp::now().as_micros() - v.opened_at.as_micros() < VENUE_OPEN_MICROS);
    let count = att.as_ref().map_or(0, |a| a.count);
    let capacity = att.as_ref().and_then(|a| a.capacity);
    let percent = capacity
        .filter(|c| *c > 0)
        .map(|c| (count as f64 * 1000.0 / c as f64).round() / 10.0);
    let gates: serde_json::Map<String, Value> = att
        .as_ref()
        .map(|a| a.gates.iter().map(|(g, n)| (g.clone(), json!(n))).collect())
        .unwrap_or_default();
    let v = json!({
        "venue_id": venue_id,
        "status": if open { "open" } else { "closed" },
        "event_id": venue.as_ref().map(|v| v.event_id.clone()),
        "capacity": capacity,
        "count": count,
        "percent": percent,
        "gates": gates,
        "opened_at": venue.as_ref().map(|v| v.opened_at.as_millis()),
        "last_checkin_at": att.as_ref().and_then(|a| a.last_checkin_at).map(|t| t.as_millis()),
    });
    Ok(json_response(StatusCode::OK, &v))
}
