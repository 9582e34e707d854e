//! `/dashboard`: the operator's web UI, served by the binary itself.
//!
//! Why this shape: an operator must be able to look at a gateway with
//! nothing but the binary — no Node build to compile marquee, no CDN, no
//! network at run time. So the UI is plain HTML, CSS and one vanilla script
//! in `crates/server/dashboard/`, compiled in with `include_str!`, and it
//! only calls the public JSON APIs (the same ones integrators use) with the
//! credential the person signed in with, kept in `sessionStorage` and sent
//! as a header — never in a URL, never in a cookie, so there is no ambient
//! authority for a cross-site request to ride on (no CSRF surface).
//!
//! Every dashboard response carries a strict Content-Security-Policy (only
//! this origin's script and styles, no inline script, no framing), so even
//! a rendering bug could not run message data as code; the script also
//! renders all data with `textContent`.

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::state::AppState;

/// The policy every dashboard page and asset is served with.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

const INDEX_HTML: &str = include_str!("../../dashboard/index.html");
const APP_JS: &str = include_str!("../../dashboard/app.js");
const APP_CSS: &str = include_str!("../../dashboard/app.css");
const ICON_SVG: &str = include_str!("../../dashboard/icon.svg");

/// The dashboard's routes (merged into the API router in one line).
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/dashboard",
            get(|| asset("text/html; charset=utf-8", INDEX_HTML)),
        )
        .route(
            "/dashboard/",
            get(|| asset("text/html; charset=utf-8", INDEX_HTML)),
        )
        .route(
            "/dashboard/app.js",
            get(|| asset("text/javascript; charset=utf-8", APP_JS)),
        )
        .route(
            "/dashboard/app.css",
            get(|| asset("text/css; charset=utf-8", APP_CSS)),
        )
        .route("/dashboard/icon.svg", get(|| asset("image/svg+xml", ICON_SVG)))
}

async fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut resp = ([(header::CONTENT_TYPE, content_type)], body).into_response();
    security_headers(resp.headers_mut());
    resp
}

/// The headers every dashboard response carries (also for pages other
/// modules serve under `/dashboard/`, e.g. the API reference).
pub fn security_headers(h: &mut axum::http::HeaderMap) {
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
}
