//! What the client is told when the origin cannot answer.

use std::time::Duration;

use crate::breaker::FailureKind;

/// Why a request to the origin produced no response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginFailure {
    /// Nothing accepted the connection (refused, unreachable, DNS failure).
    Unreachable(String),
    /// The origin did not accept a connection within the configured time.
    ConnectTimedOut(Duration),
    /// The origin did not answer within the configured time.
    TimedOut(Duration),
    /// The host runtime refused the outbound request (not in
    /// `allowed_outbound_hosts`).
    Denied,
    /// The connection broke or the origin spoke malformed HTTP.
    Protocol(String),
    /// Not sent: the origin's circuit breaker is open after repeated
    /// failures.
    CircuitOpen {
        /// When the breaker lets a request through again.
        retry_after: Duration,
    },
    /// Not sent: `cap` fetches from this origin are already in flight.
    Busy {
        /// The configured cap (`origin_max_concurrent`).
        cap: u32,
    },
}

/// A status and a short plain-text body for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorResponse {
    /// HTTP status code.
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
/// configuration's connect and response timeouts (an
/// [`EdgeConfig`](crate::config::EdgeConfig)).
///
/// A macro, not a function, so both adapters share one table: WASI 0.2's
/// and 0.3's bindings each generate their own `ErrorCode` type, with the
/// WIT's variant names but no Rust type in common, and the core links
/// neither. `$error_code` names the adapter's type, as imported.
#[macro_export]
macro_rules! origin_failure_of {
    ($code:expr, $config:expr, $error_code:ident) => {{
        use $crate::origin_failure::OriginFailure;
        let config: &$crate::config::EdgeConfig = $config;
        match $code {
            $error_code::ConnectionTimeout => {
                OriginFailure::ConnectTimedOut(config.connect_timeout)
            }
            $error_code::ConnectionReadTimeout
            | $error_code::ConnectionWriteTimeout
            | $error_code::HttpResponseTimeout
            | $error_code::DnsTimeout => OriginFailure::TimedOut(config.origin_timeout),
            $error_code::HttpRequestDenied => OriginFailure::Denied,
            $error_code::ConnectionRefused => {
                OriginFailure::Unreachable("connection refused".into())
            }
            code @ ($error_code::DestinationNotFound
            | $error_code::DestinationUnavailable
            | $error_code::DestinationIpProhibited
            | $error_code::DestinationIpUnroutable
            | $error_code::DnsError(_)) => OriginFailure::Unreachable(format!("{code:?}")),
            other => OriginFailure::Protocol(format!("{other:?}")),
        }
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The part of `wasi:http`'s `error-code` the table names, as the
    /// bindings spell it.
    #[derive(Debug)]
    #[allow(dead_code)]
    enum ErrorCode {
        ConnectionTimeout,
        ConnectionReadTimeout,
        ConnectionWriteTimeout,
        HttpResponseTimeout,
        DnsTimeout,
        HttpRequestDenied,
        ConnectionRefused,
        DestinationNotFound,
        DestinationUnavailable,
        DestinationIpProhibited,
        DestinationIpUnroutable,
        DnsError(String),
        ConnectionTerminated,
    }

    #[test]
    fn error_codes_map_to_failures_with_the_configured_timeouts() {
        let config = crate::config::EdgeConfig::from_variables(|name| match name {
            "origin_url" => Some("http://o.example".into()),
            "origin_timeout_ms" => Some("7000".into()),
            "origin_connect_timeout_ms" => Some("900".into()),
            _ => None,
        })
        .unwrap();
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
        assert_eq!(
            of(ErrorCode::ConnectionRefused),
            OriginFailure::Unreachable("connection refused".into())
        );
        assert_eq!(
            of(ErrorCode::DnsError("nx".into())),
            OriginFailure::Unreachable("DnsError(\"nx\")".into())
        );
        assert_eq!(
            of(ErrorCode::ConnectionTerminated),
            OriginFailure::Protocol("ConnectionTerminated".into())
        );
    }

    #[test]
    fn each_failure_names_its_cause() {
        let cases = [
            (
                OriginFailure::Unreachable("connection refused".into()),
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
                OriginFailure::Protocol("connection reset".into()),
                502,
                "origin failed: connection reset",
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
