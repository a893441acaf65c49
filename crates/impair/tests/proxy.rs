//! End-to-end behaviour of the proxy over loopback: timing, loss, duplication,
//! reordering, counters and per-client NAT mappings.

use std::collections::HashSet;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use impair::{Impairment, Proxy, ProxyHandle, ProxyStats};

const LOCAL: &str = "127.0.0.1:0";

fn local() -> SocketAddr {
    LOCAL.parse().unwrap()
}

fn bind() -> UdpSocket {
    let s = UdpSocket::bind(LOCAL).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    s
}

/// Collects `(index, arrival time)` of everything sent to a socket on its own
/// thread, so the kernel buffer never overflows while the test is sending.
struct Collector {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Vec<(u32, Instant)>>,
}

impl Collector {
    fn start() -> Self {
        let sock = bind();
        let addr = sock.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = Arc::clone(&stop);
            thread::spawn(move || {
                let mut got = Vec::new();
                let mut buf = [0u8; 2048];
                while !stop.load(Ordering::Relaxed) {
                    match sock.recv(&mut buf) {
                        Ok(n) => {
                            assert!(n >= 4);
                            let idx = u32::from_be_bytes(buf[..4].try_into().unwrap());
                            got.push((idx, Instant::now()));
                        }
                        Err(e)
                            if matches!(
                                e.kind(),
                                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                            ) => {}
                        Err(e) => panic!("recv: {e}"),
                    }
                }
                got
            })
        };
        Self { addr, stop, thread }
    }

    fn finish(self) -> Vec<(u32, Instant)> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

/// Waits until the proxy has sent everything it accepted (nothing queued).
fn settle(proxy: &ProxyHandle) -> ProxyStats {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = proxy.stats();
        if s.forward.in_flight() == 0 && s.backward.in_flight() == 0 {
            return s;
        }
        assert!(Instant::now() < deadline, "proxy never drained: {s:?}");
        thread::sleep(Duration::from_millis(5));
    }
}

struct Run {
    sent: Vec<Instant>,
    arrived: Vec<(u32, Instant)>,
    stats: ProxyStats,
}

/// Sends `n` numbered datagrams through a proxy with `forward` impairment,
/// pausing every `burst` packets so no socket buffer overflows (an overflow
/// would be loss the proxy didn't decide on, and break the counter checks).
fn run_forward(forward: Impairment, n: u32, burst: u32, pause: Duration) -> Run {
    let sink = Collector::start();
    let proxy = Proxy::start(local(), sink.addr, forward, Impairment::default()).unwrap();
    let client = bind();
    let mut sent = Vec::with_capacity(n as usize);
    let mut payload = [0u8; 64];
    for i in 0..n {
        payload[..4].copy_from_slice(&i.to_be_bytes());
        sent.push(Instant::now());
        client.send_to(&payload, proxy.local_addr()).unwrap();
        if (i + 1) % burst == 0 {
            thread::sleep(pause);
        }
    }
    settle(&proxy);
    // Loopback delivery is synchronous, but give the collector a moment to
    // read what the last sends queued.
    thread::sleep(Duration::from_millis(50));
    let stats = proxy.stop();
    Run {
        sent,
        arrived: sink.finish(),
        stats,
    }
}

fn assert_binomial(count: u64, n: u64, p: f64) {
    let mean = n as f64 * p;
    let bound = 5.0 * (n as f64 * p * (1.0 - p)).sqrt();
    assert!(
        (count as f64 - mean).abs() <= bound,
        "{count} of {n} at p={p}: expected {mean:.0} ± {bound:.0}"
    );
}

/// `forwarded` must equal what actually arrived, and the books must balance.
fn assert_counters_match(run: &Run, n: u32) {
    let f = run.stats.forward;
    assert_eq!(f.received, u64::from(n), "{f:?}");
    assert_eq!(f.forwarded, run.arrived.len() as u64, "{f:?}");
    assert_eq!(f.forwarded, f.received - f.dropped + f.duplicated, "{f:?}");
    assert_eq!(run.stats.backward, Default::default());
    assert_eq!(run.stats.clients, 1);
}

#[test]
fn unimpaired_passes_everything_in_order() {
    let n = 500;
    let run = run_forward(Impairment::default(), n, 10, Duration::from_millis(1));
    assert_counters_match(&run, n);
    let order: Vec<u32> = run.arrived.iter().map(|a| a.0).collect();
    assert_eq!(order, (0..n).collect::<Vec<_>>());
}

