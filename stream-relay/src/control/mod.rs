//! The control plane: the configuration file, its validation into routes, secret references,
//! and (later in this module) applying a new configuration to running routes.

pub mod file;
pub mod plan;
pub mod secrets;
