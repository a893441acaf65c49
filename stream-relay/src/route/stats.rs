//! What the monitoring feed (`GET /ws`) shows about a route each interval. Every figure is read
//! from the very metric handles (shared atomics) that the route threads update and `/metrics`
//! encodes, so the feed and Prometheus cannot disagree; nothing here counts on its own. Field
//! names are the metric names without `relay_`, in the metric's unit.

use super::status::{LinkState, LinkStatus};
use crate::common::metrics::{histogram_count_sum, LinkMetrics, Metrics};
use crate::relay::pipe::DropReason;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use serde::Serialize;
use std::sync::atomic::AtomicU64;

const DROP_REASONS: [DropReason; 4] = [
    DropReason::OutputDown,
    DropReason::QueueFull,
    DropReason::SendBufferFull,
    DropReason::TimeBufferFull,
];

/// Handles to one side's series (clones share the counters with the registry).
#[derive(Clone, Debug)]
pub struct LinkHandles {
    link: LinkMetrics,
    output: Option<OutputHandles>,
}

#[derive(Clone, Debug)]
struct OutputHandles {
    drops: [Counter; 4],
    transit: Histogram,
    hold_seconds: Gauge<f64, AtomicU64>,
    hold_packets: Gauge,
}

#[derive(Debug, Serialize)]
pub struct RouteStats {
    pub name: String,
    pub input: LinkStats,
    pub outputs: Vec<LinkStats>,
}

#[derive(Debug, Serialize)]
pub struct LinkStats {
    pub name: String,
    pub state: LinkState,
    pub peers: i64,
    pub bitrate_kbps: f64,
    pub packets_total: u64,
    pub bytes_total: u64,
    pub packets_lost_total: u64,
    pub packets_loss_detected_total: u64,
    pub packets_retransmitted_total: u64,
    pub packets_undecrypted_total: u64,
    pub packets_reordered_total: u64,
    pub reconnects_total: u64,
    pub jitter_ms: f64,
    pub rtt_seconds: f64,
    pub buffer_seconds: f64,
    pub latency_seconds: f64,
    /// RIST only (librist's figure); absent for SRT and UDP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link_quality_ratio: Option<f64>,
    /// Unix epoch ms of the last reconnection; absent if none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_reconnect_ms: Option<u64>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub output: Option<OutputStats>,
}

#[derive(Debug, Serialize)]
pub struct OutputStats {
    pub packets_dropped_total: Drops,
    pub transit_seconds: Transit,
    pub time_buffer_seconds: f64,
    pub time_buffer_packets: i64,
}

#[derive(Debug, Serialize)]
pub struct Drops {
    pub output_down: u64,
    pub queue_full: u64,
    pub send_buffer_full: u64,
    pub time_buffer_full: u64,
}

/// The transit histogram's count and sum (seconds) since the output started.
#[derive(Debug, Serialize)]
pub struct Transit {
    pub count: u64,
    pub sum: f64,
}

impl LinkHandles {
    pub fn input(link: LinkMetrics) -> LinkHandles {
        LinkHandles { link, output: None }
    }

    pub fn output(link: LinkMetrics, metrics: &Metrics) -> LinkHandles {
        let (route, name) = (&link.labels.route, &link.labels.output);
        let (hold_seconds, hold_packets) = metrics.time_buffer(route, name);
        let output = OutputHandles {
            drops: DROP_REASONS.map(|r| metrics.drops(route, name, r.as_label())),
            transit: metrics.transit_histogram(route, name),
            hold_seconds,
            hold_packets,
        };
        LinkHandles {
            link,
            output: Some(output),
        }
    }

    pub fn read(&self, status: &LinkStatus) -> LinkStats {
        let m = &self.link;
        LinkStats {
            name: status.name.clone(),
            state: status.state(),
            peers: m.peers.get(),
            bitrate_kbps: m.bitrate_kbps.get(),
            packets_total: m.packets.get(),
            bytes_total: m.bytes.get(),
            packets_lost_total: m.packets_lost.get(),
            packets_loss_detected_total: m.loss_detected.get(),
            packets_retransmitted_total: m.retransmitted.get(),
            packets_undecrypted_total: m.undecrypted.get(),
            packets_reordered_total: m.reordered.get(),
            reconnects_total: m.reconnects.get(),
            jitter_ms: m.jitter_ms.get(),
            rtt_seconds: m.rtt_ms.get(),
            buffer_seconds: m.buffer_ms.get(),
            latency_seconds: m.latency_ms.get(),
            link_quality_ratio: m.quality(),
            last_reconnect_ms: status.last_reconnect_ms(),
            output: self.output.as_ref().map(|o| {
                let (count, sum) = histogram_count_sum(&o.transit);
                OutputStats {
                    packets_dropped_total: Drops {
                        output_down: o.drops[0].get(),
                        queue_full: o.drops[1].get(),
                        send_buffer_full: o.drops[2].get(),
                        time_buffer_full: o.drops[3].get(),
                    },
                    transit_seconds: Transit { count, sum },
                    time_buffer_seconds: o.hold_seconds.get(),
                    time_buffer_packets: o.hold_packets.get(),
                }
            }),
        }
    }
}
