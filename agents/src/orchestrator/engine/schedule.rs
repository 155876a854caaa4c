//! Which steps may start now, and whether the run is over.
//!
//! A pending step starts when every step it depends on (its `needs`, and every step of the
//! phases its phase needs) is *satisfied* — succeeded, or skipped because its condition was
//! false — its retry backoff (if any) has passed, and fewer than [`MAX_PARALLEL_STEPS`] are
//! running. A step whose dependency failed (with `on_failure: continue`) or was itself blocked is
//! skipped as blocked. Conditions (`when` of the step and of its phase) are evaluated when the
//! step would start; a condition that cannot be evaluated fails the step.

use super::{Effect, MAX_PARALLEL_STEPS, dispatch, failure, finish, rollback, vars};
use jiff::Timestamp;
use muster_schemas::protocol::Protocol;
use muster_schemas::protocol::expr;
use muster_schemas::run::{GateState, RunSnapshot, RunState, StepRecord, StepState};

/// Prefix of the note of a step skipped because a dependency failed.
pub const BLOCKED: &str = "blocked: ";

/// Starts what can start, finishes the run when nothing is left, and checkpoints every phase
/// that has just finished.
pub fn advance(run: &mut RunSnapshot, now: Timestamp) -> Vec<Effect> {
    let effects = step_forward(run, now);
    super::checkpoints::record(run, now);
    effects
}

fn step_forward(run: &mut RunSnapshot, now: Timestamp) -> Vec<Effect> {
    if run.state.is_terminal() {
        return Vec::new();
    }
    if run.rollback.is_some() {
        return rollback::advance(run, now);
    }
    if run.state == RunState::Waiting && !run.paused {
        return Vec::new();
    }
    let mut effects = super::gates::advance(run);
    loop {
        let mut changed = false;
        for index in 0..run.steps.len() {
            if run.state.is_terminal() || run.rollback.is_some() {
                return effects;
            }
            if run.steps[index].state != StepState::Pending {
                continue;
            }
            let deps = dependencies(&run.protocol, &run.steps[index].id);
            let records: Vec<&StepRecord> = run.steps.iter().filter(|s| deps.contains(&s.id.as_str())).collect();
            if let Some(blocker) = records.iter().find(|r| is_blocking(r)).map(|r| r.id.clone()) {
                let step = &mut run.steps[index];
                step.state = StepState::Skipped;
                step.note = Some(format!("{BLOCKED}`{blocker}` did not succeed"));
                changed = true;
                continue;
            }
            if !records.iter().all(|r| is_satisfied(r)) || super::gates::holds(run, &run.steps[index].id) {
                continue;
            }
            if run.steps[index].retry_at.is_some_and(|at| at > now) {
                continue;
            }
            if running(run) >= MAX_PARALLEL_STEPS || run.paused {
                break;
            }
            if run.steps[index].attempt == 0 {
                match condition(run, index) {
                    Ok(true) => {}
                    Ok(false) => {
                        let step = &mut run.steps[index];
                        step.state = StepState::Skipped;
                        step.note = Some("condition is false".to_owned());
                        changed = true;
                        continue;
                    }
                    Err(problem) => {
                        effects.extend(failure::fail_without_result(
                            run,
                            index,
                            format!("condition could not be evaluated: {problem}"),
                            now,
                        ));
                        changed = true;
                        continue;
                    }
                }
            }
            effects.extend(start_step(run, index, now));
            changed = true;
        }
        let judged = super::gates::advance(run);
        changed |= !judged.is_empty();
        effects.extend(judged);
        if !changed {
            break;
        }
    }
    if run.state.is_terminal() || run.rollback.is_some() {
        return effects;
    }
    let gates_open = run.gates.iter().any(|g| matches!(g.state, GateState::Evaluating | GateState::Waiting));
    if !gates_open && run.steps.iter().all(|s| !matches!(s.state, StepState::Pending | StepState::Running)) {
        let failed: Vec<&str> =
            run.steps.iter().filter(|s| s.state == StepState::Failed).map(|s| s.id.as_str()).collect();
        let reason = (!failed.is_empty())
            .then(|| format!("finished with failed steps that allowed continuing: {}", failed.join(", ")));
        effects.extend(finish(run, RunState::Succeeded, reason, now));
        return effects;
    }
    effects.extend(next_wakeup(run).map(Effect::WakeAt));
    effects
}

