//! The RIST adapter: `RistEndpoint` implements `TransportRelay`, and the links below turn
//! librist contexts into the relay core's Reader/Writer traits. No `unsafe` here.
//!
//! RIST is connectionless underneath: a sender sends whether or not a receiver listens, and a
//! receiver takes whatever flow arrives. So "connected" is what we observe: an input is
//! connected while a flow delivers data; an output counts a peer while the receiver answers
//! (RTCP), which librist 0.2.7 reports reliably only through statistics for callers.

use super::callback::{PeerStatus, StatusEvent};
use super::config::PeerConfig;
use super::context::{Context, Peer, Role, SenderWake};
use super::uri::{Profile, RistEndpoint};
use crate::common::clock;
use crate::endpoint::resolve;
use crate::relay::link::LinkEvent;
use crate::relay::source_lock::Senders;
use crate::relay::{
    InputLink, LinkError, LinkStats, OutputLink, Packet, SendOutcome, TransportRelay,
};
use bytes::Bytes;
use std::collections::HashSet;
use std::net::{ToSocketAddrs, UdpSocket};
use std::time::{Duration, Instant};

/// Blocks read per `recv` before returning to the route loop.
const MAX_BATCH: usize = 256;
/// A second flow takes over an input only once the current one has been silent this long, so
/// two senders on one port cannot interleave their packets into one corrupt stream.
const FLOW_TAKEOVER: Duration = Duration::from_millis(300);
/// An output peer that has sent no RTCP for this long is counted as gone. librist's receivers
/// report at least every keepalive interval (1 s by default) and stats come once a second.
const PEER_SILENCE: Duration = Duration::from_millis(3500);
/// An output that can stand by does so once it has had nothing to send for this long: longer
/// than an encoder's pause between scenes, and by then a librist receiver downstream has ended
/// the flow's output anyway (it does after its buffer of silence).
const STANDBY_AFTER: Duration = Duration::from_secs(5);

impl TransportRelay for RistEndpoint {
    fn transport(&self) -> &'static str {
        "rist"
    }

    fn open_input(&self) -> Result<Box<dyn InputLink>, LinkError> {
        Ok(Box::new(RistInput::open(self.clone())?))
    }

    fn open_output(&self) -> Result<Box<dyn OutputLink>, LinkError> {
        Ok(Box::new(RistOutput::open(self.clone())?))
    }

    fn binds(&self, _as_input: bool) -> Vec<(String, u16)> {
        if !self.listen {
            return Vec::new();
        }
        let mut v = vec![(self.host.clone(), self.port)];
        if self.profile == Profile::Simple {
            v.push((self.host.clone(), self.port.saturating_add(1)));
        }
        v
    }
}

/// Builds and starts a context with one peer for `ep`; also gives the peer's virtual
/// destination port, which a sender stamps on every block.
fn open_context(ep: &RistEndpoint, role: Role) -> Result<(Context, Peer, u16), LinkError> {
    let fatal = |what: &str, e: super::Error| LinkError::Fatal(format!("{what} {ep}: {e}"));
    super::library::started().map_err(|e| fatal("cannot use librist for", e))?;
    if ep.listen {
        check_ports_free(ep)?;
    }
    let config = PeerConfig::parse(&ep.librist_url(role == Role::Receiver))
        .map_err(|e| fatal("librist cannot read", e))?;
    let virt_dst_port = config.virt_dst_port();
    let mut ctx =
        Context::new(role, ep.profile).map_err(|e| fatal("cannot create a context for", e))?;
    let peer = ctx
        .add_peer(config)
        .map_err(|e| fatal("cannot create the peer for", e))?;
    if let Some((user, pass)) = &ep.srp {
        ctx.enable_srp(&peer, user, pass.expose())
            .map_err(|e| fatal("cannot enable SRP authentication for", e))?;
    }
    ctx.start().map_err(|e| fatal("cannot start", e))?;
    Ok((ctx, peer, virt_dst_port))
}

/// `ep` with its host replaced by the address librist would pick first; None if it does not
/// resolve now (librist then resolves it itself, as for any output that does not stand by).
fn resolved(ep: &RistEndpoint) -> Option<RistEndpoint> {
    let addr = resolve(&ep.host, ep.port).ok()?;
    let mut resolved = ep.clone();
    resolved.host = addr.ip().to_string();
    Some(resolved)
}

