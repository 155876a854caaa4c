//! Handing a verified trigger to the orchestrator over the bus and reading its answer.

use crate::wire;
use muster_bus::subjects::Subjects;
use muster_bus::{Error as BusError, Messaging};
use muster_schemas::message::{RefusalCode, RunTriggered, TriggerReply};
use muster_schemas::{Payload, Sender};
use std::time::Duration;
use uuid::Uuid;

/// The orchestrator took the trigger: the run exists and its state is durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    /// The run.
    pub run_id: Uuid,
    /// True when the idempotency key had already started this run.
    pub existing: bool,
}

/// Why no run id came back. Only `Refused` means nothing was created; after `Timeout` the run
/// may exist, and retrying with the same idempotency key finds it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ForwardError {
    /// The orchestrator answered no.
    #[error("{reason}")]
    Refused {
        /// Its kind, which decides the HTTP status.
        code: RefusalCode,
        /// Its words.
        reason: String,
    },
    /// Nobody serves the trigger subject: no orchestrator, or one between leaders.
    #[error("no orchestrator is serving triggers; retry with the same Idempotency-Key")]
    NoOrchestrator,
    /// No answer in time.
    #[error(
        "the orchestrator did not answer within {}s; the run may have started: retry with the same Idempotency-Key",
        .0.as_secs()
    )]
    Timeout(Duration),
    /// The bus failed, or the answer was not a trigger reply.
    #[error("{0}")]
    Failed(String),
}

/// Sends `trigger` as a request on the protocol's trigger subject and waits for the reply.
pub async fn forward<M: Messaging>(
    bus: &M,
    subjects: &Subjects,
    sender: &Sender,
    trigger: RunTriggered,
    timeout: Duration,
) -> Result<Accepted, ForwardError> {
    let subject = subjects.trigger(&trigger.protocol_id);
    let bytes = wire::seal(sender, None, Payload::RunTriggered(trigger))
        .map_err(|err| ForwardError::Failed(format!("cannot encode the trigger: {err}")))?;
    let reply = bus.request(&subject, bytes, timeout).await.map_err(|err| match err {
        BusError::NoResponders(_) => ForwardError::NoOrchestrator,
        BusError::Timeout => ForwardError::Timeout(timeout),
        other => ForwardError::Failed(format!("cannot reach the orchestrator: {other}")),
    })?;
    match wire::decode(&reply).map(|envelope| envelope.payload) {
        Ok(Payload::TriggerReply(TriggerReply::Accepted { run_id, existing })) => Ok(Accepted { run_id, existing }),
        Ok(Payload::TriggerReply(TriggerReply::Refused { reason, code })) => {
            Err(ForwardError::Refused { code, reason })
        }
        Ok(other) => {
            Err(ForwardError::Failed(format!("the orchestrator answered {} instead of a trigger reply", other.kind())))
        }
        Err(err) => Err(ForwardError::Failed(format!("undecodable answer from the orchestrator: {err}"))),
    }
}
