//! Every Prometheus metric the relay exports, in one place. The five names promised to users
//! (`relay_peers`, `relay_bitrate_kbps`, `relay_reconnects_total`, `relay_packets_lost_total`,
//! `relay_jitter_ms`) are fixed. Labels are bounded: route and output names, never peer ports.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

type GaugeF = Gauge<f64, AtomicU64>;

#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum Side {
    input,
    output,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LinkLabels {
    pub route: String,
    pub side: Side,
    /// The output's name; empty on the input side.
    pub output: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DropLabels {
    pub route: String,
    pub output: String,
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TransitLabels {
    pub route: String,
    pub output: String,
}

fn transit_bounds() -> impl Iterator<Item = f64> {
    // 50 us .. ~1.6 s: the relay's own share is expected in the lowest buckets.
    prometheus_client::metrics::histogram::exponential_buckets(0.000_05, 2.0, 16)
}

fn transit_histogram() -> Histogram {
    Histogram::new(transit_bounds())
}

/// One output's transit recorder: the exported histogram plus the same buckets kept locally,
/// because prometheus-client does not let us read a histogram back. `/health` computes its
/// transit quantiles from these, so both show the same observations.
pub struct Transit {
    hist: Histogram,
    buckets: crate::relay::quantile::Buckets,
}

impl Transit {
    pub fn observe(&mut self, seconds: f64) {
        self.hist.observe(seconds);
        self.buckets.observe(seconds);
    }

    pub fn buckets(&self) -> &crate::relay::quantile::Buckets {
        &self.buckets
    }
}

/// Panics caught at an FFI boundary (log, status and stats callbacks from libsrt and librist):
/// they are swallowed there, since unwinding into C is undefined behaviour, and counted here.
pub static CALLBACK_PANICS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

pub struct Metrics {
    registry: Registry,
    pub peers: Family<LinkLabels, Gauge>,
    pub bitrate_kbps: Family<LinkLabels, GaugeF>,
    pub reconnects: Family<LinkLabels, Counter>,
    pub packets_lost: Family<LinkLabels, Counter>,
    pub jitter_ms: Family<LinkLabels, GaugeF>,
    pub rtt_ms: Family<LinkLabels, GaugeF>,
    pub packets: Family<LinkLabels, Counter>,
    pub bytes: Family<LinkLabels, Counter>,
    pub loss_detected: Family<LinkLabels, Counter>,
    pub retransmitted: Family<LinkLabels, Counter>,
    pub undecrypted: Family<LinkLabels, Counter>,
    pub buffer_ms: Family<LinkLabels, GaugeF>,
    pub latency_ms: Family<LinkLabels, GaugeF>,
    pub reordered: Family<LinkLabels, Counter>,
    pub quality: Family<LinkLabels, GaugeF>,
    pub dropped: Family<DropLabels, Counter>,
    pub transit: Family<TransitLabels, Histogram, fn() -> Histogram>,
    pub hold_seconds: Family<TransitLabels, GaugeF>,
    pub hold_packets: Family<TransitLabels, Gauge>,
    pub reloads: Family<ResultLabels, Counter>,
    pub rejected: Family<ReasonLabels, Counter>,
    pub srt_log_panics: Counter,
    /// Events of the monitoring feed (`GET /ws`), published where the metrics are kept.
    pub events: crate::common::events::EventBus,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let mut m = Metrics {
            registry: Registry::default(),
            peers: Family::default(),
            bitrate_kbps: Family::default(),
            reconnects: Family::default(),
            packets_lost: Family::default(),
            jitter_ms: Family::default(),
            rtt_ms: Family::default(),
            packets: Family::default(),
            bytes: Family::default(),
            loss_detected: Family::default(),
            retransmitted: Family::default(),
            undecrypted: Family::default(),
            buffer_ms: Family::default(),
            latency_ms: Family::default(),
            reordered: Family::default(),
            quality: Family::default(),
            dropped: Family::default(),
            transit: Family::new_with_constructor(transit_histogram as fn() -> Histogram),
            hold_seconds: Family::default(),
            hold_packets: Family::default(),
            reloads: Family::default(),
            rejected: Family::default(),
            srt_log_panics: Counter::default(),
            events: crate::common::events::EventBus::new(),
        };
        // prometheus-client appends `_total` to counters itself.
        registry.register("relay_peers", "Connected peers", m.peers.clone());
        registry.register(
            "relay_bitrate_kbps",
            "Payload bitrate over the last second, kilobits per second",
            m.bitrate_kbps.clone(),
        );
        registry.register(
            "relay_reconnects",
            "Connections re-established after a loss",
            m.reconnects.clone(),
        );
        registry.register(
            "relay_packets_lost",
            "Packets lost for good: not recovered by retransmission in time",
            m.packets_lost.clone(),
        );
        registry.register(
            "relay_jitter_ms",
            "RFC 3550 interarrival jitter of packets against their source timestamps, milliseconds",
            m.jitter_ms.clone(),
        );
        registry.register(
            "relay_rtt_seconds",
            "Round-trip time reported by the protocol library",
            m.rtt_ms.clone(),
        );
        registry.register("relay_packets", "Packets relayed", m.packets.clone());
        registry.register("relay_bytes", "Payload bytes relayed", m.bytes.clone());
        registry.register(
            "relay_packets_loss_detected",
            "Gaps detected on the wire (most are then recovered)",
            m.loss_detected.clone(),
        );
        registry.register(
            "relay_packets_retransmitted",
            "Retransmitted packets received (input) or sent (output)",
            m.retransmitted.clone(),
        );
        registry.register(
            "relay_packets_undecrypted",
            "Packets that could not be decrypted (passphrase mismatch)",
            m.undecrypted.clone(),
        );
        registry.register(
            "relay_buffer_seconds",
            "Stream held in the protocol library's buffer",
            m.buffer_ms.clone(),
        );
        registry.register(
            "relay_latency_seconds",
            "Negotiated protocol latency",
            m.latency_ms.clone(),
        );
        registry.register(
            "relay_callers_rejected",
            "SRT callers a listener refused, by reason (bad_passphrase, passphrase_missing, ...)",
            m.rejected.clone(),
        );
        registry.register(
            "relay_config_reloads",
            "Configuration reloads (SIGHUP, API), by result (ok, error)",
            m.reloads.clone(),
        );
        registry.register(
            "relay_time_buffer_seconds",
            "Stream time held in an output's time buffer",
            m.hold_seconds.clone(),
        );
        registry.register(
            "relay_time_buffer_packets",
            "Packets held in an output's time buffer",
            m.hold_packets.clone(),
        );
        registry.register(
            "relay_packets_reordered",
            "Packets that arrived out of order (RIST: librist's statistics)",
            m.reordered.clone(),
        );
        registry.register(
            "relay_link_quality_ratio",
            "Link quality reported by the library for the last interval, 0 to 1 (RIST only)",
            m.quality.clone(),
        );
        registry.register(
            "relay_packets_dropped",
            "Packets the relay dropped itself, by reason (output_down, queue_full, send_buffer_full)",
            m.dropped.clone(),
        );
        registry.register(
            "relay_transit_seconds",
            "Time from the input library handing a packet over to the output library accepting it",
            m.transit.clone(),
        );
        registry.register(
            "relay_callback_panics",
            "Panics caught in callbacks from C libraries (should stay 0)",
            m.srt_log_panics.clone(),
        );
        m.registry = registry;
        m
    }

    /// Prometheus text exposition format.
    pub fn encode(&self) -> String {
        self.srt_log_panics.inner().store(
            CALLBACK_PANICS.load(std::sync::atomic::Ordering::Relaxed),
            std::sync::atomic::Ordering::Relaxed,
        );
        for (reason, n) in crate::srt::log::rejections::snapshot() {
            self.rejected
                .get_or_create(&ReasonLabels {
                    reason: reason.to_owned(),
                })
                .inner()
                .store(n, std::sync::atomic::Ordering::Relaxed);
        }
        let mut out = String::new();
        // Encoding into a String cannot fail: fmt::Write for String is infallible.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Prometheus text format 0.0.4, for scrapers and tools (promtool) that do not ask for
    /// OpenMetrics: counter families are named with their `_total` suffix, and no `# EOF`.
    pub fn encode_text(&self) -> String {
        to_text_format(&self.encode())
    }

    /// The handles for one side of one route, created once so the hot path touches atomics only.
    pub fn link(&self, labels: LinkLabels) -> LinkMetrics {
        LinkMetrics {
            peers: self.peers.get_or_create(&labels).clone(),
            bitrate_kbps: self.bitrate_kbps.get_or_create(&labels).clone(),
            reconnects: self.reconnects.get_or_create(&labels).clone(),
            packets_lost: self.packets_lost.get_or_create(&labels).clone(),
            jitter_ms: self.jitter_ms.get_or_create(&labels).clone(),
            rtt_ms: self.rtt_ms.get_or_create(&labels).clone(),
            packets: self.packets.get_or_create(&labels).clone(),
            bytes: self.bytes.get_or_create(&labels).clone(),
            loss_detected: self.loss_detected.get_or_create(&labels).clone(),
            retransmitted: self.retransmitted.get_or_create(&labels).clone(),
            undecrypted: self.undecrypted.get_or_create(&labels).clone(),
            buffer_ms: self.buffer_ms.get_or_create(&labels).clone(),
            latency_ms: self.latency_ms.get_or_create(&labels).clone(),
            reordered: self.reordered.get_or_create(&labels).clone(),
            quality: self.quality.clone(),
            events: self.events.clone(),
            labels,
        }
    }

    pub fn drops(&self, route: &str, output: &str, reason: &str) -> Counter {
        self.dropped
            .get_or_create(&DropLabels {
                route: route.to_owned(),
                output: output.to_owned(),
                reason: reason.to_owned(),
            })
            .clone()
    }

    pub fn count_reload(&self, ok: bool) {
        self.reloads
            .get_or_create(&ResultLabels {
                result: if ok { "ok" } else { "error" }.to_owned(),
            })
            .inc();
    }

    /// Removes every series of one side of a route (an output or route taken out of the
    /// configuration), so /metrics does not show things that no longer exist.
    pub fn forget_link(&self, labels: &LinkLabels) {
        self.peers.remove(labels);
        self.bitrate_kbps.remove(labels);
        self.reconnects.remove(labels);
        self.packets_lost.remove(labels);
        self.jitter_ms.remove(labels);
        self.rtt_ms.remove(labels);
        self.packets.remove(labels);
        self.bytes.remove(labels);
        self.loss_detected.remove(labels);
        self.retransmitted.remove(labels);
        self.undecrypted.remove(labels);
        self.buffer_ms.remove(labels);
        self.latency_ms.remove(labels);
        self.reordered.remove(labels);
        self.quality.remove(labels);
    }

    pub fn forget_output(&self, route: &str, output: &str) {
        self.forget_link(&LinkLabels {
            route: route.to_owned(),
            side: Side::output,
            output: output.to_owned(),
        });
        for reason in [
            crate::relay::pipe::DropReason::OutputDown,
            crate::relay::pipe::DropReason::QueueFull,
            crate::relay::pipe::DropReason::SendBufferFull,
            crate::relay::pipe::DropReason::TimeBufferFull,
        ] {
            self.dropped.remove(&DropLabels {
                route: route.to_owned(),
                output: output.to_owned(),
                reason: reason.as_label().to_owned(),
            });
        }
        let t = TransitLabels {
            route: route.to_owned(),
            output: output.to_owned(),
        };
        self.transit.remove(&t);
        self.hold_seconds.remove(&t);
        self.hold_packets.remove(&t);
    }

    /// Fill gauges of an output's time buffer (seconds of stream, packets).
    pub fn time_buffer(&self, route: &str, output: &str) -> (GaugeF, Gauge) {
        let labels = TransitLabels {
            route: route.to_owned(),
            output: output.to_owned(),
        };
        (
            self.hold_seconds.get_or_create(&labels).clone(),
            self.hold_packets.get_or_create(&labels).clone(),
        )
    }

    pub fn transit(&self, route: &str, output: &str) -> Transit {
        Transit {
            hist: self.transit_histogram(route, output),
            buckets: crate::relay::quantile::Buckets::new(transit_bounds().collect()),
        }
    }

    /// The exported transit histogram of an output (shared with its recorder).
    pub fn transit_histogram(&self, route: &str, output: &str) -> Histogram {
        self.transit
            .get_or_create(&TransitLabels {
                route: route.to_owned(),
                output: output.to_owned(),
            })
            .clone()
    }
}

/// Count and sum of a histogram, read through the exposition encoder (prometheus-client keeps
/// its own reader crate-private), so the feed shows exactly what `/metrics` shows.
pub fn histogram_count_sum(h: &Histogram) -> (u64, f64) {
    let mut registry = Registry::default();
    registry.register("h", "", h.clone());
    let mut text = String::new();
    // Encoding into a String cannot fail: fmt::Write for String is infallible.
    let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
    let value = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (value("h_count ") as u64, value("h_sum "))
}

fn to_text_format(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        out.push_str(renamed.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

#[derive(Clone, Debug)]
pub struct LinkMetrics {
    pub labels: LinkLabels,
    pub peers: Gauge,
    pub bitrate_kbps: GaugeF,
    pub reconnects: Counter,
    pub packets_lost: Counter,
    pub jitter_ms: GaugeF,
    pub rtt_ms: GaugeF,
    pub packets: Counter,
    pub bytes: Counter,
    pub loss_detected: Counter,
    pub retransmitted: Counter,
    pub undecrypted: Counter,
    pub buffer_ms: GaugeF,
    pub latency_ms: GaugeF,
    pub reordered: Counter,
    /// Created on the first report: SRT has no such figure, and a 0 would read as a dead link.
    quality: Family<LinkLabels, GaugeF>,
    pub events: crate::common::events::EventBus,
}

impl LinkMetrics {
    /// Publishes an event about this side of the route on the monitoring feed.
    pub fn event(
        &self,
        kind: crate::common::events::EventKind,
        fill: impl FnOnce(&mut crate::common::events::Event),
    ) {
        let mut e =
            crate::common::events::Event::link(kind, &self.labels.route, &self.labels.output);
        fill(&mut e);
        self.events.publish(e);
    }

    /// The link quality gauge, if the library has reported one (RIST).
    pub fn quality(&self) -> Option<f64> {
        self.quality.get(&self.labels).map(|g| g.get())
    }

    pub fn record_stats(&self, s: &crate::relay::LinkStats) {
        self.packets_lost.inc_by(s.lost);
        self.loss_detected.inc_by(s.loss_detected);
        self.retransmitted.inc_by(s.retransmitted);
        self.undecrypted.inc_by(s.undecrypted);
        self.reordered.inc_by(s.reordered);
        if let Some(q) = s.quality_pct {
            self.quality
                .get_or_create(&self.labels)
                .set((q / 100.0).clamp(0.0, 1.0));
        }
        // Exported in seconds, the Prometheus base unit; the library reports milliseconds.
        if let Some(v) = s.rtt_ms {
            self.rtt_ms.set(v / 1000.0);
        }
        if let Some(v) = s.buffer_ms {
            self.buffer_ms.set(v / 1000.0);
        }
        if let Some(v) = s.latency_ms {
            self.latency_ms.set(v / 1000.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_five_promised_names_are_exported() {
        let m = Metrics::new();
        let l = m.link(LinkLabels {
            route: "cam1".into(),
            side: Side::input,
            output: String::new(),
        });
        l.reconnects.inc();
        l.bitrate_kbps.set(1234.5);
        let text = m.encode();
        for name in [
            "relay_peers{",
            "relay_bitrate_kbps{",
            "relay_reconnects_total{",
            "relay_packets_lost_total{",
            "relay_jitter_ms{",
        ] {
            assert!(text.contains(name), "{name} missing from:\n{text}");
        }
        assert!(
            text.contains(r#"relay_reconnects_total{route="cam1",side="input",output=""} 1"#),
            "{text}"
        );
        assert!(text.contains("1234.5"));
        let plain = m.encode_text();
        assert!(
            plain.contains("# TYPE relay_reconnects_total counter"),
            "{plain}"
        );
        assert!(!plain.contains("# EOF"));
    }
}
