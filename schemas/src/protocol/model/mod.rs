//! The protocol types: what a scenario file means. Every struct denies unknown keys, so a
//! misspelt key is an error with a location instead of a silently ignored setting. The reference
//! with an example per construct is `scenarios/README.md`.
//!
//! - this module: the protocol, phases, steps and the values shared by all constructs;
//! - [`action`]: what a step does (`exec`, `http`, `tcp`, `tls`, `wait`, and the human actions
//!   `form`, `approval`, `decision`, `manual`);
//! - [`policy`]: how a step behaves (retry, alternatives, rollback, outputs, checkpoint);
//! - [`field`]: typed fields, used by inputs and forms;
//! - [`oversight`]: quality gates, escalations, ladders, responders;
//! - [`ops`]: SLOs, metrics, triggers, failure scenarios.

#[macro_use]
pub mod action;
pub mod field;
pub mod ops;
pub mod oversight;
pub mod policy;

pub use action::{
    ActionRef, ApprovalAction, DecisionAction, DecisionOption, ExecAction, FormAction, HttpAction, HttpExpect,
    ManualAction, TcpAction, TlsAction, WaitAction,
};
pub use field::{FieldSpec, FieldType, Literal};
pub use ops::{CronTrigger, FailureScenario, MetricSpec, MissedFires, Slo, SubjectTrigger, Trigger, WebhookTrigger};
pub use oversight::{Escalation, EscalationCondition, Gate, GroupSpec, Ladder, Responders, Severity};
pub use policy::{Alternative, Checkpoint, OnFailure, OutputSource, OutputSpec, RetryPolicy, Rollback};

use crate::role::Role;
use indexmap::IndexMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// A protocol: typed inputs, phases of steps forming a DAG, gates, escalations and the rest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Protocol {
    /// Stable identifier, used in triggers and subjects (`[a-z][a-z0-9_-]*`).
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
    /// The role accountable for the protocol as a whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<Role>,
    /// Other roles taking part.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub participants: Vec<Role>,
    /// Where the protocol came from (a document, a ticket), for traceability.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Declared inputs, in the order a form shows them.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub inputs: IndexMap<String, FieldSpec>,
    /// Named groups of people that human steps and escalations address.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub groups: BTreeMap<String, GroupSpec>,
    /// Phases, each a set of steps; phases and steps form one DAG through `needs`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub phases: Vec<Phase>,
    /// Steps of a protocol without phases (one implicit phase named `main`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<Step>,
    /// Quality gates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gates: Vec<Gate>,
    /// Automatic escalation triggers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub escalations: Vec<Escalation>,
    /// The escalation ladder used by escalations and human steps that do not set their own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ladder: Option<Ladder>,
    /// Named measurements that gates, escalations and SLOs refer to as `metrics.<name>`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metrics: BTreeMap<String, MetricSpec>,
    /// Service level objectives over run measurements.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub slos: Vec<Slo>,
    /// What starts a run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub triggers: Vec<Trigger>,
    /// Known ways the protocol fails, and which steps, alternatives or rollbacks handle each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failure_scenarios: Vec<FailureScenario>,
}

/// The name of the implicit phase of a protocol written with top-level `steps`.
pub const MAIN_PHASE: &str = "main";

impl Protocol {
    /// Every step with the id of its phase, in file order.
    pub fn all_steps(&self) -> impl Iterator<Item = (&str, &Step)> {
        let top = self.steps.iter().map(|s| (MAIN_PHASE, s));
        let phased = self.phases.iter().flat_map(|p| p.steps.iter().map(move |s| (p.id.as_str(), s)));
        top.chain(phased)
    }

    /// Looks a step up by id.
    pub fn step(&self, id: &str) -> Option<&Step> {
        self.all_steps().map(|(_, s)| s).find(|s| s.id == id)
    }

