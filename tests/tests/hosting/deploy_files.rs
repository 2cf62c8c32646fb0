//! The deployment files shipped for many nodes (`deploy/`), checked here
//! because no cluster runs in CI: they parse, and they agree with the
//! cluster manifests on store labels and variables.

use std::collections::BTreeSet;
use std::path::Path;

use edge_host::key_value::StoreConfig;
use edge_host::manifest::Manifest;
use edge_host::runtime_config::RuntimeConfig;
use edge_tests::workspace_root;
use serde_norway::Value;

fn cluster_manifest(name: &str) -> Manifest {
    Manifest::load(&workspace_root().join(name)).expect("cluster manifest loads")
}

/// The store labels the edge component may open.
fn store_labels(manifest: &Manifest) -> BTreeSet<String> {
    manifest.doc.component["edge-cache"]
        .key_value_stores
        .iter()
        .cloned()
        .collect()
}

#[test]
fn the_runtime_config_defines_every_store_of_the_cluster_manifests() {
    let path = workspace_root().join("deploy/runtime-config.toml");
    let config = RuntimeConfig::load(&path).expect("deploy/runtime-config.toml parses");
    let labels: BTreeSet<String> = config.key_value.stores.keys().cloned().collect();
    for name in ["spin-cluster.toml", "spin-p2-cluster.toml"] {
        assert_eq!(labels, store_labels(&cluster_manifest(name)), "{name}");
    }
    assert!(matches!(
        config.key_value.store("shared"),
        Some(StoreConfig::Redis { url }) if url.starts_with("redis://")
    ));
    assert!(
        matches!(
            config.key_value.store("default"),
            Some(StoreConfig::Spin { .. })
        ),
        "entries stay on the node"
    );
}

fn field<'a>(value: &'a Value, name: &str) -> &'a Value {
    value
        .get(name)
        .unwrap_or_else(|| panic!("no `{name}` in {value:?}"))
}

fn text<'a>(value: &'a Value, name: &str) -> &'a str {
    field(value, name)
        .as_str()
        .unwrap_or_else(|| panic!("`{name}` is not a string in {value:?}"))
}

#[test]
fn the_spinapp_has_redis_for_the_shared_store_and_only_declared_variables() {
    let path = workspace_root().join("deploy/spinkube/spinapp.yaml");
    let yaml = std::fs::read_to_string(&path).expect("spinapp.yaml readable");
    let app: Value = serde_norway::from_str(&yaml).expect("spinapp.yaml parses");
    assert_eq!(text(&app, "apiVersion"), "core.spinkube.dev/v1alpha1");
    assert_eq!(text(&app, "kind"), "SpinApp");
    let spec = field(&app, "spec");
    assert_eq!(text(spec, "executor"), "containerd-shim-spin");
    assert!(
        field(spec, "replicas").as_u64().unwrap_or(0) > 1,
        "many nodes"
    );

    let manifest = cluster_manifest("spin-p2-cluster.toml");
    let stores = field(field(spec, "runtimeConfig"), "keyValueStores")
        .as_sequence()
        .expect("keyValueStores is a list");
    let names: BTreeSet<String> = stores.iter().map(|s| text(s, "name").to_owned()).collect();
    assert_eq!(names, store_labels(&manifest));
    let shared = stores
        .iter()
        .find(|s| text(s, "name") == "shared")
        .expect("a shared store");
    assert_eq!(text(shared, "type"), "redis");
    let url = field(shared, "options")
        .as_sequence()
        .expect("options is a list")
        .iter()
        .find(|o| text(o, "name") == "url")
        .expect("a url option");
    assert!(
        url.get("valueFrom").is_some(),
        "the URL carries a password: from a secret"
    );

    let declared: BTreeSet<&str> = manifest.doc.variables.keys().map(String::as_str).collect();
    for variable in field(spec, "variables").as_sequence().expect("a list") {
        let name = text(variable, "name");
        assert!(
            declared.contains(name),
            "`{name}` is not a variable of the app"
        );
    }
}

#[test]
fn the_deploy_notes_name_the_files_they_describe() {
    let notes = std::fs::read_to_string(workspace_root().join("deploy/README.md")).unwrap();
    for file in [
        "runtime-config.toml",
        "spinkube/spinapp.yaml",
        "spin-cluster.toml",
    ] {
        assert!(
            notes.contains(file),
            "deploy/README.md does not mention {file}"
        );
        let path = if file.starts_with("spin-") {
            workspace_root().join(file)
        } else {
            workspace_root().join("deploy").join(file)
        };
        assert!(Path::new(&path).exists(), "{} is missing", path.display());
    }
}
