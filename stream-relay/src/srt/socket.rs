//! `Socket` owns one `SRTSOCKET`. All socket calls here are non-blocking (the relay threads wait
//! in `Epoll`), so none of them can freeze a data path.
#![allow(unsafe_code)]

use super::error::{check, Error, ErrorKind, Result};
use srt_sys as sys;
use std::ffi::{c_int, c_void};
use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// Connection state as libsrt reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SocketState {
    Init,
    Opened,
    Listening,
    Connecting,
    Connected,
    Broken,
    Closing,
    Closed,
    NonExistent,
}

/// The subset of `srt_bistats` the relay reports. Counters are for the interval since the
/// previous call (the call clears them); the rest are current values.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    pub rtt_ms: f64,
    pub rcv_loss: u64,
    pub rcv_drop: u64,
    pub rcv_retrans: u64,
    pub rcv_undecrypt: u64,
    pub snd_loss: u64,
    pub snd_drop: u64,
    pub retrans: u64,
    pub rcv_buf_ms: f64,
    pub snd_buf_ms: f64,
    pub rcv_latency_ms: f64,
    pub snd_latency_ms: f64,
}

/// One received message.
#[derive(Clone, Copy, Debug)]
pub struct Received {
    pub len: usize,
    /// With TSBPD: the play time (libsrt clock, µs). Without: the sender's raw 32-bit packet
    /// timestamp (µs since the sender's socket started), widened.
    pub src_time_us: i64,
    /// Sequence number of the message's first packet.
    pub seq: u32,
}

pub struct Socket {
    raw: sys::SRTSOCKET,
    /// The library the socket lives in: holding it is the proof libsrt was loaded and started
    /// (`super::library`).
    lib: &'static sys::Srt,
}

impl std::fmt::Debug for Socket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Socket").field("raw", &self.raw).finish()
    }
}

// SAFETY: an SRTSOCKET is an integer id into libsrt's global socket table, which libsrt guards
// with its own locks; its API may be called on a socket from any thread. Each `Socket` is used
// by one relay thread at a time (it is moved, never shared), so it is Send but not Sync.
unsafe impl Send for Socket {}

impl Socket {
    /// A new socket; loads and starts libsrt first if this is the process's first SRT use (a
    /// failure to load is this call's error).
    pub fn new() -> Result<Socket> {
        let lib = super::library::started()?;
        // SAFETY: creates a new socket in libsrt's table; no pointers involved.
        let raw = unsafe { lib.srt_create_socket() };
        if raw == sys::SRT_INVALID_SOCK {
            return Err(Error::last(lib, "srt_create_socket"));
        }
        Ok(Socket { raw, lib })
    }

    pub fn id(&self) -> i32 {
        self.raw
    }

    /// A socket libsrt lends us for the length of a callback: usable, never closed by us.
    pub(super) fn borrowed(
        lib: &'static sys::Srt,
        raw: sys::SRTSOCKET,
    ) -> mem::ManuallyDrop<Socket> {
        mem::ManuallyDrop::new(Socket { raw, lib })
    }