/// librist binds listening peers inside `rist_peer_create`, and 0.2.7's receiver can crash
/// when the simple profile's RTCP port (port + 1) is taken. Check both ourselves first, so a
/// busy port is a clear error instead.
fn check_ports_free(ep: &RistEndpoint) -> Result<(), LinkError> {
    let mut ports = vec![ep.port];
    if ep.profile == Profile::Simple {
        ports.push(ep.port.checked_add(1).ok_or_else(|| {
            LinkError::Fatal(format!(
                "{ep}: the simple profile needs port + 1 for RTCP; 65535 has none"
            ))
        })?);
    }
    for port in ports {
        let addrs = (ep.host.as_str(), port)
            .to_socket_addrs()
            .map_err(|e| LinkError::Fatal(format!("cannot resolve '{}': {e}", ep.host)))?;
        for addr in addrs {
            if let Err(e) = UdpSocket::bind(addr) {
                let rtcp = if port != ep.port {
                    " (the simple profile's RTCP port, port + 1)"
                } else {
                    ""
                };
                return Err(LinkError::Fatal(format!(
                    "cannot listen on {addr}{rtcp} for {ep}: {e} (is another program using the port?)"
                )));
            }
        }
    }
    Ok(())
}

fn log_status(events: &[StatusEvent], side: &str) {
    for e in events {
        tracing::debug!(side, peer = e.peer, status = ?e.status, "librist peer status");
    }
}

pub struct RistInput {
    ep: RistEndpoint,
    ctx: Context,
    _peer: Peer,
    /// The flow we relay, once one delivers.
    senders: Senders<u32>,
    status: Vec<StatusEvent>,
}

impl RistInput {
    fn open(ep: RistEndpoint) -> Result<RistInput, LinkError> {
        let (ctx, peer, _) = open_context(&ep, Role::Receiver)?;
        tracing::info!(uri = %ep, profile = %ep.profile, buffer_ms = ep.input_buffer_ms(), encrypted = ep.encrypted, "RIST input ready");
        Ok(RistInput {
            ep,
            ctx,
            _peer: peer,
            senders: Senders::new(FLOW_TAKEOVER, |flow| format!("flow {flow}")),
            status: Vec::new(),
        })
    }
}

/// Reads what librist has (waiting up to `timeout` for the first block) into `out`.
fn read_blocks(
    ctx: &mut Context,
    ep: &RistEndpoint,
    senders: &mut Senders<u32>,
    out: &mut Vec<Packet>,
    timeout: Duration,
) -> Result<(), LinkError> {
    let mut wait = timeout.as_millis().min(i32::MAX as u128) as i32;
    for _ in 0..MAX_BATCH {
        let block = match ctx.read(wait) {
            Ok(Some(b)) => b,
            Ok(None) => break,
            Err(e) => return Err(LinkError::Lost(format!("reading from {ep}: {e}"))),
        };
        wait = 0;
        let now = Instant::now();
        if senders.admit(&block.flow_id(), now) {
            let src_time = clock::src_time_from_ntp(block.ts_ntp());
            // The packet keeps librist's block and reads the payload in place, which saves an
            // allocation and a copy per packet; the block is freed when the last output is done
            // with it.
            out.push(Packet::new(Bytes::from_owner(block), src_time, now));
        }
    }
    Ok(())
}

impl InputLink for RistInput {
    fn connect(&mut self, timeout: Duration) -> Result<bool, LinkError> {
        let (ctx, ep) = (&mut self.ctx, &self.ep);
        self.senders
            .connect(|s, out| read_blocks(ctx, ep, s, out, timeout))
    }

    fn is_connected(&self) -> bool {
        self.senders.is_connected()
    }

    fn recv(&mut self, out: &mut Vec<Packet>, timeout: Duration) -> Result<(), LinkError> {
        let (ctx, ep) = (&mut self.ctx, &self.ep);
        self.senders
            .recv(out, timeout, |s, out, t| read_blocks(ctx, ep, s, out, t))
    }

    fn disconnect(&mut self, reason: &str) {
        // librist keeps listening (or calling); the next flow to deliver becomes current.
        self.senders.disconnect(reason);
    }

    fn stats(&mut self) -> LinkStats {
        let t = self.ctx.shared().take_receiver();
        if t.implausible_lost > 0 {
            tracing::debug!(
                intervals = t.implausible_lost,
                "ignored librist's impossible loss figure (16-bit wrap)"
            );
        }
        let buffer = f64::from(self.ep.input_buffer_ms());
        LinkStats {
            rtt_ms: t.rtt_ms,
            lost: t.lost,
            loss_detected: t.missing,
            retransmitted: t.recovered,
            undecrypted: 0,
            buffer_ms: Some(buffer),
            latency_ms: Some(buffer),
            reordered: t.reordered,
            quality_pct: t.quality,
        }
    }

