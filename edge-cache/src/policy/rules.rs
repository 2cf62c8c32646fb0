//! Cache rules: an ordered JSON list matched on the request path, each
//! saying how to key, how long to keep, and what to bypass.
//!
//! ```json
//! { "rules": [
//!   { "path_prefix": "/static/", "query": "ignore",
//!     "version": { "hashed_name": true } },
//!   { "path_glob": "/products*", "query": { "include": ["page", "sort", "q"] },
//!     "cookies": ["lang"], "default_ttl_seconds": 30 },
//!   { "path_prefix": "/account", "bypass": true },
//!   { "path_prefix": "/", "browser_max_age": 60, "tag_headers": ["cache-tag"] }
//! ] }
//! ```

use std::time::Duration;

use serde::Deserialize;

use crate::config::RulesSource;
use crate::http::cache_control::DELTA_SECONDS_MAX;
use crate::policy::browser::{BrowserAge, BrowserFreshness};
use crate::policy::cookies::OtherCookies;
use crate::policy::freshness::FreshnessRule;
use crate::policy::tags::TagHeaders;

/// The value limit of hosted Spin key-value stores: the largest object
/// stored where large objects cannot be (no chunks), and the smallest
/// default where they can (`store::capacity`).
pub const DEFAULT_MAX_OBJECT_BYTES: u64 = 1024 * 1024;

/// How the query string enters the key (and reaches the origin).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum QueryRule {
    /// Every parameter, sorted by name then value (the default).
    #[default]
    Sorted,
    /// No parameters: neither the key nor the origin's request has a
    /// query.
    Ignore,
    /// Only these parameters.
    Include(Vec<String>),
    /// Every parameter but these.
    Exclude(Vec<String>),
}

/// How a rule recognises versioned objects (a new version is a new URL, so
/// each version may be cached as immutable).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionRule {
    /// A query parameter carrying the version (e.g. `v`); always keyed.
    #[serde(default)]
    pub query_param: Option<String>,
    /// File names with a content hash (`app.3f2a1b9c.js`: a dot-separated
    /// segment of at least 8 hex digits).
    #[serde(default)]
    pub hashed_name: bool,
}

/// Which client fields a fill carries (the rule option `forward_headers`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ForwardHeaders {
    /// Every end-to-end field but `forwarding::EDGE_OWNED` and `forwarding::FILL_EXCLUDED`
    /// (RFC 9110 §7.6). An origin that varies on a field must say so in
    /// `Vary`, as for any shared cache.
    #[default]
    All,
    /// Only `forwarding::KEYED_MODE_FIELDS`, the rule's keyed headers and the
    /// fields the stored `Vary` names.
    Keyed,
}

