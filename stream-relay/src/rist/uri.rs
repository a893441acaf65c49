//! `rist://` URIs as librist's tools (`ristsender`, `ristreceiver`, `rist2rist`) and ffmpeg
//! write them: `rist://@addr:port` listens, `rist://host:port` calls out. We check every key and
//! value first, so an error names the key (librist would only print unknown keys to stderr),
//! then librist parses the URI itself into its peer configuration (`rist/config.rs`).

use crate::common::redact::{self, Secret};
use crate::common::uri::{RawUri, Redacted, UriError};
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Profile {
    Simple,
    #[default]
    Main,
}

impl Profile {
    pub fn parse(s: &str) -> Result<Profile, String> {
        match s.to_ascii_lowercase().as_str() {
            "simple" | "0" => Ok(Profile::Simple),
            "main" | "1" => Ok(Profile::Main),
            "advanced" | "2" => Err("the advanced profile is not supported by librist".into()),
            _ => Err(format!(
                "'{}' is not a RIST profile (simple or main)",
                s.chars().take(32).collect::<String>()
            )),
        }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Profile::Simple => "simple",
            Profile::Main => "main",
        })
    }
}

/// The receive buffer an input gets when the URI sets none. librist's own default is 1000 ms,
/// and a receiver releases each packet at source time + buffer, so that whole second would be
/// added by the relay. This covers recovery on a first hop of up to ~25 ms RTT (librist's rule
/// of thumb is about 7 x RTT + reorder); a longer hop needs `buffer=` on the input.
pub const DEFAULT_INPUT_BUFFER_MS: u32 = 200;

/// The buffer an output gets when the URI sets none. On a sender, librist's `buffer` is how
/// long it keeps what it sent for retransmission: it frees a packet `buffer + 2 x rtt-max` after
/// sending it (`rist-common.c:314`, rtt-max 500 ms by default). librist's own default (1000 ms)
/// makes that 2 s, which at 50 Mbps is ~9,500 packets, ~14 MB of heap, held for NACKs that no
/// receiver with an ordinary buffer can send so late. 200 ms (what relay-bench gives rist2rist)
/// keeps 1.2 s: enough for a receiver buffer of up to ~1 s (librist's default) on paths of up
/// to ~100 ms RTT; a receiver with a longer buffer needs `buffer=` on the output to match.
pub const DEFAULT_OUTPUT_BUFFER_MS: u32 = 200;

/// Smallest buffer accepted: librist 0.2.7's receiver outputs nothing at 0 or 1 ms and its
/// sender divides by the buffer (SIGFPE at 0); 20 ms still works on loopback.
const MIN_BUFFER_MS: u64 = 20;

/// Longest string librist keeps for short fields (cname, secret, miface), NUL included.
const MAX_SHORT: usize = 127;
/// Longest string for long fields (address, SRP username and password).
const MAX_LONG: usize = 255;

/// Keys librist's `rist_parse_address2` understands (0.2.7's `urlparam.h`), with the range we
/// accept. librist itself reads them with `atoi` and would take "abc" as 0.
const NUMERIC_KEYS: &[(&str, u64, u64)] = &[
    ("buffer", MIN_BUFFER_MS, 30_000),
    ("buffer-min", MIN_BUFFER_MS, 30_000),
    ("buffer-max", MIN_BUFFER_MS, 30_000),
    ("rtt", 0, 10_000),
    ("rtt-min", 0, 10_000),
    ("rtt-max", 0, 10_000),
    ("reorder-buffer", 0, 10_000),
    ("bandwidth", 1, 10_000_000),
    ("return-bandwidth", 0, 10_000_000),
    ("weight", 0, 1_000_000),
    ("session-timeout", 0, 3_600_000),
    ("keepalive-interval", 0, 3_600_000),
    ("virt-dst-port", 0, 65_535),
    ("min-retries", 0, 1_000),
    ("max-retries", 0, 1_000),
    ("key-rotation", 0, u32::MAX as u64),
    ("congestion-control", 0, 2),
    ("timing-mode", 0, 2),
    ("compression", 0, 1),
];

const STRING_KEYS: &[(&str, usize)] = &[
    ("cname", MAX_SHORT),
    ("miface", MAX_SHORT),
    ("secret", MAX_SHORT),
    ("username", MAX_LONG),
    ("password", MAX_LONG),
];

