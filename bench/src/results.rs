//! The raw results file: one JSON record per line, appended by `bench/run`
//! (load runs, from wrk's `done()` hook) and by `bench-client purge`.

use serde::{Deserialize, Serialize};

/// What wrk measured in one run (printed by bench/wrk/bench.lua).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WrkSummary {
    pub requests: u64,
    pub duration_us: u64,
    pub bytes: u64,
    /// Connect, read, write and timeout errors.
    pub errors: u64,
    /// Responses with a status outside 2xx/3xx.
    pub non2xx: u64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
    pub mean_us: f64,
}

impl WrkSummary {
    pub fn requests_per_second(&self) -> f64 {
        if self.duration_us == 0 {
            0.0
        } else {
            self.requests as f64 / (self.duration_us as f64 / 1e6)
        }
    }

    /// Bytes read per second, in MiB/s (wrk counts heads too; the large
    /// scenarios' client counts body bytes only).
    pub fn mib_per_second(&self) -> f64 {
        if self.duration_us == 0 {
            0.0
        } else {
            self.bytes as f64 / (1 << 20) as f64 / (self.duration_us as f64 / 1e6)
        }
    }
}

/// One timed run of one contestant in one scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadRun {
    pub scenario: String,
    pub contestant: String,
    pub round: u32,
    /// Requests the origin served during the run (absent where no origin is
    /// involved, e.g. the ceiling).
    pub origin_requests: Option<u64>,
    pub wrk: WrkSummary,
}

impl LoadRun {
    /// The share of client requests that did not reach the origin.
    pub fn hit_ratio(&self) -> Option<f64> {
        let origin = self.origin_requests? as f64;
        let requests = self.wrk.requests as f64;
        (requests > 0.0).then(|| (1.0 - origin / requests).clamp(0.0, 1.0))
    }
}

/// One purge measurement: `objects` cached objects share one tag, the first
/// `small` of them a second tag; the small tag is purged first, then the big.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PurgeRun {
    pub contestant: String,
    pub round: u32,
    pub objects: u64,
    pub small: u64,
    pub fill_seconds: f64,
    pub fill_errors: u64,
    /// A lookup of a purgeable object before any purge (a hit).
    pub hit_before_us: f64,
    pub hit_before_from_origin: bool,
    pub purge_small_us: f64,
    /// The first lookup of an object the small purge covered.
    pub after_small_us: f64,
    pub after_small_from_origin: bool,
    /// A lookup of an object outside the small tag, after the small purge.
    pub other_after_small_us: f64,
    pub other_after_small_from_origin: bool,
    pub purge_big_us: f64,
    /// The first lookup of an object only the big purge covered.
    pub after_big_us: f64,
    pub after_big_from_origin: bool,
}

impl PurgeRun {
    /// Every lookup went where a correct purge sends it.
    pub fn verified(&self) -> bool {
        !self.hit_before_from_origin
            && self.after_small_from_origin
            && !self.other_after_small_from_origin
            && self.after_big_from_origin
            && self.fill_errors == 0
    }
}

/// One timed GET of a large object (the cold scenario): a fresh URL, so
/// the contestant fetches it from the origin while it answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FetchRun {
    pub scenario: String,
    pub contestant: String,
    pub round: u32,
    /// Requests the origin served meanwhile (nginx's slices are several).
    pub origin_requests: Option<u64>,
    pub status: u16,
    /// Body bytes received.
    pub bytes: u64,
    /// From the request to the answer's first byte.
    pub first_byte_us: f64,
    /// From the request to the body's last byte.
    pub last_byte_us: f64,
}

impl FetchRun {
    /// Body bytes per second from the request to the last byte, in MiB/s.
    pub fn mib_per_second(&self) -> f64 {
        if self.last_byte_us <= 0.0 {
            0.0
        } else {
            self.bytes as f64 / (1 << 20) as f64 / (self.last_byte_us / 1e6)
        }
    }
}

/// One replay check (issue 28): a scenario's stream through a fresh edge
/// writing a JSON access log, then `edge-host replay` of that log with the
/// same rules and store size; the hit ratio the log recorded beside the one
/// the replay predicted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplayRun {
    /// The scenario whose stream was logged (`zipf`).
    pub scenario: String,
    /// Requests replayed.
    pub requests: u64,
    /// The store size the edge and the replay were given.
    pub capacity_bytes: u64,
    pub recorded_hit_ratio: f64,
    pub predicted_hit_ratio: f64,
}

