//! What an accept loop does when `accept` fails.
//!
//! Most failures belong to one connection (the client reset it before it
//! was accepted) and the next accept is fine. Others are the process
//! running out of something, above all file descriptors (`EMFILE`): then
//! every accept fails at once, and a loop that simply retries spins a core
//! and, logging each failure, filled the disk at 100–250 MB/s. So a
//! resource failure pauses the loop (10 ms, doubling to 1 s while they go
//! on), and failures are logged at most once per [`LOG_INTERVAL`] with how
//! many there were.

use std::io;
use std::time::{Duration, Instant};

/// At most one log line per this long per listener.
pub const LOG_INTERVAL: Duration = Duration::from_secs(5);

const FIRST_PAUSE: Duration = Duration::from_millis(10);
const MAX_PAUSE: Duration = Duration::from_secs(1);

/// Events of one kind logged at most once per [`LOG_INTERVAL`], each line
/// saying how many there were.
#[derive(Debug, Default)]
pub(crate) struct LogThrottle {
    unlogged: u64,
    logged_at: Option<Instant>,
}

impl LogThrottle {
    /// Counts an event at `now`; when a line is due, how many events it
    /// reports (this one and those not logged before it).
    pub(crate) fn due(&mut self, now: Instant) -> Option<u64> {
        self.unlogged += 1;
        let due = self
            .logged_at
            .is_none_or(|at| now.duration_since(at) >= LOG_INTERVAL);
        due.then(|| {
            self.logged_at = Some(now);
            std::mem::take(&mut self.unlogged)
        })
    }
}

/// One accept loop's failures.
#[derive(Debug)]
pub(crate) struct AcceptFailures {
    /// The listener, as log lines name it.
    listener: &'static str,
    /// Resource failures in a row (the pause doubles with each).
    streak: u32,
    log: LogThrottle,
}

/// What to do about one failed accept.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Verdict {
    /// How long to wait before accepting again.
    pub(crate) pause: Duration,
    /// A line to log, when one is due.
    pub(crate) log: Option<String>,
}

impl AcceptFailures {
    pub(crate) fn new(listener: &'static str) -> Self {
        AcceptFailures {
            listener,
            streak: 0,
            log: LogThrottle::default(),
        }
    }

    /// An accept succeeded: the next resource failure pauses briefly again.
    pub(crate) fn succeeded(&mut self) {
        self.streak = 0;
    }

    /// Records a failed accept at `now`.
    pub(crate) fn failed(&mut self, error: &io::Error, now: Instant) -> Verdict {
        let pause = if concerns_one_connection(error) {
            Duration::ZERO
        } else {
            let pause = FIRST_PAUSE
                .saturating_mul(1 << self.streak.min(16))
                .min(MAX_PAUSE);
            self.streak = self.streak.saturating_add(1);
            pause
        };
        let log = self.log.due(now).map(|count| {
            let times = match count {
                1 => String::new(),
                n => format!(" ({n} failures since the last report)"),
            };
            match pause.is_zero() {
                true => format!("{}: accept failed: {error}{times}", self.listener),
                false => format!(
                    "{}: accept failed: {error}{times}; pausing accepts for {} ms",
                    self.listener,
                    pause.as_millis()
                ),
            }
        });
        Verdict { pause, log }
    }

    /// Records a failed accept, logs what is due, and waits the pause.
    pub(crate) async fn handle(&mut self, error: &io::Error) {
        let verdict = self.failed(error, Instant::now());
        if let Some(line) = verdict.log {
            tracing::warn!("{line}");
        }
        if !verdict.pause.is_zero() {
            tokio::time::sleep(verdict.pause).await;
        }
    }
}

/// Whether `error` is about the one connection being accepted, rather than
/// the process or the listener.
fn concerns_one_connection(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn too_many_open_files() -> io::Error {
        io::Error::from_raw_os_error(24)
    }

    #[test]
    fn descriptor_exhaustion_pauses_longer_each_time_and_logs_once_per_interval() {
        let mut failures = AcceptFailures::new("metrics listener");
        let t0 = Instant::now();
        let pauses: Vec<_> = (0..10)
            .map(|i| failures.failed(&too_many_open_files(), t0 + Duration::from_millis(i)))
            .collect();
        assert_eq!(
            pauses
                .iter()
                .map(|v| v.pause.as_millis())
                .collect::<Vec<_>>(),
            [10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000]
        );
        let lines: Vec<_> = pauses.iter().filter_map(|v| v.log.as_deref()).collect();
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0].starts_with("metrics listener: accept failed: Too many open files"),
            "{}",
            lines[0]
        );
        // The next line, an interval later, counts what was not logged.
        let later = failures.failed(&too_many_open_files(), t0 + LOG_INTERVAL);
        let line = later.log.expect("a line is due");
        assert!(
            line.contains("(10 failures since the last report)"),
            "{line}"
        );
        // A success resets the pause, not the log interval.
        failures.succeeded();
        let after = failures.failed(&too_many_open_files(), t0 + LOG_INTERVAL);
        assert_eq!(after.pause, FIRST_PAUSE);
        assert_eq!(after.log, None);
    }

    #[test]
    fn a_failure_of_one_connection_does_not_pause_accepting() {
        let mut failures = AcceptFailures::new("listener");
        let reset = io::Error::from(io::ErrorKind::ConnectionAborted);
        let verdict = failures.failed(&reset, Instant::now());
        assert_eq!(verdict.pause, Duration::ZERO);
        assert!(verdict.log.is_some());
    }
}
