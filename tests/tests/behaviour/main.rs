//! What the edge does with HTTP, through the real compiled component in
//! edge-host over real sockets, with wiremock or the real origin behind it:
//! one binary (it links wasmtime once), one file per topic.
//!
//! | module | what it proves |
//! |---|---|
//! | `proxy` | the reverse proxy without caching: status, fields, bodies, timeouts, the allow-list |
//! | `caching` | hits, misses, revalidation, stale serves, `Vary`, rules, bypass; every `fetch_with` checked against the explainer's prediction |
//! | `compression` | text compressed once at fill, each client given the coding it accepts or the original; what must not be compressed left alone |
//! | `conformance` | RFC 9110/9111 duties: what a fill forwards, `Age`, unsafe methods, `private`/`no-cache` |
//! | `explain` | the decision explainer: from miss to hit to purged, why a page is not cached and what would change it, its authentication |
//! | `field_semantics` | `CDN-Cache-Control`, end-to-end fields kept, HTTP-dates, interim responses |
//! | `purge` | the purge API: each kind of purge, refused purges |
//! | `hosts` | served hosts: aliases share entries and purges, other hosts get `421` |
//! | `browser_and_tags` | browsers' lifetime on hits (`browser_freshness`, `browser_max_age`); purges by `Cache-Tag` and `xkey` |
//! | `poisoning` | attacks on the shared cache from one client |
//! | `large_content` | bodies of any size streamed both ways in bounded memory; a body that breaks off aborts |
//! | `fallback` | a failing store or origin, grace, the breaker, the concurrency cap, a backup origin |
//! | `backup_origin` | the backup origin through the shipped manifests |
//! | `origin_e2e` | the real origin in-process, with `make up`'s rules |
//! | `origin_restart` | the real origin process killed and restarted |

mod backup_origin;
mod browser_and_tags;
mod caching;
mod compression;
mod conformance;
mod explain;
mod fallback;
mod field_semantics;
mod hosts;
mod large_content;
mod native_hits;
mod origin_e2e;
mod origin_restart;
mod poisoning;
mod proxy;
mod purge;
