//! Templating of action strings with minijinja.
//!
//! Each argument is rendered on its own (no shell, no word splitting), undefined variables are
//! errors, and the rendered text is never rendered again, so a value that came from a caller or a
//! step output can never smuggle in template syntax.

use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;
use std::collections::BTreeMap;

/// What a template may refer to, besides declared inputs.
pub const BUILTIN_VARIABLES: [&str; 3] = ["run.id", "step.id", "step.attempt"];

/// The values available to a template.
#[derive(Debug, Serialize)]
pub struct Context<'a> {
    /// Validated inputs.
    pub inputs: &'a BTreeMap<String, String>,
    /// Facts about the run.
    pub run: RunFacts<'a>,
    /// Facts about the step being rendered.
    pub step: StepFacts<'a>,
}

/// `{{ run.* }}`.
#[derive(Debug, Serialize)]
pub struct RunFacts<'a> {
    /// The run id.
    pub id: &'a str,
}

/// `{{ step.* }}`.
#[derive(Debug, Serialize)]
pub struct StepFacts<'a> {
    /// The step id.
    pub id: &'a str,
    /// The attempt number.
    pub attempt: u32,
}

/// A template problem found before a run starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateProblem {
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: Option<String>,
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env
}

/// Checks syntax and that every variable is a declared input or a builtin.
pub fn check(text: &str, declared_inputs: &[&str]) -> Result<(), TemplateProblem> {
    if !text.contains("{{") && !text.contains("{%") {
        return Ok(());
    }
    let env = environment();
    let template = env.template_from_str(text).map_err(|e| TemplateProblem {
        message: format!("template syntax error: {}", e.detail().unwrap_or("invalid template")),
        hint: None,
    })?;
    let mut unknown: Vec<String> = template
        .undeclared_variables(true)
        .into_iter()
        .filter(|var| {
            let input = var.strip_prefix("inputs.").is_some_and(|name| declared_inputs.contains(&name));
            !input && !BUILTIN_VARIABLES.contains(&var.as_str())
        })
        .collect();
    unknown.sort();
    match unknown.first() {
        None => Ok(()),
        Some(var) => Err(TemplateProblem {
            message: format!("template refers to undefined variable `{var}`"),
            hint: Some(if declared_inputs.is_empty() {
                "declare it under `inputs:`; available: run.id, step.id, step.attempt".into()
            } else {
                format!(
                    "available: {}, run.id, step.id, step.attempt",
                    declared_inputs.iter().map(|i| format!("inputs.{i}")).collect::<Vec<_>>().join(", ")
                )
            }),
        }),
    }
}

/// Renders one string. Strings without template markers are returned unchanged.
pub fn render(text: &str, context: &Context<'_>) -> Result<String, String> {
    if !text.contains("{{") && !text.contains("{%") {
        return Ok(text.to_owned());
    }
    environment().render_str(text, minijinja::value::Serde(context)).map_err(|e| e.to_string())
}
