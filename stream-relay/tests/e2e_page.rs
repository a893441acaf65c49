//! The monitoring page (`GET /`) in a real browser: headless Chromium (Debian's `chromium`),
//! driven through the DevTools protocol, shows a live SRT stream from srt-live-transmit as up
//! with a moving bitrate, shows it down when the sender is killed, notices the relay going
//! away and reconnects by itself when it comes back. Screenshots (laptop and phone sizes) are
//! saved under `$CARGO_TARGET_TMPDIR/monitor-page/` as test artifacts.

mod common;

use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

struct Browser {
    _proc: Proc,
    cdp: Ws,
    id: u64,
    _profile: TempDir,
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Browser {
    async fn open(url: &str) -> Browser {
        let profile = std::env::temp_dir().join(format!(
            "stream-relay-chromium-{}-{}",
            std::process::id(),
            free_port()
        ));
        let _ = std::fs::remove_dir_all(&profile);
        std::fs::create_dir_all(&profile).expect("profile dir");
        let proc = Proc(
            Command::new("chromium")
                .args([
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--no-first-run",
                    "--hide-scrollbars",
                    "--window-size=1280,800",
                    "--remote-debugging-port=0",
                    &format!("--user-data-dir={}", profile.display()),
                    url,
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn chromium"),
        );
        // Chromium writes the port it chose into the profile.
        let deadline = Instant::now() + Duration::from_secs(30);
        let port: u16 = loop {
            if let Some(p) = std::fs::read_to_string(profile.join("DevToolsActivePort"))
                .ok()
                .and_then(|t| t.lines().next()?.trim().parse().ok())
            {
                break p;
            }
            assert!(Instant::now() < deadline, "chromium did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let page = loop {
            let targets = target_list(port).await;
            let found = targets.as_array().into_iter().flatten().find(|t| {
                t["type"] == "page" && t["url"].as_str().is_some_and(|u| u.starts_with(url))
            });
            if let Some(t) = found {
                break t["webSocketDebuggerUrl"]
                    .as_str()
                    .expect("ws url")
                    .to_owned();
            }
            assert!(Instant::now() < deadline, "no page target: {targets}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let (cdp, _) = tokio_tungstenite::connect_async(&page)
            .await
            .unwrap_or_else(|e| panic!("devtools websocket {page} (port {port}): {e}"));
        Browser {
            _proc: proc,
            cdp,
            id: 0,
            _profile: TempDir(profile),
        }
    }

    async fn call(&mut self, method: &str, params: Value) -> Value {
        self.id += 1;
        let id = self.id;
        let msg = json!({"id": id, "method": method, "params": params}).to_string();
        self.cdp
            .send(Message::Text(msg.into()))
            .await
            .expect("cdp send");
        loop {
            let m = tokio::time::timeout(Duration::from_secs(20), self.cdp.next())
                .await
                .expect("devtools answers")
                .expect("devtools open")
                .expect("devtools message");
            if let Message::Text(t) = m {
                let v: Value = serde_json::from_str(t.as_str()).expect("json");
                if v["id"] == id {
                    assert!(v.get("error").is_none(), "{method}: {v}");
                    return v["result"].clone();
                }
            }
        }
    }

    /// Evaluates a JavaScript expression in the page and returns its value.
    async fn eval(&mut self, expr: &str) -> Value {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expr, "returnByValue": true}),
            )
            .await;
        r["result"]["value"].clone()
    }

    /// What the page shows for the route's input.
    async fn input(&mut self) -> Value {
        self.eval(
            r#"(() => {
                const l = document.querySelector('[data-link="main/input"]');
                return {
                    feed: document.body.dataset.feed,
                    state: l ? l.dataset.state : null,
                    badge: l ? l.querySelector('.state').textContent : null,
                    bitrate: l ? l.querySelector('.bitrate').textContent : null,
                    kbps: l ? Number(l.querySelector('.bitrate').dataset.kbps || 0) : 0,
                    events: document.getElementById('events').innerText,
                };
            })()"#,
        )
        .await
    }

    async fn wait(&mut self, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let v = self.input().await;
            if ok(&v) {
                return v;
            }
            assert!(Instant::now() < deadline, "page never showed {what}: {v}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn screenshot(&mut self, name: &str) -> std::path::PathBuf {
        let r = self
            .call("Page.captureScreenshot", json!({"format": "png"}))
            .await;
        let png = base64_decode(r["data"].as_str().expect("screenshot data"));
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("monitor-page");
        std::fs::create_dir_all(&dir).expect("artifact dir");
        let path = dir.join(name);
        std::fs::write(&path, png).expect("write screenshot");
        eprintln!("screenshot: {}", path.display());
        path
    }
}

/// DevTools' target list. Chromium keeps the connection open, so read by Content-Length.
async fn target_list(port: u16) -> Value {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return Value::Null;
    };
    // DevTools builds the URLs it lists from this Host header.
    let req =
        format!("GET /json/list HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).await.is_err() {
        return Value::Null;
    }
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let text = String::from_utf8_lossy(&buf).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len = head.lines().find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")?
                    .trim()
                    .parse::<usize>()
                    .ok()
            });
            if len.is_some_and(|n| body.len() >= n) {
                return serde_json::from_str(body).unwrap_or(Value::Null);
            }
        }
        match tokio::time::timeout(Duration::from_secs(5), s.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => return Value::Null,
        }
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => (c - b'A') as u32,
            b'a'..=b'z' => (c - b'a' + 26) as u32,
            b'0'..=b'9' => (c - b'0' + 52) as u32,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c}"),
        }
    };
    let bytes: Vec<u8> = s.bytes().filter(|&c| c != b'=' && c != b'\n').collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= val(c) << (18 - 6 * i);
        }
        for i in 0..chunk.len().saturating_sub(1) {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_shows_a_live_stream_going_down_and_the_relay_coming_back() {
    if !require("srt-live-transmit") || !require("chromium") {
        return;
    }
    let input = free_port();
    let sink = UdpSink::new();
    let input_uri = format!("srt://:{input}?mode=listener&passphrase=correct-horse-battery");
    let output_uri = format!("udp://127.0.0.1:{}", sink.port);
    let args = ["srt", "-i", &input_uri, "-o", &output_uri];
    let relay = Relay::start(&args);
    let http = relay.http;
    let mut src = LiveSource::srt_with(input, 3000, "&passphrase=correct-horse-battery");

    let url = format!("http://127.0.0.1:{http}/");
    let mut b = Browser::open(&url).await;

    // Live: the input is up and the bitrate shown moves.
    let up = b
        .wait("the input up with a bitrate", |v| {
            v["state"] == "connected" && v["badge"] == "UP" && v["kbps"].as_f64() > Some(1000.0)
        })
        .await;
    assert_eq!(up["feed"], "live");
    let mut shown = std::collections::BTreeSet::new();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) && shown.len() < 3 {
        shown.insert(b.input().await["bitrate"].as_str().unwrap_or("").to_owned());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(shown.len() >= 2, "the bitrate shown never moved: {shown:?}");
    let history = b.eval(r#"links.get("main/input").history.length"#).await;
    assert!(history.as_u64() >= Some(3), "bitrate history: {history}");
    let text = b.eval("document.body.innerText").await;
    assert!(
        !text.as_str().unwrap().contains("correct-horse-battery"),
        "secret on the page"
    );
    // Nothing loaded from anywhere but the relay itself.
    let foreign = b
        .eval(
            "performance.getEntriesByType('resource').map(e => e.name)\
             .filter(n => !n.startsWith(location.origin) && !n.startsWith('ws://' + location.host))",
        )
        .await;
    assert_eq!(foreign, json!([]), "external requests");
    b.screenshot("1-live.png").await;

    // The camera goes away: the page shows the input down, and the event.
    src.stop_sender();
    let down = b
        .wait("the input down", |v| {
            v["state"] != "connected" && v["badge"] == "DOWN"
        })
        .await;
    assert!(
        down["events"].as_str().unwrap().contains("disconnected"),
        "{down}"
    );
    b.screenshot("2-input-down.png").await;

    // Phone-sized.
    b.call(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": true}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let overflow = b
        .eval("document.documentElement.scrollWidth <= window.innerWidth + 1")
        .await;
    assert_eq!(overflow, json!(true), "the page is wider than a phone");
    b.screenshot("3-phone.png").await;

    // The relay restarts: the page notices, then reconnects by itself.
    drop(relay);
    b.wait("the feed down", |v| v["feed"] == "down").await;
    let _relay = Relay::start_at(http, &args, &[]);
    let _src = LiveSource::srt_with(input, 3000, "&passphrase=correct-horse-battery");
    b.wait("the feed back with the input up", |v| {
        v["feed"] == "live" && v["state"] == "connected"
    })
    .await;
    b.screenshot("4-relay-back.png").await;
}
