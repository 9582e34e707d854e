//! Attendance and drops as catalog rules: what a check-in, a door opening, a
//! drop or a claim *means*, read out of a message's `data` by JSON pointers.
//!
//! Why data, not code: four platforms scan tickets (Revolution `fan_checkin`,
//! Eventium `checkin.scanned`, the attendee platform's `event.attendees.*` and
//! `event.tickets.*`), each with its own field names. A catalog type says
//! where its event, person, direction, gate and scan time are
//! ([`AttendanceRule`]); ingest turns the payload into a [`Derived`] fact once,
//! and the store applies facts in the publish commit without knowing any
//! platform. [`crossed`] is the milestone decision both backends share.
//!
//! Pure: no I/O.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::timestamp::Timestamp;

/// Default count thresholds of `attendance_milestone`.
pub const DEFAULT_COUNTS: &[u64] = &[100, 500, 1_000, 5_000, 10_000];
/// Default thresholds in percent of the event's capacity.
pub const DEFAULT_PERCENTS: &[u32] = &[25, 50, 75, 90, 100];
/// The type marquee publishes when a count first crosses a threshold.
pub const MILESTONE_TYPE: &str = "attendance_milestone";

/// The attendance rule of a catalog type (`"attendance"` in the catalog).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "snake_case", deny_unknown_fields)]
pub enum AttendanceRule {
    /// A door scan: `{"role":"scan","event":"/event_id","person":"/fan_id",
    /// "direction":"in" | {"pointer":"/direction","in":"in","out":"out"},
    /// "gate":"/gate"?, "at":"/ts"?}`. Without `at` the scan time is the
    /// message's `occurred_at`.
    Scan {
        event: String,
        person: String,
        direction: Direction,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        gate: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        at: Option<String>,
    },
    /// Doors open: `{"role":"opened","event":"/event_id","venue":"/venue_id",
    /// "capacity":"/capacity","at":"/ts"?}`.
    Opened {
        event: String,
        venue: String,
        capacity: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        at: Option<String>,
    },
}

/// A scan's direction: fixed by the type, or read from a field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Direction {
    Fixed(Dir),
    Field {
        pointer: String,
        #[serde(rename = "in")]
        in_value: Value,
        #[serde(rename = "out")]
        out_value: Value,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dir {
    In,
    Out,
}

impl Dir {
    pub fn as_str(self) -> &'static str {
        match self {
            Dir::In => "in",
            Dir::Out => "out",
        }
    }

    pub fn delta(self) -> i64 {
        match self {
            Dir::In => 1,
            Dir::Out => -1,
        }
    }
}

/// The drop rule of a catalog type (`"drop"` in the catalog).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "snake_case", deny_unknown_fields)]
pub enum DropRule {
    /// `{"role":"published","artist":"/artist_id","drop":"/drop_id","quantity":"/quantity"}`
    Published {
        artist: String,
        drop: String,
        quantity: String,
    },
    /// `{"role":"claimed","drop":"/drop_id","claim":"/order_id"}`: one claim
    /// per claim id (a replayed claim decrements once).
    Claimed { drop: String, claim: String },
}

impl AttendanceRule {
    /// Every pointer of the rule, named for error messages.
    pub fn pointers(&self) -> Vec<(&'static str, &str)> {
        match self {
            AttendanceRule::Scan {
                event,
                person,
                direction,
                gate,
                at,
            } => {
                let mut v = vec![
                    ("attendance.event", event.as_str()),
                    ("attendance.person", person.as_str()),
                ];
                if let Direction::Field { pointer, .. } = direction {
                    v.push(("attendance.direction.pointer", pointer.as_str()));
                }
                v.extend(gate.as_deref().map(|g| ("attendance.gate", g)));
                v.extend(at.as_deref().map(|a| ("attendance.at", a)));
                v
            }
            AttendanceRule::Opened {
                event,
                venue,
                capacity,
                at,
            } => {
                let mut v = vec![
                    ("attendance.event", event.as_str()),
                    ("attendance.venue", venue.as_str()),
                    ("attendance.capacity", capacity.as_str()),
                ];
                v.extend(at.as_deref().map(|a| ("attendance.at", a)));
                v
            }
        }
    }

