//! The two native servers: the benchmark origin (cacheable objects of any
//! size, tagged for purges, with a request counter) and the ceiling (fixed
//! bytes from memory, nothing else). Their answers are pure functions of the
//! request line so they are tested without sockets.

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;

use crate::query;

/// The largest body either server makes (the scenarios use up to 100 KiB).
pub const MAX_BODY: usize = 4 * 1024 * 1024;

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

/// The benchmark origin.
pub struct Origin {
    pattern: Bytes,
    served: AtomicU64,
}

impl Default for Origin {
    fn default() -> Self {
        Origin {
            pattern: pattern(),
            served: AtomicU64::new(0),
        }
    }
}

impl Origin {
    /// Object requests served so far (not counting reads of the counter).
    pub fn served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
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
        let mut response = Response::new(Full::new(self.pattern.slice(offset..offset + size)));
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
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
}
