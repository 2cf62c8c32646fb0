//! `edge-host check`, and the same check `edge-host up` makes before it
//! serves: the manifest, the runtime config and the variables read as `up`
//! reads them, and the cache rules each component would load, parsed by
//! the component's own loader (`edge_cache`'s `CacheRules::load`) from the
//! file its `cache_rules` variable names, found through the manifest's
//! `files` mounts. A component that cannot load its rules proxies without
//! caching; this is where that is caught before it serves.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail};
use edge_cache::CacheRules;
use edge_cache::config::RulesSource;
use edge_host::files::{self, MountView};
use edge_host::manifest::{FileMountDoc, Manifest};
use edge_host::observe::rules::RulesStatus;
use edge_host::outbound_http::AllowedHosts;
use edge_host::runtime_config::RuntimeConfig;
use edge_host::variables::{
    ComponentVariables, VariableProviders, render_template, resolve_application_variables,
};

/// The component variable the edge component reads its rules from.
const RULES_VARIABLE: &str = "cache_rules";

/// What is checked: `up`'s configuration flags.
#[derive(Debug, Clone)]
pub struct CheckInputs {
    /// `spin.toml`, or a directory containing one.
    pub manifest: PathBuf,
    /// A Spin-format `runtime-config.toml`.
    pub runtime_config: Option<PathBuf>,
    /// `--variable` flags.
    pub variables: Vec<String>,
    /// The environment `SPIN_VARIABLE_*` are read from.
    pub environment: Vec<(String, String)>,
}

/// An application that passed every check but, perhaps, its rules.
#[derive(Debug)]
pub struct Checked {
    /// The manifest file.
    pub manifest: PathBuf,
    /// The application's name.
    pub name: String,
    /// How many components it has.
    pub components: usize,
    /// How many application variables have a value.
    pub variables: usize,
    /// The rules of each component that has a `cache_rules` variable.
    pub rules: Vec<ComponentRules>,
}

/// One component's cache rules, as its loader found them.
#[derive(Debug, Clone)]
pub struct ComponentRules {
    /// The status reported to the metrics.
    pub status: RulesStatus,
    /// The host file to watch for changes, when the rules are a file.
    pub file: Option<PathBuf>,
    /// The `cache_rules` value, to check again on a change.
    value: String,
    /// The component's mounts.
    mounts: Vec<Mount>,
}

impl Checked {
    /// The problems, one a line, each naming the component and the host
    /// file with line and column where known.
    pub fn problems(&self) -> Vec<String> {
        self.rules
            .iter()
            .filter_map(|rules| rules.status.message.clone())
            .collect()
    }

    /// `ok` and what was checked, on one line.
    pub fn summary(&self) -> String {
        let rules: Vec<String> = self
            .rules
            .iter()
            .map(|rules| {
                format!(
                    "component `{}` rules {} (blake3 {})",
                    rules.status.component, rules.status.source, rules.status.hash
                )
            })
            .collect();
        format!(
            "ok: {}: application `{}`, {} component{}, {} variable{} set; {}",
            self.manifest.display(),
            self.name,
            self.components,
            if self.components == 1 { "" } else { "s" },
            self.variables,
            if self.variables == 1 { "" } else { "s" },
            if rules.is_empty() {
                "no component reads cache_rules".to_owned()
            } else {
                rules.join(", ")
            }
        )
    }
}

impl ComponentRules {
    /// The rules checked again now (after their file changed).
    pub fn recheck(&self) -> ComponentRules {
        check_rules(&self.status.component, &self.value, &self.mounts, None)
    }
}

/// Checks the configuration `up` would start with; an error stops at the
/// first problem of the manifest, runtime config or variables (the same
/// words `up` has for it), broken rules are in [`Checked::problems`].
pub fn check(inputs: &CheckInputs) -> anyhow::Result<Checked> {
    let manifest_path = manifest_path(&inputs.manifest);
    let manifest = Manifest::load(&manifest_path)?;
    if let Some(path) = &inputs.runtime_config {
        RuntimeConfig::load(path).map_err(|e| anyhow!(e))?;
    }
    let providers = VariableProviders::new(&inputs.variables, inputs.environment.clone())?;
    check_application(&manifest, &manifest_path, &providers)
}

/// The manifest path `up` reads: `manifest`, or the `spin.toml` in it.
pub fn manifest_path(manifest: &Path) -> PathBuf {
    if manifest.is_dir() {
        manifest.join("spin.toml")
    } else {
        manifest.to_owned()
    }
}

