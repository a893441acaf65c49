//! A shared SRT listener: one port, many named streams. Callers are sorted by their Stream ID
//! (`streamid` dialects) during the handshake, in libsrt's listen callback, where a refusal
//! still reaches the caller with a reason code and a per-stream passphrase can be set. Once
//! accepted, a publisher's connection is handed to its route's input and a player's to its
//! route's `players` output; the routes do the rest as for any SRT link.

pub mod directory;
pub mod stream;

use super::epoll::{self, Epoll};
use super::listen_hook::{AcceptHook, Candidate, HookedListener, Refusal};
use super::log::rejections::Caller;
use super::streamid::{self, Mode};
use super::uri::SrtEndpoint;
use super::SocketState;
use crate::common::redact::Secret;
use crate::relay::LinkError;
use directory::{Directory, Handoff, Role};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A caller that names no mode (a bare name, or no Stream ID) is a publisher if it sends
/// within this time, else a player. Encoders send from their first moment; a player that
/// cannot say what it is starts this much later.
pub const AUTO_DETECT: Duration = Duration::from_millis(1000);
const LISTEN_BACKLOG: i32 = 64;
const POLL: Duration = Duration::from_millis(100);

/// A server's settings as configured.
#[derive(Clone, Debug)]
pub struct ServerSpec {
    pub name: String,
    /// The listening endpoint; its options apply to every caller, its `passphrase` is the
    /// default of streams that set none.
    pub listen: SrtEndpoint,
    pub settings: directory::Settings,
}

pub struct SrtServer {
    name: String,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl SrtServer {
    /// Binds the port (a busy port fails here) and starts accepting.
    pub fn start(spec: &ServerSpec) -> Result<SrtServer, LinkError> {
        let directory = directory::directory(&spec.name);
        directory.configure(spec.settings.clone());
        // The listener itself has no passphrase: the hook sets each stream's on its callers.
        let mut listen = spec.listen.clone();
        let default_passphrase = listen.options.passphrase.take();
        let explicit_tsbpd = listen.options.tsbpdmode.is_some();
        let hook = Arc::new(ServerHook {
            server: spec.name.clone(),
            directory: directory.clone(),
            default_passphrase: default_passphrase.clone(),
            explicit_tsbpd,
        });
        let fatal = |what: &str, e: &dyn std::fmt::Display| {
            LinkError::Fatal(format!("SRT server '{}': {what}: {e}", spec.name))
        };
        let sock = super::relay::bind_listener(&listen)
            .map_err(|e| LinkError::Fatal(format!("SRT server '{}': {e}", spec.name)))?;
        let listener =
            HookedListener::new(sock, hook).map_err(|e| fatal("cannot install the hook", &e))?;
        listener
            .socket()
            .listen(LISTEN_BACKLOG)
            .map_err(|e| fatal("cannot listen", &e))?;
        let mut ep = Epoll::new().map_err(|e| fatal("cannot create an epoll", &e))?;
        ep.add(listener.socket().id(), epoll::READ | epoll::ERROR)
            .map_err(|e| fatal("cannot watch the listener", &e))?;

        let stop = Arc::new(AtomicBool::new(false));
        let mut accept = Acceptor {
            name: spec.name.clone(),
            listener,
            epoll: ep,
            directory,
            encrypted_default: default_passphrase.is_some(),
            pending: Vec::new(),
        };
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name(format!("srv:{}", spec.name))
            .spawn(move || accept.run(&flag))
            .map_err(|e| fatal("cannot start a thread", &e))?;
        tracing::info!(server = %spec.name, listen = %spec.listen, "SRT server listening");
        Ok(SrtServer {
            name: spec.name.clone(),
            stop,
            thread: Some(thread),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::error!(server = %self.name, "the SRT server thread panicked");
            }
        }
    }
}

impl Drop for SrtServer {
    fn drop(&mut self) {
        self.halt();
    }
}

/// The mode a caller is served in, and the stream it is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub stream: String,
    /// `None`: decided after accept, by whether the caller sends.
    pub role: Option<Role>,
    pub passphrase: Option<Secret>,
}

/// Why a caller is refused: the metric's `reason` label, and the code the caller sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refused {
    pub reason: &'static str,
    pub code: Refusal,
}

