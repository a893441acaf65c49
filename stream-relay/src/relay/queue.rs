//! A bounded packet queue that drops the oldest packet when full: for live video the newest
//! data is the valuable data, and an output that fell behind must catch up, not replay the past.

use super::Packet;
use std::collections::VecDeque;

#[derive(Debug)]
pub struct PacketQueue {
    packets: VecDeque<Packet>,
    capacity: usize,
}

impl PacketQueue {
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        PacketQueue {
            packets: VecDeque::with_capacity(capacity.min(4096)),
            capacity,
        }
    }

    /// Appends a packet; returns how many old packets were dropped to make room (0 or 1).
    pub fn push(&mut self, packet: Packet) -> u64 {
        let mut dropped = 0;
        while self.packets.len() >= self.capacity {
            self.packets.pop_front();
            dropped += 1;
        }
        self.packets.push_back(packet);
        dropped
    }

    pub fn pop(&mut self) -> Option<Packet> {
        self.packets.pop_front()
    }

    /// Moves every queued packet into `out`, oldest first.
    pub fn drain_into(&mut self, out: &mut Vec<Packet>) {
        out.extend(self.packets.drain(..));
    }

    /// Empties the queue and returns how many packets it held.
    pub fn clear(&mut self) -> u64 {
        let n = self.packets.len() as u64;
        self.packets.clear();
        n
    }

    pub fn len(&self) -> usize {
        self.packets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.packets.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::time::Instant;

    fn pkt(n: u8) -> Packet {
        Packet::new(Bytes::from(vec![n]), 0, Instant::now())
    }

    #[test]
    fn drops_oldest_when_full() {
        let mut q = PacketQueue::new(3);
        for n in 0..3 {
            assert_eq!(q.push(pkt(n)), 0);
        }
        assert_eq!(q.push(pkt(3)), 1);
        assert_eq!(q.push(pkt(4)), 1);
        let got: Vec<u8> = std::iter::from_fn(|| q.pop())
            .map(|p| p.payload[0])
            .collect();
        assert_eq!(got, vec![2, 3, 4]);
    }

    #[test]
    fn clear_counts_what_it_discarded() {
        let mut q = PacketQueue::new(8);
        q.push(pkt(1));
        q.push(pkt(2));
        assert_eq!(q.clear(), 2);
        assert!(q.is_empty());
        assert_eq!(PacketQueue::new(0).capacity(), 1);
    }
}
