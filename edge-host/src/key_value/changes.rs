//! What a new runtime config changes in the stores a running application
//! has open: a pure comparison of the old and new definition of each
//! label, which a reload ([`super::AppStores::reloaded`]) acts on.
//!
//! A store is its definition: the backend and its settings as
//! [`KeyValueConfig::store`] gives them (the implicit in-memory `default`
//! included) and, for `type = "spin"`, its `capacity_bytes`. The same
//! definition keeps the very instance open (a memory store its entries, a
//! Redis store its connection); any difference opens a new one.

use std::collections::{BTreeMap, BTreeSet};

use super::runtime_config::{KeyValueConfig, StoreConfig};

/// What a reload does with one store label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreChange {
    /// A component uses it and its definition is the same: the open
    /// instance is kept.
    Kept,
    /// A component uses it and its definition changed: a new instance is
    /// opened, before anything is swapped in.
    Reopened,
    /// A component uses it and the new config no longer defines it: the
    /// new config cannot be taken.
    Undefined,
    /// Added, changed or removed, but no component uses it: nothing is
    /// opened (stores open on first use, as at start).
    Unused,
}

/// The effective definition of `label` in `config`.
fn definition(config: &KeyValueConfig, label: &str) -> (Option<StoreConfig>, Option<u64>) {
    (config.store(label), config.spin_capacity(label))
}

/// How each label changes from `old` to `new`, given the labels open
/// (those some component uses). Labels neither open nor changed are
/// left out.
pub fn store_changes<'a>(
    old: &KeyValueConfig,
    new: &KeyValueConfig,
    open: impl IntoIterator<Item = &'a str>,
) -> BTreeMap<String, StoreChange> {
    let open: BTreeSet<&str> = open.into_iter().collect();
    let labels: BTreeSet<&str> = old
        .stores
        .keys()
        .chain(new.stores.keys())
        .map(String::as_str)
        .chain(open.iter().copied())
        .collect();
    labels
        .into_iter()
        .filter_map(|label| {
            let same = definition(old, label) == definition(new, label);
            let change = match (open.contains(label), same) {
                (true, true) => StoreChange::Kept,
                (true, false) if new.store(label).is_none() => StoreChange::Undefined,
                (true, false) => StoreChange::Reopened,
                (false, true) => return None,
                (false, false) => StoreChange::Unused,
            };
            Some((label.to_owned(), change))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::runtime_config::RuntimeConfig;

    fn config(text: &str) -> KeyValueConfig {
        RuntimeConfig::parse(text, Path::new("/etc/edge"))
            .unwrap()
            .key_value
    }

    #[test]
    fn each_label_is_kept_reopened_undefined_or_unused() {
        let old = config(
            "[key_value_store.default]\ntype = \"memory\"\ncapacity_bytes = 1024\n\
             [key_value_store.disk]\ntype = \"spin\"\npath = \"d.db\"\n\
             [key_value_store.shared]\ntype = \"redis\"\nurl = \"redis://a\"\n\
             [key_value_store.gone]\ntype = \"memory\"\n\
             [key_value_store.idle]\ntype = \"memory\"\n",
        );
        let new = config(
            // `default` written again the same way, `disk` with a capacity
            // now, `shared` on another server, `gone` removed, `spare` new.
            "[key_value_store.default]\ncapacity_bytes = 1024\ntype = \"memory\"\n\
             [key_value_store.disk]\ntype = \"spin\"\npath = \"d.db\"\ncapacity_bytes = 9\n\
             [key_value_store.shared]\ntype = \"redis\"\nurl = \"redis://b\"\n\
             [key_value_store.idle]\ntype = \"memory\"\n\
             [key_value_store.spare]\ntype = \"memory\"\n",
        );
        let changes = store_changes(&old, &new, ["default", "disk", "shared", "gone"]);
        let expected = [
            ("default", StoreChange::Kept),
            ("disk", StoreChange::Reopened),
            ("gone", StoreChange::Undefined),
            ("shared", StoreChange::Reopened),
            ("spare", StoreChange::Unused),
        ];
        assert_eq!(
            changes,
            expected
                .into_iter()
                .map(|(label, change)| (label.to_owned(), change))
                .collect::<BTreeMap<_, _>>()
        );
    }

    #[test]
    fn the_implicit_default_store_is_the_same_as_its_written_form() {
        let written = config("[key_value_store.default]\ntype = \"memory\"\n");
        let implicit = KeyValueConfig::default();
        assert_eq!(
            store_changes(&implicit, &written, ["default"])["default"],
            StoreChange::Kept
        );
        let resized = config("[key_value_store.default]\ntype = \"memory\"\ncapacity_bytes = 5\n");
        assert_eq!(
            store_changes(&implicit, &resized, ["default"])["default"],
            StoreChange::Reopened
        );
        // Removing a written `default` falls back to the implicit one, a
        // definition like any other.
        let disk = config("[key_value_store.default]\ntype = \"spin\"\n");
        assert_eq!(
            store_changes(&disk, &implicit, ["default"])["default"],
            StoreChange::Reopened
        );
        assert!(
            store_changes(&written, &written, ["default"])
                .values()
                .all(|c| *c == StoreChange::Kept)
        );
    }
}
