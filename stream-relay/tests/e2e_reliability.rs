//! What an unattended relay must ride through: garbage at its ports, senders that die again
//! and again (without leaking a thread or a socket), signals, a flood of HTTP requests, and
//! secrets everywhere at the most verbose log level.

mod common;

use common::*;
use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const OUT: &str = r#"relay_packets_total{route="main",side="output",output="out1"}"#;
const PEERS_IN: &str = r#"relay_peers{route="main",side="input",output=""}"#;
const RECONNECT_IN: &str = r#"relay_reconnects_total{route="main",side="input",output=""}"#;

fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

fn threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Random bytes, truncated SRT handshakes and RTP-looking headers, `count` of them, at `port`.
fn garbage(port: u16, count: usize) {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for i in 0..count {
        let len = (next() % 1500) as usize + 1;
        let mut d: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        match i % 4 {
            // An SRT control packet header (handshake type) cut short.
            0 => d = vec![0x80, 0x00, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0][..8].to_vec(),
            // An RTP v2 header with nonsense after it.
            1 if d.len() > 12 => d[0] = 0x80,
            _ => {}
        }
        let _ = s.send_to(&d, ("127.0.0.1", port));
        if i % 20 == 0 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

/// srt-live-transmit -> relay (SRT listener, `params` on both SRT legs) -> UDP sink, connected.
struct SrtToUdp {
    relay: Relay,
    sink: UdpSink,
    srt_in: u16,
    src_udp: u16,
    _src: Proc,
}

impl SrtToUdp {
    fn start(params: &str, env: &[(&str, &str)]) -> SrtToUdp {
        let srt_in = free_port();
        let sink = UdpSink::new();
        let relay = Relay::start_env(
            &[
                "srt",
                "-i",
                &format!("srt://:{srt_in}?mode=listener{params}"),
                "-o",
                &format!("udp://127.0.0.1:{}", sink.port),
            ],
            env,
        );
        let src_udp = free_port();
        let src = slt(&[
            &format!("udp://127.0.0.1:{src_udp}"),
            &match params.strip_prefix('&') {
                Some(query) => format!("srt://127.0.0.1:{srt_in}?{query}"),
                None => format!("srt://127.0.0.1:{srt_in}"),
            },
        ]);
        relay.wait_metric(PEERS_IN, 1.0, Duration::from_secs(10));
        SrtToUdp {
            relay,
            sink,
            srt_in,
            src_udp,
            _src: src,
        }
    }
}

#[test]
fn garbage_at_every_listening_port_leaves_the_stream_intact() {
    if !require("srt-live-transmit") || !require("ristsender") || !require("ristreceiver") {
        return;
    }
    // SRT: srt-live-transmit -> relay -> UDP sink, garbage at the relay's SRT port.
    let chain = SrtToUdp::start("", &[]);
    let (srt_in, src_udp) = (chain.srt_in, chain.src_udp);
    let (got, ()) = chain.sink.collect_during(|| {
        std::thread::scope(|s| {
            s.spawn(|| garbage(srt_in, 2000));
            send_udp(src_udp, 0, 2000, 5.0);
        });
        send_udp(src_udp, 100_000, 100, 5.0);
    });
    assert_range_exact("srt with garbage", &got, 0, 2000);

    // RIST: ristsender -> relay -> UDP sink, garbage at the relay's RIST port.
    let rist_in = free_port();
    let sink = UdpSink::new();
    let relay = Relay::start(&[
        "rist",
        "-i",
        &format!("rist://@127.0.0.1:{rist_in}?buffer=200"),
        "-o",
        &format!("udp://127.0.0.1:{}", sink.port),
    ]);
    let src_udp = free_port();
    let _src = rist_tool(
        "ristsender",
        &[
            "-i",
            &format!("udp://127.0.0.1:{src_udp}"),
            "-o",
            &format!("rist://127.0.0.1:{rist_in}?buffer=200"),
        ],
    );
    let mut seq = 50_000;
    while relay.metric(PEERS_IN) < 1.0 && seq < 55_000 {
        send_udp(src_udp, seq, 50, 2.0);
        seq += 50;
    }
    sink.collect(Duration::from_millis(800), Duration::from_millis(800));
    let (got, ()) = sink.collect_during(|| {
        std::thread::scope(|s| {
            s.spawn(|| garbage(rist_in, 2000));
            send_udp(src_udp, 0, 2000, 5.0);
        });
        send_udp(src_udp, 100_000, 100, 5.0);
    });
    assert_range_exact("rist with garbage", &got, 0, 2000);

    // UDP: the first sender holds the input; another sender's garbage is ignored.
    let udp_in = free_port();
    let sink = UdpSink::new();
    let relay = Relay::start(&[
        "udp",
        "-i",
        &format!("udp://127.0.0.1:{udp_in}"),
        "-o",
        &format!("udp://127.0.0.1:{}", sink.port),
    ]);
    let sender = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let (got, ()) = sink.collect_during(|| {
        std::thread::scope(|s| {
            s.spawn(|| {
                for i in 0..2000u64 {
                    sender
                        .send_to(&datagram(i), ("127.0.0.1", udp_in))
                        .expect("send");
                    std::thread::sleep(Duration::from_micros(2000));
                }
            });
            std::thread::sleep(Duration::from_millis(50));
            garbage(udp_in, 2000);
        });
    });
    assert_range_exact("udp with garbage", &got, 0, 2000);
    assert!(relay.logs().contains("a second sender"));
}

/// Kills and restarts the sender `rounds` times; each time data must flow again within about
/// a second, and the relay must end with the threads and sockets it had.
fn ride_through_sender_restarts(protocol: &str, rounds: usize) {
    let port = free_port();
    let sink = UdpSink::new();
    let input = if protocol == "srt" {
        format!("srt://:{port}?mode=listener")
    } else {
        format!("rist://@127.0.0.1:{port}?buffer=100")
    };
    let relay = Relay::start(&[
        protocol,
        "-i",
        &input,
        "-o",
        &format!("udp://127.0.0.1:{}", sink.port),
    ]);
    let pid = relay.proc.0.id();
    let src_udp = free_port();
    let start_src = || {
        if protocol == "srt" {
            slt(&[
                &format!("udp://127.0.0.1:{src_udp}"),
                &format!("srt://127.0.0.1:{port}"),
            ])
        } else {
            rist_tool(
                "ristsender",
                &[
                    "-i",
                    &format!("udp://127.0.0.1:{src_udp}"),
                    "-o",
                    &format!("rist://127.0.0.1:{port}?buffer=100"),
                ],
            )
        }
    };
    // Drains the sink in the background so the test only watches counters.
    let drain = std::thread::spawn({
        let sock = sink.sock.try_clone().expect("clone");
        move || {
            let mut buf = [0u8; 2048];
            sock.set_read_timeout(Some(Duration::from_secs(3))).ok();
            while sock.recv(&mut buf).is_ok() {}
        }
    });
    let mut seq = 0;
    let mut flow_until = |relay: &Relay, at_least: f64, within: Duration| -> Duration {
        let t = Instant::now();
        while relay.metric(OUT) < at_least && t.elapsed() < within {
            send_udp(src_udp, seq, 20, 2.0);
            seq += 20;
        }
        t.elapsed()
    };
    let mut src = start_src();
    flow_until(&relay, 50.0, Duration::from_secs(10));
    let (fds0, threads0) = (fds(pid), threads(pid));
    let mut resumed = Vec::new();
    for round in 1..=rounds {
        drop(src);
        std::thread::sleep(Duration::from_millis(400));
        let before = relay.metric(OUT);
        src = start_src();
        let took = flow_until(&relay, before + 50.0, Duration::from_secs(10));
        assert!(
            relay.metric(OUT) >= before + 50.0,
            "{protocol} round {round}: data did not flow again; log:\n{}",
            relay.logs()
        );
        resumed.push(took.as_millis());
    }
    let reconnects = relay.wait_metric(RECONNECT_IN, rounds as f64, Duration::from_secs(5));
    assert_eq!(
        reconnects, rounds as f64,
        "{protocol}: each restart counts once"
    );
    // Dead connections are closed lazily (libsrt's garbage collector, librist's flow session
    // timeout of 2 s): give them a few seconds to go.
    let deadline = Instant::now() + Duration::from_secs(8);
    while (fds(pid) > fds0 || threads(pid) > threads0) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    let (fds1, threads1) = (fds(pid), threads(pid));
    eprintln!(
        "{protocol}: resumed after {resumed:?} ms; fds {fds0} -> {fds1}, threads {threads0} -> {threads1}"
    );
    assert!(
        resumed.iter().all(|ms| *ms < 2500),
        "{protocol}: slow to resume: {resumed:?} ms"
    );
    assert!(fds1 <= fds0, "{protocol}: fds leaked: {fds0} -> {fds1}");
    assert!(
        threads1 <= threads0,
        "{protocol}: threads leaked: {threads0} -> {threads1}"
    );
    drop(src);
    drop(relay);
    let _ = drain.join();
}

#[test]
fn srt_sender_killed_again_and_again_leaks_nothing() {
    if !require("srt-live-transmit") {
        return;
    }
    ride_through_sender_restarts("srt", 5);
}

#[test]
fn rist_sender_killed_again_and_again_leaks_nothing() {
    if !require("ristsender") {
        return;
    }
    ride_through_sender_restarts("rist", 5);
}

#[test]
fn signals_while_relaying() {
    let udp_in = free_port();
    let sink = UdpSink::new();
    let start = || {
        Relay::start(&[
            "udp",
            "-i",
            &format!("udp://127.0.0.1:{udp_in}"),
            "-o",
            &format!("udp://127.0.0.1:{}", sink.port),
        ])
    };
    let relay = start();
    send_udp(udp_in, 0, 200, 5.0);
    // SIGHUP is reserved for reload: the relay logs it and goes on relaying.
    let _ = Command::new("kill")
        .args(["-HUP", &relay.proc.0.id().to_string()])
        .status();
    // The next send_udp comes from a new port: a new UDP sender takes over after 300 ms.
    std::thread::sleep(Duration::from_millis(500));
    let before = relay.metric(OUT);
    send_udp(udp_in, 1000, 200, 5.0);
    assert!(
        relay.wait_metric(OUT, before + 200.0, Duration::from_secs(3)) >= before + 200.0,
        "SIGHUP must not stop relaying"
    );
    // SIGINT while packets flow: exit 0 within a second.
    let mut relay = relay;
    let pid = relay.proc.0.id().to_string();
    let stop = std::thread::spawn(move || send_udp(udp_in, 2000, 500, 5.0));
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    let _ = Command::new("kill").args(["-INT", &pid]).status();
    let status = relay.proc.0.wait().expect("wait");
    let took = t.elapsed();
    let _ = stop.join();
    assert_eq!(status.code(), Some(0), "SIGINT: {:?}", status);
    assert!(took < Duration::from_secs(1), "SIGINT took {took:?}");
    // SIGTERM likewise.
    let relay = start();
    send_udp(udp_in, 0, 100, 5.0);
    let (code, took, _) = relay.terminate();
    assert_eq!(code, 0);
    assert!(took < Duration::from_secs(1), "SIGTERM took {took:?}");
}

#[test]
fn an_http_flood_does_not_disturb_relaying() {
    if !require("wrk") || !require("srt-live-transmit") {
        return;
    }
    let chain = SrtToUdp::start("", &[]);
    let (relay, sink, src_udp) = (&chain.relay, &chain.sink, chain.src_udp);
    let url = format!("http://127.0.0.1:{}/health", relay.http);
    let metrics_url = format!("http://127.0.0.1:{}/metrics", relay.http);
    let (got, report) = sink.collect_during(|| {
        std::thread::scope(|s| {
            let flood = s.spawn(|| {
                Command::new("wrk")
                    .args(["-t", "2", "-c", "32", "-d", "3s", &url])
                    .stderr(Stdio::null())
                    .output()
                    .expect("run wrk")
            });
            let scrape = s.spawn(|| {
                Command::new("wrk")
                    .args(["-t", "1", "-c", "4", "-d", "3s", &metrics_url])
                    .stderr(Stdio::null())
                    .output()
                    .expect("run wrk")
            });
            send_udp(src_udp, 0, 3000, 8.0);
            send_udp(src_udp, 100_000, 100, 8.0);
            let a = String::from_utf8_lossy(&flood.join().expect("wrk").stdout).into_owned();
            let b = String::from_utf8_lossy(&scrape.join().expect("wrk").stdout).into_owned();
            format!("{a}{b}")
        })
    });
    eprintln!("{report}");
    assert_range_exact("stream under an HTTP flood", &got, 0, 3000);
    assert!(
        !report.contains("Non-2xx") && !report.contains("Socket errors"),
        "HTTP errors under load:\n{report}"
    );
    let rps: f64 = report
        .lines()
        .filter_map(|l| l.strip_prefix("Requests/sec:"))
        .filter_map(|v| v.trim().parse::<f64>().ok())
        .sum();
    assert!(rps > 0.0, "no requests answered:\n{report}");
    assert_eq!(http_get(relay.http, "/health").map(|r| r.0), Some(200));
}

#[test]
fn no_secret_anywhere_at_trace_level() {
    if !require("srt-live-transmit") {
        return;
    }
    let pass = "Srt-Passphrase-0123456789";
    let secret = "Rist-Secret-abcdefghij";
    let password = "Srp-Password-klmnopqrst";
    let runs: Vec<Vec<String>> = vec![
        vec![
            "srt".into(),
            "-i".into(),
            format!("srt://:{}?mode=listener&passphrase={pass}", free_port()),
            "-o".into(),
            format!(
                "srt://127.0.0.1:{}?passphrase={pass}&conntimeo=300",
                free_port()
            ),
            "-o".into(),
            format!(
                "rist://127.0.0.1:{}?secret={secret}&aes-type=128&username=u&password={password}",
                free_port()
            ),
        ],
        vec![
            "rist".into(),
            "-i".into(),
            format!(
                "rist://@127.0.0.1:{}?secret={secret}&aes-type=256",
                free_port()
            ),
            "-o".into(),
            format!("srt://:{}?mode=listener&passphrase={pass}", free_port()),
        ],
        vec![
            "udp".into(),
            "-i".into(),
            format!("udp://127.0.0.1:{}", free_port()),
            "-o".into(),
            format!(
                "rist://127.0.0.1:{}?secret={secret}&aes-type=256",
                free_port()
            ),
            "-o".into(),
            format!(
                "srt://127.0.0.1:{}?passphrase={pass}&conntimeo=300",
                free_port()
            ),
        ],
    ];
    // `run --config`: secrets written in the file, and referenced from the environment.
    let dir = std::env::temp_dir().join(format!("stream-relay-secrets-{}", free_port()));
    std::fs::create_dir_all(&dir).expect("dir");
    let cfg = dir.join("relay.toml");
    std::fs::write(
        &cfg,
        format!(
            "[http]\ntoken = \"${{API_TOKEN}}\"\n[[route]]\nname = \"c\"\ninput = \"srt://:{}?mode=listener&passphrase={pass}\"\noutputs = [\"rist://127.0.0.1:{}?secret=${{RIST_SECRET}}&aes-type=256\"]\n",
            free_port(),
            free_port()
        ),
    )
    .expect("config");
    let mut runs = runs;
    runs.push(vec![
        "run".into(),
        "--config".into(),
        cfg.to_str().expect("path").into(),
    ]);
    for args in runs {
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let relay = Relay::start_env(
            &argv,
            &[
                ("RUST_LOG", "trace"),
                ("API_TOKEN", password),
                ("RIST_SECRET", secret),
            ],
        );
        // Let it try its connections and log about them.
        std::thread::sleep(Duration::from_millis(1500));
        let metrics = relay.metrics();
        let (_, health) = http_get(relay.http, "/health").expect("health");
        let (_, api) = http_get(relay.http, "/api/routes").expect("api");
        let (_, _, stderr) = relay.terminate();
        assert!(stderr.lines().count() > 10, "{} logged little", argv[0]);
        for value in [pass, secret, password] {
            for (what, text) in [
                ("log and stdout", &stderr),
                ("metrics", &metrics),
                ("health", &health),
                ("api", &api),
            ] {
                assert!(
                    !text.contains(value),
                    "{} leaked a secret into its {what}",
                    argv[0]
                );
            }
        }
    }
    // A bad URI with a secret: the error line does not echo it either.
    let out = Command::new(env!("CARGO_BIN_EXE_stream-relay"))
        .args([
            "rist",
            "-i",
            &format!("rist://@0.0.0.0:8000?secret={secret}"),
        ])
        .args(["-o", "udp://127.0.0.1:9"])
        .output()
        .expect("run");
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(!all.contains(secret), "{all}");
}

#[test]
fn callers_with_a_wrong_or_no_passphrase_are_refused_counted_and_cost_nothing() {
    if !require("srt-live-transmit") {
        return;
    }
    let pass = "the-right-passphrase-42";
    let wrong = "a-wrong-passphrase-007";
    let chain = SrtToUdp::start(&format!("&passphrase={pass}"), &[("RUST_LOG", "debug")]);
    let (relay, sink, srt_in, src_udp) = (&chain.relay, &chain.sink, chain.srt_in, chain.src_udp);
    // Two impostors keep calling while the real stream flows.
    let _bad = slt(&[
        &format!("udp://127.0.0.1:{}", free_port()),
        &format!("srt://127.0.0.1:{srt_in}?passphrase={wrong}"),
    ]);
    let _clear = slt(&[
        &format!("udp://127.0.0.1:{}", free_port()),
        &format!("srt://127.0.0.1:{srt_in}"),
    ]);
    let (got, ()) = sink.collect_during(|| {
        send_udp(src_udp, 0, 2000, 5.0);
        send_udp(src_udp, 100_000, 100, 5.0);
    });
    assert_range_exact("stream while impostors call", &got, 0, 2000);
    let m = relay.metrics();
    let bad = metric_value(
        &m,
        r#"relay_callers_rejected_total{reason="bad_passphrase"}"#,
    );
    let missing = metric_value(
        &m,
        r#"relay_callers_rejected_total{reason="passphrase_missing"}"#,
    );
    assert!(bad >= 1.0 && missing >= 1.0, "refusals not counted:\n{m}");
    let logs = relay.logs();
    let summaries = logs
        .lines()
        .filter(|l| l.contains("SRT caller refused"))
        .count();
    assert!(
        (2..=6).contains(&summaries),
        "{summaries} refusal lines for {} refusals: one summary per reason, not one per attempt",
        bad + missing
    );
    assert!(
        !logs.contains(pass) && !logs.contains(wrong),
        "a passphrase reached the log"
    );
    assert_eq!(
        relay.metric(PEERS_IN),
        1.0,
        "the real sender keeps the input"
    );
}
