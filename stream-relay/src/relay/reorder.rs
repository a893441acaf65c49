//! Puts packets back in sending order by their transport sequence number, holding those that
//! arrive after a gap until the gap fills or has waited too long.
//!
//! Why the relay needs this: an SRT receiver without TSBPD delivers every message as soon as
//! it is complete, and messages the sender marked "out of order allowed" (srt-live-transmit,
//! ffmpeg and most live senders do: `SRT_MSGCTRL.inorder` defaults to false) overtake a gap
//! that is still being recovered. Forwarded as they come, a recovered packet would reach the
//! player after its successors. Holding only what follows a gap, and only while the gap can
//! still be recovered in time, costs nothing on a clean network and at most the hold budget on
//! a lossy one, which is what a TSBPD receiver would spend anyway.
//!
//! Each packet comes with the time it is due (for SRT, its origin time: when it would have
//! arrived over an idle network), and the budget counts from there, not from its arrival: a
//! packet that arrived late through jitter has already spent part of its budget.
//!
//! Sequence numbers are 31 bits (SRT) and wrap; distances are taken modulo 2^31 and read as
//! signed. No clock, no I/O: the caller passes due times and `now`.

use std::collections::BTreeMap;

/// SRT's sequence space.
const SEQ_MOD: u64 = 1 << 31;
/// Beyond this many held packets the oldest gap is given up whatever its age, so a sender
/// that jumped (or a bug) cannot make us hold without bound.
const MAX_HELD: usize = 65_536;

#[derive(Debug)]
pub struct Reorder<T> {
    /// Next sequence number to release, unwrapped to 64 bits.
    next: Option<u64>,
    /// Held packets by unwrapped sequence number, with their due time (microseconds).
    held: BTreeMap<u64, (i64, T)>,
    budget_us: i64,
    /// Packets given up: gaps skipped (never arrived in time).
    pub skipped: u64,
    /// Packets that arrived after their gap was skipped or twice; dropped.
    pub late: u64,
}

impl<T> Reorder<T> {
    /// `budget_us`: how long past its due time a packet that follows a gap may wait for the
    /// gap to fill.
    pub fn new(budget_us: i64) -> Self {
        Reorder {
            next: None,
            held: BTreeMap::new(),
            budget_us,
            skipped: 0,
            late: 0,
        }
    }

    /// Takes a packet with its 31-bit sequence number and due time, and appends to `out`
    /// whatever is now ready in order. Gaps are given up only by [`Reorder::poll`].
    pub fn push(&mut self, seq: u32, due_us: i64, item: T, out: &mut Vec<T>) {
        let next = *self.next.get_or_insert(u64::from(seq) % SEQ_MOD);
        let d = (u64::from(seq) + SEQ_MOD - next % SEQ_MOD) % SEQ_MOD;
        if d >= SEQ_MOD / 2 {
            // Behind `next`: already released or given up.
            self.late += 1;
            return;
        }
        let abs = next + d;
        if abs == next {
            out.push(item);
            self.next = Some(next + 1);
            self.release_ready(out);
        } else if self.held.contains_key(&abs) {
            self.late += 1;
        } else {
            // A packet cannot be due later than one sent after it, and a retransmission's time
            // can be its resend time: keep due times non-decreasing in sequence order, so the
            // first held packet carries the earliest deadline of all and `poll` need look at
            // nothing else.
            let due = match self.held.range(abs + 1..).next() {
                Some((_, (after, _))) => due_us.min(*after),
                None => due_us,
            };
            for (_, (before, _)) in self.held.range_mut(..abs).rev() {
                if *before <= due {
                    break;
                }
                *before = due;
            }
            self.held.insert(abs, (due, item));
        }
        if self.held.len() > MAX_HELD {
            self.skip_first_gap(out);
        }
    }

    /// Gives up the gap in front of the oldest held packet once that packet is the budget past
    /// its due time, appending what that releases.
    pub fn poll(&mut self, now_us: i64, out: &mut Vec<T>) {
        while let Some((_, (due, _))) = self.held.first_key_value() {
            if now_us - *due < self.budget_us {
                break;
            }
            self.skip_first_gap(out);
        }
    }

    /// Packets waiting behind a gap.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// The first packet waiting behind the current gap.
    pub fn first_held(&self) -> Option<&T> {
        self.held.first_key_value().map(|(_, (_, item))| item)
    }

