//! Reloading a running application's configuration (SIGHUP to `edge-host
//! up`) without dropping a request: the variables (the `--variable` flags
//! read again, their files with them, and the environment) and the runtime
//! config file. The rules are the component's own business (it reads its
//! rules file and keeps the last good ones); `edge-host up` checks them
//! again at once and reports.
//!
//! Each part is all or nothing: a new version that is invalid in any way
//! (a file that cannot be read or parsed, a required variable with no
//! value, a store that does not open) changes nothing of that part, and
//! the application serves on with the old one. What is valid is swapped
//! into each component's [`live::LiveContext`]: new requests see it, those
//! in flight finish with what they started with. A store whose definition
//! is unchanged keeps its very instance ([`crate::key_value::changes`]).
//!
//! What a reload cannot change (the manifest, the listen address, the
//! serving threads, instance limits) needs a restart.

pub mod live;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::anyhow;

use crate::app::{App, render_component};
use crate::instance::ComponentContext;
use crate::key_value::changes::StoreChange;
use crate::key_value::{AppStores, KeyValueConfig, StoreConfig, StoreSetupError, redact_url};
use crate::manifest::Manifest;
use crate::observe::reloads;
use crate::outbound_http::AllowedHosts;
use crate::runtime_config::RuntimeConfig;
use crate::variables::{ComponentVariables, VariableProviders, resolve_application_variables};

/// The part names a reload records ([`reloads::record`]).
pub const VARIABLES: &str = "variables";
/// See [`VARIABLES`].
pub const RUNTIME_CONFIG: &str = "runtime-config";

/// What an application was loaded from, as the latest reload left it.
pub(crate) struct Loaded {
    pub(crate) manifest_path: PathBuf,
    pub(crate) manifest: Manifest,
    /// `--runtime-config-file`, read again on reload.
    pub(crate) runtime_config: Option<PathBuf>,
    /// `--variable` flags, read again (their files too) on reload.
    pub(crate) variable_flags: Vec<String>,
    /// The application variables in use.
    pub(crate) app_variables: BTreeMap<String, String>,
    /// The stores open, and the configuration they were opened from.
    pub(crate) stores: AppStores,
}

/// What a reload did with each part it reloads: `Ok(summary)` when the
/// new version is serving, `Err(reason)` when the old one is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadReport {
    /// The variables.
    pub variables: Result<String, String>,
    /// The runtime config.
    pub runtime_config: Result<String, String>,
}

/// New application variables and each component's rendering of them.
struct NewVariables {
    values: BTreeMap<String, String>,
    components: BTreeMap<String, (ComponentVariables, AllowedHosts)>,
}

impl App {
    /// Reads the variables and the runtime config again and swaps in what
    /// changed, each part all or nothing (see the module doc); records and
    /// logs each part's outcome. The variables are read from the start-up
    /// `--variable` flags and `environment`; `vet` may refuse them (as
    /// `edge-host up` does when the component's own checks of its settings
    /// or inline rules fail). Blocking: it reads files and may open
    /// stores.
    pub fn reload(
        &self,
        environment: Vec<(String, String)>,
        vet: &dyn Fn(&VariableProviders) -> Result<(), String>,
    ) -> ReloadReport {
        let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        let variables = loaded.new_variables(environment, vet);
        let mut stores = loaded.new_stores();
        // Each component's stores from the new ones, before anything is
        // swapped: one that cannot be given leaves every component as it
        // was.
        let mut component_stores = BTreeMap::new();
        if let Ok(Some((new, _))) = &mut stores {
            let given = loaded
                .manifest
                .doc
                .component
                .iter()
                .map(|(id, doc)| Ok((id.clone(), new.for_component(&doc.key_value_stores)?)))
                .collect::<Result<BTreeMap<_, _>, StoreSetupError>>();
            match given {
                Ok(given) => component_stores = given,
                Err(error) => stores = Err(error.to_string()),
            }
        }
        let mut components = Vec::new();
        for component in &self.components {
            let current = component.context.current();
            let id = &*component.context.id;
            let (variables, allowed_hosts) =
                match variables.as_ref().map(|new| new.components.get(id)) {
                    Ok(Some((variables, hosts))) => (variables.clone(), Arc::new(hosts.clone())),
                    _ => (current.variables.clone(), current.allowed_hosts.clone()),
                };
            let key_value = match component_stores.get(id) {
                Some(stores) => stores.clone(),
                None => current.key_value.clone(),
            };
            // Unchanged: its instances and native nodes go on as they are.
            if variables == current.variables
                && allowed_hosts == current.allowed_hosts
                && key_value.same_instances(&current.key_value)
            {
                continue;
            }
            component.context.replace(ComponentContext {
                id: current.id.clone(),
                variables,
                key_value,
                allowed_hosts,
                origin_pool: current.origin_pool.clone(),
                files: current.files.clone(),
                environment: current.environment.clone(),
            });
            components.push(format!("`{}`", current.id));
        }
        let taking = match components.is_empty() {
            true => String::new(),
            false => format!("; new requests to {} use it", components.join(", ")),
        };
        let variables = variables.map(|new| {
            let changed = changed_names(&loaded.app_variables, &new.values);
            let summary = match changed.is_empty() {
                true => "read again; no value changed".to_owned(),
                // Names only: a value may be a secret.
                false => format!("{} changed{taking}", changed.join(", ")),
            };
            loaded.app_variables = new.values;
            summary
        });
        let runtime_config = stores.map(|stores| match stores {
            None => "no --runtime-config-file: the stores are as they were".to_owned(),
            Some((stores, changes)) => {
                let summary = describe_changes(&changes, stores.config());
                loaded.stores = stores;
                summary
            }
        });
        let report = ReloadReport {
            variables,
            runtime_config,
        };
        for (part, outcome) in [
            (VARIABLES, &report.variables),
            (RUNTIME_CONFIG, &report.runtime_config),
        ] {
            match outcome {
                Ok(summary) => tracing::info!("reload: {part}: {summary}"),
                Err(reason) => tracing::warn!(
                    "reload: {part}: not taken, serving on with the previous {part}: {reason}"
                ),
            }
            reloads::record(part, outcome.clone());
        }
        report
    }
}

