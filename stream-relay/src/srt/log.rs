//! Routes libsrt's own log messages into `tracing` (target `srt`), with secrets scrubbed.
#![allow(unsafe_code)]

use crate::common::metrics::CALLBACK_PANICS;
use crate::common::redact;
use srt_sys as sys;
use std::ffi::{c_char, c_int, c_void, CStr};
use std::sync::atomic::Ordering;

// syslog severities, as libsrt's logging API uses them.
const LOG_ERR: c_int = 3;
const LOG_WARNING: c_int = 4;
const LOG_NOTICE: c_int = 5;
const LOG_DEBUG: c_int = 7;

/// Installs the global handler, once, when libsrt is loaded (`super::library::started`, after
/// `main` set up tracing). libsrt calls it from its own threads while holding its logger
/// mutex, so the handler only formats and hands the line to tracing.
pub(super) fn install(lib: &sys::Srt) {
    let level = if tracing::enabled!(target: "srt", tracing::Level::DEBUG) {
        LOG_DEBUG
    } else if tracing::enabled!(target: "srt", tracing::Level::INFO) {
        LOG_NOTICE
    } else {
        LOG_WARNING
    };
    let flags = (sys::SRT_LOGF_DISABLE_TIME
        | sys::SRT_LOGF_DISABLE_THREADNAME
        | sys::SRT_LOGF_DISABLE_SEVERITY
        | sys::SRT_LOGF_DISABLE_EOL) as c_int;
    // SAFETY: the handler is a plain function with the exact SRT_LOG_HANDLER_FN signature and
    // needs no opaque data (null); the settings are global and set once at startup.
    unsafe {
        lib.srt_setloghandler(std::ptr::null_mut(), Some(handler));
        lib.srt_setlogflags(flags);
        lib.srt_setloglevel(level);
    }
}

unsafe extern "C" fn handler(
    _opaque: *mut c_void,
    level: c_int,
    _file: *const c_char,
    _line: c_int,
    area: *const c_char,
    message: *const c_char,
) {
    // SAFETY: libsrt passes NUL-terminated strings (or null) valid for the call; they are
    // copied out before returning.
    let copy = |p: *const c_char| unsafe {
        if p.is_null() {
            String::new()
        } else {
            CStr::from_ptr(p).to_string_lossy().into_owned()
        }
    };
    let area = copy(area);
    let message = copy(message);
    let result = std::panic::catch_unwind(move || emit(level, &area, &message));
    if result.is_err() {
        CALLBACK_PANICS.fetch_add(1, Ordering::Relaxed);
    }
}

fn emit(level: c_int, area: &str, message: &str) {
    let text = message.trim_start_matches(": ").trim_end();
    let text = redact::scrub(text);
    // A refused caller (wrong or missing passphrase, ...): libsrt tells only its log, in four
    // lines per attempt, and a caller retries many times a second. Count each refusal, log
    // one summary per reason now and then, and keep libsrt's own lines for debug.
    if let Some(id) = rejected_socket(area, &text) {
        LAST_REJECTED.set(Some(id));
    }
    if let Some(reason) = rejection(area, &text) {
        let caller = LAST_REJECTED.take().and_then(rejections::caller_of);
        rejections::record(reason, caller);
        tracing::debug!(target: "srt", area, "{text}");
        return;
    }
    // The listener's per-handshake notices ("PASSING request", "Listener managed the
    // connection request") come several per attempt; a caller retrying would flood the log.
    if is_rejection_detail(area, &text) || area == "worker_ProcessConnectionRequest" {
        tracing::debug!(target: "srt", area, "{text}");
        return;
    }
    match level {
        l if l <= LOG_ERR => tracing::error!(target: "srt", area, "{text}"),
        LOG_WARNING => tracing::warn!(target: "srt", area, "{text}"),
        LOG_NOTICE => tracing::info!(target: "srt", area, "{text}"),
        _ => tracing::debug!(target: "srt", area, "{text}"),
    }
}