const fn refused(reason: &'static str, code: Refusal) -> Refused {
    Refused { reason, code }
}

/// Whether a stream takes no more callers of `role`: its publisher sends and may only be
/// taken over when idle (`stream_busy`), or it has `max_players` players (`players_full`).
fn full(l: &directory::Lookup, role: Role) -> Option<&'static str> {
    match role {
        Role::Publisher if l.access.takeover_when_idle && l.publisher_active => Some("stream_busy"),
        Role::Players if l.access.max_players.is_some_and(|m| l.players >= m) => {
            Some("players_full")
        }
        _ => None,
    }
}

/// Decides about one caller from its Stream ID: which stream, which side, which passphrase.
/// Pure: the hook and the accept thread both call it, and the tests.
pub fn decide(
    directory: &Directory,
    default_passphrase: Option<&Secret>,
    sid: &str,
) -> Result<Decision, Refused> {
    let mut req = streamid::parse(sid).map_err(|_| refused("bad_streamid", Refusal::BadRequest))?;
    let settings = directory.settings();
    // SLS-style `DOMAIN/NAME` with the domains the server was told (SRT Live Server's own
    // defaults, `uplive.sls.com` and `live.sls.com`, are in many encoders' settings).
    if req.dialect == streamid::Dialect::Bare {
        if let Some((domain, rest)) = req.stream.split_once('/') {
            let is = |domains: &[String]| domains.iter().any(|d| d == domain);
            let mode = if is(&settings.publish_domains) {
                Some(Mode::Publish)
            } else if is(&settings.play_domains) {
                Some(Mode::Play)
            } else {
                None
            };
            if let Some(mode) = mode {
                req.mode = mode;
                req.stream = rest.to_owned();
            }
        }
    }
    let stream = if req.stream.is_empty() {
        settings
            .default_stream
            .ok_or(refused("unknown_stream", Refusal::NotFound))?
    } else {
        req.stream.clone()
    };
    let found = directory
        .lookup(&stream)
        .ok_or(refused("unknown_stream", Refusal::NotFound))?;
    let access = &found.access;
    let role = match req.mode {
        Mode::Publish if found.has_publisher_side => Some(Role::Publisher),
        Mode::Play if found.has_players_side => Some(Role::Players),
        Mode::Publish | Mode::Play => return Err(refused("wrong_mode", Refusal::BadMode)),
        Mode::Unspecified => match (found.has_publisher_side, found.has_players_side) {
            (true, false) => Some(Role::Publisher),
            (false, true) => Some(Role::Players),
            _ => None,
        },
    };
    let credentials = |c: &Option<(String, Secret)>| match c {
        None => true,
        Some((user, password)) => {
            req.user.as_deref() == Some(user.as_str())
                && req.password.as_ref().is_some_and(|p| {
                    crate::control::api::same(p.expose().as_bytes(), password.expose().as_bytes())
                })
        }
    };
    let publish_ok = credentials(&access.publish_credentials);
    let play_ok = credentials(&access.play_credentials);
    let publish_pass = access.publish_passphrase.as_ref().or(default_passphrase);
    let play_pass = access.play_passphrase.as_ref().or(default_passphrase);
    let passphrase = match role {
        Some(Role::Publisher) if !publish_ok => {
            return Err(refused("bad_credentials", Refusal::Unauthorized))
        }
        Some(Role::Players) if !play_ok => {
            return Err(refused("bad_credentials", Refusal::Unauthorized))
        }
        Some(Role::Publisher) => publish_pass,
        Some(Role::Players) => play_pass,
        // Not knowing the side, both sides' rules must be the same to let it in.
        None if !(publish_ok && play_ok) => {
            return Err(refused("bad_credentials", Refusal::Unauthorized))
        }
        None if publish_pass != play_pass => {
            return Err(refused("mode_required", Refusal::BadMode))
        }
        None => publish_pass,
    };
    // Limits come after the credentials: an unknown caller learns nothing about the stream.
    if let Some(role) = role {
        if let Some(reason) = full(&found, role) {
            let code = match role {
                Role::Publisher => Refusal::Conflict,
                Role::Players => Refusal::Overload,
            };
            return Err(refused(reason, code));
        }
    }
    Ok(Decision {
        stream,
        role,
        passphrase: passphrase.cloned(),
    })
}

