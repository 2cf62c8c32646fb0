//! What SIGHUP does to `edge-host up`: reloads the configuration without
//! dropping a request, as `kill -HUP` and `systemctl reload` reload nginx.
//!
//! In order: the variables (the `--variable` flags read again, their files
//! with them, and the environment), vetted by the same checks `edge-host
//! check` makes of a component's settings and inline rules; the runtime
//! config; both swapped into the running application for new requests
//! (`edge_host::reload`, each part all or nothing); then the rules, checked
//! at once rather than at the next poll (`rules_watch`). Each part's
//! outcome is logged and recorded for the status page
//! (`edge_host::observe::reloads`). What needs a restart (the manifest,
//! the listen address, serving threads, instance limits) is not read.

use std::path::PathBuf;
use std::sync::Arc;

use edge_host::App;
use edge_host::manifest::Manifest;
use edge_host::observe::reloads;
use edge_host::variables::VariableProviders;
use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::check;
use crate::rules_watch::WatchedRules;

/// The part name the rules' outcome is recorded under.
const RULES: &str = "rules";

/// Catches SIGHUP, whose default action would stop the process: from here
/// on a hangup cannot stop it. Signals that arrive before
/// [`reload_on_hangups`] runs are kept for it.
pub fn catch() -> std::io::Result<Signal> {
    signal(SignalKind::hangup())
}

/// What a reload reads again and where it puts it.
pub struct Reloader {
    /// The application serving.
    pub app: Arc<App>,
    /// Its manifest as loaded at start (a reload does not read it again).
    pub manifest: Manifest,
    /// Where it was read from, for messages.
    pub manifest_path: PathBuf,
    /// The `--variable` flags.
    pub variable_flags: Vec<String>,
    /// The rules as last checked.
    pub rules: WatchedRules,
}

/// Reloads on each SIGHUP, one reload at a time (a signal that arrives
/// during one starts another after it).
pub async fn reload_on_hangups(mut hangups: Signal, reloader: Reloader) {
    let reloader = Arc::new(reloader);
    while hangups.recv().await.is_some() {
        tracing::info!(
            "SIGHUP received: reloading the variables, the runtime config and the rules"
        );
        let reloader = reloader.clone();
        // Files are read and stores may be opened: off the runtime's
        // threads.
        if let Err(error) = tokio::task::spawn_blocking(move || reloader.reload()).await {
            tracing::warn!("the reload stopped before it finished: {error}");
        }
    }
}

impl Reloader {
    /// One reload (see the module doc).
    fn reload(&self) {
        let environment: Vec<(String, String)> = std::env::vars().collect();
        let vet = |providers: &VariableProviders| self.vet(providers);
        let report = self.app.reload(environment.clone(), &vet);
        // The rules as the variables now in use name them: read with the
        // new variables if they were taken, else from where they were.
        let checked = match report.variables {
            Ok(_) => VariableProviders::new(&self.variable_flags, environment)
                .map_err(|e| anyhow::anyhow!(e))
                .and_then(|providers| {
                    check::check_application(&self.manifest, &self.manifest_path, &providers)
                })
                .map(|checked| checked.rules)
                .unwrap_or_else(|_| self.rules.rechecked()),
            Err(_) => self.rules.rechecked(),
        };
        let outcome = self.rules.take(checked);
        match &outcome {
            Ok(summary) => tracing::info!("reload: {RULES}: {summary}"),
            Err(reason) => tracing::warn!("reload: {RULES}: broken: {reason}"),
        }
        reloads::record(RULES, outcome);
    }

    /// Refuses new variables `edge-host check` would refuse: a component
    /// setting its own parser rejects, or rules given in a variable (inline
    /// JSON, or a path no mount holds) that its loader rejects. A broken
    /// rules *file* is not the variables' fault: the component rides it
    /// out with the last good rules, and the rules' record says so.
    fn vet(&self, providers: &VariableProviders) -> Result<(), String> {
        let checked = check::check_application(&self.manifest, &self.manifest_path, providers)
            .map_err(|e| format!("{e:#}"))?;
        let problems: Vec<String> = checked
            .rules
            .iter()
            .filter(|rules| rules.file.is_none())
            .filter_map(|rules| rules.status.message.clone())
            .collect();
        match problems.is_empty() {
            true => Ok(()),
            false => Err(problems.join("; ")),
        }
    }
}
