//! How long a stored response stays fresh, and how old it is (RFC 9111
//! §4.2), for a shared cache that also obeys CDN-targeted fields.

use std::time::{Duration, SystemTime};

use http::HeaderMap;
use http::header::{AGE, CACHE_CONTROL, DATE, EXPIRES, LAST_MODIFIED};

use crate::http::cache_control::{CacheDirectives, DELTA_SECONDS_MAX, Seconds};
use crate::http::field_names::{CDN_CACHE_CONTROL, SURROGATE_CONTROL};
use crate::http::http_date::header_date;

/// Which field's directives this cache obeys for a response.
// The variants are the fields' names, which all end in `Control`.
#[allow(clippy::enum_variant_names)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlSource {
    /// `CDN-Cache-Control` (RFC 9213): targeted at CDNs, overrides the rest.
    CdnCacheControl,
    /// `Surrogate-Control`: the older surrogate-targeted field.
    SurrogateControl,
    /// `Cache-Control`, for every cache: obeyed when neither field above
    /// is present.
    CacheControl,
}

/// The directives that govern caching here, and where they came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EffectiveControl {
    /// The field the directives came from.
    pub source: ControlSource,
    /// The directives of that field, parsed.
    pub directives: CacheDirectives,
}

impl EffectiveControl {
    /// Picks the first present, valid, non-empty field of
    /// `CDN-Cache-Control`, `Surrogate-Control`, `Cache-Control`. A targeted
    /// field replaces `Cache-Control` entirely for this cache (RFC 9213
    /// §2.1); the client still receives `Cache-Control` unchanged.
    /// `CDN-Cache-Control` is a Structured Field: one that does not parse,
    /// or whose delta-seconds are not non-negative Integers, is ignored
    /// whole, as if absent (§2.2). `Surrogate-Control` keeps the lenient
    /// `Cache-Control` syntax.
    pub fn of(headers: &HeaderMap) -> Self {
        if let Some(directives) =
            CacheDirectives::from_structured_headers(headers, CDN_CACHE_CONTROL)
            && !directives.is_empty()
        {
            return EffectiveControl {
                source: ControlSource::CdnCacheControl,
                directives,
            };
        }
        if let Some(directives) = CacheDirectives::from_headers(headers, SURROGATE_CONTROL)
            && !directives.is_empty()
        {
            return EffectiveControl {
                source: ControlSource::SurrogateControl,
                directives,
            };
        }
        EffectiveControl {
            source: ControlSource::CacheControl,
            directives: CacheDirectives::from_headers(headers, CACHE_CONTROL).unwrap_or_default(),
        }
    }

    /// Whether stale reuse needs successful validation first
    /// (`must-revalidate`, `proxy-revalidate`, `no-cache`).
    pub fn forbids_stale(&self) -> bool {
        let d = &self.directives;
        d.has("must-revalidate") || d.has("proxy-revalidate") || d.has_unqualified("no-cache")
    }

    /// RFC 5861 `stale-while-revalidate` window.
    pub fn stale_while_revalidate(&self) -> Option<Duration> {
        directive_duration(&self.directives, "stale-while-revalidate")
    }

    /// RFC 5861 `stale-if-error` window.
    pub fn stale_if_error(&self) -> Option<Duration> {
        directive_duration(&self.directives, "stale-if-error")
    }
}

/// The duration a directive gives (`stale-if-error=60`); none for an
/// unreadable value.
fn directive_duration(d: &CacheDirectives, name: &str) -> Option<Duration> {
    match d.seconds(name)? {
        Seconds::Valid(n) => Some(Duration::from_secs(n)),
        Seconds::Invalid => None,
    }
}

