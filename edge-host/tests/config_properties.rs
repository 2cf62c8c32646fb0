//! Property tests for what edge-host parses from files and requests: the
//! manifest, the runtime config, and what the manifest feeds (routes,
//! which also see client paths; variable templates; the outbound
//! allow-list). Any text, TOML-like token soup, and mutations of real
//! files are either accepted (and then consistent) or refused with a
//! one-line error, never a panic.
//!
//! These stand in for libFuzzer targets (see `fuzz/`): a fuzz build of
//! edge-host instruments all of wasmtime, which takes longer on two cores
//! than the whole CI budget. Raise the case count with `PROPTEST_CASES`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use edge_host::key_value::StoreConfig;
use edge_host::manifest::{Manifest, RouteDoc, check_variable_name};
use edge_host::outbound_http::AllowedHosts;
use edge_host::routes::{RoutePattern, Router};
use edge_host::runtime_config::RuntimeConfig;
use edge_host::variables::render_template;
use proptest::prelude::*;
use proptest::sample::Index;

const SPIN_TOML: &str = include_str!("../../spin.toml");

const RUNTIME_CONFIG: &str = r#"
[key_value_store.default]
type = "spin"
path = ".spin/kv.db"

[key_value_store.cache]
type = "memory"
capacity_bytes = 268435456
"#;

/// Tokens TOML files (and ours in particular) are made of.
const TOKENS: &[&str] = &[
    "[",
    "]",
    "[[",
    "]]",
    "{",
    "}",
    "=",
    ",",
    ".",
    "\"",
    "'",
    "\"\"\"",
    "'''",
    "#",
    "\n",
    " ",
    "\\",
    "\\u00e9",
    "spin_manifest_version",
    "application",
    "name",
    "version",
    "variables",
    "default",
    "required",
    "secret",
    "trigger",
    "http",
    "route",
    "component",
    "source",
    "allowed_outbound_hosts",
    "key_value_stores",
    "files",
    "destination",
    "exclude_files",
    "environment",
    "build",
    "executor",
    "url",
    "digest",
    "private",
    "key_value_store",
    "type",
    "memory",
    "spin",
    "path",
    "capacity_bytes",
    "edge",
    "2",
    "0",
    "-1",
    "1.5",
    "true",
    "false",
    "18446744073709551616",
    "inf",
    "nan",
    "1979-05-27T07:32:00Z",
    "\"/...\"",
    "\"/\"",
    "\"x\"",
    "\"{{ origin_url }}\"",
    "\"edge.wasm\"",
    "\"memory\"",
    "\"spin\"",
];

fn toml_soup() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            4 => prop::sample::select(TOKENS).prop_map(str::to_owned),
            1 => "[a-z_]{1,8}",
            1 => any::<String>(),
        ],
        0..60,
    )
    .prop_map(|parts| parts.concat())
}

/// One change to a file's lines.
#[derive(Debug, Clone)]
enum Mutation {
    Delete(Index),
    Duplicate(Index),
    Swap(Index, Index),
    /// Replaces what follows the first `=` of a line.
    Value(Index, String),
    Insert(Index, String),
    Truncate(Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let text = prop_oneof![
        3 => prop::sample::select(TOKENS).prop_map(str::to_owned),
        1 => toml_soup(),
    ];
    prop_oneof![
        any::<Index>().prop_map(Mutation::Delete),
        any::<Index>().prop_map(Mutation::Duplicate),
        (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Mutation::Swap(a, b)),
        (any::<Index>(), text.clone()).prop_map(|(i, t)| Mutation::Value(i, t)),
        (any::<Index>(), text).prop_map(|(i, t)| Mutation::Insert(i, t)),
        any::<Index>().prop_map(Mutation::Truncate),
    ]
}

fn mutate(text: &str, mutations: &[Mutation]) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    for m in mutations {
        if lines.is_empty() {
            lines.push(String::new());
        }
        let n = lines.len();
        match m {
            Mutation::Delete(i) => {
                lines.remove(i.index(n));
            }
            Mutation::Duplicate(i) => {
                let line = lines[i.index(n)].clone();
                lines.insert(i.index(n), line);
            }
            Mutation::Swap(a, b) => lines.swap(a.index(n), b.index(n)),
            Mutation::Value(i, value) => {
                let line = &mut lines[i.index(n)];
                if let Some(eq) = line.find('=') {
                    line.truncate(eq + 1);
                    line.push(' ');
                    line.push_str(value);
                }
            }
            Mutation::Insert(i, line) => lines.insert(i.index(n + 1), line.clone()),
            Mutation::Truncate(i) => {
                let joined = lines.join("\n");
                let mut cut = i.index(joined.len() + 1);
                while !joined.is_char_boundary(cut) {
                    cut -= 1;
                }
                lines = joined[..cut].lines().map(str::to_owned).collect();
            }
        }
    }
    lines.join("\n")
}

