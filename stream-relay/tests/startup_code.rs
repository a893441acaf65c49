//! Once it runs, the relay gives back the pages of its binary that only start-up touched
//! (`common/startup_code.rs`), and what keeps running comes back by itself.

mod common;

use common::{free_port, status_kb, Relay, UdpSink};
use std::time::Duration;

#[test]
fn start_up_pages_are_given_back_and_the_relay_keeps_relaying() {
    let input = free_port();
    let sink = UdpSink::new();
    let relay = Relay::start(&[
        "udp",
        "-i",
        &format!("udp://127.0.0.1:{input}"),
        "-o",
        &format!("udp://127.0.0.1:{}", sink.port),
        "--log-level",
        "debug",
    ]);
    let released = relay.wait_log_line("start-up code released");
    let event: serde_json::Value = serde_json::from_str(&released).expect("a JSON log line");
    let bytes = event["bytes"].as_u64().expect("bytes");
    // The binary's code alone is megabytes.
    assert!(bytes > 1 << 20, "released only {bytes} bytes: {released}");

    // The resident set fell below its peak by a good part of what start-up had touched. Idle,
    // nothing else makes it fall: without the release it stays within a few pages of it.
    let pid = relay.proc.0.id();
    std::thread::sleep(Duration::from_millis(300));
    let (peak, now) = (status_kb(pid, "VmHWM"), status_kb(pid, "VmRSS"));
    assert!(
        peak >= now + 512,
        "resident {now} kB against a peak of {peak} kB"
    );

    // The code that was unmapped is read back in as it runs: packets still pass, exactly.
    let (got, ()) = sink.collect_during(|| common::send_udp(input, 0, 500, 2.0));
    common::assert_range_exact("after the release", &got, 0, 500);
}
