//! `allowed_outbound_hosts`: which origins a component may send requests to.
//!
//! Spin's syntax: `scheme://host[:port]`, where the scheme, the host (or a
//! leading `*.` label) and the port may be `*`. A missing port means the
//! scheme's default. The list is data checked in one place, here.

use http::Uri;

/// One allowed destination.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AllowedHost {
    scheme: Pattern,
    host: HostPattern,
    port: Pattern,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    Any,
    Exact(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Any,
    /// `*.example.com`: any subdomain, not the apex.
    Subdomains(String),
    Exact(String),
}

/// A component's allow-list, parsed once at start-up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedHosts {
    entries: Vec<AllowedHost>,
}

/// An entry that is not `scheme://host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("allowed_outbound_hosts: `{entry}`: {reason}")]
pub struct AllowedHostError {
    entry: String,
    reason: String,
}

impl AllowedHosts {
    /// Parses resolved entries (templates already expanded).
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, AllowedHostError> {
        let entries = entries
            .iter()
            .map(|e| parse_entry(e.as_ref()))
            .collect::<Result<_, _>>()?;
        Ok(AllowedHosts { entries })
    }

    /// Spin's load-time check of one `allowed_outbound_hosts` template:
    /// rendered with the variables' manifest defaults alone, it must be a
    /// valid entry, whatever values the variables get at run time (Spin 4
    /// refuses the application otherwise, even when the variable is set).
    /// `rendered_with_defaults` is `None` when a variable it names has no
    /// default; then, as in Spin, there is nothing to check.
    pub fn check_template(
        template: &str,
        rendered_with_defaults: Option<&str>,
    ) -> Result<(), String> {
        let Some(rendered) = rendered_with_defaults else {
            return Ok(());
        };
        parse_entry(rendered).map(drop).map_err(|e| {
            format!(
                "allowed_outbound_hosts: using default variable value(s) with template \
                 {template:?} results in invalid config {rendered:?} ({}); give the \
                 variable a default that is a valid entry, as Spin requires",
                e.reason
            )
        })
    }

    /// Whether a request to `uri` is allowed.
    pub fn allows(&self, uri: &Uri) -> bool {
        let (Some(scheme), Some(host)) = (uri.scheme_str(), uri.host()) else {
            return false;
        };
        let scheme = scheme.to_ascii_lowercase();
        let host = host.to_ascii_lowercase();
        let port = uri
            .port_u16()
            .or_else(|| default_port(&scheme))
            .map(|p| p.to_string());
        self.entries.iter().any(|entry| {
            let scheme_ok = match &entry.scheme {
                Pattern::Any => true,
                Pattern::Exact(s) => *s == scheme,
            };
            let host_ok = match &entry.host {
                HostPattern::Any => true,
                HostPattern::Exact(h) => *h == host,
                HostPattern::Subdomains(apex) => host
                    .strip_suffix(apex.as_str())
                    .is_some_and(|sub| !sub.is_empty()),
            };
            let port_ok = match (&entry.port, &port) {
                (Pattern::Any, _) => true,
                (Pattern::Exact(p), Some(actual)) => p == actual,
                (Pattern::Exact(_), None) => false,
            };
            scheme_ok && host_ok && port_ok
        })
    }
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

fn parse_entry(entry: &str) -> Result<AllowedHost, AllowedHostError> {
    let fail = |reason: &str| AllowedHostError {
        entry: entry.to_owned(),
        reason: reason.to_owned(),
    };
    let (scheme, rest) = entry
        .split_once("://")
        .ok_or_else(|| fail("expected scheme://host[:port]"))?;
    let rest = rest.trim_end_matches('/');
    if rest.contains('/') || rest.contains('@') || rest.contains('?') {
        return Err(fail(
            "only scheme, host and port are allowed; no path, query or user",
        ));
    }
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "*" => Pattern::Any,
        s if !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) =>
        {
            Pattern::Exact(s.to_owned())
        }
        _ => return Err(fail("bad scheme")),
    };
    let (host, port) = split_host_port(rest).ok_or_else(|| fail("bad host or port"))?;
    let host = host.to_ascii_lowercase();
    let host = if host == "*" {
        HostPattern::Any
    } else if let Some(apex) = host.strip_prefix("*.") {
        if apex.is_empty() || apex.contains('*') {
            return Err(fail("bad wildcard host"));
        }
        HostPattern::Subdomains(format!(".{apex}"))
    } else if host.is_empty() || host.contains('*') {
        return Err(fail("bad host"));
    } else {
        HostPattern::Exact(host)
    };
    let port = match port {
        Some("*") => Pattern::Any,
        Some(p) => {
            let n: u16 = p.parse().map_err(|_| fail("bad port"))?;
            Pattern::Exact(n.to_string())
        }
        None => match &scheme {
            Pattern::Exact(s) => match default_port(s) {
                Some(p) => Pattern::Exact(p.to_string()),
                None => return Err(fail("a port is needed for this scheme")),
            },
            Pattern::Any => return Err(fail("a port is needed with scheme `*`")),
        },
    };
    Ok(AllowedHost { scheme, host, port })
}

