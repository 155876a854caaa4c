//! Quality gates. A gate becomes due when everything it is placed after has finished (a
//! prerequisite gate, placed after nothing, is due at once); an agent of its owner role judges
//! it and the outcome does what the protocol says: continue, hold the run for a person, roll
//! back, or block. Until a gate has passed, no step that depends on what it checks may start.

use super::schedule::dependencies;
use super::{Applied, Effect, finish, rollback, schedule, vars};
use jiff::Timestamp;
use muster_schemas::message::{CriterionSpec, GateAssigned, GateVerdict, Verdict};
use muster_schemas::protocol::model::oversight::{CriterionSeverity, GateAction};
use muster_schemas::protocol::model::{Gate, Protocol};
use muster_schemas::run::{GateRecord, GateState, RunSnapshot, RunState, StepState};
use std::collections::BTreeSet;

/// A record per gate, all pending.
pub fn records(protocol: &Protocol) -> Vec<GateRecord> {
    protocol
        .gates
        .iter()
        .map(|g| GateRecord {
            id: g.id.clone(),
            state: GateState::Pending,
            attempt: 0,
            verdict: None,
            evidence: Vec::new(),
            agent: None,
            decided_by: None,
            note: None,
        })
        .collect()
}

/// The steps a gate checks: those it is placed after, or all steps of the phases it is placed after.
fn checked_steps<'p>(protocol: &'p Protocol, gate: &Gate) -> BTreeSet<&'p str> {
    let mut out = BTreeSet::new();
    for target in &gate.after {
        match protocol.phases.iter().find(|p| &p.id == target) {
            Some(phase) => out.extend(phase.steps.iter().map(|s| s.id.as_str())),
            None => {
                out.insert(protocol.step(target).map_or("", |s| s.id.as_str()));
            }
        }
    }
    out
}

/// Whether a gate that has not passed holds `step` back: a prerequisite gate holds every step; a
/// placed gate holds the steps that depend on what it checks.
pub fn holds(run: &RunSnapshot, step: &str) -> bool {
    let deps: BTreeSet<&str> = dependencies(&run.protocol, step).into_iter().collect();
    run.protocol.gates.iter().zip(&run.gates).any(|(gate, record)| {
        record.state != GateState::Passed
            && (gate.after.is_empty() || !checked_steps(&run.protocol, gate).is_disjoint(&deps))
    })
}

/// Dispatches every gate whose checked steps have all finished; skips those that cannot pass.
pub fn advance(run: &mut RunSnapshot) -> Vec<Effect> {
    let mut effects = Vec::new();
    for index in 0..run.gates.len() {
        if run.gates[index].state != GateState::Pending {
            continue;
        }
        let gate = run.protocol.gates[index].clone();
        let checked = checked_steps(&run.protocol, &gate);
        let states: Vec<StepState> =
            run.steps.iter().filter(|s| checked.contains(s.id.as_str())).map(|s| s.state).collect();
        if states.iter().any(|s| matches!(s, StepState::Failed | StepState::RolledBack)) {
            let record = &mut run.gates[index];
            record.state = GateState::Skipped;
            record.note = Some("what it checks did not succeed".to_owned());
            continue;
        }
        if !states.iter().all(|s| matches!(s, StepState::Succeeded | StepState::Skipped)) {
            continue;
        }
        let record = &mut run.gates[index];
        record.state = GateState::Evaluating;
        record.attempt += 1;
        let attempt = record.attempt;
        effects.push(Effect::Judge(Box::new(assignment(run, &gate, attempt))));
    }
    effects
}

/// The work for the owner role's agent: the criteria and the facts they read.
pub fn assignment(run: &RunSnapshot, gate: &Gate, attempt: u32) -> GateAssigned {
    let variables = vars::for_conditions(run);
    GateAssigned {
        run_id: run.id,
        gate_id: gate.id.clone(),
        owner: gate.owner,
        attempt,
        criteria: gate
            .criteria
            .iter()
            .map(|c| CriterionSpec {
                name: c.name.clone(),
                expr: c.expr.clone(),
                warn_only: c.severity == CriterionSeverity::Warn,
            })
            .collect(),
        facts: serde_json::Value::Object(variables.into_iter().collect()),
    }
}

