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
