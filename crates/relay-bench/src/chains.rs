//! The chains: source -> edge -> [hop 1, maybe impaired] -> relay -> edge -> sink, and the
//! baseline without the relay (edge -> [hop 1] -> edge). Edges are the reference tools.

use crate::procs::{free_port, free_port_pair, locate, Proc};
use anyhow::Result;
use impair::{Impairment, Proxy, ProxyHandle};
use std::path::Path;
use std::time::Duration;

/// SRT latency on every hop, and RIST buffer, as in issue 5.
pub const SRT_LATENCY_MS: u32 = 120;
pub const RIST_BUFFER_MS: u32 = 200;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Family {
    Srt,
    /// RIST simple profile (RTP on P, RTCP on P+1) on hop 1: what rist2rist's input speaks
    /// (its output speaks main, so the last edge does too when rist2rist is in the chain).
    RistSimple,
    /// RIST main profile (one GRE port).
    RistMain,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RelayKind {
    /// stream-relay srt, default settings.
    StreamRelaySrt,
    /// srt-live-transmit SRT->SRT, default settings.
    Slt,
    /// rist2rist (librist), buffer=200 ms.
    Rist2rist,
    /// stream-relay rist, default settings (needs the `rist` subcommand).
    StreamRelayRist,
    /// stream-relay rist --profile simple: the same hop 1 as rist2rist (its input speaks only
    /// the simple profile), to compare the two relays' CPU on equal input work. Not in the
    /// default set.
    StreamRelayRistSimple,
}

impl RelayKind {
    pub fn family(self) -> Family {
        match self {
            RelayKind::StreamRelaySrt | RelayKind::Slt => Family::Srt,
            RelayKind::Rist2rist | RelayKind::StreamRelayRistSimple => Family::RistSimple,
            RelayKind::StreamRelayRist => Family::RistMain,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            RelayKind::StreamRelaySrt => "stream-relay srt",
            RelayKind::Slt => "srt-live-transmit",
            RelayKind::Rist2rist => "rist2rist",
            RelayKind::StreamRelayRist => "stream-relay rist",
            RelayKind::StreamRelayRistSimple => "stream-relay rist (simple)",
        }
    }

    pub fn is_stream_relay(self) -> bool {
        matches!(
            self,
            RelayKind::StreamRelaySrt
                | RelayKind::StreamRelayRist
                | RelayKind::StreamRelayRistSimple
        )
    }
}

/// What "impaired" means on hop 1 (each direction).
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct HopImpairment {
    pub loss: f64,
    pub delay_ms: f64,
    pub jitter_ms: f64,
}

fn impairment(h: &HopImpairment, seed: u64) -> Impairment {
    Impairment {
        loss: h.loss,
        delay: Duration::from_secs_f64(h.delay_ms / 1000.0),
        jitter: Duration::from_secs_f64(h.jitter_ms / 1000.0),
        seed,
        ..Impairment::default()
    }
}

/// A running chain. Dropping it stops everything.
pub struct Chain {
    /// Where the source sends.
    pub input_port: u16,
    /// The relay's process (None for the baseline) and its HTTP port (stream-relay only).
    pub relay: Option<Proc>,
    pub http_port: Option<u16>,
    // Field order is drop order: the source-side edge first, the sink side last.
    edge_in: Option<Proc>,
    proxies: Vec<ProxyHandle>,
    edge_out: Option<Proc>,
}

impl Chain {
    pub fn check_alive(&mut self) -> Result<()> {
        for p in [&mut self.edge_in, &mut self.relay, &mut self.edge_out]
            .into_iter()
            .flatten()
        {
            p.check_alive()?;
        }
        Ok(())
    }

    pub fn stop(mut self) {
        self.edge_in.take();
        self.proxies.clear();
        self.relay.take();
        self.edge_out.take();
    }
}

pub struct Options<'a> {
    pub stream_relay: &'a str,
    pub logdir: &'a Path,
    pub impaired: bool,
    pub hop: HopImpairment,
    pub seed: u64,
}

fn s(v: impl Into<String>) -> String {
    v.into()
}

/// Hop 1 from `from_port` (what the first edge calls) to `to_port` (the relay or the second
/// edge): direct, or through the impairment proxy in both directions. RIST simple profile
/// needs the RTCP port (P+1) proxied too.
fn hop1(o: &Options, family: Family, to_port: u16, proxies: &mut Vec<ProxyHandle>) -> Result<u16> {
    if !o.impaired {
        return Ok(to_port);
    }
    let pair = family == Family::RistSimple;
    loop {
        let from = if pair { free_port_pair() } else { free_port() };
        let mut started = Vec::new();
        let ports: &[u16] = if pair { &[0, 1] } else { &[0] };
        let mut ok = true;
        for (i, d) in ports.iter().enumerate() {
            let listen = ([127, 0, 0, 1], from + d).into();
            let up = ([127, 0, 0, 1], to_port + d).into();
            let seed = o.seed.wrapping_mul(1000) + i as u64 * 2;
            match Proxy::start(
                listen,
                up,
                impairment(&o.hop, seed),
                impairment(&o.hop, seed + 1),
            ) {
                Ok(p) => started.push(p),
                Err(_) => {
                    ok = false;
                    break;
                }
            }
        }
        if ok {
            proxies.extend(started);
            return Ok(from);
        }
    }
}

