//! Webhook endpoints API: CRUD, secret rotation, the attempt log, resend,
//! recover, replay, test pings and stats.
//!
//! Every lookup is scoped to the caller's organization: another
//! organization's endpoint answers exactly like a missing one. Signing
//! secrets appear only in the answers of create and rotate.

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use marquee_core::Cursor;
use marquee_core::ids::{AttemptId, EndpointId, MessageId};
use marquee_core::names::Channel;
use marquee_core::pattern::TypePattern;
use marquee_core::timestamp::Timestamp;
use marquee_core::webhook::EndpointFilter;
use marquee_core::wire::{ExposedSecret, Format, SigningSecret};
use marquee_store::webhooks::{
    ADAPTIVE_MAX_IN_FLIGHT, AttemptQuery, AttemptRecord, EndpointRecord, ReplayFrom,
};
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};

use super::messages::parse_limit;
use super::openapi::{BadRequest, Body, Common, Conflict, KeyAuth, NotFound};
use super::{render, schemas};
use crate::auth::Caller;
use crate::catalog::OrgRules;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, QueryParams, RawBody, parse_json};
use crate::state::AppState;
use crate::webhooks::client::{self, AddressPolicy};

const MAX_URL_LEN: usize = 2048;
const MAX_FILTERS: usize = 64;
const MAX_DESCRIPTION: usize = 1024;
/// Messages examined per replay write job.
const REPLAY_CHUNK: usize = 5_000;
/// Chunks one replay request may walk before it answers `has_more`.
const REPLAY_CHUNKS_PER_REQUEST: usize = 20;

fn not_found() -> ApiError {
    ApiError::NotFound("No such endpoint.".into())
}

fn endpoint_id(path: Result<Path<String>, PathRejection>) -> ApiResult<EndpointId> {
    let Path(id) = path.map_err(|_| not_found())?;
    id.parse().map_err(|_| not_found())
}

/// `Some(None)` for an explicit `null`, `None` when absent.
fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// The body of `POST /v1/endpoints`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    /// An absolute http(s) URL, at most 2,048 characters, not pointing at a
    /// private address unless the server allows it.
    #[schema(example = "https://example.com/webhooks", max_length = 2048)]
    pub url: String,
    #[schema(max_length = 1024)]
    pub description: Option<String>,
    /// Type filters (`order.completed`, `order.*`), at most 64; empty or
    /// absent = every type.
    #[serde(default)]
    #[schema(max_items = 64)]
    pub types: Vec<String>,
    /// Channel filters (`kind:id`), at most 64; empty = every channel.
    #[serde(default)]
    #[schema(max_items = 64)]
    pub channels: Vec<String>,
    /// The wire format: `standard` (default), `revolution`, `eventory`,
    /// `eventium`, `revento`, `attendee`.
    #[schema(example = "standard")]
    pub format: Option<String>,
    /// A secret the integrator chose, for formats that accept one
    /// (`revolution`, and `standard` as `whsec_…`).
    pub secret: Option<String>,
    /// Deliveries per second at most (1 to 100,000; null: unlimited).
    #[schema(minimum = 1, maximum = 100000)]
    pub rate_limit: Option<u32>,
    /// Absent or null: adaptive (up to `--webhook-adaptive-cap`).
    #[schema(minimum = 1, maximum = 1000)]
    pub max_in_flight: Option<u32>,
    /// One delivery in flight at a time, in log order.
    #[serde(default)]
    pub ordered: bool,
    pub enabled: Option<bool>,
}

/// The body of `PATCH /v1/endpoints/{id}`: only the fields given change.
/// A format with another secret scheme re-issues the secret (answered once).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchBody {
    #[schema(max_length = 2048)]
    url: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(max_length = 1024)]
    description: Option<Option<String>>,
    #[schema(max_items = 64)]
    types: Option<Vec<String>>,
    #[schema(max_items = 64)]
    channels: Option<Vec<String>>,
    format: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(minimum = 1, maximum = 100000)]
    rate_limit: Option<Option<u32>>,
    /// null: adaptive from now on; a number: fixed.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(minimum = 1, maximum = 1000)]
    max_in_flight: Option<Option<u32>>,
    ordered: Option<bool>,
    /// Enabling clears `disabled_reason` and `failing_since`.
    enabled: Option<bool>,
}

