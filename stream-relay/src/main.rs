//! `stream-relay`: relays live SRT streams (RIST and UDP next) with near-zero added latency.
//! This file is the edge: command line, logging, runtime, signals, exit codes.

#![deny(unsafe_code)]

mod demo;

use stream_relay::{common, control, endpoint, http, rist, route, srt};

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use common::config::{GlobalConfig, GlobalFlags};
use route::{OutputSpec, Route, RouteSettings, RouteSpec};
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Exit codes, documented in the README.
pub const EXIT_OK: u8 = 0;
pub const EXIT_RUNTIME: u8 = 1;
pub const EXIT_USAGE: u8 = 2;

/// When the code that only runs at start-up is given back (`common::startup_code`): once the
/// route threads have opened their links too (a few milliseconds), and before the first
/// streams fill their buffers, so that the start-up code does not set the peak of the
/// resident set either.
const RELEASE_STARTUP_CODE_AFTER: Duration = Duration::from_millis(200);

#[derive(Parser, Debug)]
#[command(
    name = "stream-relay",
    version,
    about = "Relay live video over SRT and RIST with near-zero added latency"
)]
struct Cli {
    /// Address of the HTTP server for /health and /metrics [env: HTTP_ADDR] [default: 127.0.0.1:9710]
    #[arg(long, global = true)]
    http_addr: Option<String>,
    /// Log format: json (one object per line) or pretty [env: LOG_FORMAT] [default: json]
    #[arg(long, global = true)]
    log_format: Option<String>,
    /// Log filter, RUST_LOG syntax: error, warn, info, debug, trace [env: RUST_LOG] [default: info]
    #[arg(long, global = true)]
    log_level: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Relay one SRT input to one or more outputs (SRT, RIST, UDP)
    #[command(after_help = SRT_EXAMPLES)]
    Srt(RelayArgs),
    /// Relay one RIST input to one or more outputs (RIST, SRT, UDP)
    #[command(after_help = RIST_EXAMPLES)]
    Rist(RelayArgs),
    /// Relay one UDP (MPEG-TS) input, unicast or multicast, to one or more outputs
    #[command(after_help = UDP_EXAMPLES)]
    Udp(RelayArgs),
    /// Run every route of a configuration file; SIGHUP or POST /api/reload re-reads it
    #[command(after_help = RUN_EXAMPLES)]
    Run(RunArgs),
    /// Push a generated test stream through a real relay route and show the metrics move
    #[command(
        after_help = "Example:\n  stream-relay demo --seconds 30   # then open http://127.0.0.1:9710/ while it runs"
    )]
    Demo(demo::DemoArgs),
    /// Ask a running relay's /health (at --http-addr / HTTP_ADDR): exit 0 when it answers
    /// 200, 1 otherwise. For container health checks and scripts
    #[command(after_help = "Example:\n  HTTP_ADDR=0.0.0.0:9710 stream-relay health && echo up")]
    Health,
}

#[derive(Args, Debug)]
struct RunArgs {
    /// The configuration file (TOML), e.g. relay.toml
    #[arg(short, long)]
    config: std::path::PathBuf,
    /// Write the configuration back to the file after changes made through the API
    #[arg(long)]
    persist: bool,
}

