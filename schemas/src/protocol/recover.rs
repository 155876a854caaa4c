//! Reporting more than one structural error. serde stops at the first wrong key or type, so when
//! a file does not deserialise, each item of the protocol's lists (steps, gates, escalations,
//! ...) is cut out of the text and deserialised on its own; every item's first error is
//! reported at its place in the file. Items written in flow style (`[{...}, {...}]` on one line)
//! cannot be cut out and are left to the first error.

use super::load::{Diagnostic, from_yaml};
use super::located::{Node, NodeKind};
use super::model::{Escalation, FailureScenario, Gate, Slo, Step, Trigger};
use serde::de::DeserializeOwned;

/// The first error of every list item that does not deserialise on its own.
pub(crate) fn item_errors(path: &str, text: &str) -> Vec<Diagnostic> {
    let Some(tree) = Node::parse(text) else { return Vec::new() };
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut each = |node: &Node, check: fn(&str, &str) -> Option<Diagnostic>| {
        let NodeKind::Seq(items) = &node.kind else { return };
        for (i, item) in items.iter().enumerate() {
            let end = items.get(i + 1).map(|next| next.at.line() as usize - 1);
            if let Some(d) =
                cut(&lines, item, end).and_then(|(snippet, line, column)| shift(check(path, &snippet), line, column))
            {
                out.push(d);
            }
        }
    };
    for (key, _, node) in top_level(&tree) {
        match key.as_str() {
            "steps" => each(node, parse_as::<Step>),
            "gates" => each(node, parse_as::<Gate>),
            "escalations" => each(node, parse_as::<Escalation>),
            "slos" => each(node, parse_as::<Slo>),
            "triggers" => each(node, parse_as::<Trigger>),
            "failure_scenarios" => each(node, parse_as::<FailureScenario>),
            "phases" => {
                if let NodeKind::Seq(phases) = &node.kind {
                    for phase in phases {
                        for (k, _, steps) in top_level(phase) {
                            if k == "steps" {
                                each(steps, parse_as::<Step>);
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }
    out
}

fn top_level(node: &Node) -> &[(String, serde_saphyr::Location, Node)] {
    match &node.kind {
        NodeKind::Map(entries) => entries,
        _ => &[],
    }
}

/// The item's first schema error (unknown key or value, missing key, wrong type). Other errors
/// of a cut-out item (an alias to an anchor in another item, a syntax error) are artefacts of
/// the cut and are left to the whole-file error.
fn parse_as<T: DeserializeOwned>(path: &str, snippet: &str) -> Option<Diagnostic> {
    const SCHEMA_ERRORS: [&str; 5] = ["unknown field", "unknown variant", "missing field", "invalid", "duplicate"];
    serde_saphyr::from_str::<T>(snippet)
        .err()
        .map(|e| from_yaml(path, &e))
        .filter(|d| SCHEMA_ERRORS.iter().any(|prefix| d.message.starts_with(prefix)))
}

/// The item's text as a standalone document: its lines up to the next item (or the end of its
/// indentation), with the item's indentation removed. Returns the text and the item's line and
/// column in the file.
fn cut(lines: &[&str], item: &Node, next_line: Option<usize>) -> Option<(String, usize, usize)> {
    let line = usize::try_from(item.at.line()).ok()?.checked_sub(1)?;
    let column = usize::try_from(item.at.column()).ok()?.checked_sub(1)?;
    if !matches!(item.kind, NodeKind::Map(_)) || next_line.is_some_and(|n| n <= line) {
        return None;
    }
    let first = lines.get(line)?;
    if first.len() < column {
        return None;
    }
    let mut out = vec![format!("{}{}", " ".repeat(column), &first[column..])];
    for text in lines.iter().skip(line + 1) {
        let indent = text.len() - text.trim_start().len();
        let blank = text.trim().is_empty() || text.trim_start().starts_with('#');
        if next_line.is_some_and(|n| line + out.len() >= n) || (!blank && indent < column) {
            break;
        }
        out.push((*text).to_owned());
    }
    // Lines indented less than the item (blank lines, comments) carry nothing of it.
    let dedented: Vec<&str> = out
        .iter()
        .map(|l| if l.len() - l.trim_start().len() < column { "" } else { l.get(column..).unwrap_or("") })
        .collect();
    Some((dedented.join("\n"), line, column))
}

/// Moves a diagnostic found in a cut-out snippet back to its place in the file.
fn shift(diagnostic: Option<Diagnostic>, line: usize, column: usize) -> Option<Diagnostic> {
    diagnostic.map(|mut d| {
        if d.line > 0 {
            d.column += column as u64;
            d.line += line as u64;
        }
        d
    })
}
