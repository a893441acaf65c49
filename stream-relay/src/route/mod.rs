//! A route: one input, its Pipe and N outputs, each side on its own named thread. libsrt (and
//! librist) calls block or call back from their own threads, so routes live on plain threads,
//! away from the async runtime that serves HTTP. Routes start and stop independently, which
//! is what live reconfiguration needs.

mod connect;
mod input;
mod meter;
mod output;
mod peers;
pub mod stats;
pub mod status;

use crate::common::metrics::{LinkLabels, Metrics, Side};
use crate::relay::backoff::BackoffPolicy;
use crate::relay::pipe::{OutputSlot, Pipe};
use crate::relay::time_buffer::TimeBuffer;
use crate::relay::{LinkError, TransportRelay};
use serde::Serialize;
use status::{LinkSnapshot, LinkState, LinkStatus};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// How long a route thread waits in the library before looking at its stop flag and clocks.
pub const POLL: Duration = Duration::from_millis(100);

#[derive(Clone, Debug)]
pub struct RouteSettings {
    /// An input connection that carries no data this long is treated as lost.
    pub idle_timeout: Duration,
    pub backoff: BackoffPolicy,
    /// Packets an output may hold while its library is busy; beyond that the oldest go.
    pub queue_packets: usize,
    /// The highest bitrate (bits/s) the route is sized for: time buffers hold this much.
    pub max_bitrate: u64,
}

/// Bytes a held packet costs: a 1316-byte MPEG-TS datagram and its bookkeeping. A packet from
/// a RIST input keeps librist's block (payload, block and reference: about 200 bytes more);
/// `time_buffer_packets` doubles the count for bursts, which covers that.
pub const HELD_PACKET_BYTES: u64 = 1316 + 64;

impl RouteSettings {
    /// Packets a time buffer of `delay` must be able to hold at `max_bitrate` (twice the
    /// nominal count, for bursts), never fewer than the output queue.
    pub fn time_buffer_packets(&self, delay: Duration) -> usize {
        let pps = self.max_bitrate as f64 / 8.0 / 1316.0;
        ((delay.as_secs_f64() * pps * 2.0).ceil() as usize).max(self.queue_packets)
    }

    /// The memory that many packets take, in bytes.
    pub fn time_buffer_bytes(&self, delay: Duration) -> u64 {
        self.time_buffer_packets(delay) as u64 * HELD_PACKET_BYTES
    }
}

impl Default for RouteSettings {
    fn default() -> Self {
        RouteSettings {
            idle_timeout: Duration::from_secs(5),
            backoff: BackoffPolicy::default(),
            // About 1 s of a 20 Mbps stream in 1316-byte packets.
            queue_packets: 2048,
            max_bitrate: 50_000_000,
        }
    }
}

pub struct OutputSpec {
    pub name: String,
    pub endpoint: Arc<dyn TransportRelay>,
    /// Each packet leaves at its source time + this (0: as soon as it arrives).
    pub time_buffer: Duration,
}

pub struct RouteSpec {
    pub name: String,
    pub input: Arc<dyn TransportRelay>,
    pub outputs: Vec<OutputSpec>,
    pub settings: RouteSettings,
}

impl RouteSpec {
    /// Whether the input or an output speaks `transport` ("srt", "rist", "udp"): starting the
    /// route opens that library.
    pub fn uses(&self, transport: &str) -> bool {
        std::iter::once(&self.input)
            .chain(self.outputs.iter().map(|o| &o.endpoint))
            .any(|t| t.transport() == transport)
    }
}

/// Whatever a route's threads share with it.
struct Shared {
    name: String,
    stop: AtomicBool,
    metrics: Arc<Metrics>,
    settings: RouteSettings,
}

pub struct Route {
    shared: Arc<Shared>,
    /// The Stream ID name of a shared listener's stream this route's input is.
    stream: Option<String>,
    pipe: Arc<Pipe>,
    input_status: Arc<LinkStatus>,
    /// The same handles the input thread updates: the feed reads what /metrics reads.
    input_metrics: stats::LinkHandles,
    input_thread: Option<JoinHandle<()>>,
    outputs: Vec<RunningOutput>,
}

