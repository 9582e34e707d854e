//! Attendance and drops on PostgreSQL: [`apply`] runs inside the log append
//! (one call from `log.rs`) while the transaction holds the cluster-wide log
//! lock, so the count's read-modify-write and the fired-thresholds insert are
//! serialized across nodes; the [`AttendanceStore`] reads serve the API.
//! Statements are typed queries (one round trip each: this runs under the
//! lock).

use async_trait::async_trait;
use marquee_core::attendance::{self, Derived, Scan, Thresholds};
use marquee_core::ids::OrgId;
use marquee_core::message::{NewMessage, StoredMessage};
use marquee_core::timestamp::Timestamp;
use tokio_postgres::types::Type;
use tokio_postgres::{Client, Row, Transaction};

use super::PgStore;
use crate::Result;
use crate::attendance::{
    AttendanceRecord, AttendanceSettings, AttendanceStore, CheckinQuery, CheckinRecord, DropRecord,
    DropStatus, MilestoneRecord, REMAINING_SQL, VenueRecord, drop_status_sql, thresholds_from_text,
    thresholds_to_text,
};

const T: Type = Type::TEXT;
const I: Type = Type::INT8;

/// Applies a message's fact; answers the milestones to append after it.
pub async fn apply(tx: &Transaction<'_>, m: &StoredMessage, d: &Derived) -> Result<Vec<NewMessage>> {
    let org = m.org_id.as_str();
    let seq = m.seq as i64;
    match d {
        Derived::Scan(s) => return scan(tx, m, s).await,
        Derived::Opened(o) => {
            let at = o.at.as_micros();
            tx.query_typed(
                "INSERT INTO attendance_events (org_id, event_id, count, capacity, venue_id, opened_at, seq)
                 VALUES ($1, $2, 0, $3, $4, $5, $6)
                 ON CONFLICT (org_id, event_id) DO UPDATE SET capacity = EXCLUDED.capacity,
                   venue_id = EXCLUDED.venue_id, opened_at = EXCLUDED.opened_at, seq = EXCLUDED.seq",
                &[
                    (&org, T),
                    (&o.event, T),
                    (&o.capacity, I),
                    (&o.venue, T),
                    (&at, I),
                    (&seq, I),
                ],
            )
            .await?;
            tx.query_typed(
                "INSERT INTO venues (org_id, venue_id, event_id, opened_at, seq) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (org_id, venue_id) DO UPDATE SET event_id = EXCLUDED.event_id,
                   opened_at = EXCLUDED.opened_at, seq = EXCLUDED.seq
                 WHERE EXCLUDED.opened_at >= venues.opened_at",
                &[(&org, T), (&o.venue, T), (&o.event, T), (&at, I), (&seq, I)],
            )
            .await?;
        }
        Derived::DropPublished {
            artist,
            drop,
            quantity,
        } => {
            let (data, at) = (m.data.get(), m.received_at.as_micros());
            tx.query_typed(
                "INSERT INTO drops (org_id, drop_id, artist_id, quantity, data, published_at, seq)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (org_id, drop_id) DO UPDATE SET artist_id = EXCLUDED.artist_id,
                   quantity = EXCLUDED.quantity, data = EXCLUDED.data, seq = EXCLUDED.seq",
                &[
                    (&org, T),
                    (drop, T),
                    (artist, T),
                    (quantity, I),
                    (&data, T),
                    (&at, I),
                    (&seq, I),
                ],
            )
            .await?;
        }
        Derived::DropClaimed { drop, claim } => {
            tx.query_typed(
                "INSERT INTO drop_claims (org_id, drop_id, claim_id, seq) VALUES ($1, $2, $3, $4)
                 ON CONFLICT DO NOTHING",
                &[(&org, T), (drop, T), (claim, T), (&seq, I)],
            )
            .await?;
        }
    }
    Ok(Vec::new())
}

