//! What the cache did with a request, read from the component's RFC 9211
//! `Cache-Status` response field.
//!
//! The host reads the field rather than asking the guest: the component
//! stays portable, and anything Spin runs can be observed the same way.
//! The `edge-cache` member's parameters decide (see
//! `edge-cache/src/policy/cache_status.rs` for what the component writes):
//!
//! | `Cache-Status` | outcome |
//! |---|---|
//! | `hit; …; collapsed` | collapsed (answered from another request's fill) |
//! | `hit; …; detail=stale-while-revalidate` or `max-stale` | stale |
//! | `hit` | hit |
//! | `fwd=stale; fwd-status=304` | revalidated |
//! | `fwd=stale; …; detail=…` without a fresh answer (`stale-if-error`, grace, breaker, cap) | stale |
//! | `fwd=bypass`, `fwd=request` | bypass |
//! | `fwd=…` with no `fwd-status` (the origin gave no answer) | error |
//! | `fwd=uri-miss`, `vary-miss`, `miss`, or a refetched `stale` | miss |
//! | no `edge-cache` member: the purge API, `only-if-cached` | none; a host `5xx` is error |

use http::HeaderMap;
use purge_wire::CACHE_NAME;

/// What the cache did with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Served fresh from the cache.
    Hit,
    /// Served from the cache past its freshness (stale-while-revalidate,
    /// stale-if-error, grace, an open breaker, a busy origin).
    Stale,
    /// Waited for another request's fill and was answered from it.
    Collapsed,
    /// A stale entry the origin confirmed with `304`.
    Revalidated,
    /// Fetched from the origin.
    Miss,
    /// Passed to the origin without the cache (rule, method, request
    /// directive, store failure).
    Bypass,
    /// No answer from the origin or the instance: the edge made an error
    /// response.
    Error,
    /// Not a cache request: the purge API, a host answer that is not a
    /// failure.
    None,
}

impl Outcome {
    /// Every outcome, in the order metrics and the status page list them.
    pub const ALL: [Outcome; 8] = [
        Outcome::Hit,
        Outcome::Stale,
        Outcome::Collapsed,
        Outcome::Revalidated,
        Outcome::Miss,
        Outcome::Bypass,
        Outcome::Error,
        Outcome::None,
    ];

    /// Its label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Hit => "hit",
            Outcome::Stale => "stale",
            Outcome::Collapsed => "collapsed",
            Outcome::Revalidated => "revalidated",
            Outcome::Miss => "miss",
            Outcome::Bypass => "bypass",
            Outcome::Error => "error",
            Outcome::None => "none",
        }
    }

    /// Its position in [`Outcome::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// Whether the answer came out of the cache (the hit ratio's
    /// numerator).
    pub fn from_cache(self) -> bool {
        matches!(self, Outcome::Hit | Outcome::Stale | Outcome::Collapsed)
    }

    /// The outcome of a response with `status` and `headers`.
    pub fn of(status: u16, headers: &HeaderMap) -> Outcome {
        let member = headers
            .get_all("cache-status")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .find(|member| member.split(';').next().map(str::trim) == Some(CACHE_NAME));
        match member {
            Some(member) => Outcome::of_member(member),
            None if status >= 500 => Outcome::Error,
            None => Outcome::None,
        }
    }

    /// The outcome one `edge-cache; …` member says.
    fn of_member(member: &str) -> Outcome {
        let mut params = Params::default();
        for param in member.split(';').skip(1) {
            let (name, value) = match param.split_once('=') {
                Some((name, value)) => (name.trim(), value.trim().trim_matches('"')),
                None => (param.trim(), ""),
            };
            match name {
                "hit" => params.hit = true,
                "collapsed" => params.collapsed = true,
                "fwd" => params.fwd = Some(value),
                "fwd-status" => params.fwd_status = value.parse().ok(),
                "detail" => params.detail = Some(value),
                _ => {}
            }
        }
        if params.hit {
            return match params.detail {
                _ if params.collapsed => Outcome::Collapsed,
                Some("stale-while-revalidate" | "max-stale") => Outcome::Stale,
                _ => Outcome::Hit,
            };
        }
        match (params.fwd, params.fwd_status) {
            (Some("stale"), Some(304)) => Outcome::Revalidated,
            // Served from the stale entry instead of the origin's answer (or
            // its absence): the detail names why.
            (Some("stale"), status)
                if params.detail.is_some() && status.is_none_or(|status| status >= 500) =>
            {
                Outcome::Stale
            }
            (Some("bypass" | "request"), Some(_)) => Outcome::Bypass,
            (Some(_), None) => Outcome::Error,
            (Some(_), Some(_)) => Outcome::Miss,
            (None, _) => Outcome::None,
        }
    }
}

