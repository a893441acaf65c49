//! A configuration checked whole and turned into what routes need: every URI parsed (secret
//! references expanded), every name unique, no two routes binding the same port, every time
//! buffer within its memory cap. Errors come one per problem, each naming the route and field.

use super::file::{ConfigFile, RouteConfig, RouteOptions, ServerConfig};
use super::secrets;
use crate::common::config::GlobalFlags;
use crate::common::redact::Secret;
use crate::endpoint;
use crate::relay::link::binds_collide;
use crate::relay::TransportRelay;
use crate::rist::uri::Profile;
use crate::route::{OutputSpec, RouteSettings, RouteSpec};
use crate::srt::server::directory::{Access, Settings};
use crate::srt::server::stream::StreamEndpoint;
use crate::srt::server::ServerSpec;
use crate::srt::uri::{Mode, SrtEndpoint};
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

pub struct Plan {
    /// The file's global settings, below flags and environment.
    pub globals: GlobalFlags,
    pub token: Option<Secret>,
    pub servers: Vec<ServerPlan>,
    pub routes: Vec<RoutePlan>,
    /// The file as written (secret references unexpanded), for `--persist`.
    pub file: ConfigFile,
}

#[derive(Clone)]
pub struct RoutePlan {
    pub name: String,
    pub input: Arc<dyn TransportRelay>,
    /// Identity of the expanded input URI (a hash: no secret kept for comparing).
    pub input_key: u64,
    pub options: RouteOptions,
    pub settings: RouteSettings,
    pub outputs: Vec<OutputPlan>,
    pub config: RouteConfig,
}

#[derive(Clone)]
/// The servers a route may name: those that planned, and every name in the file.
pub struct Servers<'a> {
    pub planned: &'a [ServerPlan],
    pub named: Vec<&'a str>,
}

#[derive(Clone)]
pub struct ServerPlan {
    pub spec: ServerSpec,
    /// Identity of the expanded listen URI and settings: a change restarts the listener.
    pub key: u64,
}

/// The output a shared listener's players are served on.
pub const PLAYERS_OUTPUT: &str = "players";

#[derive(Clone)]
pub struct OutputPlan {
    pub name: String,
    pub endpoint: Arc<dyn TransportRelay>,
    pub key: u64,
    pub time_buffer: Duration,
}

impl OutputPlan {
    pub fn spec(&self) -> OutputSpec {
        OutputSpec {
            name: self.name.clone(),
            endpoint: self.endpoint.clone(),
            time_buffer: self.time_buffer,
        }
    }
}

impl Plan {
    /// Whether a route or a shared listener (SRT) speaks `transport`.
    pub fn uses(&self, transport: &str) -> bool {
        (transport == "srt" && !self.servers.is_empty())
            || self.routes.iter().any(|r| r.spec().uses(transport))
    }
}

impl RoutePlan {
    pub fn spec(&self) -> RouteSpec {
        RouteSpec {
            name: self.name.clone(),
            input: self.input.clone(),
            outputs: self.outputs.iter().map(OutputPlan::spec).collect(),
            settings: self.settings.clone(),
        }
    }

    /// Same input, same route settings: the route can stay and only outputs change.
    pub fn same_input(&self, other: &RoutePlan) -> bool {
        self.input_key == other.input_key && self.options == other.options
    }
}

fn key(s: &str) -> u64 {
    let mut h = DefaultHasher::new();
    s.hash(&mut h);
    h.finish()
}

pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

/// The defaults of every route option, as the command line has them.
pub fn builtin_defaults() -> RouteOptions {
    RouteOptions {
        profile: Some("main".into()),
        idle_timeout_ms: Some(5000),
        reconnect_min_ms: Some(250),
        reconnect_max_ms: Some(10_000),
        queue_packets: Some(2048),
        time_buffer_ms: Some(0),
        max_bitrate: Some("50M".into()),
        time_buffer_memory_mb: Some(256),
    }
}

