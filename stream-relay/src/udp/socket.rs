//! The few socket calls std does not offer (buffer sizes, the multicast interface, waiting
//! with a timeout on a non-blocking socket), on top of `std::net::UdpSocket`.
#![allow(unsafe_code)]

use std::io;
use std::net::{Ipv4Addr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::Duration;

fn setsockopt_int(
    sock: &UdpSocket,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: the fd is valid for the socket's lifetime; the option value is a c_int passed by
    // pointer with its exact size.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Asks the kernel for a receive buffer (capped by `net.core.rmem_max`).
pub fn set_recv_buffer(sock: &UdpSocket, bytes: usize) -> io::Result<()> {
    setsockopt_int(
        sock,
        libc::SOL_SOCKET,
        libc::SO_RCVBUF,
        bytes.min(i32::MAX as usize) as i32,
    )
}

/// Asks the kernel for a send buffer (capped by `net.core.wmem_max`).
pub fn set_send_buffer(sock: &UdpSocket, bytes: usize) -> io::Result<()> {
    setsockopt_int(
        sock,
        libc::SOL_SOCKET,
        libc::SO_SNDBUF,
        bytes.min(i32::MAX as usize) as i32,
    )
}

/// Sends IPv4 multicast out of the interface that has `addr`.
pub fn set_multicast_if_v4(sock: &UdpSocket, addr: Ipv4Addr) -> io::Result<()> {
    let value = libc::in_addr {
        s_addr: u32::from_ne_bytes(addr.octets()),
    };
    // SAFETY: valid fd; the option value is an in_addr passed with its exact size.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_MULTICAST_IF,
            (&value as *const libc::in_addr).cast(),
            std::mem::size_of::<libc::in_addr>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Waits until the socket has a datagram to read, at most `timeout`. False on timeout.
pub fn wait_readable(sock: &UdpSocket, timeout: Duration) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd: sock.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = timeout.as_millis().min(i32::MAX as u128) as libc::c_int;
    // SAFETY: one valid pollfd, count 1.
    let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
    match rc {
        0 => Ok(false),
        n if n > 0 => Ok(true),
        _ => {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                Ok(false)
            } else {
                Err(e)
            }
        }
    }
}
