//! `[[srt_server]]`: one shared SRT listener, many streams chosen by the caller's Stream ID,
//! driven end to end by real peers (srt-live-transmit, ffmpeg with libsrt) over loopback; with
//! what rides on it: `/stats` in SRT Live Server's shape (read as NOALBS reads it), the idle
//! input state, and servers created and removed through `/api/servers`.
//!
//! How the tools put a Stream ID on the wire (checked with srt-live-transmit 1.5.1 and ffmpeg
//! 5.1): both take the `streamid=` query value verbatim, up to the next `&`, with no
//! percent-decoding and no special meaning for `#`. So the access-control form is written raw,
//! `srt://host:port?streamid=#!::r=live/feed1,m=publish` (quote it in a shell, where `#` and
//! `!` are special). Percent-encoding it (`%23%21%3A%3Ar%3D...`) does NOT work with either
//! tool: the caller sends the `%` text itself, which the relay reads as a bare name it does not
//! serve (refused as `unknown_stream`). A Stream ID cannot contain `&` in either tool's URI.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A directory for one test's config and captures, removed at the end.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let p = std::env::temp_dir().join(format!(
            "stream-relay-server-{tag}-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&p).expect("scratch dir");
        Scratch(p)
    }

    fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A relay running `run --config` with one server `irl` on `port` (listen URI query `listen`,
/// e.g. `?passphrase=...`), an optional `default_stream`, and `routes` (TOML).
fn start(
    dir: &Scratch,
    port: u16,
    listen: &str,
    default_stream: Option<&str>,
    routes: &str,
    env: &[(&str, &str)],
) -> Relay {
    let default = default_stream
        .map(|d| format!("default_stream = \"{d}\"\n"))
        .unwrap_or_default();
    let text = format!(
        "[[srt_server]]\nname = \"irl\"\nlisten = \"srt://:{port}{listen}\"\n{default}\n{routes}"
    );
    let cfg = dir.file("relay.toml");
    std::fs::write(&cfg, text).expect("write config");
    Relay::start_env(&["run", "--config", cfg.to_str().expect("utf-8 path")], env)
}

/// A server route serving `stream` with extra TOML lines.
fn route(name: &str, stream: Option<&str>, extra: &str) -> String {
    let stream = stream
        .map(|s| format!("stream = \"{s}\"\n"))
        .unwrap_or_default();
    format!("\n[[route]]\nname = \"{name}\"\nserver = \"irl\"\n{stream}{extra}")
}

/// The URI a caller dials: the Stream ID verbatim (see the module comment), then `params`
/// (`&passphrase=...`). `None`: no Stream ID at all.
fn caller_uri(port: u16, streamid: Option<&str>, params: &str) -> String {
    let mut query: Vec<String> = streamid
        .map(|s| format!("streamid={s}"))
        .into_iter()
        .collect();
    query.extend(
        params
            .split('&')
            .filter(|p| !p.is_empty())
            .map(str::to_owned),
    );
    if query.is_empty() {
        format!("srt://127.0.0.1:{port}")
    } else {
        format!("srt://127.0.0.1:{port}?{}", query.join("&"))
    }
}

/// srt-live-transmit publishing what arrives on `udp` to the relay.
struct Publisher {
    proc: Proc,
    udp: u16,
}

/// `reconnect: false` makes srt-live-transmit exit when its session is closed instead of
/// calling again at once (its default): needed where a closed session must stay closed.
fn publisher(port: u16, streamid: Option<&str>, params: &str, reconnect: bool) -> Publisher {
    let udp = free_port();
    let src = format!("udp://127.0.0.1:{udp}");
    let dst = caller_uri(port, streamid, params);
    let mut args = vec![src.as_str(), dst.as_str()];
    if !reconnect {
        args.push("-a:no");
    }
    Publisher {
        proc: slt(&args),
        udp,
    }
}

/// srt-live-transmit playing a stream from the relay into a UDP sink.
struct Player {
    proc: Proc,
    sink: UdpSink,
}

fn player(port: u16, streamid: Option<&str>, params: &str) -> Player {
    let sink = UdpSink::new();
    let proc = slt(&[
        &caller_uri(port, streamid, params),
        &format!("udp://127.0.0.1:{}", sink.port),
    ]);
    Player { proc, sink }
}

fn peers_in(route: &str) -> String {
    format!(r#"relay_peers{{route="{route}",side="input",output=""}}"#)
}

fn players(route: &str) -> String {
    format!(r#"relay_peers{{route="{route}",side="output",output="players"}}"#)
}

fn reconnects_in(route: &str) -> String {
    format!(r#"relay_reconnects_total{{route="{route}",side="input",output=""}}"#)
}

fn reconnects_players(route: &str) -> String {
    format!(r#"relay_reconnects_total{{route="{route}",side="output",output="players"}}"#)
}

fn rejected(reason: &str) -> String {
    format!(r#"relay_callers_rejected_total{{reason="{reason}"}}"#)
}

/// Waits until `series` reaches `at_least`, failing with the relay's log otherwise.
fn wait_for(relay: &Relay, series: &str, at_least: f64) {
    let v = relay.wait_metric(series, at_least, Duration::from_secs(10));
    assert!(
        v >= at_least,
        "{series} = {v}, expected >= {at_least}; log:\n{}",
        relay.logs()
    );
}

/// Every datagram a player got carries a sequence number of its own stream (`first..first +
/// span`): nothing leaked in from another stream on the same port.
fn assert_only_from(what: &str, got: &[Vec<u8>], first: u64, span: u64) {
    for d in got {
        let seq = seq_of(d);
        assert!(
            d.len() == PKT && (first..first + span).contains(&seq),
            "{what}: a datagram of another stream (seq {seq}, {} bytes)",
            d.len()
        );
    }
}

fn assert_still_running(what: &str, p: &mut Proc) {
    assert!(
        p.0.try_wait().expect("try_wait").is_none(),
        "{what} exited: it must stay connected throughout"
    );
}

/// Datagrams `first..` into `udp` every 10 ms until dropped. A publisher that names no mode
/// (bare name, no Stream ID) must send within a second of connecting to be taken for one, as
/// an encoder does; these warm-up numbers lie outside the measured range.
struct Pump {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Pump {
    fn start(udp: u16, first: u64) -> Pump {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
            let mut seq = first;
            while !flag.load(Ordering::Relaxed) {
                let _ = sock.send_to(&datagram(seq), ("127.0.0.1", udp));
                seq += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        Pump {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Pump {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// ffmpeg encoding 4 s of the test picture once and muxing it twice, identically: to the relay
/// at `url` and into `copy`, the reference for what a player must receive.
fn ffmpeg_publisher(url: &str, copy: &Path) -> Proc {
    Proc(
        Command::new("ffmpeg")
            .args(["-nostdin", "-loglevel", "error", "-y", "-re", "-f", "lavfi"])
            .args(["-i", "testsrc=size=320x240:rate=25", "-t", "4"])
            .args([
                "-c:v",
                "mpeg2video",
                "-b:v",
                "1M",
                "-map",
                "0:v",
                "-f",
                "tee",
            ])
            .arg(format!("[f=mpegts]{url}|[f=mpegts]{}", copy.display()))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn ffmpeg"),
    )
}

#[test]
fn two_publishers_and_three_players_share_one_port() {
    if !require("srt-live-transmit") || !require("ffmpeg") || !require("ffprobe") {
        return;
    }
    let dir = Scratch::new("share");
    let port = free_port();
    let routes = route("cam1", Some("live/feed1"), "") + &route("cam2", None, "");
    let relay = start(&dir, port, "", None, &routes, &[]);
    // Two players of feed1 in two dialects, one of cam2 in a third.
    let p_sls = player(port, Some("play/live/feed1"), "");
    let p_ac = player(port, Some("#!::r=live/feed1"), "");
    let p_mtx = player(port, Some("read:cam2"), "");
    let feed1 = publisher(port, Some("publish/live/feed1"), "", true);
    wait_for(&relay, &peers_in("cam1"), 1.0);
    wait_for(&relay, &players("cam1"), 2.0);
    wait_for(&relay, &players("cam2"), 1.0);
    let (_, health) = http_get(relay.http, "/health").expect("health");
    let h: serde_json::Value = serde_json::from_str(&health).expect("health is JSON");
    let players_of = |route: &str| {
        h["routes"]
            .as_array()
            .and_then(|rs| rs.iter().find(|r| r["name"] == route))
            .and_then(|r| r["outputs"].as_array())
            .and_then(|os| os.iter().find(|o| o["name"] == "players"))
            .map(|o| o["peers"].clone())
    };
    assert_eq!(players_of("cam1"), Some(2.into()), "{health}");
    assert_eq!(players_of("cam2"), Some(1.into()), "{health}");

    let ts = dir.file("cam2-sent.ts");
    let count = 2000; // ~4.2 s at 5 Mbps, while ffmpeg publishes cam2 for 4 s
    let t = Instant::now();
    let (got, ffmpeg) = collect_all(&[&p_sls.sink, &p_ac.sink, &p_mtx.sink], || {
        let ff = ffmpeg_publisher(
            &caller_uri(port, Some("#!::r=cam2,m=publish"), "pkt_size=1316"),
            &ts,
        );
        send_udp(feed1.udp, 0, count, 5.0);
        let mut ff = ff;
        let status = ff.0.wait().expect("wait ffmpeg");
        let mut err = String::new();
        if let Some(mut e) = ff.0.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut err);
        }
        (status, err)
    });
    eprintln!(
        "two publishers, three players: streamed in {:?}",
        t.elapsed()
    );
    assert!(ffmpeg.0.success(), "ffmpeg publisher failed: {}", ffmpeg.1);
    assert_range_exact("feed1 played as play/live/feed1", &got[0], 0, count);
    assert_range_exact("feed1 played as #!::r=live/feed1", &got[1], 0, count);
    assert_only_from("feed1 play/", &got[0], 0, count);
    assert_only_from("feed1 #!::", &got[1], 0, count);

    // cam2: the player joined before ffmpeg called, so it gets ffmpeg's MPEG-TS from the first
    // byte on. ffmpeg's last packets may be lost when it closes (live mode: no linger; ffmpeg
    // straight into srt-live-transmit loses ~7% of this 4 s stream that way), so the check is
    // "a prefix of what ffmpeg wrote, and nearly all of it".
    let sent = std::fs::read(&ts).expect("ffmpeg's copy");
    let recv: Vec<u8> = got[2].concat();
    assert!(
        got[2].iter().all(|d| d.len() <= PKT && d.len() % 188 == 0),
        "cam2 player: not whole TS packets"
    );
    assert!(
        recv.len() >= sent.len() * 9 / 10,
        "cam2 player got {} of {} bytes; log:\n{}",
        recv.len(),
        sent.len(),
        relay.logs()
    );
    let differs = recv.iter().zip(&sent).position(|(a, b)| a != b);
    assert_eq!(
        differs, None,
        "cam2 player: bytes differ from what ffmpeg sent (offset)"
    );
    eprintln!(
        "cam2: the player got {} of the {} bytes ffmpeg sent",
        recv.len(),
        sent.len()
    );
    let recv_ts = dir.file("cam2-received.ts");
    std::fs::write(&recv_ts, &recv).expect("write capture");
    assert_ffprobe_sees_test_picture(recv_ts.to_str().expect("path"), &relay);
    assert_eq!(
        relay.metric(&rejected("unknown_stream")),
        0.0,
        "nobody was refused"
    );
}

#[test]
fn every_stream_id_dialect_publishes_and_plays() {
    if !require("srt-live-transmit") {
        return;
    }
    let dir = Scratch::new("dialects");
    let port = free_port();
    let (pub_pw, read_pw) = ("pub-pw-Xq7", "read-pw-Zk3");
    let routes = [
        route("ac", Some("ac/one"), ""),
        route("sls", Some("app/sls"), ""),
        route("mtx", None, ""),
        route(
            "mtxauth",
            None,
            &format!(
                "publish_user = \"pu\"\npublish_password = \"{pub_pw}\"\nplay_user = \"ru\"\nplay_password = \"{read_pw}\"\n"
            ),
        ),
        route("bare", None, ""),
        route("dflt", None, ""),
        route("slsdom", Some("live/dom"), ""),
    ]
    .concat();
    let relay = start(&dir, port, "", Some("dflt"), &routes, &[]);
    let publish_mtxauth = format!("publish:mtxauth:pu:{pub_pw}");
    let read_mtxauth = format!("read:mtxauth:ru:{read_pw}");
    // (route, publisher's Stream ID, player's Stream ID); None: no Stream ID at all.
    let cases: [(&str, Option<&str>, Option<&str>); 7] = [
        (
            "ac",
            Some("#!::r=ac/one,m=publish"),
            Some("#!::r=ac/one,m=request"),
        ),
        ("sls", Some("publish/app/sls"), Some("play/app/sls")),
        ("mtx", Some("publish:mtx"), Some("read:mtx")),
        ("mtxauth", Some(&publish_mtxauth), Some(&read_mtxauth)),
        // A bare name and no Stream ID: the relay tells the publisher by its sending at once.
        ("bare", Some("bare"), Some("bare")),
        ("dflt", None, None),
        // SRT Live Server's original DOMAIN/APP/STREAM form with its default domains.
        (
            "slsdom",
            Some("uplive.sls.com/live/dom"),
            Some("live.sls.com/live/dom"),
        ),
    ];
    // Stream i uses sequence numbers i * 1_000_000 + ...: measured from 0, warm-up from 500_000.
    let base = |i: usize| i as u64 * 1_000_000;
    let mut pumps = Vec::new();
    let mut pubs = Vec::new();
    let mut plays = Vec::new();
    for (i, (_, publish, play)) in cases.iter().enumerate() {
        let udp = free_port();
        pumps.push(Pump::start(udp, base(i) + 500_000));
        let dst = caller_uri(port, *publish, "");
        pubs.push(slt(&[&format!("udp://127.0.0.1:{udp}"), &dst]));
        plays.push((player(port, *play, ""), udp));
    }
    for (route, _, _) in &cases {
        wait_for(&relay, &peers_in(route), 1.0);
        wait_for(&relay, &players(route), 1.0);
    }
    drop(pumps);
    std::thread::sleep(Duration::from_millis(300));

    let count = 400; // ~2.1 s at 2 Mbps, all seven at once
    let sinks: Vec<&UdpSink> = plays.iter().map(|(p, _)| &p.sink).collect();
    let t = Instant::now();
    let (got, ()) = collect_all(&sinks, || {
        std::thread::scope(|s| {
            for (i, (_, udp)) in plays.iter().enumerate() {
                let udp = *udp;
                s.spawn(move || send_udp(udp, base(i), count, 2.0));
            }
        });
    });
    eprintln!("seven dialects streamed in {:?}", t.elapsed());
    for (i, (route, publish, play)) in cases.iter().enumerate() {
        let what = format!("{route} ({publish:?} -> {play:?})");
        assert_range_exact(&what, &got[i], base(i), count);
        assert_only_from(&what, &got[i], base(i), 1_000_000);
    }
    let m = relay.metrics();
    for (route, _, _) in &cases {
        assert_eq!(
            metric_value(&m, &players(route)),
            1.0,
            "{route}: one player"
        );
        assert_eq!(
            metric_value(&m, &reconnects_in(route)),
            0.0,
            "{route}: one publisher session, never taken for a player and back"
        );
    }

    // Credentials: wrong, missing, or given for the other side are refused.
    for (what, streamid, as_publisher) in [
        (
            "wrong read password",
            "read:mtxauth:ru:WRONG-pw-1".to_owned(),
            false,
        ),
        (
            "wrong publish password",
            "publish:mtxauth:pu:WRONG-pw-2".to_owned(),
            true,
        ),
        ("wrong user", format!("read:mtxauth:pu:{read_pw}"), false),
        ("no credentials", "read:mtxauth".to_owned(), false),
        (
            "no credentials, access control",
            "#!::r=mtxauth,m=publish".to_owned(),
            true,
        ),
    ] {
        let before = relay.metric(&rejected("bad_credentials"));
        let caller = if as_publisher {
            publisher(port, Some(&streamid), "", true).proc
        } else {
            player(port, Some(&streamid), "").proc
        };
        let after = relay.wait_metric(
            &rejected("bad_credentials"),
            before + 1.0,
            Duration::from_secs(5),
        );
        drop(caller);
        assert!(
            after > before,
            "{what} ({streamid}) not refused as bad_credentials; log:\n{}",
            relay.logs()
        );
    }
    let m = relay.metrics();
    assert_eq!(metric_value(&m, &players("mtxauth")), 1.0, "{m}");
    assert_eq!(metric_value(&m, &reconnects_in("mtxauth")), 0.0, "{m}");
    let logs = relay.logs();
    for secret in [pub_pw, read_pw, "WRONG-pw-1", "WRONG-pw-2"] {
        assert!(!logs.contains(secret), "{secret} in the relay's output");
    }
    assert!(
        logs.contains(r#""reason":"bad_credentials""#),
        "a refusal is logged with its reason"
    );
}

#[test]
fn a_wrong_passphrase_is_refused_while_the_streams_flow_on() {
    if !require("srt-live-transmit") {
        return;
    }
    let dir = Scratch::new("passphrase");
    let port = free_port();
    let (server_pw, pub_pw, play_pw, wrong_pw) = (
        "server-Default-pw-0451",
        "publish-Secret-pw-7719",
        "play-Secret-pw-2284",
        "not-the-Secret-9930",
    );
    // cam1 has a passphrase per side; cam2 uses the server's (the listen URI's) for both.
    let routes = route(
        "cam1",
        None,
        &format!("publish_passphrase = \"{pub_pw}\"\nplay_passphrase = \"{play_pw}\"\n"),
    ) + &route("cam2", None, "");
    let relay = start(
        &dir,
        port,
        &format!("?passphrase={server_pw}"),
        None,
        &routes,
        &[("RUST_LOG", "debug")],
    );
    let pp = |p: &str| format!("&passphrase={p}");
    let play1 = player(port, Some("read:cam1"), &pp(play_pw));
    let play2 = player(port, Some("read:cam2"), &pp(server_pw));
    let pub1 = publisher(port, Some("publish:cam1"), &pp(pub_pw), true);
    let pub2 = publisher(port, Some("publish:cam2"), &pp(server_pw), true);
    for r in ["cam1", "cam2"] {
        wait_for(&relay, &peers_in(r), 1.0);
        wait_for(&relay, &players(r), 1.0);
    }
    // Intruders, calling again and again (srt-live-transmit retries at once) while the
    // streams flow: a publisher with a wrong passphrase (accepted, it would take cam1 over), a
    // player with the publishers' passphrase, and a player with none.
    let _bad_pub = publisher(port, Some("publish:cam1"), &pp(wrong_pw), true);
    let _bad_play = player(port, Some("read:cam1"), &pp(pub_pw));
    let _no_pw = player(port, Some("read:cam2"), "");
    wait_for(&relay, &rejected("bad_passphrase"), 2.0);

    let count = 1500; // ~3.2 s at 5 Mbps each
    let t = Instant::now();
    let (got, ()) = collect_all(&[&play1.sink, &play2.sink], || {
        std::thread::scope(|s| {
            s.spawn(|| send_udp(pub1.udp, 0, count, 5.0));
            s.spawn(|| send_udp(pub2.udp, 1_000_000, count, 5.0));
        });
    });
    eprintln!("two encrypted streams among intruders in {:?}", t.elapsed());
    assert_range_exact("cam1 (own passphrases)", &got[0], 0, count);
    assert_range_exact("cam2 (server passphrase)", &got[1], 1_000_000, count);
    assert_only_from("cam1", &got[0], 0, count);
    assert_only_from("cam2", &got[1], 1_000_000, count);

    let metrics = relay.metrics();
    let bad = metric_value(&metrics, &rejected("bad_passphrase"));
    let missing = metric_value(&metrics, &rejected("passphrase_missing"));
    assert!(bad >= 2.0, "wrong passphrases not counted:\n{metrics}");
    assert!(missing >= 1.0, "missing passphrase not counted:\n{metrics}");
    for r in ["cam1", "cam2"] {
        assert_eq!(
            metric_value(&metrics, &players(r)),
            1.0,
            "{r}: no intruder got in"
        );
        assert_eq!(
            metric_value(&metrics, &reconnects_in(r)),
            0.0,
            "{r}: the publisher was never displaced"
        );
    }
    let (_, health) = http_get(relay.http, "/health").expect("health");
    let (_, routes_api) = http_get(relay.http, "/api/routes").expect("api");
    let (code, _, logs) = relay.terminate();
    assert_eq!(code, 0, "SIGTERM must exit 0");
    assert!(logs.lines().count() > 50, "debug logging should say a lot");
    // libsrt refuses a wrong passphrase after the relay's check: the summary line still names
    // the stream and the peer (never the passphrase, checked below).
    let named = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .any(|v| {
            v["reason"] == "bad_passphrase"
                && v["stream"] == "cam1"
                && v["peer"]
                    .as_str()
                    .is_some_and(|p| p.starts_with("127.0.0.1:"))
        });
    assert!(named, "no bad_passphrase summary naming cam1 in the log");
    for secret in [server_pw, pub_pw, play_pw, wrong_pw] {
        for (what, text) in [
            ("output", &logs),
            ("metrics", &metrics),
            ("/health", &health),
            ("/api/routes", &routes_api),
        ] {
            assert!(!text.contains(secret), "{secret} leaked into the {what}");
        }
    }
}

#[test]
fn players_stay_while_publishers_restart_and_take_over() {
    if !require("srt-live-transmit") {
        return;
    }
    let dir = Scratch::new("takeover");
    let port = free_port();
    let relay = start(
        &dir,
        port,
        "",
        None,
        &route("cam1", Some("live/feed1"), ""),
        &[],
    );
    let mut p1 = player(port, Some("play/live/feed1"), "");
    let mut p2 = player(port, Some("read:live/feed1"), "");
    let (pid1, pid2) = (p1.proc.0.id(), p2.proc.0.id());
    wait_for(&relay, &players("cam1"), 2.0);
    let count = 500; // ~1 s at 5 Mbps per session
    let t = Instant::now();

    // Session 1, then the publisher is killed (no shutdown reaches the relay) and restarted.
    let first = publisher(port, Some("publish/live/feed1"), "", true);
    wait_for(&relay, &peers_in("cam1"), 1.0);
    let (got, ()) = collect_all(&[&p1.sink, &p2.sink], || send_udp(first.udp, 0, count, 5.0));
    for (g, what) in got.iter().zip(["player 1", "player 2"]) {
        assert_range_exact(&format!("{what}, first session"), g, 0, count);
    }
    drop(first);
    let second = publisher(port, Some("publish/live/feed1"), "", false);
    wait_for(&relay, &reconnects_in("cam1"), 1.0);
    let (got, ()) = collect_all(&[&p1.sink, &p2.sink], || {
        send_udp(second.udp, 10_000, count, 5.0)
    });
    for (g, what) in got.iter().zip(["player 1", "player 2"]) {
        assert_range_exact(&format!("{what}, after a restart"), g, 10_000, count);
        assert_only_from(what, g, 10_000, count);
    }

    // Session 3 calls while session 2 is still connected: it takes over at once, and the
    // relay closes session 2 (which, not reconnecting, then exits).
    let mut second = second;
    assert_still_running("the second publisher", &mut second.proc);
    let third = publisher(port, Some("#!::r=live/feed1,m=publish"), "", false);
    wait_for(&relay, &reconnects_in("cam1"), 2.0);
    let (got, ()) = collect_all(&[&p1.sink, &p2.sink], || {
        send_udp(third.udp, 20_000, count, 5.0)
    });
    for (g, what) in got.iter().zip(["player 1", "player 2"]) {
        assert_range_exact(&format!("{what}, after a takeover"), g, 20_000, count);
        assert_only_from(what, g, 20_000, count);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while second.proc.0.try_wait().expect("try_wait").is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        second.proc.0.try_wait().expect("try_wait").is_some(),
        "the displaced publisher's session was not closed; log:\n{}",
        relay.logs()
    );
    eprintln!("restart and takeover in {:?}", t.elapsed());

    // The players were never restarted, and never had to reconnect.
    assert_still_running("player 1", &mut p1.proc);
    assert_still_running("player 2", &mut p2.proc);
    assert_eq!((p1.proc.0.id(), p2.proc.0.id()), (pid1, pid2));
    let m = relay.metrics();
    assert_eq!(metric_value(&m, &players("cam1")), 2.0, "{m}");
    assert_eq!(metric_value(&m, &reconnects_players("cam1")), 0.0, "{m}");
    assert_eq!(metric_value(&m, &peers_in("cam1")), 1.0, "{m}");
    let reconnects = metric_value(&m, &reconnects_in("cam1"));
    assert!(
        reconnects >= 2.0,
        "a restart and a takeover: {reconnects} input reconnects\n{m}"
    );
    assert!(
        relay
            .logs()
            .contains("replaced by a new session of the publisher"),
        "the takeover is logged"
    );
}

#[test]
fn a_stream_set_to_take_over_when_idle_keeps_its_sending_publisher() {
    if !require("srt-live-transmit") {
        return;
    }
    let dir = Scratch::new("when-idle");
    let port = free_port();
    let relay = start(
        &dir,
        port,
        "",
        None,
        &route(
            "cam1",
            Some("live/feed1"),
            "publisher_takeover = \"when_idle\"\n",
        ),
        &[],
    );
    let player1 = player(port, Some("play/live/feed1"), "");
    wait_for(&relay, &players("cam1"), 1.0);
    let first = publisher(port, Some("publish/live/feed1"), "", true);
    wait_for(&relay, &peers_in("cam1"), 1.0);
    // A second encoder on the same stream, calling again and again as srt-live-transmit does.
    let mut second = publisher(port, Some("publish/live/feed1"), "", true);
    // 2 s at 5 Mbps. Metrics read as the last datagram goes out: a second later the first is
    // quiet.
    let count = 1000;
    let (got, m) = collect_all(&[&player1.sink], || {
        send_udp(first.udp, 0, count, 5.0);
        relay.metrics()
    });
    assert_range_exact(
        "the first publisher, while a second calls",
        &got[0],
        0,
        count,
    );
    assert_only_from("the first publisher", &got[0], 0, count);
    assert_eq!(metric_value(&m, &reconnects_in("cam1")), 0.0, "{m}");
    assert!(
        metric_value(&m, &rejected("stream_busy")) >= 1.0,
        "the second publisher is refused while the first sends\n{m}"
    );
    assert_still_running("the second publisher", &mut second.proc);

    // The duelling encoder goes away; then the first goes quiet (still connected) for over a
    // second, and a new session takes the stream over at its first call.
    drop(second);
    std::thread::sleep(Duration::from_millis(1500));
    let third = publisher(port, Some("publish/live/feed1"), "", false);
    wait_for(&relay, &reconnects_in("cam1"), 1.0);
    // Sent at once, the first 2-3 datagrams never reach the relay (its input counts 497 of
    // 500): srt-live-transmit loses them while its new session starts.
    std::thread::sleep(Duration::from_millis(300));
    let (got, ()) = collect_all(&[&player1.sink], || {
        send_udp(third.udp, 10_000, count / 2, 5.0)
    });
    assert_range_exact(
        "a new publisher, once the first is quiet",
        &got[0],
        10_000,
        count / 2,
    );
    assert_only_from("the new publisher", &got[0], 10_000, count / 2);
    assert!(
        relay.logs().contains("publisher session replaced"),
        "the takeover is logged"
    );
}

#[test]
fn players_beyond_max_players_are_refused_until_a_place_is_free() {
    if !require("srt-live-transmit") {
        return;
    }
    let dir = Scratch::new("max-players");
    let port = free_port();
    let relay = start(
        &dir,
        port,
        "",
        None,
        // A long idle timeout: the publisher stays connected while the test waits.
        &route("cam1", None, "max_players = 1\nidle_timeout_ms = 60000\n"),
        &[],
    );
    let publisher = publisher(port, Some("publish/cam1"), "", true);
    wait_for(&relay, &peers_in("cam1"), 1.0);
    let first = player(port, Some("play/cam1"), "");
    wait_for(&relay, &players("cam1"), 1.0);
    // A second player calls again and again (srt-live-transmit's default): refused while the
    // first holds the only place.
    let second = player(port, Some("play/cam1"), "");
    wait_for(&relay, &rejected("players_full"), 1.0);
    let count = 500;
    let (got, ()) = collect_all(&[&first.sink, &second.sink], || {
        send_udp(publisher.udp, 0, count, 5.0)
    });
    assert_range_exact("the first player", &got[0], 0, count);
    assert!(
        got[1].is_empty(),
        "the refused player got {} packets",
        got[1].len()
    );
    assert_eq!(relay.metric(&players("cam1")), 1.0);
    // The first leaves (killed: the relay notices when libsrt times it out): a player that
    // calls then gets the place.
    drop(first);
    drop(second);
    let deadline = Instant::now() + Duration::from_secs(20);
    while relay.metric(&players("cam1")) > 0.0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        relay.metric(&players("cam1")),
        0.0,
        "the first player never left"
    );
    let third = player(port, Some("play/cam1"), "");
    wait_for(&relay, &players("cam1"), 1.0);
    std::thread::sleep(Duration::from_millis(300));
    let (got, ()) = collect_all(&[&third.sink], || {
        send_udp(publisher.udp, 10_000, count, 5.0)
    });
    assert_range_exact("a player once the place is free", &got[0], 10_000, count);
}

#[test]
fn unknown_streams_and_undecidable_modes_are_refused_and_counted() {
    if !require("srt-live-transmit") {
        return;
    }
    let dir = Scratch::new("refused");
    let port = free_port();
    // No default_stream: a caller without a Stream ID names no stream. `locked` has different
    // passphrases per side, so a caller that does not say its side cannot be let in.
    let routes = route("cam1", None, "")
        + &route(
            "locked",
            None,
            "publish_passphrase = \"locked-pub-0001\"\nplay_passphrase = \"locked-play-0002\"\n",
        );
    let relay = start(&dir, port, "", None, &routes, &[]);
    // `wrong_mode` (publish or play asked of a stream without that side) cannot be configured:
    // every server route registers both its publisher and its players side.
    for (streamid, as_publisher, reason) in [
        (Some("publish/nope/x"), true, "unknown_stream"),
        (Some("read:nope"), false, "unknown_stream"),
        (Some("#!::r=nope,m=publish"), true, "unknown_stream"),
        (Some("nope"), true, "unknown_stream"),
        (None, true, "unknown_stream"),
        (
            Some("%23%21%3A%3Ar%3Dcam1%2Cm%3Dpublish"),
            true,
            "unknown_stream",
        ),
        (Some("#!::r=cam1,m=bidirectional"), false, "bad_streamid"),
        (Some("locked"), true, "mode_required"),
    ] {
        let before = relay.metric(&rejected(reason));
        let caller = if as_publisher {
            publisher(port, streamid, "", true).proc
        } else {
            player(port, streamid, "").proc
        };
        let after = relay.wait_metric(&rejected(reason), before + 1.0, Duration::from_secs(5));
        drop(caller);
        assert!(
            after > before,
            "{streamid:?} not refused as {reason}; metrics:\n{}\nlog:\n{}",
            relay.metrics(),
            relay.logs()
        );
    }
    let m = relay.metrics();
    for r in ["cam1", "locked"] {
        assert_eq!(
            metric_value(&m, &peers_in(r)),
            0.0,
            "{r}: nobody got in\n{m}"
        );
        assert_eq!(
            metric_value(&m, &players(r)),
            0.0,
            "{r}: nobody got in\n{m}"
        );
    }
    let logs = relay.logs();
    assert!(
        logs.contains(r#""reason":"unknown_stream""#) && logs.contains(r#""stream":"nope/x""#),
        "the refusal names the reason and the stream:\n{logs}"
    );
}

#[test]
fn server_config_errors_exit_2_naming_route_and_field() {
    let dir = Scratch::new("config");
    let server = format!(
        "[[srt_server]]\nname = \"irl\"\nlisten = \"srt://:{}\"\n",
        free_port()
    );
    let udp_out = "outputs = [\"udp://127.0.0.1:9\"]\n";
    let cases = [
        (
            "input and server",
            format!(
                "{server}\n[[route]]\nname = \"both\"\nserver = \"irl\"\ninput = \"udp://127.0.0.1:{}\"\n{udp_out}",
                free_port()
            ),
            vec!["route 'both'", "input", "server", "not both"],
        ),
        (
            "unknown server",
            format!("{server}\n[[route]]\nname = \"lost\"\nserver = \"nope\"\n"),
            vec!["route 'lost' server", "'nope'"],
        ),
        (
            "one stream twice on a server",
            format!(
                "{server}\n[[route]]\nname = \"a\"\nserver = \"irl\"\nstream = \"live/x\"\n\n[[route]]\nname = \"b\"\nserver = \"irl\"\nstream = \"live/x\"\n"
            ),
            vec!["route 'b' stream", "'live/x'", "route 'a'"],
        ),
        (
            "default_stream not served",
            format!(
                "{server}default_stream = \"ghost\"\n\n[[route]]\nname = \"cam1\"\nserver = \"irl\"\n"
            ),
            vec!["srt_server 'irl' default_stream", "'ghost'"],
        ),
    ];
    for (what, text, needles) in cases {
        let cfg = dir.file("bad.toml");
        std::fs::write(&cfg, &text).expect("write config");
        let out = Command::new(env!("CARGO_BIN_EXE_stream-relay"))
            .args(["run", "--config", cfg.to_str().expect("path")])
            .env_remove("RUST_LOG")
            .output()
            .expect("run");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{what}: {err}\n{text}");
        assert!(
            err.lines().any(|l| needles.iter().all(|n| l.contains(n))),
            "{what}: no line with {needles:?} in:\n{err}"
        );
    }
}

/// One publisher as NOALBS (the IRL auto-bitrate switcher) deserialises it for its
/// `SrtLiveServer` stream server type: the same field names and Rust types, no `Option`, no
/// defaults. A field missing, or an integer field written as `4500.0`, makes this fail as it
/// makes NOALBS take the stream for offline.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)] // read through Debug and the asserts below
struct NoalbsSrtLiveServer {
    bitrate: i64,
    bytes_rcv_drop: u64,
    bytes_rcv_loss: u64,
    mbps_bandwidth: f64,
    mbps_recv_rate: f64,
    ms_rcv_buf: i32,
    pkt_rcv_drop: i32,
    pkt_rcv_loss: i32,
    rtt: f64,
    uptime: i64,
}

/// The same as NOALBS reads it for its `Belabox` type (BELABOX's SLS fork): bitrate 0 is
/// offline there, so an idle or missing publisher must not read as a low bitrate.
#[derive(Debug, serde::Deserialize)]
#[allow(dead_code)] // read through Debug
struct NoalbsBelabox {
    bitrate: i64,
    rtt: f64,
    dropped_pkts: i32,
}

/// GET with an `Authorization` header given verbatim (`Bearer TOKEN`, or the bare token as
/// irl-srt-server's clients send it); returns the status and the body as JSON.
fn get_json(port: u16, path: &str, authorization: Option<&str>) -> (u16, serde_json::Value) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect http");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let auth = authorization
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{auth}\r\n"
    )
    .expect("write request");
    let mut resp = String::new();
    s.read_to_string(&mut resp).expect("read response");
    let code = resp
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status");
    let body = resp.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    let v = serde_json::from_str(body).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {body}"));
    (code, v)
}

/// `/stats?publisher=KEY` (KEY already percent-encoded as needed): status and body.
fn stats_of(relay: &Relay, key: &str) -> (u16, serde_json::Value) {
    get_json(relay.http, &format!("/stats?publisher={key}"), None)
}

/// The input state `/health` shows for `route`.
fn input_state(relay: &Relay, route: &str) -> String {
    let (_, h) = get_json(relay.http, "/health", None);
    h["routes"]
        .as_array()
        .and_then(|rs| rs.iter().find(|r| r["name"] == route))
        .and_then(|r| r["input"]["state"].as_str())
        .unwrap_or("(no such route)")
        .to_owned()
}

/// Polls `/health` until `route`'s input is in `state`; returns how long that took.
fn wait_input_state(relay: &Relay, route: &str, state: &str, within: Duration) -> Duration {
    let t = Instant::now();
    loop {
        let now = input_state(relay, route);
        if now == state {
            return t.elapsed();
        }
        assert!(
            t.elapsed() < within,
            "{route}: input still '{now}' after {within:?}, expected '{state}'; log:\n{}",
            relay.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Asserts the JSON number types NOALBS and irl-srt-server use, then deserialises the
/// publisher exactly as NOALBS does.
fn assert_noalbs_shape(what: &str, p: &serde_json::Value) -> NoalbsSrtLiveServer {
    let integers = [
        "bitrate",
        "bytesRcvDrop",
        "bytesRcvLoss",
        "msRcvBuf",
        "pktRcvDrop",
        "pktRcvLoss",
        "uptime",
        "latency",
        "dropped_pkts",
    ];
    for k in integers {
        assert!(
            p[k].is_i64() || p[k].is_u64(),
            "{what}: {k} must be a JSON integer: {p}"
        );
    }
    for k in ["mbpsBandwidth", "mbpsRecvRate", "rtt"] {
        assert!(p[k].is_f64(), "{what}: {k} must be a JSON float: {p}");
    }
    let belabox: Result<NoalbsBelabox, _> = serde_json::from_value(p.clone());
    assert!(
        belabox.is_ok(),
        "{what}: NOALBS (Belabox) could not read {p}: {belabox:?}"
    );
    serde_json::from_value(p.clone())
        .unwrap_or_else(|e| panic!("{what}: NOALBS could not read {p}: {e}"))
}

#[test]
fn stats_answer_as_srt_live_server_for_noalbs() {
    if !require("srt-live-transmit") {
        return;
    }
    let dir = Scratch::new("stats");
    let port = free_port();
    let token = "stats-token-Ry8842";
    // cam2 has no publisher: it must not be listed. A short idle timeout: the killed
    // publisher (no shutdown reaches the relay) is dropped within 2 s of silence.
    let routes = route("cam1", Some("live/feed1"), "idle_timeout_ms = 2000\n")
        + &route("cam2", None, "")
        + &format!("\n[http]\ntoken = \"{token}\"\n");
    let relay = start(&dir, port, "", None, &routes, &[]);
    let (code, body) = stats_of(&relay, "publish/live/feed1");
    assert_eq!(
        (code, &body),
        (200, &serde_json::json!({"publishers": {}, "status": "ok"})),
        "no publisher yet"
    );

    let kbps = 5000;
    let source = LiveSource::srt_with(port, kbps, "&streamid=publish/live/feed1");
    wait_for(&relay, &peers_in("cam1"), 1.0);
    let t = Instant::now();
    // Sampled once the publisher is 2 s in: its rate window is full.
    let deadline = t + Duration::from_secs(10);
    let p = loop {
        let (code, body) = stats_of(&relay, "publish/live/feed1");
        assert_eq!(code, 200, "{body}");
        assert_eq!(body["status"], "ok", "{body}");
        let p = body["publishers"]["publish/live/feed1"].clone();
        if p["uptime"].as_i64().is_some_and(|u| u >= 2) && p["bitrate"].as_i64() > Some(0) {
            break p;
        }
        assert!(
            Instant::now() < deadline,
            "no running publisher in /stats after 10 s: {body}; log:\n{}",
            relay.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    eprintln!(
        "stats: publisher up {} s after {:?}: {p}",
        p["uptime"],
        t.elapsed()
    );
    let n = assert_noalbs_shape("publish/live/feed1", &p);
    let kbps = kbps as i64;
    assert!(
        (kbps / 2..=kbps * 3 / 2).contains(&n.bitrate),
        "bitrate {} kbps for {kbps} kbps sent",
        n.bitrate
    );
    let mbps = kbps as f64 / 1000.0;
    assert!(
        (mbps * 0.5..=mbps * 1.5).contains(&n.mbps_recv_rate),
        "mbpsRecvRate {} for {mbps} Mbps sent",
        n.mbps_recv_rate
    );
    assert!(n.uptime >= 2 && n.uptime < 15, "uptime {}", n.uptime);
    assert!(
        p["latency"].as_i64() > Some(0),
        "latency must be the publisher's SRT latency (120 ms by default), not 0: {p}"
    );
    assert!(
        n.rtt >= 0.0 && n.rtt < 1000.0,
        "rtt {} ms on loopback",
        n.rtt
    );
    assert_eq!(n.pkt_rcv_drop, 0, "nothing dropped on loopback: {p}");
    assert_eq!(p["dropped_pkts"], p["pktRcvDrop"], "BELABOX's name: {p}");

    // The same publisher under every name a switcher may be configured with, each answered
    // under the key exactly as asked (percent-decoded).
    for (asked, key) in [
        ("cam1", "cam1"),
        ("live/feed1", "live/feed1"),
        ("publish:live/feed1", "publish:live/feed1"),
        (
            "%23%21%3A%3Ar%3Dlive%2Ffeed1%2Cm%3Dpublish",
            "#!::r=live/feed1,m=publish",
        ),
        ("publish%2Flive%2Ffeed1", "publish/live/feed1"),
    ] {
        let (code, body) = stats_of(&relay, asked);
        assert_eq!(code, 200, "{asked}: {body}");
        let ps = body["publishers"].as_object().expect("publishers object");
        assert_eq!(
            ps.keys().collect::<Vec<_>>(),
            [key],
            "{asked}: keyed as asked: {body}"
        );
        let n = assert_noalbs_shape(asked, &ps[key]);
        assert!(n.bitrate > 0, "{asked}: {body}");
    }
    // Unknown names, and a player's Stream ID of the right stream, name no publisher.
    for asked in ["publish/live/nope", "nope", "play/live/feed1", "cam2", ""] {
        let (code, body) = stats_of(&relay, asked);
        assert_eq!(
            (code, &body),
            (200, &serde_json::json!({"publishers": {}, "status": "ok"})),
            "{asked:?}"
        );
    }

    // The listing needs the token (stream names can be stream keys).
    let (code, body) = get_json(relay.http, "/stats", None);
    assert_eq!(code, 401, "{body}");
    assert_eq!(body["status"], "error", "{body}");
    assert!(body["message"].is_string(), "{body}");
    let (code, _) = get_json(relay.http, "/stats", Some("Bearer wrong-token-000"));
    assert_eq!(code, 401, "a wrong token");
    for auth in [format!("Bearer {token}"), token.to_owned()] {
        let (code, body) = get_json(relay.http, "/stats", Some(&auth));
        assert_eq!(code, 200, "{auth}: {body}");
        let ps = body["publishers"].as_object().expect("publishers object");
        assert_eq!(
            ps.keys().collect::<Vec<_>>(),
            ["publish/live/feed1"],
            "only the connected publisher, keyed as SLS does: {body}"
        );
        assert_noalbs_shape("listing", &ps["publish/live/feed1"]);
    }

    // Offline: the publisher is killed; once the relay drops it, /stats names nobody.
    drop(source);
    let gone = Instant::now();
    loop {
        let (_, body) = stats_of(&relay, "publish/live/feed1");
        if body["publishers"].as_object().is_some_and(|p| p.is_empty()) {
            break;
        }
        assert!(
            gone.elapsed() < Duration::from_secs(10),
            "the killed publisher is still in /stats: {body}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("stats: offline {:?} after the kill", gone.elapsed());
    let (_, body) = get_json(relay.http, "/stats", Some(&format!("Bearer {token}")));
    assert_eq!(
        body,
        serde_json::json!({"publishers": {}, "status": "ok"}),
        "nobody connected"
    );
    assert!(!relay.logs().contains(token), "the token in the log");
}

#[test]
fn a_silent_publisher_is_idle_then_connected_then_dropped() {
    if !require("srt-live-transmit") {
        return;
    }
    let dir = Scratch::new("idle");
    let port = free_port();
    let routes = route("cam1", Some("live/feed1"), "idle_timeout_ms = 3000\n");
    let relay = start(&dir, port, "", None, &routes, &[]);
    let mut play = player(port, Some("play/live/feed1"), "");
    // Not reconnecting: when the relay drops it, srt-live-transmit exits, and that shows.
    let mut publ = publisher(port, Some("publish/live/feed1"), "", false);
    let pump = Pump::start(publ.udp, 500_000);
    wait_for(&relay, &peers_in("cam1"), 1.0);
    wait_for(&relay, &players("cam1"), 1.0);
    wait_input_state(&relay, "cam1", "connected", Duration::from_secs(5));

    // Silence: srt-live-transmit stays connected (SRT keepalives) but forwards nothing.
    let stopped = Instant::now();
    drop(pump);
    let to_idle = wait_input_state(&relay, "cam1", "idle", Duration::from_secs(3));
    eprintln!("idle: shown {to_idle:?} after the data stopped");
    assert!(
        to_idle >= Duration::from_millis(800) && to_idle <= Duration::from_millis(2500),
        "idle after {to_idle:?}: expected ~1 s of silence"
    );
    assert_still_running("the silent publisher", &mut publ.proc);
    let m = relay.metrics();
    assert_eq!(metric_value(&m, &peers_in("cam1")), 1.0, "still connected");
    let (_, body) = stats_of(&relay, "cam1");
    let p = &body["publishers"]["cam1"];
    assert!(
        p.is_object(),
        "an idle publisher is still a publisher: {body}"
    );
    assert_noalbs_shape("idle", p);

    // Data again, well within the idle timeout: connected, and the player gets all of it.
    let count = 1000; // ~2.1 s at 5 Mbps
    let resumed = Instant::now();
    let (got, (to_connected, last_sent)) = play.sink.collect_during(|| {
        std::thread::scope(|s| {
            let sender = s.spawn(|| {
                send_udp(publ.udp, 0, count, 5.0);
                Instant::now()
            });
            let to_connected =
                wait_input_state(&relay, "cam1", "connected", Duration::from_secs(2));
            (to_connected, sender.join().expect("sender thread"))
        })
    });
    eprintln!(
        "idle: connected again {to_connected:?} after the data resumed ({:?} silent before)",
        resumed.duration_since(stopped)
    );
    assert_range_exact("player after the idle spell", &got, 0, count);
    // The warm-up datagrams (from 500_000 on) are in the sink's buffer too.
    assert_only_from("player", &got, 0, 1_000_000);
    assert_still_running("the publisher", &mut publ.proc);
    assert_still_running("the player", &mut play.proc);
    assert_eq!(relay.metric(&reconnects_in("cam1")), 0.0, "one session");

    // Silent for longer than the route's idle timeout (3 s): idle first, then dropped. The
    // collector above waited 1.5 s for quiet, so time counts from the last datagram sent.
    let state = input_state(&relay, "cam1");
    assert!(
        ["idle", "connected"].contains(&state.as_str()),
        "input '{state}' {:?} after the last datagram",
        last_sent.elapsed()
    );
    wait_input_state(&relay, "cam1", "idle", Duration::from_secs(3));
    while publ.proc.0.try_wait().expect("try_wait").is_none() {
        assert!(
            last_sent.elapsed() < Duration::from_secs(10),
            "the silent publisher was not dropped; log:\n{}",
            relay.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let dropped = last_sent.elapsed();
    eprintln!("idle: dropped {dropped:?} after the data stopped (idle_timeout_ms = 3000)");
    assert!(
        dropped >= Duration::from_millis(2800),
        "dropped after {dropped:?}, before the idle timeout"
    );
    let state = input_state(&relay, "cam1");
    assert!(
        !["connected", "idle"].contains(&state.as_str()),
        "input '{state}' after the drop"
    );
    let (_, body) = stats_of(&relay, "cam1");
    assert_eq!(body["publishers"], serde_json::json!({}), "offline: {body}");
    assert!(
        relay.logs().contains("idle timeout"),
        "the drop is logged with its reason"
    );
    assert_still_running("the player", &mut play.proc);
}

#[test]
fn servers_are_created_used_and_removed_through_the_api() {
    if !require("srt-live-transmit") {
        return;
    }
    let dir = Scratch::new("servers");
    let token = "servers-token-Kd2291";
    let cfg = dir.file("relay.toml");
    std::fs::write(&cfg, format!("[http]\ntoken = \"{token}\"\n")).expect("write config");
    let relay = Relay::start(&["run", "--config", cfg.to_str().expect("utf-8 path")]);
    let port = free_port();
    let pw = "server-Secret-pw-6613";
    let api = |method: &str, path: &str, body: Option<&str>, auth: bool| {
        let (code, text) = http_request(relay.http, method, path, body, auth.then_some(token))
            .unwrap_or_else(|| panic!("{method} {path}: no answer"));
        let v: serde_json::Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {text}"));
        (code, v)
    };
    let server = |default: Option<&str>| {
        let mut s = serde_json::json!({ "listen": format!("srt://:{port}?passphrase={pw}") });
        if let Some(d) = default {
            s["default_stream"] = d.into();
        }
        s.to_string()
    };

    let (code, body) = api("GET", "/api/servers", None, false);
    assert_eq!((code, &body), (200, &serde_json::json!([])), "none yet");
    let (code, _) = api("PUT", "/api/servers/x", Some(&server(None)), false);
    assert_eq!(code, 401, "PUT without the token");
    let (code, body) = api("PUT", "/api/servers/x", Some(&server(None)), true);
    assert_eq!(code, 201, "created: {body}");
    assert_eq!(
        body["changes"]["servers_added"],
        serde_json::json!(["x"]),
        "{body}"
    );
    // default_stream must name a stream a route of this server serves.
    let (code, body) = api("PUT", "/api/servers/x", Some(&server(Some("s"))), true);
    assert_eq!(code, 400, "{body}");
    assert!(
        body["details"]
            .as_array()
            .is_some_and(|d| d.iter().any(|l| {
                l.as_str().is_some_and(|l| {
                    l.contains("srt_server 'x' default_stream") && l.contains("'s'")
                })
            })),
        "{body}"
    );
    let (code, body) = api(
        "PUT",
        "/api/routes/r",
        Some(r#"{"server":"x","stream":"s"}"#),
        true,
    );
    assert_eq!(code, 201, "route created: {body}");
    let (code, body) = api("PUT", "/api/servers/x", Some(&server(Some("s"))), true);
    assert_eq!(code, 200, "replaced: {body}");
    assert_eq!(
        body["changes"]["servers_restarted"],
        serde_json::json!(["x"]),
        "{body}"
    );

    let view = serde_json::json!({
        "config": {
            "name": "x",
            "listen": format!("srt://:{port}?passphrase=***"),
            "default_stream": "s",
        },
        "streams": ["s"],
    });
    let (code, body) = api("GET", "/api/servers", None, false);
    assert_eq!((code, &body), (200, &serde_json::json!([view])), "listing");
    let (code, body) = api("GET", "/api/servers/x", None, false);
    assert_eq!((code, &body), (200, &view), "one server");
    let (code, _) = api("GET", "/api/servers/nope", None, false);
    assert_eq!(code, 404, "no such server");

    // A player with no Stream ID gets the default stream; the publisher names it.
    let pp = format!("&passphrase={pw}");
    let play = player(port, None, &pp);
    let publ = publisher(port, Some("#!::r=s,m=publish"), &pp, true);
    wait_for(&relay, &peers_in("r"), 1.0);
    wait_for(&relay, &players("r"), 1.0);
    let count = 1000; // ~2.1 s at 5 Mbps
    let t = Instant::now();
    let (got, ()) = play
        .sink
        .collect_during(|| send_udp(publ.udp, 0, count, 5.0));
    eprintln!(
        "servers: streamed through the API's server in {:?}",
        t.elapsed()
    );
    assert_range_exact("player of the API's server", &got, 0, count);
    assert_only_from("player", &got, 0, count);

    // The server cannot go while a route uses it; nothing changes.
    let (code, _) = api("DELETE", "/api/servers/x", None, false);
    assert_eq!(code, 401, "DELETE without the token");
    let (code, body) = api("DELETE", "/api/servers/x", None, true);
    assert_eq!(code, 400, "{body}");
    assert_eq!(body["error"], "invalid configuration", "{body}");
    assert!(
        body["details"]
            .as_array()
            .is_some_and(|d| d.iter().any(|l| l
                .as_str()
                .is_some_and(|l| l.contains("route 'r'") && l.contains("'x'")))),
        "the error names the route and the server: {body}"
    );
    let (code, _) = api("GET", "/api/servers/x", None, false);
    assert_eq!(code, 200, "still there");
    let m = relay.metrics();
    assert_eq!(metric_value(&m, &peers_in("r")), 1.0, "{m}");
    assert_eq!(metric_value(&m, &players("r")), 1.0, "{m}");
    // The listener holds its port.
    assert!(
        std::net::UdpSocket::bind(("0.0.0.0", port)).is_err(),
        "port {port} is not bound by the server"
    );

    // Route first, then the server: the port is free again. The route serves the server's
    // default_stream, so that goes first (as in the file, a default_stream nobody serves is
    // an invalid configuration).
    drop(publ);
    drop(play);
    let (code, body) = api("DELETE", "/api/routes/r", None, true);
    assert_eq!(code, 400, "the route serves the default stream: {body}");
    assert!(
        body["details"].to_string().contains("default_stream"),
        "{body}"
    );
    let (code, body) = api("PUT", "/api/servers/x", Some(&server(None)), true);
    assert_eq!(code, 200, "default_stream dropped: {body}");
    let (code, body) = api("DELETE", "/api/routes/r", None, true);
    assert_eq!(code, 200, "{body}");
    let (code, body) = api("DELETE", "/api/servers/x", None, true);
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        body["changes"]["servers_removed"],
        serde_json::json!(["x"]),
        "{body}"
    );
    let (code, _) = api("GET", "/api/servers/x", None, false);
    assert_eq!(code, 404, "gone");
    let (code, body) = api("GET", "/api/servers", None, false);
    assert_eq!((code, &body), (200, &serde_json::json!([])), "none left");
    // The relay can listen there again at once (libsrt reuses its socket still closing)...
    let (code, body) = api("PUT", "/api/servers/y", Some(&server(None)), true);
    assert_eq!(code, 201, "a new server on the freed port: {body}");
    let (code, body) = api("DELETE", "/api/servers/y", None, true);
    assert_eq!(code, 200, "{body}");
    // ...and other programs can bind it once libsrt's collector has released the UDP
    // socket: srt_close() leaves that to libsrt's own thread, ~4-5 s later here (measured the
    // same with no caller ever connected).
    let freed = Instant::now();
    while std::net::UdpSocket::bind(("0.0.0.0", port)).is_err() {
        assert!(
            freed.elapsed() < Duration::from_secs(10),
            "port {port} still bound 10 s after the server was removed; log:\n{}",
            relay.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("servers: port free {:?} after DELETE", freed.elapsed());
    let logs = relay.logs();
    assert!(!logs.contains(pw), "the passphrase in the log");
    assert!(!logs.contains(token), "the token in the log");
}
