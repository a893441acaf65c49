//! Fuzzes the shared SRT listener's decision with hostile Stream IDs: what any caller on the
//! internet sends during the handshake, before it is authenticated. Mutations of the Stream ID
//! forms clients send, plus raw random strings, go through the parser and `decide` against a
//! directory whose streams have passphrases and credentials. Promises: no panic; no password
//! in a parsed request's `Debug` or in an error; a refusal reason from the documented set; and
//! never a caller let in without its side's passphrase, or as a protected side without the
//! right credentials.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use stream_relay::common::redact::Secret;
use stream_relay::srt::server::directory::{directory, Access, Role};
use stream_relay::srt::server::{decide, Decision};
use stream_relay::srt::streamid;

const PASSWORD: &str = "PwMarker-7731";
const PUBLISH_PASSPHRASE: &str = "publish-passphrase-1";
const PLAY_PASSPHRASE: &str = "play-passphrase-22";
const REASONS: [&str; 7] = [
    "bad_streamid",
    "unknown_stream",
    "wrong_mode",
    "bad_credentials",
    "mode_required",
    "stream_busy",
    "players_full",
];

fn cases() -> u32 {
    std::env::var("STREAM_RELAY_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

const SEEDS: [&str; 16] = [
    "",
    "cam",
    "live/feed1",
    "publish/live/feed1",
    "play/live/feed1",
    "uplive.sls.com/live/feed1",
    "#!::r=live/feed1,m=publish",
    "#!::r=cam,m=request,u=alice",
    "#!::h=example.com,r=cam,m=publish,s=PwMarker-7731",
    "publish:cam",
    "read:cam",
    "publish:cam:alice:PwMarker-7731",
    "read:cam:bob:PwMarker-7731",
    "publish:cam:alice:PwMarker-7731:key=value",
    "read:live/feed1#feedbackplay",
    "#!::r=cam,m=bidirectional,t=file",
];

fn mutated() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just(":".to_owned()),
        Just("/".to_owned()),
        Just(",".to_owned()),
        Just("=".to_owned()),
        Just("#!::".to_owned()),
        Just("m=publish".to_owned()),
        Just("publish:".to_owned()),
        Just("read:".to_owned()),
        Just("play/".to_owned()),
        Just(PASSWORD.to_owned()),
        Just("\0".to_owned()),
        Just("\u{202e}".to_owned()),
        "[a-z0-9._/-]{0,12}",
        any::<char>().prop_map(String::from),
    ];
    (
        0..SEEDS.len(),
        prop::collection::vec((any::<prop::sample::Index>(), 0..3u8, piece), 0..6),
    )
        .prop_map(|(i, edits)| {
            let mut s: Vec<char> = SEEDS[i].chars().collect();
            for (at, op, piece) in edits {
                let pos = at.index(s.len() + 1);
                match op {
                    0 => s.splice(pos..pos, piece.chars()).for_each(drop),
                    1 if pos < s.len() => drop(s.remove(pos)),
                    _ => {
                        let end = (pos + piece.chars().count()).min(s.len());
                        s.splice(pos..end, piece.chars()).for_each(drop);
                    }
                }
            }
            s.into_iter().collect()
        })
}

/// Checks one Stream ID; `d` serves `cam` (credentials on both sides, passphrases per side)
/// and `live/feed1` (open).
fn check(d: &stream_relay::srt::server::directory::Directory, sid: &str) {
    match streamid::parse(sid) {
        Ok(req) => {
            // Secrets print as a mask, whatever they hold.
            for secret in [&req.password, &req.query] {
                let shown = format!("{secret:?}");
                assert!(
                    shown == "None" || shown == "Some(***)",
                    "{shown} for {sid:?}"
                );
            }
        }
        Err(e) => {
            let shown = e.to_string();
            assert!(
                !shown.contains(PASSWORD),
                "password in error {shown} for {sid:?}"
            );
            assert!(
                !shown.contains('\n') && shown.len() <= 300,
                "error {shown:?}"
            );
        }
    }
    match decide(d, None, sid) {
        Err(r) => assert!(REASONS.contains(&r.reason), "reason {r:?} for {sid:?}"),
        Ok(Decision {
            stream,
            role,
            passphrase,
        }) if stream == "cam" => {
            let passphrase = passphrase.as_ref().map(Secret::expose);
            match role {
                Some(Role::Publisher) => {
                    assert_eq!(passphrase, Some(PUBLISH_PASSPHRASE), "{sid:?}");
                    assert!(sid.contains(&format!("alice:{PASSWORD}")), "{sid:?}");
                }
                Some(Role::Players) => {
                    assert_eq!(passphrase, Some(PLAY_PASSPHRASE), "{sid:?}");
                    assert!(sid.contains(&format!("bob:{PASSWORD}")), "{sid:?}");
                }
                None => panic!("{sid:?}: an undecided side let in on a protected stream"),
            }
        }
        Ok(Decision { stream, .. }) => assert_eq!(stream, "live/feed1", "{sid:?}"),
    }
}

#[test]
fn hostile_stream_ids_never_panic_leak_or_get_in_unprotected() {
    let d = directory("fuzz-streamids");
    let secret = |s: &str| Secret::new(s.to_owned());
    let protected = Access {
        publish_passphrase: Some(secret(PUBLISH_PASSPHRASE)),
        play_passphrase: Some(secret(PLAY_PASSPHRASE)),
        publish_credentials: Some(("alice".into(), secret(PASSWORD))),
        play_credentials: Some(("bob".into(), secret(PASSWORD))),
        takeover_when_idle: false,
        max_players: None,
    };
    let _regs = [
        d.register("cam", Role::Publisher, protected.clone()),
        d.register("cam", Role::Players, protected),
        d.register("live/feed1", Role::Publisher, Access::default()),
        d.register("live/feed1", Role::Players, Access::default()),
    ];
    for sid in SEEDS {
        check(&d, sid);
    }
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&mutated(), |sid| {
            check(&d, &sid);
            Ok(())
        })
        .expect("a Stream ID broke a promise");
    runner
        .run(&any::<String>(), |sid| {
            check(&d, &sid);
            Ok(())
        })
        .expect("a random Stream ID broke a promise");
}
