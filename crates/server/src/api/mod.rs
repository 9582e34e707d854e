//! The HTTP API: routes, and the layers every response passes through.
//!
//! Every route is a `#[utoipa::path]` handler registered with
//! `utoipa_axum::routes!` in [`routes`], so the router and the OpenAPI
//! document (`GET /openapi.json`, [`openapi`]) come from the same value and
//! cannot drift.

mod admin;
mod attempt_request;
pub(crate) mod attendance;
pub(crate) mod endpoints;
mod entities;
mod erasures;
mod event_types;
mod health;
pub(crate) mod messages;
pub mod openapi;
pub(crate) mod render;
pub mod schemas;

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use axum::{Extension, Router};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::state::AppState;

/// Every API route with its operation. A new route is one line here (or in
/// `platforms::routes`): `.routes(routes!(module::handler))`, the handler
/// annotated with `#[utoipa::path]` (see README, "OpenAPI").
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(health::ping))
        .routes(routes!(health::readyz))
        .routes(routes!(openapi::document))
        .routes(routes!(messages::publish, messages::list))
        .routes(routes!(messages::publish_batch))
        .routes(routes!(messages::get))
        .routes(routes!(endpoints::message_attempts))
        .routes(routes!(attempt_request::get))
        .routes(routes!(endpoints::resend))
        .routes(routes!(endpoints::create, endpoints::list))
        .routes(routes!(endpoints::get, endpoints::patch, endpoints::delete))
        .routes(routes!(endpoints::rotate_secret))
        .routes(routes!(endpoints::endpoint_attempts))
        .routes(routes!(endpoints::recover))
        .routes(routes!(endpoints::replay))
        .routes(routes!(endpoints::test))
        .routes(routes!(endpoints::stats))
        .routes(routes!(event_types::list))
        .routes(routes!(event_types::get, event_types::put, event_types::delete))
        .routes(routes!(entities::list))
        .routes(routes!(entities::get_one))
        .routes(routes!(erasures::create, erasures::list))
        .routes(routes!(erasures::get))
        .routes(routes!(attendance::list))
        .routes(routes!(attendance::get_settings, attendance::put_settings))
        .routes(routes!(attendance::get_one))
        .routes(routes!(crate::stream::ws::handler))
        .routes(routes!(crate::stream::sse::handler))
        .routes(routes!(admin::create_org, admin::list_orgs))
        .routes(routes!(admin::get_org, admin::patch_org))
        .routes(routes!(admin::create_key, admin::list_keys))
        .routes(routes!(admin::patch_key))
        .routes(routes!(admin::revoke_key))
        .merge(crate::platforms::routes())
}

/// The OpenAPI document of [`routes`].
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    routes().into_openapi()
}

pub fn router(state: AppState) -> Router {
    let max_body = state.config.max_body_bytes;
    let (api, doc) = routes().split_for_parts();
    // Pages, not API operations (tests/it/openapi.rs, `PLAIN_ROUTES`).
    api.merge(crate::dashboard::router())
        .merge(crate::api_reference::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(Extension(openapi::render(doc)))
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn(catch_panic))
        .layer(axum::middleware::from_fn(cap_headers))
        .layer(axum::middleware::map_response(no_store))
        .layer(axum::middleware::from_fn(log_request))
        .layer(axum::middleware::from_fn(crate::metrics::track_publish))
        .with_state(state)
}

/// Refuses requests whose headers total more than
/// [`crate::http::MAX_HEADER_BYTES`]: with tens of thousands of connections
/// allowed, large header blocks are an easy way to hold memory.
async fn cap_headers(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    use axum::response::IntoResponse;
    let max = crate::http::MAX_HEADER_BYTES;
    let total: usize = req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    if total > max {
        return ApiError::HeadersTooLarge(max).into_response();
    }
    next.run(req).await
}

/// A worker node's HTTP surface: health checks only.
pub fn health_router(state: AppState) -> Router {
    let (health, _) = OpenApiRouter::new()
        .routes(routes!(health::ping))
        .routes(routes!(health::readyz))
        .split_for_parts();
    health
        .fallback(not_found)
        .layer(axum::middleware::map_response(no_store))
        .layer(axum::middleware::from_fn(log_request))
        .with_state(state)
}

/// One `debug` line per request (target `marquee::http`): method, route
/// (the matched pattern, never the raw path or query, which may carry
/// `?apiKey=`), status, latency and the id of the key it authenticated with
/// (never the key).
async fn log_request(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    if !tracing::enabled!(target: "marquee::http", tracing::Level::DEBUG) {
        return next.run(req).await;
    }
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "(no route)".to_owned(), |p| p.as_str().to_owned());
    let started = std::time::Instant::now();
    let (resp, key) = crate::auth::with_key_slot(next.run(req)).await;
    tracing::debug!(
        target: "marquee::http",
        method = %method,
        route = %route,
        status = resp.status().as_u16(),
        latency_ms = started.elapsed().as_secs_f64() * 1000.0,
        key_id = key.as_ref().map_or("-", |k| k.as_str()),
        "request"
    );
    resp
}

async fn not_found() -> ApiError {
    ApiError::NotFound("No such route.".into())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// Every API response is private to its caller: never cache it on a shared edge.
async fn no_store(mut resp: Response) -> Response {
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    resp
}

/// A panicking handler still answers with the error envelope (never an empty
/// body or a dropped connection); the panic is logged as an internal error.
async fn catch_panic(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    use axum::response::IntoResponse;
    use futures_util::FutureExt;
    match std::panic::AssertUnwindSafe(next.run(req)).catch_unwind().await {
        Ok(resp) => resp,
        Err(_) => ApiError::Internal("request handler panicked".into()).into_response(),
    }
}
