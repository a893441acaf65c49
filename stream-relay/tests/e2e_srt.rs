//! End to end through real peers nobody here wrote: srt-live-transmit and ffmpeg on both sides
//! of a real stream-relay process, over loopback.

mod common;

use common::*;
use std::process::{Command, Stdio};
use std::time::Duration;

const IN: &str = r#"relay_packets_total{route="main",side="input",output=""}"#;
const OUT: &str = r#"relay_packets_total{route="main",side="output",output="out1"}"#;
const RECONNECT_IN: &str = r#"relay_reconnects_total{route="main",side="input",output=""}"#;
const RECONNECT_OUT: &str = r#"relay_reconnects_total{route="main",side="output",output="out1"}"#;

/// udp -> srt-live-transmit -> relay -> srt-live-transmit -> udp, returning what arrived.
struct Chain {
    relay: Relay,
    src_udp: u16,
    relay_in: u16,
    sink: UdpSink,
    sink_srt: u16,
    src: Option<Proc>,
    dst: Option<Proc>,
    input_params: String,
    output_params: String,
}

impl Chain {
    fn new(input_params: &str, output_params: &str) -> Chain {
        let relay_in = free_port();
        let sink_srt = free_port();
        let relay = Relay::start(&[
            "srt",
            "-i",
            &format!("srt://:{relay_in}?mode=listener{input_params}"),
            "-o",
            &format!("srt://127.0.0.1:{sink_srt}?mode=caller{output_params}"),
            "--reconnect-min-ms",
            "100",
            "--reconnect-max-ms",
            "500",
        ]);
        let mut c = Chain {
            relay,
            src_udp: free_port(),
            relay_in,
            sink: UdpSink::new(),
            sink_srt,
            src: None,
            dst: None,
            input_params: input_params.to_owned(),
            output_params: output_params.to_owned(),
        };
        c.start_dst();
        c.start_src();
        c
    }

    fn start_src(&mut self) {
        self.src = Some(slt(&[
            &format!("udp://127.0.0.1:{}", self.src_udp),
            &format!(
                "srt://127.0.0.1:{}?mode=caller{}",
                self.relay_in, self.input_params
            ),
        ]));
    }

    fn start_dst(&mut self) {
        self.dst = Some(slt(&[
            &format!(
                "srt://:{}?mode=listener{}",
                self.sink_srt, self.output_params
            ),
            &format!("udp://127.0.0.1:{}", self.sink.port),
        ]));
    }

    fn wait_connected(&self) {
        self.relay.wait_connected();
    }
}

fn assert_exact(got: &[Vec<u8>], first: u64, count: u64) {
    assert_eq!(
        got.len() as u64,
        count,
        "packets out != packets in (first seq {first})"
    );
    for (i, d) in got.iter().enumerate() {
        assert_eq!(
            d,
            &datagram(first + i as u64),
            "packet {i} differs or is out of order"
        );
    }
}

#[test]
fn ten_mbps_passes_byte_exact_and_in_order() {
    if !require("srt-live-transmit") {
        return;
    }
    let chain = Chain::new("", "");
    chain.wait_connected();
    let count = 3000; // ~3 s at 10 Mbps
    let (got, during) = chain.sink.collect_during(|| {
        send_udp(chain.src_udp, 0, count, 10.0);
        chain.relay.metrics()
    });
    assert_exact(&got, 0, count);
    assert_eq!(chain.relay.metric(IN) as u64, count);
    assert_eq!(chain.relay.metric(OUT) as u64, count);
    let m = chain.relay.metrics();
    for name in [
        "relay_peers{",
        "relay_bitrate_kbps{",
        "relay_reconnects_total{",
        "relay_packets_lost_total{",
        "relay_jitter_ms{",
    ] {
        assert!(m.contains(name), "{name} missing");
    }
    let kbps = metric_value(
        &during,
        r#"relay_bitrate_kbps{route="main",side="input",output=""}"#,
    );
    assert!(
        (8000.0..13000.0).contains(&kbps),
        "bitrate should read about 10 Mbps:\n{during}"
    );
    assert_eq!(
        metric_value(
            &m,
            r#"relay_packets_lost_total{route="main",side="input",output=""}"#
        ),
        0.0
    );

    let (code, took, logs) = chain.relay.terminate();
    assert_eq!(code, 0, "SIGTERM must exit 0; log:\n{logs}");
    assert!(took < Duration::from_secs(2), "stopping took {took:?}");
    for line in logs.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(
            v.get("timestamp").is_some() && v.get("level").is_some() && v.get("message").is_some(),
            "{line}"
        );
    }
}

