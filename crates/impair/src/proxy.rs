//! The sockets and threads: a listening socket facing clients, one connected
//! socket per client facing upstream (NAT-style, so each client's replies find
//! their way back), and a scheduler thread for delayed datagrams.
//!
//! Threads: one listener, one scheduler, one reader per client. All of them
//! poll a shared stop flag via short socket read timeouts, and are joined by
//! [`ProxyHandle`] on stop/drop.

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::config::Impairment;
use crate::decide::Impairer;
use crate::scheduler::Scheduler;
use crate::stats::{Counters, ProxyStats};

/// How often blocked threads look at the stop flag; bounds stop() latency.
const POLL: Duration = Duration::from_millis(50);

/// Large enough for any UDP payload, so nothing is ever truncated.
const MAX_DATAGRAM: usize = 65_536;

/// Where a delayed datagram goes when it falls due.
enum Target {
    /// Client -> upstream, via that client's connected socket.
    Upstream(Arc<UdpSocket>),
    /// Upstream -> client, via the listening socket.
    Client(SocketAddr),
}

struct Packet {
    target: Target,
    payload: Vec<u8>,
}

struct Shared {
    listen: UdpSocket,
    upstream: SocketAddr,
    stop: AtomicBool,
    forward: Impairer,
    backward: Impairer,
    scheduler: Scheduler<Packet>,
    clients: AtomicU64,
}

