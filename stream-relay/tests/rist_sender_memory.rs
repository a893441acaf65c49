//! A RIST output's memory stays flat at a high packet rate. librist 0.2.7's sender thread frees
//! at most 9 expired packets per pass and `rist_sender_data_write` wakes it only if it sleeps:
//! with writes in batches (what an output thread does) and librist's default 5 ms pass, it
//! frees at most ~1,800 packets a second and keeps the rest, so RSS grows by the difference
//! for as long as the stream lasts. `Context::new` shortens the pass for senders; this test
//! fails (about +15 MB) without that.
//!
//! Its own file, so its own process: RSS is not disturbed by other tests.

use bytes::Bytes;
use std::net::UdpSocket;
use std::time::{Duration, Instant};
use stream_relay::relay::{Packet, TransportRelay};
use stream_relay::rist::uri::{Profile, RistEndpoint};

fn rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS in /proc/self/status")
}

/// Sends `per_tick` packets back to back every 10 ms for `duration`.
fn stream(link: &mut dyn stream_relay::relay::OutputLink, per_tick: usize, duration: Duration) {
    let payload = Bytes::from(vec![0x47u8; 1316]);
    let start = Instant::now();
    let mut tick = 0u32;
    while start.elapsed() < duration {
        for _ in 0..per_tick {
            let packet = Packet::new(payload.clone(), 0, Instant::now());
            link.send(&packet).expect("librist takes the packet");
        }
        tick += 1;
        let next = start + Duration::from_millis(10) * tick;
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
}

#[test]
fn rist_output_memory_is_flat_at_50_mbps() {
    // Nobody listens on this port: a RIST sender sends (and buffers for recovery) regardless.
    let port = UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("free port")
        .port();
    let ep = RistEndpoint::parse(
        &format!("rist://127.0.0.1:{port}?buffer=200"),
        Profile::Main,
    )
    .expect("valid RIST URI");
    let mut link = ep.open_output().expect("open the RIST output");

    // 48 packets every 10 ms: 4,800 packets/s of 1316 bytes, about 50 Mbps (the default
    // --max-bitrate). The first seconds fill the recovery buffer and librist's rings.
    stream(link.as_mut(), 48, Duration::from_secs(2));
    let before = rss_kb();
    stream(link.as_mut(), 48, Duration::from_secs(5));
    let grown_kb = rss_kb().saturating_sub(before);
    eprintln!("RSS {before} KB -> +{grown_kb} KB over 5 s at ~50 Mbps");
    // Expected: the ring pages the write index walks over (8 bytes a packet, ~190 KB) and
    // allocator noise. Unfreed packets would add ~1.4 KB each: ~15 MB over these 5 s.
    assert!(
        grown_kb < 5 * 1024,
        "RSS grew by {grown_kb} KB in 5 s at 50 Mbps: librist is not freeing sent packets"
    );
}
