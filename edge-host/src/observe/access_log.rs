//! The access log: one line per request (`--access-log`, `--log-format`),
//! written off the request path.
//!
//! A request formats its line and hands it to a bounded channel; a writer
//! thread wakes every [`WRITE_INTERVAL`], drains the channel into a
//! buffered file and flushes it, so lines reach the disk at most that late
//! and a busy second costs tens of `write`s, not one per request. The
//! writer is never woken by a request: a sleeping receiver would make
//! every send a futex wake-up (measured at about 10 µs of the request's
//! time, against 0.3 µs for the metrics alone). A request never waits for
//! the disk either: when the channel is full the line is dropped and
//! counted (`edge_access_log_dropped_total`) rather than slowing the hot
//! path down to the disk's pace.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::sync::OnceLock;
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError, sync_channel};
use std::time::{Duration, SystemTime};

/// Lines that may wait for the writer; past that they are dropped (room
/// for 320,000 requests a second at [`WRITE_INTERVAL`]).
const QUEUE_LINES: usize = 16 * 1024;

/// How often the writer thread writes out what is queued.
pub const WRITE_INTERVAL: Duration = Duration::from_millis(50);

/// How the lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// `time method host path protocol status outcome bytes duration origin "cache-status"`.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Where and how the access log is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLogOptions {
    /// A file to append to, or `-` for standard output.
    pub path: std::path::PathBuf,
    /// The line format.
    pub format: LogFormat,
    /// Whether lines carry the query string (it can hold personal data).
    pub query: bool,
    /// The opt-in fields lines carry.
    pub fields: LogFields,
}

/// The fields a line carries only when asked (each can identify a person).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogFields {
    /// The client's address (after `trusted_proxy_hops`).
    pub client: bool,
    /// `User-Agent`.
    pub user_agent: bool,
    /// `Referer`.
    pub referrer: bool,
}

/// The process's access log, once [`open`]ed.
pub struct AccessLog {
    format: LogFormat,
    query: bool,
    fields: LogFields,
    lines: SyncSender<Queued>,
}

/// What the writer thread is sent.
enum Queued {
    Line(Vec<u8>),
    /// Write out everything before this, then say so.
    Flush(SyncSender<()>),
}

/// How long [`flush`] waits for the writer.
const FLUSH_PATIENCE: Duration = Duration::from_secs(2);

/// Writes out every line queued so far (at shutdown: the process is about
/// to exit with lines still in the queue); waits at most two seconds.
pub fn flush() {
    let Some(log) = get() else { return };
    let (done, flushed) = sync_channel(1);
    if log.lines.send(Queued::Flush(done)).is_ok() {
        let _ = flushed.recv_timeout(FLUSH_PATIENCE);
    }
}

static ACCESS_LOG: OnceLock<AccessLog> = OnceLock::new();

/// The access log, if one is open.
pub fn get() -> Option<&'static AccessLog> {
    ACCESS_LOG.get()
}

/// Opens the access log and starts its writer thread; a second call keeps
/// the first log.
pub fn open(options: &AccessLogOptions) -> std::io::Result<()> {
    let out: Box<dyn Write + Send> = if options.path == Path::new("-") {
        Box::new(std::io::stdout())
    } else {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&options.path)
            .map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!("cannot open access log {}: {e}", options.path.display()),
                )
            })?;
        Box::new(file)
    };
    let mut log = AccessLog::start(out, options.format, options.query, QUEUE_LINES)?;
    log.fields = options.fields;
    let _ = ACCESS_LOG.set(log);
    Ok(())
}

