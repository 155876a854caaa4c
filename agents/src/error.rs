//! The error type of the muster services.

use muster_schemas::codec::{DecodeError, EncodeError};

/// What can stop a muster service or command.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The transport failed.
    #[error(transparent)]
    Bus(#[from] muster_bus::Error),
    /// A message could not be encoded.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// A stored or received message could not be decoded.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// Configuration or input is wrong.
    #[error("{0}")]
    Invalid(String),
}

/// Results of muster services.
pub type Result<T, E = Error> = std::result::Result<T, E>;
