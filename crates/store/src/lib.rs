//! marquee's durable store.
//!
//! [`Store`] is the one interface the server uses for durable state:
//! organizations, API keys, the message log and idempotency records. It is
//! object-safe (`Arc<dyn Store>`) and says nothing about SQL dialects, so the
//! embedded SQLite backend ([`sqlite`]) and the PostgreSQL backend that the
//! scale-out work adds implement the same contract and run the same
//! conformance tests.
//!
//! Ordering contract: every committed message gets a `seq`, strictly
//! increasing in commit order. A reader that has seen `seq = n` will never
//! later see a newly committed message with `seq <= n`. Cursors are built on
//! this, so following `next_cursor` never skips a message.

use std::sync::Arc;

use async_trait::async_trait;
use marquee_core::Tier;
use marquee_core::apikey::KeyDigest;
use marquee_core::ids::{ErasureId, KeyId, MessageId, OrgId};
use marquee_core::message::{Idempotency, NewMessage, StoredMessage};
use marquee_core::timestamp::Timestamp;

pub mod attendance;
pub mod coalesce;
pub mod erasure;
pub mod eventory;
mod hooks;
pub mod metrics;
mod plan;
pub mod postgres;
pub mod rules;
pub mod sqlite;
pub mod webhooks;

/// How long an idempotency key is remembered.
pub const IDEMPOTENCY_TTL_MICROS: i64 = 24 * 3600 * 1_000_000;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The request conflicts with stored state (e.g. an idempotency key
    /// reused with a different body).
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("not found")]
    NotFound,
    /// The store cannot serve right now (shutting down, writer gone).
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A bound on stored state was reached (coalescing's pending rows per
    /// organization); the text is for clients.
    #[error("limit reached: {0}")]
    Limit(String),
    /// A value the store cannot hold (PostgreSQL text refuses NUL); the
    /// text is for clients. The API refuses such values before they reach
    /// the store: this is the backstop.
    #[error("invalid value: {0}")]
    Invalid(String),
    /// Anything else; the text is for logs, never for clients.
    #[error("store internal error: {0}")]
    Internal(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Org {
    pub id: OrgId,
    pub name: String,
    /// Enabled profiles, sorted and unique (names are validated by the
    /// server, not the store).
    pub profiles: Vec<String>,
    pub created_at: Timestamp,
}

/// An event type an organization defined. `schema` is JSON text, stored as
/// given (compiled and validated by the server).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventTypeRecord {
    pub name: String,
    pub description: String,
    pub schema: String,
    /// The type's per-type rules as JSON text (`dedup`, `coalesce`,
    /// `project`, `attendance`, `drop`; checked by the server before it is
    /// stored), `None` when it has none.
    pub rules: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// Profiles as stored: sorted, without repeats.
pub fn normalize_profiles(profiles: &[String]) -> Vec<String> {
    let mut v = profiles.to_vec();
    v.sort();
    v.dedup();
    v
}

/// An API key's stored, non-secret record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    pub id: KeyId,
    pub org_id: OrgId,
    pub tier: Tier,
    pub name: Option<String>,
    pub public_prefix: String,
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
    /// Concurrent stream connections allowed per node; `None`: the tier's
    /// default (server configuration).
    pub max_stream_connections: Option<u32>,
}

/// A key row as needed to authenticate: the record plus its digest.
#[derive(Debug, Clone)]
pub struct KeyCandidate {
    pub record: ApiKeyRecord,
    pub digest: Vec<u8>,
}

/// What to store when creating a key; the plaintext never reaches the store.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub id: KeyId,
    pub org_id: OrgId,
    pub tier: Tier,
    pub name: Option<String>,
    pub public_prefix: String,
    pub digest: KeyDigest,
    /// See [`ApiKeyRecord::max_stream_connections`].
    pub max_stream_connections: Option<u32>,
}

/// One publish request: one message or a batch, committed all-or-nothing.
#[derive(Debug, Clone)]
pub struct PublishRequest {
    pub org_id: OrgId,
    pub messages: Vec<NewMessage>,
    /// A key covering the whole request (a batch's `Idempotency-Key`).
    pub request_idempotency: Option<Idempotency>,
}

#[derive(Debug, Clone)]
pub struct PublishOutcome {
    pub messages: Vec<StoredMessage>,
    /// True when the whole request was answered from an idempotency record.
    pub replayed: bool,
    /// Per message: answered with the stored original of its dedup key
    /// (nothing stored or delivered for it).
    pub deduplicated: Vec<bool>,
}

