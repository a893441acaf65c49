//! Which streams a shared SRT listener serves: each running route that takes its input from a
//! server registers its stream here (publisher side and players side), with the stream's
//! access rules. The listener's hook and accept thread look streams up here; a route that
//! stops takes its stream with it, so later callers are refused as "unknown stream".

use super::super::Socket;
use crate::common::redact::Secret;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex, OnceLock, Weak};

/// Who may publish or play a stream.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Access {
    /// SRT encryption passphrases a publisher / a player must use; `None` falls back to the
    /// server's passphrase (`passphrase=` in its listen URI), if any.
    pub publish_passphrase: Option<Secret>,
    pub play_passphrase: Option<Secret>,
    /// Credentials carried in the Stream ID (MediaMTX `publish:NAME:USER:PASS`).
    pub publish_credentials: Option<(String, Secret)>,
    pub play_credentials: Option<(String, Secret)>,
    /// A new publisher session is refused while the current one sends (it takes over only an
    /// idle or half-open one), instead of the newest always winning.
    pub takeover_when_idle: bool,
    /// Players served at once at most; more are refused (`players_full`).
    pub max_players: Option<usize>,
}

/// A publisher that sent within this time is active: `takeover_when_idle` keeps it.
pub const ACTIVE_WITHIN_MS: i64 = 1000;

/// A connection accepted by the listener, handed to the route that serves its stream.
#[derive(Debug)]
pub struct Handoff {
    pub socket: Socket,
    pub peer: Option<SocketAddr>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Publisher,
    Players,
}

/// Connections waiting to be taken by a route; a route takes them within one poll.
const HANDOFF_QUEUE: usize = 64;

#[derive(Default)]
struct Entry {
    access: Access,
    activity: Arc<Activity>,
    publisher: Option<SyncSender<Handoff>>,
    players: Option<SyncSender<Handoff>>,
}

#[derive(Default)]
pub struct Directory {
    streams: Mutex<HashMap<String, Entry>>,
    settings: Mutex<Settings>,
}

/// How a server reads Stream IDs beyond the standard forms.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Settings {
    /// The stream of callers that send no Stream ID.
    pub default_stream: Option<String>,
    /// First path segments that mean publish / play in an SLS-style `DOMAIN/NAME` Stream ID
    /// (`publish/` and `play/` always do).
    pub publish_domains: Vec<String>,
    pub play_domains: Vec<String>,
}

/// What the listener's hook needs to know about a stream.
#[derive(Clone, Debug)]
pub struct Lookup {
    pub access: Access,
    /// The current publisher sent within `ACTIVE_WITHIN_MS`.
    pub publisher_active: bool,
    /// Players connected now.
    pub players: usize,
    pub has_publisher_side: bool,
    pub has_players_side: bool,
}

/// Keeps a stream registered; dropping it (the route's link closing) unregisters that side.
pub struct Registration {
    pub activity: Arc<Activity>,
    directory: Arc<Directory>,
    stream: String,
    role: Role,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut streams = self.directory.lock();
        if let Some(e) = streams.get_mut(&self.stream) {
            match self.role {
                Role::Publisher => e.publisher = None,
                Role::Players => e.players = None,
            }
            if e.publisher.is_none() && e.players.is_none() {
                streams.remove(&self.stream);
            }
        }
    }
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Registration({} {:?})", self.stream, self.role)
    }
}

/// What the routes report about a stream for the listener's hook: when its publisher last
/// sent or connected (libsrt clock, ms; 0: no publisher), and how many players it has.
#[derive(Debug, Default)]
pub struct Activity {
    last_ms: AtomicI64,
    pub players: AtomicUsize,
}

impl Activity {
    pub fn sent(&self) {
        self.last_ms
            .store(crate::srt::now_us() / 1000, Ordering::Relaxed);
    }

    pub fn gone(&self) {
        self.last_ms.store(0, Ordering::Relaxed);
    }

