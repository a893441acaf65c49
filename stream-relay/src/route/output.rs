//! An output thread: connect (or listen for players), take packets from the output's queue and
//! hand them to the library, reconnect with backoff, and keep the output's metrics. Whatever
//! happens here never reaches the input or the other outputs: they only see a queue.

use super::input::seed;
use super::meter::Meter;
use super::peers::PeerTracker;
use super::status::{LinkState, LinkStatus};
use super::{connect, Shared, POLL};
use crate::common::metrics::LinkMetrics;
use crate::relay::backoff::Backoff;
use crate::relay::pipe::{DropReason, OutputSlot};
use crate::relay::quantile::Window;
use crate::relay::{LinkError, OutputLink, SendOutcome};
use prometheus_client::metrics::counter::Counter;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `/health` shows transit quantiles over this many statistics ticks (seconds).
const TRANSIT_WINDOW_TICKS: usize = 10;

/// How often a connected output looks for new players and dead peers while data flows.
const SERVICE_EVERY: Duration = Duration::from_millis(50);

pub(super) fn run(
    mut link: Box<dyn OutputLink>,
    slot: Arc<OutputSlot>,
    status: Arc<LinkStatus>,
    metrics: LinkMetrics,
    shared: &Shared,
) {
    let span = tracing::info_span!("relay", route = %shared.name, side = "output", output = %slot.name(), uri = %status.uri);
    let _enter = span.enter();
    tracing::info!("output started");

    let settings = &shared.settings;
    let route = &shared.name;
    let sendbuf_drops =
        shared
            .metrics
            .drops(route, slot.name(), DropReason::SendBufferFull.as_label());
    let mut drops = DropMirror {
        down: shared
            .metrics
            .drops(route, slot.name(), DropReason::OutputDown.as_label()),
        full: shared
            .metrics
            .drops(route, slot.name(), DropReason::QueueFull.as_label()),
        seen_down: 0,
        seen_full: 0,
    };
    let mut transit = shared.metrics.transit(route, slot.name());
    let mut transit_window = Window::new(TRANSIT_WINDOW_TICKS);

    let start = Instant::now();
    let mut backoff = Backoff::new(settings.backoff, seed(slot.name()) ^ seed(route));
    let mut peers = PeerTracker::default();
    let mut meter = Meter::new(start);
    let mut batch = Vec::with_capacity(256);
    let mut next_service = start;
    let mut up = false;

    while !shared.stopping() && !slot.is_closed() {
        if !up {
            let backs_off = link.backs_off();
            match connect::step(backs_off, &mut backoff, &status, "output", |t| {
                link.connect(t)
            }) {
                connect::Step::Connected => {
                    meter.restart();
                    up = true;
                    slot.set_up(true);
                }
                connect::Step::Pending => {}
                connect::Step::Fatal => break,
            }
        } else {
            slot.take(&mut batch, POLL);
            let mut lost: Option<LinkError> = None;
            let mut undelivered = 0u64;
            for packet in batch.drain(..) {
                if lost.is_some() {
                    undelivered += 1;
                    continue;
                }
                match link.send(&packet) {
                    Ok(SendOutcome::Sent) => {
                        let sent_at = Instant::now();
                        transit.observe(
                            sent_at
                                .saturating_duration_since(packet.received_at)
                                .as_secs_f64(),
                        );
                        meter.packet(&metrics, &packet, sent_at);
                    }
                    Ok(SendOutcome::Dropped) => {
                        sendbuf_drops.inc();
                    }
                    Err(e) => {
                        lost = Some(e);
                        undelivered += 1;
                    }
                }
            }
            if lost.is_none() && Instant::now() >= next_service {
                next_service = Instant::now() + SERVICE_EVERY;
                lost = link.service().err();
            }
            if let Some(e) = lost {
                drops.down.inc_by(undelivered);
                link.disconnect(&e.to_string());
                up = false;
                slot.set_up(false);
                meter.restart();
            }
        }

        link.drain_events(peers.events());
        peers.apply(&metrics, &status);

        if meter.tick(&metrics, || link.stats()) {
            // The Pipe counts its drops in the slot; mirror them into Prometheus.
            drops.sync(&slot);
            let q = transit_window.tick(transit.buckets(), &[0.5, 0.99]);
            status.set_transit(q[0], q[1]);
        }
    }

    slot.set_up(false);
    drops.sync(&slot);
    link.disconnect("relay stopping");
    link.drain_events(peers.events());
    peers.apply(&metrics, &status);
    metrics.bitrate_kbps.set(0.0);
    if status.state() != LinkState::Failed {
        status.set_state(LinkState::Stopped);
    }
    tracing::info!("output stopped");
}

/// Mirrors the Pipe's per-slot drop totals into Prometheus counters, which also take the
/// drops this thread counts itself.
struct DropMirror {
    down: Counter,
    full: Counter,
    seen_down: u64,
    seen_full: u64,
}

impl DropMirror {
    fn sync(&mut self, slot: &OutputSlot) {
        let down = slot.dropped(DropReason::OutputDown);
        let full = slot.dropped(DropReason::QueueFull);
        self.down.inc_by(down.saturating_sub(self.seen_down));
        self.full.inc_by(full.saturating_sub(self.seen_full));
        self.seen_down = self.seen_down.max(down);
        self.seen_full = self.seen_full.max(full);
    }
}