/// What a client's request directives ask of a stored response (RFC 9111
/// §5.2.1). They shape only this client's answer: a request can make the
/// edge revalidate, accept staleness for itself, or refuse the origin, but
/// never changes what others get.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientDemand {
    /// `no-cache`, `Pragma: no-cache`: validate before reuse.
    no_cache: bool,
    /// `max-age`: the oldest response the client takes without validation
    /// (an unreadable value counts as 0).
    max_age: Option<Duration>,
    /// `min-fresh`: freshness the response must still have.
    min_fresh: Duration,
    /// `max-stale`: staleness the client accepts (`Duration::MAX` when the
    /// directive has no value).
    max_stale: Option<Duration>,
    /// `only-if-cached`: never go to the origin.
    pub only_if_cached: bool,
}

impl ClientDemand {
    /// Reads a request's directives.
    pub fn of(cc: &CacheDirectives) -> Self {
        let duration = |name| match cc.seconds(name)? {
            Seconds::Valid(n) => Some(Duration::from_secs(n)),
            Seconds::Invalid => None,
        };
        let max_age = match cc.seconds("max-age") {
            Some(Seconds::Valid(n)) => Some(Duration::from_secs(n)),
            Some(Seconds::Invalid) => Some(Duration::ZERO),
            None => None,
        };
        let max_stale = cc
            .has("max-stale")
            .then(|| duration("max-stale").unwrap_or(Duration::MAX));
        ClientDemand {
            no_cache: cc.has("no-cache"),
            max_age,
            min_fresh: duration("min-fresh").unwrap_or(Duration::ZERO),
            max_stale,
            only_if_cached: cc.has("only-if-cached"),
        }
    }

    /// Whether the client refuses a response of `age` without validation.
    pub fn must_validate(&self, age: Duration) -> bool {
        self.no_cache || self.max_age.is_some_and(|max| age > max)
    }

    /// Whether a fresh response still has the freshness the client wants.
    pub fn accepts_fresh(&self, age: Duration, lifetime: Duration) -> bool {
        lifetime.saturating_sub(age) >= self.min_fresh
    }

    /// Whether the client takes a stale response of `age` as it is.
    pub fn accepts_stale(&self, age: Duration, lifetime: Duration) -> bool {
        self.max_stale
            .is_some_and(|window| lifetime.checked_add(window).is_none_or(|end| age < end))
    }
}

/// Freshness a rule adds to or imposes on what the origin says.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FreshnessRule {
    /// Replaces the origin's lifetime.
    pub ttl_override: Option<Duration>,
    /// Lifetime for responses that carry no freshness information.
    pub default_ttl: Option<Duration>,
    /// Whether heuristic freshness (§4.2.2) may be used.
    pub heuristic: bool,
    /// The response is a versioned object: treat as immutable.
    pub immutable: bool,
}

/// How long versioned (immutable) objects are kept fresh.
pub const IMMUTABLE_LIFETIME: Duration = Duration::from_secs(365 * 24 * 3600);

/// Upper bound for heuristic freshness.
const HEURISTIC_CAP: Duration = Duration::from_secs(24 * 3600);

/// Status codes that are heuristically cacheable (RFC 9110 §15.1).
pub fn heuristically_cacheable(status: u16) -> bool {
    matches!(
        status,
        200 | 203 | 204 | 206 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501
    )
}

/// Whether a rule, a versioned name or a heuristic may give a response of
/// this status a lifetime: the successful, heuristically cacheable ones
/// (RFC 9110 §15.1). Everything else lives only by the origin's word.
pub fn rule_lifetimes_apply(status: u16) -> bool {
    matches!(status, 200 | 203 | 204 | 206)
}

/// Where a lifetime came from (reported in `Cache-Status` detail).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LifetimeSource {
    /// A rule's `ttl`.
    RuleOverride,
    /// A versioned object: at least [`IMMUTABLE_LIFETIME`].
    Immutable,
    /// `s-maxage`: a shared cache's own lifetime, over `max-age`.
    SMaxAge,
    /// `max-age`, where there is no `s-maxage` (`Surrogate-Control` has
    /// only `max-age`).
    MaxAge,
    /// `Expires` minus `Date`.
    Expires,
    /// §4.2.2 heuristic from `Last-Modified`.
    Heuristic,
    /// A rule's `default_ttl`.
    RuleDefault,
    /// Invalid freshness information: stale at once.
    Invalid,
}

