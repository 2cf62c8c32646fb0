//! The edge's scalar settings, read from Spin variables.
//!
//! Parsing is separate from the variable lookup so that every rule about a
//! setting (required, default, range, format) is tested natively. This
//! module is plain data and its parsing: the modules that act on a setting
//! (the breaker, the origin guard, forwarding) import it, never the reverse.

use std::time::Duration;

mod hosts;
pub(crate) mod last_good_rules;
mod origin;
mod protection;

pub use hosts::{HostVerdict, ServedHosts};
use origin::parse_origin_url;
pub use origin::{OriginAddress, OriginEndpoint, RequestTimeouts};
pub(crate) use protection::{BreakerPolicy, DEFAULT_BREAKER, Protection, StatusSet};

/// Every Spin variable the edge reads. An adapter whose variable lookup
/// is asynchronous (WASI 0.3) reads these first, then parses.
pub const VARIABLES: [&str; 23] = [
    "origin_url",
    "origin_timeout_ms",
    "origin_connect_timeout_ms",
    "backup_origin_url",
    "cache_rules",
    "store_name",
    "admin_path",
    "purge_token",
    "grace_seconds",
    "breaker_failures",
    "breaker_window_ms",
    "breaker_cooldown_ms",
    "breaker_status_codes",
    "origin_max_concurrent",
    "trusted_proxy_hops",
    "l1_capacity_bytes",
    "chunk_bytes",
    "shared_store",
    "purge_staleness_ms",
    "shield_store",
    "hosts",
    "forward_host",
    "node_name",
];

/// Default for `purge_staleness_ms`: how long a node reuses invalidation
/// state it read from a shared store (the bound on purge propagation).
pub(crate) const DEFAULT_PURGE_STALENESS: Duration = Duration::from_millis(100);

/// Longest staleness accepted: a purge that takes longer to reach every
/// node is hardly a purge.
const MAX_PURGE_STALENESS_MS: u64 = 60_000;

/// `backup_origin_url`'s default in the manifests: no backup. A valid
/// `allowed_outbound_hosts` entry (Spin checks templates against their
/// defaults) on a reserved name that never resolves (RFC 6761 `.invalid`).
pub(crate) const NO_BACKUP_ORIGIN: &str = "http://no-backup.invalid";

/// Default for `l1_capacity_bytes`: the first tier's bound per instance.
pub(crate) const DEFAULT_L1_CAPACITY_BYTES: u64 = 16 * 1024 * 1024;

/// Default for `chunk_bytes`: the size of the pieces a large object is
/// stored in. Well inside hosted Spin's 1 MB value limit with a chunk's
/// framing, and small enough that a range reads little it does not need.
pub(crate) const DEFAULT_CHUNK_BYTES: u64 = 512 * 1024;

/// The range `chunk_bytes` may take: a chunk must fit one store value
/// (1 MB on hosted Spin, framing included), and chunks much smaller than
/// a few KiB cost a store operation per few network packets.
const CHUNK_BYTES_RANGE: std::ops::RangeInclusive<u64> = 4096..=(1_000_000 - 64);

/// Largest first tier accepted: it lives in the instance's linear memory.
const MAX_L1_CAPACITY_BYTES: u64 = 1024 * 1024 * 1024;

/// Default for `origin_timeout_ms`: how long the origin has to start answering.
pub(crate) const DEFAULT_ORIGIN_TIMEOUT: Duration = Duration::from_millis(10_000);

/// Default for `origin_connect_timeout_ms`: a healthy origin accepts a
/// connection in well under this; waiting longer only queues clients.
pub(crate) const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_millis(3_000);

/// Longest timeout accepted; longer ones are almost surely a unit mistake.
const MAX_ORIGIN_TIMEOUT_MS: u64 = 10 * 60 * 1000;

/// Longest grace accepted: a week.
const MAX_GRACE_SECONDS: u64 = 7 * 24 * 3600;

/// Where the cache rules come from: the `cache_rules` variable holds a
/// path in the component's filesystem, or the rules JSON itself. Inline
/// rules cost no file read, which matters where every request is a fresh
/// instance (the WASI 0.2 flavour).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RulesSource {
    /// Empty: the built-in default rule.
    BuiltIn,
    /// A path to a JSON rules file.
    File(String),
    /// The JSON rules document itself (the value starts with `{`).
    Inline(String),
}

