//! An output thread: connect (or listen for players), take packets from the output's queue and
//! hand them to the library, reconnect with backoff, and keep the output's metrics. Whatever
//! happens here never reaches the input or the other outputs: they only see a queue.

use super::input::seed;
use super::meter::Meter;
use super::peers::PeerTracker;
use super::status::{LinkState, LinkStatus};
use super::{connect, Shared, POLL};
use crate::common::clock;
use crate::common::events::EventKind;
use crate::common::metrics::LinkMetrics;
use crate::relay::backoff::Backoff;
use crate::relay::pipe::{DropReason, OutputSlot};
use crate::relay::quantile::Window;
use crate::relay::rebase::Rebase;
use crate::relay::time_buffer::TimeBuffer;
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
    time_buffer: TimeBuffer,
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
    let timebuf_drops =
        shared
            .metrics
            .drops(route, slot.name(), DropReason::TimeBufferFull.as_label());
    let mut drops = DropMirror {
        down: shared
            .metrics
            .drops(route, slot.name(), DropReason::OutputDown.as_label()),
        full: shared
            .metrics
            .drops(route, slot.name(), DropReason::QueueFull.as_label()),
        seen_down: 0,
        seen_full: 0,
        incident: Incident::default(),
    };
    let mut transit = shared.metrics.transit(route, slot.name());
    let mut transit_window = Window::new(TRANSIT_WINDOW_TICKS);
    let (hold_seconds, hold_packets) = shared.metrics.time_buffer(route, slot.name());
    let mut held = time_buffer;
    let mut rebase = Rebase::default();
    let mut ready = Vec::with_capacity(256);

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
            match connect::step(backs_off, &mut backoff, &status, &metrics, "output", |t| {
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
            // Wake for new packets, or when the time buffer's next packet is due.
            let wait = held.next_due().map_or(POLL, |due| {
                Duration::from_micros((due - clock::now_us()).max(0) as u64).min(POLL)
            });
            slot.take(&mut batch, wait);
            let now_us = clock::now_us();
            for mut packet in batch.drain(..) {
                packet.src_time_us = if packet.src_time_us == 0 {
                    now_us
                } else {
                    rebase.map(packet.epoch, packet.src_time_us, now_us)
                };
                if held.push(packet).is_some() {
                    timebuf_drops.inc();
                    drops
                        .incident
                        .dropped(DropReason::TimeBufferFull, 1, &metrics);
                }
            }
            held.pop_due(clock::now_us(), &mut ready);
            let mut lost: Option<LinkError> = None;
            let mut undelivered = 0u64;
            for packet in ready.drain(..) {
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
                        drops
                            .incident
                            .dropped(DropReason::SendBufferFull, 1, &metrics);
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
                undelivered += held.clear() as u64;
                drops.down.inc_by(undelivered);
                link.disconnect(&e.to_string());
                up = false;
                slot.set_up(false);
                meter.restart();
            }
        }

        link.drain_events(peers.events());
        peers.apply(&metrics, &status);
        if up {
            // Connectionless outputs (RIST, UDP) are up from the start: show whether anyone
            // receives.
            let has_peers = link.peers() > 0;
            match status.state() {
                LinkState::Connected if !has_peers => status.set_state(LinkState::Waiting),
                LinkState::Waiting if has_peers => status.set_state(LinkState::Connected),
                _ => {}
            }
        }

        if meter.tick(&metrics, || link.stats()) {
            // The Pipe counts its drops in the slot; mirror them into Prometheus.
            drops.sync(&slot, &metrics);
            let q = transit_window.tick(transit.buckets(), &[0.5, 0.99]);
            status.set_transit(q[0], q[1]);
            let (packets, span_us) = held.fill();
            hold_packets.set(packets as i64);
            hold_seconds.set(span_us as f64 / 1e6);
        }
    }

    slot.set_up(false);
    drops.sync(&slot, &metrics);
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
/// drops this thread counts itself, and logs drops once per incident.
struct DropMirror {
    down: Counter,
    full: Counter,
    seen_down: u64,
    seen_full: u64,
    incident: Incident,
}

impl DropMirror {
    /// Called once a second.
    fn sync(&mut self, slot: &OutputSlot, metrics: &LinkMetrics) {
        let down = slot.dropped(DropReason::OutputDown);
        let full = slot.dropped(DropReason::QueueFull);
        let new_down = down.saturating_sub(self.seen_down);
        let new_full = full.saturating_sub(self.seen_full);
        self.down.inc_by(new_down);
        self.full.inc_by(new_full);
        self.seen_down = self.seen_down.max(down);
        self.seen_full = self.seen_full.max(full);
        if new_down > 0 {
            self.incident
                .dropped(DropReason::OutputDown, new_down, metrics);
        }
        if new_full > 0 {
            self.incident
                .dropped(DropReason::QueueFull, new_full, metrics);
        }
        self.incident.tick(metrics);
    }
}

/// Drops are logged when they start and when they stop, with the count in between: one
/// incident, two lines, however many packets.
#[derive(Default)]
struct Incident {
    active: bool,
    reasons: Vec<&'static str>,
    packets: u64,
    quiet_ticks: u32,
    saw_drop: bool,
}

impl Incident {
    fn dropped(&mut self, reason: DropReason, packets: u64, metrics: &LinkMetrics) {
        let label = reason.as_label();
        if !self.reasons.contains(&label) {
            self.reasons.push(label);
        }
        if !self.active {
            self.active = true;
            self.packets = 0;
            tracing::warn!(reason = label, "output dropping packets");
            metrics.event(EventKind::OutputDropping, |e| e.reasons = Some(vec![label]));
        }
        self.packets += packets;
        self.saw_drop = true;
    }

    /// Once a second: three quiet seconds close the incident.
    fn tick(&mut self, metrics: &LinkMetrics) {
        if std::mem::take(&mut self.saw_drop) {
            self.quiet_ticks = 0;
            return;
        }
        if self.active {
            self.quiet_ticks += 1;
            if self.quiet_ticks >= 3 {
                tracing::info!(reasons = ?self.reasons, packets = self.packets, "output stopped dropping packets");
                metrics.event(EventKind::OutputStoppedDropping, |e| {
                    e.reasons = Some(self.reasons.clone());
                    e.packets = Some(self.packets);
                });
                *self = Incident::default();
            }
        }
    }
}
