//! The cache rules as edge-host last checked them (at start, and again
//! whenever the rules file changes): good or broken, a hash of their text,
//! when they were read. What the component itself did with them is its
//! own business (`Cache-Status` says `detail=rules-error`); this is what an
//! operator asks first after an edit: did it take?

use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// One component's cache rules, as checked.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RulesStatus {
    /// The component reading them.
    pub component: String,
    /// Where they come from: the host path of the file, `inline` or
    /// `built-in`.
    pub source: String,
    /// Whether the component's own loader accepts them.
    pub good: bool,
    /// The first 16 hex digits of the blake3 hash of the rules text.
    pub hash: String,
    /// When they were read, in seconds since the Unix epoch.
    pub loaded_at: u64,
    /// What is wrong, when they are broken.
    pub message: Option<String>,
    /// The rules the component serves with: these when they are good; the
    /// last good ones when these are broken (the component keeps them in
    /// its node-local store); `None` when none ever were good, and the
    /// component proxies without caching.
    pub serving: Option<ServingRules>,
}

/// Rules a component serves with.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ServingRules {
    /// Their hash, as [`RulesStatus::hash`].
    pub hash: String,
    /// When they were read.
    pub loaded_at: u64,
}

impl RulesStatus {
    /// A status for rules read now, `text` as read.
    pub fn now(component: &str, source: &str, text: &[u8], problem: Option<String>) -> Self {
        let hash = text_hash(text);
        let loaded_at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let serving = problem.is_none().then(|| ServingRules {
            hash: hash.clone(),
            loaded_at,
        });
        RulesStatus {
            component: component.to_owned(),
            source: source.to_owned(),
            good: problem.is_none(),
            hash,
            loaded_at,
            message: problem,
            serving,
        }
    }

    /// This status after `previous`: broken rules leave the component
    /// serving with what it served before.
    pub fn after(mut self, previous: &RulesStatus) -> Self {
        if !self.good {
            self.serving.clone_from(&previous.serving);
        }
        self
    }

    fn state(&self) -> &'static str {
        if self.good { "good" } else { "broken" }
    }
}

/// The first 16 hex digits of the blake3 hash of `text`.
pub fn text_hash(text: &[u8]) -> String {
    blake3::hash(text).to_hex()[..16].to_owned()
}

type ComponentLabel = [(&'static str, String); 1];

/// The rules series and the latest status of each component's rules.
#[derive(Debug)]
pub(crate) struct RulesMetrics {
    state: Family<[(&'static str, String); 2], Gauge>,
    loaded_at: Family<ComponentLabel, Gauge>,
    info: Family<[(&'static str, String); 3], Gauge>,
    serving: Family<[(&'static str, String); 2], Gauge>,
    latest: Mutex<Vec<RulesStatus>>,
}

impl RulesMetrics {
    /// Registers the series in `registry`; none has a value until a
    /// status is reported.
    pub(crate) fn register(registry: &mut Registry) -> Self {
        let metrics = RulesMetrics {
            state: Family::default(),
            loaded_at: Family::default(),
            info: Family::default(),
            serving: Family::default(),
            latest: Mutex::new(Vec::new()),
        };
        registry.register(
            "edge_rules_status",
            "The cache rules as edge-host last checked them: 1 for the current state (good or broken), by component",
            metrics.state.clone(),
        );
        registry.register(
            "edge_rules_loaded_timestamp_seconds",
            "When edge-host last read the cache rules, by component",
            metrics.loaded_at.clone(),
        );
        registry.register(
            "edge_rules_info",
            "The cache rules last read: their source and the blake3 hash of their text (first 16 hex digits)",
            metrics.info.clone(),
        );
        registry.register(
            "edge_rules_serving_info",
            "The cache rules the component serves with (the last good ones while the file is broken), by the blake3 hash of their text; absent while none ever were good",
            metrics.serving.clone(),
        );
        metrics
    }

    /// Records `status` as its component's latest.
    pub(crate) fn report(&self, status: RulesStatus) {
        let component = || ("component", status.component.clone());
        for state in ["good", "broken"] {
            let value = i64::from(state == status.state());
            self.state
                .get_or_create(&[component(), ("state", state.to_owned())])
                .set(value);
        }
        self.loaded_at
            .get_or_create(&[component()])
            .set(i64::try_from(status.loaded_at).unwrap_or(i64::MAX));
        let mut latest = self.lock();
        if let Some(previous) = latest.iter().find(|s| s.component == status.component) {
            self.info.remove(&[
                component(),
                ("source", previous.source.clone()),
                ("hash", previous.hash.clone()),
            ]);
            if let Some(serving) = &previous.serving {
                self.serving
                    .remove(&[component(), ("hash", serving.hash.clone())]);
            }
        }
        if let Some(serving) = &status.serving {
            self.serving
                .get_or_create(&[component(), ("hash", serving.hash.clone())])
                .set(1);
        }
        self.info
            .get_or_create(&[
                component(),
                ("source", status.source.clone()),
                ("hash", status.hash.clone()),
            ])
            .set(1);
        latest.retain(|s| s.component != status.component);
        latest.push(status);
    }

    /// Every component's latest status.
    pub(crate) fn latest(&self) -> Vec<RulesStatus> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<RulesStatus>> {
        self.latest
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_status_replaces_the_component_s_state_and_hash() {
        let mut registry = Registry::default();
        let rules = RulesMetrics::register(&mut registry);
        rules.report(RulesStatus::now("c", "/r.json", b"{}", None));
        rules.report(RulesStatus::now(
            "c",
            "/r.json",
            b"{",
            Some("broken".into()),
        ));
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();
        assert!(
            out.contains(r#"edge_rules_status{component="c",state="broken"} 1"#),
            "{out}"
        );
        assert!(
            out.contains(r#"edge_rules_status{component="c",state="good"} 0"#),
            "{out}"
        );
        assert!(!out.contains(&text_hash(b"{}")), "{out}");
        assert!(out.contains(&text_hash(b"{")), "{out}");
        let latest = rules.latest();
        assert_eq!(latest.len(), 1);
        assert_eq!(latest[0].message.as_deref(), Some("broken"));
    }

    #[test]
    fn a_broken_edit_keeps_the_last_good_rules_serving() {
        let mut registry = Registry::default();
        let rules = RulesMetrics::register(&mut registry);
        let good = RulesStatus::now("c", "/r.json", br#"{"rules":[]}"#, None);
        rules.report(good.clone());
        let broken = RulesStatus::now("c", "/r.json", b"{", Some("broken".into())).after(&good);
        rules.report(broken.clone());
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();
        let serving = format!(
            r#"edge_rules_serving_info{{component="c",hash="{}"}} 1"#,
            good.hash
        );
        assert!(out.contains(&serving), "{out}");
        let fixed = RulesStatus::now("c", "/r.json", br#"{"rules": []}"#, None).after(&broken);
        rules.report(fixed.clone());
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();
        assert!(!out.contains(&serving), "{out}");
        assert!(out.contains(&fixed.hash), "{out}");
        // Broken from the start: nothing is served with.
        let never = RulesStatus::now("d", "/s.json", b"{", Some("broken".into()));
        assert_eq!(never.serving, None);
    }
}