    /// The fact this message states, or `None` when a field the rule names
    /// is missing or of the wrong kind (then the message is delivered but
    /// not counted).
    pub fn extract(&self, data: &Value, occurred_at: Timestamp) -> Option<Derived> {
        match self {
            AttendanceRule::Scan {
                event,
                person,
                direction,
                gate,
                at,
            } => {
                let (event, event_json) = id_at(data, event)?;
                let (person, _) = id_at(data, person)?;
                let dir = match direction {
                    Direction::Fixed(d) => *d,
                    Direction::Field {
                        pointer,
                        in_value,
                        out_value,
                    } => {
                        let v = data.pointer(pointer)?;
                        if v == in_value {
                            Dir::In
                        } else if v == out_value {
                            Dir::Out
                        } else {
                            return None;
                        }
                    }
                };
                let gate = match gate {
                    Some(p) => data.pointer(p).and_then(id_text),
                    None => None,
                };
                let at = match at {
                    Some(p) => time_at(data, p)?,
                    None => occurred_at,
                };
                Some(Derived::Scan(Scan {
                    event,
                    event_json,
                    person,
                    dir,
                    gate,
                    at,
                }))
            }
            AttendanceRule::Opened {
                event,
                venue,
                capacity,
                at,
            } => {
                let (event, event_json) = id_at(data, event)?;
                let (venue, _) = id_at(data, venue)?;
                let capacity = data.pointer(capacity)?.as_i64().filter(|c| *c >= 0)?;
                let at = match at {
                    Some(p) => time_at(data, p)?,
                    None => occurred_at,
                };
                Some(Derived::Opened(Opening {
                    event,
                    event_json,
                    venue,
                    capacity,
                    at,
                }))
            }
        }
    }
}

impl DropRule {
    pub fn pointers(&self) -> Vec<(&'static str, &str)> {
        match self {
            DropRule::Published {
                artist,
                drop,
                quantity,
            } => vec![
                ("drop.artist", artist),
                ("drop.drop", drop),
                ("drop.quantity", quantity),
            ],
            DropRule::Claimed { drop, claim } => vec![("drop.drop", drop), ("drop.claim", claim)],
        }
    }

    pub fn extract(&self, data: &Value) -> Option<Derived> {
        match self {
            DropRule::Published {
                artist,
                drop,
                quantity,
            } => Some(Derived::DropPublished {
                artist: id_at(data, artist)?.0,
                drop: id_at(data, drop)?.0,
                quantity: data.pointer(quantity)?.as_i64()?,
            }),
            DropRule::Claimed { drop, claim } => Some(Derived::DropClaimed {
                drop: id_at(data, drop)?.0,
                claim: id_at(data, claim)?.0,
            }),
        }
    }
}

/// What a message states for the read models, applied in its publish commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Derived {
    Scan(Scan),
    Opened(Opening),
    DropPublished {
        artist: String,
        drop: String,
        quantity: i64,
    },
    DropClaimed {
        drop: String,
        claim: String,
    },
}

/// One door scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    /// The event id as text (an integer id in decimal).
    pub event: String,
    /// The event id as the payload spelled it (JSON), for the milestone.
    pub event_json: String,
    pub person: String,
    pub dir: Dir,
    pub gate: Option<String>,
    /// The scan's own (logical) time.
    pub at: Timestamp,
}

/// Doors opened for an event, with its capacity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opening {
    pub event: String,
    pub event_json: String,
    pub venue: String,
    pub capacity: i64,
    pub at: Timestamp,
}

/// An id field: a non-empty string of at most 256 bytes, or an integer.
fn id_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() && s.len() <= 256 => Some(s.clone()),
        Value::Number(n) if n.is_i64() || n.is_u64() => Some(n.to_string()),
        _ => None,
    }
}

fn id_at(data: &Value, pointer: &str) -> Option<(String, String)> {
    let v = data.pointer(pointer)?;
    Some((id_text(v)?, v.to_string()))
}

/// A time field: milliseconds since the epoch (Revolution's `ts`) or an
/// RFC 3339 string (Eventium's `scanned_at`).
fn time_at(data: &Value, pointer: &str) -> Option<Timestamp> {
    match data.pointer(pointer)? {
        Value::Number(n) => {
            let ms = n.as_i64()?;
            (0..=253_402_300_799_999)
                .contains(&ms)
                .then(|| Timestamp::from_micros(ms * 1000))
        }
        Value::String(s) => Timestamp::parse_rfc3339(s).ok(),
        _ => None,
    }
}

/// An organization's milestone thresholds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Thresholds {
    pub counts: Vec<u64>,
    pub capacity_percents: Vec<u32>,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            counts: DEFAULT_COUNTS.to_vec(),
            capacity_percents: DEFAULT_PERCENTS.to_vec(),
        }
    }
}

/// At most this many thresholds of each kind per organization.
pub const MAX_THRESHOLDS: usize = 50;

