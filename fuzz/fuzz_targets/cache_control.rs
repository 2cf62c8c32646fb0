//! `Cache-Control`, `CDN-Cache-Control` and `Surrogate-Control` directive
//! lists (origin bytes): any text parses to directives with lower-case
//! token names, and delta-seconds never exceed RFC 9111's cap; an
//! unqualified `private` or `no-cache` wins over any qualified one, before
//! or after it, in the same field line or another.
#![no_main]

use edge_cache::fuzzing::cache_control::{CacheDirectives, DELTA_SECONDS_MAX, Seconds};
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;

const DELTA_DIRECTIVES: [&str; 5] = [
    "max-age",
    "s-maxage",
    "stale-while-revalidate",
    "stale-if-error",
    "min-fresh",
];

fn check(d: &CacheDirectives) {
    for name in d.names() {
        assert!(!name.is_empty());
        assert!(
            name.bytes()
                .all(|b| b.is_ascii_graphic() && !b.is_ascii_uppercase() && b != b',' && b != b'='),
            "directive name {name:?}"
        );
        assert!(d.has(name));
    }
    for name in DELTA_DIRECTIVES {
        if let Some(Seconds::Valid(n)) = d.seconds(name) {
            assert!(n <= DELTA_SECONDS_MAX);
        }
    }
    for name in ["no-cache", "private"] {
        if let Some(fields) = d.field_names(name) {
            assert!(d.has(name));
            for f in fields {
                assert!(!f.is_empty() && !f.contains(','), "field name {f:?}");
            }
        }
    }
}

/// `name` unqualified applies to the whole response however many qualified
/// instances surround it: at the start of `text`, or on a field line of
/// its own before or after the `Cache-Control` lines of `lines`.
fn unqualified_wins(text: &str, lines: &HeaderMap, name: &'static str) {
    let first = CacheDirectives::parse(&format!("{name}, {text}"));
    assert!(first.has_unqualified(name), "{name}, {text:?}");
    assert_eq!(first.field_names(name), Some(Vec::new()));
    for before in [true, false] {
        let mut headers = HeaderMap::new();
        if before {
            headers.append("cache-control", HeaderValue::from_static(name));
        }
        for value in lines.get_all("cache-control") {
            headers.append("cache-control", value.clone());
        }
        if !before {
            headers.append("cache-control", HeaderValue::from_static(name));
        }
        let d = CacheDirectives::from_headers(&headers, "cache-control").unwrap();
        assert!(d.has_unqualified(name), "{name} before={before} {text:?}");
        assert_eq!(d.field_names(name), Some(Vec::new()));
    }
}

fuzz_target!(|data: &[u8]| {
    // Any string, as the public API allows.
    let text = String::from_utf8_lossy(data);
    check(&CacheDirectives::parse(&text));

    // As a field value, the way the flow reads a response, on each field
    // line (split at `\n`) of each of the three fields.
    let mut headers = HeaderMap::new();
    for line in data.split(|b| *b == b'\n') {
        if let Ok(value) = HeaderValue::from_bytes(line) {
            for name in ["cache-control", "cdn-cache-control", "surrogate-control"] {
                headers.append(name, value.clone());
            }
        }
    }
    for name in ["cache-control", "cdn-cache-control", "surrogate-control"] {
        match CacheDirectives::from_headers(&headers, name) {
            Some(d) => {
                check(&d);
                // One visible-ASCII line parses the same either way.
                if let [value] = headers.get_all(name).iter().collect::<Vec<_>>()[..]
                    && let Ok(text) = value.to_str()
                {
                    assert_eq!(d, CacheDirectives::parse(text));
                }
            }
            None => assert!(headers.get(name).is_none()),
        }
    }
    for name in ["private", "no-cache"] {
        unqualified_wins(&text, &headers, name);
    }
});
