//! The cache key: a canonical form of what identifies a response (scheme,
//! host, normalised path, the query, cookies and headers the rule keys on),
//! hashed with blake3 to a fixed-size store key.
//!
//! The same canonicalisation decides what is forwarded: the origin sees
//! exactly the keyed query and cookies, so an unkeyed input can never shape
//! a response that is then served to everyone (cache poisoning).

use http::HeaderMap;

use crate::http::host::canonical_host;
use crate::policy::rules::{QueryRule, Rule};
use crate::policy::tags::TagHeaders;
use crate::policy::target::{decode_component, normalise_encoding, normalise_path};

/// A request's cache identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheKey {
    /// The canonical form (kept in the entry for inspection and checks).
    pub canonical: String,
    /// blake3 of the canonical form, truncated to 128 bits, hex.
    pub hash: String,
}

impl CacheKey {
    fn new(canonical: String) -> Self {
        let hash = hash128(canonical.as_bytes());
        CacheKey { canonical, hash }
    }
}

/// 128 bits of blake3, hex: plenty against collisions, short in the store.
pub fn hash128(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex()[..32].to_owned()
}

/// What the key covers, and the request parts to forward accordingly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyedTarget {
    /// The canonical key and its hash.
    pub key: CacheKey,
    /// The normalised path.
    pub path: String,
    /// Path and canonical query to send to the origin.
    pub origin_target: String,
    /// The `Cookie` header to forward: only keyed cookies.
    pub cookie: Option<String>,
    /// Names of the query parameters kept.
    pub query_names: Vec<String>,
    /// The response fields its purge tags are read from (the rule's
    /// `tag_headers`): tags are scopes its entry is stored under, as its
    /// URL and path are.
    pub tag_headers: TagHeaders,
}

impl KeyedTarget {
    /// The URL part of the canonical key (without cookie and header
    /// components): the scope URL invalidation works on.
    pub fn url(&self) -> &str {
        let canonical = &self.key.canonical;
        canonical.split('\n').next().unwrap_or(canonical)
    }
}

/// Builds the key for a GET/HEAD request under `rule`.
pub fn build_key(
    scheme: &str,
    host: &str,
    path_and_query: &str,
    headers: &HeaderMap,
    rule: &Rule,
) -> KeyedTarget {
    let (raw_path, raw_query) = match path_and_query.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path_and_query, None),
    };
    let path = normalise_path(raw_path);
    let version_param = rule.version.as_ref().and_then(|v| v.query_param.as_deref());
    let query = canonical_query(raw_query.unwrap_or(""), &rule.query, version_param);
    let query_names: Vec<String> = query.iter().map(|(n, _)| decode_component(n)).collect();
    let query_string = query
        .iter()
        .map(|(n, v)| match v {
            Some(v) => format!("{n}={v}"),
            None => n.clone(),
        })
        .collect::<Vec<_>>()
        .join("&");

    let mut canonical = format!(
        "{}://{}{}",
        scheme.to_ascii_lowercase(),
        canonical_host(scheme, host),
        path
    );
    let mut origin_target = path.clone();
    if !query_string.is_empty() {
        canonical.push('?');
        canonical.push_str(&query_string);
        origin_target.push('?');
        origin_target.push_str(&query_string);
    }

    let cookies = keyed_cookies(headers, &rule.cookies);
    let cookie = (!cookies.is_empty()).then(|| {
        cookies
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    });
    // Every keyed cookie appears, present or not, so "absent" and "empty"
    // are distinct variants.
    for name in &rule.cookies {
        let value = cookies
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str());
        canonical.push_str(&format!("\ncookie:{name}={}", value.unwrap_or("\u{0}")));
    }
    for name in &rule.headers {
        let name = name.to_ascii_lowercase();
        let values: Vec<&str> = headers
            .get_all(name.as_str())
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::trim)
            .collect();
        canonical.push_str(&format!("\nheader:{name}={}", values.join(", ")));
    }
    KeyedTarget {
        key: CacheKey::new(canonical),
        path,
        origin_target,
        cookie,
        query_names,
        tag_headers: rule.tag_headers,
    }
}

/// The kept query parameters, encoding-normalised and sorted by name then
/// value (a stable order: a client's parameter order never splits the cache).
fn canonical_query(
    query: &str,
    rule: &QueryRule,
    version_param: Option<&str>,
) -> Vec<(String, Option<String>)> {
    let mut pairs: Vec<(String, Option<String>)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((n, v)) => (normalise_encoding(n), Some(normalise_encoding(v))),
            None => (normalise_encoding(pair), None),
        })
        .filter(|(name, _)| {
            let decoded = decode_component(name);
            if version_param == Some(decoded.as_str()) {
                return true;
            }
            match rule {
                QueryRule::Sorted => true,
                QueryRule::Ignore => false,
                QueryRule::Include(names) => names.contains(&decoded),
                QueryRule::Exclude(names) => !names.contains(&decoded),
            }
        })
        .collect();
    pairs.sort();
    pairs
}

