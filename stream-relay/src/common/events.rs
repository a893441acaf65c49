//! The event bus of the monitoring feed (`GET /ws`): peers coming and going, reconnect
//! attempts, drop incidents, configuration reloads. Route threads are plain threads and the
//! control plane is synchronous, so publishing never blocks and never awaits: a
//! `tokio::sync::broadcast` send takes a short internal lock and overwrites the oldest event
//! when a subscriber is behind (that subscriber is then told how many it missed).
//!
//! Events are serialised once, at publication, and shared (`Arc<str>`) by every subscriber.
//! With no subscriber, publishing costs an atomic load.

use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::broadcast;

/// Version of the feed's message format (`docs/ws-schema.json`, field `v`).
pub const FEED_VERSION: u32 = 1;

/// Events kept for a subscriber that is behind; beyond that it is told what it missed.
const CAPACITY: usize = 1024;

/// What happened. Serialised as `"event": "peer_connected"` etc.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    PeerConnected,
    PeerDisconnected,
    ReconnectAttemptFailed,
    LinkFailed,
    OutputDropping,
    OutputStoppedDropping,
    ConfigReloaded,
    ConfigRejected,
    /// SRT callers refused, summarised like the log: at most one per reason every 10 s.
    CallerRefused,
}

/// One event as sent on the feed. Everything in it is already safe to show: URIs and errors
/// go through the redaction helpers before they get here.
#[derive(Clone, Debug, Serialize)]
pub struct Event {
    pub event: EventKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// `input` or `output`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub side: Option<&'static str>,
    /// The output's name (absent on the input side).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    /// `peer_connected`: this connection follows a loss (counted in `relay_reconnects_total`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reconnect: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peers: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_in_ms: Option<u64>,
    /// Drop incidents: the drop reasons seen (`output_down`, `queue_full`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasons: Option<Vec<&'static str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub packets: Option<u64>,
    /// Reloads: what changed (as in the `config_reloaded` log line), or the errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changes: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<String>>,
    /// `caller_refused` on a shared listener: which one, and the stream asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    /// `caller_refused`: refusals for this reason since the previous event about it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
}

impl Event {
    pub fn new(event: EventKind) -> Event {
        Event {
            event,
            route: None,
            side: None,
            output: None,
            peer: None,
            reconnect: None,
            peers: None,
            reason: None,
            attempt: None,
            retry_in_ms: None,
            reasons: None,
            packets: None,
            changes: None,
            errors: None,
            server: None,
            stream: None,
            count: None,
        }
    }

    /// The event about one side of one route (labels as in `/metrics`: empty output = input).
    pub fn link(event: EventKind, route: &str, output: &str) -> Event {
        let mut e = Event::new(event);
        e.route = Some(route.to_owned());
        if output.is_empty() {
            e.side = Some("input");
        } else {
            e.side = Some("output");
            e.output = Some(output.to_owned());
        }
        e
    }
}

#[derive(Serialize)]
struct Envelope<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    v: u32,
    seq: u64,
    time_ms: u64,
    #[serde(flatten)]
    event: &'a Event,
}

/// An event as subscribers get it: its kind, to act on, and its JSON, to forward.
pub type Published = (EventKind, Arc<str>);

/// Cheap to clone: every clone publishes into the same channel.
#[derive(Clone, Debug)]
pub struct EventBus {
    tx: broadcast::Sender<Published>,
    seq: Arc<AtomicU64>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}

impl EventBus {
    pub fn new() -> EventBus {
        EventBus {
            tx: broadcast::channel(CAPACITY).0,
            seq: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Never blocks; callable from any thread.
    pub fn publish(&self, event: Event) {
        if self.tx.receiver_count() == 0 {
            return;
        }
        let envelope = Envelope {
            kind: "event",
            v: FEED_VERSION,
            seq: self.seq.fetch_add(1, Ordering::Relaxed) + 1,
            time_ms: unix_ms(),
            event: &event,
        };
        match serde_json::to_string(&envelope) {
            // An error only means every subscriber left meanwhile.
            Ok(json) => {
                let _ = self.tx.send((event.event, json.into()));
            }
            Err(e) => tracing::error!(error = %e, "cannot serialise a feed event"),
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Published> {
        self.tx.subscribe()
    }
}

/// Wall-clock milliseconds since the Unix epoch (0 if the clock is before 1970).
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_reach_subscribers_in_order_and_lag_is_reported() {
        let bus = EventBus::new();
        // Nobody listens: nothing is kept.
        bus.publish(Event::new(EventKind::ConfigReloaded));
        let mut rx = bus.subscribe();
        bus.publish(Event::link(EventKind::PeerConnected, "cam1", ""));
        bus.publish(Event::link(EventKind::PeerDisconnected, "cam1", "studio"));
        let a: serde_json::Value = serde_json::from_str(&rx.try_recv().unwrap().1).unwrap();
        let (kind, b) = rx.try_recv().unwrap();
        assert_eq!(kind, EventKind::PeerDisconnected);
        let b: serde_json::Value = serde_json::from_str(&b).unwrap();
        assert_eq!(a["type"], "event");
        assert_eq!(a["event"], "peer_connected");
        assert_eq!(a["side"], "input");
        assert!(a.get("output").is_none());
        assert_eq!(b["output"], "studio");
        assert!(b["seq"].as_u64() > a["seq"].as_u64());
        for _ in 0..CAPACITY + 10 {
            bus.publish(Event::new(EventKind::ConfigReloaded));
        }
        assert!(matches!(
            rx.try_recv(),
            Err(broadcast::error::TryRecvError::Lagged(10))
        ));
    }
}
