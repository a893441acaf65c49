//! Per-side accounting shared by input and output threads: packet and byte counters, the
//! bitrate window, RFC 3550 jitter, and the once-a-second statistics tick.

use crate::common::metrics::LinkMetrics;
use crate::relay::jitter::JitterEstimator;
use crate::relay::rate::RateMeter;
use crate::relay::{LinkStats, Packet};
use std::time::{Duration, Instant};

const STATS_EVERY: Duration = Duration::from_secs(1);

pub(super) struct Meter {
    start: Instant,
    rate: RateMeter,
    jitter: JitterEstimator,
    next_stats: Instant,
}

impl Meter {
    pub(super) fn new(start: Instant) -> Meter {
        Meter {
            start,
            rate: RateMeter::new(start, STATS_EVERY),
            jitter: JitterEstimator::default(),
            next_stats: start + STATS_EVERY,
        }
    }

    /// Counts a packet the side handled at `at` (received for inputs, sent for outputs).
    pub(super) fn packet(&mut self, metrics: &LinkMetrics, packet: &Packet, at: Instant) {
        metrics.packets.inc();
        metrics.bytes.inc_by(packet.len() as u64);
        self.rate.add(packet.len());
        let at_us = at.saturating_duration_since(self.start).as_micros() as i64;
        self.jitter.observe(packet.src_time_us, at_us);
    }

    /// A new connection has a new time base.
    pub(super) fn restart(&mut self) {
        self.jitter.restart();
    }

    /// Once a second: library statistics, bitrate and jitter into the metrics. Returns true
    /// when it ticked, so the caller can do its own periodic work.
    pub(super) fn tick(
        &mut self,
        metrics: &LinkMetrics,
        stats: impl FnOnce() -> LinkStats,
    ) -> bool {
        let now = Instant::now();
        if now < self.next_stats {
            return false;
        }
        self.next_stats = now + STATS_EVERY;
        metrics.record_stats(&stats());
        metrics.bitrate_kbps.set(self.rate.poll(now));
        metrics.jitter_ms.set(self.jitter.jitter_ms());
        true
    }
}
