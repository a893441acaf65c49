//! The command line as a user meets it: bad input gets one clear line and exit code 2, a busy
//! port exit code 1, never a panic.

mod common;

use std::process::Command;

fn run(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_stream-relay"))
        .args(args)
        // Port 0: these runs never call HTTP, and a port picked beforehand could be taken by a
        // parallel test in between, failing the run for the wrong reason.
        .args(["--http-addr", "127.0.0.1:0"])
        .output()
        .expect("run stream-relay");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!err.contains("panicked"), "panic: {err}");
    (out.status.code().unwrap_or(-1), err)
}

#[test]
fn bad_uris_exit_2_with_a_reason() {
    let cases: &[(&str, &str)] = &[
        ("srt://:9000?lantency=120", "unknown parameter 'lantency'"),
        ("srt://:9000?latency=2000000", "latency=2000"),
        ("udp://:9000", "wrong scheme"),
        ("srt://host", "missing port"),
        ("srt://:99999", "invalid port"),
        ("", "empty"),
        ("srt://:9000?mode=push", "mode"),
        ("srt://:9000?latency=1&latency=2", "more than once"),
    ];
    for (uri, want) in cases {
        let (code, err) = run(&["srt", "-i", uri, "-o", "srt://127.0.0.1:9001"]);
        assert_eq!(code, 2, "{uri}: {err}");
        assert!(err.contains(want), "{uri}: expected '{want}' in: {err}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    }
}

#[test]
fn a_secret_in_a_bad_uri_is_not_echoed() {
    let (code, err) = run(&[
        "srt",
        "-i",
        "srt://:9000?passphrase=tooshort",
        "-o",
        "srt://127.0.0.1:9001",
    ]);
    assert_eq!(code, 2);
    assert!(!err.contains("tooshort"), "{err}");
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(run(&["srt", "-i", "srt://:9000"]).0, 2);
    assert_eq!(run(&["nonsense"]).0, 2);
    assert_eq!(
        run(&[
            "srt",
            "-i",
            "srt://:9000",
            "-o",
            "srt://h:1",
            "--log-format",
            "xml"
        ])
        .0,
        2
    );
}

#[test]
fn a_bad_log_filter_exits_2_naming_its_source() {
    let args = ["srt", "-i", "srt://:9000", "-o", "srt://127.0.0.1:9001"];
    let (code, err) = run(&[&args[..], &["--log-level", "info,srt=loud"]].concat());
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("invalid --log-level 'srt=loud'"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    let out = Command::new(env!("CARGO_BIN_EXE_stream-relay"))
        .args(args)
        .args(["--http-addr", "127.0.0.1:0"])
        .env("RUST_LOG", "[conn{peer=x}]=debug")
        .output()
        .expect("run stream-relay");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("invalid RUST_LOG"), "{err}");
    assert!(err.contains("span and field filters"), "{err}");
}

#[test]
fn a_busy_listen_port_exits_1() {
    let sock = std::net::UdpSocket::bind("0.0.0.0:0").expect("bind");
    let port = sock.local_addr().expect("addr").port();
    let (code, err) = run(&[
        "srt",
        "-i",
        &format!("srt://:{port}"),
        "-o",
        "srt://127.0.0.1:9001",
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("cannot listen"), "{err}");
}

#[test]
fn hostile_arguments_get_one_line_and_exit_2() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let out = Command::new(env!("CARGO_BIN_EXE_stream-relay"))
        .args(["srt", "-i"])
        .arg(OsStr::from_bytes(b"srt://:9000?latency=\xff\xfe"))
        .args(["-o", "srt://127.0.0.1:9001"])
        .output()
        .expect("run stream-relay");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let huge = format!("srt://:9000?{}", "x=y&".repeat(20_000));
    for (uri, want) in [
        (huge.as_str(), "longer than"),
        ("srt://:9000?latency=1\u{7}", "control character"),
        ("srt://user:pw@host:9000", "credentials in the address"),
        ("udp://0.0.0.0:5000", "wrong scheme"),
    ] {
        let (code, err) = run(&["srt", "-i", uri, "-o", "srt://127.0.0.1:9001"]);
        assert_eq!(code, 2, "{err}");
        assert!(err.contains(want), "expected '{want}': {err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(!err.contains("pw@"), "{err}");
    }
}

#[test]
fn the_health_subcommand_probes_a_running_relay() {
    let relay = common::Relay::start(&[
        "udp",
        "-i",
        &format!("udp://127.0.0.1:{}", common::free_port()),
        "-o",
        "udp://127.0.0.1:9",
    ]);
    let probe = |addr: String| {
        Command::new(env!("CARGO_BIN_EXE_stream-relay"))
            .arg("health")
            .env("HTTP_ADDR", addr)
            .output()
            .expect("run health")
            .status
            .code()
    };
    assert_eq!(probe(format!("0.0.0.0:{}", relay.http)), Some(0));
    assert_eq!(probe(format!("127.0.0.1:{}", common::free_port())), Some(1));
}

#[test]
fn version_names_the_libraries_as_loaded() {
    let out = Command::new(env!("CARGO_BIN_EXE_stream-relay"))
        .arg("--version")
        .output()
        .expect("run stream-relay");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    // libsrt is opened for --version although nothing else needs it here.
    assert!(text.contains("\nlibsrt 1."), "{text}");
    assert!(text.contains("\nlibrist 0."), "{text}");
}
