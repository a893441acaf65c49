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
use crate::common::metrics::{LinkMetrics, Transit};
use crate::relay::backoff::Backoff;
use crate::relay::pipe::{DirectSink, DropReason, OutputSlot};
use crate::relay::quantile::Window;
use crate::relay::rebase::Rebase;
use crate::relay::time_buffer::TimeBuffer;
use crate::relay::{LinkError, OutputLink, Packet, SendOutcome};
use prometheus_client::metrics::counter::Counter;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// `/health` shows transit quantiles over this many statistics ticks (seconds).
const TRANSIT_WINDOW_TICKS: usize = 10;

/// How often a connected output looks for new players and dead peers while data flows.
const SERVICE_EVERY: Duration = Duration::from_millis(50);

pub(super) fn run(
    link: Box<dyn OutputLink>,
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
    let drops = DropMirror {
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
    let (hold_seconds, hold_packets) = shared.metrics.time_buffer(route, slot.name());
    let start = Instant::now();
    let output = Arc::new(Output {
        span: span.clone(),
        slot: slot.clone(),
        core: Mutex::new(Core {
            link,
            sendbuf_drops: shared.metrics.drops(
                route,
                slot.name(),
                DropReason::SendBufferFull.as_label(),
            ),
            timebuf_drops: shared.metrics.drops(
                route,
                slot.name(),
                DropReason::TimeBufferFull.as_label(),
            ),
            drops,
            transit: shared.metrics.transit(route, slot.name()),
            held: time_buffer,
            rebase: Rebase::default(),
            ready: Vec::with_capacity(256),
            meter: Meter::new(start),
            metrics: metrics.clone(),
            lost: None,
            undelivered: 0,
        }),
    });
    let mut transit_window = Window::new(TRANSIT_WINDOW_TICKS);
    let mut backoff = Backoff::new(settings.backoff, seed(slot.name()) ^ seed(route));
    let mut peers = PeerTracker::default();
    let mut batch = Vec::with_capacity(256);
    let mut next_service = start;
    let mut up = false;
    let mut direct = false;

    while !shared.stopping() && !slot.is_closed() {
        if !up {
            let step = {
                let mut core = output.lock();
                let core = &mut *core;
                let backs_off = core.link.backs_off();
                let step =
                    connect::step(backs_off, &mut backoff, &status, &metrics, "output", |t| {
                        core.link.connect(t)
                    });
                if let connect::Step::Connected = step {
                    core.meter.restart();
                    direct = core.link.sends_without_blocking() && core.held.delay_us() == 0;
                }
                step
            };
            match step {
                connect::Step::Connected => {
                    up = true;
                    slot.set_up(true);
                }
                connect::Step::Pending => {}
                connect::Step::Fatal => break,
            }
            // Not under the core's lock: the switch delivers what is queued through it.
            if direct {
                slot.go_direct(output.clone());
            }
        } else {
            // Wake for new packets, or when the time buffer's next packet is due. A direct
            // output only wakes for its housekeeping.
            let wait = if direct {
                POLL
            } else {
                output.lock().held.next_due().map_or(POLL, |due| {
                    Duration::from_micros((due - clock::now_us()).max(0) as u64).min(POLL)
                })
            };
            slot.take(&mut batch, wait);
            let mut core = output.lock();
            core.deliver(&mut batch.drain(..));
            if core.lost.is_none() && Instant::now() >= next_service {
                next_service = Instant::now() + SERVICE_EVERY;
                core.lost = core.link.service().err();
            }
            if core.lost.is_some() {
                if direct {
                    // Out of direct mode before going down, so no push is inside deliver.
                    drop(core);
                    slot.leave_direct();
                    direct = false;
                    core = output.lock();
                }
                core.go_down();
                up = false;
                slot.set_up(false);
            }
        }

        let has_peers = {
            let mut core = output.lock();
            let core = &mut *core;
            core.link.drain_events(peers.events());
            if core.meter.tick(&metrics, || core.link.stats()) {
                // The Pipe counts its drops in the slot; mirror them into Prometheus.
                core.drops.sync(&slot, &metrics);
                let q = transit_window.tick(core.transit.buckets(), &[0.5, 0.99]);
                status.set_transit(q[0], q[1]);
                let (packets, span_us) = core.held.fill();
                hold_packets.set(packets as i64);
                hold_seconds.set(span_us as f64 / 1e6);
            }
            core.link.peers() > 0
        };
        // Logged without the lock: a slow log sink must not hold up a direct output's input.
        peers.apply(&metrics, &status);
        if up {
            // Connectionless outputs (RIST, UDP) are up from the start: show whether anyone
            // receives.
            match status.state() {
                LinkState::Connected if !has_peers => status.set_state(LinkState::Waiting),
                LinkState::Waiting if has_peers => status.set_state(LinkState::Connected),
                _ => {}
            }
        }
    }

    if direct {
        slot.leave_direct();
    }
    slot.set_up(false);
    let mut core = output.lock();
    let core = &mut *core;
    core.drops.sync(&slot, &metrics);
    core.link.disconnect("relay stopping");
    core.link.drain_events(peers.events());
    peers.apply(&metrics, &status);
    metrics.bitrate_kbps.set(0.0);
    if status.state() != LinkState::Failed {
        status.set_state(LinkState::Stopped);
    }
    tracing::info!("output stopped");
}

/// One output's sending state, shared between its thread and, for a direct output, the
/// input's thread (which delivers under the lock, so order and accounting stay the same).
struct Output {
    span: tracing::Span,
    slot: Arc<OutputSlot>,
    core: Mutex<Core>,
}

impl Output {
    fn lock(&self) -> MutexGuard<'_, Core> {
        // Every field stays valid if a holder panicked; the output carries on.
        self.core.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl DirectSink for Output {
    fn deliver(&self, packets: &mut dyn Iterator<Item = Packet>) {
        let _enter = self.span.enter();
        // A bug in an output stays that output's problem, as on its own thread: the input
        // carries on, and the output thread takes the output down and brings it back.
        let failed = std::panic::catch_unwind(AssertUnwindSafe(|| {
            let mut core = self.lock();
            core.deliver(packets);
            core.lost.is_some()
        }))
        .unwrap_or_else(|_| {
            let mut core = self.lock();
            core.lost
                .get_or_insert_with(|| LinkError::Lost("the output panicked".into()));
            true
        });
        if failed {
            self.slot.wake();
        }
    }
}

struct Core {
    link: Box<dyn OutputLink>,
    metrics: LinkMetrics,
    held: TimeBuffer,
    rebase: Rebase,
    ready: Vec<Packet>,
    transit: Transit,
    meter: Meter,
    sendbuf_drops: Counter,
    timebuf_drops: Counter,
    drops: DropMirror,
    /// The link failed; the output thread takes it down. Packets delivered until then are
    /// counted in `undelivered`.
    lost: Option<LinkError>,
    undelivered: u64,
}

impl Core {
    /// Time-stamps packets for the library, passes them through the time buffer and sends
    /// whatever is due.
    fn deliver(&mut self, packets: &mut dyn Iterator<Item = Packet>) {
        let now_us = clock::now_us();
        for mut packet in packets {
            if self.lost.is_some() {
                self.undelivered += 1;
                continue;
            }
            packet.src_time_us = if packet.src_time_us == 0 {
                now_us
            } else {
                self.rebase.map(packet.epoch, packet.src_time_us, now_us)
            };
            if self.held.push(packet).is_some() {
                self.timebuf_drops.inc();
                self.drops
                    .incident
                    .dropped(DropReason::TimeBufferFull, 1, &self.metrics);
            }
        }
        self.held.pop_due(clock::now_us(), &mut self.ready);
        for packet in self.ready.drain(..) {
            if self.lost.is_some() {
                self.undelivered += 1;
                continue;
            }
            match self.link.send(&packet) {
                Ok(SendOutcome::Sent) => {
                    let sent_at = Instant::now();
                    self.transit.observe(
                        sent_at
                            .saturating_duration_since(packet.received_at)
                            .as_secs_f64(),
                    );
                    self.meter.packet(&self.metrics, &packet, sent_at);
                }
                Ok(SendOutcome::Dropped) => {
                    self.sendbuf_drops.inc();
                    self.drops
                        .incident
                        .dropped(DropReason::SendBufferFull, 1, &self.metrics);
                }
                Err(e) => {
                    self.lost = Some(e);
                    self.undelivered += 1;
                }
            }
        }
    }

    /// After a failure: everything not sent is counted as dropped and the link let go.
    fn go_down(&mut self) {
        let reason = self.lost.take().map(|e| e.to_string()).unwrap_or_default();
        let undelivered = std::mem::take(&mut self.undelivered) + self.held.clear() as u64;
        self.drops.down.inc_by(undelivered);
        self.link.disconnect(&reason);
        self.meter.restart();
    }
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
