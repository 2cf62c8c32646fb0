//! Parsing of `Cache-Control`-style directive lists (RFC 9111 §5.2).
//!
//! `Cache-Control` and `Surrogate-Control` use the lenient parser: directive
//! names are case-insensitive; values are tokens or quoted strings. A
//! malformed delta-seconds value makes the directive *invalid*, which
//! callers treat as "stale" (§4.2.1), never as "fresh forever".
//!
//! `CDN-Cache-Control` is a Structured Field Dictionary (RFC 9213 §2.1,
//! RFC 9651) and is read strictly: a field that does not parse, or whose
//! delta-seconds directives are not non-negative Integers, is ignored as a
//! whole (§2.2), so the cache falls back to the fields after it.

use http::HeaderMap;
use http::header::{AsHeaderName, CACHE_CONTROL, PRAGMA};

/// One directive as written: a lower-cased name and an optional value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    /// Lower-cased directive name.
    pub name: String,
    /// The value, unquoted, if any.
    pub value: Option<String>,
}

/// A parsed directive list (all instances of the field, in order).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheDirectives {
    directives: Vec<Directive>,
}

/// A delta-seconds directive's reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seconds {
    /// A valid value (capped at 2^31, §1.2.2).
    Valid(u64),
    /// Present but unparseable: treat as zero freshness.
    Invalid,
}

/// The cap RFC 9111 §1.2.2 puts on delta-seconds.
pub const DELTA_SECONDS_MAX: u64 = 2_147_483_648;

impl CacheDirectives {
    /// Parses every instance of `name` in `headers`; `None` if absent.
    pub fn from_headers(headers: &HeaderMap, name: impl AsHeaderName) -> Option<Self> {
        let mut values = headers.get_all(name).iter().peekable();
        values.peek()?;
        let mut directives = Vec::new();
        for value in values {
            // A non-UTF-8 field line is skipped, not fatal.
            if let Ok(text) = value.to_str() {
                directives.extend(parse_list(text));
            }
        }
        Some(CacheDirectives { directives })
    }

    /// Parses every instance of `name` as one Structured Field Dictionary
    /// (RFC 9213 §2.1; field lines joined with `,`, RFC 9651 §4.2). `None`
    /// when the field is absent or must be ignored whole (§2.2): it is not
    /// a valid Dictionary (including non-ASCII bytes and upper-case keys),
    /// or one of [`STRUCTURED_DELTA_SECONDS`] is not a non-negative Integer.
    ///
    /// Members become directives: Boolean true (`public`) is a directive
    /// without value, Boolean false (`no-store=?0`) is no directive, an
    /// Integer, Token or String is its value, an Inner List its members
    /// joined by `, ` (the form `field_names` reads). Parameters are
    /// ignored (§2.1).
    pub fn from_structured_headers(headers: &HeaderMap, name: impl AsHeaderName) -> Option<Self> {
        let mut lines = Vec::new();
        for value in headers.get_all(name) {
            lines.push(value.to_str().ok()?);
        }
        if lines.is_empty() {
            return None;
        }
        Self::parse_structured(&lines.join(", "))
    }

    /// Parses one `CDN-Cache-Control` value; see
    /// [`CacheDirectives::from_structured_headers`].
    pub fn parse_structured(text: &str) -> Option<Self> {
        let dictionary: sfv::Dictionary = sfv::Parser::new(text).parse().ok()?;
        let mut directives = Vec::new();
        for (key, member) in &dictionary {
            let name = key.as_str();
            if STRUCTURED_DELTA_SECONDS.contains(&name) {
                let sfv::ListEntry::Item(item) = member else {
                    return None;
                };
                let seconds = item.bare_item.as_integer().map(i64::from)?;
                if seconds < 0 {
                    return None;
                }
            }
            let value = match member {
                sfv::ListEntry::Item(item) => match &item.bare_item {
                    sfv::BareItem::Boolean(false) => continue,
                    bare => bare_item_text(bare),
                },
                sfv::ListEntry::InnerList(list) => Some(
                    list.items
                        .iter()
                        .filter_map(|item| bare_item_text(&item.bare_item))
                        .collect::<Vec<_>>()
                        .join(", "),
                ),
            };
            directives.push(Directive {
                name: name.to_owned(),
                value,
            });
        }
        Some(CacheDirectives { directives })
    }

