//! Applies a configuration to the running routes, touching only what changed: removed routes
//! stop, added routes start, a route whose input (or route settings) changed restarts, and on
//! a route whose input is the same only the outputs that were added, removed or changed are
//! touched; its input and its other outputs keep running without losing a packet.

use super::file::ConfigFile;
use super::plan::{Plan, RoutePlan};
use crate::common::metrics::Metrics;
use crate::route::Route;
use crate::srt::server::SrtServer;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// What an apply did, by name (never a URI: no secret can slip in).
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct Changes {
    pub routes_added: Vec<String>,
    pub routes_removed: Vec<String>,
    pub routes_restarted: Vec<String>,
    pub outputs_added: Vec<String>,
    pub outputs_removed: Vec<String>,
    pub routes_unchanged: Vec<String>,
    pub servers_added: Vec<String>,
    pub servers_removed: Vec<String>,
    pub servers_restarted: Vec<String>,
    /// Parts that were valid but could not start (a port taken by another program, say).
    pub failed: Vec<String>,
}

impl Changes {
    pub fn is_noop(&self) -> bool {
        self.routes_added.is_empty()
            && self.routes_removed.is_empty()
            && self.routes_restarted.is_empty()
            && self.outputs_added.is_empty()
            && self.outputs_removed.is_empty()
            && self.servers_added.is_empty()
            && self.servers_removed.is_empty()
            && self.servers_restarted.is_empty()
    }
}

pub struct Supervisor {
    metrics: Arc<Metrics>,
    /// What runs, route by route, as planned.
    applied: BTreeMap<String, RoutePlan>,
    /// The shared SRT listeners that run, with the key of their settings.
    servers: BTreeMap<String, (u64, SrtServer)>,
    /// The configuration in force, as written (secret references unexpanded).
    file: ConfigFile,
}

impl Supervisor {
    pub fn new(metrics: Arc<Metrics>) -> Supervisor {
        Supervisor {
            metrics,
            applied: BTreeMap::new(),
            servers: BTreeMap::new(),
            file: ConfigFile::default(),
        }
    }

    pub fn file(&self) -> &ConfigFile {
        &self.file
    }

    pub fn plan_of(&self, route: &str) -> Option<&RoutePlan> {
        self.applied.get(route)
    }

    /// Applies a checked configuration to `routes`: only the difference. Blocks while routes
    /// and outputs stop (their threads are joined): call it off the async workers.
    pub fn apply_plan(&mut self, plan: Plan, routes: &Mutex<Vec<Route>>) -> Changes {
        let mut changes = Changes::default();
        let mut wanted: BTreeMap<String, RoutePlan> = plan
            .routes
            .into_iter()
            .map(|r| (r.name.clone(), r))
            .collect();
        let mut running = routes.lock().unwrap_or_else(|p| p.into_inner());

        // Stop first what goes away or restarts, so its ports are free for what starts.
        let mut restart = Vec::new();
        for (name, old) in &self.applied {
            match wanted.get(name) {
                None => changes.routes_removed.push(name.clone()),
                Some(new) if !new.same_input(old) => restart.push(name.clone()),
                Some(_) => {}
            }
        }
        for name in changes.routes_removed.iter().chain(&restart) {
            if let Some(i) = running.iter().position(|r| r.name() == name) {
                running.remove(i).retire();
            }
            self.applied.remove(name);
        }
        self.apply_servers(&plan.servers, &mut changes);
        // Outputs removed or changed on routes that stay.
        let mut to_add: Vec<(String, usize)> = Vec::new();
        for (name, new) in &wanted {
            let Some(old) = self.applied.get(name) else {
                continue;
            };
            let Some(route) = running.iter_mut().find(|r| r.name() == name) else {
                continue;
            };
            for o in &old.outputs {
                let same = new
                    .outputs
                    .iter()
                    .any(|n| n.name == o.name && n.key == o.key);
                if !same && route.remove_output(&o.name) {
                    changes.outputs_removed.push(format!("{name}/{}", o.name));
                }
            }
            for (i, o) in new.outputs.iter().enumerate() {
                let same = old
                    .outputs
                    .iter()
                    .any(|p| p.name == o.name && p.key == o.key);
                if !same {
                    to_add.push((name.clone(), i));
                }
            }
        }
        for (name, i) in to_add {
            let new = &wanted[&name];
            let o = &new.outputs[i];
            let Some(route) = running.iter_mut().find(|r| r.name() == name) else {
                continue;
            };
            match route.add_output(&o.spec()) {
                Ok(()) => changes.outputs_added.push(format!("{name}/{}", o.name)),
                Err(e) => changes.failed.push(format!(
                    "route '{name}' output '{}': {}",
                    o.name,
                    crate::common::redact::scrub(&e.to_string())
                )),
            }
        }
        // Routes that stay: what now runs is the new plan, minus outputs that failed.
        for (name, new) in wanted.iter_mut() {
            if self.applied.contains_key(name) {
                if let Some(route) = running.iter().find(|r| r.name() == name) {
                    let live = route.output_names();
                    new.outputs.retain(|o| live.contains(&o.name));
                }
                if !changes
                    .outputs_added
                    .iter()
                    .chain(&changes.outputs_removed)
                    .any(|c| c.starts_with(&format!("{name}/")))
                {
                    changes.routes_unchanged.push(name.clone());
                }
            }
        }
        // Then start what is new or restarts.
        for (name, new) in &wanted {
            if self.applied.contains_key(name) {
                continue;
            }
            match Route::start(new.spec(), self.metrics.clone()) {
                Ok(route) => {
                    running.push(route);
                    if restart.contains(name) {
                        changes.routes_restarted.push(name.clone());
                    } else {
                        changes.routes_added.push(name.clone());
                    }
                }
                Err(e) => changes.failed.push(format!(
                    "route '{name}': {}",
                    crate::common::redact::scrub(&e.to_string())
                )),
            }
        }
        let started: Vec<String> = running.iter().map(|r| r.name().to_owned()).collect();
        drop(running);
        wanted.retain(|name, _| started.contains(name));
        self.applied = wanted;
        self.file = plan.file;
        changes
    }

    pub fn stop_servers(&mut self) {
        for (_, (_, server)) in std::mem::take(&mut self.servers) {
            server.stop();
        }
    }

    /// Shared listeners: stop the removed and changed ones, start the new and changed ones.
    /// Routes keep their streams registered across a restart; only callers reconnect.
    fn apply_servers(&mut self, wanted: &[super::plan::ServerPlan], changes: &mut Changes) {
        let mut restart = Vec::new();
        let names: Vec<String> = self.servers.keys().cloned().collect();
        for name in names {
            let keep = wanted
                .iter()
                .find(|w| w.spec.name == name)
                .map(|w| w.key == self.servers[&name].0);
            match keep {
                Some(true) => continue,
                Some(false) => restart.push(name.clone()),
                None => changes.servers_removed.push(name.clone()),
            }
            if let Some((_, server)) = self.servers.remove(&name) {
                server.stop();
            }
        }
        for w in wanted {
            if self.servers.contains_key(&w.spec.name) {
                continue;
            }
            match SrtServer::start(&w.spec) {
                Ok(server) => {
                    self.servers.insert(w.spec.name.clone(), (w.key, server));
                    if restart.contains(&w.spec.name) {
                        changes.servers_restarted.push(w.spec.name.clone());
                    } else {
                        changes.servers_added.push(w.spec.name.clone());
                    }
                }
                Err(e) => changes.failed.push(format!(
                    "srt_server '{}': {}",
                    w.spec.name,
                    crate::common::redact::scrub(&e.to_string())
                )),
            }
        }
    }
}
