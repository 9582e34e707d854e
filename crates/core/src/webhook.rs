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

/// Operational message types marquee publishes into an organization's log.
pub mod ops {
    pub const ENDPOINT_DISABLED: &str = "endpoint.disabled";
    pub const ENDPOINT_RECOVERED: &str = "endpoint.recovered";
    pub const ATTEMPT_EXHAUSTED: &str = "message.attempt.exhausted";
    pub const ATTEMPT_FAILING: &str = "message.attempt.failing";
    /// The type of the signed ping sent by `POST /v1/endpoints/{id}/test`.
    pub const TEST: &str = "marquee.test";

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

/// Parses a `Retry-After` header given in seconds (HTTP dates are ignored:
/// the schedule applies).
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    let n: u64 = v.trim().parse().ok()?;
    Some(Duration::from_secs(n.min(MAX_RETRY_AFTER.as_secs())))
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
    fn retry_after_and_states() {
        assert_eq!(parse_retry_after(" 3 "), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(parse_retry_after("99999999"), Some(MAX_RETRY_AFTER));
        for s in [
            DeliveryState::Pending,
            DeliveryState::Delivered,
            DeliveryState::Exhausted,
        ] {
            assert_eq!(s.as_str().parse::<DeliveryState>(), Ok(s));
        }
        assert!(ops::is_operational("endpoint.disabled") && !ops::is_operational("order.completed"));
    }
}
