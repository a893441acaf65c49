//! `run --config`: many routes from one file, changed live by SIGHUP and by the HTTP API,
//! touching only what changed. A stream that is not part of a change loses not one packet.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const PEERS_IN: &str = r#"relay_peers{route="cam1",side="input",output=""}"#;

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "stream-relay-{tag}-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&p).expect("temp dir");
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn write(path: &Path, text: &str) {
    // Written whole then renamed, as an operator's editor or a deploy tool would.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write config");
    std::fs::rename(&tmp, path).expect("rename config");
}

fn hup(relay: &Relay) {
    let _ = Command::new("kill")
        .args(["-HUP", &relay.proc.0.id().to_string()])
        .status();
}

fn wait_log(relay: &Relay, needle: &str, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while relay.logs().matches(needle).count() < count && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        relay.logs().matches(needle).count() >= count,
        "expected {count} x {needle:?} in:\n{}",
        relay.logs()
    );
}

#[test]
fn sighup_reload_touches_only_what_changed() {
    if !require("srt-live-transmit") {
        return;
    }
    let dir = TempDir::new("reload");
    let cfg = dir.0.join("relay.toml");
    let relay_in = free_port();
    let (sink1, sink2, other) = (UdpSink::new(), UdpSink::new(), UdpSink::new());
    let other_in = free_port();
    let base = format!("[[route]]\nname = \"cam1\"\ninput = \"srt://:{relay_in}?mode=listener\"\n");
    let one = format!("{base}outputs = [\"udp://127.0.0.1:{}\"]\n", sink1.port);
    let two = format!(
        "{base}outputs = [\"udp://127.0.0.1:{}\", {{ name = \"two\", uri = \"udp://127.0.0.1:{}\" }}]\n",
        sink1.port, sink2.port
    );
    let with_other = format!(
        "{two}\n[[route]]\nname = \"cam2\"\ninput = \"udp://127.0.0.1:{other_in}\"\noutputs = [\"udp://127.0.0.1:{}\"]\n",
        other.port
    );
    write(&cfg, &one);
    let relay = Relay::start(&["run", "--config", cfg.to_str().expect("utf-8 path")]);
    let src_udp = free_port();
    let _src = slt(&[
        &format!("udp://127.0.0.1:{src_udp}"),
        &format!("srt://127.0.0.1:{relay_in}"),
    ]);
    assert_eq!(
        relay.wait_metric(PEERS_IN, 1.0, Duration::from_secs(10)),
        1.0,
        "sender never connected; log:\n{}",
        relay.logs()
    );

    let count = 4000; // ~8.4 s at 5 Mbps
    let done = AtomicBool::new(false);
    let (got1, got2, first2_after) = std::thread::scope(|s| {
        let c1 = s.spawn(|| sink1.collect(Duration::from_secs(5), Duration::from_millis(1500)));
        let c2 =
            s.spawn(|| sink2.collect_timed(Duration::from_secs(20), Duration::from_millis(1500)));
        s.spawn(|| {
            send_udp(src_udp, 0, count, 5.0);
            send_udp(src_udp, 100_000, 100, 5.0);
            done.store(true, Ordering::Release);
        });
        // (a) a second output joins the running route.
        std::thread::sleep(Duration::from_millis(1500));
        write(&cfg, &two);
        let added_at = Instant::now();
        hup(&relay);
        wait_log(&relay, "configuration applied", 1);
        // (b) another route comes and goes.
        std::thread::sleep(Duration::from_millis(1000));
        write(&cfg, &with_other);
        hup(&relay);
        wait_log(&relay, "configuration applied", 2);
        send_udp(other_in, 0, 50, 2.0);
        let got_other = other.collect(Duration::from_secs(2), Duration::from_millis(300));
        assert_eq!(got_other.len(), 50, "the added route must relay");
        write(&cfg, &two);
        hup(&relay);
        wait_log(&relay, "configuration applied", 3);
        // (c) an invalid file changes nothing.
        std::thread::sleep(Duration::from_millis(500));
        write(&cfg, &format!("{two}\nbogus_key = 1\n"));
        hup(&relay);
        wait_log(&relay, "configuration not applied", 1);
        assert!(
            !done.load(Ordering::Acquire),
            "the stream ended before the last change"
        );
        let got2 = c2.join().expect("sink2");
        let first = got2.first().map(|(t, _)| t.duration_since(added_at));
        (c1.join().expect("sink1"), got2, first)
    });
    // The untouched output: every packet, in order, across all four changes.
    assert_range_exact("first output across reloads", &got1, 0, count);
    // The added output: everything from the packet it joined at.
    let seqs: Vec<u64> = got2
        .iter()
        .map(|(_, d)| seq_of(d))
        .filter(|s| *s < count)
        .collect();
    let start = *seqs.first().expect("the added output got nothing");
    let tail: Vec<Vec<u8>> = got2.into_iter().map(|(_, d)| d).collect();
    assert_range_exact("added output", &tail, start, count - start);
    let first = first2_after.expect("no packet on the added output");
    assert!(
        first < Duration::from_secs(1),
        "the added output got its first packet {first:?} after the reload"
    );
    let m = relay.metrics();
    assert_eq!(
        metric_value(&m, r#"relay_config_reloads_total{result="ok"}"#),
        3.0,
        "{m}"
    );
    assert_eq!(
        metric_value(&m, r#"relay_config_reloads_total{result="error"}"#),
        1.0
    );
    assert!(
        !m.contains(r#"route="cam2""#),
        "a removed route leaves no series behind"
    );
    for line in relay.logs().lines().filter(|l| l.contains("config_")) {
        let v: serde_json::Value = serde_json::from_str(line).expect("JSON log line");
        assert!(v["event"] == "config_reloaded" || v["event"] == "config_rejected");
    }
}

#[test]
fn the_api_changes_routes_like_a_reload_and_persists_them() {
    let dir = TempDir::new("api");
    let cfg = dir.0.join("relay.toml");
    let (a_in, b_in, sink) = (free_port(), free_port(), UdpSink::new());
    write(
        &cfg,
        &format!(
            "[http]\ntoken = \"${{API_TOKEN}}\"\n\n[[route]]\nname = \"cam1\"\ninput = \"udp://127.0.0.1:{a_in}\"\noutputs = [\"udp://127.0.0.1:{}\"]\n",
            sink.port
        ),
    );
    let token = "tok-0123456789";
    let relay = Relay::start_env(
        &["run", "--config", cfg.to_str().expect("path"), "--persist"],
        &[("API_TOKEN", token), ("SRT_PASS", "api-secret-0123456789")],
    );
    let req = |method: &str, path: &str, body: Option<&str>, tok: Option<&str>| {
        http_request(relay.http, method, path, body, tok).expect("HTTP answer")
    };
    let route_b = format!(
        r#"{{"input":"srt://:{b_in}?mode=listener&passphrase=${{SRT_PASS}}","outputs":["udp://127.0.0.1:{}"]}}"#,
        sink.port
    );
    // Reading is open; changing needs the token.
    assert_eq!(req("GET", "/api/routes", None, None).0, 200);
    assert_eq!(req("PUT", "/api/routes/cam2", Some(&route_b), None).0, 401);
    assert_eq!(
        req("PUT", "/api/routes/cam2", Some(&route_b), Some("wrong")).0,
        401
    );
    let (code, body) = req("PUT", "/api/routes/cam2", Some(&route_b), Some(token));
    assert_eq!(code, 201, "{body}");
    let (code, body) = req("GET", "/api/routes/cam2", None, None);
    assert_eq!(code, 200);
    assert!(
        body.contains("passphrase=***") && !body.contains("api-secret"),
        "{body}"
    );
    // Outputs come and go without touching the route.
    let (code, body) = req(
        "POST",
        "/api/routes/cam1/outputs",
        Some(&format!(
            r#"{{"name":"extra","uri":"udp://127.0.0.1:{}"}}"#,
            free_port()
        )),
        Some(token),
    );
    assert_eq!(code, 201, "{body}");
    assert!(body.contains("cam1/extra"), "{body}");
    let (code, body) = req(
        "DELETE",
        "/api/routes/cam1/outputs/extra",
        None,
        Some(token),
    );
    assert_eq!(code, 200, "{body}");
    assert!(body.contains(r#""routes_unchanged":["cam2"]"#), "{body}");
    // Errors: unknown, invalid, conflicting.
    assert_eq!(req("DELETE", "/api/routes/nope", None, Some(token)).0, 404);
    assert_eq!(
        req("DELETE", "/api/routes/cam1/outputs/nope", None, Some(token)).0,
        404
    );
    let (code, body) = req(
        "PUT",
        "/api/routes/bad",
        Some(r#"{"input":"srt://:1?lantency=5","outputs":["udp://127.0.0.1:9"]}"#),
        Some(token),
    );
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("lantency"), "{body}");
    let (code, body) = req(
        "PUT",
        "/api/routes/clash",
        Some(&format!(
            r#"{{"input":"udp://127.0.0.1:{a_in}","outputs":["udp://127.0.0.1:9"]}}"#
        )),
        Some(token),
    );
    assert_eq!(code, 409, "{body}");
    // Persisted: the file has the new route, with the secret reference as written.
    let text = std::fs::read_to_string(&cfg).expect("config");
    assert!(
        text.contains("cam2") && text.contains("${SRT_PASS}"),
        "{text}"
    );
    assert!(!text.contains("api-secret"), "{text}");
    assert!(text.contains("${API_TOKEN}"), "{text}");
    assert_eq!(req("DELETE", "/api/routes/cam2", None, Some(token)).0, 200);
    assert_eq!(req("POST", "/api/reload", None, Some(token)).0, 200);
    let (code, body) = req("GET", "/api/routes", None, None);
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v.as_array().map(Vec::len), Some(1), "{body}");
    let logs = relay.logs();
    assert!(
        !logs.contains(token) && !logs.contains("api-secret"),
        "secret in logs"
    );
}

#[test]
fn a_bad_file_or_an_open_api_refuses_to_start() {
    let dir = TempDir::new("bad");
    let cfg = dir.0.join("relay.toml");
    write(
        &cfg,
        "[[route]]\nname = \"a\"\ninput = \"srt://:9000?lantency=1\"\noutputs = []\n[[route]]\nname = \"a\"\ninput = \"udp://0.0.0.0:9000\"\noutputs = [\"udp://127.0.0.1:9\"]\n",
    );
    let out = Command::new(env!("CARGO_BIN_EXE_stream-relay"))
        .args(["run", "--config", cfg.to_str().expect("path")])
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.lines().count() >= 3, "one line per problem: {err}");
    assert!(
        err.contains("route 'a' input") && err.contains("lantency"),
        "{err}"
    );
    assert!(err.contains("route 'a' name"), "{err}");

    write(
        &cfg,
        "[http]\naddr = \"0.0.0.0:19999\"\n[[route]]\nname = \"a\"\ninput = \"udp://127.0.0.1:9000\"\noutputs = [\"udp://127.0.0.1:9\"]\n",
    );
    let out = Command::new(env!("CARGO_BIN_EXE_stream-relay"))
        .args(["run", "--config", cfg.to_str().expect("path")])
        .env_remove("API_TOKEN")
        .env_remove("HTTP_ADDR")
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("without a token"), "{err}");
}

/// A relay without SRT routes never maps libsrt (nor libcrypto and libstdc++ with it); a route
/// added later that needs SRT loads it then. When libsrt cannot be loaded, that route fails
/// and the relay and its other routes go on.
#[test]
fn libsrt_is_loaded_by_the_first_srt_route() {
    loaded_by_the_first_route("libsrt", "libsrt.so.1.5", |port| {
        format!("srt://127.0.0.1:{port}?mode=listener")
    });
}

/// The same for librist (and mbedcrypto and cJSON with it).
#[test]
fn librist_is_loaded_by_the_first_rist_route() {
    loaded_by_the_first_route("librist", "librist.so.4", |port| {
        format!("rist://@127.0.0.1:{port}")
    });
}

fn loaded_by_the_first_route(library: &str, soname: &str, input: impl Fn(u16) -> String) {
    let dir = TempDir::new(&format!("lazy-{library}"));
    let cfg = dir.0.join("relay.toml");
    // Found first through LD_LIBRARY_PATH, and not a library: dlopen refuses it.
    let broken = dir.0.join("lib");
    std::fs::create_dir_all(&broken).expect("lib dir");
    std::fs::write(broken.join(soname), "not a library").expect("fake library");
    let broken = broken.to_str().expect("utf-8 path").to_owned();
    for env in [vec![], vec![("LD_LIBRARY_PATH", broken.as_str())]] {
        let loads = env.is_empty();
        let (udp_in, sink) = (free_port(), UdpSink::new());
        let plain = format!(
            "[[route]]\nname = \"plain\"\ninput = \"udp://127.0.0.1:{udp_in}\"\noutputs = [\"udp://127.0.0.1:{}\"]\n",
            sink.port
        );
        let with_it = format!(
            "{plain}\n[[route]]\nname = \"cam\"\ninput = \"{}\"\noutputs = [\"udp://127.0.0.1:{}\"]\n",
            input(free_port()),
            free_port()
        );
        write(&cfg, &plain);
        let relay = Relay::start_env(&["run", "--config", cfg.to_str().expect("path")], &env);
        let maps = || {
            std::fs::read_to_string(format!("/proc/{}/maps", relay.proc.0.id()))
                .expect("the relay's maps")
        };
        assert!(
            relay
                .logs()
                .contains(&format!(r#""{library}":"not loaded""#)),
            "the starting line says {library} is not loaded:\n{}",
            relay.logs()
        );
        assert!(
            !maps().contains(library),
            "{library} mapped without a route that uses it"
        );

        write(&cfg, &with_it);
        hup(&relay);
        wait_log(&relay, "configuration applied", 1);
        if loads {
            wait_log(&relay, &format!("{library} loaded"), 1);
            assert!(
                maps().contains(&format!("{library}.so")),
                "a route that uses {library} loads it"
            );
            assert!(
                http_get(relay.http, "/health").is_some_and(|(code, _)| code == 200),
                "{}",
                relay.logs()
            );
        } else {
            wait_log(&relay, &format!("cannot load {soname}"), 1);
            assert!(
                relay.logs().contains("route 'cam': "),
                "the route that needs {library} fails, alone:\n{}",
                relay.logs()
            );
        }
        // The other route relays either way.
        let (got, ()) = sink.collect_during(|| send_udp(udp_in, 0, 20, 1.0));
        assert_eq!(got.len(), 20, "{}", relay.logs());
        let (code, _, logs) = relay.terminate();
        assert_eq!(code, 0, "{logs}");
    }
}