impl ReplayRun {
    /// Predicted minus recorded hit ratio, in percentage points.
    pub fn points(&self) -> f64 {
        (self.predicted_hit_ratio - self.recorded_hit_ratio) * 100.0
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Record {
    Load(LoadRun),
    Purge(PurgeRun),
    Fetch(FetchRun),
    Replay(ReplayRun),
}

/// Parses a results file; blank lines are skipped, a bad line is an error
/// naming its line number.
pub fn parse(text: &str) -> Result<Vec<Record>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| serde_json::from_str(line).map_err(|e| format!("line {}: {e}", i + 1)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOAD: &str = r#"{"kind":"load","scenario":"hot-1k","contestant":"edge","round":2,"origin_requests":10,"wrk":{"requests":1000,"duration_us":2000000,"bytes":1,"errors":0,"non2xx":0,"p50_us":100.5,"p90_us":200.0,"p99_us":300.0,"max_us":400.0,"mean_us":120.0}}"#;

    #[test]
    fn parses_load_records_from_the_driver() {
        let records = parse(&format!("{LOAD}\n\n")).unwrap();
        let [Record::Load(run)] = &records[..] else {
            panic!("{records:?}")
        };
        assert_eq!(run.round, 2);
        assert_eq!(run.wrk.requests_per_second(), 500.0);
        assert_eq!(run.hit_ratio(), Some(0.99));
    }

    #[test]
    fn hit_ratio_needs_an_origin_count_and_requests() {
        let mut run = match &parse(LOAD).unwrap()[0] {
            Record::Load(run) => run.clone(),
            other => panic!("{other:?}"),
        };
        run.origin_requests = Some(5000);
        assert_eq!(run.hit_ratio(), Some(0.0));
        run.origin_requests = None;
        assert_eq!(run.hit_ratio(), None);
        run.origin_requests = Some(0);
        run.wrk.requests = 0;
        assert_eq!(run.hit_ratio(), None);
    }

    #[test]
    fn fetch_records_round_trip() {
        let run = FetchRun {
            scenario: "cold-1g".into(),
            contestant: "edge".into(),
            round: 1,
            origin_requests: Some(1),
            status: 200,
            bytes: 1 << 30,
            first_byte_us: 1000.0,
            last_byte_us: 2e6,
        };
        let line = serde_json::to_string(&Record::Fetch(run.clone())).unwrap();
        assert!(line.starts_with(r#"{"kind":"fetch""#), "{line}");
        assert_eq!(parse(&line).unwrap(), [Record::Fetch(run.clone())]);
        assert_eq!(run.mib_per_second(), 512.0);
    }

    #[test]
    fn replay_records_as_bench_run_writes_them() {
        let line = r#"{"kind":"replay","scenario":"zipf","requests":300000,"capacity_bytes":33554432,"recorded_hit_ratio":0.8640,"predicted_hit_ratio":0.8610}"#;
        let [Record::Replay(run)] = &parse(line).unwrap()[..] else {
            panic!("{line}")
        };
        assert_eq!(run.requests, 300_000);
        assert!((run.points() + 0.3).abs() < 1e-9, "{}", run.points());
    }

    #[test]
    fn bad_lines_are_named() {
        let err = parse(&format!("{LOAD}\n{{\"kind\":\"load\"}}\n")).unwrap_err();
        assert!(err.starts_with("line 2:"), "{err}");
    }

    #[test]
    fn purge_records_round_trip_and_verify() {
        let run = PurgeRun {
            contestant: "edge".into(),
            round: 1,
            objects: 100_000,
            small: 1000,
            fill_seconds: 10.0,
            fill_errors: 0,
            hit_before_us: 100.0,
            hit_before_from_origin: false,
            purge_small_us: 300.0,
            after_small_us: 900.0,
            after_small_from_origin: true,
            other_after_small_us: 100.0,
            other_after_small_from_origin: false,
            purge_big_us: 300.0,
            after_big_us: 900.0,
            after_big_from_origin: true,
        };
        let line = serde_json::to_string(&Record::Purge(run.clone())).unwrap();
        assert_eq!(parse(&line).unwrap(), [Record::Purge(run.clone())]);
        assert!(run.verified());
        let wrong = PurgeRun {
            other_after_small_from_origin: true,
            ..run
        };
        assert!(!wrong.verified());
    }
}
