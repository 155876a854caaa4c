//! The run state machine, free of I/O: given a snapshot and an event (a result, a timer), it
//! changes the snapshot and says what to do next. The service writes the changed snapshot
//! durably *before* carrying out the effects, so a crash between the two is repaired by
//! [`resume`] on restart.
//!
//! - [`schedule`]: which steps may start (DAG, `when`, bounded parallelism), and when the run
//!   is over;
//! - [`failure`]: retries with backoff and jitter, alternatives in order, then `on_failure`;
//! - [`rollback`]: compensations in reverse completion order (a saga);
//! - [`dispatch`]: rendering the work for one attempt of one action;
//! - [`vars`]: what CEL conditions and templates can read;
//! - [`checkpoints`]: what each finished phase left behind.
//!
//! Time comes in as an argument and timers go out as [`Effect::WakeAt`], so every rule here is
//! tested without a clock.

mod checkpoints;
mod controls;
mod dispatch;
mod failure;
mod gates;
pub mod prompts;
mod rollback;
mod schedule;
mod vars;

#[cfg(test)]
pub(crate) mod tests;

use jiff::Timestamp;
use muster_schemas::message::{Outcome, Purpose, StepAssigned, StepResult, StepStarted};
use muster_schemas::protocol::Protocol;
use muster_schemas::protocol::model::ActionRef;
use muster_schemas::protocol::model::action::HasAction;
use muster_schemas::run::{RunSnapshot, RunState, StepRecord, StepState};
use std::collections::BTreeMap;
use uuid::Uuid;

/// Steps of one run executing at once; the rest wait for a slot.
pub const MAX_PARALLEL_STEPS: usize = 8;

/// Something the service must do after the snapshot is durable.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Put this work on its owner's queue.
    Dispatch(Box<StepAssigned>),
    /// Put this gate on its owner's queue to be judged.
    Judge(Box<muster_schemas::message::GateAssigned>),
    /// Call [`tick`] for this run at (or after) this time.
    WakeAt(Timestamp),
    /// Announce that the run ended.
    Finished(RunState),
    /// Ask the agents to stop this run's running steps now (a cancelled run); lossy: a step
    /// that misses it finishes and is compensated like the others.
    StopRunning,
    /// Publish a notice about prompt `index` for people; `seq` makes its message id unique
    /// and repeatable.
    Notify {
        /// The prompt's index in the snapshot.
        index: usize,
        /// The prompt's notice count after this one.
        seq: u32,
        /// The notice.
        notice: Box<muster_schemas::message::PromptNotice>,
    },
}

/// What applying an event did.
#[derive(Debug, Clone, PartialEq)]
pub enum Applied {
    /// Nothing changed (a stale or duplicate result, a timer with nothing due).
    Ignored(String),
    /// The snapshot changed; write it, then carry out the effects.
    Changed(Vec<Effect>),
}

/// What this engine cannot execute yet in `protocol`, one entry per construct and place.
pub fn unsupported(protocol: &Protocol) -> Vec<String> {
    let mut out = Vec::new();
    for (_, step) in protocol.all_steps() {
        let mut note = |what: String| out.push(format!("step `{}` uses {what}", step.id));
        if let Some(action) = step.action().filter(|a| !runnable(a)) {
            note(format!("a `{}` action", action.key()));
        }
        for alt in &step.alternatives {
            if let Some(action) = alt.action().filter(|a| !runnable(a)) {
                note(format!("an alternative with a `{}` action", action.key()));
            }
        }
        if let Some(action) = step.rollback.as_ref().and_then(|r| r.action()).filter(|a| !runnable(a)) {
            note(format!("a rollback with a `{}` action", action.key()));
        }
    }
    out
}

/// Actions agents execute: programs, and native `http`/`tcp`/`tls` checks and fixed waits.
fn runnable(action: &ActionRef<'_>) -> bool {
    match action {
        ActionRef::Exec(_) | ActionRef::Http(_) | ActionRef::Tcp(_) | ActionRef::Tls(_) => true,
        ActionRef::Wait(wait) => wait.duration.is_some(),
        ActionRef::Form(_) | ActionRef::Approval(_) | ActionRef::Decision(_) | ActionRef::Manual(_) => true,
    }
}

/// A new run, every step pending.
pub fn new_run(id: Uuid, protocol: Protocol, inputs: BTreeMap<String, String>, now: Timestamp) -> RunSnapshot {
    let steps = protocol.all_steps().map(|(_, s)| StepRecord::pending(&s.id, s.owner)).collect();
    let gates = gates::records(&protocol);
    RunSnapshot {
        id,
        protocol,
        inputs,
        state: RunState::Pending,
        started_at: now,
        finished_at: None,
        reason: None,
        steps,
        completed: Vec::new(),
        rollback: None,
        gates,
        paused: false,
        cancelled: false,
        interventions: Vec::new(),
        checkpoints: Vec::new(),
        fence: 0,
        prompts: Vec::new(),
        requested_by: None,
    }
}

