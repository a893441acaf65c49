//! The Pipe: one Reader's packets fanned out to N Writers, each behind its own bounded queue, so
//! a slow or reconnecting output never stalls the input or its sibling outputs. Outputs can be
//! attached and detached while the route runs.
//!
//! An output whose library only queues a packet for its own thread (librist's sender, a
//! non-blocking libsrt or UDP socket) can take its packets on the input's thread instead
//! ([`OutputSlot::go_direct`]): the hand-off to the output thread would cost a wake-up per batch
//! and protect nothing, since such a send never blocks.

use super::queue::PacketQueue;
use super::Packet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};
use std::time::Duration;

/// Why the Pipe did not deliver a packet to an output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// The output had no connected peer: live data is not worth keeping for later.
    OutputDown,
    /// The output's queue was full (a stalled or too slow consumer); the oldest packet went.
    QueueFull,
    /// The output library refused the packet (its send buffer was full).
    SendBufferFull,
    /// The output's time buffer was full (the stream runs faster than it was sized for).
    TimeBufferFull,
}

impl DropReason {
    pub fn as_label(self) -> &'static str {
        match self {
            DropReason::OutputDown => "output_down",
            DropReason::QueueFull => "queue_full",
            DropReason::SendBufferFull => "send_buffer_full",
            DropReason::TimeBufferFull => "time_buffer_full",
        }
    }
}

/// An output that takes packets on the input's thread, in order. It must never block: the
/// input and every other output wait for it.
pub trait DirectSink: Send + Sync {
    fn deliver(&self, packets: &mut dyn Iterator<Item = Packet>);
}

struct Direct(Option<Arc<dyn DirectSink>>);

impl std::fmt::Debug for Direct {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "direct" } else { "queued" })
    }
}

/// The shared end of one output: the input thread pushes, the output's own thread pops.
#[derive(Debug)]
pub struct OutputSlot {
    name: String,
    /// Read by the input for every batch, written only when the output switches mode.
    direct: RwLock<Direct>,
    queue: Mutex<PacketQueue>,
    ready: Condvar,
    /// The output thread sleeps in `take`; read and written only with `queue` locked, so the
    /// Pipe can skip the wake-up syscall when nobody sleeps (the output is busy sending).
    sleeping: AtomicBool,
    up: AtomicBool,
    closed: AtomicBool,
    dropped_down: AtomicU64,
    dropped_full: AtomicU64,
}

