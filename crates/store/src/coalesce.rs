//! Coalescing (a type's `coalesce` rule), the decisions both backends share.
//!
//! A publish of a coalesced type does not append to the log: it upserts one
//! *pending* row per (organization, type, key) in the publish commit — so it
//! is durable before the 2xx — holding the latest `data`, channels and
//! `occurred_at`, the eventual message id, and `due_at` = first publish +
//! window. A flusher ([`crate::Store::flush_coalesced`]) appends due rows
//! through the ordinary log append and deletes them in the same transaction,
//! so deliveries, streams and polling see an ordinary message, at most one
//! per key per window, and on a cluster exactly one node commits each (the
//! delete runs under the log lock). A pending row is never flushed early: a
//! stopped or killed server leaves it for the next start.
//!
//! The answer to a coalesced publish is a *preview* [`StoredMessage`] with
//! `seq` = [`PENDING_SEQ`] (no committed message has seq 0): the eventual
//! id, the data of the pending row, and `received_at` set to the due time.

use marquee_core::ids::{MessageId, OrgId};
use marquee_core::message::{NewMessage, StoredMessage};
use marquee_core::names::Channel;
use marquee_core::timestamp::Timestamp;
use serde_json::value::RawValue;

use crate::{Result, StoreError};

/// The `seq` of a preview: a coalesced publish's answer, not yet in the log.
pub const PENDING_SEQ: u64 = 0;

/// Pending rows one organization may hold at most. A publish that would
/// open one more key is refused ([`StoreError::Limit`]); publishes to keys
/// already pending still coalesce. (A batch checks against the rows stored
/// before it, so the cap can be exceeded by at most one batch.)
pub const MAX_PENDING_PER_ORG: i64 = 10_000;

/// Pending rows one flush job commits at most (the flusher loops while a
/// job was full).
pub const FLUSH_BATCH: usize = 500;

/// True for the answer to a coalesced publish (see [`PENDING_SEQ`]).
pub fn is_pending(m: &StoredMessage) -> bool {
    m.seq == PENDING_SEQ
}

/// What one flush job did.
#[derive(Debug, Clone, Default)]
pub struct FlushReport {
    /// Pending rows committed to the log.
    pub flushed: usize,
    /// The earliest `due_at` still pending (any organization), after the job.
    pub next_due: Option<Timestamp>,
}

/// The refusal when an organization holds [`MAX_PENDING_PER_ORG`] rows.
pub fn over_cap() -> StoreError {
    StoreError::Limit(format!(
        "this organization already has {MAX_PENDING_PER_ORG} coalesced messages waiting for their \
         window to close; retry after the oldest windows close"
    ))
}

/// The idempotency record's `seqs` text for a coalesced publish: the
/// eventual message id behind a `~` (a seq list never holds one).
pub fn idempotency_marker(id: &MessageId) -> String {
    format!("~{}", id.as_str())
}

/// An idempotency record's `seqs` text for these answers: each committed
/// message's seq, each preview's [`idempotency_marker`].
pub fn seqs_text(messages: &[StoredMessage]) -> String {
    messages
        .iter()
        .map(|m| {
            if is_pending(m) {
                idempotency_marker(&m.id)
            } else {
                m.seq.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The message id of an idempotency marker, if `s` is one.
pub fn parse_marker(s: &str) -> Option<MessageId> {
    s.strip_prefix('~')?.parse().ok()
}

/// A pending row as read back by a backend.
pub struct PendingRow {
    pub org_id: String,
    pub event_type: String,
    pub message_id: String,
    pub channels: String,
    pub data: String,
    pub occurred_at: i64,
    pub due_at: i64,
}

impl PendingRow {
    fn parts(&self) -> Result<(OrgId, NewMessage)> {
        let bad = |what: &str| StoreError::Internal(format!("corrupt coalesce_pending row: {what}"));
        let channels: Vec<Channel> = self
            .channels
            .split(' ')
            .filter(|c| !c.is_empty())
            .map(|c| c.parse().map_err(|_| bad("channel")))
            .collect::<Result<_>>()?;
        Ok((
            OrgId::from_trusted(self.org_id.clone()),
            NewMessage {
                id: self.message_id.parse().map_err(|_| bad("message id"))?,
                event_type: self.event_type.parse().map_err(|_| bad("type"))?,
                channels,
                data: RawValue::from_string(self.data.clone()).map_err(|_| bad("data"))?,
                occurred_at: Timestamp::from_micros(self.occurred_at),
                idempotency: None,
                // The window's latest data is committed as a new message:
                // its dedup key was decided when each publish arrived.
                dedup: None,
                project: None,
                coalesce: None,
                derived: None,
            },
        ))
    }

    /// The message the row becomes when its window closes.
    pub fn into_message(self) -> Result<(OrgId, NewMessage)> {
        self.parts()
    }

    /// The answer to a publish (or an idempotent replay) while pending.
    pub fn preview(&self) -> Result<StoredMessage> {
        let (org_id, m) = self.parts()?;
        Ok(preview(&org_id, m, self.due_at))
    }
}

/// The preview of a message held in a pending row due at `due_at`.
pub fn preview(org_id: &OrgId, m: NewMessage, due_at: i64) -> StoredMessage {
    StoredMessage {
        seq: PENDING_SEQ,
        id: m.id,
        org_id: org_id.clone(),
        event_type: m.event_type,
        channels: m.channels,
        data: m.data,
        occurred_at: m.occurred_at,
        received_at: Timestamp::from_micros(due_at),
    }
}

/// The window of a coalesced message, in microseconds.
pub fn window_micros(window_ms: u64) -> i64 {
    (window_ms.min(i64::MAX as u64 / 1000) as i64).saturating_mul(1000)
}
