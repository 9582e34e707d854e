//! Per-endpoint concurrency limit: fixed (`max_in_flight` set on the
//! endpoint) or adaptive (`max_in_flight` null, the default).
//!
//! An adaptive endpoint starts at [`INITIAL`] attempts in flight and moves
//! between 1 and the cap (`--webhook-adaptive-cap`, [`DEFAULT_CAP`]) on what
//! its own attempts show, in *windows* of at least `2 × limit` and 16
//! completed attempts (or 4 and a second), all started under the current
//! limit:
//!
//! - **Overload halves it at once**: a timeout, a connection error, 429,
//!   502, 503 or 504, or a window in which at least half the answers were
//!   other 5xx (never below 1). Only attempts started under the current
//!   limit can cut it, so one burst of failures cuts once.
//! - **Latency must hold**: a window's mean latency may be up to
//!   `2 × base + 20 ms`, where `base` is the receiver's latency at low
//!   concurrency, measured in a *probe* window run at 2 in flight (before
//!   the first probe, the lowest window mean seen stands in). Above it, the
//!   limit shrinks in proportion (`limit × threshold / latency`, at most
//!   halved) — the receiver is queueing our requests — if the base was
//!   measured in the last second; otherwise a probe measures it first, so a
//!   latency rise that this node's own load causes (it moves every attempt,
//!   at any concurrency) raises the base instead of shrinking the limit. The
//!   20 ms is the allowance for jitter: on a busy node, or across a network,
//!   latency moves by several milliseconds whatever the receiver does, and a
//!   queue that short is no distress. While the limit is still doubling, a
//!   window whose latency rose by half (+ 20 ms) or more also probes, and
//!   undoes the doubling.
//! - **Growth needs a backlog**: a window in which latency held and work
//!   waited for this endpoint's slots grows the limit — doubling until the
//!   first setback, then by an eighth (at least 1) a window. Without a
//!   backlog the limit stays where it is.
//!
//! So a receiver that answers about as fast with 60 requests open as with 2
//! is driven at the cap (latency holds; this includes a distant one, which
//! needs the concurrency to keep pace), one that serves a few at a time and
//! queues the rest settles where its queueing delay is about its own service
//! time, and one that sheds load (503) or times out is backed off
//! exponentially. The limit is per node: on a cluster each delivering node
//! adapts on its own.

use std::time::{Duration, Instant};

/// Where an adaptive endpoint starts (the old fixed default).
pub const INITIAL: u32 = 8;
/// Default of `--webhook-adaptive-cap`.
pub const DEFAULT_CAP: u32 = 64;
/// Fewest completed attempts in a window.
const MIN_WINDOW: u32 = 16;
/// A window also closes after this long with at least 4 attempts (slow
/// receivers).
const MAX_WINDOW_AGE: Duration = Duration::from_secs(1);
/// Latency allowed above twice the base, for jitter.
const JITTER: Duration = Duration::from_millis(20);
/// Concurrency of a probe window (measures the base latency).
const PROBE_LIMIT: u32 = 2;
/// A base latency measured longer ago than this is measured again before
/// the limit shrinks on it.
const TRUST: Duration = Duration::from_secs(1);

/// How an attempt's outcome bears on the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// An answer (2xx, or a 3xx/4xx the receiver chose): its latency counts.
    Answered,
    /// A 5xx other than 502/503/504: counts, and a window of mostly these
    /// cuts the limit.
    ServerError,
    /// Timeout, connection failure, 429, 502, 503, 504: cuts the limit.
    Overload,
    /// No answer for reasons unrelated to load (TLS, blocked address, bad
    /// URL): ignored.
    Ignore,
}

impl Signal {
    pub fn of(status: Option<u16>, error_kind: Option<&str>) -> Signal {
        match (status, error_kind) {
            (Some(429 | 502 | 503 | 504), _) => Signal::Overload,
            (Some(s), _) if s >= 500 => Signal::ServerError,
            (Some(_), _) => Signal::Answered,
            (None, Some("timeout" | "connect" | "request" | "response_body")) => Signal::Overload,
            (None, _) => Signal::Ignore,
        }
    }
}

