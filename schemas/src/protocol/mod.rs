//! The protocol language: what a scenario file deserialises into, shared by every process.
//!
//! - [`model`]: the types (protocol, phases, steps, actions, policies, gates, escalations, ...);
//! - [`load`]: parsing YAML into the model with `file:line:col` diagnostics and hints;
//! - [`check`]: the semantic checks (DAG, references, consistency), all reported at once;
//! - [`located`]: the YAML document as a located tree, to point diagnostics at lines;
//! - [`expr`]: CEL expressions behind a small interface;
//! - [`template`]: rendering `{{ inputs.x }}` into action arguments, one argument at a time;
//! - [`inputs`]: checking caller-supplied inputs against the declared ones.

pub mod census;
pub mod check;
pub mod expr;
pub mod inputs;
pub mod load;
pub mod located;
pub mod model;
mod recover;
pub mod template;

pub use inputs::{InputError, resolve_inputs};
pub use load::{Diagnostic, LoadError, parse_protocol, read_protocol};
pub use model::{DurationSpec, ExecAction, FieldSpec, FieldType, Literal, Phase, Protocol, Step};
