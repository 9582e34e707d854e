//! Eventory's HTTP and stream surface (reference 001): `GET /eventory/ping`,
//! the watchlist API `/eventory/watchlist` (the document names the fields
//! but no API; marquee's design is in the README), and the two WebSocket
//! endpoints `/eventory/notifications/subscribe[/filtered]`.
//!
//! Identity: the API key. Its watchlist, its cooldowns and every connection
//! opened with it belong together, so several connections of one key share
//! one dedup state (the document's §7). The key is read only from the
//! `apikey` header of the upgrade; a query-string key is refused here.
//!
//! Notifications are ordinary log messages (`inventory.notification` on
//! `event:<event_id>`: computed from snapshots by the store's append, or
//! published ready-made). A connection subscribes the bus topic of every
//! event on its watchlist before the upgrade is answered, so a client whose
//! handshake completed misses nothing; it parses each notification once
//! per node ([`NoticeCache`]), applies its entries, then claims the
//! cooldown in the store (atomic, shared by all nodes) and only then sends
//! the envelope's own bytes. Back-pressure is the native stream's: bounded
//! rings per topic, 4008 "slow consumer" when the backlog passes the limits.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::rejection::PathRejection;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt;
use marquee_core::ids::{KeyId, MessageId, OrgId};
use marquee_core::names::Channel;
use marquee_core::profile::eventory::NOTIFICATION_TYPE;
use marquee_core::profile::eventory::watch::{Entry, FIELDS, Notice};
use marquee_core::timestamp::Timestamp;
use marquee_store::eventory::WatchRecord;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::endpoints::{json_response, list_json};
use crate::api::openapi::{BadRequest, Body, Common, KeyAuth, NotFound, StreamForbidden};
use crate::api::schemas;
use crate::auth::{self, Caller};
use crate::error::{ApiError, ApiResult};
use crate::extract::JsonBody;
use crate::state::AppState;
use crate::stream::bus::{Frame, Lagged};
use crate::stream::close_code;
use crate::stream::subs::{Sub, Subs, over_limit};
use crate::stream::ws::{admit, stopped, watched};

/// Eventory settings (`--eventory-*`).
#[derive(Debug, Clone)]
pub struct EventoryConfig {
    /// The same content is not sent to one identity again within this.
    pub cooldown: Duration,
    /// Watchlist entries per identity.
    pub max_entries: usize,
}

impl Default for EventoryConfig {
    fn default() -> Self {
        EventoryConfig {
            cooldown: Duration::from_secs(15 * 60),
            max_entries: 100,
        }
    }
}

#[derive(clap::Args, Debug, Clone)]
pub struct EventoryArgs {
    /// Eventory: how long a notification with the same content is not sent
    /// again to the same identity (API key).
    #[arg(long, env = "MARQUEE_EVENTORY_COOLDOWN", default_value = "15m", value_parser = parse_duration)]
    pub eventory_cooldown: Duration,
    /// Eventory: watchlist entries per identity (API key), 1 to 1000.
    #[arg(long, env = "MARQUEE_EVENTORY_MAX_WATCHLIST", default_value_t = 100,
          value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub eventory_max_watchlist: u16,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    marquee_core::duration::parse(s).map_err(|e| e.to_string())
}

impl EventoryArgs {
    pub fn into_config(self) -> EventoryConfig {
        EventoryConfig {
            cooldown: self.eventory_cooldown,
            max_entries: self.eventory_max_watchlist as usize,
        }
    }
}

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(ping))
        .routes(routes!(list, create))
        .routes(routes!(get_one, update, remove))
        .routes(routes!(subscribe))
        .routes(routes!(subscribe_filtered))
}

/// Liveness (Eventory's `GET /ping`).
#[utoipa::path(
    get,
    path = "/eventory/ping",
    tag = "eventory",
    operation_id = "eventory_ping",
    responses(
        (status = 200, description = "`{\"status\": \"ok\"}`.", body = schemas::Health),
        Common,
    ),
    security(()),
)]
async fn ping() -> Response {
    json_response(StatusCode::OK, &json!({"status": "ok"}))
}

// ---- Watchlists ----