impl RulesSource {
    /// Reads the `cache_rules` value.
    pub fn of(value: &str) -> Self {
        let value = value.trim();
        if value.is_empty() {
            RulesSource::BuiltIn
        } else if value.starts_with('{') {
            RulesSource::Inline(value.to_owned())
        } else {
            RulesSource::File(value.to_owned())
        }
    }
}

/// Everything the edge needs to know before it handles a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EdgeConfig {
    /// The origin requests are forwarded to.
    pub(crate) origin: OriginAddress,
    /// How long the origin has to send its response head (and each later
    /// chunk of the body).
    pub(crate) origin_timeout: Duration,
    /// How long the origin has to accept a connection.
    pub(crate) connect_timeout: Duration,
    /// Where requests go when the origin fails (`backup_origin_url`).
    pub(crate) backup_origin: Option<OriginAddress>,
    /// Where the cache rules come from (`cache_rules`).
    pub(crate) cache_rules: RulesSource,
    /// The key-value store label (default `default`): where entries live.
    pub(crate) store_name: String,
    /// The store label holding invalidation state shared with other nodes
    /// (`shared_store`); `None` (empty, or the same as `store_name`): the
    /// one store holds everything.
    pub(crate) shared_store: Option<String>,
    /// How long a node may reuse invalidation state it read from the
    /// shared store (`purge_staleness_ms`, default 100; 0: read every time).
    pub(crate) purge_staleness: Duration,
    /// The store label of an entry tier shared by nodes (`shield_store`):
    /// a local miss is answered from another node's fill. `None` (empty,
    /// or one of the other two stores): off.
    pub(crate) shield_store: Option<String>,
    /// The purge API's path prefix (default `/_edge`).
    pub(crate) admin_path: String,
    /// The purge API's bearer token; `None` (empty) disables the API.
    pub(crate) purge_token: Option<String>,
    /// How long past its freshness a stored response may still be served
    /// when the origin fails, even without `stale-if-error` (Varnish's
    /// grace); `must-revalidate` and friends still forbid it.
    pub(crate) grace: Duration,
    /// The circuit breaker and concurrency cap for each origin.
    pub(crate) protection: Protection,
    /// How much of the client's `X-Forwarded-For`/`Via` the edge keeps
    /// (`trusted_proxy_hops`, default 0: none).
    pub(crate) trust: ForwardingTrust,
    /// Bytes of decoded entries an instance keeps in its own memory
    /// (`l1_capacity_bytes`; 0 turns the first tier off). Only an adapter
    /// whose instances serve many requests uses it.
    pub(crate) l1_capacity_bytes: usize,
    /// The size of the chunks a large object is stored in (`chunk_bytes`).
    pub(crate) chunk_bytes: usize,
    /// The hosts served and each one's key host (`hosts`; empty: any).
    pub(crate) hosts: ServedHosts,
    /// Whether the origin is asked with the site's host as `Host`
    /// (`forward_host`, nginx's `proxy_set_header Host $host`) rather than
    /// the origin URL's: the key host where `hosts` lists sites, else the
    /// client's.
    pub(crate) forward_host: bool,
    /// This node's name among the nodes sharing purge state (`node_name`):
    /// each records there the newest purge it has applied, for
    /// `{admin_path}/purges/{id}`; `None`: not recorded.
    pub(crate) node_name: Option<String>,
}

/// How much of the client's forwarding history the edge believes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ForwardingTrust {
    /// Proxies of the operator's in front of the edge (`trusted_proxy_hops`).
    /// 0: the peer is the client, and its `X-Forwarded-For` and `Via` are
    /// claims anyone can make. N: the last N `X-Forwarded-For` members were
    /// written by those proxies and are kept (as nginx's `real_ip` and
    /// Envoy's `xff_num_trusted_hops` do).
    pub(crate) trusted_proxy_hops: usize,
}

/// A setting that is missing or malformed; the message names the variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ConfigError {
    /// A required variable has no value.
    #[error("variable `{0}` is required but not set")]
    Missing(&'static str),
    /// A variable has a value that cannot be used.
    #[error("variable `{name}` is invalid: {reason}")]
    Invalid {
        name: &'static str,
        /// What is wrong with its value.
        reason: String,
    },
}