/// Starts a pending run.
pub fn start(run: &mut RunSnapshot, now: Timestamp) -> Vec<Effect> {
    run.state = RunState::Running;
    schedule::advance(run, now)
}

/// Applies a step result.
pub fn apply_result(run: &mut RunSnapshot, result: &StepResult, now: Timestamp) -> Applied {
    if run.state.is_terminal() {
        return settle_after_end(run, result, now);
    }
    let Some(index) = run.steps.iter().position(|s| s.id == result.step_id) else {
        return Applied::Ignored(format!("run has no step `{}`", result.step_id));
    };
    let step = &run.steps[index];
    let expected = current_purpose(run, index);
    if step.state != StepState::Running || step.attempt != result.attempt || expected != result.purpose {
        return Applied::Ignored(format!(
            "step `{}` is {} at attempt {} ({}); result is for attempt {} ({})",
            step.id,
            step.state.as_str(),
            step.attempt,
            expected.label(),
            result.attempt,
            result.purpose.label()
        ));
    }
    if result.delivery < step.deliveries {
        return Applied::Ignored(format!(
            "stale result of step `{}`: delivery {} lost its lease; delivery {} holds it now",
            step.id, result.delivery, step.deliveries
        ));
    }
    if result.purpose == Purpose::Rollback {
        return Applied::Changed(rollback::on_result(run, index, result, now));
    }
    record(&mut run.steps[index], result, now);
    if result.outcome == Outcome::Succeeded {
        let step = &mut run.steps[index];
        step.state = StepState::Succeeded;
        step.failures = 0;
        step.note = None;
        run.completed.push(step.id.clone());
        if run.rollback.is_some() {
            // It finished after the rollback began: compensate it before the others.
            return Applied::Changed(rollback::late_success(run, index, now));
        }
        return Applied::Changed(schedule::advance(run, now));
    }
    if run.rollback.is_some() {
        return Applied::Changed(rollback::late_failure(run, index, result, now));
    }
    Applied::Changed(failure::on_failure(run, index, result, now))
}

/// Applies a gate's verdict.
pub fn apply_verdict(run: &mut RunSnapshot, verdict: &muster_schemas::message::GateVerdict, now: Timestamp) -> Applied {
    gates::on_verdict(run, verdict, now)
}

/// Applies a person's answer to a waiting gate; `Err` says why the answer was not taken.
pub fn apply_answer(
    run: &mut RunSnapshot,
    gate: &str,
    option: &str,
    by: &str,
    now: Timestamp,
) -> Result<Vec<Effect>, String> {
    if run.state != RunState::Waiting {
        return Err(format!("run is {}, not waiting for an answer", run.state.as_str()));
    }
    gates::on_answer(run, gate, option, by, now)
}

/// Applies an operator control; `Err` says why it does not apply.
pub fn apply_control(
    run: &mut RunSnapshot,
    control: &muster_schemas::message::Control,
    by: &str,
    now: Timestamp,
) -> Result<Vec<Effect>, String> {
    controls::apply(run, control, by, now)
}

/// Records that a redelivered step changed hands: the new delivery is the only one whose result
/// will count (a fencing token against agents that lost their lease but are still running).
pub fn apply_started(run: &mut RunSnapshot, started: &StepStarted) -> Applied {
    let Some(index) = run.steps.iter().position(|s| s.id == started.step_id) else {
        return Applied::Ignored(format!("run has no step `{}`", started.step_id));
    };
    let current = current_purpose(run, index);
    let step = &mut run.steps[index];
    if run.state.is_terminal()
        || step.state != StepState::Running
        || step.attempt != started.attempt
        || current != started.purpose
    {
        return Applied::Ignored(format!("step `{}` is not running attempt {}", step.id, started.attempt));
    }
    if started.delivery <= step.deliveries {
        return Applied::Ignored(format!("delivery {} is not newer than {}", started.delivery, step.deliveries));
    }
    step.deliveries = started.delivery;
    step.agent = Some(started.agent.clone());
    Applied::Changed(Vec::new())
}

