//! Whether a response may be stored by a shared cache (RFC 9111 §3), and
//! what of it is stored.

use http::HeaderMap;

use crate::policy::freshness::{EffectiveControl, heuristically_cacheable};
use crate::policy::rules::Rule;
use crate::policy::vary::VaryNames;

/// Why a response is not stored (reported in `Cache-Status` detail).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotStorable {
    /// The status code is not final or not understood for caching.
    Status,
    /// `no-store` in the directives this cache obeys.
    NoStore,
    /// `private`: a shared cache must not store it.
    Private,
    /// The request carried `Authorization` and the response did not allow
    /// sharing (§3.5).
    Authorization,
    /// The response sets a cookie and the rule does not allow storing it.
    SetCookie,
    /// `Vary: *`: no later request could be matched to it.
    VaryStar,
    /// No freshness information and no validators: nothing to reuse.
    NoFreshness,
    /// Larger than the rule's `max_object_bytes`.
    TooLarge,
}

impl NotStorable {
    /// The `Cache-Status` detail token.
    pub fn detail(self) -> &'static str {
        match self {
            NotStorable::Status => "status",
            NotStorable::NoStore => "no-store",
            NotStorable::Private => "private",
            NotStorable::Authorization => "authorization",
            NotStorable::SetCookie => "set-cookie",
            NotStorable::VaryStar => "vary-star",
            NotStorable::NoFreshness => "no-freshness",
            NotStorable::TooLarge => "too-large",
        }
    }
}

/// Codes whose caching semantics we understand (for `must-understand`).
fn understood(status: u16) -> bool {
    heuristically_cacheable(status) || matches!(status, 302 | 303 | 307)
}

/// The response being considered for storing.
pub struct Candidate<'a> {
    /// The response status (decides what is understood and storable).
    pub status: u16,
    /// Headers as the origin sent them (hop-by-hop removed).
    pub headers: &'a HeaderMap,
    /// The directives this cache obeys.
    pub control: &'a EffectiveControl,
    /// Whether a freshness lifetime could be determined.
    pub has_lifetime: bool,
    /// Body length in bytes.
    pub body_len: u64,
    /// The most the cache stores of one object, for this rule and store
    /// (`Flow::object_limit`).
    pub max_object_bytes: u64,
}

/// Decides storability for a response to a GET the edge made for a request
/// that did (or did not) carry `Authorization`.
pub fn check_storable(
    request_has_authorization: bool,
    response: &Candidate<'_>,
    rule: &Rule,
) -> Result<(), NotStorable> {
    let Candidate {
        status,
        headers,
        control,
        has_lifetime,
        body_len,
        max_object_bytes,
    } = *response;
    let d = &control.directives;
    // Partial content and 304 are never stored on their own; we always
    // fetch whole representations.
    if !(200..600).contains(&status) || status == 206 || status == 304 {
        return Err(NotStorable::Status);
    }
    // must-understand: store only codes we understand, and then ignore
    // no-store (§5.2.2.3).
    let must_understand = d.has("must-understand");
    if must_understand && !understood(status) {
        return Err(NotStorable::Status);
    }
    if d.has("no-store") && !must_understand {
        return Err(NotStorable::NoStore);
    }
    // `private` alone makes the whole response private; `private="a"` only
    // field `a`, which storing leaves out (§5.2.2.7).
    if d.has_unqualified("private") {
        return Err(NotStorable::Private);
    }
    if request_has_authorization
        && !(d.has("public") || d.has("s-maxage") || d.has("must-revalidate"))
    {
        return Err(NotStorable::Authorization);
    }
    if NOT_STORED_HEADERS
        .iter()
        .any(|name| headers.contains_key(*name))
        && !rule.store_set_cookie
    {
        return Err(NotStorable::SetCookie);
    }
    if VaryNames::of(headers) == VaryNames::Star {
        return Err(NotStorable::VaryStar);
    }
    let has_validators = headers.contains_key("etag") || headers.contains_key("last-modified");
    if !has_lifetime && !has_validators {
        return Err(NotStorable::NoFreshness);
    }
    if !(has_lifetime || d.has("public") || d.has("no-cache")) {
        // A validator alone does not make a response storable (§3).
        return Err(NotStorable::NoFreshness);
    }
    if body_len > max_object_bytes {
        return Err(NotStorable::TooLarge);
    }
    Ok(())
}

