//! User-space UDP impairment proxy.
//!
//! The kernel used for CI has no `netem`, so end-to-end SRT/RIST tests and the
//! latency benchmark put this proxy between sender and receiver instead. It
//! relays datagrams in both directions, applying loss, delay, jitter,
//! reordering and duplication independently per direction, with a seeded PRNG
//! so runs are reproducible.
//!
//! ```no_run
//! use std::time::Duration;
//! use impair::{Impairment, Proxy};
//!
//! let forward = Impairment { loss: 0.05, delay: Duration::from_millis(20), seed: 1, ..Default::default() };
//! let proxy = Proxy::start(
//!     "127.0.0.1:0".parse().unwrap(),
//!     "127.0.0.1:9001".parse().unwrap(),
//!     forward,
//!     Impairment::default(),
//! )?;
//! println!("send to {}", proxy.local_addr());
//! let stats = proxy.stop();
//! println!("{}", stats.to_json());
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! Module map: `config` (what to impair), `rng` (seeded randomness), `decide`
//! (per-packet fate), `scheduler` (timed delivery), `stats` (counters),
//! `proxy` (sockets and threads).

mod config;
mod decide;
mod proxy;
mod rng;
mod scheduler;
mod stats;

pub use config::{Impairment, REORDER_MIN_HOLD};
pub use proxy::{Proxy, ProxyHandle};
pub use rng::Rng;
pub use stats::{DirectionStats, ProxyStats};