const RUN_EXAMPLES: &str = "Example relay.toml:
  [http]
  addr = \"127.0.0.1:9710\"

  [[route]]
  name = \"cam1\"
  input = \"srt://:9000?mode=listener&passphrase=${SRT_PASSPHRASE}\"
  outputs = [\"srt://studio.example:9001\", \"udp://127.0.0.1:5000\"]

Then: stream-relay run --config relay.toml   (kill -HUP <pid> to reload)";

#[derive(Args, Debug)]
struct RelayArgs {
    /// Input URI of the subcommand's protocol, e.g. 'srt://:9000?mode=listener',
    /// 'rist://@0.0.0.0:8000', 'udp://0.0.0.0:5000'
    #[arg(short, long)]
    input: String,
    /// Output URI, any protocol (repeat for several); add 'time-buffer-ms=N' to delay one
    #[arg(short, long, required = true)]
    output: Vec<String>,
    /// RIST profile of every rist:// URI: simple or main (as librist's tools)
    #[arg(long, default_value = "main")]
    profile: String,
    /// Route name used in logs, metrics labels and /health
    #[arg(long, default_value = "main")]
    name: String,
    #[command(flatten)]
    route: RouteArgs,
}

const SRT_EXAMPLES: &str = "Examples:
  # Larix/Moblin/OBS call us on 9000; a player (OBS, ffplay, VLC) calls us on 9001
  stream-relay srt -i 'srt://:9000?mode=listener' -o 'srt://:9001?mode=listener'
  # Encrypted, pushed on to a studio that listens
  stream-relay srt -i 'srt://:9000?passphrase=0123456789ab' -o 'srt://studio.example:9001?passphrase=0123456789ab'
  # Fan-out: a studio over SRT, a backup over RIST, a multicast copy for monitoring
  stream-relay srt -i 'srt://:9000' -o 'srt://studio.example:9001' -o 'rist://backup.example:8000' -o 'udp://239.1.1.1:5000?ttl=4'";

const UDP_EXAMPLES: &str = "Examples:
  # A hardware encoder's multicast, joined on one interface, lifted onto SRT
  stream-relay udp -i 'udp://239.1.1.1:5000?localaddr=10.0.0.5' -o 'srt://cloud.example:9000?passphrase=0123456789ab'
  # Unicast in, a 500 ms evenly paced copy out to a decoder
  stream-relay udp -i 'udp://0.0.0.0:5000' -o 'udp://10.0.0.9:5004?time-buffer-ms=500'";

const RIST_EXAMPLES: &str = "Examples:
  # ristsender/ffmpeg send to us on 8000; we send on to a receiver listening on 8002
  stream-relay rist -i 'rist://@0.0.0.0:8000' -o 'rist://studio.example:8002'
  # Encrypted output (secret needs aes-type), bigger input buffer for a long first hop
  stream-relay rist -i 'rist://@0.0.0.0:8000?buffer=500' -o 'rist://studio.example:8002?secret=longsharedsecret&aes-type=256'
  # Simple profile (even ports; port + 1 carries RTCP)
  stream-relay rist --profile simple -i 'rist://@0.0.0.0:8000' -o 'rist://127.0.0.1:8002'";

/// `--version`: ours and the versions of the C libraries actually loaded. Both are opened for
/// it (they are not otherwise, without routes of their protocol), so this is built only when
/// asked for.
fn long_version() -> String {
    let libsrt = match srt::version() {
        Ok((major, minor, patch)) => format!("libsrt {major}.{minor}.{patch}"),
        Err(e) => format!("libsrt not loaded: {e}"),
    };
    let librist = match rist::version() {
        Ok(v) => format!("librist {v}"),
        Err(e) => format!("librist not loaded: {e}"),
    };
    format!("{}\n{libsrt}\n{librist}", env!("CARGO_PKG_VERSION"))
}

/// The command line. A `long_version` attribute would be built on every run, and building it
/// opens libsrt: it is added only when `--version` is on the command line.
fn parse_cli() -> Result<Cli, clap::Error> {
    use clap::{CommandFactory, FromArgMatches};
    let mut command = Cli::command();
    if std::env::args_os().skip(1).any(|a| a == "--version") {
        // clap takes a &'static str (without its `string` feature); this runs once, for a
        // process that prints and exits.
        command = command.long_version(long_version().leak() as &'static str);
    }
    let matches = command.try_get_matches()?;
    Cli::from_arg_matches(&matches).map_err(|e| e.format(&mut Cli::command()))
}

#[derive(Args, Debug, Clone)]
pub struct RouteArgs {
    /// Treat an input connection as lost after this many milliseconds without data
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u64).range(100..=3_600_000))]
    idle_timeout_ms: u64,
    /// First reconnection delay, milliseconds (doubles up to --reconnect-max-ms, with jitter)
    #[arg(long, default_value_t = 250, value_parser = clap::value_parser!(u64).range(10..=600_000))]
    reconnect_min_ms: u64,
    /// Longest reconnection delay, milliseconds
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(10..=3_600_000))]
    reconnect_max_ms: u64,
    /// Packets each output may queue while its library is busy; beyond, the oldest are dropped
    #[arg(long, default_value_t = 2048, value_parser = clap::value_parser!(u64).range(16..=1_000_000))]
    queue_packets: u64,
    /// Default time buffer of every output, ms: each packet leaves at its source time + this,
    /// evenly paced (0 = pass-through). An output's 'time-buffer-ms=' overrides it
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=60_000))]
    time_buffer_ms: u64,
    /// Highest stream bitrate the route is sized for, bits/s (e.g. 50M): time buffers hold this
    #[arg(long, default_value = "50M", value_parser = endpoint::parse_bitrate)]
    max_bitrate: u64,
    /// Memory cap per time buffer, MB: a longer buffer at --max-bitrate is refused at start
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=65_536))]
    time_buffer_memory_mb: u64,
}

