//! Spin variables (`fermyon:spin/variables@2.0.0` for WASI 0.2 components,
//! `spin:variables/variables@3.0.0` for WASI 0.3 ones): application
//! variables resolved from providers, the component variables templated over
//! them, and the host side of the interface that lets an instance read its
//! own.
//!
//! Precedence, highest first (as `spin up`): `--variable NAME=VALUE` (or
//! `NAME=@file`, the file's content, or `@file.json`/`@file.toml`, a file
//! of names and string values; a later flag wins), the environment (`SPIN_VARIABLE_<NAME>`), the manifest's `default`. A
//! `required` variable with no value is a start-up error, not a request error.
//! An instance reads only the variables its component declares.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use wasmtime::component::{Accessor, HasData, HasSelf, Linker};

use crate::manifest::{VariableDoc, check_variable_name};

mod bindings {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "edge-host:host/variables-imports",
        imports: { default: async | trappable },
    });
}

use bindings::fermyon::spin::variables as wit;

mod bindings_v3 {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "edge-host:host/variables-v3-imports",
        imports: { default: async | store | trappable },
    });
}

use bindings_v3::spin::variables::variables as wit_v3;

/// Environment prefix Spin's environment provider reads.
pub const ENV_PREFIX: &str = "SPIN_VARIABLE_";

/// An error resolving variables; messages name the variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VariableError {
    /// A required variable has no value from any provider.
    #[error("variable `{0}` is required but no provider sets it (use --variable {0}=... or {ENV_PREFIX}{upper})", upper = .0.to_uppercase())]
    MissingRequired(String),
    /// `--variable` names a variable the manifest does not declare.
    #[error("--variable {0}: the manifest declares no such variable")]
    UnknownCliVariable(String),
    /// `--variable` is not `NAME=VALUE`, `NAME=@file` or `@file`.
    #[error("--variable `{0}`: expected NAME=VALUE, NAME=@file or @file.json/@file.toml")]
    MalformedCliVariable(String),
    /// A file a `--variable` flag names cannot be used.
    #[error("--variable `{flag}`: {path}: {problem}", path = .path.display())]
    VariableFile {
        /// The flag as given.
        flag: String,
        /// The file, as given.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// A template refers to an undeclared application variable.
    #[error("{context}: template refers to undeclared variable `{name}`")]
    UndeclaredReference {
        /// The manifest field holding the template.
        context: String,
        name: String,
    },
    /// A template is malformed.
    #[error("{context}: {message}")]
    BadTemplate {
        /// The manifest field holding the template.
        context: String,
        message: String,
    },
}

/// Values offered by providers other than the manifest.
#[derive(Debug, Clone, Default)]
pub struct VariableProviders {
    /// From `--variable NAME=VALUE` flags.
    pub cli: BTreeMap<String, String>,
    /// From `SPIN_VARIABLE_*` environment variables, keyed by lower-case name.
    pub env: BTreeMap<String, String>,
    /// The file each `--variable NAME=@FILE` value was read from, by name
    /// (for messages about the value).
    pub files: BTreeMap<String, PathBuf>,
}

