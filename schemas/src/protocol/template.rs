//! Templating of action strings with minijinja.
//!
//! Each argument is rendered on its own (no shell, no word splitting), undefined variables are
//! errors, and the rendered text is never rendered again, so a value that came from a caller or a
//! step output can never smuggle in template syntax.

use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;
use std::collections::BTreeMap;

/// The values available to a template.
#[derive(Debug, Serialize)]
pub struct Context<'a> {
    /// Validated inputs.
    pub inputs: &'a BTreeMap<String, String>,
    /// Outputs of finished steps, by step id.
    pub outputs: &'a BTreeMap<String, BTreeMap<String, String>>,
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

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env
}

/// Whether `text` contains template syntax at all.
pub fn is_template(text: &str) -> bool {
    text.contains("{{") || text.contains("{%") || text.contains("{#")
}

/// The variables a template reads, as dotted paths (`inputs.workdir`, `outputs.plan.id`), or
/// the syntax error.
pub fn variables(text: &str) -> Result<Vec<String>, String> {
    if !is_template(text) {
        return Ok(Vec::new());
    }
    let env = environment();
    let template = env
        .template_from_str(text)
        .map_err(|e| format!("template syntax error: {}", e.detail().unwrap_or("invalid template")))?;
    let mut vars: Vec<String> = template.undeclared_variables(true).into_iter().collect();
    vars.sort();
    Ok(vars)
}

/// Renders one string. Strings without template markers are returned unchanged.
pub fn render(text: &str, context: &Context<'_>) -> Result<String, String> {
    if !is_template(text) {
        return Ok(text.to_owned());
    }
    environment().render_str(text, minijinja::value::Serde(context)).map_err(|e| e.to_string())
}