fn range(errors: &mut Vec<String>, at: &str, field: &str, v: u64, lo: u64, hi: u64) -> u64 {
    if !(lo..=hi).contains(&v) {
        errors.push(format!("{at} {field}: {v} is outside {lo}..={hi}"));
    }
    v.clamp(lo, hi)
}

/// Checks one route against `defaults` (already over the built-in ones).
pub fn plan_route(
    route: &RouteConfig,
    defaults: &RouteOptions,
    servers: &Servers<'_>,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<RoutePlan, Vec<String>> {
    let mut errors = Vec::new();
    let at = format!(
        "route '{}'",
        route.name.chars().take(64).collect::<String>()
    );
    if !valid_name(&route.name) {
        errors.push(format!(
            "{at} name: use 1 to 64 letters, digits, '-', '_' or '.'"
        ));
    }
    let o = route.options().over(defaults);
    let profile = match Profile::parse(o.profile.as_deref().unwrap_or("main")) {
        Ok(p) => p,
        Err(e) => {
            errors.push(format!("{at} profile: {e}"));
            Profile::Main
        }
    };
    let idle = range(
        &mut errors,
        &at,
        "idle_timeout_ms",
        o.idle_timeout_ms.unwrap_or(5000),
        100,
        3_600_000,
    );
    let rmin = range(
        &mut errors,
        &at,
        "reconnect_min_ms",
        o.reconnect_min_ms.unwrap_or(250),
        10,
        600_000,
    );
    let rmax = range(
        &mut errors,
        &at,
        "reconnect_max_ms",
        o.reconnect_max_ms.unwrap_or(10_000),
        10,
        3_600_000,
    );
    let queue = range(
        &mut errors,
        &at,
        "queue_packets",
        o.queue_packets.unwrap_or(2048),
        16,
        1_000_000,
    );
    let tb_default = range(
        &mut errors,
        &at,
        "time_buffer_ms",
        o.time_buffer_ms.unwrap_or(0),
        0,
        endpoint::MAX_TIME_BUFFER_MS,
    );
    let cap_mb = range(
        &mut errors,
        &at,
        "time_buffer_memory_mb",
        o.time_buffer_memory_mb.unwrap_or(256),
        1,
        65_536,
    );
    let max_bitrate = match endpoint::parse_bitrate(o.max_bitrate.as_deref().unwrap_or("50M")) {
        Ok(b) => b,
        Err(e) => {
            errors.push(format!("{at} max_bitrate: {e}"));
            50_000_000
        }
    };
    let mut settings = RouteSettings {
        idle_timeout: Duration::from_millis(idle),
        queue_packets: queue as usize,
        max_bitrate,
        ..RouteSettings::default()
    };
    settings.backoff.initial = Duration::from_millis(rmin);
    settings.backoff.max = Duration::from_millis(rmax.max(rmin));

    // A shared listener's stream: its publisher is the input, its players one output.
    let mut players: Option<Arc<dyn TransportRelay>> = None;
    let input = match (&route.server, route.input.is_empty()) {
        (Some(_), false) => {
            errors.push(format!(
                "{at}: give either input (a URI) or server (a shared SRT listener), not both"
            ));
            None
        }
        (None, true) => {
            errors.push(format!(
                "{at} input: missing (or name a shared SRT listener with server)"
            ));
            None
        }
        (Some(server), true) => {
            server_input(route, server, servers, &at, env, &mut errors).map(|(ep, key)| {
                players = Some(Arc::new(ep.clone()));
                (Arc::new(ep) as Arc<dyn TransportRelay>, key)
            })
        }
        (None, false) => uri_input(route, profile, &at, env, &mut errors),
    };
    if route.server.is_none() {
        for (field, set) in [
            ("stream", route.stream.is_some()),
            ("publish_passphrase", route.publish_passphrase.is_some()),
            ("play_passphrase", route.play_passphrase.is_some()),
            ("publish_user", route.publish_user.is_some()),
            ("publish_password", route.publish_password.is_some()),
            ("play_user", route.play_user.is_some()),
            ("play_password", route.play_password.is_some()),
            ("publisher_takeover", route.publisher_takeover.is_some()),
            ("max_players", route.max_players.is_some()),
        ] {
            if set {
                errors.push(format!(
                    "{at} {field}: applies only to a route with a server"
                ));
            }
        }
    }
    if route.outputs.is_empty() && route.server.is_none() {
        errors.push(format!("{at} outputs: a route needs at least one output"));
    }
    let mut outputs: Vec<OutputPlan> = Vec::new();
    if let Some(endpoint) = players {
        if route
            .outputs
            .iter()
            .any(|o| o.name() == Some(PLAYERS_OUTPUT))
        {
            errors.push(format!(
                "{at} output '{PLAYERS_OUTPUT}' name: reserved for the players of the stream"
            ));
        }
        outputs.push(OutputPlan {
            name: PLAYERS_OUTPUT.to_owned(),
            endpoint,
            key: 0,
            time_buffer: Duration::ZERO,
        });
    }
    plan_outputs(
        route,
        profile,
        tb_default,
        &settings,
        cap_mb,
        max_bitrate,
        &at,
        env,
        &mut errors,
        &mut outputs,
    );
    match (input, errors.is_empty()) {
        (Some((input, input_key)), true) => Ok(RoutePlan {
            name: route.name.clone(),
            input,
            input_key,
            options: o,
            settings,
            outputs,
            config: route.clone(),
        }),
        _ => Err(errors),
    }
}

