//! Traffic counters: the live atomics shared with the proxy threads and the
//! plain snapshots handed to callers.

use std::sync::atomic::{AtomicU64, Ordering};

/// Live counters for one direction. Relaxed ordering is enough: each counter
/// is independent and readers only need eventually-current values.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub received: AtomicU64,
    pub dropped: AtomicU64,
    pub duplicated: AtomicU64,
    pub reordered: AtomicU64,
    pub forwarded: AtomicU64,
}

impl Counters {
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> DirectionStats {
        DirectionStats {
            received: self.received.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            duplicated: self.duplicated.load(Ordering::Relaxed),
            reordered: self.reordered.load(Ordering::Relaxed),
            forwarded: self.forwarded.load(Ordering::Relaxed),
        }
    }
}

/// Counters for one direction at one point in time.
///
/// Once the proxy is idle, `forwarded == received - dropped + duplicated`
/// unless a send failed (e.g. the destination's port was closed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DirectionStats {
    /// Datagrams read from the sending side.
    pub received: u64,
    /// Datagrams discarded by the loss impairment.
    pub dropped: u64,
    /// Extra copies created by the duplicate impairment.
    pub duplicated: u64,
    /// Copies held back by the reorder impairment.
    pub reordered: u64,
    /// Datagrams (copies included) successfully sent on.
    pub forwarded: u64,
}

impl DirectionStats {
    /// Datagrams accepted (not dropped) and not yet sent: those still waiting
    /// in the delay queue, plus any whose send failed.
    pub fn in_flight(&self) -> u64 {
        (self.received + self.duplicated).saturating_sub(self.dropped + self.forwarded)
    }

    /// Compact single-line JSON object.
    pub fn to_json(&self) -> String {
        format!(
            "{{\"received\":{},\"dropped\":{},\"duplicated\":{},\"reordered\":{},\"forwarded\":{}}}",
            self.received, self.dropped, self.duplicated, self.reordered, self.forwarded
        )
    }
}

/// Snapshot of a whole proxy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProxyStats {
    /// Client -> upstream.
    pub forward: DirectionStats,
    /// Upstream -> client.
    pub backward: DirectionStats,
    /// Distinct client addresses seen so far (each has its own upstream socket).
    pub clients: u64,
}

impl ProxyStats {
    /// Compact single-line JSON object, suitable for line-oriented logs.
    pub fn to_json(&self) -> String {
        format!(
            "{{\"clients\":{},\"forward\":{},\"backward\":{}}}",
            self.clients,
            self.forward.to_json(),
            self.backward.to_json()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_shape() {
        let s = ProxyStats {
            forward: DirectionStats {
                received: 10,
                dropped: 1,
                duplicated: 2,
                reordered: 3,
                forwarded: 11,
            },
            backward: DirectionStats::default(),
            clients: 1,
        };
        assert_eq!(
            s.to_json(),
            "{\"clients\":1,\"forward\":{\"received\":10,\"dropped\":1,\"duplicated\":2,\
             \"reordered\":3,\"forwarded\":11},\"backward\":{\"received\":0,\"dropped\":0,\
             \"duplicated\":0,\"reordered\":0,\"forwarded\":0}}"
        );
        assert_eq!(s.forward.in_flight(), 0);
    }
}
