//! A per-connection token bucket for inbound client frames.
//!
//! Kept deliberately tiny (no shared state, no allocation): it lives inside
//! each connection's task.

use std::time::Instant;

pub struct FrameBudget {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl FrameBudget {
    /// `per_sec` frames per second, bursts of twice that.
    pub fn new(per_sec: u32) -> Self {
        let rate = f64::from(per_sec.max(1));
        FrameBudget {
            rate,
            burst: rate * 2.0,
            tokens: rate * 2.0,
            last: Instant::now(),
        }
    }

    /// Takes one frame's token; false when over budget.
    pub fn take(&mut self) -> bool {
        let now = Instant::now();
        let dt = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + dt * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_a_burst_then_refuses() {
        let mut b = FrameBudget::new(5);
        let allowed = (0..100).filter(|_| b.take()).count();
        assert!((10..=11).contains(&allowed), "{allowed}");
    }
}
