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
use marquee_core::ids::{KeyId, MessageId, OrgId};
use marquee_core::message::{Idempotency, NewMessage, StoredMessage};
use marquee_core::timestamp::Timestamp;

pub mod attendance;
mod hooks;
mod plan;
pub mod postgres;
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
    async fn put_event_type(
        &self,
        org: &OrgId,
        name: &str,
        description: &str,
        schema: &str,
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

    /// A clean shutdown: nothing more will be written. SQLite checkpoints
    /// its write-ahead log into the database and truncates it, so a stopped
    /// server leaves no large `-wal` file behind. Reads and writes after it
    /// still work.
    async fn close(&self) -> Result<()> {
        Ok(())
    }
}

pub type DynStore = Arc<dyn Store>;
