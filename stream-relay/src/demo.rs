//! `stream-relay demo`: a real relay route (SRT listener in, SRT listener out) with a generated
//! MPEG-TS stream pushed into it and a player pulling from it, all over loopback through libsrt,
//! so a newcomer sees the relay work and `/metrics` move without owning an encoder.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use stream_relay::common::config::GlobalConfig;
use stream_relay::http::AppState;
use stream_relay::route::{OutputSpec, RouteSettings, RouteSpec};
use stream_relay::srt::uri::SrtEndpoint;
use stream_relay::srt::Socket;

#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// Port the relay listens on for the (generated) publisher
    #[arg(long, default_value_t = 9000)]
    input_port: u16,
    /// Port the relay listens on for players
    #[arg(long, default_value_t = 9001)]
    output_port: u16,
    /// How long to run; 0 runs until Ctrl-C
    #[arg(long, default_value_t = 15)]
    seconds: u64,
    /// Bitrate of the generated stream, kilobits per second
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u64).range(100..=200_000))]
    kbps: u64,
}

const TS: usize = 188;
const DGRAM: usize = 7 * TS;

#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    received: AtomicU64,
    missing: AtomicU64,
}

pub fn run(config: GlobalConfig, args: DemoArgs, started: Instant) -> ExitCode {
    let input = format!(
        "srt://127.0.0.1:{}?mode=listener&latency=120",
        args.input_port
    );
    let output = format!(
        "srt://127.0.0.1:{}?mode=listener&latency=120",
        args.output_port
    );
    let (Ok(input_ep), Ok(output_ep)) = (SrtEndpoint::parse(&input), SrtEndpoint::parse(&output))
    else {
        eprintln!("stream-relay: error: invalid demo ports");
        return ExitCode::from(crate::EXIT_USAGE);
    };
    let spec = RouteSpec {
        name: "demo".into(),
        input: Arc::new(input_ep),
        outputs: vec![OutputSpec {
            name: "player".into(),
            endpoint: Arc::new(output_ep),
            time_buffer: std::time::Duration::ZERO,
        }],
        settings: RouteSettings::default(),
    };
    let http = config.http_addr;
    let in_addr: SocketAddr = ([127, 0, 0, 1], args.input_port).into();
    let out_addr: SocketAddr = ([127, 0, 0, 1], args.output_port).into();
    let seconds = args.seconds;
    let kbps = args.kbps;
    println!("stream-relay demo: relaying {input} -> {output}");
    println!("  live page: http://{http}/   metrics: curl -s http://{http}/metrics | grep '^relay_'   health: curl -s http://{http}/health");

    let until = Box::new(move |state: Arc<AppState>| {
        tokio::task::spawn_blocking(move || drive(in_addr, out_addr, kbps, seconds, &state))
    });
    let code = crate::run(
        config,
        crate::Startup::Routes(vec![spec]),
        started,
        Some(until),
    );
    println!(
        "\nTo relay a real stream, run for example:\n  stream-relay srt -i 'srt://:9000?mode=listener' -o 'srt://:9001?mode=listener'\n\
         then publish from OBS/Larix/Moblin to srt://THIS_HOST:9000 (OBS: latency in microseconds, e.g. latency=120000;\n\
         Larix/Moblin: latency in ms) or from ffmpeg:\n  ffmpeg -re -f lavfi -i testsrc=size=1280x720:rate=30 -c:v libx264 -f mpegts 'srt://127.0.0.1:9000?pkt_size=1316'\n\
         and play it with: ffplay 'srt://127.0.0.1:9001'\n\
         Over RIST (librist's tools, ffmpeg, OBS):\n  stream-relay rist -i 'rist://@0.0.0.0:8000' -o 'rist://@0.0.0.0:8002'\n\
         then send to rist://THIS_HOST:8000 and play rist://THIS_HOST:8002. Many routes: stream-relay run --config relay.toml\n\
         (see the README); live page: http://127.0.0.1:9710/ (WebSocket feed /ws), numbers: /metrics"
    );
    code
}