fn uri_input(
    route: &RouteConfig,
    profile: Profile,
    at: &str,
    env: &impl Fn(&str) -> Option<String>,
    errors: &mut Vec<String>,
) -> Option<(Arc<dyn TransportRelay>, u64)> {
    match secrets::expand(&route.input, env) {
        Err(e) => {
            errors.push(format!("{at} input: {e}"));
            None
        }
        Ok(uri) => match endpoint::parse(&uri, profile) {
            Err(e) => {
                errors.push(format!("{at} input: {e}"));
                None
            }
            Ok(ep) if ep.time_buffer.is_some() => {
                errors.push(format!(
                    "{at} input: '{}' applies to outputs",
                    endpoint::TIME_BUFFER_KEY
                ));
                None
            }
            Ok(ep) => Some((ep.transport, key(&uri))),
        },
    }
}

#[allow(clippy::too_many_arguments)]
fn plan_outputs(
    route: &RouteConfig,
    profile: Profile,
    tb_default: u64,
    settings: &RouteSettings,
    cap_mb: u64,
    max_bitrate: u64,
    at: &str,
    env: &impl Fn(&str) -> Option<String>,
    errors: &mut Vec<String>,
    outputs: &mut Vec<OutputPlan>,
) {
    for (i, out) in route.outputs.iter().enumerate() {
        let name = out
            .name()
            .map(str::to_owned)
            .unwrap_or_else(|| format!("out{}", i + 1));
        let oat = format!(
            "{at} output '{}'",
            name.chars().take(64).collect::<String>()
        );
        if !valid_name(&name) {
            errors.push(format!(
                "{oat} name: use 1 to 64 letters, digits, '-', '_' or '.'"
            ));
        }
        if outputs.iter().any(|o| o.name == name) {
            errors.push(format!("{oat} name: given twice in the route"));
        }
        let uri = match secrets::expand(out.uri(), env) {
            Ok(u) => u,
            Err(e) => {
                errors.push(format!("{oat}: {e}"));
                continue;
            }
        };
        let ep = match endpoint::parse(&uri, profile) {
            Ok(ep) => ep,
            Err(e) => {
                errors.push(format!("{oat}: {e}"));
                continue;
            }
        };
        let tb_ms = match (out.time_buffer_ms(), ep.time_buffer) {
            (Some(_), Some(_)) => {
                errors.push(format!(
                    "{oat}: time_buffer_ms is given both in the table and in the URI"
                ));
                tb_default
            }
            (Some(ms), None) => range(
                errors,
                &oat,
                "time_buffer_ms",
                ms,
                0,
                endpoint::MAX_TIME_BUFFER_MS,
            ),
            (None, Some(d)) => d.as_millis() as u64,
            (None, None) => tb_default,
        };
        let time_buffer = Duration::from_millis(tb_ms);
        let need = settings.time_buffer_bytes(time_buffer);
        if tb_ms > 0 && need > cap_mb << 20 {
            errors.push(format!(
                "{oat}: a {tb_ms} ms time buffer at max_bitrate {} Mbps needs about {} MB, more than time_buffer_memory_mb {cap_mb}",
                max_bitrate / 1_000_000,
                need.div_ceil(1 << 20)
            ));
        }
        outputs.push(OutputPlan {
            name,
            endpoint: ep.transport,
            // The time buffer is part of an output's identity: changing it restarts the output.
            key: key(&format!("{uri}\u{0}{tb_ms}")),
            time_buffer,
        });
    }
}

