//! Logging setup: one JSON object per line (for Loki and friends) or human-readable text, on
//! stderr, filtered by `--log-level` or `RUST_LOG`.
//!
//! The filter is a `tracing_subscriber::filter::Targets`, not an `EnvFilter`: `EnvFilter` drags
//! in the `regex` crates (about 280 KB of code, and the binary's code is resident memory) for
//! span and field filters we never documented. The syntax we document (`info`,
//! `info,srt=debug`, `stream_relay::srt=trace`) is parsed here and checked strictly.

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Pretty,
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "json" => Ok(LogFormat::Json),
            "pretty" | "text" => Ok(LogFormat::Pretty),
            other => Err(format!(
                "log format '{}' is not json or pretty",
                other.chars().take(32).collect::<String>()
            )),
        }
    }
}

/// Parses a log filter in `RUST_LOG` syntax: comma-separated directives, each a level
/// (`info`: the default for every target), `target=level` (`srt=debug`: that target and the
/// targets under it), or a bare target (`srt`: all its levels). Levels are `off`, `error`,
/// `warn`, `info`, `debug`, `trace` in any case. When several targets match an event, the
/// longest wins. Blanks around directives are ignored. Unlike `EnvFilter`, span and field
/// filters (`[span{field=value}]`) are refused rather than accepted.
pub fn parse_filter(spec: &str) -> Result<Targets, String> {
    let mut targets = Targets::new();
    let mut any = false;
    for directive in spec.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        any = true;
        let shown = || directive.chars().take(64).collect::<String>();
        if directive.contains(['[', ']', '{', '}']) {
            return Err(format!(
                "'{}': span and field filters are not supported, only level and target=level",
                shown()
            ));
        }
        match directive.split_once('=') {
            Some((target, level)) => {
                let target = valid_target(target.trim()).ok_or_else(|| {
                    format!("'{}': expected target=level, like srt=debug", shown())
                })?;
                let level = match level.trim() {
                    // As EnvFilter reads `target=`: every level of that target.
                    "" => LevelFilter::TRACE,
                    l => parse_level(l).ok_or_else(|| unknown_level(&shown()))?,
                };
                targets = targets.with_target(target, level);
            }
            None => match parse_level(directive) {
                Some(level) => targets = targets.with_default(level),
                None => {
                    let target = valid_target(directive).ok_or_else(|| unknown_level(&shown()))?;
                    targets = targets.with_target(target, LevelFilter::TRACE);
                }
            },
        }
    }
    if !any {
        return Err("empty: expected a level such as info".to_owned());
    }
    Ok(targets)
}

fn parse_level(s: &str) -> Option<LevelFilter> {
    // LevelFilter also takes the digits 0-5, as EnvFilter did.
    s.parse().ok()
}

/// A target is a module path or a name such as `srt`: letters, digits, `_`, `-` and `:`.
fn valid_target(s: &str) -> Option<&str> {
    let ok = !s.is_empty()
        && s.chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | ':'));
    ok.then_some(s)
}

fn unknown_level(directive: &str) -> String {
    format!("'{directive}': expected off, error, warn, info, debug, trace or target=level")
}

/// Installs the global subscriber. `filter` uses `RUST_LOG` syntax (`info`, `debug,srt=warn`),
/// see `parse_filter`.
pub fn init(format: LogFormat, filter: &str) -> Result<(), String> {
    let filter = parse_filter(filter).map_err(|e| format!("invalid log filter {e}"))?;
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    // `try_init` also forwards the `log` crate's records (tungstenite's) into tracing.
    let result = match format {
        LogFormat::Json => tracing_subscriber::registry()
            .with(filter)
            .with(
                fmt.json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false),
            )
            .try_init(),
        LogFormat::Pretty => tracing_subscriber::registry()
            .with(filter)
            .with(fmt.with_ansi(false))
            .try_init(),
    };
    result.map_err(|e| format!("cannot install the logger: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    #[test]
    fn the_documented_filters_parse_and_mean_what_they_say() {
        let f = parse_filter("info").expect("a level");
        assert!(f.would_enable("stream_relay::srt", &Level::INFO));
        assert!(!f.would_enable("stream_relay::srt", &Level::DEBUG));

        let f = parse_filter("info,srt=debug").expect("level and target");
        assert!(f.would_enable("srt", &Level::DEBUG));
        assert!(!f.would_enable("srt", &Level::TRACE));
        assert!(!f.would_enable("rist", &Level::DEBUG));
        assert!(f.would_enable("rist", &Level::INFO));

        // The longest matching target wins, whatever the order.
        let f = parse_filter("stream_relay=warn,debug,stream_relay::srt=trace").expect("nested");
        assert!(f.would_enable("stream_relay::srt::socket", &Level::TRACE));
        assert!(!f.would_enable("stream_relay::http", &Level::INFO));
        assert!(f.would_enable("hyper", &Level::DEBUG));

        // Only targets: everything else is off, as with EnvFilter.
        let f = parse_filter("srt=info").expect("target only");
        assert!(!f.would_enable("stream_relay", &Level::ERROR));

        for spec in [
            "trace",
            "DEBUG",
            "Warn",
            "off",
            "5",
            " info , srt = debug ",
            "info,",
            "srt",
        ] {
            parse_filter(spec).unwrap_or_else(|e| panic!("{spec}: {e}"));
        }
        let f = parse_filter("srt").expect("bare target");
        assert!(f.would_enable("srt", &Level::TRACE));
        let f = parse_filter("off").expect("off");
        assert!(!f.would_enable("srt", &Level::ERROR));
    }

    #[test]
    fn invalid_filters_are_refused_with_the_directive() {
        for (spec, want) in [
            ("srt=loud", "'srt=loud'"),
            ("info,srt=debug=x", "'srt=debug=x'"),
            ("=debug", "'=debug'"),
            ("deb ug", "'deb ug'"),
            ("[conn{peer=1}]=debug", "span and field filters"),
            ("srt[x]=debug", "span and field filters"),
            (",", "empty"),
            ("info,!", "'!'"),
        ] {
            let e = parse_filter(spec)
                .err()
                .unwrap_or_else(|| panic!("{spec} accepted"));
            assert!(e.contains(want), "{spec}: {e}");
        }
    }
}