impl OutputSlot {
    pub fn new(name: impl Into<String>, capacity: usize) -> Arc<Self> {
        Arc::new(OutputSlot {
            name: name.into(),
            direct: RwLock::new(Direct(None)),
            queue: Mutex::new(PacketQueue::new(capacity)),
            ready: Condvar::new(),
            sleeping: AtomicBool::new(false),
            up: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            dropped_down: AtomicU64::new(0),
            dropped_full: AtomicU64::new(0),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The output thread says whether it has somewhere to send. While down, the Pipe drops
    /// instead of queueing, and whatever was queued is discarded (and counted) here.
    pub fn set_up(&self, up: bool) {
        let was = self.up.swap(up, Ordering::AcqRel);
        if was && !up {
            let n = self.lock().clear();
            self.dropped_down.fetch_add(n, Ordering::Relaxed);
        }
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    /// Offers packets in order under one lock, waking the output thread at most once: a
    /// wake-up per packet would make the output thread run (and contend for the lock) once
    /// per packet instead of once per batch the input read. Returns the reason when any was
    /// dropped.
    pub fn offer_all(
        &self,
        mut packets: impl ExactSizeIterator<Item = Packet>,
    ) -> Option<DropReason> {
        if packets.len() == 0 {
            return None;
        }
        if !self.is_up() {
            self.dropped_down
                .fetch_add(packets.len() as u64, Ordering::Relaxed);
            return Some(DropReason::OutputDown);
        }
        {
            let direct = self.direct.read().unwrap_or_else(|p| p.into_inner());
            if let Some(sink) = &direct.0 {
                sink.deliver(&mut packets);
                return None;
            }
        }
        let (dropped, sleeping) = {
            let mut q = self.lock();
            let dropped: u64 = packets.map(|p| q.push(p)).sum();
            (dropped, self.sleeping.load(Ordering::Relaxed))
        };
        if sleeping {
            self.ready.notify_one();
        }
        if dropped > 0 {
            self.dropped_full.fetch_add(dropped, Ordering::Relaxed);
            Some(DropReason::QueueFull)
        } else {
            None
        }
    }

    /// From now on packets go straight to `sink` on the pushing thread. Whatever is still
    /// queued goes first, so order holds across the switch. The caller must not hold a lock
    /// that `sink.deliver` takes.
    pub fn go_direct(&self, sink: Arc<dyn DirectSink>) {
        let mut direct = self.direct.write().unwrap_or_else(|p| p.into_inner());
        let mut queued = Vec::new();
        self.lock().drain_into(&mut queued);
        sink.deliver(&mut queued.into_iter());
        direct.0 = Some(sink);
    }

    /// Back to the queue and the output thread. Returns once no push is inside the sink.
    pub fn leave_direct(&self) {
        self.direct.write().unwrap_or_else(|p| p.into_inner()).0 = None;
    }

    /// Wakes the output thread early (a direct delivery failed).
    pub fn wake(&self) {
        self.ready.notify_one();
    }

    /// Takes every queued packet, waiting up to `timeout` for the first. Returns early, empty,
    /// once the slot is closed.
    pub fn take(&self, out: &mut Vec<Packet>, timeout: Duration) {
        let mut q = self.lock();
        if q.is_empty() && !self.closed.load(Ordering::Acquire) && !timeout.is_zero() {
            self.sleeping.store(true, Ordering::Relaxed);
            q = match self.ready.wait_timeout(q, timeout) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
            self.sleeping.store(false, Ordering::Relaxed);
        }
        q.drain_into(out);
    }

    /// Wakes the output thread for good: its route is stopping or the output was removed.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.ready.notify_all();
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    pub fn queued(&self) -> usize {
        self.lock().len()
    }

    pub fn dropped(&self, reason: DropReason) -> u64 {
        match reason {
            DropReason::OutputDown => self.dropped_down.load(Ordering::Relaxed),
            DropReason::QueueFull => self.dropped_full.load(Ordering::Relaxed),
            DropReason::SendBufferFull | DropReason::TimeBufferFull => 0,
        }
    }

    fn lock(&self) -> MutexGuard<'_, PacketQueue> {
        // A panic elsewhere while holding this lock leaves a queue of plain packets, still valid.
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Fans packets out to the attached outputs.
#[derive(Debug, Default)]
pub struct Pipe {
    outputs: RwLock<Vec<Arc<OutputSlot>>>,
}

impl Pipe {
    pub fn new() -> Self {
        Pipe::default()
    }

    pub fn attach(&self, slot: Arc<OutputSlot>) {
        self.write().push(slot);
    }

    /// Detaches an output by name and closes it so its thread can finish.
    pub fn detach(&self, name: &str) -> Option<Arc<OutputSlot>> {
        let mut outputs = self.write();
        let idx = outputs.iter().position(|s| s.name() == name)?;
        let slot = outputs.remove(idx);
        slot.close();
        Some(slot)
    }

    pub fn outputs(&self) -> Vec<Arc<OutputSlot>> {
        self.outputs
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Delivers a batch, in order, to every output (leaving `packets` empty): one lock and at
    /// most one wake-up per output for the whole batch. Payloads are reference counted, so N
    /// outputs cost N pointer copies, not N payload copies.
    pub fn push_all(&self, packets: &mut Vec<Packet>) {
        let outputs = self.outputs.read().unwrap_or_else(|p| p.into_inner());
        if let Some((last, rest)) = outputs.split_last() {
            for slot in rest {
                slot.offer_all(packets.iter().cloned());
            }
            last.offer_all(packets.drain(..));
        } else {
            packets.clear();
        }
    }

    pub fn close(&self) {
        for slot in self.outputs() {
            slot.close();
        }
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Vec<Arc<OutputSlot>>> {
        self.outputs.write().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::time::Instant;

    fn pkt(n: u8) -> Packet {
        Packet::new(Bytes::from(vec![n; 4]), 0, Instant::now())
    }

    fn drain(slot: &OutputSlot) -> Vec<u8> {
        let mut out = Vec::new();
        slot.take(&mut out, Duration::ZERO);
        out.iter().map(|p| p.payload[0]).collect()
    }

    #[test]
    fn every_up_output_gets_every_packet() {
        let pipe = Pipe::new();
        let a = OutputSlot::new("a", 16);
        let b = OutputSlot::new("b", 16);
        a.set_up(true);
        b.set_up(true);
        pipe.attach(a.clone());
        pipe.attach(b.clone());
        for n in 0..5 {
            pipe.push_all(&mut vec![pkt(n)]);
        }
        assert_eq!(drain(&a), vec![0, 1, 2, 3, 4]);
        assert_eq!(drain(&b), vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn a_down_output_drops_and_counts_without_touching_the_others() {
        let pipe = Pipe::new();
        let up = OutputSlot::new("up", 16);
        let down = OutputSlot::new("down", 16);
        up.set_up(true);
        pipe.attach(up.clone());
        pipe.attach(down.clone());
        for n in 0..7 {
            pipe.push_all(&mut vec![pkt(n)]);
        }
        assert_eq!(drain(&up).len(), 7);
        assert!(drain(&down).is_empty());
        assert_eq!(down.dropped(DropReason::OutputDown), 7);
        assert_eq!(up.dropped(DropReason::OutputDown), 0);
    }

    #[test]
    fn a_stalled_output_is_bounded_and_keeps_the_newest() {
        let pipe = Pipe::new();
        let fast = OutputSlot::new("fast", 4);
        let stalled = OutputSlot::new("stalled", 4);
        fast.set_up(true);
        stalled.set_up(true);
        pipe.attach(fast.clone());
        pipe.attach(stalled.clone());
        let mut fast_got = Vec::new();
        for n in 0..100 {
            pipe.push_all(&mut vec![pkt(n)]);
            fast_got.extend(drain(&fast));
        }
        assert_eq!(fast_got, (0..100).collect::<Vec<u8>>());
        assert_eq!(stalled.queued(), 4);
        assert_eq!(stalled.dropped(DropReason::QueueFull), 96);
        assert_eq!(drain(&stalled), vec![96, 97, 98, 99]);
    }

    #[test]
    fn a_batch_reaches_every_output_in_order_and_is_counted_like_single_packets() {
        let pipe = Pipe::new();
        let a = OutputSlot::new("a", 16);
        let small = OutputSlot::new("small", 3);
        let down = OutputSlot::new("down", 16);
        a.set_up(true);
        small.set_up(true);
        for s in [&a, &small, &down] {
            pipe.attach(s.clone());
        }
        let mut batch: Vec<Packet> = (0..5).map(pkt).collect();
        pipe.push_all(&mut batch);
        assert!(batch.is_empty());
        assert_eq!(drain(&a), vec![0, 1, 2, 3, 4]);
        assert_eq!(drain(&small), vec![2, 3, 4]);
        assert_eq!(small.dropped(DropReason::QueueFull), 2);
        assert_eq!(down.dropped(DropReason::OutputDown), 5);
        // Nothing attached: the batch is still consumed.
        let mut batch: Vec<Packet> = (0..2).map(pkt).collect();
        Pipe::new().push_all(&mut batch);
        assert!(batch.is_empty());
    }

    #[test]
    fn a_batch_wakes_a_waiting_output() {
        let slot = OutputSlot::new("o", 16);
        slot.set_up(true);
        let waiter = {
            let slot = slot.clone();
            std::thread::spawn(move || {
                let mut out = Vec::new();
                slot.take(&mut out, Duration::from_secs(30));
                out.len()
            })
        };
        std::thread::sleep(Duration::from_millis(20));
        slot.offer_all((0..3).map(pkt));
        assert_eq!(waiter.join().expect("waiter thread"), 3);
    }

    #[test]
    fn going_down_discards_the_queue_and_counts_it() {
        let slot = OutputSlot::new("o", 16);
        slot.set_up(true);
        slot.offer_all(std::iter::once(pkt(1)));
        slot.offer_all(std::iter::once(pkt(2)));
        slot.set_up(false);
        assert_eq!(slot.queued(), 0);
        assert_eq!(slot.dropped(DropReason::OutputDown), 2);
    }

    #[test]
    fn detach_closes_and_wakes_the_output() {
        let pipe = Pipe::new();
        let slot = OutputSlot::new("gone", 4);
        slot.set_up(true);
        pipe.attach(slot.clone());
        let waiter = {
            let slot = slot.clone();
            std::thread::spawn(move || {
                let mut out = Vec::new();
                while !slot.is_closed() {
                    slot.take(&mut out, Duration::from_secs(30));
                }
                out.len()
            })
        };
        std::thread::sleep(Duration::from_millis(20));
        assert!(pipe.detach("gone").is_some());
        assert_eq!(waiter.join().expect("waiter thread"), 0);
        pipe.push_all(&mut vec![pkt(1)]);
        assert!(pipe.outputs().is_empty());
    }

    /// Records what reaches it, on whatever thread pushes.
    #[derive(Default)]
    struct Recorder(Mutex<Vec<u8>>);

    impl DirectSink for Recorder {
        fn deliver(&self, packets: &mut dyn Iterator<Item = Packet>) {
            self.0.lock().unwrap().extend(packets.map(|p| p.payload[0]));
        }
    }

    #[test]
    fn a_direct_output_gets_the_queued_packets_first_then_the_rest_on_the_pushing_thread() {
        let pipe = Pipe::new();
        let slot = OutputSlot::new("direct", 16);
        slot.set_up(true);
        pipe.attach(slot.clone());
        pipe.push_all(&mut vec![pkt(0), pkt(1)]);
        let sink = Arc::new(Recorder::default());
        slot.go_direct(sink.clone());
        assert_eq!(slot.queued(), 0);
        pipe.push_all(&mut vec![pkt(2), pkt(3)]);
        assert_eq!(*sink.0.lock().unwrap(), vec![0, 1, 2, 3]);
        assert_eq!(slot.queued(), 0, "nothing queued while direct");

        slot.leave_direct();
        pipe.push_all(&mut vec![pkt(4)]);
        assert_eq!(
            sink.0.lock().unwrap().len(),
            4,
            "the sink gets nothing once left"
        );
        assert_eq!(drain(&slot), vec![4]);

        // Down means dropped and counted, direct or not.
        slot.go_direct(sink.clone());
        slot.set_up(false);
        pipe.push_all(&mut vec![pkt(5)]);
        assert_eq!(sink.0.lock().unwrap().len(), 4);
        assert_eq!(slot.dropped(DropReason::OutputDown), 1);
    }
}