/// Bumped on every watchlist change made on this node, so that node's
/// connections of the identity reload at once (others reload every
/// [`RELOAD_EVERY`]).
fn generations() -> &'static Mutex<HashMap<KeyId, u64>> {
    static G: OnceLock<Mutex<HashMap<KeyId, u64>>> = OnceLock::new();
    G.get_or_init(|| Mutex::new(HashMap::new()))
}

fn generation(key: &KeyId) -> u64 {
    generations()
        .lock()
        .map(|g| g.get(key).copied().unwrap_or(0))
        .unwrap_or(0)
}

fn bump(key: &KeyId) {
    if let Ok(mut g) = generations().lock() {
        *g.entry(key.clone()).or_insert(0) += 1;
    }
}

/// The optional event-date window of an entry (at least one bound).
#[derive(serde::Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = eventory::DateFilter)]
#[allow(dead_code)]
struct DateFilterSchema {
    /// RFC 3339.
    #[schema(format = DateTime, nullable = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    from: Option<String>,
    /// RFC 3339.
    #[schema(format = DateTime, nullable = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    to: Option<String>,
}

/// A watchlist entry to create: `event_id` is required, every other field
/// optional (`null` = absent, its default). What each filter means is in the
/// README ("Eventory").
#[derive(serde::Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = eventory::WatchlistEntryBody)]
#[allow(dead_code)]
struct EntryBody {
    /// The event to watch (1 to 128 letters, digits, `-`, `_` or `.`).
    #[schema(pattern = "^[A-Za-z0-9._-]{1,128}$", example = "evt-123")]
    event_id: String,
    /// The change-type key (default `stock_increase`).
    #[schema(nullable = true, pattern = "^[a-z0-9_]{1,64}$", example = "stock_increase")]
    change_type: Option<String>,
    #[schema(nullable = true, minimum = 0, maximum = 1_000_000_000)]
    min_price_filter: Option<f64>,
    #[schema(nullable = true, minimum = 0, maximum = 1_000_000_000)]
    max_price_filter: Option<f64>,
    #[schema(nullable = true, minimum = 0, maximum = 1_000_000)]
    stock_threshold_filter: Option<u64>,
    #[schema(nullable = true, minimum = 1, maximum = 100)]
    seat_quantity: Option<u64>,
    #[schema(nullable = true, min_length = 1, max_length = 128)]
    section: Option<String>,
    #[schema(nullable = true, min_items = 1, max_items = 20)]
    keywords: Option<Vec<String>>,
    #[schema(nullable = true)]
    standard_tickets: Option<bool>,
    #[schema(nullable = true)]
    resale_tickets: Option<bool>,
    #[schema(nullable = true)]
    general_admission_tickets: Option<bool>,
    #[schema(nullable = true)]
    platinum_tickets: Option<bool>,
    #[schema(nullable = true)]
    date_filter: Option<DateFilterSchema>,
    #[schema(nullable = true, min_length = 1, max_length = 32)]
    row_filter: Option<String>,
    /// RFC 3339: no notifications for it before then.
    #[schema(nullable = true, format = DateTime)]
    muted_until: Option<String>,
}

/// A merge patch of an entry: given fields replace, `null` removes (back to
/// the default), absent ones stay; the result is validated whole.
#[derive(serde::Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = eventory::WatchlistEntryPatch)]
#[allow(dead_code)]
struct EntryPatch {
    #[schema(pattern = "^[A-Za-z0-9._-]{1,128}$")]
    event_id: Option<String>,
    #[schema(nullable = true, pattern = "^[a-z0-9_]{1,64}$")]
    change_type: Option<String>,
    #[schema(nullable = true, minimum = 0, maximum = 1_000_000_000)]
    min_price_filter: Option<f64>,
    #[schema(nullable = true, minimum = 0, maximum = 1_000_000_000)]
    max_price_filter: Option<f64>,
    #[schema(nullable = true, minimum = 0, maximum = 1_000_000)]
    stock_threshold_filter: Option<u64>,
    #[schema(nullable = true, minimum = 1, maximum = 100)]
    seat_quantity: Option<u64>,
    #[schema(nullable = true, min_length = 1, max_length = 128)]
    section: Option<String>,
    #[schema(nullable = true, min_items = 1, max_items = 20)]
    keywords: Option<Vec<String>>,
    #[schema(nullable = true)]
    standard_tickets: Option<bool>,
    #[schema(nullable = true)]
    resale_tickets: Option<bool>,
    #[schema(nullable = true)]
    general_admission_tickets: Option<bool>,
    #[schema(nullable = true)]
    platinum_tickets: Option<bool>,
    #[schema(nullable = true)]
    date_filter: Option<DateFilterSchema>,
    #[schema(nullable = true, min_length = 1, max_length = 32)]
    row_filter: Option<String>,
    #[schema(nullable = true, format = DateTime)]
    muted_until: Option<String>,
}

