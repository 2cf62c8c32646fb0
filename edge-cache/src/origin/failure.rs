//! What the client is told when the origin cannot answer: the words for
//! each [`OriginFailure`] (the type itself is part of the `Origin` seam,
//! in `seams::origin_failure`), and the table from `wasi:http`'s error
//! codes to them.
//!
//! In words only: the cause as this module's own fixed phrases, never the
//! host's error value, a Rust type name or Debug formatting. An adapter
//! that drops detail to get there (the `wasi:http` error code and its
//! payload, a body stream's error) writes it to the component's log.

use crate::origin::breaker::FailureKind;
use crate::seams::OriginFailure;

/// A status and a short plain-text body for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorResponse {
    pub status: u16,
    /// One line naming the cause, ending in a newline.
    pub body: String,
    /// Seconds for `Retry-After`, when the edge knows when to try again.
    pub retry_after: Option<u64>,
}

impl OriginFailure {
    /// The response the edge gives instead of the origin's.
    pub fn to_response(&self) -> ErrorResponse {
        let (status, body) = match self {
            OriginFailure::Unreachable(detail) => (502, format!("origin unreachable: {detail}")),
            OriginFailure::ConnectTimedOut(after) => (
                504,
                format!("origin connect timed out after {} ms", after.as_millis()),
            ),
            OriginFailure::TimedOut(after) => (
                504,
                format!("origin timed out after {} ms", after.as_millis()),
            ),
            OriginFailure::Denied => (
                502,
                "origin request denied by the host (not in allowed_outbound_hosts)".to_owned(),
            ),
            OriginFailure::Protocol(detail) => (502, format!("origin failed: {detail}")),
            OriginFailure::CircuitOpen { .. } => (
                503,
                "origin is down (circuit breaker open after repeated failures)".to_owned(),
            ),
            OriginFailure::Busy { cap } => (
                503,
                format!("origin busy: {cap} fetches already in flight (origin_max_concurrent)"),
            ),
        };
        ErrorResponse {
            status,
            body: body + "\n",
            retry_after: self.retry_after_seconds(),
        }
    }

    /// Whole seconds until a retry may succeed (rounded up, at least 1).
    fn retry_after_seconds(&self) -> Option<u64> {
        match self {
            OriginFailure::CircuitOpen { retry_after } => {
                Some(retry_after.as_millis().div_ceil(1000).max(1) as u64)
            }
            OriginFailure::Busy { .. } => Some(1),
            _ => None,
        }
    }

    /// Whether the origin was actually asked (and so says something about
    /// its health); a request the edge held back does not.
    pub fn reached_origin(&self) -> bool {
        !matches!(
            self,
            OriginFailure::Denied | OriginFailure::CircuitOpen { .. } | OriginFailure::Busy { .. }
        )
    }

    /// Whether finding this out took a timeout (the breaker's reason to
    /// fail fast) or came back at once.
    pub fn kind(&self) -> FailureKind {
        match self {
            OriginFailure::ConnectTimedOut(_) | OriginFailure::TimedOut(_) => FailureKind::Slow,
            _ => FailureKind::Fast,
        }
    }

    /// The `Cache-Status` detail when a stale entry is served instead.
    pub fn stale_detail(&self) -> &'static str {
        match self {
            OriginFailure::CircuitOpen { .. } => "circuit-open",
            OriginFailure::Busy { .. } => "origin-busy",
            _ => "stale-if-error",
        }
    }
}

