//! The input side's work per packet, the same whether the route's input thread reads the
//! packets (`InputLink::recv`) or the input library pushes them from its own thread
//! (`InputLink::push_to`): stamp the epoch, meter, note the time for idle detection, and hand
//! the packets to the Pipe. It owns no thread and calls no library.
//!
//! Lock order: a pushing link may hold its own locks when it delivers here, so nothing done
//! under this lock may call the link (see `tick`). The Pipe and the direct outputs it feeds
//! lock after this one, as they do after the input thread's reads.

use super::meter::Meter;
use crate::common::metrics::LinkMetrics;
use crate::relay::link::InputSink;
use crate::relay::pipe::Pipe;
use crate::relay::{LinkStats, Packet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

pub(super) struct Intake {
    pipe: Arc<Pipe>,
    metrics: LinkMetrics,
    /// Held from the epoch stamp to the Pipe, so packets of two threads (two RIST flows, one
    /// replacing the other) cannot reach the outputs with their epochs out of order.
    state: Mutex<State>,
}

struct State {
    meter: Meter,
    /// Which connection of the input the packets belong to (see `Packet::epoch`).
    epoch: u64,
    /// When the last packet arrived, for idle detection.
    last_data: Option<Instant>,
    /// The input is stopping: pushed packets are let go at once.
    closed: bool,
    /// A pushed packet on its way to the Pipe, which takes batches; kept to reuse its memory.
    one: Vec<Packet>,
}

impl State {
    /// `n` senders connected: the packets from here on belong to a new connection, whose
    /// source times come from another clock.
    fn begin_epochs(&mut self, n: u64) {
        if n > 0 {
            self.epoch += n;
            self.meter.restart();
        }
    }
}

impl Intake {
    pub(super) fn new(pipe: Arc<Pipe>, metrics: LinkMetrics, start: Instant) -> Intake {
        Intake {
            pipe,
            metrics,
            state: Mutex::new(State {
                meter: Meter::new(start),
                epoch: 0,
                last_data: None,
                closed: false,
                one: Vec::with_capacity(1),
            }),
        }
    }

    /// Packets the input thread read, after `new_senders` senders connected (each starts an
    /// epoch before its packets go out). Leaves `batch` empty.
    pub(super) fn take(&self, batch: &mut Vec<Packet>, new_senders: u64) {
        let mut state = self.lock();
        state.begin_epochs(new_senders);
        if batch.is_empty() {
            return;
        }
        state.last_data = Some(Instant::now());
        for packet in batch.iter_mut() {
            packet.epoch = state.epoch;
            state
                .meter
                .packet(&self.metrics, packet, packet.received_at);
        }
        self.pipe.push_all(batch);
    }

    /// Senders that connected with no packet read yet (their packets come in a later batch).
    pub(super) fn begin_epochs(&self, n: u64) {
        self.lock().begin_epochs(n);
    }

    /// A new connection has a new time base.
    pub(super) fn restart(&self) {
        self.lock().meter.restart();
    }

    pub(super) fn last_data(&self) -> Option<Instant> {
        self.lock().last_data
    }

    /// Once a second: the link's statistics, the bitrate and the jitter into the metrics.
    pub(super) fn tick(&self, stats: impl FnOnce() -> LinkStats) {
        if !self.lock().meter.due(Instant::now()) {
            return;
        }
        // Read without our lock: a pushing link takes its own locks before ours.
        let stats = stats();
        self.lock().meter.tick(&self.metrics, || stats);
    }

    /// The input is stopping: packets still pushed until its library stops are dropped.
    pub(super) fn close(&self) {
        self.lock().closed = true;
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain counters and packets, still valid.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl InputSink for Intake {
    fn deliver(&self, mut packet: Packet, new_sender: bool) {
        let mut guard = self.lock();
        let state = &mut *guard;
        if state.closed {
            return;
        }
        if new_sender {
            state.begin_epochs(1);
        }
        packet.epoch = state.epoch;
        state
            .meter
            .packet(&self.metrics, &packet, packet.received_at);
        state.last_data = Some(packet.received_at);
        state.one.push(packet);
        self.pipe.push_all(&mut state.one);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::metrics::{LinkLabels, Metrics, Side};
    use crate::relay::pipe::OutputSlot;
    use bytes::Bytes;
    use std::time::Duration;

    fn intake() -> (Arc<Intake>, Arc<OutputSlot>, LinkMetrics) {
        let pipe = Arc::new(Pipe::new());
        let slot = OutputSlot::new("o", 64);
        slot.set_up(true);
        pipe.attach(slot.clone());
        let metrics = Metrics::new().link(LinkLabels {
            route: "r".into(),
            side: Side::input,
            output: String::new(),
        });
        let intake = Arc::new(Intake::new(pipe, metrics.clone(), Instant::now()));
        (intake, slot, metrics)
    }

    fn pkt(n: u8) -> Packet {
        Packet::new(
            Bytes::from(vec![n; 10]),
            1000 * i64::from(n),
            Instant::now(),
        )
    }

    fn taken(slot: &OutputSlot) -> Vec<(u8, u64)> {
        let mut out = Vec::new();
        slot.take(&mut out, Duration::ZERO);
        out.iter().map(|p| (p.payload[0], p.epoch)).collect()
    }

    #[test]
    fn pushed_and_read_packets_get_the_same_epochs_and_metering() {
        let (pushed, slot_a, metrics_a) = intake();
        pushed.deliver(pkt(1), true);
        pushed.deliver(pkt(2), false);
        pushed.deliver(pkt(3), true);
        let (read, slot_b, metrics_b) = intake();
        read.take(&mut vec![pkt(1), pkt(2)], 1);
        read.take(&mut vec![pkt(3)], 1);
        let want = vec![(1, 1), (2, 1), (3, 2)];
        assert_eq!(taken(&slot_a), want);
        assert_eq!(taken(&slot_b), want);
        for m in [&metrics_a, &metrics_b] {
            assert_eq!(m.packets.get(), 3);
            assert_eq!(m.bytes.get(), 30);
        }
        assert!(pushed.last_data().is_some() && read.last_data().is_some());
    }

    #[test]
    fn a_sender_seen_before_its_packets_still_starts_their_epoch() {
        let (read, slot, _) = intake();
        read.begin_epochs(1);
        read.take(&mut vec![pkt(1)], 0);
        read.take(&mut Vec::new(), 0);
        assert_eq!(taken(&slot), vec![(1, 1)]);
        assert!(read.last_data().is_some());
    }

    #[test]
    fn a_closed_intake_lets_pushed_packets_go() {
        let (pushed, slot, metrics) = intake();
        pushed.deliver(pkt(1), true);
        pushed.close();
        pushed.deliver(pkt(2), false);
        assert_eq!(taken(&slot), vec![(1, 1)]);
        assert_eq!(metrics.packets.get(), 1);
    }

    #[test]
    fn two_threads_pushing_keep_their_epochs_in_order() {
        let (pushed, slot, _) = intake();
        let threads: Vec<_> = (0..2)
            .map(|t| {
                let pushed = pushed.clone();
                std::thread::spawn(move || {
                    for n in 0..20 {
                        pushed.deliver(pkt(t * 20 + n), n % 7 == 0);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("pushing thread");
        }
        let epochs: Vec<u64> = taken(&slot).iter().map(|&(_, e)| e).collect();
        assert_eq!(epochs.len(), 40);
        assert!(epochs.windows(2).all(|w| w[0] <= w[1]), "{epochs:?}");
        assert_eq!(epochs.last(), Some(&6));
    }
}
