//! The SRT adapter: `SrtEndpoint` implements `TransportRelay`, and the links below turn libsrt
//! sockets into the relay core's Reader/Writer traits. No `unsafe` here: everything goes
//! through the safe layer. Every wait happens in an `Epoll` with the caller's timeout.

use super::epoll::{self, Epoll};
use super::options::{apply_post, apply_pre, DEFAULT_LATENCY};
use super::server::directory::{Handoff, Registration};
use super::uri::{Mode, SrtEndpoint};
use super::{now_us, Error, ErrorKind, Socket, SocketState};
use crate::endpoint::resolve;
use crate::relay::link::LinkEvent;
use crate::relay::origin::{bound_by_successors, OriginClock};
use crate::relay::reorder::Reorder;
use crate::relay::{
    InputLink, LinkError, LinkStats, OutputLink, Packet, SendOutcome, TransportRelay,
};
use bytes::Bytes;
use std::net::SocketAddr;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// Largest SRT live payload (MSS 1500 - headers).
const MAX_PAYLOAD: usize = 1456;
/// Packets read per `recv` call before returning to the route loop, which also has to keep
/// time for statistics and idle detection.
const MAX_BATCH: usize = 256;
const LISTEN_BACKLOG: i32 = 16;
/// Without TSBPD, libsrt 1.5.1 never delivers past a gap the sender gave up on (fixed in
/// 1.5.2, `CRcvBuffer::dropMessage`). Nothing delivered this long while libsrt holds packets
/// means such a gap: the input reconnects. A sender only gives up after at least 1 s
/// (`max(latency + snddropdelay, 1000 ms)`), and only when the receiver asked for TLPKTDROP,
/// which our input does not by default.
const STALL_AFTER: Duration = Duration::from_secs(1);
/// Without TSBPD, libsrt 1.5.1 raises read readiness only from its ACK path
/// (`CUDT::sendCtrlAck`), not for messages that became readable out of order: while a gap is
/// being recovered the epoll stays silent although data waits. So the input never sleeps
/// longer than this in epoll; each wake-up is one condition-variable wait in libsrt.
const IMMEDIATE_POLL: Duration = Duration::from_millis(1);

/// The input's options with the relay's defaults filled in: no TSBPD and no too-late drop, so
/// libsrt hands over each packet as soon as it and those before it are complete, instead of
/// holding it for a whole latency window. The source time then comes from the sender's
/// timestamps (`OriginClock`) and the output passes it on, so the next hop's TSBPD plays at
/// the source's pace and a late retransmission here costs nothing end to end. An explicit
/// `tsbpdmode`/`tlpktdrop` in the URI wins.
fn input_endpoint(mut ep: SrtEndpoint) -> SrtEndpoint {
    if ep.options.tsbpdmode.is_none() {
        ep.options.tsbpdmode = Some(false);
    }
    if ep.options.tsbpdmode == Some(false) && ep.options.tlpktdrop.is_none() {
        // The receiver's TLPKTDROP flag is what lets the sender give up on old packets
        // (libsrt core.cpp `sndDropTooLate`); without TSBPD nothing would skip the gap.
        ep.options.tlpktdrop = Some(false);
    }
    ep
}

impl TransportRelay for SrtEndpoint {
    fn transport(&self) -> &'static str {
        "srt"
    }

    fn open_input(&self) -> Result<Box<dyn InputLink>, LinkError> {
        Ok(Box::new(SrtInput::open(self.clone())?))
    }

    fn open_output(&self) -> Result<Box<dyn OutputLink>, LinkError> {
        Ok(Box::new(SrtOutput::open(self.clone())?))
    }

    fn binds(&self, _as_input: bool) -> Vec<(String, u16)> {
        match self.mode {
            Mode::Listener => vec![(self.host.clone(), self.port)],
            Mode::Rendezvous => vec![(
                self.adapter.clone().unwrap_or_default(),
                self.local_port.unwrap_or(self.port),
            )],
            Mode::Caller => self
                .local_port
                .map(|p| vec![(self.adapter.clone().unwrap_or_default(), p)])
                .unwrap_or_default(),
        }
    }
}

