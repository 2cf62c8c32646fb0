//! What the client is told when the origin cannot answer.

use std::time::Duration;

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
}

/// A status and a short plain-text body for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorResponse {
    /// HTTP status code.
    pub status: u16,
    /// One line naming the cause, ending in a newline.
    pub body: String,
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
        };
        ErrorResponse {
            status,
            body: body + "\n",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        }
    }
}