/// A failed run may still have steps running in parallel branches: record how they ended (no
/// retries, nothing new starts), so that an operator's `retry` starts from the truth.
fn settle_after_end(run: &mut RunSnapshot, result: &StepResult, now: Timestamp) -> Applied {
    let running = run
        .steps
        .iter()
        .position(|s| s.id == result.step_id && s.state == StepState::Running && s.attempt == result.attempt);
    match running {
        Some(index) if run.state == RunState::Failed => {
            record(&mut run.steps[index], result, now);
            let step = &mut run.steps[index];
            if result.outcome == Outcome::Succeeded {
                step.state = StepState::Succeeded;
                run.completed.push(step.id.clone());
            } else {
                step.state = StepState::Failed;
                step.note = Some(format!("{} after the run had failed", describe(result)));
            }
            Applied::Changed(Vec::new())
        }
        _ => Applied::Ignored(format!("run is already {}", run.state.as_str())),
    }
}

/// Re-evaluates a run whose timer fired (a retry backoff ended).
pub fn tick(run: &mut RunSnapshot, now: Timestamp) -> Applied {
    if run.state.is_terminal() {
        // An ended run's escalations still ask for their follow-up.
        let before = run.clone();
        let effects = prompts::oversee(run, now);
        if *run == before {
            return Applied::Ignored(format!("run is already {}", run.state.as_str()));
        }
        return Applied::Changed(effects);
    }
    let before = run.clone();
    let mut effects = schedule::advance(run, now);
    effects.extend(prompts::oversee(run, now));
    let acted = effects.iter().any(|e| matches!(e, Effect::Dispatch(_) | Effect::Notify { .. }));
    if *run == before && !acted {
        return Applied::Ignored("nothing due".to_owned());
    }
    Applied::Changed(effects)
}

/// The effects that a durable snapshot implies but that may not have happened yet (the process
/// died after writing it): re-dispatch running work, re-arm timers. Work ids are deterministic,
/// so a dispatch that did happen is dropped by the bus as a duplicate.
pub fn resume(run: &RunSnapshot) -> Vec<Effect> {
    if run.state.is_terminal() {
        let follow_ups = prompts::next_due(run, jiff::Timestamp::MIN).map(Effect::WakeAt);
        return [Effect::Finished(run.state)].into_iter().chain(follow_ups).collect();
    }
    let mut effects: Vec<Effect> = (0..run.steps.len())
        .filter(|&i| run.steps[i].state == StepState::Running)
        .filter_map(|i| dispatch::assignment(run, i, current_purpose(run, i)).ok())
        .map(|a| Effect::Dispatch(Box::new(a)))
        .collect();
    effects.extend(
        run.protocol
            .gates
            .iter()
            .zip(&run.gates)
            .filter(|(_, r)| r.state == muster_schemas::run::GateState::Evaluating)
            .map(|(g, r)| Effect::Judge(Box::new(gates::assignment(run, g, r.attempt)))),
    );
    effects.extend(schedule::next_wakeup(run).map(Effect::WakeAt));
    effects.extend(prompts::resume(run));
    effects.extend(prompts::next_due(run, jiff::Timestamp::MIN).map(Effect::WakeAt));
    effects
}

/// Checks escalation conditions and due ladder stages after an event (see [`prompts::oversee`]).
pub fn oversee(run: &mut RunSnapshot, now: Timestamp) -> Vec<Effect> {
    prompts::oversee(run, now)
}

/// What the work of step `index` is for: its compensation while the run rolls back and the
/// step had completed, else the alternative in use, else its own action.
fn current_purpose(run: &RunSnapshot, index: usize) -> Purpose {
    let step = &run.steps[index];
    if run.rollback.is_some() && run.completed.contains(&step.id) {
        return Purpose::Rollback;
    }
    match &step.alternative {
        Some(id) => Purpose::Alternative(id.clone()),
        None => Purpose::Run,
    }
}

fn record(step: &mut StepRecord, result: &StepResult, now: Timestamp) {
    step.deliveries = result.delivery;
    step.agent = Some(result.agent.clone());
    step.outcome = Some(result.outcome);
    step.exit_code = result.exit_code;
    step.duration_ms = Some(result.duration_ms);
    step.finished_at = Some(now);
    step.stdout_tail.clone_from(&result.stdout_tail);
    step.stderr_tail.clone_from(&result.stderr_tail);
    step.outputs.clone_from(&result.outputs);
}

/// Ends the run.
fn finish(run: &mut RunSnapshot, state: RunState, reason: Option<String>, now: Timestamp) -> Vec<Effect> {
    run.state = state;
    run.reason = reason;
    run.finished_at = Some(now);
    vec![Effect::Finished(state)]
}

/// "exited with code 3", "timed out", ...
fn describe(result: &StepResult) -> String {
    match (result.outcome, result.exit_code) {
        (Outcome::TimedOut, _) => "timed out".to_owned(),
        (Outcome::SpawnFailed, _) => "could not start its program".to_owned(),
        (_, Some(code)) => format!("exited with code {code}"),
        _ => "was killed".to_owned(),
    }
}