thread_local! {
    /// The socket of the handshake libsrt just refused on this thread: its
    /// `@ID:newConnection: connection rejected` line comes just before the one with the reason.
    static LAST_REJECTED: std::cell::Cell<Option<i32>> = const { std::cell::Cell::new(None) };
}

fn rejected_socket(area: &str, text: &str) -> Option<i32> {
    if area != "newConnection" || !text.contains("connection rejected") {
        return None;
    }
    text.strip_prefix('@')?.split(':').next()?.parse().ok()
}

/// The reason of a refused connection, from libsrt's `processConnectRequest: rsp(REJECT): CODE -
/// TEXT` line (a listener refusing a caller).
fn rejection(area: &str, text: &str) -> Option<&'static str> {
    if area != "processConnectRequest" {
        return None;
    }
    let code: u32 = text
        .split("rsp(REJECT): ")
        .nth(1)?
        .split(' ')
        .next()?
        .parse()
        .ok()?;
    // SRT_REJ_* (libsrt's srt.h). Codes from 1100 up come from our own listen callback,
    // which counts them with a finer reason itself.
    if code >= 1100 {
        return None;
    }
    Some(match code {
        1010 => "bad_passphrase",
        1011 => "passphrase_missing",
        1014 => "filter_mismatch",
        // 1000 + SRT_REJ_*: VERSION 8, CONGESTION 13, FILTER 14, CRYPTO 17.
        1008 => "version",
        1013 => "config_mismatch",
        1017 => "crypto_mismatch",
        _ => "other",
    })
}

/// libsrt's other lines about the same refusal, which would repeat the count's story.
fn is_rejection_detail(area: &str, text: &str) -> bool {
    matches!(
        area,
        "processSrtMsg_KMREQ" | "interpretSrtHandshake" | "newConnection" | "processConnectRequest"
    ) && (text.contains("BADSECRET")
        || text.contains("NOSECRET")
        || text.contains("rejecting per enforced encryption")
        || text.contains("connection rejected")
        || text.contains("rsp(REJECT)")
        || text.starts_with("listen ret:"))
}

/// Callers a listener refused, by reason, for `relay_callers_rejected_total`.
pub mod rejections {
    use std::collections::{BTreeMap, VecDeque};
    use std::net::SocketAddr;
    use std::sync::Mutex;
    use std::time::{Duration, Instant};

    /// Who was refused, when known (a shared listener's caller).
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct Caller {
        pub server: String,
        /// A name checked to be printable, never the raw Stream ID (it may hold a password).
        pub stream: String,
        pub peer: Option<SocketAddr>,
    }

    /// What a summary line is about: a reason, and the server and stream when known.
    type Key = (&'static str, String, String);

    struct State {
        counts: BTreeMap<&'static str, u64>,
        /// Per key: when it was last logged, and refusals since then.
        logged: BTreeMap<Key, (Instant, u64)>,
        /// Callers the shared listener's hook let through, by the socket id libsrt made for
        /// them: a refusal libsrt makes after the hook (wrong passphrase) names its socket.
        candidates: VecDeque<(i32, Caller)>,
    }

    static STATE: Mutex<State> = Mutex::new(State {
        counts: BTreeMap::new(),
        logged: BTreeMap::new(),
        candidates: VecDeque::new(),
    });

    /// One summary line per reason and stream at most this often.
    const LOG_EVERY: Duration = Duration::from_secs(10);
    /// Keys remembered; callers naming ever new streams cannot grow the map past this.
    const MAX_KEYS: usize = 1024;
    /// Handshakes remembered; libsrt refuses within the same handshake, so a few suffice.
    const MAX_CANDIDATES: usize = 256;

    /// A summary of refusals, as logged: for the monitoring feed.
    pub struct Summary<'a> {
        pub reason: &'static str,
        /// Refusals for this reason (and stream) since the previous summary.
        pub count: u64,
        pub caller: Option<&'a Caller>,
    }