/// Validates an endpoint URL. An IP literal or a `localhost` name the
/// server would refuse to connect to is refused here too; any other
/// hostname is only checked at connect time, against the addresses it
/// resolves to then.
fn check_url(url: &str, policy: AddressPolicy<'_>) -> ApiResult<String> {
    let bad = |m: &str| ApiError::invalid_param("url", m.to_owned());
    if url.len() > MAX_URL_LEN {
        return Err(bad("url is longer than 2048 characters"));
    }
    let u = reqwest::Url::parse(url).map_err(|_| bad("url must be an absolute http or https URL"))?;
    if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none_or(str::is_empty) {
        return Err(bad("url must be an absolute http or https URL"));
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err(bad("url must not carry credentials"));
    }
    if let Err(b) = client::check_destination(&u, policy) {
        let what = match &b.host {
            Some(h) => format!("{h} always resolves to loopback (127.0.0.1, ::1)"),
            None => b
                .refused
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        };
        return Err(bad(&format!(
            "url must not point at a loopback, private, link-local or otherwise non-public address \
             ({what}); this server does not deliver there (a local receiver needs marquee started \
             with --allow-private-endpoints, --allow-endpoint-cidr or --demo)"
        )));
    }
    Ok(u.to_string())
}

/// Parses type filters; for an organization with profiles enabled, each
/// must name a type it knows (or a prefix of one), so a typo is an error
/// rather than a filter that silently matches nothing. The catalog of the
/// endpoint's own format's profile counts as known too (a Revolution
/// registration in an organization that enabled only eventium).
fn check_types(types: &[String], rules: &OrgRules, format: Format) -> ApiResult<Vec<TypePattern>> {
    let patterns: Vec<TypePattern> = crate::extract::parse_unique(types, "types", MAX_FILTERS)?;
    if rules.profile_bound() {
        let own = [format.as_str().to_owned()];
        let own_names: Vec<&str> = crate::catalog::builtins_of(&own)
            .into_iter()
            .map(|(_, d)| d.name.as_str())
            .collect();
        for (i, p) in patterns.iter().enumerate() {
            let known = match p {
                TypePattern::Exact(t) => rules.knows(t) || own_names.contains(&t.as_str()),
                TypePattern::Prefix(pre) => rules
                    .names()
                    .chain(own_names.iter().copied())
                    .any(|n| n.starts_with(pre.as_str())),
            };
            if !known {
                return Err(ApiError::invalid_param(
                    format!("types[{i}]"),
                    format!(
                        "{p} matches no event type of this organization (enabled profiles: {}); \
                         check the spelling, or define the type with PUT /v1/event-types/{{type}}",
                        rules.profiles.join(", ")
                    ),
                ));
            }
        }
    }
    Ok(patterns)
}

fn check_channels(channels: &[String]) -> ApiResult<Vec<Channel>> {
    crate::extract::parse_unique(channels, "channels", MAX_FILTERS)
}

fn check_format(f: Option<&str>) -> ApiResult<Format> {
    match f {
        None => Ok(Format::standard()),
        Some(s) => s
            .parse()
            .map_err(|e: marquee_core::wire::UnknownFormat| ApiError::invalid_param("format", e.to_string())),
    }
}

fn check_description(d: Option<String>) -> ApiResult<Option<String>> {
    match d {
        Some(d) if d.len() > MAX_DESCRIPTION => Err(ApiError::invalid_param(
            "description",
            format!("description is at most {MAX_DESCRIPTION} bytes"),
        )),
        // Neither store may hold it the same way (PostgreSQL text cannot).
        Some(d) if d.contains('\0') => Err(ApiError::invalid_param(
            "description",
            "description may not contain NUL (U+0000)",
        )),
        other => Ok(other),
    }
}

/// `None` (absent or null) is adaptive, stored as the sentinel 0.
fn check_max_in_flight(n: Option<u32>) -> ApiResult<u32> {
    match n {
        None => Ok(ADAPTIVE_MAX_IN_FLIGHT),
        Some(n) if (1..=1000).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::invalid_param(
            "max_in_flight",
            "max_in_flight must be from 1 to 1000 (or null: adapt to the receiver)",
        )),
    }
}

fn check_rate(r: Option<u32>) -> ApiResult<Option<u32>> {
    match r {
        Some(0) => Err(ApiError::invalid_param(
            "rate_limit",
            "rate_limit must be at least 1 (or null)",
        )),
        Some(r) if r > 100_000 => Err(ApiError::invalid_param(
            "rate_limit",
            "rate_limit is at most 100000",
        )),
        other => Ok(other),
    }
}

/// A new secret for `format`: the integrator's own where the format accepts
/// one, otherwise generated.
pub fn new_secret(format: Format, supplied: Option<&str>) -> ApiResult<SigningSecret> {
    let scheme = format.wire().secret_scheme();
    match supplied {
        None => Ok(scheme.generate()),
        Some(s) => scheme
            .from_supplied(s)
            .map_err(|e| ApiError::invalid_param("secret", e.to_string())),
    }
}