fn assert_one_line_error(message: &str) {
    assert!(!message.trim().is_empty(), "an empty error");
    assert!(!message.contains('\n'), "a multi-line error: {message:?}");
}

/// A manifest is refused with a one-line error, or is one the host can run
/// from: what it refers to exists and what it names is well formed; and
/// what the host derives from it (routes, templates, allow-list) follows.
fn check_manifest(text: &str) {
    let manifest = match Manifest::parse(text, PathBuf::from(".")) {
        Ok(m) => m,
        Err(e) => return assert_one_line_error(&e),
    };
    let doc = &manifest.doc;
    assert_eq!(doc.spin_manifest_version, 2);
    for (name, var) in &doc.variables {
        check_variable_name(name).unwrap();
        assert!(!(var.required && var.default.is_some()), "{name}");
    }
    let mut routes = Vec::new();
    for trigger in &doc.trigger.http {
        assert!(doc.component.contains_key(&trigger.component));
        if let RouteDoc::Path(route) = &trigger.route {
            assert!(route.starts_with('/'), "{route}");
            routes.push((RoutePattern::parse(route), route.clone()));
        }
    }
    let router = Router::new(routes);
    for path in ["/", "/products/1", "//x/../y", "/static/", ""] {
        check_route(&router, path);
    }
    let values: BTreeMap<String, String> = doc
        .variables
        .iter()
        .map(|(name, var)| (name.clone(), var.default.clone().unwrap_or_default()))
        .collect();
    for component in doc.component.values() {
        let rendered: Vec<String> = component
            .allowed_outbound_hosts
            .iter()
            .filter_map(|t| render_template(t, &values, "allowed_outbound_hosts").ok())
            .collect();
        if let Ok(hosts) = AllowedHosts::parse(&rendered) {
            let _ = hosts.allows(&"http://127.0.0.1:8080/x".parse().unwrap());
        }
        for template in component.variables.values() {
            let _ = render_template(template, &values, "variables");
        }
    }
}

fn check_route(router: &Router<String>, path: &str) {
    if let Some(found) = router.route(path) {
        let trimmed = path.trim_end_matches('/');
        let normalised = if trimmed.is_empty() { "/" } else { trimmed };
        assert!(
            found.path_info.is_empty() || normalised.ends_with(found.path_info.as_str()),
            "{path:?} matched {} with path info {:?}",
            found.matched_route,
            found.path_info
        );
    }
}

fn check_runtime_config(text: &str) {
    let base = Path::new("/etc/edge");
    match RuntimeConfig::parse(text, base) {
        Ok(config) => {
            let config = config.key_value;
            for (label, store) in &config.stores {
                assert_eq!(config.store(label).as_ref(), Some(store));
                match store {
                    StoreConfig::Memory { capacity_bytes } => assert!(*capacity_bytes > 0),
                    StoreConfig::Spin { path } => assert!(path.is_absolute(), "{path:?}"),
                    // Checked against the server when the store is opened.
                    StoreConfig::Redis { url } => assert!(!url.trim().is_empty()),
                }
            }
            assert!(config.store("default").is_some());
        }
        Err(e) => assert_one_line_error(&e),
    }
}

