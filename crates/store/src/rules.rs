//! The store's side of per-type rules (issue 11): dedup keys and projected
//! entities. The decisions live here, shared by both backends; each backend
//! keeps only its SQL (`sqlite/rules.rs`, `postgres/rules.rs`).
//!
//! - **Dedup.** A message whose catalog type has a dedup key is a duplicate
//!   when an earlier message of the same request has the key
//!   ([`repeated_dedup`]), or a stored record of the key is live
//!   ([`dedup_expiry`]) and still points at a retained message. The check
//!   runs in the publish job before its first write, and the key is recorded
//!   by the log append in the same commit; on PostgreSQL both happen under
//!   the cluster-wide log lock, so two nodes never both accept one key (the
//!   `(org_id, key)` primary key backs it up).
//! - **Projections.** The log append upserts the entity row in the same
//!   commit. Whether an upsert or delete wins over the stored row is one SQL
//!   condition ([`ENTITY_APPLIES`]), the same text in both backends.

use std::collections::HashMap;

use marquee_core::message::NewMessage;
use marquee_core::timestamp::Timestamp;

/// For each message, the earlier message of the same request with the same
/// dedup key (a duplicate inside one batch).
pub fn repeated_dedup(messages: &[NewMessage]) -> Vec<Option<usize>> {
    let mut first: HashMap<[u8; 32], usize> = HashMap::new();
    messages
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let k = m.dedup.as_ref()?;
            match first.get(&k.key) {
                Some(j) => Some(*j),
                None => {
                    first.insert(k.key, i);
                    None
                }
            }
        })
        .collect()
}

/// When a dedup record written at `now` stops applying: `None` (the
/// default window) means while its message is retained (retention prunes
/// the record with the message).
pub fn dedup_expiry(window_micros: Option<i64>, now: i64) -> Option<i64> {
    window_micros.map(|w| now.saturating_add(w))
}

/// When the stored entity row (`entities`) is replaced by the incoming one
/// (`excluded`), for `INSERT … ON CONFLICT … DO UPDATE … WHERE`:
///
/// - an upsert replaces a live row unless its version is older (equal
///   versions: the later commit wins, so a re-sent or corrected update with
///   the same version applies); types without a version always replace;
/// - an upsert revives a deleted entity only with a version newer than the
///   delete's (a late older update never resurrects it); a delete without a
///   version is final;
/// - a delete wins over a live row unless its version is older, and leaves a
///   tombstone (the row, marked deleted, keeps the delete's version).
pub const ENTITY_APPLIES: &str = "(excluded.deleted = 1 AND NOT (entities.deleted = 1 AND entities.version IS NULL)
       AND (excluded.version IS NULL OR entities.version IS NULL OR excluded.version >= entities.version))
  OR (excluded.deleted = 0 AND entities.deleted = 0
       AND (excluded.version IS NULL OR entities.version IS NULL OR excluded.version >= entities.version))
  OR (excluded.deleted = 0 AND entities.deleted = 1
       AND excluded.version IS NOT NULL AND entities.version IS NOT NULL AND excluded.version > entities.version)";

/// The columns an [`Entity`] is read from, in order.
pub const ENTITY_COLUMNS: &str = "kind, entity_id, data, version, seq, created_seq, sort_at, updated_at";

/// A projected entity's current state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entity {
    pub kind: String,
    pub id: String,
    /// The `data` of the message that set this state, as JSON text.
    pub data: String,
    pub version: Option<i64>,
    /// The message that set this state (erasure removes rows by it).
    pub seq: u64,
    /// The message that first created the entity: a stable tie-breaker.
    pub created_seq: u64,
    pub sort_at: Option<i64>,
    /// When that message was received.
    pub updated_at: Timestamp,
}

/// How a page of entities is ordered and where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntityOrder {
    /// By entity id, ascending, after this id: an update never moves an
    /// entity, so following the cursor neither skips nor repeats one.
    ById { after: Option<String> },
    /// Newest `sort_at` first, ties by `created_seq` descending, strictly
    /// after (below) this position; only entities with a `sort_at`.
    /// `(at, None)`: everything sorted strictly before `at`.
    BySortDesc { before: Option<(i64, Option<u64>)> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityQuery {
    pub kind: String,
    pub order: EntityOrder,
    /// Only entities whose top-level `data` field (name, value) is this string.
    pub field: Option<(String, String)>,
    pub limit: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityPage {
    pub entities: Vec<Entity>,
    pub has_more: bool,
}

/// Bounds a page's limit (the API checks 1–100; the store only refuses 0).
pub fn page_limit(q: &EntityQuery) -> usize {
    q.limit.clamp(1, 1_000)
}
