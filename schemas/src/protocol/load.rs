//! Reading scenario files, with errors people can act on.
//!
//! Parsing is two passes over the same text. The first deserialises into the model; serde-saphyr
//! reports syntax errors, unknown keys, wrong types and missing fields with a location. The second
//! pass reads only ids and template strings with their spans ([`Located`]) so the checks serde
//! cannot do — duplicate ids, templates naming undeclared inputs — point at a line too.

use super::model::{InputType, Protocol, Scalar};
use super::template;
use serde::Deserialize;
use serde_saphyr::{Location, Spanned};
use std::collections::HashSet;
use std::fmt;
use std::path::Path;

/// One problem in a scenario file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Diagnostic {
    /// The file, as the user named it.
    pub path: String,
    /// 1-based line (0 when unknown).
    pub line: u64,
    /// 1-based column (0 when unknown).
    pub column: u64,
    /// What is wrong.
    pub message: String,
    /// How to fix it, when we can tell.
    pub hint: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: error: {}", self.path, self.line, self.column, self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// Why a protocol could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("{path}: cannot read: {source}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file was read but is not a valid protocol.
    #[error("{}", render(.0))]
    Invalid(Vec<Diagnostic>),
}

fn render(diagnostics: &[Diagnostic]) -> String {
    diagnostics.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
}

/// Largest scenario file accepted; protocols are hand-written and small.
pub const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// Reads and validates a protocol file.
pub fn read_protocol(path: &Path) -> Result<Protocol, LoadError> {
    let label = path.display().to_string();
    let io = |source| LoadError::Io { path: label.clone(), source };
    let size = std::fs::metadata(path).map_err(io)?.len();
    if size > MAX_FILE_BYTES {
        return Err(LoadError::Invalid(vec![Diagnostic {
            path: label,
            line: 0,
            column: 0,
            message: format!("file is {size} bytes; the limit is {MAX_FILE_BYTES}"),
            hint: None,
        }]));
    }
    let text = std::fs::read_to_string(path).map_err(io)?;
    parse_protocol(&label, &text).map_err(LoadError::Invalid)
}

/// Parses and validates protocol text; `path` only labels the diagnostics.
pub fn parse_protocol(path: &str, text: &str) -> Result<Protocol, Vec<Diagnostic>> {
    let protocol: Protocol = serde_saphyr::from_str(text).map_err(|err| vec![from_yaml(path, &err)])?;
    let located: Located = serde_saphyr::from_str(text).map_err(|err| vec![from_yaml(path, &err)])?;
    let diagnostics = check(path, &protocol, &located);
    if diagnostics.is_empty() { Ok(protocol) } else { Err(diagnostics) }
}

fn from_yaml(path: &str, err: &serde_saphyr::Error) -> Diagnostic {
    let plain = err.without_snippet();
    let (line, column) = plain.location().map_or((0, 0), |l| (l.line(), l.column()));
    let message = strip_location_suffix(&plain.to_string());
    let hint = hint_for(&message);
    Diagnostic { path: path.to_owned(), line, column, message, hint }
}

/// serde-saphyr appends ` at line L column C`; we print the location in front instead.
fn strip_location_suffix(message: &str) -> String {
    let first = message.lines().next().unwrap_or(message);
    match first.rfind(" at line ") {
        Some(at) => first[..at].to_owned(),
        None => first.to_owned(),
    }
}

/// Suggests the closest valid name for `unknown field`/`unknown variant` errors and says what a
/// `missing field` needs.
fn hint_for(message: &str) -> Option<String> {
    let given = message.split('`').nth(1)?;
    if message.starts_with("unknown field") || message.starts_with("unknown variant") {
        let expected: Vec<&str> = message
            .split_once("expected one of ")
            .map(|(_, list)| list.split(',').map(|s| s.trim().trim_matches('`')).filter(|s| !s.is_empty()).collect())
            .unwrap_or_default();
        let what = if message.starts_with("unknown field") { "keys" } else { "values" };
        return match did_you_mean(given, expected.iter().copied()) {
            Some(best) => Some(format!("did you mean `{best}`?")),
            None if expected.is_empty() => None,
            None => Some(format!("valid {what} here: {}", expected.join(", "))),
        };
    }
    if message.starts_with("missing field") {
        return Some(match given {
            "owner" => "every step needs `owner:` one of resource, devops, security, sre".into(),
            "exec" => "every step needs an action, e.g. `exec: { program: echo, args: [hi] }`".into(),
            other => format!("add `{other}:` here"),
        });
    }
    None
}

