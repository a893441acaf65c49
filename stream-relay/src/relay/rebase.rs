//! Maps the source times an input reports onto the relay's clock as an output sees them.
//!
//! Inputs differ in what their source time means: SRT gives the origin time reconstructed on
//! our clock, RIST the sender's wall-clock timestamp (another machine's clock, perhaps seconds
//! off), UDP the arrival. An output must hand its library a time that keeps the source's
//! spacing but is never in the past by more than the packet's real age, or libsrt would drop
//! the packet as too late and a RIST receiver would misplace it. So each output learns the
//! smallest `now - source time` it sees (the fastest path from source to here) and adds it:
//! the packet that crossed fastest leaves "now", the others keep their distance from it.
//!
//! The minimum may creep up slowly ([`CREEP_PPM`]) so a source clock that runs slow is
//! followed, and it starts over whenever the input connects to a new sender (new `epoch`).

/// How fast the offset may rise, in parts per million of elapsed time.
pub const CREEP_PPM: i64 = 1_000;

#[derive(Debug, Default, Clone)]
pub struct Rebase {
    epoch: Option<u64>,
    /// Smallest `now - src` seen, and when (our clock, µs).
    base: Option<(i64, i64)>,
}

impl Rebase {
    /// The source time `src_us` of a packet of input connection `epoch`, on our clock at
    /// `now_us`. Unknown source times (0) stay 0.
    pub fn map(&mut self, epoch: u64, src_us: i64, now_us: i64) -> i64 {
        if src_us == 0 {
            return 0;
        }
        if self.epoch != Some(epoch) {
            self.epoch = Some(epoch);
            self.base = None;
        }
        let offset = now_us - src_us;
        let base = match self.base {
            Some((value, at)) => {
                let crept = value + (now_us - at).max(0) * CREEP_PPM / 1_000_000;
                if offset <= crept {
                    self.base = Some((offset, now_us));
                    offset
                } else {
                    crept
                }
            }
            None => {
                self.base = Some((offset, now_us));
                offset
            }
        };
        src_us + base
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_spacing_and_never_goes_past_now() {
        let mut r = Rebase::default();
        // A remote clock 5 s ahead of ours; packets every 1 ms, the third delayed by 40 ms.
        let ahead = 5_000_000;
        let now0 = 1_000_000;
        assert_eq!(r.map(1, now0 + ahead, now0), now0);
        assert_eq!(r.map(1, now0 + 1_000 + ahead, now0 + 1_000), now0 + 1_000);
        // Delayed: mapped to when it should have been (plus the creep of 41 ms at 1000 ppm),
        // not when it came.
        assert_eq!(r.map(1, now0 + 2_000 + ahead, now0 + 42_000), now0 + 2_041);
        for i in 0..1000 {
            let src = now0 + 3_000 + i * 1_000;
            assert!(r.map(1, src + ahead, src + 200) <= src + 200);
        }
    }

    #[test]
    fn a_new_sender_starts_over() {
        let mut r = Rebase::default();
        assert_eq!(r.map(1, 10_000, 10_000), 10_000);
        // The next sender's clock is 3 s behind: without a reset every packet would map 3 s
        // into the past.
        assert_eq!(r.map(2, 20_000 - 3_000_000, 20_000), 20_000);
        assert_eq!(r.map(2, 0, 21_000), 0);
    }

    #[test]
    fn follows_a_slow_source_clock() {
        let mut r = Rebase::default();
        // The source clock runs 100 ppm slow: the offset grows 100 µs per second.
        let mut lag_max = 0;
        for s in 0..600i64 {
            let now = 1_000_000 + s * 1_000_000;
            let src = now - s * 100;
            let mapped = r.map(1, src, now);
            assert!(mapped <= now);
            lag_max = lag_max.max(now - mapped);
        }
        assert!(lag_max < 1_000, "mapped time lags by {lag_max} µs");
    }
}
