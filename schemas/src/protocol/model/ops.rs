//! Operating a protocol: metrics, SLOs, triggers, and the documented failure scenarios.

use super::DurationSpec;
use super::field::Literal;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A named measurement (`metrics.<name>` in CEL).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricSpec {
    /// What it measures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Unit (`percent`, `ms`, `usd`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// The step output it is read from (`<step>.<output>`).
    pub from: String,
}

/// A service level objective over run measurements.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Slo {
    /// Unique among SLOs.
    pub id: String,
    /// What it promises, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// CEL condition over `inputs` selecting the runs it applies to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
    /// A duration objective (exactly one of `duration` and `metric`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<DurationObjective>,
    /// A metric objective.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<MetricObjective>,
}

/// "The p95 duration of X stays under D".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DurationObjective {
    /// A step id, a phase id, or `run`.
    pub of: String,
    /// The percentile (1–100); 95 when omitted.
    #[serde(default = "p95")]
    pub percentile: u8,
    /// The limit.
    pub under: DurationSpec,
}

fn p95() -> u8 {
    95
}

/// "Metric M stays at least / at most V".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricObjective {
    /// A metric declared under `metrics`.
    pub name: String,
    /// Lower bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_least: Option<f64>,
    /// Upper bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_most: Option<f64>,
}

/// What starts a run (exactly one key per entry).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Trigger {
    /// A person: `muster trigger`, the web page, chat.
    Manual(ManualTrigger),
    /// `POST /v1/protocols/{id}/runs` with an HMAC-signed body.
    Webhook(WebhookTrigger),
    /// A message on a NATS subject.
    Subject(SubjectTrigger),
    /// A cron schedule.
    Cron(CronTrigger),
}

/// A manual trigger.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManualTrigger {
    /// When people should start it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A webhook trigger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookTrigger {
    /// The environment variable holding the HMAC secret.
    pub secret_env: String,
    /// When it fires, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A NATS subject trigger; the message body (JSON object) supplies inputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubjectTrigger {
    /// The subject (wildcards allowed).
    pub subject: String,
    /// When it fires, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A cron trigger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CronTrigger {
    /// Five- or six-field cron expression, in UTC.
    pub schedule: String,
    /// What happens to fires missed while muster was down; `run_once` when omitted.
    #[serde(default)]
    pub missed: MissedFires,
    /// Inputs for the runs it starts.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub inputs: BTreeMap<String, Literal>,
    /// What it is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// The policy for cron fires missed while down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MissedFires {
    /// Missed fires are dropped.
    Skip,
    /// One run catches up for all missed fires.
    #[default]
    RunOnce,
}

/// A documented way the protocol fails and what handles it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailureScenario {
    /// Unique among failure scenarios.
    pub id: String,
    /// Name.
    pub title: String,
    /// How it shows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symptoms: Option<String>,
    /// How bad it is.
    pub impact: super::Severity,
    /// Steps, alternatives (`<step>.<alternative>`), rollbacks (`<step>.rollback`), gates or
    /// escalations that handle it.
    pub handled_by: Vec<String>,
}