/// One rule as written in the file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// A name for logs and `Cache-Status` details.
    #[serde(default)]
    pub name: Option<String>,
    /// Matches paths starting with this.
    #[serde(default)]
    pub path_prefix: Option<String>,
    /// Matches paths by glob: `*` within a segment, `**` across segments.
    #[serde(default)]
    pub path_glob: Option<String>,
    /// Forward without caching.
    #[serde(default)]
    pub bypass: bool,
    /// Query composition of the key.
    #[serde(default)]
    pub query: QueryRule,
    /// Cookies that are part of the key (and the only ones forwarded).
    #[serde(default)]
    pub cookies: Vec<String>,
    /// What any other cookie does: `pass` (the default: the request goes
    /// to the origin with its cookies, unshared) or `ignore` (dropped).
    #[serde(default)]
    pub other_cookies: OtherCookies,
    /// Cookies that never make a pass and are dropped (a trailing `*`
    /// matches a prefix); default: common analytics cookies.
    #[serde(default)]
    pub ignored_cookies: Option<Vec<String>>,
    /// Request headers that are part of the key.
    #[serde(default)]
    pub headers: Vec<String>,
    /// Freshness lifetime imposed regardless of the origin's.
    #[serde(default)]
    pub ttl_seconds: Option<u64>,
    /// Freshness lifetime when the origin gives none.
    #[serde(default)]
    pub default_ttl_seconds: Option<u64>,
    /// Allow heuristic freshness from `Last-Modified` (RFC 9111 §4.2.2).
    #[serde(default)]
    pub heuristic: bool,
    /// Largest body stored, in bytes.
    #[serde(default)]
    pub max_object_bytes: Option<u64>,
    /// Store responses that set cookies, with `Set-Cookie` removed from the
    /// stored copy (the client that caused the fetch still gets its cookie).
    #[serde(default)]
    pub store_set_cookie: bool,
    /// How versioned objects (hashed names, a version parameter) are recognised.
    #[serde(default)]
    pub version: Option<VersionRule>,
    /// Which client fields a fill carries (`"all"`, the default, or
    /// `"keyed"`).
    #[serde(default)]
    pub forward_headers: ForwardHeaders,
    /// Whether a client's `Cache-Control`/`Pragma` may make the edge
    /// revalidate or refetch (`"honour"`, the default) or are ignored
    /// (`"ignore"`, as nginx and Cloudflare do).
    #[serde(default)]
    pub client_directives: ClientDirectives,
    /// What `Age` browsers get on a fresh answer: `"origin"` (the default:
    /// the time spent at the edge) or `"reset-age"` (none, and `Date` set
    /// to the delivery: the origin's browser lifetime starts then).
    #[serde(default)]
    pub browser_freshness: Option<BrowserAge>,
    /// The browsers' lifetime in seconds, replacing the origin's `max-age`
    /// in a fresh answer's `Cache-Control` (and resetting `Age`).
    #[serde(default, deserialize_with = "whole_seconds")]
    pub browser_max_age: Option<u64>,
    /// The response fields purge tags are read from (`"surrogate-key"`,
    /// `"cache-tag"`, `"xkey"`); by default all three.
    #[serde(default)]
    pub tag_headers: TagHeaders,
    /// Whether responses stored under this rule are compressed at fill
    /// (`policy::compression`); default yes.
    #[serde(default)]
    pub compress: Option<bool>,
    /// The media types compressed (`type/subtype` or `type/*`); default
    /// [`DEFAULT_COMPRESS_TYPES`](crate::policy::compression::DEFAULT_COMPRESS_TYPES).
    #[serde(default)]
    pub compress_types: Option<Vec<String>>,
    /// The smallest body compressed, in bytes; default
    /// [`DEFAULT_COMPRESS_MIN_BYTES`](crate::policy::compression::DEFAULT_COMPRESS_MIN_BYTES).
    #[serde(default)]
    pub compress_min_bytes: Option<u64>,
}

/// A number of seconds as a rules file writes it, refused in words (not
/// as the type it is read into) when it is anything else.
fn whole_seconds<'de, D: serde::Deserializer<'de>>(field: D) -> Result<Option<u64>, D::Error> {
    match serde_json::Value::deserialize(field)? {
        serde_json::Value::Null => Ok(None),
        value => value.as_u64().map(Some).ok_or_else(|| {
            serde::de::Error::custom(format!("{value} is not a whole number of seconds"))
        }),
    }
}

/// What a client's request directives do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientDirectives {
    /// As RFC 9111 §5.2.1 has them: `no-cache`, `max-age=0` revalidate,
    /// `no-store` refetches without storing, `only-if-cached` never asks
    /// the origin (concurrent ones of a key still make one origin request).
    #[default]
    Honour,
    /// Ignored: every client gets what the cache holds while it is fresh.
    Ignore,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesDoc {
    rules: Vec<Rule>,
}

/// An ordered rule list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheRules {
    rules: Vec<Rule>,
}

/// A rules file that cannot be used; the message has the line and field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cache rules: {0}")]
pub struct RulesError(pub String);