/// A stream name as callers write it in their Stream ID: `cam1`, `live/feed1`.
pub fn valid_stream(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 256
        && !name.starts_with('/')
        && !name.ends_with('/')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
}

fn stream_name(route: &RouteConfig) -> String {
    route.stream.clone().unwrap_or_else(|| route.name.clone())
}

/// The access rules of a server route's stream, secrets expanded.
fn access(
    route: &RouteConfig,
    at: &str,
    env: &impl Fn(&str) -> Option<String>,
    errors: &mut Vec<String>,
) -> Access {
    let takeover_when_idle = match route.publisher_takeover.as_deref() {
        None | Some("always") => false,
        Some("when_idle") => true,
        Some(_) => {
            errors.push(format!("{at} publisher_takeover: use always or when_idle"));
            false
        }
    };
    let mut secret = |field: &str, v: &Option<String>, passphrase: bool| -> Option<Secret> {
        let v = v.as_ref()?;
        if v == crate::common::redact::MASK {
            errors.push(format!(
                "{at} {field}: '***' is the mask the API shows; give the value or a ${{VAR}} reference"
            ));
            return None;
        }
        match secrets::expand_secret(field, v, env) {
            // SRT's limits (SRTO_PASSPHRASE): 10 to 79 characters.
            Ok(p) if passphrase && !(10..=79).contains(&p.len()) => {
                errors.push(format!("{at} {field}: must be 10 to 79 characters"));
                None
            }
            Ok(p) if p.is_empty() => {
                errors.push(format!("{at} {field}: is empty"));
                None
            }
            Ok(p) => Some(Secret::new(p)),
            Err(e) => {
                errors.push(format!("{at} {field}: {e}"));
                None
            }
        }
    };
    let publish_passphrase = secret("publish_passphrase", &route.publish_passphrase, true);
    let play_passphrase = secret("play_passphrase", &route.play_passphrase, true);
    let publish_password = secret("publish_password", &route.publish_password, false);
    let play_password = secret("play_password", &route.play_password, false);
    let mut pair =
        |side: &str, user: &Option<String>, password: Option<Secret>| match (user, password) {
            (Some(u), Some(p)) if !u.is_empty() && !u.contains(':') => Some((u.clone(), p)),
            (Some(_), Some(_)) => {
                errors.push(format!("{at} {side}_user: must be non-empty, without ':'"));
                None
            }
            (None, None) => None,
            _ => {
                errors.push(format!(
                    "{at} {side}_user: give both {side}_user and {side}_password"
                ));
                None
            }
        };
    Access {
        publish_passphrase,
        play_passphrase,
        publish_credentials: pair("publish", &route.publish_user, publish_password),
        play_credentials: pair("play", &route.play_user, play_password),
        takeover_when_idle,
        max_players: route
            .max_players
            .map(|m| range(errors, at, "max_players", m, 1, 100_000) as usize),
    }
}

