//! What a request's cookies do to caching, as a CDN treats them.
//!
//! A rule names the cookies its answers depend on (`cookies`: keyed, and
//! the only ones a fill forwards). Any other cookie a request carries is
//! either a sign that the answer is personal, or noise:
//! - `other_cookies: "pass"` (the default): the request goes to the origin
//!   with all its cookies, and its answer is neither stored nor served from
//!   the cache (Varnish's built-in behaviour): logged-in pages, carts and
//!   CSRF tokens keep working behind the edge;
//! - `other_cookies: "ignore"`: they are dropped (paths whose answers do
//!   not depend on cookies: static assets).
//!
//! Cookies that scripts set for their own use and servers never read
//! (analytics) are ignored either way, so that they do not turn every
//! request into a pass: [`DEFAULT_IGNORED_COOKIES`], or the rule's own
//! `ignored_cookies` list (a trailing `*` matches any name it begins).

use http::HeaderMap;
use serde::Deserialize;

/// Analytics cookies: set and read by scripts in the browser, never by the
/// origin (Google Analytics and Ads, Facebook, Hotjar, Microsoft Clarity).
pub const DEFAULT_IGNORED_COOKIES: [&str; 10] = [
    "_ga", "_ga_*", "_gid", "_gat*", "_gcl_*", "__utm*", "_fbp", "_fbc", "_hj*", "_clck",
];

/// What the cookies a rule does not key do to a request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OtherCookies {
    /// The request is passed to the origin with all its cookies; its
    /// answer is not shared.
    #[default]
    Pass,
    /// They are dropped: the answers do not depend on them.
    Ignore,
}

/// The names of the cookies a request carries, as sent.
pub(crate) fn cookie_names(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| Some(pair.split_once('=')?.0.trim()))
        .filter(|name| !name.is_empty())
}

/// Whether `name` matches a pattern: the name itself, or a prefix before a
/// trailing `*`.
fn matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

/// The cookie, if any, that makes a request a pass under a rule that keys
/// `keyed`, ignores `ignored` (`None`: the default list) and treats other
/// cookies as `other`.
pub(crate) fn passing_cookie<'h>(
    headers: &'h HeaderMap,
    keyed: &[String],
    ignored: Option<&[String]>,
    other: OtherCookies,
) -> Option<&'h str> {
    if other == OtherCookies::Ignore {
        return None;
    }
    let ignorable = |name: &str| match ignored {
        Some(list) => list.iter().any(|p| matches(p, name)),
        None => DEFAULT_IGNORED_COOKIES.iter().any(|p| matches(p, name)),
    };
    cookie_names(headers).find(|name| !keyed.iter().any(|k| k == name) && !ignorable(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::headers;

    fn passing(cookie: &str, ignored: Option<&[String]>, other: OtherCookies) -> Option<String> {
        let h = headers(&[("cookie", cookie)]);
        passing_cookie(&h, &["lang".into()], ignored, other).map(str::to_owned)
    }

    #[test]
    fn an_unkeyed_cookie_passes_unless_it_is_ignorable_or_the_rule_ignores_them() {
        use OtherCookies::*;
        assert_eq!(passing("lang=en", None, Pass), None);
        assert_eq!(
            passing("lang=en; session=abc", None, Pass).as_deref(),
            Some("session")
        );
        assert_eq!(passing("session=abc", None, Ignore), None);
        // Analytics cookies never make a pass.
        assert_eq!(
            passing("_ga=1; _ga_XYZ=2; _gid=3; __utmz=4; lang=ko", None, Pass),
            None
        );
        // A rule's own list replaces the default one.
        let own = ["sid*".to_owned()];
        assert_eq!(passing("sid_1=a; lang=en", Some(&own), Pass), None);
        assert_eq!(passing("_ga=1", Some(&own), Pass).as_deref(), Some("_ga"));
        // No cookie, or a malformed one without a name, is no pass.
        assert_eq!(passing("", None, Pass), None);
        assert_eq!(passing("novalue; =x", None, Pass), None);
    }
}