#[test]
fn encrypted_on_both_hops_without_leaking_the_passphrase() {
    if !require("srt-live-transmit") {
        return;
    }
    let secret = "s3cr3t-Passphrase-xyz";
    let params = format!("passphrase={secret}&pbkeylen=32");
    let relay_in = free_port();
    let sink_srt = free_port();
    let relay = Relay::start_env(
        &[
            "srt",
            "-i",
            &format!("srt://:{relay_in}?mode=listener&{params}"),
            "-o",
            &format!("srt://127.0.0.1:{sink_srt}?{params}"),
        ],
        &[("RUST_LOG", "trace")],
    );
    let sink = UdpSink::new();
    let src_udp = free_port();
    let _dst = slt(&[
        &format!("srt://:{sink_srt}?mode=listener&{params}"),
        &format!("udp://127.0.0.1:{}", sink.port),
    ]);
    let _src = slt(&[
        &format!("udp://127.0.0.1:{src_udp}"),
        &format!("srt://127.0.0.1:{relay_in}?mode=caller&{params}"),
    ]);
    relay.wait_connected();
    let (got, ()) = sink.collect_during(|| {
        send_udp(src_udp, 0, 500, 5.0);
    });
    assert_exact(&got, 0, 500);
    let metrics = relay.metrics();
    let (_, health) = http_get(relay.http, "/health").expect("health");
    let (code, _, logs) = relay.terminate();
    assert_eq!(code, 0);
    assert!(logs.lines().count() > 10, "trace logging should say a lot");
    for (what, text) in [("logs", &logs), ("metrics", &metrics), ("health", &health)] {
        assert!(!text.contains(secret), "passphrase leaked into {what}");
    }
    assert!(health.contains("passphrase=***"), "{health}");
}

#[test]
fn input_sender_killed_and_restarted_resumes_and_counts() {
    if !require("srt-live-transmit") {
        return;
    }
    let mut chain = Chain::new("", "");
    chain.wait_connected();
    send_udp(chain.src_udp, 0, 200, 5.0);
    drop(chain.src.take());
    std::thread::sleep(Duration::from_millis(300));
    chain.start_src();
    let reconnects = chain
        .relay
        .wait_metric(RECONNECT_IN, 1.0, Duration::from_secs(10));
    assert!(
        reconnects >= 1.0,
        "input reconnect not counted; log:\n{}",
        chain.relay.logs()
    );
    let before = chain.relay.metric(OUT);
    send_udp(chain.src_udp, 1000, 300, 5.0);
    let after = chain
        .relay
        .wait_metric(OUT, before + 300.0, Duration::from_secs(5));
    assert!(
        after >= before + 300.0,
        "data did not flow again: {before} -> {after}"
    );
}