impl CacheRules {
    /// The rules `source` names, reading a file with `read_file`; an error
    /// names the file (or "inline cache rules") and what is wrong, for one
    /// log line.
    pub fn load(
        source: &RulesSource,
        read_file: impl FnOnce(&str) -> std::io::Result<String>,
    ) -> Result<CacheRules, String> {
        match source {
            RulesSource::BuiltIn => Ok(CacheRules::default()),
            RulesSource::Inline(json) => {
                CacheRules::parse(json).map_err(|e| format!("inline cache rules: {e}"))
            }
            RulesSource::File(path) => {
                let text = read_file(path).map_err(|e| format!("cache rules: {path}: {e}"))?;
                CacheRules::parse(&text).map_err(|e| format!("{path}: {e}"))
            }
        }
    }

    /// Parses and checks a rules file.
    pub fn parse(json: &str) -> Result<Self, RulesError> {
        let doc: RulesDoc = serde_json::from_str(json).map_err(|e| RulesError(e.to_string()))?;
        for (i, rule) in doc.rules.iter().enumerate() {
            let at = |field: &str, msg: &str| RulesError(format!("rules[{i}].{field}: {msg}"));
            if rule.path_prefix.is_some() && rule.path_glob.is_some() {
                return Err(at("path_glob", "give path_prefix or path_glob, not both"));
            }
            for (field, pattern) in [
                ("path_prefix", &rule.path_prefix),
                ("path_glob", &rule.path_glob),
            ] {
                if let Some(p) = pattern
                    && !p.starts_with('/')
                {
                    return Err(at(field, "must start with `/`"));
                }
            }
            if rule.max_object_bytes == Some(0) {
                return Err(at("max_object_bytes", "must be greater than 0"));
            }
            if rule.browser_freshness == Some(BrowserAge::Origin) && rule.browser_max_age.is_some()
            {
                return Err(at(
                    "browser_max_age",
                    "a browser lifetime resets Age, which `\"browser_freshness\": \"origin\"` \
                     forbids: give one of them",
                ));
            }
            for (j, pattern) in rule.compress_types.iter().flatten().enumerate() {
                if !crate::policy::compression::valid_type_pattern(pattern) {
                    return Err(at(
                        &format!("compress_types[{j}]"),
                        "not a media type (`type/subtype` or `type/*`)",
                    ));
                }
            }
            for (j, name) in rule.headers.iter().enumerate() {
                if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                    return Err(at(&format!("headers[{j}]"), "not a header name"));
                }
            }
        }
        Ok(CacheRules { rules: doc.rules })
    }

    /// The rule for a request target (path and optional query, as
    /// received): matched on the normalised path, as the cache key is.
    pub fn for_target(&self, path_and_query: &str) -> &Rule {
        let path = path_and_query.split('?').next().unwrap_or("/");
        self.for_path(&crate::policy::target::normalise_path(path))
    }

    /// The first rule matching `path`, or the default rule: the same for
    /// every path, but that a static file's (by its extension, as
    /// Cloudflare's default list) ignores cookies and may be fresh by
    /// heuristic.
    pub fn for_path(&self, path: &str) -> &Rule {
        self.rules
            .iter()
            .find(|r| r.matches(path))
            .unwrap_or(match is_static_file(path) {
                true => &DEFAULT_STATIC_RULE,
                false => &DEFAULT_RULE,
            })
    }
}

/// The rule for a path no rule matches.
static DEFAULT_RULE: Rule = default_rule(OtherCookies::Pass, false);

/// The default rule for a static file: its answer does not depend on
/// cookies, so they are dropped rather than making it a pass; and a file
/// served without a lifetime but with a `Last-Modified` (what a plain
/// static server sends) is fresh for a tenth of its age, as RFC 9111
/// §4.2.2 allows a shared cache, instead of never being stored.
static DEFAULT_STATIC_RULE: Rule = default_rule(OtherCookies::Ignore, true);

