//! What conditions and templates can read: typed inputs, the outputs of finished steps, and
//! metrics drawn from those outputs.

use muster_schemas::protocol::expr::Variables;
use muster_schemas::protocol::model::FieldType;
use muster_schemas::run::{RunSnapshot, StepState};
use serde_json::{Map, Value};

/// Inputs with their declared types (`"3"` for an `int` is the number 3).
pub fn inputs(run: &RunSnapshot) -> Value {
    let mut out = Map::new();
    for (name, text) in &run.inputs {
        let kind = run.protocol.inputs.get(name).map(|f| f.kind).unwrap_or_default();
        let value = match kind {
            FieldType::Int | FieldType::Number | FieldType::Bool | FieldType::List | FieldType::Object => {
                serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.clone()))
            }
            FieldType::String | FieldType::Enum | FieldType::Duration => Value::String(text.clone()),
        };
        out.insert(name.clone(), value);
    }
    Value::Object(out)
}

/// Outputs of succeeded steps, by step id.
pub fn outputs(run: &RunSnapshot) -> Value {
    let mut out = Map::new();
    for step in run.steps.iter().filter(|s| s.state == StepState::Succeeded) {
        out.insert(step.id.clone(), Value::Object(step.outputs.clone().into_iter().collect()));
    }
    Value::Object(out)
}

/// Metrics whose source output exists.
pub fn metrics(run: &RunSnapshot, outputs: &Value) -> Value {
    let mut out = Map::new();
    for (name, metric) in &run.protocol.metrics {
        let mut path = metric.from.splitn(2, '.');
        let (Some(step), Some(output)) = (path.next(), path.next()) else { continue };
        if let Some(value) = outputs.get(step).and_then(|s| s.get(output)) {
            out.insert(name.clone(), value.clone());
        }
    }
    Value::Object(out)
}

/// Everything a `when` condition can read.
pub fn for_conditions(run: &RunSnapshot) -> Variables {
    let outputs = outputs(run);
    let metrics = metrics(run, &outputs);
    [
        ("inputs".to_owned(), inputs(run)),
        ("metrics".to_owned(), metrics),
        ("outputs".to_owned(), outputs),
        ("gates".to_owned(), Value::Object(Map::new())),
    ]
    .into()
}
