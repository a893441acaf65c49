//! Turns link events into logs, the peers gauge and the reconnect counter, the same way for
//! inputs and outputs.

use super::status::LinkStatus;
use crate::common::events::EventKind;
use crate::common::metrics::LinkMetrics;
use crate::relay::link::LinkEvent;

#[derive(Debug, Default)]
pub struct PeerTracker {
    peers: usize,
    /// Once a side has had a peer, losing all peers and getting one back is a reconnection.
    ever_connected: bool,
    events: Vec<LinkEvent>,
}

impl PeerTracker {
    pub fn events(&mut self) -> &mut Vec<LinkEvent> {
        &mut self.events
    }

    pub fn apply(&mut self, metrics: &LinkMetrics, status: &LinkStatus) {
        for event in self.events.drain(..) {
            match event {
                LinkEvent::Connected { peer } => {
                    let reconnect = self.peers == 0 && self.ever_connected;
                    self.peers += 1;
                    self.ever_connected = true;
                    if reconnect {
                        metrics.reconnects.inc();
                        status.mark_reconnect();
                    }
                    tracing::info!(peer = %peer, reconnect, peers = self.peers, "peer connected");
                    let peers = self.peers;
                    metrics.event(EventKind::PeerConnected, |e| {
                        e.peer = Some(peer.to_string());
                        e.reconnect = Some(reconnect);
                        e.peers = Some(peers);
                    });
                }
                LinkEvent::Disconnected { peer, reason } => {
                    self.peers = self.peers.saturating_sub(1);
                    let reason = crate::common::redact::scrub(&reason);
                    tracing::warn!(peer = %peer, reason = %reason, peers = self.peers, "peer disconnected");
                    let peers = self.peers;
                    metrics.event(EventKind::PeerDisconnected, |e| {
                        e.peer = Some(peer.to_string());
                        e.reason = Some(reason.to_string());
                        e.peers = Some(peers);
                    });
                }
            }
        }
        metrics.peers.set(self.peers as i64);
        status.set_peers(self.peers);
    }
}
