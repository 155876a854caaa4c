//! Where everything is: steps with their paths and phases, ids of every kind, declared
//! outputs, and the effective dependencies of each step.

use super::{Report, at, is_identifier, segs};
use crate::protocol::located::Seg;
use crate::protocol::model::action::HasAction;
use crate::protocol::model::{ActionRef, MAIN_PHASE, Protocol, Step};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// A step and where it is.
pub(crate) struct StepAt<'a> {
    pub step: &'a Step,
    pub phase: &'a str,
    pub path: Vec<Seg>,
}

/// The protocol's ids and dependencies.
pub(crate) struct Index<'a> {
    pub steps: Vec<StepAt<'a>>,
    pub by_id: HashMap<&'a str, usize>,
    pub phases: BTreeMap<&'a str, Vec<Seg>>,
    pub gates: BTreeSet<&'a str>,
    pub escalations: BTreeSet<&'a str>,
    /// Step id → the outputs it makes available (declared and implicit).
    pub outputs: HashMap<&'a str, BTreeSet<String>>,
    /// Step index → indices of steps it directly depends on (its needs and the steps of the
    /// phases its phase needs).
    pub deps: Vec<BTreeSet<usize>>,
}

impl<'a> Index<'a> {
    pub fn build(protocol: &'a Protocol, report: &mut Report) -> Self {
        if !is_identifier(&protocol.id) {
            report.error_hint(
                segs!["id"],
                format!("protocol id `{}` is not a valid identifier", protocol.id),
                "use lowercase letters, digits, `-` and `_`, starting with a letter (at most 64)",
            );
        }
        match (protocol.phases.is_empty(), protocol.steps.is_empty()) {
            (true, true) => report.error_hint(segs!["id"], "the protocol has no steps", "add `steps:` or `phases:`"),
            (false, false) => report.error_hint(
                segs!["steps"],
                "a protocol has either top-level `steps` or `phases`, not both",
                "move these steps into a phase",
            ),
            _ => {}
        }
        let mut steps = Vec::new();
        for (i, step) in protocol.steps.iter().enumerate() {
            steps.push(StepAt { step, phase: MAIN_PHASE, path: segs!["steps", i] });
        }
        let mut phases = BTreeMap::new();
        for (p, phase) in protocol.phases.iter().enumerate() {
            let phase_path = segs!["phases", p];
            check_id(report, &at(&phase_path, segs!["id"]), "phase", &phase.id);
            if phases.insert(phase.id.as_str(), phase_path.clone()).is_some() {
                report.error_hint(
                    at(&phase_path, segs!["id"]),
                    format!("duplicate phase id `{}`", phase.id),
                    "phase ids must be unique",
                );
            }
            if phase.steps.is_empty() {
                report.error(at(&phase_path, segs!["steps"]), format!("phase `{}` has no steps", phase.id));
            }
            for (s, step) in phase.steps.iter().enumerate() {
                steps.push(StepAt { step, phase: &phase.id, path: at(&phase_path, segs!["steps", s]) });
            }
        }
        let mut by_id = HashMap::new();
        for (i, s) in steps.iter().enumerate() {
            check_id(report, &at(&s.path, segs!["id"]), "step", &s.step.id);
            if by_id.insert(s.step.id.as_str(), i).is_some() {
                report.error_hint(
                    at(&s.path, segs!["id"]),
                    format!("duplicate step id `{}`", s.step.id),
                    "step ids must be unique across all phases",
                );
            }
            if phases.contains_key(s.step.id.as_str()) {
                report.error_hint(
                    at(&s.path, segs!["id"]),
                    format!("step id `{}` is also a phase id", s.step.id),
                    "gates, escalations and SLOs name steps and phases alike; rename one",
                );
            }
        }
        let gates = unique_ids(report, protocol.gates.iter().map(|g| g.id.as_str()), "gates", "gate");
        let escalations =
            unique_ids(report, protocol.escalations.iter().map(|e| e.id.as_str()), "escalations", "escalation");
        unique_ids(report, protocol.slos.iter().map(|s| s.id.as_str()), "slos", "SLO");
        unique_ids(
            report,
            protocol.failure_scenarios.iter().map(|f| f.id.as_str()),
            "failure_scenarios",
            "failure scenario",
        );
        let outputs = steps.iter().map(|s| (s.step.id.as_str(), available_outputs(s.step))).collect();
        let mut index = Index { steps, by_id, phases, gates, escalations, outputs, deps: Vec::new() };
        index.deps = index.dependencies(protocol);
        index
    }