impl VariableProviders {
    /// Builds the providers from `--variable` flags and an environment.
    /// As `spin up` reads them: `NAME=VALUE`; `NAME=@path`, the value is
    /// the file's content (UTF-8, as is); `@path.json` or `@path.toml`, a
    /// file holding an object (table) of names and string values. Relative
    /// paths are the working directory's.
    pub fn new(
        cli_flags: &[String],
        environment: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, VariableError> {
        let mut cli = BTreeMap::new();
        let mut files = BTreeMap::new();
        for flag in cli_flags {
            if let Some(path) = flag.strip_prefix('@') {
                for (name, value) in read_variables_file(flag, Path::new(path))? {
                    let name = checked_name(flag, &name)?;
                    files.remove(&name);
                    cli.insert(name, value);
                }
                continue;
            }
            let (name, value) = flag
                .split_once('=')
                .ok_or_else(|| VariableError::MalformedCliVariable(flag.clone()))?;
            let name = checked_name(flag, name)?;
            let value = match value.strip_prefix('@') {
                Some(path) => {
                    files.insert(name.clone(), PathBuf::from(path));
                    read_text(flag, Path::new(path))?
                }
                None => {
                    files.remove(&name);
                    value.to_owned()
                }
            };
            cli.insert(name, value);
        }
        let env = environment
            .into_iter()
            .filter_map(|(key, value)| {
                key.strip_prefix(ENV_PREFIX)
                    .map(|name| (name.to_lowercase(), value))
            })
            .collect();
        Ok(VariableProviders { cli, env, files })
    }
}

/// A variable's name from a flag or a variables file, lower-cased as
/// Spin's provider keys are.
fn checked_name(flag: &str, name: &str) -> Result<String, VariableError> {
    let name = name.trim().to_lowercase();
    match check_variable_name(&name) {
        Ok(()) => Ok(name),
        Err(_) => Err(VariableError::MalformedCliVariable(flag.to_owned())),
    }
}

/// The text of the file a flag names: it must exist and be UTF-8.
fn read_text(flag: &str, path: &Path) -> Result<String, VariableError> {
    let problem = |problem: String| VariableError::VariableFile {
        flag: flag.to_owned(),
        path: path.to_owned(),
        problem,
    };
    let bytes = std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => problem("no such file".to_owned()),
        _ => problem(format!("cannot be read: {e}")),
    })?;
    String::from_utf8(bytes).map_err(|e| {
        problem(format!(
            "not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        ))
    })
}

/// The names and values of a variables file (`@vars.json`: a JSON object;
/// `@vars.toml`: a TOML table), every value a string.
fn read_variables_file(flag: &str, path: &Path) -> Result<Vec<(String, String)>, VariableError> {
    let problem = |problem: String| VariableError::VariableFile {
        flag: flag.to_owned(),
        path: path.to_owned(),
        problem,
    };
    let extension = path.extension().and_then(|e| e.to_str());
    if !matches!(extension, Some("json" | "toml")) {
        return Err(problem(
            "a variables file must end in .json or .toml".to_owned(),
        ));
    }
    let text = read_text(flag, path)?;
    let not_a_string = |name: &str, kind: &str| {
        problem(format!(
            "variable `{name}` is {kind}, not a string (quote it: \"...\")"
        ))
    };
    if extension == Some("json") {
        let doc: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| problem(format!("not valid JSON: {e}")))?;
        let serde_json::Value::Object(object) = doc else {
            return Err(problem(
                "expected a JSON object of variable names and string values".to_owned(),
            ));
        };
        object
            .into_iter()
            .map(|(name, value)| match value {
                serde_json::Value::String(value) => Ok((name, value)),
                serde_json::Value::Null => Err(not_a_string(&name, "null")),
                serde_json::Value::Bool(_) => Err(not_a_string(&name, "a boolean")),
                serde_json::Value::Number(_) => Err(not_a_string(&name, "a number")),
                serde_json::Value::Array(_) => Err(not_a_string(&name, "an array")),
                serde_json::Value::Object(_) => Err(not_a_string(&name, "an object")),
            })
            .collect()
    } else {
        let table: toml::Table = toml::from_str(&text)
            .map_err(|e| problem(format!("not a valid TOML table: {}", e.to_string().trim())))?;
        table
            .into_iter()
            .map(|(name, value)| match value {
                toml::Value::String(value) => Ok((name, value)),
                other => Err(not_a_string(&name, &format!("a TOML {}", other.type_str()))),
            })
            .collect()
    }
}

/// Resolves every application variable to a value.
pub fn resolve_application_variables(
    declared: &BTreeMap<String, VariableDoc>,
    providers: &VariableProviders,
) -> Result<BTreeMap<String, String>, VariableError> {
    if let Some(unknown) = providers.cli.keys().find(|k| !declared.contains_key(*k)) {
        return Err(VariableError::UnknownCliVariable(unknown.clone()));
    }
    let mut resolved = BTreeMap::new();
    for (name, doc) in declared {
        let value = providers
            .cli
            .get(name)
            .or_else(|| providers.env.get(name))
            .cloned()
            .or_else(|| doc.default.clone());
        match value {
            Some(value) => {
                resolved.insert(name.clone(), value);
            }
            None if doc.required => return Err(VariableError::MissingRequired(name.clone())),
            // Neither required nor defaulted: Spin treats it as undefined
            // until a provider sets it.
            None => {}
        }
    }
    Ok(resolved)
}