fn is_timeout(e: &io::Error) -> bool {
    // Unix reports an expired SO_RCVTIMEO as EAGAIN, Windows as WSAETIMEDOUT.
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

/// Sends once more after `ConnectionRefused`: a connected UDP socket reports an
/// ICMP port-unreachable from an *earlier* datagram on the next send and
/// discards that one, which would turn "upstream not up yet" into an extra
/// loss the test did not ask for. The error is cleared by reporting it.
fn send_retrying(send: impl Fn() -> io::Result<usize>) -> bool {
    match send() {
        Ok(_) => true,
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => send().is_ok(),
        Err(_) => false,
    }
}

impl Shared {
    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn send(&self, target: &Target, payload: &[u8]) {
        let (ok, counters) = match target {
            Target::Upstream(sock) => (send_retrying(|| sock.send(payload)), &self.forward),
            Target::Client(addr) => (
                send_retrying(|| self.listen.send_to(payload, addr)),
                &self.backward,
            ),
        };
        if ok {
            Counters::bump(&counters.counters.forwarded);
        }
    }

    /// Sends or queues each copy according to its hold time. Zero-hold copies
    /// skip the scheduler entirely so an unimpaired path adds no thread hop.
    fn dispatch(&self, target: Target, payload: &[u8], holds: &[Duration], received: Instant) {
        for &hold in holds {
            if hold.is_zero() {
                self.send(&target, payload);
            } else {
                let target = match &target {
                    Target::Upstream(sock) => Target::Upstream(Arc::clone(sock)),
                    Target::Client(addr) => Target::Client(*addr),
                };
                self.scheduler.push(
                    received + hold,
                    Packet {
                        target,
                        payload: payload.to_vec(),
                    },
                );
            }
        }
    }
}

/// Entry point; see [`Proxy::start`].
#[derive(Debug)]
pub struct Proxy;

impl Proxy {
    /// Binds `listen` (port 0 picks a free port) and relays datagrams between
    /// clients and `upstream`, applying `forward` to client->upstream traffic
    /// and `backward` to upstream->client traffic.
    ///
    /// Each distinct client address gets its own socket towards upstream, so
    /// upstream sees several peers and replies reach the right client.
    pub fn start(
        listen: SocketAddr,
        upstream: SocketAddr,
        forward: Impairment,
        backward: Impairment,
    ) -> io::Result<ProxyHandle> {
        forward.validate()?;
        backward.validate()?;
        let sock = UdpSocket::bind(listen)?;
        sock.set_read_timeout(Some(POLL))?;
        let local_addr = sock.local_addr()?;
        let shared = Arc::new(Shared {
            listen: sock,
            upstream,
            stop: AtomicBool::new(false),
            forward: Impairer::new(forward),
            backward: Impairer::new(backward),
            scheduler: Scheduler::new(),
            clients: AtomicU64::new(0),
        });
        // Built before spawning so that, if a spawn fails, dropping the handle
        // stops and joins whatever did start.
        let mut handle = ProxyHandle {
            local_addr,
            shared: Arc::clone(&shared),
            threads: Vec::with_capacity(2),
        };
        let s = Arc::clone(&shared);
        handle.threads.push(
            thread::Builder::new()
                .name("impair-sched".into())
                .spawn(move || s.scheduler.run(|p| s.send(&p.target, &p.payload)))?,
        );
        let s = Arc::clone(&shared);
        handle.threads.push(
            thread::Builder::new()
                .name("impair-listen".into())
                .spawn(move || listen_loop(&s))?,
        );
        Ok(handle)
    }
}

/// A per-client upstream socket and the thread reading replies from it.
fn open_link(
    shared: &Arc<Shared>,
    client: SocketAddr,
) -> io::Result<(Arc<UdpSocket>, JoinHandle<()>)> {
    let any: SocketAddr = if shared.upstream.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let sock = UdpSocket::bind(any)?;
    // Connected, so the kernel filters out anything not from upstream and
    // picks the right source address for us.
    sock.connect(shared.upstream)?;
    sock.set_read_timeout(Some(POLL))?;
    let sock = Arc::new(sock);
    let reader = {
        let shared = Arc::clone(shared);
        let sock = Arc::clone(&sock);
        thread::Builder::new()
            .name("impair-client".into())
            .spawn(move || client_loop(&shared, &sock, client))?
    };
    Ok((sock, reader))
}

fn listen_loop(shared: &Arc<Shared>) {
    // Owned by this thread alone, so no lock; the mappings live as long as the
    // proxy, which is fine for test- and benchmark-sized client counts.
    let mut links: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
    let mut readers: Vec<JoinHandle<()>> = Vec::new();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut holds = Vec::with_capacity(2);
    while !shared.stopping() {
        let (n, client) = match shared.listen.recv_from(&mut buf) {
            Ok(v) => v,
            Err(e) if is_timeout(&e) => continue,
            Err(_) => {
                // Unexpected but possibly persistent: don't spin on it.
                thread::sleep(Duration::from_millis(1));
                continue;
            }
        };
        let received = Instant::now();
        let link = match links.get(&client) {
            Some(link) => Arc::clone(link),
            None => match open_link(shared, client) {
                Ok((sock, reader)) => {
                    readers.push(reader);
                    links.insert(client, Arc::clone(&sock));
                    shared.clients.fetch_add(1, Ordering::Relaxed);
                    sock
                }
                Err(_) => {
                    // Out of sockets or threads: behave like a full NAT table
                    // and lose the datagram, but keep the books straight.
                    Counters::bump(&shared.forward.counters.received);
                    Counters::bump(&shared.forward.counters.dropped);
                    continue;
                }
            },
        };
        shared.forward.decide(&mut holds);
        shared.dispatch(Target::Upstream(link), &buf[..n], &holds, received);
    }
    for reader in readers {
        let _ = reader.join();
    }
}

fn client_loop(shared: &Shared, sock: &UdpSocket, client: SocketAddr) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut holds = Vec::with_capacity(2);
    while !shared.stopping() {
        let n = match sock.recv(&mut buf) {
            Ok(n) => n,
            Err(e) if is_timeout(&e) => continue,
            // Upstream not listening (yet): the ICMP error surfaces here.
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => continue,
            Err(_) => {
                thread::sleep(Duration::from_millis(1));
                continue;
            }
        };
        let received = Instant::now();
        shared.backward.decide(&mut holds);
        shared.dispatch(Target::Client(client), &buf[..n], &holds, received);
    }
}

/// A running proxy. Dropping it (or calling [`ProxyHandle::stop`]) stops and
/// joins every thread it started; datagrams still queued are discarded.
pub struct ProxyHandle {
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for ProxyHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyHandle")
            .field("local_addr", &self.local_addr)
            .field("upstream", &self.shared.upstream)
            .finish_non_exhaustive()
    }
}

impl ProxyHandle {
    /// Address clients should send to (the actual port if 0 was requested).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Address datagrams are relayed to.
    pub fn upstream_addr(&self) -> SocketAddr {
        self.shared.upstream
    }

    /// Current counters; cheap, callable from any thread at any time.
    pub fn stats(&self) -> ProxyStats {
        ProxyStats {
            forward: self.shared.forward.counters.snapshot(),
            backward: self.shared.backward.counters.snapshot(),
            clients: self.shared.clients.load(Ordering::Relaxed),
        }
    }

    /// Stops and joins all threads, then returns the final counters.
    pub fn stop(mut self) -> ProxyStats {
        self.shutdown();
        self.stats()
    }

    fn shutdown(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.shared.scheduler.shutdown();
        for t in self.threads.drain(..) {
            // A panicked worker has nothing left to clean up; don't turn a
            // drop into a second panic.
            let _ = t.join();
        }
    }
}

impl Drop for ProxyHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}
