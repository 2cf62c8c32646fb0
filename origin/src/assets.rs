//! The asset manifest: every file under the static directory gets a
//! content-hashed name (`js/app.js` → `js/app.3f2a1b9c0d4e5f60.js`), so
//! pages can link a URL that never changes meaning and caches may keep it
//! for a year.
//!
//! Built once at start: the bytes served under a hashed name are the bytes
//! that were hashed, whatever happens to the file afterwards.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::SystemTime;

use bytes::Bytes;

use crate::error::{Error, Result};

/// Files above this are left out of the manifest (served by plain name
/// only), so start-up never reads a huge file into memory.
pub const MAX_ASSET_BYTES: u64 = 16 * 1024 * 1024;
/// Hex digits of the blake3 hash in a hashed name (the edge recognises a
/// versioned name by a dot-separated part of at least 8 hex digits).
pub const HASH_HEX_DIGITS: usize = 16;

/// One asset under its hashed name.
#[derive(Debug, Clone)]
pub struct Asset {
    /// Its plain path below the static root (`js/app.js`).
    pub logical: String,
    /// The bytes that were hashed.
    pub bytes: Bytes,
    /// `Content-Type`.
    pub content_type: String,
    /// The file's modification time at start.
    pub modified: SystemTime,
}

/// Plain and hashed names of the static files.
#[derive(Debug, Clone, Default)]
pub struct Manifest {
    /// Plain path → hashed path.
    hashed: BTreeMap<String, String>,
    /// Hashed path → asset.
    assets: BTreeMap<String, Asset>,
    newest: Option<SystemTime>,
    /// Where browsers load assets from (the edge's URL, no trailing `/`);
    /// `None`: from the host that served the page.
    edge: Option<String>,
}

/// `js/app.js` + hash → `js/app.<hash>.js`; the hash goes before the last
/// extension, or at the end of a name without one.
pub fn hashed_name(logical: &str, hash_hex: &str) -> String {
    let (dir, file) = match logical.rsplit_once('/') {
        Some((dir, file)) => (format!("{dir}/"), file),
        None => (String::new(), logical),
    };
    match file.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => format!("{dir}{stem}.{hash_hex}.{ext}"),
        _ => format!("{dir}{file}.{hash_hex}"),
    }
}

impl Manifest {
    /// Hashes every regular file under `root` (hidden files and symbolic
    /// links are skipped: neither is meant to be published).
    pub fn build(root: &Path) -> Result<Manifest> {
        let mut manifest = Manifest::default();
        let mut stack = vec![(root.to_path_buf(), String::new())];
        while let Some((dir, prefix)) = stack.pop() {
            let entries = std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))?;
            for entry in entries {
                let entry = entry.map_err(|e| Error::io(&dir, e))?;
                let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                    continue;
                };
                let path = entry.path();
                let meta = std::fs::symlink_metadata(&path).map_err(|e| Error::io(&path, e))?;
                if name.starts_with('.') || meta.file_type().is_symlink() {
                    continue;
                }
                let logical = format!("{prefix}{name}");
                if meta.is_dir() {
                    stack.push((path, format!("{logical}/")));
                } else if meta.is_file() && meta.len() <= MAX_ASSET_BYTES {
                    let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
                    let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                    manifest.insert(logical, Bytes::from(bytes), modified);
                }
            }
        }
        Ok(manifest)
    }

    fn insert(&mut self, logical: String, bytes: Bytes, modified: SystemTime) {
        let hash = blake3::hash(&bytes).to_hex();
        let hashed = hashed_name(&logical, &hash[..HASH_HEX_DIGITS]);
        let asset = Asset {
            content_type: crate::static_files::content_type(Path::new(&logical)),
            logical: logical.clone(),
            bytes,
            modified,
        };
        self.newest = self.newest.max(Some(modified));
        self.hashed.insert(logical, hashed.clone());
        self.assets.insert(hashed, asset);
    }

    /// Links assets at `edge` (`http://host[:port]`), with a fallback to
    /// the origin (see `asset_fallback`); an empty `edge` links plain paths.
    pub fn with_edge(mut self, edge: &str) -> Manifest {
        let edge = edge.trim_end_matches('/');
        self.edge = (!edge.is_empty()).then(|| edge.to_owned());
        self
    }

    /// The edge assets are linked at, if any.
    pub fn edge_base(&self) -> Option<&str> {
        self.edge.as_deref()
    }

    /// The URL to link for a plain path: the hashed one when known.
    pub fn url(&self, logical: &str) -> String {
        let path = self.hashed.get(logical).map_or(logical, String::as_str);
        format!("/static/{path}")
    }

    /// [`url`](Self::url) at the edge, if assets are linked there.
    pub fn edge_url(&self, logical: &str) -> Option<String> {
        Some(format!("{}{}", self.edge.as_deref()?, self.url(logical)))
    }

    /// The asset under a hashed path (below `/static/`).
    pub fn by_hashed(&self, hashed: &str) -> Option<&Asset> {
        self.assets.get(hashed)
    }

    /// The newest asset's time: pages embed asset URLs, so they changed at
    /// least then.
    pub fn newest(&self) -> SystemTime {
        self.newest.unwrap_or(SystemTime::UNIX_EPOCH)
    }

    /// `{"js/app.js": "/static/js/app.<hash>.js", ...}`.
    pub fn to_json(&self) -> String {
        let urls: BTreeMap<&str, String> = self
            .hashed
            .keys()
            .map(|logical| (logical.as_str(), self.url(logical)))
            .collect();
        serde_json::to_string_pretty(&urls).unwrap_or_else(|_| "{}".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashed_names_keep_the_extension() {
        assert_eq!(
            hashed_name("js/app.js", "0123456789abcdef"),
            "js/app.0123456789abcdef.js"
        );
        assert_eq!(hashed_name("a.min.css", "ab12ab12"), "a.min.ab12ab12.css");
        assert_eq!(hashed_name("LICENSE", "ab12ab12"), "LICENSE.ab12ab12");
        assert_eq!(hashed_name("d/.env", "ab12ab12"), "d/.env.ab12ab12");
    }

    #[test]
    fn builds_from_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("js")).unwrap();
        std::fs::write(dir.path().join("js/app.js"), "console.log(1)").unwrap();
        std::fs::write(dir.path().join(".secret"), "x").unwrap();
        let manifest = Manifest::build(dir.path()).unwrap();
        let url = manifest.url("js/app.js");
        let hash = &blake3::hash(b"console.log(1)").to_hex()[..16];
        assert_eq!(url, format!("/static/js/app.{hash}.js"));
        let asset = manifest
            .by_hashed(url.strip_prefix("/static/").unwrap())
            .unwrap();
        assert_eq!(asset.logical, "js/app.js");
        assert_eq!(&asset.bytes[..], b"console.log(1)");
        assert!(asset.content_type.starts_with("text/javascript"));
        assert_eq!(manifest.url(".secret"), "/static/.secret");
        assert_eq!(manifest.edge_url("js/app.js"), None);
        let manifest = manifest.with_edge("http://edge:3000/");
        assert_eq!(
            manifest.edge_url("js/app.js"),
            Some(format!("http://edge:3000{url}"))
        );
        assert_eq!(manifest.clone().with_edge("").edge_url("js/app.js"), None);
        assert_eq!(manifest.url("missing.css"), "/static/missing.css");
        assert!(
            manifest
                .to_json()
                .contains(&format!("\"js/app.js\": \"{url}\""))
        );
    }
}
