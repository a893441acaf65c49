//! Seeded pseudo-random numbers for impairment decisions.
//!
//! Owns the only source of randomness in the crate. It is a tiny xorshift64*
//! generator seeded through splitmix64: tests need runs that repeat exactly for
//! a given seed, and the project keeps dependencies to a minimum, so `rand` is
//! deliberately not used. Statistical quality only has to be good enough for
//! loss/jitter sampling, not for anything security-related.

/// xorshift64* generator (Vigna, 2014) with a splitmix64-scrambled seed.
#[derive(Debug, Clone)]
pub struct Rng {
    state: u64,
}

/// One splitmix64 step; used to turn arbitrary (often tiny, adjacent) user
/// seeds into well-mixed, non-zero xorshift states.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Rng {
    /// Creates a generator; equal seeds give identical sequences.
    pub fn new(seed: u64) -> Self {
        let state = splitmix64(seed);
        // xorshift has a fixed point at zero; splitmix64 maps exactly one seed
        // there, so substitute any non-zero constant for it.
        Self {
            state: if state == 0 {
                0x9E37_79B9_7F4A_7C15
            } else {
                state
            },
        }
    }

    /// Next 64 uniformly distributed bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `[0, 1)` with 53 bits of precision.
    pub fn next_f64(&mut self) -> f64 {
        // The low bits of xorshift64* are its weakest, so take the high ones.
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `[0, n)`; returns 0 for `n == 0`.
    ///
    /// Uses Lemire's multiply-shift; the bias (< n / 2^64) is irrelevant for
    /// nanosecond jitter ranges.
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// True with probability `p`. Does not consume randomness when the outcome
    /// is certain, so a disabled impairment never perturbs the sequence of
    /// the enabled ones.
    pub fn chance(&mut self, p: f64) -> bool {
        if p <= 0.0 {
            false
        } else if p >= 1.0 {
            true
        } else {
            self.next_f64() < p
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence() {
        let mut a = Rng::new(42);
        let mut b = Rng::new(42);
        for _ in 0..1000 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
    }

    #[test]
    fn different_seeds_differ() {
        let a: Vec<u64> = {
            let mut r = Rng::new(1);
            (0..16).map(|_| r.next_u64()).collect()
        };
        let b: Vec<u64> = {
            let mut r = Rng::new(2);
            (0..16).map(|_| r.next_u64()).collect()
        };
        assert_ne!(a, b);
    }

    #[test]
    fn zero_seed_is_usable() {
        let mut r = Rng::new(0);
        let first = r.next_u64();
        assert!((0..100).any(|_| r.next_u64() != first));
    }

    #[test]
    fn f64_in_unit_interval_and_roughly_uniform() {
        let mut r = Rng::new(7);
        let n = 100_000;
        let mut sum = 0.0;
        for _ in 0..n {
            let x = r.next_f64();
            assert!((0.0..1.0).contains(&x));
            sum += x;
        }
        let mean = sum / f64::from(n);
        assert!((mean - 0.5).abs() < 0.01, "mean {mean}");
    }

    #[test]
    fn below_stays_in_range() {
        let mut r = Rng::new(9);
        assert_eq!(r.below(0), 0);
        let mut seen = [false; 7];
        for _ in 0..10_000 {
            let v = r.below(7);
            assert!(v < 7);
            seen[v as usize] = true;
        }
        assert!(seen.iter().all(|&s| s));
    }

    #[test]
    fn chance_extremes_consume_nothing() {
        let mut a = Rng::new(3);
        let mut b = Rng::new(3);
        assert!(!a.chance(0.0));
        assert!(a.chance(1.0));
        assert_eq!(a.next_u64(), b.next_u64());
    }
}
