//! How full each key-value store is: `edge_store_entries`,
//! `edge_store_bytes`, `edge_store_capacity_bytes` and
//! `edge_store_evictions_total`, by store label, read when scraped.
//!
//! A store reports itself when it is opened ([`report`]) with a probe that
//! reads its size; the probe holds the store weakly, so a store a reload
//! replaced stops being reported once the last request using it is done,
//! and the newest store of a label still alive is the one shown (a reload
//! refused half-way drops the store it opened, and the label falls back to
//! the one still serving). Nothing here runs on a request's path.
//!
//! What a backend can tell cheaply, it tells: the memory store everything,
//! a `spin` (SQLite) store with a capacity its bytes, entries, capacity and
//! evictions, an unbounded one and Redis nothing (the series are left out,
//! not reported as zero). The component's L1 lives inside the Wasm
//! instance and cannot be seen from the host.

use std::sync::Mutex;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// What a store knows of its own size; `None` where it cannot tell cheaply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct StoreSize {
    /// Entries held.
    pub entries: Option<u64>,
    /// Bytes of keys and values held, as the store counts them against its capacity.
    pub bytes: Option<u64>,
    /// The most it holds, in the same bytes.
    pub capacity_bytes: Option<u64>,
    /// Entries evicted to make room since it was opened.
    pub evictions: Option<u64>,
}

/// Reads a store's size: `None` once the store is gone.
pub type SizeProbe = Box<dyn Fn() -> Option<StoreSize> + Send + Sync>;

/// One store's size, as `/status.json` gives it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LabelledSize {
    /// The store label (`key_value_stores` in the manifest).
    pub store: String,
    #[serde(flatten)]
    pub size: StoreSize,
}

/// The probes of every store opened, oldest first.
#[derive(Default)]
pub struct StoreSizes(Mutex<Vec<(String, SizeProbe)>>);

static STORES: StoreSizes = StoreSizes(Mutex::new(Vec::new()));

/// Reports store `label`, opened now, to the process's [`StoreSizes`].
pub fn report(label: &str, probe: SizeProbe) {
    STORES.report(label, probe);
}

/// The size of every store in use, by label.
pub fn current() -> Vec<LabelledSize> {
    STORES.current()
}

impl StoreSizes {
    /// Store `label` was opened: from now on it is the one reported for
    /// its label, while it lives.
    pub fn report(&self, label: &str, probe: SizeProbe) {
        let mut probes = self.0.lock().unwrap_or_else(|p| p.into_inner());
        // Forget the stores already gone, so reloads do not pile up probes.
        probes.retain(|(_, probe)| probe().is_some());
        probes.push((label.to_owned(), probe));
    }

    /// Each label's newest live store, by label.
    pub fn current(&self) -> Vec<LabelledSize> {
        let mut probes = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let mut sizes: Vec<LabelledSize> = Vec::new();
        probes.retain(|(label, probe)| {
            let Some(size) = probe() else { return false };
            // Newer ones come later and replace an older one of the label.
            match sizes.iter_mut().find(|known| &known.store == label) {
                Some(known) => known.size = size,
                None => sizes.push(LabelledSize {
                    store: label.clone(),
                    size,
                }),
            }
            true
        });
        sizes.sort_by(|a, b| a.store.cmp(&b.store));
        sizes
    }
}

/// The collector of the `edge_store_*` size series.
#[derive(Debug)]
pub(crate) struct StoreSizeCollector;

impl Collector for StoreSizeCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        encode_sizes(&current(), &mut encoder)
    }
}

/// Reads one field of a [`StoreSize`].
type SizeField = fn(&StoreSize) -> Option<u64>;