/// The default rule, with `other_cookies` and `heuristic`.
const fn default_rule(other_cookies: OtherCookies, heuristic: bool) -> Rule {
    Rule {
        name: None,
        path_prefix: None,
        path_glob: None,
        bypass: false,
        query: QueryRule::Sorted,
        cookies: Vec::new(),
        other_cookies,
        ignored_cookies: None,
        headers: Vec::new(),
        ttl_seconds: None,
        default_ttl_seconds: None,
        heuristic,
        max_object_bytes: None,
        store_set_cookie: false,
        version: None,
        forward_headers: ForwardHeaders::All,
        client_directives: ClientDirectives::Honour,
        browser_freshness: None,
        browser_max_age: None,
        tag_headers: TagHeaders::ALL,
        compress: None,
        compress_types: None,
        compress_min_bytes: None,
    }
}

/// The extensions of files whose content does not depend on who asks
/// (Cloudflare's default cached extensions, lower case).
const STATIC_EXTENSIONS: [&str; 40] = [
    "7z", "avi", "avif", "bmp", "bz2", "class", "css", "csv", "doc", "docx", "eot", "exe", "flac",
    "gif", "gz", "ico", "iso", "jar", "jpeg", "jpg", "js", "mid", "mp3", "mp4", "ogg", "otf",
    "pdf", "png", "ppt", "svg", "tar", "tif", "tiff", "ttf", "webm", "webp", "woff", "woff2",
    "xls", "zip",
];

/// Whether `path` names a static file by its extension.
fn is_static_file(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or("");
    name.rsplit_once('.').is_some_and(|(stem, extension)| {
        !stem.is_empty()
            && STATIC_EXTENSIONS
                .iter()
                .any(|known| known.eq_ignore_ascii_case(extension))
    })
}

impl Rule {
    fn matches(&self, path: &str) -> bool {
        match (&self.path_prefix, &self.path_glob) {
            (Some(prefix), _) => path.starts_with(prefix.as_str()),
            (None, Some(glob)) => glob_matches(glob.as_bytes(), path.as_bytes()),
            (None, None) => true,
        }
    }

    /// Whether `path` (and `query`) name a versioned object under this rule.
    pub fn is_versioned(&self, path: &str, query_names: &[&str]) -> bool {
        let Some(version) = &self.version else {
            return false;
        };
        let by_param = version
            .query_param
            .as_deref()
            .is_some_and(|p| query_names.contains(&p));
        let by_name = version.hashed_name && has_hashed_name(path);
        by_param || by_name
    }

    /// The freshness settings of this rule for a (non-)versioned object.
    pub fn freshness(&self, versioned: bool) -> FreshnessRule {
        // Capped as the origin's own delta-seconds are (RFC 9111 §1.2.2), so
        // a huge rule value cannot wrap when stored in milliseconds.
        let seconds = |s: u64| Duration::from_secs(s.min(DELTA_SECONDS_MAX));
        FreshnessRule {
            ttl_override: self.ttl_seconds.map(seconds),
            default_ttl: self.default_ttl_seconds.map(seconds),
            heuristic: self.heuristic,
            immutable: versioned,
        }
    }

    /// The cookie, if any, that makes a request under this rule a pass
    /// (`policy::cookies`).
    pub fn passing_cookie<'h>(&self, headers: &'h http::HeaderMap) -> Option<&'h str> {
        crate::policy::cookies::passing_cookie(
            headers,
            &self.cookies,
            self.ignored_cookies.as_deref(),
            self.other_cookies,
        )
    }

    /// What browsers are told of the lifetime of this rule's answers.
    pub fn browser_freshness(&self) -> BrowserFreshness {
        let age = self.browser_freshness.unwrap_or_default();
        BrowserFreshness::of(age, self.browser_max_age)
    }

    /// A label for `Cache-Status` details.
    pub fn label(&self) -> &str {
        self.name.as_deref().unwrap_or("default")
    }
}

