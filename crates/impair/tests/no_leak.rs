//! Stopping a proxy must leave no threads behind. Kept in its own test binary
//! so no other test spawns threads while /proc/self/task is being counted.

use std::net::UdpSocket;
use std::thread;
use std::time::{Duration, Instant};

use impair::{Impairment, Proxy};

fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

#[test]
fn stop_and_drop_join_every_thread() {
    let before = thread_count();
    // No helper threads here: the upstream is a plain socket this thread
    // answers, so every extra thread belongs to the proxy.
    let upstream = UdpSocket::bind("127.0.0.1:0").unwrap();
    upstream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let delayed = Impairment {
        delay: Duration::from_millis(2),
        ..Default::default()
    };

    for use_drop in [false, true] {
        let proxy = Proxy::start(
            "127.0.0.1:0".parse().unwrap(),
            upstream.local_addr().unwrap(),
            delayed,
            delayed,
        )
        .unwrap();
        let clients: Vec<UdpSocket> = (0..3)
            .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
            .collect();
        let mut buf = [0u8; 64];
        for c in &clients {
            c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            c.send_to(b"ping", proxy.local_addr()).unwrap();
            let (n, peer) = upstream.recv_from(&mut buf).unwrap();
            upstream.send_to(&buf[..n], peer).unwrap();
            assert_eq!(c.recv(&mut buf).unwrap(), 4);
        }
        // listener + scheduler + one reader per client.
        assert!(
            thread_count() >= before + 2 + clients.len(),
            "threads not started?"
        );
        assert_eq!(proxy.stats().clients, 3);

        if use_drop {
            drop(proxy);
        } else {
            proxy.stop();
        }
        // A joined thread can linger in /proc for a moment while the kernel
        // reaps it, so poll briefly rather than compare once.
        let deadline = Instant::now() + Duration::from_secs(2);
        while thread_count() != before {
            assert!(
                Instant::now() < deadline,
                "{} threads before start, {} after stop",
                before,
                thread_count()
            );
            thread::sleep(Duration::from_millis(10));
        }
    }
}
