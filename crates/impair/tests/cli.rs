//! The `impair-proxy` binary: startup line, relaying, stats output and
//! argument errors.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_impair-proxy");

/// Kills the child even if an assertion fails, so no process outlives the test.
struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn relays_and_reports() {
    let upstream = UdpSocket::bind("127.0.0.1:0").unwrap();
    upstream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut child = Kill(
        Command::new(BIN)
            .args(["--listen", "127.0.0.1:0", "--upstream"])
            .arg(upstream.local_addr().unwrap().to_string())
            .args(["--delay-ms", "1", "--both", "--stats-interval-ms", "50"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut first = String::new();
    BufReader::new(child.0.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let addr: SocketAddr = first
        .trim_end()
        .strip_prefix("listening ")
        .unwrap_or_else(|| panic!("bad first line {first:?}"))
        .parse()
        .unwrap();
    assert_ne!(addr.port(), 0);

    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    client.send_to(b"hello", addr).unwrap();
    let mut buf = [0u8; 64];
    let (n, peer) = upstream.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"hello");
    upstream.send_to(b"world", peer).unwrap();
    let n = client.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"world");

    // Stats lines keep coming; wait for one that has seen the round trip.
    let stderr = BufReader::new(child.0.stderr.take().unwrap());
    let line = stderr
        .lines()
        .map(Result::unwrap)
        .find(|l| l.contains("\"backward\":{\"received\":1"))
        .expect("stats stream ended");
    assert!(line.starts_with("{\"elapsed_ms\":"), "{line}");
    assert!(line.contains("\"clients\":1"), "{line}");
    assert!(
        line.contains("\"forward\":{\"received\":1,\"dropped\":0,\"duplicated\":0,\"reordered\":0,\"forwarded\":1}"),
        "{line}"
    );
    assert!(line.ends_with('}'), "{line}");
}

#[test]
fn bad_arguments_exit_2_with_one_line() {
    for args in [
        &["--listen", "127.0.0.1:0"][..],
        &[
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            "127.0.0.1:9",
            "--loss",
            "2",
        ],
        &[
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            "127.0.0.1:9",
            "--frobnicate",
            "1",
        ],
    ] {
        let out = Command::new(BIN).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.lines().count(), 1, "{err:?}");
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn help_exits_0() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8(out.stdout)
        .unwrap()
        .starts_with("usage: impair-proxy"));
}
