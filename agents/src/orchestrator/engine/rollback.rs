//! Rollback as a saga: the compensations of the steps that succeeded run one at a time in
//! reverse completion order. All succeed → the run ends `rolled_back`; one fails → the run ends
//! `failed`, naming it, and the rest are left alone (a human must look).

use super::{Effect, describe, dispatch, finish, record};
use jiff::Timestamp;
use muster_schemas::message::{Outcome, Purpose, StepResult};
use muster_schemas::run::{RunSnapshot, RunState, StepState};

/// Starts rolling back: queue the compensations of completed steps, newest first.
pub fn begin(run: &mut RunSnapshot, reason: String, now: Timestamp) -> Vec<Effect> {
    let queue: Vec<String> = run.completed.iter().rev().filter(|id| has_rollback(run, id)).cloned().collect();
    for step in run.steps.iter_mut().filter(|s| s.state == StepState::Pending) {
        step.state = StepState::Skipped;
        step.retry_at = None;
        step.note = Some(format!("{}the run rolled back", super::schedule::BLOCKED));
    }
    run.reason = Some(reason);
    run.rollback = Some(queue);
    advance(run, now)
}

/// Dispatches the next compensation, or ends the run when none is left.
pub fn advance(run: &mut RunSnapshot, now: Timestamp) -> Vec<Effect> {
    // Wait for everything still running: a compensation in flight, or forward steps whose
    // results decide whether they need compensating first (they finished last).
    if run.steps.iter().any(|s| s.state == StepState::Running) {
        return Vec::new();
    }
    let next = run.rollback.as_mut().and_then(|queue| (!queue.is_empty()).then(|| queue.remove(0)));
    let Some(id) = next else {
        let reason = run.reason.clone();
        let end = if run.cancelled { RunState::Cancelled } else { RunState::RolledBack };
        return finish(run, end, reason, now);
    };
    let Some(index) = run.steps.iter().position(|s| s.id == id) else { return advance(run, now) };
    let step = &mut run.steps[index];
    step.state = StepState::Running;
    step.attempt += 1;
    step.note = Some("compensating".to_owned());
    match dispatch::assignment(run, index, Purpose::Rollback) {
        Ok(work) => vec![Effect::Dispatch(Box::new(work))],
        Err(problem) => compensation_failed(run, index, format!("could not be prepared: {problem}"), now),
    }
}

/// A compensation finished.
pub fn on_result(run: &mut RunSnapshot, index: usize, result: &StepResult, now: Timestamp) -> Vec<Effect> {
    if result.outcome != Outcome::Succeeded {
        record(&mut run.steps[index], result, now);
        return compensation_failed(run, index, describe(result), now);
    }
    let step = &mut run.steps[index];
    step.state = StepState::RolledBack;
    step.note = Some("compensated".to_owned());
    step.finished_at = Some(now);
    advance(run, now)
}

/// A forward step failed after the rollback began: no retries, no alternatives.
pub fn late_failure(run: &mut RunSnapshot, index: usize, result: &StepResult, now: Timestamp) -> Vec<Effect> {
    let step = &mut run.steps[index];
    step.state = StepState::Failed;
    step.note = Some(format!("{} while the run was rolling back", describe(result)));
    advance(run, now)
}

/// A forward step succeeded after the rollback began: compensate it next.
pub fn late_success(run: &mut RunSnapshot, index: usize, now: Timestamp) -> Vec<Effect> {
    let id = run.steps[index].id.clone();
    if has_rollback(run, &id)
        && let Some(queue) = run.rollback.as_mut()
    {
        queue.insert(0, id);
    }
    advance(run, now)
}

fn compensation_failed(run: &mut RunSnapshot, index: usize, what: String, now: Timestamp) -> Vec<Effect> {
    let step = &mut run.steps[index];
    step.state = StepState::Failed;
    step.note = Some(format!("compensation {what}"));
    let reason = format!(
        "rollback stopped: the compensation of step `{}` {what}; {}",
        step.id,
        run.reason.as_deref().unwrap_or("the run was rolling back")
    );
    finish(run, RunState::Failed, Some(reason), now)
}

fn has_rollback(run: &RunSnapshot, id: &str) -> bool {
    run.protocol.step(id).is_some_and(|s| s.rollback.is_some())
}
