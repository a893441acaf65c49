//! `[[srt_server]]`: one shared SRT listener, many streams chosen by the caller's Stream ID,
//! driven end to end by real peers (srt-live-transmit, ffmpeg with libsrt) over loopback.
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
    ]
    .concat();
    let relay = start(&dir, port, "", Some("dflt"), &routes, &[]);
    let publish_mtxauth = format!("publish:mtxauth:pu:{pub_pw}");
    let read_mtxauth = format!("read:mtxauth:ru:{read_pw}");
    // (route, publisher's Stream ID, player's Stream ID); None: no Stream ID at all.
    let cases: [(&str, Option<&str>, Option<&str>); 6] = [
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

    let count = 400; // ~2.1 s at 2 Mbps, all six at once
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
    eprintln!("six dialects streamed in {:?}", t.elapsed());
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