    /// The earliest due time of all held packets (that of the first: they never decrease).
    /// Every packet released before them left their sender no later than this.
    pub fn first_held_due(&self) -> Option<i64> {
        self.held.first_key_value().map(|(_, (due, _))| *due)
    }

    fn skip_first_gap(&mut self, out: &mut Vec<T>) {
        if let (Some(next), Some((&first, _))) = (self.next, self.held.first_key_value()) {
            self.skipped += first - next;
            self.next = Some(first);
            self.release_ready(out);
        }
    }

    fn release_ready(&mut self, out: &mut Vec<T>) {
        let Some(mut next) = self.next else { return };
        while let Some(entry) = self.held.first_entry() {
            if *entry.key() != next {
                break;
            }
            out.push(entry.remove().1);
            next += 1;
        }
        self.next = Some(next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(r: &mut Reorder<u32>, seqs: &[(u32, i64)]) -> Vec<u32> {
        let mut out = Vec::new();
        for &(s, t) in seqs {
            r.push(s, t, s, &mut out);
        }
        out
    }

    #[test]
    fn in_order_passes_straight_through() {
        let mut r = Reorder::new(100_000);
        assert_eq!(feed(&mut r, &[(5, 0), (6, 1), (7, 2)]), vec![5, 6, 7]);
        assert_eq!(r.held(), 0);
    }

    #[test]
    fn a_recovered_packet_goes_out_before_its_successors() {
        let mut r = Reorder::new(100_000);
        let out = feed(
            &mut r,
            &[(1, 0), (3, 10), (4, 20), (2, 50_000), (5, 50_001)],
        );
        assert_eq!(out, vec![1, 2, 3, 4, 5]);
        assert_eq!((r.skipped, r.late), (0, 0));
    }

    #[test]
    fn a_gap_is_given_up_after_the_budget_and_late_packets_dropped() {
        let mut r = Reorder::new(100_000);
        let mut out = feed(&mut r, &[(1, 0), (3, 10), (4, 20)]);
        r.poll(100_009, &mut out);
        assert_eq!(out, vec![1]);
        r.poll(100_010, &mut out);
        assert_eq!(out, vec![1, 3, 4]);
        assert_eq!(r.skipped, 1);
        out.clear();
        r.push(2, 100_100, 2, &mut out);
        assert!(out.is_empty());
        assert_eq!(r.late, 1);
    }

    #[test]
    fn a_late_stamped_packet_does_not_delay_giving_up_the_gap_before_it() {
        // 2 is missing; 3 came only as a retransmission stamped at its resend time (90_000),
        // 4 is an original due at 30. The gap is given up when 4 is a budget past its due.
        let mut r = Reorder::new(100_000);
        let mut out = feed(&mut r, &[(1, 0), (3, 90_000), (4, 30)]);
        r.poll(100_029, &mut out);
        assert_eq!(out, vec![1]);
        r.poll(100_030, &mut out);
        assert_eq!(out, vec![1, 3, 4]);
        // Also when the later original is held first.
        let mut r = Reorder::new(100_000);
        let mut out = feed(&mut r, &[(1, 0), (4, 30), (3, 90_000)]);
        r.poll(100_030, &mut out);
        assert_eq!(out, vec![1, 3, 4]);
        assert_eq!(r.skipped, 1);
        // What the first held packet's deadline counts from is the earliest of all.
        let mut r = Reorder::new(100_000);
        feed(&mut r, &[(1, 0), (3, 90_000)]);
        assert_eq!(r.first_held_due(), Some(90_000));
        feed(&mut r, &[(5, 50)]);
        assert_eq!(r.first_held_due(), Some(50));
    }

    #[test]
    fn sequence_numbers_wrap_at_31_bits() {
        let top = (SEQ_MOD - 1) as u32;
        let mut r = Reorder::new(100_000);
        let out = feed(&mut r, &[(top - 1, 0), (0, 1), (top, 2), (1, 3)]);
        assert_eq!(out, vec![top - 1, top, 0, 1]);
    }

    #[test]
    fn duplicates_are_dropped() {
        let mut r = Reorder::new(100_000);
        let out = feed(&mut r, &[(1, 0), (3, 1), (3, 2), (1, 3), (2, 4)]);
        assert_eq!(out, vec![1, 2, 3]);
        assert_eq!(r.late, 2);
    }
}