/// Diagnostics for an SRT edge (srt-live-transmit) when `RELAY_BENCH_EDGE_STATS` is set: its
/// libsrt counters every 100 packets, as totals, in `<name>-stats.csv` next to the logs (its
/// stdout goes nowhere), to tell which hop a missing packet died on.
fn edge_stats(logs: &Path, name: &str) -> Vec<String> {
    if std::env::var_os("RELAY_BENCH_EDGE_STATS").is_none() {
        return Vec::new();
    }
    vec![
        s("-s:100"),
        s("-pf:csv"),
        s("-f"),
        format!(
            "-statsout:{}",
            logs.join(format!("{name}-stats.csv")).display()
        ),
    ]
}

/// Builds and starts a chain for `family`, with `relay` in the middle or none (baseline).
pub fn start(
    o: &Options,
    family: Family,
    relay: Option<RelayKind>,
    sink_port: u16,
) -> Result<Chain> {
    let pair = family == Family::RistSimple;
    let port = || if pair { free_port_pair() } else { free_port() };
    let input_port = free_port();
    let out_port = port(); // the second edge listens here
    let logs = o.logdir;
    let mut proxies = Vec::new();
    let lat = SRT_LATENCY_MS;
    let buf = RIST_BUFFER_MS;

    let edge_out = match family {
        Family::Srt => {
            let mut args = vec![
                format!("srt://:{out_port}?mode=listener&latency={lat}"),
                format!("udp://127.0.0.1:{sink_port}"),
            ];
            args.extend(edge_stats(logs, "edge-out"));
            Proc::spawn("edge-out", "srt-live-transmit", &args, logs)?
        }
        Family::RistSimple | Family::RistMain => Proc::spawn(
            "edge-out",
            "ristreceiver",
            &[
                s("-p"),
                // rist2rist takes the simple profile in but sends the main profile out.
                s(if pair && relay != Some(RelayKind::Rist2rist) {
                    "0"
                } else {
                    "1"
                }),
                s("-S"),
                s("0"),
                s("-v"),
                s("4"),
                s("-i"),
                format!("rist://@127.0.0.1:{out_port}?buffer={buf}"),
                s("-o"),
                format!("udp://127.0.0.1:{sink_port}"),
            ],
            logs,
        )?,
    };

    let (relay_proc, http_port, target) = match relay {
        None => (None, None, out_port),
        Some(kind) => {
            let relay_in = port();
            let (program, args, http) = match kind {
                RelayKind::StreamRelaySrt => {
                    let http = free_port();
                    (
                        locate(o.stream_relay),
                        vec![
                            s("srt"),
                            s("-i"),
                            format!("srt://:{relay_in}?mode=listener"),
                            s("-o"),
                            format!("srt://127.0.0.1:{out_port}"),
                            s("--http-addr"),
                            format!("127.0.0.1:{http}"),
                            s("--log-level"),
                            s("warn"),
                        ],
                        Some(http),
                    )
                }
                RelayKind::StreamRelayRist | RelayKind::StreamRelayRistSimple => {
                    let http = free_port();
                    let profile = if kind == RelayKind::StreamRelayRist {
                        "main"
                    } else {
                        "simple"
                    };
                    (
                        locate(o.stream_relay),
                        vec![
                            s("rist"),
                            s("--profile"),
                            s(profile),
                            s("-i"),
                            format!("rist://@127.0.0.1:{relay_in}"),
                            s("-o"),
                            format!("rist://127.0.0.1:{out_port}"),
                            s("--http-addr"),
                            format!("127.0.0.1:{http}"),
                            s("--log-level"),
                            s("warn"),
                        ],
                        Some(http),
                    )
                }
                RelayKind::Slt => (
                    s("srt-live-transmit"),
                    vec![
                        format!("srt://:{relay_in}?mode=listener"),
                        format!("srt://127.0.0.1:{out_port}"),
                    ],
                    None,
                ),
                RelayKind::Rist2rist => (
                    s("rist2rist"),
                    vec![
                        s("-S"),
                        s("0"),
                        s("-v"),
                        s("4"),
                        s("-i"),
                        format!("rist://@127.0.0.1:{relay_in}?buffer={buf}"),
                        s("-o"),
                        format!("rist://127.0.0.1:{out_port}?buffer={buf}"),
                    ],
                    None,
                ),
            };
            let p = Proc::spawn("relay", &program, &args, logs)?;
            (Some(p), http, relay_in)
        }
    };

    // Listeners first: give them a moment to bind before the first edge calls.
    std::thread::sleep(Duration::from_millis(300));
    let hop_port = hop1(o, family, target, &mut proxies)?;
    let edge_in = match family {
        Family::Srt => {
            let mut args = vec![
                // A 4 MB socket buffer, so a busy machine does not make the first edge drop
                // the source's datagrams before the chain under test sees them.
                format!("udp://:{input_port}?rcvbuf=4194304"),
                format!("srt://127.0.0.1:{hop_port}?latency={lat}"),
            ];
            args.extend(edge_stats(logs, "edge-in"));
            Proc::spawn("edge-in", "srt-live-transmit", &args, logs)?
        }
        Family::RistSimple | Family::RistMain => Proc::spawn(
            "edge-in",
            "ristsender",
            &[
                s("-p"),
                s(if pair { "0" } else { "1" }),
                s("-S"),
                s("0"),
                s("-v"),
                s("4"),
                s("-i"),
                format!("udp://@127.0.0.1:{input_port}"),
                s("-o"),
                format!("rist://127.0.0.1:{hop_port}?buffer={buf}"),
            ],
            logs,
        )?,
    };
    Ok(Chain {
        input_port,
        relay: relay_proc,
        http_port,
        edge_in: Some(edge_in),
        proxies,
        edge_out: Some(edge_out),
    })
}
