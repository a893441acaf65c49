//! The traits a transport implements. A route's threads drive them; they never block longer
//! than the timeout they are given, so a route always notices it should stop.

use super::Packet;
use std::time::Duration;

/// Something that happened to a link's peers, reported to the route for logs and metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkEvent {
    Connected { peer: String },
    Disconnected { peer: String, reason: String },
}

/// Statistics from the transport library. Counters are deltas since the previous call.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LinkStats {
    pub rtt_ms: Option<f64>,
    /// Packets given up for good (not recovered in time).
    pub lost: u64,
    /// Gaps seen on the wire, most of them later recovered.
    pub loss_detected: u64,
    /// Retransmissions received (input) or sent (output).
    pub retransmitted: u64,
    /// Packets the library could not decrypt (wrong passphrase on one side).
    pub undecrypted: u64,
    /// How much the library holds, in milliseconds of stream.
    pub buffer_ms: Option<f64>,
    /// Negotiated protocol latency.
    pub latency_ms: Option<f64>,
    /// Packets that arrived out of order.
    pub reordered: u64,
    /// The library's own link quality figure, percent.
    pub quality_pct: Option<f64>,
}

impl LinkStats {
    /// Adds another peer's figures (listener outputs have several).
    pub fn merge(&mut self, other: LinkStats) {
        self.lost += other.lost;
        self.loss_detected += other.loss_detected;
        self.retransmitted += other.retransmitted;
        self.undecrypted += other.undecrypted;
        self.reordered += other.reordered;
        self.quality_pct = match (self.quality_pct, other.quality_pct) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.rtt_ms = max_opt(self.rtt_ms, other.rtt_ms);
        self.buffer_ms = max_opt(self.buffer_ms, other.buffer_ms);
        self.latency_ms = max_opt(self.latency_ms, other.latency_ms);
    }
}

fn max_opt(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// The link can never work as configured (bad address, port taken): the route fails.
    #[error("{0}")]
    Fatal(String),
    /// A connection attempt failed; retry after backoff.
    #[error("{0}")]
    Connect(String),
    /// The established connection is gone.
    #[error("{0}")]
    Lost(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendOutcome {
    /// Accepted by at least one peer's library.
    Sent,
    /// Every peer's library refused it for lack of buffer room; counted as dropped.
    Dropped,
}

/// The receiving side of a route.
pub trait InputLink: Send {
    /// Waits up to `timeout` for a sender: a listener accepts, a caller connects. Returns true
    /// once connected.
    fn connect(&mut self, timeout: Duration) -> Result<bool, LinkError>;
    fn is_connected(&self) -> bool;
    /// Appends what has arrived to `out`, waiting up to `timeout` for the first packet.
    fn recv(&mut self, out: &mut Vec<Packet>, timeout: Duration) -> Result<(), LinkError>;
    /// Drops the current connection (idle, lost); a listener keeps listening.
    fn disconnect(&mut self, reason: &str);
    fn stats(&mut self) -> LinkStats;
    /// True when failed connection attempts should back off (we call out), false when waiting
    /// is passive (we listen).
    fn backs_off(&self) -> bool;
    fn drain_events(&mut self, out: &mut Vec<LinkEvent>);
}

/// The sending side: one destination, which may serve several peers (a listener output).
pub trait OutputLink: Send {
    /// Waits up to `timeout` for a peer. Returns true once at least one is connected.
    fn connect(&mut self, timeout: Duration) -> Result<bool, LinkError>;
    fn peers(&self) -> usize;
    /// Housekeeping between packets: accept new peers, notice dead ones. Fails when the last
    /// peer is gone.
    fn service(&mut self) -> Result<(), LinkError>;
    fn send(&mut self, packet: &Packet) -> Result<SendOutcome, LinkError>;
    fn disconnect(&mut self, reason: &str);
    fn stats(&mut self) -> LinkStats;
    fn backs_off(&self) -> bool;
    fn drain_events(&mut self, out: &mut Vec<LinkEvent>);
    /// True when `send` only hands the packet to the library's own sending thread and never
    /// blocks or fails for a slow peer, so the input's thread may call it (see
    /// [`crate::relay::pipe::DirectSink`]).
    fn sends_without_blocking(&self) -> bool {
        false
    }
}

/// A parsed endpoint of some transport (SRT, RIST, UDP) that can open either side of a route.
pub trait TransportRelay: Send + Sync + std::fmt::Display {
    fn transport(&self) -> &'static str;
    /// Opens the input side: binds a listener at once (so a busy port fails at start), or
    /// prepares to call out.
    fn open_input(&self) -> Result<Box<dyn InputLink>, LinkError>;
    fn open_output(&self) -> Result<Box<dyn OutputLink>, LinkError>;
    /// The local UDP ports (with their address, empty for all) this endpoint binds when used
    /// as an input (`as_input`) or an output, so a configuration can be checked for two
    /// routes wanting the same port before anything starts.
    fn binds(&self, as_input: bool) -> Vec<(String, u16)> {
        let _ = as_input;
        Vec::new()
    }
    /// The name publishers give for this input in their Stream ID (a shared SRT listener's
    /// stream), if it is one.
    fn published_stream(&self) -> Option<String> {
        None
    }
}

/// Whether two bound addresses collide: same port, and the same address or either one all
/// addresses.
pub fn binds_collide(a: &(String, u16), b: &(String, u16)) -> bool {
    let any = |h: &str| h.is_empty() || h == "0.0.0.0" || h == "::";
    a.1 == b.1 && (a.0 == b.0 || any(&a.0) || any(&b.0))
}
