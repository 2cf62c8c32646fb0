//! The two native servers: the benchmark origin (cacheable objects of any
//! size, tagged for purges, with a request counter; large objects generated
//! as they are sent, with ranges) and the ceiling (fixed bytes from memory,
//! nothing else). Their answers are pure functions of the request head so
//! they are tested without sockets.

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use http_body_util::Full;

use crate::query;
use crate::serve::Served;

/// The largest body either server makes from memory (the scenarios use up
/// to 100 KiB); larger objects are under [`LARGE_PREFIX`].
pub const MAX_BODY: usize = 4 * 1024 * 1024;

/// Paths under this are large objects: `?size=` up to [`LARGE_MAX`] bytes,
/// generated while they are sent (never held whole, never written to
/// disk), with `Accept-Ranges: bytes`, single byte ranges, a strong `ETag`
/// and a `Last-Modified`.
pub const LARGE_PREFIX: &str = "/large/";

/// The largest generated object.
pub const LARGE_MAX: u64 = 4 << 30;

/// A generated body repeats every this many bytes: byte `p` of a large
/// object is `pattern[(p + base) % PERIOD]`, so any range of it is a slice
/// of the shared pattern.
pub const PERIOD: u64 = 1 << 20;

/// The largest frame a generated body hands hyper at once.
const FRAME: u64 = 256 << 10;

/// Paths under this are HTML pages: `?size=` bytes of product-list
/// markup (`text/html`), as compressible as a real site's pages, for the
/// compression scenario.
pub const HTML_PREFIX: &str = "/html/";

/// The `Last-Modified` of every large object (they never change).
pub const LARGE_LAST_MODIFIED: &str = "Mon, 01 Jan 2024 00:00:00 GMT";

/// Default body size, the hot-hit 1 KiB object.
pub const DEFAULT_SIZE: u64 = 1024;

/// Default freshness: long enough that nothing expires during a run.
pub const DEFAULT_TTL: u64 = 3600;

/// Where the origin reports how many object requests it has served; the
/// harness reads it before and after a run to get the contestant's misses.
pub const COUNT_PATH: &str = "/_count";

/// Bytes the bodies are cut from. Printable and varied, so a proxy that
/// compressed or mangled them would show; shared, so a body is a slice
/// rather than a copy.
pub fn pattern() -> Bytes {
    let alphabet = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    (0..MAX_BODY + 256)
        .map(|i| alphabet[(i * 7 + i / 61) % alphabet.len()])
        .collect::<Vec<u8>>()
        .into()
}

fn error(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(format!("{text}\n"))));
    *response.status_mut() = status;
    response
}

/// The requested body size, or `None` (answered with 400) when it is not a
/// number or too big.
fn body_size(query: Option<&str>) -> Option<usize> {
    query::number(query, "size", DEFAULT_SIZE)
        .map(|size| size as usize)
        .filter(|&size| size <= MAX_BODY)
}

fn bad_size() -> Response<Full<Bytes>> {
    error(
        StatusCode::BAD_REQUEST,
        "size: a number of bytes up to 4 MiB",
    )
}

/// FNV-1a: a stable, dependency-free spread of paths over body offsets.
fn path_hash(path: &str) -> usize {
    path.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    }) as usize
}

/// Where the bytes of the object at `path` start in the pattern.
fn base(path: &str) -> usize {
    path_hash(path) % 256
}

/// A large object's body (or a range of it), generated frame by frame from
/// the shared pattern.
#[derive(Debug)]
pub struct Generated {
    pattern: Bytes,
    base: u64,
    position: u64,
    end: u64,
}

impl Generated {
    /// Bytes `start..end` of the object at `path`.
    pub fn new(pattern: Bytes, path: &str, start: u64, end: u64) -> Self {
        Generated {
            pattern,
            base: base(path) as u64,
            position: start,
            end,
        }
    }

    pub fn remaining(&self) -> u64 {
        self.end.saturating_sub(self.position)
    }

    /// The next frame: at most [`FRAME`] bytes, never across a period.
    pub fn next_frame(&mut self) -> Option<hyper::body::Frame<Bytes>> {
        let remaining = self.remaining();
        if remaining == 0 {
            return None;
        }
        let offset = (self.position + self.base) % PERIOD;
        let len = remaining.min(FRAME).min(PERIOD - offset);
        self.position += len;
        let offset = offset as usize;
        Some(hyper::body::Frame::data(
            self.pattern.slice(offset..offset + len as usize),
        ))
    }
}

