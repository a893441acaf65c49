//! What every transport and route shares: logging, configuration, metrics, URI syntax and the
//! rule that secrets never leave the process.

pub mod clock;
pub mod config;
pub mod events;
pub mod logging;
pub mod metrics;
pub mod once;
pub mod redact;
pub mod startup_code;
pub mod uri;
