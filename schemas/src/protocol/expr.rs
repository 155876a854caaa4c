//! CEL expressions behind a small interface, so the immature `cel` crate can be swapped
//! without touching the rest: compile at load time, list what an expression refers to.
//!
//! References are reported as dotted paths rooted at an identifier (`outputs.scan.cvss`,
//! `inputs.environment`); variables bound by macros (`x` in `list.all(x, x > 0)`) are not
//! references.

use cel::common::ast::{EntryExpr, Expr, IdedExpr};
use std::collections::BTreeSet;

/// A compiled expression.
#[derive(Debug)]
pub struct Compiled {
    program: cel::Program,
}

/// Compiles `source`, or says why not.
pub fn compile(source: &str) -> Result<Compiled, String> {
    if source.trim().is_empty() {
        return Err("empty expression".to_owned());
    }
    // The parser is a generated one; keep a panic on pathological input from taking the process.
    let compiled = std::panic::catch_unwind(|| cel::Program::compile(source))
        .map_err(|_| "expression could not be parsed".to_owned())?;
    compiled.map(|program| Compiled { program }).map_err(|e| {
        let text = e.to_string();
        text.lines().next().unwrap_or("syntax error").to_owned()
    })
}

impl Compiled {
    /// Every dotted path the expression reads, longest selection first per root.
    pub fn references(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        walk(self.program.expression(), &mut Vec::new(), &mut out);
        out
    }
}

/// The dotted path of a chain of field selections ending in an identifier (`a.b.c`).
fn path_of(expr: &IdedExpr) -> Option<String> {
    match &expr.expr {
        Expr::Ident(name) => Some(name.clone()),
        Expr::Select(select) => path_of(&select.operand).map(|base| format!("{base}.{}", select.field)),
        _ => None,
    }
}

fn walk(expr: &IdedExpr, bound: &mut Vec<String>, out: &mut BTreeSet<String>) {
    if let Some(path) = path_of(expr) {
        let root = path.split('.').next().unwrap_or_default();
        if !bound.iter().any(|b| b == root) {
            out.insert(path);
        }
        return;
    }
    match &expr.expr {
        Expr::Select(select) => walk(&select.operand, bound, out),
        Expr::Call(call) => {
            if let Some(target) = &call.target {
                walk(target, bound, out);
            }
            for arg in &call.args {
                walk(arg, bound, out);
            }
        }
        Expr::List(list) => list.elements.iter().for_each(|e| walk(e, bound, out)),
        Expr::Map(map) => map.entries.iter().for_each(|e| walk_entry(&e.expr, bound, out)),
        Expr::Struct(st) => st.entries.iter().for_each(|e| walk_entry(&e.expr, bound, out)),
        Expr::Comprehension(c) => {
            walk(&c.iter_range, bound, out);
            walk(&c.accu_init, bound, out);
            let depth = bound.len();
            bound.push(c.iter_var.clone());
            bound.extend(c.iter_var2.clone());
            bound.push(c.accu_var.clone());
            for part in [&c.loop_cond, &c.loop_step, &c.result] {
                walk(part, bound, out);
            }
            bound.truncate(depth);
        }
        Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => {}
    }
}

fn walk_entry(entry: &EntryExpr, bound: &mut Vec<String>, out: &mut BTreeSet<String>) {
    match entry {
        EntryExpr::StructField(field) => walk(&field.value, bound, out),
        EntryExpr::MapEntry(entry) => {
            walk(&entry.key, bound, out);
            walk(&entry.value, bound, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs(source: &str) -> Vec<String> {
        compile(source).map(|c| c.references().into_iter().collect()).unwrap_or_default()
    }

    #[test]
    fn references_are_dotted_paths_without_bound_variables() {
        assert_eq!(refs("outputs.scan.cvss >= 7.0 && inputs.env == 'prod'"), vec!["inputs.env", "outputs.scan.cvss"]);
        assert_eq!(refs("outputs.hosts.list.all(h, h.up)"), vec!["outputs.hosts.list"]);
        assert_eq!(refs("size(metrics.errors) > 0"), vec!["metrics.errors"]);
    }

    #[test]
    fn syntax_errors_are_reported() {
        assert!(compile("outputs.scan.cvss >= ").is_err());
        assert!(compile("").is_err());
        assert!(compile("1 +* 2").is_err());
    }
}
