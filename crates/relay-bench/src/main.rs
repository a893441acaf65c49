//! relay-bench: side-by-side latency, loss, CPU and throughput of live-video relays.
//!
//! For every relay under test it builds source -> edge -> relay -> edge -> sink on loopback,
//! and the same chain without the relay as the baseline, with the reference tools as edges
//! (srt-live-transmit for SRT, ristsender/ristreceiver for RIST). Source and sink are this
//! program: valid MPEG-TS with a send timestamp and sequence number inside, paced at a
//! constant bitrate. Added latency = chain with relay minus baseline, per percentile.
//!
//! The machine is shared and noisy, so conditions are interleaved (baseline, then each relay)
//! and the figures to compare are the differences and ratios within one run.

mod chains;
mod flow;
mod procs;
mod ts;

use anyhow::{bail, Context, Result};
use chains::{Family, RelayKind};
use clap::Parser;
use flow::{now_ns, FlowStats, Sink, Source};
use serde::Serialize;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    version,
    about = "Side-by-side latency/loss/CPU benchmark of SRT and RIST relays"
)]
struct Cli {
    /// Relays to measure (comma-separated). Default: every one available.
    #[arg(long, value_delimiter = ',')]
    relays: Vec<RelayKind>,
    /// Bitrates in Mbps for the latency runs.
    #[arg(long, value_delimiter = ',', default_value = "10,50")]
    bitrates: Vec<f64>,
    /// Conditions: clean, impaired (5% loss, 20±5 ms delay on hop 1, both directions).
    #[arg(long, value_delimiter = ',', default_value = "clean,impaired")]
    conditions: Vec<Condition>,
    /// Measurement window per run, seconds (after the first second of flow).
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Throughput ceiling steps in Mbps (stops at the first step with loss).
    #[arg(long, value_delimiter = ',', default_value = "10,50,100,200,400")]
    ceiling: Vec<f64>,
    /// Skip the throughput ceiling.
    #[arg(long)]
    no_ceiling: bool,
    /// Seconds each ceiling step must run without loss.
    #[arg(long, default_value_t = 10.0)]
    ceiling_secs: f64,
    /// Exec-to-first-/health-200 measurements (median reported); 0 to skip.
    #[arg(long, default_value_t = 7)]
    startup_runs: usize,
    /// The stream-relay binary (default: next to this one, else on PATH).
    #[arg(long, default_value = "stream-relay")]
    stream_relay: String,
    /// Impaired hop 1: random loss ratio, each direction.
    #[arg(long, default_value_t = 0.05)]
    loss: f64,
    /// Impaired hop 1: one-way delay, ms.
    #[arg(long, default_value_t = 20.0)]
    delay_ms: f64,
    /// Impaired hop 1: delay jitter (±), ms.
    #[arg(long, default_value_t = 5.0)]
    jitter_ms: f64,
    /// Repeat each latency measurement (baseline and relays, interleaved) this many times;
    /// the table shows medians and total losses.
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    /// Seed of the impairment proxy (repetition n uses seed + n).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Write the full report as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Where edge and relay logs go (default: a fresh temp directory).
    #[arg(long)]
    logdir: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
enum Condition {
    Clean,
    Impaired,
}

#[derive(Debug, Serialize)]
struct Run {
    family: Family,
    relay: Option<RelayKind>,
    relay_label: &'static str,
    condition: Condition,
    mbps: f64,
    flow: FlowStats,
    /// Relay process CPU over the window, percent of one core.
    cpu_pct: Option<f64>,
    peak_rss_mb: Option<f64>,
    /// Largest anonymous resident memory (heap, stacks, buffers: `RssAnon`) seen during the
    /// window, sampled every 100 ms. Peak RSS also counts the program's and its libraries'
    /// code and read-only data, which is fixed per process whatever the load.
    anon_mb: Option<f64>,
    /// stream-relay only: /health response time while relaying, ms.
    health_p50_ms: Option<f64>,
    health_p99_ms: Option<f64>,
    /// stream-relay only, whole run: packets its input gave up on (hop 1 not recovered in
    /// time), its outputs' libsrt/librist dropped, and it dropped itself (queues).
    relay_input_lost: Option<f64>,
    relay_output_lost: Option<f64>,
    relay_dropped: Option<f64>,
    error: Option<String>,
}

#[derive(Debug, Serialize)]
struct Added {
    relay: &'static str,
    condition: Condition,
    mbps: f64,
    /// Repetitions aggregated: figures are medians, losses are totals over all of them.
    reps: usize,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    lost: u64,
    baseline_lost: u64,
    reordered: u64,
    cpu_pct: Option<f64>,
    peak_rss_mb: Option<f64>,
    anon_mb: Option<f64>,
    health_p50_ms: Option<f64>,
    health_p99_ms: Option<f64>,
}

#[derive(Debug, Serialize)]
struct Ceiling {
    relay: &'static str,
    /// Highest step carried with zero loss (0 if none).
    mbps: f64,
    cpu_pct: Option<f64>,
    cpu_pct_per_mbps: Option<f64>,
    /// The step that failed, and how many packets it lost.
    failed_at_mbps: Option<f64>,
    failed_lost: Option<u64>,
}

#[derive(Debug, Serialize)]
struct Startup {
    runs: usize,
    median_ms: f64,
    min_ms: f64,
    max_ms: f64,
}

#[derive(Debug, Serialize)]
struct Report {
    machine: String,
    duration_s: f64,
    impaired_hop1: chains::HopImpairment,
    srt_latency_ms: u32,
    rist_buffer_ms: u32,
    added: Vec<Added>,
    ceiling: Vec<Ceiling>,
    startup: Option<Startup>,
    runs: Vec<Run>,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let logdir = match &cli.logdir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("relay-bench-{}", std::process::id())),
    };
    std::fs::create_dir_all(&logdir).with_context(|| format!("create {}", logdir.display()))?;
    let stream_relay = procs::locate(&cli.stream_relay);
    let relays = if cli.relays.is_empty() {
        default_relays(&stream_relay)
    } else {
        cli.relays.clone()
    };
    eprintln!(
        "relay-bench: relays {relays:?}, logs in {}",
        logdir.display()
    );

    let hop = chains::HopImpairment {
        loss: cli.loss,
        delay_ms: cli.delay_ms,
        jitter_ms: cli.jitter_ms,
    };
    let mut runs = Vec::new();
    let mut added = Vec::new();
    let mut families: Vec<Family> = relays.iter().map(|r| r.family()).collect();
    families.dedup();
    let window = Duration::from_secs_f64(cli.duration);
    for &cond in &cli.conditions {
        for &mbps in &cli.bitrates {
            let mut samples: Vec<Added> = Vec::new();
            // Repetitions interleave baseline and relays again, each with its own seed, so a
            // burst of load from elsewhere on the machine spoils one sample, not the figure.
            for rep in 0..cli.repeat.max(1) {
                for &family in &families {
                    let o = chains::Options {
                        stream_relay: &stream_relay,
                        logdir: &logdir,
                        impaired: cond == Condition::Impaired,
                        hop,
                        seed: cli.seed + rep as u64,
                    };
                    let base = measure(&o, family, None, mbps, window, cond);
                    print_run(&base);
                    for &r in relays.iter().filter(|r| r.family() == family) {
                        let run = measure(&o, family, Some(r), mbps, window, cond);
                        print_run(&run);
                        if run.error.is_none() && base.error.is_none() {
                            samples.push(Added {
                                relay: r.label(),
                                condition: cond,
                                mbps,
                                reps: 1,
                                p50_ms: run.flow.p50_ms - base.flow.p50_ms,
                                p99_ms: run.flow.p99_ms - base.flow.p99_ms,
                                max_ms: run.flow.max_ms - base.flow.max_ms,
                                lost: run.flow.lost,
                                baseline_lost: base.flow.lost,
                                reordered: run.flow.reordered,
                                cpu_pct: run.cpu_pct,
                                peak_rss_mb: run.peak_rss_mb,
                                anon_mb: run.anon_mb,
                                health_p50_ms: run.health_p50_ms,
                                health_p99_ms: run.health_p99_ms,
                            });
                        }
                        runs.push(run);
                    }
                    runs.push(base);
                }
            }
            for &r in &relays {
                let of: Vec<&Added> = samples.iter().filter(|a| a.relay == r.label()).collect();
                if let Some(a) = median_of(&of) {
                    added.push(a);
                }
            }
        }
    }

    let mut ceiling = Vec::new();
    if !cli.no_ceiling {
        let o = chains::Options {
            stream_relay: &stream_relay,
            logdir: &logdir,
            impaired: false,
            hop,
            seed: cli.seed,
        };
        let secs = Duration::from_secs_f64(cli.ceiling_secs);
        let mut candidates: Vec<(Family, Option<RelayKind>)> =
            families.iter().map(|&f| (f, None)).collect();
        candidates.extend(relays.iter().map(|&r| (r.family(), Some(r))));
        for (family, relay) in candidates {
            let label = relay.map_or(baseline_label(family), RelayKind::label);
            let mut c = Ceiling {
                relay: label,
                mbps: 0.0,
                cpu_pct: None,
                cpu_pct_per_mbps: None,
                failed_at_mbps: None,
                failed_lost: None,
            };
            for &mbps in &cli.ceiling {
                let run = measure(&o, family, relay, mbps, secs, Condition::Clean);
                print_run(&run);
                let ok = run.error.is_none() && run.flow.lost == 0 && run.flow.received > 0;
                if ok {
                    c.mbps = mbps;
                    c.cpu_pct = run.cpu_pct;
                    c.cpu_pct_per_mbps = run.cpu_pct.map(|p| p / mbps);
                } else {
                    c.failed_at_mbps = Some(mbps);
                    c.failed_lost = Some(run.flow.lost);
                }
                runs.push(run);
                if !ok {
                    break;
                }
            }
            ceiling.push(c);
        }
    }

    // Last, and never at the cost of the figures above: a failure here is reported, not fatal.
    let startup = if cli.startup_runs > 0 && relays.iter().any(|r| r.is_stream_relay()) {
        match startup_time(&stream_relay, &logdir, cli.startup_runs) {
            Ok(s) => Some(s),
            Err(e) => {
                eprintln!("relay-bench: startup time not measured: {e:#}");
                None
            }
        }
    } else {
        None
    };

    let report = Report {
        machine: machine(),
        duration_s: cli.duration,
        impaired_hop1: hop,
        srt_latency_ms: chains::SRT_LATENCY_MS,
        rist_buffer_ms: chains::RIST_BUFFER_MS,
        added,
        ceiling,
        startup,
        runs,
    };
    print_report(&report);
    if let Some(path) = &cli.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("write {}", path.display()))?;
        eprintln!("JSON written to {}", path.display());
    }
    Ok(())
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
}