/// `"concurrency"` of an endpoint: `fixed` at its `max_in_flight`, or
/// `adaptive` with the limit this node applies now (`current`, null on a
/// node that does not deliver) and the cap.
fn concurrency_json(state: &AppState, e: &EndpointRecord) -> Value {
    if e.max_in_flight == ADAPTIVE_MAX_IN_FLIGHT {
        let current = state.webhooks.concurrency(&e.id).map(|c| c.current);
        json!({"mode": "adaptive", "current": current, "cap": state.webhooks.config().adaptive_cap})
    } else {
        json!({"mode": "fixed", "current": e.max_in_flight, "cap": e.max_in_flight})
    }
}

pub fn endpoint_json(state: &AppState, e: &EndpointRecord, secret: Option<&ExposedSecret>) -> Value {
    let mut v = json!({
        "object": "endpoint",
        "id": e.id.as_str(),
        "url": e.url,
        "description": e.description,
        "types": e.filter.types.iter().map(|t| t.to_string()).collect::<Vec<_>>(),
        "channels": e.filter.channels.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
        "format": e.format.as_str(),
        "rate_limit": e.rate_limit,
        "max_in_flight": (e.max_in_flight != ADAPTIVE_MAX_IN_FLIGHT).then_some(e.max_in_flight),
        "concurrency": concurrency_json(state, e),
        "ordered": e.ordered,
        "enabled": e.enabled,
        "disabled_reason": e.disabled_reason,
        "failing_since": e.failing_since.map(|t| t.to_rfc3339()),
        "created_at": e.created_at.to_rfc3339(),
        "updated_at": e.updated_at.to_rfc3339(),
    });
    if let Some(s) = secret {
        v["secret"] = json!(s.secret);
        if let Some(i) = &s.identifier {
            v["identifier"] = json!(i);
        }
    }
    v
}

/// How `format` shows `secret` to its owner.
pub fn expose(format: Format, secret: &SigningSecret) -> ExposedSecret {
    format.wire().secret_scheme().expose(secret)
}

pub fn attempt_json(a: &AttemptRecord) -> Value {
    let headers: Value = serde_json::from_str(&a.response_headers).unwrap_or_else(|_| json!({}));
    // A test ping's message id is marked (`msg_test_…`; none on old rows).
    let test = a
        .message_id
        .as_ref()
        .is_none_or(|m| marquee_core::webhook::ops::is_test_message_id(m.as_str()));
    // With no response, the body's place holds the error reason.
    let body = if a.status_code.is_some() {
        a.response_body.as_str()
    } else {
        ""
    };
    json!({
        "object": "attempt",
        "id": a.id.as_str(),
        "delivery_id": a.delivery_id.as_str(),
        "endpoint_id": a.endpoint_id.as_str(),
        "message_id": a.message_id.as_ref().map(|m| m.as_str()),
        "test": test,
        "attempt": a.attempt_no,
        "status": if a.succeeded { "succeeded" } else { "failed" },
        "started_at": a.started_at.to_rfc3339(),
        "duration_ms": a.duration_us as f64 / 1000.0,
        "status_code": a.status_code,
        "error_kind": a.error_kind,
        "error": client::attempt_error(a.status_code, a.error_kind.as_deref(), &a.response_body),
        "response_headers": headers,
        "response_body": body,
    })
}

pub fn json_response(status: StatusCode, v: &Value) -> Response {
    render::json_bytes(status, serde_json::to_vec(v).unwrap_or_default())
}

pub fn list_json(data: Vec<Value>, has_more: bool, next: Option<String>) -> Value {
    json!({"object": "list", "data": data, "has_more": has_more, "next_cursor": next})
}

async fn load(state: &AppState, caller: &Caller, id: &EndpointId) -> ApiResult<EndpointRecord> {
    state
        .store
        .get_endpoint(&caller.org_id, id)
        .await?
        .ok_or_else(not_found)
}

pub fn seal(state: &AppState, id: &EndpointId, format: Format, s: &SigningSecret) -> ApiResult<Vec<u8>> {
    state
        .webhooks
        .sealer()
        .seal(id, format.wire().secret_scheme(), s)
        .map_err(|e| ApiError::Internal(e.to_string()))
}

fn open(state: &AppState, rec: &EndpointRecord) -> ApiResult<SigningSecret> {
    state
        .webhooks
        .sealer()
        .open(&rec.id, rec.format.wire().secret_scheme(), &rec.secret_sealed)
        .map_err(|e| ApiError::Internal(e.to_string()))
}

/// Create a webhook endpoint.
///
/// The answer carries the signing `secret` (and `identifier` for formats
/// that sign with one), shown only here and on rotation.
#[utoipa::path(
    post,
    path = "/v1/endpoints",
    tag = "endpoints",
    operation_id = "create_endpoint",
    request_body = CreateBody,
    responses(
        (status = 201, description = "Created, with its secret.", body = schemas::Endpoint),
        Common, KeyAuth, Body, Conflict,
    ),
    security(("api_key" = []), ("bearer" = []), ("apikey_header" = [])),
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(b): JsonBody<CreateBody>,
) -> ApiResult<Response> {
    let (rec, secret) = create_endpoint(&state, &caller, b).await?;
    Ok(json_response(
        StatusCode::CREATED,
        &endpoint_json(&state, &rec, Some(&expose(rec.format, &secret))),
    ))
}