/// What a generated object's bytes `start..start + len` must be (`pattern`
/// as made by [`pattern`]): what a client checks a large answer against.
pub fn large_bytes(pattern: &[u8], path: &str, start: u64, len: usize) -> Vec<u8> {
    let base = base(path) as u64;
    (0..len as u64)
        .map(|i| pattern[((start + i + base) % PERIOD) as usize])
        .collect()
}

/// The answer to a `Range` field for an object of `size` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeAnswer {
    /// No range, or one not understood (several ranges, other units): the
    /// whole object, 200.
    Whole,
    /// Bytes `start..=last`, 206.
    Part { start: u64, last: u64 },
    /// 416.
    Unsatisfiable,
}

/// One byte range (`bytes=a-b`, `bytes=a-`, `bytes=-n`) of an object of
/// `size` bytes (RFC 9110 §14.1.2).
pub fn range(field: &str, size: u64) -> RangeAnswer {
    let Some(spec) = field.trim().strip_prefix("bytes=") else {
        return RangeAnswer::Whole;
    };
    if spec.contains(',') {
        return RangeAnswer::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeAnswer::Whole;
    };
    let number = |s: &str| s.trim().parse::<u64>().ok();
    match (first.trim().is_empty(), number(first), number(last)) {
        // A suffix: the last n bytes.
        (true, _, Some(n)) if n > 0 && size > 0 => RangeAnswer::Part {
            start: size - n.min(size),
            last: size - 1,
        },
        (true, _, Some(_)) => RangeAnswer::Unsatisfiable,
        (false, Some(start), _) if start >= size => RangeAnswer::Unsatisfiable,
        (false, Some(start), None) if last.trim().is_empty() => RangeAnswer::Part {
            start,
            last: size - 1,
        },
        (false, Some(start), Some(last)) if last >= start => RangeAnswer::Part {
            start,
            last: last.min(size - 1),
        },
        _ => RangeAnswer::Whole,
    }
}

/// HTML the pages are cut from: a product list whose names, prices and
/// stock vary row to row (a seeded generator), so it compresses about as
/// well as a real catalogue page (gzip -1 to about a sixth), not as well
/// as a repeated string.
pub fn html_pattern() -> Bytes {
    const WORDS: [&str; 24] = [
        "linen", "shirt", "organic", "cotton", "wool", "scarf", "leather", "boots", "canvas",
        "bag", "silk", "tie", "denim", "jacket", "merino", "socks", "suede", "loafers", "cashmere",
        "sweater", "tweed", "cap", "velvet", "dress",
    ];
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut page = String::from(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Catalogue</title>\
         <link rel=\"stylesheet\" href=\"/static/site.3f2a1b9c.css\"></head><body><main><ul class=\"products\">\n",
    );
    let mut id = 0u64;
    while page.len() < MAX_BODY + 256 {
        id += 1;
        let r = next();
        let name = format!(
            "{} {} {}",
            WORDS[(r % 24) as usize],
            WORDS[((r >> 8) % 24) as usize],
            WORDS[((r >> 16) % 24) as usize]
        );
        page.push_str(&format!(
            "<li class=\"product\" data-id=\"{id}\"><a href=\"/products/{id}\"><img src=\"/img/{:x}.webp\" \
             alt=\"{name}\" width=\"320\" height=\"240\" loading=\"lazy\"><h2>{name}</h2></a>\
             <p class=\"price\">&euro;{}.{:02}</p><p class=\"stock\">{} in stock</p></li>\n",
            r >> 24 & 0xffff_ffff,
            (r >> 32) % 400 + 5,
            (r >> 40) % 100,
            (r >> 48) % 60,
        ));
    }
    Bytes::from(page)
}

/// The benchmark origin.
pub struct Origin {
    pattern: Bytes,
    html: Bytes,
    served: AtomicU64,
}

impl Default for Origin {
    fn default() -> Self {
        Origin {
            pattern: pattern(),
            html: html_pattern(),
            served: AtomicU64::new(0),
        }
    }
}