/// The named cookies present in the request, sorted by name.
fn keyed_cookies(headers: &HeaderMap, names: &[String]) -> Vec<(String, String)> {
    if names.is_empty() {
        return Vec::new();
    }
    let mut found: Vec<(String, String)> = headers
        .get_all("cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .filter(|(n, _)| names.iter().any(|want| want == n.trim()))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    found.sort();
    // The first instance of a duplicated cookie wins, as browsers send the
    // most specific first.
    found.dedup_by(|a, b| a.0 == b.0);
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::rules::VersionRule;

    fn key(path_and_query: &str, rule: &Rule) -> KeyedTarget {
        build_key(
            "http",
            "Shop.Example:80",
            path_and_query,
            &HeaderMap::new(),
            rule,
        )
    }

    #[test]
    fn equivalent_requests_share_a_key() {
        let rule = Rule::default();
        let a = key("/p?b=2&a=1", &rule);
        let b = build_key(
            "HTTP",
            "shop.example",
            "/./p?a=1&b=2",
            &HeaderMap::new(),
            &rule,
        );
        assert_eq!(a.key, b.key);
        assert_eq!(a.origin_target, "/p?a=1&b=2");
        assert_eq!(a.key.canonical, "http://shop.example/p?a=1&b=2");
        assert_eq!(a.key.hash.len(), 32);
        assert_ne!(key("/p?a=1&b=3", &rule).key, a.key);
        assert_ne!(
            build_key(
                "https",
                "shop.example",
                "/p?a=1&b=2",
                &HeaderMap::new(),
                &rule
            )
            .key,
            a.key
        );
    }

    #[test]
    fn query_rules_shape_key_and_forwarded_target() {
        let include = Rule {
            query: QueryRule::Include(vec!["page".into()]),
            ..Default::default()
        };
        let k = key("/p?utm_source=x&page=2", &include);
        assert_eq!(k.origin_target, "/p?page=2");
        assert_eq!(k.key, key("/p?page=2&utm_source=y", &include).key);

        let exclude = Rule {
            query: QueryRule::Exclude(vec!["utm_source".into()]),
            ..Default::default()
        };
        assert_eq!(
            key("/p?utm_source=x&page=2", &exclude).origin_target,
            "/p?page=2"
        );

        let ignore = Rule {
            query: QueryRule::Ignore,
            ..Default::default()
        };
        assert_eq!(key("/p?anything=1", &ignore).origin_target, "/p");

        let versioned = Rule {
            query: QueryRule::Ignore,
            version: Some(VersionRule {
                query_param: Some("v".into()),
                hashed_name: false,
            }),
            ..Default::default()
        };
        let k = key("/app.js?v=3&cb=1", &versioned);
        assert_eq!(k.origin_target, "/app.js?v=3");
        assert_eq!(k.query_names, ["v"]);
    }

    #[test]
    fn keyed_cookies_and_headers() {
        let rule = Rule {
            cookies: vec!["lang".into()],
            headers: vec!["Accept".into()],
            ..Default::default()
        };
        let mut h = HeaderMap::new();
        h.insert(
            "cookie",
            "session=secret; lang=ko; other=1".parse().unwrap(),
        );
        h.insert("accept", "application/json".parse().unwrap());
        let k = build_key("http", "h", "/", &h, &rule);
        assert_eq!(
            k.cookie.as_deref(),
            Some("lang=ko"),
            "only keyed cookies are forwarded"
        );
        assert!(k.key.canonical.contains("cookie:lang=ko"));
        assert!(k.key.canonical.contains("header:accept=application/json"));
        assert!(!k.key.canonical.contains("secret"));

        let mut en = h.clone();
        en.insert("cookie", "lang=en".parse().unwrap());
        assert_ne!(build_key("http", "h", "/", &en, &rule).key, k.key);
        let mut none = h.clone();
        none.remove("cookie");
        let absent = build_key("http", "h", "/", &none, &rule);
        assert_eq!(absent.cookie, None);
        let mut empty = h.clone();
        empty.insert("cookie", "lang=".parse().unwrap());
        assert_ne!(build_key("http", "h", "/", &empty, &rule).key, absent.key);
    }
}