/// One completed attempt, as the limiter sees it.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// [`Limiter::epoch`] when the attempt started.
    pub epoch: u64,
    pub latency: Duration,
    /// Work was waiting for the endpoint's slots when it completed.
    pub backlogged: bool,
    pub signal: Signal,
}

/// A change of an adaptive limit, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    pub from: u32,
    pub to: u32,
    /// `grow`, `shrink` (latency), `overload` (errors), `probe`, `restore`.
    pub reason: &'static str,
    /// The base latency then (µs), if known.
    pub base_us: Option<u64>,
}

/// The visible state of an endpoint's limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Concurrency {
    pub adaptive: bool,
    pub current: u32,
    pub cap: u32,
}

#[derive(Debug)]
struct Window {
    opened: Instant,
    n: u32,
    latency_us: f64,
    backlogged: u32,
    server_errors: u32,
}

impl Window {
    fn new(now: Instant) -> Self {
        Window {
            opened: now,
            n: 0,
            latency_us: 0.0,
            backlogged: 0,
            server_errors: 0,
        }
    }
}

/// The receiver's latency at low concurrency.
#[derive(Debug, Clone, Copy)]
struct Base {
    latency_us: f64,
    /// When a probe (or a window at `PROBE_LIMIT` or less) measured it;
    /// `None` while it is only the lowest window mean seen.
    measured: Option<Instant>,
}

#[derive(Debug)]
struct Adaptive {
    cap: u32,
    limit: u32,
    slow_start: bool,
    window: Window,
    /// Mean latency of the previous window.
    last: Option<f64>,
    base: Option<Base>,
    /// A probe window is running: the limit to go back to after it, and
    /// the mean latency seen at that limit (judged again on the new base).
    probe: Option<(u32, f64)>,
}

#[derive(Debug)]
enum Mode {
    Fixed(u32),
    Adaptive(Box<Adaptive>),
}

/// An endpoint's concurrency limit.
#[derive(Debug)]
pub struct Limiter {
    mode: Mode,
    /// Bumped at every change of the limit.
    epoch: u64,
}

/// What a window decided.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Step {
    Stay,
    Grow,
    /// Shrink by this factor (0.5–1).
    Shrink(f64),
    /// Halve (overload).
    Cut,
    /// Run a probe window, then go back to this limit (at which this
    /// latency was seen).
    Probe(u32, f64),
    /// Back from a probe.
    Restore(u32),
}

impl Limiter {
    /// `max_in_flight` as stored: 0 = adaptive up to `cap`, else fixed.
    pub fn new(max_in_flight: u32, cap: u32, now: Instant) -> Self {
        let mode = if max_in_flight == 0 {
            let cap = cap.max(1);
            Mode::Adaptive(Box::new(Adaptive {
                cap,
                limit: INITIAL.min(cap),
                slow_start: true,
                window: Window::new(now),
                last: None,
                base: None,
                probe: None,
            }))
        } else {
            Mode::Fixed(max_in_flight)
        };
        Limiter { mode, epoch: 0 }
    }

    /// True when `max_in_flight`/`cap` describe another limiter than this
    /// one (the endpoint's setting changed).
    pub fn differs(&self, max_in_flight: u32, cap: u32) -> bool {
        match &self.mode {
            Mode::Fixed(n) => *n != max_in_flight,
            Mode::Adaptive(a) => max_in_flight != 0 || a.cap != cap.max(1),
        }
    }

    pub fn limit(&self) -> u32 {
        match &self.mode {
            Mode::Fixed(n) => *n,
            Mode::Adaptive(a) => a.limit,
        }
    }

