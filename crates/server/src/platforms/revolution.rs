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

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use marquee_core::ids::EndpointId;
use marquee_core::profile::revolution::EVENT_TYPES;
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
    security(("api_key" = []), ("bearer" = [])),
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
    security(("api_key" = []), ("bearer" = [])),
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
    security(("api_key" = []), ("bearer" = [])),
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
    security(("api_key" = []), ("bearer" = [])),
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
