//! A request the host answers itself ([`Failure`]): no route, a body over
//! the limit, a bad request, or an instance that failed. The client is told
//! what failed in a few words; an instance's failure (a trap and its
//! backtrace, a limit, a host error) goes to the log only, under an error
//! id the client's answer carries.

use std::convert::Infallible;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http::{HeaderValue, Method, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::observe::metrics::FailureCause;

/// A request the host answers itself.
pub(crate) struct Failure {
    status: StatusCode,
    /// What the client is told: never a trap, a backtrace or host internals.
    public: String,
    /// The full cause, for the log only; its presence gives the answer an
    /// error id.
    detail: Option<String>,
    component: String,
    /// Whether the connection closes after the answer.
    close: bool,
}

impl Failure {
    pub(crate) fn client(
        status: StatusCode,
        public: impl Into<String>,
        component: &str,
    ) -> Failure {
        Failure {
            status,
            public: public.into(),
            detail: None,
            component: component.to_owned(),
            close: false,
        }
    }

    pub(crate) fn internal(public: impl Into<String>, detail: String, component: &str) -> Failure {
        Failure {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            public: public.into(),
            detail: Some(detail),
            component: component.to_owned(),
            close: false,
        }
    }

    pub(crate) fn body_too_large(limit: u64, component: &str) -> Failure {
        Failure {
            close: true,
            ..Failure::client(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body too large: the limit is {limit} bytes"),
                component,
            )
        }
    }

    /// The host's answer to `method path`, the component it was for, and
    /// why its instance failed, if one did; the detail is logged under the
    /// answer's error id.
    pub(crate) fn answer(
        self,
        method: &Method,
        path: &str,
    ) -> (Response<HyperOutgoingBody>, String, Option<FailureCause>) {
        let Failure {
            status,
            public,
            detail,
            component,
            close,
        } = self;
        let mut failure_cause = None;
        let text = match detail {
            Some(detail) => {
                failure_cause = Some(FailureCause::of_answer(&public));
                let id = error_id();
                let prefix = format!("{method} {path}: error id {id}");
                for line in crate::observe::failure_log::lines(&prefix, &detail) {
                    tracing::error!(component, "{line}");
                }
                format!("{public} (error id {id})")
            }
            None => public,
        };
        (plain(status, &text, close), component, failure_cause)
    }
}

fn plain(status: StatusCode, text: &str, close: bool) -> Response<HyperOutgoingBody> {
    let body = Full::new(Bytes::from(format!("{text}\n")))
        .map_err(|never: Infallible| match never {})
        .boxed_unsync();
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    if close {
        headers.insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// A short, unguessable id that ties a client's `500` to its log line.
fn error_id() -> String {
    static SEED: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let seed = *SEED.get_or_init(|| {
        use std::hash::BuildHasher;
        std::collections::hash_map::RandomState::new().hash_one(std::process::id())
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut hasher = blake3::Hasher::new();
    hasher.update(&seed.to_le_bytes());
    hasher.update(&n.to_le_bytes());
    hasher.finalize().to_hex()[..16].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_ids_are_16_hex_digits_and_differ() {
        let (a, b) = (error_id(), error_id());
        assert_ne!(a, b);
        for id in [a, b] {
            assert_eq!(id.len(), 16);
            assert!(id.bytes().all(|c| c.is_ascii_hexdigit()), "{id}");
        }
    }
}
