//! The browsable API reference at `/dashboard/api`: the vendored Swagger UI
//! (`assets/swagger-ui/`, swagger-ui-dist 5.35.0, Apache-2.0) rendering
//! `/openapi.json`. Everything is embedded at build time, so the page works
//! offline, and it is served with a strict Content-Security-Policy (scripts,
//! styles and connections from this origin only; no inline script).
//!
//! Its own small router, merged into the API router in one line; these are
//! pages, not API operations, so they are not in the OpenAPI document.

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::state::AppState;

/// The reference page's routes (no auth: the document is public).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/dashboard/api", get(|| asset(INDEX, "text/html; charset=utf-8")))
        .route("/dashboard/api/init.js", get(|| asset(INIT, JS)))
        .route("/dashboard/api/page.css", get(|| asset(PAGE_CSS, CSS)))
        .route("/dashboard/api/swagger-ui-bundle.js", get(|| asset(BUNDLE, JS)))
        .route("/dashboard/api/swagger-ui.css", get(|| asset(SWAGGER_CSS, CSS)))
}

/// The paths [`router`] serves (for the route-coverage test).
pub const PATHS: &[&str] = &[
    "/dashboard/api",
    "/dashboard/api/init.js",
    "/dashboard/api/page.css",
    "/dashboard/api/swagger-ui-bundle.js",
    "/dashboard/api/swagger-ui.css",
];

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

const INDEX: &[u8] = include_bytes!("../assets/api-reference/index.html");
const INIT: &[u8] = include_bytes!("../assets/api-reference/init.js");
const PAGE_CSS: &[u8] = include_bytes!("../assets/api-reference/page.css");
const BUNDLE: &[u8] = include_bytes!("../assets/swagger-ui/swagger-ui-bundle.js");
const SWAGGER_CSS: &[u8] = include_bytes!("../assets/swagger-ui/swagger-ui.css");

/// Swagger UI sets element styles from script (CSSOM, which `style-src`
/// does not govern) and draws its icons as `data:` SVGs.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                       connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; \
                       frame-ancestors 'none'";

async fn asset(body: &'static [u8], content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP)),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
        ],
        body,
    )
        .into_response()
}
