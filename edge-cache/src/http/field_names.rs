//! Field names the hot path uses that `http::header` has no constant for.
//! A `&str` name is parsed and validated on every map operation; these are
//! built at compile time.

use http::HeaderName;

/// What this cache did with the request (RFC 9211).
pub(crate) const CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");
/// Cache directives for CDNs only, over `Cache-Control` (RFC 9213).
pub(crate) const CDN_CACHE_CONTROL: HeaderName = HeaderName::from_static("cdn-cache-control");
/// The surrogate (CDN-only) cache directives.
pub(crate) const SURROGATE_CONTROL: HeaderName = HeaderName::from_static("surrogate-control");
/// The tags a response is purged by (Fastly's field: whitespace-separated).
pub(crate) const SURROGATE_KEY: HeaderName = HeaderName::from_static("surrogate-key");
/// Cloudflare's field for purge tags (comma-separated).
pub(crate) const CACHE_TAG: HeaderName = HeaderName::from_static("cache-tag");
/// Varnish's field for purge tags (the `xkey` vmod: whitespace-separated).
pub(crate) const XKEY: HeaderName = HeaderName::from_static("xkey");
/// Where the origin's time for a request is reported (W3C Server Timing).
pub(crate) const SERVER_TIMING: HeaderName = HeaderName::from_static("server-timing");
#[cfg(test)]
/// What a Spin host says of the client's address.
pub(crate) const SPIN_CLIENT_ADDR: HeaderName = HeaderName::from_static("spin-client-addr");
#[cfg(test)]
/// The URL a Spin host received.
pub(crate) const SPIN_FULL_URL: HeaderName = HeaderName::from_static("spin-full-url");
