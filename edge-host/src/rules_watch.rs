//! Each component's cache rules as `edge-host up` last checked them,
//! checked again whenever the rules file changes (read every
//! [`RULES_POLL`]) and at once on SIGHUP (`hangup`). What is found is
//! logged and reported: a broken live edit shows as broken, with its
//! message and the last good rules the component still serves with, on
//! the status page and in `/metrics`.
//!
//! The component reads its rules itself and keeps the last good ones;
//! this is the host's check of the same file with the component's own
//! loader (`check`), so an operator learns the outcome without a request.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use edge_host::observe::metrics::Metrics;
use edge_host::observe::rules::text_hash;

use crate::check::ComponentRules;

/// How often a rules file is looked at for changes.
pub const RULES_POLL: Duration = Duration::from_secs(1);

/// The rules last checked, shared by the poll and SIGHUP's reload.
#[derive(Clone)]
pub struct WatchedRules {
    rules: Arc<Mutex<Vec<ComponentRules>>>,
    metrics: Option<&'static Metrics>,
}

impl WatchedRules {
    /// The rules as checked at start, reported to `metrics` if there are
    /// metrics.
    pub fn new(rules: Vec<ComponentRules>, metrics: Option<&'static Metrics>) -> Self {
        if let Some(metrics) = metrics {
            for rules in &rules {
                metrics.report_rules(rules.status.clone());
            }
        }
        WatchedRules {
            rules: Arc::new(Mutex::new(rules)),
            metrics,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<ComponentRules>> {
        self.rules.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Checks each rules file again whenever its content changes.
    pub async fn poll(self) {
        let mut ticks = tokio::time::interval(RULES_POLL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            ticks.tick().await;
            let changed: Vec<ComponentRules> = self
                .lock()
                .iter()
                .filter(|watched| {
                    watched.file.as_ref().is_some_and(|file| {
                        let bytes = std::fs::read(file).unwrap_or_default();
                        text_hash(&bytes) != watched.status.hash
                    })
                })
                .map(ComponentRules::recheck)
                .collect();
            if !changed.is_empty() {
                // Logged and reported by `take`; a reload record is
                // SIGHUP's alone.
                let _ = self.take(changed);
            }
        }
    }

    /// Every component's rules checked again now, from what they were
    /// last read from (the same `cache_rules` values).
    pub fn rechecked(&self) -> Vec<ComponentRules> {
        self.lock().iter().map(ComponentRules::recheck).collect()
    }

    /// Takes `checked` as the latest rules of their components: logs and
    /// reports each that changed, and says how they stand, for the reload
    /// record: `Ok` when every component's are good, `Err` naming the
    /// broken ones and what is served instead.
    pub fn take(&self, checked: Vec<ComponentRules>) -> Result<String, String> {
        let mut watched = self.lock();
        let mut good = Vec::new();
        let mut broken = Vec::new();
        for mut again in checked {
            let previous = watched
                .iter()
                .position(|w| w.status.component == again.status.component);
            let changed = match previous {
                Some(index) => {
                    let previous = &watched[index].status;
                    again.status = again.status.after(previous);
                    previous.hash != again.status.hash || previous.source != again.status.source
                }
                None => true,
            };
            let status = &again.status;
            let component = &status.component;
            match &status.message {
                Some(problem) => {
                    let serving = match &status.serving {
                        Some(serving) => {
                            format!("serving the last good rules (blake3 {})", serving.hash)
                        }
                        None => "no good rules ever loaded: proxying without caching".to_owned(),
                    };
                    if changed {
                        // The component says what it does about it as its
                        // first instance reads them.
                        tracing::info!("cache rules changed and are broken: {problem}");
                    }
                    broken.push(format!("{problem}; {serving}"));
                }
                None => {
                    if changed {
                        tracing::info!(
                            "cache rules changed: {} (blake3 {})",
                            status.source,
                            status.hash
                        );
                    }
                    let how = if changed { "changed" } else { "unchanged" };
                    good.push(format!(
                        "component `{component}`: {} (blake3 {}), {how}",
                        status.source, status.hash
                    ));
                }
            }
            if changed && let Some(metrics) = self.metrics {
                metrics.report_rules(again.status.clone());
            }
            match previous {
                Some(index) => watched[index] = again,
                None => watched.push(again),
            }
        }
        match (broken.is_empty(), good.is_empty()) {
            (false, _) => Err(broken.join("; ")),
            (true, true) => Ok("no component reads cache_rules".to_owned()),
            (true, false) => Ok(good.join("; ")),
        }
    }
}
