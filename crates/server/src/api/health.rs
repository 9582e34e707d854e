//! Liveness and readiness.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use crate::error::ApiResult;
use crate::state::AppState;

/// Liveness: answers without auth and without touching the store.
pub async fn ping() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Readiness: also proves the store can read and commit.
pub async fn readyz(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    state.store.ping().await?;
    Ok(Json(json!({"status": "ready"})))
}
