//! The configuration file (`run --config relay.toml`): its shape, as written by the operator.
//! Strings are kept as written, secret references included, so the file can be written back
//! (`--persist`) without ever holding a secret.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(default, skip_serializing_if = "Http::is_empty")]
    pub http: Http,
    #[serde(default, skip_serializing_if = "Log::is_empty")]
    pub log: Log,
    /// Route settings every route starts from.
    #[serde(default, skip_serializing_if = "RouteOptions::is_empty")]
    pub defaults: RouteOptions,
    /// Shared SRT listeners: one port, streams chosen by Stream ID.
    #[serde(default, rename = "srt_server", skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<ServerConfig>,
    #[serde(default, rename = "route", skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<RouteConfig>,
}

/// A shared SRT listener. Routes name it (`server = "..."`) instead of giving an input URI.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    pub name: String,
    /// `srt://[host]:port?options`: the options apply to every caller; `passphrase` is the
    /// default of streams that set none.
    pub listen: String,
    /// The stream of callers that send no Stream ID (some cameras and players cannot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_stream: Option<String>,
    /// SLS-style `DOMAIN/NAME` Stream IDs: the domains that mean publish and play (default
    /// SRT Live Server's `uplive.sls.com` and `live.sls.com`; `publish/` and `play/` always
    /// work).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish_domains: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub play_domains: Option<Vec<String>>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Http {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addr: Option<String>,
    /// Bearer token for the mutating API; may be a secret reference (`${API_TOKEN}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

impl Http {
    fn is_empty(&self) -> bool {
        self.addr.is_none() && self.token.is_none()
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Log {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
}

impl Log {
    fn is_empty(&self) -> bool {
        self.level.is_none() && self.format.is_none()
    }
}

/// Per-route settings; in `[defaults]` they apply to every route, in a route they override.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconnect_min_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconnect_max_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_packets: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_buffer_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bitrate: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_buffer_memory_mb: Option<u64>,
}

impl RouteOptions {
    fn is_empty(&self) -> bool {
        *self == RouteOptions::default()
    }

    /// `self` where set, else `base`.
    pub fn over(&self, base: &RouteOptions) -> RouteOptions {
        RouteOptions {
            profile: self.profile.clone().or_else(|| base.profile.clone()),
            idle_timeout_ms: self.idle_timeout_ms.or(base.idle_timeout_ms),
            reconnect_min_ms: self.reconnect_min_ms.or(base.reconnect_min_ms),
            reconnect_max_ms: self.reconnect_max_ms.or(base.reconnect_max_ms),
            queue_packets: self.queue_packets.or(base.queue_packets),
            time_buffer_ms: self.time_buffer_ms.or(base.time_buffer_ms),
            max_bitrate: self
                .max_bitrate
                .clone()
                .or_else(|| base.max_bitrate.clone()),
            time_buffer_memory_mb: self.time_buffer_memory_mb.or(base.time_buffer_memory_mb),
        }
    }
}

/// One route. Its options are the fields of `RouteOptions`, written inline (serde's
/// `flatten` would lose `deny_unknown_fields`, and a typo must be an error).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    pub name: String,
    /// The input URI; or `server` (and `stream`) for a stream published on a shared listener.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub input: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// The name callers give in their Stream ID (default: the route's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    /// SRT passphrases for this stream's publisher and players (default: the server's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish_passphrase: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub play_passphrase: Option<String>,
    /// Credentials callers must give in their Stream ID (`publish:NAME:USER:PASS`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish_user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish_password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub play_user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub play_password: Option<String>,
    /// `always` (default): a new publisher session replaces the current one at once.
    /// `when_idle`: it is refused while the current one sends (two encoders on one stream
    /// then do not take it from each other), and takes over an idle or half-open one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publisher_takeover: Option<String>,
    /// Players of the stream served at once at most (default: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_players: Option<u64>,
    #[serde(default)]
    pub outputs: Vec<OutputConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconnect_min_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconnect_max_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_packets: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_buffer_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bitrate: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_buffer_memory_mb: Option<u64>,
}

impl RouteConfig {
    pub fn options(&self) -> RouteOptions {
        RouteOptions {
            profile: self.profile.clone(),
            idle_timeout_ms: self.idle_timeout_ms,
            reconnect_min_ms: self.reconnect_min_ms,
            reconnect_max_ms: self.reconnect_max_ms,
            queue_packets: self.queue_packets,
            time_buffer_ms: self.time_buffer_ms,
            max_bitrate: self.max_bitrate.clone(),
            time_buffer_memory_mb: self.time_buffer_memory_mb,
        }
    }
}

/// An output: a URI, or a table with a name (stable across reloads) and options.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OutputConfig {
    Uri(String),
    Table {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        uri: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        time_buffer_ms: Option<u64>,
    },
}

impl OutputConfig {
    pub fn uri(&self) -> &str {
        match self {
            OutputConfig::Uri(u) | OutputConfig::Table { uri: u, .. } => u,
        }
    }

    pub fn name(&self) -> Option<&str> {
        match self {
            OutputConfig::Uri(_) => None,
            OutputConfig::Table { name, .. } => name.as_deref(),
        }
    }

    pub fn time_buffer_ms(&self) -> Option<u64> {
        match self {
            OutputConfig::Uri(_) => None,
            OutputConfig::Table { time_buffer_ms, .. } => *time_buffer_ms,
        }
    }
}

impl ConfigFile {
    /// Parses TOML; the error names the line and the key.
    pub fn parse(text: &str) -> Result<ConfigFile, String> {
        toml::from_str(text).map_err(|e| {
            // toml's messages span several lines (a caret under the source): keep one.
            let msg = e.message().to_owned();
            match e.span() {
                Some(span) => {
                    let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
                    format!("line {line}: {msg}")
                }
                None => msg,
            }
        })
    }

    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_shape_parses() {
        let c = ConfigFile::parse(
            r#"
[http]
addr = "127.0.0.1:9710"

[[route]]
name = "cam1"
input = "srt://:9000?mode=listener"
outputs = ["srt://studio.example:9001", "udp://127.0.0.1:5000"]

[[route]]
name = "cam2"
input = "rist://@0.0.0.0:8000"
profile = "simple"
time_buffer_ms = 100
outputs = [
  { name = "studio", uri = "srt://studio.example:9002?passphrase=${SRT_PASSPHRASE}" },
  { uri = "udp://239.1.1.1:5000", time_buffer_ms = 500 },
]
"#,
        )
        .expect("valid");
        assert_eq!(c.http.addr.as_deref(), Some("127.0.0.1:9710"));
        assert_eq!(c.routes.len(), 2);
        assert_eq!(c.routes[0].outputs[1].uri(), "udp://127.0.0.1:5000");
        assert_eq!(c.routes[1].options().profile.as_deref(), Some("simple"));
        assert_eq!(c.routes[1].outputs[0].name(), Some("studio"));
        assert_eq!(c.routes[1].outputs[1].time_buffer_ms(), Some(500));
        let again = ConfigFile::parse(&c.to_toml()).expect("round trip");
        assert_eq!(again, c);
    }

    #[test]
    fn unknown_keys_and_bad_types_name_the_line() {
        let e = ConfigFile::parse("[[route]]\nname = \"a\"\ninput = \"srt://:1\"\nlatncy = 5\n")
            .expect_err("unknown key");
        assert!(e.contains("line 4") && e.contains("latncy"), "{e}");
        let e = ConfigFile::parse("[http]\naddr = 5\n").expect_err("type");
        assert!(e.starts_with("line 2"), "{e}");
    }
}