/// The candidate closest to `given`, if it is close enough to be a plausible typo.
pub fn did_you_mean<'a>(given: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(given, c), c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// The spans of the parts of a protocol that semantic checks report on.
#[derive(Deserialize)]
struct Located {
    id: Spanned<String>,
    #[serde(default)]
    inputs: std::collections::BTreeMap<String, LocatedInput>,
    steps: Vec<LocatedStep>,
}

#[derive(Deserialize)]
struct LocatedInput {
    #[serde(default)]
    default: Option<Spanned<Scalar>>,
}

#[derive(Deserialize)]
struct LocatedStep {
    id: Spanned<String>,
    exec: LocatedExec,
}

#[derive(Deserialize)]
struct LocatedExec {
    program: Spanned<String>,
    #[serde(default)]
    args: Vec<Spanned<String>>,
    #[serde(default)]
    env: std::collections::BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    cwd: Option<Spanned<String>>,
}

fn check(path: &str, protocol: &Protocol, located: &Located) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let mut report = |at: Location, message: String, hint: Option<String>| {
        out.push(Diagnostic { path: path.to_owned(), line: at.line(), column: at.column(), message, hint });
    };
    if !is_identifier(&protocol.id) {
        report(
            located.id.referenced,
            format!("protocol id `{}` is not a valid identifier", protocol.id),
            Some("use lowercase letters, digits, `-` and `_`, starting with a letter".into()),
        );
    }
    if protocol.steps.is_empty() {
        report(located.id.referenced, "the protocol has no steps".into(), Some("add a `steps:` list".into()));
    }
    for (name, spec) in &protocol.inputs {
        let Some(default) = located.inputs.get(name).and_then(|i| i.default.as_ref()) else { continue };
        if let Some(problem) = type_mismatch(spec.kind, &default.value) {
            report(default.referenced, format!("default of input `{name}` {problem}"), None);
        }
    }
    let mut seen = HashSet::new();
    let declared: Vec<&str> = protocol.inputs.keys().map(String::as_str).collect();
    for step in &located.steps {
        if !is_identifier(&step.id.value) {
            report(
                step.id.referenced,
                format!("step id `{}` is not a valid identifier", step.id.value),
                Some("use lowercase letters, digits, `-` and `_`, starting with a letter".into()),
            );
        }
        if !seen.insert(step.id.value.as_str()) {
            report(
                step.id.referenced,
                format!("duplicate step id `{}`", step.id.value),
                Some("step ids must be unique".into()),
            );
        }
        if step.exec.program.value.trim().is_empty() {
            report(step.exec.program.referenced, "`program` is empty".into(), None);
        }
        let strings = std::iter::once(&step.exec.program)
            .chain(&step.exec.args)
            .chain(step.exec.env.values())
            .chain(&step.exec.cwd);
        for text in strings {
            if let Err(problem) = template::check(&text.value, &declared) {
                report(text.referenced, problem.message, problem.hint);
            }
        }
    }
    out
}

fn type_mismatch(kind: InputType, value: &Scalar) -> Option<String> {
    match (kind, value) {
        (InputType::String, _) | (InputType::Int, Scalar::Int(_)) | (InputType::Bool, Scalar::Bool(_)) => None,
        (InputType::Int, other) => Some(format!("is `{other}`, not an integer")),
        (InputType::Bool, other) => Some(format!("is `{other}`, not true or false")),
    }
}

/// Ids appear in subjects, keys and file names, so they are kept to a safe alphabet.
pub fn is_identifier(id: &str) -> bool {
    let mut chars = id.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        && id.len() <= 64
}
