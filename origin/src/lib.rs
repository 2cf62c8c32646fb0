//! The origin service: the system of record behind the edge.
//!
//! v0 serves the static assets under `fixtures/static` with the validators
//! and freshness headers a well-run origin sends, plus `GET /health`.

pub mod server;
pub mod static_files;