/// Validates and stores a new endpoint (the native API and the platforms'
/// registration routes); answers the record and its new secret.
pub async fn create_endpoint(
    state: &AppState,
    caller: &Caller,
    b: CreateBody,
) -> ApiResult<(EndpointRecord, SigningSecret)> {
    let url = check_url(&b.url, state.webhooks.config().address_policy())?;
    let rules = state.ingest.catalogs.org(&state.store, &caller.org_id).await?;
    let format = check_format(b.format.as_deref())?;
    let filter = EndpointFilter {
        types: check_types(&b.types, &rules, format)?,
        channels: check_channels(&b.channels)?,
    };
    let max_in_flight = check_max_in_flight(b.max_in_flight)?;
    let rate_limit = check_rate(b.rate_limit)?;
    let description = check_description(b.description)?;
    let id = EndpointId::generate();
    let secret = new_secret(format, b.secret.as_deref())?;
    let now = Timestamp::now();
    let rec = EndpointRecord {
        secret_sealed: seal(state, &id, format, &secret)?,
        id,
        org_id: caller.org_id.clone(),
        url,
        description,
        filter,
        format,
        rate_limit,
        max_in_flight,
        ordered: b.ordered,
        enabled: b.enabled.unwrap_or(true),
        disabled_reason: None,
        previous_secret_sealed: None,
        previous_secret_until: None,
        failing_since: None,
        created_at: now,
        updated_at: now,
    };
    state.store.create_endpoint(rec.clone()).await?;
    state.webhooks.endpoint_changed(&rec.org_id, &rec.id).await;
    Ok((rec, secret))
}

/// Fetch an endpoint.
#[utoipa::path(
    get,
    path = "/v1/endpoints/{id}",
    tag = "endpoints",
    operation_id = "get_endpoint",
    params(("id" = String, Path, description = "An endpoint id (`ep_…`).")),
    responses(
        (status = 200, description = "The endpoint.", body = schemas::Endpoint),
        Common, KeyAuth, NotFound,
    ),
    security(("api_key" = []), ("bearer" = []), ("apikey_header" = [])),
)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Response> {
    let id = endpoint_id(path)?;
    let rec = load(&state, &caller, &id).await?;
    Ok(json_response(StatusCode::OK, &endpoint_json(&state, &rec, None)))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListEndpointsQuery {
    /// An endpoint id: the endpoints after it.
    after: Option<String>,
    /// 1 to 100 (default 25).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    limit: Option<String>,
}

/// List the organization's endpoints.
#[utoipa::path(
    get,
    path = "/v1/endpoints",
    tag = "endpoints",
    operation_id = "list_endpoints",
    params(ListEndpointsQuery),
    responses(
        (status = 200, description = "A page of endpoints.", body = schemas::EndpointList),
        Common, KeyAuth, BadRequest,
    ),
    security(("api_key" = []), ("bearer" = []), ("apikey_header" = [])),
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(q): QueryParams<ListEndpointsQuery>,
) -> ApiResult<Response> {
    let limit = parse_limit(q.limit.as_deref())?;
    let after: Option<EndpointId> = match &q.after {
        Some(a) => Some(
            a.parse()
                .map_err(|_| ApiError::invalid_param("after", "after must be an endpoint id"))?,
        ),
        None => None,
    };
    let page = state
        .store
        .list_endpoints(&caller.org_id, after.as_ref(), limit)
        .await?;
    let next = page.endpoints.last().map(|e| e.id.to_string());
    let data = page
        .endpoints
        .iter()
        .map(|e| endpoint_json(&state, e, None))
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &list_json(data, page.has_more, next),
    ))
}

