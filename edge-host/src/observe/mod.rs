//! Seeing what the edge does: the Prometheus metrics, each request's record
//! and access log line, failures in the log, and the status page. A leaf:
//! what is counted is handed to it (instance counters, a failure's cause),
//! it imports nothing from the application or the server.
//!
//! - [`metrics`]: the Prometheus metrics and the hooks that count them.
//! - [`process`]: the process's own metrics (`process_*`, from `/proc`) and `edge_build_info`.
//! - [`instances`]: what component instances have done: the counters their executors keep.
//! - [`cache_outcome`]: what the cache did with a request, read from its `Cache-Status`.
//! - `request_record`: each request's metrics and access log line, written when its response ends.
//! - [`access_log`]: the access log (`--access-log`, text or JSON), written off the request path.
//! - [`latency`]: p50 and p99 of hits and misses over the last minute, from the duration histogram's buckets.
//! - `failure_log`: a failure's detail in the log: a headline, then a line per backtrace frame, all under the error id.
//! - [`purges`]: the last purges accepted (id, targets, time), for the status page.
//! - [`reloads`]: what the latest reload (SIGHUP) did with each part of the configuration.
//! - [`rules`]: the cache rules as edge-host last checked them (good or broken, hash, when read).
//! - [`store_sizes`]: how full each key-value store is (`edge_store_entries`, `_bytes`, `_capacity_bytes`, `_evictions_total`), read at scrape.
//! - [`status_page`]: the metrics listener: `/metrics`, `/status.json` and the live status page.

pub mod access_log;
pub mod cache_outcome;
pub(crate) mod failure_log;
pub mod instances;
pub mod latency;
pub mod metrics;
pub mod process;
pub mod purges;
pub mod reloads;
pub(crate) mod request_record;
pub mod rules;
pub mod status_page;
pub mod store_sizes;
