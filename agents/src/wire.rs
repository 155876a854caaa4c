//! Envelopes on the bus: encoding, and the deterministic message ids that make retried publishes
//! idempotent (the bus drops a repeated id within its duplicate window).

use bytes::Bytes;
use muster_schemas::codec::{self, DecodeError, EncodeError};
use muster_schemas::{Envelope, Payload, Sender};
use uuid::Uuid;

/// Encodes an envelope for publishing.
pub fn encode(envelope: &Envelope) -> Result<Bytes, EncodeError> {
    codec::encode(envelope).map(Bytes::from)
}

/// Wraps and encodes a payload in one go.
pub fn seal(sender: &Sender, run_id: Option<Uuid>, payload: Payload) -> Result<Bytes, EncodeError> {
    encode(&Envelope::new(sender.clone(), run_id, payload))
}

/// Decodes a received envelope.
pub fn decode(bytes: &[u8]) -> Result<Envelope, DecodeError> {
    codec::decode(bytes)
}

/// The id of the work message for one step attempt: a re-dispatch after a crash is dropped.
pub fn work_id(run: Uuid, step: &str, attempt: u32) -> String {
    format!("work/{run}/{step}/{attempt}")
}

/// The id of a result: one per execution (delivery) of a step attempt.
pub fn result_id(run: Uuid, step: &str, attempt: u32, delivery: u32) -> String {
    format!("result/{run}/{step}/{attempt}/{delivery}")
}

/// The idempotency key handed to actions: stable across redeliveries of the same attempt.
pub fn idempotency_key(run: Uuid, step: &str, attempt: u32) -> String {
    format!("{run}/{step}/{attempt}")
}