impl Loaded {
    /// The variables read again, vetted, and rendered for each component.
    fn new_variables(
        &self,
        environment: Vec<(String, String)>,
        vet: &dyn Fn(&VariableProviders) -> Result<(), String>,
    ) -> Result<NewVariables, String> {
        let providers =
            VariableProviders::new(&self.variable_flags, environment).map_err(|e| e.to_string())?;
        vet(&providers)?;
        let values = resolve_application_variables(&self.manifest.doc.variables, &providers)
            .map_err(|e| format!("{}: {e}", self.manifest_path.display()))?;
        let components = self
            .manifest
            .doc
            .component
            .iter()
            .map(|(id, doc)| {
                render_component(&self.manifest_path, id, doc, &values)
                    .map(|rendered| (id.clone(), rendered))
            })
            .collect::<anyhow::Result<_>>()
            .map_err(|e| format!("{e:#}"))?;
        Ok(NewVariables { values, components })
    }

    /// The runtime config read again and the stores it defines, opened
    /// where they changed; `None` without a runtime config file.
    #[allow(clippy::type_complexity)]
    fn new_stores(&self) -> Result<Option<(AppStores, BTreeMap<String, StoreChange>)>, String> {
        let Some(path) = &self.runtime_config else {
            return Ok(None);
        };
        let config = RuntimeConfig::load(path).map_err(|e| anyhow!(e).to_string())?;
        self.stores
            .reloaded(config.key_value)
            .map(Some)
            .map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// The names of the variables whose value differs between `old` and
/// `new` (set, changed or no longer set), in name order.
fn changed_names<'a>(
    old: &'a BTreeMap<String, String>,
    new: &'a BTreeMap<String, String>,
) -> Vec<&'a str> {
    let names: std::collections::BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    names
        .into_iter()
        .filter(|name| old.get(*name) != new.get(*name))
        .map(String::as_str)
        .collect()
}

/// The stores' fate, in words: `default kept (memory, its entries with it);
/// disk opened again (spin, /var/kv.db)`.
fn describe_changes(changes: &BTreeMap<String, StoreChange>, config: &KeyValueConfig) -> String {
    let described: Vec<String> = changes
        .iter()
        .map(|(label, change)| {
            let backend = config.store(label).map(|store| match store {
                StoreConfig::Memory { capacity_bytes } => {
                    format!("memory, {capacity_bytes} bytes")
                }
                StoreConfig::Spin { path } => format!("spin, {}", path.display()),
                StoreConfig::Redis { url } => format!("redis, {}", redact_url(&url)),
            });
            let backend = backend.unwrap_or_else(|| "no longer defined".to_owned());
            match change {
                StoreChange::Kept => format!("store `{label}` kept ({backend}), entries and all"),
                StoreChange::Reopened => format!("store `{label}` opened anew ({backend})"),
                StoreChange::Unused => {
                    format!("store `{label}` ({backend}) not used by any component")
                }
                StoreChange::Undefined => format!("store `{label}` no longer defined"),
            }
        })
        .collect();
    match described.is_empty() {
        true => "no store is used or defined".to_owned(),
        false => described.join("; "),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn changed_variables_are_named_in_order_whether_set_changed_or_unset() {
        let map = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let old = map(&[("origin_url", "http://a"), ("token", "x"), ("hosts", "")]);
        let new = map(&[("origin_url", "http://b"), ("token", "x"), ("grace", "5")]);
        assert_eq!(changed_names(&old, &new), ["grace", "hosts", "origin_url"]);
        assert!(changed_names(&old, &old).is_empty());
    }

    #[test]
    fn store_changes_are_said_in_words_with_redis_passwords_hidden() {
        let config = RuntimeConfig::parse(
            "[key_value_store.default]\ntype = \"memory\"\ncapacity_bytes = 1024\n\
             [key_value_store.shared]\ntype = \"redis\"\nurl = \"redis://u:secret@h:6379\"\n\
             [key_value_store.spare]\ntype = \"spin\"\npath = \"s.db\"\n",
            Path::new("/etc/edge"),
        )
        .unwrap()
        .key_value;
        let changes = BTreeMap::from([
            ("default".to_owned(), StoreChange::Kept),
            ("gone".to_owned(), StoreChange::Unused),
            ("shared".to_owned(), StoreChange::Reopened),
            ("spare".to_owned(), StoreChange::Unused),
        ]);
        let said = describe_changes(&changes, &config);
        assert_eq!(
            said,
            "store `default` kept (memory, 1024 bytes), entries and all; \
             store `gone` (no longer defined) not used by any component; \
             store `shared` opened anew (redis, redis://u:***@h:6379); \
             store `spare` (spin, /etc/edge/s.db) not used by any component"
        );
        assert!(!said.contains("secret"));
        assert_eq!(
            describe_changes(&BTreeMap::new(), &config),
            "no store is used or defined"
        );
    }
}