impl RouteArgs {
    pub fn settings(&self) -> RouteSettings {
        let mut s = RouteSettings {
            idle_timeout: Duration::from_millis(self.idle_timeout_ms),
            queue_packets: self.queue_packets as usize,
            max_bitrate: self.max_bitrate,
            ..RouteSettings::default()
        };
        s.backoff.initial = Duration::from_millis(self.reconnect_min_ms);
        s.backoff.max = Duration::from_millis(self.reconnect_max_ms.max(self.reconnect_min_ms));
        s
    }
}

fn main() -> ExitCode {
    let started = Instant::now();
    let cli = match parse_cli() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_USAGE } else { EXIT_OK });
        }
    };
    let flags = GlobalFlags {
        http_addr: cli.http_addr.clone(),
        log_format: cli.log_format.clone(),
        log_level: cli.log_level.clone(),
    };
    // A configuration file is read and checked whole before anything starts.
    let mut startup = None;
    let mut file_globals = GlobalFlags::default();
    if let Command::Run(args) = &cli.command {
        let file = match control::read_file(&args.config) {
            Ok(f) => f,
            Err(e) => return usage_error(&e),
        };
        let plan = match control::plan::plan(&file, &control::process_env) {
            Ok(p) => p,
            Err(errors) => {
                for e in &errors {
                    eprintln!("stream-relay: error: {e}");
                }
                return ExitCode::from(EXIT_USAGE);
            }
        };
        file_globals = plan.globals.clone();
        startup = Some((args.config.clone(), args.persist, plan));
    }
    let config =
        match GlobalConfig::resolve_layers(&flags, |k| std::env::var(k).ok(), &file_globals) {
            Ok(c) => c,
            Err(e) => return usage_error(&e.to_string()),
        };
    let startup = match startup {
        None => None,
        Some((path, persist, plan)) => {
            let token = plan
                .token
                .clone()
                .or_else(|| control::process_env("API_TOKEN").map(common::redact::Secret::new));
            if token.is_none() && !config.http_addr.ip().is_loopback() {
                return usage_error(&format!(
                    "the control API on {} would accept changes from the network without a token: set [http] token (or API_TOKEN), or bind HTTP to a loopback address",
                    config.http_addr
                ));
            }
            if let Some(t) = &token {
                common::redact::register_secret(t.expose());
            }
            Some(Startup::Config {
                path,
                persist,
                plan: Box::new(plan),
                token,
            })
        }
    };
    // Validate the whole command line before anything starts or logs.
    let spec = match &cli.command {
        Command::Srt(args) | Command::Rist(args) | Command::Udp(args) => {
            let protocol = match &cli.command {
                Command::Srt(_) => "srt",
                Command::Rist(_) => "rist",
                _ => "udp",
            };
            match build_spec(args, protocol) {
                Ok(spec) => Some(spec),
                Err(msg) => return usage_error(&msg),
            }
        }
        Command::Demo(_) | Command::Run(_) => None,
        Command::Health => return health_probe(config.http_addr),
    };
    if let Err(e) = common::logging::init(config.log_format, &config.log_filter) {
        return usage_error(&e);
    }
    install_panic_hook();

    // libsrt and librist are opened when something first needs them (a route, output or
    // server added later opens them then, and a failure is that route's error). What the
    // configuration already uses is opened now, so that a missing or unusable library stops
    // the relay at once.
    let uses = |transport: &str| match &cli.command {
        Command::Srt(_) | Command::Demo(_) if transport == "srt" => true,
        Command::Srt(_) | Command::Rist(_) | Command::Udp(_) => {
            spec.as_ref().is_some_and(|s| s.uses(transport))
        }
        Command::Run(_) => {
            matches!(&startup, Some(Startup::Config { plan, .. }) if plan.uses(transport))
        }
        Command::Demo(_) | Command::Health => false,
    };
    if uses("srt") {
        if let Err(e) = srt::startup() {
            tracing::error!(error = %e, "cannot use libsrt");
            eprintln!("stream-relay: error: cannot use libsrt: {e}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    }
    if uses("rist") {
        if let Err(e) = rist::startup() {
            tracing::error!(error = %e, "cannot use librist");
            eprintln!("stream-relay: error: cannot use librist: {e}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    }
    let libsrt = srt::loaded_version().map_or_else(
        || "not loaded".to_owned(),
        |(major, minor, patch)| format!("{major}.{minor}.{patch}"),
    );
    let librist = rist::loaded_version().unwrap_or_else(|| "not loaded".to_owned());
    tracing::info!(version = env!("CARGO_PKG_VERSION"), libsrt = %libsrt, librist = %librist, "stream-relay starting");

    let code = match cli.command {
        Command::Srt(_) | Command::Rist(_) | Command::Udp(_) => run(
            config,
            Startup::Routes(spec.into_iter().collect()),
            started,
            None,
        ),
        Command::Run(_) => match startup {
            Some(s) => run(config, s, started, None),
            None => ExitCode::from(EXIT_USAGE),
        },
        Command::Demo(args) => demo::run(config, args, started),
        Command::Health => ExitCode::from(EXIT_OK),
    };
    srt::cleanup();
    code
}

/// `stream-relay health`: one GET /health, no logging. A relay bound to every address is
/// asked on loopback.
fn health_probe(addr: std::net::SocketAddr) -> ExitCode {
    use std::io::{Read, Write};
    let mut target = addr;
    if target.ip().is_unspecified() {
        target.set_ip(match target {
            std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    let answer = (|| -> std::io::Result<String> {
        let mut s = std::net::TcpStream::connect_timeout(&target, Duration::from_secs(2))?;
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
        s.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
        let mut head = [0u8; 64];
        let n = s.read(&mut head)?;
        Ok(String::from_utf8_lossy(&head[..n]).into_owned())
    })();
    match answer {
        Ok(head) if head.split(' ').nth(1) == Some("200") => ExitCode::from(EXIT_OK),
        Ok(head) => {
            eprintln!(
                "stream-relay: {target} answered {}",
                head.lines().next().unwrap_or("")
            );
            ExitCode::from(EXIT_RUNTIME)
        }
        Err(e) => {
            eprintln!("stream-relay: no answer from {target}: {e}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

fn usage_error(msg: &str) -> ExitCode {
    eprintln!("stream-relay: error: {msg}");
    ExitCode::from(EXIT_USAGE)
}

fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        tracing::error!(location = %location, "internal error (panic): {}", common::redact::scrub(&info.to_string()));
    }));
}

/// Checks the whole command line of a relay subcommand: the input's scheme is the
/// subcommand's, outputs may be any protocol, every time buffer fits its memory cap.
fn build_spec(args: &RelayArgs, protocol: &str) -> Result<RouteSpec, String> {
    let profile =
        rist::uri::Profile::parse(&args.profile).map_err(|e| format!("invalid --profile: {e}"))?;
    if let Some(other) = endpoint::scheme(&args.input).filter(|s| s != protocol) {
        let hint = if ["srt", "rist", "udp"].contains(&other.as_str()) {
            format!(" (use `stream-relay {other}` for {other}://)")
        } else {
            String::new()
        };
        return Err(format!(
            "invalid --input: wrong scheme, the {protocol} subcommand takes a {protocol}:// input{hint}"
        ));
    }
    let input =
        endpoint::parse(&args.input, profile).map_err(|e| format!("invalid --input: {e}"))?;
    if input.time_buffer.is_some() {
        return Err(format!(
            "invalid --input: '{}' applies to outputs",
            endpoint::TIME_BUFFER_KEY
        ));
    }
    let settings = args.route.settings();
    let cap = args.route.time_buffer_memory_mb << 20;
    let mut specs = Vec::new();
    for (i, o) in args.output.iter().enumerate() {
        let ep =
            endpoint::parse(o, profile).map_err(|e| format!("invalid --output #{}: {e}", i + 1))?;
        let time_buffer = ep
            .time_buffer
            .unwrap_or(Duration::from_millis(args.route.time_buffer_ms));
        let need = settings.time_buffer_bytes(time_buffer);
        if !time_buffer.is_zero() && need > cap {
            return Err(format!(
                "invalid --output #{}: a {} ms time buffer at --max-bitrate {} Mbps needs about {} MB, more than --time-buffer-memory-mb {}",
                i + 1,
                time_buffer.as_millis(),
                settings.max_bitrate / 1_000_000,
                need.div_ceil(1 << 20),
                args.route.time_buffer_memory_mb
            ));
        }
        specs.push(OutputSpec {
            name: format!("out{}", i + 1),
            endpoint: ep.transport,
            time_buffer,
        });
    }
    let name = &args.name;
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err("invalid --name: use 1 to 64 letters, digits, '-', '_' or '.'".into());
    }
    Ok(RouteSpec {
        name: name.clone(),
        input: input.transport,
        outputs: specs,
        settings,
    })
}

/// Started once the routes run; when its task ends the relay stops (the demo's timer).
pub type Until = Box<dyn FnOnce(Arc<http::AppState>) -> tokio::task::JoinHandle<()> + Send>;

/// What to run: routes from the command line, or a configuration file's.
pub enum Startup {
    Routes(Vec<RouteSpec>),
    Config {
        path: std::path::PathBuf,
        persist: bool,
        plan: Box<control::plan::Plan>,
        token: Option<common::redact::Secret>,
    },
}

/// Runs routes until SIGINT/SIGTERM (or `until` completes, for the demo). Returns the exit code.
pub fn run(
    config: GlobalConfig,
    startup: Startup,
    started: Instant,
    until: Option<Until>,
) -> ExitCode {
    // One thread: packets never pass through the runtime, and its HTTP and control work is
    // short (what blocks goes to the blocking pool). The multi-thread scheduler cost two more
    // threads and, through its use of `pow`, libm: 0.6 MB resident in a RIST-only process.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .thread_name("http")
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    match runtime.block_on(serve(config, startup, started, until)) {
        Ok(()) => ExitCode::from(EXIT_OK),
        Err(e) => {
            tracing::error!(error = %common::redact::scrub(&format!("{e:#}")), "fatal error");
            eprintln!(
                "stream-relay: error: {}",
                common::redact::scrub(&format!("{e:#}"))
            );
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

async fn serve(
    config: GlobalConfig,
    startup: Startup,
    started: Instant,
    until: Option<Until>,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.http_addr)
        .await
        .with_context(|| format!("cannot serve HTTP on {}", config.http_addr))?;
    let metrics = Arc::new(common::metrics::Metrics::new());
    let bus = metrics.events.clone();
    srt::log::rejections::on_summary(move |s| {
        let mut e = common::events::Event::new(common::events::EventKind::CallerRefused);
        e.reason = Some(s.reason.to_owned());
        e.count = Some(s.count);
        if let Some(c) = s.caller {
            e.server = Some(c.server.clone());
            e.stream = Some(c.stream.clone());
            e.peer = c.peer.map(|p| p.to_string());
        }
        bus.publish(e);
    });
    let (specs, control, plan) = match startup {
        Startup::Routes(specs) => (specs, None, None),
        Startup::Config {
            path,
            persist,
            plan,
            token,
        } => {
            let control = Arc::new(control::Control {
                path,
                persist,
                supervisor: Mutex::new(control::supervisor::Supervisor::new(metrics.clone())),
                token: Mutex::new(token),
                metrics: metrics.clone(),
            });
            (Vec::new(), Some(control), Some(plan))
        }
    };
    let state = Arc::new(http::AppState {
        metrics: metrics.clone(),
        routes: Mutex::new(Vec::new()),
        started,
        stopping: Default::default(),
        control: control.clone(),
        feed: Default::default(),
    });
    for spec in specs {
        let name = spec.name.clone();
        let route = Route::start(spec, metrics.clone())
            .with_context(|| format!("route '{name}' cannot start"))?;
        state
            .routes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(route);
    }
    if let (Some(control), Some(plan)) = (control, plan) {
        let st = state.clone();
        let changes = tokio::task::spawn_blocking(move || {
            control
                .supervisor
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .apply_plan(*plan, &st.routes)
        })
        .await
        .context("starting the configured routes")?;
        if let Some(first) = changes.failed.first() {
            anyhow::bail!("{first}");
        }
        tracing::info!(routes = ?changes.routes_added, "configuration loaded");
    }
    let (http_stop_tx, http_stop_rx) = tokio::sync::oneshot::channel::<()>();
    let app = http::router(state.clone());
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = http_stop_rx.await;
            })
            .await
    });
    tracing::info!(http_addr = %config.http_addr, startup_ms = started.elapsed().as_secs_f64() * 1000.0, "relay running");

    let mut until = until.map(|f| f(state.clone()));
    let outcome = wait_for_stop(&state, &mut until).await;

    state.stopping.store(true, Ordering::Release);
    let control = state.control.clone();
    let routes: Vec<Route> =
        std::mem::take(&mut *state.routes.lock().unwrap_or_else(|p| p.into_inner()));
    // Joining route threads blocks: do it off the async workers.
    let _ = tokio::task::spawn_blocking(move || {
        // Shared listeners first, so no caller is let in to a stream that is going away.
        if let Some(control) = control {
            control
                .supervisor
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .stop_servers();
        }
        for r in routes {
            r.stop();
        }
    })
    .await;
    let _ = http_stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(1), server).await;
    tracing::info!("relay stopped");
    outcome
}

async fn wait_for_stop(
    state: &Arc<http::AppState>,
    until: &mut Option<tokio::task::JoinHandle<()>>,
) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    // SIGHUP is reserved for reloading the configuration; until then it must not kill us.
    let mut hup = signal(SignalKind::hangup()).context("cannot watch SIGHUP")?;
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    let mut startup_code_released = false;
    loop {
        tokio::select! {
            _ = term.recv() => { tracing::info!(signal = "SIGTERM", "stopping"); return Ok(()); }
            _ = int.recv() => { tracing::info!(signal = "SIGINT", "stopping"); return Ok(()); }
            _ = hup.recv() => {
                match state.control.clone() {
                    Some(control) => {
                        tracing::info!(signal = "SIGHUP", "reloading the configuration");
                        let st = state.clone();
                        // Reloads run one after another, off the async workers.
                        let _ = tokio::task::spawn_blocking(move || control.reload(&st.routes)).await;
                    }
                    None => tracing::info!(signal = "SIGHUP", "no configuration file to reload (use `run --config`); ignoring"),
                }
            }
            _ = async { match until.as_mut() { Some(h) => { let _ = h.await; } None => std::future::pending().await } } => {
                return Ok(());
            }
            _ = tick.tick() => {
                let failure = state.routes.lock().unwrap_or_else(|p| p.into_inner()).iter().find_map(|r| r.failure().map(|e| (r.name().to_owned(), e)));
                if let Some((route, e)) = failure {
                    anyhow::bail!("route '{route}' failed: {e}");
                }
                if !startup_code_released && state.started.elapsed() >= RELEASE_STARTUP_CODE_AFTER {
                    startup_code_released = true;
                    let bytes = common::startup_code::release();
                    tracing::debug!(bytes, "start-up code released");
                }
            }
        }
    }
}
