//! The syntax all stream URIs share (`scheme://[@]host:port?key=value&...`), split into parts.
//! Each transport then gives the keys their meaning. Errors name the problem and the key, never
//! a value that could be a secret.

use super::redact::{is_secret_key, MASK};
use std::fmt;

/// Longest URI accepted; real ones are a few hundred bytes, this bounds hostile input.
pub const MAX_URI_LEN: usize = 4096;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawUri {
    pub scheme: String,
    /// `rist://@addr:port` (librist's listen syntax) sets this.
    pub at_prefix: bool,
    /// Empty for `srt://:9000`; IPv6 literals without brackets.
    pub host: String,
    pub port: u16,
    /// In order of appearance, percent-decoded, keys lower-cased.
    pub params: Vec<(String, String)>,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UriError {
    #[error("the URI is empty")]
    Empty,
    #[error("the URI is longer than {MAX_URI_LEN} bytes")]
    TooLong,
    #[error("the URI contains a NUL byte or a control character")]
    ControlChar,
    #[error("missing scheme: expected {expected}://host:port")]
    MissingScheme { expected: &'static str },
    #[error("wrong scheme '{found}': expected {expected}://")]
    WrongScheme {
        found: String,
        expected: &'static str,
    },
    #[error(
        "missing port: expected {scheme}://host:port (empty host to listen, e.g. {scheme}://:9000)"
    )]
    MissingPort { scheme: String },
    #[error("invalid port '{port}': must be a number from 1 to 65535")]
    BadPort { port: String },
    #[error("invalid host '{host}'")]
    BadHost { host: String },
    #[error("parameter '{key}' is given more than once")]
    Repeated { key: String },
    #[error("parameter '{key}' has no value (expected {key}=VALUE)")]
    NoValue { key: String },
    #[error("unknown parameter '{key}' for {scheme}:// (see the README for the supported list)")]
    Unknown { key: String, scheme: &'static str },
    #[error("invalid value for '{key}': {reason}")]
    BadValue { key: String, reason: String },
    #[error("invalid percent-encoding in parameter '{key}'")]
    BadEncoding { key: String },
    #[error("credentials in the address (user:password@host) are not supported and not shown; use the protocol's parameters (passphrase=, secret=, username=/password=)")]
    UserInfo,
}

impl RawUri {
    pub fn parse(input: &str, expected: &'static str) -> Result<RawUri, UriError> {
        if input.trim().is_empty() {
            return Err(UriError::Empty);
        }
        if input.len() > MAX_URI_LEN {
            return Err(UriError::TooLong);
        }
        if input.chars().any(|c| c.is_control()) {
            return Err(UriError::ControlChar);
        }
        let input = input.trim();
        let Some((scheme, rest)) = input.split_once("://") else {
            return Err(UriError::MissingScheme { expected });
        };
        let scheme = scheme.to_ascii_lowercase();
        if scheme != expected {
            return Err(UriError::WrongScheme {
                found: truncate(&scheme, 32),
                expected,
            });
        }
        let (authority, query) = match rest.split_once('?') {
            Some((a, q)) => (a, Some(q)),
            None => (rest, None),
        };
        // A trailing slash or path (`srt://host:9000/`) is accepted and ignored, as ffmpeg does.
        let authority = authority.split('/').next().unwrap_or("");
        let (at_prefix, authority) = match authority.strip_prefix('@') {
            Some(a) => (true, a),
            None => (false, authority),
        };
        // `user:secret@host` would be echoed by any error about the host: refuse it whole.
        if authority.contains('@') {
            return Err(UriError::UserInfo);
        }
        let (host, port) = split_host_port(authority, &scheme)?;
        let params = match query {
            Some(q) => parse_query(q)?,
            None => Vec::new(),
        };
        Ok(RawUri {
            scheme,
            at_prefix,
            host,
            port,
            params,
        })
    }

    /// Takes parameters out one by one so that whatever is left at the end is unknown.
    pub fn take(&mut self, key: &str) -> Option<String> {
        let idx = self.params.iter().position(|(k, _)| k == key)?;
        Some(self.params.remove(idx).1)
    }

    /// Fails on the first parameter nobody took.
    pub fn finish(self, scheme: &'static str) -> Result<(), UriError> {
        match self.params.into_iter().next() {
            Some((key, _)) => Err(UriError::Unknown {
                key: truncate(&key, 64),
                scheme,
            }),
            None => Ok(()),
        }
    }
}

fn split_host_port(authority: &str, scheme: &str) -> Result<(String, u16), UriError> {
    let missing = || UriError::MissingPort {
        scheme: scheme.to_owned(),
    };
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(|| UriError::BadHost {
            host: truncate(authority, 64),
        })?;
        let port = after.strip_prefix(':').ok_or_else(missing)?;
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(UriError::BadHost {
                host: truncate(host, 64),
            });
        }
        (host, port)
    } else {
        let (host, port) = authority.rsplit_once(':').ok_or_else(missing)?;
        if host.contains(':') {
            // An unbracketed IPv6 literal is ambiguous with the port separator.
            return Err(UriError::BadHost {
                host: format!(
                    "{} (write IPv6 addresses in brackets: [::1]:9000)",
                    truncate(host, 64)
                ),
            });
        }
        (host, port)
    };
    if port.is_empty() {
        return Err(missing());
    }
    let port_num = port
        .parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| UriError::BadPort {
            port: truncate(port, 16),
        })?;
    if !host.is_empty() && !valid_host(host) {
        return Err(UriError::BadHost {
            host: truncate(host, 64),
        });
    }
    Ok((host.to_owned(), port_num))
}

