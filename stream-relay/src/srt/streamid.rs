//! Parses the SRT Stream ID a caller sends to a shared SRT listener into a [`Request`]: which
//! stream, publish or play, and the credentials, in each dialect that clients send. Pure string
//! handling: no libsrt, no sockets, and no decision about whether the request is allowed (the
//! listener does that with the routes it knows).
//!
//! Dialects, tried in this order:
//! - empty: no Stream ID at all ([`Dialect::Empty`]);
//! - SRT access control, `#!::key=value,...` ([`Dialect::AccessControl`]), from libsrt's
//!   `docs/features/access-control.md` (Haivision/srt);
//! - MediaMTX, `publish:PATH[:USER:PASS][:QUERY]` and `read:...` ([`Dialect::MediaMtx`]), from
//!   `internal/servers/srt/streamid.go` (bluenviron/mediamtx);
//! - SRT Live Server, `publish/APP/STREAM` and `play/APP/STREAM` ([`Dialect::SlsPath`]): the
//!   default publisher/player domains of irl-srt-server (`src/sls.conf`,
//!   `src/core/sls_sid.cpp`, irlserver/irl-srt-server);
//! - anything else is a bare stream name ([`Dialect::Bare`]) and the listener picks the mode.
//!
//! Nothing is trimmed or unescaped (the one exception is MediaMTX's `#feedbackplay` suffix,
//! which MediaMTX strips itself): a Stream ID that does not fit a dialect exactly is either
//! refused or taken as a bare name, never repaired into something the caller did not send.
//! Passwords, session IDs and MediaMTX queries are held as [`Secret`], and no error message
//! echoes the Stream ID, a stream name (on irl-srt-server the name is often the stream key) or
//! a credential.

use crate::common::redact::Secret;
use std::fmt;

/// libsrt refuses a longer `SRTO_STREAMID` (SRT API socket options: "maximum 512").
pub const MAX_LEN: usize = 512;

/// The access-control prefix: `#!` then the syntax `:` then the content format `:`.
const ACCESS_CONTROL: &str = "#!::";

/// What the caller wants to do with the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The caller sends the stream to us.
    Publish,
    /// The caller receives the stream from us.
    Play,
    /// The Stream ID does not say (bare name, or none): the listener's configuration decides.
    Unspecified,
}

/// Which syntax the Stream ID was written in, for logs and for dialect-specific policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// `#!::r=NAME,m=publish,...` (libsrt access-control guidelines).
    AccessControl,
    /// `publish/APP/STREAM` or `play/APP/STREAM` (SRT Live Server, irl-srt-server).
    SlsPath,
    /// `publish:PATH...` or `read:PATH...` (MediaMTX).
    MediaMtx,
    /// Any other text: the whole Stream ID is the stream name.
    Bare,
    /// No Stream ID.
    Empty,
}

/// A parsed Stream ID. `Debug` is safe to log: every secret field prints `***`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The stream name, exactly as sent (SLS: `APP/STREAM` without the `publish/`/`play/`
    /// domain). Empty only for [`Dialect::Empty`].
    pub stream: String,
    pub mode: Mode,
    /// `u=` (access control) or MediaMTX's USER; `None` when absent or empty.
    pub user: Option<String>,
    /// MediaMTX's PASS, or access control's `s=`. libsrt defines `s` as a one-shot session ID
    /// and MediaMTX's docs use it as the password; a credential either way.
    pub password: Option<Secret>,
    /// Access control's `h=` (the host name the caller asked for), not part of `stream`.
    pub host: Option<String>,
    /// MediaMTX's trailing QUERY, passed on to its auth hooks; may carry tokens, so secret.
    pub query: Option<Secret>,
    pub dialect: Dialect,
}

