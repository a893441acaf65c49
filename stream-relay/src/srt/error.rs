//! libsrt failures as a typed Rust error. libsrt keeps its last error in thread-local storage,
//! defined only right after the failed call, so `check` reads and clears it on the spot.
#![allow(unsafe_code)]

use srt_sys as sys;
use std::ffi::CStr;
use std::fmt;

/// What kind of failure, for callers that must react differently (retry, reconnect, give up).
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// Nothing to read or no room to write on a non-blocking socket.
    WouldBlock,
    Timeout,
    /// The connection is gone (broken, closed, never connected).
    ConnectionLost,
    /// The peer refused or did not answer the handshake.
    ConnectionRejected,
    /// The local address is in use or cannot be bound.
    AddressInUse,
    InvalidArgument,
    /// libsrt cannot be loaded, or is not one we can use (too old, another clock).
    Library,
    Other,
}

#[derive(Debug, Clone, thiserror::Error)]
pub struct Error {
    pub function: &'static str,
    pub code: i32,
    pub kind: ErrorKind,
    pub message: String,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.kind == ErrorKind::Library {
            // No call failed: the message says what is wrong with the library.
            return f.write_str(&self.message);
        }
        write!(
            f,
            "{} failed: {} (SRT error {})",
            self.function, self.message, self.code
        )
    }
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Reads libsrt's thread-local last error for a call that just failed on this thread.
    pub(crate) fn last(lib: &sys::Srt, function: &'static str) -> Error {
        let mut sys_errno: i32 = 0;
        // SAFETY: srt_getlasterror writes one int through a valid pointer and reads TLS only.
        let code = unsafe { lib.srt_getlasterror(&mut sys_errno) };
        // SAFETY: srt_getlasterror_str returns a pointer into libsrt's thread-local error
        // object, valid until the next SRT call on this thread; it is copied out right here.
        let message = unsafe {
            let ptr = lib.srt_getlasterror_str();
            if ptr.is_null() {
                String::from("unknown error")
            } else {
                CStr::from_ptr(ptr).to_string_lossy().into_owned()
            }
        };
        // SAFETY: clears this thread's error slot; no pointers involved.
        unsafe { lib.srt_clearlasterror() };
        Error {
            function,
            code,
            kind: kind_of(code),
            message,
        }
    }

    pub(crate) fn new(
        function: &'static str,
        kind: ErrorKind,
        message: impl Into<String>,
    ) -> Error {
        Error {
            function,
            code: 0,
            kind,
            message: message.into(),
        }
    }
}

/// Turns a libsrt return code (`SRT_ERROR` = -1 on failure) into a `Result`.
pub(crate) fn check(lib: &sys::Srt, rc: i32, function: &'static str) -> Result<i32> {
    if rc == sys::SRT_ERROR {
        Err(Error::last(lib, function))
    } else {
        Ok(rc)
    }
}

fn kind_of(code: i32) -> ErrorKind {
    match code {
        sys::SRT_EASYNCSND | sys::SRT_EASYNCRCV | sys::SRT_EASYNCFAIL | sys::SRT_ECONGEST => {
            ErrorKind::WouldBlock
        }
        sys::SRT_ETIMEOUT => ErrorKind::Timeout,
        sys::SRT_ECONNLOST
        | sys::SRT_ENOCONN
        | sys::SRT_ECONNFAIL
        | sys::SRT_ESCLOSED
        | sys::SRT_EINVSOCK => ErrorKind::ConnectionLost,
        sys::SRT_ECONNREJ | sys::SRT_ENOSERVER | sys::SRT_ECONNSETUP | sys::SRT_ESECFAIL => {
            ErrorKind::ConnectionRejected
        }
        sys::SRT_EDUPLISTEN | sys::SRT_EBINDCONFLICT | sys::SRT_ESOCKFAIL => {
            ErrorKind::AddressInUse
        }
        sys::SRT_EINVPARAM | sys::SRT_EINVOP | sys::SRT_EBOUNDSOCK | sys::SRT_ECONNSOCK => {
            ErrorKind::InvalidArgument
        }
        _ => ErrorKind::Other,
    }
}

/// libsrt's text for a handshake rejection reason (`srt_getrejectreason`).
pub(crate) fn reject_reason_text(lib: &sys::Srt, reason: i32) -> String {
    // SAFETY: srt_rejectreason_str returns a pointer to a static string table entry (or a
    // fallback static string for unknown ids); it is never freed.
    unsafe {
        let ptr = lib.srt_rejectreason_str(reason);
        if ptr.is_null() {
            format!("reason {reason}")
        } else {
            CStr::from_ptr(ptr).to_string_lossy().into_owned()
        }
    }
}
