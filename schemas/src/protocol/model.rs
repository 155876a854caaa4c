//! The protocol types. Every struct denies unknown fields, so a misspelt key in a scenario file
//! is an error with a location rather than a silently ignored setting.

use crate::role::Role;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// A protocol: a named, versioned list of steps, each owned by a role.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Protocol {
    /// Stable identifier, used in triggers and subjects (`[a-z0-9-]`).
    pub id: String,
    /// The protocol's own version, for humans and audit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// One-line title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// What the protocol is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Declared inputs, by name.
    #[serde(default)]
    pub inputs: BTreeMap<String, InputSpec>,
    /// The steps, run in order.
    pub steps: Vec<Step>,
}

impl Protocol {
    /// Looks a step up by id.
    pub fn step(&self, id: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.id == id)
    }
}

/// The type of an input value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InputType {
    /// Any text.
    #[default]
    String,
    /// A signed 64-bit integer.
    Int,
    /// `true` or `false`.
    Bool,
}

/// A scalar value as written in YAML (a default, for instance).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Scalar {
    /// `true` / `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// Text.
    Str(String),
}

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scalar::Bool(b) => write!(f, "{b}"),
            Scalar::Int(i) => write!(f, "{i}"),
            Scalar::Str(s) => f.write_str(s),
        }
    }
}

/// A declared input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// The value type; `string` when omitted.
    #[serde(default, rename = "type")]
    pub kind: InputType,
    /// Whether a run may start without it (ignored when a default exists).
    #[serde(default)]
    pub required: bool,
    /// The value used when the caller gives none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Scalar>,
    /// What the input means, shown in `--help`-like listings and forms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// One step: an action run by an agent of the owner role.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Unique within the protocol.
    pub id: String,
    /// The role whose agents run it.
    pub owner: Role,
    /// Human title, shown in progress output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Run a program (never through a shell).
    pub exec: ExecAction,
}

/// Run a program. Every string may hold `{{ inputs.name }}` / `{{ run.id }}` templates, rendered
/// one element at a time just before dispatch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecAction {
    /// Program name or path.
    pub program: String,
    /// Arguments, one element each (no word splitting, no shell).
    #[serde(default)]
    pub args: Vec<String>,
    /// Extra environment variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Working directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// Wall-clock limit (`30s`, `5m`, `1h30m`); 10 minutes when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<DurationSpec>,
}

impl ExecAction {
    /// The timeout when the file gives none.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

    /// The effective timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout.map_or(Self::DEFAULT_TIMEOUT, |d| d.0)
    }
}

/// A duration written the way people write them (`90s`, `5m`, `1h30m`, `PT2M`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurationSpec(pub Duration);

impl std::str::FromStr for DurationSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let signed: jiff::SignedDuration =
            s.parse().map_err(|e| format!("invalid duration `{s}` ({e}); write e.g. `30s`, `5m`, `1h30m`"))?;
        Duration::try_from(signed).map(DurationSpec).map_err(|_| format!("duration `{s}` must not be negative"))
    }
}

impl Serialize for DurationSpec {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let signed = jiff::SignedDuration::try_from(self.0).map_err(serde::ser::Error::custom)?;
        serializer.collect_str(&format_args!("{signed:#}"))
    }
}

impl<'de> Deserialize<'de> for DurationSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_in_friendly_and_iso_forms() {
        let parse = |s: &str| s.parse::<DurationSpec>().map(|d| d.0);
        assert_eq!(parse("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("PT2M"), Ok(Duration::from_secs(120)));
        assert!(parse("soon").is_err());
        assert!(parse("-5s").is_err());
    }
}
