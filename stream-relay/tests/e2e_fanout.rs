//! One input, several outputs of any protocol, through real peers: srt-live-transmit,
//! ristsender/ristreceiver, ffmpeg/ffprobe and plain UDP. Each output is isolated from the
//! others, and an output's time buffer delays and paces it without touching the rest.

mod common;

use common::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const IN: &str = r#"relay_packets_total{route="main",side="input",output=""}"#;
const PEERS_IN: &str = r#"relay_peers{route="main",side="input",output=""}"#;

fn peers_out(n: usize) -> String {
    format!(r#"relay_peers{{route="main",side="output",output="out{n}"}}"#)
}

fn wait_peers(relay: &Relay, series: &str, at_least: f64) {
    let v = relay.wait_metric(series, at_least, Duration::from_secs(10));
    assert!(
        v >= at_least,
        "{series} stayed at {v}; log:\n{}",
        relay.logs()
    );
}

#[test]
fn srt_in_goes_out_as_srt_rist_and_udp_byte_exact() {
    if !require("srt-live-transmit") || !require("ristreceiver") {
        return;
    }
    let relay_in = free_port();
    let srt_out = free_port();
    let rist_out = free_port();
    let (sink_srt, sink_rist, sink_udp) = (UdpSink::new(), UdpSink::new(), UdpSink::new());
    let relay = Relay::start(&[
        "srt",
        "-i",
        &format!("srt://:{relay_in}?mode=listener"),
        "-o",
        &format!("srt://127.0.0.1:{srt_out}"),
        "-o",
        &format!("rist://127.0.0.1:{rist_out}?buffer=200"),
        "-o",
        &format!("udp://127.0.0.1:{}", sink_udp.port),
    ]);
    let _dst_srt = slt(&[
        &format!("srt://:{srt_out}?mode=listener"),
        &format!("udp://127.0.0.1:{}", sink_srt.port),
    ]);
    let _dst_rist = rist_tool(
        "ristreceiver",
        &[
            "-i",
            &format!("rist://@127.0.0.1:{rist_out}?buffer=200"),
            "-o",
            &format!("udp://127.0.0.1:{}", sink_rist.port),
        ],
    );
    let src_udp = free_port();
    let _src = slt(&[
        &format!("udp://127.0.0.1:{src_udp}"),
        &format!("srt://127.0.0.1:{relay_in}"),
    ]);
    wait_peers(&relay, PEERS_IN, 1.0);
    wait_peers(&relay, &peers_out(1), 1.0);
    // The RIST receiver answers once it hears the relay's sender.
    wait_peers(&relay, &peers_out(2), 1.0);
    let count = 2000; // 2 s at 10 Mbps
    let (got, ()) = collect_all(&[&sink_srt, &sink_rist, &sink_udp], || {
        send_udp(src_udp, 0, count, 10.0);
        // A live stream goes on; the tail only makes sure nothing is pending at the end.
        send_udp(src_udp, 100_000, 100, 10.0);
    });
    assert_range_exact("srt output", &got[0], 0, count);
    assert_range_exact("rist output", &got[1], 0, count);
    assert_range_exact("udp output", &got[2], 0, count);
}

#[test]
fn rist_in_to_an_srt_listener_with_players_joining_leaving_and_returning() {
    if !require("srt-live-transmit") || !require("ristsender") {
        return;
    }
    let relay_in = free_port();
    let play = free_port();
    let relay = Relay::start(&[
        "rist",
        "-i",
        &format!("rist://@127.0.0.1:{relay_in}?buffer=200"),
        "-o",
        &format!("srt://:{play}?mode=listener"),
    ]);
    let src_udp = free_port();
    let _src = rist_tool(
        "ristsender",
        &[
            "-i",
            &format!("udp://127.0.0.1:{src_udp}"),
            "-o",
            &format!("rist://127.0.0.1:{relay_in}?buffer=200"),
        ],
    );
    let player = |sink: &UdpSink| {
        slt(&[
            &format!("srt://127.0.0.1:{play}"),
            &format!("udp://127.0.0.1:{}", sink.port),
        ])
    };
    let (sink1, sink2) = (UdpSink::new(), UdpSink::new());
    let _p1 = player(&sink1);
    wait_peers(&relay, &peers_out(1), 1.0);
    let mut seq = 0;
    while relay.metric(PEERS_IN) < 1.0 && seq < 5000 {
        send_udp(src_udp, seq, 50, 2.0);
        seq += 50;
    }
    wait_peers(&relay, PEERS_IN, 1.0);

    // Player 2 joins while the stream runs: it starts at some packet and from there on gets
    // every one; player 1 gets them all.
    let count = 2500; // 4 s at 5 Mbps
    let mut p2 = None;
    let (got, ()) = collect_all(&[&sink1, &sink2], || {
        std::thread::scope(|scope| {
            scope.spawn(|| send_udp(src_udp, 10_000, count, 5.0));
            std::thread::sleep(Duration::from_millis(1500));
            p2 = Some(player(&sink2));
        });
        send_udp(src_udp, 100_000, 100, 5.0);
    });
    assert_range_exact("first player", &got[0], 10_000, count);
    let late: Vec<u64> = got[1]
        .iter()
        .map(|d| seq_of(d))
        .filter(|s| (10_000..10_000 + count).contains(s))
        .collect();
    let first = *late.first().expect("the late player got nothing");
    assert!(first > 10_000, "the late player cannot have the start");
    assert_range_exact("late player", &got[1], first, 10_000 + count - first);
    assert_eq!(relay.metric(&peers_out(1)), 2.0);

    // Player 2 leaves: everything it held is freed and the other keeps playing; it returns.
    drop(p2.take());
    let deadline = Instant::now() + Duration::from_secs(10);
    while relay.metric(&peers_out(1)) > 1.0 && Instant::now() < deadline {
        send_udp(src_udp, 20_000, 50, 2.0);
    }
    assert_eq!(relay.metric(&peers_out(1)), 1.0, "the leaver still counted");
    let _p2 = player(&sink2);
    wait_peers(&relay, &peers_out(1), 2.0);
    let (got, ()) = collect_all(&[&sink1, &sink2], || {
        send_udp(src_udp, 30_000, 500, 5.0);
        send_udp(src_udp, 100_000, 100, 5.0);
    });
    assert_range_exact("first player", &got[0], 30_000, 500);
    assert_range_exact("returning player", &got[1], 30_000, 500);
}

#[test]
fn udp_from_ffmpeg_lifted_onto_srt_reads_as_a_valid_stream() {
    if !require("ffmpeg") || !require("ffprobe") {
        return;
    }
    let relay_in = free_port();
    let play = free_port();
    let relay = Relay::start(&[
        "udp",
        "-i",
        &format!("udp://127.0.0.1:{relay_in}"),
        "-o",
        &format!("srt://:{play}?mode=listener"),
    ]);
    let _ffmpeg = ffmpeg_test_source(&format!("udp://127.0.0.1:{relay_in}?pkt_size=1316"));
    assert_ffprobe_sees_test_picture(&format!("srt://127.0.0.1:{play}"), &relay);
}

#[test]
fn a_dead_and_a_stalled_output_cost_the_healthy_ones_nothing() {
    if !require("srt-live-transmit") {
        return;
    }
    let relay_in = free_port();
    let good_srt = free_port();
    let stalled = free_port();
    let dead = free_port();
    let (sink_udp, sink_srt) = (UdpSink::new(), UdpSink::new());
    let relay = Relay::start(&[
        "srt",
        "-i",
        &format!("srt://:{relay_in}?mode=listener"),
        "-o",
        &format!("udp://127.0.0.1:{}", sink_udp.port),
        "-o",
        &format!("srt://127.0.0.1:{good_srt}"),
        "-o",
        &format!("srt://127.0.0.1:{dead}?conntimeo=300"),
        "-o",
        &format!("srt://:{stalled}?mode=listener"),
        "--reconnect-min-ms",
        "100",
    ]);
    let _good = slt(&[
        &format!("srt://:{good_srt}?mode=listener"),
        &format!("udp://127.0.0.1:{}", sink_srt.port),
    ]);
    // A player that connects and never reads: srt-live-transmit writing to a pipe nobody
    // drains blocks as soon as the pipe is full, and stops reading SRT.
    let _stalled = Proc(
        Command::new("srt-live-transmit")
            .args([&format!("srt://127.0.0.1:{stalled}"), "file://con"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn stalled player"),
    );
    let src_udp = free_port();
    let _src = slt(&[
        &format!("udp://127.0.0.1:{src_udp}"),
        &format!("srt://127.0.0.1:{relay_in}"),
    ]);
    wait_peers(&relay, PEERS_IN, 1.0);
    wait_peers(&relay, &peers_out(2), 1.0);
    wait_peers(&relay, &peers_out(4), 1.0);
    let before = relay.metric(IN);
    let count = 5000; // 5 s at 10 Mbps
    let (got, ()) = collect_all(&[&sink_udp, &sink_srt], || {
        send_udp(src_udp, 0, count, 10.0);
        send_udp(src_udp, 100_000, 100, 10.0);
    });
    assert_range_exact("udp output", &got[0], 0, count);
    assert_range_exact("srt output", &got[1], 0, count);
    assert!(relay.metric(IN) - before >= count as f64);
    let m = relay.metrics();
    let down = metric_value(
        &m,
        r#"relay_packets_dropped_total{route="main",output="out3",reason="output_down"}"#,
    );
    assert!(
        down >= count as f64,
        "the dead output's drops must be counted: {down}"
    );
    assert_eq!(metric_value(&m, &peers_out(3)), 0.0);
    let (_, health) = http_get(relay.http, "/health").expect("health");
    let h: serde_json::Value = serde_json::from_str(&health).expect("json");
    let outs = &h["routes"][0]["outputs"];
    assert_eq!(outs[1]["state"], "connected", "{health}");
    assert!(
        ["connecting", "waiting"].contains(&outs[2]["state"].as_str().unwrap_or("")),
        "{health}"
    );
    // One warning per incident, not one per packet.
    let warnings = relay
        .logs()
        .lines()
        .filter(|l| l.contains("output dropping packets") && l.contains(r#""output":"out3""#))
        .count();
    assert!(
        (1..=3).contains(&warnings),
        "{warnings} drop warnings for one incident"
    );
}

#[test]
fn a_time_buffer_delays_and_paces_one_output_only() {
    let relay_in = free_port();
    let (direct, delayed) = (UdpSink::new(), UdpSink::new());
    let relay = Relay::start(&[
        "udp",
        "-i",
        &format!("udp://127.0.0.1:{relay_in}"),
        "-o",
        &format!("udp://127.0.0.1:{}", direct.port),
        "-o",
        &format!("udp://127.0.0.1:{}?time-buffer-ms=500", delayed.port),
    ]);
    std::thread::sleep(Duration::from_millis(300));
    let count = 1500; // 3 s at 5 Mbps
    let (got, ()) = std::thread::scope(|scope| {
        let a =
            scope.spawn(|| direct.collect_timed(Duration::from_secs(5), Duration::from_secs(2)));
        let b =
            scope.spawn(|| delayed.collect_timed(Duration::from_secs(5), Duration::from_secs(2)));
        send_udp(relay_in, 0, count, 5.0);
        ([a.join().expect("direct"), b.join().expect("delayed")], ())
    });
    let [a, b] = got;
    let (_, health) = http_get(relay.http, "/health").expect("health");
    let h: serde_json::Value = serde_json::from_str(&health).expect("json");
    let outs = &h["routes"][0]["outputs"];
    assert_eq!(outs[1]["time_buffer_ms"], 500, "{health}");
    assert_eq!(outs[0]["time_buffer_ms"], 0, "{health}");
    assert_eq!(outs[1]["transport"], "udp", "{health}");
    assert_eq!(a.len() as u64, count);
    assert_eq!(b.len() as u64, count);
    // Delay of each packet on the delayed output against the direct one, and the spacing of
    // the delayed output against the source's (every 2.1 ms at 5 Mbps).
    let mut delays: Vec<f64> = a
        .iter()
        .zip(&b)
        .map(|((ta, da), (tb, db))| {
            assert_eq!(da, db, "same packets in the same order");
            tb.duration_since(*ta).as_secs_f64() * 1000.0
        })
        .collect();
    delays.sort_by(f64::total_cmp);
    let median = delays[delays.len() / 2];
    assert!(
        (490.0..=520.0).contains(&median),
        "median extra delay {median:.1} ms, expected ~500"
    );
    let interval = 1316.0 * 8.0 / 5e6 * 1000.0;
    let mut errors: Vec<f64> = b
        .windows(2)
        .map(|w| (w[1].0.duration_since(w[0].0).as_secs_f64() * 1000.0 - interval).abs())
        .collect();
    errors.sort_by(f64::total_cmp);
    let p99 = errors[errors.len() * 99 / 100];
    eprintln!("time buffer: median delay {median:.2} ms, p99 pacing error {p99:.2} ms");
    assert!(
        p99 < 5.0,
        "delayed output is not paced like the source: p99 error {p99:.2} ms"
    );
}