/// The [`OriginFailure`] a `wasi:http` `error-code` means, given the
/// origin's connect and response timeouts (an
/// [`OriginEndpoint`](crate::OriginEndpoint)): the table from each code to
/// the words the client is told. Payloads (a DNS rcode, a TLS alert, the
/// host's internal message) are not part of them; the adapter logs the
/// code whole.
///
/// A macro, not a function, so both adapters share one table: WASI 0.2's
/// and 0.3's bindings each generate their own `ErrorCode` type, with the
/// WIT's variant names but no Rust type in common, and the core links
/// neither. `$error_code` names the adapter's type, as imported.
#[macro_export]
macro_rules! origin_failure_of {
    ($code:expr, $config:expr, $error_code:ident) => {{
        use $crate::OriginFailure;
        // Anything with the timeouts: an `OriginEndpoint`, or in tests
        // the configuration.
        let config = $config;
        match $code {
            $error_code::ConnectionTimeout => {
                OriginFailure::ConnectTimedOut(config.connect_timeout)
            }
            $error_code::ConnectionReadTimeout
            | $error_code::ConnectionWriteTimeout
            | $error_code::HttpResponseTimeout
            | $error_code::DnsTimeout => OriginFailure::TimedOut(config.origin_timeout),
            $error_code::HttpRequestDenied => OriginFailure::Denied,
            $error_code::ConnectionRefused => OriginFailure::Unreachable("connection refused"),
            $error_code::DnsError(_) | $error_code::DestinationNotFound => {
                OriginFailure::Unreachable("its name did not resolve")
            }
            $error_code::DestinationUnavailable => {
                OriginFailure::Unreachable("destination unavailable")
            }
            $error_code::DestinationIpProhibited => {
                OriginFailure::Unreachable("its address is prohibited")
            }
            $error_code::DestinationIpUnroutable => {
                OriginFailure::Unreachable("no route to its address")
            }
            $error_code::TlsProtocolError => {
                OriginFailure::Protocol("the TLS handshake did not complete")
            }
            $error_code::TlsCertificateError => {
                OriginFailure::Protocol("its TLS certificate was not accepted")
            }
            $error_code::TlsAlertReceived(_) => {
                OriginFailure::Protocol("it ended the TLS handshake with an alert")
            }
            $error_code::ConnectionTerminated => {
                OriginFailure::Protocol("the connection closed before a complete response")
            }
            $error_code::ConnectionLimitReached => {
                OriginFailure::Protocol("too many connections to it are open")
            }
            $error_code::HttpResponseIncomplete => {
                OriginFailure::Protocol("the response was incomplete")
            }
            $error_code::HttpResponseHeaderSectionSize(_)
            | $error_code::HttpResponseHeaderSize(_) => {
                OriginFailure::Protocol("the response header was too large")
            }
            $error_code::HttpResponseBodySize(_) => {
                OriginFailure::Protocol("the response body was too large")
            }
            $error_code::HttpResponseTrailerSectionSize(_)
            | $error_code::HttpResponseTrailerSize(_) => {
                OriginFailure::Protocol("the response trailers were too large")
            }
            $error_code::HttpResponseTransferCoding(_)
            | $error_code::HttpResponseContentCoding(_) => {
                OriginFailure::Protocol("the response's coding is not supported")
            }
            $error_code::HttpProtocolError | $error_code::HttpUpgradeFailed => {
                OriginFailure::Protocol("the response was not valid HTTP")
            }
            $error_code::LoopDetected => OriginFailure::Protocol("a request loop was detected"),
            $error_code::HttpRequestLengthRequired
            | $error_code::HttpRequestBodySize(_)
            | $error_code::HttpRequestMethodInvalid
            | $error_code::HttpRequestUriInvalid
            | $error_code::HttpRequestUriTooLong
            | $error_code::HttpRequestHeaderSectionSize(_)
            | $error_code::HttpRequestHeaderSize(_)
            | $error_code::HttpRequestTrailerSectionSize(_)
            | $error_code::HttpRequestTrailerSize(_) => $crate::OriginFailure::REQUEST_NOT_SENT,
            // `configuration-error`, `internal-error(…)` and any code a
            // later `wasi:http` adds.
            _ => $crate::OriginFailure::CONNECTION_FAILED,
        }
    }};
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// `wasi:http`'s `error-code` as the bindings spell it (WASI 0.2 and
    /// 0.3 have the same variants), payloads simplified.
    #[derive(Debug)]
    #[allow(dead_code)]
    enum ErrorCode {
        DnsTimeout,
        DnsError(String),
        DestinationNotFound,
        DestinationUnavailable,
        DestinationIpProhibited,
        DestinationIpUnroutable,
        ConnectionRefused,
        ConnectionTerminated,
        ConnectionTimeout,
        ConnectionReadTimeout,
        ConnectionWriteTimeout,
        ConnectionLimitReached,
        TlsProtocolError,
        TlsCertificateError,
        TlsAlertReceived(String),
        HttpRequestDenied,
        HttpRequestLengthRequired,
        HttpRequestBodySize(Option<u64>),
        HttpRequestMethodInvalid,
        HttpRequestUriInvalid,
        HttpRequestUriTooLong,
        HttpRequestHeaderSectionSize(Option<u32>),
        HttpRequestHeaderSize(Option<u32>),
        HttpRequestTrailerSectionSize(Option<u32>),
        HttpRequestTrailerSize(u32),
        HttpResponseIncomplete,
        HttpResponseHeaderSectionSize(Option<u32>),
        HttpResponseHeaderSize(u32),
        HttpResponseBodySize(Option<u64>),
        HttpResponseTrailerSectionSize(Option<u32>),
        HttpResponseTrailerSize(u32),
        HttpResponseTransferCoding(Option<String>),
        HttpResponseContentCoding(Option<String>),
        HttpResponseTimeout,
        HttpUpgradeFailed,
        HttpProtocolError,
        LoopDetected,
        ConfigurationError,
        InternalError(Option<String>),
    }

    fn config() -> crate::config::EdgeConfig {
        crate::config::EdgeConfig::from_variables(|name| match name {
            "origin_url" => Some("http://o.example".into()),
            "origin_timeout_ms" => Some("7000".into()),
            "origin_connect_timeout_ms" => Some("900".into()),
            _ => None,
        })
        .unwrap()
    }

    #[test]
    fn error_codes_map_to_failures_with_the_configured_timeouts() {
        let config = config();
        let of = |code| origin_failure_of!(code, &config, ErrorCode);
        assert_eq!(
            of(ErrorCode::ConnectionTimeout),
            OriginFailure::ConnectTimedOut(Duration::from_millis(900))
        );
        for slow in [
            ErrorCode::ConnectionReadTimeout,
            ErrorCode::ConnectionWriteTimeout,
            ErrorCode::HttpResponseTimeout,
            ErrorCode::DnsTimeout,
        ] {
            assert_eq!(of(slow), OriginFailure::TimedOut(Duration::from_secs(7)));
        }
        assert_eq!(of(ErrorCode::HttpRequestDenied), OriginFailure::Denied);
        let table = [
            (
                ErrorCode::ConnectionRefused,
                "origin unreachable: connection refused",
            ),
            (
                ErrorCode::DnsError("NXDOMAIN".into()),
                "origin unreachable: its name did not resolve",
            ),
            (
                ErrorCode::DestinationNotFound,
                "origin unreachable: its name did not resolve",
            ),
            (
                ErrorCode::DestinationUnavailable,
                "origin unreachable: destination unavailable",
            ),
            (
                ErrorCode::DestinationIpProhibited,
                "origin unreachable: its address is prohibited",
            ),
            (
                ErrorCode::DestinationIpUnroutable,
                "origin unreachable: no route to its address",
            ),
            (
                ErrorCode::TlsProtocolError,
                "origin failed: the TLS handshake did not complete",
            ),
            (
                ErrorCode::TlsCertificateError,
                "origin failed: its TLS certificate was not accepted",
            ),
            (
                ErrorCode::TlsAlertReceived("handshake_failure".into()),
                "origin failed: it ended the TLS handshake with an alert",
            ),
            (
                ErrorCode::ConnectionTerminated,
                "origin failed: the connection closed before a complete response",
            ),
            (
                ErrorCode::ConnectionLimitReached,
                "origin failed: too many connections to it are open",
            ),
            (
                ErrorCode::HttpResponseIncomplete,
                "origin failed: the response was incomplete",
            ),
            (
                ErrorCode::HttpResponseHeaderSize(9000),
                "origin failed: the response header was too large",
            ),
            (
                ErrorCode::HttpResponseBodySize(Some(1 << 30)),
                "origin failed: the response body was too large",
            ),
            (
                ErrorCode::HttpResponseTrailerSectionSize(None),
                "origin failed: the response trailers were too large",
            ),
            (
                ErrorCode::HttpResponseContentCoding(Some("x-zip".into())),
                "origin failed: the response's coding is not supported",
            ),
            (
                ErrorCode::HttpProtocolError,
                "origin failed: the response was not valid HTTP",
            ),
            (
                ErrorCode::LoopDetected,
                "origin failed: a request loop was detected",
            ),
            (
                ErrorCode::HttpRequestUriTooLong,
                "origin failed: the request could not be sent",
            ),
            (
                ErrorCode::InternalError(Some("hyper::Error(Io, Kind(BrokenPipe))".into())),
                "origin failed: the connection failed",
            ),
            (
                ErrorCode::ConfigurationError,
                "origin failed: the connection failed",
            ),
        ];
        for (code, words) in table {
            let debug = format!("{code:?}");
            let response = of(code).to_response();
            assert_eq!(response.status, 502, "{debug}");
            assert_eq!(response.body, format!("{words}\n"), "{debug}");
        }
    }

    #[test]
    fn no_client_answer_carries_the_code_or_its_payload() {
        let config = config();
        let codes = [
            ErrorCode::DnsError("NXDOMAIN".into()),
            ErrorCode::TlsAlertReceived("bad_certificate".into()),
            ErrorCode::HttpRequestBodySize(Some(77)),
            ErrorCode::HttpResponseTransferCoding(Some("chunked, gzip".into())),
            ErrorCode::InternalError(Some("redis://10.0.0.7 said no".into())),
            ErrorCode::InternalError(None),
        ];
        for code in codes {
            let debug = format!("{code:?}");
            let body = origin_failure_of!(code, &config, ErrorCode)
                .to_response()
                .body;
            for leak in [
                "::", "(", "Error", "Some", "NXDOMAIN", "bad_cert", "77", "gzip", "redis",
            ] {
                assert!(!body.contains(leak), "{debug} -> {body}");
            }
        }
    }

    #[test]
    fn each_failure_names_its_cause() {
        let cases = [
            (
                OriginFailure::Unreachable("connection refused"),
                502,
                "origin unreachable: connection refused",
            ),
            (
                OriginFailure::TimedOut(Duration::from_millis(1500)),
                504,
                "origin timed out after 1500 ms",
            ),
            (
                OriginFailure::ConnectTimedOut(Duration::from_millis(300)),
                504,
                "origin connect timed out after 300 ms",
            ),
            (OriginFailure::Denied, 502, "allowed_outbound_hosts"),
            (
                OriginFailure::Protocol("the connection closed before a complete response"),
                502,
                "origin failed: the connection closed before a complete response",
            ),
        ];
        for (failure, status, text) in cases {
            let response = failure.to_response();
            assert_eq!(response.status, status, "{failure:?}");
            assert!(
                response.body.contains(text),
                "{failure:?}: {}",
                response.body
            );
            assert!(response.body.ends_with('\n'));
            assert_eq!(response.retry_after, None, "{failure:?}");
        }
    }

    #[test]
    fn held_back_requests_are_503_with_retry_after() {
        let open = OriginFailure::CircuitOpen {
            retry_after: Duration::from_millis(2_100),
        }
        .to_response();
        assert_eq!((open.status, open.retry_after), (503, Some(3)));
        assert!(open.body.contains("circuit breaker open"), "{}", open.body);
        let busy = OriginFailure::Busy { cap: 8 }.to_response();
        assert_eq!((busy.status, busy.retry_after), (503, Some(1)));
        assert!(busy.body.contains("8 fetches"), "{}", busy.body);
        let soon = OriginFailure::CircuitOpen {
            retry_after: Duration::from_millis(10),
        };
        assert_eq!(soon.to_response().retry_after, Some(1));
        assert!(!soon.reached_origin());
        assert!(OriginFailure::TimedOut(Duration::from_secs(1)).reached_origin());
    }
}