    fn backs_off(&self) -> bool {
        // librist listens or keeps calling by itself; we only watch for data.
        false
    }

    fn drain_events(&mut self, out: &mut Vec<LinkEvent>) {
        self.ctx.shared().drain_events(&mut self.status);
        log_status(&self.status, "input");
        self.status.clear();
        self.senders.drain_events(out);
    }
}

pub struct RistOutput {
    ep: RistEndpoint,
    ctx: Context,
    peer: Peer,
    virt_dst_port: u16,
    /// How the current sender's thread waits. A calling output without SRP stands by on
    /// librist's 5 ms while it has nothing to send, and gets a 1 ms sender when packets start
    /// (the interval is read once, when librist's thread starts, so each change is a new
    /// context). A new sender is a new peer and flow for the receiver, harmless only between
    /// streams: the swap to 1 ms happens before the first packet is written. Listening outputs
    /// (their receivers would have to call again) and SRP (a new authentication) keep 1 ms.
    wake: SenderWake,
    /// `ep` with its host resolved at open, for the senders that replace one another: the swap
    /// runs on the input's thread, which must not wait for a DNS lookup. None: never stands by.
    standby_ep: Option<RistEndpoint>,
    /// Whether a packet was written since the last `service`, and since when none was.
    sent: bool,
    silent_since: Option<Instant>,
    /// Peers that called us and have not timed out (listening outputs).
    clients: HashSet<usize>,
    /// A called receiver answering (calling outputs).
    answered: bool,
    last_feedback: Option<Instant>,
    events: Vec<LinkEvent>,
    status: Vec<StatusEvent>,
    write_errors: u64,
}

impl RistOutput {
    fn open(ep: RistEndpoint) -> Result<RistOutput, LinkError> {
        if ep.listen && ep.profile == Profile::Simple {
            // 0.2.7 binds the same port twice instead of port + 1 for a listening simple-profile
            // sender; RTCP would never arrive.
            return Err(LinkError::Fatal(format!(
                "{ep}: a listening output needs the main profile (librist 0.2.7 cannot listen as a simple-profile sender); use --profile main or let the receiver listen"
            )));
        }
        let standby_ep = if ep.listen || ep.srp.is_some() {
            None
        } else {
            resolved(&ep)
        };
        let (wake, first) = match &standby_ep {
            Some(resolved) => (SenderWake::Standby, resolved),
            None => (SenderWake::Streaming, &ep),
        };
        let (ctx, peer, virt_dst_port) = open_context(first, Role::Sender(wake))?;
        tracing::info!(uri = %ep, profile = %ep.profile, encrypted = ep.encrypted, "RIST output ready");
        Ok(RistOutput {
            ep,
            ctx,
            peer,
            virt_dst_port,
            wake,
            standby_ep,
            sent: false,
            silent_since: None,
            clients: HashSet::new(),
            answered: false,
            last_feedback: None,
            events: Vec::new(),
            status: Vec::new(),
            write_errors: 0,
        })
    }

    /// Replaces the sender with one whose thread waits `wake`. On failure the current one goes
    /// on sending and the output stops standing by.
    fn swap_sender(&mut self, wake: SenderWake) {
        let Some(ep) = &self.standby_ep else { return };
        match open_context(ep, Role::Sender(wake)) {
            Ok((ctx, peer, _)) => {
                let old = (
                    std::mem::replace(&mut self.ctx, ctx),
                    std::mem::replace(&mut self.peer, peer),
                );
                self.wake = wake;
                tracing::debug!(?wake, "RIST output sender replaced");
                // rist_destroy joins a thread that sleeps up to 5 ms; not on the input's thread.
                let retire = move || drop(old);
                if let Err(e) = std::thread::Builder::new()
                    .name("rist-retire".into())
                    .spawn(retire)
                {
                    tracing::debug!(error = %e, "cannot start a thread to retire a RIST sender");
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, ?wake, "cannot replace the RIST output's sender; it goes on with the current one and no longer stands by");
                self.standby_ep = None;
            }
        }
    }

