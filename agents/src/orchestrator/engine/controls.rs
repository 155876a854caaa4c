//! Operator controls: cancel (with rollback), pause and resume, retry a failed step, skip a step
//! with a reason. Each is recorded in the run's interventions, so the trail shows who did what.

use super::schedule::{self, BLOCKED};
use super::{Effect, rollback};
use jiff::Timestamp;
use muster_schemas::message::Control;
use muster_schemas::run::{GateState, RunSnapshot, RunState, StepState};

/// Applies a control; `Err` says why it does not apply to the run as it is.
pub fn apply(run: &mut RunSnapshot, control: &Control, by: &str, now: Timestamp) -> Result<Vec<Effect>, String> {
    let what = match control {
        Control::Cancel => "cancel".to_owned(),
        Control::Pause => "pause".to_owned(),
        Control::Resume => "resume".to_owned(),
        Control::Retry { step } => format!("retry `{step}`"),
        Control::Skip { step, reason } => format!("skip `{step}` ({reason})"),
    };
    let effects = match control {
        Control::Cancel => cancel(run, by, now)?,
        Control::Pause => {
            live(run)?;
            if run.paused {
                return Err("the run is already paused".to_owned());
            }
            run.paused = true;
            run.state = RunState::Waiting;
            Vec::new()
        }
        Control::Resume => {
            if !run.paused {
                return Err("the run is not paused".to_owned());
            }
            run.paused = false;
            run.state = if run.gates.iter().any(|g| g.state == GateState::Waiting) {
                RunState::Waiting
            } else {
                RunState::Running
            };
            schedule::advance(run, now)
        }
        Control::Retry { step } => {
            let index = step_index(run, step)?;
            if run.steps[index].state != StepState::Failed {
                return Err(format!(
                    "step `{step}` is {}; only a failed step can be retried",
                    run.steps[index].state.as_str()
                ));
            }
            reopen(run, index, StepState::Pending, format!("retried by {by}"))?;
            schedule::advance(run, now)
        }
        Control::Skip { step, reason } => {
            let index = step_index(run, step)?;
            if !matches!(run.steps[index].state, StepState::Pending | StepState::Failed) {
                return Err(format!(
                    "step `{step}` is {}; only a pending or failed step can be skipped",
                    run.steps[index].state.as_str()
                ));
            }
            if reason.trim().is_empty() {
                return Err("say why the step is skipped".to_owned());
            }
            reopen(run, index, StepState::Skipped, format!("skipped by {by}: {reason}"))?;
            schedule::advance(run, now)
        }
    };
    run.interventions.push(format!("{now} {by}: {what}"));
    Ok(effects)
}

fn live(run: &RunSnapshot) -> Result<(), String> {
    if run.state.is_terminal() {
        return Err(format!("the run is already {}", run.state.as_str()));
    }
    Ok(())
}

fn step_index(run: &RunSnapshot, step: &str) -> Result<usize, String> {
    run.steps.iter().position(|s| s.id == step).ok_or_else(|| format!("the run has no step `{step}`"))
}

fn cancel(run: &mut RunSnapshot, by: &str, now: Timestamp) -> Result<Vec<Effect>, String> {
    live(run)?;
    if run.cancelled {
        return Err("the run is already being cancelled".to_owned());
    }
    run.cancelled = true;
    run.paused = false;
    run.state = RunState::Running;
    // Work still running is stopped rather than waited for; its failure is then compensated.
    let stop: Vec<Effect> =
        run.steps.iter().any(|s| s.state == StepState::Running).then_some(Effect::StopRunning).into_iter().collect();
    if run.rollback.is_some() {
        // Already rolling back: it ends `cancelled` instead of `rolled_back`.
        return Ok(stop);
    }
    Ok(stop.into_iter().chain(rollback::begin(run, format!("cancelled by {by}"), now)).collect())
}

/// Sets the step's new state, unblocks the steps that were skipped because of it, and reopens a
/// run that had failed (only a failed run; a rolled-back or cancelled one stays ended).
pub(super) fn reopen(run: &mut RunSnapshot, index: usize, state: StepState, note: String) -> Result<(), String> {
    if run.state.is_terminal() && run.state != RunState::Failed {
        return Err(format!("the run is {}; only a failed run can be reopened", run.state.as_str()));
    }
    if run.rollback.is_some() {
        return Err("the run is rolling back".to_owned());
    }
    let step = &mut run.steps[index];
    step.state = state;
    step.note = Some(note);
    step.tries = 0;
    step.alternative = None;
    step.retry_at = None;
    for other in run
        .steps
        .iter_mut()
        .filter(|s| s.state == StepState::Skipped && s.note.as_deref().is_some_and(|n| n.starts_with(BLOCKED)))
    {
        other.state = StepState::Pending;
        other.note = None;
    }
    if run.state == RunState::Failed {
        run.state = RunState::Running;
        run.finished_at = None;
        run.reason = None;
    }
    Ok(())
}
