//! Safe wrapper over libsrt (the `srt-sys` bindings) and the SRT adapter for the relay core.
//! Only `error.rs`, `socket.rs`, `epoll.rs` and `log.rs` contain `unsafe`.

mod epoll;
mod error;
pub mod listen_hook;
pub mod log;
mod options;
pub mod relay;
pub mod server;
mod socket;
pub mod streamid;
pub mod uri;

pub use error::{Error, ErrorKind, Result};
pub use socket::{Received, Socket, SocketState};

#[allow(unsafe_code)]
mod library {
    use srt_sys as sys;
    use std::sync::Once;

    static STARTUP: Once = Once::new();

    /// libsrt must be started once before any socket exists; every safe constructor calls this.
    pub fn startup() {
        STARTUP.call_once(|| {
            // SAFETY: srt_startup initialises global library state and is safe to call before
            // any other SRT function; Once makes it happen exactly once.
            unsafe {
                sys::srt_startup();
            }
        });
    }

    /// Tears libsrt down. Call once at the end of `main`, after every SRT socket is closed and
    /// every thread that uses SRT has been joined, as libsrt's API docs ask.
    pub fn cleanup() {
        if STARTUP.is_completed() {
            // SAFETY: called once from main after all users of the library have stopped.
            unsafe {
                sys::srt_cleanup();
            }
        }
    }

    /// The version of the libsrt that was actually loaded (not the headers we built against).
    pub fn version() -> (u32, u32, u32) {
        // SAFETY: reads a constant compiled into the library.
        let v = unsafe { sys::srt_getversion() };
        ((v >> 16) & 0xff, (v >> 8) & 0xff, v & 0xff)
    }

    /// libsrt's clock, in microseconds: the clock `SRT_MSGCTRL::srctime` is expressed in.
    pub fn now_us() -> i64 {
        // SAFETY: reads libsrt's steady clock; no state involved.
        unsafe { sys::srt_time_now() }
    }
}

pub use library::{cleanup, now_us, startup, version};

/// The oldest libsrt whose behaviour we rely on (srctime validation, bistats fields).
pub const MIN_VERSION: (u32, u32, u32) = (1, 5, 0);
