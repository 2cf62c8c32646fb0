//! Where an origin is and how long it has: the address a URL variable
//! names, split the way an outgoing request needs it, and the endpoint a
//! host sends to (address and timeouts).

use std::time::Duration;

use http::uri::{Authority, Scheme, Uri};

use crate::config::{ConfigError, EdgeConfig};
use crate::seams::OriginFailure;

/// Where the origin lives, split the way an outgoing request needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginAddress {
    /// `http` or `https`.
    pub scheme: Scheme,
    /// Host and optional port.
    pub authority: Authority,
    /// A path prefix every request path is appended to (`""` for none).
    pub base_path: String,
}

impl OriginAddress {
    /// The origin-form target (path and query) for a client's path and query.
    pub fn target_for(&self, client_path_and_query: &str) -> String {
        format!("{}{}", self.base_path, client_path_and_query)
    }
}

/// An origin as a host sends to it: where it is and how long it has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginEndpoint {
    pub address: OriginAddress,
    /// How long it has to accept a connection.
    pub connect_timeout: Duration,
    /// How long it has to send its response head, and each later chunk
    /// of the body.
    pub origin_timeout: Duration,
}

/// An endpoint's timeouts in nanoseconds, as `wasi:http`'s request
/// options take them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestTimeouts {
    /// `connect-timeout`.
    pub connect: u64,
    /// `first-byte-timeout`.
    pub first_byte: u64,
    /// `between-bytes-timeout`.
    pub between_bytes: u64,
}

impl OriginEndpoint {
    /// The endpoint of `address` with `config`'s timeouts.
    pub(crate) fn of(address: &OriginAddress, config: &EdgeConfig) -> Self {
        OriginEndpoint {
            address: address.clone(),
            connect_timeout: config.connect_timeout,
            origin_timeout: config.origin_timeout,
        }
    }

    /// Its timeouts as request options.
    pub fn request_timeouts(&self) -> RequestTimeouts {
        let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        RequestTimeouts {
            connect: nanos(self.connect_timeout),
            first_byte: nanos(self.origin_timeout),
            between_bytes: nanos(self.origin_timeout),
        }
    }

    /// `failure`, having logged it, in words and by the host's `wasi:http`
    /// error code (`code`), where the client's answer leaves the cause out.
    pub fn logged(&self, failure: OriginFailure, code: &dyn std::fmt::Debug) -> OriginFailure {
        if let OriginFailure::Unreachable(words) | OriginFailure::Protocol(words) = failure {
            eprintln!(
                "edge-cache: origin {}: {words} (wasi:http error-code {})",
                self.address.authority,
                wit_case_name(&format!("{code:?}"))
            );
        }
        failure
    }
}

/// The name of a `wasi:http` error code as WIT spells it
/// (`connection-refused`), from the binding's Rust spelling of the value
/// (`ConnectionRefused`, `DnsError(DnsErrorPayload { .. })`): the case's
/// name without its payload, so a log never shows a Rust type.
fn wit_case_name(debug: &str) -> String {
    let name = debug.split(['(', ' ', '{']).next().unwrap_or_default();
    let mut wit = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                wit.push('-');
            }
            wit.push(c.to_ascii_lowercase());
        } else {
            wit.push(c);
        }
    }
    wit
}

pub(super) fn parse_origin_url(raw: &str) -> Result<OriginAddress, ConfigError> {
    let invalid = |reason: &str| ConfigError::Invalid {
        name: "origin_url",
        reason: format!("{reason} (got `{raw}`)"),
    };
    let uri: Uri = raw.parse().map_err(|_| invalid("not a URL"))?;
    let scheme = uri
        .scheme()
        .cloned()
        .ok_or_else(|| invalid("needs a scheme, http:// or https://"))?;
    if scheme != Scheme::HTTP && scheme != Scheme::HTTPS {
        return Err(invalid("scheme must be http or https"));
    }
    let authority = uri
        .authority()
        .cloned()
        .ok_or_else(|| invalid("needs a host"))?;
    if authority.as_str().contains('@') {
        return Err(invalid("must not carry credentials"));
    }
    if uri.query().is_some() {
        return Err(invalid("must not have a query"));
    }
    let base_path = uri.path().trim_end_matches('/').to_owned();
    Ok(OriginAddress {
        scheme,
        authority,
        base_path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_code_is_logged_by_its_wit_name_never_its_rust_type() {
        assert_eq!(wit_case_name("ConnectionRefused"), "connection-refused");
        assert_eq!(
            wit_case_name(r#"DnsError(DnsErrorPayload { rcode: Some("x"), info_code: None })"#),
            "dns-error"
        );
        assert_eq!(
            wit_case_name("TlsAlertReceived(TlsAlertReceivedPayload { .. })"),
            "tls-alert-received"
        );
        assert_eq!(wit_case_name("HttpRequestDenied"), "http-request-denied");
    }
}
