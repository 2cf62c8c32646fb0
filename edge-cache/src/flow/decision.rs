//! The one decision a lookup leads to (RFC 9111 §4.2, §4.3, §5.2.1;
//! RFC 5861): serve the stored response fresh, serve it stale (and how),
//! revalidate it, or fill a miss. Pure: the facts in, the decision out,
//! made once per request and tested as a table. (A request the cache
//! does not take part in at all, a `no-store` request or a bypassed path,
//! is passed at the route, before any lookup.)

use std::time::{Duration, SystemTime};

use crate::policy::freshness::{ClientDemand, EffectiveControl};
use crate::store::Found;

/// What the decision needs to know of a stored response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StoredFacts {
    /// Its current age (§4.2.3).
    pub(crate) age: Duration,
    /// Its freshness lifetime, fixed when it was stored.
    pub(crate) lifetime: Duration,
    /// A soft purge covers it: revalidate before reuse.
    pub(crate) soft_purged: bool,
    /// Unqualified `no-cache`: never reused without validation (§5.2.2.4).
    pub(crate) no_cache: bool,
    /// `must-revalidate`, `proxy-revalidate` or `no-cache`: never served
    /// stale (§4.2.4).
    pub(crate) forbids_stale: bool,
    /// Its `stale-while-revalidate` window, if any.
    pub(crate) stale_while_revalidate: Option<Duration>,
}

impl StoredFacts {
    /// The facts of `found` at `now`, its directives as `control` reads them.
    pub(crate) fn of(found: &Found, control: &EffectiveControl, now: SystemTime) -> Self {
        StoredFacts {
            age: found.age(now),
            lifetime: found.lifetime(),
            soft_purged: found.soft_purged,
            no_cache: control.directives.has_unqualified("no-cache"),
            forbids_stale: control.forbids_stale(),
            stale_while_revalidate: control.stale_while_revalidate(),
        }
    }

    /// Seconds of freshness left (negative once stale): `Cache-Status`'s
    /// `ttl`.
    pub(crate) fn ttl(&self) -> i64 {
        ttl(self.lifetime, self.age)
    }
}

/// Seconds of freshness left for a response of `age` living `lifetime`
/// (negative once stale), in whole seconds of each.
pub(crate) fn ttl(lifetime: Duration, age: Duration) -> i64 {
    lifetime.as_secs() as i64 - age.as_secs() as i64
}

/// How a stale response is served without asking the origin first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StaleServe {
    /// The client takes it stale (`max-stale`).
    MaxStale,
    /// Within `stale-while-revalidate`: served, and refreshed afterwards.
    WhileRevalidate,
}

/// What to do for a request after its lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Serve the stored response: it is fresh for this client.
    Fresh,
    /// Serve the stored response stale, as said.
    Stale(StaleServe),
    /// Ask the origin whether the stored response is still good.
    Revalidate,
    /// Nothing stored is usable: fill from the origin.
    Miss,
    /// `only-if-cached`, and nothing stored may be served as it is: `504`,
    /// without asking the origin (§5.2.1.7).
    Unavailable,
}

