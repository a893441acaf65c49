//! One URI to a transport endpoint, whatever its scheme, plus the per-output options that are
//! stream-relay's own rather than the protocol's (`time-buffer-ms`). The command line and,
//! later, the configuration file both come through here.

use crate::relay::TransportRelay;
use crate::rist::uri::{Profile, RistEndpoint};
use crate::srt::uri::SrtEndpoint;
use crate::udp::uri::UdpEndpoint;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

/// Longest time buffer: a broadcast delay of a minute is plenty.
pub const MAX_TIME_BUFFER_MS: u64 = 60_000;

/// The query key of an output's time buffer, named so that nobody takes it for librist's
/// `buffer` or SRT's `latency`.
pub const TIME_BUFFER_KEY: &str = "time-buffer-ms";

pub struct Endpoint {
    pub transport: Arc<dyn TransportRelay>,
    pub time_buffer: Option<Duration>,
}

/// The first address `host` resolves to: the one libsrt, librist and a UDP socket are given.
pub fn resolve(host: &str, port: u16) -> Result<SocketAddr, String> {
    (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve '{host}': {e}"))?
        .next()
        .ok_or_else(|| format!("'{host}' resolves to no address"))
}

/// The scheme of `uri`, lower-cased (`srt`, `rist`, `udp`), if it has one.
pub fn scheme(uri: &str) -> Option<String> {
    uri.trim()
        .split_once("://")
        .map(|(s, _)| s.to_ascii_lowercase())
}

pub fn parse(uri: &str, profile: Profile) -> Result<Endpoint, String> {
    if uri.trim().is_empty() {
        return Err("the URI is empty".into());
    }
    if uri.chars().any(char::is_control) {
        return Err("the URI contains a NUL byte or a control character".into());
    }
    let (uri, time_buffer) = take_time_buffer(uri)?;
    let transport: Arc<dyn TransportRelay> = match scheme(&uri).as_deref() {
        Some("srt") => Arc::new(SrtEndpoint::parse(&uri).map_err(|e| e.to_string())?),
        Some("rist") => Arc::new(RistEndpoint::parse(&uri, profile).map_err(|e| e.to_string())?),
        Some("udp") => Arc::new(UdpEndpoint::parse(&uri).map_err(|e| e.to_string())?),
        Some(other) if other.chars().all(|c| c.is_ascii_alphanumeric()) => {
            return Err(format!(
                "unsupported scheme '{}': use srt://, rist:// or udp://",
                other.chars().take(16).collect::<String>()
            ))
        }
        Some(_) => return Err("unsupported scheme: use srt://, rist:// or udp://".into()),
        None => return Err("missing scheme: expected srt://, rist:// or udp://".into()),
    };
    Ok(Endpoint {
        transport,
        time_buffer,
    })
}

/// A bitrate in bits/s: `50M`, `800k`, `1.5G`, `20000000`.
pub fn parse_bitrate(v: &str) -> Result<u64, String> {
    let v = v.trim();
    let (digits, mult) = match v.char_indices().last() {
        Some((i, 'k' | 'K')) => (&v[..i], 1e3),
        Some((i, 'm' | 'M')) => (&v[..i], 1e6),
        Some((i, 'g' | 'G')) => (&v[..i], 1e9),
        _ => (v, 1.0),
    };
    let bps = digits
        .parse::<f64>()
        .map_err(|_| format!("'{v}' is not a bitrate (e.g. 50M)"))?
        * mult;
    if !(100e3..=10e9).contains(&bps) {
        return Err("must be between 100k and 10G".into());
    }
    Ok(bps as u64)
}

/// Takes `time-buffer-ms=N` out of the query, leaving the rest for the protocol's parser.
fn take_time_buffer(uri: &str) -> Result<(String, Option<Duration>), String> {
    let Some((base, query)) = uri.split_once('?') else {
        return Ok((uri.to_owned(), None));
    };
    let mut kept = Vec::new();
    let mut found = None;
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some((k, v)) if k.eq_ignore_ascii_case(TIME_BUFFER_KEY) => {
                if found.is_some() {
                    return Err(format!(
                        "parameter '{TIME_BUFFER_KEY}' is given more than once"
                    ));
                }
                let ms: u64 = v.trim().parse().map_err(|_| {
                    format!(
                        "invalid value for '{TIME_BUFFER_KEY}': '{}' is not a whole number of milliseconds",
                        v.chars().take(16).collect::<String>()
                    )
                })?;
                if ms > MAX_TIME_BUFFER_MS {
                    return Err(format!(
                        "invalid value for '{TIME_BUFFER_KEY}': {ms} is above {MAX_TIME_BUFFER_MS}"
                    ));
                }
                found = Some(Duration::from_millis(ms));
            }
            _ => kept.push(pair),
        }
    }
    let rest = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((rest, found))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scheme_and_the_time_buffer() {
        let e = parse(
            "udp://127.0.0.1:5000?ttl=2&time-buffer-ms=500",
            Profile::Main,
        )
        .expect("valid");
        assert_eq!(e.transport.transport(), "udp");
        assert_eq!(e.time_buffer, Some(Duration::from_millis(500)));
        assert_eq!(e.transport.to_string(), "udp://127.0.0.1:5000?ttl=2");
        let s = parse("srt://:9000?time-buffer-ms=0", Profile::Main).expect("valid");
        assert_eq!(s.transport.transport(), "srt");
        assert_eq!(s.time_buffer, Some(Duration::ZERO));
        assert_eq!(
            parse("rist://@0.0.0.0:8000", Profile::Main)
                .expect("valid")
                .transport
                .transport(),
            "rist"
        );
        assert!(parse("udp://1.2.3.4:5?time-buffer-ms=x", Profile::Main).is_err());
        assert!(parse("udp://1.2.3.4:5?time-buffer-ms=999999", Profile::Main).is_err());
        assert!(parse("http://x:1", Profile::Main)
            .err()
            .is_some_and(|e| e.contains("unsupported scheme")));
        assert!(parse("x", Profile::Main)
            .err()
            .is_some_and(|e| e.contains("missing scheme")));
    }
}