fn fatal(what: &str, ep: &SrtEndpoint, e: &Error) -> LinkError {
    LinkError::Fatal(format!("{what} {ep}: {e}"))
}

fn epoll() -> Result<Epoll, LinkError> {
    Epoll::new().map_err(|e| LinkError::Fatal(format!("cannot create an SRT epoll: {e}")))
}

fn describe(sock: &Socket, known: Option<SocketAddr>) -> String {
    known
        .or_else(|| sock.peer_addr())
        .map_or_else(|| "unknown".to_owned(), |a| a.to_string())
}

fn listen_addr(ep: &SrtEndpoint) -> Result<SocketAddr, LinkError> {
    let host = if ep.host.is_empty() {
        "0.0.0.0"
    } else {
        ep.host.as_str()
    };
    resolve(host, ep.port).map_err(LinkError::Fatal)
}

/// A socket with the endpoint's options, bound to its listening address (not yet listening).
pub(super) fn bind_listener(ep: &SrtEndpoint) -> Result<Socket, LinkError> {
    let addr = listen_addr(ep)?;
    let sock = Socket::new().map_err(|e| fatal("cannot create a socket for", ep, &e))?;
    apply_pre(&sock, &ep.options).map_err(|e| fatal("cannot apply the options of", ep, &e))?;
    sock.bind(addr).map_err(|e| {
        let why = if e.kind == ErrorKind::AddressInUse {
            " (is another program using the port?)"
        } else {
            ""
        };
        LinkError::Fatal(format!("cannot listen on {addr}{why}: {e}"))
    })?;
    Ok(sock)
}

/// A bound, listening socket registered for readability (= a caller is waiting).
fn listen(ep: &SrtEndpoint, epoll: &mut Epoll) -> Result<Socket, LinkError> {
    let sock = bind_listener(ep)?;
    sock.listen(LISTEN_BACKLOG)
        .map_err(|e| fatal("cannot listen for", ep, &e))?;
    epoll
        .add(sock.id(), epoll::READ | epoll::ERROR)
        .map_err(|e| fatal("cannot watch", ep, &e))?;
    Ok(sock)
}

/// Calls out (caller or rendezvous) without blocking: the connection completes in epoll.
#[derive(Debug)]
struct Dialer {
    pending: Option<(Socket, SocketAddr)>,
}

impl Dialer {
    fn poll(
        &mut self,
        ep: &SrtEndpoint,
        epoll: &mut Epoll,
        timeout: Duration,
    ) -> Result<Option<(Socket, SocketAddr)>, LinkError> {
        if self.pending.is_none() {
            let (sock, remote) = start_call(ep)?;
            epoll
                .add(sock.id(), epoll::WRITE | epoll::ERROR)
                .map_err(|e| fatal("cannot watch", ep, &e))?;
            self.pending = Some((sock, remote));
        }
        let ready = epoll
            .wait(timeout)
            .map_err(|e| LinkError::Connect(e.to_string()))?;
        let Some(id) = self.pending.as_ref().map(|(s, _)| s.id()) else {
            return Ok(None);
        };
        if !ready.iter().any(|(fd, _)| *fd == id) {
            return Ok(None);
        }
        epoll.remove(id);
        let (sock, remote) = self.pending.take().expect("pending socket checked above");
        if sock.state() == SocketState::Connected {
            return Ok(Some((sock, remote)));
        }
        let reason = sock.reject_reason_text();
        Err(LinkError::Connect(format!(
            "cannot connect to {ep}: {reason}"
        )))
    }

    fn abort(&mut self, epoll: &mut Epoll) {
        if let Some((sock, _)) = self.pending.take() {
            epoll.remove(sock.id());
        }
    }
}

