//! Child processes (edges and relays), free ports, /proc readings and a tiny HTTP client.

use anyhow::{bail, Context, Result};
use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free UDP port on loopback (also free for TCP, for the HTTP address).
pub fn free_port() -> u16 {
    loop {
        let Ok(u) = UdpSocket::bind("127.0.0.1:0") else {
            continue;
        };
        let Ok(addr) = u.local_addr() else { continue };
        if std::net::TcpListener::bind(("127.0.0.1", addr.port())).is_ok() {
            return addr.port();
        }
    }
}

/// Two free consecutive ports, the first even (RIST simple profile: RTP on P, RTCP on P+1).
pub fn free_port_pair() -> u16 {
    loop {
        let p = free_port();
        if p & 1 == 0 && p < u16::MAX && UdpSocket::bind(("127.0.0.1", p + 1)).is_ok() {
            return p;
        }
    }
}

/// A child killed (SIGTERM, then SIGKILL) and reaped on drop; its stderr goes to a log file.
pub struct Proc {
    pub name: String,
    child: Child,
    pub log: PathBuf,
}

impl Proc {
    pub fn spawn(
        name: &str,
        program: &str,
        args: &[String],
        logdir: &std::path::Path,
    ) -> Result<Proc> {
        let log = logdir.join(format!("{name}.log"));
        let file =
            std::fs::File::create(&log).with_context(|| format!("create {}", log.display()))?;
        let child = Command::new(program)
            .args(args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .with_context(|| format!("cannot start {program} (is it installed?)"))?;
        Ok(Proc {
            name: name.to_owned(),
            child,
            log,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails if the process has already exited (bad flags, port taken).
    pub fn check_alive(&mut self) -> Result<()> {
        if let Ok(Some(status)) = self.child.try_wait() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: String = log.lines().rev().take(5).collect::<Vec<_>>().join(" | ");
            bail!("{} exited early ({status}): {tail}", self.name);
        }
        Ok(())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // SAFETY: plain kill(2) on our own child's pid, which we have not reaped yet.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_millis(1500);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU time (user + system) of a process so far, in seconds.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Some(ticks as f64 / hz)
}

/// Peak resident set size (VmHWM), in megabytes.
pub fn peak_rss_mb(pid: u32) -> Option<f64> {
    status_mb(pid, "VmHWM")
}

/// Anonymous resident memory (RssAnon: heap, stacks, buffers), in megabytes.
pub fn anon_rss_mb(pid: u32) -> Option<f64> {
    status_mb(pid, "RssAnon")
}

/// A `kB` field of `/proc/PID/status`, in megabytes.
fn status_mb(pid: u32, key: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status
        .lines()
        .find(|l| l.strip_prefix(key).is_some_and(|r| r.starts_with(':')))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// `GET path` over HTTP/1.1; the status code, or None if nothing answered.
pub fn http_status(port: u16, path: &str, timeout: Duration) -> Option<u16> {
    http_get(port, path, timeout).map(|(code, _)| code)
}

/// `GET path` over HTTP/1.1; the status code and the body.
pub fn http_get(port: u16, path: &str, timeout: Duration) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), timeout).ok()?;
    s.set_read_timeout(Some(timeout)).ok()?;
    s.set_nodelay(true).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut body = Vec::new();
    s.read_to_end(&mut body).ok()?;
    let text = String::from_utf8_lossy(&body);
    let code = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    Some((code, body.to_owned()))
}

/// Sum of every sample of a Prometheus metric whose series starts with `prefix` (name and,
/// optionally, the start of its labels).
pub fn metric_sum(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Finds a program: the path given, else next to this binary (cargo puts stream-relay
/// there), else on PATH.
pub fn locate(program: &str) -> String {
    if program.contains('/') {
        return program.to_owned();
    }
    if let Ok(me) = std::env::current_exe() {
        if let Some(dir) = me.parent() {
            let p = dir.join(program);
            if p.is_file() {
                return p.to_string_lossy().into_owned();
            }
        }
    }
    program.to_owned()
}
