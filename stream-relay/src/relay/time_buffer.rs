//! An output's time buffer: each packet leaves at its source time + a fixed delay, paced as
//! the source sent it. With no delay it is a pass-through (packets are due on arrival).
//! Bounded: when it holds `capacity` packets the oldest is given back to be counted as dropped.

use super::Packet;
use std::collections::VecDeque;

#[derive(Debug)]
pub struct TimeBuffer {
    delay_us: i64,
    capacity: usize,
    held: VecDeque<Packet>,
}

impl TimeBuffer {
    pub fn new(delay_us: i64, capacity: usize) -> Self {
        TimeBuffer {
            delay_us: delay_us.max(0),
            capacity: capacity.max(1),
            held: VecDeque::new(),
        }
    }

    pub fn delay_us(&self) -> i64 {
        self.delay_us
    }

    /// Holds `packet`, whose `src_time_us` must already be on the output's clock. Returns the
    /// packet pushed out if the buffer was full.
    pub fn push(&mut self, packet: Packet) -> Option<Packet> {
        let evicted = if self.held.len() >= self.capacity {
            self.held.pop_front()
        } else {
            None
        };
        self.held.push_back(packet);
        evicted
    }

    /// When the next packet is due (µs, output clock).
    pub fn next_due(&self) -> Option<i64> {
        self.held.front().map(|p| p.src_time_us + self.delay_us)
    }

    /// Moves every packet due at `now_us` to `out`, in order, with its source time advanced by
    /// the delay (the time it leaves).
    pub fn pop_due(&mut self, now_us: i64, out: &mut Vec<Packet>) {
        while let Some(front) = self.held.front() {
            if front.src_time_us + self.delay_us > now_us {
                break;
            }
            if let Some(mut p) = self.held.pop_front() {
                p.src_time_us += self.delay_us;
                out.push(p);
            }
        }
    }

    /// Held packets and the stream time they span (µs).
    pub fn fill(&self) -> (usize, i64) {
        let span = match (self.held.front(), self.held.back()) {
            (Some(a), Some(b)) => (b.src_time_us - a.src_time_us).max(0),
            _ => 0,
        };
        (self.held.len(), span)
    }

    /// Empties the buffer (the output lost its peer); returns how many were held.
    pub fn clear(&mut self) -> usize {
        let n = self.held.len();
        self.held.clear();
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::time::Instant;

    fn packet(t: i64) -> Packet {
        Packet::new(Bytes::from_static(b"x"), t, Instant::now())
    }

    #[test]
    fn releases_each_packet_at_its_time_plus_the_delay() {
        let mut b = TimeBuffer::new(500_000, 100);
        for t in [1_000, 2_000, 4_000] {
            assert!(b.push(packet(t)).is_none());
        }
        let mut out = Vec::new();
        b.pop_due(500_999, &mut out);
        assert!(out.is_empty());
        b.pop_due(501_000, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].src_time_us, 501_000);
        assert_eq!(b.next_due(), Some(502_000));
        b.pop_due(503_999, &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(b.fill(), (1, 0));
        b.pop_due(504_000, &mut out);
        assert_eq!(out.len(), 3);
        assert_eq!(b.next_due(), None);
    }

    #[test]
    fn without_delay_everything_is_due_at_once() {
        let mut b = TimeBuffer::new(0, 10);
        b.push(packet(5));
        b.push(packet(6));
        let mut out = Vec::new();
        b.pop_due(6, &mut out);
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn bounded_oldest_first() {
        let mut b = TimeBuffer::new(1_000_000, 2);
        assert!(b.push(packet(1)).is_none());
        assert!(b.push(packet(2)).is_none());
        assert_eq!(b.push(packet(3)).map(|p| p.src_time_us), Some(1));
        assert_eq!(b.fill(), (2, 1));
        assert_eq!(b.clear(), 2);
    }
}