/// Read-modify-write of an endpoint that never overwrites a concurrent
/// change (the dispatcher disabling it, another request): the store refuses
/// an update whose `updated_at` moved since the read, and the change is
/// applied again to a fresh read, a few times at most.
async fn update_with_retry(
    state: &AppState,
    caller: &Caller,
    id: &EndpointId,
    mut change: impl FnMut(&mut EndpointRecord) -> ApiResult<()>,
) -> ApiResult<EndpointRecord> {
    for _ in 0..5 {
        let mut rec = load(state, caller, id).await?;
        let read_at = rec.updated_at;
        change(&mut rec)?;
        rec.updated_at = Timestamp::now().max(read_at.saturating_add_micros(1));
        match state.store.update_endpoint(rec.clone(), read_at).await {
            Ok(()) => return Ok(rec),
            Err(marquee_store::StoreError::Conflict(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::Conflict(
        "The endpoint kept changing while this request tried to update it; retry.".into(),
    ))
}

/// Applies a PATCH. A format change to one with another secret scheme
/// re-issues the secret (returned once in the answer): the old one could not
/// be read, or would be written down differently, by the new format.
fn apply_patch(
    state: &AppState,
    rec: &mut EndpointRecord,
    b: &PatchBody,
    policy: AddressPolicy<'_>,
    rules: &OrgRules,
) -> ApiResult<Option<SigningSecret>> {
    let mut reissued = None;
    if let Some(u) = &b.url {
        rec.url = check_url(u, policy)?;
    }
    if let Some(d) = &b.description {
        rec.description = check_description(d.clone())?;
    }
    if let Some(t) = &b.types {
        let format = match &b.format {
            Some(f) => check_format(Some(f))?,
            None => rec.format,
        };
        rec.filter.types = check_types(t, rules, format)?;
    }
    if let Some(c) = &b.channels {
        rec.filter.channels = check_channels(c)?;
    }
    if b.format.is_some() {
        let format = check_format(b.format.as_deref())?;
        if format.wire().secret_scheme() != rec.format.wire().secret_scheme() {
            let secret = format.wire().secret_scheme().generate();
            rec.secret_sealed = seal(state, &rec.id, format, &secret)?;
            rec.previous_secret_sealed = None;
            rec.previous_secret_until = None;
            reissued = Some(secret);
        }
        rec.format = format;
    }
    if let Some(r) = b.rate_limit {
        rec.rate_limit = check_rate(r)?;
    }
    if let Some(m) = b.max_in_flight {
        rec.max_in_flight = check_max_in_flight(m)?;
    }
    if let Some(o) = b.ordered {
        rec.ordered = o;
    }
    if let Some(e) = b.enabled {
        if e && !rec.enabled {
            rec.disabled_reason = None;
            rec.failing_since = None;
        } else if !e && rec.enabled {
            rec.disabled_reason = Some("disabled through the API".into());
        }
        rec.enabled = e;
    }
    Ok(reissued)
}

/// Change an endpoint (enable, disable, filters, format, limits).
#[utoipa::path(
    patch,
    path = "/v1/endpoints/{id}",
    tag = "endpoints",
    operation_id = "update_endpoint",
    params(("id" = String, Path, description = "An endpoint id (`ep_…`).")),
    request_body = PatchBody,
    responses(
        (status = 200, description = "The endpoint as changed (with a new `secret` if the format change re-issued it).", body = schemas::Endpoint),
        Common, KeyAuth, Body, NotFound, Conflict,
    ),
    security(("api_key" = []), ("bearer" = []), ("apikey_header" = [])),
)]
pub async fn patch(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
    JsonBody(b): JsonBody<PatchBody>,
) -> ApiResult<Response> {
    let id = endpoint_id(path)?;
    let policy = state.webhooks.config().address_policy();
    let rules = state.ingest.catalogs.org(&state.store, &caller.org_id).await?;
    let mut reissued = None;
    let rec = update_with_retry(&state, &caller, &id, |rec| {
        reissued = apply_patch(&state, rec, &b, policy, &rules)?;
        Ok(())
    })
    .await?;
    if let Some(enabled) = b.enabled {
        let what = if enabled { "enabled" } else { "disabled" };
        tracing::info!(endpoint = %id, enabled, "webhook endpoint {what} through the API");
    }
    state.webhooks.endpoint_changed(&caller.org_id, &id).await;
    let shown = reissued.map(|s| expose(rec.format, &s));
    Ok(json_response(
        StatusCode::OK,
        &endpoint_json(&state, &rec, shown.as_ref()),
    ))
}

/// Delete an endpoint (its pending deliveries are dropped).
#[utoipa::path(
    delete,
    path = "/v1/endpoints/{id}",
    tag = "endpoints",
    operation_id = "delete_endpoint",
    params(("id" = String, Path, description = "An endpoint id (`ep_…`).")),
    responses(
        (status = 200, description = "Deleted.", body = schemas::EndpointDeleted),
        Common, KeyAuth, NotFound,
    ),
    security(("api_key" = []), ("bearer" = []), ("apikey_header" = [])),
)]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Response> {
    let id = endpoint_id(path)?;
    if !state.store.delete_endpoint(&caller.org_id, &id).await? {
        return Err(not_found());
    }
    state.webhooks.endpoint_changed(&caller.org_id, &id).await;
    Ok(json_response(
        StatusCode::OK,
        &json!({"object": "endpoint", "id": id.as_str(), "deleted": true}),
    ))
}

