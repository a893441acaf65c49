//! `deploy/grafana/stream-relay.json` only queries metrics the relay exports, and `/metrics`
//! with every feature in use (SRT and RIST inputs fed by the reference tools, a time buffer, an
//! unreachable output, a configuration reload, monitoring-feed clients) passes
//! `promtool check metrics`; `deploy/prometheus/prometheus.yml` passes `promtool check config`.

mod common;

use common::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::Duration;

fn repo(path: &str) -> String {
    std::fs::read_to_string(format!("{}/../{path}", env!("CARGO_MANIFEST_DIR")))
        .unwrap_or_else(|e| panic!("read {path}: {e}"))
}

/// Every PromQL expression in the dashboard: panel targets (rows included) and variables.
fn queries(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(o) => {
            for (k, x) in o {
                match (k.as_str(), x) {
                    ("expr" | "definition", Value::String(s)) => out.push(s.clone()),
                    ("query", Value::String(s)) => out.push(s.clone()),
                    _ => queries(x, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| queries(x, out)),
        _ => {}
    }
}

/// `relay_...` names in a PromQL expression.
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find("relay_") {
        let before = rest[..i].chars().last();
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        if !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            names.push(tail[..end].to_owned());
        }
        rest = &tail[end..];
    }
    names
}

fn promtool(args: &[&str], stdin: &str) -> (i32, String) {
    let mut child = Command::new("promtool")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn promtool");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("promtool");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn the_dashboard_queries_only_exported_metrics_and_promtool_passes_with_every_feature() {
    if !require("srt-live-transmit") || !require("ristsender") || !require("promtool") {
        return;
    }
    let (srt_in, rist_in, srt_locked) = (free_port(), free_even_port(), free_port());
    let (sink_a, sink_b) = (UdpSink::new(), UdpSink::new());
    let dir = std::env::temp_dir().join(format!("stream-relay-grafana-{}", free_port()));
    std::fs::create_dir_all(&dir).expect("dir");
    let cfg = dir.join("relay.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"[defaults]
reconnect_min_ms = 100
reconnect_max_ms = 500

[[route]]
name = "cam1"
input = "srt://:{srt_in}?mode=listener"
outputs = [
  {{ name = "delayed", uri = "udp://127.0.0.1:{a}", time_buffer_ms = 200 }},
  {{ name = "nowhere", uri = "srt://127.0.0.1:9?conntimeo=300" }},
]

[[route]]
name = "cam2"
input = "rist://@127.0.0.1:{rist_in}"
outputs = ["udp://127.0.0.1:{b}"]

[[route]]
name = "locked"
input = "srt://:{srt_locked}?mode=listener&passphrase=grafana-passphrase-1"
outputs = ["udp://127.0.0.1:{b}"]
"#,
            a = sink_a.port,
            b = sink_b.port,
        ),
    )
    .expect("config");
    let relay = Relay::start(&["run", "--config", cfg.to_str().expect("path")]);
    let _srt = LiveSource::srt(srt_in, 2000);
    let _rist = LiveSource::rist(rist_in, 2000);
    // A caller without the passphrase: refused, and counted by reason.
    let _impostor = slt(&[
        &format!("udp://127.0.0.1:{}", free_port()),
        &format!("srt://127.0.0.1:{srt_locked}"),
    ]);
    let (code, body) =
        http_request(relay.http, "POST", "/api/reload", None, None).expect("reload answers");
    assert_eq!(code, 200, "{body}");
    // Feed clients while /metrics is scraped (the feed only reads the same counters).
    let feed = std::thread::spawn({
        let port = relay.http;
        move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let mut clients = Vec::new();
                for _ in 0..5 {
                    if let Ok((ws, _)) = tokio_tungstenite::connect_async(format!(
                        "ws://127.0.0.1:{port}/ws?interval_ms=200"
                    ))
                    .await
                    {
                        clients.push(ws);
                    }
                }
                tokio::time::sleep(Duration::from_secs(4)).await;
                clients.len()
            })
        }
    });
    for (route, side, output) in [("cam1", "input", ""), ("cam2", "input", "")] {
        let series = format!(r#"relay_peers{{route="{route}",side="{side}",output="{output}"}}"#);
        assert_eq!(
            relay.wait_metric(&series, 1.0, Duration::from_secs(15)),
            1.0,
            "{series}\n{}",
            relay.logs()
        );
    }
    // Quality, drops and the time buffer report once a second.
    std::thread::sleep(Duration::from_millis(2500));
    let metrics = relay.metrics();
    assert_eq!(feed.join().expect("feed thread"), 5, "feed clients");

    // Which names the relay exports, and which have samples now.
    let mut exported = BTreeSet::new();
    for line in metrics.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE line");
            if kind == "histogram" {
                for suffix in ["_bucket", "_sum", "_count"] {
                    exported.insert(format!("{name}{suffix}"));
                }
            } else {
                exported.insert(name.to_owned());
            }
        }
    }
    let sampled: BTreeSet<&str> = metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();

    let dashboard: Value =
        serde_json::from_str(&repo("deploy/grafana/stream-relay.json")).expect("dashboard JSON");
    let mut exprs = Vec::new();
    queries(&dashboard["panels"], &mut exprs);
    queries(&dashboard["templating"], &mut exprs);
    let mut used = BTreeSet::new();
    for e in &exprs {
        used.extend(metric_names(e));
    }
    assert!(used.len() >= 15, "dashboard queries only {used:?}");
    for name in &used {
        assert!(
            exported.contains(name),
            "the dashboard queries {name}, which the relay does not export"
        );
        assert!(
            sampled.contains(name.as_str()),
            "{name} has no sample with every feature in use:\n{metrics}"
        );
    }
    // And the other way round: every exported family is on the dashboard.
    for name in &exported {
        let base = name
            .trim_end_matches("_bucket")
            .trim_end_matches("_sum")
            .trim_end_matches("_count");
        assert!(
            used.iter().any(|u| u.starts_with(base)),
            "{name} is exported but not on the dashboard"
        );
    }
    // Grafana imports need these.
    assert_eq!(dashboard["__inputs"][0]["name"], "DS_PROMETHEUS");
    assert!(dashboard["uid"].is_string() && dashboard["title"].is_string());

    // promtool accepts /metrics; its only advice is on the two promised names' units.
    let (code, report) = promtool(&["check", "metrics"], &metrics);
    assert!(
        code == 0 || code == 3,
        "promtool failed to parse ({code}): {report}"
    );
    for line in report.lines().filter(|l| !l.trim().is_empty()) {
        let promised =
            line.starts_with("relay_jitter_ms ") || line.starts_with("relay_bitrate_kbps ");
        assert!(
            promised && line.contains("abbreviated units"),
            "promtool: {line}\n{report}"
        );
    }
    let scrape = format!(
        "{}/../deploy/prometheus/prometheus.yml",
        env!("CARGO_MANIFEST_DIR")
    );
    let (code, report) = promtool(&["check", "config", &scrape], "");
    assert_eq!(code, 0, "{report}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Grafana cannot run here; its published dashboard schema can. Every field of the dashboard,
/// down to panel options, custom field configs and queries, must be one Grafana knows, or an
/// import would silently drop it (`deploy/grafana/check_schema.py` says which).
#[test]
fn the_dashboard_conforms_to_grafanas_published_schema() {
    let script = format!(
        "{}/../deploy/grafana/check_schema.py",
        env!("CARGO_MANIFEST_DIR")
    );
    let dashboard = format!(
        "{}/../deploy/grafana/stream-relay.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let out = Command::new("python3")
        .args([&script, &dashboard])
        .output()
        .expect("run python3");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{report}");
    assert!(report.contains(" 0 differences"), "{report}");
}
