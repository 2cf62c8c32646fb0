//! The cache rules file (JSON): any text either parses to rules or gives a
//! `cache rules: …` error, and a parsed file picks a rule for any path.
#![no_main]

use edge_cache::fuzzing::cache_status::{CacheStatus, Forward};
use edge_cache::fuzzing::rules::CacheRules;
use edge_cache::fuzzing::target::normalise_path;
use http::HeaderValue;
use libfuzzer_sys::fuzz_target;

const PATHS: [&str; 9] = [
    "/",
    "/static/js/app.3f2a1b9c.js?v=2",
    "/products?page=2&sort=price",
    "/products/7",
    "/account/orders",
    "/api/v1/shop/items",
    "/a/../static/%2e%2e/x.css",
    "//double//slash/",
    "/%zz?x",
];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let rules = match CacheRules::parse(text) {
        Ok(rules) => rules,
        Err(e) => {
            assert!(e.to_string().starts_with("cache rules: "), "{e}");
            return;
        }
    };
    // Paths from the rules themselves (wildcards filled in) and fixed ones.
    let mut paths: Vec<String> = PATHS.iter().map(|p| p.to_string()).collect();
    for p in text.split('"').filter(|s| s.starts_with('/')).take(16) {
        paths.push(p.replace('*', "x"));
        paths.push(format!(
            "{}/deeper/file.js",
            p.replace("**", "a/b").replace('*', "")
        ));
    }
    for target in &paths {
        let rule = rules.for_target(target);
        // The rule's name reaches clients in `Cache-Status` (bypass detail).
        let status =
            CacheStatus::forward(Forward::Bypass).with_detail(format!("rule-{}", rule.label()));
        assert!(
            HeaderValue::from_str(&status.header_value()).is_ok(),
            "{:?}",
            status.header_value()
        );
        assert!(rule.max_object_bytes != Some(0));
        let path = normalise_path(target.split('?').next().unwrap_or("/"));
        if let Some(prefix) = &rule.path_prefix {
            assert!(path.starts_with(prefix.as_str()), "{path} under {prefix}");
        }
        let _ = rule.is_versioned(&path, &["v"]);
        let _ = rule.freshness(false);
    }
});
