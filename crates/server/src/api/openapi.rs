//! The OpenAPI 3.1 document, generated from the code so it cannot drift.
//!
//! Every API route is registered with `utoipa_axum::routes!` on an
//! `OpenApiRouter` (`api::routes`, `platforms::routes`): registering a
//! handler is what puts its `#[utoipa::path]` operation into the document,
//! and the router and the document are split from the same value. The
//! document is rendered once at start and served at `GET /openapi.json`
//! (no auth). `tests/it/openapi.rs` checks it lists every route, and CI runs
//! schemathesis against a live server from it
//! (`crates/server/tests/schemathesis/run.sh`).
//!
//! Error responses are shared components (`#/components/responses/…`, each
//! the `{"error":{…}}` envelope of `crate::error`), grouped below into the
//! sets an operation names in its `responses(...)`: [`Common`] on every
//! operation, [`KeyAuth`] or [`AdminAuth`] by who may call it, [`Body`] for a
//! JSON body, [`BadRequest`] for a query, [`NotFound`] for a path id,
//! [`Conflict`] where the store can refuse.

use std::collections::BTreeMap;

use axum::Extension;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Serialize;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, HeaderBuilder, Ref, RefOr, ResponseBuilder, Type, response::Response as OaResponse,
    schema::ObjectBuilder,
};
use utoipa::{IntoResponses, Modify, OpenApi, ToSchema};

/// Security scheme names, as operations cite them in `security(...)`.
pub const API_KEY: &str = "api_key";
pub const BEARER: &str = "bearer";
pub const API_KEY_QUERY: &str = "api_key_query";
pub const APIKEY_HEADER: &str = "apikey_header";
pub const ADMIN_TOKEN: &str = "admin_token";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "marquee",
        description = "Real-time event delivery gateway: the native API (`/v1`), the admin API \
                       (`/admin/v1`), health checks, and the platforms' own REST surfaces. Every \
                       error answers `{\"error\":{\"code\",\"message\",\"param\"?}}`; every \
                       response carries `Cache-Control: private, no-store`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    tags(
        (name = "health", description = "Liveness and readiness (no auth)."),
        (name = "messages", description = "Publish, fetch and list messages by cursor."),
        (name = "endpoints", description = "Webhook endpoints, their attempts, resend, recover, replay."),
        (name = "event-types", description = "The organization's event-type catalog."),
        (name = "entities", description = "Entities a catalog type's `project` rule keeps (latest version by id)."),
        (name = "erasures", description = "Erasing a channel's messages (accepted, then worked through in the background)."),
        (name = "attendance", description = "The attendance read model: counts, gates, milestones per event; milestone thresholds."),
        (name = "streams", description = "Live WebSocket and Server-Sent Events streams."),
        (name = "admin", description = "Organizations and API keys (admin token)."),
        (name = "revolution", description = "Revolution's webhook registration (`/api/v1/developers/webhooks`) and REST polling (`/api/v1/signal/…`)."),
        (name = "eventium", description = "Eventium's `GET /v1/events` (the projection of its `event.*` types)."),
        (name = "eventory", description = "Eventory's `/eventory/…`: ping, the API key's watchlist, the notification WebSockets (`apikey` header only)."),
        (name = "meta", description = "This document."),
    ),
    components(schemas(ErrorEnvelope, ErrorBody, ErrorCodeName)),
    modifiers(&Components),
)]
pub struct ApiDoc;

/// The error envelope every 4xx/5xx answers (`crate::error::ApiError::body`).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorEnvelope {
    pub error: ErrorBody,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorBody {
    pub code: ErrorCodeName,
    /// A sentence for a person; not stable.
    pub message: String,
    /// The offending field or parameter (`messages[3].type`, `limit`), for
    /// `invalid_request` when one is to blame.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub param: Option<String>,
}

/// `marquee_core::ErrorCode` as it appears on the wire.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCodeName {
    InvalidRequest,
    InvalidApiKey,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    Conflict,
    PayloadTooLarge,
    HeadersTooLarge,
    RateLimited,
    InternalError,
    Unavailable,
}

/// The shared error responses, by component name: (name, status, what).
const ERROR_RESPONSES: &[(&str, u16, &str)] = &[
    (
        "InvalidRequest",
        400,
        "`invalid_request`: a malformed body, query or field; `param` names it.",
    ),
    (
        "Unauthorized",
        401,
        "`invalid_api_key`: missing, unknown or revoked key (or admin token).",
    ),
    (
        "Forbidden",
        403,
        "`forbidden`: the key may not do this (a free-tier stream; the admin API disabled).",
    ),
    (
        "NotFound",
        404,
        "`not_found`: no such resource in the caller's organization.",
    ),
    (
        "Conflict",
        409,
        "`conflict`: the resource's state refuses the change (an idempotency key reused with another body, a built-in type).",
    ),
    (
        "PayloadTooLarge",
        413,
        "`payload_too_large`: the body exceeds `--max-body-bytes`.",
    ),
    (
        "RateLimited",
        429,
        "`rate_limited`: the key's rate (or stream connection) limit; retry after `Retry-After` seconds.",
    ),
    (
        "HeadersTooLarge",
        431,
        "`headers_too_large`: the request's headers exceed the cap.",
    ),
    (
        "InternalError",
        500,
        "`internal_error`: logged on the server; retry with backoff.",
    ),
    (
        "Unavailable",
        503,
        "`unavailable`: the store (or the live bus) is unavailable; retry shortly.",
    ),
];

