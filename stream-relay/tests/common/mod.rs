//! Shared helpers for the end-to-end tests: free ports, the relay binary as a child process,
//! reference peers (srt-live-transmit, ffmpeg), UDP traffic with sequence numbers, tiny HTTP.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const PKT: usize = 1316;

/// A missing peer fails the test unless explicitly allowed, so CI cannot pass by skipping.
pub fn require(tool: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !found {
        if std::env::var_os("STREAM_RELAY_ALLOW_MISSING_TOOLS").is_some() {
            eprintln!("skipping: {tool} not installed");
            return false;
        }
        panic!("{tool} is not installed (apt-get install srt-tools rist-tools ffmpeg prometheus chromium, or bash scripts/setup.sh), or set STREAM_RELAY_ALLOW_MISSING_TOOLS=1");
    }
    true
}

/// A field of `/proc/PID/status` in kB (`VmRSS`, `VmHWM`, ...).
pub fn status_kb(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("{key} in {status}"))
}

/// A port that was free a moment ago (UDP and TCP share the number space we use).
pub fn free_port() -> u16 {
    loop {
        let u = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
        let port = u.local_addr().expect("addr").port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// An even port whose successor is free too: the RIST simple profile uses port + 1 for RTCP.
pub fn free_even_port() -> u16 {
    loop {
        let p = free_port();
        if p.is_multiple_of(2) && p < u16::MAX && UdpSocket::bind(("127.0.0.1", p + 1)).is_ok() {
            return p;
        }
    }
}

/// One of librist's tools (ristsender, ristreceiver), quiet.
pub fn rist_tool(tool: &str, args: &[&str]) -> Proc {
    Proc(
        Command::new(tool)
            .args(args)
            .args(["-v", "3", "-S", "0"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {tool}: {e}")),
    )
}

pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub struct Relay {
    pub proc: Proc,
    pub http: u16,
    pub log: std::path::PathBuf,
}

impl Relay {
    pub fn start(args: &[&str]) -> Relay {
        Self::start_env(args, &[])
    }

    pub fn start_env(args: &[&str], env: &[(&str, &str)]) -> Relay {
        Self::start_at(free_port(), args, env)
    }

    /// On a given HTTP port (a relay restarted where clients expect it).
    pub fn start_at(http: u16, args: &[&str], env: &[(&str, &str)]) -> Relay {
        let log = std::env::temp_dir().join(format!(
            "stream-relay-test-{}-{}.log",
            std::process::id(),
            http
        ));
        let file = std::fs::File::create(&log).expect("log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_stream-relay"));
        // stdout goes to the same file: tests that look for secrets see everything printed.
        cmd.args(args)
            .arg("--http-addr")
            .arg(format!("127.0.0.1:{http}"))
            .env_remove("RUST_LOG")
            .stdout(file.try_clone().expect("log file"))
            .stderr(file);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn stream-relay");
        let relay = Relay {
            proc: Proc(child),
            http,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if http_get(http, "/health").is_some() {
                return relay;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("relay did not answer /health; log:\n{}", relay.logs());
    }

    pub fn metrics(&self) -> String {
        http_get(self.http, "/metrics")
            .map(|(_, b)| b)
            .unwrap_or_default()
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The first log line that contains `needle`, waiting up to 10 s for it.
    pub fn wait_log_line(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(line) = self.logs().lines().find(|l| l.contains(needle)) {
                return line.to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "no {needle:?} in the log:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Value of a sample line, e.g. `relay_reconnects_total{route="main",side="input",output=""}`.
    pub fn metric(&self, series: &str) -> f64 {
        metric_value(&self.metrics(), series)
    }

    pub fn wait_metric(&self, series: &str, at_least: f64, within: Duration) -> f64 {
        let deadline = Instant::now() + within;
        loop {
            let v = self.metric(series);
            if v >= at_least || Instant::now() > deadline {
                return v;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until the input has its sender and the output `out1` its receiver.
    pub fn wait_connected(&self) {
        let within = Duration::from_secs(10);
        let input = self.wait_metric(
            r#"relay_peers{route="main",side="input",output=""}"#,
            1.0,
            within,
        );
        let output = self.wait_metric(
            r#"relay_peers{route="main",side="output",output="out1"}"#,
            1.0,
            within,
        );
        assert!(
            input >= 1.0 && output >= 1.0,
            "not connected; log:\n{}",
            self.logs()
        );
    }

    pub fn terminate(mut self) -> (i32, Duration, String) {
        let t = Instant::now();
        // SAFETY-free: signalling a child we own through the kill command.
        let _ = Command::new("kill")
            .args(["-TERM", &self.proc.0.id().to_string()])
            .status();
        let status = self.proc.0.wait().expect("wait relay");
        (status.code().unwrap_or(-1), t.elapsed(), self.logs())
    }
}

pub fn metric_value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.trim().split(' ').next()?.parse().ok())
        })
        .unwrap_or(0.0)
}

pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).ok()?;
    let code = resp.split(' ').nth(1)?.parse().ok()?;
    let body = resp.split_once("\r\n\r\n")?.1.to_owned();
    Some((code, body))
}

/// Any HTTP request; returns the status and the body.
pub fn http_request(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&str>,
    token: Option<&str>,
) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let body = body.unwrap_or("");
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).ok()?;
    let code = resp.split(' ').nth(1)?.parse().ok()?;
    let body = resp.split_once("\r\n\r\n")?.1.to_owned();
    Some((code, body))
}

/// ffmpeg sending 20 s of a 320x240 MPEG-2 test picture as MPEG-TS to `url`.
pub fn ffmpeg_test_source(url: &str) -> Proc {
    Proc(
        Command::new("ffmpeg")
            .args(["-nostdin", "-loglevel", "error", "-re", "-f", "lavfi"])
            .args(["-i", "testsrc=size=320x240:rate=25", "-t", "20"])
            .args(["-c:v", "mpeg2video", "-b:v", "1M", "-f", "mpegts"])
            .arg(url)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn ffmpeg"),
    )
}

/// Asserts that ffprobe reading `url` sees the test picture `ffmpeg_test_source` sends.
pub fn assert_ffprobe_sees_test_picture(url: &str, relay: &Relay) {
    let out = Command::new("timeout")
        .args(["20", "ffprobe", "-v", "error", "-show_entries"])
        .args(["stream=codec_name,width,height", "-of", "csv=p=0"])
        .arg(url)
        .output()
        .expect("run ffprobe");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("mpeg2video,320,240"),
        "ffprobe saw: {text:?} / {}\nlog:\n{}",
        String::from_utf8_lossy(&out.stderr),
        relay.logs()
    );
}

pub fn slt(args: &[&str]) -> Proc {
    Proc(
        Command::new("srt-live-transmit")
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn srt-live-transmit"),
    )
}

/// A datagram with its sequence number in the first 8 bytes and a pattern derived from it.
pub fn datagram(seq: u64) -> Vec<u8> {
    let mut d = vec![0u8; PKT];
    d[..8].copy_from_slice(&seq.to_be_bytes());
    for (i, b) in d[8..].iter_mut().enumerate() {
        *b = (seq as usize).wrapping_mul(31).wrapping_add(i) as u8;
    }
    d
}

/// Sends `count` datagrams at `mbps` to a UDP port, starting at sequence `first`.
pub fn send_udp(port: u16, first: u64, count: u64, mbps: f64) {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind sender");
    let per_sec = mbps * 1e6 / 8.0 / PKT as f64;
    let start = Instant::now();
    for i in 0..count {
        let due = start + Duration::from_secs_f64(i as f64 / per_sec);
        if let Some(w) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(w);
        }
        s.send_to(&datagram(first + i), ("127.0.0.1", port))
            .expect("send");
    }
}

/// Runs `send` while every sink collects on its own thread; returns what each got.
pub fn collect_all<T>(sinks: &[&UdpSink], send: impl FnOnce() -> T) -> (Vec<Vec<Vec<u8>>>, T) {
    std::thread::scope(|scope| {
        let collectors: Vec<_> = sinks
            .iter()
            .map(|s| scope.spawn(|| s.collect(Duration::from_secs(5), Duration::from_millis(1500))))
            .collect();
        let sent = send();
        (
            collectors
                .into_iter()
                .map(|c| c.join().expect("collector thread"))
                .collect(),
            sent,
        )
    })
}

/// Exactly the `count` datagrams from `first` on, in order and byte for byte; sequence numbers
/// outside that range (warm-up, tail) are ignored.
pub fn assert_range_exact(what: &str, got: &[Vec<u8>], first: u64, count: u64) {
    let fresh: Vec<&Vec<u8>> = got
        .iter()
        .filter(|d| d.len() >= 8 && (first..first + count).contains(&seq_of(d)))
        .collect();
    assert_eq!(
        fresh.len() as u64,
        count,
        "{what}: packets out != packets in (first seq {first})"
    );
    for (i, d) in fresh.iter().enumerate() {
        assert_eq!(
            *d,
            &datagram(first + i as u64),
            "{what}: packet {i} differs or is out of order"
        );
    }
}

/// Collects datagrams on a UDP port until `quiet` passes without one.
pub struct UdpSink {
    pub sock: UdpSocket,
    pub port: u16,
}

impl UdpSink {
    pub fn new() -> UdpSink {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind sink");
        let port = sock.local_addr().expect("addr").port();
        set_rcvbuf(&sock);
        UdpSink { sock, port }
    }

    /// Runs `send` while collecting on another thread; returns what arrived and what `send`
    /// returned.
    pub fn collect_during<T>(&self, send: impl FnOnce() -> T) -> (Vec<Vec<u8>>, T) {
        std::thread::scope(|scope| {
            let collector =
                scope.spawn(|| self.collect(Duration::from_secs(5), Duration::from_millis(1500)));
            let sent = send();
            (collector.join().expect("collector thread"), sent)
        })
    }

    /// Like `collect`, with each datagram's arrival time.
    pub fn collect_timed(&self, first_wait: Duration, quiet: Duration) -> Vec<(Instant, Vec<u8>)> {
        let mut out = Vec::new();
        let mut buf = [0u8; 2048];
        self.sock
            .set_read_timeout(Some(first_wait))
            .expect("timeout");
        while let Ok(n) = self.sock.recv(&mut buf) {
            out.push((Instant::now(), buf[..n].to_vec()));
            self.sock.set_read_timeout(Some(quiet)).expect("timeout");
        }
        out
    }

    pub fn collect(&self, first_wait: Duration, quiet: Duration) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut buf = [0u8; 2048];
        self.sock
            .set_read_timeout(Some(first_wait))
            .expect("timeout");
        while let Ok(n) = self.sock.recv(&mut buf) {
            out.push(buf[..n].to_vec());
            self.sock.set_read_timeout(Some(quiet)).expect("timeout");
        }
        out
    }
}

