//! The authority layer: whether an answer from a person may be acted on.
//!
//! People answer through the CLI (signing with their own key) or through a chat bridge (which
//! signs for them). Before the orchestrator acts on a [`SignedAnswer`], it asks, in order:
//!
//! 1. [`verify()`] (pure): is the envelope signed by a known principal, live, within its
//!    validity bounds, from a channel that principal may speak for, by a known person?
//! 2. [`consume_nonce`] (KV create): has this envelope been seen before?
//! 3. [`may_answer`] (pure): is that person among the prompt's responders?
//!
//! Every "no" is a [`Refusal`] with a sentence for the sender and a label for counters.
//!
//! - [`map`]: the responder map from `muster.toml` (people, principals) and its validation.
//! - [`verify`](mod@verify): the signature, time and identity checks.
//! - [`nonce`]: replay protection and fresh nonces.
//! - [`responders`]: who may answer a prompt.
//! - [`refusal`]: why an answer was refused.
//!
//! [`SignedAnswer`]: muster_schemas::answer::SignedAnswer

pub mod map;
pub mod nonce;
pub mod refusal;
pub mod responders;
pub mod verify;

pub use map::{MapError, Person, Principal, ResponderMap};
pub use nonce::{NonceError, consume_nonce, new_nonce};
pub use refusal::Refusal;
pub use responders::may_answer;
pub use verify::{CLOCK_SKEW, MAX_VALIDITY, Verified, verify};
