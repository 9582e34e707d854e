//! The HTTP API: routes, and the layers every response passes through.

mod admin;
mod health;
mod messages;
mod render;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use axum::routing::{get, post};

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
        .route("/admin/v1/orgs", post(admin::create_org).get(admin::list_orgs))
        .route("/admin/v1/orgs/{id}", get(admin::get_org))
        .route(
            "/admin/v1/orgs/{id}/keys",
            post(admin::create_key).get(admin::list_keys),
        )
        .route("/admin/v1/keys/{id}/revoke", post(admin::revoke_key))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::map_response(no_store))
        .with_state(state)
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