    /// The ladder an escalation or human step uses when it sets none: the protocol's, or the
    /// default (seed 002's: notify 2 min, triage 15, decide 30, fallback 60, follow-up 24 h).
    pub fn effective_ladder(&self) -> Ladder {
        self.ladder.clone().unwrap_or_default()
    }
}

/// A phase: steps that belong together, ordered against other phases with `needs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Phase {
    /// Unique among phases.
    pub id: String,
    /// Human title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// What the phase achieves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Phases that must finish before any step of this one starts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub needs: Vec<String>,
    /// CEL condition; when false the whole phase is skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
    /// What to record when the phase finishes, for recovery and rollback after a crash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<Checkpoint>,
    /// Free-form labels (`us1`, `parallel`), for filtering and graphs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    /// The steps.
    pub steps: Vec<Step>,
}

with_action! {
    /// One step: an action run by an agent of the owner role (or, for human actions, answered
    /// by a person and tracked by that role), with its policy.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Step {
        /// Unique among all steps of the protocol.
        pub id: String,
        /// The role whose agents run it (or who owns the human interaction).
        pub owner: Role,
        /// Human title, shown in progress output.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub title: Option<String>,
        /// What the step does and why.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub description: Option<String>,
        /// Steps that must finish before this one starts; independent steps run in parallel.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub needs: Vec<String>,
        /// CEL condition over inputs and outputs; when false the step is skipped.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub when: Option<String>,
        /// Free-form labels (`us1`, `parallel`, `t012`).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub labels: Vec<String>,
        /// Wall-clock limit of one attempt (`30s`, `5m`, `1h30m`); 10 minutes when omitted.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub timeout: Option<DurationSpec>,
        /// Retries of a failed attempt.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub retry: Option<RetryPolicy>,
        /// Other ways to reach the same result, tried in order once retries are exhausted.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub alternatives: Vec<Alternative>,
        /// The compensating action, run in reverse completion order when the run rolls back.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub rollback: Option<Rollback>,
        /// What happens when the step has failed for good.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub on_failure: Option<OnFailure>,
        /// Declared outputs, available to later steps as `outputs.<step>.<name>`.
        #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
        pub outputs: IndexMap<String, OutputSpec>,
        /// What to record for recovery when the step succeeds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub checkpoint: Option<Checkpoint>,
    }
}

impl Step {
    /// The timeout when the file gives none.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

    /// The effective timeout of one attempt.
    pub fn timeout(&self) -> Duration {
        self.timeout.map_or(Self::DEFAULT_TIMEOUT, |d| d.0)
    }
}

/// A duration written the way people write them (`90s`, `5m`, `1h30m`, `PT2M`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct DurationSpec(pub Duration);

impl std::str::FromStr for DurationSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // Days and weeks are 24 h and 7 × 24 h: a deadline of `7d` means a week of wall time.
        let signed: jiff::SignedDuration = s
            .parse()
            .or_else(|_| {
                s.parse::<jiff::Span>().and_then(|span| span.to_duration(jiff::SpanRelativeTo::days_are_24_hours()))
            })
            .map_err(|e| format!("invalid duration `{s}` ({e}); write e.g. `30s`, `5m`, `1h30m`, `7d`"))?;
        Duration::try_from(signed).map(DurationSpec).map_err(|_| format!("duration `{s}` must not be negative"))
    }
}

impl fmt::Display for DurationSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match jiff::SignedDuration::try_from(self.0) {
            Ok(signed) => write!(f, "{signed:#}"),
            Err(_) => write!(f, "{}s", self.0.as_secs()),
        }
    }
}

impl Serialize for DurationSpec {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
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
        assert_eq!(parse("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse("1w"), Ok(Duration::from_secs(7 * 86_400)));
        assert!(parse("1 month").is_err(), "months have no fixed length");
        assert!(parse("soon").is_err());
        assert!(parse("-5s").is_err());
        assert_eq!(DurationSpec(Duration::from_secs(5400)).to_string(), "1h 30m");
    }
}
