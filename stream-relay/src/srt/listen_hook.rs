//! libsrt's listen callback (`srt_listen_callback`): a listener asks the application about
//! each caller during the handshake, before the connection exists, with the caller's Stream
//! ID. The hook may refuse it with a reason code the caller sees, or set options on the new
//! socket first (a passphrase per stream, TSBPD per direction).
#![allow(unsafe_code)]

use super::error::{check, Result};
use super::socket::Socket;
use crate::common::metrics::CALLBACK_PANICS;
use srt_sys as sys;
use std::ffi::{c_char, c_int, c_void, CStr};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// A refusal, as libsrt's reject codes in the "predefined" range (1000-1999) of
/// `access_control.h`; the caller's `srt_getrejectreason` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// SRT_REJX_BAD_REQUEST: the Stream ID cannot be parsed.
    BadRequest = 1400,
    /// SRT_REJX_UNAUTHORIZED: wrong or missing credentials.
    Unauthorized = 1401,
    /// SRT_REJX_OVERLOAD: the stream serves as many callers as it may.
    Overload = 1402,
    /// SRT_REJX_FORBIDDEN.
    Forbidden = 1403,
    /// SRT_REJX_NOTFOUND: no such stream.
    NotFound = 1404,
    /// SRT_REJX_BAD_MODE: the mode is not served for this stream.
    BadMode = 1405,
    /// SRT_REJX_CONFLICT: the stream already has an active publisher.
    Conflict = 1409,
    /// SRT_REJX_ISE: our own failure (an option could not be set).
    Internal = 1500,
}

/// The caller being handshaken, and the new socket's options.
pub struct Candidate<'a> {
    socket: &'a Socket,
    pub peer: Option<SocketAddr>,
    /// As sent; may hold credentials (MediaMTX `read:name:user:pass`): never log it.
    pub streamid: &'a str,
    pub hs_version: i32,
}

impl Candidate<'_> {
    /// The id of the socket libsrt made for this caller (its log lines name it).
    pub fn id(&self) -> i32 {
        self.socket.id()
    }

    pub fn set_passphrase(&self, passphrase: &str) -> Result<()> {
        self.socket
            .set_str(sys::SRTO_PASSPHRASE, passphrase, "passphrase")
    }

    pub fn set_bool(&self, opt: sys::SRT_SOCKOPT, value: bool, name: &'static str) -> Result<()> {
        self.socket.set_bool(opt, value, name)
    }
}

/// What a listener asks about each caller. Runs on libsrt's receiving thread, in the middle
/// of a handshake: it must be quick and must not call into the listener it serves.
pub trait AcceptHook: Send + Sync {
    fn check(&self, candidate: &Candidate<'_>) -> std::result::Result<(), Refusal>;
}

/// A listening socket with a hook installed. The hook lives as long as the socket: it is
/// freed only after the socket is closed, and libsrt removes a closed listener from its
/// receive queue under the same lock it holds while calling the hook, so no call can still
/// be running then.
pub struct HookedListener {
    socket: Option<Socket>,
    hook: *const HookData,
}

/// What libsrt hands the trampoline: the hook, and the library the listener lives in (to
/// lend the trampoline the caller's socket and set its reject reason).
struct HookData {
    hook: Arc<dyn AcceptHook>,
    lib: &'static sys::Srt,
}

// SAFETY: the raw pointer is only dereferenced by libsrt's callback (the hook is Send + Sync)
// and freed once in Drop, after the socket is closed.
unsafe impl Send for HookedListener {}

impl HookedListener {
    /// Installs `hook` on `socket`, which must be bound but not yet listening (libsrt checks
    /// the hook on `srt_listen`).
    pub fn new(socket: Socket, hook: Arc<dyn AcceptHook>) -> Result<HookedListener> {
        let lib = socket.lib();
        let hook = Box::into_raw(Box::new(HookData { hook, lib })) as *const HookData;
        let listener = HookedListener {
            socket: Some(socket),
            hook,
        };
        // SAFETY: `hook` stays valid until Drop, which closes the socket first; the function
        // has the exact srt_listen_callback_fn signature.
        let rc = unsafe {
            lib.srt_listen_callback(
                listener.socket().id(),
                Some(trampoline),
                hook as *mut c_void,
            )
        };
        check(lib, rc, "srt_listen_callback")?;
        Ok(listener)
    }

    pub fn socket(&self) -> &Socket {
        self.socket.as_ref().expect("present until drop")
    }
}

impl Drop for HookedListener {
    fn drop(&mut self) {
        if let Some(s) = self.socket.take() {
            let _ = s.close();
        }
        // SAFETY: created by Box::into_raw in `new`; the socket is closed, so libsrt no longer
        // holds the pointer.
        drop(unsafe { Box::from_raw(self.hook as *mut HookData) });
    }
}

unsafe extern "C" fn trampoline(
    opaque: *mut c_void,
    ns: sys::SRTSOCKET,
    hs_version: c_int,
    peer: *const sys::sockaddr,
    streamid: *const c_char,
) -> c_int {
    // SAFETY: opaque is the HookData installed in `HookedListener::new`, alive while the
    // listener is; streamid is NUL-terminated (or null) and valid for the call; peer points at
    // a sockaddr of the caller's family (or is null).
    let (data, sid, peer) = unsafe {
        let data = &*(opaque as *const HookData);
        let sid = if streamid.is_null() {
            String::new()
        } else {
            CStr::from_ptr(streamid).to_string_lossy().into_owned()
        };
        let peer = if peer.is_null() {
            None
        } else {
            super::socket::peer_from_raw(peer)
        };
        (data, sid, peer)
    };
    let (hook, lib) = (&data.hook, data.lib);
    let socket = Socket::borrowed(lib, ns);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        hook.check(&Candidate {
            socket: &socket,
            peer,
            streamid: &sid,
            hs_version,
        })
    }));
    let refusal = match result {
        Ok(Ok(())) => return 0,
        Ok(Err(r)) => r,
        Err(_) => {
            CALLBACK_PANICS.fetch_add(1, Ordering::Relaxed);
            Refusal::Internal
        }
    };
    // SAFETY: ns is the socket libsrt is handshaking; setting its reject reason is what the
    // API asks of a refusing hook.
    unsafe {
        lib.srt_setrejectreason(ns, refusal as c_int);
    }
    -1
}