impl Origin {
    /// Object requests served so far (not counting reads of the counter).
    pub fn served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }

    /// Answers a request head: a large object under [`LARGE_PREFIX`] (with
    /// its `Range`), else [`Origin::respond`].
    pub fn handle(&self, parts: &Parts) -> Response<Served> {
        let (path, query) = (parts.uri.path(), parts.uri.query());
        if path.starts_with(LARGE_PREFIX) {
            self.served.fetch_add(1, Ordering::Relaxed);
            self.large(path, query, &parts.headers)
        } else {
            self.respond(path, query).map(Served::from)
        }
    }

    /// A large object: `?size=N` bytes generated as they are sent, whole or
    /// one range of it, cacheable as the small objects are.
    pub fn large(&self, path: &str, query: Option<&str>, request: &HeaderMap) -> Response<Served> {
        let full = |response: Response<Full<Bytes>>| response.map(Served::from);
        let Some(size) = query::number(query, "size", DEFAULT_SIZE).filter(|&s| s <= LARGE_MAX)
        else {
            return full(error(
                StatusCode::BAD_REQUEST,
                "size: a number of bytes up to 4 GiB",
            ));
        };
        let Some(ttl) = query::number(query, "ttl", DEFAULT_TTL) else {
            return full(error(StatusCode::BAD_REQUEST, "ttl: a number of seconds"));
        };
        let etag = format!("\"{:016x}-{size}\"", path_hash(path));
        // If-Range with another validator: the whole object.
        let if_range_holds = request
            .get(header::IF_RANGE)
            .and_then(|v| v.to_str().ok())
            .is_none_or(|v| v == etag || v == LARGE_LAST_MODIFIED);
        let answer = match request.get(header::RANGE).and_then(|v| v.to_str().ok()) {
            Some(field) if if_range_holds => range(field, size),
            _ => RangeAnswer::Whole,
        };
        let (status, start, end) = match answer {
            RangeAnswer::Whole => (StatusCode::OK, 0, size),
            RangeAnswer::Part { start, last } => (StatusCode::PARTIAL_CONTENT, start, last + 1),
            RangeAnswer::Unsatisfiable => (StatusCode::RANGE_NOT_SATISFIABLE, 0, 0),
        };
        let mut response = Response::new(Served::Generated(Generated::new(
            self.pattern.clone(),
            path,
            start,
            end,
        )));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_str(&format!("public, max-age={ttl}")).expect("digits"),
        );
        headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        headers.insert(header::ETAG, HeaderValue::from_str(&etag).expect("hex"));
        headers.insert(
            header::LAST_MODIFIED,
            HeaderValue::from_static(LARGE_LAST_MODIFIED),
        );
        let content_range = match answer {
            RangeAnswer::Whole => None,
            RangeAnswer::Part { start, last } => Some(format!("bytes {start}-{last}/{size}")),
            RangeAnswer::Unsatisfiable => Some(format!("bytes */{size}")),
        };
        if let Some(value) = content_range {
            headers.insert(
                header::CONTENT_RANGE,
                HeaderValue::from_str(&value).expect("digits"),
            );
        }
        response
    }

    /// Any path is an object: `?size=N` bytes (default 1 KiB) that depend
    /// only on the path, `Cache-Control: public, max-age=TTL` (`?ttl=`,
    /// default an hour) and a `Surrogate-Key` of every `?tag=`.
    pub fn respond(&self, path: &str, query: Option<&str>) -> Response<Full<Bytes>> {
        if path == COUNT_PATH {
            let mut response = Response::new(Full::new(Bytes::from(self.served().to_string())));
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            return response;
        }
        self.served.fetch_add(1, Ordering::Relaxed);
        let Some(size) = body_size(query) else {
            return bad_size();
        };
        let Some(ttl) = query::number(query, "ttl", DEFAULT_TTL) else {
            return error(StatusCode::BAD_REQUEST, "ttl: a number of seconds");
        };
        let offset = path_hash(path) % 256;
        let (source, content_type) = match path.starts_with(HTML_PREFIX) {
            true => (&self.html, "text/html; charset=utf-8"),
            false => (&self.pattern, "application/octet-stream"),
        };
        let mut response = Response::new(Full::new(source.slice(offset..offset + size)));
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_str(&format!("public, max-age={ttl}")).expect("digits"),
        );
        let tags = query::values(query, "tag").collect::<Vec<_>>().join(" ");
        if !tags.is_empty()
            && let Ok(value) = HeaderValue::from_str(&tags)
        {
            headers.insert("surrogate-key", value);
        }
        response
    }
}

/// The native ceiling: `?size=N` bytes (default 1 KiB) from memory, for any
/// path. It does the least an HTTP server can do, which is what no cache
/// in front of anything can beat on this machine.
pub struct Ceiling {
    pattern: Bytes,
}

impl Default for Ceiling {
    fn default() -> Self {
        Ceiling { pattern: pattern() }
    }
}

