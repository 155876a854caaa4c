//! How a step behaves around its action: retries, alternatives, rollback, what failure does,
//! outputs and checkpoints.

use super::DurationSpec;
use super::field::FieldType;
use crate::role::Role;
use serde::{Deserialize, Serialize};

/// Retries of a failed attempt, with backoff.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicy {
    /// Attempts in total, the first included (≥ 1).
    pub max_attempts: u32,
    /// How the delay grows; `exponential` when omitted.
    #[serde(default)]
    pub backoff: Backoff,
    /// Delay before the second attempt; 10 s when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial: Option<DurationSpec>,
    /// Longest delay; 5 min when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<DurationSpec>,
    /// Random spread of each delay as a fraction (0.0–1.0); 0.2 when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter: Option<f64>,
    /// CEL condition over the failed attempt (`attempt.exit_code`, `attempt.outcome`,
    /// `attempt.stderr`); retry only when true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_if: Option<String>,
}

/// How retry delays grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backoff {
    /// Always `initial`.
    Fixed,
    /// `initial × attempt`.
    Linear,
    /// `initial × 2^(attempt-1)`.
    #[default]
    Exponential,
}

with_action! {
    /// Another way to reach a step's result, tried when the step's retries are exhausted.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Alternative {
        /// Unique within the step.
        pub id: String,
        /// Human title.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub title: Option<String>,
        /// Another role may own the alternative; the step's owner when omitted.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub owner: Option<Role>,
        /// CEL condition; an alternative whose condition is false is passed over.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub when: Option<String>,
    }
}

with_action! {
    /// The compensating action of a step.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Rollback {
        /// What it undoes, in words.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub description: Option<String>,
        /// Another role may own the rollback; the step's owner when omitted.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub owner: Option<Role>,
        /// Wall-clock limit; the step's timeout when omitted.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub timeout: Option<DurationSpec>,
    }
}

/// What a step that failed for good (retries and alternatives exhausted) does to the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum OnFailure {
    /// The run fails (the default).
    Fail,
    /// The run rolls back: compensations of completed steps run in reverse order.
    Rollback,
    /// The failure is recorded and the run carries on (dependants are skipped).
    Continue,
    /// The named escalation is raised and the run waits for its answer.
    Escalate(String),
}

/// A declared output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    /// The value type; `string` when omitted.
    #[serde(default, rename = "type")]
    pub kind: FieldType,
    /// Where it comes from; `stdout_json` when omitted.
    #[serde(default)]
    pub from: OutputSource,
    /// For `stdout_json`: a JSON pointer (`/scan/max_cvss`); for `file`: the key; the output's
    /// name when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// What it means.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Where an output's value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputSource {
    /// The action printed a JSON object on standard output.
    #[default]
    StdoutJson,
    /// The action wrote `key=value` lines to the file named by `MUSTER_OUTPUTS`.
    File,
    /// The answer of a human action (form fields, the decision's `choice`).
    Answer,
    /// A measurement of the action (`status`, `latency_ms`, `days_valid`).
    Probe,
}

/// What to record for recovery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// What the checkpoint captures, in words ("IaC state, configuration baselines, quotas").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Outputs to record (`<step>.<output>`, or an output of the step itself by name): the
    /// external ids a rollback after a crash needs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub record: Vec<String>,
}