fn server_input(
    route: &RouteConfig,
    server: &str,
    servers: &Servers<'_>,
    at: &str,
    env: &impl Fn(&str) -> Option<String>,
    errors: &mut Vec<String>,
) -> Option<(StreamEndpoint, u64)> {
    let stream = stream_name(route);
    if !valid_stream(&stream) {
        errors.push(format!(
            "{at} stream: use 1 to 256 letters, digits, '-', '_', '.' or '/' (not first or last)"
        ));
    }
    let access = access(route, at, env, errors);
    let Some(s) = servers.planned.iter().find(|s| s.spec.name == server) else {
        if servers.named.contains(&server) {
            // Configured but invalid: the server's own errors say why.
            return None;
        }
        errors.push(format!(
            "{at} server: no srt_server named '{}'",
            server.chars().take(64).collect::<String>()
        ));
        return None;
    };
    // Identity: server, stream and access; secrets enter only hashed.
    let id = format!(
        "{server}\u{0}{stream}\u{0}{access:?}\u{0}{}",
        secret_key(&access)
    );
    Some((
        StreamEndpoint {
            server: server.to_owned(),
            stream,
            access,
            listen: s.spec.listen.clone(),
        },
        key(&id),
    ))
}

fn secret_key(a: &Access) -> u64 {
    let e = |s: &Option<Secret>| {
        s.as_ref()
            .map(|s| s.expose().to_owned())
            .unwrap_or_default()
    };
    let c = |s: &Option<(String, Secret)>| {
        s.as_ref()
            .map(|(u, p)| format!("{u}:{}", p.expose()))
            .unwrap_or_default()
    };
    key(&format!(
        "{}\u{0}{}\u{0}{}\u{0}{}",
        e(&a.publish_passphrase),
        e(&a.play_passphrase),
        c(&a.publish_credentials),
        c(&a.play_credentials)
    ))
}

/// Checks the shared SRT listeners.
fn plan_servers(
    file: &ConfigFile,
    env: &impl Fn(&str) -> Option<String>,
    errors: &mut Vec<String>,
) -> Vec<ServerPlan> {
    let mut plans: Vec<ServerPlan> = Vec::new();
    for s in &file.servers {
        match plan_server(s, file, env) {
            Ok(p) if plans.iter().any(|o| o.spec.name == p.spec.name) => errors.push(format!(
                "srt_server '{}' name: given to more than one server",
                p.spec.name
            )),
            Ok(p) => plans.push(p),
            Err(mut e) => errors.append(&mut e),
        }
    }
    plans
}

/// SLS domains as given, or the default; each must be a host name.
fn domains(
    errors: &mut Vec<String>,
    at: &str,
    field: &str,
    given: &Option<Vec<String>>,
    default: &str,
) -> Vec<String> {
    let list = given.clone().unwrap_or_else(|| vec![default.to_owned()]);
    for d in &list {
        let ok = !d.is_empty()
            && d.len() <= 253
            && d.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if !ok {
            errors.push(format!(
                "{at} {field}: '{}' is not a domain name",
                d.chars().take(64).collect::<String>()
            ));
        }
    }
    list
}