/// A page query over an organization's log, in commit order (or newest
/// first with `descending`).
#[derive(Debug, Clone, Default)]
pub struct MessageQuery {
    /// Only messages committed after this sequence number.
    pub after_seq: Option<u64>,
    /// Only messages committed before this sequence number.
    pub before_seq: Option<u64>,
    /// Newest first: the page holds the latest matches below `before_seq`
    /// (and above `after_seq`), in descending `seq` order; a bounded scan's
    /// `scanned_to` is then the lowest seq it examined (continue with
    /// `before_seq` = it).
    pub descending: bool,
    /// Only messages received at or after this time.
    pub since: Option<Timestamp>,
    pub event_type: Option<String>,
    pub channel: Option<String>,
    pub limit: usize,
}

#[derive(Debug, Clone)]
pub struct MessagePage {
    pub messages: Vec<StoredMessage>,
    pub has_more: bool,
    /// Set when a filter that no index serves (a type within a channel)
    /// stopped after examining [`FILTER_SCAN_BUDGET`] entries without
    /// filling the page: continue after this seq (before it, descending;
    /// `has_more` is true). A
    /// rare type in a huge channel thus costs bounded work per request,
    /// and following the cursor still visits every message.
    pub scanned_to: Option<u64>,
}

/// Channel entries one page of a channel + type query examines at most.
pub const FILTER_SCAN_BUDGET: usize = 10_000;

/// Called after each commit with the messages it made durable, in commit
/// order. Runs on the committing thread: it must not block.
pub type CommitListener = Arc<dyn Fn(&[Arc<StoredMessage>]) + Send + Sync>;

