//! Fuzzes every URI parser with hostile input, in the normal test run: random mutations of a
//! corpus of real and broken URIs (`tests/corpus/uris.txt`), plus raw random strings. A parser
//! must never panic, must answer in one line of bounded length, and must never echo a secret,
//! whether it accepts the URI (its display) or refuses it (its error).

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use std::sync::atomic::{AtomicU64, Ordering};
use stream_relay::common::uri::RawUri;
use stream_relay::endpoint;
use stream_relay::rist::uri::{Profile, RistEndpoint};
use stream_relay::srt::uri::SrtEndpoint;
use stream_relay::udp::uri::UdpEndpoint;

const MARKER: &str = "S3CRETmarker12345";
/// Cases per property in the normal run; `STREAM_RELAY_FUZZ_CASES` runs longer campaigns.
fn cases() -> u32 {
    std::env::var("STREAM_RELAY_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

static EXECUTIONS: AtomicU64 = AtomicU64::new(0);

fn corpus() -> Vec<String> {
    include_str!("corpus/uris.txt")
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Runs one input through every parser and checks the promises.
fn check(input: &str) {
    EXECUTIONS.fetch_add(1, Ordering::Relaxed);
    let mut outcomes: Vec<(&str, Result<String, String>)> = vec![
        (
            "raw",
            RawUri::parse(input, "srt")
                .map(|_| String::new())
                .map_err(|e| e.to_string()),
        ),
        (
            "srt",
            SrtEndpoint::parse(input)
                .map(|e| e.to_string())
                .map_err(|e| e.to_string()),
        ),
        (
            "udp",
            UdpEndpoint::parse(input)
                .map(|e| e.to_string())
                .map_err(|e| e.to_string()),
        ),
        (
            "endpoint",
            endpoint::parse(input, Profile::Main)
                .map(|e| e.transport.to_string())
                .map_err(|e| e.to_string()),
        ),
    ];
    for profile in [Profile::Main, Profile::Simple] {
        outcomes.push((
            "rist",
            RistEndpoint::parse(input, profile)
                .map(|e| e.to_string())
                .map_err(|e| e.to_string()),
        ));
    }
    let secret = holds_secret(input);
    for (parser, outcome) in outcomes {
        let text = match &outcome {
            Ok(shown) => shown,
            Err(e) => {
                assert!(
                    !e.contains('\n'),
                    "{parser}: multi-line error for {input:?}: {e}"
                );
                assert!(
                    e.len() <= 600,
                    "{parser}: {} byte error for {input:?}",
                    e.len()
                );
                assert!(!e.is_empty(), "{parser}: empty error for {input:?}");
                e
            }
        };
        assert!(
            !(secret && text.contains(MARKER)),
            "{parser} echoed a secret for {input:?}: {text}"
        );
    }
}

/// Whether the marker is a secret here: the value (or part of it) of a secret parameter, as the
/// parsers split the query (after the first '?', pairs on '&', key before the first '='), and
/// nowhere else. Elsewhere (inside a latency value or a host name, say) it is ordinary text
/// that an error may quote.
fn holds_secret(input: &str) -> bool {
    let Some((base, query)) = input.split_once('?') else {
        return false;
    };
    let is_secret = |k: &str| {
        matches!(
            k.to_ascii_lowercase().as_str(),
            "passphrase" | "secret" | "password"
        )
    };
    let mut in_secret = false;
    let mut elsewhere = base.contains(MARKER);
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some((k, v)) if is_secret(k) => in_secret |= v.contains(MARKER),
            _ => elsewhere |= pair.contains(MARKER),
        }
    }
    in_secret && !elsewhere
}

fn mutated() -> impl Strategy<Value = String> {
    let seeds = corpus();
    let piece = prop_oneof![
        Just("&".to_owned()),
        Just("=".to_owned()),
        Just("?".to_owned()),
        Just("@".to_owned()),
        Just("[".to_owned()),
        Just("]".to_owned()),
        Just(":".to_owned()),
        Just("%".to_owned()),
        Just("%00".to_owned()),
        Just("\0".to_owned()),
        Just("\u{7f}".to_owned()),
        Just("é".to_owned()),
        Just("\u{202e}".to_owned()),
        Just(format!("passphrase={MARKER}")),
        Just(format!("secret={MARKER}")),
        Just(format!("password={MARKER}")),
        Just("latency=".to_owned()),
        Just("99999999999999999999".to_owned()),
        Just("-1".to_owned()),
        "[a-z0-9._-]{0,12}",
        any::<char>().prop_map(String::from),
    ];
    (
        0..seeds.len(),
        prop::collection::vec((any::<prop::sample::Index>(), 0..3u8, piece), 0..6),
    )
        .prop_map(move |(i, edits)| {
            let mut s: Vec<char> = seeds[i].chars().collect();
            for (at, op, piece) in edits {
                let pos = if s.is_empty() {
                    0
                } else {
                    at.index(s.len() + 1)
                };
                match op {
                    0 => {
                        for (k, c) in piece.chars().enumerate() {
                            s.insert(pos + k, c);
                        }
                    }
                    1 if pos < s.len() => {
                        s.remove(pos);
                    }
                    _ => {
                        let end = (pos + piece.chars().count()).min(s.len());
                        s.splice(pos..end, piece.chars());
                    }
                }
            }
            s.into_iter().collect()
        })
}

#[test]
fn the_corpus_parses_or_fails_cleanly() {
    for uri in corpus() {
        check(&uri);
    }
}

#[test]
fn mutated_uris_never_panic_or_leak() {
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&mutated(), |uri| {
            check(&uri);
            Ok(())
        })
        .expect("a parser broke a promise");
    eprintln!(
        "fuzz_uris: {} inputs x 6 parsers so far",
        EXECUTIONS.load(Ordering::Relaxed)
    );
}

#[test]
fn random_strings_never_panic_or_leak() {
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&"(srt|rist|udp|SRT|x)?(://)?\\PC{0,80}", |uri| {
            check(&uri);
            Ok(())
        })
        .expect("a parser broke a promise");
    let huge = format!("srt://:9000?passphrase={MARKER}&{}", "a=b&".repeat(5000));
    check(&huge);
    check(&"x".repeat(100_000));
}