    pub fn active(&self) -> bool {
        let last = self.last_ms.load(Ordering::Relaxed);
        last != 0 && crate::srt::now_us() / 1000 - last < ACTIVE_WITHIN_MS
    }
}

/// Servers by name. A directory outlives a restart of its listener (a changed listen URI):
/// routes stay registered and only callers reconnect.
static SERVERS: OnceLock<Mutex<HashMap<String, Weak<Directory>>>> = OnceLock::new();

/// The directory of the server called `name`, created on first use.
pub fn directory(name: &str) -> Arc<Directory> {
    let mut all = SERVERS
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(d) = all.get(name).and_then(Weak::upgrade) {
        return d;
    }
    all.retain(|_, w| w.strong_count() > 0);
    let d = Arc::new(Directory::default());
    all.insert(name.to_owned(), Arc::downgrade(&d));
    d
}

impl Directory {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.streams.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn configure(&self, settings: Settings) {
        *self.settings.lock().unwrap_or_else(|p| p.into_inner()) = settings;
    }

    pub fn settings(&self) -> Settings {
        self.settings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Registers one side of `stream`. Fails if that side is already served (two routes
    /// claiming one stream).
    pub fn register(
        self: &Arc<Self>,
        stream: &str,
        role: Role,
        access: Access,
    ) -> Result<(Receiver<Handoff>, Registration), String> {
        let mut streams = self.lock();
        let e = streams.entry(stream.to_owned()).or_default();
        let slot = match role {
            Role::Publisher => &mut e.publisher,
            Role::Players => &mut e.players,
        };
        if slot.is_some() {
            return Err(format!(
                "stream '{stream}' is already served by another route"
            ));
        }
        let (tx, rx) = mpsc::sync_channel(HANDOFF_QUEUE);
        *slot = Some(tx);
        e.access = access;
        Ok((
            rx,
            Registration {
                activity: e.activity.clone(),
                directory: self.clone(),
                stream: stream.to_owned(),
                role,
            },
        ))
    }

    pub fn lookup(&self, stream: &str) -> Option<Lookup> {
        self.lock().get(stream).map(|e| Lookup {
            access: e.access.clone(),
            publisher_active: e.activity.active(),
            players: e.activity.players.load(Ordering::Relaxed),
            has_publisher_side: e.publisher.is_some(),
            has_players_side: e.players.is_some(),
        })
    }

    /// Hands a connection to the side of `stream` that serves `role`; gives it back if that
    /// side is gone or not taking connections.
    pub fn hand_off(&self, stream: &str, role: Role, conn: Handoff) -> Result<(), Handoff> {
        let streams = self.lock();
        let tx = streams.get(stream).and_then(|e| match role {
            Role::Publisher => e.publisher.as_ref(),
            Role::Players => e.players.as_ref(),
        });
        match tx {
            Some(tx) => tx.try_send(conn).map_err(|e| match e {
                mpsc::TrySendError::Full(c) | mpsc::TrySendError::Disconnected(c) => c,
            }),
            None => Err(conn),
        }
    }

    pub fn streams(&self) -> Vec<String> {
        let mut v: Vec<String> = self.lock().keys().cloned().collect();
        v.sort();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_lives_as_long_as_one_of_its_sides() {
        let d = directory("test-directory-lifetime");
        let (_rx, pubreg) = d
            .register("cam", Role::Publisher, Access::default())
            .expect("first");
        assert!(d
            .register("cam", Role::Publisher, Access::default())
            .is_err());
        let (_rx2, playreg) = d
            .register("cam", Role::Players, Access::default())
            .expect("players side");
        let l = d.lookup("cam").expect("registered");
        assert!(l.has_publisher_side && l.has_players_side);
        drop(pubreg);
        let l = d.lookup("cam").expect("players still registered");
        assert!(!l.has_publisher_side);
        drop(playreg);
        assert!(d.lookup("cam").is_none());
        assert!(Arc::ptr_eq(&d, &directory("test-directory-lifetime")));
    }
}
