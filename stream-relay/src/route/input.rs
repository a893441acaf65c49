//! The input thread: wait for (or call) the sender, read packets into the Pipe, notice when the
//! sender is gone or silent, and keep the input's metrics.

use super::meter::Meter;
use super::peers::PeerTracker;
use super::status::{LinkState, LinkStatus};
use super::{connect, Shared, POLL};
use crate::common::metrics::LinkMetrics;
use crate::relay::backoff::Backoff;
use crate::relay::link::LinkEvent;
use crate::relay::pipe::Pipe;
use crate::relay::InputLink;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A connected sender that sent nothing this long is reported as idle.
const IDLE_AFTER: Duration = Duration::from_secs(1);

pub(super) fn run(
    mut link: Box<dyn InputLink>,
    pipe: &Pipe,
    status: Arc<LinkStatus>,
    metrics: LinkMetrics,
    shared: &Shared,
) {
    let span =
        tracing::info_span!("relay", route = %shared.name, side = "input", uri = %status.uri);
    let _enter = span.enter();
    tracing::info!("input started");

    let settings = &shared.settings;
    let start = Instant::now();
    let mut backoff = Backoff::new(settings.backoff, seed(&shared.name));
    let mut peers = PeerTracker::default();
    let mut meter = Meter::new(start);
    let mut batch = Vec::with_capacity(256);
    let mut last_data = start;
    let mut epoch = 0u64;

    while !shared.stopping() {
        if !link.is_connected() {
            let backs_off = link.backs_off();
            match connect::step(backs_off, &mut backoff, &status, &metrics, "input", |t| {
                link.connect(t)
            }) {
                connect::Step::Connected => {
                    meter.restart();
                    last_data = Instant::now();
                }
                connect::Step::Pending => {}
                connect::Step::Fatal => break,
            }
        } else {
            match link.recv(&mut batch, POLL) {
                Ok(()) => {
                    if !batch.is_empty() {
                        last_data = Instant::now();
                    }
                    // A sender that connected in this batch starts a new epoch before its
                    // packets go out.
                    link.drain_events(peers.events());
                    epoch += new_connections(peers.events());
                    peers.apply(&metrics, &status);
                    for packet in &mut batch {
                        packet.epoch = epoch;
                        meter.packet(&metrics, packet, packet.received_at);
                    }
                    pipe.push_all(&mut batch);
                }
                Err(e) => {
                    let reason = e.to_string();
                    link.disconnect(&reason);
                    meter.restart();
                }
            }
            let silent = Instant::now().saturating_duration_since(last_data);
            // A live stream sends many packets a second: a sender silent this long is shown
            // as idle (connected, but no picture) well before the idle timeout drops it.
            let idle_after = IDLE_AFTER.min(settings.idle_timeout / 2);
            match status.state() {
                LinkState::Connected if link.is_connected() && silent >= idle_after => {
                    tracing::warn!(
                        silent_ms = silent.as_millis() as u64,
                        "input idle: connected, but no data"
                    );
                    status.set_state(LinkState::Idle);
                }
                LinkState::Idle if silent < idle_after => {
                    tracing::info!("input active again");
                    status.set_state(LinkState::Connected);
                }
                _ => {}
            }
            if link.is_connected() && silent >= settings.idle_timeout {
                link.disconnect(&format!(
                    "no data for {} ms (idle timeout)",
                    silent.as_millis()
                ));
            }
        }

        link.drain_events(peers.events());
        epoch += new_connections(peers.events());
        peers.apply(&metrics, &status);
        if !link.is_connected() && matches!(status.state(), LinkState::Connected | LinkState::Idle)
        {
            status.set_state(LinkState::Waiting);
        }

        meter.tick(&metrics, || link.stats());
    }

    link.disconnect("relay stopping");
    link.drain_events(peers.events());
    peers.apply(&metrics, &status);
    metrics.bitrate_kbps.set(0.0);
    if status.state() != LinkState::Failed {
        status.set_state(LinkState::Stopped);
    }
    tracing::info!("input stopped");
}

fn new_connections(events: &[LinkEvent]) -> u64 {
    events
        .iter()
        .filter(|e| matches!(e, LinkEvent::Connected { .. }))
        .count() as u64
}

/// Different routes should not retry in lockstep; any stable per-route value will do.
pub(super) fn seed(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}