/// Acts on a verdict as the protocol says.
pub fn on_verdict(run: &mut RunSnapshot, verdict: &GateVerdict, now: Timestamp) -> Applied {
    let Some(index) = run.gates.iter().position(|g| g.id == verdict.gate_id) else {
        return Applied::Ignored(format!("run has no gate `{}`", verdict.gate_id));
    };
    let record = &run.gates[index];
    if run.state.is_terminal() || record.state != GateState::Evaluating || record.attempt != verdict.attempt {
        return Applied::Ignored(format!("gate `{}` is not waiting for evaluation {}", record.id, verdict.attempt));
    }
    let on = run.protocol.gates[index].on.clone();
    let action = match verdict.verdict {
        Verdict::Pass => on.pass,
        Verdict::Warn => on.warn,
        Verdict::Fail => on.fail,
        Verdict::Inconclusive => on.inconclusive,
    };
    let record = &mut run.gates[index];
    record.verdict = Some(verdict.verdict);
    record.evidence.clone_from(&verdict.evidence);
    record.agent = Some(verdict.agent.clone());
    let unmet: Vec<&str> = verdict.evidence.iter().filter(|e| e.met != Some(true)).map(|e| e.name.as_str()).collect();
    let what = format!("gate `{}` {}", verdict.gate_id, verdict.verdict.as_str());
    let what = if unmet.is_empty() { what } else { format!("{what} ({})", unmet.join(", ")) };
    Applied::Changed(act(run, index, &action, what, now))
}

/// A person answered a gate that holds the run.
pub fn on_answer(
    run: &mut RunSnapshot,
    gate: &str,
    option: &str,
    by: &str,
    now: Timestamp,
) -> Result<Vec<Effect>, String> {
    let index = run.gates.iter().position(|g| g.id == gate).ok_or_else(|| {
        let waiting: Vec<&str> =
            run.gates.iter().filter(|g| g.state == GateState::Waiting).map(|g| g.id.as_str()).collect();
        format!(
            "run has no gate `{gate}`; waiting: {}",
            if waiting.is_empty() { "nothing".to_owned() } else { waiting.join(", ") }
        )
    })?;
    if run.gates[index].state != GateState::Waiting {
        return Err(format!("gate `{gate}` is {}, not waiting for an answer", run.gates[index].state.as_str()));
    }
    let action = match option {
        "continue" => GateAction::Continue,
        "rollback" => GateAction::Rollback,
        "block" => GateAction::Block,
        other => return Err(format!("`{other}` is not an answer to a gate; answer continue, rollback or block")),
    };
    run.gates[index].decided_by = Some(by.to_owned());
    run.state = RunState::Running;
    Ok(act(run, index, &action, format!("gate `{gate}`: {by} answered {option}"), now))
}

/// Does what a gate outcome says: pass, block, roll back, or hold the run for people (an
/// `escalate` outcome raises the escalation, which holds the run until it is answered).
pub(super) fn act(
    run: &mut RunSnapshot,
    index: usize,
    action: &GateAction,
    what: String,
    now: Timestamp,
) -> Vec<Effect> {
    let record = &mut run.gates[index];
    record.note = Some(what.clone());
    match action {
        GateAction::Continue => {
            record.state = GateState::Passed;
            schedule::advance(run, now)
        }
        GateAction::Block => {
            record.state = GateState::Failed;
            finish(run, RunState::Failed, Some(format!("{what}: blocked")), now)
        }
        GateAction::Rollback => {
            record.state = GateState::Failed;
            rollback::begin(run, format!("{what}: rolling back"), now)
        }
        GateAction::Ask => {
            record.state = GateState::Waiting;
            run.state = RunState::Waiting;
            Vec::new()
        }
        GateAction::Escalate(escalation) => {
            // The escalation's options decide what the gate does; the gate itself no longer
            // waits for a gate answer.
            record.state = GateState::Failed;
            let subject = muster_schemas::run::PromptSubject::Gate(record.id.clone());
            super::prompts::raise(run, escalation, subject, what, true, now)
        }
    }
}