/// A watchlist entry: every field, absent ones null.
#[derive(serde::Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = eventory::WatchlistEntry)]
#[allow(dead_code)]
struct EntrySchema {
    #[schema(example = "watchlist_entry")]
    object: String,
    #[schema(example = "wl_01JD7X3K5Q8N2V4W6Y8Z0A2B4C")]
    id: String,
    event_id: String,
    change_type: String,
    #[schema(required = true)]
    min_price_filter: Option<f64>,
    #[schema(required = true)]
    max_price_filter: Option<f64>,
    #[schema(required = true)]
    stock_threshold_filter: Option<u64>,
    #[schema(required = true)]
    seat_quantity: Option<u64>,
    #[schema(required = true)]
    section: Option<String>,
    #[schema(required = true)]
    keywords: Option<Vec<String>>,
    #[schema(required = true)]
    standard_tickets: Option<bool>,
    #[schema(required = true)]
    resale_tickets: Option<bool>,
    #[schema(required = true)]
    general_admission_tickets: Option<bool>,
    #[schema(required = true)]
    platinum_tickets: Option<bool>,
    #[schema(required = true)]
    date_filter: Option<DateFilterSchema>,
    #[schema(required = true)]
    row_filter: Option<String>,
    #[schema(required = true)]
    muted_until: Option<String>,
    created_at: String,
    updated_at: String,
}

/// The key's whole watchlist (one page: it is capped).
#[derive(serde::Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = eventory::WatchlistEntryList)]
#[allow(dead_code)]
struct EntryList {
    #[schema(example = "list")]
    object: String,
    data: Vec<EntrySchema>,
    /// Always false.
    has_more: bool,
    /// Always null.
    #[schema(required = true)]
    next_cursor: Option<String>,
}

#[derive(serde::Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = eventory::WatchlistEntryDeleted)]
#[allow(dead_code)]
struct EntryDeleted {
    id: String,
    deleted: bool,
}

fn entry_json(r: &WatchRecord) -> Value {
    let mut m = Map::new();
    m.insert("object".into(), json!("watchlist_entry"));
    m.insert("id".into(), json!(r.id));
    // Every field, in the documented order; absent ones are null.
    let e = match serde_json::from_str::<Value>(&r.entry) {
        Ok(Value::Object(e)) => e,
        _ => Map::new(),
    };
    for f in FIELDS {
        m.insert(f.into(), e.get(f).cloned().unwrap_or(Value::Null));
    }
    m.insert("created_at".into(), json!(r.created_at.to_rfc3339()));
    m.insert("updated_at".into(), json!(r.updated_at.to_rfc3339()));
    Value::Object(m)
}

fn not_found() -> ApiError {
    ApiError::NotFound("No such watchlist entry.".into())
}

/// Validates a body into an entry (every field; the event id must also be
/// a channel id, as notifications travel on `event:<event_id>`).
fn validate(body: &Value) -> ApiResult<Entry> {
    let obj = body
        .as_object()
        .ok_or_else(|| ApiError::invalid("A watchlist entry is a JSON object."))?;
    let e = Entry::from_json(obj).map_err(|i| ApiError::invalid_param(i.param, i.message))?;
    if Channel::from_parts("event", &e.event_id).is_err() {
        return Err(ApiError::invalid_param(
            "event_id",
            "event_id must be 1 to 128 letters, digits, '-', '_' or '.'",
        ));
    }
    Ok(e)
}

fn entry_text(e: &Entry) -> String {
    serde_json::to_string(e).unwrap_or_default()
}

/// The API key's watchlist.
#[utoipa::path(
    get,
    path = "/eventory/watchlist",
    tag = "eventory",
    operation_id = "eventory_list_watchlist",
    responses(
        (status = 200, description = "Every entry of this key's watchlist, oldest first.", body = EntryList),
        Common, KeyAuth,
    ),
    security(("api_key" = []), ("bearer" = []), ("apikey_header" = [])),
)]
async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<Response> {
    let v = state.store.eventory_watch_list(&caller.key_id).await?;
    let data = v.iter().map(entry_json).collect();
    Ok(json_response(StatusCode::OK, &list_json(data, false, None)))
}