    fn update_peers(&mut self) {
        self.ctx.shared().drain_events(&mut self.status);
        log_status(&self.status, "output");
        for e in self.status.drain(..) {
            if !self.ep.listen {
                // A caller's peer reports ESTABLISHED once and never again in 0.2.7: its
                // receiver's presence is read from the statistics below instead.
                continue;
            }
            // A listening sender's receivers appear as child peers: ESTABLISHED on their
            // first RTCP, TIMED_OUT when librist removes them (about 5 s after they go
            // silent). 0.2.7 never emits the CLIENT_* statuses on a sender.
            match e.status {
                PeerStatus::Established | PeerStatus::ClientConnected => {
                    if self.clients.insert(e.peer) {
                        self.events.push(LinkEvent::Connected {
                            peer: format!("receiver #{}", self.clients.len()),
                        });
                    }
                }
                PeerStatus::TimedOut | PeerStatus::ClientTimedOut => {
                    if self.clients.remove(&e.peer) {
                        self.events.push(LinkEvent::Disconnected {
                            peer: "receiver".into(),
                            reason: "session timed out".into(),
                        });
                    }
                }
            }
        }
        if !self.ep.listen {
            if let Some(at) = self.ctx.shared().last_feedback() {
                self.last_feedback = Some(at);
            }
            let alive = self
                .last_feedback
                .is_some_and(|t| t.elapsed() < PEER_SILENCE);
            if alive != self.answered {
                self.answered = alive;
                let peer = format!("{}:{}", self.ep.host, self.ep.port);
                self.events.push(if alive {
                    LinkEvent::Connected { peer }
                } else {
                    LinkEvent::Disconnected {
                        peer,
                        reason: format!(
                            "no answer from the receiver for {} ms",
                            PEER_SILENCE.as_millis()
                        ),
                    }
                });
            }
        }
    }
}

impl OutputLink for RistOutput {
    fn connect(&mut self, _timeout: Duration) -> Result<bool, LinkError> {
        // A RIST sender sends from the start and a receiver joins the flow whenever it comes:
        // the output is up as soon as librist runs. Peers are counted separately.
        self.update_peers();
        Ok(true)
    }

    fn peers(&self) -> usize {
        self.clients.len() + usize::from(self.answered)
    }

    fn service(&mut self) -> Result<(), LinkError> {
        if std::mem::take(&mut self.sent) {
            self.silent_since = None;
        } else if self.wake == SenderWake::Streaming && self.standby_ep.is_some() {
            let since = *self.silent_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= STANDBY_AFTER {
                self.swap_sender(SenderWake::Standby);
            }
        }
        self.update_peers();
        Ok(())
    }

    fn send(&mut self, packet: &Packet) -> Result<SendOutcome, LinkError> {
        if self.wake == SenderWake::Standby {
            self.swap_sender(SenderWake::Streaming);
        }
        self.sent = true;
        match self.ctx.write(
            &packet.payload,
            clock::ntp_from_src_time(packet.src_time_us),
            self.virt_dst_port,
        ) {
            Ok(_) => Ok(SendOutcome::Sent),
            Err(e) => {
                self.write_errors += 1;
                if self.write_errors == 1 || self.write_errors.is_multiple_of(1000) {
                    tracing::warn!(error = %e, count = self.write_errors, "librist refused a packet");
                }
                Ok(SendOutcome::Dropped)
            }
        }
    }

    fn disconnect(&mut self, _reason: &str) {
        // Nothing to tear down: librist's session handling owns the connection. Peers are
        // reported gone when the route stops.
        self.update_peers();
        for _ in self.clients.drain() {
            self.events.push(LinkEvent::Disconnected {
                peer: "receiver".into(),
                reason: "relay stopping".into(),
            });
        }
        if std::mem::take(&mut self.answered) {
            self.events.push(LinkEvent::Disconnected {
                peer: format!("{}:{}", self.ep.host, self.ep.port),
                reason: "relay stopping".into(),
            });
        }
    }

    fn stats(&mut self) -> LinkStats {
        let t = self.ctx.shared().take_sender();
        LinkStats {
            rtt_ms: t.rtt_ms,
            lost: 0,
            loss_detected: 0,
            retransmitted: t.retransmitted,
            undecrypted: 0,
            buffer_ms: None,
            latency_ms: None,
            reordered: 0,
            quality_pct: t.quality,
        }
    }

    fn backs_off(&self) -> bool {
        false
    }

    fn drain_events(&mut self, out: &mut Vec<LinkEvent>) {
        out.append(&mut self.events);
    }

    /// `rist_sender_data_write` copies the packet into the sender's queue under a short lock
    /// and signals its thread; sending, pacing and retransmission happen there.
    fn sends_without_blocking(&self) -> bool {
        true
    }
}
