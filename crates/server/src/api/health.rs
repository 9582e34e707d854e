//! Liveness and readiness.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::openapi::{Common, Unavailable};
use super::schemas;
use crate::error::ApiResult;
use crate::state::AppState;

/// Liveness: answers without auth and without touching the store.
#[utoipa::path(
    get,
    path = "/ping",
    tag = "health",
    operation_id = "ping",
    responses((status = 200, description = "`{\"status\": \"ok\"}`", body = schemas::Health), Common),
    security(()),
)]
pub async fn ping() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Readiness: also proves the store can read and commit.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    operation_id = "readyz",
    responses(
        (status = 200, description = "`{\"status\": \"ready\"}`", body = schemas::Health),
        Common, Unavailable,
    ),
    security(()),
)]
pub async fn readyz(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    state.store.ping().await?;
    Ok(Json(json!({"status": "ready"})))
}