/// Why a Stream ID was refused. `Display` is one short line that never contains the Stream
/// ID, a stream name, a credential or a control character.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("the stream id is {len} bytes, longer than SRT's {MAX_LEN}")]
    TooLong { len: usize },
    #[error("the stream id contains a control character")]
    ControlChar,
    #[error("the stream id names no stream ({dialect:?} syntax)")]
    MissingName { dialect: Dialect },
    #[error("the stream name has an empty path segment (leading, trailing or doubled '/')")]
    EmptySegment,
    #[error("unsupported stream id syntax: only '#!::key=value,...' is defined after '#!'")]
    UnsupportedSyntax,
    #[error("access-control entry without '=' or with an empty key (expected key=value)")]
    MalformedPair,
    #[error("access-control key '{key}' is given more than once")]
    Repeated { key: &'static str },
    #[error("unsupported mode m={value}: expected 'publish' or 'request'")]
    UnsupportedMode { value: Echo },
    #[error("unsupported type t={value}: only 'stream' is served")]
    UnsupportedType { value: Echo },
    #[error("irl-srt-server's 'sls_app' key is not supported: send publish/APP/STREAM instead")]
    SlsAppKey,
    #[error(
        "MediaMTX stream id has {fields} ':'-separated fields: expected \
         ACTION:PATH[:QUERY] or ACTION:PATH:USER:PASS[:QUERY]"
    )]
    MediaMtxFields { fields: usize },
}

/// A mode or type value as an error shows it: by name only if it is one of the other values
/// libsrt's guidelines define, otherwise by length. A caller who pastes a password into `m=`
/// must not find it in our logs, and a printable keyword cannot forge a log line.
#[derive(Clone, PartialEq, Eq)]
pub struct Echo(String);

