//! Applies a parsed `SrtOptions` to a socket, in the order libsrt requires, and sizes libsrt's
//! buffers for the stream.

use super::socket::Socket;
use super::uri::SrtOptions;
use super::Result;
use srt_sys as sys;
use std::time::Duration;

/// Bitrate assumed when the URI gives no `bitrate=` hint: enough for 4K contribution feeds.
pub const DEFAULT_BITRATE: u64 = 60_000_000;
/// Round-trip time budget added to the latency when sizing buffers (a long-haul internet path).
const RTT_BUDGET: Duration = Duration::from_millis(300);
/// libsrt's own default latency for live mode.
pub(super) const DEFAULT_LATENCY: Duration = Duration::from_millis(120);
/// libsrt's defaults (packets); we never size below them.
const DEFAULT_FC: i64 = 25_600;
const DEFAULT_BUF_PKTS: i64 = 8_192;
/// Bytes per packet in libsrt's buffer accounting: MSS 1500 - 28 (IP + UDP headers).
const BUF_BYTES_PER_PKT: i64 = 1_472;
/// Kernel UDP buffers we ask for; the kernel caps them at net.core.[rw]mem_max.
const UDP_BUF_BYTES: i32 = 8 * 1024 * 1024;

/// Buffer sizes in packets for a stream: libsrt's configuration guidelines give
/// bitrate/8 x (latency + RTT) / payload; we double it for retransmissions and bursts.
pub fn buffer_packets(bitrate: u64, latency: Duration, payload: i32) -> i64 {
    let window = latency + RTT_BUDGET;
    let bytes = bitrate as f64 / 8.0 * window.as_secs_f64();
    let pkts = (bytes / f64::from(payload.max(188)) * 2.0).ceil() as i64;
    pkts.max(DEFAULT_BUF_PKTS)
}

