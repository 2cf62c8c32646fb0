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
//! - `failure_log`: a failure's detail in the log: a headline, then a line per backtrace frame, all under the error id.
//! - [`reloads`]: what the latest reload (SIGHUP) did with each part of the configuration.
//! - [`rules`]: the cache rules as edge-host last checked them (good or broken, hash, when read).
//! - [`status_page`]: the metrics listener: `/metrics`, `/status.json` and the live status page.

pub mod access_log;
pub mod cache_outcome;
pub(crate) mod failure_log;
pub mod instances;
pub mod metrics;
pub mod process;
pub mod reloads;
pub(crate) mod request_record;
pub mod rules;
pub mod status_page;
