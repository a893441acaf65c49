//! Timed delivery queue: a binary heap of `(due, seq)` entries drained by one
//! thread that sleeps on a condvar until the earliest deadline.
//!
//! The sequence number breaks ties so that items with equal deadlines (e.g. a
//! fixed delay and a coarse clock) leave in the order they were queued; only an
//! earlier deadline can overtake, which is exactly what jitter and reordering
//! are meant to produce.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

struct Entry<T> {
    due: Instant,
    seq: u64,
    item: T,
}

impl<T> PartialEq for Entry<T> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl<T> Eq for Entry<T> {}

impl<T> PartialOrd for Entry<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<T> Ord for Entry<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.due, self.seq).cmp(&(other.due, other.seq))
    }
}

struct State<T> {
    heap: BinaryHeap<Reverse<Entry<T>>>,
    next_seq: u64,
    // Kept under the mutex (not a separate atomic) so a shutdown cannot slip
    // in between the runner's check and its wait and go unnoticed.
    stopping: bool,
}

/// A deadline queue shared between producers and one [`Scheduler::run`] loop.
pub(crate) struct Scheduler<T> {
    state: Mutex<State<T>>,
    wake: Condvar,
}

impl<T> Scheduler<T> {
    pub fn new() -> Self {
        Self {
            state: Mutex::new(State {
                heap: BinaryHeap::new(),
                next_seq: 0,
                stopping: false,
            }),
            wake: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // A panic in a deliver callback must not wedge every other thread.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `item` for delivery at `due`. Returns `false` (dropping the
    /// item) once shutdown has begun.
    pub fn push(&self, due: Instant, item: T) -> bool {
        let mut st = self.lock();
        if st.stopping {
            return false;
        }
        let seq = st.next_seq;
        st.next_seq += 1;
        st.heap.push(Reverse(Entry { due, seq, item }));
        // Only a new earliest deadline shortens the runner's sleep; anything
        // later will be seen when it wakes for the current head anyway.
        let is_head = st.heap.peek().is_some_and(|Reverse(e)| e.seq == seq);
        drop(st);
        if is_head {
            self.wake.notify_one();
        }
        true
    }

    /// Number of queued items.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lock().heap.len()
    }

    /// Delivers items as they fall due until [`Scheduler::shutdown`]. Items
    /// still queued at shutdown are discarded: a stopped proxy is a cut cable.
    pub fn run(&self, mut deliver: impl FnMut(T)) {
        let mut batch = Vec::new();
        let mut st = self.lock();
        loop {
            if st.stopping {
                return;
            }
            let now = Instant::now();
            while st.heap.peek().is_some_and(|Reverse(e)| e.due <= now) {
                if let Some(Reverse(e)) = st.heap.pop() {
                    batch.push(e.item);
                }
            }
            if !batch.is_empty() {
                // Send without the lock so producers are never blocked
                // behind socket calls.
                drop(st);
                for item in batch.drain(..) {
                    deliver(item);
                }
                st = self.lock();
                continue;
            }
            let next_due = st.heap.peek().map(|Reverse(e)| e.due);
            st = match next_due {
                None => self.wake.wait(st).unwrap_or_else(PoisonError::into_inner),
                Some(due) => {
                    self.wake
                        .wait_timeout(st, due.saturating_duration_since(now))
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
            };
        }
    }

    /// Makes [`Scheduler::run`] return promptly and rejects further pushes.
    pub fn shutdown(&self) {
        let mut st = self.lock();
        st.stopping = true;
        st.heap.clear();
        drop(st);
        self.wake.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::thread;
    use std::time::Duration;

    #[test]
    fn orders_by_due_then_fifo() {
        let s = Arc::new(Scheduler::new());
        let t0 = Instant::now() + Duration::from_millis(20);
        // Pushed out of order; equal deadlines must keep push order.
        s.push(t0 + Duration::from_millis(2), 3);
        s.push(t0, 0);
        s.push(t0 + Duration::from_millis(1), 1);
        s.push(t0 + Duration::from_millis(1), 2);
        s.push(t0 + Duration::from_millis(2), 4);
        assert_eq!(s.len(), 5);
        let (tx, rx) = std::sync::mpsc::channel();
        let runner = {
            let s = Arc::clone(&s);
            thread::spawn(move || s.run(|v| tx.send(v).unwrap()))
        };
        let got: Vec<i32> = (0..5)
            .map(|_| rx.recv_timeout(Duration::from_secs(5)).unwrap())
            .collect();
        assert_eq!(got, vec![0, 1, 2, 3, 4]);
        s.shutdown();
        runner.join().unwrap();
        assert!(!s.push(Instant::now(), 9));
    }

    #[test]
    fn delivers_on_time() {
        let s = Arc::new(Scheduler::new());
        let (tx, rx) = std::sync::mpsc::channel();
        let runner = {
            let s = Arc::clone(&s);
            thread::spawn(move || s.run(|due: Instant| tx.send((due, Instant::now())).unwrap()))
        };
        let start = Instant::now();
        for ms in [15u64, 5, 10] {
            s.push(
                start + Duration::from_millis(ms),
                start + Duration::from_millis(ms),
            );
        }
        for _ in 0..3 {
            let (due, at) = rx.recv_timeout(Duration::from_secs(5)).unwrap();
            assert!(at >= due);
            // Generous: this checks the wake-up logic, not machine load.
            assert!(
                at - due < Duration::from_millis(30),
                "late by {:?}",
                at - due
            );
        }
        s.shutdown();
        runner.join().unwrap();
    }

    #[test]
    fn shutdown_wakes_idle_and_waiting_runner() {
        for far in [None, Some(Duration::from_secs(3600))] {
            let s = Arc::new(Scheduler::<()>::new());
            if let Some(d) = far {
                s.push(Instant::now() + d, ());
            }
            let runner = {
                let s = Arc::clone(&s);
                thread::spawn(move || s.run(|()| {}))
            };
            thread::sleep(Duration::from_millis(10));
            let t = Instant::now();
            s.shutdown();
            runner.join().unwrap();
            assert!(t.elapsed() < Duration::from_secs(1));
        }
    }
}
