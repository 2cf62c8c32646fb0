//! What browsers are told of a response's lifetime (the rule options
//! `browser_freshness` and `browser_max_age`).
//!
//! An origin that gives the edge a long lifetime (`CDN-Cache-Control:
//! max-age=3600`) and browsers a short one (`Cache-Control: max-age=60`)
//! means "browsers may keep it a minute". RFC 9111 has a shared cache send
//! the time the response spent in it as `Age`, which a browser subtracts:
//! a hit 68 s after the fill reaches the browser already stale, and every
//! navigation revalidates. Fastly's answer is to rewrite on delivery:
//! unset `Age`, set `Date` to the time of delivery (which Fastly always
//! does), and optionally set the browser's own `Cache-Control`. A rule
//! may ask for either:
//!
//! - `reset-age`: `Age: 0` and `Date` now, so the origin's browser
//!   lifetime (`max-age`, or `Expires` counted from the new `Date`)
//!   starts at delivery. A browser counts an old `Date` as age too
//!   (RFC 9111 §4.2.3, `apparent_age`), so resetting `Age` alone would not
//!   do.
//! - `browser_max_age`: the same, and `Cache-Control` recomputed with
//!   `max-age=N` in place of the origin's `max-age`/`s-maxage` (the other
//!   directives kept: `public`, `private`, `no-transform`,
//!   `must-revalidate`, …), `Expires` removed, on a success (`2xx`, and a
//!   `304` for one). An origin that forbids browsers to keep or reuse it
//!   unchecked (`no-store`, `no-cache`) keeps its `Cache-Control`, and so
//!   do errors and redirects.
//!
//! Only an answer the edge holds a fresh shared copy of is rewritten
//! ([`holds_fresh_copy`]): a fresh hit, or a response it just stored with
//! freshness left. A stale answer (`stale-while-revalidate`,
//! `stale-if-error`, grace, a client's `max-stale`) keeps the true `Age`,
//! so a browser sees it as stale by the origin's own lifetime and asks
//! again soon, rather than keeping content the edge knows to be old for a
//! whole fresh lifetime. Answers the edge did not share (not stored,
//! `private`, a pass) are never touched. `Cache-Status` keeps the edge's
//! own view (`hit`, `ttl`) whatever browsers are told.

use std::time::{Duration, SystemTime};

use http::header::{AGE, CACHE_CONTROL, DATE, EXPIRES};
use http::{HeaderMap, HeaderValue};
use serde::Deserialize;

use crate::http::cache_control::{CacheDirectives, DELTA_SECONDS_MAX};
use crate::http::http_date::format_http_date;
use crate::policy::cache_status::CacheStatus;

/// The rule option `browser_freshness`: what `Age` browsers get.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BrowserAge {
    /// The time spent at the edge, as RFC 9111 has it (the default).
    #[default]
    Origin,
    /// None: a fresh answer goes as if fresh from the origin.
    ResetAge,
}

/// What a rule asks of the lifetime browsers are told.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BrowserFreshness {
    /// `Age: 0` and `Date` set to the time of delivery.
    pub reset_age: bool,
    /// The browsers' lifetime, replacing the origin's `max-age` (implies
    /// `reset_age`).
    pub max_age: Option<Duration>,
}

impl BrowserFreshness {
    /// As the origin and RFC 9111 have it: nothing rewritten.
    pub const ORIGIN: BrowserFreshness = BrowserFreshness {
        reset_age: false,
        max_age: None,
    };

    /// The rule options as written: `browser_max_age` seconds (capped as
    /// delta-seconds are, RFC 9111 §1.2.2) imply a reset `Age`.
    pub fn of(age: BrowserAge, max_age_seconds: Option<u64>) -> Self {
        let max_age = max_age_seconds.map(|s| Duration::from_secs(s.min(DELTA_SECONDS_MAX)));
        BrowserFreshness {
            reset_age: age == BrowserAge::ResetAge || max_age.is_some(),
            max_age,
        }
    }

