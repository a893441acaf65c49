//! What `/health` shows about a route: state and peers of each side, readable from any thread.

use serde::Serialize;
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Mutex;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkState {
    /// Listening, or waiting before the next connection attempt.
    Waiting,
    Connecting,
    /// Connecting again after having been connected.
    Reconnecting,
    Connected,
    /// Connected, but no data for a while (an input whose sender went silent).
    Idle,
    Failed,
    Stopped,
}

impl LinkState {
    fn from_u8(v: u8) -> LinkState {
        match v {
            0 => LinkState::Waiting,
            1 => LinkState::Connecting,
            2 => LinkState::Connected,
            3 => LinkState::Failed,
            5 => LinkState::Reconnecting,
            6 => LinkState::Idle,
            _ => LinkState::Stopped,
        }
    }

    fn as_u8(self) -> u8 {
        match self {
            LinkState::Waiting => 0,
            LinkState::Connecting => 1,
            LinkState::Connected => 2,
            LinkState::Failed => 3,
            LinkState::Stopped => 4,
            LinkState::Reconnecting => 5,
            LinkState::Idle => 6,
        }
    }
}

#[derive(Debug)]
pub struct LinkStatus {
    pub name: String,
    /// Redacted: safe to show anywhere.
    pub uri: String,
    pub transport: &'static str,
    /// Outputs: their time buffer.
    pub time_buffer_ms: Option<u64>,
    state: AtomicU8,
    ever_connected: std::sync::atomic::AtomicBool,
    peers: AtomicUsize,
    /// Wall-clock ms of the last reconnection (0: none yet), for the monitoring feed.
    last_reconnect_ms: AtomicU64,
    /// Wall-clock ms of the current connection's start (0: not connected).
    connected_at_ms: AtomicU64,
    error: Mutex<Option<String>>,
    /// Outputs: transit through the relay over the last seconds, p50 and p99, in seconds as
    /// f64 bits; NO_FIGURE when no packet went through in that window.
    transit_p50: AtomicU64,
    transit_p99: AtomicU64,
}

const NO_FIGURE: u64 = u64::MAX;

fn load_secs(a: &AtomicU64) -> Option<f64> {
    match a.load(Ordering::Relaxed) {
        NO_FIGURE => None,
        bits => Some(f64::from_bits(bits)),
    }
}

#[derive(Debug, Serialize)]
pub struct LinkSnapshot {
    pub name: String,
    pub uri: String,
    pub transport: &'static str,
    pub state: LinkState,
    pub peers: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_buffer_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Outputs only: time from the input library handing a packet over to this output's
    /// library accepting it (`relay_transit_seconds`), p50 and p99 over the last 10 s, in
    /// milliseconds; absent when nothing flowed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transit_p50_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transit_p99_ms: Option<f64>,
}

impl LinkStatus {
    pub fn new(name: &str, uri: String, transport: &'static str) -> Self {
        LinkStatus {
            name: name.to_owned(),
            uri,
            transport,
            time_buffer_ms: None,
            state: AtomicU8::new(LinkState::Waiting.as_u8()),
            ever_connected: std::sync::atomic::AtomicBool::new(false),
            peers: AtomicUsize::new(0),
            last_reconnect_ms: AtomicU64::new(0),
            connected_at_ms: AtomicU64::new(0),
            error: Mutex::new(None),
            transit_p50: AtomicU64::new(NO_FIGURE),
            transit_p99: AtomicU64::new(NO_FIGURE),
        }
    }

    /// Connecting after having been connected reads as reconnecting.
    pub fn set_state(&self, s: LinkState) {
        let was = self.state();
        let s = match s {
            LinkState::Connected => {
                self.ever_connected.store(true, Ordering::Relaxed);
                if !matches!(was, LinkState::Connected | LinkState::Idle) {
                    self.connected_at_ms
                        .store(crate::common::events::unix_ms(), Ordering::Relaxed);
                }
                s
            }
            LinkState::Connecting if self.ever_connected.load(Ordering::Relaxed) => {
                LinkState::Reconnecting
            }
            s => s,
        };
        if !matches!(s, LinkState::Connected | LinkState::Idle) {
            self.connected_at_ms.store(0, Ordering::Relaxed);
        }
        self.state.store(s.as_u8(), Ordering::Relaxed);
    }

    /// Wall-clock ms (Unix epoch) the current connection started, if connected.
    pub fn connected_at_ms(&self) -> Option<u64> {
        Some(self.connected_at_ms.load(Ordering::Relaxed)).filter(|&t| t > 0)
    }

    pub fn state(&self) -> LinkState {
        LinkState::from_u8(self.state.load(Ordering::Relaxed))
    }

    pub fn mark_reconnect(&self) {
        self.last_reconnect_ms
            .store(crate::common::events::unix_ms(), Ordering::Relaxed);
    }

    /// Wall-clock ms (Unix epoch) of the last reconnection, if there was one.
    pub fn last_reconnect_ms(&self) -> Option<u64> {
        Some(self.last_reconnect_ms.load(Ordering::Relaxed)).filter(|&t| t > 0)
    }

    pub fn peers(&self) -> usize {
        self.peers.load(Ordering::Relaxed)
    }

    pub fn set_peers(&self, n: usize) {
        self.peers.store(n, Ordering::Relaxed);
    }

    pub fn fail(&self, error: String) {
        *self.error.lock().unwrap_or_else(|p| p.into_inner()) = Some(error);
        self.set_state(LinkState::Failed);
    }

    /// Transit quantiles in seconds (None: nothing went through lately).
    pub fn set_transit(&self, p50: Option<f64>, p99: Option<f64>) {
        let bits = |v: Option<f64>| v.map_or(NO_FIGURE, f64::to_bits);
        self.transit_p50.store(bits(p50), Ordering::Relaxed);
        self.transit_p99.store(bits(p99), Ordering::Relaxed);
    }

    pub fn error(&self) -> Option<String> {
        self.error.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn snapshot(&self) -> LinkSnapshot {
        LinkSnapshot {
            name: self.name.clone(),
            uri: self.uri.clone(),
            transport: self.transport,
            state: self.state(),
            peers: self.peers.load(Ordering::Relaxed),
            time_buffer_ms: self.time_buffer_ms,
            error: self.error(),
            transit_p50_ms: load_secs(&self.transit_p50).map(|s| s * 1000.0),
            transit_p99_ms: load_secs(&self.transit_p99).map(|s| s * 1000.0),
        }
    }
}
