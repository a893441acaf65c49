//! `impair-proxy`: command-line front end to [`impair::Proxy`], for scripts
//! and manual experiments. Argument parsing is hand-written to keep the
//! crate dependency-free.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant};

use impair::{Impairment, Proxy};

const USAGE: &str = "\
usage: impair-proxy --listen ADDR --upstream ADDR [options]

Relays UDP between clients (sending to --listen) and --upstream, impairing
each direction independently. Prints `listening ADDR` on stdout once bound,
then one JSON stats object per line on stderr every --stats-interval-ms.

forward (client -> upstream) options:
  --loss P              drop probability, 0..1            [0]
  --delay-ms MS         added delay (fractions allowed)   [0]
  --jitter-ms MS        uniform +/- jitter around delay   [0]
  --reorder P           probability of holding a packet back so later ones
                        overtake it                       [0]
  --duplicate P         probability of sending twice      [0]
  --seed N              PRNG seed                         [0]

backward (upstream -> client) options:
  --backward-loss, --backward-delay-ms, --backward-jitter-ms,
  --backward-reorder, --backward-duplicate, --backward-seed
                        same meaning; default: no impairment
  --both                start the backward direction from the forward values
                        (seed + 1, so the directions are not correlated);
                        --backward-* options still override

other:
  --stats-interval-ms MS  stats period, 0 disables        [1000]
  -h, --help              show this help

Options take their value as the next argument or as --opt=value.
Stop with SIGINT/SIGTERM.";

#[derive(Debug, PartialEq)]
struct Args {
    listen: SocketAddr,
    upstream: SocketAddr,
    forward: Impairment,
    backward: Impairment,
    stats_interval: Duration,
}

fn probability(name: &str, v: &str) -> Result<f64, String> {
    match v.parse::<f64>() {
        Ok(p) if (0.0..=1.0).contains(&p) => Ok(p),
        _ => Err(format!("{name}: expected a probability in 0..1, got {v:?}")),
    }
}

fn millis(name: &str, v: &str) -> Result<Duration, String> {
    match v.parse::<f64>() {
        Ok(ms) if ms.is_finite() && ms >= 0.0 => Duration::try_from_secs_f64(ms / 1000.0)
            .map_err(|_| format!("{name}: {v:?} is out of range")),
        _ => Err(format!(
            "{name}: expected non-negative milliseconds, got {v:?}"
        )),
    }
}

fn seed(name: &str, v: &str) -> Result<u64, String> {
    v.parse()
        .map_err(|_| format!("{name}: expected an unsigned integer, got {v:?}"))
}

fn addr(name: &str, v: &str) -> Result<SocketAddr, String> {
    v.parse()
        .map_err(|_| format!("{name}: expected IP:PORT, got {v:?}"))
}

/// Settings for one direction where each field may or may not be given, so
/// `--both` can fill the gaps regardless of argument order.
#[derive(Default)]
struct Partial {
    loss: Option<f64>,
    delay: Option<Duration>,
    jitter: Option<Duration>,
    reorder: Option<f64>,
    duplicate: Option<f64>,
    seed: Option<u64>,
}

impl Partial {
    fn set(&mut self, key: &str, name: &str, v: &str) -> Result<bool, String> {
        match key {
            "loss" => self.loss = Some(probability(name, v)?),
            "delay-ms" => self.delay = Some(millis(name, v)?),
            "jitter-ms" => self.jitter = Some(millis(name, v)?),
            "reorder" => self.reorder = Some(probability(name, v)?),
            "duplicate" => self.duplicate = Some(probability(name, v)?),
            "seed" => self.seed = Some(seed(name, v)?),
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn over(&self, base: Impairment) -> Impairment {
        Impairment {
            loss: self.loss.unwrap_or(base.loss),
            delay: self.delay.unwrap_or(base.delay),
            jitter: self.jitter.unwrap_or(base.jitter),
            reorder: self.reorder.unwrap_or(base.reorder),
            duplicate: self.duplicate.unwrap_or(base.duplicate),
            seed: self.seed.unwrap_or(base.seed),
        }
    }
}

/// `Ok(None)` means help was requested.
fn parse(args: impl IntoIterator<Item = String>) -> Result<Option<Args>, String> {
    let mut args = args.into_iter();
    let mut listen = None;
    let mut upstream = None;
    let mut fwd = Partial::default();
    let mut bwd = Partial::default();
    let mut both = false;
    let mut stats_interval = Duration::from_secs(1);

    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--both" => {
                both = true;
                continue;
            }
            _ => {}
        }
        let Some(opt) = arg.strip_prefix("--") else {
            return Err(format!("unexpected argument {arg:?}"));
        };
        let (key, inline) = match opt.split_once('=') {
            Some((k, v)) => (k, Some(v.to_owned())),
            None => (opt, None),
        };
        let name = format!("--{key}");
        let value = match inline {
            Some(v) => v,
            None => args.next().ok_or_else(|| format!("{name} needs a value"))?,
        };
        let known = match key {
            "listen" => {
                listen = Some(addr(&name, &value)?);
                true
            }
            "upstream" => {
                upstream = Some(addr(&name, &value)?);
                true
            }
            "stats-interval-ms" => {
                stats_interval = millis(&name, &value)?;
                true
            }
            _ => match key.strip_prefix("backward-") {
                Some(k) => bwd.set(k, &name, &value)?,
                None => fwd.set(key, &name, &value)?,
            },
        };
        if !known {
            return Err(format!("unknown option {name}"));
        }
    }

    let forward = fwd.over(Impairment::default());
    let backward_base = if both {
        Impairment {
            seed: forward.seed.wrapping_add(1),
            ..forward
        }
    } else {
        Impairment::default()
    };
    Ok(Some(Args {
        listen: listen.ok_or("--listen is required")?,
        upstream: upstream.ok_or("--upstream is required")?,
        forward,
        backward: bwd.over(backward_base),
        stats_interval,
    }))
}

fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(Some(a)) => a,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("impair-proxy: {e} (try --help)");
            return ExitCode::from(2);
        }
    };
    let proxy = match Proxy::start(args.listen, args.upstream, args.forward, args.backward) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("impair-proxy: cannot start on {}: {e}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    {
        // Callers block on this line to learn the port, so it must not sit in
        // a buffer. Write errors are ignored: a closed stdout is no reason to
        // stop relaying.
        let mut out = io::stdout().lock();
        let _ = writeln!(out, "listening {}", proxy.local_addr());
        let _ = out.flush();
    }
    let start = Instant::now();
    loop {
        if args.stats_interval.is_zero() {
            // Nothing left for this thread to do; the default SIGINT/SIGTERM
            // disposition ends the process.
            thread::park();
            continue;
        }
        thread::sleep(args.stats_interval);
        let stats = proxy.stats();
        let line = format!(
            "{{\"elapsed_ms\":{},{}",
            start.elapsed().as_millis(),
            // Splice our field into the library's object.
            &stats.to_json()[1..]
        );
        let _ = writeln!(io::stderr(), "{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Option<Args>, String> {
        parse(args.iter().map(|s| s.to_string()))
    }

    fn run(args: &[&str]) -> Args {
        match p(args) {
            Ok(Some(a)) => a,
            other => panic!("{other:?}"),
        }
    }

    const BASE: [&str; 4] = ["--listen", "127.0.0.1:9000", "--upstream", "127.0.0.1:9001"];

    #[test]
    fn minimal() {
        let a = run(&BASE);
        assert_eq!(a.listen, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(a.upstream, "127.0.0.1:9001".parse().unwrap());
        assert_eq!(a.forward, Impairment::default());
        assert_eq!(a.backward, Impairment::default());
        assert_eq!(a.stats_interval, Duration::from_secs(1));
    }

    #[test]
    fn forward_and_backward() {
        let mut v = BASE.to_vec();
        v.extend([
            "--loss",
            "0.05",
            "--delay-ms=20",
            "--jitter-ms",
            "0.5",
            "--reorder",
            "0.01",
            "--duplicate",
            "0.02",
            "--seed",
            "42",
            "--backward-loss",
            "0.1",
            "--backward-delay-ms",
            "7",
            "--stats-interval-ms",
            "250",
        ]);
        let a = run(&v);
        assert_eq!(
            a.forward,
            Impairment {
                loss: 0.05,
                delay: Duration::from_millis(20),
                jitter: Duration::from_micros(500),
                reorder: 0.01,
                duplicate: 0.02,
                seed: 42,
            }
        );
        assert_eq!(
            a.backward,
            Impairment {
                loss: 0.1,
                delay: Duration::from_millis(7),
                ..Default::default()
            }
        );
        assert_eq!(a.stats_interval, Duration::from_millis(250));
    }

    #[test]
    fn both_copies_forward_then_overrides() {
        let mut v = BASE.to_vec();
        // --both after the options it copies, and an override before it.
        v.extend([
            "--backward-loss",
            "0",
            "--loss",
            "0.2",
            "--delay-ms",
            "5",
            "--seed",
            "3",
            "--both",
        ]);
        let a = run(&v);
        assert_eq!(
            a.backward,
            Impairment {
                loss: 0.0,
                delay: Duration::from_millis(5),
                seed: 4,
                ..Default::default()
            }
        );
    }

    #[test]
    fn errors() {
        for bad in [
            &["--listen", "127.0.0.1:9000"][..],
            &["--upstream", "127.0.0.1:9001"],
            &["--listen", "nope", "--upstream", "127.0.0.1:9001"],
            &["--listen", "127.0.0.1:9000", "--upstream"],
            &[
                "--listen",
                "127.0.0.1:9000",
                "--upstream",
                "127.0.0.1:9001",
                "--loss",
                "1.5",
            ],
            &[
                "--listen",
                "127.0.0.1:9000",
                "--upstream",
                "127.0.0.1:9001",
                "--delay-ms",
                "-1",
            ],
            &[
                "--listen",
                "127.0.0.1:9000",
                "--upstream",
                "127.0.0.1:9001",
                "--seed",
                "x",
            ],
            &[
                "--listen",
                "127.0.0.1:9000",
                "--upstream",
                "127.0.0.1:9001",
                "--bogus",
                "1",
            ],
            &[
                "--listen",
                "127.0.0.1:9000",
                "--upstream",
                "127.0.0.1:9001",
                "--backward-bogus",
                "1",
            ],
            &[
                "--listen",
                "127.0.0.1:9000",
                "--upstream",
                "127.0.0.1:9001",
                "stray",
            ],
        ] {
            assert!(p(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(p(&["--help"]), Ok(None));
    }
}