fn drive(in_addr: SocketAddr, out_addr: SocketAddr, kbps: u64, seconds: u64, state: &AppState) {
    let counters = Arc::new(Counters::default());
    let stop = Arc::new(AtomicBool::new(false));
    let gen = {
        let (c, s) = (counters.clone(), stop.clone());
        std::thread::spawn(move || generate(in_addr, kbps, &c, &s))
    };
    let play = {
        let (c, s) = (counters.clone(), stop.clone());
        std::thread::spawn(move || player(out_addr, &c, &s))
    };
    let start = Instant::now();
    let mut last = (0, 0);
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let t = start.elapsed().as_secs();
        let sent = counters.sent.load(Ordering::Relaxed);
        let received = counters.received.load(Ordering::Relaxed);
        // The same numbers /metrics serves, read from the same registry.
        let m = state.metrics.encode_text();
        let v = |series: &str| {
            m.lines()
                .find_map(|l| l.strip_prefix(series)?.trim().parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        println!(
            "  t={t:>3}s  generated {:>5} kbps -> relay in {:>5.0} kbps / out {:>5.0} kbps, peers {}+{}, reconnects {} -> played {:>5} kbps  (sent {sent}, received {received}, missing {})",
            (sent - last.0) * DGRAM as u64 * 8 / 1000,
            v(r#"relay_bitrate_kbps{route="demo",side="input",output=""}"#),
            v(r#"relay_bitrate_kbps{route="demo",side="output",output="player"}"#),
            v(r#"relay_peers{route="demo",side="input",output=""}"#),
            v(r#"relay_peers{route="demo",side="output",output="player"}"#),
            v(r#"relay_reconnects_total{route="demo",side="input",output=""}"#),
            (received - last.1) * DGRAM as u64 * 8 / 1000,
            counters.missing.load(Ordering::Relaxed),
        );
        last = (sent, received);
        if seconds != 0 && t >= seconds {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let _ = gen.join();
    let _ = play.join();
}

fn connect(addr: SocketAddr, stop: &AtomicBool) -> Option<Socket> {
    while !stop.load(Ordering::Relaxed) {
        let sock = Socket::new().ok()?;
        let _ = sock.set_i32(srt_sys::SRTO_RCVTIMEO, 200, "rcvtimeo");
        if sock.connect(addr).is_ok() {
            return Some(sock);
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    None
}

/// MPEG-TS datagrams on one PID with a running continuity counter and a sequence number in the
/// payload, paced to the requested bitrate.
fn generate(addr: SocketAddr, kbps: u64, c: &Counters, stop: &AtomicBool) {
    let Some(sock) = connect(addr, stop) else {
        return;
    };
    let per_sec = (kbps * 1000 / 8 / DGRAM as u64).max(1);
    let start = Instant::now();
    let mut seq: u64 = 0;
    let mut cc: u8 = 0;
    let mut buf = [0u8; DGRAM];
    while !stop.load(Ordering::Relaxed) {
        let due = start + Duration::from_secs_f64(seq as f64 / per_sec as f64);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        for (i, ts) in buf.chunks_mut(TS).enumerate() {
            ts[0] = 0x47;
            ts[1] = 0x01; // PID 0x100
            ts[2] = 0x00;
            ts[3] = 0x10 | (cc & 0x0f);
            cc = cc.wrapping_add(1);
            ts[4..12].copy_from_slice(&(seq * 7 + i as u64).to_be_bytes());
        }
        if sock.send(&buf, 0).is_err() {
            return;
        }
        c.sent.fetch_add(1, Ordering::Relaxed);
        seq += 1;
    }
}

fn player(addr: SocketAddr, c: &Counters, stop: &AtomicBool) {
    let mut buf = [0u8; 1500];
    let mut expected: Option<u64> = None;
    while !stop.load(Ordering::Relaxed) {
        let Some(sock) = connect(addr, stop) else {
            return;
        };
        while !stop.load(Ordering::Relaxed) {
            match sock.recv(&mut buf) {
                Ok(Some((n, _))) if n >= 12 => {
                    let mut s = [0u8; 8];
                    s.copy_from_slice(&buf[4..12]);
                    let seq = u64::from_be_bytes(s) / 7;
                    if let Some(e) = expected {
                        c.missing
                            .fetch_add(seq.saturating_sub(e), Ordering::Relaxed);
                    }
                    expected = Some(seq + 1);
                    c.received.fetch_add(1, Ordering::Relaxed);
                }
                Ok(_) => {}
                Err(e) if e.kind == stream_relay::srt::ErrorKind::WouldBlock => {}
                Err(_) => break,
            }
        }
    }
}