/// Dispatches the next attempt of a step (its own action or the alternative in use).
pub fn start_step(run: &mut RunSnapshot, index: usize, now: Timestamp) -> Vec<Effect> {
    let purpose = super::current_purpose(run, index);
    let attempt = run.steps[index].attempt + 1;
    let step = &mut run.steps[index];
    step.attempt = attempt;
    step.tries += 1;
    step.state = StepState::Running;
    step.retry_at = None;
    step.started_at.get_or_insert(now);
    let human = run.protocol.step(&run.steps[index].id).is_some_and(super::prompts::is_human);
    if human && purpose == muster_schemas::message::Purpose::Run {
        return super::prompts::open_human_step(run, index, now);
    }
    match dispatch::assignment(run, index, purpose) {
        Ok(work) => vec![Effect::Dispatch(Box::new(work))],
        Err(problem) => failure::fail_without_result(run, index, format!("could not be prepared: {problem}"), now),
    }
}

/// The earliest retry backoff still to pass.
pub fn next_wakeup(run: &RunSnapshot) -> Option<Timestamp> {
    run.steps.iter().filter(|s| s.state == StepState::Pending).filter_map(|s| s.retry_at).min()
}

fn running(run: &RunSnapshot) -> usize {
    run.steps.iter().filter(|s| s.state == StepState::Running).count()
}

/// Succeeded, or skipped because its own condition was false.
fn is_satisfied(record: &StepRecord) -> bool {
    record.state == StepState::Succeeded
        || (record.state == StepState::Skipped && !record.note.as_deref().is_some_and(|n| n.starts_with(BLOCKED)))
}

/// Failed, rolled back, or skipped as blocked: dependants cannot run.
fn is_blocking(record: &StepRecord) -> bool {
    matches!(record.state, StepState::Failed | StepState::RolledBack)
        || (record.state == StepState::Skipped && record.note.as_deref().is_some_and(|n| n.starts_with(BLOCKED)))
}

/// The step's `when` and its phase's `when`, both of which must hold.
fn condition(run: &RunSnapshot, index: usize) -> Result<bool, String> {
    let id = &run.steps[index].id;
    let Some((phase, step)) = run.protocol.all_steps().find(|(_, s)| &s.id == id) else {
        return Err("step missing from protocol".to_owned());
    };
    let phase_when = run.protocol.phases.iter().find(|p| p.id == phase).and_then(|p| p.when.as_ref());
    let conditions: Vec<&String> = phase_when.into_iter().chain(step.when.as_ref()).collect();
    if conditions.is_empty() {
        return Ok(true);
    }
    let variables = vars::for_conditions(run);
    for source in conditions {
        if !expr::compile(source)?.evaluate_bool(&variables)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The steps `step` waits for: its `needs` and every step of the phases its phase needs.
pub fn dependencies<'p>(protocol: &'p Protocol, step: &str) -> Vec<&'p str> {
    let Some((phase, found)) = protocol.all_steps().find(|(_, s)| s.id == step) else { return Vec::new() };
    let mut deps: Vec<&str> = found.needs.iter().map(String::as_str).collect();
    if let Some(phase) = protocol.phases.iter().find(|p| p.id == phase) {
        for needed in &phase.needs {
            if let Some(p) = protocol.phases.iter().find(|p| &p.id == needed) {
                deps.extend(p.steps.iter().map(|s| s.id.as_str()));
            }
        }
    }
    deps
}
