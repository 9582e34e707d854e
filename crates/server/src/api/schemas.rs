//! The response objects' schemas for the OpenAPI document.
//!
//! Handlers render their objects with `json!` (field order as written, see
//! README "Objects") or straight to bytes (messages), so these types only
//! describe them; `deny_unknown_fields` makes each schema closed
//! (`additionalProperties: false`) and non-`Option` fields are required, so
//! schemathesis' response conformance check fails the moment a handler and
//! its schema disagree.
#![allow(dead_code)]

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// `{"status": "ok" | "ready"}`.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: String,
}

/// A message in the log.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Message {
    #[schema(example = "message")]
    pub object: String,
    #[schema(example = "msg_01JD7X3K5Q8N2V4W6Y8Z0A2B4C")]
    pub id: String,
    /// The message's position in the log (13 Crockford base32 characters;
    /// string order = log order), for `after=` / `before=`.
    #[schema(example = "0000000000001")]
    pub cursor: String,
    #[serde(rename = "type")]
    #[schema(example = "fan_checkin")]
    pub event_type: String,
    #[schema(example = json!(["venue:stubbs-austin"]))]
    pub channels: Vec<String>,
    /// The JSON object the publisher sent, byte for byte.
    pub data: Value,
    /// RFC 3339.
    pub occurred_at: String,
    /// RFC 3339; non-decreasing in log order.
    pub received_at: String,
}

/// A page of messages.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MessageList {
    #[schema(example = "list")]
    pub object: String,
    pub data: Vec<Message>,
    pub has_more: bool,
    /// Continue with `after=` (ascending) or `before=` (`order=desc`).
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// An endpoint's concurrency: fixed at `max_in_flight`, or adaptive.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Concurrency {
    #[schema(example = "adaptive")]
    pub mode: String,
    /// The limit this node applies now (null on a node that does not deliver).
    #[schema(required = true)]
    pub current: Option<u32>,
    pub cap: u32,
}

/// A webhook endpoint. `secret` (and `identifier`, for formats that sign
/// with one) appear only in the answers of create, rotate and a format
/// change that re-issues the secret.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    #[schema(example = "endpoint")]
    pub object: String,
    #[schema(example = "ep_01JD7X3K5Q8N2V4W6Y8Z0A2B4C")]
    pub id: String,
    pub url: String,
    #[schema(required = true)]
    pub description: Option<String>,
    /// Type filters (`order.completed`, `order.*`); empty = every type.
    pub types: Vec<String>,
    /// Channel filters; empty = every channel.
    pub channels: Vec<String>,
    /// The wire format (`standard`, `revolution`, `eventium`, …).
    pub format: String,
    /// Deliveries per second at most (null: unlimited).
    #[schema(required = true)]
    pub rate_limit: Option<u32>,
    /// Fixed concurrency (null: adaptive).
    #[schema(required = true)]
    pub max_in_flight: Option<u32>,
    pub concurrency: Concurrency,
    pub ordered: bool,
    pub enabled: bool,
    #[schema(required = true)]
    pub disabled_reason: Option<String>,
    #[schema(required = true)]
    pub failing_since: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identifier: Option<String>,
    /// Only in the answer of a rotation: until when the previous secret
    /// still signs (null for formats with one signature per request).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_secret_expires_at: Option<Option<String>>,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointList {
    #[schema(example = "list")]
    pub object: String,
    pub data: Vec<Endpoint>,
    pub has_more: bool,
    /// Continue with `after=`.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// `{"object": "endpoint", "id", "deleted": true}`.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointDeleted {
    #[schema(example = "endpoint")]
    pub object: String,
    pub id: String,
    pub deleted: bool,
}