fn write_lines(queue: Receiver<Queued>, out: Box<dyn Write + Send>) {
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, out);
    let mut flushed = Vec::new();
    loop {
        std::thread::sleep(WRITE_INTERVAL);
        let mut written = Ok(());
        let mut open = true;
        while written.is_ok() {
            match queue.try_recv() {
                Ok(Queued::Line(line)) => written = out.write_all(&line),
                Ok(Queued::Flush(done)) => flushed.push(done),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    open = false;
                    break;
                }
            }
        }
        if let Err(error) = written.and_then(|()| out.flush()) {
            // The log is lost, not the service: say so once and stop.
            tracing::error!("access log: write failed, no more lines will be written: {error}");
            return;
        }
        for done in flushed.drain(..) {
            let _ = done.try_send(());
        }
        if !open {
            return;
        }
    }
}

/// What one line says.
#[derive(Debug, serde::Serialize)]
pub struct Entry<'a> {
    /// When the request arrived (RFC 3339, UTC, milliseconds).
    pub time: String,
    pub method: &'a str,
    pub host: &'a str,
    pub path: &'a str,
    /// Only with `--access-log-query`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query: Option<&'a str>,
    /// The HTTP version the client spoke: `HTTP/1.1`, `HTTP/2`.
    pub protocol: &'static str,
    pub status: u16,
    /// The component's `Cache-Status`, as sent.
    pub cache_status: &'a str,
    /// What the host read from it.
    pub outcome: &'static str,
    /// Response body bytes sent.
    pub bytes: u64,
    /// From arrival to the end of the response body.
    pub duration_ms: f64,
    /// How long the origin took, when it answered this request (from the
    /// component's `Server-Timing: origin;dur=…`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin_ms: Option<f64>,
    /// The component that answered (empty for the host's own answers).
    pub component: &'a str,
    /// The client's address, with `--access-log-client`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<&'a str>,
    /// `User-Agent`, with `--access-log-user-agent`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<&'a str>,
    /// `Referer`, with `--access-log-referrer`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub referrer: Option<&'a str>,
    /// The error id of a failed request (as its answer and its log entry
    /// give it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_id: Option<&'a str>,
}

impl AccessLog {
    /// A log writing to `out` from its own thread, `queue` lines at most
    /// waiting for it.
    fn start(
        out: Box<dyn Write + Send>,
        format: LogFormat,
        query: bool,
        queue: usize,
    ) -> std::io::Result<AccessLog> {
        let (lines, pending) = sync_channel(queue);
        std::thread::Builder::new()
            .name("access-log".to_owned())
            .spawn(move || write_lines(pending, out))?;
        Ok(AccessLog {
            format,
            query,
            fields: LogFields::default(),
            lines,
        })
    }

    /// Whether lines carry the query.
    pub fn with_query(&self) -> bool {
        self.query
    }

    /// The opt-in fields lines carry.
    pub fn fields(&self) -> LogFields {
        self.fields
    }

    /// Queues one line; never blocks. False if it was dropped.
    pub fn write(&self, entry: &Entry<'_>) -> bool {
        let mut line = match self.format {
            LogFormat::Json => serde_json::to_vec(entry).unwrap_or_default(),
            LogFormat::Text => text_line(entry).into_bytes(),
        };
        line.push(b'\n');
        match self.lines.try_send(Queued::Line(line)) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                if let Some(metrics) = crate::observe::metrics::get() {
                    metrics.access_log_dropped();
                }
                false
            }
        }
    }
}