#[derive(Clone, PartialEq)]
pub struct RistEndpoint {
    /// `rist://@...`: wait for the far side to contact us.
    pub listen: bool,
    pub host: String,
    pub port: u16,
    pub profile: Profile,
    /// Whether the traffic is encrypted (`secret` with `aes-type`).
    pub encrypted: bool,
    /// SRP credentials (`username`/`password`), applied with `rist_enable_eap_srp`.
    pub srp: Option<(String, Secret)>,
    /// The receive buffer in ms when this endpoint is an input (ours if the URI sets none).
    pub buffer_ms: Option<u32>,
    /// Validated parameters, in the order given, for librist's parser and for display.
    params: Vec<(String, String)>,
}

impl fmt::Debug for RistEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RistEndpoint({self})")
    }
}

impl fmt::Display for RistEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Redacted {
            scheme: "rist",
            at_prefix: self.listen,
            host: &self.host,
            port: self.port,
            params: &self.params,
        }
        .fmt(f)
    }
}

impl RistEndpoint {
    pub fn parse(input: &str, profile: Profile) -> Result<RistEndpoint, UriError> {
        let mut raw = RawUri::parse(input, "rist")?;
        let params = raw.params.clone();
        if raw.host.is_empty() {
            if !raw.at_prefix {
                return Err(bad(
                    "host",
                    "a caller needs a host (rist://host:port); to listen write rist://@0.0.0.0:port"
                        .into(),
                ));
            }
            raw.host = "0.0.0.0".into();
        }
        if profile == Profile::Simple && raw.port % 2 != 0 {
            return Err(bad(
                "port",
                format!(
                    "{} is odd: the simple profile sends RTP on an even port and RTCP on the next one (port + 1); use an even port",
                    raw.port
                ),
            ));
        }

        let mut numbers = std::collections::HashMap::new();
        for &(key, min, max) in NUMERIC_KEYS {
            if let Some(v) = raw.take(key) {
                let n: u64 = v
                    .trim()
                    .parse()
                    .map_err(|_| bad(key, format!("'{}' is not a whole number", short(&v))))?;
                if n < min || n > max {
                    let unit = if key.starts_with("buffer") {
                        " ms (librist cannot work with a smaller buffer)"
                    } else {
                        ""
                    };
                    return Err(bad(key, format!("{n} is outside {min}..={max}{unit}")));
                }
                numbers.insert(key, n);
            }
        }
        let aes = match raw.take("aes-type") {
            None => None,
            Some(v) => match v.trim() {
                "0" => None,
                "128" => Some(128),
                "256" => Some(256),
                other => {
                    return Err(bad(
                        "aes-type",
                        format!("'{}' is not 128 or 256", short(other)),
                    ))
                }
            },
        };
        let mut strings = std::collections::HashMap::new();
        for &(key, max) in STRING_KEYS {
            if let Some(v) = raw.take(key) {
                if v.is_empty() || v.len() > max {
                    return Err(bad(
                        key,
                        format!(
                            "must be 1 to {max} bytes long{}",
                            if redact::is_secret_key(key) {
                                "; the value is not shown"
                            } else {
                                ""
                            }
                        ),
                    ));
                }
                if redact::is_secret_key(key) {
                    redact::register_secret(&v);
                }
                strings.insert(key, v);
            }
        }
        // librist reads '&' and '=' as separators and never un-escapes, so such values cannot
        // reach it intact.
        for (key, value) in &strings {
            if value.contains(['&', '=', '?', '/', ' ']) {
                return Err(bad(
                    key,
                    "may not contain '&', '=', '?', '/' or spaces (librist cannot read them)"
                        .into(),
                ));
            }
        }

        let encrypted = match (strings.contains_key("secret"), aes) {
            (true, Some(_)) => true,
            (true, None) => {
                return Err(bad(
                    "secret",
                    "needs aes-type=128 or aes-type=256 as well: librist 0.2.7 silently sends \
                     unencrypted when aes-type is missing"
                        .into(),
                ))
            }
            (false, Some(_)) => {
                return Err(bad(
                    "aes-type",
                    "has no effect without secret=... (the shared passphrase)".into(),
                ))
            }
            (false, None) => false,
        };
        let srp = match (strings.get("username"), strings.get("password")) {
            (Some(u), Some(p)) => {
                if raw.at_prefix {
                    return Err(bad(
                        "username",
                        "SRP authentication on a listening endpoint needs a verifier file, which \
                         stream-relay does not support yet; use it on the calling side"
                            .into(),
                    ));
                }
                Some((u.clone(), Secret::new(p.clone())))
            }
            (None, None) => None,
            _ => {
                return Err(bad(
                    "username",
                    "username and password go together (SRP authentication)".into(),
                ))
            }
        };
        let buffer_ms = numbers
            .get("buffer")
            .or(numbers.get("buffer-max"))
            .map(|&n| n as u32);
        if let (Some(&lo), Some(&hi)) = (numbers.get("buffer-min"), numbers.get("buffer-max")) {
            if lo > hi {
                return Err(bad(
                    "buffer-min",
                    format!("{lo} is larger than buffer-max={hi}"),
                ));
            }
        }
        if let (Some(&lo), Some(&hi)) = (numbers.get("rtt-min"), numbers.get("rtt-max")) {
            if lo > hi {
                return Err(bad("rtt-min", format!("{lo} is larger than rtt-max={hi}")));
            }
        }
        let host = raw.host.clone();
        let port = raw.port;
        let listen = raw.at_prefix;
        raw.finish("rist")?;
        Ok(RistEndpoint {
            listen,
            host,
            port,
            profile,
            encrypted,
            srp,
            buffer_ms,
            params,
        })
    }

