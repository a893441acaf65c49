//! What impairment to apply: the user-facing [`Impairment`] description and its
//! validation. Holds no state; the per-packet decisions live in `decide`.

use std::io;
use std::time::Duration;

/// Minimum extra hold for a packet picked for reordering.
///
/// With no configured delay a reordered packet still has to wait long enough
/// for later packets to overtake it; at live-video rates (hundreds of packets
/// per second and up) 10 ms is several packets' worth.
pub const REORDER_MIN_HOLD: Duration = Duration::from_millis(10);

/// Impairment applied to one direction of traffic.
///
/// `Default` is "no impairment": every datagram is passed on immediately,
/// exactly once. Probabilities are in `0.0..=1.0`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Impairment {
    /// Probability that a datagram is dropped.
    pub loss: f64,
    /// Base one-way delay added to every datagram.
    pub delay: Duration,
    /// Each datagram's delay is drawn uniformly from `delay ± jitter`,
    /// clamped at zero. Jitter naturally reorders packets; that is intended.
    pub jitter: Duration,
    /// Probability that a datagram is held back an extra
    /// `max(delay + 2·jitter, REORDER_MIN_HOLD)` so that later datagrams
    /// overtake it.
    pub reorder: f64,
    /// Probability that a datagram is sent twice (the copy gets its own
    /// jitter/reorder draw, as a duplicating network path would).
    pub duplicate: f64,
    /// Seed for the decision PRNG; equal seeds give identical decisions for
    /// identical traffic.
    pub seed: u64,
}

impl Default for Impairment {
    fn default() -> Self {
        Self {
            loss: 0.0,
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            reorder: 0.0,
            duplicate: 0.0,
            seed: 0,
        }
    }
}

impl Impairment {
    /// True when this impairment leaves traffic untouched.
    pub fn is_none(&self) -> bool {
        self.loss <= 0.0
            && self.delay.is_zero()
            && self.jitter.is_zero()
            && self.reorder <= 0.0
            && self.duplicate <= 0.0
    }

    /// Rejects probabilities outside `0..=1` (including NaN), which would
    /// otherwise silently behave as 0 or 1 and make a test mean something
    /// other than what its author wrote.
    pub fn validate(&self) -> io::Result<()> {
        for (name, p) in [
            ("loss", self.loss),
            ("reorder", self.reorder),
            ("duplicate", self.duplicate),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{name} must be a probability in 0..=1, got {p}"),
                ));
            }
        }
        Ok(())
    }

    /// Extra hold applied to a packet chosen for reordering.
    pub fn reorder_hold(&self) -> Duration {
        (self.delay + self.jitter * 2).max(REORDER_MIN_HOLD)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_no_impairment() {
        let d = Impairment::default();
        assert!(d.is_none());
        assert!(d.validate().is_ok());
    }

    #[test]
    fn rejects_bad_probabilities() {
        for bad in [-0.1, 1.5, f64::NAN, f64::INFINITY] {
            let imp = Impairment {
                loss: bad,
                ..Default::default()
            };
            assert!(imp.validate().is_err(), "loss {bad} accepted");
            let imp = Impairment {
                duplicate: bad,
                ..Default::default()
            };
            assert!(imp.validate().is_err(), "duplicate {bad} accepted");
            let imp = Impairment {
                reorder: bad,
                ..Default::default()
            };
            assert!(imp.validate().is_err(), "reorder {bad} accepted");
        }
        let edge = Impairment {
            loss: 1.0,
            reorder: 0.0,
            duplicate: 1.0,
            ..Default::default()
        };
        assert!(edge.validate().is_ok());
    }

    #[test]
    fn reorder_hold_has_a_floor() {
        assert_eq!(Impairment::default().reorder_hold(), REORDER_MIN_HOLD);
        let imp = Impairment {
            delay: Duration::from_millis(20),
            jitter: Duration::from_millis(5),
            ..Default::default()
        };
        assert_eq!(imp.reorder_hold(), Duration::from_millis(30));
    }
}