/// One row from several repetitions of a relay's measurement.
fn median_of(samples: &[&Added]) -> Option<Added> {
    let first = samples.first()?;
    let m = |f: fn(&Added) -> f64| median(samples.iter().map(|a| f(a)).collect());
    let mo = |f: fn(&Added) -> Option<f64>| median(samples.iter().filter_map(|a| f(a)).collect());
    Some(Added {
        relay: first.relay,
        condition: first.condition,
        mbps: first.mbps,
        reps: samples.len(),
        p50_ms: m(|a| a.p50_ms).unwrap_or(f64::NAN),
        p99_ms: m(|a| a.p99_ms).unwrap_or(f64::NAN),
        max_ms: m(|a| a.max_ms).unwrap_or(f64::NAN),
        lost: samples.iter().map(|a| a.lost).sum(),
        baseline_lost: samples.iter().map(|a| a.baseline_lost).sum(),
        reordered: samples.iter().map(|a| a.reordered).sum(),
        cpu_pct: mo(|a| a.cpu_pct),
        peak_rss_mb: mo(|a| a.peak_rss_mb),
        anon_mb: mo(|a| a.anon_mb),
        health_p50_ms: mo(|a| a.health_p50_ms),
        health_p99_ms: mo(|a| a.health_p99_ms),
    })
}

