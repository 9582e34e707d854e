//! The attendance and drops part of the store contract (`AttendanceStore`):
//! the read models the publish commit maintains from [`Derived`] facts, and
//! the reads the native `/v1/attendance` API and Revolution's REST polling
//! serve.
//!
//! Written in the publish commit (both backends' log append makes one call
//! into their `attendance.rs`), so a count never disagrees with the log it
//! came from and a milestone is appended in the same commit as the scan that
//! crossed it. On PostgreSQL every append holds the cluster-wide log lock, so
//! the count's read-modify-write and the fired-thresholds check are
//! serialized across nodes. Every derived row keeps the `seq` of its source
//! message (erasure deletes derived rows by seq).
//!
//! [`Derived`]: marquee_core::attendance::Derived

use async_trait::async_trait;
use marquee_core::attendance::{self, Scan, Thresholds};
use marquee_core::ids::MessageId;
use marquee_core::ids::OrgId;
use marquee_core::message::{NewMessage, StoredMessage};
use marquee_core::timestamp::Timestamp;
use serde_json::value::RawValue;

use crate::Result;

/// An organization's milestone thresholds as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttendanceSettings {
    pub thresholds: Thresholds,
    /// `None`: the defaults (never set).
    pub updated_at: Option<Timestamp>,
}

/// One event's attendance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttendanceRecord {
    pub event_id: String,
    /// Scans in minus scans out.
    pub count: i64,
    pub capacity: Option<i64>,
    pub venue_id: Option<String>,
    /// Per gate (sorted by gate), where the scans name one.
    pub gates: Vec<(String, i64)>,
    /// Fired milestones, by threshold.
    pub milestones: Vec<MilestoneRecord>,
    pub opened_at: Option<Timestamp>,
    /// The newest scan time (the scans' own, logical time).
    pub last_checkin_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MilestoneRecord {
    pub threshold: i64,
    pub count: i64,
    /// The crossing scan's own time.
    pub at: Timestamp,
}

/// One recorded (deduplicated) door scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckinRecord {
    pub message_id: String,
    pub seq: u64,
    pub event_id: String,
    pub person: String,
    pub direction: String,
    pub gate: Option<String>,
    /// The scan's own time.
    pub at: Timestamp,
    /// When marquee received it.
    pub received_at: Timestamp,
}

/// A page of check-ins: oldest scan time first (ties in log order); the
/// cursor is the last row's `(at, seq)`.
#[derive(Debug, Clone, Default)]
pub struct CheckinQuery {
    pub since: Option<Timestamp>,
    pub after: Option<(i64, u64)>,
    pub limit: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropStatus {
    Active,
    SoldOut,
    All,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DropRecord {
    pub drop_id: String,
    pub artist_id: String,
    pub quantity: i64,
    /// `quantity` minus distinct claims, never below 0.
    pub remaining: i64,
    /// The `drop_published` payload as sent (JSON text).
    pub data: String,
    pub published_at: Timestamp,
    pub seq: u64,
}

/// A venue's latest door opening.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VenueRecord {
    pub venue_id: String,
    pub event_id: String,
    pub opened_at: Timestamp,
}

#[async_trait]
pub trait AttendanceStore: Send + Sync {
    /// The organization's thresholds (the defaults when never set).
    async fn attendance_settings(&self, org: &OrgId) -> Result<AttendanceSettings>;
    /// Replaces them (normalized: sorted, unique).
    async fn put_attendance_settings(&self, org: &OrgId, th: &Thresholds) -> Result<AttendanceSettings>;
    async fn get_attendance(&self, org: &OrgId, event_id: &str) -> Result<Option<AttendanceRecord>>;
    /// Events by id, after `after`; answers whether more follow.
    async fn list_attendance(
        &self,
        org: &OrgId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<AttendanceRecord>, bool)>;
    async fn list_checkins(
        &self,
        org: &OrgId,
        event_id: &str,
        q: &CheckinQuery,
    ) -> Result<(Vec<CheckinRecord>, bool)>;
    /// An artist's drops in publish order, after `after_seq`.
    async fn list_drops(
        &self,
        org: &OrgId,
        artist_id: &str,
        status: DropStatus,
        after_seq: Option<u64>,
        limit: usize,
    ) -> Result<(Vec<DropRecord>, bool)>;
    async fn get_venue(&self, org: &OrgId, venue_id: &str) -> Result<Option<VenueRecord>>;
}

/// Thresholds as stored: two comma-separated lists.
pub(crate) fn thresholds_to_text(th: &Thresholds) -> (String, String) {
    let j = |v: Vec<String>| v.join(",");
    (
        j(th.counts.iter().map(u64::to_string).collect()),
        j(th.capacity_percents.iter().map(u32::to_string).collect()),
    )
}

pub(crate) fn thresholds_from_text(counts: &str, percents: &str) -> Thresholds {
    Thresholds {
        counts: counts.split(',').filter_map(|s| s.parse().ok()).collect(),
        capacity_percents: percents.split(',').filter_map(|s| s.parse().ok()).collect(),
    }
}

/// The SQL of the drops status filter (both dialects; `d` is the drops row).
pub(crate) fn drop_status_sql(status: DropStatus) -> &'static str {
    match status {
        DropStatus::All => "",
        DropStatus::Active => {
            " AND d.quantity > (SELECT COUNT(*) FROM drop_claims c WHERE c.org_id = d.org_id AND c.drop_id = d.drop_id)"
        }
        DropStatus::SoldOut => {
            " AND d.quantity <= (SELECT COUNT(*) FROM drop_claims c WHERE c.org_id = d.org_id AND c.drop_id = d.drop_id)"
        }
    }
}

/// The remaining quantity column (both dialects).
pub(crate) const REMAINING_SQL: &str =
    "d.quantity - (SELECT COUNT(*) FROM drop_claims c WHERE c.org_id = d.org_id AND c.drop_id = d.drop_id)";

/// The `attendance_milestone` message, on the check-in's channels.
pub(crate) fn milestone_message(
    m: &StoredMessage,
    s: &Scan,
    count: i64,
    threshold: i64,
    capacity: Option<i64>,
) -> Result<NewMessage> {
    let data = RawValue::from_string(attendance::milestone_data(s, count, threshold, capacity))
        .map_err(|e| crate::StoreError::Internal(format!("milestone data: {e}")))?;
    Ok(NewMessage {
        id: MessageId::generate(),
        event_type: attendance::MILESTONE_TYPE
            .parse()
            .map_err(|_| crate::StoreError::Internal("milestone type".into()))?,
        channels: m.channels.clone(),
        data,
        occurred_at: s.at,
        idempotency: None,
        dedup: None,
        project: None,
        coalesce: None,
        derived: None,
    })
}