/// Expands `{{ name }}` references in `template` from `values`.
pub fn render_template(
    template: &str,
    values: &BTreeMap<String, String>,
    context: &str,
) -> Result<String, VariableError> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or_else(|| VariableError::BadTemplate {
            context: context.to_owned(),
            message: format!("unclosed `{{{{` in `{template}`"),
        })?;
        let name = after[..end].trim();
        check_variable_name(name).map_err(|message| VariableError::BadTemplate {
            context: context.to_owned(),
            message,
        })?;
        let value = values
            .get(name)
            .ok_or_else(|| VariableError::UndeclaredReference {
                context: context.to_owned(),
                name: name.to_owned(),
            })?;
        out.push_str(value);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// One component's variables, rendered at start-up; also each instance's
/// state for `fermyon:spin/variables` (a shared, read-only map).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ComponentVariables(Arc<BTreeMap<String, String>>);

impl ComponentVariables {
    /// Renders a component's `variables` (name → template) over the
    /// application's `values`; `at` names the manifest table in errors
    /// (`spin.toml: component.x.variables`).
    pub fn render(
        templates: &BTreeMap<String, String>,
        values: &BTreeMap<String, String>,
        at: &str,
    ) -> Result<Self, VariableError> {
        let rendered = templates
            .iter()
            .map(|(name, template)| {
                render_template(template, values, &format!("{at}.{name}"))
                    .map(|value| (name.clone(), value))
            })
            .collect::<Result<_, _>>()?;
        Ok(ComponentVariables(Arc::new(rendered)))
    }

    /// The value of `name`, as the component reads it (native hits build
    /// the component's own configuration from it).
    pub(crate) fn value(&self, name: &str) -> Option<String> {
        self.lookup(name.to_owned()).ok()
    }
}

/// Adds `fermyon:spin/variables@2.0.0` and `spin:variables/variables@3.0.0`
/// to `linker`; `state` finds an instance's [`ComponentVariables`] in its
/// store data.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    state: fn(&mut T) -> &mut ComponentVariables,
) -> anyhow::Result<()> {
    bindings::VariablesImports::add_to_linker::<_, HasSelf<_>>(linker, state)?;
    bindings_v3::VariablesV3Imports::add_to_linker::<_, ComponentVariables>(linker, state)?;
    Ok(())
}

/// Why a variable cannot be read, in either generation's terms.
enum Unreadable {
    InvalidName(String),
    Undefined(String),
}

impl ComponentVariables {
    /// The value of `name`, as both generations of the interface define it.
    fn lookup(&self, name: String) -> Result<String, Unreadable> {
        if check_variable_name(&name).is_err() {
            return Err(Unreadable::InvalidName(name));
        }
        self.0
            .get(&name)
            .cloned()
            .ok_or(Unreadable::Undefined(name))
    }
}

impl wit::Host for ComponentVariables {
    async fn get(&mut self, name: String) -> wasmtime::Result<Result<String, wit::Error>> {
        Ok(self.lookup(name).map_err(|error| match error {
            Unreadable::InvalidName(name) => wit::Error::InvalidName(name),
            Unreadable::Undefined(name) => wit::Error::Undefined(name),
        }))
    }
}

/// The 3.0.0 interface reaches an instance's [`ComponentVariables`] through
/// the store's accessor.
impl HasData for ComponentVariables {
    type Data<'a> = &'a mut ComponentVariables;
}

impl wit_v3::Host for ComponentVariables {}

