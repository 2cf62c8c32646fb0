//! Helpers shared by the unit tests.

use http::{HeaderMap, HeaderName, HeaderValue};

/// A header map from (name, value) pairs, appending repeated names.
pub fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).expect("test header name"),
            HeaderValue::from_str(value).expect("test header value"),
        );
    }
    map
}
