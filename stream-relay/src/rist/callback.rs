//! What librist's status and statistics callbacks report, collected for the route thread.
//! librist calls these from its own threads, with a library lock held: they copy what they
//! need under a short mutex and return. Stats arrive as per-interval values; totals are summed
//! here.
#![allow(unsafe_code)]

use crate::common::metrics::CALLBACK_PANICS;
use rist_sys as sys;
use std::ffi::{c_int, c_void};
use std::sync::atomic::Ordering;
use std::sync::Mutex;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerStatus {
    /// A peer we called answered.
    Established,
    TimedOut,
    /// A peer called us (we listen).
    ClientConnected,
    ClientTimedOut,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatusEvent {
    /// librist's peer pointer, as an identity only (never dereferenced).
    pub peer: usize,
    pub status: PeerStatus,
}

/// Receiver flow statistics summed over the intervals since the last `take`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ReceiverTotals {
    pub intervals: u32,
    pub received: u64,
    pub missing: u64,
    pub reordered: u64,
    pub recovered: u64,
    pub lost: u64,
    /// Intervals whose `lost` figure was impossible and ignored.
    pub implausible_lost: u32,
    /// Latest values, not sums.
    pub rtt_ms: Option<f64>,
    pub quality: Option<f64>,
    pub peer_count: u32,
    pub flow_id: u32,
}

/// Sender peer statistics summed over the intervals since the last `take`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SenderTotals {
    pub intervals: u32,
    pub sent: u64,
    /// RTCP packets the peer sent back: proof that someone is listening.
    pub received: u64,
    pub retransmitted: u64,
    pub rtt_ms: Option<f64>,
    pub quality: Option<f64>,
}

pub struct Shared {
    /// To free the statistics librist hands over.
    lib: &'static sys::Rist,
    events: Mutex<Vec<StatusEvent>>,
    receiver: Mutex<ReceiverTotals>,
    sender: Mutex<SenderTotals>,
    /// When a sender peer last heard from its receiver (RTCP in a stats interval).
    feedback: Mutex<Option<std::time::Instant>>,
}

impl Shared {
    pub fn new(lib: &'static sys::Rist) -> Shared {
        Shared {
            lib,
            events: Mutex::default(),
            receiver: Mutex::default(),
            sender: Mutex::default(),
            feedback: Mutex::default(),
        }
    }

    pub fn drain_events(&self, out: &mut Vec<StatusEvent>) {
        out.append(&mut self.events.lock().unwrap_or_else(|p| p.into_inner()));
    }

    pub fn take_receiver(&self) -> ReceiverTotals {
        std::mem::take(&mut *self.receiver.lock().unwrap_or_else(|p| p.into_inner()))
    }

    pub fn last_feedback(&self) -> Option<std::time::Instant> {
        *self.feedback.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn take_sender(&self) -> SenderTotals {
        std::mem::take(&mut *self.sender.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// `connection_status_callback_t`; `arg` is the `Shared` of the context.
pub(super) unsafe extern "C" fn status(
    arg: *mut c_void,
    peer: *mut sys::rist_peer,
    status: sys::rist_connection_status,
) {
    if arg.is_null() {
        return;
    }
    // SAFETY: arg is the Arc<Shared> pointer the context registered; the context keeps that
    // Arc alive until after rist_destroy has returned, so no callback can outlive it.
    let shared = unsafe { &*(arg as *const Shared) };
    let status = match status {
        sys::RIST_CONNECTION_ESTABLISHED => PeerStatus::Established,
        sys::RIST_CONNECTION_TIMED_OUT => PeerStatus::TimedOut,
        sys::RIST_CLIENT_CONNECTED => PeerStatus::ClientConnected,
        sys::RIST_CLIENT_TIMED_OUT => PeerStatus::ClientTimedOut,
        _ => return,
    };
    let event = StatusEvent {
        peer: peer as usize,
        status,
    };
    let ok = std::panic::catch_unwind(|| {
        shared
            .events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(event);
    });
    if ok.is_err() {
        CALLBACK_PANICS.fetch_add(1, Ordering::Relaxed);
    }
}

/// The statistics callback; `arg` is the `Shared` of the context.
pub(super) unsafe extern "C" fn stats(arg: *mut c_void, stats: *const sys::rist_stats) -> c_int {
    if stats.is_null() || arg.is_null() {
        return 0;
    }
    // SAFETY: as in `status`: the context outlives every callback it registered.
    let shared = unsafe { &*(arg as *const Shared) };
    // SAFETY: librist passes a valid stats container for the duration of the call; the union
    // member read is the one stats_type names.
    let copied = unsafe {
        match (*stats).stats_type {
            sys::RIST_STATS_RECEIVER_FLOW => Copied::Receiver((*stats).stats.receiver_flow),
            sys::RIST_STATS_SENDER_PEER => Copied::Sender((*stats).stats.sender_peer),
            _ => Copied::Nothing,
        }
    };
    if std::panic::catch_unwind(|| accumulate(shared, &copied)).is_err() {
        CALLBACK_PANICS.fetch_add(1, Ordering::Relaxed);
    }
    // SAFETY: the container is ours to free, once, and is not used after.
    unsafe {
        shared.lib.rist_stats_free(stats);
    }
    0
}

enum Copied {
    Receiver(sys::rist_stats_receiver_flow),
    Sender(sys::rist_stats_sender_peer),
    Nothing,
}

fn accumulate(shared: &Shared, copied: &Copied) {
    match copied {
        Copied::Receiver(r) => {
            let mut t = shared.receiver.lock().unwrap_or_else(|p| p.into_inner());
            t.intervals += 1;
            t.received += r.received;
            t.missing += u64::from(r.missing);
            t.reordered += u64::from(r.reordered);
            t.recovered += u64::from(r.recovered);
            // 0.2.7 sometimes reports a 16-bit wrap (65535) as the interval's losses; no more
            // can be lost in an interval than went missing or arrived in it.
            if u64::from(r.lost) <= r.received + u64::from(r.missing) {
                t.lost += u64::from(r.lost);
            } else {
                t.implausible_lost += 1;
            }
            if r.rtt > 0 {
                t.rtt_ms = Some(f64::from(r.rtt));
            }
            t.quality = Some(r.quality);
            t.peer_count = r.peer_count;
            t.flow_id = r.flow_id;
        }
        Copied::Sender(s) => {
            let mut t = shared.sender.lock().unwrap_or_else(|p| p.into_inner());
            t.intervals += 1;
            t.sent += s.sent;
            t.received += s.received;
            t.retransmitted += s.retransmitted;
            if s.rtt > 0 {
                t.rtt_ms = Some(f64::from(s.rtt));
            }
            t.quality = Some(s.quality);
            if s.received > 0 {
                *shared.feedback.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some(std::time::Instant::now());
            }
        }
        Copied::Nothing => {}
    }
}
