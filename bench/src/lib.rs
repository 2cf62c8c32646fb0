//! The benchmark harness behind `make bench` (driven by `bench/run`): the
//! native servers, a small HTTP client for the purge scenario, and the
//! report. Everything that is not I/O is a pure function with tests.

pub mod burst;
pub mod client;
pub mod large;
pub mod plot;
pub mod purge;
pub mod query;
pub mod report;
pub mod results;
pub mod serve;
pub mod servers;
pub mod stats;
pub mod zipf;