    /// The URL handed to librist's parser: address plus every validated parameter, secrets
    /// included (it never leaves the process), with the relay's default buffer when the URI
    /// gives none.
    pub(crate) fn librist_url(&self, as_input: bool) -> Secret {
        let mut url = String::from("rist://");
        if self.listen {
            url.push('@');
        }
        if self.host.contains(':') {
            url.push_str(&format!("[{}]:{}", self.host, self.port));
        } else {
            url.push_str(&format!("{}:{}", self.host, self.port));
        }
        let mut params: Vec<(&str, String)> = self
            .params
            .iter()
            // SRP goes through rist_enable_eap_srp, not the URL.
            .filter(|(k, _)| k != "username" && k != "password")
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        if !self.has_buffer() {
            let ms = if as_input {
                DEFAULT_INPUT_BUFFER_MS
            } else {
                DEFAULT_OUTPUT_BUFFER_MS
            };
            params.push(("buffer", ms.to_string()));
        }
        for (i, (k, v)) in params.iter().enumerate() {
            url.push(if i == 0 { '?' } else { '&' });
            url.push_str(k);
            url.push('=');
            url.push_str(v);
        }
        Secret::new(url)
    }

    fn has_buffer(&self) -> bool {
        self.params
            .iter()
            .any(|(k, _)| matches!(k.as_str(), "buffer" | "buffer-min" | "buffer-max"))
    }