fn start_call(ep: &SrtEndpoint) -> Result<(Socket, SocketAddr), LinkError> {
    let remote = resolve(&ep.host, ep.port).map_err(LinkError::Connect)?;
    let sock = Socket::new().map_err(|e| fatal("cannot create a socket for", ep, &e))?;
    apply_pre(&sock, &ep.options).map_err(|e| fatal("cannot apply the options of", ep, &e))?;
    let rendezvous = ep.mode == Mode::Rendezvous;
    if rendezvous {
        sock.set_bool(srt_sys::SRTO_RENDEZVOUS, true, "rendezvous")
            .map_err(|e| fatal("cannot set rendezvous on", ep, &e))?;
    }
    if rendezvous || ep.adapter.is_some() || ep.local_port.is_some() {
        let unspecified = if remote.is_ipv6() { "::" } else { "0.0.0.0" };
        let host = ep.adapter.as_deref().unwrap_or(unspecified);
        let port = ep
            .local_port
            .unwrap_or(if rendezvous { ep.port } else { 0 });
        let local = resolve(host, port).map_err(LinkError::Fatal)?;
        sock.bind(local)
            .map_err(|e| LinkError::Fatal(format!("cannot bind {local} for {ep}: {e}")))?;
    }
    sock.connect(remote)
        .map_err(|e| LinkError::Connect(format!("cannot connect to {ep}: {e}")))?;
    Ok((sock, remote))
}

/// A connected peer.
#[derive(Debug)]
struct Conn {
    sock: Socket,
    peer: String,
    /// libsrt refuses a `srctime` earlier than the socket's start.
    start_us: i64,
}

impl Conn {
    fn new(sock: Socket, addr: Option<SocketAddr>) -> Conn {
        let peer = describe(&sock, addr);
        let start_us = sock.connection_time();
        Conn {
            sock,
            peer,
            start_us,
        }
    }
}

/// Connections a shared listener (`server`) accepted for this stream, and the registration
/// that keeps them coming.
struct Handed {
    rx: Receiver<Handoff>,
    registration: Registration,
}

impl Handed {
    fn wait(&self, timeout: Duration) -> Option<Handoff> {
        match self.rx.recv_timeout(timeout) {
            Ok(h) => Some(h),
            Err(RecvTimeoutError::Timeout) => None,
            // Cannot happen while we hold the registration; never spin if it does.
            Err(RecvTimeoutError::Disconnected) => {
                std::thread::sleep(timeout);
                None
            }
        }
    }
}

/// What both sides hold: the endpoint, the epoll they wait in, the listening socket (listener
/// mode), the dialer (caller/rendezvous) or the connections a shared listener hands over,
/// and the events not yet reported.
struct Side {
    ep: SrtEndpoint,
    epoll: Epoll,
    listener: Option<Socket>,
    dialer: Dialer,
    handed: Option<Handed>,
    events: Vec<LinkEvent>,
}

impl Side {
    fn open(ep: SrtEndpoint) -> Result<Side, LinkError> {
        let mut epoll = epoll()?;
        let listener = if ep.is_listener() {
            Some(listen(&ep, &mut epoll)?)
        } else {
            None
        };
        Ok(Side {
            ep,
            epoll,
            listener,
            dialer: Dialer { pending: None },
            handed: None,
            events: Vec::new(),
        })
    }

    fn handed(
        ep: SrtEndpoint,
        rx: Receiver<Handoff>,
        registration: Registration,
    ) -> Result<Side, LinkError> {
        Ok(Side {
            ep,
            epoll: epoll()?,
            listener: None,
            dialer: Dialer { pending: None },
            handed: Some(Handed { rx, registration }),
            events: Vec::new(),
        })
    }

    /// Whether this side waits for callers (listener or shared listener) rather than calling.
    fn passive(&self) -> bool {
        self.listener.is_some() || self.handed.is_some()
    }

    /// A socket that just connected (accepted or dialed): post-connect options, then report it.
    fn connected(&mut self, sock: Socket, addr: Option<SocketAddr>) -> Result<Conn, LinkError> {
        apply_post(&sock, &self.ep.options)
            .map_err(|e| fatal("cannot apply the options of", &self.ep, &e))?;
        let conn = Conn::new(sock, addr);
        self.events.push(LinkEvent::Connected {
            peer: conn.peer.clone(),
        });
        Ok(conn)
    }
}

