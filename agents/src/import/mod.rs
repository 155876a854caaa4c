//! Importing protocols from documents written for other tools (`muster import`), so existing
//! plans become runnable, checkable protocols instead of being retyped.
//!
//! - [`speckit`]: a spec-kit `tasks.md` (phases of `- [ ] T001 [P] [US1] ...` tasks).
//!
//! Importers build the protocol model directly and check it with the same checks as
//! `muster validate`; [`to_yaml`] writes the result as a scenario file.

pub mod speckit;

use muster_schemas::protocol::Protocol;

/// Why a protocol could not be written as YAML.
#[derive(Debug, thiserror::Error)]
#[error("cannot write the protocol as YAML: {0}")]
pub struct YamlError(String);

/// Serialises a protocol as a scenario file (YAML), so an imported protocol can be saved,
/// reviewed, edited and then run like a hand-written one. The text parses back to the same
/// protocol.
pub fn to_yaml(protocol: &Protocol) -> Result<String, YamlError> {
    serde_saphyr::to_string(protocol).map_err(|err| YamlError(err.to_string()))
}
