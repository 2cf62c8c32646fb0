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
