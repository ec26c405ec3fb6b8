//! Seeded random draws for latency jitter and injected faults, and the stall schedule.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

use super::config::{LatencyConfig, MockConfig};

/// Fault injected into one execute request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// No fault: the request is handled normally.
    None,
    /// A 500 response.
    ServerError,
    /// A connection reset with no response.
    Reset,
}

/// Draws for one request: the fault and the jitter share in [0, 1).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Draw {
    pub(crate) fault: Fault,
    jitter_share: f64,
}

/// Fault and latency settings with a lock-free source of seeded draws.
pub(crate) struct Faults {
    seed: u64,
    /// Number of draws made so far. Each request seeds its own generator from the seed and
    /// this number, so no lock is shared between requests.
    draws: AtomicU64,
    error_rate: f64,
    reset_rate: f64,
    latency: LatencyConfig,
    stall_every: Duration,
    stall_for: Duration,
    started: Instant,
}

impl Faults {
    pub(crate) fn new(config: &MockConfig) -> Self {
        Faults {
            seed: config.seed,
            draws: AtomicU64::new(0),
            error_rate: config.error_rate,
            reset_rate: config.reset_rate,
            latency: config.latency,
            stall_every: config.stall_every.0,
            stall_for: config.stall_for.0,
            started: Instant::now(),
        }
    }

    /// Draws the fault and jitter of the next execute request.
    pub(crate) fn draw(&self) -> Draw {
        let needs_random = self.error_rate > 0.0 || self.reset_rate > 0.0;
        if !needs_random && self.latency.jitter.0.is_zero() {
            return Draw {
                fault: Fault::None,
                jitter_share: 0.0,
            };
        }
        let index = self.draws.fetch_add(1, Ordering::Relaxed);
        // seed_from_u64 scrambles its input, so neighbouring indexes give unrelated streams.
        let mut rng =
            SmallRng::seed_from_u64(self.seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let fault_share: f64 = rng.random();
        let fault = if fault_share < self.reset_rate {
            Fault::Reset
        } else if fault_share < self.reset_rate + self.error_rate {
            Fault::ServerError
        } else {
            Fault::None
        };
        Draw {
            fault,
            jitter_share: rng.random(),
        }
    }

    /// Returns the delay of a successful response to a request with `body_len` body bytes.
    pub(crate) fn latency(&self, draw: Draw, body_len: usize) -> Duration {
        let kib = body_len as f64 / 1024.0;
        // Saturating, because huge configured durations must not overflow and panic.
        let scale = |duration: Duration, factor: f64| {
            Duration::try_from_secs_f64(duration.as_secs_f64() * factor).unwrap_or(Duration::MAX)
        };
        self.latency
            .base
            .0
            .saturating_add(scale(self.latency.jitter.0, draw.jitter_share))
            .saturating_add(scale(self.latency.per_kib.0, kib))
    }

    /// Returns whether stalls are configured, so that callers can skip reading the clock.
    pub(crate) fn has_stalls(&self) -> bool {
        !self.stall_every.is_zero()
    }

    /// Returns when a response ready at `now` may be sent: the end of the stall window that
    /// contains `now`, or `None` outside stall windows.
    pub(crate) fn stall_until(&self, now: Instant) -> Option<Instant> {
        if self.stall_every.is_zero() {
            return None;
        }
        let elapsed = now.saturating_duration_since(self.started).as_nanos();
        let every = self.stall_every.as_nanos();
        let into_period = elapsed % every;
        let stall = self.stall_for.as_nanos();
        if into_period >= stall {
            return None;
        }
        let remaining = u64::try_from(stall - into_period).unwrap_or(u64::MAX);
        Some(now + Duration::from_nanos(remaining))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::TextDuration;

    fn faults(change: impl FnOnce(&mut MockConfig)) -> Faults {
        let mut config = MockConfig::default();
        change(&mut config);
        Faults::new(&config)
    }

    fn count_faults(faults: &Faults, draws: usize) -> (usize, usize) {
        let outcomes: Vec<Fault> = (0..draws).map(|_| faults.draw().fault).collect();
        let errors = outcomes
            .iter()
            .filter(|f| **f == Fault::ServerError)
            .count();
        let resets = outcomes.iter().filter(|f| **f == Fault::Reset).count();
        (errors, resets)
    }

    #[test]
    fn rates_of_zero_and_one_are_exact() {
        assert_eq!(count_faults(&faults(|_| {}), 1000), (0, 0));
        assert_eq!(
            count_faults(&faults(|c| c.error_rate = 1.0), 1000),
            (1000, 0)
        );
        assert_eq!(
            count_faults(&faults(|c| c.reset_rate = 1.0), 1000),
            (0, 1000)
        );
    }

    #[test]
    fn shares_are_near_their_rates() {
        let faults = faults(|c| {
            c.error_rate = 0.2;
            c.reset_rate = 0.1;
        });
        let (errors, resets) = count_faults(&faults, 10_000);
        assert!((1_700..2_300).contains(&errors), "{errors}");
        assert!((700..1_300).contains(&resets), "{resets}");
    }

    #[test]
    fn same_seed_repeats_draws() {
        let make = || {
            faults(|c| {
                c.error_rate = 0.5;
                c.seed = 7;
            })
        };
        let (first, second) = (make(), make());
        for _ in 0..100 {
            assert_eq!(first.draw().fault, second.draw().fault);
        }
    }

    #[test]
    fn latency_adds_base_jitter_and_size() {
        let faults = faults(|c| {
            c.latency.base = "20ms".parse().unwrap();
            c.latency.jitter = "10ms".parse().unwrap();
            c.latency.per_kib = "1ms".parse().unwrap();
        });
        let draw = Draw {
            fault: Fault::None,
            jitter_share: 0.5,
        };
        assert_eq!(faults.latency(draw, 2048), Duration::from_millis(27));
    }

    #[test]
    fn latency_saturates_instead_of_overflowing() {
        let faults = faults(|c| c.latency.per_kib = TextDuration(Duration::MAX));
        let draw = Draw {
            fault: Fault::None,
            jitter_share: 0.0,
        };
        assert_eq!(faults.latency(draw, 1 << 20), Duration::MAX);
    }

    #[test]
    fn stall_holds_only_inside_windows() {
        let faults = faults(|c| {
            c.stall_every = "10s".parse().unwrap();
            c.stall_for = "2s".parse().unwrap();
        });
        let start = faults.started;
        let inside = start + Duration::from_secs(21);
        assert_eq!(
            faults.stall_until(inside),
            Some(start + Duration::from_secs(22))
        );
        assert_eq!(faults.stall_until(start + Duration::from_secs(25)), None);
    }
}
