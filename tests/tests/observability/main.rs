//! What an operator sees: metrics, the access log and the status page,
//! through the real compiled component in edge-host.
//!
//! edge-host's metrics and access log belong to the process (the first
//! `metrics::install` and `access_log::open` win), and these tests assert
//! exact counters: each starts with [`edge_tests::ran_in_own_process`], so
//! that it runs alone in a process of its own while the three share one
//! binary (it links wasmtime once).
//!
//! | module | what it proves |
//! |---|---|
//! | `metrics` | exact counters for known traffic, promtool, the dashboard, the access log |
//! | `metrics_failures` | instance failures by cause, shed connections |
//! | `replay` | a recorded access log replayed with the same rules predicts its hit ratio; candidate rules' changes named, deterministically |
//! | `status_page` | the live status page in a real headless Chromium |
//! | `cdn_down` | the edge's health check; origin pages' assets from the origin when the edge is stopped, in Chromium |

mod cdn_down;
mod metrics;
mod metrics_failures;
mod replay;
mod status_page;