fn baseline_label(f: Family) -> &'static str {
    match f {
        Family::Srt => "baseline srt (edges only)",
        Family::RistSimple => "baseline rist simple (edges only)",
        Family::RistMain => "baseline rist main (edges only)",
    }
}

/// Every relay whose tools are installed; stream-relay rist only once the binary has it.
fn default_relays(stream_relay: &str) -> Vec<RelayKind> {
    let has = |prog: &str, args: &[&str]| {
        std::process::Command::new(prog)
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let mut v = vec![RelayKind::StreamRelaySrt, RelayKind::Slt];
    if has(stream_relay, &["rist", "--help"]) {
        v.push(RelayKind::StreamRelayRist);
    }
    if has("sh", &["-c", "command -v rist2rist"]) {
        v.push(RelayKind::Rist2rist);
    }
    v
}

fn measure(
    o: &chains::Options,
    family: Family,
    relay: Option<RelayKind>,
    mbps: f64,
    window: Duration,
    cond: Condition,
) -> Run {
    let mut run = Run {
        family,
        relay,
        relay_label: relay.map_or(baseline_label(family), RelayKind::label),
        condition: cond,
        mbps,
        flow: FlowStats::default(),
        cpu_pct: None,
        peak_rss_mb: None,
        anon_mb: None,
        health_p50_ms: None,
        health_p99_ms: None,
        relay_input_lost: None,
        relay_output_lost: None,
        relay_dropped: None,
        error: None,
    };
    if let Err(e) = measure_into(o, family, relay, mbps, window, &mut run) {
        run.error = Some(format!("{e:#}"));
    }
    run
}

fn measure_into(
    o: &chains::Options,
    family: Family,
    relay: Option<RelayKind>,
    mbps: f64,
    window: Duration,
    run: &mut Run,
) -> Result<()> {
    let sink = Sink::bind().context("bind sink")?;
    let mut chain = chains::start(o, family, relay, sink.port)?;
    std::thread::sleep(Duration::from_millis(300));
    chain.check_alive()?;
    if let Some(http) = chain.http_port {
        let deadline = now_ns() + 5_000_000_000;
        while procs::http_status(http, "/health", Duration::from_millis(200)) != Some(200) {
            if now_ns() > deadline {
                bail!("stream-relay did not answer /health");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    let bitrate = (mbps * 1e6) as u64;
    let source = Source::start(([127, 0, 0, 1], chain.input_port).into(), bitrate)?;
    let deadline = now_ns() + 10_000_000_000;
    let first = loop {
        if let Some(t) = sink.first_sent_ns() {
            break t;
        }
        if now_ns() > deadline {
            chain.check_alive()?;
            bail!("no data reached the sink within 10 s");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let from = first + 1_000_000_000;
    let to = from + window.as_nanos() as u64;
    sleep_until(from);
    let pid = chain.relay.as_ref().map(procs::Proc::pid);
    let cpu0 = pid.and_then(procs::cpu_seconds);
    let t0 = now_ns();
    let mut health = Vec::new();
    while now_ns() < to {
        if let Some(mb) = pid.and_then(procs::anon_rss_mb) {
            run.anon_mb = Some(run.anon_mb.map_or(mb, |m: f64| m.max(mb)));
        }
        match chain.http_port {
            Some(http) => {
                let t = now_ns();
                if procs::http_status(http, "/health", Duration::from_secs(1)) == Some(200) {
                    health.push((now_ns() - t) / 1000);
                }
                std::thread::sleep(
                    Duration::from_millis(100)
                        .min(Duration::from_nanos(to.saturating_sub(now_ns()))),
                );
            }
            None => std::thread::sleep(
                Duration::from_millis(100).min(Duration::from_nanos(to.saturating_sub(now_ns()))),
            ),
        }
    }
    let cpu1 = pid.and_then(procs::cpu_seconds);
    let elapsed = (now_ns() - t0) as f64 / 1e9;
    if let (Some(a), Some(b)) = (cpu0, cpu1) {
        run.cpu_pct = Some((b - a) / elapsed * 100.0);
    }
    run.peak_rss_mb = pid.and_then(procs::peak_rss_mb);
    let alive = chain.check_alive();
    let sent = source.stop();
    // Let retransmissions and the receivers' buffers drain.
    std::thread::sleep(Duration::from_millis(1500));
    if let Some(http) = chain.http_port {
        // After a statistics tick, so the counters include the end of the window.
        if let Some((_, m)) = procs::http_get(http, "/metrics", Duration::from_secs(1)) {
            run.relay_input_lost = Some(procs::metric_sum(
                &m,
                "relay_packets_lost_total{route=\"main\",side=\"input\"",
            ));
            run.relay_output_lost = Some(procs::metric_sum(
                &m,
                "relay_packets_lost_total{route=\"main\",side=\"output\"",
            ));
            run.relay_dropped = Some(procs::metric_sum(&m, "relay_packets_dropped_total"));
        }
    }
    let invalid = sink.invalid.load(std::sync::atomic::Ordering::Relaxed);
    let arrivals = sink.stop();
    chain.stop();
    alive?;
    run.flow = flow::analyse(&sent, &arrivals, from, to);
    run.flow.invalid = invalid;
    if std::env::var_os("RELAY_BENCH_ARRIVALS").is_some() {
        dump_arrivals(o, run, &sent, &arrivals)?;
    }
    if !health.is_empty() {
        health.sort_unstable();
        run.health_p50_ms = Some(flow::percentile(&health, 0.5));
        run.health_p99_ms = Some(flow::percentile(&health, 0.99));
    }
    Ok(())
}

/// Diagnostics when `RELAY_BENCH_ARRIVALS` is set: every datagram the source sent, with its
/// arrival at the sink if it made it (`seq,sent_ns,recv_ns`, empty when lost), in
/// `<relay>-<condition>-<mbps>-seed<seed>-arrivals.csv` in the log directory. Shows which packets
/// were late or lost and whether they came in bursts.
fn dump_arrivals(
    o: &chains::Options,
    run: &Run,
    sent: &[u64],
    arrivals: &[flow::Arrival],
) -> Result<()> {
    use std::fmt::Write as _;
    let mut recv = vec![None; sent.len()];
    for a in arrivals {
        if let Some(r) = recv.get_mut(a.seq as usize) {
            r.get_or_insert(a.recv_ns);
        }
    }
    let mut csv = String::from("seq,sent_ns,recv_ns\n");
    for (seq, (s, r)) in sent.iter().zip(&recv).enumerate() {
        let r = r.map(|r: u64| r.to_string()).unwrap_or_default();
        let _ = writeln!(csv, "{seq},{s},{r}");
    }
    let name = format!(
        "{}-{:?}-{}-seed{}-arrivals.csv",
        run.relay_label.replace(' ', "-"),
        run.condition,
        run.mbps,
        o.seed
    );
    let path = o.logdir.join(name);
    std::fs::write(&path, csv).with_context(|| format!("write {}", path.display()))
}

fn sleep_until(t_ns: u64) {
    let now = now_ns();
    if t_ns > now {
        std::thread::sleep(Duration::from_nanos(t_ns - now));
    }
}

/// Time from exec to the first 200 from /health, with an SRT route whose peers are absent.
fn startup_time(stream_relay: &str, logdir: &std::path::Path, runs: usize) -> Result<Startup> {
    let mut ms = Vec::new();
    for i in 0..runs {
        // The HTTP port was free when picked, but on a shared machine another process's
        // outgoing connection can take it before stream-relay binds it: pick new ports then.
        let mut attempt = 0;
        let t = loop {
            attempt += 1;
            match startup_once(stream_relay, logdir, i) {
                Err(e) if attempt < 3 && format!("{e:#}").contains("Address already in use") => {}
                other => break other?,
            }
        };
        ms.push(t);
    }
    ms.sort_by(f64::total_cmp);
    Ok(Startup {
        runs,
        median_ms: ms[ms.len() / 2],
        min_ms: ms[0],
        max_ms: ms[ms.len() - 1],
    })
}

/// One exec-to-first-200 measurement, in milliseconds.
fn startup_once(stream_relay: &str, logdir: &std::path::Path, i: usize) -> Result<f64> {
    let http = procs::free_port();
    let args = vec![
        "srt".to_owned(),
        "-i".to_owned(),
        format!("srt://:{}?mode=listener", procs::free_port()),
        "-o".to_owned(),
        format!("srt://127.0.0.1:{}", procs::free_port()),
        "--http-addr".to_owned(),
        format!("127.0.0.1:{http}"),
    ];
    let t = now_ns();
    let mut p = procs::Proc::spawn(&format!("startup-{i}"), stream_relay, &args, logdir)?;
    loop {
        if procs::http_status(http, "/health", Duration::from_millis(500)) == Some(200) {
            return Ok((now_ns() - t) as f64 / 1e6);
        }
        p.check_alive()?;
        if now_ns() - t > 5_000_000_000 {
            bail!("stream-relay never answered /health");
        }
        std::thread::sleep(Duration::from_micros(500));
    }
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cpus} CPUs, {model}, Linux {}", kernel.trim())
}

fn opt(v: Option<f64>, prec: usize) -> String {
    v.map_or("-".to_owned(), |v| format!("{v:.prec$}"))
}

fn print_run(r: &Run) {
    match &r.error {
        Some(e) => eprintln!(
            "  {:<34} {:>8?} {:>5} Mbps  ERROR {e}",
            r.relay_label, r.condition, r.mbps
        ),
        None => eprintln!(
            "  {:<34} {:>8?} {:>5} Mbps  e2e p50 {:7.2} p99 {:7.2} max {:7.2} ms  lost {:>5}/{:<6} reord {:>4}  cpu {:>6}%  rss {:>6} MB (anon {:>5}){}",
            r.relay_label,
            r.condition,
            r.mbps,
            r.flow.p50_ms,
            r.flow.p99_ms,
            r.flow.max_ms,
            r.flow.lost,
            r.flow.sent,
            r.flow.reordered,
            opt(r.cpu_pct, 1),
            opt(r.peak_rss_mb, 1),
            opt(r.anon_mb, 1),
            match (r.relay_input_lost, r.relay_output_lost, r.relay_dropped) {
                (Some(i), Some(o), Some(d)) =>
                    format!("  relay counters: input lost {i} output lost {o} dropped {d}"),
                _ => String::new(),
            },
        ),
    }
}

fn print_report(rep: &Report) {
    println!("\nmachine: {}", rep.machine);
    println!(
        "SRT latency {} ms on every hop; RIST buffer {} ms; window {} s per run after the first second",
        rep.srt_latency_ms, rep.rist_buffer_ms, rep.duration_s
    );
    println!("\n| relay | condition | Mbps | runs | added p50 ms | added p99 ms | added max ms | lost after 1 s (baseline) | relay CPU % | peak RSS MB | of which anon MB |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for a in &rep.added {
        println!(
            "| {} | {:?} | {} | {} | {:+.1} | {:+.1} | {:+.1} | {} ({}) | {} | {} | {} |",
            a.relay,
            a.condition,
            a.mbps,
            a.reps,
            a.p50_ms,
            a.p99_ms,
            a.max_ms,
            a.lost,
            a.baseline_lost,
            opt(a.cpu_pct, 1),
            opt(a.peak_rss_mb, 1),
            opt(a.anon_mb, 1),
        );
    }
    let health: Vec<&Added> = rep
        .added
        .iter()
        .filter(|a| a.health_p50_ms.is_some())
        .collect();
    if !health.is_empty() {
        println!("\n| /health while relaying | condition | Mbps | p50 ms | p99 ms |");
        println!("|---|---|---|---|---|");
        for a in health {
            println!(
                "| {} | {:?} | {} | {} | {} |",
                a.relay,
                a.condition,
                a.mbps,
                opt(a.health_p50_ms, 2),
                opt(a.health_p99_ms, 2)
            );
        }
    }
    if !rep.ceiling.is_empty() {
        println!("\n| throughput ceiling (10 s, zero loss) | Mbps | CPU % there | CPU % per Mbps | first failing step |");
        println!("|---|---|---|---|---|");
        for c in &rep.ceiling {
            println!(
                "| {} | {} | {} | {} | {} |",
                c.relay,
                c.mbps,
                opt(c.cpu_pct, 1),
                opt(c.cpu_pct_per_mbps, 3),
                c.failed_at_mbps.map_or("none".to_owned(), |m| format!(
                    "{m} Mbps ({} lost)",
                    c.failed_lost.unwrap_or(0)
                )),
            );
        }
    }
    if let Some(s) = &rep.startup {
        println!(
            "\nstream-relay exec -> first /health 200: median {:.1} ms (min {:.1}, max {:.1}, {} runs)",
            s.median_ms, s.min_ms, s.max_ms, s.runs
        );
    }
    let errors: Vec<&Run> = rep.runs.iter().filter(|r| r.error.is_some()).collect();
    for r in errors {
        println!(
            "error: {} {:?} {} Mbps: {}",
            r.relay_label,
            r.condition,
            r.mbps,
            r.error.as_deref().unwrap_or("")
        );
    }
}
