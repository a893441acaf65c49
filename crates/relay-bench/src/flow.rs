//! Source and sink: the ends of every chain, in this process so both read the same clock.
//! The source paces datagrams at a constant bitrate; the sink records what arrives.

use crate::ts::{self, Muxer, DATAGRAM};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// Nanoseconds on the benchmark's monotonic clock.
pub fn now_ns() -> u64 {
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// Asks the kernel for big socket buffers (it caps them at net.core.[rw]mem_max).
fn big_buffers(sock: &UdpSocket) {
    let size: libc::c_int = 8 << 20;
    for opt in [libc::SO_RCVBUF, libc::SO_SNDBUF] {
        // SAFETY: valid fd owned by `sock`; the option value is a c_int of the given size.
        unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                (&size as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
}

pub struct Source {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Vec<u64>>>,
}

impl Source {
    /// Starts sending to `dest` at `bitrate` bits/s (payload). Datagrams due in the same
    /// scheduler slice go out back to back, each stamped when it is actually sent.
    pub fn start(dest: SocketAddr, bitrate: u64) -> std::io::Result<Source> {
        let sock = UdpSocket::bind("127.0.0.1:0")?;
        big_buffers(&sock);
        sock.connect(dest)?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let interval_ns = (DATAGRAM as f64 * 8.0 * 1e9 / bitrate as f64) as u64;
        let thread = std::thread::Builder::new()
            .name("bench-source".into())
            .spawn(move || {
                let mut mux = Muxer::default();
                let mut buf = [0u8; DATAGRAM];
                let mut sent = Vec::with_capacity(1 << 16);
                let start = now_ns();
                let mut seq = 0u64;
                while !flag.load(Ordering::Relaxed) {
                    let due = start + seq * interval_ns;
                    let now = now_ns();
                    if due > now + 100_000 {
                        std::thread::sleep(Duration::from_nanos(due - now));
                        continue;
                    }
                    let t = now_ns();
                    mux.fill(&mut buf, seq, t);
                    // A refused send (edge not up yet) is just a datagram the edge never saw.
                    let _ = sock.send(&buf);
                    sent.push(t);
                    seq += 1;
                }
                sent
            })?;
        Ok(Source {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops and returns the send time of every datagram, indexed by sequence number.
    pub fn stop(mut self) -> Vec<u64> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for Source {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One datagram as the sink saw it.
#[derive(Clone, Copy, Debug)]
pub struct Arrival {
    pub seq: u64,
    pub sent_ns: u64,
    pub recv_ns: u64,
}

pub struct Sink {
    pub port: u16,
    stop: Arc<AtomicBool>,
    first: Arc<AtomicU64>,
    arrivals: Arc<Mutex<Vec<Arrival>>>,
    thread: Option<JoinHandle<()>>,
    /// Datagrams that were not the benchmark's valid TS (corrupted by a relay).
    pub invalid: Arc<AtomicU64>,
}

impl Sink {
    pub fn bind() -> std::io::Result<Sink> {
        let sock = UdpSocket::bind("127.0.0.1:0")?;
        big_buffers(&sock);
        sock.set_read_timeout(Some(Duration::from_millis(50)))?;
        let port = sock.local_addr()?.port();
        let stop = Arc::new(AtomicBool::new(false));
        let first = Arc::new(AtomicU64::new(0));
        let arrivals = Arc::new(Mutex::new(Vec::with_capacity(1 << 16)));
        let invalid = Arc::new(AtomicU64::new(0));
        let (flag, first2, arr, inv) = (
            stop.clone(),
            first.clone(),
            arrivals.clone(),
            invalid.clone(),
        );
        let thread = std::thread::Builder::new()
            .name("bench-sink".into())
            .spawn(move || {
                let mut buf = [0u8; 2048];
                let mut local = Vec::with_capacity(4096);
                while !flag.load(Ordering::Relaxed) {
                    match sock.recv(&mut buf) {
                        Ok(n) => {
                            let recv_ns = now_ns();
                            match ts::parse(&buf[..n]) {
                                Some((seq, sent_ns)) => {
                                    if first2.load(Ordering::Relaxed) == 0 {
                                        first2.store(sent_ns.max(1), Ordering::Relaxed);
                                    }
                                    local.push(Arrival {
                                        seq,
                                        sent_ns,
                                        recv_ns,
                                    });
                                    if local.len() >= 4096 {
                                        arr.lock()
                                            .unwrap_or_else(|p| p.into_inner())
                                            .append(&mut local);
                                    }
                                }
                                None => {
                                    inv.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                        }
                        Err(_) => {
                            arr.lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .append(&mut local);
                        }
                    }
                }
                arr.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .append(&mut local);
            })?;
        Ok(Sink {
            port,
            stop,
            first,
            arrivals,
            thread: Some(thread),
            invalid,
        })
    }

    /// Send time of the first datagram that made it through, once one has.
    pub fn first_sent_ns(&self) -> Option<u64> {
        match self.first.load(Ordering::Relaxed) {
            0 => None,
            v => Some(v),
        }
    }

    pub fn stop(mut self) -> Vec<Arrival> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        std::mem::take(&mut *self.arrivals.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// What one chain did during the measurement window.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct FlowStats {
    /// Datagrams sent in the window, received of those, lost (never arrived).
    pub sent: u64,
    pub received: u64,
    pub lost: u64,
    /// Arrivals with a lower sequence number than one already seen.
    pub reordered: u64,
    pub duplicates: u64,
    /// Datagrams that were not valid TS from the source (whole run).
    pub invalid: u64,
    /// End-to-end latency of the window's datagrams, microseconds, sorted.
    #[serde(skip)]
    pub latencies_us: Vec<u64>,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

pub fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)] as f64 / 1000.0
}

/// Packets sent in `[from_ns, to_ns)` and what became of them.
pub fn analyse(sent: &[u64], arrivals: &[Arrival], from_ns: u64, to_ns: u64) -> FlowStats {
    let in_window = |t: u64| t >= from_ns && t < to_ns;
    let expected: Vec<u64> = (0..sent.len() as u64)
        .filter(|&s| in_window(sent[s as usize]))
        .collect();
    let mut seen = vec![false; sent.len()];
    let mut st = FlowStats::default();
    let mut max_seq: Option<u64> = None;
    for a in arrivals {
        if (a.seq as usize) < seen.len() && in_window(a.sent_ns) {
            if seen[a.seq as usize] {
                st.duplicates += 1;
                continue;
            }
            seen[a.seq as usize] = true;
            st.received += 1;
            st.latencies_us
                .push(a.recv_ns.saturating_sub(a.sent_ns) / 1000);
            if max_seq.is_some_and(|m| a.seq < m) {
                st.reordered += 1;
            }
            max_seq = Some(max_seq.map_or(a.seq, |m| m.max(a.seq)));
        }
    }
    st.sent = expected.len() as u64;
    st.lost = expected.iter().filter(|&&s| !seen[s as usize]).count() as u64;
    st.latencies_us.sort_unstable();
    st.p50_ms = percentile(&st.latencies_us, 0.50);
    st.p99_ms = percentile(&st.latencies_us, 0.99);
    st.max_ms = st
        .latencies_us
        .last()
        .map_or(f64::NAN, |&v| v as f64 / 1000.0);
    st
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_loss_reorder_and_latency() {
        let sent: Vec<u64> = (0..10).map(|i| i * 1_000_000).collect();
        let a = |seq: u64, lat: u64| Arrival {
            seq,
            sent_ns: sent[seq as usize],
            recv_ns: sent[seq as usize] + lat,
        };
        // 0 outside the window; 4 lost; 6 arrives after 7; 8 twice.
        let arrivals = vec![
            a(0, 5_000),
            a(1, 1_000_000),
            a(2, 2_000_000),
            a(3, 2_000_000),
            a(5, 2_000_000),
            a(7, 2_000_000),
            a(6, 3_000_000),
            a(8, 2_000_000),
            a(8, 2_000_000),
            a(9, 2_000_000),
        ];
        let st = analyse(&sent, &arrivals, 1_000_000, 10_000_000);
        assert_eq!(st.sent, 9);
        assert_eq!(st.received, 8);
        assert_eq!(st.lost, 1);
        assert_eq!(st.reordered, 1);
        assert_eq!(st.duplicates, 1);
        assert_eq!(st.p50_ms, 2.0);
        assert_eq!(st.max_ms, 3.0);
    }
}
