//! The protocol model: what a scenario file deserialises into, shared by every process.
//!
//! - [`model`]: the types (`Protocol`, `Step`, `ExecAction`, inputs).
//! - [`load`]: parsing YAML into the model with `file:line:col` diagnostics and hints.
//! - [`inputs`]: checking caller-supplied inputs against the declared ones.
//! - [`template`]: rendering `{{ inputs.x }}` into action arguments, one argument at a time.

pub mod inputs;
pub mod load;
pub mod model;
pub mod template;

pub use inputs::{InputError, resolve_inputs};
pub use load::{Diagnostic, LoadError, parse_protocol, read_protocol};
pub use model::{DurationSpec, ExecAction, InputSpec, InputType, Protocol, Scalar, Step};
