//! Timestamps: UTC microseconds since the Unix epoch, rendered as RFC 3339.
//!
//! Microseconds keep sub-millisecond ordering information for `occurred_at`
//! values that carry it while fitting an `i64` for every store.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

/// `0000-01-01T00:00:00Z` and `9999-12-31T23:59:59.999999Z`: the instants
/// RFC 3339 can write in UTC.
const FIRST_MICROS: i128 = -62_167_219_200_000_000;
const LAST_MICROS: i128 = 253_402_300_799_999_999;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not an RFC 3339 timestamp (e.g. 2026-05-14T21:00:00Z)")]
pub struct BadTimestamp;

impl Timestamp {
    pub fn now() -> Self {
        let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        Timestamp(d.as_micros() as i64)
    }

    pub fn from_micros(us: i64) -> Self {
        Timestamp(us)
    }

    pub fn as_micros(self) -> i64 {
        self.0
    }

    pub fn as_millis(self) -> i64 {
        self.0.div_euclid(1000)
    }

    pub fn as_secs(self) -> i64 {
        self.0.div_euclid(1_000_000)
    }

    pub fn saturating_sub_micros(self, us: i64) -> Self {
        Timestamp(self.0.saturating_sub(us))
    }

    pub fn saturating_add_micros(self, us: i64) -> Self {
        Timestamp(self.0.saturating_add(us))
    }

    /// Parses an RFC 3339 timestamp with any offset; years 0000–9999 only,
    /// in UTC as well (`0000-01-01T00:00:00+01:00` is in year -1 in UTC,
    /// which [`to_rfc3339`](Self::to_rfc3339) could not write back).
    pub fn parse_rfc3339(s: &str) -> Result<Self, BadTimestamp> {
        if s.len() > 64 {
            return Err(BadTimestamp);
        }
        let dt = OffsetDateTime::parse(s, &Rfc3339).map_err(|_| BadTimestamp)?;
        let us = dt.unix_timestamp_nanos() / 1000;
        if !(FIRST_MICROS..=LAST_MICROS).contains(&us) {
            return Err(BadTimestamp);
        }
        i64::try_from(us).map(Timestamp).map_err(|_| BadTimestamp)
    }

    /// RFC 3339 in UTC with a `Z` suffix.
    pub fn to_rfc3339(self) -> String {
        let nanos = i128::from(self.0) * 1000;
        match OffsetDateTime::from_unix_timestamp_nanos(nanos) {
            Ok(dt) => dt.format(&Rfc3339).unwrap_or_else(|_| self.0.to_string()),
            Err(_) => self.0.to_string(),
        }
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for s in [
            "2026-05-14T21:00:00Z",
            "2026-05-14T21:00:00.5Z",
            "2026-05-14T21:00:00.123456Z",
        ] {
            let t = Timestamp::parse_rfc3339(s).unwrap();
            assert_eq!(t.to_rfc3339(), s);
        }
    }

    #[test]
    fn offsets_normalise_to_utc() {
        let t = Timestamp::parse_rfc3339("2026-05-14T21:00:00-05:00").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-05-15T02:00:00Z");
    }

    #[test]
    fn accepts_only_what_renders_back() {
        // Found by `fuzz/` (target timestamp): an offset moved a year-0000
        // or year-9999 time out of those years in UTC, and it rendered as a
        // bare number instead of RFC 3339.
        for s in ["0000-01-01T00:00:00+00:30", "9999-12-31T23:59:59-01:00"] {
            assert_eq!(Timestamp::parse_rfc3339(s), Err(BadTimestamp), "{s}");
        }
        for (s, utc) in [
            ("0000-01-01T00:00:00Z", "0000-01-01T00:00:00Z"),
            ("0000-01-01T00:00:00-01:00", "0000-01-01T01:00:00Z"),
            ("9999-12-31T23:59:59.999999Z", "9999-12-31T23:59:59.999999Z"),
            ("9999-12-31T23:59:59+01:00", "9999-12-31T22:59:59Z"),
        ] {
            let t = Timestamp::parse_rfc3339(s).unwrap();
            assert_eq!(t.to_rfc3339(), utc, "{s}");
            assert_eq!(Timestamp::parse_rfc3339(utc), Ok(t));
        }
    }

    #[test]
    fn rejects_garbage() {
        for s in ["", "yesterday", "2026-13-01T00:00:00Z", "2026-05-14", "1e9"] {
            assert_eq!(Timestamp::parse_rfc3339(s), Err(BadTimestamp), "{s}");
        }
    }
}
