//! Which sender an input listens to when several reach the same port. Mixing two streams
//! packet by packet would corrupt both, so an input keeps the sender it has; another takes
//! over only once the current one has been silent for a while (a restarted encoder comes back
//! from a new address or flow id, and must not wait for a timeout).

use std::time::{Duration, Instant};

#[derive(Debug, PartialEq, Eq)]
pub enum Verdict<K> {
    /// From the current sender.
    Current,
    /// The first sender.
    First,
    /// A new sender replaced a silent one (the old key is given back).
    Replaced(K),
    /// Another sender while the current one is alive: drop the packet.
    Ignored,
}

#[derive(Debug)]
pub struct SourceLock<K> {
    current: Option<K>,
    last: Option<Instant>,
    takeover_after: Duration,
    ignored: u64,
}

impl<K: PartialEq + Clone> SourceLock<K> {
    pub fn new(takeover_after: Duration) -> Self {
        SourceLock {
            current: None,
            last: None,
            takeover_after,
            ignored: 0,
        }
    }

    pub fn offer(&mut self, key: &K, now: Instant) -> Verdict<K> {
        let verdict = match &self.current {
            None => Verdict::First,
            Some(c) if c == key => Verdict::Current,
            Some(c) => {
                let silent = self
                    .last
                    .map_or(Duration::MAX, |t| now.saturating_duration_since(t));
                if silent < self.takeover_after {
                    self.ignored += 1;
                    return Verdict::Ignored;
                }
                Verdict::Replaced(c.clone())
            }
        };
        self.current = Some(key.clone());
        self.last = Some(now);
        verdict
    }

    /// Forgets the current sender (it timed out or the route disconnected it).
    pub fn reset(&mut self) {
        self.current = None;
        self.last = None;
    }

    pub fn current(&self) -> Option<&K> {
        self.current.as_ref()
    }

    /// Packets dropped so far because another sender held the input.
    pub fn ignored(&self) -> u64 {
        self.ignored
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_live_sender_and_hands_over_after_silence() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut lock = SourceLock::new(Duration::from_millis(300));
        assert_eq!(lock.offer(&"a", ms(0)), Verdict::First);
        assert_eq!(lock.offer(&"a", ms(10)), Verdict::Current);
        assert_eq!(lock.offer(&"b", ms(100)), Verdict::Ignored);
        assert_eq!(lock.offer(&"a", ms(200)), Verdict::Current);
        assert_eq!(lock.offer(&"b", ms(400)), Verdict::Ignored);
        assert_eq!(lock.offer(&"b", ms(600)), Verdict::Replaced("a"));
        assert_eq!(lock.current(), Some(&"b"));
        assert_eq!(lock.ignored(), 2);
        lock.reset();
        assert_eq!(lock.offer(&"c", ms(601)), Verdict::First);
    }
}

/// What connectionless inputs (RIST flows, UDP senders) share: which sender holds the input,
/// the packets read while waiting to be "connected", and the events for the route.
#[derive(Debug)]
pub struct Senders<K> {
    lock: SourceLock<K>,
    connected: bool,
    pending: Vec<crate::relay::Packet>,
    events: Vec<crate::relay::link::LinkEvent>,
    label: fn(&K) -> String,
}

impl<K: PartialEq + Clone> Senders<K> {
    pub fn new(takeover_after: Duration, label: fn(&K) -> String) -> Self {
        Senders {
            lock: SourceLock::new(takeover_after),
            connected: false,
            pending: Vec::new(),
            events: Vec::new(),
            label,
        }
    }

    /// Whether a packet from `key` is relayed; reports new and replaced senders as events.
    pub fn admit(&mut self, key: &K, now: Instant) -> bool {
        use crate::relay::link::LinkEvent;
        match self.lock.offer(key, now) {
            Verdict::Current => {}
            Verdict::First => self.events.push(LinkEvent::Connected {
                peer: (self.label)(key),
            }),
            Verdict::Replaced(old) => {
                self.events.push(LinkEvent::Disconnected {
                    peer: (self.label)(&old),
                    reason: format!("replaced by {}", (self.label)(key)),
                });
                self.events.push(LinkEvent::Connected {
                    peer: (self.label)(key),
                });
            }
            Verdict::Ignored => {
                let n = self.lock.ignored();
                if n == 1 || n.is_multiple_of(1000) {
                    tracing::warn!(sender = %(self.label)(key), dropped = n, "a second sender while the current one is alive; ignoring it");
                }
                return false;
            }
        }
        self.connected = true;
        true
    }

    /// `InputLink::connect` for a connectionless input: reads (through `read`, which calls
    /// `admit`) and is connected once a sender's packet is kept; those packets wait for `recv`.
    pub fn connect(
        &mut self,
        read: impl FnOnce(
            &mut Self,
            &mut Vec<crate::relay::Packet>,
        ) -> Result<(), crate::relay::LinkError>,
    ) -> Result<bool, crate::relay::LinkError> {
        let mut got = std::mem::take(&mut self.pending);
        let result = read(self, &mut got);
        self.pending = got;
        result?;
        Ok(self.connected)
    }

    /// `InputLink::recv`: what `connect` kept, then what `read` brings (without waiting if
    /// something was kept).
    pub fn recv(
        &mut self,
        out: &mut Vec<crate::relay::Packet>,
        timeout: Duration,
        read: impl FnOnce(
            &mut Self,
            &mut Vec<crate::relay::Packet>,
            Duration,
        ) -> Result<(), crate::relay::LinkError>,
    ) -> Result<(), crate::relay::LinkError> {
        let had = !self.pending.is_empty();
        out.append(&mut self.pending);
        read(self, out, if had { Duration::ZERO } else { timeout })
    }

    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// The sender is gone (idle, lost): the next one to send becomes current.
    pub fn disconnect(&mut self, reason: &str) {
        if self.connected {
            if let Some(current) = self.lock.current() {
                self.events
                    .push(crate::relay::link::LinkEvent::Disconnected {
                        peer: (self.label)(current),
                        reason: reason.to_owned(),
                    });
            }
        }
        self.connected = false;
        self.lock.reset();
        self.pending.clear();
    }

    pub fn drain_events(&mut self, out: &mut Vec<crate::relay::link::LinkEvent>) {
        out.append(&mut self.events);
    }
}
