//! Bitrate over a sliding interval, from byte counts and caller-supplied instants.

use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct RateMeter {
    window_start: Instant,
    bytes: u64,
    last_kbps: f64,
    interval: Duration,
}

impl RateMeter {
    pub fn new(now: Instant, interval: Duration) -> Self {
        RateMeter {
            window_start: now,
            bytes: 0,
            last_kbps: 0.0,
            interval,
        }
    }

    pub fn add(&mut self, bytes: usize) {
        self.bytes += bytes as u64;
    }

    /// Closes the window if it is over and returns the rate of the last complete window.
    pub fn poll(&mut self, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(self.window_start);
        if elapsed >= self.interval {
            self.last_kbps = self.bytes as f64 * 8.0 / 1000.0 / elapsed.as_secs_f64();
            self.bytes = 0;
            self.window_start = now;
        }
        self.last_kbps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_kbps_per_window() {
        let t0 = Instant::now();
        let mut m = RateMeter::new(t0, Duration::from_secs(1));
        m.add(125_000); // 1 Mbit
        assert_eq!(m.poll(t0 + Duration::from_millis(500)), 0.0);
        let kbps = m.poll(t0 + Duration::from_secs(1));
        assert!((kbps - 1000.0).abs() < 1e-6, "{kbps}");
        // An empty window brings the rate back to zero.
        assert_eq!(m.poll(t0 + Duration::from_secs(2)), 0.0);
    }
}
