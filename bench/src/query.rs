//! The few query parameters the benchmark servers understand (`size`, `tag`,
//! `ttl`). Values are plain tokens chosen by the harness, so there is no
//! percent-decoding.

/// Every value of parameter `name`, in order.
pub fn values<'a>(query: Option<&'a str>, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    query.unwrap_or("").split('&').filter_map(move |pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then_some(value)
    })
}

/// The first value of `name` as a number; `default` when absent, `None` when
/// present but not a number.
pub fn number(query: Option<&str>, name: &str, default: u64) -> Option<u64> {
    match values(query, name).next() {
        None => Some(default),
        Some(value) => value.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_and_missing_parameters() {
        let q = Some("size=64&tag=a&x&tag=b&ttl=");
        assert_eq!(values(q, "tag").collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(values(q, "x").collect::<Vec<_>>(), [""]);
        assert_eq!(values(None, "tag").count(), 0);
        assert_eq!(number(q, "size", 1024), Some(64));
        assert_eq!(number(q, "other", 1024), Some(1024));
        assert_eq!(number(q, "ttl", 1), None);
        assert_eq!(number(Some("size=big"), "size", 1), None);
    }
}