/// Add an entry to the API key's watchlist.
///
/// A full watchlist (`--eventory-max-watchlist`) answers 400.
#[utoipa::path(
    post,
    path = "/eventory/watchlist",
    tag = "eventory",
    operation_id = "eventory_create_watchlist_entry",
    request_body = EntryBody,
    responses(
        (status = 201, description = "Created.", body = EntrySchema),
        Common, KeyAuth, Body,
    ),
    security(("api_key" = []), ("bearer" = []), ("apikey_header" = [])),
)]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult<Response> {
    let e = validate(&body)?;
    let now = Timestamp::now();
    let id = format!("wl_{}", MessageId::generate().as_str().trim_start_matches("msg_"));
    let rec = WatchRecord {
        id,
        org_id: caller.org_id.clone(),
        key_id: caller.key_id.clone(),
        entry: entry_text(&e),
        created_at: now,
        updated_at: now,
    };
    let max = state.config.eventory.max_entries;
    let Some(rec) = state.store.eventory_watch_create(rec, max).await? else {
        return Err(ApiError::invalid(format!(
            "This API key's watchlist holds its maximum of {max} entries; delete one first."
        )));
    };
    bump(&caller.key_id);
    Ok(json_response(StatusCode::CREATED, &entry_json(&rec)))
}

fn id_of(path: Result<Path<String>, PathRejection>) -> ApiResult<String> {
    let Path(id) = path.map_err(|_| not_found())?;
    if !id.starts_with("wl_") || id.len() > 64 || id.contains('\0') {
        return Err(not_found());
    }
    Ok(id)
}

/// Fetch a watchlist entry.
#[utoipa::path(
    get,
    path = "/eventory/watchlist/{id}",
    tag = "eventory",
    operation_id = "eventory_get_watchlist_entry",
    params(("id" = String, Path, description = "A watchlist entry id (`wl_…`).")),
    responses(
        (status = 200, description = "The entry.", body = EntrySchema),
        Common, KeyAuth, NotFound,
    ),
    security(("api_key" = []), ("bearer" = []), ("apikey_header" = [])),
)]
async fn get_one(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Response> {
    let id = id_of(path)?;
    let r = state
        .store
        .eventory_watch_get(&caller.key_id, &id)
        .await?
        .ok_or_else(not_found)?;
    Ok(json_response(StatusCode::OK, &entry_json(&r)))
}

/// Change a watchlist entry (a merge patch).
///
/// Given fields replace, `null` removes (back to the default), absent ones
/// stay; the result is validated whole.
#[utoipa::path(
    patch,
    path = "/eventory/watchlist/{id}",
    tag = "eventory",
    operation_id = "eventory_update_watchlist_entry",
    params(("id" = String, Path, description = "A watchlist entry id (`wl_…`).")),
    request_body = EntryPatch,
    responses(
        (status = 200, description = "The entry as changed.", body = EntrySchema),
        Common, KeyAuth, Body, NotFound,
    ),
    security(("api_key" = []), ("bearer" = []), ("apikey_header" = [])),
)]
async fn update(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult<Response> {
    let id = id_of(path)?;
    let patch = body
        .as_object()
        .ok_or_else(|| ApiError::invalid("A watchlist patch is a JSON object."))?;
    let r = state
        .store
        .eventory_watch_get(&caller.key_id, &id)
        .await?
        .ok_or_else(not_found)?;
    let mut merged = match serde_json::from_str::<Value>(&r.entry) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    for (k, v) in patch {
        merged.insert(k.clone(), v.clone());
    }
    let e = validate(&Value::Object(merged))?;
    let r = state
        .store
        .eventory_watch_update(&caller.key_id, &id, &entry_text(&e))
        .await?
        .ok_or_else(not_found)?;
    bump(&caller.key_id);
    Ok(json_response(StatusCode::OK, &entry_json(&r)))
}

/// Delete a watchlist entry.
#[utoipa::path(
    delete,
    path = "/eventory/watchlist/{id}",
    tag = "eventory",
    operation_id = "eventory_delete_watchlist_entry",
    params(("id" = String, Path, description = "A watchlist entry id (`wl_…`).")),
    responses(
        (status = 200, description = "Deleted.", body = EntryDeleted),
        Common, KeyAuth, NotFound,
    ),
    security(("api_key" = []), ("bearer" = []), ("apikey_header" = [])),
)]
async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Response> {
    let id = id_of(path)?;
    if !state.store.eventory_watch_delete(&caller.key_id, &id).await? {
        return Err(not_found());
    }
    bump(&caller.key_id);
    Ok(json_response(StatusCode::OK, &json!({"id": id, "deleted": true})))
}

