//! The HTTP API: routes, and the layers every response passes through.

mod admin;
pub(crate) mod attendance;
pub(crate) mod endpoints;
mod event_types;
mod health;
pub(crate) mod messages;
pub(crate) mod render;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use axum::routing::{get, patch, post};

use crate::error::ApiError;
use crate::state::AppState;

pub fn router(state: AppState) -> Router {
    let max_body = state.config.max_body_bytes;
    Router::new()
        .route("/ping", get(health::ping))
        .route("/readyz", get(health::readyz))
        .route("/v1/messages", post(messages::publish).get(messages::list))
        .route("/v1/messages/batch", post(messages::publish_batch))
        .route("/v1/messages/{id}", get(messages::get))
        .route("/v1/messages/{id}/attempts", get(endpoints::message_attempts))
        .route("/v1/messages/{id}/resend", post(endpoints::resend))
        .route("/v1/endpoints", post(endpoints::create).get(endpoints::list))
        .route(
            "/v1/endpoints/{id}",
            get(endpoints::get)
                .patch(endpoints::patch)
                .delete(endpoints::delete),
        )
        .route("/v1/endpoints/{id}/secret/rotate", post(endpoints::rotate_secret))
        .route("/v1/endpoints/{id}/attempts", get(endpoints::endpoint_attempts))
        .route("/v1/endpoints/{id}/recover", post(endpoints::recover))
        .route("/v1/endpoints/{id}/replay", post(endpoints::replay))
        .route("/v1/endpoints/{id}/test", post(endpoints::test))
        .route("/v1/endpoints/{id}/stats", get(endpoints::stats))
        .route("/v1/event-types", get(event_types::list))
        .route(
            "/v1/event-types/{type}",
            get(event_types::get)
                .put(event_types::put)
                .delete(event_types::delete),
        )
        .route("/v1/stream", get(crate::stream::ws::handler))
        .route("/v1/stream/sse", get(crate::stream::sse::handler))
        .route("/admin/v1/orgs", post(admin::create_org).get(admin::list_orgs))
        .route("/admin/v1/orgs/{id}", get(admin::get_org).patch(admin::patch_org))
        .route(
            "/admin/v1/orgs/{id}/keys",
            post(admin::create_key).get(admin::list_keys),
        )
        .route("/admin/v1/keys/{id}", patch(admin::patch_key))
        .route("/admin/v1/keys/{id}/revoke", post(admin::revoke_key))
        .merge(crate::platforms::router())
        .merge(attendance::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn(catch_panic))
        .layer(axum::middleware::from_fn(cap_headers))
        .layer(axum::middleware::map_response(no_store))
        .layer(axum::middleware::from_fn(log_request))
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
    Router::new()
        .route("/ping", get(health::ping))
        .route("/readyz", get(health::readyz))
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
