//! The webhook part of the store contract: endpoints, deliveries (created in
//! the publish commit), leases for claiming them, and the attempt log.
//!
//! Claiming is lease based so the same contract works for several nodes on
//! PostgreSQL (`SELECT … FOR UPDATE SKIP LOCKED` + `claimed_until`): a node
//! claims due deliveries by setting `claimed_until = now + lease`; a node
//! that dies simply lets its leases expire and any node claims them again.
//! Attempt results are written in batches ([`WebhookStore::record_attempts`])
//! so durability costs one commit per batch, not one per attempt.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use marquee_core::ids::{AttemptId, DeliveryId, EndpointId, MessageId, OrgId};
use marquee_core::message::{NewMessage, StoredMessage};
use marquee_core::timestamp::Timestamp;
use marquee_core::webhook::{EndpointFilter, ops};
use marquee_core::wire::Format;

use crate::Result;

/// `EndpointRecord::max_in_flight` of an endpoint whose concurrency limit
/// adapts (created without `max_in_flight`). A sentinel in the existing
/// column rather than a schema change; a server that predates it reads it as
/// a fixed limit of 1.
pub const ADAPTIVE_MAX_IN_FLIGHT: u32 = 0;

/// An endpoint as stored. The signing secrets are sealed (encrypted by the
/// server); the store never sees them in the clear.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointRecord {
    pub id: EndpointId,
    pub org_id: OrgId,
    pub url: String,
    pub description: Option<String>,
    pub filter: EndpointFilter,
    pub format: Format,
    /// Deliveries per second; `None` = unlimited.
    pub rate_limit: Option<u32>,
    /// Attempts in flight at most; [`ADAPTIVE_MAX_IN_FLIGHT`] (0) = not set, the server
    /// adapts the limit to the receiver. Stored as is, in the same column.
    pub max_in_flight: u32,
    pub ordered: bool,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub secret_sealed: Vec<u8>,
    pub previous_secret_sealed: Option<Vec<u8>>,
    pub previous_secret_until: Option<Timestamp>,
    /// Start of the current run of failed attempts, if failing.
    pub failing_since: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A page of endpoints.
#[derive(Debug, Clone)]
pub struct EndpointPage {
    pub endpoints: Vec<EndpointRecord>,
    pub has_more: bool,
}

/// Claim up to `limit` due deliveries of one endpoint. For an ordered
/// endpoint only its oldest pending delivery (by commit order) is eligible.
#[derive(Debug, Clone)]
pub struct ClaimRequest {
    pub endpoint_id: EndpointId,
    pub limit: usize,
    pub ordered: bool,
}

/// A leased delivery with the message it carries (shared by the
/// deliveries of one message).
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    pub id: DeliveryId,
    pub endpoint_id: EndpointId,
    /// Failed attempts in the current schedule (the schedule position).
    pub attempts: u32,
    /// Attempts ever made (numbering of the attempt log).
    pub attempt_count: u32,
    pub message: Arc<StoredMessage>,
    /// The lease this process holds on it: it must be attempted well before
    /// then, and only a release naming this exact lease gives it back.
    pub lease_until: Timestamp,
}

/// Receives, after each commit, the deliveries that commit created already
/// leased to this process (see [`WebhookStore::set_delivery_handoff`]).
/// Runs on the committing task or thread: it must be quick and not block.
pub type DeliveryHandoff = Arc<dyn Fn(Vec<ClaimedDelivery>) + Send + Sync>;

/// The terms of the fast path (see [`WebhookStore::set_delivery_handoff`]).
#[derive(Clone)]
pub struct Handoff {
    /// How long a born lease lasts.
    pub lease: Duration,
    /// Receives the born-leased deliveries after each commit.
    pub deliver: DeliveryHandoff,
    /// Endpoints whose new deliveries are *not* born leased for now (their
    /// queue is full): they wait, pending, to be claimed as slots free up,
    /// so a slow endpoint does not cost a lease release per new delivery.
    /// Read once per commit group.
    pub saturated: Arc<std::sync::Mutex<std::collections::HashSet<EndpointId>>>,
}

/// One HTTP attempt, as logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRecord {
    pub id: AttemptId,
    pub delivery_id: DeliveryId,
    pub org_id: OrgId,
    pub endpoint_id: EndpointId,
    /// The message attempted; a test ping's is a `msg_test_…` id that is
    /// never in the log (`ops::test_ids`); `None` on attempts logged before
    /// test pings were marked.
    pub message_id: Option<MessageId>,
    pub attempt_no: u32,
    pub started_at: Timestamp,
    pub duration_us: i64,
    pub status_code: Option<u16>,
    pub succeeded: bool,
    /// `http_status`, `timeout`, `connect`, `tls`, `blocked_address`,
    /// `response_body` or `request` when failed.
    pub error_kind: Option<String>,
    /// A JSON object of selected response headers.
    pub response_headers: String,
    /// The first 4 KiB of the response body (lossy UTF-8).
    pub response_body: String,
}