impl Ceiling {
    pub fn respond(&self, query: Option<&str>) -> Response<Full<Bytes>> {
        match body_size(query) {
            Some(size) => {
                let mut response = Response::new(Full::new(self.pattern.slice(0..size)));
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/octet-stream"),
                );
                response
            }
            None => bad_size(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn body(response: Response<Full<Bytes>>) -> Bytes {
        match ready(response.into_body().collect()) {
            Ok(collected) => collected.to_bytes(),
            Err(never) => match never {},
        }
    }

    /// `Full` is ready at once, so one poll with a no-op waker finishes it.
    fn ready<F: Future>(future: F) -> F::Output {
        let mut future = std::pin::pin!(future);
        let mut context = std::task::Context::from_waker(std::task::Waker::noop());
        match future.as_mut().poll(&mut context) {
            std::task::Poll::Ready(output) => output,
            std::task::Poll::Pending => panic!("a Full body is always ready"),
        }
    }

    #[test]
    fn html_pages_are_text_and_compress_like_a_catalogue() {
        use std::io::Write;
        let origin = Origin::default();
        let response = origin.respond("/html/100k", Some("size=102400"));
        assert_eq!(
            response.headers()["content-type"],
            "text/html; charset=utf-8"
        );
        let page = body(response);
        assert_eq!(page.len(), 102_400);
        let mut fast = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        fast.write_all(&page).unwrap();
        let ratio = fast.finish().unwrap().len() as f64 / page.len() as f64;
        assert!(
            (0.08..0.3).contains(&ratio),
            "gzip -1 to {ratio:.2} of the page"
        );
    }

    #[test]
    fn origin_objects_are_sized_cacheable_and_tagged() {
        let origin = Origin::default();
        let response = origin.respond("/obj/1", Some("size=100&tag=a&tag=b"));
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["cache-control"], "public, max-age=3600");
        assert_eq!(response.headers()["surrogate-key"], "a b");
        assert_eq!(body(response).len(), 100);

        let response = origin.respond("/obj/2", Some("ttl=5"));
        assert_eq!(response.headers()["cache-control"], "public, max-age=5");
        assert!(response.headers().get("surrogate-key").is_none());
        assert_eq!(body(response).len(), 1024);
    }

    #[test]
    fn origin_bodies_depend_only_on_the_path() {
        let origin = Origin::default();
        let a1 = body(origin.respond("/obj/1", None));
        let a2 = body(origin.respond("/obj/1", Some("tag=x")));
        let b = body(origin.respond("/obj/2", None));
        assert_eq!(a1, a2);
        assert_ne!(a1, b);
    }

    #[test]
    fn origin_counts_objects_not_counter_reads() {
        let origin = Origin::default();
        origin.respond("/a", None);
        origin.respond("/b", Some("size=nope"));
        let count = origin.respond(COUNT_PATH, None);
        assert_eq!(count.headers()["cache-control"], "no-store");
        assert_eq!(&body(count)[..], b"2");
        assert_eq!(origin.served(), 2);
    }

    #[test]
    fn bad_parameters_are_refused() {
        let origin = Origin::default();
        assert_eq!(origin.respond("/a", Some("size=x")).status(), 400);
        assert_eq!(origin.respond("/a", Some("size=99999999")).status(), 400);
        assert_eq!(origin.respond("/a", Some("ttl=-1")).status(), 400);
        assert_eq!(Ceiling::default().respond(Some("size=x")).status(), 400);
    }

    #[test]
    fn ceiling_answers_fixed_bytes() {
        let ceiling = Ceiling::default();
        assert_eq!(body(ceiling.respond(None)).len(), 1024);
        assert_eq!(body(ceiling.respond(Some("size=102400"))).len(), 102_400);
        assert_eq!(
            body(ceiling.respond(None)),
            body(ceiling.respond(Some("size=1024")))
        );
    }

    fn generated(response: Response<Served>) -> Vec<u8> {
        let Served::Generated(mut body) = response.into_body() else {
            panic!("a large object is generated");
        };
        let mut out = Vec::new();
        while let Some(frame) = body.next_frame() {
            let data = frame.into_data().expect("data frames only");
            assert!(data.len() as u64 <= FRAME);
            out.extend_from_slice(&data);
        }
        out
    }

    fn head(range: Option<&str>, if_range: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(range) = range {
            headers.insert(header::RANGE, range.parse().unwrap());
        }
        if let Some(if_range) = if_range {
            headers.insert(header::IF_RANGE, if_range.parse().unwrap());
        }
        headers
    }

    #[test]
    fn ranges_are_parsed_as_rfc_9110_says() {
        use RangeAnswer::*;
        assert_eq!(range("bytes=0-99", 1000), Part { start: 0, last: 99 });
        assert_eq!(
            range("bytes=900-", 1000),
            Part {
                start: 900,
                last: 999
            }
        );
        assert_eq!(
            range("bytes=990-2000", 1000),
            Part {
                start: 990,
                last: 999
            }
        );
        assert_eq!(
            range("bytes=-100", 1000),
            Part {
                start: 900,
                last: 999
            }
        );
        assert_eq!(
            range("bytes=-5000", 1000),
            Part {
                start: 0,
                last: 999
            }
        );
        assert_eq!(range("bytes=1000-", 1000), Unsatisfiable);
        assert_eq!(range("bytes=-0", 1000), Unsatisfiable);
        assert_eq!(range("bytes=0-1,5-6", 1000), Whole);
        assert_eq!(range("items=0-1", 1000), Whole);
        assert_eq!(range("bytes=5-1", 1000), Whole);
        assert_eq!(range("bytes=x-1", 1000), Whole);
    }

    #[test]
    fn large_objects_are_generated_whole_or_in_ranges() {
        let origin = Origin::default();
        let size = 3 * PERIOD + 12_345;
        let query = format!("size={size}");
        let whole = origin.large("/large/a", Some(&query), &HeaderMap::new());
        assert_eq!(whole.status(), 200);
        let headers = whole.headers().clone();
        assert_eq!(headers["accept-ranges"], "bytes");
        assert_eq!(headers["cache-control"], "public, max-age=3600");
        assert_eq!(headers["last-modified"], LARGE_LAST_MODIFIED);
        let etag = headers["etag"].to_str().unwrap().to_owned();
        assert!(etag.starts_with('"') && etag.ends_with(&format!("-{size}\"")));
        assert!(whole.headers().get("content-range").is_none());
        let body = generated(whole);
        assert_eq!(body.len() as u64, size);
        assert_eq!(
            body,
            large_bytes(&origin.pattern, "/large/a", 0, body.len())
        );

        // A range is the same bytes as the whole object has there.
        let start = PERIOD - 100;
        let last = start + 2 * PERIOD;
        let part = origin.large(
            "/large/a",
            Some(&query),
            &head(Some(&format!("bytes={start}-{last}")), None),
        );
        assert_eq!(part.status(), 206);
        assert_eq!(
            part.headers()["content-range"],
            format!("bytes {start}-{last}/{size}").as_str()
        );
        assert_eq!(
            generated(part),
            &body[start as usize..=last as usize],
            "a range is a slice of the whole"
        );

        // If-Range with another validator: the whole object.
        let stale = origin.large(
            "/large/a",
            Some(&query),
            &head(Some("bytes=0-9"), Some("\"other\"")),
        );
        assert_eq!(stale.status(), 200);
        let fresh = origin.large(
            "/large/a",
            Some(&query),
            &head(Some("bytes=0-9"), Some(&etag)),
        );
        assert_eq!(fresh.status(), 206);
        assert_eq!(generated(fresh).len(), 10);

        let beyond = origin.large(
            "/large/a",
            Some(&query),
            &head(Some("bytes=999999999-"), None),
        );
        assert_eq!(beyond.status(), 416);
        assert_eq!(
            beyond.headers()["content-range"],
            format!("bytes */{size}").as_str()
        );

        // Another path, other bytes; sizes are bounded.
        let other = generated(origin.large("/large/b", Some("size=1000"), &HeaderMap::new()));
        assert_ne!(other[..], body[..1000]);
        let too_big = origin.large("/large/c", Some("size=99999999999"), &HeaderMap::new());
        assert_eq!(too_big.status(), 400);
    }

    #[test]
    fn handle_sends_large_paths_to_the_generator_and_counts_them() {
        let origin = Origin::default();
        let request = http::Request::get("/large/x?size=5000000")
            .body(())
            .unwrap();
        let (parts, ()) = request.into_parts();
        let response = origin.handle(&parts);
        assert!(matches!(response.body(), Served::Generated(_)));
        assert_eq!(generated(response).len(), 5_000_000);
        let (parts, ()) = http::Request::get("/small?size=10")
            .body(())
            .unwrap()
            .into_parts();
        assert!(matches!(origin.handle(&parts).body(), Served::Full(_)));
        assert_eq!(origin.served(), 2);
    }
}
