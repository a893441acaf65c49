//! `srt://` URIs as srt-live-transmit, ffmpeg, OBS, Larix and Moblin write them, parsed into a
//! typed endpoint. Units follow srt-live-transmit (latency in milliseconds); values that only
//! make sense as ffmpeg's microseconds are refused with the conversion spelled out.

use crate::common::redact::{self, Secret};
use crate::common::uri::{RawUri, Redacted, UriError};
use std::fmt;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Caller,
    Listener,
    Rendezvous,
}

/// Latencies above this cannot be meant as milliseconds (SRT streams use 20 ms to a few
/// seconds); they are ffmpeg/OBS microsecond values pasted as they are.
pub const MAX_LATENCY_MS: u64 = 60_000;

/// Typed SRT socket options; `None` leaves libsrt's default.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SrtOptions {
    pub latency: Option<Duration>,
    pub rcvlatency: Option<Duration>,
    pub peerlatency: Option<Duration>,
    pub passphrase: Option<Secret>,
    pub pbkeylen: Option<i32>,
    pub streamid: Option<String>,
    /// Bytes per second; -1 unlimited, 0 relative to input rate (libsrt's convention).
    pub maxbw: Option<i64>,
    pub inputbw: Option<i64>,
    pub oheadbw: Option<i32>,
    pub conntimeo: Option<Duration>,
    pub peeridletimeo: Option<Duration>,
    pub payloadsize: Option<i32>,
    pub tsbpdmode: Option<bool>,
    pub tlpktdrop: Option<bool>,
    pub nakreport: Option<bool>,
    pub enforcedencryption: Option<bool>,
    pub fc: Option<i32>,
    pub rcvbuf: Option<i32>,
    pub sndbuf: Option<i32>,
    pub ipttl: Option<i32>,
    pub iptos: Option<i32>,
    pub snddropdelay: Option<i32>,
    pub lossmaxttl: Option<i32>,
    pub kmrefreshrate: Option<i32>,
    pub kmpreannounce: Option<i32>,
    /// Expected stream bitrate (bits/s) used to size libsrt's buffers; not sent anywhere.
    pub bitrate: Option<u64>,
}

#[derive(Clone, PartialEq)]
pub struct SrtEndpoint {
    pub host: String,
    pub port: u16,
    pub mode: Mode,
    /// Local address to bind (caller/rendezvous), `adapter=` in srt-live-transmit.
    pub adapter: Option<String>,
    /// Local port for caller/rendezvous (`port=`), default: rendezvous uses the remote port.
    pub local_port: Option<u16>,
    pub options: SrtOptions,
    raw_params: Vec<(String, String)>,
}

impl fmt::Debug for SrtEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SrtEndpoint({self})")
    }
}

impl fmt::Display for SrtEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Redacted {
            scheme: "srt",
            at_prefix: false,
            host: &self.host,
            port: self.port,
            params: &self.raw_params,
        }
        .fmt(f)
    }
}

impl SrtEndpoint {
    pub fn parse(input: &str) -> Result<SrtEndpoint, UriError> {
        let mut raw = RawUri::parse(input, "srt")?;
        let raw_params = raw.params.clone();
        let mode = match raw.take("mode").as_deref() {
            None | Some("default") => None,
            Some("caller" | "client") => Some(Mode::Caller),
            Some("listener" | "server") => Some(Mode::Listener),
            Some("rendezvous") => Some(Mode::Rendezvous),
            Some(other) => {
                return Err(bad(
                    "mode",
                    format!("'{}' is not caller, listener or rendezvous", short(other)),
                ))
            }
        };
        let adapter = raw.take("adapter");
        let local_port = match raw.take("port") {
            Some(p) => Some(
                p.parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| bad("port", "must be a number from 1 to 65535".into()))?,
            ),
            None => None,
        };
        let mode = mode.unwrap_or(if raw.host.is_empty() {
            Mode::Listener
        } else if adapter.is_some() {
            // srt-live-transmit's rule: a remote host plus a local adapter means rendezvous.
            Mode::Rendezvous
        } else {
            Mode::Caller
        });
        if mode != Mode::Listener && raw.host.is_empty() {
            return Err(bad(
                "mode",
                "caller and rendezvous need a remote host (srt://host:port); an empty host means listener".into(),
            ));
        }

