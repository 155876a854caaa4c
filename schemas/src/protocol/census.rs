//! Counts of what a protocol contains: the one-line summary of `muster validate`, its `--json`,
//! and the test that pins each seed protocol against the numbers in its source document.

use super::model::action::HasAction;
use super::model::{ActionRef, Protocol};
use crate::role::Role;
use serde::Serialize;
use std::collections::BTreeMap;

/// How many of each construct a protocol has.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Census {
    /// Declared phases (0 for a protocol with top-level steps).
    pub phases: usize,
    /// Steps, all phases together.
    pub steps: usize,
    /// Steps per owner role.
    pub steps_per_role: BTreeMap<Role, usize>,
    /// Steps a person answers (form, approval, decision, manual).
    pub human_steps: usize,
    /// `form` steps.
    pub forms: usize,
    /// `approval` steps.
    pub approvals: usize,
    /// `decision` steps.
    pub decisions: usize,
    /// `manual` steps.
    pub manual_steps: usize,
    /// Quality gates.
    pub gates: usize,
    /// Gate criteria, all gates together.
    pub criteria: usize,
    /// Escalation triggers.
    pub escalations: usize,
    /// Steps with a rollback.
    pub rollbacks: usize,
    /// Alternatives, all steps together.
    pub alternatives: usize,
    /// Steps with a retry policy.
    pub retries: usize,
    /// Checkpoints on steps and phases.
    pub checkpoints: usize,
    /// Declared inputs.
    pub inputs: usize,
    /// Declared metrics.
    pub metrics: usize,
    /// SLOs.
    pub slos: usize,
    /// Triggers.
    pub triggers: usize,
    /// Documented failure scenarios.
    pub failure_scenarios: usize,
}

impl Census {
    /// Counts `protocol`.
    pub fn of(protocol: &Protocol) -> Self {
        let mut census = Census {
            phases: protocol.phases.len(),
            gates: protocol.gates.len(),
            criteria: protocol.gates.iter().map(|g| g.criteria.len()).sum(),
            escalations: protocol.escalations.len(),
            inputs: protocol.inputs.len(),
            metrics: protocol.metrics.len(),
            slos: protocol.slos.len(),
            triggers: protocol.triggers.len(),
            failure_scenarios: protocol.failure_scenarios.len(),
            checkpoints: protocol.phases.iter().filter(|p| p.checkpoint.is_some()).count(),
            ..Census::default()
        };
        for (_, step) in protocol.all_steps() {
            census.steps += 1;
            *census.steps_per_role.entry(step.owner).or_default() += 1;
            census.rollbacks += usize::from(step.rollback.is_some());
            census.alternatives += step.alternatives.len();
            census.retries += usize::from(step.retry.is_some());
            census.checkpoints += usize::from(step.checkpoint.is_some());
            match step.action() {
                Some(ActionRef::Form(_)) => census.forms += 1,
                Some(ActionRef::Approval(_)) => census.approvals += 1,
                Some(ActionRef::Decision(_)) => census.decisions += 1,
                Some(ActionRef::Manual(_)) => census.manual_steps += 1,
                _ => {}
            }
        }
        census.human_steps = census.forms + census.approvals + census.decisions + census.manual_steps;
        census
    }

    /// The one-line summary: phases, steps per role, gates, escalations, human steps.
    pub fn summary(&self) -> String {
        let roles = self.steps_per_role.iter().map(|(r, n)| format!("{r} {n}")).collect::<Vec<_>>().join(", ");
        format!(
            "{} phases, {} steps ({roles}), {} gates ({} criteria), {} escalations, {} human steps",
            self.phases, self.steps, self.gates, self.criteria, self.escalations, self.human_steps
        )
    }
}