/// A relay may hand the player a burst (packets held behind a gap that was recovered late
/// are released together); the default 208 KB socket buffer would drop part of it here and
/// blame the relay. Ask for 4 MB (the kernel caps it at net.core.rmem_max).
fn set_rcvbuf(s: &UdpSocket) {
    use std::os::fd::AsRawFd;
    let size: libc::c_int = 4 << 20;
    // SAFETY: the fd is open and owned by `s`; the value is a c_int of the size given.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

pub fn seq_of(d: &[u8]) -> u64 {
    let mut s = [0u8; 8];
    s.copy_from_slice(&d[..8]);
    u64::from_be_bytes(s)
}

/// A live stream into the relay's SRT listener: datagrams at `kbps` from a thread into an
/// srt-live-transmit caller, until dropped (or `stop_sender` kills the caller, like a camera
/// that went away).
pub struct LiveSource {
    pub sender: Option<Proc>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    pump: Option<std::thread::JoinHandle<()>>,
}

impl LiveSource {
    pub fn srt(relay_port: u16, kbps: u64) -> LiveSource {
        Self::srt_with(relay_port, kbps, "")
    }

    /// `params` is appended to the caller's URI (`&passphrase=...`).
    pub fn srt_with(relay_port: u16, kbps: u64, params: &str) -> LiveSource {
        let udp = free_port();
        let sender = slt(&[
            &format!("udp://127.0.0.1:{udp}"),
            &format!("srt://127.0.0.1:{relay_port}?mode=caller{params}"),
        ]);
        Self::through(sender, udp, kbps)
    }

    /// The same over RIST (main profile), through librist's ristsender.
    pub fn rist(relay_port: u16, kbps: u64) -> LiveSource {
        let udp = free_port();
        let sender = rist_tool(
            "ristsender",
            &[
                "-i",
                &format!("udp://@127.0.0.1:{udp}"),
                "-o",
                &format!("rist://127.0.0.1:{relay_port}"),
            ],
        );
        Self::through(sender, udp, kbps)
    }

    /// Datagrams at `kbps` into `udp`, where `sender` takes them to the relay.
    fn through(sender: Proc, udp: u16, kbps: u64) -> LiveSource {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let pump = std::thread::spawn(move || {
            let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
            let gap = Duration::from_secs_f64(PKT as f64 * 8.0 / (kbps as f64 * 1000.0));
            let (mut seq, start) = (0u64, Instant::now());
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = sock.send_to(&datagram(seq), ("127.0.0.1", udp));
                seq += 1;
                let due = start + gap * seq as u32;
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
            }
        });
        LiveSource {
            sender: Some(sender),
            stop,
            pump: Some(pump),
        }
    }

    /// Kills the SRT sender: the relay's input loses its peer.
    pub fn stop_sender(&mut self) {
        self.sender.take();
    }
}

