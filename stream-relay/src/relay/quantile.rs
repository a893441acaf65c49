//! Quantiles from histogram buckets, over a sliding window of snapshots: what `/health` shows
//! of the transit histogram that `/metrics` exports, computed the way Prometheus'
//! `histogram_quantile` would (linear within the bucket). No clock: the caller decides when
//! to take a snapshot.

use std::collections::VecDeque;

/// Upper bounds (ascending) and a counter per bucket plus one for +Inf.
#[derive(Clone, Debug)]
pub struct Buckets {
    bounds: Vec<f64>,
    counts: Vec<u64>,
}

impl Buckets {
    pub fn new(bounds: Vec<f64>) -> Self {
        let counts = vec![0; bounds.len() + 1];
        Buckets { bounds, counts }
    }

    pub fn observe(&mut self, v: f64) {
        let i = self.bounds.partition_point(|&b| b < v);
        self.counts[i] += 1;
    }

    pub fn counts(&self) -> &[u64] {
        &self.counts
    }

    /// The q-quantile (0..=1) of the observations counted in `counts` (same layout as this
    /// histogram's); None when there are none. Values in the +Inf bucket read as the last
    /// finite bound, as in Prometheus.
    pub fn quantile_of(&self, counts: &[u64], q: f64) -> Option<f64> {
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * total as f64;
        let mut seen = 0u64;
        for (i, &c) in counts.iter().enumerate() {
            if c > 0 && (seen + c) as f64 >= rank {
                let Some(&upper) = self.bounds.get(i) else {
                    return self.bounds.last().copied();
                };
                let lower = if i == 0 { 0.0 } else { self.bounds[i - 1] };
                let within = (rank - seen as f64) / c as f64;
                return Some(lower + (upper - lower) * within.clamp(0.0, 1.0));
            }
            seen += c;
        }
        self.bounds.last().copied()
    }
}

/// Keeps the last `len` snapshots of a `Buckets`; quantiles cover what was observed between
/// the oldest snapshot and now.
#[derive(Debug)]
pub struct Window {
    snapshots: VecDeque<Vec<u64>>,
    len: usize,
}

impl Window {
    pub fn new(len: usize) -> Self {
        Window {
            snapshots: VecDeque::with_capacity(len + 1),
            len: len.max(1),
        }
    }

    /// Takes a snapshot of `b` and returns the given quantiles over the window (None each if
    /// nothing was observed in it).
    pub fn tick(&mut self, b: &Buckets, qs: &[f64]) -> Vec<Option<f64>> {
        let now = b.counts().to_vec();
        let delta: Vec<u64> = match self.snapshots.front() {
            Some(old) => now
                .iter()
                .zip(old)
                .map(|(n, o)| n.saturating_sub(*o))
                .collect(),
            None => now.clone(),
        };
        self.snapshots.push_back(now);
        while self.snapshots.len() > self.len {
            self.snapshots.pop_front();
        }
        qs.iter().map(|&q| b.quantile_of(&delta, q)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms_buckets() -> Buckets {
        Buckets::new(vec![0.001, 0.002, 0.004, 0.008])
    }

    #[test]
    fn quantiles_interpolate_within_the_bucket() {
        let mut b = ms_buckets();
        for _ in 0..50 {
            b.observe(0.0005);
        }
        for _ in 0..50 {
            b.observe(0.003);
        }
        let p50 = b.quantile_of(b.counts(), 0.5).expect("some");
        assert!((p50 - 0.001).abs() < 1e-12, "{p50}");
        let p99 = b.quantile_of(b.counts(), 0.99).expect("some");
        assert!(p99 > 0.002 && p99 <= 0.004, "{p99}");
        b.observe(10.0);
        assert_eq!(b.quantile_of(b.counts(), 1.0), Some(0.008));
        assert_eq!(b.quantile_of(&[0, 0, 0, 0, 0], 0.5), None);
    }

    #[test]
    fn the_window_forgets_old_observations() {
        let mut b = ms_buckets();
        let mut w = Window::new(2);
        for _ in 0..100 {
            b.observe(0.007);
        }
        assert!(w.tick(&b, &[0.5])[0].expect("some") > 0.004);
        for _ in 0..100 {
            b.observe(0.0005);
        }
        w.tick(&b, &[0.5]);
        // Two ticks later only the fast packets are in the window.
        for _ in 0..100 {
            b.observe(0.0005);
        }
        let p = w.tick(&b, &[0.5])[0].expect("some");
        assert!(p <= 0.001, "{p}");
        // Nothing new: no figure rather than a stale one.
        w.tick(&b, &[0.5]);
        assert_eq!(w.tick(&b, &[0.5])[0], None);
    }
}
