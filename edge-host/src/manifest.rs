//! The Spin application manifest (`spin.toml`, `spin_manifest_version = 2`).
//!
//! Only the parts a Spin HTTP application uses are modelled; unknown fields
//! are rejected, as `spin up` does, so a typo is an error and not a silently
//! ignored setting.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// A parsed `spin.toml`, with the directory relative paths resolve against.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// Where the manifest's relative paths (sources, files) resolve.
    pub dir: PathBuf,
    pub doc: ManifestDoc,
}

/// An error reading or understanding the manifest; always names the file.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is not a valid manifest; the message names line and field.
    #[error("{path}: {message}")]
    Invalid {
        path: PathBuf,
        /// What is wrong, with the TOML location where known.
        message: String,
    },
}

/// The manifest document as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestDoc {
    /// Must be 2.
    pub spin_manifest_version: u32,
    pub application: ApplicationDoc,
    /// By name; component variables and `allowed_outbound_hosts` are
    /// templates over them.
    #[serde(default)]
    pub variables: BTreeMap<String, VariableDoc>,
    /// Triggers by type; only `http` is supported.
    #[serde(default)]
    pub trigger: TriggersDoc,
    /// Components by id.
    #[serde(default)]
    pub component: BTreeMap<String, ComponentDoc>,
}

/// `[application]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplicationDoc {
    /// Named in the start-up line.
    pub name: String,
    /// Accepted, not used (likewise `description` and `authors`).
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub authors: Vec<String>,
}

/// An application variable: a default value or `required`, never both.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariableDoc {
    /// Value used when no provider sets one.
    #[serde(default)]
    pub default: Option<String>,
    /// Whether a provider must set it.
    #[serde(default)]
    pub required: bool,
    /// Whether the value must be kept out of logs.
    #[serde(default)]
    pub secret: bool,
}

/// `[[trigger.*]]` tables.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriggersDoc {
    #[serde(default)]
    pub http: Vec<HttpTriggerDoc>,
}

/// One `[[trigger.http]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpTriggerDoc {
    /// Route: an exact path, or a prefix ending in `/...`.
    pub route: RouteDoc,
    /// The component id that handles the route.
    pub component: String,
    /// Spin's legacy executor setting; only `wagi = false` semantics exist here.
    #[serde(default)]
    pub executor: Option<toml::Value>,
}

/// A route: a path, or `{ private = true }` (reachable only by self-requests).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RouteDoc {
    /// A public route.
    Path(String),
    /// A private route, not served to the network.
    Private {
        /// Must be true.
        private: bool,
    },
}

/// `[component.<id>]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComponentDoc {
    /// Path to the `.wasm` file, relative to the manifest.
    pub source: SourceDoc,
    /// Accepted, not used.
    #[serde(default)]
    pub description: Option<String>,
    /// Hosts outbound requests may go to (`scheme://host:port`, templates allowed).
    #[serde(default)]
    pub allowed_outbound_hosts: Vec<String>,
    /// Key-value stores the component may open.
    #[serde(default)]
    pub key_value_stores: Vec<String>,
    /// Files mounted into the component's filesystem.
    #[serde(default)]
    pub files: Vec<FileMountDoc>,
    /// Files excluded from `files` globs (accepted for compatibility).
    #[serde(default)]
    pub exclude_files: Vec<String>,
    /// Component variables: name → template over application variables.
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
    /// Environment variables for the component.
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    /// How `spin build` builds the component (not used when running).
    #[serde(default)]
    pub build: Option<toml::Value>,
}

/// `source`: a local path (remote sources need a registry, which we lack).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum SourceDoc {
    /// A path relative to the manifest.
    Local(String),
    /// `{ url = ..., digest = ... }`: not supported here.
    Remote { url: String, digest: String },
}

/// One `files` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum FileMountDoc {
    /// A path (file or directory) relative to the manifest, mounted at the
    /// same relative path under `/`.
    Path(String),
    /// A directory mounted at `destination`.
    Mapped {
        /// Host directory, relative to the manifest.
        source: String,
        /// Absolute guest path.
        destination: String,
    },
}