impl Thresholds {
    /// Checks what `PUT /v1/attendance/settings` accepts: counts 1 to
    /// 10,000,000, percents 1 to 100, at most [`MAX_THRESHOLDS`] each.
    /// Answers the field at fault and why.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if self.counts.len() > MAX_THRESHOLDS {
            return Err(("thresholds", format!("at most {MAX_THRESHOLDS} thresholds")));
        }
        if self.capacity_percents.len() > MAX_THRESHOLDS {
            return Err(("capacity_percents", format!("at most {MAX_THRESHOLDS} percents")));
        }
        if let Some(c) = self.counts.iter().find(|c| !(1..=10_000_000).contains(*c)) {
            return Err(("thresholds", format!("{c} is not between 1 and 10000000")));
        }
        if let Some(p) = self.capacity_percents.iter().find(|p| !(1..=100).contains(*p)) {
            return Err(("capacity_percents", format!("{p} is not between 1 and 100")));
        }
        Ok(())
    }

    /// Sorted and without repeats (as stored and rendered).
    pub fn normalized(mut self) -> Self {
        self.counts.sort_unstable();
        self.counts.dedup();
        self.capacity_percents.sort_unstable();
        self.capacity_percents.dedup();
        self
    }
}

/// The thresholds a count moving from `before` to `after` crosses upwards
/// (`before < t <= after`), ascending and unique; a percent threshold is
/// `ceil(capacity × p / 100)` and exists only once the capacity is known.
/// Whether one already fired is the store's fired-thresholds table.
pub fn crossed(th: &Thresholds, capacity: Option<i64>, before: i64, after: i64) -> Vec<i64> {
    if after <= before {
        return Vec::new();
    }
    let mut out: Vec<i64> = th
        .counts
        .iter()
        .map(|c| *c as i64)
        .chain(capacity.filter(|c| *c > 0).into_iter().flat_map(|cap| {
            th.capacity_percents
                .iter()
                .map(move |p| (cap * i64::from(*p) + 99) / 100)
        }))
        .filter(|t| *t > before && *t <= after && *t > 0)
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// The `data` of the `attendance_milestone` marquee publishes. `ts` is the
/// crossing scan's own time in milliseconds (Revolution's unit);
/// `capacity` is null until a `venue_opened` told it.
pub fn milestone_data(scan: &Scan, count: i64, threshold: i64, capacity: Option<i64>) -> String {
    let cap = capacity.map_or_else(|| "null".to_owned(), |c| c.to_string());
    format!(
        r#"{{"event_id":{},"count":{count},"threshold":{threshold},"capacity":{cap},"ts":{}}}"#,
        scan.event_json,
        scan.at.as_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn crossing_counts_and_percents() {
        let th = Thresholds::default();
        assert_eq!(crossed(&th, None, 99, 100), vec![100]);
        assert_eq!(crossed(&th, None, 100, 101), Vec::<i64>::new());
        assert_eq!(crossed(&th, Some(400), 99, 100), vec![100]);
        assert_eq!(crossed(&th, Some(400), 0, 400), vec![100, 200, 300, 360, 400]);
        assert_eq!(crossed(&th, Some(3), 0, 1), vec![1]);
        assert_eq!(crossed(&th, None, 101, 100), Vec::<i64>::new());
    }

    #[test]
    fn scans_read_from_each_shape() {
        let rule: AttendanceRule = serde_json::from_value(json!({
            "role": "scan", "event": "/event_id", "person": "/ticket_id",
            "direction": {"pointer": "/direction", "in": "in", "out": "out"}, "at": "/scanned_at"
        }))
        .unwrap();
        let d = rule
            .extract(
                &json!({"event_id": "evt_1", "ticket_id": "t1", "direction": "out", "scanned_at": "2026-05-15T00:30:00Z"}),
                Timestamp::from_micros(0),
            )
            .unwrap();
        let Derived::Scan(s) = d else { panic!() };
        assert_eq!((s.event.as_str(), s.dir, s.gate), ("evt_1", Dir::Out, None));
        assert_eq!(s.at.to_rfc3339(), "2026-05-15T00:30:00Z");
        let fixed: AttendanceRule = serde_json::from_value(json!({
            "role": "scan", "event": "/event_id", "person": "/fan_id", "direction": "in", "gate": "/gate", "at": "/ts"
        }))
        .unwrap();
        let Some(Derived::Scan(s)) = fixed.extract(
            &json!({"event_id": 1042, "fan_id": "f", "gate": "MAIN", "ts": 1745123456789_i64}),
            Timestamp::from_micros(0),
        ) else {
            panic!()
        };
        assert_eq!(
            (s.event.as_str(), s.event_json.as_str(), s.gate.as_deref()),
            ("1042", "1042", Some("MAIN"))
        );
        assert_eq!(s.at.as_millis(), 1745123456789);
        assert!(
            fixed
                .extract(
                    &json!({"event_id": 1, "fan_id": "f", "ts": "x"}),
                    Timestamp::from_micros(0)
                )
                .is_none()
        );
    }
}