    /// The receive buffer an input will use.
    pub fn input_buffer_ms(&self) -> u32 {
        self.buffer_ms.unwrap_or(if self.has_buffer() {
            0
        } else {
            DEFAULT_INPUT_BUFFER_MS
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> RistEndpoint {
        RistEndpoint::parse(s, Profile::Main).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn err(s: &str) -> String {
        RistEndpoint::parse(s, Profile::Main)
            .expect_err(s)
            .to_string()
    }

    #[test]
    fn at_sign_listens_and_host_calls() {
        let l = parse("rist://@0.0.0.0:8000?buffer=1000");
        assert!(l.listen);
        assert_eq!((l.host.as_str(), l.port), ("0.0.0.0", 8000));
        assert_eq!(l.input_buffer_ms(), 1000);
        let c = parse("rist://studio.example:8002");
        assert!(!c.listen);
        assert_eq!(c.input_buffer_ms(), DEFAULT_INPUT_BUFFER_MS);
        assert!(parse("rist://@:8000").listen);
        assert_eq!(parse("rist://@[::1]:8000").host, "::1");
        assert!(err("rist://:8000").contains("caller needs a host"));
    }

    #[test]
    fn every_documented_key_is_accepted() {
        let e = parse(
            "rist://10.0.0.1:8000?buffer=300&buffer-min=100&buffer-max=500&rtt-min=5&rtt-max=50\
             &reorder-buffer=25&bandwidth=20000&return-bandwidth=100&cname=cam1\
             &secret=0123456789abcdef&aes-type=128&username=bob&password=pw-secret-1\
             &weight=5&session-timeout=2000&keepalive-interval=500&virt-dst-port=1968\
             &congestion-control=1&min-retries=6&max-retries=20&timing-mode=0",
        );
        assert!(e.encrypted);
        assert_eq!(e.srp.as_ref().map(|(u, _)| u.as_str()), Some("bob"));
        let url = e.librist_url(true);
        assert!(url.expose().contains("secret=0123456789abcdef"));
        assert!(!url.expose().contains("password"));
        assert!(url.expose().contains("buffer=300"));
        assert!(!url
            .expose()
            .contains(&format!("buffer={DEFAULT_INPUT_BUFFER_MS}")));
    }

    #[test]
    fn a_buffer_is_always_given_to_librist() {
        let url = |s: &str, input: bool| parse(s).librist_url(input).expose().to_owned();
        assert_eq!(
            url("rist://@0.0.0.0:8000", true),
            format!("rist://@0.0.0.0:8000?buffer={DEFAULT_INPUT_BUFFER_MS}")
        );
        assert_eq!(
            url("rist://10.0.0.1:8002?cname=a", false),
            format!("rist://10.0.0.1:8002?cname=a&buffer={DEFAULT_OUTPUT_BUFFER_MS}")
        );
        // The operator's buffer (any of the three keys) is passed as given, never a default.
        assert_eq!(
            url("rist://10.0.0.1:8002?buffer-max=2000", false),
            "rist://10.0.0.1:8002?buffer-max=2000"
        );
    }

    #[test]
    fn unknown_and_bad_values_name_the_key() {
        assert!(err("rist://@0.0.0.0:8000?bufer=100").contains("unknown parameter 'bufer'"));
        assert!(err("rist://@0.0.0.0:8000?buffer=abc").contains("'buffer'"));
        assert!(err("rist://@0.0.0.0:8000?buffer=99999999").contains("outside"));
        assert!(err("rist://@0.0.0.0:8000?buffer=0").contains("smaller buffer"));
        assert!(err("rist://10.0.0.1:8000?buffer-max=5").contains("smaller buffer"));
        assert!(err("rist://@0.0.0.0:8000?aes-type=512&secret=abcdefghij").contains("aes-type"));
        assert!(err("rist://@0.0.0.0:8000?buffer-min=500&buffer-max=100").contains("buffer-min"));
        assert!(err("srt://@0.0.0.0:8000").contains("wrong scheme"));
        assert!(err("rist://@0.0.0.0:8000?cname=a%26b").contains("cname"));
    }

    #[test]
    fn secret_needs_a_key_size_and_is_never_shown() {
        let e = err("rist://@0.0.0.0:8000?secret=verysecretvalue");
        assert!(e.contains("aes-type"), "{e}");
        assert!(!e.contains("verysecretvalue"));
        assert!(err("rist://@0.0.0.0:8000?aes-type=256").contains("without secret"));
        let ok = parse(
            "rist://10.0.0.1:8000?secret=verysecretvalue&aes-type=256&password=p4ss&username=u",
        );
        let shown = ok.to_string();
        assert!(
            !shown.contains("verysecretvalue") && !shown.contains("p4ss"),
            "{shown}"
        );
        assert!(shown.contains("secret=***"));
        assert!(!format!("{ok:?}").contains("verysecretvalue"));
        let long = "x".repeat(200);
        let e = err(&format!("rist://@0.0.0.0:8000?secret={long}&aes-type=128"));
        assert!(!e.contains(&long));
    }

    #[test]
    fn srp_only_on_the_calling_side() {
        assert!(err("rist://@0.0.0.0:8000?username=u&password=p").contains("verifier"));
        assert!(err("rist://10.0.0.1:8000?username=u").contains("go together"));
    }

    #[test]
    fn simple_profile_wants_even_ports() {
        let e = RistEndpoint::parse("rist://@0.0.0.0:8001", Profile::Simple)
            .expect_err("odd port")
            .to_string();
        assert!(e.contains("even") && e.contains("port + 1"), "{e}");
        assert!(RistEndpoint::parse("rist://@0.0.0.0:8000", Profile::Simple).is_ok());
        assert!(RistEndpoint::parse("rist://@0.0.0.0:8001", Profile::Main).is_ok());
    }

    #[test]
    fn profiles_parse() {
        assert_eq!(Profile::parse("simple"), Ok(Profile::Simple));
        assert_eq!(Profile::parse("MAIN"), Ok(Profile::Main));
        assert!(Profile::parse("advanced").is_err());
        assert!(Profile::parse("x").is_err());
    }
}
