//! The edge's member of the RFC 9211 `Cache-Status` response field.

/// The edge's cache name: the first item of its `Cache-Status` member
/// (RFC 9211 §2), written by the edge and looked for by edge-host, which
/// tells the edge's member from other caches' by it.
pub const CACHE_NAME: &str = "edge-cache";
