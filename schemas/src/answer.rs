//! Answers from people, signed by the principal that carries them.
//!
//! A person answers from the CLI, a chat room or HTTP. What reaches the orchestrator is a
//! [`SignedAnswer`]: the [`AnswerBody`] encoded once as MessagePack and signed as those exact
//! bytes with the Ed25519 key of a *principal* — the CLI user's own key, or the chat bridge's
//! key when it speaks for a chat user. The orchestrator checks the signature against the
//! principal's public key in its responder map, that the principal may speak for the body's
//! channel, the expiry, and that the nonce was never used (KV create), before it acts.
//!
//! Keys are NATS nkeys (user keys: seeds `SU…`, public keys `U…`); verification uses
//! `ed25519-dalek`'s `verify_strict`, which refuses malleable and small-order signatures.

use crate::codec::{DecodeError, EncodeError};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

/// Where a person answered from; chat identities are only believed from principals allowed to
/// speak for that channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// `muster answer` and friends, signed with the user's own key.
    Cli,
    /// A Matrix room, through the bridge.
    Matrix,
    /// Slack (slash commands, interactive actions), through the bridge.
    Slack,
    /// The bridge's HTTP API (bearer token).
    Http,
}

impl Channel {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Cli => "cli",
            Channel::Matrix => "matrix",
            Channel::Slack => "slack",
            Channel::Http => "http",
        }
    }
}

/// A person as a channel knows them (`matrix` `@alice:example.org`, `cli` `alice`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Identity {
    /// The channel.
    pub channel: Channel,
    /// The channel's id for the person.
    pub id: String,
}

/// What the person does. Chat text can only ever select one of these with data; it never
/// becomes a command or a template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum AnswerAction {
    /// "I have seen it and I am on it" (an escalation's triage stage).
    Acknowledge,
    /// Pick an option of an escalation or decision, or `continue|rollback|block` at a gate.
    Choose {
        /// The option id.
        option: String,
    },
    /// Fill (some of) a form's fields; values are checked against the field types.
    Fill {
        /// Field name → value as typed.
        fields: BTreeMap<String, String>,
    },
    /// Approve an approval step; `binding` is the hash of what the person saw (the plan).
    Approve {
        /// The binding hash shown with the approval; a changed plan voids the approval.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        binding: Option<String>,
    },
    /// Reject an approval (or refuse an escalation's request).
    Reject {
        /// Why.
        reason: String,
    },
    /// Confirm a manual step's checklist as done.
    Confirm,
}

/// The signed part of an answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnswerBody {
    /// The run.
    pub run_id: Uuid,
    /// What is answered: `ESC-12`, `F-3`, `A-4`, `D-5`, `M-6`, or a gate id.
    pub prompt: String,
    /// What the person does.
    pub action: AnswerAction,
    /// Free text kept with the answer (`because ...`); data only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Who answers, as their channel knows them.
    pub responder: Identity,
    /// Random, used once: a replayed answer is refused.
    pub nonce: String,
    /// When it was signed.
    pub issued_at: Timestamp,
    /// After this it is refused.
    pub expires_at: Timestamp,
}

/// An [`AnswerBody`] with its principal and signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedAnswer {
    /// The MessagePack encoding of the body, exactly as signed.
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
    /// The principal whose key signed it (a name in the responder map).
    pub principal: String,
    /// Ed25519 signature of `body`.
    #[serde(with = "serde_bytes")]
    pub signature: Vec<u8>,
}

/// Why a signed answer could not be made or opened.
#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    /// The key text is not an nkey of the right kind.
    #[error("invalid key: {0}")]
    Key(String),
    /// The signature does not verify with the principal's key.
    #[error("the signature does not match the answer and the key of `{0}`")]
    Mismatch(String),
    /// The body is not an answer.
    #[error("the signed body is not an answer: {0}")]
    Body(#[from] DecodeError),
    /// The body could not be encoded.
    #[error("could not encode the answer: {0}")]
    Encode(#[from] EncodeError),
}

impl SignedAnswer {
    /// Encodes and signs `body` with the principal's nkey seed (`SU…`).
    pub fn sign(body: &AnswerBody, principal: &str, seed: &str) -> Result<Self, SignatureError> {
        let pair = nkeys::KeyPair::from_seed(seed).map_err(|e| SignatureError::Key(e.to_string()))?;
        let bytes = crate::codec::encode_value(body)?;
        let signature = pair.sign(&bytes).map_err(|e| SignatureError::Key(e.to_string()))?;
        Ok(Self { body: bytes, principal: principal.to_owned(), signature })
    }

    /// Verifies the signature strictly against `public_key` (`U…`) and decodes the body. Says
    /// nothing about expiry, nonce or authority: the caller checks those.
    pub fn open(&self, public_key: &str) -> Result<AnswerBody, SignatureError> {
        let key = verifying_key(public_key)?;
        let signature = ed25519_dalek::Signature::from_slice(&self.signature)
            .map_err(|_| SignatureError::Mismatch(self.principal.clone()))?;
        key.verify_strict(&self.body, &signature).map_err(|_| SignatureError::Mismatch(self.principal.clone()))?;
        Ok(crate::codec::decode_value(&self.body)?)
    }
}

/// The Ed25519 key inside an nkey public key.
pub fn verifying_key(public_key: &str) -> Result<ed25519_dalek::VerifyingKey, SignatureError> {
    let (_, raw) = nkeys::from_public_key(public_key).map_err(|e| SignatureError::Key(e.to_string()))?;
    ed25519_dalek::VerifyingKey::from_bytes(&raw).map_err(|e| SignatureError::Key(e.to_string()))
}

/// A new key pair for a principal: `(seed, public key)`.
pub fn new_key_pair() -> Result<(String, String), SignatureError> {
    let pair = nkeys::KeyPair::new_user();
    let seed = pair.seed().map_err(|e| SignatureError::Key(e.to_string()))?;
    Ok((seed, pair.public_key()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body() -> AnswerBody {
        AnswerBody {
            run_id: Uuid::nil(),
            prompt: "ESC-12".into(),
            action: AnswerAction::Choose { option: "rollback".into() },
            note: Some("because the plan drifted".into()),
            responder: Identity { channel: Channel::Matrix, id: "@alice:localhost".into() },
            nonce: "00ff".into(),
            issued_at: Timestamp::UNIX_EPOCH,
            expires_at: Timestamp::UNIX_EPOCH,
        }
    }

    #[test]
    fn a_signed_answer_opens_with_its_key_only() {
        let (seed, public) = new_key_pair().unwrap();
        let (_, other) = new_key_pair().unwrap();
        let signed = SignedAnswer::sign(&body(), "bridge", &seed).unwrap();
        assert_eq!(signed.open(&public).unwrap(), body());
        assert!(matches!(signed.open(&other), Err(SignatureError::Mismatch(_))));
        let mut altered = signed.clone();
        altered.body[10] ^= 1;
        assert!(altered.open(&public).is_err());
        assert!(matches!(signed.open("not a key"), Err(SignatureError::Key(_))));
    }
}
