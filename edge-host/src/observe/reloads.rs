//! What the latest reload (SIGHUP) did with each part of the
//! configuration: the certificates, the variables, the runtime config,
//! the rules. A part whose new version is invalid keeps serving with the
//! old one; this is where an operator sees that it did (the status page,
//! `/status.json`), beside the log line.

use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// The outcome of reloading one part.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReloadStatus {
    /// Which part: `tls`, `variables`, `runtime-config`, `rules`.
    pub part: String,
    /// Whether the new version was taken.
    pub applied: bool,
    /// What was taken (a short summary), or why the new version was
    /// refused and the old one kept.
    pub message: String,
    /// When, in seconds since the Unix epoch.
    pub at: u64,
}

static LATEST: Mutex<Vec<ReloadStatus>> = Mutex::new(Vec::new());

/// Records the outcome of reloading `part`: `Ok(summary)` when the new
/// version is serving, `Err(reason)` when the old one is kept. Replaces
/// the part's previous record.
pub fn record(part: &str, outcome: Result<String, String>) {
    let (applied, message) = match outcome {
        Ok(summary) => (true, summary),
        Err(reason) => (false, reason),
    };
    let at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut latest = LATEST.lock().unwrap_or_else(|p| p.into_inner());
    latest.retain(|status| status.part != part);
    latest.push(ReloadStatus {
        part: part.to_owned(),
        applied,
        message,
        at,
    });
}

/// The latest outcome of each part reloaded since start, in the order
/// they were last reloaded.
pub fn latest() -> Vec<ReloadStatus> {
    LATEST.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_part_keeps_only_its_latest_outcome() {
        record("unit-test-part", Err("bad certificate".into()));
        record("unit-test-part", Ok("2 certificates".into()));
        let mine: Vec<_> = latest()
            .into_iter()
            .filter(|s| s.part == "unit-test-part")
            .collect();
        assert_eq!(mine.len(), 1);
        assert!(mine[0].applied);
        assert_eq!(mine[0].message, "2 certificates");
    }
}