// ---- The stream ----

/// How often a connection re-reads its watchlist even without a local change
/// (a change made through another node).
const RELOAD_EVERY: Duration = Duration::from_secs(10);
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Notifications parsed once per node, shared by every connection they
/// are offered to (by organization and `seq`; the last few hundred; the
/// organization too because several servers may share one process, as in
/// the tests).
struct Parsed {
    notice: Notice,
    /// The envelope's bytes, as stored: the frame every client receives.
    text: Utf8Bytes,
}

const CACHE: usize = 512;

type Cached = (OrgId, u64, Option<Arc<Parsed>>);

fn cache() -> &'static Mutex<VecDeque<Cached>> {
    static C: OnceLock<Mutex<VecDeque<Cached>>> = OnceLock::new();
    C.get_or_init(|| Mutex::new(VecDeque::with_capacity(CACHE)))
}

#[derive(Deserialize)]
struct NativeFrame<'a> {
    #[serde(rename = "type")]
    event_type: &'a str,
    #[serde(borrow)]
    payload: &'a RawValue,
}

/// The notification a live frame carries (`None`: another type, e.g. the
/// snapshot itself, or not an envelope).
fn parsed(org: &OrgId, f: &Frame) -> Option<Arc<Parsed>> {
    if let Ok(c) = cache().lock()
        && let Some((_, _, p)) = c.iter().rev().find(|(o, s, _)| *s == f.seq && o == org)
    {
        return p.clone();
    }
    let p = serde_json::from_str::<NativeFrame<'_>>(f.text.as_str())
        .ok()
        .filter(|n| n.event_type == NOTIFICATION_TYPE)
        .and_then(|n| {
            Some(Arc::new(Parsed {
                notice: Notice::parse(n.payload.get())?,
                text: Utf8Bytes::from(n.payload.get().to_owned()),
            }))
        });
    if let Ok(mut c) = cache().lock() {
        if c.len() >= CACHE {
            c.pop_front();
        }
        c.push_back((org.clone(), f.seq, p.clone()));
    }
    p
}

