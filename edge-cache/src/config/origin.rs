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

    /// `failure`, having logged the host's `code` for it when the words
    /// the client gets leave something out.
    pub fn logged(&self, failure: OriginFailure, code: &dyn std::fmt::Debug) -> OriginFailure {
        if matches!(
            failure,
            OriginFailure::Unreachable(_) | OriginFailure::Protocol(_)
        ) {
            eprintln!("edge-cache: origin {}: {code:?}", self.address.authority);
        }
        failure
    }
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
