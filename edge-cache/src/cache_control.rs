//! Parsing of `Cache-Control`-style directive lists (RFC 9111 §5.2), shared
//! by `Cache-Control`, `CDN-Cache-Control` (RFC 9213) and
//! `Surrogate-Control`.
//!
//! Directive names are case-insensitive; values are tokens or quoted
//! strings. A malformed delta-seconds value makes the directive *invalid*,
//! which callers treat as "stale" (§4.2.1), never as "fresh forever".

use http::HeaderMap;

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
    pub fn from_headers(headers: &HeaderMap, name: &str) -> Option<Self> {
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

    /// Field names qualifying `no-cache="…"` / `private="…"`; an empty list
    /// when the directive is present without a value.
    pub fn field_names(&self, name: &str) -> Option<Vec<String>> {
        let directive = self.directives.iter().find(|d| d.name == name)?;
        Some(
            directive
                .value
                .as_deref()
                .unwrap_or("")
                .split(',')
                .map(|s| s.trim().to_ascii_lowercase())
                .filter(|s| !s.is_empty())
                .collect(),
        )
    }

    /// The directive names, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.directives.iter().map(|d| d.name.as_str())
    }
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
    fn garbage_is_skipped_not_fatal() {
        let cc = CacheDirectives::parse(",,, ;;; , max-age=5 , (bad) ,");
        assert_eq!(cc.seconds("max-age"), Some(Seconds::Valid(5)));
        assert!(CacheDirectives::parse("").is_empty());
    }
}