    /// Resolves a step or phase id.
    pub fn is_step_or_phase(&self, id: &str) -> bool {
        self.by_id.contains_key(id) || self.phases.contains_key(id) || (id == MAIN_PHASE && !self.steps.is_empty())
    }

    fn dependencies(&self, protocol: &Protocol) -> Vec<BTreeSet<usize>> {
        let phase_needs: HashMap<&str, &Vec<String>> =
            protocol.phases.iter().map(|p| (p.id.as_str(), &p.needs)).collect();
        let steps_of = |phase: &str| -> Vec<usize> {
            self.steps.iter().enumerate().filter(|(_, s)| s.phase == phase).map(|(i, _)| i).collect()
        };
        self.steps
            .iter()
            .map(|s| {
                let mut deps: BTreeSet<usize> =
                    s.step.needs.iter().filter_map(|n| self.by_id.get(n.as_str()).copied()).collect();
                for needed in phase_needs.get(s.phase).map(|v| v.as_slice()).unwrap_or_default() {
                    deps.extend(steps_of(needed));
                }
                deps
            })
            .collect()
    }

    /// Every step `index` depends on, directly or not (cycles tolerated).
    pub fn ancestors(&self, index: usize) -> BTreeSet<usize> {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<usize> = self.deps.get(index).map(|d| d.iter().copied().collect()).unwrap_or_default();
        while let Some(next) = stack.pop() {
            if seen.insert(next) {
                stack.extend(self.deps[next].iter().copied());
            }
        }
        seen
    }
}

fn check_id(report: &mut Report, path: &[Seg], what: &str, id: &str) {
    if !is_identifier(id) {
        report.error_hint(
            path.to_vec(),
            format!("{what} id `{id}` is not a valid identifier"),
            "use lowercase letters, digits, `-` and `_`, starting with a letter (at most 64)",
        );
    }
}

fn unique_ids<'a>(report: &mut Report, ids: impl Iterator<Item = &'a str>, key: &str, what: &str) -> BTreeSet<&'a str> {
    let mut seen = BTreeSet::new();
    for (i, id) in ids.enumerate() {
        let path = segs![key, i, "id"];
        check_id(report, &path, what, id);
        if !seen.insert(id) {
            report.error_hint(path, format!("duplicate {what} id `{id}`"), format!("{what} ids must be unique"));
        }
    }
    seen
}

/// Declared outputs plus the ones every action of the step's kind provides.
fn available_outputs(step: &Step) -> BTreeSet<String> {
    let mut outputs: BTreeSet<String> = step.outputs.keys().cloned().collect();
    let implicit: &[&str] = match step.action() {
        Some(ActionRef::Exec(_)) => &["exit_code"],
        Some(ActionRef::Http(_)) => &["status", "latency_ms"],
        Some(ActionRef::Tcp(_)) => &["latency_ms"],
        Some(ActionRef::Tls(_)) => &["days_valid", "latency_ms"],
        Some(ActionRef::Decision(_)) => &["choice", "decided_by"],
        Some(ActionRef::Approval(_)) => &["approved_by"],
        Some(ActionRef::Manual(_)) => &["confirmed_by"],
        Some(ActionRef::Form(form)) => {
            outputs.extend(form.fields.keys().cloned());
            &["submitted_by"]
        }
        Some(ActionRef::Wait(_)) | None => &[],
    };
    outputs.extend(implicit.iter().map(|s| (*s).to_owned()));
    outputs
}