/// The only end-to-end fields never stored (hop-by-hop ones are gone
/// already; everything else the origin sent is stored and replayed, RFC 9111
/// §3.1): the per-client cookie fields. A response carrying one is not
/// stored at all unless the rule says `store_set_cookie`, and then stored
/// without them. `Set-Cookie2` (RFC 2965, obsoleted by RFC 6265) is still
/// a cookie and is treated exactly like `Set-Cookie`.
pub const NOT_STORED_HEADERS: [&str; 2] = ["set-cookie", "set-cookie2"];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::headers;

    fn check(
        status: u16,
        pairs: &[(&str, &str)],
        auth: bool,
        has_lifetime: bool,
        rule: &Rule,
    ) -> Result<(), NotStorable> {
        let h = headers(pairs);
        let control = EffectiveControl::of(&h);
        let candidate = Candidate {
            status,
            headers: &h,
            control: &control,
            has_lifetime,
            body_len: 10,
            max_object_bytes: rule
                .max_object_bytes
                .unwrap_or(crate::policy::rules::DEFAULT_MAX_OBJECT_BYTES),
        };
        check_storable(auth, &candidate, rule)
    }

    #[test]
    fn storability_table() {
        use NotStorable::*;
        let rule = Rule::default();
        type Case<'a> = (
            u16,
            Vec<(&'a str, &'a str)>,
            bool,
            bool,
            Result<(), NotStorable>,
        );
        let table: Vec<Case> = vec![
            (
                200,
                vec![("cache-control", "max-age=60")],
                false,
                true,
                Ok(()),
            ),
            (
                200,
                vec![("cache-control", "max-age=60, no-store")],
                false,
                true,
                Err(NoStore),
            ),
            (
                200,
                vec![("cache-control", "max-age=60, private")],
                false,
                true,
                Err(Private),
            ),
            (
                200,
                // Only the named field is private: stored without it.
                vec![("cache-control", "private=\"x-user\", max-age=60")],
                false,
                true,
                Ok(()),
            ),
            (
                200,
                vec![("cache-control", "max-age=60")],
                true,
                true,
                Err(Authorization),
            ),
            (
                200,
                vec![("cache-control", "max-age=60, public")],
                true,
                true,
                Ok(()),
            ),
            (
                200,
                vec![("cache-control", "s-maxage=60")],
                true,
                true,
                Ok(()),
            ),
            (
                200,
                vec![("cache-control", "max-age=60"), ("set-cookie", "a=1")],
                false,
                true,
                Err(SetCookie),
            ),
            (
                200,
                vec![("cache-control", "max-age=60"), ("set-cookie2", "a=1")],
                false,
                true,
                Err(SetCookie),
            ),
            (
                200,
                vec![("cache-control", "max-age=60"), ("vary", "*")],
                false,
                true,
                Err(VaryStar),
            ),
            (200, vec![], false, false, Err(NoFreshness)),
            (200, vec![("etag", "\"x\"")], false, false, Err(NoFreshness)),
            (
                200,
                vec![("etag", "\"x\""), ("cache-control", "no-cache")],
                false,
                false,
                Ok(()),
            ),
            (
                206,
                vec![("cache-control", "max-age=60")],
                false,
                true,
                Err(Status),
            ),
            (
                304,
                vec![("cache-control", "max-age=60")],
                false,
                true,
                Err(Status),
            ),
            (
                500,
                vec![("cache-control", "max-age=60")],
                false,
                true,
                Ok(()),
            ),
            (
                200,
                vec![("cache-control", "max-age=60, no-store, must-understand")],
                false,
                true,
                Ok(()),
            ),
            (
                299,
                vec![("cache-control", "max-age=60, no-store, must-understand")],
                false,
                true,
                Err(Status),
            ),
            // A targeted field overrides Cache-Control's no-store for us.
            (
                200,
                vec![
                    ("cdn-cache-control", "max-age=60"),
                    ("cache-control", "no-store"),
                ],
                false,
                true,
                Ok(()),
            ),
            (
                200,
                vec![
                    ("cdn-cache-control", "no-store"),
                    ("cache-control", "max-age=60"),
                ],
                false,
                true,
                Err(NoStore),
            ),
        ];
        for (status, pairs, auth, lifetime, expected) in table {
            assert_eq!(
                check(status, &pairs, auth, lifetime, &rule),
                expected,
                "{status} {pairs:?} auth={auth}"
            );
        }
    }

    #[test]
    fn rule_limits() {
        let cookie_ok = Rule {
            store_set_cookie: true,
            ..Default::default()
        };
        for cookie in NOT_STORED_HEADERS {
            assert_eq!(
                check(
                    200,
                    &[("cache-control", "max-age=60"), (cookie, "a=1")],
                    false,
                    true,
                    &cookie_ok
                ),
                Ok(()),
                "{cookie}"
            );
        }
        let small = Rule {
            max_object_bytes: Some(5),
            ..Default::default()
        };
        assert_eq!(
            check(200, &[("cache-control", "max-age=60")], false, true, &small),
            Err(NotStorable::TooLarge)
        );
    }
}
