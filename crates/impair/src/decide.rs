//! Per-packet fate: given an [`Impairment`] and its PRNG, decide whether a
//! datagram is dropped and, for each copy sent, how long it is held. No I/O
//! lives here, so the statistics can be tested without sockets.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use crate::config::Impairment;
use crate::rng::Rng;
use crate::stats::Counters;

/// Decision state for one direction.
///
/// The PRNG sits behind a mutex because the backward direction is fed by one
/// reader thread per client; the lock is held only for a few arithmetic ops.
#[derive(Debug)]
pub(crate) struct Impairer {
    cfg: Impairment,
    rng: Mutex<Rng>,
    pub counters: Counters,
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Impairer {
    pub fn new(cfg: Impairment) -> Self {
        Self {
            rng: Mutex::new(Rng::new(cfg.seed)),
            cfg,
            counters: Counters::default(),
        }
    }

    /// Fills `out` with one hold time per copy to send (empty: dropped) and
    /// updates the received/dropped/duplicated/reordered counters.
    pub fn decide(&self, out: &mut Vec<Duration>) {
        out.clear();
        Counters::bump(&self.counters.received);
        if self.cfg.is_none() {
            out.push(Duration::ZERO);
            return;
        }
        let mut rng = self.rng.lock().unwrap_or_else(PoisonError::into_inner);
        if rng.chance(self.cfg.loss) {
            Counters::bump(&self.counters.dropped);
            return;
        }
        let copies = if rng.chance(self.cfg.duplicate) {
            Counters::bump(&self.counters.duplicated);
            2
        } else {
            1
        };
        for _ in 0..copies {
            let mut hold = self.jittered_delay(&mut rng);
            if rng.chance(self.cfg.reorder) {
                Counters::bump(&self.counters.reordered);
                hold += self.cfg.reorder_hold();
            }
            out.push(hold);
        }
    }

    fn jittered_delay(&self, rng: &mut Rng) -> Duration {
        let base = nanos(self.cfg.delay);
        let jitter = nanos(self.cfg.jitter);
        if jitter == 0 {
            return self.cfg.delay;
        }
        // Uniform over [base - jitter, base + jitter]; clamped at zero since a
        // packet cannot leave before it arrived.
        let offset = i128::from(rng.below(jitter.saturating_mul(2).saturating_add(1)));
        let total = i128::from(base) + offset - i128::from(jitter);
        Duration::from_nanos(u64::try_from(total.max(0)).unwrap_or(u64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(cfg: Impairment, packets: usize) -> (Impairer, Vec<Vec<Duration>>) {
        let imp = Impairer::new(cfg);
        let mut out = Vec::new();
        let mut all = Vec::with_capacity(packets);
        for _ in 0..packets {
            imp.decide(&mut out);
            all.push(out.clone());
        }
        (imp, all)
    }

    /// Asserts `count` successes out of `n` trials is within 5 standard
    /// deviations of `n·p`: the seeds are fixed so this never flakes, but the
    /// bound is still meaningful if the PRNG or decision order changes.
    fn assert_binomial(count: u64, n: u64, p: f64) {
        let mean = n as f64 * p;
        let sd = (n as f64 * p * (1.0 - p)).sqrt();
        let diff = (count as f64 - mean).abs();
        assert!(
            diff <= 5.0 * sd,
            "{count} of {n} at p={p}: expected {mean:.0} ± {:.0}",
            5.0 * sd
        );
    }

    #[test]
    fn no_impairment_passes_everything_immediately() {
        let (imp, all) = run(Impairment::default(), 1000);
        assert!(all.iter().all(|v| v == &[Duration::ZERO]));
        let s = imp.counters.snapshot();
        assert_eq!((s.received, s.dropped, s.duplicated), (1000, 0, 0));
    }

    #[test]
    fn loss_rate_within_bounds() {
        for (p, seed) in [(0.05, 1), (0.05, 42), (0.10, 2), (0.10, 4242)] {
            let n = 20_000;
            let (imp, all) = run(
                Impairment {
                    loss: p,
                    seed,
                    ..Default::default()
                },
                n,
            );
            let s = imp.counters.snapshot();
            let empty = all.iter().filter(|v| v.is_empty()).count() as u64;
            assert_eq!(s.dropped, empty);
            assert_eq!(s.received, n as u64);
            assert_binomial(s.dropped, n as u64, p);
        }
    }

    #[test]
    fn total_loss_and_no_loss() {
        let (imp, _) = run(
            Impairment {
                loss: 1.0,
                ..Default::default()
            },
            500,
        );
        assert_eq!(imp.counters.snapshot().dropped, 500);
    }

    #[test]
    fn duplicate_rate_within_bounds() {
        let n = 20_000;
        let (imp, all) = run(
            Impairment {
                duplicate: 0.1,
                seed: 5,
                ..Default::default()
            },
            n,
        );
        let s = imp.counters.snapshot();
        let doubles = all.iter().filter(|v| v.len() == 2).count() as u64;
        assert_eq!(s.duplicated, doubles);
        assert_binomial(doubles, n as u64, 0.1);
    }

    #[test]
    fn same_seed_same_decisions() {
        let cfg = Impairment {
            loss: 0.1,
            jitter: Duration::from_millis(3),
            delay: Duration::from_millis(5),
            reorder: 0.05,
            duplicate: 0.05,
            seed: 99,
        };
        let (_, a) = run(cfg, 5000);
        let (_, b) = run(cfg, 5000);
        assert_eq!(a, b);
        let (_, c) = run(Impairment { seed: 100, ..cfg }, 5000);
        assert_ne!(a, c);
    }

    #[test]
    fn jitter_is_bounded_uniform_and_never_negative() {
        let delay = Duration::from_millis(10);
        let jitter = Duration::from_millis(4);
        let (_, all) = run(
            Impairment {
                delay,
                jitter,
                seed: 11,
                ..Default::default()
            },
            20_000,
        );
        let holds: Vec<Duration> = all.into_iter().flatten().collect();
        assert!(holds
            .iter()
            .all(|&h| h >= delay - jitter && h <= delay + jitter));
        let mean = holds.iter().map(|h| h.as_secs_f64()).sum::<f64>() / holds.len() as f64;
        assert!((mean - delay.as_secs_f64()).abs() < 0.000_1, "mean {mean}");
        // Both halves of the range are used.
        assert!(holds.iter().any(|&h| h < delay - jitter / 2));
        assert!(holds.iter().any(|&h| h > delay + jitter / 2));

        // Jitter larger than the delay clamps at zero instead of underflowing.
        let (_, all) = run(
            Impairment {
                delay: Duration::from_millis(1),
                jitter: Duration::from_millis(5),
                seed: 12,
                ..Default::default()
            },
            5000,
        );
        let holds: Vec<Duration> = all.into_iter().flatten().collect();
        assert!(holds.contains(&Duration::ZERO));
        assert!(holds.iter().all(|&h| h <= Duration::from_millis(6)));
    }

    #[test]
    fn reorder_adds_hold() {
        let cfg = Impairment {
            delay: Duration::from_millis(20),
            reorder: 0.2,
            seed: 8,
            ..Default::default()
        };
        let (imp, all) = run(cfg, 10_000);
        let held = all
            .iter()
            .flatten()
            .filter(|&&h| h == cfg.delay + cfg.reorder_hold())
            .count() as u64;
        let normal = all.iter().flatten().filter(|&&h| h == cfg.delay).count() as u64;
        assert_eq!(held + normal, 10_000);
        assert_eq!(imp.counters.snapshot().reordered, held);
        assert_binomial(held, 10_000, 0.2);
    }
}
