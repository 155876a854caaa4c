//! Reading scenario files, with errors people can act on.
//!
//! Parsing deserialises into the model; serde-saphyr reports syntax errors, unknown keys, wrong
//! types and missing fields with a location. Then [`check`] runs every semantic check on the
//! model, and a located tree of the same text ([`Node`]) turns each problem's path into a line
//! and column.

use super::check;
use super::located::Node;
use super::model::Protocol;
use super::recover;
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

/// Parses and validates protocol text; `path` only labels the diagnostics. Structural errors
/// (syntax, unknown keys, wrong types) stop at the first; every semantic problem is reported.
pub fn parse_protocol(path: &str, text: &str) -> Result<Protocol, Vec<Diagnostic>> {
    let protocol: Protocol = serde_saphyr::from_str(text).map_err(|err| {
        let first = from_yaml(path, &err);
        let mut all = recover::item_errors(path, text);
        if !all.iter().any(|d| (d.line, d.column) == (first.line, first.column)) {
            all.push(first);
        }
        all.sort_by_key(|d| (d.line, d.column));
        all
    })?;
    let problems = check::check(&protocol);
    if problems.is_empty() {
        return Ok(protocol);
    }
    let tree = Node::parse(text);
    let mut diagnostics: Vec<Diagnostic> = problems
        .into_iter()
        .map(|p| {
            let (line, column) = tree.as_ref().map(|t| t.locate(&p.path)).map_or((0, 0), |l| (l.line(), l.column()));
            Diagnostic { path: path.to_owned(), line, column, message: p.message, hint: p.hint }
        })
        .collect();
    diagnostics.sort_by_key(|d| (d.line, d.column));
    Err(diagnostics)
}

pub(crate) fn from_yaml(path: &str, err: &serde_saphyr::Error) -> Diagnostic {
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
    if message.starts_with("invalid u") || message.starts_with("invalid i") {
        return Some("a whole number is expected here".to_owned());
    }
    let given = message.split('`').nth(1)?;
    if message.starts_with("unknown field") || message.starts_with("unknown variant") {
        let expected: Vec<&str> = message
            .split_once("expected one of ")
            .map(|(_, list)| list.split(',').map(|s| s.trim().trim_matches('`')).filter(|s| !s.is_empty()).collect())
            .unwrap_or_default();
        let what = if message.starts_with("unknown field") { "keys" } else { "values" };
        const STEP_KEYS: [&str; 8] =
            ["timeout", "retry", "needs", "when", "outputs", "rollback", "alternatives", "on_failure"];
        return match did_you_mean(given, expected.iter().copied()) {
            Some(best) => Some(format!("did you mean `{best}`?")),
            None if STEP_KEYS.contains(&given) => {
                Some(format!("`{given}` is a key of the step itself: move it out of the action"))
            }
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