struct Components;

impl Modify for Components {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for (name, status, what) in ERROR_RESPONSES {
            let mut r = ResponseBuilder::new().description(*what).content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorEnvelope")))
                    .build(),
            );
            if *status == 429 {
                r = r.header(
                    "Retry-After",
                    HeaderBuilder::new()
                        .schema(Some(
                            ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(0)),
                        ))
                        .description(Some("Seconds to wait before retrying."))
                        .build(),
                );
            }
            components.responses.insert((*name).to_owned(), r.build().into());
        }
        let key_header = |name: &str, what: &str| {
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(name, what)))
        };
        components.add_security_scheme(
            API_KEY,
            key_header(
                "x-api-key",
                "An organization's API key (`sk_live_…`) in the `x-api-key` header.",
            ),
        );
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("sk_live_…")
                    .description(Some(
                        "An organization's API key as `Authorization: Bearer sk_live_…`.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            APIKEY_HEADER,
            key_header(
                "apikey",
                "The API key in the `apikey` header (Eventory's header): accepted wherever a key is, and \
                 the only form Eventory's WebSockets accept.",
            ),
        );
        components.add_security_scheme(
            API_KEY_QUERY,
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
                "apiKey",
                "The API key as `?apiKey=` (the native streams, where browsers cannot set headers on a \
                 WebSocket, and Revolution's REST polling: Revolution's documented form).",
            ))),
        );
        components.add_security_scheme(
            ADMIN_TOKEN,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The admin token (`--admin-token`, `MARQUEE_ADMIN_TOKEN`) as `Authorization: Bearer …`.",
                    ))
                    .build(),
            ),
        );
    }
}

/// Declares a set of shared error responses an operation lists in its
/// `responses(...)`, e.g. `responses((status = 200, …), Common, KeyAuth)`.
macro_rules! error_set {
    ($(#[$doc:meta])* $name:ident: $($status:literal => $component:literal),+) => {
        $(#[$doc])*
        pub struct $name;
        impl IntoResponses for $name {
            fn responses() -> BTreeMap<String, RefOr<OaResponse>> {
                BTreeMap::from([$(
                    ($status.to_string(), RefOr::Ref(Ref::from_response_name($component))),
                )+])
            }
        }
    };
}

error_set!(
    /// On every operation: the header cap and an internal error.
    Common: 431 => "HeadersTooLarge", 500 => "InternalError"
);
error_set!(
    /// Operations authorized by an API key (the key is looked up in the store).
    KeyAuth: 401 => "Unauthorized", 429 => "RateLimited", 503 => "Unavailable"
);
error_set!(
    /// Operations authorized by the admin token.
    AdminAuth: 401 => "Unauthorized", 403 => "Forbidden", 503 => "Unavailable"
);
error_set!(
    /// Operations that read a JSON body.
    Body: 400 => "InvalidRequest", 413 => "PayloadTooLarge"
);
error_set!(
    /// Operations with a query or a field that can be invalid.
    BadRequest: 400 => "InvalidRequest"
);
error_set!(
    /// Operations on a resource named in the path.
    NotFound: 404 => "NotFound"
);
error_set!(
    /// Operations the resource's state can refuse.
    Conflict: 409 => "Conflict"
);
error_set!(
    /// Operations that reach the store without an API key.
    Unavailable: 503 => "Unavailable"
);
error_set!(
    /// Streams: a free-tier key may not stream.
    StreamForbidden: 403 => "Forbidden"
);

/// The rendered document, shared by every request for it (an extension
/// layered on the router once the document is known).
#[derive(Clone)]
pub struct Document(pub Bytes);

/// The document's final touches, then its JSON bytes.
pub fn render(mut doc: utoipa::openapi::OpenApi) -> Document {
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    Document(Bytes::from(serde_json::to_vec(&doc).unwrap_or_default()))
}

/// This document (OpenAPI 3.1).
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "meta",
    operation_id = "get_openapi",
    responses(
        (status = 200, description = "The OpenAPI 3.1 document of this server.", content_type = "application/json", body = Object),
        Common,
    ),
    security(()),
)]
pub async fn document(Extension(doc): Extension<Document>) -> Response {
    let mut resp = (StatusCode::OK, doc.0).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}
