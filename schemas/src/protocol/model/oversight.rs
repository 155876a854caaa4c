//! Oversight: quality gates judged by a role, escalations raised to people, the ladder of
//! deadlines, and who may answer.

use super::DurationSpec;
use crate::role::Role;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Who may answer a human step or an escalation. An empty set means nobody: such a step can only
/// time out, which `muster validate` reports.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Responders {
    /// Groups declared under the protocol's `groups`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Individual people (identities from the responder map).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<String>,
}

impl Responders {
    /// Whether nobody may answer.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty() && self.users.is_empty()
    }
}

/// A named group of people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupSpec {
    /// Who they are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Where they are reached (a chat room or channel).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// Members known at authoring time; the deployment's responder map may add more.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<String>,
}

/// A quality gate: criteria judged by an agent of the owner role at a point in the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gate {
    /// Unique among gates.
    pub id: String,
    /// Human title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// What the gate protects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The role whose agent gathers the facts and evaluates the criteria.
    pub owner: Role,
    /// Steps or phases the gate waits for; empty means before anything runs (a prerequisite
    /// gate). Steps that need these do not start until the gate has passed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<String>,
    /// The criteria, each a CEL expression that must be true.
    pub criteria: Vec<Criterion>,
    /// What each outcome does.
    #[serde(default)]
    pub on: GateOutcomes,
}

/// One criterion of a gate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Criterion {
    /// Unique within the gate.
    pub name: String,
    /// CEL over `inputs`, `outputs` and `metrics`; true means met.
    pub expr: String,
    /// What it checks, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// An unmet `fail` criterion fails the gate; an unmet `warn` one only warns.
    #[serde(default)]
    pub severity: CriterionSeverity,
}

/// How much an unmet criterion matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CriterionSeverity {
    /// Unmet → the gate fails.
    #[default]
    Fail,
    /// Unmet → the gate warns.
    Warn,
}

/// What the run does for each gate outcome. An outcome is `inconclusive` when a criterion
/// cannot be evaluated (a missing output, an error).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateOutcomes {
    /// All criteria met; `continue` when omitted.
    #[serde(default = "GateAction::proceed")]
    pub pass: GateAction,
    /// Only `warn` criteria unmet; `continue` when omitted.
    #[serde(default = "GateAction::proceed")]
    pub warn: GateAction,
    /// A `fail` criterion unmet; `block` when omitted.
    #[serde(default = "GateAction::block")]
    pub fail: GateAction,
    /// A criterion could not be evaluated; `ask` when omitted.
    #[serde(default = "GateAction::ask")]
    pub inconclusive: GateAction,
}

impl Default for GateOutcomes {
    fn default() -> Self {
        Self {
            pass: GateAction::Continue,
            warn: GateAction::Continue,
            fail: GateAction::Block,
            inconclusive: GateAction::Ask,
        }
    }
}

/// What a gate outcome does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum GateAction {
    /// Carry on.
    Continue,
    /// Hold the run and ask the owner role's responders (a generic escalation).
    Ask,
    /// Raise the named escalation and act on its answer.
    Escalate(String),
    /// Roll the run back.
    Rollback,
    /// Stop the run as failed; nothing after the gate runs.
    Block,
}

impl GateAction {
    fn proceed() -> Self {
        GateAction::Continue
    }
    fn block() -> Self {
        GateAction::Block
    }
    fn ask() -> Self {
        GateAction::Ask
    }
}

/// How urgent an escalation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Whole environment or security at stake.
    Critical,
    /// A major function is broken.
    High,
    /// Degraded.
    Medium,
    /// Informational.
    Low,
}

/// An automatic escalation trigger: when its condition holds, people are asked to decide.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Escalation {
    /// Unique among escalations.
    pub id: String,
    /// Human title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// What it means, for the context package.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// How urgent.
    pub severity: Severity,
    /// When it is raised by itself. Without it, the escalation is raised only by a step's
    /// `on_failure: {escalate: <id>}` or a gate outcome's `{escalate: <id>}` (which
    /// `muster validate` checks that something does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<EscalationCondition>,
    /// Whether the run waits for the answer (`true`) or carries on meanwhile (`false`, the
    /// default: e.g. a phase running long keeps running while people look).
    #[serde(default)]
    pub blocking: bool,
    /// What people may decide.
    pub options: Vec<super::DecisionOption>,
    /// The option recommended to people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// The option applied at the ladder's fallback deadline without an answer. Required:
    /// nothing is ever approved by default, so the fallback must be an explicit, safe option.
    pub fallback: String,
    /// Who may answer.
    pub responders: Responders,
    /// Deadlines for this escalation; the protocol's ladder when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ladder: Option<Ladder>,
}

/// When an escalation is raised (exactly one key).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum EscalationCondition {
    /// A step, a phase or the whole run (`run`) has been running longer than a threshold.
    RunningLonger {
        /// Step id, phase id, or `run`.
        target: String,
        /// The threshold.
        threshold: Threshold,
    },
    /// A CEL condition over `inputs`, `outputs` and `metrics` became true (`outputs.scan.cvss >= 7.0`).
    Expr(String),
    /// A step failed this many attempts in a row.
    ConsecutiveFailures {
        /// The step.
        step: String,
        /// How many.
        count: u32,
    },
    /// A gate reached an outcome.
    Gate {
        /// The gate.
        gate: String,
        /// `fail`, `warn` or `inconclusive`.
        outcome: GateOutcomeKind,
    },
}

/// A gate outcome, as escalations name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GateOutcomeKind {
    /// Criteria unmet.
    Fail,
    /// Only warnings.
    Warn,
    /// Criteria could not be evaluated.
    Inconclusive,
}

/// A duration threshold, fixed or depending on an input (75 min for development, 90 for staging).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Threshold {
    /// The same for every run.
    Fixed(super::DurationSpec),
    /// Chosen by an input's value.
    ByInput(ThresholdByInput),
}

/// A threshold chosen by an input's value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThresholdByInput {
    /// The input whose value selects the threshold.
    pub input: String,
    /// Threshold per value.
    pub values: BTreeMap<String, DurationSpec>,
    /// For values not listed; without it, an unlisted value raises nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<DurationSpec>,
}

/// Deadlines of an escalation, each measured from when it was raised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ladder {
    /// People are notified within this.
    pub notify: DurationSpec,
    /// Someone acknowledges (triages) by this, or the next responder group is notified.
    pub triage: DurationSpec,
    /// A decision is due by this.
    pub decide: DurationSpec,
    /// Without a decision, the fallback option runs at this.
    pub fallback: DurationSpec,
    /// A follow-up (root cause analysis) is due by this.
    pub follow_up: DurationSpec,
    /// Where notifications go (chat room or channel).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
}

impl Default for Ladder {
    /// Seed 002's ladder: notify 2 min, triage 15 min, decide 30 min, fallback 60 min, RCA 24 h.
    fn default() -> Self {
        let minutes = |m: u64| DurationSpec(std::time::Duration::from_secs(m * 60));
        Self {
            notify: minutes(2),
            triage: minutes(15),
            decide: minutes(30),
            fallback: minutes(60),
            follow_up: minutes(24 * 60),
            channel: None,
        }
    }
}