#[async_trait]
pub trait Store: webhooks::WebhookStore + attendance::AttendanceStore + Send + Sync + 'static {
    /// Cheap liveness check of the backing database.
    async fn ping(&self) -> Result<()>;

    /// Creates an organization with these enabled profiles (stored sorted
    /// and unique).
    async fn create_org(&self, name: &str, profiles: &[String]) -> Result<Org>;
    async fn get_org(&self, id: &OrgId) -> Result<Option<Org>>;
    async fn list_orgs(&self) -> Result<Vec<Org>>;
    /// Replaces an organization's enabled profiles; `NotFound` if missing.
    async fn set_org_profiles(&self, id: &OrgId, profiles: &[String]) -> Result<Org>;

    /// Creates or replaces an organization's event type; answers the record
    /// and whether it was created (`false`: an existing one was updated,
    /// keeping its `created_at`). `NotFound` if the organization is missing.
    /// The schema and the rules are written together, so a reader never
    /// sees a type with another version's rules.
    async fn put_event_type(
        &self,
        org: &OrgId,
        name: &str,
        description: &str,
        schema: &str,
        rules: Option<&str>,
    ) -> Result<(EventTypeRecord, bool)>;
    async fn get_event_type(&self, org: &OrgId, name: &str) -> Result<Option<EventTypeRecord>>;
    /// The organization's event types, sorted by name.
    async fn list_event_types(&self, org: &OrgId) -> Result<Vec<EventTypeRecord>>;
    /// Deletes an event type; false if the organization had none by that name.
    async fn delete_event_type(&self, org: &OrgId, name: &str) -> Result<bool>;

    async fn create_key(&self, key: NewApiKey) -> Result<ApiKeyRecord>;
    async fn list_keys(&self, org: &OrgId) -> Result<Vec<ApiKeyRecord>>;
    async fn get_key(&self, id: &KeyId) -> Result<Option<ApiKeyRecord>>;
    /// Marks a key revoked; returns the record, or `NotFound`.
    async fn revoke_key(&self, id: &KeyId) -> Result<ApiKeyRecord>;
    /// Sets (`None`: clears back to the tier default) a key's stream
    /// connection limit; `NotFound` if missing. Visible to
    /// [`Store::keys_by_prefix`] at once, in every process.
    async fn set_key_stream_limit(&self, id: &KeyId, limit: Option<u32>) -> Result<ApiKeyRecord>;
    /// Every key (revoked or not) with this public prefix.
    async fn keys_by_prefix(&self, prefix: &str) -> Result<Vec<KeyCandidate>>;

    /// Commits a publish request, honouring idempotency keys, and answers only
    /// once the messages are durable.
    async fn publish(&self, req: PublishRequest) -> Result<PublishOutcome>;
    async fn get_message(&self, org: &OrgId, id: &MessageId) -> Result<Option<StoredMessage>>;
    async fn list_messages(&self, org: &OrgId, query: &MessageQuery) -> Result<MessagePage>;
    /// The highest committed sequence number (0 when the log is empty).
    async fn head_seq(&self) -> Result<u64>;
    /// The lowest sequence number still retained (messages with a lower one
    /// were pruned); 0 when nothing was ever pruned.
    async fn retained_from_seq(&self) -> Result<u64>;

    /// Deletes up to `limit` messages received before `before`, and expired
    /// idempotency records; returns how many messages it deleted.
    async fn prune(&self, before: Timestamp, limit: usize) -> Result<u64>;

    /// Adds a post-commit listener (live fan-out, the webhook dispatcher's
    /// wake-up). Listeners are called in registration order after every
    /// commit that made messages durable, with those messages in commit order.
    fn add_commit_listener(&self, listener: CommitListener);

    // ---- Per-type rules: projected entities (issue 11, `rules`). Dedup
    // keys need no method: the publish job applies them.

    /// An organization's live (not deleted) entity of `kind`.
    async fn get_entity(&self, org: &OrgId, kind: &str, id: &str) -> Result<Option<rules::Entity>>;
    /// A page of an organization's live entities.
    async fn list_entities(&self, org: &OrgId, query: &rules::EntityQuery) -> Result<rules::EntityPage>;
    // --- Coalescing (`coalesce` rules; see `coalesce.rs`) ---

    /// Commits up to [`coalesce::FLUSH_BATCH`] pending coalesced messages
    /// whose window closed by `now` (each appended to the log and its pending
    /// row deleted in one transaction; on a cluster exactly one node commits
    /// each), and reports the earliest due time still pending.
    async fn flush_coalesced(&self, now: Timestamp) -> Result<coalesce::FlushReport>;
    // ---- Eventory (ticket-inventory monitor): watchlists and cooldowns ----
    // (its snapshot state is written by the log append itself.)

    /// Adds a watchlist entry unless its identity already holds `max`
    /// (`Ok(None)`), atomically, cluster-wide.
    async fn eventory_watch_create(
        &self,
        w: eventory::WatchRecord,
        max: usize,
    ) -> Result<Option<eventory::WatchRecord>>;
    /// An identity's entries, oldest first.
    async fn eventory_watch_list(&self, key: &KeyId) -> Result<Vec<eventory::WatchRecord>>;
    async fn eventory_watch_get(&self, key: &KeyId, id: &str) -> Result<Option<eventory::WatchRecord>>;
    /// Replaces an entry's JSON; `None` if the identity has no such entry.
    async fn eventory_watch_update(
        &self,
        key: &KeyId,
        id: &str,
        entry: &str,
    ) -> Result<Option<eventory::WatchRecord>>;
    async fn eventory_watch_delete(&self, key: &KeyId, id: &str) -> Result<bool>;
    /// Atomically records that `content` is sent to `key` at `now` and
    /// answers true, unless it was already sent within `window_micros`
    /// (false, nothing changed). All nodes share the answer.
    async fn eventory_cooldown_claim(
        &self,
        key: &KeyId,
        content: [u8; 32],
        now: i64,
        window_micros: i64,
    ) -> Result<bool>;
    /// Forgets cooldowns recorded at or before `before` (µs).
    async fn eventory_cooldown_prune(&self, before: i64) -> Result<u64>;
    // ---- Erasure (issue 11; decisions in `erasure.rs`) ----

    /// Stores a running erasure of the organization's messages on `channel`
    /// (and, with `within`, also on that channel) committed up to now.
    async fn create_erasure(
        &self,
        org: &OrgId,
        channel: &str,
        within: Option<&str>,
    ) -> Result<erasure::ErasureRecord>;
    async fn get_erasure(&self, org: &OrgId, id: &ErasureId) -> Result<Option<erasure::ErasureRecord>>;
    /// The organization's erasures, newest first, below `before`; and
    /// whether there are more.
    async fn list_erasures(
        &self,
        org: &OrgId,
        before: Option<&ErasureId>,
        limit: usize,
    ) -> Result<(Vec<erasure::ErasureRecord>, bool)>;
    /// Leases the oldest running erasure whose lease is free or expired to
    /// `token` for `lease_micros` (`FOR UPDATE SKIP LOCKED` on PostgreSQL).
    async fn claim_erasure(&self, token: &str, lease_micros: i64) -> Result<Option<erasure::ErasureRecord>>;
    /// One bounded step (one transaction, at most `limit` messages) of an
    /// erasure leased to `token`, renewing the lease; `None` if the lease
    /// is no longer `token`'s or the erasure is not running.
    async fn erase_step(
        &self,
        id: &ErasureId,
        token: &str,
        lease_micros: i64,
        limit: usize,
    ) -> Result<Option<erasure::ErasureStep>>;
    /// Seqs erased at or after `since` (kept for `erasure::ERASED_SEQS_KEPT`).
    async fn recently_erased(&self, since: Timestamp) -> Result<Vec<(u64, Timestamp)>>;

    /// A clean shutdown: nothing more will be written. SQLite checkpoints
    /// its write-ahead log into the database and truncates it, so a stopped
    /// server leaves no large `-wal` file behind. Reads and writes after it
    /// still work.
    async fn close(&self) -> Result<()> {
        Ok(())
    }
}

pub type DynStore = Arc<dyn Store>;
