//! RFC 3550 (section 6.4.1 and A.8) interarrival jitter, from the source timestamps the input
//! library reports and the instants the relay saw.

/// J(i) = J(i-1) + (|D(i-1,i)| - J(i-1)) / 16, where D is the difference between the spacing
/// of two packets on arrival and their spacing at the source.
#[derive(Debug, Default, Clone)]
pub struct JitterEstimator {
    last: Option<(i64, i64)>,
    jitter_us: f64,
}

impl JitterEstimator {
    /// `src_us` is the packet's source timestamp, `arrival_us` when it arrived, both in
    /// microseconds on any clock consistent within a stream. Packets without a source time are
    /// ignored, because their spacing says nothing about the network.
    pub fn observe(&mut self, src_us: i64, arrival_us: i64) {
        if src_us == 0 {
            return;
        }
        if let Some((prev_src, prev_arrival)) = self.last {
            let d = (arrival_us - prev_arrival) - (src_us - prev_src);
            self.jitter_us += ((d.unsigned_abs() as f64) - self.jitter_us) / 16.0;
        }
        self.last = Some((src_us, arrival_us));
    }

    /// A new connection has a new time base: forget the previous packet but keep the estimate.
    pub fn restart(&mut self) {
        self.last = None;
    }

    pub fn jitter_ms(&self) -> f64 {
        self.jitter_us / 1000.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steady_stream_has_no_jitter() {
        let mut j = JitterEstimator::default();
        for i in 0..100 {
            j.observe(1_000 + i * 1_000, 50_000 + i * 1_000);
        }
        assert_eq!(j.jitter_ms(), 0.0);
    }

    #[test]
    fn alternating_delay_converges_to_its_amplitude() {
        // Arrivals alternate between +0 and +4 ms of delay: |D| is always 4 ms.
        let mut j = JitterEstimator::default();
        for i in 0..2_000i64 {
            let extra = if i % 2 == 0 { 0 } else { 4_000 };
            j.observe(1 + i * 1_000, i * 1_000 + extra);
        }
        assert!((j.jitter_ms() - 4.0).abs() < 0.01, "{}", j.jitter_ms());
    }

    #[test]
    fn unknown_source_time_is_ignored_and_restart_forgets_the_base() {
        let mut j = JitterEstimator::default();
        j.observe(0, 10);
        j.observe(1_000, 1_000);
        j.restart();
        // A new time base far away must not count as a jump.
        j.observe(900_000_000, 5);
        assert_eq!(j.jitter_ms(), 0.0);
    }
}