fn plan_server(
    s: &ServerConfig,
    file: &ConfigFile,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<ServerPlan, Vec<String>> {
    let mut errors = Vec::new();
    let at = format!(
        "srt_server '{}'",
        s.name.chars().take(64).collect::<String>()
    );
    if !valid_name(&s.name) {
        errors.push(format!(
            "{at} name: use 1 to 64 letters, digits, '-', '_' or '.'"
        ));
    }
    let listen = match secrets::expand(&s.listen, env).and_then(|u| {
        SrtEndpoint::parse(&u)
            .map_err(|e| e.to_string())
            .map(|ep| (u, ep))
    }) {
        Ok((_, ep)) if ep.mode != Mode::Listener => {
            errors.push(format!(
                "{at} listen: must be a listener (srt://:PORT or mode=listener)"
            ));
            None
        }
        Ok((_, ep)) if ep.options.streamid.is_some() => {
            errors.push(format!(
                "{at} listen: streamid is what callers send, not a listener option"
            ));
            None
        }
        Ok(ok) => Some(ok),
        Err(e) => {
            errors.push(format!("{at} listen: {e}"));
            None
        }
    };
    if let Some(d) = &s.default_stream {
        let served = file
            .routes
            .iter()
            .any(|r| r.server.as_deref() == Some(s.name.as_str()) && stream_name(r) == *d);
        if !served {
            errors.push(format!(
                "{at} default_stream: no route of this server serves stream '{}'",
                d.chars().take(64).collect::<String>()
            ));
        }
    }
    let settings = Settings {
        default_stream: s.default_stream.clone(),
        publish_domains: domains(
            &mut errors,
            &at,
            "publish_domains",
            &s.publish_domains,
            "uplive.sls.com",
        ),
        play_domains: domains(
            &mut errors,
            &at,
            "play_domains",
            &s.play_domains,
            "live.sls.com",
        ),
    };
    if let Some(d) = settings
        .publish_domains
        .iter()
        .find(|d| settings.play_domains.contains(d))
    {
        errors.push(format!("{at} play_domains: '{d}' is also a publish domain"));
    }
    match (listen, errors.is_empty()) {
        (Some((uri, listen)), true) => Ok(ServerPlan {
            key: key(&format!("{uri}\u{0}{settings:?}")),
            spec: ServerSpec {
                name: s.name.clone(),
                listen,
                settings,
            },
        }),
        _ => Err(errors),
    }
}

/// Checks the whole file. `env` looks environment variables up.
pub fn plan(file: &ConfigFile, env: &impl Fn(&str) -> Option<String>) -> Result<Plan, Vec<String>> {
    let mut errors = Vec::new();
    let defaults = file.defaults.over(&builtin_defaults());
    let servers = plan_servers(file, env, &mut errors);
    let known = Servers {
        planned: &servers,
        named: file.servers.iter().map(|s| s.name.as_str()).collect(),
    };
    let mut routes: Vec<RoutePlan> = Vec::new();
    for r in &file.routes {
        if file.routes.iter().filter(|o| o.name == r.name).count() > 1
            && !errors
                .iter()
                .any(|e: &String| e.starts_with(&format!("route '{}' name: given", r.name)))
        {
            errors.push(format!(
                "route '{}' name: given to more than one route",
                r.name
            ));
        }
        match plan_route(r, &defaults, &known, env) {
            Ok(p) => routes.push(p),
            Err(mut e) => errors.append(&mut e),
        }
    }
    check_streams(file, &mut errors);
    check_binds(&servers, &routes, &mut errors);
    let token = match &file.http.token {
        None => None,
        Some(t) => match secrets::expand(t, env) {
            Ok(v) if v.is_empty() => {
                errors.push("http token: is empty".into());
                None
            }
            Ok(v) => Some(Secret::new(v)),
            Err(e) => {
                errors.push(format!("http token: {e}"));
                None
            }
        },
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Plan {
        globals: GlobalFlags {
            http_addr: file.http.addr.clone(),
            log_format: file.log.format.clone(),
            log_level: file.log.level.clone(),
        },
        token,
        servers,
        routes,
        file: file.clone(),
    })
}

/// A stream is served by one route per server.
fn check_streams(file: &ConfigFile, errors: &mut Vec<String>) {
    for (i, r) in file.routes.iter().enumerate() {
        let Some(server) = &r.server else { continue };
        let stream = stream_name(r);
        if let Some(first) = file.routes[..i]
            .iter()
            .find(|o| o.server.as_ref() == Some(server) && stream_name(o) == stream)
        {
            errors.push(format!(
                "route '{}' stream: '{}' on server '{server}' is already served by route '{}'",
                r.name, stream, first.name
            ));
        }
    }
}

/// No two endpoints of the configuration may bind the same port.
pub fn check_binds(servers: &[ServerPlan], routes: &[RoutePlan], errors: &mut Vec<String>) {
    let mut seen: Vec<((String, u16), String)> = Vec::new();
    for s in servers {
        for b in s.spec.listen.binds(true) {
            let who = format!("srt_server '{}' listen", s.spec.name);
            if let Some((_, other)) = seen.iter().find(|(o, _)| binds_collide(o, &b)) {
                errors.push(format!("{who}: port {} is already bound by {other}", b.1));
            } else {
                seen.push((b, who));
            }
        }
    }
    for r in routes {
        let mut mine: Vec<((String, u16), String)> = r
            .input
            .binds(true)
            .into_iter()
            .map(|b| (b, format!("route '{}' input", r.name)))
            .collect();
        for o in &r.outputs {
            mine.extend(
                o.endpoint
                    .binds(false)
                    .into_iter()
                    .map(|b| (b, format!("route '{}' output '{}'", r.name, o.name))),
            );
        }
        for (b, who) in mine {
            if let Some((_, other)) = seen.iter().find(|(s, _)| binds_collide(s, &b)) {
                errors.push(format!("{who}: port {} is already bound by {other}", b.1));
            } else {
                seen.push((b, who));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(k: &str) -> Option<String> {
        (k == "PASS").then(|| "0123456789abcdef".to_owned())
    }

    fn parse(text: &str) -> Result<Plan, Vec<String>> {
        plan(&ConfigFile::parse(text).expect("toml"), &env)
    }

    #[test]
    fn a_valid_file_becomes_routes() {
        let p = parse(
            r#"
[defaults]
reconnect_min_ms = 100
[[route]]
name = "cam1"
input = "srt://:9000?mode=listener&passphrase=${PASS}"
outputs = ["udp://127.0.0.1:5000", { name = "late", uri = "udp://127.0.0.1:5002", time_buffer_ms = 500 }]
[[route]]
name = "cam2"
input = "rist://@0.0.0.0:8000"
outputs = ["srt://:9100?mode=listener"]
"#,
        )
        .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(p.routes.len(), 2);
        let r = &p.routes[0];
        assert_eq!(r.outputs[0].name, "out1");
        assert_eq!(r.outputs[1].name, "late");
        assert_eq!(r.outputs[1].time_buffer, Duration::from_millis(500));
        assert_eq!(r.settings.backoff.initial, Duration::from_millis(100));
        assert!(r.input.to_string().contains("passphrase=***"));
    }

    #[test]
    fn every_problem_is_reported_with_its_route_and_field() {
        let errors = match parse(
            r#"
[[route]]
name = "a"
input = "srt://:9000?mode=listener"
outputs = ["udp://127.0.0.1:5000"]
[[route]]
name = "a"
input = "udp://0.0.0.0:9000"
outputs = ["srt://x:1?lantency=5"]
[[route]]
name = "b c"
input = "srt://:9200?passphrase=${NOPE}"
outputs = []
[[route]]
name = "d"
input = "rist://@0.0.0.0:8000"
idle_timeout_ms = 1
outputs = [{ uri = "udp://1.2.3.4:5", time_buffer_ms = 60000 }]
max_bitrate = "1G"
[[route]]
name = "e"
input = "udp://0.0.0.0:9000"
outputs = ["udp://127.0.0.1:6000"]
"#,
        ) {
            Ok(_) => panic!("invalid config accepted"),
            Err(e) => e,
        };
        let all = errors.join("\n");
        for want in [
            "route 'a' name: given to more than one route",
            "route 'a' output 'out1': unknown parameter 'lantency'",
            "route 'b c' name:",
            "route 'b c' input: environment variable NOPE is not set",
            "route 'b c' outputs: a route needs at least one output",
            "route 'd' idle_timeout_ms: 1 is outside",
            "route 'd' output 'out1': a 60000 ms time buffer",
            "route 'e' input: port 9000 is already bound by route 'a' input",
        ] {
            assert!(all.contains(want), "missing {want:?} in:\n{all}");
        }
        assert!(errors.iter().all(|e| !e.contains('\n')));
    }
}
