//! The webhook delivery model: which messages an endpoint receives, the
//! states a delivery moves through, and the retry schedule.
//!
//! These are the rules the store (creating deliveries inside the publish
//! commit), the dispatcher (deciding what happens after an attempt) and the
//! API (validating endpoint filters) must agree on, so they live here, pure
//! and table-tested, rather than in any one of them.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::names::Channel;
use crate::pattern::{TypePattern, any_matches};
use crate::timestamp::Timestamp;

/// Operational message types marquee publishes into an organization's log.
pub mod ops {
    pub const ENDPOINT_DISABLED: &str = "endpoint.disabled";
    pub const ENDPOINT_RECOVERED: &str = "endpoint.recovered";
    pub const ATTEMPT_EXHAUSTED: &str = "message.attempt.exhausted";
    pub const ATTEMPT_FAILING: &str = "message.attempt.failing";
    /// The type of the signed ping sent by `POST /v1/endpoints/{id}/test`.
    pub const TEST: &str = "marquee.test";
    /// A test ping's message id starts with this (`msg_test_<ULID>`): it is
    /// never in the log, and no real message id can look like it.
    pub const TEST_MESSAGE_PREFIX: &str = "msg_test_";
    /// A test ping's delivery id (`webhook-id`) starts with this.
    pub const TEST_DELIVERY_PREFIX: &str = "dlv_test_";

    /// Fresh (message id, delivery id) of a test ping, each plainly marked.
    pub fn test_ids() -> (crate::ids::MessageId, crate::ids::DeliveryId) {
        let body = crate::ids::MessageId::generate().as_str()[4..].to_owned();
        (
            crate::ids::MessageId::from_trusted(format!("{TEST_MESSAGE_PREFIX}{body}")),
            crate::ids::DeliveryId::from_trusted(format!("{TEST_DELIVERY_PREFIX}{body}")),
        )
    }

    /// True for a test ping's message id.
    pub fn is_test_message_id(id: &str) -> bool {
        id.starts_with(TEST_MESSAGE_PREFIX)
    }

    /// True for the types above: a failure delivering one of these never
    /// produces another operational message (no feedback loops).
    pub fn is_operational(ty: &str) -> bool {
        matches!(
            ty,
            ENDPOINT_DISABLED | ENDPOINT_RECOVERED | ATTEMPT_EXHAUSTED | ATTEMPT_FAILING
        )
    }
}

/// What an endpoint subscribes to: empty lists mean "all".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointFilter {
    pub types: Vec<TypePattern>,
    pub channels: Vec<Channel>,
}

impl EndpointFilter {
    /// A message matches when its type matches one pattern (or there are
    /// none) and it shares a channel with the endpoint (or it lists none).
    pub fn matches(&self, event_type: &str, channels: &[Channel]) -> bool {
        any_matches(&self.types, event_type)
            && (self.channels.is_empty() || channels.iter().any(|c| self.channels.contains(c)))
    }

    /// Space-separated storage form of the type patterns.
    pub fn types_text(&self) -> String {
        self.types
            .iter()
            .map(|t| t.to_string())
            .collect::<Vec<_>>()
            .join(" ")
    }

    pub fn channels_text(&self) -> String {
        self.channels
            .iter()
            .map(|c| c.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Reads the storage form back; unparseable entries are skipped (they
    /// were validated on the way in).
    pub fn from_texts(types: &str, channels: &str) -> Self {
        EndpointFilter {
            types: types.split(' ').filter_map(|t| t.parse().ok()).collect(),
            channels: channels.split(' ').filter_map(|c| c.parse().ok()).collect(),
        }
    }
}

/// Where a delivery is in its life.
///
/// ```text
/// Pending ──2xx──▶ Delivered
///    │ ▲
///    │ └─ failure with attempts left (next_at = now + schedule[n] ± 20 %)
///    └──── failure on the last attempt, or 410 Gone ──▶ Exhausted
/// Exhausted / Pending ──recover, resend──▶ Pending (schedule restarts)
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryState {
    Pending,
    Delivered,
    Exhausted,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown delivery state")]
pub struct BadState;

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Exhausted => "exhausted",
        }
    }
}

impl FromStr for DeliveryState {
    type Err = BadState;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pending" => Ok(DeliveryState::Pending),
            "delivered" => Ok(DeliveryState::Delivered),
            "exhausted" => Ok(DeliveryState::Exhausted),
            _ => Err(BadState),
        }
    }
}

impl fmt::Display for DeliveryState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Longest `Retry-After` honoured; a longer one is capped to this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);
/// Jitter applied to each scheduled delay: ±20 %.
pub const JITTER: f64 = 0.2;

