//! Attendance and drops on SQLite: [`apply`] runs inside the log append for
//! a message carrying a [`Derived`] fact (one call from `log.rs`), in the
//! publish commit; the [`AttendanceStore`] reads serve the API. The writer
//! thread is the only writer, so a count's read-modify-write is never raced.
//!
//! A check-in is on the hot publish path (a door scanner's burst), so a scan
//! costs the writer as little as it can: the scan row is keyed by its
//! message's `seq` (appended in order; the erasure's lookup), the dedup
//! tuple is a unique index, the event's and gate's counters are a point read
//! and a plain `UPDATE` (an upsert only for the first scan), and the
//! organization's thresholds are kept in the writer thread
//! ([`WRITER_THRESHOLDS`], dropped when they are written).

use async_trait::async_trait;
use marquee_core::attendance::{self, Derived, Scan, Thresholds};
use marquee_core::ids::OrgId;
use marquee_core::message::{NewMessage, StoredMessage};
use marquee_core::timestamp::Timestamp;
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::SqliteStore;
use super::writer::Ctx;
use crate::Result;
use crate::attendance::{
    AttendanceRecord, AttendanceSettings, AttendanceStore, CheckinQuery, CheckinRecord, DropRecord,
    DropStatus, MilestoneRecord, REMAINING_SQL, VenueRecord, drop_status_sql, thresholds_from_text,
    thresholds_to_text,
};