    /// A request's `Cache-Control`, with `Pragma: no-cache` standing in
    /// when it is absent (RFC 9111 §5.4).
    pub fn of_request(headers: &HeaderMap) -> Self {
        if let Some(directives) = CacheDirectives::from_headers(headers, CACHE_CONTROL) {
            return directives;
        }
        let pragma_no_cache = headers
            .get(PRAGMA)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().contains("no-cache"));
        if pragma_no_cache {
            CacheDirectives::parse("no-cache")
        } else {
            CacheDirectives::default()
        }
    }

    /// Parses one field value.
    pub fn parse(text: &str) -> Self {
        CacheDirectives {
            directives: parse_list(text),
        }
    }

    /// Whether the directive is present (with or without a value).
    pub fn has(&self, name: &str) -> bool {
        self.directives.iter().any(|d| d.name == name)
    }

    /// Whether no directive was parsed.
    pub fn is_empty(&self) -> bool {
        self.directives.is_empty()
    }

    /// A delta-seconds directive. Duplicates resolve to the most restrictive
    /// (smallest) value; any invalid instance makes the whole reading invalid.
    pub fn seconds(&self, name: &str) -> Option<Seconds> {
        let mut result: Option<Seconds> = None;
        for d in self.directives.iter().filter(|d| d.name == name) {
            let reading = match d.value.as_deref().map(parse_delta_seconds) {
                Some(Some(n)) => Seconds::Valid(n),
                _ => Seconds::Invalid,
            };
            result = Some(match (result, reading) {
                (Some(Seconds::Invalid), _) | (_, Seconds::Invalid) => Seconds::Invalid,
                (Some(Seconds::Valid(a)), Seconds::Valid(b)) => Seconds::Valid(a.min(b)),
                (None, r) => r,
            });
        }
        result
    }

    /// Whether `name` is present without field names: `no-cache` or
    /// `private` for the whole response, not `no-cache="a"` (§5.2.2.4,
    /// §5.2.2.7). One unqualified instance anywhere, in any field line,
    /// is enough: `private="X-Internal", private` is private.
    pub fn has_unqualified(&self, name: &str) -> bool {
        self.field_names(name).is_some_and(|names| names.is_empty())
    }

    /// The fields named by `no-cache="…"` and `private="…"`: a shared cache
    /// may store the response, but not these fields (RFC 9111 §5.2.2.4,
    /// §5.2.2.7).
    pub fn unshared_fields(&self) -> Vec<String> {
        let mut names: Vec<String> = ["no-cache", "private"]
            .into_iter()
            .filter_map(|directive| self.field_names(directive))
            .flatten()
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// Field names qualifying `no-cache="…"` / `private="…"`, from every
    /// instance of the directive; an empty list (the whole response) when
    /// any instance names none (`private`, `private=""`). The unqualified
    /// form is the stricter reading, so it wins wherever it stands: a
    /// sender that adds `private` to a response already carrying
    /// `private="X-Internal"` must not have it shared.
    pub fn field_names(&self, name: &str) -> Option<Vec<String>> {
        let mut instances = self.directives.iter().filter(|d| d.name == name).peekable();
        instances.peek()?;
        let mut names = Vec::new();
        for directive in instances {
            let before = names.len();
            names.extend(
                directive
                    .value
                    .as_deref()
                    .unwrap_or("")
                    .split(',')
                    .map(|s| s.trim().to_ascii_lowercase())
                    .filter(|s| !s.is_empty()),
            );
            if names.len() == before {
                return Some(Vec::new());
            }
        }
        Some(names)
    }

    #[cfg(any(test, feature = "fuzzing"))]
    /// The directive names, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.directives.iter().map(|d| d.name.as_str())
    }
}

