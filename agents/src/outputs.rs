//! Extracting a step's declared outputs from what its program left behind: a JSON object on
//! standard output (`stdout_json`, addressed with a JSON pointer) or `key=value` lines in the
//! file named by `MUSTER_OUTPUTS` (`file`). Values are checked against the declared type; a
//! missing or ill-typed output fails the step with the reason.

use muster_schemas::message::OutputWanted;
use serde_json::Value;
use std::collections::BTreeMap;

/// The declared outputs, typed, or the first problem.
pub fn extract(wanted: &[OutputWanted], stdout: &str, file: &str) -> Result<BTreeMap<String, Value>, String> {
    let mut json: Option<Result<Value, String>> = None;
    let pairs: BTreeMap<&str, &str> =
        file.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.trim(), v.trim())).collect();
    let mut out = BTreeMap::new();
    for output in wanted {
        let raw = if output.from == "file" {
            let text = pairs
                .get(output.path.as_str())
                .ok_or_else(|| format!("output `{}`: no `{}=` line in $MUSTER_OUTPUTS", output.name, output.path))?;
            from_text(text, &output.kind)
        } else {
            let document = json
                .get_or_insert_with(|| {
                    serde_json::from_str::<Value>(stdout.trim())
                        .map_err(|e| format!("standard output is not a JSON document ({e})"))
                })
                .as_ref()
                .map_err(|e| format!("output `{}`: {e}", output.name))?;
            document.pointer(&output.path).cloned().ok_or_else(|| {
                format!("output `{}`: nothing at `{}` in the JSON on standard output", output.name, output.path)
            })?
        };
        out.insert(
            output.name.clone(),
            typed(raw, &output.kind).map_err(|e| format!("output `{}`: {e}", output.name))?,
        );
    }
    Ok(out)
}

/// A `key=value` value: JSON when it parses as the declared structured type, else text.
fn from_text(text: &str, kind: &str) -> Value {
    match kind {
        "string" | "enum" | "duration" => Value::String(text.to_owned()),
        _ => serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned())),
    }
}

fn typed(value: Value, kind: &str) -> Result<Value, String> {
    let ok = match kind {
        "int" => value.as_i64().is_some(),
        "number" => value.is_number(),
        "bool" => value.is_boolean(),
        "list" => value.is_array(),
        "object" => value.is_object(),
        _ => true,
    };
    if !ok {
        return Err(format!("expected {kind}, got {value}"));
    }
    Ok(match (kind, value) {
        ("string" | "enum" | "duration", Value::String(s)) => Value::String(s),
        ("string" | "enum" | "duration", other) => Value::String(other.to_string()),
        (_, value) => value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn want(name: &str, kind: &str, from: &str, path: &str) -> OutputWanted {
        OutputWanted { name: name.into(), kind: kind.into(), from: from.into(), path: path.into() }
    }

    #[test]
    fn json_and_file_outputs_are_typed() {
        let wanted = [
            want("cvss", "number", "stdout_json", "/scan/max"),
            want("id", "string", "file", "id"),
            want("n", "int", "file", "count"),
        ];
        let out = extract(&wanted, "{\"scan\": {\"max\": 7.5}}", "id=i-123\ncount=4\n").unwrap();
        assert_eq!(out["cvss"], serde_json::json!(7.5));
        assert_eq!(out["id"], serde_json::json!("i-123"));
        assert_eq!(out["n"], serde_json::json!(4));
    }

    #[test]
    fn missing_and_mistyped_outputs_are_explained() {
        let err = extract(&[want("cvss", "number", "stdout_json", "/max")], "not json", "").unwrap_err();
        assert!(err.contains("not a JSON document"), "{err}");
        let err = extract(&[want("n", "int", "stdout_json", "/n")], "{\"n\": \"four\"}", "").unwrap_err();
        assert!(err.contains("expected int"), "{err}");
        let err = extract(&[want("id", "string", "file", "id")], "", "other=1").unwrap_err();
        assert!(err.contains("no `id=` line"), "{err}");
    }
}