/// The freshness lifetime (§4.2.1), or `None` when the response carries no
/// freshness information and no rule supplies one.
pub fn freshness_lifetime(
    status: u16,
    headers: &HeaderMap,
    control: &EffectiveControl,
    rule: &FreshnessRule,
    response_time: SystemTime,
) -> Option<(Duration, LifetimeSource)> {
    // Rules, versioning and heuristics extend only successful answers. An
    // error or a negative answer (a 400 one client provoked, the 404 of a
    // version not yet released, an outage) is kept only as long as the
    // origin itself says: otherwise one request could decide what everyone
    // gets for a year (nginx's `proxy_cache_valid` and Fastly's default
    // TTL make the same split).
    let rules_apply = rule_lifetimes_apply(status);
    if rules_apply && let Some(ttl) = rule.ttl_override {
        return Some((ttl, LifetimeSource::RuleOverride));
    }
    let d = &control.directives;
    let explicit = match control.source {
        // Surrogate-Control has only max-age.
        ControlSource::SurrogateControl => {
            d.seconds("max-age").map(|s| (s, LifetimeSource::MaxAge))
        }
        _ => d
            .seconds("s-maxage")
            .map(|s| (s, LifetimeSource::SMaxAge))
            .or_else(|| d.seconds("max-age").map(|s| (s, LifetimeSource::MaxAge))),
    };
    if rules_apply && rule.immutable {
        let origin = match explicit {
            Some((Seconds::Valid(n), _)) => Duration::from_secs(n),
            _ => Duration::ZERO,
        };
        return Some((origin.max(IMMUTABLE_LIFETIME), LifetimeSource::Immutable));
    }
    match explicit {
        Some((Seconds::Valid(n), source)) => return Some((Duration::from_secs(n), source)),
        Some((Seconds::Invalid, _)) => return Some((Duration::ZERO, LifetimeSource::Invalid)),
        None => {}
    }
    if control.source == ControlSource::CacheControl && headers.contains_key("expires") {
        let date = header_date(headers, DATE).unwrap_or(response_time);
        return Some(match header_date(headers, EXPIRES) {
            // Invalid dates such as "0" mean "already expired" (§5.3).
            None => (Duration::ZERO, LifetimeSource::Invalid),
            Some(expires) => (
                expires.duration_since(date).unwrap_or(Duration::ZERO),
                LifetimeSource::Expires,
            ),
        });
    }
    if rules_apply
        && rule.heuristic
        && heuristically_cacheable(status)
        && let Some(last_modified) = header_date(headers, LAST_MODIFIED)
    {
        let date = header_date(headers, DATE).unwrap_or(response_time);
        let age = date.duration_since(last_modified).unwrap_or(Duration::ZERO);
        return Some(((age / 10).min(HEURISTIC_CAP), LifetimeSource::Heuristic));
    }
    if rules_apply && heuristically_cacheable(status) {
        return rule
            .default_ttl
            .map(|ttl| (ttl, LifetimeSource::RuleDefault));
    }
    None
}

/// The `Age` header value, if the edge can read one. A list (`Age: 7200,
/// 0`, several lines) counts by its first member (§5.1 allows only one
/// value, and the first is the one a recipient may use); a first member
/// that is not a non-negative integer (`1.5`, `-3`, `abc`) makes the field
/// invalid, and §5.1 says a cache SHOULD ignore it: `None`, as if the
/// origin had sent none. An invalid field is not evidence of age: reading
/// it as "as old as can be" stored every such response already stale and
/// relayed an `Age` of 2^31 nobody sent.
pub fn age_header(headers: &HeaderMap) -> Option<Duration> {
    let first = headers.get(AGE)?.to_str().ok()?.split(',').next()?.trim();
    if first.is_empty() || !first.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // More digits than a u64 holds is a valid, very large age (§1.2.2).
    let seconds = first
        .parse::<u64>()
        // A bigger `Age` is read, and sent on, as the cap (RFC 9111 §1.2.2).
        .map_or(DELTA_SECONDS_MAX, |n| n.min(DELTA_SECONDS_MAX));
    Some(Duration::from_secs(seconds))
}