/// One output's thread and what the route keeps to show and stop it.
struct RunningOutput {
    name: String,
    status: Arc<LinkStatus>,
    slot: Arc<OutputSlot>,
    metrics: stats::LinkHandles,
    thread: Option<JoinHandle<()>>,
}

impl RunningOutput {
    /// Wakes the thread for good and waits for it; its link closes as it ends.
    fn stop(&mut self, route: &str) {
        self.slot.close();
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::error!(route, output = %self.name, "an output thread panicked");
            }
        }
    }
}

#[derive(Debug, Serialize)]
pub struct RouteSnapshot {
    pub name: String,
    /// The route's transit through the relay: the slowest output's p50 and p99 over the last
    /// 10 s, milliseconds (absent when nothing flowed). Per output in `outputs`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transit_p50_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transit_p99_ms: Option<f64>,
    pub input: LinkSnapshot,
    pub outputs: Vec<LinkSnapshot>,
}

impl Route {
    /// Opens every link (so a bad address or a busy port fails here, before anything runs),
    /// then starts the threads.
    pub fn start(spec: RouteSpec, metrics: Arc<Metrics>) -> Result<Route, LinkError> {
        let input = spec.input.open_input()?;
        let mut links = Vec::with_capacity(spec.outputs.len());
        for o in &spec.outputs {
            links.push((o, o.endpoint.open_output()?));
        }

        let shared = Arc::new(Shared {
            name: spec.name.clone(),
            stop: AtomicBool::new(false),
            metrics: metrics.clone(),
            settings: spec.settings.clone(),
        });
        let pipe = Arc::new(Pipe::new());
        let input_status = Arc::new(LinkStatus::new(
            "input",
            spec.input.to_string(),
            spec.input.transport(),
        ));
        let lm = metrics.link(LinkLabels {
            route: spec.name.clone(),
            side: Side::input,
            output: String::new(),
        });
        let mut route = Route {
            stream: spec.input.published_stream(),
            shared: shared.clone(),
            pipe: pipe.clone(),
            input_status: input_status.clone(),
            input_metrics: stats::LinkHandles::input(lm.clone()),
            input_thread: None,
            outputs: Vec::new(),
        };
        for (o, link) in links {
            route.spawn_output(o, link)?;
        }

        let handle = spawn(format!("in:{}", spec.name), move || {
            input::run(input, &pipe, input_status, lm, &shared)
        })?;
        route.input_thread = Some(handle);
        Ok(route)
    }

    fn spawn_output(
        &mut self,
        o: &OutputSpec,
        link: Box<dyn crate::relay::OutputLink>,
    ) -> Result<(), LinkError> {
        let settings = &self.shared.settings;
        let slot = OutputSlot::new(o.name.clone(), settings.queue_packets);
        let mut status = LinkStatus::new(&o.name, o.endpoint.to_string(), o.endpoint.transport());
        status.time_buffer_ms = Some(o.time_buffer.as_millis() as u64);
        let status = Arc::new(status);
        let lm = self.shared.metrics.link(LinkLabels {
            route: self.shared.name.clone(),
            side: Side::output,
            output: o.name.clone(),
        });
        let held = TimeBuffer::new(
            o.time_buffer.as_micros() as i64,
            settings.time_buffer_packets(o.time_buffer),
        );
        let handles = stats::LinkHandles::output(lm.clone(), &self.shared.metrics);
        let shared = self.shared.clone();
        let (thread_slot, thread_status) = (slot.clone(), status.clone());
        let handle = spawn(format!("out:{}", o.name), move || {
            output::run(link, thread_slot, thread_status, lm, held, &shared)
        })?;
        // Attached only once its thread runs, so the Pipe never feeds a slot nobody drains.
        self.pipe.attach(slot.clone());
        self.outputs.push(RunningOutput {
            name: o.name.clone(),
            status,
            slot,
            metrics: handles,
            thread: Some(handle),
        });
        Ok(())
    }

