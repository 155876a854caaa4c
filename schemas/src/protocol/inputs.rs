//! Checking the inputs a caller gives (`--input k=v`, a trigger body) against the protocol.

use super::load::did_you_mean;
use super::model::{InputType, Protocol};
use std::collections::BTreeMap;

/// Why a set of inputs was refused. Every problem is reported, not just the first.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .problems.join("; "))]
pub struct InputError {
    /// One sentence per problem.
    pub problems: Vec<String>,
}

/// Validates `given` against the protocol's declared inputs and returns the full set with
/// defaults applied.
pub fn resolve_inputs(
    protocol: &Protocol,
    given: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, InputError> {
    let mut problems = Vec::new();
    let mut resolved = BTreeMap::new();
    for name in given.keys().filter(|n| !protocol.inputs.contains_key(*n)) {
        let declared = protocol.inputs.keys().map(String::as_str);
        problems.push(match did_you_mean(name, declared) {
            Some(best) => format!("unknown input `{name}` (did you mean `{best}`?)"),
            None if protocol.inputs.is_empty() => {
                format!("unknown input `{name}`: protocol `{}` takes no inputs", protocol.id)
            }
            None => format!(
                "unknown input `{name}`; declared inputs: {}",
                protocol.inputs.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        });
    }
    for (name, spec) in &protocol.inputs {
        let value = given.get(name).cloned().or_else(|| spec.default.as_ref().map(ToString::to_string));
        let Some(value) = value else {
            if spec.required {
                problems.push(format!("missing required input `{name}` (give it with --input {name}=...)"));
            }
            continue;
        };
        let ok = match spec.kind {
            InputType::String => true,
            InputType::Int => value.parse::<i64>().is_ok(),
            InputType::Bool => matches!(value.as_str(), "true" | "false"),
        };
        if !ok {
            let kind = match spec.kind {
                InputType::Int => "an integer",
                InputType::Bool => "true or false",
                InputType::String => "text",
            };
            problems.push(format!("input `{name}` must be {kind}, got `{value}`"));
            continue;
        }
        resolved.insert(name.clone(), value);
    }
    if problems.is_empty() { Ok(resolved) } else { Err(InputError { problems }) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::parse_protocol;

    fn protocol() -> Protocol {
        let text = "id: p\ninputs:\n  count: {type: int, default: 3}\n  name: {required: true}\nsteps:\n  - id: s\n    owner: sre\n    exec: {program: echo}\n";
        match parse_protocol("p.yaml", text) {
            Ok(p) => p,
            Err(d) => unreachable!("fixture must parse: {d:?}"),
        }
    }

    #[test]
    fn defaults_apply_and_problems_are_all_reported() {
        let p = protocol();
        let given = BTreeMap::from([("name".to_owned(), "x".to_owned())]);
        let ok = resolve_inputs(&p, &given).unwrap_or_default();
        assert_eq!(ok.get("count").map(String::as_str), Some("3"));

        let bad = BTreeMap::from([("count".to_owned(), "many".to_owned()), ("nmae".to_owned(), "x".to_owned())]);
        let err = resolve_inputs(&p, &bad).err().map(|e| e.problems).unwrap_or_default();
        assert_eq!(err.len(), 3, "{err:?}");
        assert!(err.iter().any(|e| e.contains("did you mean `name`")));
        assert!(err.iter().any(|e| e.contains("missing required input `name`")));
        assert!(err.iter().any(|e| e.contains("must be an integer")));
    }
}