#[test]
fn mutation_bases_are_valid() {
    Manifest::parse(SPIN_TOML, PathBuf::from(".")).unwrap();
    assert_eq!(
        RuntimeConfig::parse(RUNTIME_CONFIG, Path::new("/"))
            .unwrap()
            .key_value
            .stores
            .len(),
        2
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn manifest_from_any_text(text in any::<String>()) {
        check_manifest(&text);
    }

    #[test]
    fn manifest_from_toml_soup(text in toml_soup()) {
        check_manifest(&text);
    }

    #[test]
    fn manifest_mutations_of_spin_toml(mutations in prop::collection::vec(mutation(), 1..6)) {
        check_manifest(&mutate(SPIN_TOML, &mutations));
    }

    #[test]
    fn runtime_config_from_any_text(text in any::<String>()) {
        check_runtime_config(&text);
    }

    #[test]
    fn runtime_config_from_toml_soup(text in toml_soup()) {
        check_runtime_config(&text);
    }

    #[test]
    fn runtime_config_mutations(mutations in prop::collection::vec(mutation(), 1..6)) {
        check_runtime_config(&mutate(RUNTIME_CONFIG, &mutations));
    }

    /// Well-formed configs mean what they say.
    #[test]
    fn runtime_config_generated(
        stores in prop::collection::btree_map(
            "[a-z][a-z0-9_-]{0,10}",
            prop_oneof![
                // TOML integers are i64 (the toml crate also reads larger
                // ones into a u64; either way, what is read is what is used).
                prop_oneof![Just(0u64), Just(1u64), Just(i64::MAX as u64), 0u64..=i64::MAX as u64]
                    .prop_map(Some),
                Just(None::<u64>),
            ].prop_flat_map(|cap| prop_oneof![
                Just((true, cap, String::new())),
                "[a-zA-Z0-9_./-]{0,20}".prop_map(|p| (false, None, p)),
            ]),
            0..5,
        )
    ) {
        let mut text = String::new();
        for (label, (memory, capacity, path)) in &stores {
            text.push_str(&format!("[key_value_store.{label}]\n"));
            if *memory {
                text.push_str("type = \"memory\"\n");
                if let Some(c) = capacity {
                    text.push_str(&format!("capacity_bytes = {c}\n"));
                }
            } else {
                text.push_str(&format!("type = \"spin\"\npath = {path:?}\n"));
            }
        }
        let parsed = RuntimeConfig::parse(&text, Path::new("/base"));
        let refused = stores
            .values()
            .any(|(memory, cap, _)| *memory && *cap == Some(0));
        match parsed {
            Err(e) => {
                assert_one_line_error(&e);
                prop_assert!(refused, "refused a valid config: {e}\n{text}");
            }
            Ok(config) => {
                prop_assert!(!refused, "accepted {text}");
                let config = config.key_value;
                for (label, (memory, capacity, path)) in &stores {
                    let expected = if *memory {
                        StoreConfig::Memory { capacity_bytes: capacity.unwrap_or(64 * 1024 * 1024) }
                    } else {
                        StoreConfig::Spin { path: Path::new("/base").join(path) }
                    };
                    prop_assert_eq!(config.store(label), Some(expected));
                }
            }
        }
    }

    /// Routes from any manifest text, against any client path.
    #[test]
    fn routes_never_panic(
        routes in prop::collection::vec(prop_oneof![
            Just("/...".to_owned()), Just("...".to_owned()), "/[a-z/.]{0,12}(/\\.\\.\\.)?", any::<String>(),
        ], 0..6),
        paths in prop::collection::vec(prop_oneof!["/[a-z/.%]{0,16}", any::<String>()], 1..8),
    ) {
        let router = Router::new(
            routes.iter().map(|r| (RoutePattern::parse(r), r.clone())).collect(),
        );
        for path in &paths {
            check_route(&router, path);
        }
        if routes.iter().any(|r| r == "/...") {
            for path in paths.iter().filter(|p| p.starts_with('/')) {
                prop_assert!(router.route(path).is_some(), "/... serves {:?}", path);
            }
        }
    }

    /// Templates over any text: expanded or refused, never a panic.
    #[test]
    fn templates_never_panic(template in prop_oneof![
        "[a-z{} _]{0,24}", any::<String>(),
    ]) {
        let values = BTreeMap::from([("origin_url".to_owned(), "http://o".to_owned())]);
        let _ = render_template(&template, &values, "test");
        if let Ok(hosts) = AllowedHosts::parse(&[template.as_str()]) {
            let _ = hosts.allows(&"https://o:443/".parse().unwrap());
        }
    }
}