/// The decision for a client asking `demand`, given what the lookup found
/// (`None`: nothing usable).
pub(crate) fn decide(demand: &ClientDemand, stored: Option<&StoredFacts>) -> Decision {
    let Some(stored) = stored else {
        return match demand.only_if_cached {
            true => Decision::Unavailable,
            false => Decision::Miss,
        };
    };
    let StoredFacts { age, lifetime, .. } = *stored;
    let must_validate = demand.must_validate(age) || stored.soft_purged;
    if age < lifetime && !must_validate && !stored.no_cache && demand.accepts_fresh(age, lifetime) {
        return Decision::Fresh;
    }
    let may_serve_stale = !stored.forbids_stale && !must_validate;
    if may_serve_stale && age >= lifetime && demand.accepts_stale(age, lifetime) {
        return Decision::Stale(StaleServe::MaxStale);
    }
    if may_serve_stale
        && let Some(window) = stored.stale_while_revalidate
        && age < lifetime + window
    {
        return Decision::Stale(StaleServe::WhileRevalidate);
    }
    match demand.only_if_cached {
        true => Decision::Unavailable,
        false => Decision::Revalidate,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::cache_control::CacheDirectives;
    use crate::test_support::headers;

    fn demand(cache_control: &str) -> ClientDemand {
        ClientDemand::of(&CacheDirectives::of_request(&headers(&[(
            "cache-control",
            cache_control,
        )])))
    }

    /// A response stored `lifetime` seconds fresh, now `age` seconds old.
    fn stored(age: u64, lifetime: u64) -> StoredFacts {
        StoredFacts {
            age: Duration::from_secs(age),
            lifetime: Duration::from_secs(lifetime),
            soft_purged: false,
            no_cache: false,
            forbids_stale: false,
            stale_while_revalidate: None,
        }
    }

    #[test]
    fn the_decision_table() {
        use Decision::*;
        use StaleServe::*;
        let swr = |age, lifetime, window| StoredFacts {
            stale_while_revalidate: Some(Duration::from_secs(window)),
            ..stored(age, lifetime)
        };
        let cases: &[(&str, &str, Option<StoredFacts>, Decision)] = &[
            ("nothing stored", "", None, Miss),
            (
                "nothing stored, only-if-cached",
                "only-if-cached",
                None,
                Unavailable,
            ),
            ("fresh", "", Some(stored(10, 60)), Fresh),
            ("just stale", "", Some(stored(60, 60)), Revalidate),
            (
                "soft-purged",
                "",
                Some(StoredFacts {
                    soft_purged: true,
                    ..stored(10, 60)
                }),
                Revalidate,
            ),
            (
                "no-cache stored",
                "",
                Some(StoredFacts {
                    no_cache: true,
                    ..stored(10, 60)
                }),
                Revalidate,
            ),
            (
                "client no-cache",
                "no-cache",
                Some(stored(10, 60)),
                Revalidate,
            ),
            (
                "client max-age passed",
                "max-age=5",
                Some(stored(10, 60)),
                Revalidate,
            ),
            (
                "client max-age kept",
                "max-age=30",
                Some(stored(10, 60)),
                Fresh,
            ),
            (
                "min-fresh unmet",
                "min-fresh=55",
                Some(stored(10, 60)),
                Revalidate,
            ),
            ("min-fresh met", "min-fresh=50", Some(stored(10, 60)), Fresh),
            (
                "max-stale within",
                "max-stale=30",
                Some(stored(80, 60)),
                Stale(MaxStale),
            ),
            (
                "max-stale past",
                "max-stale=10",
                Some(stored(80, 60)),
                Revalidate,
            ),
            (
                "max-stale unbounded",
                "max-stale",
                Some(stored(9999, 60)),
                Stale(MaxStale),
            ),
            (
                "max-stale, must-revalidate",
                "max-stale",
                Some(StoredFacts {
                    forbids_stale: true,
                    ..stored(80, 60)
                }),
                Revalidate,
            ),
            (
                "in stale-while-revalidate",
                "",
                Some(swr(80, 60, 30)),
                Stale(WhileRevalidate),
            ),
            (
                "past stale-while-revalidate",
                "",
                Some(swr(90, 60, 30)),
                Revalidate,
            ),
            (
                "stale-while-revalidate, client no-cache",
                "no-cache",
                Some(swr(80, 60, 30)),
                Revalidate,
            ),
            (
                "stale-while-revalidate, soft-purged",
                "",
                Some(StoredFacts {
                    soft_purged: true,
                    ..swr(80, 60, 30)
                }),
                Revalidate,
            ),
            (
                "stale, only-if-cached",
                "only-if-cached",
                Some(stored(80, 60)),
                Unavailable,
            ),
            (
                "fresh, only-if-cached",
                "only-if-cached",
                Some(stored(10, 60)),
                Fresh,
            ),
        ];
        for (case, cache_control, facts, expected) in cases {
            assert_eq!(
                decide(&demand(cache_control), facts.as_ref()),
                *expected,
                "{case}"
            );
        }
    }

    #[test]
    fn ttl_counts_whole_seconds_and_goes_negative_once_stale() {
        assert_eq!(stored(10, 60).ttl(), 50);
        assert_eq!(stored(80, 60).ttl(), -20);
        assert_eq!(
            ttl(Duration::from_millis(60_900), Duration::from_millis(10_100)),
            50
        );
    }
}
