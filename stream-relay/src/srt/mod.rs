//! Safe wrapper over libsrt (the `srt-sys` bindings) and the SRT adapter for the relay core.
//! Only `error.rs`, `socket.rs`, `epoll.rs`, `log.rs`, `listen_hook.rs` and the `library` module
//! below contain `unsafe`. libsrt is opened on first use (`library`), not linked.

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
    //! Opening and starting libsrt, and the relay's clock.
    //!
    //! The invariant every wrapper relies on: a `&'static sys::Srt` (libsrt's function table)
    //! only comes out of `started()`, after the library was opened, found new enough, its clock
    //! checked and `srt_startup` called. Every handle (`Socket`, `Epoll`, a listen hook's user
    //! data) keeps the table it was made with, so no SRT call can be reached without a
    //! successful load, and a failed load is an `Err` of the constructor that tried, never a
    //! panic.
    use super::{Error, ErrorKind, Result};
    use crate::common::once::OnceTry;
    use srt_sys as sys;

    /// Set once libsrt is open and started; two routes starting together call `srt_startup`
    /// once.
    static STARTED: OnceTry<&'static sys::Srt> = OnceTry::new();

    /// libsrt's function table once started; opens and starts it on the first call (every
    /// safe constructor calls this). A failure is returned to the caller and retried next time.
    pub(super) fn started() -> Result<&'static sys::Srt> {
        STARTED.get_or_try_init(load)
    }

    fn load() -> Result<&'static sys::Srt> {
        let lib = open()?;
        let version = version_of(lib);
        if version < super::MIN_VERSION {
            return Err(library_error(format!(
                "{} is libsrt {}.{}.{}, older than {}.{}.{}",
                sys::LIBRARY_NAME,
                version.0,
                version.1,
                version.2,
                super::MIN_VERSION.0,
                super::MIN_VERSION.1,
                super::MIN_VERSION.2
            )));
        }
        check_clock(lib)?;
        // SAFETY: initialises libsrt's global state (its garbage collector thread); called
        // once (`STARTED` runs `load` once at a time), before any other call that needs it.
        let rc = unsafe { lib.srt_startup() };
        if rc < 0 {
            return Err(Error::last(lib, "srt_startup"));
        }
        super::log::install(lib);
        tracing::info!(
            libsrt = %format!("{}.{}.{}", version.0, version.1, version.2),
            library = sys::LIBRARY_NAME,
            "libsrt loaded"
        );
        Ok(lib)
    }

    /// Opens libsrt and starts it (see `started`); for `main`, to load it at startup when the
    /// configuration already uses SRT.
    pub fn startup() -> Result<()> {
        started().map(drop)
    }

    /// Whether libsrt has been opened and started in this process.
    pub fn is_loaded() -> bool {
        STARTED.get().is_some()
    }

    fn open() -> Result<&'static sys::Srt> {
        sys::library().map_err(|e| library_error(e.to_string()))
    }

    fn library_error(message: String) -> Error {
        Error::new("libsrt", ErrorKind::Library, message)
    }

    /// Tears libsrt down. Call once at the end of `main`, after every SRT socket is closed and
    /// every thread that uses SRT has been joined, as libsrt's API docs ask. Does nothing if
    /// libsrt was never loaded.
    pub fn cleanup() {
        if let Some(lib) = STARTED.get() {
            // SAFETY: called once from main after all users of the library have stopped.
            unsafe {
                lib.srt_cleanup();
            }
        }
    }

    /// The version of the libsrt found at run time (not the headers we built against), opening
    /// it if needed but not starting it: for `--version`.
    pub fn version() -> Result<(u32, u32, u32)> {
        open().map(version_of)
    }

    /// The version of the started libsrt, if it is loaded.
    pub fn loaded_version() -> Option<(u32, u32, u32)> {
        STARTED.get().map(version_of)
    }

    fn version_of(lib: &sys::Srt) -> (u32, u32, u32) {
        // SAFETY: reads a constant compiled into the library; needs no initialisation.
        let v = unsafe { lib.srt_getversion() };
        ((v >> 16) & 0xff, (v >> 8) & 0xff, v & 0xff)
    }

    /// The relay's clock: CLOCK_MONOTONIC in microseconds, the clock libsrt's `srt_time_now()`
    /// and `SRT_MSGCTRL::srctime` use on Linux (libsrt 1.5.1 `sync_posix.cpp`: with
    /// ENABLE_MONOTONIC_CLOCK, the default wherever clock_gettime exists, `rdtsc()` reads
    /// `clock_gettime(CLOCK_MONOTONIC)` as `tv_sec * 1000000 + tv_nsec / 1000` at one tick per
    /// microsecond; built with ENABLE_STDCXX_SYNC it is std::chrono::steady_clock, the same
    /// clock). Read here rather than through libsrt so that a process without SRT routes
    /// never loads libsrt to stamp packets; `check_clock` makes sure they agree once libsrt
    /// is loaded, so source times pass to and from libsrt unconverted.
    pub fn now_us() -> i64 {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: ts is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux, so
        // the call cannot fail (EINVAL/EFAULT are the only errors).
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
        ts.tv_sec * 1_000_000 + ts.tv_nsec / 1_000
    }

    /// Most that `srt_time_now()` may differ from `now_us()`, read just before and after it.
    const CLOCK_TOLERANCE_US: i64 = 1_000;

    /// Refuses a libsrt whose clock is not ours. A build without a monotonic clock (libsrt's
    /// POSIX_GETTIMEOFDAY fallback) counts wall-clock time, which steps with NTP: no fixed
    /// offset converts it, and source times handed to it would be wrong by hours.
    fn check_clock(lib: &sys::Srt) -> Result<()> {
        let before = now_us();
        // SAFETY: reads libsrt's steady clock; no state involved, no startup needed.
        let theirs = unsafe { lib.srt_time_now() };
        let after = now_us();
        if theirs < before - CLOCK_TOLERANCE_US || theirs > after + CLOCK_TOLERANCE_US {
            return Err(library_error(format!(
                "{}'s clock (srt_time_now() = {theirs} us) is not CLOCK_MONOTONIC ({before} us): \
                 stream-relay needs a libsrt built with its monotonic clock (ENABLE_MONOTONIC_CLOCK)",
                sys::LIBRARY_NAME
            )));
        }
        Ok(())
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn our_clock_is_libsrts() {
            let lib = started().expect("libsrt loads");
            for _ in 0..1000 {
                let before = now_us();
                // SAFETY: reads libsrt's clock.
                let theirs = unsafe { lib.srt_time_now() };
                let after = now_us();
                assert!(
                    before <= theirs && theirs <= after,
                    "{before} <= {theirs} <= {after}"
                );
            }
            assert!(is_loaded());
            assert_eq!(version().ok(), loaded_version());
        }
    }
}

pub use library::{cleanup, is_loaded, loaded_version, now_us, startup, version};

/// The oldest libsrt whose behaviour we rely on (srctime validation, bistats fields).
pub const MIN_VERSION: (u32, u32, u32) = (1, 5, 0);