fn show(peer: Option<SocketAddr>) -> String {
    peer.map_or_else(|| "unknown".to_owned(), |p| p.to_string())
}

/// The stream a caller asked for, fit for a log line: only a well-formed name, never the raw
/// Stream ID (it may carry a password).
fn loggable_stream(sid: &str) -> String {
    match streamid::parse(sid) {
        Ok(r) if r.stream.is_empty() => "(none)".to_owned(),
        Ok(r) if crate::control::plan::valid_stream(&r.stream) => r.stream,
        _ => "(unreadable)".to_owned(),
    }
}

struct ServerHook {
    server: String,
    directory: Arc<Directory>,
    default_passphrase: Option<Secret>,
    explicit_tsbpd: bool,
}

impl ServerHook {
    fn caller(&self, c: &Candidate<'_>, stream: &str) -> Caller {
        Caller {
            server: self.server.clone(),
            stream: stream.to_owned(),
            peer: c.peer,
        }
    }
}

impl AcceptHook for ServerHook {
    fn check(&self, c: &Candidate<'_>) -> Result<(), Refusal> {
        let d = match decide(
            &self.directory,
            self.default_passphrase.as_ref(),
            c.streamid,
        ) {
            Ok(d) => d,
            Err(r) => {
                super::log::rejections::record(
                    r.reason,
                    Some(self.caller(c, &loggable_stream(c.streamid))),
                );
                return Err(r.code);
            }
        };
        // libsrt may still refuse it (a wrong passphrase): its log names this socket.
        super::log::rejections::remember(c.id(), self.caller(c, &d.stream));
        if let Some(p) = &d.passphrase {
            c.set_passphrase(p.expose())
                .map_err(|_| Refusal::Internal)?;
        }
        // A publisher's connection is a route input: no TSBPD, so packets are handed over as
        // soon as they are complete (see `relay::input_endpoint`). A player keeps libsrt's
        // default, as any SRT output.
        if d.role != Some(Role::Players) && !self.explicit_tsbpd {
            c.set_bool(srt_sys::SRTO_TSBPDMODE, false, "tsbpdmode")
                .and_then(|()| c.set_bool(srt_sys::SRTO_TLPKTDROP, false, "tlpktdrop"))
                .map_err(|_| Refusal::Internal)?;
        }
        Ok(())
    }
}

/// A caller accepted without a mode, waiting to show whether it sends.
struct Pending {
    conn: Handoff,
    stream: String,
    until: Instant,
}

struct Acceptor {
    name: String,
    listener: HookedListener,
    epoll: Epoll,
    directory: Arc<Directory>,
    encrypted_default: bool,
    pending: Vec<Pending>,
}