        let mut o = SrtOptions {
            latency: latency(&mut raw, "latency")?,
            rcvlatency: latency(&mut raw, "rcvlatency")?,
            peerlatency: latency(&mut raw, "peerlatency")?,
            ..SrtOptions::default()
        };
        if let Some(p) = raw.take("passphrase") {
            // libsrt's rule; checked here so the error can say why without echoing the value.
            let n = p.chars().count();
            if !(10..=79).contains(&n) {
                return Err(bad(
                    "passphrase",
                    format!("must be 10 to 79 characters long (got {n}); the value is not shown"),
                ));
            }
            redact::register_secret(&p);
            o.passphrase = Some(Secret::new(p));
        }
        if let Some(v) = raw.take("pbkeylen") {
            let n = int(&v, "pbkeylen")?;
            if ![0, 16, 24, 32].contains(&n) {
                return Err(bad("pbkeylen", "must be 0 (default), 16, 24 or 32".into()));
            }
            o.pbkeylen = Some(n as i32);
        }
        if let Some(s) = raw.take("streamid") {
            if s.len() > 512 {
                return Err(bad("streamid", "is longer than 512 bytes".into()));
            }
            o.streamid = Some(s);
        }
        o.maxbw = opt_int(&mut raw, "maxbw", -1, i64::MAX)?;
        o.inputbw = opt_int(&mut raw, "inputbw", 0, i64::MAX)?;
        o.oheadbw = opt_int(&mut raw, "oheadbw", 5, 100)?.map(|v| v as i32);
        o.conntimeo =
            opt_int(&mut raw, "conntimeo", 50, 600_000)?.map(|v| Duration::from_millis(v as u64));
        o.peeridletimeo = opt_int(&mut raw, "peeridletimeo", 100, 3_600_000)?
            .map(|v| Duration::from_millis(v as u64));
        o.payloadsize = opt_int(&mut raw, "payloadsize", 1, 1456)?.map(|v| v as i32);
        o.tsbpdmode = opt_bool(&mut raw, "tsbpdmode")?;
        o.tlpktdrop = opt_bool(&mut raw, "tlpktdrop")?;
        o.nakreport = opt_bool(&mut raw, "nakreport")?;
        o.enforcedencryption = opt_bool(&mut raw, "enforcedencryption")?;
        o.fc = opt_int(&mut raw, "fc", 32, i32::MAX as i64)?.map(|v| v as i32);
        o.rcvbuf = opt_int(&mut raw, "rcvbuf", 1, i32::MAX as i64)?.map(|v| v as i32);
        o.sndbuf = opt_int(&mut raw, "sndbuf", 1, i32::MAX as i64)?.map(|v| v as i32);
        o.ipttl = opt_int(&mut raw, "ipttl", 1, 255)?.map(|v| v as i32);
        o.iptos = opt_int(&mut raw, "iptos", 0, 255)?.map(|v| v as i32);
        o.snddropdelay = opt_int(&mut raw, "snddropdelay", -1, 60_000)?.map(|v| v as i32);
        o.lossmaxttl = opt_int(&mut raw, "lossmaxttl", 0, i32::MAX as i64)?.map(|v| v as i32);
        o.kmrefreshrate = opt_int(&mut raw, "kmrefreshrate", 0, i32::MAX as i64)?.map(|v| v as i32);
        o.kmpreannounce = opt_int(&mut raw, "kmpreannounce", 0, i32::MAX as i64)?.map(|v| v as i32);
        if let Some(v) = raw.take("bitrate") {
            o.bitrate = Some(bitrate(&v)?);
        }
        match raw.take("transtype").as_deref() {
            None | Some("live") => {}
            Some(_) => {
                return Err(bad(
                    "transtype",
                    "only 'live' is supported by a live relay".into(),
                ))
            }
        }
        match raw.take("messageapi").as_deref() {
            None | Some("1" | "true" | "yes" | "on") => {}
            Some(_) => {
                return Err(bad(
                    "messageapi",
                    "a live relay needs the message API (1)".into(),
                ))
            }
        }
        let host = raw.host.clone();
        let port = raw.port;
        raw.finish("srt")?;
        Ok(SrtEndpoint {
            host,
            port,
            mode,
            adapter,
            local_port,
            options: o,
            raw_params,
        })
    }

    pub fn is_listener(&self) -> bool {
        self.mode == Mode::Listener
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

fn int(v: &str, key: &str) -> Result<i64, UriError> {
    v.trim()
        .parse::<i64>()
        .map_err(|_| bad(key, format!("'{}' is not an integer", short(v))))
}

fn opt_int(raw: &mut RawUri, key: &str, min: i64, max: i64) -> Result<Option<i64>, UriError> {
    let Some(v) = raw.take(key) else {
        return Ok(None);
    };
    let n = int(&v, key)?;
    if n < min || n > max {
        return Err(bad(key, format!("{n} is outside {min}..={max}")));
    }
    Ok(Some(n))
}

fn opt_bool(raw: &mut RawUri, key: &str) -> Result<Option<bool>, UriError> {
    match raw.take(key).as_deref() {
        None => Ok(None),
        Some("1" | "true" | "yes" | "on") => Ok(Some(true)),
        Some("0" | "false" | "no" | "off") => Ok(Some(false)),
        Some(other) => Err(bad(
            key,
            format!("'{}' is not a boolean (true/false, 1/0)", short(other)),
        )),
    }
}

fn latency(raw: &mut RawUri, key: &str) -> Result<Option<Duration>, UriError> {
    let Some(v) = raw.take(key) else {
        return Ok(None);
    };
    let n = int(&v, key)?;
    if n < 0 {
        return Err(bad(key, "must not be negative".into()));
    }
    let ms = n as u64;
    if ms > MAX_LATENCY_MS {
        let suggested = (ms / 1000).max(1);
        return Err(bad(
            key,
            format!(
                "{ms} is in milliseconds here (as in srt-live-transmit), which would be {:.0} s. \
                 ffmpeg and OBS write {key} in microseconds: if you copied this URI from them, \
                 use {key}={suggested}",
                ms as f64 / 1000.0
            ),
        ));
    }
    Ok(Some(Duration::from_millis(ms)))
}

/// `bitrate=50000000`, `bitrate=50M`, `bitrate=800k`.
fn bitrate(v: &str) -> Result<u64, UriError> {
    let v = v.trim();
    let (digits, mult) = match v.char_indices().last() {
        Some((i, 'k' | 'K')) => (&v[..i], 1_000),
        Some((i, 'm' | 'M')) => (&v[..i], 1_000_000),
        Some((i, 'g' | 'G')) => (&v[..i], 1_000_000_000),
        _ => (v, 1),
    };
    let n: f64 = digits.parse().map_err(|_| {
        bad(
            "bitrate",
            format!("'{}' is not a bitrate (e.g. 20M)", short(v)),
        )
    })?;
    let bps = n * mult as f64;
    if !(10_000.0..=10e9).contains(&bps) {
        return Err(bad(
            "bitrate",
            "must be between 10k and 10G bits per second".into(),
        ));
    }
    Ok(bps as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> SrtEndpoint {
        SrtEndpoint::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn err(s: &str) -> String {
        SrtEndpoint::parse(s).expect_err(s).to_string()
    }

    #[test]
    fn mode_defaults_follow_the_host() {
        assert_eq!(parse("srt://:9000").mode, Mode::Listener);
        assert_eq!(
            parse("srt://0.0.0.0:9000?mode=listener").mode,
            Mode::Listener
        );
        assert_eq!(parse("srt://studio.example:9001").mode, Mode::Caller);
        assert_eq!(
            parse("srt://10.0.0.2:9001?adapter=10.0.0.1").mode,
            Mode::Rendezvous
        );
        assert_eq!(
            parse("srt://10.0.0.2:9001?mode=rendezvous").mode,
            Mode::Rendezvous
        );
        assert_eq!(parse("srt://10.0.0.2:9001?mode=client").mode, Mode::Caller);
        assert!(err("srt://:9000?mode=caller").contains("remote host"));
        assert!(err("srt://h:1?mode=push").contains("caller, listener or rendezvous"));
    }

    #[test]
    fn reads_the_documented_parameters() {
        let e = parse(
            "srt://h:1?latency=200&rcvlatency=300&peerlatency=100&passphrase=0123456789abc&pbkeylen=32\
             &streamid=%23%21%3A%3Ar%3Dcam1%2Cm%3Dpublish&maxbw=-1&conntimeo=2000&payloadsize=1316\
             &tsbpdmode=false&bitrate=50M",
        );
        let o = &e.options;
        assert_eq!(o.latency, Some(Duration::from_millis(200)));
        assert_eq!(o.rcvlatency, Some(Duration::from_millis(300)));
        assert_eq!(o.peerlatency, Some(Duration::from_millis(100)));
        assert_eq!(
            o.passphrase.as_ref().map(Secret::expose),
            Some("0123456789abc")
        );
        assert_eq!(o.pbkeylen, Some(32));
        assert_eq!(o.streamid.as_deref(), Some("#!::r=cam1,m=publish"));
        assert_eq!(o.maxbw, Some(-1));
        assert_eq!(o.conntimeo, Some(Duration::from_millis(2000)));
        assert_eq!(o.payloadsize, Some(1316));
        assert_eq!(o.tsbpdmode, Some(false));
        assert_eq!(o.bitrate, Some(50_000_000));
    }

    #[test]
    fn unknown_parameters_are_named() {
        let e = err("srt://h:1?latency=120&lantency=5");
        assert!(e.contains("unknown parameter 'lantency'"), "{e}");
    }

    #[test]
    fn microsecond_latencies_are_refused_with_the_conversion() {
        for key in ["latency", "rcvlatency", "peerlatency"] {
            let e = err(&format!("srt://h:1?{key}=2000000"));
            assert!(
                e.contains("microseconds") && e.contains(&format!("{key}=2000")),
                "{e}"
            );
        }
        let e = err("srt://h:1?latency=120000");
        assert!(e.contains("latency=120"), "{e}");
        assert_eq!(
            parse("srt://h:1?latency=60000").options.latency,
            Some(Duration::from_secs(60))
        );
        assert!(err("srt://h:1?latency=-5").contains("negative"));
        assert!(err("srt://h:1?latency=abc").contains("not an integer"));
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(err("srt://h:1?pbkeylen=20").contains("pbkeylen"));
        assert!(err("srt://h:1?payloadsize=9000").contains("payloadsize"));
        assert!(err("srt://h:1?tsbpdmode=maybe").contains("boolean"));
        assert!(err("srt://h:1?transtype=file").contains("live"));
        assert!(err("srt://h:1?port=0").contains("port"));
        assert!(err("srt://h:1?bitrate=fast").contains("bitrate"));
    }

    #[test]
    fn secrets_never_appear_in_errors_or_display() {
        let secret = "short";
        let e = err(&format!("srt://h:1?passphrase={secret}"));
        assert!(!e.contains(secret) && e.contains("10 to 79"), "{e}");
        let secret = "correct-horse-battery";
        let ep = parse(&format!("srt://h:1?passphrase={secret}&latency=80"));
        let shown = ep.to_string();
        assert!(!shown.contains(secret), "{shown}");
        assert_eq!(shown, "srt://h:1?passphrase=***&latency=80");
        assert!(!format!("{ep:?}").contains(secret));
        assert!(!format!("{:?}", ep.options).contains(secret));
    }
}
