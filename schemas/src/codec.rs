//! MessagePack encoding of envelopes.
//!
//! Structs are written as maps with field names (`rmp_serde::to_vec_named`) so a reader in
//! another language, or a later muster, can find fields by name and skip ones it does not know.
//! Decoding never panics: every failure is a [`DecodeError`] the caller can count and
//! dead-letter.

use crate::envelope::Envelope;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The header that names the encoding of a bus message.
pub const CONTENT_TYPE_HEADER: &str = "Content-Type";

/// The content type of every muster message.
pub const CONTENT_TYPE: &str = "application/vnd.muster+msgpack; v=1";

/// Upper bound on an encoded message; larger ones are refused before they reach the bus.
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;

/// Why bytes could not be turned into an envelope.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Empty input.
    #[error("empty message")]
    Empty,
    /// Larger than [`MAX_MESSAGE_BYTES`].
    #[error("message of {0} bytes exceeds the {MAX_MESSAGE_BYTES} byte limit")]
    TooLarge(usize),
    /// Valid MessagePack of the right shape, but a payload kind this build does not know.
    #[error("unknown message kind: {0}")]
    UnknownKind(String),
    /// Not MessagePack, or not shaped like an envelope.
    #[error("malformed message: {0}")]
    Malformed(String),
}

impl DecodeError {
    /// A short label for metrics (`empty`, `too_large`, `unknown_kind`, `malformed`).
    pub fn label(&self) -> &'static str {
        match self {
            DecodeError::Empty => "empty",
            DecodeError::TooLarge(_) => "too_large",
            DecodeError::UnknownKind(_) => "unknown_kind",
            DecodeError::Malformed(_) => "malformed",
        }
    }
}

/// Why a value could not be encoded.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// The serializer refused the value.
    #[error("cannot encode: {0}")]
    Serialize(#[from] rmp_serde::encode::Error),
    /// The encoded form is too large for the bus.
    #[error("encoded message of {0} bytes exceeds the {MAX_MESSAGE_BYTES} byte limit")]
    TooLarge(usize),
}

/// Encodes an envelope for the bus.
pub fn encode(envelope: &Envelope) -> Result<Vec<u8>, EncodeError> {
    encode_value(envelope)
}

/// Encodes any contract value (run snapshots, for instance) the same way as envelopes.
pub fn encode_value<T: Serialize>(value: &T) -> Result<Vec<u8>, EncodeError> {
    let bytes = rmp_serde::to_vec_named(value)?;
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(EncodeError::TooLarge(bytes.len()));
    }
    Ok(bytes)
}

/// Decodes an envelope from the bus.
pub fn decode(bytes: &[u8]) -> Result<Envelope, DecodeError> {
    decode_value(bytes)
}

/// Decodes any contract value encoded with [`encode_value`].
pub fn decode_value<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    if bytes.is_empty() {
        return Err(DecodeError::Empty);
    }
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(DecodeError::TooLarge(bytes.len()));
    }
    rmp_serde::from_slice(bytes).map_err(|err| {
        let text = err.to_string();
        match text.strip_prefix("unknown variant ") {
            Some(rest) => DecodeError::UnknownKind(rest.to_owned()),
            None => DecodeError::Malformed(text),
        }
    })
}