/// The input side: one sender at a time.
pub struct SrtInput {
    side: Side,
    conn: Option<Conn>,
    buf: Vec<u8>,
    /// Some when TSBPD is off: libsrt's `srctime` is then the sender's raw 32-bit timestamp,
    /// which this turns into an origin time on libsrt's clock. One per connection.
    origin: Option<OriginClock>,
    /// With `origin`: restores sending order (libsrt without TSBPD lets complete messages
    /// overtake a gap being recovered). Holds (payload, raw timestamp, arrival µs, arrival).
    reorder: Reorder<(Bytes, u32, i64, Instant)>,
    /// Gaps the reorder stage gave up on and already reported as lost.
    skipped_reported: u64,
    ready: Vec<(Bytes, u32, i64, Instant)>,
    stamps: Vec<u32>,
    last_delivery: Instant,
}

/// How long past its origin time a packet behind a gap waits for the gap: the input's latency
/// (libsrt's default 120 ms unless set), what a TSBPD receiver gives a retransmission. The
/// output hands the origin time on as the source time and the next hop plays each packet at
/// origin + its latency (the same 120 ms by default), so a packet held longer would reach it
/// late, and with it every packet behind the gap. Skipping the gap at this deadline loses what
/// a single SRT hop with this latency would lose and keeps everything else on time. Measured
/// with 5% loss and 20±5 ms on hop 1 at 50 Mbps (relay-bench, 6 runs each): twice the latency
/// counted from arrival lost no packet where the baseline lost 9, but a gap recovered after
/// 150-200 ms made 100-330 packets 25-78 ms late, and p99 rose by 19-21 ms in 2 runs of 6.
fn hold_budget_us(ep: &SrtEndpoint) -> i64 {
    let o = &ep.options;
    let latency = o.rcvlatency.or(o.latency).unwrap_or(DEFAULT_LATENCY);
    latency.as_micros() as i64
}

impl SrtInput {
    pub fn open(ep: SrtEndpoint) -> Result<SrtInput, LinkError> {
        SrtInput::open_with(ep, Side::open)
    }

    fn open_with(
        ep: SrtEndpoint,
        side: impl FnOnce(SrtEndpoint) -> Result<Side, LinkError>,
    ) -> Result<SrtInput, LinkError> {
        Ok(SrtInput {
            reorder: Reorder::new(hold_budget_us(&ep)),
            side: side(input_endpoint(ep))?,
            conn: None,
            buf: vec![0; MAX_PAYLOAD.max(1500)],
            origin: None,
            skipped_reported: 0,
            ready: Vec::new(),
            stamps: Vec::new(),
            last_delivery: Instant::now(),
        })
    }

    /// The publisher side of a shared listener's stream: connections arrive through `rx`.
    pub fn handed(
        ep: SrtEndpoint,
        rx: Receiver<Handoff>,
        registration: Registration,
    ) -> Result<SrtInput, LinkError> {
        SrtInput::open_with(ep, |ep| Side::handed(ep, rx, registration))
    }

    fn tsbpd(&self) -> bool {
        self.side.ep.options.tsbpdmode != Some(false)
    }

    fn adopt(&mut self, sock: Socket, addr: Option<SocketAddr>) -> Result<(), LinkError> {
        self.side
            .epoll
            .add(sock.id(), epoll::READ | epoll::ERROR)
            .map_err(|e| fatal("cannot watch", &self.side.ep, &e))?;
        self.conn = Some(self.side.connected(sock, addr)?);
        self.origin = (!self.tsbpd()).then(OriginClock::new);
        self.reorder = Reorder::new(hold_budget_us(&self.side.ep));
        self.skipped_reported = 0;
        self.last_delivery = Instant::now();
        // A session that just connected counts as sending: it has not had time to yet.
        if let Some(h) = &self.side.handed {
            h.registration.activity.sent();
        }
        Ok(())
    }