#[derive(Default)]
struct Params<'a> {
    hit: bool,
    collapsed: bool,
    fwd: Option<&'a str>,
    fwd_status: Option<u16>,
    detail: Option<&'a str>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(status: u16, cache_status: Option<&str>) -> Outcome {
        let mut headers = HeaderMap::new();
        if let Some(value) = cache_status {
            headers.insert("cache-status", value.parse().unwrap());
        }
        Outcome::of(status, &headers)
    }

    #[test]
    fn each_cache_status_the_component_writes_has_its_outcome() {
        let cases = [
            (200, Some("edge-cache; hit; ttl=57"), Outcome::Hit),
            (
                200,
                Some("edge-cache; hit; ttl=30; collapsed"),
                Outcome::Collapsed,
            ),
            (
                200,
                Some("edge-cache; hit; ttl=-3; detail=stale-while-revalidate"),
                Outcome::Stale,
            ),
            (
                200,
                Some("edge-cache; hit; ttl=-3; detail=max-stale"),
                Outcome::Stale,
            ),
            (
                200,
                Some("edge-cache; fwd=uri-miss; fwd-status=200; ttl=60; stored"),
                Outcome::Miss,
            ),
            (
                200,
                Some("edge-cache; fwd=vary-miss; fwd-status=200"),
                Outcome::Miss,
            ),
            (
                200,
                Some("edge-cache; fwd=uri-miss; fwd-status=200; collapsed"),
                Outcome::Miss,
            ),
            (
                200,
                Some("edge-cache; fwd=stale; fwd-status=304; ttl=60; stored"),
                Outcome::Revalidated,
            ),
            (
                200,
                Some("edge-cache; fwd=stale; fwd-status=200; ttl=60"),
                Outcome::Miss,
            ),
            (
                200,
                Some("edge-cache; fwd=stale; ttl=-20; detail=grace"),
                Outcome::Stale,
            ),
            (
                200,
                Some("edge-cache; fwd=stale; fwd-status=503; ttl=-2; detail=stale-if-error"),
                Outcome::Stale,
            ),
            (
                200,
                Some("edge-cache; fwd=stale; ttl=-2; detail=circuit-open"),
                Outcome::Stale,
            ),
            (
                200,
                Some("edge-cache; fwd=bypass; fwd-status=200; detail=rule-3"),
                Outcome::Bypass,
            ),
            (
                200,
                Some("edge-cache; fwd=bypass; fwd-status=200; detail=store-error"),
                Outcome::Bypass,
            ),
            (
                200,
                Some("edge-cache; fwd=request; fwd-status=200; detail=no-store"),
                Outcome::Bypass,
            ),
            (502, Some("edge-cache; fwd=uri-miss"), Outcome::Error),
            (504, Some("edge-cache; fwd=stale"), Outcome::Error),
            (
                503,
                Some("edge-cache; fwd=bypass; detail=method"),
                Outcome::Error,
            ),
            (
                500,
                Some("edge-cache; fwd=miss; fwd-status=500"),
                Outcome::Miss,
            ),
            (
                504,
                Some("edge-cache; detail=only-if-cached"),
                Outcome::None,
            ),
            (200, None, Outcome::None),
            (401, None, Outcome::None),
            (500, None, Outcome::Error),
            // Another cache's member is not ours.
            (
                200,
                Some("other-cdn; hit, edge-cache; fwd=uri-miss; fwd-status=200"),
                Outcome::Miss,
            ),
            (200, Some("other-cdn; hit"), Outcome::None),
        ];
        for (status, cache_status, expected) in cases {
            assert_eq!(outcome(status, cache_status), expected, "{cache_status:?}");
        }
    }

    #[test]
    fn indexes_follow_the_list() {
        for (index, outcome) in Outcome::ALL.iter().enumerate() {
            assert_eq!(outcome.index(), index);
        }
    }
}
