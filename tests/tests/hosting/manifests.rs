//! The shipped manifests: `spin.toml` (the flavour for hosts that reuse
//! instances) and `spin-p2.toml` (WASI 0.2) describe the same application,
//! and every variable the component reads is declared and passed to it.

use edge_tests::workspace_root;

fn manifest(name: &str) -> String {
    std::fs::read_to_string(workspace_root().join(name)).expect("manifest readable")
}

/// The manifest without its comments and its component `source` line.
fn body(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|line| !line.trim_start().starts_with('#') && !line.starts_with("source ="))
        .collect()
}

#[test]
fn both_flavours_describe_the_same_application() {
    let (reuse, p2) = (manifest("spin.toml"), manifest("spin-p2.toml"));
    assert_eq!(
        body(&reuse),
        body(&p2),
        "spin.toml and spin-p2.toml drifted apart"
    );
    assert!(p2.contains(r#"source = "target/wasm32-wasip2/release/edge_cache_p2.wasm""#));
    assert!(reuse.contains(r#"source = "target/wasm32-wasip2/release/edge_cache_p3.wasm""#));
}

#[test]
fn every_variable_the_component_reads_is_declared_and_passed() {
    for name in ["spin.toml", "spin-p2.toml"] {
        let text = manifest(name);
        for variable in edge_cache::config::VARIABLES {
            assert!(
                text.lines()
                    .any(|l| l.starts_with(&format!("{variable} = {{"))),
                "{name}: variable `{variable}` is not declared"
            );
            let passed = format!("{variable} = \"{{{{ {variable} }}}}\"");
            assert!(
                text.lines().any(|l| l == passed),
                "{name}: `{variable}` is not passed to the component"
            );
        }
    }
}

/// A manifest's lines without comments.
fn uncommented(text: &str) -> Vec<String> {
    text.lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .map(str::to_owned)
        .collect()
}

/// The lines of `cluster` without comments, with the two lines that make
/// it a cluster manifest put back as the base has them.
fn as_base(cluster: &str) -> Vec<String> {
    uncommented(cluster)
        .iter()
        .map(|line| match line.as_str() {
            r#"shared_store = { default = "shared" }"# => r#"shared_store = { default = "" }"#,
            r#"key_value_stores = ["default", "shared"]"# => r#"key_value_stores = ["default"]"#,
            other => other,
        })
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_cluster_manifests_differ_from_their_base_only_in_the_shared_store() {
    for (base, cluster) in [
        ("spin.toml", "spin-cluster.toml"),
        ("spin-p2.toml", "spin-p2-cluster.toml"),
    ] {
        let (base_text, cluster_text) = (manifest(base), manifest(cluster));
        assert_eq!(
            as_base(&cluster_text),
            uncommented(&base_text),
            "{cluster} drifted from {base}: regenerate it (only shared_store's default and key_value_stores differ)"
        );
        assert!(cluster_text.contains(r#"key_value_stores = ["default", "shared"]"#));
        assert!(cluster_text.contains(r#"shared_store = { default = "shared" }"#));
    }
}
