//! A route's RIST input delivers on librist's own thread (`InputLink::push_to`): the relay
//! stays byte-exact, the route's input thread no longer wakes once per packet, and stopping a
//! route or removing its output while packets arrive is clean (no panic caught at the FFI
//! boundary, no hang; nothing touched after librist stops). In-process, through the real
//! librist and its tools, so a use-after-free would take this test down: run it under
//! AddressSanitizer from time to time.

mod common;

use common::*;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use stream_relay::common::metrics::{Metrics, CALLBACK_PANICS};
use stream_relay::rist::uri::{Profile, RistEndpoint};
use stream_relay::route::{OutputSpec, Route, RouteSettings, RouteSpec};

const ROUTE: &str = "push";
const BUFFER: u32 = 200;

fn endpoint(uri: &str) -> Arc<RistEndpoint> {
    Arc::new(RistEndpoint::parse(uri, Profile::Main).expect("valid RIST URI"))
}

fn output(port: u16) -> OutputSpec {
    OutputSpec {
        name: "out".into(),
        endpoint: endpoint(&format!("rist://127.0.0.1:{port}?buffer={BUFFER}")),
        time_buffer: Duration::ZERO,
    }
}

fn start(in_port: u16, out_port: u16) -> Route {
    let spec = RouteSpec {
        name: ROUTE.into(),
        input: endpoint(&format!("rist://@127.0.0.1:{in_port}?buffer={BUFFER}")),
        outputs: vec![output(out_port)],
        settings: RouteSettings::default(),
    };
    Route::start(spec, Arc::new(Metrics::new())).expect("start the route")
}

/// ristreceiver listening on `port`, writing to `sink`.
fn receiver(port: u16, sink: &UdpSink) -> Proc {
    rist_tool(
        "ristreceiver",
        &[
            "-i",
            &format!("rist://@127.0.0.1:{port}?buffer={BUFFER}"),
            "-o",
            &format!("udp://127.0.0.1:{}", sink.port),
        ],
    )
}

fn wait_for(cond: impl Fn() -> bool, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}

/// Context switches so far of this process's thread named `name`.
fn switches(name: &str) -> u64 {
    for task in std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .flatten()
    {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim_end() == name {
            let status = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
            return status
                .lines()
                .filter(|l| l.contains("ctxt_switches:"))
                .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum();
        }
    }
    panic!("no thread named {name}");
}

#[test]
fn a_rist_input_delivers_on_librists_thread_byte_exact_without_waking_the_route_per_packet() {
    if !require("ristsender") || !require("ristreceiver") {
        return;
    }
    let (in_port, out_port, src_udp) = (free_port(), free_port(), free_port());
    let sink = UdpSink::new();
    let _dst = receiver(out_port, &sink);
    let _src = rist_tool(
        "ristsender",
        &[
            "-i",
            &format!("udp://127.0.0.1:{src_udp}"),
            "-o",
            &format!("rist://127.0.0.1:{in_port}?buffer={BUFFER}"),
        ],
    );
    let route = start(in_port, out_port);

    // RIST has no handshake: warm up until both sides see a peer, then drain.
    let mut seq = 0;
    let connected = || {
        let s = route.stats();
        s.input.peers >= 1 && s.outputs[0].peers >= 1
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !connected() && Instant::now() < deadline {
        send_udp(src_udp, seq, 50, 2.0);
        seq += 50;
    }
    assert!(connected(), "not connected: {:?}", route.snapshot());
    sink.collect(Duration::from_millis(800), Duration::from_millis(800));

    let before = route.stats();
    let woke = switches(&format!("in:{ROUTE}"));
    let count = 2000; // ~2 s at 10 Mbps
    let (got, ()) = sink.collect_during(|| send_udp(src_udp, 100_000, count, 10.0));
    let woke = switches(&format!("in:{ROUTE}")) - woke;
    assert_range_exact("sink", &got, 100_000, count);
    let after = route.stats();
    assert_eq!(
        after.input.packets_total - before.input.packets_total,
        count
    );
    assert_eq!(
        after.outputs[0].packets_total - before.outputs[0].packets_total,
        count
    );
    // About 3.5 s of polls at 100 ms, where reading woke it once per packet (2,000 times).
    assert!(
        woke < count / 10,
        "the input thread woke {woke} times for {count} packets"
    );
    route.stop();
}

#[test]
fn stopping_or_removing_while_packets_flow_is_clean() {
    if !require("ristsender") || !require("ristreceiver") {
        return;
    }
    let (in_port, out_port) = (free_port(), free_port());
    let sink = UdpSink::new();
    let _dst = receiver(out_port, &sink);
    // Keeps sending at 20 Mbps across the routes below: each one starts and stops with
    // librist's flow thread busy in the data callback.
    let _src = LiveSource::rist(in_port, 20_000);
    let panics = CALLBACK_PANICS.load(Ordering::Relaxed);
    for round in 0..4 {
        let mut route = start(in_port, out_port);
        let flowing = |route: &Route, at_least: u64| {
            wait_for(
                || route.stats().outputs[0].packets_total >= at_least,
                Duration::from_secs(10),
            )
        };
        assert!(flowing(&route, 500), "round {round}: nothing relayed");
        // Out and back in under the input's feet: the output leaves direct delivery while
        // librist's thread is delivering to it.
        assert!(route.remove_output("out"));
        route
            .add_output(&output(out_port))
            .expect("add the output back");
        assert!(
            flowing(&route, 500),
            "round {round}: the new output got nothing"
        );
        let input_before = route.stats().input.packets_total;
        assert!(
            wait_for(
                || route.stats().input.packets_total > input_before,
                Duration::from_secs(2)
            ),
            "round {round}: the input stopped counting"
        );

        let t = Instant::now();
        if round % 2 == 0 {
            route.stop();
        } else {
            route.retire();
        }
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "round {round}: stopping took {:?}",
            t.elapsed()
        );
    }
    assert_eq!(
        CALLBACK_PANICS.load(Ordering::Relaxed),
        panics,
        "a callback panicked"
    );
}