/// What the attempt does to its delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Delivered,
    Retry {
        next_at: Timestamp,
    },
    /// The last attempt failed (or the receiver answered 410).
    Exhausted,
    /// A test ping: no delivery row to update.
    None,
}

#[derive(Debug, Clone)]
pub struct AttemptOutcome {
    pub attempt: AttemptRecord,
    pub transition: Transition,
    /// The message type (to keep operational messages from looping).
    pub message_type: String,
    /// Disable the endpoint at once (410 Gone) with this reason.
    pub disable: Option<String>,
}

/// Policy the store applies while recording attempts.
#[derive(Debug, Clone, Copy)]
pub struct OutcomePolicy {
    /// Disable an endpoint failing continuously for this long (µs).
    pub disable_after_us: i64,
    /// Publish `message.attempt.failing` after this many failed attempts of
    /// one delivery.
    pub failing_after: u32,
}

/// Endpoints disabled while recording (so the dispatcher stops at once).
#[derive(Debug, Clone, Default)]
pub struct RecordSummary {
    pub disabled: Vec<EndpointId>,
}

#[derive(Debug, Clone, Default)]
pub struct AttemptQuery {
    pub endpoint_id: Option<EndpointId>,
    pub message_id: Option<MessageId>,
    pub succeeded: Option<bool>,
    pub after: Option<AttemptId>,
    pub limit: usize,
}

#[derive(Debug, Clone)]
pub struct AttemptPage {
    pub attempts: Vec<AttemptRecord>,
    pub has_more: bool,
}

/// Where a replay starts.
#[derive(Debug, Clone, Copy)]
pub enum ReplayFrom {
    AfterSeq(u64),
    Since(Timestamp),
}

#[derive(Debug, Clone, Copy)]
pub struct ReplayProgress {
    /// Deliveries (re)queued by this chunk.
    pub queued: u64,
    /// Continue from here; `None` when the log is exhausted.
    pub next: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct EndpointStats {
    pub delivered: u64,
    pub exhausted: u64,
    pub pending: u64,
    /// Pending deliveries that have failed at least once.
    pub retrying: u64,
    pub last_success_at: Option<Timestamp>,
    pub last_failure_at: Option<Timestamp>,
    pub attempts_last_hour: u64,
    pub succeeded_last_hour: u64,
}

#[async_trait]
pub trait WebhookStore: Send + Sync + 'static {
    async fn create_endpoint(&self, ep: EndpointRecord) -> Result<()>;
    async fn get_endpoint(&self, org: &OrgId, id: &EndpointId) -> Result<Option<EndpointRecord>>;
    async fn list_endpoints(
        &self,
        org: &OrgId,
        after: Option<&EndpointId>,
        limit: usize,
    ) -> Result<EndpointPage>;
    /// Every endpoint of every organization (the dispatcher's cache).
    async fn all_endpoints(&self) -> Result<Vec<EndpointRecord>>;
    /// Replaces the endpoint's settings and secrets (not `failing_since`),
    /// but only if it still has the `updated_at` it was read with
    /// (`expected`): otherwise `Conflict` — the dispatcher (or another
    /// request) changed it meanwhile, and the caller reads again. `NotFound`
    /// when it does not exist in `org`. Re-enabling clears the failure run.
    async fn update_endpoint(&self, ep: EndpointRecord, expected: Timestamp) -> Result<()>;
    /// Deletes the endpoint with its deliveries; false when it did not exist.
    async fn delete_endpoint(&self, org: &OrgId, id: &EndpointId) -> Result<bool>;