/// One text line: space-separated fields, the cache status last, quoted;
/// method, path and protocol in the order of a request line, as nginx's
/// `$request` has them.
///
/// Method, host, path and query come from the client: each is escaped
/// ([`escaped`]), so none can add a field or a line, and a reader that
/// splits on spaces sees the fields the edge wrote (a `Host` of
/// `shop.example path=/admin status=200` would otherwise read as three).
fn text_line(entry: &Entry<'_>) -> String {
    let query = entry
        .query
        .map(|q| format!("?{}", escaped(q, false)))
        .unwrap_or_default();
    let mut extra = String::new();
    if let Some(client) = entry.client {
        extra.push_str(&format!(" client={}", escaped(client, false)));
    }
    if let Some(agent) = entry.user_agent {
        extra.push_str(&format!(" agent=\"{}\"", escaped(agent, true)));
    }
    if let Some(referrer) = entry.referrer {
        extra.push_str(&format!(" referrer=\"{}\"", escaped(referrer, true)));
    }
    if let Some(id) = entry.error_id {
        extra.push_str(&format!(" error={}", escaped(id, false)));
    }
    format!(
        "{} {} {} {}{} {} {} {} {} {:.3}ms {} \"{}\"{extra}",
        entry.time,
        escaped(entry.method, false),
        escaped(entry.host, false),
        escaped(entry.path, false),
        query,
        entry.protocol,
        entry.status,
        entry.outcome,
        entry.bytes,
        entry.duration_ms,
        entry
            .origin_ms
            .map_or_else(|| "origin=-".to_owned(), |ms| format!("origin={ms:.3}ms")),
        escaped(&entry.cache_status.replace('"', "'"), true),
    )
}

/// `text` with every byte that could end or split a field written as
/// `\xHH`, as nginx's `escape=default` does: `"`, `\`, control bytes,
/// bytes outside ASCII, and, unless the field is `quoted`, the space.
fn escaped(text: &str, quoted: bool) -> std::borrow::Cow<'_, str> {
    let plain = |b: u8| (b == b' ' && quoted) || (b.is_ascii_graphic() && b != b'"' && b != b'\\');
    if text.bytes().all(plain) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for byte in text.bytes() {
        if plain(byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("\\x{byte:02X}"));
        }
    }
    std::borrow::Cow::Owned(out)
}