    /// A new session from the shared listener replaces the current one at once: a publisher
    /// that came back must not wait for its half-open old session to time out.
    fn take_handed(&mut self, timeout: Duration) -> Result<bool, LinkError> {
        let Some(handed) = &self.side.handed else {
            return Ok(false);
        };
        let next = if timeout.is_zero() {
            handed.rx.try_recv().ok()
        } else {
            handed.wait(timeout)
        };
        let Some(h) = next else {
            return Ok(false);
        };
        if let Some(old) = &self.conn {
            // Two encoders sending to one stream take it from each other: make that visible.
            tracing::warn!(
                old = %old.peer,
                new = %describe(&h.socket, h.peer),
                "publisher session replaced by a new one"
            );
            self.disconnect("replaced by a new session of the publisher");
        }
        self.adopt(h.socket, h.peer)?;
        Ok(true)
    }

    fn accept_pending(&mut self) -> Result<bool, LinkError> {
        let Some(listener) = &self.side.listener else {
            return Ok(false);
        };
        match listener.accept() {
            Ok(Some((sock, addr))) if unsecured(&self.side.ep, &sock, addr) => Ok(false),
            Ok(Some((sock, addr))) => {
                if self.conn.is_some() {
                    // The newest caller wins: an encoder that dropped and came back must not be
                    // locked out while its stale session times out.
                    self.disconnect("replaced by a new connection");
                }
                self.adopt(sock, addr)?;
                Ok(true)
            }
            Ok(None) => Ok(false),
            Err(e) => Err(LinkError::Connect(e.to_string())),
        }
    }
}

