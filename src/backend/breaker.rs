//! A circuit breaker per replica: after consecutive failures the replica is left alone for a
//! cool-down, then one probe is let through (half-open); its success closes the circuit, its
//! failure reopens it for longer. It never decides *what* to send, only *whether* to try now.

use std::time::{Duration, Instant};

/// What the breaker currently allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Healthy: requests flow.
    Closed,
    /// Failing: no request until the cool-down ends.
    Open,
    /// Cool-down over: one probe may go; its outcome decides.
    HalfOpen,
}

impl BreakerState {
    /// The value exported in `/metrics` (0 closed, 1 half-open, 2 open).
    pub fn as_gauge(self) -> i64 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::HalfOpen => 1,
            BreakerState::Open => 2,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::HalfOpen => "half-open",
            BreakerState::Open => "open",
        }
    }
}

#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    failure_threshold: u32,
    base_cooldown: Duration,
    max_cooldown: Duration,
    consecutive_failures: u32,
    /// How many times in a row the circuit opened; lengthens the cool-down.
    consecutive_opens: u32,
    open_until: Option<Instant>,
    probe_in_flight: bool,
}

impl CircuitBreaker {
    pub fn new(failure_threshold: u32, base_cooldown: Duration, max_cooldown: Duration) -> Self {
        CircuitBreaker {
            failure_threshold: failure_threshold.max(1),
            base_cooldown,
            max_cooldown: max_cooldown.max(base_cooldown),
            consecutive_failures: 0,
            consecutive_opens: 0,
            open_until: None,
            probe_in_flight: false,
        }
    }

    pub fn state(&self, now: Instant) -> BreakerState {
        match self.open_until {
            None => BreakerState::Closed,
            Some(until) if now < until => BreakerState::Open,
            Some(_) => BreakerState::HalfOpen,
        }
    }

    /// Whether a request may be sent now. In half-open state only one caller gets `true` until
    /// it reports its outcome.
    pub fn try_acquire(&mut self, now: Instant) -> bool {
        match self.state(now) {
            BreakerState::Closed => true,
            BreakerState::Open => false,
            BreakerState::HalfOpen if self.probe_in_flight => false,
            BreakerState::HalfOpen => {
                self.probe_in_flight = true;
                true
            }
        }
    }

    /// How long until a request may be tried again (zero when it may be now).
    pub fn retry_in(&self, now: Instant) -> Duration {
        self.open_until
            .map(|until| until.saturating_duration_since(now))
            .unwrap_or_default()
    }

    pub fn record_success(&mut self) {
        self.consecutive_failures = 0;
        self.consecutive_opens = 0;
        self.open_until = None;
        self.probe_in_flight = false;
    }

    pub fn record_failure(&mut self, now: Instant) {
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        let probe_failed = self.probe_in_flight;
        self.probe_in_flight = false;
        if probe_failed || self.consecutive_failures >= self.failure_threshold {
            let factor = 1u32.checked_shl(self.consecutive_opens).unwrap_or(u32::MAX);
            let cooldown = self
                .base_cooldown
                .saturating_mul(factor)
                .min(self.max_cooldown);
            self.consecutive_opens = self.consecutive_opens.saturating_add(1);
            self.open_until = Some(now + cooldown);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> CircuitBreaker {
        CircuitBreaker::new(3, Duration::from_secs(1), Duration::from_secs(8))
    }

    #[test]
    fn opens_after_the_threshold_and_half_opens_after_the_cooldown() {
        let t0 = Instant::now();
        let mut b = breaker();
        b.record_failure(t0);
        b.record_failure(t0);
        assert_eq!(b.state(t0), BreakerState::Closed);
        b.record_failure(t0);
        assert_eq!(b.state(t0), BreakerState::Open);
        assert!(!b.try_acquire(t0 + Duration::from_millis(999)));
        let later = t0 + Duration::from_secs(1);
        assert_eq!(b.state(later), BreakerState::HalfOpen);
        assert!(b.try_acquire(later), "one probe goes through");
        assert!(!b.try_acquire(later), "a second concurrent probe does not");
        b.record_success();
        assert_eq!(b.state(later), BreakerState::Closed);
        assert!(b.try_acquire(later));
    }

    #[test]
    fn a_failed_probe_reopens_for_twice_as_long_up_to_the_cap() {
        let t0 = Instant::now();
        let mut b = breaker();
        for _ in 0..3 {
            b.record_failure(t0);
        }
        let mut now = t0;
        let mut expected = Duration::from_secs(1);
        for _ in 0..6 {
            now += b.retry_in(now);
            assert!(b.try_acquire(now));
            b.record_failure(now);
            expected = (expected * 2).min(Duration::from_secs(8));
            assert_eq!(b.retry_in(now), expected);
        }
    }
}
