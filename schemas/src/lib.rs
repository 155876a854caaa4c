//! The muster contract: everything two muster processes must agree on.
//!
//! - [`envelope`]: the wrapper every message travels in (ids, correlation, sender, time, trace).
//! - [`message`]: the typed payloads (triggers, step work, results, progress, heartbeats).
//! - [`codec`]: MessagePack encoding with named fields, the content-type header, typed decode errors.
//! - [`protocol`]: the protocol model that scenario files deserialise into, and its diagnostics.
//! - [`run`]: the durable run snapshot and the stable JSON status view scripts rely on.
//! - [`role`]: the role agents that own steps.
//!
//! Nothing here does I/O: the crate is shared by the orchestrator, the agents, the CLI and any
//! other language that reads the golden vectors in `schemas/golden/`.

pub mod answer;
pub mod codec;
pub mod envelope;
pub mod message;
pub mod protocol;
pub mod role;
pub mod run;

pub use codec::{CONTENT_TYPE, CONTENT_TYPE_HEADER, DecodeError, decode, encode};
pub use envelope::{Component, Envelope, SCHEMA_VERSION, Sender, TraceContext};
pub use message::Payload;
pub use role::Role;