impl InputLink for SrtInput {
    fn connect(&mut self, timeout: Duration) -> Result<bool, LinkError> {
        if self.conn.is_some() {
            return Ok(true);
        }
        if self.side.handed.is_some() {
            return self.take_handed(timeout);
        }
        if self.side.listener.is_some() {
            let ready = self
                .side
                .epoll
                .wait(timeout)
                .map_err(|e| LinkError::Connect(e.to_string()))?;
            if ready.is_empty() {
                return Ok(false);
            }
            return self.accept_pending();
        }
        match self
            .side
            .dialer
            .poll(&self.side.ep, &mut self.side.epoll, timeout)?
        {
            Some((sock, remote)) => {
                self.adopt(sock, Some(remote))?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn is_connected(&self) -> bool {
        self.conn.is_some()
    }

    fn recv(&mut self, out: &mut Vec<Packet>, timeout: Duration) -> Result<(), LinkError> {
        let timeout = if self.origin.is_some() {
            timeout.min(IMMEDIATE_POLL)
        } else {
            timeout
        };
        let ready = self
            .side
            .epoll
            .wait(timeout)
            .map_err(|e| LinkError::Lost(e.to_string()))?;
        let listener_id = self.side.listener.as_ref().map(Socket::id);
        if ready.iter().any(|(fd, _)| Some(*fd) == listener_id) {
            self.accept_pending()?;
        }
        self.take_handed(Duration::ZERO)?;
        let Some(conn) = &self.conn else {
            return Err(LinkError::Lost("no connection".into()));
        };
        let now = Instant::now();
        let mut got = false;
        for _ in 0..MAX_BATCH {
            match conn.sock.recv_msg(&mut self.buf) {
                Ok(Some(m)) => {
                    got = true;
                    let payload = Bytes::copy_from_slice(&self.buf[..m.len]);
                    if let Some(clock) = &self.origin {
                        // Without TSBPD, srctime is the packet's 32-bit timestamp.
                        let (ts, arrival_us) = (m.src_time_us as u32, now_us());
                        let due = clock.peek(ts, arrival_us);
                        let item = (payload, ts, arrival_us, now);
                        self.reorder.push(m.seq, due, item, &mut self.ready);
                    } else {
                        out.push(Packet::new(payload, m.src_time_us, now));
                    }
                }
                Ok(None) => break,
                Err(e) => return Err(LinkError::Lost(e.to_string())),
            }
        }
        if let Some(clock) = &mut self.origin {
            self.reorder.poll(now_us(), &mut self.ready);
            // Retransmissions carry their retransmission time: bound every timestamp by the
            // packets after it (this batch, then the first one still held behind a gap).
            self.stamps.clear();
            self.stamps.extend(self.ready.iter().map(|r| r.1));
            let next = self.reorder.first_held().map(|r| r.1);
            bound_by_successors(&mut self.stamps, next);
            // The first held packet may itself be a retransmission; its due time is capped by
            // every packet held after it, originals included.
            let not_after = self.reorder.first_held_due();
            for ((payload, _, arrival_us, at), ts) in self.ready.drain(..).zip(&self.stamps) {
                let origin = clock.origin_not_after(*ts, arrival_us, not_after);
                out.push(Packet::new(payload, origin, at));
            }
        }
        if got {
            self.last_delivery = now;
            if let Some(h) = &self.side.handed {
                h.registration.activity.sent();
            }
        } else if conn.sock.state() != SocketState::Connected {
            return Err(LinkError::Lost(format!(
                "connection {:?}",
                conn.sock.state()
            )));
        } else if self.origin.is_some()
            && now.saturating_duration_since(self.last_delivery) >= STALL_AFTER
            && conn.sock.buffered_packets() > 0
        {
            return Err(LinkError::Lost(
                "delivery stalled behind a gap the sender gave up on (libsrt 1.5.1 without TSBPD)"
                    .into(),
            ));
        }
        Ok(())
    }

    fn disconnect(&mut self, reason: &str) {
        self.side.dialer.abort(&mut self.side.epoll);
        if let Some(h) = &self.side.handed {
            h.registration.activity.gone();
        }
        if let Some(conn) = self.conn.take() {
            self.side.epoll.remove(conn.sock.id());
            // Live mode has no linger: close returns at once.
            let _ = conn.sock.close();
            self.side.events.push(LinkEvent::Disconnected {
                peer: conn.peer,
                reason: reason.to_owned(),
            });
        }
    }

    fn stats(&mut self) -> LinkStats {
        let Some(conn) = &self.conn else {
            return LinkStats::default();
        };
        // Gaps the reorder stage gave up on are losses too (libsrt's own drops stay 0 without
        // TSBPD).
        let skipped = self.reorder.skipped - self.skipped_reported;
        self.skipped_reported = self.reorder.skipped;
        match conn.sock.stats() {
            Ok(s) => LinkStats {
                rtt_ms: Some(s.rtt_ms),
                lost: s.rcv_drop + skipped,
                loss_detected: s.rcv_loss,
                retransmitted: s.rcv_retrans,
                undecrypted: s.rcv_undecrypt,
                buffer_ms: Some(s.rcv_buf_ms),
                latency_ms: Some(if s.rcv_latency_ms > 0.0 {
                    s.rcv_latency_ms
                } else {
                    // Without TSBPD (`input_endpoint`) libsrt reports no TSBPD delay: show what
                    // TSBPD would have agreed on, the larger of our receive latency and the
                    // sender's, which is what the next hop plays against.
                    let ms = |opt, name| conn.sock.get_i32(opt, name).unwrap_or(0);
                    f64::from(
                        ms(srt_sys::SRTO_RCVLATENCY, "SRTO_RCVLATENCY")
                            .max(ms(srt_sys::SRTO_PEERLATENCY, "SRTO_PEERLATENCY")),
                    )
                }),
                ..LinkStats::default()
            },
            Err(_) => LinkStats::default(),
        }
    }

    fn backs_off(&self) -> bool {
        !self.side.passive()
    }

    fn drain_events(&mut self, out: &mut Vec<LinkEvent>) {
        out.append(&mut self.side.events);
    }
}

/// The output side: a caller/rendezvous link has one peer; a listener serves every player
/// that connects.
pub struct SrtOutput {
    side: Side,
    peers: Vec<Conn>,
}

impl SrtOutput {
    pub fn open(ep: SrtEndpoint) -> Result<SrtOutput, LinkError> {
        Ok(SrtOutput {
            side: Side::open(ep)?,
            peers: Vec::new(),
        })
    }

    /// The players side of a shared listener's stream: players arrive through `rx`.
    pub fn handed(
        ep: SrtEndpoint,
        rx: Receiver<Handoff>,
        registration: Registration,
    ) -> Result<SrtOutput, LinkError> {
        Ok(SrtOutput {
            side: Side::handed(ep, rx, registration)?,
            peers: Vec::new(),
        })
    }

    fn add_peer(&mut self, sock: Socket, addr: Option<SocketAddr>) -> Result<(), LinkError> {
        let conn = self.side.connected(sock, addr)?;
        self.peers.push(conn);
        self.report_players();
        Ok(())
    }

    /// A shared listener's players side tells the listener how many it serves (`max_players`).
    fn report_players(&self) {
        if let Some(h) = &self.side.handed {
            h.registration
                .activity
                .players
                .store(self.peers.len(), std::sync::atomic::Ordering::Relaxed);
        }
    }

    fn accept_all(&mut self) -> Result<(), LinkError> {
        while let Some(h) = self.side.handed.as_ref().and_then(|h| h.rx.try_recv().ok()) {
            self.add_peer(h.socket, h.peer)?;
        }
        while let Some(listener) = &self.side.listener {
            match listener.accept() {
                Ok(Some((sock, addr))) if unsecured(&self.side.ep, &sock, addr) => {}
                Ok(Some((sock, addr))) => self.add_peer(sock, addr)?,
                Ok(None) => break,
                Err(e) => return Err(LinkError::Connect(e.to_string())),
            }
        }
        Ok(())
    }

    fn drop_peer(&mut self, idx: usize, reason: String) {
        let conn = self.peers.swap_remove(idx);
        self.report_players();
        let _ = conn.sock.close();
        self.side.events.push(LinkEvent::Disconnected {
            peer: conn.peer,
            reason,
        });
    }
}

/// An encrypted listener must never carry clear data. libsrt refuses unencrypted HSv5
/// callers during the handshake, but an old (HSv4) caller negotiates its keys after the
/// connection and comes out of accept unsecured: such a socket is closed here, and counted.
fn unsecured(ep: &SrtEndpoint, sock: &Socket, addr: Option<SocketAddr>) -> bool {
    if ep.options.passphrase.is_none() {
        return false;
    }
    let state = sock.get_i32(srt_sys::SRTO_KMSTATE, "SRTO_KMSTATE");
    if state.as_ref().ok() == Some(&(srt_sys::SRT_KM_S_SECURED as i32)) {
        return false;
    }
    tracing::warn!(peer = %describe(sock, addr), km_state = ?state.ok(), "accepted caller is not encrypted; closing it");
    super::log::rejections::record("unsecured", None);
    // The caller drops the socket, which closes it.
    true
}

/// The source time to hand libsrt: the input's, unless libsrt would refuse it (earlier than
/// this socket's start) or it lies in the future (which would only add delay downstream).
fn send_time(src_time_us: i64, start_us: i64, now: i64) -> i64 {
    if src_time_us == 0 {
        0
    } else {
        src_time_us.max(start_us).min(now)
    }
}

impl OutputLink for SrtOutput {
    fn connect(&mut self, timeout: Duration) -> Result<bool, LinkError> {
        if !self.peers.is_empty() {
            return Ok(true);
        }
        if let Some(h) = self.side.handed.as_ref().and_then(|h| h.wait(timeout)) {
            self.add_peer(h.socket, h.peer)?;
            self.accept_all()?;
            return Ok(true);
        }
        if self.side.handed.is_some() {
            return Ok(false);
        }
        if self.side.listener.is_some() {
            let ready = self
                .side
                .epoll
                .wait(timeout)
                .map_err(|e| LinkError::Connect(e.to_string()))?;
            if !ready.is_empty() {
                self.accept_all()?;
            }
            return Ok(!self.peers.is_empty());
        }
        match self
            .side
            .dialer
            .poll(&self.side.ep, &mut self.side.epoll, timeout)?
        {
            Some((sock, remote)) => {
                self.add_peer(sock, Some(remote))?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn peers(&self) -> usize {
        self.peers.len()
    }

    fn service(&mut self) -> Result<(), LinkError> {
        self.accept_all()?;
        let mut i = 0;
        while i < self.peers.len() {
            let state = self.peers[i].sock.state();
            if state == SocketState::Connected {
                i += 1;
            } else {
                self.drop_peer(i, format!("connection {state:?}"));
            }
        }
        if self.peers.is_empty() {
            return Err(LinkError::Lost("no peer connected".into()));
        }
        Ok(())
    }

    fn send(&mut self, packet: &Packet) -> Result<SendOutcome, LinkError> {
        let now = now_us();
        let mut accepted = false;
        let mut i = 0;
        while i < self.peers.len() {
            let conn = &self.peers[i];
            let t = send_time(packet.src_time_us, conn.start_us, now);
            let result = match conn.sock.send(&packet.payload, t) {
                // Belt and braces: should libsrt still refuse the source time, send it as now.
                Err(e) if e.code == srt_sys::SRT_EINVALMSGAPI && t != 0 => {
                    conn.sock.send(&packet.payload, 0)
                }
                other => other,
            };
            match result {
                Ok(sent) => {
                    accepted |= sent;
                    i += 1;
                }
                Err(e) => self.drop_peer(i, e.to_string()),
            }
        }
        if self.peers.is_empty() {
            return Err(LinkError::Lost("no peer connected".into()));
        }
        Ok(if accepted {
            SendOutcome::Sent
        } else {
            SendOutcome::Dropped
        })
    }

    /// Sockets are non-blocking (`SRTO_SNDSYN` off): libsrt copies the packet into the send
    /// buffer, or refuses it when full, and its own threads send and retransmit. Live mode has
    /// no linger, so closing a player that went away does not wait either.
    fn sends_without_blocking(&self) -> bool {
        true
    }

    fn disconnect(&mut self, reason: &str) {
        self.side.dialer.abort(&mut self.side.epoll);
        while !self.peers.is_empty() {
            self.drop_peer(0, reason.to_owned());
        }
    }

    fn stats(&mut self) -> LinkStats {
        let mut total = LinkStats::default();
        for conn in &self.peers {
            if let Ok(s) = conn.sock.stats() {
                total.merge(LinkStats {
                    rtt_ms: Some(s.rtt_ms),
                    lost: s.snd_drop,
                    loss_detected: s.snd_loss,
                    retransmitted: s.retrans,
                    undecrypted: 0,
                    buffer_ms: Some(s.snd_buf_ms),
                    latency_ms: Some(s.snd_latency_ms),
                    ..LinkStats::default()
                });
            }
        }
        total
    }

    fn backs_off(&self) -> bool {
        !self.side.passive()
    }

    fn drain_events(&mut self, out: &mut Vec<LinkEvent>) {
        out.append(&mut self.side.events);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(uri: &str) -> SrtEndpoint {
        SrtEndpoint::parse(uri).expect("valid test URI")
    }

    #[test]
    fn input_defaults_to_immediate_delivery() {
        // TSBPD on at the input would hold every packet for the negotiated latency (>= the
        // sender's 120 ms): the relay would add a whole window. Guard the default.
        let ep = input_endpoint(endpoint("srt://:9000"));
        assert_eq!(ep.options.tsbpdmode, Some(false));
        assert_eq!(ep.options.tlpktdrop, Some(false));
        // Explicit choices win.
        let ep = input_endpoint(endpoint("srt://:9000?tsbpdmode=1"));
        assert_eq!(ep.options.tsbpdmode, Some(true));
        assert_eq!(ep.options.tlpktdrop, None);
        let ep = input_endpoint(endpoint("srt://:9000?tlpktdrop=1"));
        assert_eq!(ep.options.tlpktdrop, Some(true));
    }

    #[test]
    fn source_time_is_clamped_into_what_libsrt_accepts() {
        assert_eq!(send_time(0, 100, 1_000), 0);
        assert_eq!(send_time(50, 100, 1_000), 100);
        assert_eq!(send_time(500, 100, 1_000), 500);
        assert_eq!(send_time(5_000, 100, 1_000), 1_000);
    }
}
