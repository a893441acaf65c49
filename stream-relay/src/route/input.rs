//! The input thread: wait for (or call) the sender, read packets into the Pipe, notice when the
//! sender is gone or silent, and keep the input's metrics. A link that pushes its packets from
//! its library's own thread (`InputLink::push_to`) delivers them into the same [`Intake`]; this
//! thread then only supervises, once per poll instead of once per packet.

use super::intake::Intake;
use super::peers::PeerTracker;
use super::status::{LinkState, LinkStatus};
use super::{connect, Shared, POLL};
use crate::common::metrics::LinkMetrics;
use crate::relay::backoff::Backoff;
use crate::relay::link::LinkEvent;
use crate::relay::InputLink;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A connected sender that sent nothing this long is reported as idle.
const IDLE_AFTER: Duration = Duration::from_secs(1);

/// `pushing`: the link delivers into `intake` on its library's thread (the route asked it to,
/// see `Route::start`); otherwise this thread reads and hands the packets to `intake`.
pub(super) fn run(
    mut link: Box<dyn InputLink>,
    intake: Arc<Intake>,
    pushing: bool,
    span: tracing::Span,
    status: Arc<LinkStatus>,
    metrics: LinkMetrics,
    shared: &Shared,
) {
    let _enter = span.enter();
    tracing::info!("input started");

    let settings = &shared.settings;
    let start = Instant::now();
    let mut backoff = Backoff::new(settings.backoff, seed(&shared.name));
    let mut peers = PeerTracker::default();
    if pushing {
        tracing::debug!("the input library delivers packets on its own thread");
    }
    let mut batch = Vec::with_capacity(256);
    let mut last_data = start;

    while !shared.stopping() {
        if !link.is_connected() {
            let backs_off = link.backs_off();
            match connect::step(backs_off, &mut backoff, &status, &metrics, "input", |t| {
                link.connect(t)
            }) {
                connect::Step::Connected => {
                    // Pushed packets restarted the meter with their epoch, and may already be
                    // counted.
                    if !pushing {
                        intake.restart();
                    }
                    last_data = Instant::now();
                }
                connect::Step::Pending => {}
                connect::Step::Fatal => break,
            }
        } else {
            // Returns nothing, after a poll, when the link pushes.
            match link.recv(&mut batch, POLL) {
                Ok(()) => {
                    // A sender that connected in this batch starts a new epoch before its
                    // packets go out (a pushing link said so with the packet itself).
                    link.drain_events(peers.events());
                    let new = if pushing {
                        0
                    } else {
                        new_connections(peers.events())
                    };
                    peers.apply(&metrics, &status);
                    intake.take(&mut batch, new);
                }
                Err(e) => {
                    let reason = e.to_string();
                    link.disconnect(&reason);
                    intake.restart();
                }
            }
            if let Some(at) = intake.last_data() {
                last_data = last_data.max(at);
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
        if !pushing {
            intake.begin_epochs(new_connections(peers.events()));
        }
        peers.apply(&metrics, &status);
        if !link.is_connected() && matches!(status.state(), LinkState::Connected | LinkState::Idle)
        {
            status.set_state(LinkState::Waiting);
        }

        intake.tick(|| link.stats());
    }

    // What a pushing library still delivers until the link is dropped (which stops it) goes
    // nowhere: the route is stopping.
    intake.close();
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