/// `time` as RFC 3339 in UTC with milliseconds: `2026-12-01T17:04:05.123Z`.
pub fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_millis(time).to_string()
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;

    #[test]
    fn times_are_rfc_3339_utc() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let leap = UNIX_EPOCH + Duration::from_millis(951_782_400_123 + 3_661_000);
        assert_eq!(rfc3339(leap), "2000-02-29T01:01:01.123Z");
        let later = UNIX_EPOCH + Duration::from_secs(1_796_083_199);
        assert_eq!(rfc3339(later), "2026-11-30T23:59:59.000Z");
    }

    fn entry() -> Entry<'static> {
        Entry {
            time: "t".into(),
            method: "GET",
            host: "example.test",
            path: "/a",
            query: None,
            protocol: "HTTP/1.1",
            status: 200,
            cache_status: "edge-cache; hit; ttl=5",
            outcome: "hit",
            bytes: 5,
            duration_ms: 0.25,
            origin_ms: None,
            component: "edge",
            client: None,
            user_agent: None,
            referrer: None,
            error_id: None,
        }
    }

    /// A writer stuck until `release` says go (a full disk, a pipe
    /// nobody reads), then keeping what it was given.
    struct Stuck {
        release: std::sync::mpsc::Receiver<()>,
        written: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    }

    impl Write for Stuck {
        fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
            let _ = self.release.recv();
            self.written.lock().unwrap().extend_from_slice(data);
            Ok(data.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_stuck_writer_never_holds_up_a_request_and_what_was_queued_is_written() {
        let (go, release) = std::sync::mpsc::channel();
        let written = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let out = Stuck {
            release,
            written: written.clone(),
        };
        let log = AccessLog::start(Box::new(out), LogFormat::Json, false, 8).unwrap();
        let started = std::time::Instant::now();
        // The writer drains what is queued into its buffer and blocks
        // flushing it; 8 more lines wait in the queue; the rest are
        // dropped, and none of it waits.
        let queued = (0..1000).filter(|_| log.write(&entry())).count();
        let elapsed = started.elapsed();
        assert!((8..100).contains(&queued), "{queued} queued");
        assert!(
            elapsed < Duration::from_millis(500),
            "writes waited {elapsed:?}"
        );
        drop(log);
        // Released, the writer writes everything it had.
        for _ in 0..1000 {
            let _ = go.send(());
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let lines = written
                .lock()
                .unwrap()
                .iter()
                .filter(|b| **b == b'\n')
                .count();
            if lines == queued {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{lines} of {queued} lines written"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn client_fields_cannot_add_fields_or_lines_to_a_text_line() {
        let forged = Entry {
            method: "GET",
            host: "shop.example path=/admin/x status=200 hit",
            path: "/a\"b\\c",
            query: Some("q=1 2\n3"),
            cache_status: "edge-cache; hit; detail=\"\u{7f}\u{e9}\"",
            ..entry()
        };
        let line = text_line(&forged);
        assert_eq!(
            line,
            "t GET shop.example\\x20path=/admin/x\\x20status=200\\x20hit /a\\x22b\\x5Cc?q=1\\x202\\x0A3 \
             HTTP/1.1 200 hit 5 0.250ms origin=- \"edge-cache; hit; detail='\\x7F\\xC3\\xA9'\""
        );
        let before_quote = line.split('"').next().unwrap();
        assert_eq!(before_quote.split(' ').count(), 11, "{line}");
        // Plain fields are written as they are.
        assert_eq!(escaped("example.test", false), "example.test");
        assert!(matches!(
            escaped("/a/b?c=d", false),
            std::borrow::Cow::Borrowed(_)
        ));
    }

    #[test]
    fn opt_in_fields_follow_the_cache_status_escaped_and_json_names_them() {
        let entry = Entry {
            client: Some("203.0.113.7"),
            user_agent: Some("Mozilla/5.0 (X11; \"Linux\")\nx"),
            referrer: Some("https://shop.example/a b"),
            error_id: Some("0f1e2d3c4b5a6978"),
            ..entry()
        };
        assert_eq!(
            text_line(&entry),
            "t GET example.test /a HTTP/1.1 200 hit 5 0.250ms origin=- \"edge-cache; hit; ttl=5\" \
             client=203.0.113.7 agent=\"Mozilla/5.0 (X11; \\x22Linux\\x22)\\x0Ax\" \
             referrer=\"https://shop.example/a b\" error=0f1e2d3c4b5a6978"
        );
        let json = serde_json::to_value(&entry).unwrap();
        assert_eq!(json["client"], "203.0.113.7");
        assert_eq!(json["error_id"], "0f1e2d3c4b5a6978");
        assert!(
            serde_json::to_value(self::entry())
                .unwrap()
                .get("client")
                .is_none()
        );
    }

    #[test]
    fn a_text_line_keeps_the_cache_status_in_one_field() {
        let entry = Entry {
            time: "t".into(),
            method: "GET",
            host: "example.test",
            path: "/a",
            query: Some("v=1"),
            protocol: "HTTP/2",
            status: 200,
            cache_status: "edge-cache; detail=\"x\"",
            outcome: "miss",
            bytes: 5,
            duration_ms: 1.25,
            origin_ms: Some(0.5),
            component: "edge",
            client: None,
            user_agent: None,
            referrer: None,
            error_id: None,
        };
        assert_eq!(
            text_line(&entry),
            "t GET example.test /a?v=1 HTTP/2 200 miss 5 1.250ms origin=0.500ms \"edge-cache; detail='x'\""
        );
        let json: serde_json::Value = serde_json::to_value(&entry).unwrap();
        assert_eq!(json["outcome"], "miss");
        assert_eq!(json["query"], "v=1");
        assert_eq!(json["protocol"], "HTTP/2");
        assert_eq!(json["origin_ms"], 0.5);
        let hit = self::entry();
        assert!(
            text_line(&hit).contains(" 0.250ms origin=- "),
            "{}",
            text_line(&hit)
        );
        assert!(
            serde_json::to_value(&hit)
                .unwrap()
                .get("origin_ms")
                .is_none()
        );
    }
}