async fn scan(tx: &Transaction<'_>, m: &StoredMessage, s: &Scan) -> Result<Vec<NewMessage>> {
    let org = m.org_id.as_str();
    let seq = m.seq as i64;
    let at = s.at.as_micros();
    let (id, received, dir) = (m.id.as_str(), m.received_at.as_micros(), s.dir.as_str());
    let delta = s.dir.delta();
    let last = (delta > 0).then_some(at);
    // The scan row and the counters in one round trip: the counters move
    // only when the scan row is new (a replayed scan counts once).
    let rows = tx
        .query_typed(
            "WITH ins AS (
               INSERT INTO attendance_scans (org_id, event_id, person, direction, at, gate, seq, message_id, received_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING RETURNING 1
             ), g AS (
               INSERT INTO attendance_gates (org_id, event_id, gate, count)
               SELECT $1, $2, $6, $10 FROM ins WHERE $6::text IS NOT NULL
               ON CONFLICT (org_id, event_id, gate) DO UPDATE SET count = attendance_gates.count + EXCLUDED.count
             )
             INSERT INTO attendance_events (org_id, event_id, count, last_checkin_at, seq)
             SELECT $1, $2, $10, $11, $7 FROM ins
             ON CONFLICT (org_id, event_id) DO UPDATE SET count = attendance_events.count + EXCLUDED.count,
               last_checkin_at = CASE WHEN EXCLUDED.last_checkin_at IS NULL THEN attendance_events.last_checkin_at
                 ELSE GREATEST(attendance_events.last_checkin_at, EXCLUDED.last_checkin_at) END,
               seq = EXCLUDED.seq
             RETURNING count, capacity,
               (SELECT counts FROM attendance_settings WHERE org_id = $1),
               (SELECT percents FROM attendance_settings WHERE org_id = $1)",
            &[
                (&org, T),
                (&s.event, T),
                (&s.person, T),
                (&dir, T),
                (&at, I),
                (&s.gate, T),
                (&seq, I),
                (&id, T),
                (&received, I),
                (&delta, I),
                (&last, I),
            ],
        )
        .await?;
    let Some(row) = rows.first() else {
        return Ok(Vec::new());
    };
    if delta < 0 {
        return Ok(Vec::new());
    }
    let after: i64 = row.try_get(0)?;
    let capacity: Option<i64> = row.try_get(1)?;
    let th = match (
        row.try_get::<_, Option<String>>(2)?,
        row.try_get::<_, Option<String>>(3)?,
    ) {
        (Some(c), Some(p)) => thresholds_from_text(&c, &p),
        _ => Thresholds::default(),
    };
    let mut out = Vec::new();
    for t in attendance::crossed(&th, capacity, after - delta, after) {
        let fired = tx
            .query_typed(
                "INSERT INTO attendance_milestones (org_id, event_id, threshold, count, at, seq)
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING RETURNING 1",
                &[
                    (&org, T),
                    (&s.event, T),
                    (&t, I),
                    (&after, I),
                    (&at, I),
                    (&seq, I),
                ],
            )
            .await?;
        if !fired.is_empty() {
            out.push(crate::attendance::milestone_message(m, s, after, t, capacity)?);
        }
    }
    Ok(out)
}

const EVENT_COLUMNS: &str = "event_id, count, capacity, venue_id, opened_at, last_checkin_at";

fn event_row(r: &Row) -> Result<AttendanceRecord> {
    Ok(AttendanceRecord {
        event_id: r.try_get(0)?,
        count: r.try_get(1)?,
        capacity: r.try_get(2)?,
        venue_id: r.try_get(3)?,
        gates: Vec::new(),
        milestones: Vec::new(),
        opened_at: r.try_get::<_, Option<i64>>(4)?.map(Timestamp::from_micros),
        last_checkin_at: r.try_get::<_, Option<i64>>(5)?.map(Timestamp::from_micros),
    })
}

async fn details(c: &Client, org: &str, rec: &mut AttendanceRecord) -> Result<()> {
    for r in c
        .query(
            "SELECT gate, count FROM attendance_gates WHERE org_id = $1 AND event_id = $2 ORDER BY gate",
            &[&org, &rec.event_id],
        )
        .await?
    {
        rec.gates.push((r.try_get(0)?, r.try_get(1)?));
    }
    for r in c
        .query(
            "SELECT threshold, count, at FROM attendance_milestones WHERE org_id = $1 AND event_id = $2 ORDER BY threshold",
            &[&org, &rec.event_id],
        )
        .await?
    {
        rec.milestones.push(MilestoneRecord {
            threshold: r.try_get(0)?,
            count: r.try_get(1)?,
            at: Timestamp::from_micros(r.try_get(2)?),
        });
    }
    Ok(())
}

#[async_trait]
impl AttendanceStore for PgStore {
    async fn attendance_settings(&self, org: &OrgId) -> Result<AttendanceSettings> {
        let c = self.pool.get().await?;
        let row = c
            .query_opt(
                "SELECT counts, percents, updated_at FROM attendance_settings WHERE org_id = $1",
                &[&org.as_str()],
            )
            .await?;
        Ok(match row {
            Some(r) => AttendanceSettings {
                thresholds: thresholds_from_text(&r.try_get::<_, String>(0)?, &r.try_get::<_, String>(1)?),
                updated_at: Some(Timestamp::from_micros(r.try_get(2)?)),
            },
            None => AttendanceSettings {
                thresholds: Thresholds::default(),
                updated_at: None,
            },
        })
    }

    async fn put_attendance_settings(&self, org: &OrgId, th: &Thresholds) -> Result<AttendanceSettings> {
        let th = th.clone().normalized();
        let (cs, ps) = thresholds_to_text(&th);
        let now = Timestamp::now();
        let c = self.pool.get().await?;
        c.execute(
            "INSERT INTO attendance_settings (org_id, counts, percents, updated_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (org_id) DO UPDATE SET counts = EXCLUDED.counts,
               percents = EXCLUDED.percents, updated_at = EXCLUDED.updated_at",
            &[&org.as_str(), &cs, &ps, &now.as_micros()],
        )
        .await?;
        Ok(AttendanceSettings {
            thresholds: th,
            updated_at: Some(now),
        })
    }