impl Drop for LiveSource {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(p) = self.pump.take() {
            let _ = p.join();
        }
    }
}

/// A checker for the part of JSON Schema (2020-12) that `docs/ws-schema.json` uses: `type`,
/// `const`, `enum`, `required`, `properties`, `additionalProperties: false`, `items`, `oneOf`,
/// `$ref` to `#/$defs/...`, `minimum`, `maximum`. Any other keyword fails loudly, so the schema
/// cannot quietly grow past what is checked.
pub fn schema_errors(
    root: &serde_json::Value,
    schema: &serde_json::Value,
    v: &serde_json::Value,
    at: &str,
) -> Vec<String> {
    use serde_json::Value;
    let mut errs = Vec::new();
    let Some(obj) = schema.as_object() else {
        return vec![format!("{at}: schema is not an object")];
    };
    for (k, s) in obj {
        match k.as_str() {
            "$schema" | "$id" | "title" | "description" | "$defs" => {}
            "$ref" => {
                let name = s
                    .as_str()
                    .and_then(|r| r.strip_prefix("#/$defs/"))
                    .expect("only #/$defs/ references");
                errs.extend(schema_errors(root, &root["$defs"][name], v, at));
            }
            "type" => {
                let ok = match s.as_str().expect("type is a string") {
                    "object" => v.is_object(),
                    "array" => v.is_array(),
                    "string" => v.is_string(),
                    "boolean" => v.is_boolean(),
                    "integer" => v.is_u64() || v.is_i64(),
                    "number" => v.is_number(),
                    other => panic!("unsupported type {other}"),
                };
                if !ok {
                    errs.push(format!("{at}: expected {s}, got {v}"));
                }
            }
            "const" => {
                if v != s {
                    errs.push(format!("{at}: expected {s}, got {v}"));
                }
            }
            "enum" => {
                if !s.as_array().expect("enum array").contains(v) {
                    errs.push(format!("{at}: {v} not in {s}"));
                }
            }
            "minimum" => {
                if v.as_f64().is_some_and(|x| x < s.as_f64().expect("number")) {
                    errs.push(format!("{at}: {v} < {s}"));
                }
            }
            "maximum" => {
                if v.as_f64().is_some_and(|x| x > s.as_f64().expect("number")) {
                    errs.push(format!("{at}: {v} > {s}"));
                }
            }
            "required" => {
                if let Some(o) = v.as_object() {
                    for r in s.as_array().expect("required array") {
                        let r = r.as_str().expect("name");
                        if !o.contains_key(r) {
                            errs.push(format!("{at}: missing {r}"));
                        }
                    }
                }
            }
            "properties" => {
                if let Some(o) = v.as_object() {
                    for (name, value) in o {
                        if let Some(ps) = s.get(name) {
                            errs.extend(schema_errors(root, ps, value, &format!("{at}.{name}")));
                        }
                    }
                }
            }
            "additionalProperties" => {
                assert_eq!(s, &Value::Bool(false), "only additionalProperties: false");
                if let Some(o) = v.as_object() {
                    for name in o.keys() {
                        if obj.get("properties").and_then(|p| p.get(name)).is_none() {
                            errs.push(format!("{at}: undocumented field {name}"));
                        }
                    }
                }
            }
            "items" => {
                if let Some(a) = v.as_array() {
                    for (i, item) in a.iter().enumerate() {
                        errs.extend(schema_errors(root, s, item, &format!("{at}[{i}]")));
                    }
                }
            }
            "oneOf" => {
                let matching: Vec<Vec<String>> = s
                    .as_array()
                    .expect("oneOf array")
                    .iter()
                    .map(|alt| schema_errors(root, alt, v, at))
                    .collect();
                let ok = matching.iter().filter(|e| e.is_empty()).count();
                if ok != 1 {
                    errs.push(format!(
                        "{at}: matches {ok} of oneOf; closest: {:?}",
                        matching.iter().min_by_key(|e| e.len())
                    ));
                }
            }
            other => panic!("schema keyword {other} is not supported by this checker"),
        }
    }
    errs
}

/// `docs/ws-schema.json`, parsed.
pub fn feed_schema() -> serde_json::Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/ws-schema.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("read docs/ws-schema.json"))
        .expect("docs/ws-schema.json is JSON")
}
