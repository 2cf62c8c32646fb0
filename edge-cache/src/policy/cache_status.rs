//! The `Cache-Status` response header (RFC 9211).

use std::fmt::Write as _;
use std::time::Duration;

use purge_wire::CACHE_NAME;

/// Why the request went forward to the origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forward {
    /// Nothing stored for the URL.
    UriMiss,
    /// Stored for the URL, but not this variant.
    VaryMiss,
    /// A miss for another reason (unusable entry).
    Miss,
    /// The entry was stale and had to be revalidated or refetched.
    Stale,
    /// The request demanded it (`no-cache`, `no-store`).
    Request,
    /// The cache was configured (or failed) to bypass.
    Bypass,
}

impl Forward {
    /// Its `fwd` token.
    pub fn token(self) -> &'static str {
        match self {
            Forward::UriMiss => "uri-miss",
            Forward::VaryMiss => "vary-miss",
            Forward::Miss => "miss",
            Forward::Stale => "stale",
            Forward::Request => "request",
            Forward::Bypass => "bypass",
        }
    }
}

/// What happened to one request in this cache.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheStatus {
    /// Served from the cache.
    pub hit: bool,
    /// Forwarded, and why.
    pub fwd: Option<Forward>,
    /// The status the origin answered with, when forwarded.
    pub fwd_status: Option<u16>,
    /// Remaining freshness in seconds (negative when stale).
    pub ttl: Option<i64>,
    /// The response was stored.
    pub stored: bool,
    /// The request waited for another request's fill (RFC 9211 §2.8).
    pub collapsed: bool,
    /// Free-form detail (a token).
    pub detail: Option<String>,
    /// How long the origin took to answer, when it answered this request:
    /// sent beside `Cache-Status` as `Server-Timing` (see
    /// [`server_timing`]), which is where the host's access log reads it.
    pub origin_time: Option<Duration>,
}

/// The `Server-Timing` metric (W3C Server Timing) the edge adds to an
/// answer the origin gave: `origin;dur=<ms>`, with microsecond precision.
/// Appended after whatever the origin sent, so the last `origin` entry of
/// a forwarded answer is the edge's.
pub fn server_timing(origin_time: Duration) -> String {
    format!("origin;dur={:.3}", origin_time.as_secs_f64() * 1000.0)
}

impl CacheStatus {
    /// A hit with `ttl` seconds of freshness left.
    pub fn hit(ttl: i64) -> Self {
        CacheStatus {
            hit: true,
            ttl: Some(ttl),
            ..Default::default()
        }
    }

    /// A request sent on to the origin for `reason`; the origin's status
    /// is added once it answers.
    pub fn forward(reason: Forward) -> Self {
        CacheStatus {
            fwd: Some(reason),
            ..Default::default()
        }
    }

    /// The same status with a `detail` parameter (a token where it is
    /// one, else a quoted string).
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// The header value, e.g. `edge-cache; fwd=uri-miss; fwd-status=200; stored`.
    pub fn header_value(&self) -> String {
        let mut out = CACHE_NAME.to_owned();
        if self.hit {
            out.push_str("; hit");
        }
        if let Some(fwd) = self.fwd {
            let _ = write!(out, "; fwd={}", fwd.token());
        }
        if let Some(status) = self.fwd_status {
            let _ = write!(out, "; fwd-status={status}");
        }
        if let Some(ttl) = self.ttl {
            let _ = write!(out, "; ttl={ttl}");
        }
        if self.stored {
            out.push_str("; stored");
        }
        if self.collapsed {
            out.push_str("; collapsed");
        }
        if let Some(detail) = &self.detail {
            let is_token = !detail.is_empty()
                && detail
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:/*".contains(&b))
                && detail.as_bytes()[0].is_ascii_alphabetic();
            if is_token {
                let _ = write!(out, "; detail={detail}");
            } else {
                // An sf-string holds printable ASCII only (RFC 8941 §3.3.3):
                // anything else (say, from a rule's `name`) would make the
                // field invalid and the response would go without it.
                let printable: String = detail.chars().filter(|c| matches!(c, ' '..='~')).collect();
                let escaped = printable.replace('\\', "\\\\").replace('"', "\\\"");
                let _ = write!(out, "; detail=\"{escaped}\"");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_rfc_9211_parameters() {
        assert_eq!(
            CacheStatus::hit(42).header_value(),
            "edge-cache; hit; ttl=42"
        );
        let mut miss = CacheStatus::forward(Forward::UriMiss);
        miss.fwd_status = Some(200);
        miss.stored = true;
        miss.ttl = Some(60);
        assert_eq!(
            miss.header_value(),
            "edge-cache; fwd=uri-miss; fwd-status=200; ttl=60; stored"
        );
        assert_eq!(
            CacheStatus::forward(Forward::Bypass)
                .with_detail("store-error")
                .header_value(),
            "edge-cache; fwd=bypass; detail=store-error"
        );
        assert_eq!(
            CacheStatus::forward(Forward::Miss)
                .with_detail("not \"ok\"")
                .header_value(),
            "edge-cache; fwd=miss; detail=\"not \\\"ok\\\"\""
        );
    }

    #[test]
    fn a_detail_never_makes_the_field_invalid() {
        // Found by the rules fuzz target: a rule `name` is free text.
        let value = CacheStatus::forward(Forward::Bypass)
            .with_detail("rule-caf\u{e9} \"a\"\n\u{0}")
            .header_value();
        assert_eq!(
            value,
            "edge-cache; fwd=bypass; detail=\"rule-caf \\\"a\\\"\""
        );
        assert!(http::HeaderValue::from_str(&value).is_ok());
    }
}
