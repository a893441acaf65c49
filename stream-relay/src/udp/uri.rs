//! `udp://` URIs with ffmpeg's parameter names: `udp://0.0.0.0:5000` (or `udp://@:5000`) to
//! receive, `udp://239.1.1.1:5000?ttl=4&localaddr=10.0.0.5` to send or to join a group.

use crate::common::uri::{RawUri, Redacted, UriError};
use std::fmt;
use std::net::IpAddr;

/// Largest UDP payload over IPv4.
pub const MAX_DATAGRAM: usize = 65_507;

#[derive(Clone, PartialEq)]
pub struct UdpEndpoint {
    /// Empty: every local address (inputs only).
    pub host: String,
    pub port: u16,
    /// Local interface address: the group is joined (input) or sent to (output) through it, and
    /// an output sends from it.
    pub localaddr: Option<IpAddr>,
    pub ttl: Option<u32>,
    /// Largest datagram accepted on input (ffmpeg's `pkt_size`); larger ones are truncated and
    /// counted.
    pub pkt_size: usize,
    /// Kernel socket buffer in bytes (`buffer_size`).
    pub buffer_size: Option<usize>,
    raw_params: Vec<(String, String)>,
}

impl fmt::Debug for UdpEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UdpEndpoint({self})")
    }
}

impl fmt::Display for UdpEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Redacted {
            scheme: "udp",
            at_prefix: false,
            host: &self.host,
            port: self.port,
            params: &self.raw_params,
        }
        .fmt(f)
    }
}

impl UdpEndpoint {
    pub fn parse(input: &str) -> Result<UdpEndpoint, UriError> {
        let mut raw = RawUri::parse(input, "udp")?;
        let raw_params = raw.params.clone();
        let localaddr = match raw.take("localaddr") {
            Some(v) => Some(v.parse::<IpAddr>().map_err(|_| {
                bad(
                    "localaddr",
                    format!(
                        "'{}' is not an IP address (the local interface's address)",
                        short(&v)
                    ),
                )
            })?),
            None => None,
        };
        let ttl = int(&mut raw, "ttl", 1, 255)?.map(|v| v as u32);
        let pkt_size = int(&mut raw, "pkt_size", 188, MAX_DATAGRAM as u64)?
            .map_or(MAX_DATAGRAM, |v| v as usize);
        let buffer_size = int(&mut raw, "buffer_size", 1024, 256 << 20)?.map(|v| v as usize);
        let host = raw.host.clone();
        let port = raw.port;
        raw.finish("udp")?;
        Ok(UdpEndpoint {
            host,
            port,
            localaddr,
            ttl,
            pkt_size,
            buffer_size,
            raw_params,
        })
    }

    pub fn multicast_group(&self) -> Option<IpAddr> {
        self.host
            .parse::<IpAddr>()
            .ok()
            .filter(|a| a.is_multicast())
    }
}

fn bad(key: &str, reason: String) -> UriError {
    UriError::BadValue {
        key: key.to_owned(),
        reason,
    }
}

fn short(s: &str) -> String {
    s.chars().take(32).collect()
}

fn int(raw: &mut RawUri, key: &str, min: u64, max: u64) -> Result<Option<u64>, UriError> {
    let Some(v) = raw.take(key) else {
        return Ok(None);
    };
    let n: u64 = v
        .trim()
        .parse()
        .map_err(|_| bad(key, format!("'{}' is not a whole number", short(&v))))?;
    if n < min || n > max {
        return Err(bad(key, format!("{n} is outside {min}..={max}")));
    }
    Ok(Some(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ffmpeg_style_uris() {
        let e = UdpEndpoint::parse("udp://239.1.1.1:5000?ttl=4&localaddr=10.0.0.5&pkt_size=1316")
            .expect("valid");
        assert_eq!(e.multicast_group(), Some("239.1.1.1".parse().unwrap()));
        assert_eq!(e.ttl, Some(4));
        assert_eq!(e.pkt_size, 1316);
        assert_eq!(e.localaddr, Some("10.0.0.5".parse().unwrap()));
        let l = UdpEndpoint::parse("udp://@:5000").expect("valid");
        assert_eq!((l.host.as_str(), l.port), ("", 5000));
        assert!(l.multicast_group().is_none());
        assert_eq!(
            UdpEndpoint::parse("udp://[::1]:5000").expect("v6").host,
            "::1"
        );
    }

    #[test]
    fn bad_values_name_the_key() {
        let err = |s: &str| UdpEndpoint::parse(s).expect_err(s).to_string();
        assert!(err("udp://1.2.3.4:5000?ttl=0").contains("'ttl'"));
        assert!(err("udp://1.2.3.4:5000?localaddr=eth0").contains("'localaddr'"));
        assert!(err("udp://1.2.3.4:5000?pkt_size=70000").contains("'pkt_size'"));
        assert!(err("udp://1.2.3.4:5000?fifo_size=1").contains("unknown parameter 'fifo_size'"));
        assert!(err("udp://1.2.3.4").contains("port"));
    }
}