/// One delivery attempt (or test ping) and what the receiver answered.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Attempt {
    #[schema(example = "attempt")]
    pub object: String,
    pub id: String,
    pub delivery_id: String,
    pub endpoint_id: String,
    #[schema(required = true)]
    pub message_id: Option<String>,
    /// A test ping (`POST /v1/endpoints/{id}/test`), not a message.
    pub test: bool,
    /// 1 for the first attempt of a delivery.
    pub attempt: u32,
    #[schema(example = "failed")]
    pub status: AttemptStatus,
    pub started_at: String,
    pub duration_ms: f64,
    /// The receiver's HTTP status (null: no response).
    #[schema(required = true)]
    pub status_code: Option<u16>,
    /// `timeout`, `connect`, `tls`, `status`, … (null on success).
    #[schema(required = true)]
    pub error_kind: Option<String>,
    #[schema(required = true)]
    pub error: Option<String>,
    /// The receiver's response headers (name → value).
    pub response_headers: std::collections::BTreeMap<String, String>,
    /// The receiver's response body (truncated); empty with no response.
    pub response_body: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AttemptStatus {
    Succeeded,
    Failed,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AttemptList {
    #[schema(example = "list")]
    pub object: String,
    pub data: Vec<Attempt>,
    pub has_more: bool,
    /// Continue with `after=`.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// Deliveries queued again for a message.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Resend {
    #[schema(example = "resend")]
    pub object: String,
    pub message_id: String,
    pub queued: u64,
}

/// Failed deliveries of an endpoint queued again.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Recover {
    #[schema(example = "recover")]
    pub object: String,
    pub endpoint_id: String,
    pub queued: u64,
}

/// Messages of a time range (or after a cursor) queued for an endpoint.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Replay {
    #[schema(example = "replay")]
    pub object: String,
    pub endpoint_id: String,
    pub queued: u64,
    /// Continue with `{"after": next_cursor}`.
    pub has_more: bool,
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointStats {
    #[schema(example = "endpoint_stats")]
    pub object: String,
    pub endpoint_id: String,
    pub enabled: bool,
    pub delivered: u64,
    pub failed: u64,
    pub pending: u64,
    pub retrying: u64,
    #[schema(required = true)]
    pub last_success_at: Option<String>,
    #[schema(required = true)]
    pub last_failure_at: Option<String>,
    pub attempts_last_hour: u64,
    /// null with no attempt in the last hour.
    #[schema(required = true)]
    pub success_rate_last_hour: Option<f64>,
}