impl ConfigError {
    /// The variable the error is about.
    pub(crate) fn variable(&self) -> &'static str {
        match self {
            ConfigError::Missing(name) | ConfigError::Invalid { name, .. } => name,
        }
    }
}

impl EdgeConfig {
    /// Builds the configuration from a variable lookup (`None` = not set).
    pub(crate) fn from_variables(
        lookup: impl Fn(&'static str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let origin_url = lookup("origin_url")
            .filter(|v| !v.trim().is_empty())
            .ok_or(ConfigError::Missing("origin_url"))?;
        let origin = parse_origin_url(origin_url.trim())?;
        let origin_timeout = match lookup("origin_timeout_ms").filter(|v| !v.trim().is_empty()) {
            None => DEFAULT_ORIGIN_TIMEOUT,
            Some(raw) => parse_timeout_ms("origin_timeout_ms", raw.trim())?,
        };
        let connect_timeout =
            match lookup("origin_connect_timeout_ms").filter(|v| !v.trim().is_empty()) {
                None => DEFAULT_CONNECT_TIMEOUT.min(origin_timeout),
                Some(raw) => parse_timeout_ms("origin_connect_timeout_ms", raw.trim())?,
            };
        // The manifests list the backup in allowed_outbound_hosts, and Spin
        // refuses a template whose default renders as an invalid entry
        // (an empty one), so "no backup" is spelled as a valid URL that
        // can never be reached: NO_BACKUP_ORIGIN. Empty and the primary
        // itself mean the same.
        let no_backup = |raw: &str| {
            raw.is_empty()
                || raw == origin_url.trim()
                || raw
                    .trim_end_matches('/')
                    .eq_ignore_ascii_case(NO_BACKUP_ORIGIN)
        };
        let backup_origin = match lookup("backup_origin_url").map(|v| v.trim().to_owned()) {
            Some(raw) if !no_backup(&raw) => Some(parse_origin_url(&raw).map_err(|e| match e {
                ConfigError::Invalid { reason, .. } => ConfigError::Invalid {
                    name: "backup_origin_url",
                    reason,
                },
                other => other,
            })?),
            _ => None,
        };
        let cache_rules = RulesSource::of(&lookup("cache_rules").unwrap_or_default());
        let store_name = lookup("store_name")
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| "default".to_owned());
        let shared_store = lookup("shared_store")
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty() && *v != store_name);
        let shield_store = lookup("shield_store")
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty() && *v != store_name)
            .filter(|v| shared_store.as_ref() != Some(v));
        let admin_path = lookup("admin_path")
            .map(|v| v.trim().trim_end_matches('/').to_owned())
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| "/_edge".to_owned());
        if !admin_path.starts_with('/') {
            return Err(ConfigError::Invalid {
                name: "admin_path",
                reason: format!("must start with `/` (got `{admin_path}`)"),
            });
        }
        let purge_token = lookup("purge_token").filter(|v| !v.is_empty());
        let number = |name: &'static str, default: u64, max: u64| match lookup(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
        {
            None => Ok(default),
            Some(raw) => parse_bounded(name, &raw, max),
        };
        let grace = Duration::from_secs(number("grace_seconds", 0, MAX_GRACE_SECONDS)?);
        let breaker = BreakerPolicy {
            failures: number("breaker_failures", DEFAULT_BREAKER.failures.into(), 1_000)? as u32,
            window: Duration::from_millis(number(
                "breaker_window_ms",
                DEFAULT_BREAKER.window.as_millis() as u64,
                MAX_ORIGIN_TIMEOUT_MS,
            )?),
            cooldown: Duration::from_millis(number(
                "breaker_cooldown_ms",
                DEFAULT_BREAKER.cooldown.as_millis() as u64,
                MAX_ORIGIN_TIMEOUT_MS,
            )?),
            counted_statuses: match lookup("breaker_status_codes") {
                Some(raw) => StatusSet::parse(&raw).map_err(|reason| ConfigError::Invalid {
                    name: "breaker_status_codes",
                    reason,
                })?,
                None => DEFAULT_BREAKER.counted_statuses,
            },
        };
        let max_concurrent = match number("origin_max_concurrent", 0, 100_000)? {
            0 => None,
            cap => Some(cap as u32),
        };
        let protection = Protection {
            breaker,
            max_concurrent,
            // A fetch waits at most connect + first byte, then the body;
            // twice the timeout bounds it without cutting honest ones short.
            lease: origin_timeout * 2 + connect_timeout,
        };
        let trust = ForwardingTrust {
            trusted_proxy_hops: number("trusted_proxy_hops", 0, 16)? as usize,
        };
        let purge_staleness = Duration::from_millis(number(
            "purge_staleness_ms",
            DEFAULT_PURGE_STALENESS.as_millis() as u64,
            MAX_PURGE_STALENESS_MS,
        )?);
        let l1_capacity_bytes = number(
            "l1_capacity_bytes",
            DEFAULT_L1_CAPACITY_BYTES,
            MAX_L1_CAPACITY_BYTES,
        )? as usize;
        let chunk_bytes = number("chunk_bytes", DEFAULT_CHUNK_BYTES, *CHUNK_BYTES_RANGE.end())?;
        if !CHUNK_BYTES_RANGE.contains(&chunk_bytes) {
            return Err(ConfigError::Invalid {
                name: "chunk_bytes",
                reason: format!(
                    "must be at least {} (got {chunk_bytes})",
                    CHUNK_BYTES_RANGE.start()
                ),
            });
        }
        let hosts = ServedHosts::parse(&lookup("hosts").unwrap_or_default()).map_err(|reason| {
            ConfigError::Invalid {
                name: "hosts",
                reason,
            }
        })?;
        let forward_host = match lookup("forward_host").map(|v| v.trim().to_ascii_lowercase()) {
            None => false,
            Some(v) if v.is_empty() || v == "false" => false,
            Some(v) if v == "true" => true,
            Some(_) => {
                return Err(ConfigError::Invalid {
                    name: "forward_host",
                    reason: "expected `true` or `false`".to_owned(),
                });
            }
        };
        let node_name = match lookup("node_name").map(|v| v.trim().to_owned()) {
            None => None,
            Some(v) if v.is_empty() => None,
            Some(v)
                if v.len() <= 64
                    && v.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)) =>
            {
                Some(v)
            }
            Some(_) => {
                return Err(ConfigError::Invalid {
                    name: "node_name",
                    reason: "at most 64 letters, digits, `.`, `_` or `-`".to_owned(),
                });
            }
        };
        Ok(EdgeConfig {
            origin,
            origin_timeout,
            connect_timeout,
            backup_origin,
            cache_rules,
            store_name,
            shared_store,
            purge_staleness,
            shield_store,
            admin_path,
            purge_token,
            grace,
            protection,
            trust,
            l1_capacity_bytes,
            chunk_bytes: chunk_bytes as usize,
            hosts,
            forward_host,
            node_name,
        })
    }
}

