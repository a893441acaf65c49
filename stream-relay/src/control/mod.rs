//! The control plane: the configuration file, its validation into routes, secret references,
//! and applying a new configuration to running routes (SIGHUP, `POST /api/reload`, the API).

pub mod api;
pub mod file;
pub mod plan;
pub mod secrets;
pub mod supervisor;

use crate::common::events::{Event, EventKind};
use crate::common::metrics::Metrics;
use crate::common::redact::Secret;
use crate::route::Route;
use file::ConfigFile;
use std::path::PathBuf;
use std::sync::Mutex;
use supervisor::{Changes, Supervisor};

/// Everything a reload needs, shared by the signal handler and the HTTP API.
pub struct Control {
    pub path: PathBuf,
    /// Write the configuration back after API changes.
    pub persist: bool,
    pub supervisor: Mutex<Supervisor>,
    /// Bearer token of the mutating API (from the file or API_TOKEN).
    pub token: Mutex<Option<Secret>>,
    pub metrics: std::sync::Arc<Metrics>,
}

pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Reads a configuration file: its text parsed, or one error line.
pub fn read_file(path: &std::path::Path) -> Result<ConfigFile, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    ConfigFile::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
}

impl Control {
    /// Re-reads the file and applies it. Invalid: nothing changes and the errors come back.
    /// Blocks while routes stop: call it off the async workers.
    pub fn reload(&self, routes: &Mutex<Vec<Route>>) -> Result<Changes, Vec<String>> {
        match read_file(&self.path) {
            Ok(file) => self.apply(&file, routes),
            Err(e) => {
                self.metrics.count_reload(false);
                tracing::error!(event = "config_rejected", error = %crate::common::redact::scrub(&e), "configuration not applied");
                self.publish_rejected(std::slice::from_ref(&e));
                Err(vec![e])
            }
        }
    }

    /// Applies a configuration (from the file or from an API change) and logs what changed.
    pub fn apply(
        &self,
        file: &ConfigFile,
        routes: &Mutex<Vec<Route>>,
    ) -> Result<Changes, Vec<String>> {
        let mut sup = self.supervisor.lock().unwrap_or_else(|p| p.into_inner());
        // Checked once: the same plan gives the routes and the API token.
        let result = plan::plan(file, &process_env).map(|mut plan| {
            let token = plan.token.take();
            let changes = sup.apply_plan(plan, routes);
            *self.token.lock().unwrap_or_else(|p| p.into_inner()) =
                token.or_else(|| process_env("API_TOKEN").map(Secret::new));
            changes
        });
        self.metrics.count_reload(result.is_ok());
        match &result {
            Ok(changes) => {
                tracing::info!(
                    event = "config_reloaded",
                    changes = %serde_json::to_string(changes).unwrap_or_default(),
                    "configuration applied"
                );
                let mut event = Event::new(EventKind::ConfigReloaded);
                event.changes = serde_json::to_value(changes).ok();
                self.metrics.events.publish(event);
            }
            Err(errors) => {
                for e in errors {
                    tracing::error!(event = "config_rejected", error = %crate::common::redact::scrub(e), "configuration not applied");
                }
                self.publish_rejected(errors);
            }
        }
        result
    }

    fn publish_rejected(&self, errors: &[String]) {
        let mut event = Event::new(EventKind::ConfigRejected);
        event.errors = Some(
            errors
                .iter()
                .map(|e| crate::common::redact::scrub(e).into_owned())
                .collect(),
        );
        self.metrics.events.publish(event);
    }

    /// Writes `file` back to the configuration path atomically (temporary file + rename).
    pub fn persist_file(&self, file: &ConfigFile) -> Result<(), String> {
        let tmp = self.path.with_extension("toml.tmp");
        std::fs::write(&tmp, file.to_toml())
            .and_then(|()| std::fs::rename(&tmp, &self.path))
            .map_err(|e| format!("cannot write {}: {e}", self.path.display()))
    }
}
