//! Headers as a list of (name, value bytes) pairs: the form `wasi:http`
//! fields and stored entries use.

use http::HeaderMap;
use http::header::{HeaderName, HeaderValue};

/// The pairs of a header map, in order, repeated names kept.
pub fn to_pairs(headers: &HeaderMap) -> Vec<(String, Vec<u8>)> {
    headers
        .iter()
        .map(|(name, value)| (name.as_str().to_owned(), value.as_bytes().to_vec()))
        .collect()
}

/// A header map from pairs. Pairs `http` cannot represent are dropped
/// rather than trusted (the host and our own encoder validated them).
pub fn from_pairs(pairs: &[(String, Vec<u8>)]) -> HeaderMap {
    let mut map = HeaderMap::with_capacity(pairs.len());
    for (name, value) in pairs {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value),
        ) {
            map.append(name, value);
        }
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::headers;

    #[test]
    fn round_trip_keeps_order_and_repeats_and_drops_invalid_pairs() {
        let map = headers(&[
            ("set-cookie", "a=1"),
            ("set-cookie", "b=2"),
            ("etag", "\"x\""),
        ]);
        let mut pairs = to_pairs(&map);
        assert_eq!(from_pairs(&pairs), map);
        pairs.push(("bad name".into(), b"v".to_vec()));
        pairs.push(("x-ok".into(), b"bad\nvalue".to_vec()));
        assert_eq!(from_pairs(&pairs), map);
    }
}