/// Splits `host[:port]`, keeping IPv6 literals (`[::1]:80`) whole.
fn split_host_port(rest: &str) -> Option<(&str, Option<&str>)> {
    if let Some(v6) = rest.strip_prefix('[') {
        let (addr, after) = v6.split_once(']')?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?),
        };
        // `http::Uri::host()` keeps the brackets, so compare with them.
        let _ = addr;
        return Some((&rest[..addr.len() + 2], port));
    }
    match rest.rsplit_once(':') {
        Some((host, port)) => Some((host, Some(port))),
        None => Some((rest, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_template_is_checked_with_the_defaults_as_spin_checks_it() {
        assert!(
            AllowedHosts::check_template("{{ origin_url }}", Some("http://127.0.0.1:8080")).is_ok()
        );
        assert!(AllowedHosts::check_template("{{ required_url }}", None).is_ok());
        let err = AllowedHosts::check_template("{{ backup_origin_url }}", Some("")).unwrap_err();
        assert!(
            err.contains(r#"using default variable value(s) with template "{{ backup_origin_url }}" results in invalid config """#),
            "{err}"
        );
    }

    fn allows(list: &[&str], uri: &str) -> bool {
        AllowedHosts::parse(list)
            .unwrap()
            .allows(&uri.parse().unwrap())
    }

    #[test]
    fn exact_entries_match_scheme_host_and_port() {
        let list = ["http://127.0.0.1:8080"];
        assert!(allows(&list, "http://127.0.0.1:8080/x"));
        assert!(!allows(&list, "http://127.0.0.1:8081/x"));
        assert!(!allows(&list, "https://127.0.0.1:8080/x"));
        assert!(!allows(&list, "http://127.0.0.2:8080/x"));
    }

    #[test]
    fn missing_port_means_the_default() {
        let list = ["https://api.example.com"];
        assert!(allows(&list, "https://api.example.com/"));
        assert!(allows(&list, "https://API.example.com:443/"));
        assert!(!allows(&list, "https://api.example.com:8443/"));
    }

    #[test]
    fn wildcards() {
        assert!(allows(&["*://localhost:*"], "http://localhost:1234/"));
        assert!(allows(&["http://*:80"], "http://anything/"));
        let subs = ["https://*.example.com"];
        assert!(allows(&subs, "https://a.example.com/"));
        assert!(allows(&subs, "https://a.b.example.com/"));
        assert!(!allows(&subs, "https://example.com/"));
        assert!(!allows(&subs, "https://evilexample.com/"));
        assert!(allows(&["http://[::1]:8080"], "http://[::1]:8080/"));
    }

    #[test]
    fn empty_list_allows_nothing() {
        assert!(!allows(&[], "http://127.0.0.1:8080/"));
    }

    #[test]
    fn malformed_entries_are_named() {
        for bad in [
            "127.0.0.1:8080",
            "http://host/path",
            "http://host:port",
            "*://host",
            "http://*.*",
            "ftp://h",
            "http://u@h",
        ] {
            let err = AllowedHosts::parse(&[bad]).unwrap_err();
            assert!(err.to_string().contains(bad), "{err}");
        }
    }
}