/// [`check`] past the manifest and the runtime config: the variables the
/// `providers` give, each component's settings and rules over them. A
/// reload checks new variables with it before it takes them.
pub fn check_application(
    manifest: &Manifest,
    manifest_path: &Path,
    providers: &VariableProviders,
) -> anyhow::Result<Checked> {
    let app_variables = resolve_application_variables(&manifest.doc.variables, providers)
        .map_err(|e| anyhow!("{}: {e}", manifest_path.display()))?;
    let mut rules = Vec::new();
    for (id, doc) in &manifest.doc.component {
        let at = |field: &str| format!("{}: component.{id}.{field}", manifest_path.display());
        ComponentVariables::render(&doc.variables, &app_variables, &at("variables"))?;
        // A component that reads cache rules is the edge: its settings are
        // checked with its own parser (a bad `hosts` list, timeout or
        // origin URL would have it answer every request `500`).
        if doc.variables.contains_key(RULES_VARIABLE) {
            let mut settings = BTreeMap::new();
            for name in edge_cache::config::VARIABLES {
                if let Some(template) = doc.variables.get(name) {
                    settings.insert(
                        name,
                        render_template(template, &app_variables, &at("variables"))?,
                    );
                }
            }
            edge_cache::config::check_settings(|name| settings.get(name).cloned())
                .map_err(|e| anyhow!("{}: {e}", at("variables")))?;
        }
        let hosts = doc
            .allowed_outbound_hosts
            .iter()
            .map(|template| {
                render_template(template, &app_variables, &at("allowed_outbound_hosts"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        AllowedHosts::parse(&hosts)
            .map_err(|e| anyhow!("{}: component.{id}.{e}", manifest_path.display()))?;
        let mounts =
            mounts(&manifest.dir, &doc.files).map_err(|e| anyhow!("{}: {e}", at("files")))?;
        if let Some(template) = doc.variables.get(RULES_VARIABLE) {
            let value = render_template(template, &app_variables, &at("variables"))?;
            // Inline rules read by `--variable NAME=@FILE` are named by
            // that file.
            let from_file = providers
                .files
                .iter()
                .find(|(name, _)| app_variables.get(*name) == Some(&value))
                .map(|(_, path)| path.display().to_string());
            rules.push(check_rules(id, &value, &mounts, from_file.as_deref()));
        }
    }
    Ok(Checked {
        manifest: manifest_path.to_owned(),
        name: manifest.doc.application.name.clone(),
        components: manifest.doc.component.len(),
        variables: app_variables.len(),
        rules,
    })
}

/// A directory (or single file) of the host, seen by the component at
/// `guest`, as the manifest's `files` entry maps it.
#[derive(Debug, Clone)]
struct Mount {
    guest: String,
    host: PathBuf,
    /// A single file, seen at exactly `guest`.
    file: bool,
}

/// The component's mounts, as `files` maps them (the checks of `up`'s
/// mounting apply: a mapped source is a directory, a path exists).
fn mounts(manifest_dir: &Path, files: &[FileMountDoc]) -> anyhow::Result<Vec<Mount>> {
    files
        .iter()
        .map(|file| match file {
            FileMountDoc::Mapped {
                source,
                destination,
            } => {
                let host = manifest_dir.join(source);
                if !host.is_dir() {
                    bail!("`{source}` is not a directory");
                }
                Ok(Mount {
                    guest: destination.trim_end_matches('/').to_owned(),
                    host,
                    file: false,
                })
            }
            FileMountDoc::Path(path) => {
                let host = manifest_dir.join(path);
                if !host.exists() {
                    bail!("`{path}` does not exist");
                }
                let guest = format!("/{}", path.trim_start_matches("./").trim_start_matches('/'));
                Ok(Mount {
                    guest: guest.trim_end_matches('/').to_owned(),
                    file: host.is_file(),
                    host,
                })
            }
        })
        .collect()
}

/// The host file the component reads at `guest` (see [`files::host_path`]).
fn host_path(mounts: &[Mount], guest: &str) -> Option<PathBuf> {
    let views = mounts.iter().map(|mount| MountView {
        guest: &mount.guest,
        host: &mount.host,
        file: mount.file,
    });
    files::host_path(views, guest)
}

/// Checks the rules `value` (the component's `cache_rules`) names;
/// inline rules read from `from_file` (`--variable cache_rules=@FILE`) are
/// named by it.
fn check_rules(
    component: &str,
    value: &str,
    mounts: &[Mount],
    from_file: Option<&str>,
) -> ComponentRules {
    let source = RulesSource::of(value);
    let done = |where_: String, text: &[u8], file: Option<PathBuf>, problem: Option<String>| {
        ComponentRules {
            status: RulesStatus::now(component, &where_, text, problem),
            file,
            value: value.to_owned(),
            mounts: mounts.to_vec(),
        }
    };
    let broken = |what: String| Some(format!("component `{component}`: cache rules: {what}"));
    let guest = match &source {
        RulesSource::BuiltIn => return done("built-in".into(), b"", None, None),
        RulesSource::Inline(json) => {
            let problem = CacheRules::load(&source, |_| unreachable_read())
                .err()
                .map(|e| {
                    let e = e.strip_prefix("inline cache rules: ").unwrap_or(&e);
                    located(from_file.unwrap_or("cache_rules (inline JSON)"), e)
                });
            let source = from_file.map_or("inline".to_owned(), |f| format!("inline, from {f}"));
            return done(source, json.as_bytes(), None, problem.and_then(broken));
        }
        RulesSource::File(guest) => guest.clone(),
    };
    let Some(host) = host_path(mounts, &guest) else {
        let problem = format!(
            "`{guest}` is not inside any directory the manifest's `files` mounts into the \
             component, so it cannot read it (mount the file's directory, or pass the JSON \
             itself: --variable {RULES_VARIABLE}=@FILE)"
        );
        return done(guest, b"", None, broken(problem));
    };
    let shown = host.display().to_string();
    let bytes = match std::fs::read(&host) {
        Ok(bytes) => bytes,
        Err(e) => {
            let problem = match e.kind() {
                std::io::ErrorKind::NotFound => format!("{shown}: no such file"),
                _ => format!("{shown}: cannot be read: {e}"),
            };
            return done(shown, b"", Some(host), broken(problem));
        }
    };
    let text = match std::str::from_utf8(&bytes) {
        Ok(text) => text.to_owned(),
        Err(e) => {
            let problem = format!(
                "{shown}: not UTF-8 text (invalid byte at offset {})",
                e.valid_up_to()
            );
            return done(shown, &bytes, Some(host), broken(problem));
        }
    };
    // The component's loader, given the file's text as the component would
    // read it; its message begins with the guest path, which is replaced
    // by the host's.
    let problem = CacheRules::load(&source, |_| Ok(text.clone()))
        .err()
        .map(|e| {
            let e = e.strip_prefix(&format!("{guest}: ")).unwrap_or(&e);
            format!("{} (read by the component as {guest})", located(&shown, e))
        });
    done(shown, &bytes, Some(host), problem.and_then(broken))
}

/// Inline rules are never read from a file.
fn unreachable_read() -> std::io::Result<String> {
    Err(std::io::Error::other("inline rules read no file"))
}

/// `file:line:column: message` from the loader's `message ... at line L
/// column C`, or `file: message` where it names no position.
fn located(file: &str, message: &str) -> String {
    let message = message.strip_prefix("cache rules: ").unwrap_or(message);
    if let Some((what, position)) = message.rsplit_once(" at line ")
        && let Some((line, column)) = position.split_once(" column ")
        && line.parse::<u64>().is_ok()
        && column.parse::<u64>().is_ok()
    {
        return format!("{file}:{line}:{column}: {what}");
    }
    format!("{file}: {message}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_paths_map_through_the_deepest_mount() {
        let mounts = vec![
            Mount {
                guest: "/rules".into(),
                host: "/h/fixtures/rules".into(),
                file: false,
            },
            Mount {
                guest: "/rules/extra".into(),
                host: "/h/extra".into(),
                file: false,
            },
            Mount {
                guest: "/one.json".into(),
                host: "/h/one.json".into(),
                file: true,
            },
        ];
        let host = |guest| host_path(&mounts, guest);
        assert_eq!(
            host("/rules/r.json"),
            Some("/h/fixtures/rules/r.json".into())
        );
        assert_eq!(
            host("rules/r.json"),
            Some("/h/fixtures/rules/r.json".into())
        );
        assert_eq!(host("/rules/extra/r.json"), Some("/h/extra/r.json".into()));
        assert_eq!(host("/one.json"), Some("/h/one.json".into()));
        assert_eq!(host("/rulesx/r.json"), None);
        assert_eq!(host("/tmp/r.json"), None);
    }

    #[test]
    fn positions_are_file_line_column() {
        assert_eq!(
            located(
                "/h/r.json",
                "cache rules: expected `,` or `}` at line 3 column 7"
            ),
            "/h/r.json:3:7: expected `,` or `}`"
        );
        assert_eq!(
            located(
                "/h/r.json",
                "cache rules: rules[0].path_prefix: must start with `/`"
            ),
            "/h/r.json: rules[0].path_prefix: must start with `/`"
        );
    }
}