impl Manifest {
    /// Reads and checks a manifest file.
    pub fn load(path: &Path) -> Result<Self, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
            path: path.to_owned(),
            source,
        })?;
        let dir = path
            .parent()
            .map(Path::to_path_buf)
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| PathBuf::from("."));
        Self::parse(&text, dir).map_err(|message| ManifestError::Invalid {
            path: path.to_owned(),
            message,
        })
    }

    /// Parses manifest text; `dir` is where relative paths resolve.
    pub fn parse(text: &str, dir: PathBuf) -> Result<Self, String> {
        let doc: ManifestDoc = toml::from_str(text).map_err(|e| one_line(&e.to_string()))?;
        if doc.spin_manifest_version != 2 {
            return Err(format!(
                "spin_manifest_version: expected 2, got {}",
                doc.spin_manifest_version
            ));
        }
        for (name, var) in &doc.variables {
            check_variable_name(name).map_err(|e| format!("variables.{name}: {e}"))?;
            if var.required && var.default.is_some() {
                return Err(format!(
                    "variables.{name}: `required` and `default` are mutually exclusive"
                ));
            }
        }
        for (i, trigger) in doc.trigger.http.iter().enumerate() {
            if !doc.component.contains_key(&trigger.component) {
                return Err(format!(
                    "trigger.http[{i}].component: no component `{}` is defined",
                    trigger.component
                ));
            }
            if let RouteDoc::Path(route) = &trigger.route
                && !route.starts_with('/')
            {
                return Err(format!(
                    "trigger.http[{i}].route: `{route}` must start with `/`"
                ));
            }
        }
        for (id, component) in &doc.component {
            if let SourceDoc::Remote { .. } = component.source {
                return Err(format!(
                    "component.{id}.source: remote sources are not supported; give a local path"
                ));
            }
            for name in component.variables.keys() {
                check_variable_name(name)
                    .map_err(|e| format!("component.{id}.variables.{name}: {e}"))?;
            }
        }
        Ok(Manifest { dir, doc })
    }
}

/// Spin's rule: lower-case ASCII letters, digits and `_`, starting with a letter.
pub fn check_variable_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let starts_with_letter = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    if starts_with_letter
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a valid variable name (lower-case letters, digits and `_`, starting with a letter)"
        ))
    }
}

/// TOML errors span several lines (a source excerpt); keep them on one.
pub(crate) fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && *l != "|")
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
spin_manifest_version = 2
[application]
name = "app"
[variables]
origin_url = { default = "http://127.0.0.1:8080" }
token = { required = true, secret = true }
[[trigger.http]]
route = "/..."
component = "edge"
[component.edge]
source = "edge.wasm"
allowed_outbound_hosts = ["{{ origin_url }}"]
key_value_stores = ["default"]
files = [{ source = "fixtures", destination = "/fixtures" }]
[component.edge.variables]
origin_url = "{{ origin_url }}"
[component.edge.build]
command = "make wasm"
"#;

    fn parse(text: &str) -> Result<Manifest, String> {
        Manifest::parse(text, PathBuf::from("."))
    }

    #[test]
    fn parses_a_complete_manifest() {
        let m = parse(GOOD).unwrap();
        assert_eq!(m.doc.application.name, "app");
        assert_eq!(m.doc.trigger.http.len(), 1);
        assert_eq!(m.doc.component["edge"].key_value_stores, ["default"]);
        assert!(m.doc.variables["token"].required);
    }

    #[test]
    fn unknown_field_is_named_with_its_line() {
        let text = GOOD.replace("key_value_stores", "key_value_storez");
        let err = parse(&text).unwrap_err();
        assert!(err.contains("key_value_storez"), "{err}");
        assert!(err.contains("line"), "{err}");
        assert!(!err.contains('\n'));
    }

    #[test]
    fn semantic_errors_name_the_field() {
        let cases = [
            (
                GOOD.replace("spin_manifest_version = 2", "spin_manifest_version = 1"),
                "spin_manifest_version",
            ),
            (
                GOOD.replace("component = \"edge\"", "component = \"nope\""),
                "trigger.http[0].component",
            ),
            (
                GOOD.replace("route = \"/...\"", "route = \"api\""),
                "trigger.http[0].route",
            ),
            (
                GOOD.replace(
                    "token = { required = true, secret = true }",
                    "token = { required = true, default = \"x\" }",
                ),
                "variables.token",
            ),
            (
                GOOD.replace(
                    "[variables]\n",
                    "[variables]\nBad-Name = { default = \"\" }\n",
                ),
                "variables.Bad-Name",
            ),
            (
                GOOD.replace(
                    "source = \"edge.wasm\"",
                    "source = { url = \"https://x/y.wasm\", digest = \"sha256:0\" }",
                ),
                "component.edge.source",
            ),
        ];
        for (text, field) in cases {
            let err = parse(&text).unwrap_err();
            assert!(err.contains(field), "expected `{field}` in: {err}");
        }
    }

    #[test]
    fn load_names_the_file() {
        let err = Manifest::load(Path::new("/nonexistent/spin.toml")).unwrap_err();
        assert!(err.to_string().starts_with("/nonexistent/spin.toml: "));
    }
}
