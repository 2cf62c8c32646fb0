//! The request target as the cache sees it: the path spelled one way
//! (RFC 3986 §6.2.2 normalisation), so equivalent spellings share one
//! entry and the origin is told the spelling the key used; the host is
//! spelled one way by `http::host`.

/// Normalises a path: percent-encoding made canonical (unreserved
/// characters decoded, hex upper-cased, stray `%` encoded), dot segments
/// removed (RFC 3986 §5.2.4) after decoding, so `/a/%2e%2e/b` is `/b`.
pub fn normalise_path(path: &str) -> String {
    if is_normal_path(path) {
        return path.to_owned();
    }
    normalise_segments(path)
}

/// [`normalise_path`] the long way: segment by segment.
fn normalise_segments(path: &str) -> String {
    let mut out: Vec<String> = Vec::new();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let last = segments.len().saturating_sub(1);
    for (i, segment) in segments.iter().enumerate() {
        let segment = normalise_encoding(segment);
        match segment.as_str() {
            "." => {
                if i == last {
                    out.push(String::new());
                }
            }
            ".." => {
                out.pop();
                if i == last {
                    out.push(String::new());
                }
            }
            _ => out.push(segment),
        }
    }
    format!("/{}", out.join("/"))
}

/// Whether [`normalise_path`] would give `path` back unchanged: rooted,
/// no escape to make canonical, no byte to escape, no dot segment. Most
/// paths are; they are taken as they are, without being split into
/// segments and joined again (twice per request: the rule and the key).
fn is_normal_path(path: &str) -> bool {
    path.starts_with('/')
        && path
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'#' && b != b'%')
        && !path
            .split('/')
            .any(|segment| segment == "." || segment == "..")
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// The byte a `%XX` escape at `bytes[i]` encodes: exactly two hex digits
/// (`u8::from_str_radix` alone would also accept a sign, as in `%+5`).
fn escaped_byte(bytes: &[u8], i: usize) -> Option<u8> {
    let hex = |b: u8| (b as char).to_digit(16);
    match bytes.get(i..i + 3)? {
        [b'%', high, low] => Some((hex(*high)? * 16 + hex(*low)?) as u8),
        _ => None,
    }
}

/// Percent-encoding made canonical: unreserved characters decoded, other
/// escapes upper-cased, stray `%` and non-graphic bytes encoded.
pub fn normalise_encoding(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            match escaped_byte(bytes, i) {
                Some(decoded) if is_unreserved(decoded) => out.push(decoded as char),
                Some(decoded) => out.push_str(&format!("%{decoded:02X}")),
                None => {
                    out.push_str("%25");
                    i += 1;
                    continue;
                }
            }
            i += 3;
        } else if b.is_ascii_graphic() && b != b'#' {
            out.push(b as char);
            i += 1;
        } else {
            out.push_str(&format!("%{b:02X}"));
            i += 1;
        }
    }
    out
}

/// A query component decoded (`%XX` and `+`), for comparing names.
pub fn decode_component(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if let Some(decoded) = escaped_byte(bytes, i) {
            out.push(decoded);
            i += 3;
        } else {
            out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The path of `target` if it is on the same scheme and host (or relative).
pub fn same_host_path(target: &str, scheme: &str, host: &str) -> Option<String> {
    if target.starts_with('/') && !target.starts_with("//") {
        return Some(target.to_owned());
    }
    let rest = target.strip_prefix(scheme)?.strip_prefix("://")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    authority
        .eq_ignore_ascii_case(host)
        .then(|| path.to_owned())
}

/// The targets an unsafe request's non-error answer invalidates (RFC 9111
/// §4.4): its own, and `Location`/`Content-Location` when they are on the
/// same scheme and host.
pub fn invalidated_targets(
    path_and_query: &str,
    response_headers: &http::HeaderMap,
    scheme: &str,
    host: &str,
) -> Vec<String> {
    let mut targets = vec![path_and_query.to_owned()];
    for name in ["location", "content-location"] {
        if let Some(target) = response_headers.get(name).and_then(|v| v.to_str().ok())
            && let Some(path) = same_host_path(target, scheme, host)
        {
            targets.push(path);
        }
    }
    targets
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_normalisation() {
        let table = [
            ("/a/b", "/a/b"),
            ("/a/./b", "/a/b"),
            ("/a/../b", "/b"),
            ("/a/%2e%2E/b", "/b"),
            ("/../../etc", "/etc"),
            ("/a/b/..", "/a/"),
            ("/%7Euser/%41", "/~user/A"),
            ("/a%2fb", "/a%2Fb"),
            ("/a%zzb", "/a%25zzb"),
            ("/a%+5b", "/a%25+5b"),
            ("/a%4", "/a%254"),
            ("/sp ace", "/sp%20ace"),
            ("/", "/"),
            ("/a/", "/a/"),
        ];
        for (input, expected) in table {
            assert_eq!(normalise_path(input), expected, "{input}");
        }
    }

    #[test]
    fn a_path_taken_as_it_is_is_one_the_long_way_leaves_unchanged() {
        let paths = [
            "/",
            "/a",
            "/a/",
            "//a//b/",
            "/hot/1k",
            "/a.b/c..d/.e/f.",
            "/~u/A-b_c",
            "/a/./b",
            "/a/.",
            "/..",
            "/a/%41",
            "/a%2f",
            "/sp ace",
            "/a#b",
            "a/b",
            "",
            "/caf\u{e9}",
            "/a/b/..",
            "/a?b",
            "/a;b=c/*+$!'(),@:",
        ];
        for path in paths {
            let slow = normalise_segments(path);
            assert_eq!(normalise_path(path), slow, "{path:?}");
            assert_eq!(is_normal_path(path), slow == path, "{path:?}");
        }
    }

    #[test]
    fn same_host_targets_only() {
        assert_eq!(same_host_path("/a", "http", "h"), Some("/a".into()));
        assert_eq!(same_host_path("http://H/b", "http", "h"), Some("/b".into()));
        assert_eq!(same_host_path("https://h/b", "http", "h"), None);
        assert_eq!(same_host_path("//evil/b", "http", "h"), None);
        assert_eq!(same_host_path("http://evil/b", "http", "h"), None);
    }
}
