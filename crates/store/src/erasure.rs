//! Erasure (issue 11): removing every stored message of an organization on a
//! channel (optionally only those also on a second channel, `within`).
//!
//! Why it is shaped like this: an erasure can cover many thousands of
//! messages, and the log is written by one writer (SQLite) or under one log
//! lock (PostgreSQL). So an erasure is a durable row, accepted at once, and
//! worked through in small steps of at most [`STEP_ROWS`] messages, each its
//! own short transaction — publishing interleaves with it instead of waiting.
//! The row holds the position reached (`cursor`) and the log head at
//! acceptance (`through_seq`: later messages are not part of it), so a worker
//! that dies resumes where the last committed step stopped. Each step takes a
//! lease on the row (a token and an expiry); a step whose token no longer
//! matches does nothing, so on a cluster one node works an erasure at a time.
//!
//! One step deletes, for each erased message: its log row, its channel rows,
//! its deliveries (pending or settled), its attempts (with their response
//! bodies), idempotency records that point at it, and rows derived from it in
//! read-model tables ([`DERIVED`]). It records the erased `seq`s in
//! `erased_seqs` for [`ERASED_SEQS_KEPT`] so that every node can drop what it
//! still holds in memory (queued webhook deliveries, stream rings).
//!
//! **Adding a derived table is one line in [`DERIVED`]**: the table name and
//! the column holding the source message's `seq`. Both backends delete
//! `DELETE FROM <table> WHERE <seq_column> = …` for every erased message, in
//! the same step transaction. The table must have an index whose first column
//! is that seq column (each step looks rows up by seq), and the row must be
//! fully derived from that one message (a row that aggregates several
//! messages — a counter — needs its own rule, not this list).
//!
//! Decisions shared by both backends live here; each backend keeps only its
//! SQL (`sqlite/erasure.rs`, `postgres/erasure.rs`).

use std::collections::HashSet;

use marquee_core::ids::{ErasureId, OrgId};
use marquee_core::timestamp::Timestamp;

/// A read-model table whose rows are derived from one stored message each.
#[derive(Debug, Clone, Copy)]
pub struct Derived {
    pub table: &'static str,
    /// The column holding the source message's `seq`.
    pub seq_column: &'static str,
}

/// Read-model tables to clean on erasure: one line per table (see the
/// module doc). Features that derive rows from messages (dedup keys,
/// projections, attendance check-ins, coalescing) add theirs here.
pub const DERIVED: &[Derived] = &[
    // Per-type dedup keys (rules): a key stored for an erased message.
    Derived {
        table: "dedup",
        seq_column: "seq",
    },
    // Projected entities (rules) whose current version came from an erased
    // message.
    Derived {
        table: "entities",
        seq_column: "seq",
    },
    // Door scans (attendance): who scanned in or out, and when. The event's
    // and gates' counts aggregate many scans and are not lowered.
    Derived {
        table: "attendance_scans",
        seq_column: "seq",
    },
];

/// Messages erased per step (one transaction) at most.
pub const STEP_ROWS: usize = 250;

/// How long erased seqs stay listed for nodes to forget what they hold in
/// memory (longer than a delivery lease, 120 s by default, so a delivery
/// queued under a lease before the erasure is dropped, not sent).
pub const ERASED_SEQS_KEPT: i64 = 10 * 60 * 1_000_000;

/// Idempotency records are written by the publish job with its own clock
/// reading, not the message's `received_at`; they lie within this of it
/// (the same job, a few milliseconds apart; on PostgreSQL also the wait for
/// the log lock). A record outside it is not found, and is then harmless
/// beyond its key text: it answers nothing once its message is gone, and
/// it expires with the idempotency TTL.
const IDEMPOTENCY_SLACK: i64 = 5 * 1_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErasureStatus {
    Running,
    Completed,
}

impl ErasureStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ErasureStatus::Running => "running",
            ErasureStatus::Completed => "completed",
        }
    }

    pub fn parse(s: &str) -> Self {
        if s == "completed" {
            ErasureStatus::Completed
        } else {
            ErasureStatus::Running
        }
    }
}

/// An erasure as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErasureRecord {
    pub id: ErasureId,
    pub org_id: OrgId,
    pub channel: String,
    pub within: Option<String>,
    pub status: ErasureStatus,
    /// Messages erased so far.
    pub messages_erased: u64,
    /// Messages it covered when accepted (some may since have left by
    /// retention, so `messages_erased` can end below it).
    pub messages_total: u64,
    /// The log head when accepted: messages committed later are not part of it.
    pub through_seq: u64,
    /// Channel entries up to this seq have been worked through.
    pub cursor: u64,
    pub created_at: Timestamp,
    pub completed_at: Option<Timestamp>,
}

/// What one step did.
#[derive(Debug, Clone)]
pub struct ErasureStep {
    /// The seqs erased by this step.
    pub erased: Vec<u64>,
    /// The erasure after the step.
    pub record: ErasureRecord,
}

/// Whether a step that examined `examined` channel entries (asked for at
/// most `limit`) finished the erasure.
pub fn step_finishes(examined: usize, limit: usize) -> bool {
    examined < limit
}

/// The `created_at` range in which idempotency records pointing at messages
/// received at these times can lie; `None` when every one is older than the
/// idempotency TTL (such records no longer exist or no longer apply).
pub fn idempotency_window(received: &[i64], now: Timestamp) -> Option<(i64, i64)> {
    let oldest_kept = now.as_micros() - crate::IDEMPOTENCY_TTL_MICROS - IDEMPOTENCY_SLACK;
    let live: Vec<i64> = received.iter().copied().filter(|r| *r >= oldest_kept).collect();
    let lo = live.iter().min()?;
    let hi = live.iter().max()?;
    Some((lo - IDEMPOTENCY_SLACK, hi + IDEMPOTENCY_SLACK))
}

/// Whether an idempotency record (`seqs`: the comma-separated list the log
/// append writes) points at any erased message. A record naming a batch
/// goes when any of its messages does: its replay could no longer answer
/// the whole batch.
pub fn points_at(seqs: &str, erased: &HashSet<i64>) -> bool {
    seqs.split(',')
        .filter_map(|s| s.parse::<i64>().ok())
        .any(|s| erased.contains(&s))
}

/// The statements deleting derived rows of one erased message (`?1` or `$1`
/// style placeholder given by the backend).
pub fn derived_deletes(placeholder: &str) -> Vec<String> {
    DERIVED
        .iter()
        .map(|d| format!("DELETE FROM {} WHERE {} = {placeholder}", d.table, d.seq_column))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotency_records_naming_an_erased_seq_are_found() {
        let erased: HashSet<i64> = [5, 9].into_iter().collect();
        assert!(points_at("5", &erased));
        assert!(points_at("1,2,9", &erased));
        assert!(!points_at("1,2,3", &erased));
        assert!(!points_at("", &erased));
    }

    #[test]
    fn the_window_ignores_messages_past_the_ttl() {
        let now = Timestamp::from_micros(100 * 24 * 3600 * 1_000_000);
        let old = now.as_micros() - 2 * crate::IDEMPOTENCY_TTL_MICROS;
        assert_eq!(idempotency_window(&[old], now), None);
        let r = now.as_micros() - 1_000;
        let (lo, hi) = idempotency_window(&[old, r], now).unwrap();
        assert!(lo < r && hi > r);
    }

    #[test]
    fn steps_finish_on_a_short_page() {
        assert!(!step_finishes(STEP_ROWS, STEP_ROWS));
        assert!(step_finishes(3, STEP_ROWS));
    }
}
