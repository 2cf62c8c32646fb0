//! How a failure's detail is written to the log: a trap's error chain
//! carries a wasm backtrace of dozens of frames, each on a line of its own.
//!
//! Joined onto one line it was about 3 KB that no one could read; left as
//! it comes, a search for the error id finds only its first line. So the
//! detail becomes a headline (the error chain without the frames, which
//! says what failed) and then one line per frame (function names
//! demangled by wasmtime's `demangle` feature), every line starting with
//! the same prefix, so that a search for an error id finds all of it.

/// The log lines for `detail`, each starting with `prefix` (e.g.
/// `GET /a: error id 3f2a…`).
pub(crate) fn lines(prefix: &str, detail: &str) -> Vec<String> {
    let (summary, frames) = split(detail);
    let mut out = Vec::with_capacity(frames.len() + 1);
    match frames.len() {
        0 => out.push(format!("{prefix}: {summary}")),
        n => out.push(format!(
            "{prefix}: {summary} (wasm backtrace: {n} frames follow)"
        )),
    }
    out.extend(
        frames
            .iter()
            .map(|frame| format!("{prefix}: frame {frame}")),
    );
    out
}

/// The detail's text without its backtrace frames, on one line, and the
/// frames (`N: offset - function`, with their `at file:line` attached).
///
/// An error chain written with `{:#}` puts the next cause right after the
/// backtrace, on its last frame's line (`…#handle: forcing trap when
/// growing memory`); no function name has a colon followed by a space, so
/// what follows the first `: ` after a frame's ` - ` goes to the summary.
fn split(detail: &str) -> (String, Vec<String>) {
    let mut summary: Vec<&str> = Vec::new();
    let mut frames: Vec<String> = Vec::new();
    for line in detail.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if is_frame(line) {
            let cause_at = line
                .find(" - ")
                .and_then(|dash| line[dash..].find(": ").map(|colon| dash + colon));
            match cause_at {
                Some(at) => {
                    frames.push(line[..at].to_owned());
                    summary.push(&line[at + 2..]);
                }
                None => frames.push(line.to_owned()),
            }
        } else if let (Some(frame), Some(location)) = (frames.last_mut(), line.strip_prefix("at "))
        {
            frame.push_str(", at ");
            frame.push_str(location);
        } else {
            summary.push(line.trim_start_matches(": "));
        }
    }
    (summary.join(" "), frames)
}

/// `  12: 0x1f2e - name` as wasmtime writes a backtrace frame.
fn is_frame(line: &str) -> bool {
    line.split_once(':').is_some_and(|(index, rest)| {
        !index.is_empty() && index.bytes().all(|b| b.is_ascii_digit()) && rest.starts_with(' ')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRAP: &str = "component failed: error while executing at wasm backtrace:
    0: 0x2f1a - misbehaving_component::grow::h1f2e3d4c5b6a7980
                    at /src/lib.rs:40:9
    1: 0x3c00 - <misbehaving_component::Component as Guest>::handle
    2: 0x4000 - m.wasm!wasi:http/incoming-handler@0.2.0#handle: forcing trap when growing memory to 33619968 bytes";

    #[test]
    fn a_backtrace_becomes_a_headline_and_a_line_per_frame_under_one_prefix() {
        let lines = lines("GET /grow: error id ab12", TRAP);
        assert_eq!(lines.len(), 4, "{lines:#?}");
        assert!(
            lines[0].starts_with(
                "GET /grow: error id ab12: component failed: error while executing at wasm backtrace:"
            ),
            "{}",
            lines[0]
        );
        assert!(
            lines[0].contains("backtrace: forcing trap when growing memory to 33619968 bytes ("),
            "{}",
            lines[0]
        );
        assert!(
            lines[0].ends_with("(wasm backtrace: 3 frames follow)"),
            "{}",
            lines[0]
        );
        assert_eq!(
            lines[1],
            "GET /grow: error id ab12: frame 0: 0x2f1a - misbehaving_component::grow::h1f2e3d4c5b6a7980, at /src/lib.rs:40:9"
        );
        assert!(lines[3].ends_with("wasi:http/incoming-handler@0.2.0#handle"));
        assert!(
            lines
                .iter()
                .all(|l| l.starts_with("GET /grow: error id ab12: "))
        );
    }

    #[test]
    fn a_detail_without_frames_is_one_line() {
        assert_eq!(
            lines("x", "no response within 10 ms\n"),
            ["x: no response within 10 ms"]
        );
        assert!(!is_frame("Caused by:") && !is_frame(": 12") && !is_frame("12:x"));
    }
}
