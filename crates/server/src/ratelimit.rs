//! Per-key request rate limits: a token bucket per key (the `governor`
//! crate's GCRA), with a quota per tier.
//!
//! Defaults (requests per second, burst twice that): free 20, pro 500,
//! enterprise 100,000 — the enterprise default is far above what one node
//! serves, so it never throttles the benchmark. All three are configurable.

use std::num::NonZeroU32;
use std::sync::Arc;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use marquee_core::Tier;
use marquee_core::ids::KeyId;

#[derive(Debug, Clone, Copy)]
pub struct TierRates {
    pub free: u32,
    pub pro: u32,
    pub enterprise: u32,
}

impl Default for TierRates {
    fn default() -> Self {
        TierRates {
            free: 20,
            pro: 500,
            enterprise: 100_000,
        }
    }
}

pub struct RateLimits {
    free: DefaultKeyedRateLimiter<KeyId>,
    pro: DefaultKeyedRateLimiter<KeyId>,
    enterprise: DefaultKeyedRateLimiter<KeyId>,
    clock: DefaultClock,
}

fn quota(per_sec: u32) -> Quota {
    let rate = NonZeroU32::new(per_sec.max(1)).expect("nonzero");
    let burst = NonZeroU32::new(per_sec.max(1).saturating_mul(2)).expect("nonzero");
    Quota::per_second(rate).allow_burst(burst)
}

impl RateLimits {
    pub fn new(rates: TierRates) -> Arc<Self> {
        Arc::new(RateLimits {
            free: RateLimiter::keyed(quota(rates.free)),
            pro: RateLimiter::keyed(quota(rates.pro)),
            enterprise: RateLimiter::keyed(quota(rates.enterprise)),
            clock: DefaultClock::default(),
        })
    }

    /// `Ok` when the request may proceed, else the seconds to wait (≥ 1).
    pub fn check(&self, key: &KeyId, tier: Tier) -> Result<(), u64> {
        let limiter = match tier {
            Tier::Free => &self.free,
            Tier::Pro => &self.pro,
            Tier::Enterprise => &self.enterprise,
        };
        limiter.check_key(key).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
        })
    }

    /// Forgets buckets that are full again, bounding memory by active keys.
    pub fn shrink(&self) {
        for l in [&self.free, &self.pro, &self.enterprise] {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }
}