/// Rotate an endpoint's signing secret.
///
/// Formats that can carry several signatures keep signing with the old
/// secret too until `previous_secret_expires_at` (`--webhook-secret-overlap`).
#[utoipa::path(
    post,
    path = "/v1/endpoints/{id}/secret/rotate",
    tag = "endpoints",
    operation_id = "rotate_endpoint_secret",
    params(("id" = String, Path, description = "An endpoint id (`ep_…`).")),
    responses(
        (status = 200, description = "The endpoint with its new secret, shown once.", body = schemas::Endpoint),
        Common, KeyAuth, NotFound, Conflict,
    ),
    security(("api_key" = []), ("bearer" = []), ("apikey_header" = [])),
)]
pub async fn rotate_secret(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Response> {
    let id = endpoint_id(path)?;
    let overlap = i64::try_from(state.webhooks.config().secret_overlap.as_micros()).unwrap_or(i64::MAX);
    let mut secret = None;
    // Formats with one signature per request switch to the new secret at
    // once (there is no way to send both); the others sign with both
    // during the overlap.
    let rec = update_with_retry(&state, &caller, &id, |rec| {
        let scheme = rec.format.wire().secret_scheme();
        let new = scheme.rotate(&open(&state, rec)?);
        let sealed = seal(&state, &id, rec.format, &new)?;
        if rec.format.wire().multi_signature() {
            rec.previous_secret_sealed = Some(std::mem::replace(&mut rec.secret_sealed, sealed));
            rec.previous_secret_until = Some(Timestamp::now().saturating_add_micros(overlap));
        } else {
            rec.secret_sealed = sealed;
            rec.previous_secret_sealed = None;
            rec.previous_secret_until = None;
        }
        secret = Some(new);
        Ok(())
    })
    .await?;
    state.webhooks.endpoint_changed(&caller.org_id, &id).await;
    let shown = secret.map(|s| expose(rec.format, &s));
    let mut v = endpoint_json(&state, &rec, shown.as_ref());
    v["previous_secret_expires_at"] = json!(rec.previous_secret_until.map(|t| t.to_rfc3339()));
    Ok(json_response(StatusCode::OK, &v))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AttemptsQuery {
    /// `succeeded` or `failed`.
    #[param(value_type = Option<schemas::AttemptStatus>, inline)]
    status: Option<String>,
    /// An attempt id: the attempts after it.
    after: Option<String>,
    /// 1 to 100 (default 25).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    limit: Option<String>,
}

fn attempts_query(q: AttemptsQuery) -> ApiResult<AttemptQuery> {
    let succeeded = match q.status.as_deref() {
        None => None,
        Some("succeeded") => Some(true),
        Some("failed") => Some(false),
        Some(_) => {
            return Err(ApiError::invalid_param(
                "status",
                "status must be succeeded or failed",
            ));
        }
    };
    let after: Option<AttemptId> = match &q.after {
        Some(a) => Some(
            a.parse()
                .map_err(|_| ApiError::invalid_param("after", "after must be an attempt id from this API"))?,
        ),
        None => None,
    };
    Ok(AttemptQuery {
        succeeded,
        after,
        limit: parse_limit(q.limit.as_deref())?,
        ..AttemptQuery::default()
    })
}

async fn attempts_page(state: &AppState, caller: &Caller, q: AttemptQuery) -> ApiResult<Response> {
    let page = state.store.list_attempts(&caller.org_id, &q).await?;
    let next = page
        .attempts
        .last()
        .map(|a| a.id.to_string())
        .or(q.after.map(|a| a.to_string()));
    let data = page.attempts.iter().map(attempt_json).collect();
    Ok(json_response(
        StatusCode::OK,
        &list_json(data, page.has_more, next),
    ))
}

/// An endpoint's delivery attempts, newest first, with what the receiver answered.
#[utoipa::path(
    get,
    path = "/v1/endpoints/{id}/attempts",
    tag = "endpoints",
    operation_id = "list_endpoint_attempts",
    params(("id" = String, Path, description = "An endpoint id (`ep_…`)."), AttemptsQuery),
    responses(
        (status = 200, description = "A page of attempts.", body = schemas::AttemptList),
        Common, KeyAuth, BadRequest, NotFound,
    ),
    security(("api_key" = []), ("bearer" = []), ("apikey_header" = [])),
)]
pub async fn endpoint_attempts(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
    QueryParams(q): QueryParams<AttemptsQuery>,
) -> ApiResult<Response> {
    let id = endpoint_id(path)?;
    load(&state, &caller, &id).await?;
    let mut q = attempts_query(q)?;
    q.endpoint_id = Some(id);
    attempts_page(&state, &caller, q).await
}

fn message_id(path: Result<Path<String>, PathRejection>) -> ApiResult<MessageId> {
    let nf = || ApiError::NotFound("No such message.".into());
    let Path(id) = path.map_err(|_| nf())?;
    id.parse().map_err(|_| nf())
}