/// Applies a message's fact; answers the milestones to append after it.
pub fn apply(ctx: &mut Ctx<'_>, m: &StoredMessage, d: &Derived) -> Result<Vec<NewMessage>> {
    let c = ctx.conn;
    let org = m.org_id.as_str();
    let seq = m.seq as i64;
    match d {
        Derived::Scan(s) => return scan(c, m, s),
        Derived::Opened(o) => {
            c.prepare_cached(
                "INSERT INTO attendance_events (org_id, event_id, count, capacity, venue_id, opened_at, seq)
                 VALUES (?1, ?2, 0, ?3, ?4, ?5, ?6)
                 ON CONFLICT (org_id, event_id) DO UPDATE SET capacity = excluded.capacity,
                   venue_id = excluded.venue_id, opened_at = excluded.opened_at, seq = excluded.seq",
            )?
            .execute(params![org, o.event, o.capacity, o.venue, o.at.as_micros(), seq])?;
            c.prepare_cached(
                "INSERT INTO venues (org_id, venue_id, event_id, opened_at, seq) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (org_id, venue_id) DO UPDATE SET event_id = excluded.event_id,
                   opened_at = excluded.opened_at, seq = excluded.seq
                 WHERE excluded.opened_at >= venues.opened_at",
            )?
            .execute(params![org, o.venue, o.event, o.at.as_micros(), seq])?;
        }
        Derived::DropPublished {
            artist,
            drop,
            quantity,
        } => {
            c.prepare_cached(
                "INSERT INTO drops (org_id, drop_id, artist_id, quantity, data, published_at, seq)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (org_id, drop_id) DO UPDATE SET artist_id = excluded.artist_id,
                   quantity = excluded.quantity, data = excluded.data, seq = excluded.seq",
            )?
            .execute(params![
                org,
                drop,
                artist,
                quantity,
                m.data.get(),
                m.received_at.as_micros(),
                seq
            ])?;
        }
        Derived::DropClaimed { drop, claim } => {
            c.prepare_cached(
                "INSERT OR IGNORE INTO drop_claims (org_id, drop_id, claim_id, seq) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![org, drop, claim, seq])?;
        }
    }
    Ok(Vec::new())
}

std::thread_local! {
    /// Organizations' thresholds, as read by this thread's scans: only the
    /// writer thread fills it (readers never use it), and the writer's own
    /// settings job empties it, so it never serves a superseded value.
    static WRITER_THRESHOLDS: std::cell::RefCell<std::collections::HashMap<String, Thresholds>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

/// Empties the writer's thresholds (after a rolled-back group, which may
/// have read a settings write that never committed).
pub fn forget_thresholds() {
    WRITER_THRESHOLDS.with(|m| m.borrow_mut().clear());
}

/// Organizations whose thresholds the writer keeps at most.
const MAX_CACHED_THRESHOLDS: usize = 10_000;

fn writer_thresholds(c: &Connection, org: &str) -> Result<Thresholds> {
    if let Some(t) = WRITER_THRESHOLDS.with(|m| m.borrow().get(org).cloned()) {
        return Ok(t);
    }
    let t = settings(c, org)?.thresholds;
    WRITER_THRESHOLDS.with(|m| {
        let mut m = m.borrow_mut();
        if m.len() >= MAX_CACHED_THRESHOLDS {
            m.clear();
        }
        m.insert(org.to_owned(), t.clone());
    });
    Ok(t)
}

fn scan(c: &Connection, m: &StoredMessage, s: &Scan) -> Result<Vec<NewMessage>> {
    let org = m.org_id.as_str();
    let seq = m.seq as i64;
    let at = s.at.as_micros();
    let fresh = c
        .prepare_cached(
            "INSERT OR IGNORE INTO attendance_scans
               (org_id, event_id, person, direction, at, gate, seq, message_id, received_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?
        .execute(params![
            org,
            s.event,
            s.person,
            s.dir.as_str(),
            at,
            s.gate,
            seq,
            m.id.as_str(),
            m.received_at.as_micros()
        ])?;
    if fresh == 0 {
        // The same scan again (an offline scanner's replay): counted once.
        return Ok(Vec::new());
    }
    let delta = s.dir.delta();
    let last = (delta > 0).then_some(at);
    // A point read and a plain UPDATE (cheaper than an upsert with
    // RETURNING); the event's first scan inserts its row.
    let current: Option<(i64, Option<i64>, Option<i64>)> = c
        .prepare_cached(
            "SELECT count, capacity, last_checkin_at FROM attendance_events WHERE org_id = ?1 AND event_id = ?2",
        )?
        .query_row(params![org, s.event], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let (after, capacity) = match current {
        Some((count, capacity, prev_last)) => {
            let after = count + delta;
            let last = match (prev_last, last) {
                (Some(p), Some(l)) => Some(p.max(l)),
                (p, l) => l.or(p),
            };
            c.prepare_cached(
                "UPDATE attendance_events SET count = ?3, last_checkin_at = ?4, seq = ?5
                 WHERE org_id = ?1 AND event_id = ?2",
            )?
            .execute(params![org, s.event, after, last, seq])?;
            (after, capacity)
        }
        None => {
            c.prepare_cached(
                "INSERT INTO attendance_events (org_id, event_id, count, last_checkin_at, seq)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![org, s.event, delta, last, seq])?;
            (delta, None)
        }
    };
    if let Some(g) = &s.gate {
        let n = c
            .prepare_cached(
                "UPDATE attendance_gates SET count = count + ?4 WHERE org_id = ?1 AND event_id = ?2 AND gate = ?3",
            )?
            .execute(params![org, s.event, g, delta])?;
        if n == 0 {
            c.prepare_cached(
                "INSERT INTO attendance_gates (org_id, event_id, gate, count) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![org, s.event, g, delta])?;
        }
    }
    if delta < 0 {
        return Ok(Vec::new());
    }
    let th = writer_thresholds(c, org)?;
    let mut out = Vec::new();
    for t in attendance::crossed(&th, capacity, after - delta, after) {
        let fired = c
            .prepare_cached(
                "INSERT OR IGNORE INTO attendance_milestones (org_id, event_id, threshold, count, at, seq)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![org, s.event, t, after, at, seq])?;
        if fired > 0 {
            out.push(crate::attendance::milestone_message(m, s, after, t, capacity)?);
        }
    }
    Ok(out)
}

fn settings(c: &Connection, org: &str) -> Result<AttendanceSettings> {
    let row: Option<(String, String, i64)> = c
        .prepare_cached("SELECT counts, percents, updated_at FROM attendance_settings WHERE org_id = ?1")?
        .query_row([org], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    Ok(match row {
        Some((cs, ps, at)) => AttendanceSettings {
            thresholds: thresholds_from_text(&cs, &ps),
            updated_at: Some(Timestamp::from_micros(at)),
        },
        None => AttendanceSettings {
            thresholds: Thresholds::default(),
            updated_at: None,
        },
    })
}

const EVENT_COLUMNS: &str = "event_id, count, capacity, venue_id, opened_at, last_checkin_at";

fn event_row(r: &Row<'_>) -> rusqlite::Result<AttendanceRecord> {
    Ok(AttendanceRecord {
        event_id: r.get(0)?,
        count: r.get(1)?,
        capacity: r.get(2)?,
        venue_id: r.get(3)?,
        gates: Vec::new(),
        milestones: Vec::new(),
        opened_at: r.get::<_, Option<i64>>(4)?.map(Timestamp::from_micros),
        last_checkin_at: r.get::<_, Option<i64>>(5)?.map(Timestamp::from_micros),
    })
}

/// Fills an event's gates and milestones.
fn details(c: &Connection, org: &str, rec: &mut AttendanceRecord) -> Result<()> {
    rec.gates = c
        .prepare_cached(
            "SELECT gate, count FROM attendance_gates WHERE org_id = ?1 AND event_id = ?2 ORDER BY gate",
        )?
        .query_map([org, &rec.event_id], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    rec.milestones = c
        .prepare_cached(
            "SELECT threshold, count, at FROM attendance_milestones WHERE org_id = ?1 AND event_id = ?2 ORDER BY threshold",
        )?
        .query_map([org, &rec.event_id], |r| {
            Ok(MilestoneRecord {
                threshold: r.get(0)?,
                count: r.get(1)?,
                at: Timestamp::from_micros(r.get(2)?),
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(())
}

#[async_trait]
impl AttendanceStore for SqliteStore {
    async fn attendance_settings(&self, org: &OrgId) -> Result<AttendanceSettings> {
        let org = org.as_str().to_owned();
        self.readers.with(move |c| settings(c, &org))
    }

    async fn put_attendance_settings(&self, org: &OrgId, th: &Thresholds) -> Result<AttendanceSettings> {
        let org = org.as_str().to_owned();
        let th = th.clone().normalized();
        self.writer
            .write(move |ctx| {
                let now = Timestamp::now();
                let (cs, ps) = thresholds_to_text(&th);
                WRITER_THRESHOLDS.with(|m| m.borrow_mut().remove(&org));
                ctx.conn
                    .prepare_cached(
                        "INSERT INTO attendance_settings (org_id, counts, percents, updated_at) VALUES (?1, ?2, ?3, ?4)
                         ON CONFLICT (org_id) DO UPDATE SET counts = excluded.counts,
                           percents = excluded.percents, updated_at = excluded.updated_at",
                    )?
                    .execute(params![org, cs, ps, now.as_micros()])?;
                Ok(AttendanceSettings {
                    thresholds: th,
                    updated_at: Some(now),
                })
            })
            .await
    }

    async fn get_attendance(&self, org: &OrgId, event_id: &str) -> Result<Option<AttendanceRecord>> {
        let (org, ev) = (org.as_str().to_owned(), event_id.to_owned());
        self.readers.with(move |c| {
            let rec = c
                .prepare_cached(&format!(
                    "SELECT {EVENT_COLUMNS} FROM attendance_events WHERE org_id = ?1 AND event_id = ?2"
                ))?
                .query_row([&org, &ev], event_row)
                .optional()?;
            match rec {
                Some(mut r) => {
                    details(c, &org, &mut r)?;
                    Ok(Some(r))
                }
                None => Ok(None),
            }
        })
    }

    async fn list_attendance(
        &self,
        org: &OrgId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<AttendanceRecord>, bool)> {
        let (org, after) = (org.as_str().to_owned(), after.unwrap_or("").to_owned());
        self.readers
            .with_blocking(move |c| {
                let mut v: Vec<AttendanceRecord> = c
                    .prepare_cached(&format!(
                        "SELECT {EVENT_COLUMNS} FROM attendance_events WHERE org_id = ?1 AND event_id > ?2
                         ORDER BY event_id LIMIT ?3"
                    ))?
                    .query_map(params![org, after, limit as i64 + 1], event_row)?
                    .collect::<rusqlite::Result<_>>()?;
                let more = v.len() > limit;
                v.truncate(limit);
                for r in &mut v {
                    details(c, &org, r)?;
                }
                Ok((v, more))
            })
            .await
    }

    async fn list_checkins(
        &self,
        org: &OrgId,
        event_id: &str,
        q: &CheckinQuery,
    ) -> Result<(Vec<CheckinRecord>, bool)> {
        let (org, ev, q) = (org.as_str().to_owned(), event_id.to_owned(), q.clone());
        self.readers
            .with_blocking(move |c| {
                let since = q.since.map_or(i64::MIN, Timestamp::as_micros);
                let (a_at, a_seq) = q.after.map_or((i64::MIN, 0), |(a, s)| (a, s as i64));
                let mut v: Vec<CheckinRecord> = c
                    .prepare_cached(
                        "SELECT message_id, seq, event_id, person, direction, gate, at, received_at
                         FROM attendance_scans
                         WHERE org_id = ?1 AND event_id = ?2 AND at >= ?3 AND (at > ?4 OR (at = ?4 AND seq > ?5))
                         ORDER BY at, seq LIMIT ?6",
                    )?
                    .query_map(params![org, ev, since, a_at, a_seq, q.limit as i64 + 1], |r| {
                        Ok(CheckinRecord {
                            message_id: r.get(0)?,
                            seq: r.get::<_, i64>(1)? as u64,
                            event_id: r.get(2)?,
                            person: r.get(3)?,
                            direction: r.get(4)?,
                            gate: r.get(5)?,
                            at: Timestamp::from_micros(r.get(6)?),
                            received_at: Timestamp::from_micros(r.get(7)?),
                        })
                    })?
                    .collect::<rusqlite::Result<_>>()?;
                let more = v.len() > q.limit;
                v.truncate(q.limit);
                Ok((v, more))
            })
            .await
    }

    async fn list_drops(
        &self,
        org: &OrgId,
        artist_id: &str,
        status: DropStatus,
        after_seq: Option<u64>,
        limit: usize,
    ) -> Result<(Vec<DropRecord>, bool)> {
        let (org, artist) = (org.as_str().to_owned(), artist_id.to_owned());
        let after = after_seq.unwrap_or(0) as i64;
        self.readers
            .with_blocking(move |c| {
                let mut v: Vec<DropRecord> = c
                    .prepare_cached(&format!(
                        "SELECT d.drop_id, d.artist_id, d.quantity, {REMAINING_SQL}, d.data, d.published_at, d.seq
                         FROM drops d WHERE d.org_id = ?1 AND d.artist_id = ?2 AND d.seq > ?3{}
                         ORDER BY d.seq LIMIT ?4",
                        drop_status_sql(status)
                    ))?
                    .query_map(params![org, artist, after, limit as i64 + 1], |r| {
                        Ok(DropRecord {
                            drop_id: r.get(0)?,
                            artist_id: r.get(1)?,
                            quantity: r.get(2)?,
                            remaining: r.get::<_, i64>(3)?.max(0),
                            data: r.get(4)?,
                            published_at: Timestamp::from_micros(r.get(5)?),
                            seq: r.get::<_, i64>(6)? as u64,
                        })
                    })?
                    .collect::<rusqlite::Result<_>>()?;
                let more = v.len() > limit;
                v.truncate(limit);
                Ok((v, more))
            })
            .await
    }

    async fn get_venue(&self, org: &OrgId, venue_id: &str) -> Result<Option<VenueRecord>> {
        let (org, venue) = (org.as_str().to_owned(), venue_id.to_owned());
        self.readers.with(move |c| {
            c.prepare_cached(
                "SELECT venue_id, event_id, opened_at FROM venues WHERE org_id = ?1 AND venue_id = ?2",
            )?
            .query_row([org, venue], |r| {
                Ok(VenueRecord {
                    venue_id: r.get(0)?,
                    event_id: r.get(1)?,
                    opened_at: Timestamp::from_micros(r.get(2)?),
                })
            })
            .optional()
            .map_err(Into::into)
        })
    }
}