#[test]
fn fixed_delay_is_respected_and_keeps_order() {
    let delay = Duration::from_millis(20);
    let n = 40;
    let run = run_forward(
        Impairment {
            delay,
            ..Default::default()
        },
        n,
        1,
        Duration::from_millis(2),
    );
    assert_counters_match(&run, n);
    let order: Vec<u32> = run.arrived.iter().map(|a| a.0).collect();
    assert_eq!(
        order,
        (0..n).collect::<Vec<_>>(),
        "fixed delay reordered packets"
    );
    for &(i, at) in &run.arrived {
        let latency = at - run.sent[i as usize];
        assert!(latency >= delay, "packet {i} early: {latency:?}");
        // Correctness slack, not a precision benchmark.
        assert!(
            latency <= delay + Duration::from_millis(30),
            "packet {i} late: {latency:?}"
        );
    }
}

#[test]
fn jitter_stays_within_bounds() {
    let delay = Duration::from_millis(10);
    let jitter = Duration::from_millis(5);
    let n = 100;
    let run = run_forward(
        Impairment {
            delay,
            jitter,
            seed: 3,
            ..Default::default()
        },
        n,
        1,
        Duration::from_micros(500),
    );
    assert_counters_match(&run, n);
    let latencies: Vec<Duration> = run
        .arrived
        .iter()
        .map(|&(i, at)| at - run.sent[i as usize])
        .collect();
    assert!(
        latencies.iter().all(|&l| l >= delay - jitter),
        "{latencies:?}"
    );
    assert!(
        latencies
            .iter()
            .all(|&l| l <= delay + jitter + Duration::from_millis(30)),
        "{latencies:?}"
    );
    // Spread shows jitter is really applied (±5 ms drawn uniformly).
    let min = latencies.iter().min().unwrap();
    let max = latencies.iter().max().unwrap();
    assert!(*max - *min >= Duration::from_millis(4), "{min:?}..{max:?}");
}

#[test]
fn loss_rate_and_counters_end_to_end() {
    for (p, seed) in [(0.05, 7), (0.10, 8)] {
        let n = 3000;
        let run = run_forward(
            Impairment {
                loss: p,
                seed,
                ..Default::default()
            },
            n,
            10,
            Duration::from_millis(1),
        );
        assert_counters_match(&run, n);
        assert_binomial(run.stats.forward.dropped, u64::from(n), p);
        let unique: HashSet<u32> = run.arrived.iter().map(|a| a.0).collect();
        assert_eq!(unique.len(), run.arrived.len());
    }
}

#[test]
fn duplicates_arrive_and_are_counted() {
    let n = 2000;
    let run = run_forward(
        Impairment {
            duplicate: 0.1,
            seed: 21,
            ..Default::default()
        },
        n,
        10,
        Duration::from_millis(1),
    );
    assert_counters_match(&run, n);
    let dup = run.stats.forward.duplicated;
    assert_binomial(dup, u64::from(n), 0.1);
    assert_eq!(run.arrived.len() as u64, u64::from(n) + dup);
    // Every packet arrives, each at most twice, and exactly `dup` twice.
    let mut seen = vec![0u32; n as usize];
    for &(i, _) in &run.arrived {
        seen[i as usize] += 1;
    }
    assert!(seen.iter().all(|&c| c == 1 || c == 2));
    assert_eq!(seen.iter().filter(|&&c| c == 2).count() as u64, dup);
}

#[test]
fn reorder_produces_out_of_order_arrivals() {
    let n = 400;
    let run = run_forward(
        Impairment {
            reorder: 0.1,
            seed: 5,
            ..Default::default()
        },
        n,
        2,
        Duration::from_millis(1),
    );
    assert_counters_match(&run, n);
    let reordered = run.stats.forward.reordered;
    assert_binomial(reordered, u64::from(n), 0.1);
    let order: Vec<u32> = run.arrived.iter().map(|a| a.0).collect();
    // A packet is "late" if something sent after it arrived before it.
    let mut max_seen = None;
    let mut late = 0u64;
    for &i in &order {
        match max_seen {
            Some(m) if i < m => late += 1,
            _ => max_seen = Some(i),
        }
    }
    assert!(late > 0, "no out-of-order arrivals");
    // Held packets wait ≥ 10 ms while ~10 newer ones go past; a held packet
    // can be masked only by another held one arriving right before it.
    assert!(
        late <= reordered && late * 2 >= reordered,
        "late {late}, reordered {reordered}"
    );
    let mut sorted = order.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..n).collect::<Vec<_>>());
}

/// Replies to each datagram with `<peer address>|<payload>` so clients can
/// check both routing and which upstream-facing socket carried them.
struct Echo {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<HashSet<SocketAddr>>,
}

impl Echo {
    fn start() -> Self {
        let sock = bind();
        let addr = sock.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = Arc::clone(&stop);
            thread::spawn(move || {
                let mut peers = HashSet::new();
                let mut buf = [0u8; 2048];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok((n, peer)) = sock.recv_from(&mut buf) {
                        peers.insert(peer);
                        let mut reply = format!("{peer}|").into_bytes();
                        reply.extend_from_slice(&buf[..n]);
                        sock.send_to(&reply, peer).unwrap();
                    }
                }
                peers
            })
        };
        Self { addr, stop, thread }
    }

    fn finish(self) -> HashSet<SocketAddr> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