    type Sink = Box<dyn Fn(&Summary<'_>) + Send + Sync>;
    static SINK: std::sync::OnceLock<Sink> = std::sync::OnceLock::new();

    /// Also hands every summary to `sink` (the feed's event bus); set once, at startup.
    pub fn on_summary(sink: impl Fn(&Summary<'_>) + Send + Sync + 'static) {
        let _ = SINK.set(Box::new(sink));
    }

    /// A handshake the shared listener's hook let through, on libsrt's socket `id`.
    pub(crate) fn remember(id: i32, caller: Caller) {
        let mut st = STATE.lock().unwrap_or_else(|p| p.into_inner());
        if st.candidates.len() >= MAX_CANDIDATES {
            st.candidates.pop_front();
        }
        st.candidates.push_back((id, caller));
    }

    /// The caller of socket `id`, if the hook let it through lately.
    pub(crate) fn caller_of(id: i32) -> Option<Caller> {
        let mut st = STATE.lock().unwrap_or_else(|p| p.into_inner());
        let i = st.candidates.iter().position(|(c, _)| *c == id)?;
        st.candidates.remove(i).map(|(_, c)| c)
    }

    pub(crate) fn record(reason: &'static str, caller: Option<Caller>) {
        let mut st = STATE.lock().unwrap_or_else(|p| p.into_inner());
        let total = {
            let c = st.counts.entry(reason).or_insert(0);
            *c += 1;
            *c
        };
        let key: Key = match &caller {
            Some(c) => (reason, c.server.clone(), c.stream.clone()),
            None => (reason, String::new(), String::new()),
        };
        if st.logged.len() >= MAX_KEYS && !st.logged.contains_key(&key) {
            st.logged.clear();
        }
        let now = Instant::now();
        let since = {
            let entry = st.logged.entry(key).or_insert((now - LOG_EVERY, 0));
            entry.1 += 1;
            if now.duration_since(entry.0) < LOG_EVERY {
                return;
            }
            entry.0 = now;
            std::mem::take(&mut entry.1)
        };
        drop(st);
        if let Some(sink) = SINK.get() {
            sink(&Summary {
                reason,
                count: since,
                caller: caller.as_ref(),
            });
        }
        match caller {
            None => tracing::warn!(
                reason,
                refused = since,
                total,
                "SRT caller refused (retries are counted, not logged one by one)"
            ),
            Some(c) => tracing::warn!(
                reason,
                server = %c.server,
                stream = %c.stream,
                peer = %c.peer.map_or_else(|| "unknown".to_owned(), |p| p.to_string()),
                refused = since,
                total,
                "SRT caller refused (retries are counted, not logged one by one)"
            ),
        }
    }

    /// Every reason seen, with its count.
    pub fn snapshot() -> Vec<(&'static str, u64)> {
        STATE
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .counts
            .iter()
            .map(|(k, v)| (*k, *v))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_recognised_by_code() {
        assert_eq!(
            rejection(
                "processConnectRequest",
                "rsp(REJECT): 1010 - Incorrect passphrase"
            ),
            Some("bad_passphrase")
        );
        assert_eq!(
            rejection(
                "processConnectRequest",
                "rsp(REJECT): 1011 - Password required or unexpected"
            ),
            Some("passphrase_missing")
        );
        assert_eq!(rejection("processConnectRequest", "listen ret: 1010"), None);
        assert_eq!(rejection("other", "rsp(REJECT): 1010 - x"), None);
        assert_eq!(
            rejected_socket(
                "newConnection",
                "@486900678:newConnection: connection rejected due to: INTERNAL REJECTION - ERROR:BADSECRET"
            ),
            Some(486900678)
        );
        assert_eq!(rejected_socket("newConnection", "accepted @5"), None);
        rejections::remember(
            77,
            rejections::Caller {
                server: "s".into(),
                stream: "cam".into(),
                peer: None,
            },
        );
        assert_eq!(
            rejections::caller_of(77).map(|c| c.stream),
            Some("cam".into())
        );
        assert_eq!(rejections::caller_of(77), None, "taken once");
        assert!(is_rejection_detail(
            "processSrtMsg_KMREQ",
            "KMREQ/rcv: (snd) Rx process failure - BADSECRET"
        ));
    }
}