/// A message's delivery attempts, across endpoints.
#[utoipa::path(
    get,
    path = "/v1/messages/{id}/attempts",
    tag = "endpoints",
    operation_id = "list_message_attempts",
    params(("id" = String, Path, description = "A message id (`msg_…`)."), AttemptsQuery),
    responses(
        (status = 200, description = "A page of attempts.", body = schemas::AttemptList),
        Common, KeyAuth, BadRequest, NotFound,
    ),
    security(("api_key" = []), ("bearer" = []), ("apikey_header" = [])),
)]
pub async fn message_attempts(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
    QueryParams(q): QueryParams<AttemptsQuery>,
) -> ApiResult<Response> {
    let id = message_id(path)?;
    state
        .store
        .get_message(&caller.org_id, &id)
        .await?
        .ok_or_else(|| ApiError::NotFound("No such message.".into()))?;
    let mut q = attempts_query(q)?;
    q.message_id = Some(id);
    attempts_page(&state, &caller, q).await
}

/// An optional JSON body: empty means `{}`.
fn optional_body<T: serde::de::DeserializeOwned + Default>(b: &Bytes) -> ApiResult<T> {
    if b.iter().all(u8::is_ascii_whitespace) {
        Ok(T::default())
    } else {
        parse_json(b)
    }
}

/// The optional body of `POST /v1/messages/{id}/resend`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResendBody {
    /// Only to this endpoint (default: every endpoint the message matched).
    endpoint_id: Option<String>,
}

/// Queue a message's deliveries again.
#[utoipa::path(
    post,
    path = "/v1/messages/{id}/resend",
    tag = "endpoints",
    operation_id = "resend_message",
    params(("id" = String, Path, description = "A message id (`msg_…`).")),
    request_body = Option<ResendBody>,
    responses(
        (status = 202, description = "Queued.", body = schemas::Resend),
        Common, KeyAuth, Body, NotFound,
    ),
    security(("api_key" = []), ("bearer" = []), ("apikey_header" = [])),
)]
pub async fn resend(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
    RawBody(body): RawBody,
) -> ApiResult<Response> {
    let id = message_id(path)?;
    let b: ResendBody = optional_body(&body)?;
    let ep: Option<EndpointId> = match &b.endpoint_id {
        Some(e) => Some(e.parse().map_err(|_| not_found())?),
        None => None,
    };
    let n = state
        .store
        .resend(&caller.org_id, &id, ep.as_ref())
        .await
        .map_err(|e| match e {
            marquee_store::StoreError::NotFound if ep.is_some() => {
                ApiError::NotFound("No such message or endpoint.".into())
            }
            marquee_store::StoreError::NotFound => ApiError::NotFound("No such message.".into()),
            other => other.into(),
        })?;
    state.webhooks.kick();
    Ok(json_response(
        StatusCode::ACCEPTED,
        &json!({"object": "resend", "message_id": id.as_str(), "queued": n}),
    ))
}

/// The body of `POST /v1/endpoints/{id}/recover`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecoverBody {
    /// RFC 3339: failed deliveries of messages received from then on.
    #[schema(example = "2026-12-01T20:00:00Z")]
    since: String,
    /// RFC 3339, after `since` (default: now).
    until: Option<String>,
}

fn parse_time(param: &str, s: &str) -> ApiResult<Timestamp> {
    Timestamp::parse_rfc3339(s).map_err(|e| ApiError::invalid_param(param, e.to_string()))
}

/// Queue an endpoint's failed deliveries of a time range again.
#[utoipa::path(
    post,
    path = "/v1/endpoints/{id}/recover",
    tag = "endpoints",
    operation_id = "recover_endpoint",
    params(("id" = String, Path, description = "An endpoint id (`ep_…`).")),
    request_body = RecoverBody,
    responses(
        (status = 202, description = "Queued.", body = schemas::Recover),
        Common, KeyAuth, Body, NotFound,
    ),
    security(("api_key" = []), ("bearer" = []), ("apikey_header" = [])),
)]
pub async fn recover(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
    JsonBody(b): JsonBody<RecoverBody>,
) -> ApiResult<Response> {
    let id = endpoint_id(path)?;
    let since = parse_time("since", &b.since)?;
    let until = match &b.until {
        Some(u) => parse_time("until", u)?,
        None => Timestamp::now().saturating_add_micros(1),
    };
    if until <= since {
        return Err(ApiError::invalid_param("until", "until must be after since"));
    }
    load(&state, &caller, &id).await?;
    let n = state.store.recover(&caller.org_id, &id, since, until).await?;
    state.webhooks.kick();
    Ok(json_response(
        StatusCode::ACCEPTED,
        &json!({"object": "recover", "endpoint_id": id.as_str(), "queued": n}),
    ))
}

/// The body of `POST /v1/endpoints/{id}/replay`: exactly one of `since` or
/// `after`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayBody {
    /// RFC 3339: every matching message received from then on.
    since: Option<String>,
    /// A cursor: every matching message after it.
    after: Option<String>,
}