/// The delays between attempts: entry `n` is the wait before attempt `n + 1`
/// (the first entry is normally 0: attempt immediately).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrySchedule(pub Vec<Duration>);

impl Default for RetrySchedule {
    fn default() -> Self {
        let s = |n| Duration::from_secs(n);
        RetrySchedule(vec![
            s(0),
            s(5),
            s(300),
            s(1800),
            s(7200),
            s(5 * 3600),
            s(10 * 3600),
            s(14 * 3600),
            s(20 * 3600),
            s(24 * 3600),
        ])
    }
}

impl RetrySchedule {
    /// Total attempts a delivery gets.
    pub fn attempts(&self) -> u32 {
        self.0.len().max(1) as u32
    }

    /// The wait after `done` failed attempts, or `None` when exhausted.
    /// `unit` is a uniform sample in `[0, 1)` that places the jitter;
    /// `retry_after` is the receiver's `Retry-After`, honoured up to
    /// [`MAX_RETRY_AFTER`] but never shortening the schedule.
    pub fn next_delay(&self, done: u32, unit: f64, retry_after: Option<Duration>) -> Option<Duration> {
        if done >= self.attempts() {
            return None;
        }
        let base = self.0.get(done as usize).copied().unwrap_or_default();
        let factor = 1.0 + JITTER * (2.0 * unit.clamp(0.0, 1.0) - 1.0);
        let jittered = base.mul_f64(factor);
        Some(match retry_after {
            Some(ra) => jittered.max(ra.min(MAX_RETRY_AFTER)),
            None => jittered,
        })
    }
}

/// Parses a `Retry-After` value (RFC 9110 §10.2.3) into the wait from `now`,
/// the time the response arrived.
///
/// Accepted, with surrounding whitespace ignored:
/// - delta-seconds: ASCII digits only (`120`); a number too large for any
///   integer type still means "a long time";
/// - an HTTP-date (RFC 9110 §5.6.7), always in GMT: the IMF-fixdate
///   `Wed, 21 Oct 2015 07:28:00 GMT` and the obsolete forms RFC 850
///   `Wednesday, 21-Oct-15 07:28:00 GMT` (a two-digit year more than 50
///   years ahead of `now` is taken from the previous century) and asctime
///   `Wed Oct 21 07:28:00 2015`. Names are case-sensitive; the day name is
///   not cross-checked against the date. A date at or before `now` gives
///   [`Duration::ZERO`].
///
/// Both are capped at [`MAX_RETRY_AFTER`]. Anything else (negative or
/// fractional numbers, other date formats, invalid dates) gives `None`: the
/// header is ignored and the schedule applies.
pub fn parse_retry_after(v: &str, now: Timestamp) -> Option<Duration> {
    let v = v.trim();
    if v.is_empty() {
        return None;
    }
    if v.bytes().all(|b| b.is_ascii_digit()) {
        let n = v.parse::<u64>().unwrap_or(u64::MAX);
        return Some(Duration::from_secs(n.min(MAX_RETRY_AFTER.as_secs())));
    }
    let at_us = i128::from(http_date(v, now)?) * 1_000_000;
    let wait_us = at_us - i128::from(now.as_micros());
    if wait_us <= 0 {
        return Some(Duration::ZERO);
    }
    let wait_us = u64::try_from(wait_us).unwrap_or(u64::MAX);
    Some(Duration::from_micros(wait_us).min(MAX_RETRY_AFTER))
}