fn recv_string(sock: &UdpSocket) -> String {
    let mut buf = [0u8; 2048];
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match sock.recv(&mut buf) {
            Ok(n) => return String::from_utf8(buf[..n].to_vec()).unwrap(),
            Err(_) if Instant::now() < deadline => {}
            Err(e) => panic!("no reply: {e}"),
        }
    }
}

#[test]
fn two_clients_each_get_their_own_replies() {
    let echo = Echo::start();
    let proxy = Proxy::start(
        local(),
        echo.addr,
        Impairment::default(),
        Impairment::default(),
    )
    .unwrap();
    let a = bind();
    let b = bind();
    let mut upstream_peers = HashSet::new();
    for round in 0..20 {
        // Interleaved so a shared or mixed-up mapping would show.
        a.send_to(format!("a{round}").as_bytes(), proxy.local_addr())
            .unwrap();
        b.send_to(format!("b{round}").as_bytes(), proxy.local_addr())
            .unwrap();
        for (sock, name) in [(&a, 'a'), (&b, 'b')] {
            let reply = recv_string(sock);
            let (peer, payload) = reply.split_once('|').unwrap();
            assert_eq!(payload, format!("{name}{round}"));
            upstream_peers.insert((name, peer.to_owned()));
        }
    }
    // One stable upstream-facing socket per client, and they differ.
    assert_eq!(upstream_peers.len(), 2, "{upstream_peers:?}");
    let stats = proxy.stop();
    assert_eq!(stats.clients, 2);
    assert_eq!(stats.forward.received, 40);
    assert_eq!(stats.forward.forwarded, 40);
    assert_eq!(stats.backward.received, 40);
    assert_eq!(stats.backward.forwarded, 40);
    assert_eq!(echo.finish().len(), 2);
}

#[test]
fn backward_direction_is_impaired_independently() {
    let echo = Echo::start();
    let backward = Duration::from_millis(15);
    let proxy = Proxy::start(
        local(),
        echo.addr,
        Impairment::default(),
        Impairment {
            delay: backward,
            ..Default::default()
        },
    )
    .unwrap();
    let client = bind();
    for i in 0..10 {
        let t = Instant::now();
        client
            .send_to(format!("{i}").as_bytes(), proxy.local_addr())
            .unwrap();
        let reply = recv_string(&client);
        let rtt = t.elapsed();
        assert!(reply.ends_with(&format!("|{i}")));
        assert!(rtt >= backward, "rtt {rtt:?}");
        assert!(rtt <= backward + Duration::from_millis(30), "rtt {rtt:?}");
    }
    // Backward loss only: forward traffic all reaches upstream.
    drop(proxy);
    let proxy = Proxy::start(
        local(),
        echo.addr,
        Impairment::default(),
        Impairment {
            loss: 1.0,
            ..Default::default()
        },
    )
    .unwrap();
    let client = bind();
    for i in 0..10 {
        client
            .send_to(format!("{i}").as_bytes(), proxy.local_addr())
            .unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while proxy.stats().backward.received < 10 {
        assert!(Instant::now() < deadline, "{:?}", proxy.stats());
        thread::sleep(Duration::from_millis(5));
    }
    let s = proxy.stop();
    assert_eq!(
        (
            s.forward.forwarded,
            s.backward.dropped,
            s.backward.forwarded
        ),
        (10, 10, 0)
    );
    let mut buf = [0u8; 64];
    assert!(
        client.recv(&mut buf).is_err(),
        "reply leaked through 100% loss"
    );
    echo.finish();
}

#[test]
fn invalid_impairment_is_rejected() {
    let err = Proxy::start(
        local(),
        local(),
        Impairment {
            loss: 1.5,
            ..Default::default()
        },
        Impairment::default(),
    )
    .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
}

#[test]
fn stop_is_prompt_even_with_queued_packets() {
    let sink = bind();
    let proxy = Proxy::start(
        local(),
        sink.local_addr().unwrap(),
        Impairment {
            delay: Duration::from_secs(3600),
            ..Default::default()
        },
        Impairment::default(),
    )
    .unwrap();
    let client = bind();
    client.send_to(b"held", proxy.local_addr()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while proxy.stats().forward.received == 0 {
        assert!(Instant::now() < deadline);
        thread::sleep(Duration::from_millis(1));
    }
    let t = Instant::now();
    let stats = proxy.stop();
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "stop took {:?}",
        t.elapsed()
    );
    assert_eq!(stats.forward.in_flight(), 1);
}