    async fn get_attendance(&self, org: &OrgId, event_id: &str) -> Result<Option<AttendanceRecord>> {
        let c = self.pool.get().await?;
        let row = c
            .query_opt(
                &format!("SELECT {EVENT_COLUMNS} FROM attendance_events WHERE org_id = $1 AND event_id = $2"),
                &[&org.as_str(), &event_id],
            )
            .await?;
        let Some(row) = row else { return Ok(None) };
        let mut rec = event_row(&row)?;
        details(&c, org.as_str(), &mut rec).await?;
        Ok(Some(rec))
    }

    async fn list_attendance(
        &self,
        org: &OrgId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<AttendanceRecord>, bool)> {
        let c = self.pool.get().await?;
        let rows = c
            .query(
                &format!(
                    "SELECT {EVENT_COLUMNS} FROM attendance_events WHERE org_id = $1 AND event_id COLLATE \"C\" > $2
                     ORDER BY event_id COLLATE \"C\" LIMIT $3"
                ),
                &[&org.as_str(), &after.unwrap_or(""), &(limit as i64 + 1)],
            )
            .await?;
        let more = rows.len() > limit;
        let mut out = Vec::new();
        for r in rows.iter().take(limit) {
            let mut rec = event_row(r)?;
            details(&c, org.as_str(), &mut rec).await?;
            out.push(rec);
        }
        Ok((out, more))
    }

    async fn list_checkins(
        &self,
        org: &OrgId,
        event_id: &str,
        q: &CheckinQuery,
    ) -> Result<(Vec<CheckinRecord>, bool)> {
        let since = q.since.map_or(i64::MIN, Timestamp::as_micros);
        let (a_at, a_seq) = q.after.map_or((i64::MIN, 0), |(a, s)| (a, s as i64));
        let c = self.pool.get().await?;
        let rows = c
            .query(
                "SELECT message_id, seq, event_id, person, direction, gate, at, received_at
                 FROM attendance_scans
                 WHERE org_id = $1 AND event_id = $2 AND at >= $3 AND (at > $4 OR (at = $4 AND seq > $5))
                 ORDER BY at, seq LIMIT $6",
                &[
                    &org.as_str(),
                    &event_id,
                    &since,
                    &a_at,
                    &a_seq,
                    &(q.limit as i64 + 1),
                ],
            )
            .await?;
        let more = rows.len() > q.limit;
        let mut out = Vec::new();
        for r in rows.iter().take(q.limit) {
            out.push(CheckinRecord {
                message_id: r.try_get(0)?,
                seq: r.try_get::<_, i64>(1)? as u64,
                event_id: r.try_get(2)?,
                person: r.try_get(3)?,
                direction: r.try_get(4)?,
                gate: r.try_get(5)?,
                at: Timestamp::from_micros(r.try_get(6)?),
                received_at: Timestamp::from_micros(r.try_get(7)?),
            });
        }
        Ok((out, more))
    }

    async fn list_drops(
        &self,
        org: &OrgId,
        artist_id: &str,
        status: DropStatus,
        after_seq: Option<u64>,
        limit: usize,
    ) -> Result<(Vec<DropRecord>, bool)> {
        let c = self.pool.get().await?;
        let rows = c
            .query(
                &format!(
                    "SELECT d.drop_id, d.artist_id, d.quantity, {REMAINING_SQL}, d.data, d.published_at, d.seq
                     FROM drops d WHERE d.org_id = $1 AND d.artist_id = $2 AND d.seq > $3{}
                     ORDER BY d.seq LIMIT $4",
                    drop_status_sql(status)
                ),
                &[
                    &org.as_str(),
                    &artist_id,
                    &(after_seq.unwrap_or(0) as i64),
                    &(limit as i64 + 1),
                ],
            )
            .await?;
        let more = rows.len() > limit;
        let mut out = Vec::new();
        for r in rows.iter().take(limit) {
            out.push(DropRecord {
                drop_id: r.try_get(0)?,
                artist_id: r.try_get(1)?,
                quantity: r.try_get(2)?,
                remaining: r.try_get::<_, i64>(3)?.max(0),
                data: r.try_get(4)?,
                published_at: Timestamp::from_micros(r.try_get(5)?),
                seq: r.try_get::<_, i64>(6)? as u64,
            });
        }
        Ok((out, more))
    }

    async fn get_venue(&self, org: &OrgId, venue_id: &str) -> Result<Option<VenueRecord>> {
        let c = self.pool.get().await?;
        let row = c
            .query_opt(
                "SELECT venue_id, event_id, opened_at FROM venues WHERE org_id = $1 AND venue_id = $2",
                &[&org.as_str(), &venue_id],
            )
            .await?;
        row.map(|r| {
            Ok(VenueRecord {
                venue_id: r.try_get(0)?,
                event_id: r.try_get(1)?,
                opened_at: Timestamp::from_micros(r.try_get(2)?),
            })
        })
        .transpose()
    }
}