    /// The limit to size claims and the handoff queue by: an adaptive
    /// endpoint's cap. Its limit can double in one window, and a queue sized
    /// for a low limit overflows at the first burst, which puts the endpoint
    /// on the slower claim path for as long as its backlog lasts.
    pub fn claim_limit(&self) -> u32 {
        match &self.mode {
            Mode::Fixed(n) => *n,
            Mode::Adaptive(a) => a.cap,
        }
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    pub fn concurrency(&self) -> Concurrency {
        match &self.mode {
            Mode::Fixed(n) => Concurrency {
                adaptive: false,
                current: *n,
                cap: *n,
            },
            Mode::Adaptive(a) => Concurrency {
                adaptive: true,
                current: a.limit,
                cap: a.cap,
            },
        }
    }

    /// Accounts one completed attempt; says so if the limit changed.
    pub fn on_done(&mut self, s: Sample, now: Instant) -> Option<Change> {
        let Mode::Adaptive(a) = &mut self.mode else {
            return None;
        };
        // Attempts started under an earlier limit say nothing about this one
        // (and a burst of failures they share has already cut it).
        if s.epoch != self.epoch || s.signal == Signal::Ignore {
            return None;
        }
        let step = if s.signal == Signal::Overload {
            Step::Cut
        } else {
            let w = &mut a.window;
            w.n += 1;
            w.latency_us += s.latency.as_secs_f64() * 1e6;
            w.backlogged += u32::from(s.backlogged);
            w.server_errors += u32::from(s.signal == Signal::ServerError);
            let full = w.n >= (2 * a.limit).max(MIN_WINDOW)
                || (w.n >= 4 && now.duration_since(w.opened) >= MAX_WINDOW_AGE);
            if !full {
                return None;
            }
            a.evaluate(now)
        };
        let old = a.limit;
        let new = match step {
            Step::Stay => old,
            Step::Grow if a.slow_start => old.saturating_mul(2),
            Step::Grow => old + (old / 8).max(1),
            Step::Shrink(f) => ((f64::from(old) * f) as u32).min(old - 1),
            Step::Cut => old / 2,
            Step::Probe(..) => PROBE_LIMIT,
            Step::Restore(l) => l,
        }
        .clamp(1, a.cap);
        match step {
            Step::Shrink(_) | Step::Cut => {
                a.slow_start = false;
                a.probe = None;
                a.last = None;
            }
            Step::Probe(back, latency) => a.probe = Some((back, latency)),
            _ => {}
        }
        a.window = Window::new(now);
        if new == old {
            return None;
        }
        a.limit = new;
        self.epoch += 1;
        Some(Change {
            from: old,
            to: new,
            reason: match step {
                Step::Stay | Step::Grow => "grow",
                Step::Shrink(_) => "shrink",
                Step::Cut => "overload",
                Step::Probe(..) => "probe",
                Step::Restore(_) => "restore",
            },
            base_us: a.base.map(|b| b.latency_us as u64),
        })
    }
}

impl Adaptive {
    /// Decides on a full window.
    fn evaluate(&mut self, now: Instant) -> Step {
        let w = &self.window;
        if 2 * w.server_errors >= w.n {
            return Step::Cut;
        }
        let latency = w.latency_us / f64::from(w.n);
        let backlogged = 2 * w.backlogged >= w.n;
        let last = self.last.replace(latency);
        if let Some((back, before)) = self.probe.take() {
            self.base = Some(Base {
                latency_us: latency,
                measured: Some(now),
            });
            // Back to where it was, shrunk if the latency seen there is over
            // the threshold on the base just measured.
            let threshold = 2.0 * latency + JITTER.as_secs_f64() * 1e6;
            let f = (threshold / before).clamp(0.5, 1.0);
            return Step::Restore(((f64::from(back) * f) as u32).max(1));
        }
        let low = self.limit <= PROBE_LIMIT;
        let base = match self.base {
            // A window at low concurrency is itself a measurement.
            _ if low => Base {
                latency_us: latency,
                measured: Some(now),
            },
            Some(b) if b.measured.is_some() || b.latency_us <= latency => b,
            // Not measured yet: the lowest window mean stands in.
            _ => Base {
                latency_us: latency,
                measured: None,
            },
        };
        self.base = Some(base);
        let threshold = 2.0 * base.latency_us + JITTER.as_secs_f64() * 1e6;
        if latency > threshold {
            let recent = base.measured.is_some_and(|t| now.duration_since(t) < TRUST);
            return if recent || low {
                Step::Shrink((threshold / latency).max(0.5))
            } else {
                // Is it the receiver, or this node (whose own load moves
                // every attempt's latency)? Measure the receiver at low
                // concurrency now, then judge this limit again.
                Step::Probe(self.limit, latency)
            };
        }
        if self.slow_start
            && self.limit > INITIAL
            && last.is_some_and(|l| latency > 1.5 * l + JITTER.as_secs_f64() * 1e6)
        {
            // Doubling the concurrency raised latency by half or more: the
            // receiver may be queueing. Measure, and undo the doubling.
            self.slow_start = false;
            return Step::Probe(self.limit / 2, last.unwrap_or(latency));
        }
        if !backlogged {
            return Step::Stay;
        }
        Step::Grow
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Drives a limiter for `samples` attempts against a model receiver
    /// answering in `latency(n)` with `n` in flight, always backlogged;
    /// returns the limits it went through.
    fn drive(lim: &mut Limiter, samples: usize, latency: impl Fn(u32) -> Duration) -> Vec<u32> {
        let mut now = Instant::now();
        let mut seen = vec![lim.limit()];
        for _ in 0..samples {
            let l = lim.limit();
            let lat = latency(l);
            now += lat / l;
            let s = Sample {
                epoch: lim.epoch(),
                latency: lat,
                backlogged: true,
                signal: Signal::Answered,
            };
            if let Some(c) = lim.on_done(s, now) {
                seen.push(c.to);
            }
        }
        seen
    }

    #[test]
    fn a_receiver_whose_latency_holds_is_driven_at_the_cap() {
        let mut lim = Limiter::new(0, 64, Instant::now());
        let seen = drive(&mut lim, 20_000, |_| Duration::from_millis(20));
        assert_eq!(seen[..4], [8, 16, 32, 64], "{seen:?}");
        assert_eq!(seen.len(), 4, "{seen:?}");
        assert_eq!(lim.limit(), 64);
    }

    #[test]
    fn a_receiver_that_queues_is_not_flooded() {
        // Two workers, 50 ms each, the rest waiting: 40 answers/s whatever
        // the concurrency, so latency = max(50 ms, n × 25 ms).
        let mut lim = Limiter::new(0, 64, Instant::now());
        let seen = drive(&mut lim, 2_000, |n| {
            Duration::from_millis(25 * u64::from(n.max(2)))
        });
        assert!(seen.iter().all(|&l| l <= 16), "{seen:?}");
        assert!(seen[4..].iter().all(|&l| l <= 5), "{seen:?}");
    }

    #[test]
    fn overload_halves_once_per_limit() {
        let now = Instant::now();
        let mut lim = Limiter::new(0, 64, now);
        let fail = |epoch| Sample {
            epoch,
            latency: Duration::from_millis(5),
            backlogged: true,
            signal: Signal::Overload,
        };
        assert_eq!(lim.on_done(fail(0), now).map(|c| c.to), Some(4));
        // Attempts started before the cut do not cut again.
        for _ in 0..7 {
            assert_eq!(lim.on_done(fail(0), now), None);
        }
        assert_eq!(lim.on_done(fail(1), now).map(|c| c.to), Some(2));
        assert_eq!(
            lim.on_done(fail(2), now).map(|c| (c.to, c.reason)),
            Some((1, "overload"))
        );
        assert_eq!(lim.on_done(fail(3), now), None);
        assert_eq!(lim.limit(), 1);
    }

    #[test]
    fn fixed_limits_never_move() {
        let now = Instant::now();
        let mut lim = Limiter::new(2, 64, now);
        let s = Sample {
            epoch: 0,
            latency: Duration::from_millis(1),
            backlogged: true,
            signal: Signal::Overload,
        };
        assert_eq!(lim.on_done(s, now), None);
        assert_eq!(lim.limit(), 2);
        assert!(!lim.differs(2, 64) && lim.differs(0, 64) && lim.differs(3, 64));
    }

    #[test]
    fn signals() {
        assert_eq!(Signal::of(Some(204), None), Signal::Answered);
        assert_eq!(Signal::of(Some(404), Some("http_status")), Signal::Answered);
        assert_eq!(Signal::of(Some(503), Some("http_status")), Signal::Overload);
        assert_eq!(Signal::of(Some(429), Some("http_status")), Signal::Overload);
        assert_eq!(Signal::of(Some(500), Some("http_status")), Signal::ServerError);
        assert_eq!(Signal::of(None, Some("timeout")), Signal::Overload);
        assert_eq!(Signal::of(None, Some("connect")), Signal::Overload);
        assert_eq!(Signal::of(None, Some("tls")), Signal::Ignore);
    }
}
