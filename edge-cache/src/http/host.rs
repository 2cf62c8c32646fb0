//! The host (a request's authority) spelled one way: lower case (RFC 3986
//! §6.2.2.1), without the scheme's default port (§6.2.3) or a trailing
//! dot, so that equivalent spellings name one site in cache keys,
//! forwarded fields and the connection facts the adapters read.

/// The host as keys and forwarded fields spell it: lower case, without a
/// trailing dot on the name and without the scheme's default port.
pub fn canonical_host(scheme: &str, host: &str) -> String {
    // Trailing dots (and blanks among them) go before the port is split
    // off and again after, or `h:80.` would become `h:80` and only a second
    // pass would drop the default port (fuzz target cache_key).
    let trailing = |c: char| c == '.' || c.is_whitespace();
    let host = host.trim().trim_end_matches(trailing).to_ascii_lowercase();
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port))
            if !port.is_empty()
                && port.bytes().all(|b| b.is_ascii_digit())
                && (!name.contains(':') || name.ends_with(']')) =>
        {
            (name, Some(port))
        }
        _ => (host.as_str(), None),
    };
    let name = name.trim_end_matches(trailing);
    let default_port = if scheme.eq_ignore_ascii_case("https") {
        "443"
    } else {
        "80"
    };
    // Most hosts come out as they went in (lower case already, nothing
    // trimmed): then the lowered copy is the answer, without another.
    let spelled = match port {
        Some(port) if port != default_port => {
            (name.len() + 1 + port.len() != host.len()).then(|| format!("{name}:{port}"))
        }
        _ => (name.len() != host.len()).then(|| name.to_owned()),
    };
    spelled.unwrap_or(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_spelled_one_way() {
        let table = [
            ("http", "Shop.EXAMPLE.", "shop.example"),
            ("http", "shop.example:80", "shop.example"),
            ("http", "Shop.Example.:80", "shop.example"),
            ("https", "shop.example:443", "shop.example"),
            ("https", "shop.example:80", "shop.example:80"),
            ("http", "[::1]:80", "[::1]"),
            ("http", "[::1]:8080", "[::1]:8080"),
            ("http", "[::1]", "[::1]"),
        ];
        for (scheme, host, expected) in table {
            assert_eq!(canonical_host(scheme, host), expected, "{scheme} {host}");
        }
    }

    #[test]
    fn canonical_host_is_a_fixed_point() {
        // Found by the cache_key fuzz target: dots (and blanks) after the
        // default port.
        for host in [
            "[::2]:80..",
            "shop.example:80.",
            "Shop.Example.:80.",
            "h/\u{c}..",
            "h .:80",
            "h. .",
        ] {
            let once = canonical_host("http", host);
            assert_eq!(canonical_host("http", &once), once, "{host}");
        }
        assert_eq!(canonical_host("http", "shop.example:80."), "shop.example");
        assert_eq!(canonical_host("http", "[::2]:80.."), "[::2]");
    }
}