/// Checks the edge's settings as the component reads them, for a runner
/// that validates a manifest without serving (`edge-host check`):
/// `lookup` gives a variable's value (`None`: not set); the error names
/// the variable and what is wrong, as the component's log would.
pub fn check_settings(lookup: impl Fn(&'static str) -> Option<String>) -> Result<(), String> {
    EdgeConfig::from_variables(lookup)
        .map(drop)
        .map_err(|e| e.to_string())
}

fn parse_timeout_ms(name: &'static str, raw: &str) -> Result<Duration, ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid { name, reason };
    let ms: u64 = raw.parse().map_err(|_| {
        invalid(format!(
            "expected milliseconds as a whole number, got `{raw}`"
        ))
    })?;
    if ms == 0 || ms > MAX_ORIGIN_TIMEOUT_MS {
        return Err(invalid(format!(
            "must be between 1 and {MAX_ORIGIN_TIMEOUT_MS} ms, got {ms}"
        )));
    }
    Ok(Duration::from_millis(ms))
}

fn parse_bounded(name: &'static str, raw: &str, max: u64) -> Result<u64, ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid { name, reason };
    let value: u64 = raw
        .parse()
        .map_err(|_| invalid(format!("expected a whole number, got `{raw}`")))?;
    if value > max {
        return Err(invalid(format!("must be at most {max}, got {value}")));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::uri::Scheme;

    fn config(vars: &[(&'static str, &str)]) -> Result<EdgeConfig, ConfigError> {
        let vars: Vec<(&'static str, String)> =
            vars.iter().map(|(k, v)| (*k, v.to_string())).collect();
        EdgeConfig::from_variables(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn origin_url_is_required() {
        assert_eq!(config(&[]), Err(ConfigError::Missing("origin_url")));
        assert_eq!(
            config(&[("origin_url", "  ")]),
            Err(ConfigError::Missing("origin_url"))
        );
    }

    #[test]
    fn origin_url_splits_into_parts() {
        let c = config(&[("origin_url", "http://127.0.0.1:8080")]).unwrap();
        assert_eq!(c.origin.scheme, Scheme::HTTP);
        assert_eq!(c.origin.authority.as_str(), "127.0.0.1:8080");
        assert_eq!(c.origin.target_for("/a?b=1"), "/a?b=1");
        assert_eq!(c.origin_timeout, DEFAULT_ORIGIN_TIMEOUT);
        assert_eq!(c.cache_rules, RulesSource::BuiltIn);
        assert_eq!(c.store_name, "default");
        let c = config(&[
            ("origin_url", "http://o"),
            ("cache_rules", "/rules/r.json"),
            ("store_name", "edge"),
        ])
        .unwrap();
        assert_eq!(c.cache_rules, RulesSource::File("/rules/r.json".into()));
        assert_eq!(c.store_name, "edge");
        assert_eq!(c.admin_path, "/_edge");
        assert_eq!(c.connect_timeout, DEFAULT_CONNECT_TIMEOUT);
        assert_eq!(c.backup_origin, None);
        assert_eq!(c.purge_token, None);
        let c = config(&[
            ("origin_url", "http://o"),
            ("admin_path", "/admin/"),
            ("purge_token", "t"),
        ])
        .unwrap();
        assert_eq!(c.admin_path, "/admin");
        assert_eq!(c.purge_token.as_deref(), Some("t"));
        assert!(config(&[("origin_url", "http://o"), ("admin_path", "admin")]).is_err());
    }

    #[test]
    fn origin_base_path_is_prefixed() {
        let c = config(&[("origin_url", "https://api.example/v1/")]).unwrap();
        assert_eq!(c.origin.target_for("/items"), "/v1/items");
    }

    #[test]
    fn bad_origin_urls_are_named() {
        for bad in [
            "127.0.0.1:8080",
            "ftp://host/",
            "http://user:pw@host/",
            "http://host/?x=1",
            "not a url",
        ] {
            let err = config(&[("origin_url", bad)]).unwrap_err();
            assert!(
                matches!(
                    err,
                    ConfigError::Invalid {
                        name: "origin_url",
                        ..
                    }
                ),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn backup_origin_is_optional_and_checked() {
        let same = config(&[
            ("origin_url", "http://a:1"),
            ("backup_origin_url", "http://a:1"),
        ])
        .unwrap();
        assert_eq!(
            same.backup_origin, None,
            "the primary itself means no backup"
        );
        let other = config(&[
            ("origin_url", "http://a:1"),
            ("backup_origin_url", "http://b:2"),
        ])
        .unwrap();
        assert_eq!(other.backup_origin.unwrap().authority.as_str(), "b:2");
        for none in [NO_BACKUP_ORIGIN, "HTTP://no-backup.invalid/", ""] {
            let c = config(&[("origin_url", "http://a:1"), ("backup_origin_url", none)]).unwrap();
            assert_eq!(c.backup_origin, None, "`{none}` means no backup");
        }
        let err =
            config(&[("origin_url", "http://a:1"), ("backup_origin_url", "b:2")]).unwrap_err();
        assert!(err.to_string().contains("backup_origin_url"), "{err}");
        let short = config(&[("origin_url", "http://a"), ("origin_timeout_ms", "500")]).unwrap();
        assert_eq!(
            short.connect_timeout,
            Duration::from_millis(500),
            "never longer than the first-byte timeout"
        );
    }

    #[test]
    fn timeout_is_parsed_and_bounded() {
        let c = config(&[("origin_url", "http://o"), ("origin_timeout_ms", "250")]).unwrap();
        assert_eq!(c.origin_timeout, Duration::from_millis(250));
        for bad in ["0", "-5", "1.5", "ten", "999999999"] {
            let err =
                config(&[("origin_url", "http://o"), ("origin_timeout_ms", bad)]).unwrap_err();
            assert!(
                err.to_string().contains("origin_timeout_ms"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn protection_has_defaults_and_checked_overrides() {
        let c = config(&[("origin_url", "http://o")]).unwrap();
        assert_eq!(c.grace, Duration::ZERO);
        assert_eq!(c.protection.breaker, DEFAULT_BREAKER);
        assert_eq!(c.protection.max_concurrent, None);
        let c = config(&[
            ("origin_url", "http://o"),
            ("grace_seconds", "30"),
            ("breaker_failures", "0"),
            ("breaker_cooldown_ms", "200"),
            ("origin_max_concurrent", "4"),
        ])
        .unwrap();
        assert_eq!(c.grace, Duration::from_secs(30));
        assert!(!c.protection.breaker.enabled());
        assert_eq!(c.protection.breaker.cooldown, Duration::from_millis(200));
        assert_eq!(c.protection.max_concurrent, Some(4));
        for (name, bad) in [
            ("grace_seconds", "-1"),
            ("breaker_failures", "many"),
            ("breaker_window_ms", "1e3"),
            ("origin_max_concurrent", "9999999"),
        ] {
            let err = config(&[("origin_url", "http://o"), (name, bad)]).unwrap_err();
            assert!(err.to_string().contains(name), "{name}={bad}: {err}");
        }
    }

    #[test]
    fn every_variable_read_is_listed() {
        let read = std::cell::RefCell::new(Vec::new());
        let _ = EdgeConfig::from_variables(|name| {
            read.borrow_mut().push(name);
            Some(match name {
                "origin_url" => "http://origin.test".to_owned(),
                _ => String::new(),
            })
        });
        let mut read = read.into_inner();
        read.sort();
        read.dedup();
        let mut listed = VARIABLES.to_vec();
        listed.sort();
        assert_eq!(read, listed);
    }

    #[test]
    fn forward_host_is_true_or_false() {
        let with = |value: &str| {
            EdgeConfig::from_variables(|name| match name {
                "origin_url" => Some("http://origin.test".into()),
                "forward_host" => Some(value.into()),
                _ => None,
            })
        };
        assert!(with(" TRUE ").unwrap().forward_host);
        assert!(!with("false").unwrap().forward_host);
        assert!(!with("").unwrap().forward_host);
        let error = with("yes").unwrap_err().to_string();
        assert!(
            error.contains("`forward_host`") && error.contains("`true` or `false`"),
            "{error}"
        );
    }

    #[test]
    fn cache_rules_are_a_path_or_the_json_itself() {
        assert_eq!(RulesSource::of(" "), RulesSource::BuiltIn);
        assert_eq!(
            RulesSource::of("/rules/cache-rules.json"),
            RulesSource::File("/rules/cache-rules.json".into())
        );
        assert_eq!(
            RulesSource::of(r#" {"rules": []} "#),
            RulesSource::Inline(r#"{"rules": []}"#.into())
        );
    }

    #[test]
    fn the_shared_store_is_another_label_and_its_staleness_is_bounded() {
        let c = config(&[("origin_url", "http://o")]).unwrap();
        assert_eq!(c.shared_store, None, "one store by default");
        assert_eq!(c.purge_staleness, DEFAULT_PURGE_STALENESS);
        let c = config(&[
            ("origin_url", "http://o"),
            ("shared_store", " shared "),
            ("purge_staleness_ms", "0"),
        ])
        .unwrap();
        assert_eq!(c.shared_store.as_deref(), Some("shared"));
        assert_eq!(c.purge_staleness, Duration::ZERO);
        let same = config(&[("origin_url", "http://o"), ("shared_store", "default")]).unwrap();
        assert_eq!(
            same.shared_store, None,
            "the entries' own store is no second store"
        );
        assert_eq!(c.shield_store, None, "no shield by default");
        let c = config(&[
            ("origin_url", "http://o"),
            ("shared_store", "shared"),
            ("shield_store", "shield"),
        ])
        .unwrap();
        assert_eq!(c.shield_store.as_deref(), Some("shield"));
        let c = config(&[
            ("origin_url", "http://o"),
            ("shared_store", "shared"),
            ("shield_store", "shared"),
        ])
        .unwrap();
        assert_eq!(
            c.shield_store, None,
            "purge times must not share an evicting store"
        );
        let err =
            config(&[("origin_url", "http://o"), ("purge_staleness_ms", "600000")]).unwrap_err();
        assert!(err.to_string().contains("purge_staleness_ms"), "{err}");
    }
}
