//! The checks serde cannot make: identifiers and duplicates, the DAG, references from
//! templates and CEL expressions, and the consistency of gates, escalations, human steps, SLOs
//! and triggers. Every problem names a path into the document, which the loader turns into a
//! line and column; all problems are collected, not just the first.
//!
//! - [`index`]: where every step, phase and output is, and who depends on whom;
//! - [`graph`]: `needs`, cycles, unreachable steps, gate placement;
//! - [`refs`]: template and CEL references;
//! - [`rules`]: per-construct rules (actions, human steps, gates, escalations, SLOs, ...).

mod graph;
mod index;
mod refs;
mod rules;

use super::located::Seg;
use super::model::Protocol;

/// One problem, located by path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where, as a path into the document.
    pub path: Vec<Seg>,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: Option<String>,
}

/// Collects problems.
#[derive(Debug, Default)]
pub(crate) struct Report {
    problems: Vec<Problem>,
}

impl Report {
    pub fn error(&mut self, path: Vec<Seg>, message: impl Into<String>) {
        self.problems.push(Problem { path, message: message.into(), hint: None });
    }

    pub fn error_hint(&mut self, path: Vec<Seg>, message: impl Into<String>, hint: impl Into<String>) {
        self.problems.push(Problem { path, message: message.into(), hint: Some(hint.into()) });
    }
}

/// Builds a path from keys and indices: `segs!["steps", 2, "needs", 0]`.
macro_rules! segs {
    ($($seg:expr),* $(,)?) => { vec![$($crate::protocol::located::Seg::from($seg)),*] };
}
pub(crate) use segs;

/// Extends a path: `at(&base, ["needs", 0])`.
pub(crate) fn at(base: &[Seg], more: impl IntoIterator<Item = Seg>) -> Vec<Seg> {
    base.iter().cloned().chain(more).collect()
}

/// Runs every check.
pub fn check(protocol: &Protocol) -> Vec<Problem> {
    let mut report = Report::default();
    let index = index::Index::build(protocol, &mut report);
    graph::check(protocol, &index, &mut report);
    refs::check(protocol, &index, &mut report);
    rules::check(protocol, &index, &mut report);
    report.problems
}

/// Ids appear in subjects, keys and file names, so they are kept to a safe alphabet.
pub fn is_identifier(id: &str) -> bool {
    let mut chars = id.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        && id.len() <= 64
}