/// A type in the organization's catalog: a built-in type of an enabled
/// profile (`source` = the profile) or its own (`source: "organization"`,
/// with timestamps).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventType {
    #[schema(example = "event_type")]
    pub object: String,
    #[serde(rename = "type")]
    #[schema(example = "order.completed")]
    pub event_type: String,
    #[schema(example = "eventium")]
    pub source: String,
    pub description: String,
    /// JSON Schema 2020-12 for the message's `data`.
    pub schema: Value,
    /// JSON pointers whose values together identify a duplicate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dedup: Option<Vec<String>>,
    /// How long a dedup key is remembered (ms); absent: the retention.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dedup_window_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coalesce: Option<Coalesce>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project: Option<Project>,
    /// The attendance rule (door scans, doors opening).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attendance: Option<Value>,
    /// The drop rule (published, claimed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drop: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Coalesce {
    pub key: String,
    pub window_ms: u64,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Project {
    pub kind: String,
    pub id: String,
    #[schema(required = true)]
    pub version: Option<String>,
    /// The RFC 3339 field a platform lists the entities by.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sort: Option<String>,
    pub delete: bool,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventTypeList {
    #[schema(example = "list")]
    pub object: String,
    pub data: Vec<EventType>,
    pub has_more: bool,
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventTypeDeleted {
    #[schema(example = "event_type")]
    pub object: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub deleted: bool,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Organization {
    #[schema(example = "organization")]
    pub object: String,
    #[schema(example = "org_01JD7X3K5Q8N2V4W6Y8Z0A2B4C")]
    pub id: String,
    pub name: String,
    /// Enabled platform profiles (their built-in event types and formats).
    pub profiles: Vec<String>,
    pub created_at: String,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrganizationList {
    #[schema(example = "list")]
    pub object: String,
    pub data: Vec<Organization>,
    pub has_more: bool,
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// An API key (never its secret text, except `key` in the create answer).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKey {
    #[schema(example = "api_key")]
    pub object: String,
    pub id: String,
    pub org_id: String,
    #[schema(example = "pro")]
    pub tier: String,
    #[schema(required = true)]
    pub name: Option<String>,
    /// `sk_live_` + the 4-character public prefix.
    #[schema(example = "sk_live_AbCd")]
    pub prefix: String,
    pub created_at: String,
    #[schema(required = true)]
    pub revoked_at: Option<String>,
    /// This key's own stream connection limit (null: its tier's).
    #[schema(required = true)]
    pub max_stream_connections: Option<u32>,
    /// The per-node stream connection limit in force for this key.
    pub stream_connection_limit: u32,
    /// The key itself: only in the answer of create, shown once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyList {
    #[schema(example = "list")]
    pub object: String,
    pub data: Vec<ApiKey>,
    pub has_more: bool,
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// The request an attempt sent, rebuilt (`GET
/// /v1/messages/{id}/attempts/{attempt_id}/request`): every value the signing
/// secret changes is `"[redacted]"` and named in `redacted`.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AttemptRequest {
    #[schema(example = "attempt_request")]
    pub object: String,
    pub attempt_id: String,
    pub endpoint_id: String,
    /// The endpoint's wire format now (`standard`, `revolution`, …).
    pub format: String,
    #[schema(example = "POST")]
    pub method: String,
    pub url: String,
    /// Request headers, name → value (in the order sent).
    pub headers: std::collections::BTreeMap<String, String>,
    /// The request body as text, or `"[redacted]"` if the secret changes it.
    pub body: String,
    /// Header names whose values were redacted.
    pub redacted: Vec<String>,
}

/// A projected entity: the latest version a catalog type's `project` rule kept.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Entity {
    #[schema(example = "entity")]
    pub object: String,
    pub id: String,
    #[schema(example = "events")]
    pub kind: String,
    /// The `data` of the message that last set it.
    pub data: Value,
    /// RFC 3339.
    pub updated_at: String,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EntityList {
    #[schema(example = "list")]
    pub object: String,
    pub data: Vec<Entity>,
    pub has_more: bool,
    /// Continue with `cursor=`.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErasureStatus {
    Running,
    Completed,
}

/// An erasure of a channel's messages, worked through in the background.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Erasure {
    #[schema(example = "erasure")]
    pub object: String,
    #[schema(example = "era_01JD7X3K5Q8N2V4W6Y8Z0A2B4C")]
    pub id: String,
    pub status: ErasureStatus,
    /// The channel whose messages are erased.
    #[schema(example = "person:p-123")]
    pub channel: String,
    /// Only messages also on this channel (null: all of `channel`'s).
    #[schema(required = true)]
    pub within: Option<String>,
    pub messages_erased: u64,
    /// Messages it covered when accepted.
    pub messages_total: u64,
    pub created_at: String,
    #[schema(required = true)]
    pub completed_at: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErasureList {
    #[schema(example = "list")]
    pub object: String,
    pub data: Vec<Erasure>,
    pub has_more: bool,
    /// Continue with `before=`.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// A milestone an event's attendance reached.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Milestone {
    pub threshold: i64,
    /// The count when it was reached.
    pub count: i64,
    /// RFC 3339: when it was reached.
    pub ts: String,
}

/// An event's attendance, as the publish commit keeps it.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Attendance {
    #[schema(example = "attendance")]
    pub object: String,
    pub event_id: String,
    /// People inside now.
    pub count: i64,
    #[schema(required = true)]
    pub capacity: Option<i64>,
    /// Scans in by gate.
    pub gates: std::collections::BTreeMap<String, i64>,
    pub milestones: Vec<Milestone>,
    #[schema(required = true)]
    pub opened_at: Option<String>,
    #[schema(required = true)]
    pub last_checkin_at: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AttendanceList {
    #[schema(example = "list")]
    pub object: String,
    pub data: Vec<Attendance>,
    pub has_more: bool,
    /// Continue with `cursor=`.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// The organization's milestone thresholds.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AttendanceSettings {
    #[schema(example = "attendance_settings")]
    pub object: String,
    /// Head counts (sorted, without repeats).
    pub thresholds: Vec<u64>,
    /// Percentages of capacity (sorted, without repeats).
    pub capacity_percents: Vec<u32>,
    /// null while the defaults apply.
    #[schema(required = true)]
    pub updated_at: Option<String>,
}
