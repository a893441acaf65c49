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
        let env = |var: &str| {
            env(var).or_else(|| match var {
                "HTTP_ADDR" => file.http_addr.clone(),
                "LOG_FORMAT" => file.log_format.clone(),
                "RUST_LOG" => file.log_level.clone(),
                _ => None,
            })
        };
        let (http, http_src) = pick(&flags.http_addr, "--http-addr", "HTTP_ADDR", &env);
        let http_addr = match http {
            Some(v) => v.trim().parse().map_err(|_| ConfigError::HttpAddr {
                source_name: http_src,
                value: v.chars().take(64).collect(),
            })?,
            None => DEFAULT_HTTP_ADDR
                .parse()
                .expect("the default HTTP address is valid"),
        };
        let (fmt, fmt_src) = pick(&flags.log_format, "--log-format", "LOG_FORMAT", &env);
        let log_format = match fmt {
            Some(v) => v.parse().map_err(|reason| ConfigError::LogFormat {
                source_name: fmt_src,
                reason,
            })?,
            None => LogFormat::Json,
        };
        let (level, _) = pick(&flags.log_level, "--log-level", "RUST_LOG", &env);
        let log_filter = level
            .filter(|l| !l.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_LOG_LEVEL.to_owned());
        Ok(GlobalConfig {
            http_addr,
            log_format,
            log_filter,
        })
    }
}

fn pick(
    flag: &Option<String>,
    flag_name: &'static str,
    var: &'static str,
    env: &impl Fn(&str) -> Option<String>,
) -> (Option<String>, &'static str) {
    match flag {
        Some(v) => (Some(v.clone()), flag_name),
        None => (env(var), var),
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
    }
}
