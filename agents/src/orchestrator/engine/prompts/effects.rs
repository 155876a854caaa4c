//! What choosing an option does to the run, by what the prompt is about: continue, retry or
//! skip the step (or re-judge / pass the gate), roll the run back, or stop it failed.

use super::super::{Effect, controls, finish, gates, rollback, schedule};
use jiff::Timestamp;
use muster_schemas::protocol::model::action::OptionEffect;
use muster_schemas::protocol::model::oversight::GateAction;
use muster_schemas::run::{GateState, PromptSubject, RunSnapshot, RunState, StepState};

/// Applies `effect` of prompt `index`, then lets the run go on if nothing else holds it.
pub fn apply(run: &mut RunSnapshot, index: usize, effect: OptionEffect, what: String, now: Timestamp) -> Vec<Effect> {
    if run.state.is_terminal() {
        return Vec::new();
    }
    let subject = run.prompts[index].subject.clone();
    let mut effects = match (&subject, effect) {
        (_, OptionEffect::Rollback) => {
            release(run);
            return rollback::begin(run, what, now);
        }
        (_, OptionEffect::Abort) => return finish(run, RunState::Failed, Some(what), now),
        (PromptSubject::Gate(gate), effect) => {
            let Some(gate_index) = run.gates.iter().position(|g| g.id == *gate) else { return Vec::new() };
            release(run);
            match effect {
                OptionEffect::Retry => {
                    run.gates[gate_index].state = GateState::Pending;
                    Vec::new()
                }
                _ => gates::act(run, gate_index, &GateAction::Continue, what, now),
            }
        }
        (PromptSubject::Step(step), effect) => {
            let Some(step_index) = run.steps.iter().position(|s| s.id == *step) else { return Vec::new() };
            let failed = run.steps[step_index].state == StepState::Failed;
            match effect {
                OptionEffect::Retry if failed => {
                    controls::reopen(run, step_index, StepState::Pending, what).unwrap_or_default();
                }
                OptionEffect::Skip if failed || run.steps[step_index].state == StepState::Pending => {
                    controls::reopen(run, step_index, StepState::Skipped, what).unwrap_or_default();
                }
                _ => {
                    if failed {
                        let note = run.steps[step_index].note.take().unwrap_or_default();
                        run.steps[step_index].note = Some(format!("{note}; continuing ({what})"));
                    }
                }
            }
            Vec::new()
        }
        _ => Vec::new(),
    };
    release(run);
    effects.extend(schedule::advance(run, now));
    effects
}

/// The run stops waiting once no blocking prompt is open and no gate waits for a person.
fn release(run: &mut RunSnapshot) {
    let held = run.prompts.iter().any(|p| p.blocking && p.state.is_open())
        || run.gates.iter().any(|g| g.state == GateState::Waiting)
        || run.paused;
    if run.state == RunState::Waiting && !held {
        run.state = RunState::Running;
    }
}