    /// The library this socket lives in, for the wrappers that own its other handles.
    pub(super) fn lib(&self) -> &'static sys::Srt {
        self.lib
    }

    /// Reads a string option (`SRTO_STREAMID`: at most 512 bytes), lossily as UTF-8.
    pub fn get_string(&self, opt: sys::SRT_SOCKOPT, name: &'static str) -> Result<String> {
        let mut buf = [0u8; 1024];
        let mut len = buf.len() as c_int;
        // SAFETY: buf and len describe a writable buffer; libsrt writes at most `len` bytes
        // and sets `len` to the length written.
        let rc = unsafe {
            self.lib
                .srt_getsockflag(self.raw, opt, buf.as_mut_ptr() as *mut c_void, &mut len)
        };
        check(self.lib, rc, name)?;
        let len = usize::try_from(len).unwrap_or(0).min(buf.len());
        let text = &buf[..len];
        // Some versions count the terminating NUL.
        let text = text.split(|b| *b == 0).next().unwrap_or_default();
        Ok(String::from_utf8_lossy(text).into_owned())
    }

    pub fn set_i32(&self, opt: sys::SRT_SOCKOPT, value: i32, name: &'static str) -> Result<()> {
        self.set_raw(
            opt,
            &value as *const i32 as *const c_void,
            mem::size_of::<i32>(),
            name,
        )
    }

    pub fn set_i64(&self, opt: sys::SRT_SOCKOPT, value: i64, name: &'static str) -> Result<()> {
        self.set_raw(
            opt,
            &value as *const i64 as *const c_void,
            mem::size_of::<i64>(),
            name,
        )
    }

    pub fn set_bool(&self, opt: sys::SRT_SOCKOPT, value: bool, name: &'static str) -> Result<()> {
        // libsrt reads boolean options as a C `bool` of size 1 or an int; int works for all.
        self.set_i32(opt, i32::from(value), name)
    }

    pub fn set_str(&self, opt: sys::SRT_SOCKOPT, value: &str, name: &'static str) -> Result<()> {
        self.set_raw(opt, value.as_ptr() as *const c_void, value.len(), name)
    }

    fn set_raw(
        &self,
        opt: sys::SRT_SOCKOPT,
        ptr: *const c_void,
        len: usize,
        name: &'static str,
    ) -> Result<()> {
        let len = c_int::try_from(len)
            .map_err(|_| Error::new(name, ErrorKind::InvalidArgument, "option value too long"))?;
        // SAFETY: `ptr` points at `len` readable bytes owned by the caller for this call;
        // libsrt copies the value before returning.
        let rc = unsafe { self.lib.srt_setsockflag(self.raw, opt, ptr, len) };
        check(self.lib, rc, "srt_setsockflag")
            .map(drop)
            .map_err(|mut e| {
                // Name the option, not its value: values may be secrets.
                e.function = name;
                e
            })
    }

    pub fn get_i32(&self, opt: sys::SRT_SOCKOPT, name: &'static str) -> Result<i32> {
        let mut value: i32 = 0;
        let mut len = mem::size_of::<i32>() as c_int;
        // SAFETY: value and len are valid for writes of the sizes given.
        let rc = unsafe {
            self.lib.srt_getsockflag(
                self.raw,
                opt,
                &mut value as *mut i32 as *mut c_void,
                &mut len,
            )
        };
        check(self.lib, rc, name)?;
        Ok(value)
    }

    pub fn bind(&self, addr: SocketAddr) -> Result<()> {
        let (storage, len) = to_sockaddr(addr);
        // SAFETY: storage holds a valid sockaddr_in/in6 of `len` bytes for the call's duration.
        let rc = unsafe {
            self.lib.srt_bind(
                self.raw,
                &storage as *const libc::sockaddr_storage as *const sys::sockaddr,
                len,
            )
        };
        check(self.lib, rc, "srt_bind").map(drop)
    }

    pub fn listen(&self, backlog: i32) -> Result<()> {
        // SAFETY: plain call on an owned socket id.
        check(
            self.lib,
            unsafe { self.lib.srt_listen(self.raw, backlog) },
            "srt_listen",
        )
        .map(drop)
    }

    /// Accepts a pending connection; `None` when there is none (the listener is non-blocking).
    pub fn accept(&self) -> Result<Option<(Socket, Option<SocketAddr>)>> {
        // SAFETY: sockaddr_storage is plain data; all-zero is a valid value.
        let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
        let mut len = mem::size_of::<libc::sockaddr_storage>() as c_int;
        // SAFETY: storage/len describe a writable buffer large enough for any address.
        let raw = unsafe {
            self.lib.srt_accept(
                self.raw,
                &mut storage as *mut libc::sockaddr_storage as *mut sys::sockaddr,
                &mut len,
            )
        };
        if raw == sys::SRT_INVALID_SOCK {
            let e = Error::last(self.lib, "srt_accept");
            return if e.kind == ErrorKind::WouldBlock {
                Ok(None)
            } else {
                Err(e)
            };
        }
        Ok(Some((
            Socket { raw, lib: self.lib },
            from_sockaddr(&storage),
        )))
    }

    /// Starts a connection; with `SRTO_RCVSYN` off it returns at once and completion is
    /// reported through epoll (writable = connected, error = failed).
    pub fn connect(&self, addr: SocketAddr) -> Result<()> {
        let (storage, len) = to_sockaddr(addr);
        // SAFETY: as in bind.
        let rc = unsafe {
            self.lib.srt_connect(
                self.raw,
                &storage as *const libc::sockaddr_storage as *const sys::sockaddr,
                len,
            )
        };
        check(self.lib, rc, "srt_connect").map(drop)
    }

    pub fn state(&self) -> SocketState {
        // SAFETY: plain call on a socket id; unknown ids report SRTS_NONEXIST.
        match unsafe { self.lib.srt_getsockstate(self.raw) } {
            sys::SRTS_INIT => SocketState::Init,
            sys::SRTS_OPENED => SocketState::Opened,
            sys::SRTS_LISTENING => SocketState::Listening,
            sys::SRTS_CONNECTING => SocketState::Connecting,
            sys::SRTS_CONNECTED => SocketState::Connected,
            sys::SRTS_BROKEN => SocketState::Broken,
            sys::SRTS_CLOSING => SocketState::Closing,
            sys::SRTS_CLOSED => SocketState::Closed,
            _ => SocketState::NonExistent,
        }
    }

    pub fn reject_reason(&self) -> i32 {
        // SAFETY: plain call on a socket id.
        unsafe { self.lib.srt_getrejectreason(self.raw) }
    }

    /// libsrt's text for this socket's handshake rejection reason.
    pub fn reject_reason_text(&self) -> String {
        super::error::reject_reason_text(self.lib, self.reject_reason())
    }

    pub fn peer_addr(&self) -> Option<SocketAddr> {
        // SAFETY: zeroed sockaddr_storage is valid plain data.
        let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
        let mut len = mem::size_of::<libc::sockaddr_storage>() as c_int;
        // SAFETY: storage/len describe a writable buffer large enough for any address.
        let rc = unsafe {
            self.lib.srt_getpeername(
                self.raw,
                &mut storage as *mut libc::sockaddr_storage as *mut sys::sockaddr,
                &mut len,
            )
        };
        if rc == sys::SRT_ERROR {
            // SAFETY: clear the error we just caused; nobody else needs it.
            unsafe { self.lib.srt_clearlasterror() };
            return None;
        }
        from_sockaddr(&storage)
    }

    /// The local time (libsrt clock, microseconds) this socket started: libsrt rejects a send
    /// whose `srctime` is earlier.
    pub fn connection_time(&self) -> i64 {
        // SAFETY: plain call on a socket id.
        unsafe { self.lib.srt_connection_time(self.raw) }
    }

    /// Receives one message; `Ok(None)` when nothing is ready. Returns the length and the
    /// source time libsrt reports (microseconds, libsrt clock; 0 if unknown).
    pub fn recv(&self, buf: &mut [u8]) -> Result<Option<(usize, i64)>> {
        Ok(self.recv_msg(buf)?.map(|m| (m.len, m.src_time_us)))
    }

    /// Receives one message with what libsrt says about it; `Ok(None)` when nothing is ready.
    pub fn recv_msg(&self, buf: &mut [u8]) -> Result<Option<Received>> {
        let mut mctrl = msgctrl(self.lib);
        let len = c_int::try_from(buf.len()).unwrap_or(c_int::MAX);
        // SAFETY: buf is writable for `len` bytes; mctrl is a valid, initialised struct.
        let rc = unsafe {
            self.lib
                .srt_recvmsg2(self.raw, buf.as_mut_ptr() as *mut _, len, &mut mctrl)
        };
        if rc == sys::SRT_ERROR {
            let e = Error::last(self.lib, "srt_recvmsg2");
            return if e.kind == ErrorKind::WouldBlock {
                Ok(None)
            } else {
                Err(e)
            };
        }
        Ok(Some(Received {
            len: rc as usize,
            src_time_us: mctrl.srctime,
            // A live-mode message is one packet; its 31-bit sequence number.
            seq: mctrl.pktseq as u32,
        }))
    }

    /// Sends one message with the given source time (0 = now). `Ok(false)` when the send buffer
    /// is full (non-blocking socket): the caller drops and counts.
    pub fn send(&self, data: &[u8], src_time_us: i64) -> Result<bool> {
        let mut mctrl = msgctrl(self.lib);
        mctrl.srctime = src_time_us;
        let len = c_int::try_from(data.len()).map_err(|_| {
            Error::new(
                "srt_sendmsg2",
                ErrorKind::InvalidArgument,
                "message too large",
            )
        })?;
        // SAFETY: data is readable for `len` bytes; libsrt copies it into its send buffer.
        let rc = unsafe {
            self.lib
                .srt_sendmsg2(self.raw, data.as_ptr() as *const _, len, &mut mctrl)
        };
        if rc == sys::SRT_ERROR {
            let e = Error::last(self.lib, "srt_sendmsg2");
            return if e.kind == ErrorKind::WouldBlock {
                Ok(false)
            } else {
                Err(e)
            };
        }
        Ok(true)
    }

    /// Reads the statistics and clears the interval counters.
    pub fn stats(&self) -> Result<Stats> {
        let mut perf = sys::SRT_TRACEBSTATS::default();
        // SAFETY: perf is a valid, writable SRT_TRACEBSTATS.
        let rc = unsafe { self.lib.srt_bistats(self.raw, &mut perf, 1, 1) };
        check(self.lib, rc, "srt_bistats")?;
        let count = |v: i32| u64::try_from(v).unwrap_or(0);
        Ok(Stats {
            rtt_ms: perf.msRTT,
            rcv_loss: count(perf.pktRcvLoss),
            rcv_drop: count(perf.pktRcvDrop),
            rcv_retrans: count(perf.pktRcvRetrans),
            rcv_undecrypt: count(perf.pktRcvUndecrypt),
            snd_loss: count(perf.pktSndLoss),
            snd_drop: count(perf.pktSndDrop),
            retrans: count(perf.pktRetrans),
            rcv_buf_ms: f64::from(perf.msRcvBuf),
            snd_buf_ms: f64::from(perf.msSndBuf),
            rcv_latency_ms: f64::from(perf.msRcvTsbPdDelay),
            snd_latency_ms: f64::from(perf.msSndTsbPdDelay),
        })
    }

    /// Packets libsrt holds for us, including those behind a gap (not yet readable); 0 on
    /// error. Reads without clearing the interval counters `stats` reports.
    pub fn buffered_packets(&self) -> i32 {
        let mut perf = sys::SRT_TRACEBSTATS::default();
        // SAFETY: perf is a valid, writable SRT_TRACEBSTATS.
        let rc = unsafe { self.lib.srt_bistats(self.raw, &mut perf, 0, 1) };
        if rc == sys::SRT_ERROR {
            // SAFETY: clear the error we just caused; nobody else needs it.
            unsafe { self.lib.srt_clearlasterror() };
            return 0;
        }
        perf.pktRcvBuf
    }

    /// Closes the socket and reports libsrt's error, if any. In live mode (linger off) this
    /// returns at once.
    pub fn close(mut self) -> Result<()> {
        let raw = mem::replace(&mut self.raw, sys::SRT_INVALID_SOCK);
        // SAFETY: raw is a socket we own and have not closed; `self` no longer refers to it.
        check(self.lib, unsafe { self.lib.srt_close(raw) }, "srt_close").map(drop)
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        if self.raw != sys::SRT_INVALID_SOCK {
            // SAFETY: we own the id and close it exactly once; errors have nowhere to go.
            unsafe {
                self.lib.srt_close(self.raw);
                self.lib.srt_clearlasterror();
            }
        }
    }
}

