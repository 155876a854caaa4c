//! The envelope: what every message carries besides its payload.
//!
//! The message id is a UUID v7 (time-ordered, so logs and streams sort naturally); the run id
//! correlates everything belonging to one run and the causation id names the message that caused
//! this one, so an audit trail can be rebuilt as a tree.

use crate::message::Payload;
use crate::role::Role;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The contract version written by this build. Readers accept any version and ignore fields
/// they do not know; a breaking change bumps this and adds a new payload variant.
pub const SCHEMA_VERSION: u16 = 1;

/// Which kind of muster process sent a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Component {
    /// The orchestrator that sequences runs.
    Orchestrator,
    /// A role agent that executes steps.
    Agent,
    /// A user command (`muster trigger`, `muster run`).
    Cli,
    /// The chat bridge.
    Bridge,
}

/// Who sent a message: the component, its role when it is an agent, and its instance id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sender {
    /// The kind of process.
    pub component: Component,
    /// The role, for agents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// A unique id for the process instance (e.g. `devops-7f3a@host:pid`).
    pub id: String,
}

/// W3C trace context carried across NATS so a run's spans join up across processes.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TraceContext {
    /// The `traceparent` header value.
    pub traceparent: String,
    /// The optional `tracestate` header value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracestate: Option<String>,
}

/// A message as it travels on the bus.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// Contract version of the sender (see [`SCHEMA_VERSION`]).
    pub schema: u16,
    /// Unique, time-ordered message id.
    pub id: Uuid,
    /// The run this message belongs to, when it belongs to one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<Uuid>,
    /// The message that caused this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<Uuid>,
    /// Who sent it.
    pub sender: Sender,
    /// When it was sent.
    pub time: Timestamp,
    /// Trace context, when tracing is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<TraceContext>,
    /// The typed message.
    pub payload: Payload,
}

impl Envelope {
    /// Wraps a payload with a fresh id and the current time.
    pub fn new(sender: Sender, run_id: Option<Uuid>, payload: Payload) -> Self {
        Self {
            schema: SCHEMA_VERSION,
            id: Uuid::now_v7(),
            run_id,
            causation_id: None,
            sender,
            time: Timestamp::now(),
            trace: None,
            payload,
        }
    }

    /// Records the message that caused this one.
    pub fn caused_by(mut self, cause: Uuid) -> Self {
        self.causation_id = Some(cause);
        self
    }
}
