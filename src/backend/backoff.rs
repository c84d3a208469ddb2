//! Exponential backoff with jitter for retrying a backend. Jitter spreads the retries of many
//! senders so a recovering backend is not hit by all of them at once. It never sleeps itself:
//! it only says how long the caller should wait.

use std::time::Duration;

/// Exponential backoff: `base * 2^attempt`, capped at `max`, then a random point in its upper half
/// ("equal jitter"), so the wait never collapses to zero.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    attempt: u32,
    rng: fastrand::Rng,
}

impl Backoff {
    pub fn new(base: Duration, max: Duration) -> Self {
        Backoff {
            base,
            max: max.max(base),
            attempt: 0,
            rng: fastrand::Rng::new(),
        }
    }

    /// The same schedule with a fixed random seed, for tests.
    pub fn with_seed(base: Duration, max: Duration, seed: u64) -> Self {
        Backoff {
            rng: fastrand::Rng::with_seed(seed),
            ..Backoff::new(base, max)
        }
    }

    /// How long to wait before the next try; each call doubles the ceiling up to `max`.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(1u32.checked_shl(self.attempt).unwrap_or(u32::MAX))
            .min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        let half = ceiling / 2;
        let spread = ceiling.saturating_sub(half).as_nanos() as u64;
        half + Duration::from_nanos(self.rng.u64(0..=spread))
    }

    /// Number of delays handed out since the last success.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// Back to the first, shortest delay after a success.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_exponentially_within_their_jitter_band_and_cap() {
        let base = Duration::from_millis(100);
        let max = Duration::from_secs(2);
        let mut backoff = Backoff::with_seed(base, max, 7);
        for attempt in 0..10u32 {
            let ceiling = (base * 2u32.pow(attempt)).min(max);
            let delay = backoff.next_delay();
            assert!(
                delay >= ceiling / 2 && delay <= ceiling,
                "attempt {attempt}: {delay:?}"
            );
        }
        assert_eq!(backoff.attempts(), 10);
        backoff.reset();
        assert!(backoff.next_delay() <= base);
    }

    #[test]
    fn huge_attempt_counts_do_not_overflow() {
        let mut backoff = Backoff::with_seed(Duration::from_secs(1), Duration::from_secs(30), 1);
        for _ in 0..200 {
            assert!(backoff.next_delay() <= Duration::from_secs(30));
        }
    }
}
