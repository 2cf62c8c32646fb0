//! Helpers shared by the fuzz targets: inputs are plain text, so the seed
//! corpora under `fuzz/corpus/<target>/` are readable HTTP header blocks,
//! JSON and TOML, and libFuzzer's mutations stay close to real traffic.

use http::{HeaderMap, HeaderName, HeaderValue};

/// A header block: one `name: value` per line (`\n` or `\r\n`). Lines that
/// `http` cannot represent are dropped, as the host would refuse them
/// before the component sees them.
pub fn header_block(bytes: &[u8]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for line in bytes.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let name = trim(&line[..colon]);
        let value = trim(&line[colon + 1..]);
        if let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
        {
            map.append(name, value);
        }
    }
    map
}

/// Splits at the first blank line: (before, after). Without one, all of
/// the input is `before`.
pub fn split_blank_line(bytes: &[u8]) -> (&[u8], &[u8]) {
    for sep in [&b"\n\n"[..], b"\r\n\r\n"] {
        if let Some(i) = bytes.windows(sep.len()).position(|w| w == sep) {
            return (&bytes[..i], &bytes[i + sep.len()..]);
        }
    }
    (bytes, &[])
}

/// Splits off the first line: (line, rest).
pub fn first_line(bytes: &[u8]) -> (&[u8], &[u8]) {
    match bytes.iter().position(|b| *b == b'\n') {
        Some(i) => (&bytes[..i], &bytes[i + 1..]),
        None => (bytes, &[]),
    }
}

/// `key=value` words of a parameter line (`status=404 ttl=30 heuristic`).
pub fn params(line: &[u8]) -> Vec<(String, String)> {
    String::from_utf8_lossy(line)
        .split_ascii_whitespace()
        .map(|word| match word.split_once('=') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => (word.to_owned(), String::new()),
        })
        .collect()
}

/// The numeric value of parameter `name`, if present and a number.
pub fn param_u64(params: &[(String, String)], name: &str) -> Option<u64> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .and_then(|(_, v)| v.parse().ok())
}

/// Whether the word `name` is among the parameters.
pub fn flag(params: &[(String, String)], name: &str) -> bool {
    params.iter().any(|(k, _)| k == name)
}

fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t'))
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'\t'))
        .map_or(start, |i| i + 1);
    &bytes[start..end.max(start)]
}