/// Options libsrt only accepts before bind/connect/listen (the "pre" binding).
pub fn apply_pre(sock: &Socket, o: &SrtOptions) -> Result<()> {
    sock.set_i32(sys::SRTO_TRANSTYPE, sys::SRTT_LIVE as i32, "transtype")?;
    // All waiting happens in epoll: every call on our sockets returns at once.
    sock.set_bool(sys::SRTO_RCVSYN, false, "rcvsyn")?;
    sock.set_bool(sys::SRTO_SNDSYN, false, "sndsyn")?;

    if let Some(v) = o.latency {
        sock.set_i32(sys::SRTO_LATENCY, ms(v), "latency")?;
    }
    if let Some(v) = o.rcvlatency {
        sock.set_i32(sys::SRTO_RCVLATENCY, ms(v), "rcvlatency")?;
    }
    if let Some(v) = o.peerlatency {
        sock.set_i32(sys::SRTO_PEERLATENCY, ms(v), "peerlatency")?;
    }
    if let Some(v) = o.tsbpdmode {
        sock.set_bool(sys::SRTO_TSBPDMODE, v, "tsbpdmode")?;
    }
    if let Some(v) = o.tlpktdrop {
        sock.set_bool(sys::SRTO_TLPKTDROP, v, "tlpktdrop")?;
    }
    if let Some(v) = o.nakreport {
        sock.set_bool(sys::SRTO_NAKREPORT, v, "nakreport")?;
    }
    if let Some(v) = o.pbkeylen {
        sock.set_i32(sys::SRTO_PBKEYLEN, v, "pbkeylen")?;
    }
    if let Some(v) = &o.passphrase {
        sock.set_str(sys::SRTO_PASSPHRASE, v.expose(), "passphrase")?;
    }
    if let Some(v) = o.enforcedencryption {
        sock.set_bool(sys::SRTO_ENFORCEDENCRYPTION, v, "enforcedencryption")?;
    }
    if let Some(v) = &o.streamid {
        sock.set_str(sys::SRTO_STREAMID, v, "streamid")?;
    }
    if let Some(v) = o.conntimeo {
        sock.set_i32(sys::SRTO_CONNTIMEO, ms(v), "conntimeo")?;
    }
    if let Some(v) = o.peeridletimeo {
        sock.set_i32(sys::SRTO_PEERIDLETIMEO, ms(v), "peeridletimeo")?;
    }
    if let Some(v) = o.payloadsize {
        sock.set_i32(sys::SRTO_PAYLOADSIZE, v, "payloadsize")?;
    }
    if let Some(v) = o.ipttl {
        sock.set_i32(sys::SRTO_IPTTL, v, "ipttl")?;
    }
    if let Some(v) = o.iptos {
        sock.set_i32(sys::SRTO_IPTOS, v, "iptos")?;
    }
    if let Some(v) = o.kmrefreshrate {
        sock.set_i32(sys::SRTO_KMREFRESHRATE, v, "kmrefreshrate")?;
    }
    if let Some(v) = o.kmpreannounce {
        sock.set_i32(sys::SRTO_KMPREANNOUNCE, v, "kmpreannounce")?;
    }

    // Buffers: FC caps RCVBUF, so FC goes first (libsrt's socketconfig.cpp).
    let latency = [o.latency, o.rcvlatency, o.peerlatency]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(DEFAULT_LATENCY);
    let pkts = buffer_packets(
        o.bitrate.unwrap_or(DEFAULT_BITRATE),
        latency,
        o.payloadsize.unwrap_or(1316),
    );
    let fc = o.fc.map(i64::from).unwrap_or(pkts.max(DEFAULT_FC));
    sock.set_i32(sys::SRTO_FC, clamp_i32(fc), "fc")?;
    let buf_bytes = clamp_i32(pkts * BUF_BYTES_PER_PKT);
    sock.set_i32(sys::SRTO_RCVBUF, o.rcvbuf.unwrap_or(buf_bytes), "rcvbuf")?;
    sock.set_i32(sys::SRTO_SNDBUF, o.sndbuf.unwrap_or(buf_bytes), "sndbuf")?;
    sock.set_i32(sys::SRTO_UDP_RCVBUF, UDP_BUF_BYTES, "udp_rcvbuf")?;
    sock.set_i32(sys::SRTO_UDP_SNDBUF, UDP_BUF_BYTES, "udp_sndbuf")?;
    Ok(())
}

/// Options that may (or must) be set once connected.
pub fn apply_post(sock: &Socket, o: &SrtOptions) -> Result<()> {
    if let Some(v) = o.maxbw {
        sock.set_i64(sys::SRTO_MAXBW, v, "maxbw")?;
    }
    if let Some(v) = o.inputbw {
        sock.set_i64(sys::SRTO_INPUTBW, v, "inputbw")?;
    }
    if let Some(v) = o.oheadbw {
        sock.set_i32(sys::SRTO_OHEADBW, v, "oheadbw")?;
    }
    if let Some(v) = o.snddropdelay {
        sock.set_i32(sys::SRTO_SNDDROPDELAY, v, "snddropdelay")?;
    }
    if let Some(v) = o.lossmaxttl {
        sock.set_i32(sys::SRTO_LOSSMAXTTL, v, "lossmaxttl")?;
    }
    Ok(())
}

fn ms(d: Duration) -> i32 {
    clamp_i32(d.as_millis() as i64)
}

fn clamp_i32(v: i64) -> i32 {
    v.clamp(0, i64::from(i32::MAX)) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_grow_with_bitrate_and_latency() {
        // Small streams keep libsrt's defaults.
        assert_eq!(
            buffer_packets(5_000_000, Duration::from_millis(120), 1316),
            DEFAULT_BUF_PKTS
        );
        // 50 Mbps with a 2 s latency needs far more than the default 8192 packets.
        let pkts = buffer_packets(50_000_000, Duration::from_secs(2), 1316);
        let needed = 50e6 / 8.0 * 2.3 / 1316.0;
        assert!(pkts as f64 >= needed * 1.9, "{pkts} vs {needed}");
    }
}
