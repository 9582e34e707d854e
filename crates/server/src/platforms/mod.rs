//! The platforms' own HTTP surfaces: each platform whose document defines
//! routes has one module here that owns its `router()`, registered below in
//! one line. Every path is the document's own, so an integrator changes only
//! the host; none collides with the native `/v1/messages`, `/v1/endpoints`
//! or `/v1/stream`. The pure parts of a platform (wire format, catalog) live
//! in `marquee_core::profile`.

pub mod eventium;
pub mod revolution;

use axum::Router;

use crate::state::AppState;

/// Every platform's routes, merged into the API router.
pub fn router() -> Router<AppState> {
    Router::new()
        .merge(revolution::router())
        .merge(eventium::router())
}