    /// Leases due deliveries until `lease_until`.
    async fn claim_deliveries(
        &self,
        reqs: Vec<ClaimRequest>,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<Vec<ClaimedDelivery>>;
    /// Drops every lease (a single-node store at start-up: nothing of a
    /// previous process is still in flight).
    async fn release_all_leases(&self) -> Result<u64>;
    /// The fast path. With `Some(handoff)`, every delivery a publish of
    /// *this process* creates for an endpoint that is neither `ordered` nor
    /// `saturated` is inserted already leased to this process for `lease`,
    /// and once the commit is durable it is passed to `deliver` with its
    /// message — no
    /// claim round trip, no lease write. Whatever the receiver does not
    /// attempt it must give back with [`WebhookStore::release_leases`] (or
    /// let the lease expire). `None` stops it (a dispatcher shutting down).
    /// Ordered endpoints are always claimed, so their head-of-line rule
    /// stays in one place.
    fn set_delivery_handoff(&self, handoff: Option<Handoff>);
    /// Gives back leases this process holds and will not use now; the
    /// deliveries become claimable at once. A lease that is no longer the
    /// one given (it expired and another claim took the row) is left alone.
    async fn release_leases(&self, leases: Vec<(DeliveryId, Timestamp)>) -> Result<u64>;
    /// Endpoints with pending deliveries and the earliest `next_at` among them.
    async fn pending_endpoints(&self) -> Result<Vec<(EndpointId, Timestamp)>>;
    /// Logs attempts and moves their deliveries, in one commit.
    async fn record_attempts(
        &self,
        outcomes: Vec<AttemptOutcome>,
        policy: OutcomePolicy,
    ) -> Result<RecordSummary>;

    async fn list_attempts(&self, org: &OrgId, q: &AttemptQuery) -> Result<AttemptPage>;
    /// Queues a message again for one endpoint, or for every enabled endpoint
    /// it matches; `NotFound` when the message is not in the log.
    async fn resend(&self, org: &OrgId, message: &MessageId, endpoint: Option<&EndpointId>) -> Result<u64>;
    /// Re-queues retrying and exhausted deliveries created in `[since, until)`.
    async fn recover(
        &self,
        org: &OrgId,
        endpoint: &EndpointId,
        since: Timestamp,
        until: Timestamp,
    ) -> Result<u64>;
    /// Queues (again) up to `chunk` logged messages matching the endpoint.
    async fn replay_chunk(
        &self,
        org: &OrgId,
        endpoint: &EndpointId,
        from: ReplayFrom,
        chunk: usize,
    ) -> Result<ReplayProgress>;
    async fn endpoint_stats(
        &self,
        org: &OrgId,
        endpoint: &EndpointId,
        now: Timestamp,
    ) -> Result<EndpointStats>;
}

/// µs per bucket of `endpoint_minutes`.
pub(crate) const MINUTE_US: i64 = 60_000_000;

/// The last-hour window of endpoint stats: the current minute and the 59
/// before it (first minute included).
pub(crate) fn hour_window_start(now: Timestamp) -> i64 {
    now.as_micros() / MINUTE_US - 59
}

/// Minutes older than this are pruned from `endpoint_minutes`.
pub(crate) fn minutes_kept_from(now: Timestamp) -> i64 {
    now.as_micros() / MINUTE_US - 120
}

/// Attempts (endpoint, started_at µs, succeeded) per (endpoint, minute):
/// (succeeded, failed), sorted.
pub(crate) fn minute_counts<'a>(
    attempts: impl IntoIterator<Item = (&'a str, i64, bool)>,
) -> Vec<((String, i64), (i64, i64))> {
    let mut m: std::collections::BTreeMap<(String, i64), (i64, i64)> = std::collections::BTreeMap::new();
    for (endpoint, started_at, succeeded) in attempts {
        let e = m
            .entry((endpoint.to_owned(), started_at / MINUTE_US))
            .or_default();
        if succeeded {
            e.0 += 1;
        } else {
            e.1 += 1;
        }
    }
    m.into_iter().collect()
}

/// An operational message (`endpoint.disabled`, …) about `endpoint`, on its
/// `endpoint:<id>` channel; shared by every backend.
pub(crate) fn ops_message(event_type: &str, endpoint: &str, data: serde_json::Value) -> Option<NewMessage> {
    Some(NewMessage {
        id: MessageId::generate(),
        event_type: event_type.parse().ok()?,
        channels: vec![format!("endpoint:{endpoint}").parse().ok()?],
        data: serde_json::value::RawValue::from_string(data.to_string()).ok()?,
        occurred_at: Timestamp::now(),
        idempotency: None,
        dedup: None,
        project: None,
        coalesce: None,
        derived: None,
    })
}

/// The notice a failed attempt produces, if any — `message.attempt.exhausted`,
/// or `message.attempt.failing` at exactly `policy.failing_after` failures —
/// and whether the endpoint is now in a notified failure run; decided the
/// same way by every backend.
pub(crate) fn failure_notice(
    a: &AttemptRecord,
    endpoint: &str,
    exhausted: bool,
    failures: i64,
    policy: &OutcomePolicy,
) -> (Option<NewMessage>, bool) {
    let base = serde_json::json!({
        "endpoint_id": endpoint,
        "message_id": a.message_id.as_ref().map(|m| m.as_str()),
        "delivery_id": a.delivery_id.as_str(),
        "attempts": a.attempt_no,
        "last_status": a.status_code,
        "last_error": a.error_kind,
    });
    if exhausted {
        (ops_message(ops::ATTEMPT_EXHAUSTED, endpoint, base), true)
    } else if failures == i64::from(policy.failing_after) {
        (ops_message(ops::ATTEMPT_FAILING, endpoint, base), true)
    } else {
        (None, false)
    }
}

/// Why an endpoint must be disabled after this outcome, if it must: a 410
/// (`o.disable`) or failures continuing since `since` for longer than the
/// policy allows.
pub(crate) fn disable_reason(
    o: &AttemptOutcome,
    now: i64,
    since: i64,
    policy: &OutcomePolicy,
) -> Option<String> {
    match &o.disable {
        Some(r) => Some(r.clone()),
        None if now - since >= policy.disable_after_us => Some(format!(
            "failing continuously since {}",
            Timestamp::from_micros(since).to_rfc3339()
        )),
        None => None,
    }
}