fn valid_host(host: &str) -> bool {
    host.len() <= 253
        && (host.parse::<std::net::IpAddr>().is_ok()
            || host.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            }))
}

fn parse_query(query: &str) -> Result<Vec<(String, String)>, UriError> {
    let mut params: Vec<(String, String)> = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = match pair.split_once('=') {
            Some((k, v)) => (k, v),
            None => {
                return Err(UriError::NoValue {
                    key: truncate(pair, 64),
                })
            }
        };
        let key = key.to_ascii_lowercase();
        let value = percent_decode(value).ok_or_else(|| UriError::BadEncoding {
            key: truncate(&key, 64),
        })?;
        if params.iter().any(|(k, _)| *k == key) {
            return Err(UriError::Repeated {
                key: truncate(&key, 64),
            });
        }
        params.push((key, value));
    }
    Ok(params)
}

pub(crate) fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    let s = String::from_utf8(out).ok()?;
    (!s.chars().any(|c| c.is_control())).then_some(s)
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(max).collect();
        t.push('…');
        t
    }
}

/// Writes `scheme://host:port?k=v` with secret values masked: the only way URIs reach logs,
/// errors, `/health` and metric labels.
pub struct Redacted<'a> {
    pub scheme: &'a str,
    pub at_prefix: bool,
    pub host: &'a str,
    pub port: u16,
    pub params: &'a [(String, String)],
}

impl fmt::Display for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://", self.scheme)?;
        if self.at_prefix {
            f.write_str("@")?;
        }
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)?;
        } else {
            write!(f, "{}:{}", self.host, self.port)?;
        }
        for (i, (k, v)) in self.params.iter().enumerate() {
            f.write_str(if i == 0 { "?" } else { "&" })?;
            if is_secret_key(k) {
                write!(f, "{k}={MASK}")?;
            } else {
                write!(f, "{k}={v}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_the_usual_forms() {
        let u = RawUri::parse("srt://:9000?mode=listener&latency=120", "srt").expect("valid");
        assert_eq!(u.host, "");
        assert_eq!(u.port, 9000);
        assert_eq!(
            u.params,
            vec![
                ("mode".into(), "listener".into()),
                ("latency".into(), "120".into())
            ]
        );
        let u = RawUri::parse("SRT://[::1]:9001", "srt").expect("valid");
        assert_eq!((u.host.as_str(), u.port), ("::1", 9001));
        let u = RawUri::parse("rist://@0.0.0.0:8000?buffer=1000", "rist").expect("valid");
        assert!(u.at_prefix);
        let u = RawUri::parse(
            "srt://studio.example:9001/?streamid=%23%21%3A%3Ar%3Dcam",
            "srt",
        )
        .expect("valid");
        assert_eq!(u.params[0].1, "#!::r=cam");
    }

    #[test]
    fn refuses_bad_input_with_a_named_reason() {
        let cases: &[(&str, UriError)] = &[
            ("", UriError::Empty),
            ("   ", UriError::Empty),
            ("srt:/host:1", UriError::MissingScheme { expected: "srt" }),
            (
                "udp://h:1",
                UriError::WrongScheme {
                    found: "udp".into(),
                    expected: "srt",
                },
            ),
            (
                "srt://host",
                UriError::MissingPort {
                    scheme: "srt".into(),
                },
            ),
            (
                "srt://host:",
                UriError::MissingPort {
                    scheme: "srt".into(),
                },
            ),
            ("srt://host:0", UriError::BadPort { port: "0".into() }),
            (
                "srt://host:70000",
                UriError::BadPort {
                    port: "70000".into(),
                },
            ),
            ("srt://host:-1", UriError::BadPort { port: "-1".into() }),
            ("srt://h:1?a=1&a=2", UriError::Repeated { key: "a".into() }),
            ("srt://h:1?flag", UriError::NoValue { key: "flag".into() }),
            ("srt://h:1?a=%zz", UriError::BadEncoding { key: "a".into() }),
            ("srt://h:1?a=%00", UriError::BadEncoding { key: "a".into() }),
            ("srt://h\0:1", UriError::ControlChar),
        ];
        for (input, want) in cases {
            assert_eq!(
                &RawUri::parse(input, "srt").expect_err(input),
                want,
                "{input:?}"
            );
        }
        assert_eq!(
            RawUri::parse(&"x".repeat(5000), "srt"),
            Err(UriError::TooLong)
        );
        assert!(matches!(
            RawUri::parse("srt://::1:9000", "srt"),
            Err(UriError::BadHost { .. })
        ));
        assert!(matches!(
            RawUri::parse("srt://ho st:9000", "srt"),
            Err(UriError::BadHost { .. })
        ));
    }

    #[test]
    fn redacted_display_masks_secrets() {
        let u =
            RawUri::parse("srt://h:1?passphrase=supersecret123&latency=80", "srt").expect("valid");
        let shown = Redacted {
            scheme: &u.scheme,
            at_prefix: u.at_prefix,
            host: &u.host,
            port: u.port,
            params: &u.params,
        }
        .to_string();
        assert_eq!(shown, "srt://h:1?passphrase=***&latency=80");
    }
}
