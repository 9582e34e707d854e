//! The platforms' own HTTP surfaces: each platform whose document defines
//! routes has one module here that owns its `router()`, registered below in
//! one line. Every path is the document's own, so an integrator changes only
//! the host; none collides with the native `/v1/messages`, `/v1/endpoints`
//! or `/v1/stream`. Handlers carry `#[utoipa::path]` and are registered
//! with `utoipa_axum::routes!`, so they are in `/openapi.json` (see
//! `api::openapi`). The pure parts of a platform (wire format, catalog) live
//! in `marquee_core::profile`.

pub mod eventium;
pub mod eventory;
pub mod revolution;

use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;

/// Every platform's documented routes (and their operations), merged into
/// the API router.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(revolution::routes())
        .merge(eventium::routes())
        .merge(eventory::routes())
}