#[test]
fn output_receiver_killed_and_restarted_resumes_and_counts() {
    if !require("srt-live-transmit") {
        return;
    }
    let mut chain = Chain::new("", "");
    chain.wait_connected();
    send_udp(chain.src_udp, 0, 200, 5.0);
    drop(chain.dst.take());
    // A killed receiver sends no shutdown: libsrt notices through its peer idle timeout (5 s).
    let peers = r#"relay_peers{route="main",side="output",output="out1"}"#;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while chain.relay.metric(peers) > 0.0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(chain.relay.metric(peers), 0.0, "dead receiver not detected");
    // Keep the stream flowing while the receiver is away: the relay must drop and count.
    send_udp(chain.src_udp, 200, 300, 5.0);
    std::thread::sleep(Duration::from_millis(1200));
    chain.start_dst();
    let reconnects = chain
        .relay
        .wait_metric(RECONNECT_OUT, 1.0, Duration::from_secs(10));
    assert!(
        reconnects >= 1.0,
        "output reconnect not counted; log:\n{}",
        chain.relay.logs()
    );
    let (got, ()) = chain.sink.collect_during(|| {
        send_udp(chain.src_udp, 10_000, 300, 5.0);
    });
    let fresh: Vec<_> = got.into_iter().filter(|d| seq_of(d) >= 10_000).collect();
    assert_exact(&fresh, 10_000, 300);
    let dropped = chain
        .relay
        .metric(r#"relay_packets_dropped_total{route="main",output="out1",reason="output_down"}"#);
    assert!(
        dropped > 0.0,
        "drops while the output was down must be counted"
    );
}

#[test]
fn ffmpeg_test_stream_through_the_relay_is_a_valid_stream() {
    if !require("ffmpeg") || !require("ffprobe") {
        return;
    }
    let relay_in = free_port();
    let relay_out = free_port();
    let relay = Relay::start(&[
        "srt",
        "-i",
        &format!("srt://:{relay_in}?mode=listener"),
        "-o",
        &format!("srt://:{relay_out}?mode=listener"),
    ]);
    let _ffmpeg = ffmpeg_test_source(&format!("srt://127.0.0.1:{relay_in}?pkt_size=1316"));
    assert_ffprobe_sees_test_picture(&format!("srt://127.0.0.1:{relay_out}"), &relay);
}

#[test]
fn metrics_pass_promtool() {
    if !require("promtool") {
        return;
    }
    let port = free_port();
    let relay = Relay::start(&[
        "srt",
        "-i",
        &format!("srt://:{port}"),
        "-o",
        "srt://127.0.0.1:9?conntimeo=500",
    ]);
    let metrics = relay.metrics();
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn promtool");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(metrics.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("promtool");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // promtool 2.42 exits 3 for lint advice. The only advice we accept is on the two names
    // users were promised (relay_jitter_ms, relay_bitrate_kbps), whose units are in the spec.
    let code = out.status.code().unwrap_or(-1);
    assert!(
        code == 0 || code == 3,
        "promtool failed to parse ({code}): {report}"
    );
    for line in report.lines().filter(|l| !l.trim().is_empty()) {
        let promised =
            line.starts_with("relay_jitter_ms ") || line.starts_with("relay_bitrate_kbps ");
        assert!(
            promised && line.contains("abbreviated units"),
            "promtool: {line}\n{report}"
        );
    }
    assert!(metrics.contains("relay_peers{"), "{metrics}");
}

#[test]
fn a_silent_connection_is_dropped_by_the_idle_timeout() {
    if !require("srt-live-transmit") {
        return;
    }
    let relay_in = free_port();
    let relay = Relay::start(&[
        "srt",
        "-i",
        &format!("srt://:{relay_in}?mode=listener"),
        "-o",
        &format!("srt://127.0.0.1:{}?conntimeo=500", free_port()),
        "--idle-timeout-ms",
        "700",
    ]);
    // A connected sender that never sends: a frozen encoder.
    let _src = slt(&[
        &format!("udp://127.0.0.1:{}", free_port()),
        &format!("srt://127.0.0.1:{relay_in}"),
    ]);
    let peers = r#"relay_peers{route="main",side="input",output=""}"#;
    assert_eq!(
        relay.wait_metric(peers, 1.0, Duration::from_secs(5)),
        1.0,
        "sender never connected"
    );
    // srt-live-transmit calls again at once after being dropped, so watch the log, not the
    // peers gauge: the relay must say it dropped the silent connection, and why.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let dropped = |logs: &str| {
        logs.lines()
            .any(|l| l.contains("peer disconnected") && l.contains("idle timeout"))
    };
    while !dropped(&relay.logs()) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        dropped(&relay.logs()),
        "silent input not dropped:\n{}",
        relay.logs()
    );
}

#[test]
fn rendezvous_output_and_ipv6_input() {
    if !require("srt-live-transmit") {
        return;
    }
    let relay_in = free_port();
    // Both ends on one host: each binds its own local port and calls the other's.
    let (rdv_relay, rdv_peer) = (free_port(), free_port());
    let relay = Relay::start(&[
        "srt",
        "-i",
        &format!("srt://[::1]:{relay_in}?mode=listener"),
        "-o",
        &format!("srt://127.0.0.1:{rdv_peer}?mode=rendezvous&port={rdv_relay}"),
    ]);
    let sink = UdpSink::new();
    let src_udp = free_port();
    let _dst = slt(&[
        &format!("srt://127.0.0.1:{rdv_relay}?mode=rendezvous&port={rdv_peer}"),
        &format!("udp://127.0.0.1:{}", sink.port),
    ]);
    let _src = slt(&[
        &format!("udp://127.0.0.1:{src_udp}"),
        &format!("srt://[::1]:{relay_in}"),
    ]);
    relay.wait_connected();
    let (got, ()) = sink.collect_during(|| {
        send_udp(src_udp, 0, 300, 5.0);
    });
    assert_eq!(got.len(), 300, "log:\n{}", relay.logs());
}
