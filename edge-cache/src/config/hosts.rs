//! The hosts the edge serves (`hosts`): sites, each a key host and its
//! aliases (`www.` and the apex, an IP address), so that every spelling of
//! one site shares its cache entries and its purges; a host outside the
//! list is not served at all (`421 Misdirected Request`), so that nobody
//! can fill the cache with copies under names the operator never chose.
//!
//! The value lists sites separated by commas, each site's names separated
//! by blanks, its key host first:
//! `shop.example www.shop.example 203.0.113.7, blog.example`. Empty: any
//! host is served, each under its own name (the edge's behaviour before
//! the list existed).

use std::collections::HashMap;

use crate::http::host::canonical_host;

/// The served hosts, each mapped to its site's key host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServedHosts {
    /// Every name (key hosts and aliases), spelled as [`normalise`] spells
    /// it, to its site's key host. Empty: any host is served.
    names: HashMap<String, String>,
}

/// What the edge does with a request's host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostVerdict {
    /// Serve it, keyed (and purged) under this host.
    Serve(String),
    /// Not one of the served hosts: answer `421` without touching the
    /// cache or the origin.
    Misdirected,
}

/// A host name as the list compares it: the request's own canonical
/// spelling (lower case, no trailing dot), without port 80 or 443, so an
/// entry written either way matches the default port of either scheme.
fn normalise(name: &str) -> String {
    canonical_host("http", &canonical_host("https", name))
}

impl ServedHosts {
    /// Reads the `hosts` value; a name that cannot be a host is refused
    /// with the reason, and so is one listed twice (which site would it
    /// key under?).
    pub fn parse(value: &str) -> Result<ServedHosts, String> {
        let mut names = HashMap::new();
        for site in value.split(',') {
            let mut spellings = site.split_whitespace();
            let Some(first) = spellings.next() else {
                continue;
            };
            let key = normalise(first);
            for name in std::iter::once(first).chain(spellings) {
                let normalised = normalise(name);
                if normalised.is_empty()
                    || normalised.contains(['/', '?', '#', '@'])
                    || normalised.chars().any(|c| c.is_control())
                {
                    return Err(format!("`{name}` is not a host name"));
                }
                if normalised.contains('*') {
                    return Err(format!(
                        "`{name}`: wildcards are not supported; list each name"
                    ));
                }
                if names.insert(normalised, key.clone()).is_some() {
                    return Err(format!("`{name}` is listed twice"));
                }
            }
        }
        Ok(ServedHosts { names })
    }

    /// Whether every host is served (no list).
    pub fn any(&self) -> bool {
        self.names.is_empty()
    }

    /// What to do with a request for `host` (as the request spells it,
    /// canonical; `None`: it named none).
    pub fn verdict(&self, host: Option<&str>) -> HostVerdict {
        if self.any() {
            return HostVerdict::Serve(host.unwrap_or_default().to_owned());
        }
        match host.and_then(|host| self.names.get(&normalise(host))) {
            Some(key) => HostVerdict::Serve(key.clone()),
            None => HostVerdict::Misdirected,
        }
    }

    /// The key host a purge URL on `host` is purged under, if it is
    /// served: with no list, only the purge request's own `request_host`
    /// (anything else could not be one of its entries' names).
    pub fn purge_host(&self, host: &str, request_host: &str) -> Option<String> {
        if self.any() {
            let same = normalise(host) == normalise(request_host);
            return same.then(|| request_host.to_owned());
        }
        self.names.get(&normalise(host)).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shop() -> ServedHosts {
        ServedHosts::parse("shop.example www.shop.example 203.0.113.7, Blog.Example.:80").unwrap()
    }

    #[test]
    fn aliases_map_to_their_site_s_key_host() {
        let hosts = shop();
        let table = [
            (
                Some("shop.example"),
                HostVerdict::Serve("shop.example".into()),
            ),
            (
                Some("www.shop.example"),
                HostVerdict::Serve("shop.example".into()),
            ),
            (
                Some("203.0.113.7"),
                HostVerdict::Serve("shop.example".into()),
            ),
            (
                Some("www.shop.example:443"),
                HostVerdict::Serve("shop.example".into()),
            ),
            (
                Some("blog.example"),
                HostVerdict::Serve("blog.example".into()),
            ),
            (Some("shop.example:8080"), HostVerdict::Misdirected),
            (Some("evil.example"), HostVerdict::Misdirected),
            (None, HostVerdict::Misdirected),
        ];
        for (host, expected) in table {
            assert_eq!(hosts.verdict(host), expected, "{host:?}");
        }
    }

    #[test]
    fn no_list_serves_every_host_under_its_own_name() {
        let hosts = ServedHosts::parse("  ").unwrap();
        assert!(hosts.any());
        assert_eq!(
            hosts.verdict(Some("anything.example")),
            HostVerdict::Serve("anything.example".into())
        );
        assert_eq!(hosts.verdict(None), HostVerdict::Serve(String::new()));
    }

    #[test]
    fn purge_hosts_are_served_hosts_or_without_a_list_the_request_s_own() {
        let hosts = shop();
        assert_eq!(
            hosts
                .purge_host("WWW.shop.example", "blog.example")
                .as_deref(),
            Some("shop.example")
        );
        assert_eq!(hosts.purge_host("evil.example", "shop.example"), None);
        let any = ServedHosts::default();
        assert_eq!(
            any.purge_host("Shop.Example", "shop.example").as_deref(),
            Some("shop.example")
        );
        assert_eq!(any.purge_host("evil.example", "shop.example"), None);
    }

    #[test]
    fn bad_lists_say_what_is_wrong() {
        for (value, needle) in [
            (
                "shop.example www.shop.example, www.shop.example",
                "listed twice",
            ),
            ("shop.example/path", "not a host name"),
            ("user@shop.example", "not a host name"),
            ("*.shop.example", "wildcards are not supported"),
        ] {
            let error = ServedHosts::parse(value).unwrap_err();
            assert!(error.contains(needle), "{value}: {error}");
        }
        assert!(ServedHosts::parse("a.example,, b.example ,").is_ok());
    }
}