impl Acceptor {
    fn run(&mut self, stop: &AtomicBool) {
        let span = tracing::info_span!("srt_server", server = %self.name);
        let _enter = span.enter();
        while !stop.load(Ordering::Acquire) {
            let ready = match self.epoll.wait(POLL) {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %e, "SRT server wait failed");
                    std::thread::sleep(POLL);
                    continue;
                }
            };
            let lid = self.listener.socket().id();
            if ready.iter().any(|(fd, _)| *fd == lid) {
                self.accept_all();
            }
            self.sort_pending(&ready);
        }
        for p in self.pending.drain(..) {
            let _ = p.conn.socket.close();
        }
        tracing::info!("SRT server stopped");
    }

    fn accept_all(&mut self) {
        loop {
            let (socket, peer) = match self.listener.socket().accept() {
                Ok(Some(c)) => c,
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "SRT server accept failed");
                    return;
                }
            };
            let sid = socket
                .get_string(srt_sys::SRTO_STREAMID, "SRTO_STREAMID")
                .unwrap_or_default();
            // The hook let it in; the directory may have changed since (a route stopped).
            let d = match decide(&self.directory, None, &sid) {
                Ok(d) => d,
                Err(r) => {
                    tracing::info!(reason = r.reason, peer = %show(peer), "caller gone before it was accepted");
                    continue;
                }
            };
            if (d.passphrase.is_some() || self.encrypted_default)
                && socket.get_i32(srt_sys::SRTO_KMSTATE, "SRTO_KMSTATE").ok()
                    != Some(srt_sys::SRT_KM_S_SECURED as i32)
            {
                tracing::warn!(stream = %d.stream, peer = %show(peer), "accepted caller is not encrypted; closing it");
                let caller = Caller {
                    server: self.name.clone(),
                    stream: d.stream.clone(),
                    peer,
                };
                super::log::rejections::record("unsecured", Some(caller));
                continue;
            }
            let conn = Handoff { socket, peer };
            match d.role {
                Some(role) => self.hand_off(&d.stream, role, conn),
                None => {
                    if let Err(e) = self.epoll.add(conn.socket.id(), epoll::READ | epoll::ERROR) {
                        tracing::warn!(error = %e, "cannot watch a caller");
                        continue;
                    }
                    self.pending.push(Pending {
                        conn,
                        stream: d.stream,
                        until: Instant::now() + AUTO_DETECT,
                    });
                }
            }
        }
    }

    /// Callers without a mode: sending makes a publisher, silence until the deadline a player.
    fn sort_pending(&mut self, ready: &[(i32, i32)]) {
        let now = Instant::now();
        let mut i = 0;
        while i < self.pending.len() {
            let p = &self.pending[i];
            let id = p.conn.socket.id();
            let state = p.conn.socket.state();
            let role = if state != SocketState::Connected {
                None
            } else if ready
                .iter()
                .any(|(fd, ev)| *fd == id && ev & epoll::READ != 0)
            {
                Some(Role::Publisher)
            } else if now >= p.until {
                Some(Role::Players)
            } else {
                i += 1;
                continue;
            };
            let p = self.pending.swap_remove(i);
            self.epoll.remove(id);
            match role {
                Some(role) => self.hand_off(&p.stream, role, p.conn),
                None => {
                    tracing::info!(stream = %p.stream, peer = %show(p.conn.peer), "caller left before sending or playing")
                }
            }
        }
    }

    fn hand_off(&self, stream: &str, role: Role, conn: Handoff) {
        let peer: Option<SocketAddr> = conn.peer;
        // A caller whose side was found by its behaviour, or players calling at once: the
        // stream's limits apply now too.
        if let Some(reason) = self.directory.lookup(stream).and_then(|l| full(&l, role)) {
            let caller = Caller {
                server: self.name.clone(),
                stream: stream.to_owned(),
                peer,
            };
            super::log::rejections::record(reason, Some(caller));
            let _ = conn.socket.close();
            return;
        }
        let side = match role {
            Role::Publisher => "publisher",
            Role::Players => "player",
        };
        match self.directory.hand_off(stream, role, conn) {
            Ok(()) => tracing::info!(stream, peer = %show(peer), side, "caller accepted"),
            Err(conn) => {
                tracing::warn!(stream, peer = %show(peer), side, "no route takes this caller now; closing it");
                let _ = conn.socket.close();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::directory::{directory, Access};
    use super::*;

    fn secret(s: &str) -> Secret {
        Secret::new(s.to_owned())
    }

    #[test]
    fn callers_are_sorted_by_stream_and_side() {
        let d = directory("test-decide-sides");
        let _a = d.register("live/feed1", Role::Publisher, Access::default());
        let _b = d.register("live/feed1", Role::Players, Access::default());
        let pick = |sid: &str| decide(&d, None, sid).map(|x| (x.stream, x.role));
        let feed = || "live/feed1".to_owned();
        assert_eq!(
            pick("publish/live/feed1"),
            Ok((feed(), Some(Role::Publisher)))
        );
        assert_eq!(pick("play/live/feed1"), Ok((feed(), Some(Role::Players))));
        assert_eq!(pick("#!::r=live/feed1"), Ok((feed(), Some(Role::Players))));
        assert_eq!(pick("read:live/feed1"), Ok((feed(), Some(Role::Players))));
        assert_eq!(pick("live/feed1"), Ok((feed(), None)));
        assert_eq!(pick("publish/other").unwrap_err().reason, "unknown_stream");
        assert_eq!(pick("").unwrap_err().reason, "unknown_stream");
        assert_eq!(
            pick("#!::r=x,m=bidirectional").unwrap_err().reason,
            "bad_streamid"
        );
        d.configure(directory::Settings {
            default_stream: Some(feed()),
            publish_domains: vec!["uplive.sls.com".into()],
            play_domains: vec!["live.sls.com".into()],
        });
        assert_eq!(pick(""), Ok((feed(), None)));
        assert_eq!(
            pick("uplive.sls.com/live/feed1"),
            Ok((feed(), Some(Role::Publisher)))
        );
        assert_eq!(
            pick("live.sls.com/live/feed1"),
            Ok((feed(), Some(Role::Players)))
        );
        assert_eq!(
            pick("other.example/live/feed1").unwrap_err().reason,
            "unknown_stream"
        );
    }

    #[test]
    fn passphrases_and_credentials_follow_the_side() {
        let d = directory("test-decide-access");
        let access = Access {
            publish_passphrase: Some(secret("publish-passphrase")),
            play_passphrase: None,
            publish_credentials: Some(("cam".into(), secret("pw-1"))),
            ..Access::default()
        };
        let _a = d.register("s", Role::Publisher, access.clone());
        let _b = d.register("s", Role::Players, access);
        let default = secret("server-default");
        let pass = |sid: &str| {
            decide(&d, Some(&default), sid).map(|x| x.passphrase.map(|p| p.expose().to_owned()))
        };
        assert_eq!(
            pass("publish:s:cam:pw-1"),
            Ok(Some("publish-passphrase".into()))
        );
        assert_eq!(pass("read:s"), Ok(Some("server-default".into())));
        for bad in [
            "publish:s:cam:pw-2",
            "publish:s:other:pw-1",
            "publish/s",
            "#!::r=s,m=publish,u=cam",
        ] {
            assert_eq!(pass(bad).unwrap_err().reason, "bad_credentials", "{bad}");
        }
        // A bare name could be either side, and the sides' rules differ.
        assert_eq!(pass("s").unwrap_err().reason, "bad_credentials");
    }

    #[test]
    fn a_sending_publisher_is_kept_when_the_stream_takes_over_only_idle_ones() {
        let d = directory("test-decide-when-idle");
        let keep = Access {
            takeover_when_idle: true,
            ..Access::default()
        };
        let (_rx, reg) = d
            .register("s", Role::Publisher, keep.clone())
            .expect("publisher side");
        let _b = d.register("s", Role::Players, keep);
        assert!(decide(&d, None, "publish/s").is_ok(), "no publisher yet");
        reg.activity.sent();
        assert_eq!(
            decide(&d, None, "publish/s").unwrap_err().reason,
            "stream_busy"
        );
        assert!(
            decide(&d, None, "play/s").is_ok(),
            "players are not affected"
        );
        reg.activity.gone();
        assert!(decide(&d, None, "publish/s").is_ok(), "the publisher left");
    }

    #[test]
    fn players_beyond_the_limit_are_refused_after_their_credentials() {
        let d = directory("test-decide-max-players");
        let access = Access {
            max_players: Some(2),
            play_credentials: Some(("viewer".into(), secret("pw-9"))),
            ..Access::default()
        };
        let _a = d.register("s", Role::Publisher, access.clone());
        let (_rx, reg) = d
            .register("s", Role::Players, access)
            .expect("players side");
        let play = "read:s:viewer:pw-9";
        reg.activity
            .players
            .store(1, std::sync::atomic::Ordering::Relaxed);
        assert!(decide(&d, None, play).is_ok());
        reg.activity
            .players
            .store(2, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(decide(&d, None, play).unwrap_err().reason, "players_full");
        // Without the credentials the caller is told nothing about the stream's load.
        assert_eq!(
            decide(&d, None, "read:s").unwrap_err().reason,
            "bad_credentials"
        );
        assert!(
            decide(&d, None, "publish/s").is_ok(),
            "publishers are not affected"
        );
    }

    #[test]
    fn an_undecided_side_needs_one_passphrase_for_both() {
        let d = directory("test-decide-undecided");
        let access = Access {
            publish_passphrase: Some(secret("publish-passphrase")),
            play_passphrase: Some(secret("another-passphrase")),
            ..Access::default()
        };
        let _a = d.register("s", Role::Publisher, access.clone());
        let _b = d.register("s", Role::Players, access);
        assert_eq!(decide(&d, None, "s").unwrap_err().reason, "mode_required");
        assert!(decide(&d, None, "publish/s").is_ok());
    }
}
