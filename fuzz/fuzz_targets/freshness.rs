//! Freshness and storability of an origin response from arbitrary header
//! maps (`CDN-Cache-Control` > `Surrogate-Control` > `Cache-Control`,
//! `Expires`, `Date`, `Age`, `Last-Modified`, `Vary`, `Set-Cookie`).
//!
//! Input: a parameter line (`status=404 ttl=30 default=10 heuristic
//! immutable auth store_set_cookie delay=2 later=30`), then the response's
//! header block.
#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use edge_cache::fuzzing::cache_control::DELTA_SECONDS_MAX;
use edge_cache::fuzzing::freshness::{
    EffectiveControl, IMMUTABLE_LIFETIME, LifetimeSource, corrected_initial_age, current_age,
    freshness_lifetime,
};
use edge_cache::fuzzing::rules::Rule;
use edge_cache::fuzzing::storability::{Candidate, check_storable};
use edge_fuzz::{first_line, flag, header_block, param_u64, params};
use libfuzzer_sys::fuzz_target;

const T0: u64 = 1_700_000_000;

fuzz_target!(|data: &[u8]| {
    let (line, rest) = first_line(data);
    let p = params(line);
    let status = param_u64(&p, "status").map_or(200, |s| s.min(999) as u16);
    let rule = Rule {
        // Rule lifetimes come from the operator's rules file; keep them in
        // the range a rule would sensibly give (up to ~136 years).
        ttl_seconds: param_u64(&p, "ttl").map(|s| s % (1 << 32)),
        default_ttl_seconds: param_u64(&p, "default").map(|s| s % (1 << 32)),
        heuristic: flag(&p, "heuristic"),
        store_set_cookie: flag(&p, "store_set_cookie"),
        ..Default::default()
    };
    let immutable = flag(&p, "immutable");
    let response_time = UNIX_EPOCH + Duration::from_secs(T0);
    let request_time =
        response_time - Duration::from_secs(param_u64(&p, "delay").unwrap_or(0) % 3600);
    let now = response_time
        + Duration::from_secs(param_u64(&p, "later").unwrap_or(0) % (400 * 86400 * 365));
    let headers = header_block(rest);

    let control = EffectiveControl::of(&headers);
    let _ = control.forbids_stale();
    for w in [control.stale_while_revalidate(), control.stale_if_error()]
        .into_iter()
        .flatten()
    {
        assert!(w.as_secs() <= DELTA_SECONDS_MAX);
    }

    let lifetime = freshness_lifetime(
        status,
        &headers,
        &control,
        &rule.freshness(immutable),
        response_time,
    );
    if let Some((d, source)) = lifetime {
        // The flow reports `ttl` as whole seconds in an i64.
        assert!(i64::try_from(d.as_secs()).is_ok());
        match source {
            LifetimeSource::SMaxAge | LifetimeSource::MaxAge => {
                assert!(d.as_secs() <= DELTA_SECONDS_MAX)
            }
            LifetimeSource::Invalid => assert_eq!(d, Duration::ZERO),
            LifetimeSource::Immutable => assert!(d >= IMMUTABLE_LIFETIME),
            LifetimeSource::Heuristic => assert!(d <= Duration::from_secs(86400)),
            // Rule lifetimes are capped like delta-seconds (RFC 9111 §1.2.2).
            LifetimeSource::RuleOverride => assert_eq!(
                Some(d.as_secs()),
                rule.ttl_seconds.map(|t| t.min(DELTA_SECONDS_MAX))
            ),
            LifetimeSource::RuleDefault => assert_eq!(
                Some(d.as_secs()),
                rule.default_ttl_seconds.map(|t| t.min(DELTA_SECONDS_MAX))
            ),
            LifetimeSource::Expires => {}
        }
        // A server error lives only as long as the origin says.
        if status >= 500 {
            assert!(
                !matches!(
                    source,
                    LifetimeSource::RuleOverride
                        | LifetimeSource::Immutable
                        | LifetimeSource::Heuristic
                        | LifetimeSource::RuleDefault
                ),
                "{status} given a lifetime by {source:?}"
            );
        }
    }

    let initial_age = corrected_initial_age(&headers, request_time, response_time);
    assert!(initial_age >= response_time.duration_since(request_time).unwrap());
    assert!(i64::try_from(initial_age.as_secs()).is_ok());
    let age = current_age(initial_age, response_time, now);
    assert!(age >= initial_age);
    // What the flow stores and reads back: milliseconds in a u64.
    let _ = u64::try_from(initial_age.as_millis()).expect("initial age fits in ms");

    let candidate = Candidate {
        status,
        headers: &headers,
        control: &control,
        has_lifetime: lifetime.is_some(),
        body_len: param_u64(&p, "len").unwrap_or(0),
        max_object_bytes: rule
            .max_object_bytes
            .unwrap_or(edge_cache::fuzzing::rules::DEFAULT_MAX_OBJECT_BYTES),
    };
    if check_storable(flag(&p, "auth"), &candidate, &rule).is_ok() {
        assert!((200..600).contains(&status) && status != 206 && status != 304);
        // `private="a"` shares the response without field `a`; only a bare
        // `private` keeps it out of the cache.
        assert!(!control.directives.has_unqualified("private"));
        assert!(headers.get("set-cookie").is_none() || rule.store_set_cookie);
    }
});
