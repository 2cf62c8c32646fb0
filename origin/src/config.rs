//! Origin settings.

use std::path::PathBuf;
use std::time::Duration;

use http::{HeaderValue, Uri};

use crate::backoff::Backoff;
use crate::error::{Error, Result};

/// The admin token when none is given: for local development only (the
/// origin logs a warning when it is in use).
pub const DEV_ADMIN_TOKEN: &str = "dev-admin-token";
/// Largest admin request body.
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024;

/// Everything the origin needs to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// The SQLite database (created, with its directory, if missing).
    pub db_path: PathBuf,
    /// Static assets, served under `/static/`.
    pub static_dir: PathBuf,
    /// Products loaded into a new database.
    pub seed_path: PathBuf,
    /// Bearer token of `/admin/...`; must not be empty.
    pub admin_token: String,
    /// Largest admin request body, in bytes.
    pub max_body_bytes: usize,
    /// Where purges go.
    pub edge: EdgeTarget,
    /// Where browsers load the pages' assets from (`asset_fallback`): the
    /// edge's public URL, `http(s)://host[:port]`. `None`: the edge's URL
    /// ([`EdgeTarget::url`]); empty: plain paths on whichever host served
    /// the page.
    pub asset_url: Option<String>,
}

/// The edge's purge API and how to deliver to it.
#[derive(Debug, Clone)]
pub struct EdgeTarget {
    /// The edge's base URL (`http://host:port`).
    pub url: String,
    /// The edge's admin path (its `admin_path` variable).
    pub admin_path: String,
    /// The edge's `purge_token`. Empty: purges are still recorded in the
    /// outbox but not sent, and go out once an origin with a token runs.
    pub purge_token: String,
    /// Retry schedule.
    pub backoff: Backoff,
    /// Longest wait for the edge's answer.
    pub timeout: Duration,
}

impl Default for EdgeTarget {
    fn default() -> Self {
        EdgeTarget {
            url: "http://127.0.0.1:3000".into(),
            admin_path: "/_edge".into(),
            purge_token: String::new(),
            backoff: Backoff::default(),
            timeout: Duration::from_secs(5),
        }
    }
}

impl Config {
    /// Development defaults around a database, asset directory and seed.
    pub fn new(db_path: PathBuf, static_dir: PathBuf, seed_path: PathBuf) -> Config {
        Config {
            db_path,
            static_dir,
            seed_path,
            admin_token: DEV_ADMIN_TOKEN.into(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            edge: EdgeTarget::default(),
            asset_url: None,
        }
    }

    /// The base URL pages link assets at, checked; `""` for plain paths.
    pub fn asset_base(&self) -> Result<String> {
        let base = self.asset_url.as_deref().unwrap_or(&self.edge.url);
        let base = base.trim_end_matches('/');
        if base.is_empty() {
            return Ok(String::new());
        }
        let valid = base.parse::<Uri>().is_ok_and(|uri| {
            matches!(uri.scheme_str(), Some("http" | "https"))
                && uri.host().is_some()
                && uri.path_and_query().is_none_or(|p| p.as_str() == "/")
        });
        if !valid {
            return Err(Error::Config(format!(
                "asset URL `{base}` must be http(s)://host[:port]"
            )));
        }
        Ok(base.to_owned())
    }
}

/// Where and how to send purges, checked.
#[derive(Debug, Clone)]
pub struct PurgeEndpoint {
    /// `{url}{admin_path}/purge`.
    pub uri: Uri,
    /// `Bearer {purge_token}`.
    pub authorization: HeaderValue,
}

impl EdgeTarget {
    /// The purge endpoint, or `None` when no token is configured.
    pub fn endpoint(&self) -> Result<Option<PurgeEndpoint>> {
        if self.purge_token.is_empty() {
            return Ok(None);
        }
        if !self.admin_path.starts_with('/') {
            return Err(Error::Config(format!(
                "edge admin path `{}` must start with `/`",
                self.admin_path
            )));
        }
        let text = format!(
            "{}{}/purge",
            self.url.trim_end_matches('/'),
            self.admin_path.trim_end_matches('/')
        );
        let uri: Uri = text
            .parse()
            .map_err(|e| Error::Config(format!("edge URL `{}`: {e}", self.url)))?;
        // The delivery client speaks plain HTTP: edges on other hosts sit
        // behind a TLS-terminating proxy, not in this process.
        if uri.scheme_str() != Some("http") || uri.host().is_none() {
            return Err(Error::Config(format!(
                "edge URL `{}` must be http://host[:port]",
                self.url
            )));
        }
        let authorization = HeaderValue::from_str(&format!("Bearer {}", self.purge_token))
            .map_err(|_| {
                Error::Config("purge token has characters a header cannot carry".into())
            })?;
        Ok(Some(PurgeEndpoint { uri, authorization }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(url: &str, token: &str) -> EdgeTarget {
        EdgeTarget {
            url: url.into(),
            purge_token: token.into(),
            ..Default::default()
        }
    }

    #[test]
    fn endpoint_joins_url_and_admin_path() {
        let e = target("http://127.0.0.1:3000/", "t")
            .endpoint()
            .unwrap()
            .unwrap();
        assert_eq!(e.uri, "http://127.0.0.1:3000/_edge/purge");
        assert_eq!(e.authorization, "Bearer t");
        assert!(target("http://x", "").endpoint().unwrap().is_none());
        for bad in [
            "https://edge.example",
            "127.0.0.1:3000",
            "http://",
            "not a url",
        ] {
            assert!(target(bad, "t").endpoint().is_err(), "{bad}");
        }
        assert!(target("http://x", "a\nb").endpoint().is_err());
    }

    #[test]
    fn assets_are_linked_at_the_edge_unless_told_otherwise() {
        let mut config = Config::new("db".into(), "static".into(), "seed".into());
        assert_eq!(config.asset_base().unwrap(), "http://127.0.0.1:3000");
        config.asset_url = Some("https://cdn.example/".into());
        assert_eq!(config.asset_base().unwrap(), "https://cdn.example");
        config.asset_url = Some(String::new());
        assert_eq!(config.asset_base().unwrap(), "");
        for bad in [
            "cdn.example",
            "ftp://cdn.example",
            "http://cdn.example/a",
            "http://",
        ] {
            config.asset_url = Some(bad.into());
            assert!(config.asset_base().is_err(), "{bad}");
        }
    }
}
