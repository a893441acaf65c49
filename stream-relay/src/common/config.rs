//! Global settings and where they come from: a command-line flag wins over the environment,
//! which wins over the configuration file, which wins over the default.

use super::logging::LogFormat;
use std::net::SocketAddr;

pub const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:9710";
pub const DEFAULT_LOG_LEVEL: &str = "info";

#[derive(Clone, Debug, PartialEq)]
pub struct GlobalConfig {
    pub http_addr: SocketAddr,
    pub log_format: LogFormat,
    pub log_filter: String,
}

/// The flags as given (None when absent).
#[derive(Clone, Debug, Default)]
pub struct GlobalFlags {
    pub http_addr: Option<String>,
    pub log_format: Option<String>,
    pub log_level: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    #[error(
        "invalid {source_name} '{value}': expected an address like 127.0.0.1:9710 or 0.0.0.0:9710"
    )]
    HttpAddr {
        source_name: &'static str,
        value: String,
    },
    #[error("invalid {source_name}: {reason}")]
    LogFormat {
        source_name: &'static str,
        reason: String,
    },
    #[error("invalid {source_name} {reason}")]
    LogFilter {
        source_name: &'static str,
        reason: String,
    },
}

impl GlobalConfig {
    /// `env` looks a variable up (the process environment in `main`, a map in tests).
    pub fn resolve(
        flags: &GlobalFlags,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        Self::resolve_layers(flags, env, &GlobalFlags::default())
    }

    /// Like `resolve`, with the configuration file's values (same shape as the flags) below
    /// the environment.
    pub fn resolve_layers(
        flags: &GlobalFlags,
        env: impl Fn(&str) -> Option<String>,
        file: &GlobalFlags,
    ) -> Result<Self, ConfigError> {
        // Each value with the name of where it came from, for error messages.
        let pick = |flag: &Option<String>,
                    flag_name: &'static str,
                    var: &'static str,
                    in_file: &Option<String>,
                    file_name: &'static str| {
            match (flag, env(var)) {
                (Some(v), _) => (Some(v.clone()), flag_name),
                (None, Some(v)) => (Some(v), var),
                (None, None) => (in_file.clone(), file_name),
            }
        };
        let (http, http_src) = pick(
            &flags.http_addr,
            "--http-addr",
            "HTTP_ADDR",
            &file.http_addr,
            "[http] addr",
        );
        let http_addr = match http {
            Some(v) => v.trim().parse().map_err(|_| ConfigError::HttpAddr {
                source_name: http_src,
                value: v.chars().take(64).collect(),
            })?,
            None => DEFAULT_HTTP_ADDR
                .parse()
                .expect("the default HTTP address is valid"),
        };
        let (fmt, fmt_src) = pick(
            &flags.log_format,
            "--log-format",
            "LOG_FORMAT",
            &file.log_format,
            "[log] format",
        );
        let log_format = match fmt {
            Some(v) => v.parse().map_err(|reason| ConfigError::LogFormat {
                source_name: fmt_src,
                reason,
            })?,
            None => LogFormat::Json,
        };
        let (level, level_src) = pick(
            &flags.log_level,
            "--log-level",
            "RUST_LOG",
            &file.log_level,
            "[log] level",
        );
        let log_filter = level
            .filter(|l| !l.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_LOG_LEVEL.to_owned());
        // Checked here, not only when the logger is installed, so the error names its source.
        super::logging::parse_filter(&log_filter).map_err(|reason| ConfigError::LogFilter {
            source_name: level_src,
            reason,
        })?;
        Ok(GlobalConfig {
            http_addr,
            log_format,
            log_filter,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn the_file_sits_between_the_environment_and_the_default() {
        let file = GlobalFlags {
            http_addr: Some("127.0.0.1:7000".into()),
            log_format: Some("pretty".into()),
            log_level: Some("debug".into()),
        };
        let c =
            GlobalConfig::resolve_layers(&GlobalFlags::default(), env(&[]), &file).expect("valid");
        assert_eq!(c.http_addr.to_string(), "127.0.0.1:7000");
        assert_eq!(c.log_filter, "debug");
        let c = GlobalConfig::resolve_layers(
            &GlobalFlags::default(),
            env(&[("HTTP_ADDR", "127.0.0.1:8000")]),
            &file,
        )
        .expect("valid");
        assert_eq!(c.http_addr.to_string(), "127.0.0.1:8000");
        let flags = GlobalFlags {
            http_addr: Some("127.0.0.1:9000".into()),
            ..GlobalFlags::default()
        };
        let c =
            GlobalConfig::resolve_layers(&flags, env(&[("HTTP_ADDR", "127.0.0.1:8000")]), &file)
                .expect("valid");
        assert_eq!(c.http_addr.to_string(), "127.0.0.1:9000");
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let c =
            GlobalConfig::resolve(&GlobalFlags::default(), env(&[])).expect("defaults are valid");
        assert_eq!(c.http_addr.to_string(), DEFAULT_HTTP_ADDR);
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.log_filter, "info");
    }

    #[test]
    fn environment_overrides_defaults_and_flags_override_environment() {
        let e = env(&[
            ("HTTP_ADDR", "0.0.0.0:9999"),
            ("LOG_FORMAT", "pretty"),
            ("RUST_LOG", "debug"),
        ]);
        let c = GlobalConfig::resolve(&GlobalFlags::default(), &e).expect("valid env");
        assert_eq!(c.http_addr.to_string(), "0.0.0.0:9999");
        assert_eq!(c.log_format, LogFormat::Pretty);
        assert_eq!(c.log_filter, "debug");
        let flags = GlobalFlags {
            http_addr: Some("127.0.0.1:1234".into()),
            log_format: Some("json".into()),
            log_level: Some("trace".into()),
        };
        let c = GlobalConfig::resolve(&flags, &e).expect("valid flags");
        assert_eq!(c.http_addr.to_string(), "127.0.0.1:1234");
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.log_filter, "trace");
    }