fn msgctrl(lib: &sys::Srt) -> sys::SRT_MSGCTRL {
    let mut m = sys::SRT_MSGCTRL::default();
    // SAFETY: m is a valid SRT_MSGCTRL; srt_msgctrl_init fills in libsrt's defaults.
    unsafe { lib.srt_msgctrl_init(&mut m) };
    m
}

fn to_sockaddr(addr: SocketAddr) -> (libc::sockaddr_storage, c_int) {
    // SAFETY: sockaddr_storage is plain data; all-zero is valid.
    let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            unsafe { std::ptr::write(&mut storage as *mut _ as *mut libc::sockaddr_in, sin) };
            mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
            unsafe { std::ptr::write(&mut storage as *mut _ as *mut libc::sockaddr_in6, sin6) };
            mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as c_int)
}

/// The address libsrt passes to a listen callback.
///
/// # Safety
/// `addr` must point at a valid `sockaddr_in` or `sockaddr_in6`, as its family says.
pub(super) unsafe fn peer_from_raw(addr: *const sys::sockaddr) -> Option<SocketAddr> {
    // SAFETY: sockaddr_storage is plain data; all-zero is valid.
    let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
    // SAFETY: the caller guarantees a valid sockaddr; its family field comes first.
    let family = i32::from(unsafe { (*(addr as *const libc::sockaddr)).sa_family });
    let len = match family {
        libc::AF_INET => mem::size_of::<libc::sockaddr_in>(),
        libc::AF_INET6 => mem::size_of::<libc::sockaddr_in6>(),
        _ => return None,
    };
    // SAFETY: the family says `addr` holds `len` readable bytes; storage is larger.
    unsafe {
        std::ptr::copy_nonoverlapping(
            addr as *const u8,
            &mut storage as *mut libc::sockaddr_storage as *mut u8,
            len,
        )
    };
    from_sockaddr(&storage)
}

fn from_sockaddr(storage: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match i32::from(storage.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let sin = unsafe { &*(storage as *const _ as *const libc::sockaddr_in) };
            let ip = Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let sin6 = unsafe { &*(storage as *const _ as *const libc::sockaddr_in6) };
            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ensure_send<T: Send>() {}

    #[test]
    fn socket_is_send() {
        ensure_send::<Socket>();
    }

    #[test]
    fn sockaddr_round_trips() {
        for addr in ["127.0.0.1:9000", "[::1]:1234", "0.0.0.0:0"] {
            let a: SocketAddr = addr.parse().expect("literal address");
            let (storage, _) = to_sockaddr(a);
            assert_eq!(from_sockaddr(&storage), Some(a));
        }
    }

    #[test]
    fn close_then_drop_closes_once_and_errors_are_typed() {
        let s = Socket::new().expect("create socket");
        assert_eq!(s.state(), SocketState::Init);
        s.close().expect("close a fresh socket");
        let s = Socket::new().expect("create socket");
        let e = s.listen(5).expect_err("listen before bind must fail");
        assert_eq!(e.function, "srt_listen");
        assert_ne!(e.code, 0);
    }
}
