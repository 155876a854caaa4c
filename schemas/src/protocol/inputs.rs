//! Checking the inputs a caller gives (`--input k=v`, a trigger body) against the protocol's
//! declared fields. Values travel as text; lists and objects are written as JSON
//! (`--input 'regions=["eu-west-1","eu-central-1"]'`).

use super::load::did_you_mean;
use super::model::{DurationSpec, FieldSpec, FieldType, Protocol};
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
        match check_value(spec, &value) {
            Ok(()) => {
                resolved.insert(name.clone(), value);
            }
            Err(problem) => problems.push(format!("input `{name}` {problem}")),
        }
    }
    if problems.is_empty() { Ok(resolved) } else { Err(InputError { problems }) }
}

/// Checks one value written as text against its field.
pub fn check_value(spec: &FieldSpec, value: &str) -> Result<(), String> {
    let bounds = |n: f64| -> Result<(), String> {
        if spec.min.is_some_and(|min| n < min) || spec.max.is_some_and(|max| n > max) {
            let range = format!(
                "{}..{}",
                spec.min.map(|m| m.to_string()).unwrap_or_default(),
                spec.max.map(|m| m.to_string()).unwrap_or_default()
            );
            return Err(format!("must be within {range}, got `{value}`"));
        }
        Ok(())
    };
    match spec.kind {
        FieldType::String => match &spec.pattern {
            Some(pattern) => match regex::Regex::new(pattern) {
                Ok(re) if re.is_match(value) => Ok(()),
                Ok(_) => Err(format!("must match `{pattern}`, got `{value}`")),
                Err(_) => Err(format!("has an invalid pattern `{pattern}`")),
            },
            None => Ok(()),
        },
        FieldType::Int => value
            .parse::<i64>()
            .map_err(|_| format!("must be an integer, got `{value}`"))
            .and_then(|n| bounds(n as f64)),
        FieldType::Number => {
            value.parse::<f64>().map_err(|_| format!("must be a number, got `{value}`")).and_then(bounds)
        }
        FieldType::Bool => match value {
            "true" | "false" => Ok(()),
            _ => Err(format!("must be true or false, got `{value}`")),
        },
        FieldType::Enum if spec.values.iter().any(|v| v == value) => Ok(()),
        FieldType::Enum => {
            let hint = did_you_mean(value, spec.values.iter().map(String::as_str))
                .map(|b| format!(" (did you mean `{b}`?)"))
                .unwrap_or_default();
            Err(format!("must be one of {}, got `{value}`{hint}", spec.values.join(", ")))
        }
        FieldType::Duration => value.parse::<DurationSpec>().map(drop),
        FieldType::List => match serde_json::from_str::<serde_json::Value>(value) {
            Ok(serde_json::Value::Array(items)) => {
                let n = items.len() as u32;
                if spec.min_items.is_some_and(|m| n < m) || spec.max_items.is_some_and(|m| n > m) {
                    Err(format!("has {n} items, outside the allowed count"))
                } else {
                    Ok(())
                }
            }
            _ => Err(format!("must be a JSON list like [\"a\",\"b\"], got `{value}`")),
        },
        FieldType::Object => match serde_json::from_str::<serde_json::Value>(value) {
            Ok(serde_json::Value::Object(_)) => Ok(()),
            _ => Err(format!("must be a JSON object, got `{value}`")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::parse_protocol;

    fn protocol() -> Protocol {
        let text = "id: p\ninputs:\n  count: {type: int, default: 3, max: 10}\n  name: {required: true}\n  env: {type: enum, values: [dev, staging], default: dev}\nsteps:\n  - id: s\n    owner: sre\n    exec: {program: echo}\n";
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
        assert_eq!(ok.get("env").map(String::as_str), Some("dev"));

        let bad = BTreeMap::from([
            ("count".to_owned(), "11".to_owned()),
            ("nmae".to_owned(), "x".to_owned()),
            ("env".to_owned(), "stagin".to_owned()),
        ]);
        let err = resolve_inputs(&p, &bad).err().map(|e| e.problems).unwrap_or_default();
        assert_eq!(err.len(), 4, "{err:?}");
        assert!(err.iter().any(|e| e.contains("did you mean `name`")));
        assert!(err.iter().any(|e| e.contains("missing required input `name`")));
        assert!(err.iter().any(|e| e.contains("must be within")));
        assert!(err.iter().any(|e| e.contains("did you mean `staging`")));
    }
}
