//! Why a request to the origin produced no response: what the [`Origin`]
//! seam answers instead of a response. The adapters build these (from
//! `wasi:http`'s error codes, with the `origin_failure_of!` table); what
//! the client is told for each is `origin::failure`'s business.
//!
//! [`Origin`]: crate::seams::Origin

use std::time::Duration;

/// Why a request to the origin produced no response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginFailure {
    /// Nothing accepted the connection (refused, unreachable, DNS failure);
    /// the cause in words, from the `origin_failure_of!` table.
    Unreachable(&'static str),
    /// The origin did not accept a connection within the configured time.
    ConnectTimedOut(Duration),
    /// The origin did not answer within the configured time.
    TimedOut(Duration),
    /// The host runtime refused the outbound request (not in
    /// `allowed_outbound_hosts`).
    Denied,
    /// The connection broke or the origin spoke malformed HTTP; what went
    /// wrong in words (`the TLS handshake did not complete`).
    Protocol(&'static str),
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

impl OriginFailure {
    /// A request to the origin that the host would not send as it is
    /// (its fields, line or body refused).
    pub const REQUEST_NOT_SENT: OriginFailure =
        OriginFailure::Protocol("the request could not be sent");

    /// An exchange with the origin that failed in a way the host does not
    /// name.
    pub const CONNECTION_FAILED: OriginFailure = OriginFailure::Protocol("the connection failed");

    /// A response whose body stopped before its end.
    pub const BODY_BROKE_OFF: OriginFailure =
        OriginFailure::Protocol("the response body broke off");
}