fn encode_sizes(sizes: &[LabelledSize], encoder: &mut DescriptorEncoder) -> std::fmt::Result {
    let gauges: [(&str, &str, SizeField); 3] = [
        (
            "edge_store_entries",
            "Entries a key-value store holds now (memory, and spin stores with a capacity)",
            |s| s.entries,
        ),
        (
            "edge_store_bytes",
            "Bytes of keys and values a key-value store holds now, as counted against its capacity",
            |s| s.bytes,
        ),
        (
            "edge_store_capacity_bytes",
            "The most a key-value store holds, in bytes of keys and values",
            |s| s.capacity_bytes,
        ),
    ];
    for (name, help, read) in gauges {
        let known: Vec<(&str, u64)> = sizes
            .iter()
            .filter_map(|s| Some((s.store.as_str(), read(&s.size)?)))
            .collect();
        if known.is_empty() {
            continue;
        }
        let mut family = encoder.encode_descriptor(
            name,
            help,
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for (store, value) in known {
            let gauge = ConstGauge::new(value as i64);
            gauge.encode(family.encode_family(&[("store", store)])?)?;
        }
    }
    let evictions: Vec<(&str, u64)> = sizes
        .iter()
        .filter_map(|s| Some((s.store.as_str(), s.size.evictions?)))
        .collect();
    if !evictions.is_empty() {
        let mut family = encoder.encode_descriptor(
            "edge_store_evictions",
            "Entries a key-value store evicted to make room, since it was opened",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        for (store, value) in evictions {
            let counter = ConstCounter::new(value);
            counter.encode(family.encode_family(&[("store", store)])?)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Weak};

    use super::*;

    fn probe(size: &Arc<StoreSize>) -> SizeProbe {
        let weak: Weak<StoreSize> = Arc::downgrade(size);
        Box::new(move || weak.upgrade().map(|size| *size))
    }

    #[test]
    fn the_newest_live_store_of_a_label_is_reported_and_gone_ones_are_forgotten() {
        let sizes = StoreSizes::default();
        let first = Arc::new(StoreSize {
            entries: Some(1),
            ..Default::default()
        });
        let other = Arc::new(StoreSize::default());
        sizes.report("default", probe(&first));
        sizes.report("l2", probe(&other));
        let reloaded = Arc::new(StoreSize {
            entries: Some(2),
            ..Default::default()
        });
        sizes.report("default", probe(&reloaded));
        let current = sizes.current();
        assert_eq!(current.len(), 2);
        assert_eq!(current[0].store, "default");
        assert_eq!(current[0].size.entries, Some(2), "the reloaded store");
        // A reload refused after opening a store drops it: the label
        // falls back to the one still serving.
        drop(reloaded);
        assert_eq!(sizes.current()[0].size.entries, Some(1));
        drop(first);
        drop(other);
        assert!(sizes.current().is_empty());
        assert!(sizes.0.lock().unwrap().is_empty());
    }

    #[test]
    fn only_what_a_store_knows_is_exposed() {
        struct Sizes(Vec<LabelledSize>);
        impl std::fmt::Debug for Sizes {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "sizes")
            }
        }
        impl Collector for Sizes {
            fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
                encode_sizes(&self.0, &mut encoder)
            }
        }
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(Sizes(vec![
            LabelledSize {
                store: "default".into(),
                size: StoreSize {
                    entries: Some(3),
                    bytes: Some(120),
                    capacity_bytes: Some(4096),
                    evictions: Some(7),
                },
            },
            LabelledSize {
                store: "redis".into(),
                size: StoreSize::default(),
            },
        ])));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for line in [
            "edge_store_entries{store=\"default\"} 3",
            "edge_store_bytes{store=\"default\"} 120",
            "edge_store_capacity_bytes{store=\"default\"} 4096",
            "edge_store_evictions_total{store=\"default\"} 7",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
        assert!(!text.contains("redis"), "{text}");
    }

    /// Through the real stores and a reload: the label shows the store it
    /// uses now, and a refused reload leaves it showing the one still
    /// serving. (Labels of their own: the process's registry is shared
    /// with every other test.)
    #[test]
    fn a_reload_reports_the_store_in_use() {
        use crate::key_value::{AppStores, KeyValueConfig, StoreOverrides};
        let config = |text: &str| -> KeyValueConfig {
            crate::runtime_config::RuntimeConfig::parse(text, std::path::Path::new("/nonexistent"))
                .unwrap()
                .key_value
        };
        let capacity = || {
            current()
                .into_iter()
                .find(|s| s.store == "sized-for-test")
                .and_then(|s| s.size.capacity_bytes)
        };
        let labels = ["sized-for-test".to_owned(), "z-gone-for-test".to_owned()];
        let mut stores = AppStores::new(
            config(
                "[key_value_store.sized-for-test]\ntype = \"memory\"\ncapacity_bytes = 4096\n\
                 [key_value_store.z-gone-for-test]\ntype = \"memory\"\n",
            ),
            StoreOverrides::default(),
        );
        let before = stores.for_component(&labels).unwrap();
        assert_eq!(capacity(), Some(4096));
        // Refused: the resized store is opened, then the reload fails on
        // the label it no longer defines, and the new store is dropped.
        assert!(
            stores
                .reloaded(config(
                    "[key_value_store.sized-for-test]\ntype = \"memory\"\ncapacity_bytes = 8192\n"
                ))
                .is_err()
        );
        assert_eq!(capacity(), Some(4096), "the store still serving");
        let (mut reloaded, _) = stores
            .reloaded(config(
                "[key_value_store.sized-for-test]\ntype = \"memory\"\ncapacity_bytes = 8192\n\
                 [key_value_store.z-gone-for-test]\ntype = \"memory\"\n",
            ))
            .unwrap();
        let after = reloaded.for_component(&labels).unwrap();
        assert_eq!(
            capacity(),
            Some(8192),
            "the new store, the old one alive still"
        );
        drop((before, stores));
        assert_eq!(capacity(), Some(8192));
        drop((after, reloaded));
        assert_eq!(capacity(), None, "gone with its application");
    }
}
