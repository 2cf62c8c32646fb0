//! The manifest's `files`: host directories mounted read-only into each
//! instance's filesystem. WASI mounts directories, so a single file is
//! staged (copied) into a directory of its own at start-up.

use std::path::{Path, PathBuf};

use anyhow::bail;
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

use crate::manifest::FileMountDoc;

/// One directory of the host seen by the guest at `guest`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Mount {
    host: PathBuf,
    guest: String,
}

/// A component's mounts, resolved and staged once at start-up.
#[derive(Debug, Clone, Default)]
pub struct FileMounts(Vec<Mount>);

impl FileMounts {
    /// Resolves `files` entries against `manifest_dir`; single files are
    /// copied under `staging`.
    pub fn resolve(
        manifest_dir: &Path,
        files: &[FileMountDoc],
        staging: &Path,
    ) -> anyhow::Result<Self> {
        let mut mounts: Vec<Mount> = Vec::new();
        for file in files {
            match file {
                FileMountDoc::Mapped {
                    source,
                    destination,
                } => {
                    let host = manifest_dir.join(source);
                    if !host.is_dir() {
                        bail!("`{source}` is not a directory");
                    }
                    if !destination.starts_with('/') {
                        bail!("destination `{destination}` must be an absolute path");
                    }
                    mounts.push(Mount {
                        host,
                        guest: destination.clone(),
                    });
                }
                FileMountDoc::Path(path) => {
                    let host = manifest_dir.join(path);
                    let guest =
                        format!("/{}", path.trim_start_matches("./").trim_start_matches('/'));
                    if host.is_dir() {
                        mounts.push(Mount { host, guest });
                    } else if host.is_file() {
                        let (parent, name) = match guest.rsplit_once('/') {
                            Some(("", name)) => ("/".to_owned(), name.to_owned()),
                            Some((parent, name)) => (parent.to_owned(), name.to_owned()),
                            None => ("/".to_owned(), guest.clone()),
                        };
                        let dir = staging.join(blake3::hash(parent.as_bytes()).to_hex().as_str());
                        std::fs::create_dir_all(&dir)?;
                        std::fs::copy(&host, dir.join(&name))?;
                        if !mounts.iter().any(|mount| mount.guest == parent) {
                            mounts.push(Mount {
                                host: dir,
                                guest: parent,
                            });
                        }
                    } else {
                        bail!("`{path}` does not exist");
                    }
                }
            }
        }
        Ok(FileMounts(mounts))
    }

    /// The text of the file the component reads at `guest` (an absolute
    /// path; a relative one is the component's working directory's, `/`),
    /// through the deepest mount that holds it, as its WASI filesystem
    /// would give it: a path that climbs out with `..`, or that no mount
    /// holds, is not found.
    pub(crate) fn read_guest_file(&self, guest: &str) -> std::io::Result<String> {
        let not_found = || std::io::Error::from(std::io::ErrorKind::NotFound);
        if guest.split('/').any(|segment| segment == "..") {
            return Err(not_found());
        }
        let mounts = self.0.iter().map(|Mount { host, guest: at }| MountView {
            guest: at.trim_end_matches('/'),
            host,
            file: false,
        });
        std::fs::read_to_string(host_path(mounts, guest).ok_or_else(not_found)?)
    }

    /// Mounts every directory, read-only, into an instance's WASI context.
    pub fn preopen(&self, wasi: &mut WasiCtxBuilder) -> anyhow::Result<()> {
        for Mount { host, guest } in &self.0 {
            wasi.preopened_dir(host, guest, FsPerms::ReadOnly)?;
        }
        Ok(())
    }
}

/// One mount as [`host_path`] reads it: where the component sees it
/// (no trailing `/`), the host path behind it, and whether that is a
/// single file rather than a directory.
pub struct MountView<'a> {
    pub guest: &'a str,
    pub host: &'a Path,
    pub file: bool,
}

/// The host file the component reads at `guest` (relative paths are the
/// component's working directory's, `/`), through the deepest of `mounts`
/// that holds it: what `up` serves the component (`read_guest_file`) and
/// what `check` reads for it.
pub fn host_path<'a>(
    mounts: impl IntoIterator<Item = MountView<'a>>,
    guest: &str,
) -> Option<PathBuf> {
    let guest = if guest.starts_with('/') {
        guest.to_owned()
    } else {
        format!("/{}", guest.trim_start_matches("./"))
    };
    mounts
        .into_iter()
        .filter_map(|mount| {
            if mount.file {
                return (guest == mount.guest).then(|| (mount.guest.len(), mount.host.to_owned()));
            }
            let rest = guest.strip_prefix(mount.guest)?.strip_prefix('/')?;
            Some((mount.guest.len(), mount.host.join(rest)))
        })
        .max_by_key(|(depth, _)| *depth)
        .map(|(_, host)| host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guest_path_reads_through_the_deepest_mount_and_never_climbs_out() {
        let root = std::env::temp_dir().join(format!("edge-host-files-{}", std::process::id()));
        let (rules, deeper) = (root.join("rules"), root.join("deeper"));
        std::fs::create_dir_all(&rules).unwrap();
        std::fs::create_dir_all(&deeper).unwrap();
        std::fs::write(rules.join("a.json"), "outer").unwrap();
        std::fs::write(deeper.join("a.json"), "inner").unwrap();
        std::fs::write(root.join("secret"), "no").unwrap();
        let mounts = FileMounts(vec![
            Mount {
                host: rules.clone(),
                guest: "/rules".into(),
            },
            Mount {
                host: deeper,
                guest: "/rules/deep/".into(),
            },
        ]);
        assert_eq!(mounts.read_guest_file("/rules/a.json").unwrap(), "outer");
        assert_eq!(mounts.read_guest_file("rules/a.json").unwrap(), "outer");
        assert_eq!(
            mounts.read_guest_file("/rules/deep/a.json").unwrap(),
            "inner"
        );
        for outside in ["/rules/../secret", "/secret", "/rulesx/a.json", "/rules"] {
            assert!(mounts.read_guest_file(outside).is_err(), "{outside}");
        }
        std::fs::remove_dir_all(root).unwrap();
    }
}
