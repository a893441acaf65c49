//! `Epoll` owns one libsrt epoll container: the only place relay threads wait for SRT sockets.
#![allow(unsafe_code)]

use super::error::{check, Error, Result};
use srt_sys as sys;
use std::time::Duration;

pub const READ: i32 = sys::SRT_EPOLL_IN as i32;
pub const WRITE: i32 = sys::SRT_EPOLL_OUT as i32;
pub const ERROR: i32 = sys::SRT_EPOLL_ERR as i32;

pub struct Epoll {
    raw: i32,
    events: Vec<sys::SRT_EPOLL_EVENT>,
    /// As `Socket::lib`: the proof libsrt was loaded and started.
    lib: &'static sys::Srt,
}

impl std::fmt::Debug for Epoll {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Epoll").field("raw", &self.raw).finish()
    }
}

// SAFETY: an epoll id is an integer handle into libsrt's global epoll table, guarded by
// libsrt's own locks; one relay thread owns each `Epoll` at a time (moved, never shared).
unsafe impl Send for Epoll {}

impl Epoll {
    /// A new epoll container; loads and starts libsrt first if needed (see `Socket::new`).
    pub fn new() -> Result<Epoll> {
        let lib = super::library::started()?;
        // SAFETY: creates a new epoll container; no pointers involved.
        let raw = check(lib, unsafe { lib.srt_epoll_create() }, "srt_epoll_create")?;
        // An empty container is a normal state between connections: wait must time out, not fail.
        // SAFETY: plain call on the id we just created.
        unsafe { lib.srt_epoll_set(raw, sys::SRT_EPOLL_ENABLE_EMPTY as i32) };
        Ok(Epoll {
            raw,
            events: vec![sys::SRT_EPOLL_EVENT { fd: 0, events: 0 }; 64],
            lib,
        })
    }

    pub fn add(&mut self, socket: i32, events: i32) -> Result<()> {
        // SAFETY: events points at one readable int for the call.
        check(
            self.lib,
            unsafe { self.lib.srt_epoll_add_usock(self.raw, socket, &events) },
            "srt_epoll_add_usock",
        )
        .map(drop)
    }

    pub fn remove(&mut self, socket: i32) {
        // SAFETY: plain call; removing an unknown socket is harmless, so the error is cleared.
        unsafe {
            self.lib.srt_epoll_remove_usock(self.raw, socket);
            self.lib.srt_clearlasterror();
        }
    }

    /// Waits up to `timeout` and returns the ready sockets with their event bits.
    pub fn wait(&mut self, timeout: Duration) -> Result<Vec<(i32, i32)>> {
        let ms = i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX);
        let cap = self.events.len() as i32;
        // SAFETY: events is a writable array of `cap` SRT_EPOLL_EVENT entries.
        let n = unsafe {
            self.lib
                .srt_epoll_uwait(self.raw, self.events.as_mut_ptr(), cap, ms)
        };
        if n < 0 {
            let e = Error::last(self.lib, "srt_epoll_uwait");
            return match e.kind {
                super::ErrorKind::Timeout | super::ErrorKind::WouldBlock => Ok(Vec::new()),
                _ => Err(e),
            };
        }
        Ok(self.events[..n as usize]
            .iter()
            .map(|ev| (ev.fd, ev.events))
            .collect())
    }
}

impl Drop for Epoll {
    fn drop(&mut self) {
        // SAFETY: we own the id and release it exactly once.
        unsafe {
            self.lib.srt_epoll_release(self.raw);
            self.lib.srt_clearlasterror();
        }
    }
}