const SHORT_DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const LONG_DAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// A run of ASCII digits as a number.
fn digits(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn month(s: &str) -> Option<u8> {
    MONTHS.iter().position(|m| *m == s).map(|i| i as u8 + 1)
}

/// `HH:MM:SS`.
fn time_of_day(s: &str) -> Option<(u8, u8, u8)> {
    let b = s.as_bytes();
    if b.len() != 8 || b[2] != b':' || b[5] != b':' {
        return None;
    }
    let n = |r: std::ops::Range<usize>| digits(&s[r]).map(|n| n as u8);
    Some((n(0..2)?, n(3..5)?, n(6..8)?))
}

/// Seconds since the epoch of an HTTP-date in any of its three forms.
fn http_date(v: &str, now: Timestamp) -> Option<i64> {
    // Every slice below is at ASCII positions.
    if !v.is_ascii() {
        return None;
    }
    let (year, mon, day, tod) = if let Some((name, rest)) = v.split_once(", ") {
        let rest = rest.strip_suffix(" GMT")?;
        let b = rest.as_bytes();
        if SHORT_DAYS.contains(&name) {
            // IMF-fixdate: `21 Oct 2015 07:28:00`.
            if b.len() != 20 || b[2] != b' ' || b[6] != b' ' || b[11] != b' ' {
                return None;
            }
            let year = i32::try_from(digits(&rest[7..11])?).ok()?;
            (year, month(&rest[3..6])?, digits(&rest[0..2])?, &rest[12..])
        } else if LONG_DAYS.contains(&name) {
            // RFC 850: `21-Oct-15 07:28:00`.
            if b.len() != 18 || b[2] != b'-' || b[6] != b'-' || b[9] != b' ' {
                return None;
            }
            let yy = i32::try_from(digits(&rest[7..9])?).ok()?;
            let now_year = time::OffsetDateTime::from_unix_timestamp(now.as_secs())
                .ok()?
                .year();
            let mut year = now_year - now_year.rem_euclid(100) + yy;
            if year > now_year + 50 {
                year -= 100;
            }
            (year, month(&rest[3..6])?, digits(&rest[0..2])?, &rest[10..])
        } else {
            return None;
        }
    } else {
        // asctime: `Wed Oct 21 07:28:00 2015`, a one-digit day padded
        // with a space (`Sun Nov  6 08:49:37 1994`).
        let b = v.as_bytes();
        if b.len() != 24 || b[3] != b' ' || b[7] != b' ' || b[10] != b' ' || b[19] != b' ' {
            return None;
        }
        if !SHORT_DAYS.contains(&&v[0..3]) {
            return None;
        }
        let day = match v[8..10].strip_prefix(' ') {
            Some(d) => digits(d)?,
            None => digits(&v[8..10])?,
        };
        let year = i32::try_from(digits(&v[20..24])?).ok()?;
        (year, month(&v[4..7])?, day, &v[11..19])
    };
    let (h, m, s) = time_of_day(tod)?;
    let date =
        time::Date::from_calendar_date(year, time::Month::try_from(mon).ok()?, u8::try_from(day).ok()?)
            .ok()?;
    let t = time::Time::from_hms(h, m, s).ok()?;
    Some(
        time::PrimitiveDateTime::new(date, t)
            .assume_utc()
            .unix_timestamp(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_matching() {
        let f = EndpointFilter::from_texts("order.* fan_checkin", "venue:a venue:b");
        let a: Vec<Channel> = vec!["venue:a".parse().unwrap()];
        let c: Vec<Channel> = vec!["venue:c".parse().unwrap()];
        let cases = [
            ("order.completed", &a, true),
            ("fan_checkin", &a, true),
            ("ticket.refunded", &a, false),
            ("order.completed", &c, false),
        ];
        for (ty, ch, want) in cases {
            assert_eq!(f.matches(ty, ch), want, "{ty}");
        }
        let all = EndpointFilter::default();
        assert!(all.matches("anything", &c));
        assert_eq!(f.types_text(), "order.* fan_checkin");
        assert_eq!(EndpointFilter::from_texts(&f.types_text(), &f.channels_text()), f);
        assert_eq!(EndpointFilter::from_texts("", ""), all);
    }

    #[test]
    fn schedule_and_jitter() {
        let s = RetrySchedule(vec![
            Duration::ZERO,
            Duration::from_secs(10),
            Duration::from_secs(100),
        ]);
        assert_eq!(s.attempts(), 3);
        assert_eq!(s.next_delay(0, 0.5, None), Some(Duration::ZERO));
        assert_eq!(s.next_delay(1, 0.5, None), Some(Duration::from_secs(10)));
        assert_eq!(s.next_delay(1, 0.0, None), Some(Duration::from_secs(8)));
        assert_eq!(s.next_delay(1, 1.0, None), Some(Duration::from_secs(12)));
        assert_eq!(s.next_delay(3, 0.5, None), None);
        // Retry-After lengthens, never shortens, and is capped.
        assert_eq!(
            s.next_delay(1, 0.5, Some(Duration::from_secs(30))),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            s.next_delay(2, 0.5, Some(Duration::from_secs(1))),
            Some(Duration::from_secs(100))
        );
        assert_eq!(
            s.next_delay(1, 0.5, Some(Duration::from_secs(99_999))),
            Some(MAX_RETRY_AFTER)
        );
        assert_eq!(RetrySchedule::default().attempts(), 10);
    }

    #[test]
    fn delivery_states() {
        for s in [
            DeliveryState::Pending,
            DeliveryState::Delivered,
            DeliveryState::Exhausted,
        ] {
            assert_eq!(s.as_str().parse::<DeliveryState>(), Ok(s));
        }
        assert!(ops::is_operational("endpoint.disabled") && !ops::is_operational("order.completed"));
        let (m, d) = ops::test_ids();
        assert!(ops::is_test_message_id(m.as_str()) && d.as_str().starts_with("dlv_test_"));
        assert!(
            m.as_str().parse::<crate::ids::MessageId>().is_err(),
            "never a real message id"
        );
        assert!(!ops::is_test_message_id(
            crate::ids::MessageId::generate().as_str()
        ));
    }

    #[test]
    fn retry_after_values() {
        let at = |s: &str| Timestamp::parse_rfc3339(s).unwrap();
        let now = at("2015-10-21T07:28:00Z");
        let secs = |n: u64| Some(Duration::from_secs(n));
        let max = Some(MAX_RETRY_AFTER);
        let cases: &[(&str, Option<Duration>)] = &[
            // delta-seconds
            ("3", secs(3)),
            (" 3 ", secs(3)),
            ("\t120\t", secs(120)),
            ("0", secs(0)),
            ("007", secs(7)),
            ("3600", max),
            ("3601", max),
            ("99999999", max),
            ("18446744073709551616", max),
            ("99999999999999999999999999999999", max),
            ("-1", None),
            ("-0", None),
            ("+3", None),
            ("3.5", None),
            ("1e3", None),
            ("3 s", None),
            ("", None),
            ("   ", None),
            ("soon", None),
            // IMF-fixdate
            ("Wed, 21 Oct 2015 07:28:30 GMT", secs(30)),
            (" Wed, 21 Oct 2015 07:28:30 GMT ", secs(30)),
            ("Wed, 21 Oct 2015 08:00:00 GMT", secs(1920)),
            ("Wed, 21 Oct 2015 07:28:00 GMT", secs(0)),
            ("Wed, 21 Oct 2015 07:27:59 GMT", secs(0)),
            ("Tue, 20 Oct 2015 07:28:00 GMT", secs(0)),
            ("Thu, 01 Jan 1970 00:00:00 GMT", secs(0)),
            ("Thu, 22 Oct 2015 07:28:00 GMT", max),
            ("Fri, 31 Dec 9999 23:59:59 GMT", max),
            // obsolete forms
            ("Wednesday, 21-Oct-15 07:28:10 GMT", secs(10)),
            ("Sunday, 06-Nov-94 08:49:37 GMT", secs(0)),
            ("Friday, 21-Oct-16 07:28:00 GMT", max),
            ("Wed Oct 21 07:28:20 2015", secs(20)),
            ("Sun Nov  6 08:49:37 1994", secs(0)),
            // garbage and near misses
            ("Wed, 21 Oct 2015 07:28:30 UTC", None),
            ("Wed, 21 Oct 2015 07:28:30 +0000", None),
            ("Wed, 21 Oct 2015 07:28:30", None),
            ("wed, 21 oct 2015 07:28:30 gmt", None),
            ("Wed, 1 Oct 2015 07:28:30 GMT", None),
            ("Wed, 21 Oct 15 07:28:30 GMT", None),
            ("Wed, 32 Oct 2015 07:28:30 GMT", None),
            ("Fri, 29 Feb 2015 07:28:30 GMT", None),
            ("Wed, 21 Foo 2015 07:28:30 GMT", None),
            ("Wed, 21 Oct 2015 24:00:00 GMT", None),
            ("Wed, 21 Oct 2015 07:60:00 GMT", None),
            ("Wed, 21 Oct 2015 7:28:30 GMT", None),
            ("Wed, 21 Oct 2015 07:28:3é GMT", None),
            ("Xyz, 21 Oct 2015 07:28:30 GMT", None),
            ("Wednesday, 21 Oct 2015 07:28:30 GMT", None),
            ("Wed, 21-Oct-15 07:28:30 GMT", None),
            ("Wed Oct 21 07:28:20 15", None),
            ("Wed Oct 2x 07:28:20 2015", None),
            ("2015-10-21T07:28:30Z", None),
        ];
        for (v, want) in cases {
            assert_eq!(parse_retry_after(v, now), *want, "{v:?}");
        }
        // The wait is measured from `now` to the microsecond.
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:02 GMT", at("2015-10-21T07:28:00.25Z")),
            Some(Duration::from_millis(1750))
        );
        // RFC 850 years: up to 50 years ahead stay in this century.
        let in_2060 = at("2060-01-01T00:00:00Z");
        assert_eq!(
            parse_retry_after("Saturday, 01-Jan-00 00:00:00 GMT", in_2060),
            Some(Duration::ZERO),
            "2000, not 2100"
        );
        assert_eq!(
            parse_retry_after("Monday, 01-Jan-60 00:30:00 GMT", in_2060),
            Some(Duration::from_secs(1800))
        );
    }
}