/// Deliver an endpoint's matching messages again from a time or cursor.
///
/// Bounded work per request: a long replay answers `has_more` and the
/// cursor to continue from (`{"after": next_cursor}`).
#[utoipa::path(
    post,
    path = "/v1/endpoints/{id}/replay",
    tag = "endpoints",
    operation_id = "replay_endpoint",
    params(("id" = String, Path, description = "An endpoint id (`ep_…`).")),
    request_body = ReplayBody,
    responses(
        (status = 202, description = "Queued.", body = schemas::Replay),
        Common, KeyAuth, Body, NotFound,
    ),
    security(("api_key" = []), ("bearer" = []), ("apikey_header" = [])),
)]
pub async fn replay(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
    JsonBody(b): JsonBody<ReplayBody>,
) -> ApiResult<Response> {
    let id = endpoint_id(path)?;
    let mut from = match (&b.since, &b.after) {
        (Some(s), None) => ReplayFrom::Since(parse_time("since", s)?),
        (None, Some(a)) => ReplayFrom::AfterSeq(
            a.parse::<Cursor>()
                .map_err(|_| ApiError::invalid_param("after", "after must be a cursor returned by this API"))?
                .seq(),
        ),
        _ => {
            return Err(ApiError::invalid(
                "Give exactly one of since (RFC 3339) or after (a cursor).",
            ));
        }
    };
    load(&state, &caller, &id).await?;
    // One request does a bounded amount of work; a longer replay answers
    // `has_more` with the cursor to continue from (`{"after": next_cursor}`).
    let mut queued = 0u64;
    let mut next = None;
    for _ in 0..REPLAY_CHUNKS_PER_REQUEST {
        let p = state
            .store
            .replay_chunk(&caller.org_id, &id, from, REPLAY_CHUNK)
            .await?;
        queued += p.queued;
        if p.queued > 0 {
            state.webhooks.kick();
        }
        next = p.next;
        match p.next {
            Some(seq) => from = ReplayFrom::AfterSeq(seq),
            None => break,
        }
    }
    Ok(json_response(
        StatusCode::ACCEPTED,
        &json!({
            "object": "replay",
            "endpoint_id": id.as_str(),
            "queued": queued,
            "has_more": next.is_some(),
            "next_cursor": next.map(|s| Cursor::from_seq(s).encode()),
        }),
    ))
}

/// Send a signed test ping to the endpoint now and answer the attempt.
#[utoipa::path(
    post,
    path = "/v1/endpoints/{id}/test",
    tag = "endpoints",
    operation_id = "test_endpoint",
    params(("id" = String, Path, description = "An endpoint id (`ep_…`).")),
    responses(
        (status = 200, description = "The attempt (succeeded or failed).", body = schemas::Attempt),
        Common, KeyAuth, NotFound,
    ),
    security(("api_key" = []), ("bearer" = []), ("apikey_header" = [])),
)]
pub async fn test(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Response> {
    let id = endpoint_id(path)?;
    let rec = load(&state, &caller, &id).await?;
    let attempt = state.webhooks.test_ping(&rec).await.map_err(|e| match e {
        crate::webhooks::dispatcher::DispatchError::Store(s) => ApiError::from(s),
        other => ApiError::Internal(other.to_string()),
    })?;
    Ok(json_response(StatusCode::OK, &attempt_json(&attempt)))
}

/// An endpoint's delivery counts and last-hour success rate.
#[utoipa::path(
    get,
    path = "/v1/endpoints/{id}/stats",
    tag = "endpoints",
    operation_id = "get_endpoint_stats",
    params(("id" = String, Path, description = "An endpoint id (`ep_…`).")),
    responses(
        (status = 200, description = "The stats.", body = schemas::EndpointStats),
        Common, KeyAuth, NotFound,
    ),
    security(("api_key" = []), ("bearer" = []), ("apikey_header" = [])),
)]
pub async fn stats(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Response> {
    let id = endpoint_id(path)?;
    let rec = load(&state, &caller, &id).await?;
    let s = state
        .store
        .endpoint_stats(&caller.org_id, &id, Timestamp::now())
        .await?;
    let rate = if s.attempts_last_hour == 0 {
        Value::Null
    } else {
        json!(s.succeeded_last_hour as f64 / s.attempts_last_hour as f64)
    };
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "object": "endpoint_stats",
            "endpoint_id": id.as_str(),
            "enabled": rec.enabled,
            "delivered": s.delivered,
            "failed": s.exhausted,
            "pending": s.pending,
            "retrying": s.retrying,
            "last_success_at": s.last_success_at.map(|t| t.to_rfc3339()),
            "last_failure_at": s.last_failure_at.map(|t| t.to_rfc3339()),
            "attempts_last_hour": s.attempts_last_hour,
            "success_rate_last_hour": rate,
        }),
    ))
}
