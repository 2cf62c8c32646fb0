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

use crate::instance::limits::InstanceLimits;
use crate::observe::metrics::FailureCause;

/// A request the host answers itself.
pub(crate) struct Failure {
    status: StatusCode,
    /// What the client is told: never a trap, a backtrace or host internals.
    public: String,
    /// Why the instance (or the host on its behalf) failed, for metrics,
    /// and the full cause, for the log only; its presence gives the answer
    /// an error id.
    failed: Option<(FailureCause, String)>,
    component: String,
    /// Whether the connection closes after the answer.
    close: bool,
}

/// The whole of what a client is told of an internal failure, beyond the
/// limit that stopped its instance.
const INTERNAL_ERROR: &str = "internal error";

impl Failure {
    /// A request the host refuses: `public` says why; nothing is logged.
    pub(crate) fn client(
        status: StatusCode,
        public: impl Into<String>,
        component: &str,
    ) -> Failure {
        Failure {
            status,
            public: public.into(),
            failed: None,
            component: component.to_owned(),
            close: false,
        }
    }

    /// A failure of the host or the component that no limit explains
    /// (counted as [`FailureCause::Trap`]): `500`, and `detail` logged.
    pub(crate) fn internal(detail: String, component: &str) -> Failure {
        Failure {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            public: INTERNAL_ERROR.to_owned(),
            failed: Some((FailureCause::Trap, detail)),
            component: component.to_owned(),
            close: false,
        }
    }

    /// The request's instance failed for `cause`: `500`, the client told
    /// which of `limits` stopped it, if one did; `detail` logged.
    pub(crate) fn instance(
        cause: FailureCause,
        limits: &InstanceLimits,
        detail: String,
        component: &str,
    ) -> Failure {
        let public = match cause {
            FailureCause::Trap => INTERNAL_ERROR.to_owned(),
            FailureCause::TimeLimit => format!(
                "{INTERNAL_ERROR}: stopped after the {} ms request time limit",
                limits.request_timeout.as_millis()
            ),
            FailureCause::MemoryLimit => format!(
                "{INTERNAL_ERROR}: stopped at the {} MiB memory limit",
                limits.max_memory_bytes >> 20
            ),
        };
        Failure {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            public,
            failed: Some((cause, detail)),
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
    /// why its instance failed, if one did, with the answer's error id (the
    /// detail is logged under it).
    pub(crate) fn answer(
        self,
        method: &Method,
        path: &str,
    ) -> (
        Response<HyperOutgoingBody>,
        String,
        Option<(FailureCause, String)>,
    ) {
        let Failure {
            status,
            public,
            failed,
            component,
            close,
        } = self;
        let Some((cause, detail)) = failed else {
            return (plain(status, &public, close), component, None);
        };
        let id = error_id();
        let prefix = format!("{method} {path}: error id {id}");
        for line in crate::observe::failure_log::lines(&prefix, &detail) {
            tracing::error!(component, "{line}");
        }
        let text = format!("{public} (error id {id})");
        (plain(status, &text, close), component, Some((cause, id)))
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
    use std::time::Duration;

    use super::*;

    async fn text(response: Response<HyperOutgoingBody>) -> String {
        let body = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(body.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn an_instance_failure_says_which_limit_stopped_it_and_carries_its_cause() {
        let limits = InstanceLimits {
            request_timeout: Duration::from_millis(400),
            max_memory_bytes: 32 << 20,
        };
        let said = [
            (FailureCause::Trap, "internal error (error id "),
            (
                FailureCause::TimeLimit,
                "internal error: stopped after the 400 ms request time limit (error id ",
            ),
            (
                FailureCause::MemoryLimit,
                "internal error: stopped at the 32 MiB memory limit (error id ",
            ),
        ];
        for (cause, public) in said {
            let failure = Failure::instance(cause, &limits, "trap: unreachable".into(), "edge");
            let (response, component, carried) = failure.answer(&Method::GET, "/");
            assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
            let (carried, id) = carried.expect("a failed instance carries its cause and id");
            assert_eq!((component.as_str(), carried), ("edge", cause));
            let text = text(response).await;
            assert!(text.starts_with(public), "{text}");
            assert!(text.contains(&format!("(error id {id})")), "{text}");
            assert!(!text.contains("unreachable"), "{text}");
        }
        let (_, _, carried) = Failure::internal("no".into(), "edge").answer(&Method::GET, "/");
        assert_eq!(carried.map(|(cause, _)| cause), Some(FailureCause::Trap));
        let refused = Failure::client(StatusCode::NOT_FOUND, "no route matches this path", "");
        let (response, _, carried) = refused.answer(&Method::GET, "/");
        assert_eq!(carried, None);
        assert_eq!(text(response).await, "no route matches this path\n");
    }

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