    /// Rewrites the fields of an answer with status `code` for browsers,
    /// where the rule asks it and `status` says the edge holds a fresh
    /// shared copy; `now` is the time of delivery.
    pub fn apply(self, code: u16, headers: &mut HeaderMap, status: &CacheStatus, now: SystemTime) {
        // A 416 is the edge's refusal of a range, not the representation.
        if !self.reset_age || code == 416 || !holds_fresh_copy(status) {
            return;
        }
        headers.insert(AGE, HeaderValue::from(0));
        if let Ok(date) = HeaderValue::from_str(&format_http_date(now)) {
            headers.insert(DATE, date);
        }
        // An error or a redirect keeps the origin's own browser lifetime: a
        // 404 kept a day by every browser would outlive the fix.
        if let Some(max_age) = self.max_age
            && ((200..300).contains(&code) || code == 304)
        {
            with_browser_max_age(headers, max_age);
        }
    }
}

/// Whether `status` reports an answer the edge holds a fresh shared copy
/// of: a hit, or a response it stored, with freshness left. `ttl` counts
/// whole seconds and is never positive once stale, so a copy with less
/// than a second left counts as stale (and goes with its true `Age`).
pub fn holds_fresh_copy(status: &CacheStatus) -> bool {
    (status.hit || status.stored) && status.ttl.is_some_and(|ttl| ttl > 0)
}

/// `Cache-Control` with `max-age` set to `max_age` in place of the
/// origin's lifetimes, unless the origin forbids browsers to keep or reuse
/// the response unchecked; `Expires` goes (it would state another
/// lifetime to HTTP/1.0 caches).
fn with_browser_max_age(headers: &mut HeaderMap, max_age: Duration) {
    let directives = CacheDirectives::from_headers(headers, CACHE_CONTROL).unwrap_or_default();
    if directives.has("no-store") || directives.has_unqualified("no-cache") {
        return;
    }
    // Directives are kept as written (a line that is not text is dropped:
    // nothing could read it).
    let mut kept: Vec<String> = headers
        .get_all(CACHE_CONTROL)
        .iter()
        .filter_map(|line| line.to_str().ok())
        .flat_map(list_members)
        .filter(|member| {
            let name = member.split('=').next().unwrap_or("").trim();
            !name.eq_ignore_ascii_case("max-age") && !name.eq_ignore_ascii_case("s-maxage")
        })
        .map(str::to_owned)
        .collect();
    kept.push(format!("max-age={}", max_age.as_secs()));
    if let Ok(value) = HeaderValue::from_str(&kept.join(", ")) {
        headers.insert(CACHE_CONTROL, value);
        headers.remove(EXPIRES);
    }
}