/// The `CDN-Cache-Control` directives whose value must be a non-negative
/// Integer for the field to count (RFC 9213 §2.1).
pub const STRUCTURED_DELTA_SECONDS: [&str; 4] = [
    "max-age",
    "s-maxage",
    "stale-while-revalidate",
    "stale-if-error",
];

/// A Structured Field bare item as a directive value; `None` for `?1`.
fn bare_item_text(item: &sfv::BareItem) -> Option<String> {
    Some(match item {
        sfv::BareItem::Boolean(_) => return None,
        sfv::BareItem::Integer(n) => n.to_string(),
        sfv::BareItem::Decimal(d) => d.to_string(),
        sfv::BareItem::String(s) => s.as_str().to_owned(),
        sfv::BareItem::Token(t) => t.as_str().to_owned(),
        sfv::BareItem::ByteSequence(_)
        | sfv::BareItem::Date(_)
        | sfv::BareItem::DisplayString(_) => String::new(),
    })
}

fn parse_delta_seconds(value: &str) -> Option<u64> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Overflow means "a very long time", capped (§1.2.2).
    Some(
        value
            .parse::<u64>()
            .unwrap_or(DELTA_SECONDS_MAX)
            .min(DELTA_SECONDS_MAX),
    )
}

fn parse_list(text: &str) -> Vec<Directive> {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        // Skip separators and whitespace.
        while i < bytes.len() && (bytes[i] == b',' || bytes[i].is_ascii_whitespace()) {
            i += 1;
        }
        let start = i;
        while i < bytes.len() && bytes[i] != b'=' && bytes[i] != b',' {
            i += 1;
        }
        let name = text[start..i].trim().to_ascii_lowercase();
        let mut value = None;
        if i < bytes.len() && bytes[i] == b'=' {
            i += 1;
            while i < bytes.len() && bytes[i] == b' ' {
                i += 1;
            }
            if i < bytes.len() && bytes[i] == b'"' {
                i += 1;
                let mut unquoted = String::new();
                while i < bytes.len() && bytes[i] != b'"' {
                    if bytes[i] == b'\\' && i + 1 < bytes.len() {
                        i += 1;
                    }
                    unquoted.push(bytes[i] as char);
                    i += 1;
                }
                i += 1; // closing quote (or end)
                // Anything after the quoted string up to the comma is junk.
                while i < bytes.len() && bytes[i] != b',' {
                    i += 1;
                }
                value = Some(unquoted);
            } else {
                let vstart = i;
                while i < bytes.len() && bytes[i] != b',' {
                    i += 1;
                }
                value = Some(text[vstart..i].trim().to_owned());
            }
        }
        if !name.is_empty() && name.bytes().all(is_token_byte) {
            out.push(Directive { name, value });
        }
    }
    out
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_values_and_quotes() {
        let cc = CacheDirectives::parse(
            r#"Public, MAX-AGE=60, no-cache="Set-Cookie, X-Foo", ext="a,b""#,
        );
        assert!(cc.has("public"));
        assert_eq!(cc.seconds("max-age"), Some(Seconds::Valid(60)));
        assert_eq!(
            cc.field_names("no-cache").unwrap(),
            vec!["set-cookie", "x-foo"]
        );
        assert!(cc.has("ext"));
        assert_eq!(cc.names().count(), 4);
    }

    #[test]
    fn invalid_and_duplicate_delta_seconds() {
        let table = [
            ("max-age=abc", Some(Seconds::Invalid)),
            ("max-age=-5", Some(Seconds::Invalid)),
            ("max-age=", Some(Seconds::Invalid)),
            ("max-age", Some(Seconds::Invalid)),
            ("max-age=1.5", Some(Seconds::Invalid)),
            ("max-age=\"30\"", Some(Seconds::Valid(30))),
            ("max-age=60, max-age=10", Some(Seconds::Valid(10))),
            ("max-age=60, max-age=x", Some(Seconds::Invalid)),
            (
                "max-age=99999999999999999999999",
                Some(Seconds::Valid(DELTA_SECONDS_MAX)),
            ),
            ("s-maxage=5", None),
        ];
        for (text, expected) in table {
            assert_eq!(
                CacheDirectives::parse(text).seconds("max-age"),
                expected,
                "{text}"
            );
        }
    }

    #[test]
    fn multiple_field_lines_combine() {
        let mut headers = HeaderMap::new();
        headers.append("cache-control", "max-age=60".parse().unwrap());
        headers.append("cache-control", "private".parse().unwrap());
        let cc = CacheDirectives::from_headers(&headers, "cache-control").unwrap();
        assert!(cc.has("private"));
        assert_eq!(cc.seconds("max-age"), Some(Seconds::Valid(60)));
        assert!(CacheDirectives::from_headers(&headers, "cdn-cache-control").is_none());
    }

    #[test]
    fn structured_dictionaries_are_read_strictly() {
        let read = |text: &str| {
            CacheDirectives::parse_structured(text).map(|d| {
                d.directives
                    .iter()
                    .map(|d| match &d.value {
                        Some(v) => format!("{}={v}", d.name),
                        None => d.name.clone(),
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            })
        };
        let valid = [
            ("max-age=60", "max-age=60"),
            ("max-age=0, public", "max-age=0 public"),
            (
                "s-maxage=700, stale-while-revalidate=30, stale-if-error=0",
                "s-maxage=700 stale-while-revalidate=30 stale-if-error=0",
            ),
            // Boolean true is a directive without value; false is none.
            ("no-store=?1, private=?0", "no-store"),
            // Parameters are ignored; the last duplicate wins (RFC 9651).
            (
                "max-age=60;foo=bar, must-revalidate;x",
                "max-age=60 must-revalidate",
            ),
            ("max-age=60, max-age=10", "max-age=10"),
            // Strings, tokens and inner lists keep their values.
            (r#"no-cache="set-cookie""#, "no-cache=set-cookie"),
            (r#"private=("x-user" "x-id")"#, "private=x-user, x-id"),
            ("ext=tok, other=1.5", "ext=tok other=1.5"),
            ("", ""),
        ];
        for (text, expected) in valid {
            assert_eq!(read(text).as_deref(), Some(expected), "{text:?}");
        }
        let invalid = [
            // Not a Dictionary.
            "Max-Age=60",
            "max-age=60,",
            "max-age=60;;",
            "max-age = 60",
            "max-age=60 public",
            "(bad)",
            ",,,",
            "max-age=60, ;",
            "max-age=\"60\"\u{1}",
            // Delta-seconds that are not non-negative Integers.
            r#"max-age="60""#,
            "max-age=60.0",
            "max-age=-1",
            "max-age",
            "max-age=?0",
            "max-age=(60)",
            "max-age=tok",
            "s-maxage=1.5",
            "stale-while-revalidate=-5",
            r#"stale-if-error="x""#,
            "max-age=1000000000000000",
        ];
        for text in invalid {
            assert_eq!(read(text), None, "{text:?}");
        }
        let huge = CacheDirectives::parse_structured("max-age=999999999999999").unwrap();
        assert_eq!(
            huge.seconds("max-age"),
            Some(Seconds::Valid(DELTA_SECONDS_MAX))
        );
    }

    #[test]
    fn structured_field_lines_form_one_dictionary() {
        let mut headers = HeaderMap::new();
        assert!(CacheDirectives::from_structured_headers(&headers, "cdn-cache-control").is_none());
        headers.append("cdn-cache-control", "max-age=60".parse().unwrap());
        headers.append("cdn-cache-control", "must-revalidate".parse().unwrap());
        let d = CacheDirectives::from_structured_headers(&headers, "cdn-cache-control").unwrap();
        assert_eq!(d.seconds("max-age"), Some(Seconds::Valid(60)));
        assert!(d.has("must-revalidate"));
        // One bad line spoils the whole field.
        headers.append("cdn-cache-control", "max-age=x".parse().unwrap());
        assert!(CacheDirectives::from_structured_headers(&headers, "cdn-cache-control").is_none());
        let mut opaque = HeaderMap::new();
        opaque.append(
            "cdn-cache-control",
            http::HeaderValue::from_bytes(b"max-age=60, x=\"\xff\"").unwrap(),
        );
        assert!(CacheDirectives::from_structured_headers(&opaque, "cdn-cache-control").is_none());
    }

    #[test]
    fn garbage_is_skipped_not_fatal() {
        let cc = CacheDirectives::parse(",,, ;;; , max-age=5 , (bad) ,");
        assert_eq!(cc.seconds("max-age"), Some(Seconds::Valid(5)));
        assert!(CacheDirectives::parse("").is_empty());
    }

    #[test]
    fn field_qualified_no_cache_and_private_name_what_is_not_shared() {
        let cc = CacheDirectives::parse(r#"max-age=60, no-cache="Set-Cookie, x-a", private="x-b""#);
        assert!(!cc.has_unqualified("no-cache") && !cc.has_unqualified("private"));
        assert_eq!(cc.unshared_fields(), ["set-cookie", "x-a", "x-b"]);
        let whole = CacheDirectives::parse("no-cache, private");
        assert!(whole.has_unqualified("no-cache") && whole.has_unqualified("private"));
        assert!(whole.unshared_fields().is_empty());
    }

    #[test]
    fn an_unqualified_no_cache_or_private_anywhere_wins() {
        // (field lines, directive, whole response?, field names otherwise)
        let table: [(&[&str], &str, bool, &[&str]); 18] = [
            (&[r#"private="X-Internal", private"#], "private", true, &[]),
            (&[r#"private, private="X-Internal""#], "private", true, &[]),
            (&["private=X-Internal, private"], "private", true, &[]),
            (&["private, private=X-Internal"], "private", true, &[]),
            (
                &[r#"private="X-Internal""#, "private"],
                "private",
                true,
                &[],
            ),
            (
                &["private", r#"private="X-Internal""#],
                "private",
                true,
                &[],
            ),
            (
                &[r#"PRIVATE="x", max-age=60, Private"#],
                "private",
                true,
                &[],
            ),
            (&[r#"private="x", private="""#], "private", true, &[]),
            (&[r#"no-cache="X", no-cache"#], "no-cache", true, &[]),
            (&[r#"no-cache, no-cache="X""#], "no-cache", true, &[]),
            (&["no-cache=X, no-cache"], "no-cache", true, &[]),
            (
                &[r#"no-cache="X""#, "no-cache, max-age=60"],
                "no-cache",
                true,
                &[],
            ),
            // Only qualified instances: their names together.
            (
                &[r#"private="a", private="B, c""#],
                "private",
                false,
                &["a", "b", "c"],
            ),
            (
                &[r#"private="a""#, "private=b"],
                "private",
                false,
                &["a", "b"],
            ),
            (
                &[r#"no-cache="a", no-cache=b"#],
                "no-cache",
                false,
                &["a", "b"],
            ),
            // The other directive's unqualified form does not count.
            (&[r#"private="a", no-cache"#], "private", false, &["a"]),
            (&[r#"no-cache="a", private"#], "no-cache", false, &["a"]),
            (&["no-cache=a", "private"], "no-cache", false, &["a"]),
        ];
        for (lines, name, whole, fields) in table {
            let mut headers = HeaderMap::new();
            for line in lines {
                headers.append("cache-control", line.parse().unwrap());
            }
            let cc = CacheDirectives::from_headers(&headers, "cache-control").unwrap();
            assert_eq!(cc.has_unqualified(name), whole, "{lines:?} {name}");
            let expected: Vec<String> = fields.iter().map(|f| f.to_string()).collect();
            assert_eq!(cc.field_names(name), Some(expected), "{lines:?} {name}");
        }
        // A response private as a whole names no field to strip for it.
        let cc = CacheDirectives::parse(r#"private="x-a", private, no-cache="x-b""#);
        assert_eq!(cc.unshared_fields(), ["x-b"]);
    }
}