/// Eventory's notification stream (WebSocket; basic filtering).
///
/// Upgrade with the key in the `apikey` header (a key in the query string
/// is refused); each watched event's notifications arrive as the document's
/// envelopes, filtered by event and `change_type`. Needs a pro or
/// enterprise key. Without an upgrade the request answers 400.
#[utoipa::path(
    get,
    path = "/eventory/notifications/subscribe",
    tag = "eventory",
    operation_id = "eventory_subscribe",
    responses(
        (status = 101, description = "Switching to the WebSocket protocol."),
        Common, KeyAuth, BadRequest, StreamForbidden,
    ),
    security(("apikey_header" = [])),
)]
async fn subscribe(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    open(state, query, headers, upgrade, false)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// Eventory's notification stream (WebSocket; every entry filter applied).
///
/// As `/eventory/notifications/subscribe`, with every field of the
/// watchlist entries applied (prices, sections, dates, mutes, …).
#[utoipa::path(
    get,
    path = "/eventory/notifications/subscribe/filtered",
    tag = "eventory",
    operation_id = "eventory_subscribe_filtered",
    responses(
        (status = 101, description = "Switching to the WebSocket protocol."),
        Common, KeyAuth, BadRequest, StreamForbidden,
    ),
    security(("apikey_header" = [])),
)]
async fn subscribe_filtered(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    open(state, query, headers, upgrade, true)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

const HEADER_ONLY: &str = "Send the API key in the apikey header of the WebSocket upgrade.";

async fn open(
    state: AppState,
    query: Option<String>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    filtered: bool,
) -> ApiResult<Response> {
    let in_query = query.as_deref().is_some_and(|q| {
        serde_urlencoded::from_str::<Vec<(String, String)>>(q)
            .map(|v| v.iter().any(|(k, _)| k.eq_ignore_ascii_case("apikey")))
            .unwrap_or(true)
    });
    if in_query {
        return Err(ApiError::InvalidApiKey(
            "A key in the query string is refused here: send it in the apikey header of the WebSocket upgrade.",
        ));
    }
    let key = headers.get("apikey").and_then(|v| v.to_str().ok()).map(str::trim);
    if key.is_none() {
        return Err(ApiError::InvalidApiKey(HEADER_ONLY));
    }
    let caller = auth::authenticate(&state, key).await?;
    if !caller.tier.can_stream() {
        return Err(ApiError::Forbidden(
            "Streaming needs a pro or enterprise key; this key is free tier.".into(),
        ));
    }
    let Ok(upgrade) = upgrade else {
        return Err(ApiError::invalid(
            "This endpoint upgrades to a WebSocket (GET with Upgrade: websocket).",
        ));
    };
    let hub = state.streams.clone();
    let mut guard = admit(&hub, &caller)?;
    let stop = guard.stop_signal();
    let mut conn = Conn {
        state: state.clone(),
        org: caller.org_id.clone(),
        key: caller.key_id.clone(),
        filtered,
        entries: Vec::new(),
        subs: Subs::default(),
        generation: 0,
        loaded_at: Instant::now(),
    };
    // Subscribed before the handshake completes: nothing committed after the
    // client's connect returned is missed.
    conn.reload().await?;
    let cfg = &hub.config;
    Ok(upgrade
        .read_buffer_size(cfg.read_buffer_bytes)
        .max_message_size(cfg.max_inbound_bytes)
        .max_frame_size(cfg.max_inbound_bytes)
        .on_upgrade(move |socket| async move {
            let _guard = guard;
            conn.serve(socket, stop).await;
        }))
}

type Close = Option<(u16, &'static str)>;

struct Conn {
    state: AppState,
    org: OrgId,
    key: KeyId,
    filtered: bool,
    entries: Vec<Entry>,
    subs: Subs,
    generation: u64,
    loaded_at: Instant,
}

enum Event {
    Shutdown,
    Tick,
    Inbound(Option<Result<Message, axum::Error>>),
    Live(usize, Option<Result<Frame, Lagged>>),
}

static CLAIMS: AtomicU64 = AtomicU64::new(0);

impl Conn {
    /// Reads the watchlist and subscribes (only) the events on it.
    async fn reload(&mut self) -> ApiResult<()> {
        self.generation = generation(&self.key);
        self.loaded_at = Instant::now();
        let recs = self.state.store.eventory_watch_list(&self.key).await?;
        self.entries = recs
            .iter()
            .filter_map(|r| serde_json::from_str::<Entry>(&r.entry).ok())
            .collect();
        let mut want: Vec<Channel> = Vec::new();
        for e in &self.entries {
            if let Ok(c) = Channel::from_parts("event", &e.event_id)
                && !want.contains(&c)
            {
                want.push(c);
            }
        }
        want.truncate(self.state.streams.config.max_subscriptions.max(1));
        self.subs.list.retain(|s| want.contains(&s.channel));
        self.subs.next = 0;
        for c in want {
            if self.subs.position(&c).is_some() {
                continue;
            }
            let stream = self
                .state
                .streams
                .bus
                .subscribe(&self.org, &c)
                .await
                .map_err(|e| {
                    ApiError::Unavailable(format!("Live delivery is unavailable ({e}); retry shortly."))
                })?;
            self.subs.list.push(Sub {
                channel: c,
                stream,
                last_seq: 0,
            });
        }
        Ok(())
    }

    async fn serve(mut self, mut socket: WebSocket, mut stop: Option<crate::stream::StopSignal>) {
        let close = self.run(&mut socket, &mut stop).await;
        if let Some((code, reason)) = close {
            let frame = CloseFrame {
                code,
                reason: Utf8Bytes::from_static(reason),
            };
            let _ = tokio::time::timeout(
                CLOSE_GRACE,
                Box::pin(async {
                    socket.send(Message::Close(Some(frame))).await?;
                    while let Some(m) = socket.next().await {
                        if let Message::Close(_) = m? {
                            break;
                        }
                    }
                    Ok::<(), axum::Error>(())
                }),
            )
            .await;
        }
    }

    async fn run(&mut self, socket: &mut WebSocket, stop: &mut Option<crate::stream::StopSignal>) -> Close {
        let cfg = self.state.streams.config.clone();
        let ping_every = cfg
            .ping_interval
            .min(cfg.idle_timeout / 2)
            .max(Duration::from_millis(10));
        let mut tick = tokio::time::interval(ping_every.min(Duration::from_secs(1)));
        let mut last_ping = Instant::now();
        let mut last_heard = Instant::now();
        loop {
            let event = tokio::select! {
                biased;
                () = stopped(stop) => Event::Shutdown,
                _ = tick.tick() => Event::Tick,
                m = socket.next() => Event::Inbound(m),
                (i, item) = self.subs.next_frame() => Event::Live(i, item),
            };
            match event {
                Event::Shutdown => return Some((close_code::GOING_AWAY, "server shutting down")),
                Event::Tick => {
                    if last_heard.elapsed() >= cfg.idle_timeout {
                        return Some((close_code::IDLE_TIMEOUT, "idle timeout"));
                    }
                    if (generation(&self.key) != self.generation || self.loaded_at.elapsed() >= RELOAD_EVERY)
                        && Box::pin(self.reload()).await.is_err()
                    {
                        return Some((close_code::INTERNAL_ERROR, "watchlist unavailable"));
                    }
                    if last_ping.elapsed() >= ping_every {
                        last_ping = Instant::now();
                        if self.state.streams.key_revoked(&self.state.store, &self.key).await {
                            return Some((close_code::KEY_REVOKED, "api key revoked"));
                        }
                        let ping = async { socket.send(Message::Ping(Bytes::new())).await };
                        if let Err(c) = Box::pin(watched(ping, &self.subs, &cfg)).await {
                            return c;
                        }
                    }
                }
                Event::Inbound(m) => match m {
                    None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return None,
                    // The document defines no client messages: anything
                    // read only proves the peer is alive.
                    Some(Ok(_)) => last_heard = Instant::now(),
                },
                Event::Live(i, item) => {
                    let f = match item {
                        Some(Ok(f)) => f,
                        Some(Err(Lagged(_))) => return Some((close_code::SLOW_CONSUMER, "slow consumer")),
                        None => return Some((close_code::INTERNAL_ERROR, "live feed ended")),
                    };
                    let sub = &mut self.subs.list[i];
                    if f.seq <= sub.last_seq {
                        continue;
                    }
                    sub.last_seq = f.seq;
                    if over_limit(self.subs.backlog(), &cfg) {
                        return Some((close_code::SLOW_CONSUMER, "slow consumer"));
                    }
                    if let Err(c) = Box::pin(self.offer(socket, &f)).await {
                        return c;
                    }
                }
            }
        }
    }

    /// Applies the entries and the cooldown to one live frame; sends the
    /// envelope once if it passes.
    async fn offer(&mut self, socket: &mut WebSocket, f: &Frame) -> Result<(), Close> {
        let Some(p) = parsed(&self.org, f) else {
            return Ok(());
        };
        let now = Timestamp::now();
        let hit = self.entries.iter().any(|e| {
            if self.filtered {
                e.admits(&p.notice, now)
            } else {
                e.admits_basic(&p.notice)
            }
        });
        if !hit {
            return Ok(());
        }
        let window = i64::try_from(self.state.config.eventory.cooldown.as_micros()).unwrap_or(i64::MAX);
        match self
            .state
            .store
            .eventory_cooldown_claim(&self.key, p.notice.content, now.as_micros(), window)
            .await
        {
            Ok(true) => {}
            Ok(false) => return Ok(()),
            // Better a duplicate than a lost notification.
            Err(e) => tracing::warn!(error = %e, "eventory cooldown claim failed; sending anyway"),
        }
        if CLAIMS.fetch_add(1, Ordering::Relaxed) % 4096 == 4095 {
            let store = self.state.store.clone();
            let before = now.as_micros().saturating_sub(window);
            tokio::spawn(async move {
                if let Err(e) = store.eventory_cooldown_prune(before).await {
                    tracing::warn!(error = %e, "pruning eventory cooldowns failed");
                }
            });
        }
        let cfg = self.state.streams.config.clone();
        watched(socket.send(Message::Text(p.text.clone())), &self.subs, &cfg).await
    }
}