/// `corrected_initial_age` of §4.2.3: what the response's age was when we
/// received it.
pub fn corrected_initial_age(
    headers: &HeaderMap,
    request_time: SystemTime,
    response_time: SystemTime,
) -> Duration {
    let date = header_date(headers, DATE).unwrap_or(response_time);
    let apparent_age = response_time.duration_since(date).unwrap_or(Duration::ZERO);
    let response_delay = response_time
        .duration_since(request_time)
        .unwrap_or(Duration::ZERO);
    let corrected_age_value = age_header(headers).unwrap_or(Duration::ZERO) + response_delay;
    apparent_age.max(corrected_age_value)
}

/// `current_age` of §4.2.3.
pub fn current_age(
    corrected_initial_age: Duration,
    response_time: SystemTime,
    now: SystemTime,
) -> Duration {
    corrected_initial_age + now.duration_since(response_time).unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::cache_control::DELTA_SECONDS_MAX as DELTA_SECONDS_CEILING;
    use crate::test_support::headers;

    const T0: u64 = 1_700_000_000;
    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }
    fn date(secs: u64) -> String {
        httpdate::fmt_http_date(at(secs))
    }

    fn lifetime(
        status: u16,
        pairs: &[(&str, &str)],
        rule: FreshnessRule,
    ) -> Option<(u64, LifetimeSource)> {
        let h = headers(pairs);
        freshness_lifetime(status, &h, &EffectiveControl::of(&h), &rule, at(T0))
            .map(|(d, s)| (d.as_secs(), s))
    }

    #[test]
    fn precedence_of_freshness_sources() {
        use LifetimeSource::*;
        let none = FreshnessRule::default();
        let d0 = date(T0);
        let exp = date(T0 + 300);
        let past = date(T0 - 10);
        type Case<'a> = (Vec<(&'a str, &'a str)>, Option<(u64, LifetimeSource)>);
        let table: Vec<Case> = vec![
            (
                vec![("cache-control", "max-age=60, s-maxage=120")],
                Some((120, SMaxAge)),
            ),
            (vec![("cache-control", "max-age=60")], Some((60, MaxAge))),
            (
                vec![
                    ("cache-control", "max-age=60"),
                    ("expires", &exp),
                    ("date", &d0),
                ],
                Some((60, MaxAge)),
            ),
            (vec![("expires", &exp), ("date", &d0)], Some((300, Expires))),
            (vec![("expires", "0"), ("date", &d0)], Some((0, Invalid))),
            (vec![("expires", &past), ("date", &d0)], Some((0, Expires))),
            (vec![("cache-control", "max-age=oops")], Some((0, Invalid))),
            (
                vec![
                    ("cdn-cache-control", "max-age=600"),
                    ("cache-control", "max-age=5"),
                ],
                Some((600, MaxAge)),
            ),
            (
                vec![
                    ("cdn-cache-control", "s-maxage=700, max-age=600"),
                    ("cache-control", "s-maxage=5"),
                ],
                Some((700, SMaxAge)),
            ),
            (
                vec![
                    ("surrogate-control", "max-age=900"),
                    ("cache-control", "max-age=5"),
                ],
                Some((900, MaxAge)),
            ),
            // Targeted field with no lifetime still overrides Cache-Control.
            (
                vec![
                    ("cdn-cache-control", "public"),
                    ("cache-control", "max-age=5"),
                ],
                None,
            ),
            // An empty targeted field is ignored.
            (
                vec![("cdn-cache-control", ""), ("cache-control", "max-age=5")],
                Some((5, MaxAge)),
            ),
            // Expires is a Cache-Control-family fallback only.
            (
                vec![("surrogate-control", "no-store"), ("expires", &exp)],
                None,
            ),
            (vec![], None),
        ];
        for (pairs, expected) in table {
            assert_eq!(lifetime(200, &pairs, none), expected, "{pairs:?}");
        }
    }

    #[test]
    fn an_invalid_cdn_cache_control_is_ignored_whole() {
        use LifetimeSource::*;
        let none = FreshnessRule::default();
        let exp = date(T0 + 300);
        let d0 = date(T0);
        for invalid in [
            r#"max-age="600""#,
            "max-age=600.0",
            "max-age=-1",
            "MAX-AGE=600",
            "max-age=600, s-maxage",
            "max-age=600, stale-if-error=1.5",
            "max-age=600;;",
            "public, max-age=600 junk",
        ] {
            fn with<'a>(
                invalid: &'a str,
                fallback: &[(&'a str, &'a str)],
            ) -> Vec<(&'a str, &'a str)> {
                let mut pairs = vec![("cdn-cache-control", invalid)];
                pairs.extend_from_slice(fallback);
                pairs
            }
            assert_eq!(
                lifetime(200, &with(invalid, &[("cache-control", "max-age=5")]), none),
                Some((5, MaxAge)),
                "{invalid}: falls back to Cache-Control"
            );
            assert_eq!(
                lifetime(
                    200,
                    &with(invalid, &[("surrogate-control", "max-age=9")]),
                    none
                ),
                Some((9, MaxAge)),
                "{invalid}: falls back to Surrogate-Control"
            );
            assert_eq!(
                lifetime(
                    200,
                    &with(invalid, &[("expires", &exp), ("date", &d0)]),
                    none
                ),
                Some((300, Expires)),
                "{invalid}: falls back to Expires"
            );
            let h = headers(&with(invalid, &[("cache-control", "no-store")]));
            let control = EffectiveControl::of(&h);
            assert_eq!(control.source, ControlSource::CacheControl, "{invalid}");
            assert!(control.directives.has("no-store"), "{invalid}");
        }
        // Valid members other than delta-seconds are directives as usual.
        let h = headers(&[
            (
                "cdn-cache-control",
                "max-age=60, stale-if-error=600, must-revalidate",
            ),
            ("cache-control", "no-store"),
        ]);
        let control = EffectiveControl::of(&h);
        assert_eq!(control.source, ControlSource::CdnCacheControl);
        assert!(control.forbids_stale());
        assert_eq!(control.stale_if_error(), Some(Duration::from_secs(600)));
        assert_eq!(
            lifetime(200, &[("cdn-cache-control", "max-age=0")], none),
            Some((0, MaxAge))
        );
    }

    #[test]
    fn dates_in_every_form_a_recipient_must_read_count() {
        use LifetimeSource::*;
        let none = FreshnessRule::default();
        // T0 is Tue, 14 Nov 2023 22:13:20 GMT; these are 300 s later.
        let d0 = date(T0);
        for expires in [
            "TUE, 14 NOV 2023 22:18:20 GMT",
            "Tue, 14 Nov 2023 22:18:20 gmt",
            "Fri, 14 Nov 2023 22:18:20 GMT",
            "Tuesday, 14-Nov-23 22:18:20 GMT",
            "Tue Nov 14 22:18:20 2023",
        ] {
            assert_eq!(
                lifetime(200, &[("expires", expires), ("date", &d0)], none),
                Some((300, Expires)),
                "{expires}"
            );
        }
        for expires in [
            "Tue, 14 Nov 2023 22:18:20 UTC",
            "Tue 14 Nov 2023 22:18:20 GMT",
            "Tue, 14-Nov-2023 22:18:20 GMT",
            "Tue, 14 Nov 2023 2:18:20 GMT",
            "Tue, 14  Nov 2023 22:18:20 GMT",
        ] {
            assert_eq!(
                lifetime(200, &[("expires", expires), ("date", &d0)], none),
                Some((0, Invalid)),
                "{expires}"
            );
        }
        // Date and Last-Modified are read the same way.
        let h = headers(&[("date", "Tue Nov 14 22:13:15 2023")]);
        assert_eq!(
            corrected_initial_age(&h, at(T0), at(T0)),
            Duration::from_secs(5)
        );
        let heuristic = FreshnessRule {
            heuristic: true,
            ..Default::default()
        };
        assert_eq!(
            lifetime(
                200,
                &[
                    ("last-modified", "tuesday, 14-nov-23 21:56:40 GMT"),
                    ("date", &d0)
                ],
                heuristic
            ),
            Some((100, Heuristic))
        );
    }

    #[test]
    fn rules_override_default_and_heuristic() {
        let lm = date(T0 - 1000);
        let d0 = date(T0);
        let pairs = [("last-modified", lm.as_str()), ("date", d0.as_str())];
        let heuristic = FreshnessRule {
            heuristic: true,
            ..Default::default()
        };
        assert_eq!(
            lifetime(200, &pairs, heuristic),
            Some((100, LifetimeSource::Heuristic))
        );
        assert_eq!(
            lifetime(200, &pairs, FreshnessRule::default()),
            None,
            "heuristics off by default"
        );
        assert_eq!(
            lifetime(302, &pairs, heuristic),
            None,
            "302 is not heuristically cacheable"
        );

        let default = FreshnessRule {
            default_ttl: Some(Duration::from_secs(30)),
            ..Default::default()
        };
        assert_eq!(
            lifetime(200, &[], default),
            Some((30, LifetimeSource::RuleDefault))
        );
        assert_eq!(lifetime(500, &[], default), None);
        assert_eq!(
            lifetime(200, &[("cache-control", "max-age=5")], default),
            Some((5, LifetimeSource::MaxAge))
        );

        let forced = FreshnessRule {
            ttl_override: Some(Duration::from_secs(7)),
            ..Default::default()
        };
        assert_eq!(
            lifetime(200, &[("cache-control", "max-age=500")], forced),
            Some((7, LifetimeSource::RuleOverride))
        );

        let immutable = FreshnessRule {
            immutable: true,
            ..Default::default()
        };
        assert_eq!(
            lifetime(200, &[("cache-control", "max-age=60")], immutable)
                .unwrap()
                .0,
            IMMUTABLE_LIFETIME.as_secs()
        );
    }

    #[test]
    fn errors_and_negative_answers_live_only_as_long_as_the_origin_says() {
        let generous = FreshnessRule {
            ttl_override: Some(Duration::from_secs(600)),
            default_ttl: Some(Duration::from_secs(600)),
            heuristic: true,
            immutable: true,
        };
        let old = date(T0 - 100_000);
        for status in [301, 400, 404, 406, 410, 416, 500, 501, 502, 503, 504] {
            assert_eq!(
                lifetime(status, &[("last-modified", &old)], generous),
                None,
                "{status}: no rule, version or heuristic extends it"
            );
            assert_eq!(
                lifetime(status, &[("cache-control", "max-age=5")], generous),
                Some((5, LifetimeSource::MaxAge)),
                "{status}: the origin may still mark it cacheable"
            );
        }
        for status in [200, 203, 204, 206] {
            assert_eq!(
                lifetime(status, &[], generous).map(|l| l.1),
                Some(LifetimeSource::RuleOverride),
                "{status}"
            );
        }
    }

    #[test]
    fn age_calculation_follows_4_2_3() {
        // Origin says Age: 10; the response took 2 s to arrive; the Date is
        // 5 s before we received it; we stored it 30 s ago.
        let h = headers(&[("age", "10"), ("date", &date(T0 - 5))]);
        let initial = corrected_initial_age(&h, at(T0 - 2), at(T0));
        assert_eq!(initial, Duration::from_secs(12));
        assert_eq!(
            current_age(initial, at(T0), at(T0 + 30)),
            Duration::from_secs(42)
        );
        // Clock skew (Date in the future) never makes age negative.
        let h = headers(&[("date", &date(T0 + 100))]);
        assert_eq!(corrected_initial_age(&h, at(T0), at(T0)), Duration::ZERO);
    }

    #[test]
    fn age_lists_count_by_their_first_member_and_invalid_ages_are_ignored() {
        // The `Age` field lines, and the age the edge reads from them.
        let table: [(&[&str], Option<u64>); 16] = [
            (&[], None),
            (&["30"], Some(30)),
            (&[" 30 "], Some(30)),
            (&["0"], Some(0)),
            (&["7200, 0"], Some(7200)),
            (&["7200, abc"], Some(7200)),
            (&["7200", "0"], Some(7200)),
            // Too large to tell apart: the cap, still a valid age (§1.2.2).
            (&["99999999999999999999999"], Some(DELTA_SECONDS_CEILING)),
            (&["2147483649"], Some(DELTA_SECONDS_CEILING)),
            // Invalid: ignored, as if absent (§5.1).
            (&["1.5"], None),
            (&["-3"], None),
            (&["abc"], None),
            (&[""], None),
            (&["+5"], None),
            (&["abc, 5"], None),
            (&["1e3"], None),
        ];
        for (lines, expected) in table {
            let pairs: Vec<(&str, &str)> = lines.iter().map(|line| ("age", *line)).collect();
            let read = age_header(&headers(&pairs)).map(|d| d.as_secs());
            assert_eq!(read, expected, "{lines:?}");
        }
    }

    #[test]
    fn an_invalid_age_adds_nothing_to_the_initial_age() {
        // Received 2 s after it was asked for, Date as received.
        for invalid in ["1.5", "-3", "abc"] {
            let h = headers(&[("age", invalid), ("date", &date(T0))]);
            assert_eq!(
                corrected_initial_age(&h, at(T0 - 2), at(T0)),
                Duration::from_secs(2),
                "{invalid:?}"
            );
        }
    }

    #[test]
    fn stale_directives() {
        let h = headers(&[(
            "cache-control",
            "max-age=1, stale-while-revalidate=30, stale-if-error=600",
        )]);
        let c = EffectiveControl::of(&h);
        assert_eq!(c.stale_while_revalidate(), Some(Duration::from_secs(30)));
        assert_eq!(c.stale_if_error(), Some(Duration::from_secs(600)));
        assert!(!c.forbids_stale());
        let h = headers(&[("cache-control", "max-age=1, must-revalidate")]);
        assert!(EffectiveControl::of(&h).forbids_stale());
    }

    #[test]
    fn client_demands_shape_only_what_the_client_takes() {
        let demand = |cc: &str| ClientDemand::of(&CacheDirectives::parse(cc));
        let (age, lifetime) = (Duration::from_secs(30), Duration::from_secs(60));
        assert!(!demand("").must_validate(age));
        assert!(demand("no-cache").must_validate(age));
        assert!(demand("max-age=10").must_validate(age));
        assert!(!demand("max-age=30").must_validate(age));
        assert!(demand("max-age=soon").must_validate(age), "unreadable is 0");
        assert!(demand("min-fresh=20").accepts_fresh(age, lifetime));
        assert!(!demand("min-fresh=40").accepts_fresh(age, lifetime));
        let stale_age = Duration::from_secs(90);
        assert!(!demand("").accepts_stale(stale_age, lifetime));
        assert!(demand("max-stale=40").accepts_stale(stale_age, lifetime));
        assert!(!demand("max-stale=20").accepts_stale(stale_age, lifetime));
        assert!(demand("max-stale").accepts_stale(Duration::from_secs(1 << 40), lifetime));
        assert!(demand("only-if-cached").only_if_cached);
    }
}