/// The members of a comma-separated list, trimmed: a comma inside a
/// quoted string (`private="a, b"`) separates nothing.
fn list_members(line: &str) -> Vec<&str> {
    let (mut members, mut start, mut quoted, mut escaped) = (Vec::new(), 0, false, false);
    for (i, byte) in line.bytes().enumerate() {
        match byte {
            _ if escaped => escaped = false,
            b'\\' if quoted => escaped = true,
            b'"' => quoted = !quoted,
            b',' if !quoted => {
                members.push(&line[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    members.push(&line[start..]);
    members
        .into_iter()
        .map(|member| member.trim_matches([' ', '\t']))
        .filter(|member| !member.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::cache_status::Forward;
    use crate::test_support::headers;

    /// A stored response's fields.
    type Fields = &'static [(&'static str, &'static str)];

    const NOW: u64 = 1_700_000_068;
    const NOW_DATE: &str = "Tue, 14 Nov 2023 22:14:28 GMT";

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(NOW)
    }

    /// The fields a browser gets for a stored answer with `fields`.
    fn delivered(freshness: BrowserFreshness, fields: &[(&str, &str)]) -> HeaderMap {
        let mut answer = headers(fields);
        answer.insert(AGE, HeaderValue::from(68));
        freshness.apply(200, &mut answer, &CacheStatus::hit(3532), now());
        answer
    }

    fn field(headers: &HeaderMap, name: http::header::HeaderName) -> Option<&str> {
        headers.get(name).and_then(|v| v.to_str().ok())
    }

    #[test]
    fn the_rule_options_combine_into_one_setting() {
        let table = [
            (BrowserAge::Origin, None, BrowserFreshness::ORIGIN),
            (
                BrowserAge::ResetAge,
                None,
                BrowserFreshness {
                    reset_age: true,
                    max_age: None,
                },
            ),
            (
                BrowserAge::Origin,
                Some(60),
                BrowserFreshness {
                    reset_age: true,
                    max_age: Some(Duration::from_secs(60)),
                },
            ),
            (
                BrowserAge::ResetAge,
                Some(u64::MAX),
                BrowserFreshness {
                    reset_age: true,
                    max_age: Some(Duration::from_secs(DELTA_SECONDS_MAX)),
                },
            ),
        ];
        for (age, max_age, expected) in table {
            assert_eq!(
                BrowserFreshness::of(age, max_age),
                expected,
                "{age:?} {max_age:?}"
            );
        }
        assert_eq!(BrowserFreshness::default(), BrowserFreshness::ORIGIN);
    }

    #[test]
    fn only_an_answer_the_edge_holds_fresh_is_rewritten() {
        let stored_fresh = CacheStatus {
            stored: true,
            ttl: Some(3600),
            ..CacheStatus::forward(Forward::UriMiss)
        };
        let table = [
            (CacheStatus::hit(3532), true),
            (CacheStatus::hit(1), true),
            (CacheStatus::hit(0), false),
            (
                CacheStatus::hit(-5).with_detail("stale-while-revalidate"),
                false,
            ),
            (stored_fresh.clone(), true),
            (
                CacheStatus {
                    ttl: Some(0),
                    ..stored_fresh.clone()
                },
                false,
            ),
            (
                CacheStatus {
                    ttl: None,
                    ..stored_fresh.clone()
                },
                false,
            ),
            (
                CacheStatus {
                    stored: false,
                    ..stored_fresh
                },
                false,
            ),
            (
                CacheStatus {
                    ttl: Some(-40),
                    ..CacheStatus::forward(Forward::Stale).with_detail("stale-if-error")
                },
                false,
            ),
            (
                CacheStatus::forward(Forward::Bypass).with_detail("cookie"),
                false,
            ),
        ];
        for (status, rewritten) in table {
            assert_eq!(holds_fresh_copy(&status), rewritten, "{status:?}");
            let mut answer = headers(&[("cache-control", "max-age=60")]);
            answer.insert(AGE, HeaderValue::from(68));
            let reset = BrowserFreshness::of(BrowserAge::ResetAge, None);
            reset.apply(200, &mut answer, &status, now());
            let expected = if rewritten { "0" } else { "68" };
            assert_eq!(field(&answer, AGE), Some(expected), "{status:?}");
        }
    }

    #[test]
    fn reset_age_starts_the_origins_browser_lifetime_at_delivery() {
        let fields = [
            ("cache-control", "public, max-age=60"),
            ("date", "Tue, 14 Nov 2023 22:13:20 GMT"),
            ("expires", "Tue, 14 Nov 2023 22:14:20 GMT"),
        ];
        let reset = BrowserFreshness::of(BrowserAge::ResetAge, None);
        let answer = delivered(reset, &fields);
        assert_eq!(field(&answer, AGE), Some("0"));
        assert_eq!(field(&answer, DATE), Some(NOW_DATE));
        assert_eq!(field(&answer, CACHE_CONTROL), Some("public, max-age=60"));
        assert_eq!(
            field(&answer, EXPIRES),
            Some("Tue, 14 Nov 2023 22:14:20 GMT"),
            "an absolute expiry stays (counted from the new Date)"
        );

        let origin = delivered(BrowserFreshness::ORIGIN, &fields);
        assert_eq!(field(&origin, AGE), Some("68"));
        assert_eq!(field(&origin, DATE), Some("Tue, 14 Nov 2023 22:13:20 GMT"));

        let mut refusal = headers(&[("content-range", "bytes */5")]);
        reset.apply(416, &mut refusal, &CacheStatus::hit(3532), now());
        assert!(!refusal.contains_key(AGE) && !refusal.contains_key(DATE));
    }

    #[test]
    fn browser_max_age_replaces_the_origins_lifetime_and_keeps_the_rest() {
        let max_age = BrowserFreshness::of(BrowserAge::Origin, Some(300));
        let table: [(Fields, Option<&str>); 8] = [
            (&[], Some("max-age=300")),
            (
                &[(
                    "cache-control",
                    "public, max-age=60, s-maxage=600, no-transform",
                )],
                Some("public, no-transform, max-age=300"),
            ),
            (
                &[
                    ("cache-control", "private=\"x-a, x-b\", Max-Age=60"),
                    ("cache-control", "must-revalidate"),
                ],
                Some("private=\"x-a, x-b\", must-revalidate, max-age=300"),
            ),
            (
                &[(
                    "cache-control",
                    "private, max-age=60, stale-while-revalidate=30",
                )],
                Some("private, stale-while-revalidate=30, max-age=300"),
            ),
            (
                &[("cache-control", "no-cache=\"set-cookie\", max-age=60")],
                Some("no-cache=\"set-cookie\", max-age=300"),
            ),
            (
                &[("cache-control", "no-store, max-age=60")],
                Some("no-store, max-age=60"),
            ),
            (&[("cache-control", "no-cache")], Some("no-cache")),
            (
                &[("expires", "Tue, 14 Nov 2023 22:14:20 GMT")],
                Some("max-age=300"),
            ),
        ];
        for (fields, expected) in table {
            let answer = delivered(max_age, fields);
            assert_eq!(field(&answer, CACHE_CONTROL), expected, "{fields:?}");
            assert_eq!(field(&answer, AGE), Some("0"), "{fields:?}");
            assert_eq!(field(&answer, DATE), Some(NOW_DATE), "{fields:?}");
            let forbidding = expected.is_some_and(|cc| cc.starts_with("no-"));
            assert_eq!(
                answer.contains_key(EXPIRES),
                forbidding && fields.iter().any(|(n, _)| *n == "expires"),
                "{fields:?}"
            );
        }
    }

    #[test]
    fn browser_max_age_leaves_errors_and_redirects_their_own_lifetime() {
        let max_age = BrowserFreshness::of(BrowserAge::Origin, Some(86_400));
        for (code, rewritten) in [
            (200, true),
            (206, true),
            (304, true),
            (301, false),
            (404, false),
        ] {
            let mut answer = headers(&[("cache-control", "max-age=10")]);
            answer.insert(AGE, HeaderValue::from(68));
            max_age.apply(code, &mut answer, &CacheStatus::hit(3532), now());
            let expected = if rewritten {
                "max-age=86400"
            } else {
                "max-age=10"
            };
            assert_eq!(field(&answer, CACHE_CONTROL), Some(expected), "{code}");
            assert_eq!(
                field(&answer, AGE),
                Some("0"),
                "{code}: Age is reset all the same"
            );
        }
    }

    #[test]
    fn list_members_split_outside_quotes() {
        assert_eq!(
            list_members(r#" a, b="x, \"y\", z" ,, c=1 "#),
            ["a", r#"b="x, \"y\", z""#, "c=1"]
        );
        assert!(list_members("").is_empty());
    }
}