    #[test]
    fn errors_say_which_source_was_wrong() {
        let e = GlobalConfig::resolve(&GlobalFlags::default(), env(&[("HTTP_ADDR", "localhost")]))
            .expect_err("bad env");
        assert!(e.to_string().contains("HTTP_ADDR"), "{e}");
        let flags = GlobalFlags {
            log_format: Some("xml".into()),
            ..Default::default()
        };
        let e = GlobalConfig::resolve(&flags, env(&[])).expect_err("bad flag");
        assert!(e.to_string().contains("--log-format"), "{e}");
        let e = GlobalConfig::resolve(&GlobalFlags::default(), env(&[("RUST_LOG", "srt=loud")]))
            .expect_err("bad filter");
        assert_eq!(
            e.to_string(),
            "invalid RUST_LOG 'srt=loud': expected off, error, warn, info, debug, trace or target=level"
        );
        let flags = GlobalFlags {
            log_level: Some("info,[conn]=debug".into()),
            ..Default::default()
        };
        let e = GlobalConfig::resolve(&flags, env(&[])).expect_err("bad flag");
        assert!(
            e.to_string()
                .starts_with("invalid --log-level '[conn]=debug'"),
            "{e}"
        );
        let file = GlobalFlags {
            log_level: Some("srt=loud".into()),
            ..Default::default()
        };
        let e = GlobalConfig::resolve_layers(&GlobalFlags::default(), env(&[]), &file)
            .expect_err("bad file value");
        assert!(
            e.to_string().starts_with("invalid [log] level 'srt=loud'"),
            "{e}"
        );
        let file = GlobalFlags {
            http_addr: Some("localhost".into()),
            ..Default::default()
        };
        let e = GlobalConfig::resolve_layers(&GlobalFlags::default(), env(&[]), &file)
            .expect_err("bad file value");
        assert!(e.to_string().contains("[http] addr"), "{e}");
    }
}
