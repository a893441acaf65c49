//! The UDP adapter: plain MPEG-TS datagrams from and to hardware encoders, decoders and
//! multicast networks. UDP has no connection and no timestamps: an input's "peer" is the
//! address that sends to it (the first one keeps the input until it falls silent), its packets'
//! source time is their arrival, and an output always has its one destination.

use super::socket::{set_multicast_if_v4, set_recv_buffer, set_send_buffer, wait_readable};
use super::uri::UdpEndpoint;
use crate::common::clock;
use crate::endpoint::resolve;
use crate::relay::link::LinkEvent;
use crate::relay::source_lock::Senders;
use crate::relay::{
    InputLink, LinkError, LinkStats, OutputLink, Packet, SendOutcome, TransportRelay,
};
use bytes::Bytes;
use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// Datagrams read per `recv` before returning to the route loop.
const MAX_BATCH: usize = 256;
/// A second sender takes over the input once the current one has been silent this long.
const SOURCE_TAKEOVER: Duration = Duration::from_millis(300);
/// Kernel buffers asked for when the URI gives none: bursts of a 100 Mbps stream fit.
const DEFAULT_SOCKET_BUFFER: usize = 8 << 20;

impl TransportRelay for UdpEndpoint {
    fn transport(&self) -> &'static str {
        "udp"
    }

    fn open_input(&self) -> Result<Box<dyn InputLink>, LinkError> {
        Ok(Box::new(UdpInput::open(self.clone())?))
    }

    fn open_output(&self) -> Result<Box<dyn OutputLink>, LinkError> {
        Ok(Box::new(UdpOutput::open(self.clone())?))
    }

    fn binds(&self, as_input: bool) -> Vec<(String, u16)> {
        if !as_input {
            return Vec::new();
        }
        // A group member binds the port on every address.
        let host = if self.multicast_group().is_some() {
            String::new()
        } else {
            self.host.clone()
        };
        vec![(host, self.port)]
    }
}

fn unspecified_like(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    }
}

pub struct UdpInput {
    ep: UdpEndpoint,
    sock: UdpSocket,
    buf: Vec<u8>,
    senders: Senders<SocketAddr>,
    truncated: u64,
}

impl UdpInput {
    fn open(ep: UdpEndpoint) -> Result<UdpInput, LinkError> {
        let fatal = |what: String| LinkError::Fatal(format!("{what} for {ep}"));
        let host: IpAddr = if ep.host.is_empty() {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        } else {
            ep.host.parse().map_err(|_| {
                fatal(format!(
                    "an input binds a local or multicast IP address, not '{}'",
                    ep.host
                ))
            })?
        };
        let group = ep.multicast_group();
        // A group member binds the port on every address, then joins the group.
        let bind_ip = if group.is_some() {
            unspecified_like(host)
        } else {
            host
        };
        let sock = UdpSocket::bind((bind_ip, ep.port)).map_err(|e| {
            fatal(format!(
                "cannot listen on {bind_ip}:{}: {e} (is another program using the port?)",
                ep.port
            ))
        })?;
        match group {
            Some(IpAddr::V4(g)) => {
                let iface = match ep.localaddr {
                    Some(IpAddr::V4(a)) => a,
                    Some(IpAddr::V6(_)) => {
                        return Err(fatal("localaddr must be IPv4 for an IPv4 group".into()))
                    }
                    None => Ipv4Addr::UNSPECIFIED,
                };
                sock.join_multicast_v4(&g, &iface)
                    .map_err(|e| fatal(format!("cannot join {g} on {iface}: {e}")))?;
            }
            Some(IpAddr::V6(g)) => sock
                .join_multicast_v6(&g, 0)
                .map_err(|e| fatal(format!("cannot join {g}: {e}")))?,
            None => {}
        }
        sock.set_nonblocking(true)
            .map_err(|e| fatal(format!("cannot make the socket non-blocking: {e}")))?;
        if let Err(e) = set_recv_buffer(&sock, ep.buffer_size.unwrap_or(DEFAULT_SOCKET_BUFFER)) {
            tracing::warn!(error = %e, "cannot size the UDP receive buffer");
        }
        tracing::info!(uri = %ep, "UDP input ready");
        Ok(UdpInput {
            buf: vec![0; ep.pkt_size + 1],
            ep,
            sock,
            senders: Senders::new(SOURCE_TAKEOVER, |a| a.to_string()),
            truncated: 0,
        })
    }
}

/// Reads what the socket has (waiting up to `timeout` for the first datagram) into `out`.
fn read_datagrams(
    input: &mut UdpIo,
    senders: &mut Senders<SocketAddr>,
    out: &mut Vec<Packet>,
    timeout: Duration,
) -> Result<(), LinkError> {
    let ep = input.ep;
    let lost = |e: std::io::Error| LinkError::Lost(format!("reading {ep}: {e}"));
    if !wait_readable(input.sock, timeout).map_err(lost)? {
        return Ok(());
    }
    for _ in 0..MAX_BATCH {
        let (n, from) = match input.sock.recv_from(input.buf) {
            Ok(r) => r,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(lost(e)),
        };
        let now = Instant::now();
        if !senders.admit(&from, now) {
            continue;
        }
        let n = if n > ep.pkt_size {
            *input.truncated += 1;
            let count = *input.truncated;
            if count == 1 || count.is_multiple_of(1000) {
                tracing::warn!(
                    pkt_size = ep.pkt_size,
                    count,
                    "datagram larger than pkt_size truncated"
                );
            }
            ep.pkt_size
        } else {
            n
        };
        // UDP carries no timestamp: the source time is the arrival.
        out.push(Packet::new(
            Bytes::copy_from_slice(&input.buf[..n]),
            clock::now_us(),
            now,
        ));
    }
    Ok(())
}

