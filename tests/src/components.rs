//! What the tests load: the workspace's built components and shipped
//! files, the flavour under test, and application options for them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use edge_host::reuse::PerInstance;
use edge_host::{AppOptions, Flavour, InstanceLimits, ReuseOptions};

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// A manifest in a fresh workdir that serves the built component
/// `wasm_name` (as [`built_component`] names it) on every path as the
/// component `misbehaving`, and the options to run it with `limits`, at
/// most 16 instances and the shared compilation cache; a test changes
/// the rest with struct update. The workdir must outlive the app.
pub fn single_component_app(
    wasm_name: &str,
    app_name: &str,
    limits: InstanceLimits,
) -> (AppOptions, tempfile::TempDir) {
    let wasm = built_component(wasm_name);
    let workdir = tempfile::tempdir().expect("a temporary directory");
    let manifest = workdir.path().join("spin.toml");
    std::fs::write(
        &manifest,
        format!(
            "spin_manifest_version = 2\n[application]\nname = {app_name:?}\n\
             [[trigger.http]]\nroute = \"/...\"\ncomponent = \"misbehaving\"\n\
             [component.misbehaving]\nsource = {:?}\n",
            wasm.display().to_string()
        ),
    )
    .expect("the manifest is written");
    let options = AppOptions {
        manifest,
        cache_dir: Some(compilation_cache()),
        max_instances: Some(16),
        limits: Some(limits),
        ..Default::default()
    };
    (options, workdir)
}

/// The flavour [`EdgeSetup`](crate::EdgeSetup) runs unless a test names
/// one: WASI 0.3 (instance reuse), or the one `EDGE_TEST_FLAVOUR` names
/// (`p2` or `p3`). `make test` runs the suite in both: every behaviour test
/// proves both adapters.
pub fn default_flavour() -> Flavour {
    match std::env::var("EDGE_TEST_FLAVOUR").as_deref() {
        Ok("p2") => Flavour::P2,
        Ok("p3") | Err(_) => Flavour::P3,
        Ok(other) => panic!("EDGE_TEST_FLAVOUR must be p2 or p3, not `{other}`"),
    }
}

/// Whether [`EdgeSetup`](crate::EdgeSetup) answers fresh hits natively
/// unless a test says: yes, as `edge-host up` does, or what
/// `EDGE_NATIVE_HITS` says (`on` or `off`). `make test` runs the WASI 0.3
/// suite both ways, so every behaviour test proves both paths.
pub fn default_native_hits() -> bool {
    match std::env::var("EDGE_NATIVE_HITS").as_deref() {
        Ok("on") | Err(_) => true,
        Ok("off") => false,
        Ok(other) => panic!("EDGE_NATIVE_HITS must be on or off, not `{other}`"),
    }
}

/// The built edge-cache component of [`default_flavour`]; panics with the
/// fix if it is missing.
pub fn component_path() -> PathBuf {
    component_path_for(default_flavour())
}

/// The built edge-cache component of `flavour` (`edge_cache_p2` or
/// `edge_cache_p3`); panics with the fix if it is missing.
pub fn component_path_for(flavour: Flavour) -> PathBuf {
    built_component(match flavour {
        Flavour::P2 => "edge_cache_p2",
        Flavour::P3 => "edge_cache_p3",
    })
}

/// `target/wasm32-wasip2/release/{name}.wasm`, built by `make wasm`;
/// panics with the fix if it is missing.
pub fn built_component(name: &str) -> PathBuf {
    let path = workspace_root().join(format!("target/wasm32-wasip2/release/{name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: build it with `make wasm` (make test does this)",
        path.display()
    );
    path
}

/// edge-host's on-disk cache of compiled components, shared by every test
/// (`target/edge-host-cache`): only the first load of a component compiles.
pub fn compilation_cache() -> PathBuf {
    workspace_root().join("target/edge-host-cache")
}

/// The shipped manifest of `flavour`: `spin.toml` (WASI 0.3) or
/// `spin-p2.toml`, or with `cluster` their many-node forms
/// (`spin-cluster.toml`, `spin-p2-cluster.toml`).
pub fn shipped_manifest(flavour: Flavour, cluster: bool) -> &'static str {
    match (flavour, cluster) {
        (Flavour::P3, false) => "spin.toml",
        (Flavour::P2, false) => "spin-p2.toml",
        (Flavour::P3, true) => "spin-cluster.toml",
        (Flavour::P2, true) => "spin-p2-cluster.toml",
    }
}

/// WASI 0.3 instance reuse: at most `total` requests per instance,
/// `concurrent` at once, and an idle timeout long enough that no instance
/// retires idle while a test runs.
pub fn reuse(total: usize, concurrent: usize) -> ReuseOptions {
    ReuseOptions {
        max_instance_reuse_count: PerInstance::Value(total),
        max_instance_concurrent_reuse_count: PerInstance::Value(concurrent),
        idle_instance_timeout: PerInstance::Value(Duration::from_secs(30)),
    }
}