impl Echo {
    fn new(value: &str, known: &[&'static str]) -> Self {
        match known.iter().find(|k| value.eq_ignore_ascii_case(k)) {
            Some(k) => Echo(format!("'{k}'")),
            None => Echo(format!("(unrecognised, {} bytes)", value.len())),
        }
    }

    fn mode(value: &str) -> Self {
        Echo::new(value, &["bidirectional"])
    }

    fn kind(value: &str) -> Self {
        Echo::new(value, &["file", "auth"])
    }
}

impl fmt::Display for Echo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Echo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Parses a Stream ID as received from `SRTO_STREAMID` (or the listen callback).
pub fn parse(streamid: &str) -> Result<Request, ParseError> {
    if streamid.is_empty() {
        return Ok(Request::new(
            String::new(),
            Mode::Unspecified,
            Dialect::Empty,
        ));
    }
    if streamid.len() > MAX_LEN {
        return Err(ParseError::TooLong {
            len: streamid.len(),
        });
    }
    // Refused anywhere in the string, not only in the name: a control character in a password
    // or a key would otherwise reach whatever logs or forwards that field.
    if streamid.chars().any(char::is_control) {
        return Err(ParseError::ControlChar);
    }
    if let Some(content) = streamid.strip_prefix(ACCESS_CONTROL) {
        return parse_access_control(content);
    }
    if streamid.starts_with("#!") {
        // `#!:{...}` (nested) is described by libsrt but implemented by no server we know of;
        // reading it as a bare name would route a request the caller meant to qualify.
        return Err(ParseError::UnsupportedSyntax);
    }
    // MediaMTX and SLS prefixes are matched case-sensitively, as both servers do (Go `switch`,
    // C `strcmp`): `Publish/x` is a bare name, since guessing would reinterpret real names.
    if let Some(rest) = streamid.strip_prefix("publish:") {
        return parse_mediamtx(Mode::Publish, rest);
    }
    if let Some(rest) = streamid.strip_prefix("read:") {
        return parse_mediamtx(Mode::Play, rest);
    }
    if let Some(rest) = streamid.strip_prefix("publish/") {
        return parse_sls(Mode::Publish, rest);
    }
    if let Some(rest) = streamid.strip_prefix("play/") {
        return parse_sls(Mode::Play, rest);
    }
    Ok(Request::new(
        streamid.to_owned(),
        Mode::Unspecified,
        Dialect::Bare,
    ))
}

impl Request {
    fn new(stream: String, mode: Mode, dialect: Dialect) -> Self {
        Request {
            stream,
            mode,
            user: None,
            password: None,
            host: None,
            query: None,
            dialect,
        }
    }
}

/// `key=value` pairs separated by commas, no escaping (libsrt defines none). A value may
/// contain `=` (split at the first one, as MediaMTX does). Unknown keys are ignored: libsrt
/// lets applications tolerate them, and Blackmagic encoders send `bmd_uuid=`/`bmd_name=`
/// (MediaMTX issue 3701, in its `streamid_test.go`).
fn parse_access_control(content: &str) -> Result<Request, ParseError> {
    let mut resource = None;
    let mut mode = None;
    let mut user = None;
    let mut session = None;
    let mut host = None;
    let mut kind = None;
    for pair in content.split(',') {
        let (key, value) = pair.split_once('=').ok_or(ParseError::MalformedPair)?;
        let (name, slot) = match key {
            "" => return Err(ParseError::MalformedPair),
            "r" => ("r", &mut resource),
            "m" => ("m", &mut mode),
            "u" => ("u", &mut user),
            "s" => ("s", &mut session),
            "h" => ("h", &mut host),
            "t" => ("t", &mut kind),
            // irl-srt-server reads `#!::h=DOMAIN,sls_app=APP,r=STREAM` as DOMAIN/APP/STREAM
            // (`src/core/sls_sid.cpp`) and ignores `m`. Ignoring `sls_app` like any other
            // unknown key would turn such a publisher into a player of `STREAM`, so refuse it.
            "sls_app" => return Err(ParseError::SlsAppKey),
            _ => continue,
        };
        if slot.is_some() {
            // MediaMTX and SLS both let the last one win; a relay in front of us could append
            // a second `r=` or `m=`, so an ambiguous request is refused instead.
            return Err(ParseError::Repeated { key: name });
        }
        *slot = Some(value);
    }

    if let Some(t) = kind {
        // `file` and `auth` are standard types, but this relay only serves live streams.
        if !t.eq_ignore_ascii_case("stream") {
            return Err(ParseError::UnsupportedType {
                value: Echo::kind(t),
            });
        }
    }
    // libsrt: `request` is the default; MediaMTX and ZLMediaKit also default to reading.
    // Case is ignored: the values are keywords, so this cannot change what a name means.
    let mode = match mode {
        None => Mode::Play,
        Some(m) if m.eq_ignore_ascii_case("request") => Mode::Play,
        Some(m) if m.eq_ignore_ascii_case("publish") => Mode::Publish,
        // `bidirectional` included: a relay stream has one direction, and guessing one for a
        // caller that announced both would silently break it.
        Some(m) => {
            return Err(ParseError::UnsupportedMode {
                value: Echo::mode(m),
            })
        }
    };
    // libsrt puts the resource in `r` only (`h` is just the host name), so `h` without `r`
    // still names no stream.
    let stream = match resource {
        Some(r) if !r.is_empty() => r.to_owned(),
        _ => {
            return Err(ParseError::MissingName {
                dialect: Dialect::AccessControl,
            })
        }
    };
    let mut req = Request::new(stream, mode, Dialect::AccessControl);
    req.user = non_empty(user).map(str::to_owned);
    req.password = non_empty(session).map(|s| Secret::new(s.to_owned()));
    req.host = non_empty(host).map(str::to_owned);
    Ok(req)
}

/// After `publish:`/`read:`. MediaMTX splits the whole ID on ':' into 2 to 5 fields:
/// ACTION:PATH, ACTION:PATH:QUERY, ACTION:PATH:USER:PASS, ACTION:PATH:USER:PASS:QUERY. It
/// also drops a `#feedbackplay` suffix from the last field, which the StreamToStudio app
/// appends (MediaMTX issue 5414, in its `streamid_test.go`); we do the same so such a
/// caller's password or path still matches.
fn parse_mediamtx(mode: Mode, rest: &str) -> Result<Request, ParseError> {
    let rest = rest.strip_suffix("#feedbackplay").unwrap_or(rest);
    let mut fields = rest.split(':');
    let path = fields.next().unwrap_or_default();
    let (second, third, fourth) = (fields.next(), fields.next(), fields.next());
    let extra = fields.count();
    if extra > 0 {
        return Err(ParseError::MediaMtxFields { fields: 5 + extra });
    }
    let (user, pass, query) = match (second, third, fourth) {
        (query, None, _) => (None, None, query),
        (user, pass, query) => (user, pass, query),
    };
    if path.is_empty() {
        return Err(ParseError::MissingName {
            dialect: Dialect::MediaMtx,
        });
    }
    let mut req = Request::new(path.to_owned(), mode, Dialect::MediaMtx);
    req.user = non_empty(user).map(str::to_owned);
    req.password = non_empty(pass).map(|p| Secret::new(p.to_owned()));
    req.query = non_empty(query).map(|q| Secret::new(q.to_owned()));
    Ok(req)
}

/// After `publish/`/`play/`: the rest (`APP/STREAM`, or just `STREAM`) is the stream name.
/// SLS itself splits DOMAIN/APP/STREAM and maps DOMAIN to a role through its configuration
/// (`domain_publisher`/`domain_player`); `publish` and `play` are irl-srt-server's defaults.
/// Other domains (SLS's old `uplive.sls.com/live/test`) cannot be mapped without that
/// configuration, so they stay bare names for the listener to map.
fn parse_sls(mode: Mode, rest: &str) -> Result<Request, ParseError> {
    if rest.is_empty() {
        return Err(ParseError::MissingName {
            dialect: Dialect::SlsPath,
        });
    }
    // irl-srt-server trims segments and its handler's `strtok` skips empty ones; we refuse
    // empty segments instead, so `live//a` and `live/a` cannot be two spellings of one stream
    // or two streams that look alike. (irl-srt-server also keeps only the third segment as
    // the stream; the original SLS keeps the whole rest, as we do.)
    if rest.split('/').any(str::is_empty) {
        return Err(ParseError::EmptySegment);
    }
    Ok(Request::new(rest.to_owned(), mode, Dialect::SlsPath))
}

fn non_empty(value: Option<&str>) -> Option<&str> {
    value.filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ok(id: &str) -> Request {
        match parse(id) {
            Ok(req) => req,
            Err(e) => panic!("{id:?} should parse, got: {e}"),
        }
    }

    fn err(id: &str) -> ParseError {
        match parse(id) {
            Ok(req) => panic!("{id:?} should be refused, got {req:?}"),
            Err(e) => e,
        }
    }

    fn secret(req: &Request) -> Option<&str> {
        req.password.as_ref().map(Secret::expose)
    }

    #[test]
    fn empty_streamid_lets_the_listener_decide() {
        let req = ok("");
        assert_eq!(req.dialect, Dialect::Empty);
        assert_eq!(req.stream, "");
        assert_eq!(req.mode, Mode::Unspecified);
    }

    #[test]
    fn access_control_examples_from_libsrt_docs() {
        // Haivision/srt docs/features/access-control.md, "Examples".
        let req = ok("#!::u=admin,r=bluesbrothers1_hi");
        assert_eq!(req.dialect, Dialect::AccessControl);
        assert_eq!(req.stream, "bluesbrothers1_hi");
        assert_eq!(req.user.as_deref(), Some("admin"));
        assert_eq!(req.mode, Mode::Play, "m defaults to request");

        // Same file: a file transfer, which a live relay refuses.
        let e = err("#!::u=johnny,t=file,m=publish,r=results.csv");
        assert_eq!(
            e,
            ParseError::UnsupportedType {
                value: Echo::kind("file")
            }
        );
        assert_eq!(
            e.to_string(),
            "unsupported type t='file': only 'stream' is served"
        );
    }

    #[test]
    fn access_control_as_servers_document_it() {
        // bluenviron/mediamtx docs/2-features/24-srt-specific-features.md.
        let req = ok("#!::m=publish,r=mypath,u=myuser,s=mypass");
        assert_eq!(req.mode, Mode::Publish);
        assert_eq!(req.stream, "mypath");
        assert_eq!(req.user.as_deref(), Some("myuser"));
        assert_eq!(secret(&req), Some("mypass"));
        assert!(!format!("{req:?}").contains("mypass"));

        // ZLMediaKit/ZLMediaKit srt/srt.md: `h` is a separate host, not part of the name.
        let req = ok("#!::h=zlmediakit.com,r=live/test,m=publish");
        assert_eq!(req.stream, "live/test");
        assert_eq!(req.host.as_deref(), Some("zlmediakit.com"));
        assert_eq!(req.mode, Mode::Publish);
        let req = ok("#!::r=live/test");
        assert_eq!(req.mode, Mode::Play);

        // bluenviron/mediamtx internal/servers/srt/streamid_test.go, "issue 3701"
        // (Blackmagic hardware): unknown keys are ignored.
        let req = ok(
            "#!::bmd_uuid=0e1df79f-77e6-465c-b099-29a616e964f7,bmd_name=rdt-wp-003,r=test3,m=publish",
        );
        assert_eq!(req.stream, "test3");
        assert_eq!(req.mode, Mode::Publish);
        assert_eq!(req.user, None);

        // Keys in any order; `t=stream` is the default type, spelled out.
        let req = ok("#!::t=stream,r=cam1,m=request,x=1,user_tag=a=b");
        assert_eq!((req.stream.as_str(), req.mode), ("cam1", Mode::Play));
    }

    #[test]
    fn access_control_case_variants() {
        // Mode and type values are keywords: any case.
        assert_eq!(ok("#!::r=cam,m=PUBLISH").mode, Mode::Publish);
        assert_eq!(ok("#!::r=cam,m=Request").mode, Mode::Play);
        assert_eq!(ok("#!::r=cam,t=Stream").stream, "cam");
        // Keys are case-sensitive (libsrt defines lowercase ones): `R` is an unknown key.
        assert_eq!(
            err("#!::R=cam,m=publish"),
            ParseError::MissingName {
                dialect: Dialect::AccessControl
            }
        );
        // The name keeps its case.
        assert_eq!(ok("#!::r=Cam1").stream, "Cam1");
    }

    #[test]
    fn access_control_errors() {
        let missing = ParseError::MissingName {
            dialect: Dialect::AccessControl,
        };
        assert_eq!(err("#!::m=publish"), missing);
        assert_eq!(err("#!::"), ParseError::MalformedPair);
        assert_eq!(err("#!::r="), missing);
        assert_eq!(err("#!::h=example.com/live/cam"), missing);
        assert_eq!(err("#!::r=cam,"), ParseError::MalformedPair);
        assert_eq!(err("#!::r=cam,publish"), ParseError::MalformedPair);
        assert_eq!(err("#!::=cam"), ParseError::MalformedPair);
        assert_eq!(err("#!::r=a,r=b"), ParseError::Repeated { key: "r" });
        assert_eq!(
            err("#!::r=a,m=publish,m=request"),
            ParseError::Repeated { key: "m" }
        );
        assert!(matches!(
            err("#!::r=cam,m=bidirectional"),
            ParseError::UnsupportedMode { .. }
        ));
        assert!(matches!(
            err("#!::r=cam,t=auth"),
            ParseError::UnsupportedType { .. }
        ));
        // irl-srt-server's test corpus form (tests/test_sls_sid.cpp).
        assert_eq!(
            err("#!::h=example.com,sls_app=live,r=feed1"),
            ParseError::SlsAppKey
        );
        assert_eq!(err("#!:{r=cam}"), ParseError::UnsupportedSyntax);
        assert_eq!(err("#!cam"), ParseError::UnsupportedSyntax);
    }

    #[test]
    fn mediamtx_examples_from_its_tests_and_docs() {
        // bluenviron/mediamtx internal/servers/srt/streamid_test.go.
        let req = ok("read:mypath");
        assert_eq!(req.dialect, Dialect::MediaMtx);
        assert_eq!((req.stream.as_str(), req.mode), ("mypath", Mode::Play));
        assert_eq!((req.user.as_ref(), req.password.as_ref()), (None, None));

        let req = ok("publish:mypath:myquery");
        assert_eq!((req.stream.as_str(), req.mode), ("mypath", Mode::Publish));
        assert_eq!(req.query.as_ref().map(Secret::expose), Some("myquery"));
        assert_eq!(req.user, None);

        let req = ok("read:mypath:myuser:mypass:myquery");
        assert_eq!(req.stream, "mypath");
        assert_eq!(req.user.as_deref(), Some("myuser"));
        assert_eq!(secret(&req), Some("mypass"));
        assert_eq!(req.query.as_ref().map(Secret::expose), Some("myquery"));

        // Same file, "issue 5414" (StreamToStudio).
        let req = ok("publish:my_path:myuser:mypass#feedbackplay");
        assert_eq!(req.stream, "my_path");
        assert_eq!(secret(&req), Some("mypass"));
        assert_eq!(ok("read:cam#feedbackplay").stream, "cam");

        // docs/2-features/06-authentication.md and docs/3-publish/03-srt-clients.md.
        let req = ok("publish:mystream:user:mytoken");
        assert_eq!(secret(&req), Some("mytoken"));
        assert_eq!(ok("publish:live/cam").stream, "live/cam");
    }

    #[test]
    fn mediamtx_errors_and_case() {
        let missing = ParseError::MissingName {
            dialect: Dialect::MediaMtx,
        };
        assert_eq!(err("publish:"), missing);
        assert_eq!(err("read::alice:hunter2"), missing);
        let e = err("read:cam:alice:hunter2:q:extra");
        assert_eq!(e, ParseError::MediaMtxFields { fields: 6 });
        assert!(!e.to_string().contains("hunter2"));
        // Empty credentials are absent credentials, as in MediaMTX.
        let req = ok("publish:cam::");
        assert_eq!((req.user, req.password), (None, None));
        // Prefixes are case-sensitive, as in MediaMTX: this is a bare name.
        let req = ok("Publish:cam");
        assert_eq!((req.dialect, req.mode), (Dialect::Bare, Mode::Unspecified));
        // `play:` is not a MediaMTX action (`read:` is).
        assert_eq!(ok("play:cam").dialect, Dialect::Bare);
    }

    #[test]
    fn sls_examples_from_irl_srt_server() {
        // irlserver/irl-srt-server src/sls.conf (listen_publisher / listen_player comments).
        let req = ok("publish/live/feed1");
        assert_eq!(req.dialect, Dialect::SlsPath);
        assert_eq!(
            (req.stream.as_str(), req.mode),
            ("live/feed1", Mode::Publish)
        );
        let req = ok("play/live/feed1");
        assert_eq!((req.stream.as_str(), req.mode), ("live/feed1", Mode::Play));
        // The rest is the name, whatever its depth.
        assert_eq!(ok("publish/feed1").stream, "feed1");
        assert_eq!(ok("play/live/a/b").stream, "live/a/b");
    }

    #[test]
    fn sls_errors_and_other_domains() {
        let missing = ParseError::MissingName {
            dialect: Dialect::SlsPath,
        };
        assert_eq!(err("publish/"), missing);
        assert_eq!(err("play/"), missing);
        assert_eq!(err("publish/live/"), ParseError::EmptySegment);
        assert_eq!(err("publish//feed1"), ParseError::EmptySegment);
        assert_eq!(err("play/live//feed1"), ParseError::EmptySegment);
        // Edward-Wu/srt-live-server README.md: domains come from sls.conf, so without that
        // configuration these are bare names for the listener to map.
        let req = ok("uplive.sls.com/live/test");
        assert_eq!(req.dialect, Dialect::Bare);
        assert_eq!(req.stream, "uplive.sls.com/live/test");
        assert_eq!(req.mode, Mode::Unspecified);
        assert_eq!(ok("PLAY/live/feed1").dialect, Dialect::Bare);
    }

    #[test]
    fn bare_names() {
        for name in [
            "cam1",
            "live/feed1",
            "publish",
            "play",
            "read",
            "a b",
            "caméra",
        ] {
            let req = ok(name);
            assert_eq!(req.dialect, Dialect::Bare, "{name}");
            assert_eq!(req.stream, name);
            assert_eq!(req.mode, Mode::Unspecified);
        }
        // Not trimmed.
        assert_eq!(ok(" cam1 ").stream, " cam1 ");
    }

    #[test]
    fn length_and_control_characters() {
        let longest = "a".repeat(MAX_LEN);
        assert_eq!(ok(&longest).stream, longest);
        let e = err(&"a".repeat(MAX_LEN + 1));
        assert_eq!(e, ParseError::TooLong { len: MAX_LEN + 1 });
        assert_eq!(err(&format!("publish/live/{}", "a".repeat(500))), e);
        for id in [
            "cam\n1",
            "cam\0",
            "#!::r=cam,s=pa\tss",
            "read:cam\u{7f}",
            "x\u{85}",
        ] {
            let e = err(id);
            assert_eq!(e, ParseError::ControlChar, "{id:?}");
            assert!(!e.to_string().chars().any(char::is_control));
        }
    }

    #[test]
    fn secrets_never_reach_debug_or_errors() {
        for id in [
            "read:cam:alice:hunter2",
            "publish:cam:alice:hunter2:token=hunter2",
            "#!::r=cam,u=alice,s=hunter2",
        ] {
            let req = ok(id);
            assert_eq!(secret(&req), Some("hunter2"));
            let debug = format!("{req:?}");
            assert!(!debug.contains("hunter2"), "{debug}");
            assert!(debug.contains("***"));
        }
        for id in [
            "read:cam:alice:hunter2:q:x",
            "#!::r=cam,s=hunter2,m=hunter2",
            "#!::r=cam,s=hunter2,t=hunter2",
            "#!::s=hunter2",
            "#!::s=hunter2,s=hunter2",
            "read::alice:hunter2",
        ] {
            let e = err(id);
            assert!(!e.to_string().contains("hunter2"), "{id}: {e}");
            assert!(!format!("{e:?}").contains("hunter2"), "{id}: {e:?}");
        }
        // Only the modes libsrt defines are named in an error.
        let e = err("#!::r=cam,m=hunter2");
        assert_eq!(
            e.to_string(),
            "unsupported mode m=(unrecognised, 7 bytes): expected 'publish' or 'request'"
        );
        let e = err("#!::r=cam,m=Bidirectional");
        assert_eq!(
            e.to_string(),
            "unsupported mode m='bidirectional': expected 'publish' or 'request'"
        );
    }

    // Passwords from an alphabet (upper case and digits, at least 6) that no other field,
    // type name or variant name in the output can produce.
    const NAME: &str = "[a-z/]{1,20}";
    const USER: &str = "[a-z]{0,10}";
    const PASS: &str = "[A-Z0-9]{6,20}";

    proptest! {
        #[test]
        fn never_panics(id in any::<String>()) {
            let _ = parse(&id);
        }

        #[test]
        fn never_panics_near_the_grammar(
            id in r"(#!::|#!|publish:|read:|publish/|play/)?[a-z=,:/#!\x00-\x1f]{0,40}"
        ) {
            if let Err(e) = parse(&id) {
                let line = e.to_string();
                prop_assert!(!line.chars().any(char::is_control), "{:?}", line);
            }
        }

        #[test]
        fn debug_never_shows_the_password(
            name in NAME, user in USER, pass in PASS, query in "[a-z=]{0,10}", form in 0..3u8
        ) {
            let id = match form {
                0 => format!("read:{name}:{user}:{pass}"),
                1 => format!("publish:{name}:{user}:{pass}:{query}"),
                _ => format!("#!::r={name},u={user},s={pass},m=publish"),
            };
            let shown = match parse(&id) {
                Ok(req) => {
                    prop_assert_eq!(secret(&req), Some(pass.as_str()));
                    format!("{req:?}")
                }
                Err(e) => format!("{e} {e:?}"),
            };
            prop_assert!(!shown.contains(&pass), "{}", shown);
        }

        #[test]
        fn errors_never_show_the_password(
            pass in PASS, junk in r"[a-z:=,/#!]{0,20}", form in 0..3u8
        ) {
            let id = match form {
                0 => format!("read:{junk}:u:{pass}:{junk}:{junk}"),
                1 => format!("#!::s={pass},{junk}"),
                _ => format!("#!::{junk},s={pass},m={junk}"),
            };
            if let Err(e) = parse(&id) {
                let shown = format!("{e} {e:?}");
                prop_assert!(!shown.contains(&pass), "{}", shown);
            }
        }
    }
}
