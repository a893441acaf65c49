//! Reconnection schedule: exponential backoff with jitter, capped.

use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BackoffPolicy {
    pub initial: Duration,
    pub max: Duration,
    pub multiplier: f64,
    /// Fraction of each delay that is randomised (0.2 = +/-20%), so many relays that lost the
    /// same peer do not all knock on its door in the same millisecond.
    pub jitter: f64,
}

impl Default for BackoffPolicy {
    fn default() -> Self {
        BackoffPolicy {
            initial: Duration::from_millis(250),
            max: Duration::from_secs(10),
            multiplier: 2.0,
            jitter: 0.2,
        }
    }
}

/// Tracks consecutive failures and says when the next attempt may start.
#[derive(Debug)]
pub struct Backoff {
    policy: BackoffPolicy,
    failures: u32,
    next_attempt: Option<Instant>,
    rng: u64,
}

impl Backoff {
    pub fn new(policy: BackoffPolicy, seed: u64) -> Self {
        Backoff {
            policy,
            failures: 0,
            next_attempt: None,
            rng: seed | 1,
        }
    }

    /// True when an attempt may be made now.
    pub fn ready(&self, now: Instant) -> bool {
        self.next_attempt.is_none_or(|t| now >= t)
    }

    /// The instant of the next allowed attempt, if one is scheduled.
    pub fn deadline(&self) -> Option<Instant> {
        self.next_attempt
    }

    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Records a failed attempt and returns the delay before the next one.
    pub fn fail(&mut self, now: Instant) -> Duration {
        let base = self.delay_for(self.failures);
        self.failures = self.failures.saturating_add(1);
        let delay = self.jittered(base);
        self.next_attempt = Some(now + delay);
        delay
    }

    /// A connection succeeded: the next loss starts the schedule from the beginning.
    pub fn reset(&mut self) {
        self.failures = 0;
        self.next_attempt = None;
    }

    /// The un-jittered delay after `failures` consecutive failures.
    pub fn delay_for(&self, failures: u32) -> Duration {
        let p = &self.policy;
        let factor = p.multiplier.max(1.0).powi(failures.min(64) as i32);
        let secs = (p.initial.as_secs_f64() * factor).min(p.max.as_secs_f64());
        Duration::from_secs_f64(secs)
    }

    fn jittered(&mut self, base: Duration) -> Duration {
        let j = self.policy.jitter.clamp(0.0, 1.0);
        if j == 0.0 {
            return base;
        }
        // xorshift64: the spread only needs to be different per relay, not cryptographic.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let unit = (self.rng >> 11) as f64 / (1u64 << 53) as f64; // [0, 1)
        let factor = 1.0 + j * (2.0 * unit - 1.0);
        let secs = (base.as_secs_f64() * factor).min(self.policy.max.as_secs_f64());
        Duration::from_secs_f64(secs.max(0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(jitter: f64) -> BackoffPolicy {
        BackoffPolicy {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(2),
            multiplier: 2.0,
            jitter,
        }
    }

    #[test]
    fn doubles_until_the_cap() {
        let b = Backoff::new(policy(0.0), 1);
        let ms: Vec<u128> = (0..7).map(|n| b.delay_for(n).as_millis()).collect();
        assert_eq!(ms, vec![100, 200, 400, 800, 1600, 2000, 2000]);
        assert_eq!(b.delay_for(10_000), Duration::from_secs(2));
    }

    #[test]
    fn fail_schedules_and_reset_clears() {
        let now = Instant::now();
        let mut b = Backoff::new(policy(0.0), 1);
        assert!(b.ready(now));
        assert_eq!(b.fail(now), Duration::from_millis(100));
        assert!(!b.ready(now + Duration::from_millis(99)));
        assert!(b.ready(now + Duration::from_millis(100)));
        assert_eq!(b.fail(now), Duration::from_millis(200));
        assert_eq!(b.failures(), 2);
        b.reset();
        assert!(b.ready(now));
        assert_eq!(b.fail(now), Duration::from_millis(100));
    }

    #[test]
    fn jitter_stays_within_bounds_and_varies() {
        let now = Instant::now();
        let mut b = Backoff::new(policy(0.2), 42);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..50 {
            b.reset();
            let d = b.fail(now).as_secs_f64();
            assert!((0.08..=0.12).contains(&d), "{d}");
            seen.insert((d * 1e6) as u64);
        }
        assert!(seen.len() > 10, "jitter should spread the delays");
        for _ in 0..20 {
            let d = b.fail(now);
            assert!(d <= Duration::from_secs(2), "cap holds with jitter: {d:?}");
        }
    }
}
