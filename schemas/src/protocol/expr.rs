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

/// Values an expression can read, by root name (`inputs`, `outputs`, `metrics`, ...).
pub type Variables = std::collections::BTreeMap<String, serde_json::Value>;

impl Compiled {
    /// Evaluates to a boolean; anything else (an error, a missing key, another type) is an
    /// explanation of why the expression could not be judged.
    pub fn evaluate_bool(&self, variables: &Variables) -> Result<bool, String> {
        match self.evaluate(variables)? {
            serde_json::Value::Bool(b) => Ok(b),
            other => Err(format!("expected true or false, got {other}")),
        }
    }

    /// Evaluates with `variables` in scope.
    pub fn evaluate(&self, variables: &Variables) -> Result<serde_json::Value, String> {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut context = cel::Context::default();
            for (name, value) in variables {
                context.add_variable_from_value(name.clone(), to_cel(value));
            }
            self.program.execute(&context).map_err(|e| e.to_string())
        }))
        .map_err(|_| "the expression evaluator failed".to_owned())?;
        let outcome: cel::Value = outcome?;
        from_cel(&outcome)
    }

    /// Every dotted path the expression reads, longest selection first per root.
    pub fn references(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        walk(self.program.expression(), &mut Vec::new(), &mut out);
        out
    }
}

/// Converts JSON to a CEL value. Whole numbers become `int` (not `uint`, which CEL would refuse
/// to combine with the `int` literals people write).
fn to_cel(value: &serde_json::Value) -> cel::Value {
    use serde_json::Value as J;
    match value {
        J::Null => cel::Value::Null,
        J::Bool(b) => cel::Value::Bool(*b),
        J::Number(n) => match n.as_i64() {
            Some(i) => cel::Value::Int(i),
            None => cel::Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        J::String(s) => cel::Value::from(s.clone()),
        J::Array(items) => cel::Value::from(items.iter().map(to_cel).collect::<Vec<_>>()),
        J::Object(map) => {
            let entries: std::collections::HashMap<String, cel::Value> =
                map.iter().map(|(k, v)| (k.clone(), to_cel(v))).collect();
            cel::Value::from(entries)
        }
    }
}

/// Converts a CEL result to JSON (numbers, strings, booleans, lists, maps, null).
fn from_cel(value: &cel::Value) -> Result<serde_json::Value, String> {
    use cel::Value as V;
    Ok(match value {
        V::Bool(b) => serde_json::Value::Bool(*b),
        V::Int(i) => serde_json::Value::from(*i),
        V::UInt(u) => serde_json::Value::from(*u),
        V::Float(f) => serde_json::Value::from(*f),
        V::String(s) => serde_json::Value::String(s.to_string()),
        V::Null => serde_json::Value::Null,
        V::List(items) => serde_json::Value::Array(items.iter().map(from_cel).collect::<Result<_, _>>()?),
        V::Map(map) => {
            let mut out = serde_json::Map::new();
            for (key, value) in map.map.iter() {
                out.insert(key.to_string(), from_cel(value)?);
            }
            serde_json::Value::Object(out)
        }
        other => return Err(format!("unsupported result type {:?}", other.type_of())),
    })
}

/// The dotted path of a chain of field selections and string indexes ending in an identifier
/// (`a.b.c`, `outputs['build-image'].size` → `outputs.build-image.size`).
fn path_of(expr: &IdedExpr) -> Option<String> {
    match &expr.expr {
        Expr::Ident(name) => Some(name.clone()),
        Expr::Select(select) => path_of(&select.operand).map(|base| format!("{base}.{}", select.field)),
        Expr::Call(call) if call.func_name == "_[_]" && call.target.is_none() && call.args.len() == 2 => {
            let key = match &call.args[1].expr {
                Expr::Literal(cel::common::ast::LiteralValue::String(key)) => key.to_string(),
                _ => return None,
            };
            path_of(&call.args[0]).map(|base| format!("{base}.{key}"))
        }
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
        assert_eq!(refs("outputs['build-image'].size_mb < 100"), vec!["outputs.build-image.size_mb"]);
        assert_eq!(refs("outputs.list[0] == x.y"), vec!["outputs.list", "x.y"]);
    }

    fn eval(source: &str) -> Result<bool, String> {
        let vars: Variables = [
            ("inputs".to_owned(), serde_json::json!({"environment": "staging", "replicas": 3})),
            (
                "outputs".to_owned(),
                serde_json::json!({"scan": {"cvss": 8, "max": 7.5, "hosts": ["a", "b"], "ok": true}}),
            ),
            ("metrics".to_owned(), serde_json::json!({"availability": 99.7})),
        ]
        .into();
        compile(source)?.evaluate_bool(&vars)
    }

    /// The subset of CEL the protocols rely on, pinned against the immature `cel` crate.
    #[test]
    fn the_subset_we_rely_on_evaluates() {
        for (source, expected) in [
            ("outputs.scan.cvss >= 7", true),
            ("outputs.scan.max >= 7.0", true),
            ("double(outputs.scan.cvss) >= 7.0", true),
            ("metrics.availability >= 99.5", true),
            ("inputs.environment == 'staging' && inputs.replicas < 5", true),
            ("inputs.environment in ['development', 'staging']", true),
            ("size(outputs.scan.hosts) == 2", true),
            ("outputs.scan.hosts.all(h, h != '')", true),
            ("outputs.scan.hosts.exists(h, h == 'c')", false),
            ("has(outputs.scan.ok) && outputs.scan.ok", true),
            ("!has(outputs.scan.missing)", true),
            ("inputs.environment.startsWith('stag')", true),
            ("inputs.replicas * 2 == 6 || false", true),
        ] {
            assert_eq!(eval(source), Ok(expected), "{source}");
        }
    }

    #[test]
    fn evaluation_problems_are_explanations_not_panics() {
        assert!(eval("outputs.nothere.x > 1").is_err());
        assert!(eval("inputs.replicas").is_err(), "a non-boolean is not a verdict");
        assert!(eval("1 / 0 == 1").is_err());
    }

    #[test]
    fn syntax_errors_are_reported() {
        assert!(compile("outputs.scan.cvss >= ").is_err());
        assert!(compile("").is_err());
        assert!(compile("1 +* 2").is_err());
    }
}