/// `app.3f2a1b9c.js`: some dot-separated part of the last segment (not the
/// first or last) is at least 8 hex digits.
fn has_hashed_name(path: &str) -> bool {
    let file = path.rsplit('/').next().unwrap_or("");
    let parts: Vec<&str> = file.split('.').collect();
    parts.len() >= 3
        && parts[1..parts.len() - 1]
            .iter()
            .any(|p| p.len() >= 8 && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// `*` matches within one segment, `**` across segments.
///
/// One pass over the pattern, keeping the set of path prefixes it can
/// match (`reach[j]`: the pattern so far matches `text[..j]`), so the work
/// is pattern length × path length however many stars there are; the
/// path is the client's.
fn glob_matches(pattern: &[u8], text: &[u8]) -> bool {
    let mut reach = vec![false; text.len() + 1];
    reach[0] = true;
    let mut i = 0;
    while i < pattern.len() {
        match pattern[i] {
            b'*' if pattern.get(i + 1) == Some(&b'*') => {
                // `**`: any run of bytes.
                let mut any = false;
                for r in reach.iter_mut() {
                    any |= *r;
                    *r = any;
                }
                i += 2;
            }
            b'*' => {
                // `*`: any run of bytes without a `/`.
                for j in 1..=text.len() {
                    reach[j] |= reach[j - 1] && text[j - 1] != b'/';
                }
                i += 1;
            }
            c => {
                for j in (1..=text.len()).rev() {
                    reach[j] = reach[j - 1] && text[j - 1] == c;
                }
                reach[0] = false;
                i += 1;
            }
        }
    }
    reach[text.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: &str = r#"{ "rules": [
        { "name": "static", "path_prefix": "/static/", "query": "ignore", "version": { "hashed_name": true } },
        { "path_glob": "/products*", "query": { "include": ["page", "sort"] }, "cookies": ["lang"], "default_ttl_seconds": 30 },
        { "path_glob": "/api/**/items", "headers": ["accept"] },
        { "path_prefix": "/account", "bypass": true }
    ] }"#;

    #[test]
    fn the_default_rule_passes_cookies_but_a_static_files_ignores_them() {
        let rules = CacheRules::default();
        let cookie = crate::test_support::headers(&[("cookie", "session=abc")]);
        assert_eq!(
            rules.for_path("/cart").passing_cookie(&cookie),
            Some("session")
        );
        for file in ["/app.css", "/img/logo.PNG", "/dl/tool.tar", "/v/a.b.woff2"] {
            assert_eq!(rules.for_path(file).passing_cookie(&cookie), None, "{file}");
        }
        for page in ["/", "/.css", "/about.html", "/page.php"] {
            assert!(
                rules.for_path(page).passing_cookie(&cookie).is_some(),
                "{page}"
            );
            assert!(!rules.for_path(page).heuristic, "{page}");
        }
        // A static file may be fresh by heuristic; anything else only by
        // what the origin says.
        assert!(rules.for_path("/app.css").heuristic);
        let ignore = r#"{ "rules": [ { "path_prefix": "/", "other_cookies": "ignore" } ] }"#;
        let ignore = CacheRules::parse(ignore).unwrap();
        assert_eq!(ignore.for_path("/cart").passing_cookie(&cookie), None);
        let typo = r#"{ "rules": [ { "other_cookies": "drop" } ] }"#;
        assert!(
            CacheRules::parse(typo)
                .unwrap_err()
                .0
                .contains("unknown variant")
        );
    }

    #[test]
    fn first_matching_rule_wins_and_default_applies_otherwise() {
        let rules = CacheRules::parse(RULES).unwrap();
        assert_eq!(rules.for_path("/static/app.css").label(), "static");
        assert_eq!(rules.for_path("/products").cookies, ["lang"]);
        assert_eq!(
            rules.for_path("/products-archive").default_ttl_seconds,
            Some(30)
        );
        assert!(
            rules.for_path("/products/7").cookies.is_empty(),
            "* stops at /"
        );
        assert_eq!(rules.for_path("/api/v1/shop/items").headers, ["accept"]);
        assert!(rules.for_path("/account/orders").bypass);
        assert_eq!(rules.for_path("/other").label(), "default");
        assert_eq!(rules.for_path("/other").query, QueryRule::Sorted);
        assert_eq!(rules.for_target("/x/../static/a.css?v=1").label(), "static");
    }

    #[test]
    fn browser_freshness_and_tag_headers_read_from_a_rule() {
        let rules = r#"{ "rules": [
            { "path_prefix": "/a", "browser_freshness": "reset-age", "tag_headers": ["xkey"] },
            { "path_prefix": "/b", "browser_max_age": 300, "tag_headers": [] },
            { "path_prefix": "/c", "browser_freshness": "reset-age", "browser_max_age": 30 }
        ] }"#;
        let rules = CacheRules::parse(rules).unwrap();
        let reset = BrowserFreshness::of(BrowserAge::ResetAge, None);
        assert_eq!(rules.for_path("/a").browser_freshness(), reset);
        let five_minutes = BrowserFreshness::of(BrowserAge::Origin, Some(300));
        assert_eq!(rules.for_path("/b").browser_freshness(), five_minutes);
        assert_eq!(
            rules.for_path("/c").browser_freshness().max_age,
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            rules.for_path("/d").browser_freshness(),
            BrowserFreshness::ORIGIN
        );
        let xkey_only = TagHeaders::from(vec![crate::policy::tags::TagHeader::Xkey]);
        assert_eq!(rules.for_path("/a").tag_headers, xkey_only);
        assert_eq!(rules.for_path("/b").tag_headers, TagHeaders::from(vec![]));
        assert_eq!(rules.for_path("/d").tag_headers, TagHeaders::ALL);
        assert_eq!(rules.for_path("/d.css").tag_headers, TagHeaders::ALL);
        assert_eq!(Rule::default().tag_headers, TagHeaders::ALL);
    }

    #[test]
    fn versioned_objects() {
        let rules = CacheRules::parse(RULES).unwrap();
        let r = rules.for_path("/static/app.3f2a1b9c.js");
        assert!(r.is_versioned("/static/app.3f2a1b9c.js", &[]));
        assert!(!r.is_versioned("/static/app.js", &[]));
        assert!(
            !r.is_versioned("/static/3f2a1b9c0.js", &[]),
            "hash must be a middle part"
        );
        let by_param = Rule {
            version: Some(VersionRule {
                query_param: Some("v".into()),
                hashed_name: false,
            }),
            ..Default::default()
        };
        assert!(by_param.is_versioned("/x.js", &["v"]));
        assert!(!by_param.is_versioned("/x.js", &["w"]));
        assert!(by_param.freshness(true).immutable);
    }

    #[test]
    fn bad_files_name_line_and_field() {
        let cases = [
            (
                r#"{ "rules": [ { "path_prefix": "/a", "ttl": 5 } ] }"#,
                "unknown field `ttl`",
            ),
            (
                r#"{ "rules": [ { "path_prefix": "/a", "query": "shuffled" } ] }"#,
                "shuffled",
            ),
            (
                r#"{ "rules": [ { "path_prefix": "a" } ] }"#,
                "rules[0].path_prefix",
            ),
            (
                r#"{ "rules": [ { "path_prefix": "/a", "path_glob": "/b" } ] }"#,
                "rules[0].path_glob",
            ),
            (
                r#"{ "rules": [ {}, { "headers": ["bad header"] } ] }"#,
                "rules[1].headers[0]",
            ),
            (
                r#"{ "rules": [ { "max_object_bytes": 0 } ] }"#,
                "max_object_bytes",
            ),
            (
                r#"{ "rules": [ {}, { "browser_freshness": "origin", "browser_max_age": 60 } ] }"#,
                "rules[1].browser_max_age: a browser lifetime resets Age",
            ),
            (
                r#"{ "rules": [ { "browser_max_age": "5m" } ] }"#,
                "\"5m\" is not a whole number of seconds",
            ),
            (
                r#"{ "rules": [ { "browser_max_age": -1 } ] }"#,
                "-1 is not a whole number of seconds",
            ),
            (
                r#"{ "rules": [ { "browser_freshness": "reset" } ] }"#,
                "unknown variant `reset`, expected `origin` or `reset-age`",
            ),
            (
                r#"{ "rules": [ { "tag_headers": ["surrogate-key", "etag"] } ] }"#,
                "`etag` is not a tag header",
            ),
            (
                "{ \"rules\": [\n  { \"ttl_seconds\": \"ten\" }\n] }",
                "line 2",
            ),
            ("not json", "line 1"),
        ];
        for (json, needle) in cases {
            let err = CacheRules::parse(json).unwrap_err().to_string();
            assert!(err.contains(needle), "expected `{needle}` in: {err}");
        }
    }

    #[test]
    fn globs_match_in_time_linear_in_the_path() {
        // Found by the rules fuzz target: every `**` used to multiply the
        // work by the path's length, so a rule with a few of them let any
        // client's long path hold an instance for minutes.
        let path = format!("/{}.png", "a/".repeat(2000));
        let start = std::time::Instant::now();
        assert!(!glob_matches(
            b"/**/**/**/**/**/**/**/**/x.png",
            path.as_bytes()
        ));
        assert!(glob_matches(
            b"/**/**/**/**/**/**/**/**.png",
            path.as_bytes()
        ));
        let segment = format!("/{}", "a".repeat(4000));
        assert!(!glob_matches(b"/*a*a*a*a*a*a*b", segment.as_bytes()));
        assert!(
            start.elapsed() < std::time::Duration::from_secs(1),
            "{:?}",
            start.elapsed()
        );
        let table = [
            ("/products*", "/products-archive", true),
            ("/products*", "/products/7", false),
            ("/api/**/items", "/api/v1/shop/items", true),
            ("/api/**/items", "/api/items", false),
            ("/api/**items", "/api/items", true),
            ("/a/*/c", "/a/b/c", true),
            ("/a/*/c", "/a/b/x/c", false),
            ("/a/***", "/a/b/c", true),
            ("/a/*", "/a/", true),
            ("", "", true),
            ("", "/", false),
            ("/**", "/", true),
        ];
        for (pattern, path, expected) in table {
            assert_eq!(
                glob_matches(pattern.as_bytes(), path.as_bytes()),
                expected,
                "{pattern} {path}"
            );
        }
    }

    #[test]
    fn rules_load_from_the_built_in_rule_a_file_or_inline_json() {
        let never = |_: &str| -> std::io::Result<String> { panic!("no file is read") };
        assert_eq!(
            CacheRules::load(&RulesSource::BuiltIn, never),
            Ok(CacheRules::default())
        );
        let inline =
            RulesSource::Inline(r#"{"rules": [{"path_prefix": "/a", "bypass": true}]}"#.into());
        assert!(
            CacheRules::load(&inline, never)
                .unwrap()
                .for_path("/a/b")
                .bypass
        );
        let broken = RulesSource::Inline("{".into());
        assert!(
            CacheRules::load(&broken, never)
                .unwrap_err()
                .starts_with("inline cache rules:")
        );
        let file = RulesSource::File("/rules/x.json".into());
        let missing = CacheRules::load(&file, |_| Err(std::io::ErrorKind::NotFound.into()));
        assert!(
            missing
                .unwrap_err()
                .starts_with("cache rules: /rules/x.json:")
        );
    }

    #[test]
    fn rule_lifetimes_are_capped_like_delta_seconds() {
        let rule = Rule {
            ttl_seconds: Some(u64::MAX),
            default_ttl_seconds: Some(u64::MAX / 3),
            ..Rule::default()
        };
        let freshness = rule.freshness(false);
        let cap = Some(Duration::from_secs(DELTA_SECONDS_MAX));
        assert_eq!((freshness.ttl_override, freshness.default_ttl), (cap, cap));
    }
}
