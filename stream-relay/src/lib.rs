//! stream-relay as a library: the relay core, the SRT transport, routes and the HTTP server.
//! The binary (`main.rs`) adds the command line, signals and exit codes.

#![deny(unsafe_code)]

pub mod common;
pub mod control;
pub mod endpoint;
pub mod http;
pub mod monitor;
pub mod relay;
pub mod rist;
pub mod route;
pub mod sls_stats;
pub mod srt;
pub mod udp;