    /// Adds an output to the running route; the input and the other outputs are untouched.
    pub fn add_output(&mut self, o: &OutputSpec) -> Result<(), LinkError> {
        if self.outputs.iter().any(|r| r.name == o.name) {
            return Err(LinkError::Fatal(format!(
                "route '{}' already has an output '{}'",
                self.shared.name, o.name
            )));
        }
        let link = o.endpoint.open_output()?;
        self.spawn_output(o, link)
    }

    /// Stops and removes one output; the input and the other outputs are untouched. False if
    /// there is no such output.
    pub fn remove_output(&mut self, name: &str) -> bool {
        let Some(i) = self.outputs.iter().position(|o| o.name == name) else {
            return false;
        };
        let mut out = self.outputs.remove(i);
        self.pipe.detach(name);
        out.stop(&self.shared.name);
        self.shared.metrics.forget_output(&self.shared.name, name);
        true
    }

    pub fn output_names(&self) -> Vec<String> {
        self.outputs.iter().map(|o| o.name.clone()).collect()
    }

    pub fn name(&self) -> &str {
        &self.shared.name
    }

    pub fn stream(&self) -> Option<&str> {
        self.stream.as_deref()
    }

    /// Wall-clock ms (Unix epoch) the input's current connection started, if connected.
    pub fn input_connected_at_ms(&self) -> Option<u64> {
        self.input_status.connected_at_ms()
    }

    /// The first fatal error of any side, if one happened (the route cannot go on).
    pub fn failure(&self) -> Option<String> {
        std::iter::once(&self.input_status)
            .chain(self.outputs.iter().map(|o| &o.status))
            .find(|s| s.state() == LinkState::Failed)
            .and_then(|s| s.error())
    }

    pub fn snapshot(&self) -> RouteSnapshot {
        let outputs: Vec<LinkSnapshot> = self.outputs.iter().map(|o| o.status.snapshot()).collect();
        let worst =
            |f: fn(&LinkSnapshot) -> Option<f64>| outputs.iter().filter_map(f).reduce(f64::max);
        RouteSnapshot {
            name: self.shared.name.clone(),
            transit_p50_ms: worst(|o| o.transit_p50_ms),
            transit_p99_ms: worst(|o| o.transit_p99_ms),
            input: self.input_status.snapshot(),
            outputs,
        }
    }

    /// Live figures of every side, read from the metric handles the route threads update.
    pub fn stats(&self) -> stats::RouteStats {
        stats::RouteStats {
            name: self.shared.name.clone(),
            input: self.input_metrics.read(&self.input_status),
            outputs: self
                .outputs
                .iter()
                .map(|o| o.metrics.read(&o.status))
                .collect(),
        }
    }

    /// Stops every thread and waits for them; links close as their threads end.
    pub fn stop(mut self) {
        self.halt();
    }

    /// Stops the route and removes its series from the metrics (a route taken out of the
    /// configuration).
    pub fn retire(mut self) {
        self.halt();
        let (metrics, name) = (&self.shared.metrics, &self.shared.name);
        for o in &self.outputs {
            metrics.forget_output(name, &o.name);
        }
        metrics.forget_link(&LinkLabels {
            route: name.clone(),
            side: Side::input,
            output: String::new(),
        });
    }

    fn halt(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        self.pipe.close();
        let name = self.shared.name.clone();
        for o in &mut self.outputs {
            o.stop(&name);
        }
        if let Some(t) = self.input_thread.take() {
            if t.join().is_err() {
                tracing::error!(route = %name, "the input thread panicked");
            }
        }
    }
}

impl Drop for Route {
    fn drop(&mut self) {
        self.halt();
    }
}

fn spawn(name: String, f: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>, LinkError> {
    std::thread::Builder::new()
        .name(name)
        .spawn(f)
        .map_err(|e| LinkError::Fatal(format!("cannot start a thread: {e}")))
}

impl Shared {
    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }
}