/// The parts of a `UdpInput` a read needs, borrowed apart from its `Senders`.
struct UdpIo<'a> {
    ep: &'a UdpEndpoint,
    sock: &'a UdpSocket,
    buf: &'a mut [u8],
    truncated: &'a mut u64,
}

impl UdpInput {
    fn io(&mut self) -> (UdpIo<'_>, &mut Senders<SocketAddr>) {
        (
            UdpIo {
                ep: &self.ep,
                sock: &self.sock,
                buf: &mut self.buf,
                truncated: &mut self.truncated,
            },
            &mut self.senders,
        )
    }
}

impl InputLink for UdpInput {
    fn connect(&mut self, timeout: Duration) -> Result<bool, LinkError> {
        let (mut io, senders) = self.io();
        senders.connect(|s, out| read_datagrams(&mut io, s, out, timeout))
    }

    fn is_connected(&self) -> bool {
        self.senders.is_connected()
    }

    fn recv(&mut self, out: &mut Vec<Packet>, timeout: Duration) -> Result<(), LinkError> {
        let (mut io, senders) = self.io();
        senders.recv(out, timeout, |s, out, t| read_datagrams(&mut io, s, out, t))
    }

    fn disconnect(&mut self, reason: &str) {
        self.senders.disconnect(reason);
    }

    fn stats(&mut self) -> LinkStats {
        LinkStats::default()
    }

    fn backs_off(&self) -> bool {
        false
    }

    fn drain_events(&mut self, out: &mut Vec<LinkEvent>) {
        self.senders.drain_events(out);
    }
}

pub struct UdpOutput {
    sock: UdpSocket,
    dest: SocketAddr,
    announced: bool,
    events: Vec<LinkEvent>,
    send_errors: u64,
}

impl UdpOutput {
    fn open(ep: UdpEndpoint) -> Result<UdpOutput, LinkError> {
        let fatal = |what: String| LinkError::Fatal(format!("{what} for {ep}"));
        if ep.host.is_empty() {
            return Err(fatal(
                "an output needs a destination host (udp://host:port)".into(),
            ));
        }
        let dest = resolve(&ep.host, ep.port).map_err(fatal)?;
        let local = ep.localaddr.unwrap_or_else(|| unspecified_like(dest.ip()));
        let sock =
            UdpSocket::bind((local, 0)).map_err(|e| fatal(format!("cannot bind {local}: {e}")))?;
        if dest.ip().is_multicast() {
            if dest.ip().is_ipv4() {
                sock.set_multicast_ttl_v4(ep.ttl.unwrap_or(1))
                    .map_err(|e| fatal(format!("cannot set the multicast TTL: {e}")))?;
                if let Some(IpAddr::V4(a)) = ep.localaddr {
                    set_multicast_if_v4(&sock, a)
                        .map_err(|e| fatal(format!("cannot send multicast through {a}: {e}")))?;
                }
            }
        } else if let Some(ttl) = ep.ttl {
            sock.set_ttl(ttl)
                .map_err(|e| fatal(format!("cannot set the TTL: {e}")))?;
        }
        if let Err(e) = set_send_buffer(&sock, ep.buffer_size.unwrap_or(DEFAULT_SOCKET_BUFFER)) {
            tracing::warn!(error = %e, "cannot size the UDP send buffer");
        }
        sock.set_nonblocking(true)
            .map_err(|e| fatal(format!("cannot make the socket non-blocking: {e}")))?;
        tracing::info!(uri = %ep, "UDP output ready");
        Ok(UdpOutput {
            sock,
            dest,
            announced: false,
            events: Vec::new(),
            send_errors: 0,
        })
    }
}

impl OutputLink for UdpOutput {
    fn connect(&mut self, _timeout: Duration) -> Result<bool, LinkError> {
        if !self.announced {
            self.announced = true;
            self.events.push(LinkEvent::Connected {
                peer: self.dest.to_string(),
            });
        }
        Ok(true)
    }

    fn peers(&self) -> usize {
        usize::from(self.announced)
    }

    fn service(&mut self) -> Result<(), LinkError> {
        Ok(())
    }

    fn send(&mut self, packet: &Packet) -> Result<SendOutcome, LinkError> {
        match self.sock.send_to(&packet.payload, self.dest) {
            Ok(_) => Ok(SendOutcome::Sent),
            Err(e) => {
                // A full socket buffer (WouldBlock) or an ICMP error from an earlier datagram
                // (nothing listens at a unicast destination): this one is dropped and counted.
                self.send_errors += 1;
                if self.send_errors == 1 || self.send_errors.is_multiple_of(1000) {
                    tracing::warn!(error = %e, count = self.send_errors, dest = %self.dest, "UDP send failed");
                }
                Ok(SendOutcome::Dropped)
            }
        }
    }

    fn disconnect(&mut self, reason: &str) {
        if std::mem::take(&mut self.announced) {
            self.events.push(LinkEvent::Disconnected {
                peer: self.dest.to_string(),
                reason: reason.to_owned(),
            });
        }
    }

    fn stats(&mut self) -> LinkStats {
        LinkStats::default()
    }

    fn backs_off(&self) -> bool {
        false
    }

    fn drain_events(&mut self, out: &mut Vec<LinkEvent>) {
        out.append(&mut self.events);
    }

    /// The socket is non-blocking: a full send buffer drops the datagram, as on the output's
    /// own thread.
    fn sends_without_blocking(&self) -> bool {
        true
    }
}
