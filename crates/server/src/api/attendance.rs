//! The attendance engine's native API: `GET /v1/attendance` (the
//! organization's events with attendance, by event id), `GET
//! /v1/attendance/{event_id}`, and `GET`/`PUT /v1/attendance/settings` (the
//! organization's milestone thresholds). The counts are kept by the publish
//! commit (`marquee_store::attendance`); this only reads and renders them.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use marquee_core::attendance::Thresholds;
use marquee_store::attendance::{AttendanceRecord, AttendanceSettings};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::api::endpoints::{json_response, list_json};
use crate::api::openapi::{BadRequest, Body, Common, KeyAuth, NotFound};
use crate::api::schemas;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, QueryParams};
use crate::state::AppState;

/// The `attendance` object.
pub fn attendance_json(r: &AttendanceRecord) -> Value {
    let gates: Map<String, Value> = r.gates.iter().map(|(g, n)| (g.clone(), json!(n))).collect();
    json!({
        "object": "attendance",
        "event_id": r.event_id,
        "count": r.count,
        "capacity": r.capacity,
        "gates": gates,
        "milestones": r.milestones.iter().map(|m| json!({
            "threshold": m.threshold,
            "count": m.count,
            "ts": m.at.to_rfc3339(),
        })).collect::<Vec<_>>(),
        "opened_at": r.opened_at.map(|t| t.to_rfc3339()),
        "last_checkin_at": r.last_checkin_at.map(|t| t.to_rfc3339()),
    })
}

fn settings_json(s: &AttendanceSettings) -> Value {
    json!({
        "object": "attendance_settings",
        "thresholds": s.thresholds.counts,
        "capacity_percents": s.thresholds.capacity_percents,
        "updated_at": s.updated_at.map(|t| t.to_rfc3339()),
    })
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// 1 to 100 (default 25).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    limit: Option<String>,
    /// A `next_cursor` (an event id): the events after it.
    cursor: Option<String>,
}

/// `?limit=` 1–100, default 25 (the native API's list convention).
pub fn parse_limit(limit: Option<&str>) -> ApiResult<usize> {
    match limit {
        None => Ok(25),
        Some(s) => match s.parse::<usize>() {
            Ok(n) if (1..=100).contains(&n) => Ok(n),
            _ => Err(ApiError::invalid_param(
                "limit",
                "limit must be an integer from 1 to 100",
            )),
        },
    }
}

/// List the organization's events with attendance, by event id.
#[utoipa::path(
    get,
    path = "/v1/attendance",
    tag = "attendance",
    operation_id = "list_attendance",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of attendance, by event id.", body = schemas::AttendanceList),
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
    if q.cursor.as_deref().is_some_and(|c| c.contains('\0')) {
        return Err(ApiError::invalid_param(
            "cursor",
            "cursor must be a next_cursor returned by this API",
        ));
    }
    let (rows, more) = state
        .store
        .list_attendance(&caller.org_id, q.cursor.as_deref(), limit)
        .await?;
    let next = if more {
        rows.last().map(|r| r.event_id.clone())
    } else {
        None
    };
    let data = rows.iter().map(attendance_json).collect();
    Ok(json_response(StatusCode::OK, &list_json(data, more, next)))
}

/// Fetch an event's attendance.
///
/// (`settings` is not an event id here: `/v1/attendance/settings` is the
/// settings.)
#[utoipa::path(
    get,
    path = "/v1/attendance/{event_id}",
    tag = "attendance",
    operation_id = "get_attendance",
    params(("event_id" = String, Path, description = "The event id the scans named.")),
    responses(
        (status = 200, description = "The event's attendance.", body = schemas::Attendance),
        Common, KeyAuth, NotFound,
    ),
    security(("api_key" = []), ("bearer" = []), ("apikey_header" = [])),
)]
pub async fn get_one(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Response> {
    let not_found = || ApiError::NotFound("No attendance for such an event.".into());
    let Path(event_id) = path.map_err(|_| not_found())?;
    // No event id holds a NUL (nor can PostgreSQL be asked for one).
    if event_id.contains('\0') {
        return Err(not_found());
    }
    let rec = state
        .store
        .get_attendance(&caller.org_id, &event_id)
        .await?
        .ok_or_else(not_found)?;
    Ok(json_response(StatusCode::OK, &attendance_json(&rec)))
}

/// The organization's milestone thresholds.
#[utoipa::path(
    get,
    path = "/v1/attendance/settings",
    tag = "attendance",
    operation_id = "get_attendance_settings",
    responses(
        (status = 200, description = "The thresholds in force (the defaults until set).", body = schemas::AttendanceSettings),
        Common, KeyAuth,
    ),
    security(("api_key" = []), ("bearer" = []), ("apikey_header" = [])),
)]
pub async fn get_settings(State(state): State<AppState>, caller: Caller) -> ApiResult<Response> {
    let s = state.store.attendance_settings(&caller.org_id).await?;
    Ok(json_response(StatusCode::OK, &settings_json(&s)))
}

/// The milestone thresholds to keep (both lists replace the current ones).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = AttendanceSettingsBody)]
pub struct SettingsBody {
    /// Head counts, 1 to 10000000, at most 50.
    #[schema(max_items = 50)]
    thresholds: Vec<u64>,
    /// Percentages of capacity, 1 to 100, at most 50.
    #[schema(max_items = 50)]
    capacity_percents: Vec<u32>,
}

/// Replace the organization's milestone thresholds.
#[utoipa::path(
    put,
    path = "/v1/attendance/settings",
    tag = "attendance",
    operation_id = "put_attendance_settings",
    request_body = SettingsBody,
    responses(
        (status = 200, description = "The thresholds as stored (sorted, without repeats).", body = schemas::AttendanceSettings),
        Common, KeyAuth, Body,
    ),
    security(("api_key" = []), ("bearer" = []), ("apikey_header" = [])),
)]
pub async fn put_settings(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(b): JsonBody<SettingsBody>,
) -> ApiResult<Response> {
    let th = Thresholds {
        counts: b.thresholds,
        capacity_percents: b.capacity_percents,
    };
    th.check()
        .map_err(|(param, msg)| ApiError::invalid_param(param, msg))?;
    let s = state.store.put_attendance_settings(&caller.org_id, &th).await?;
    Ok(json_response(StatusCode::OK, &settings_json(&s)))
}
