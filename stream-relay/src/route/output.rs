//! An output thread: connect (or listen for players), take packets from the output's queue and
//! hand them to the library, reconnect with backoff, and keep the output's metrics. Whatever
//! happens here never reaches the input or the other outputs: they only see a queue.

use super::input::{micros_since, seed};
use super::peers::PeerTracker;
use super::status::{LinkState, LinkStatus};
use super::{connect, Shared, POLL};
use crate::common::metrics::LinkMetrics;
use crate::relay::backoff::Backoff;
use crate::relay::jitter::JitterEstimator;
use crate::relay::pipe::{DropReason, OutputSlot};
use crate::relay::rate::RateMeter;
use crate::relay::{LinkError, OutputLink, SendOutcome};
use std::sync::Arc;
use std::time::{Duration, Instant};

const STATS_EVERY: Duration = Duration::from_secs(1);
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
    let down_drops = shared
        .metrics
        .drops(route, slot.name(), DropReason::OutputDown.as_label());
    let full_drops = shared
        .metrics
        .drops(route, slot.name(), DropReason::QueueFull.as_label());
    let transit = shared.metrics.transit(route, slot.name());

    let start = Instant::now();
    let mut backoff = Backoff::new(settings.backoff, seed(slot.name()) ^ seed(route));
    let mut peers = PeerTracker::default();
    let mut jitter = JitterEstimator::default();
    let mut rate = RateMeter::new(start, STATS_EVERY);
    let mut batch = Vec::with_capacity(256);
    let mut next_stats = start + STATS_EVERY;
    let mut next_service = start;
    let mut up = false;
    let (mut seen_down, mut seen_full) = (0, 0);

    while !shared.stopping() && !slot.is_closed() {
        if !up {
            let backs_off = link.backs_off();
            match connect::step(backs_off, &mut backoff, &status, "output", |t| {
                link.connect(t)
            }) {
                connect::Step::Connected => {
                    jitter.restart();
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
                        metrics.packets.inc();
                        metrics.bytes.inc_by(packet.len() as u64);
                        rate.add(packet.len());
                        jitter.observe(packet.src_time_us, micros_since(start, sent_at));
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
                down_drops.inc_by(undelivered);
                link.disconnect(&e.to_string());
                up = false;
                slot.set_up(false);
                jitter.restart();
            }
        }

        link.drain_events(peers.events());
        peers.apply(&metrics, &status);

        let now = Instant::now();
        if now >= next_stats {
            next_stats = now + STATS_EVERY;
            metrics.record_stats(&link.stats());
            metrics.bitrate_kbps.set(rate.poll(now));
            metrics.jitter_ms.set(jitter.jitter_ms());
            // The Pipe counts its drops in the slot; mirror them into Prometheus.
            mirror(
                &down_drops,
                slot.dropped(DropReason::OutputDown),
                &mut seen_down,
            );
            mirror(
                &full_drops,
                slot.dropped(DropReason::QueueFull),
                &mut seen_full,
            );
        }
    }

    slot.set_up(false);
    mirror(
        &down_drops,
        slot.dropped(DropReason::OutputDown),
        &mut seen_down,
    );
    mirror(
        &full_drops,
        slot.dropped(DropReason::QueueFull),
        &mut seen_full,
    );
    link.disconnect("relay stopping");
    link.drain_events(peers.events());
    peers.apply(&metrics, &status);
    metrics.bitrate_kbps.set(0.0);
    if status.state() != LinkState::Failed {
        status.set_state(LinkState::Stopped);
    }
    tracing::info!("output stopped");
}

/// Adds what a monotonic total grew by since last time.
fn mirror(counter: &prometheus_client::metrics::counter::Counter, total: u64, seen: &mut u64) {
    counter.inc_by(total.saturating_sub(*seen));
    *seen = total.max(*seen);
}