impl<T> wit_v3::HostWithStore<T> for ComponentVariables {
    /// A map lookup: the store is held for that only, never across an await.
    async fn get(
        accessor: &Accessor<T, Self>,
        name: String,
    ) -> wasmtime::Result<Result<String, wit_v3::Error>> {
        let value = accessor.with(|mut access| access.get().lookup(name));
        Ok(value.map_err(|error| match error {
            Unreadable::InvalidName(name) => wit_v3::Error::InvalidName(name),
            Unreadable::Undefined(name) => wit_v3::Error::Undefined(name),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn declared() -> BTreeMap<String, VariableDoc> {
        let var = |default: Option<&str>, required| VariableDoc {
            default: default.map(str::to_owned),
            required,
            secret: false,
        };
        BTreeMap::from([
            ("origin_url".to_owned(), var(Some("http://default"), false)),
            ("token".to_owned(), var(None, true)),
            ("optional".to_owned(), var(None, false)),
        ])
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn precedence_is_cli_then_env_then_default() {
        let providers = VariableProviders::new(
            &["token=from-cli".into()],
            env(&[
                ("SPIN_VARIABLE_TOKEN", "from-env"),
                ("SPIN_VARIABLE_ORIGIN_URL", "http://env"),
                ("PATH", "/bin"),
            ]),
        )
        .unwrap();
        let values = resolve_application_variables(&declared(), &providers).unwrap();
        assert_eq!(values["token"], "from-cli");
        assert_eq!(values["origin_url"], "http://env");
        assert!(!values.contains_key("optional"));

        let providers = VariableProviders::new(&["token=x".into()], env(&[])).unwrap();
        let values = resolve_application_variables(&declared(), &providers).unwrap();
        assert_eq!(values["origin_url"], "http://default");
    }

    #[test]
    fn missing_required_variable_is_named() {
        let providers = VariableProviders::new(&[], env(&[])).unwrap();
        let err = resolve_application_variables(&declared(), &providers).unwrap_err();
        assert_eq!(err, VariableError::MissingRequired("token".into()));
        assert!(err.to_string().contains("SPIN_VARIABLE_TOKEN"));
    }

    #[test]
    fn cli_flags_are_checked() {
        assert!(matches!(
            VariableProviders::new(&["novalue".into()], env(&[])),
            Err(VariableError::MalformedCliVariable(_))
        ));
        let providers =
            VariableProviders::new(&["nope=1".into(), "token=1".into()], env(&[])).unwrap();
        assert_eq!(
            resolve_application_variables(&declared(), &providers),
            Err(VariableError::UnknownCliVariable("nope".into()))
        );
    }

    #[test]
    fn templates_expand_and_report_errors() {
        let values = BTreeMap::from([("host".to_owned(), "o.example".to_owned())]);
        assert_eq!(
            render_template("https://{{host}}:{{ host }}", &values, "x").unwrap(),
            "https://o.example:o.example"
        );
        assert_eq!(render_template("plain", &values, "x").unwrap(), "plain");
        assert!(matches!(
            render_template("{{ other }}", &values, "c.v"),
            Err(VariableError::UndeclaredReference { .. })
        ));
        assert!(matches!(
            render_template("{{ host", &values, "c.v"),
            Err(VariableError::BadTemplate { .. })
        ));
        assert!(matches!(
            render_template("{{ Bad }}", &values, "c.v"),
            Err(VariableError::BadTemplate { .. })
        ));
    }

    #[test]
    fn files_give_values_as_spin_reads_them() {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str, bytes: &[u8]| {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            path.display().to_string()
        };
        let rules = file("rules.json", b"{\"rules\": []}\n");
        let json = file(
            "vars.json",
            br#"{"token": "j", "Origin_URL": "http://json"}"#,
        );
        let toml = file("vars.toml", b"token = \"t\"\n");
        let providers = VariableProviders::new(
            &[
                format!("@{json}"),
                format!("@{toml}"),
                format!("optional=@{rules}"),
            ],
            env(&[]),
        )
        .unwrap();
        let values = resolve_application_variables(&declared(), &providers).unwrap();
        assert_eq!(values["token"], "t", "a later flag wins");
        assert_eq!(values["origin_url"], "http://json");
        assert_eq!(values["optional"], "{\"rules\": []}\n");

        let problem = |flag: String| VariableProviders::new(&[flag], env(&[])).unwrap_err();
        let missing = dir.path().join("none.json").display().to_string();
        for (flag, expected) in [
            (format!("token=@{missing}"), "no such file"),
            (format!("@{missing}"), "no such file"),
            (format!("token=@{}", file("bin", b"\xff\xfe")), "not UTF-8"),
            (
                format!("@{}", file("list.json", b"[\"a\"]")),
                "a JSON object",
            ),
            (
                format!("@{}", file("num.json", br#"{"token": 1}"#)),
                "`token` is a number",
            ),
            (format!("@{}", file("bad.json", b"{")), "not valid JSON"),
            (
                format!("@{}", file("bool.toml", b"token = true")),
                "`token` is a TOML boolean",
            ),
            (
                format!("@{}", file("vars.yaml", b"")),
                "must end in .json or .toml",
            ),
        ] {
            let error = problem(flag.clone()).to_string();
            assert!(error.contains(expected), "{flag}: {error}");
            assert!(
                error.contains(flag.trim_start_matches("token=").trim_start_matches('@')),
                "{error}"
            );
        }
    }
}
