//! The run state machine, free of I/O: given a snapshot and an event, it changes the snapshot
//! and says what to do next. The service writes the changed snapshot durably *before* carrying
//! out the effects, so a crash between the two is repaired by [`resume`] on restart.
//!
//! Steps run one at a time, in file order among those whose dependencies (`needs`, and the
//! phases their phase needs) have succeeded — a valid topological order of the DAG. Parallel
//! branches, gates, retries, alternatives, rollback and human steps are validated by the
//! protocol language but not executed yet: [`unsupported`] names them, and a trigger of such a
//! protocol is refused rather than run without them.

use crate::wire;
use jiff::Timestamp;
use muster_schemas::message::{ExecSpec, Outcome, StepAssigned, StepResult};
use muster_schemas::protocol::Protocol;
use muster_schemas::protocol::model::ActionRef;
use muster_schemas::protocol::model::action::HasAction;
use muster_schemas::protocol::template::{self, Context, RunFacts, StepFacts};
use muster_schemas::run::{RunSnapshot, RunState, StepRecord, StepState};
use std::collections::BTreeMap;
use uuid::Uuid;

/// Something the service must do after the snapshot is durable.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Put this work on its owner's queue.
    Dispatch(Box<StepAssigned>),
    /// Announce that the run ended.
    Finished(RunState),
}

/// What applying a result did.
#[derive(Debug, Clone, PartialEq)]
pub enum Applied {
    /// The result was for an attempt that is no longer current (a stale or duplicate delivery);
    /// the snapshot is unchanged.
    Ignored(String),
    /// The snapshot changed; write it, then carry out the effects.
    Changed(Vec<Effect>),
}

/// What this engine cannot execute yet in `protocol`, one entry per construct and place.
pub fn unsupported(protocol: &Protocol) -> Vec<String> {
    let mut out = Vec::new();
    for (_, step) in protocol.all_steps() {
        let mut note = |what: &str| out.push(format!("step `{}` uses {what}", step.id));
        match step.action() {
            Some(ActionRef::Exec(_)) | None => {}
            Some(other) => note(&format!("a `{}` action", other.key())),
        }
        if step.when.is_some() {
            note("`when`");
        }
        if step.retry.is_some() {
            note("`retry`");
        }
        if !step.alternatives.is_empty() {
            note("`alternatives`");
        }
        if step.rollback.is_some() || step.on_failure.is_some() {
            note("rollback / on_failure");
        }
        if !step.outputs.is_empty() {
            note("declared `outputs`");
        }
    }
    for phase in protocol.phases.iter().filter(|p| p.when.is_some()) {
        out.push(format!("phase `{}` uses `when`", phase.id));
    }
    if !protocol.gates.is_empty() {
        out.push(format!("{} quality gate(s)", protocol.gates.len()));
    }
    if !protocol.escalations.is_empty() {
        out.push(format!("{} escalation trigger(s)", protocol.escalations.len()));
    }
    out
}

/// A new run, every step pending.
pub fn new_run(id: Uuid, protocol: Protocol, inputs: BTreeMap<String, String>, now: Timestamp) -> RunSnapshot {
    let steps = protocol.all_steps().map(|(_, s)| StepRecord::pending(&s.id, s.owner)).collect();
    RunSnapshot {
        id,
        protocol,
        inputs,
        state: RunState::Pending,
        started_at: now,
        finished_at: None,
        reason: None,
        steps,
    }
}

/// Starts a pending run: the first step is dispatched.
pub fn start(run: &mut RunSnapshot, now: Timestamp) -> Vec<Effect> {
    run.state = RunState::Running;
    advance(run, now)
}

/// Applies a step result.
pub fn apply_result(run: &mut RunSnapshot, result: &StepResult, now: Timestamp) -> Applied {
    if run.state.is_terminal() {
        return Applied::Ignored(format!("run is already {}", run.state.as_str()));
    }
    let Some(step) = run.steps.iter_mut().find(|s| s.id == result.step_id) else {
        return Applied::Ignored(format!("run has no step `{}`", result.step_id));
    };
    if step.state != StepState::Running || step.attempt != result.attempt {
        return Applied::Ignored(format!(
            "step `{}` is {} at attempt {}; result is for attempt {}",
            step.id,
            step.state.as_str(),
            step.attempt,
            result.attempt
        ));
    }
    step.state = if result.outcome == Outcome::Succeeded { StepState::Succeeded } else { StepState::Failed };
    step.deliveries = result.delivery;
    step.agent = Some(result.agent.clone());
    step.outcome = Some(result.outcome);
    step.exit_code = result.exit_code;
    step.duration_ms = Some(result.duration_ms);
    step.finished_at = Some(now);
    step.stdout_tail.clone_from(&result.stdout_tail);
    step.stderr_tail.clone_from(&result.stderr_tail);
    step.outputs.clone_from(&result.outputs);
    if step.state == StepState::Failed {
        let reason = format!("step `{}` {}", step.id, describe(result));
        return Applied::Changed(finish(run, RunState::Failed, Some(reason), now));
    }
    Applied::Changed(advance(run, now))
}

fn describe(result: &StepResult) -> String {
    match (result.outcome, result.exit_code) {
        (Outcome::TimedOut, _) => "timed out".to_owned(),
        (Outcome::SpawnFailed, _) => "could not start its program".to_owned(),
        (_, Some(code)) => format!("exited with code {code}"),
        _ => "was killed".to_owned(),
    }
}

/// The effects that a durable snapshot implies but that may not have happened yet (the process
/// died after writing it): re-dispatch every running step. Work ids are deterministic, so a
/// dispatch that did happen is dropped by the bus as a duplicate.
pub fn resume(run: &RunSnapshot) -> Vec<Effect> {
    if run.state.is_terminal() {
        return vec![Effect::Finished(run.state)];
    }
    run.steps
        .iter()
        .enumerate()
        .filter(|(_, s)| s.state == StepState::Running)
        .filter_map(|(i, s)| assignment(run, i, s.attempt).ok())
        .map(|a| Effect::Dispatch(Box::new(a)))
        .collect()
}

/// The first pending step (in file order) whose dependencies have all succeeded.
fn next_step(run: &RunSnapshot) -> Option<usize> {
    let done: Vec<&str> = run.steps.iter().filter(|s| s.state == StepState::Succeeded).map(|s| s.id.as_str()).collect();
    run.steps.iter().position(|record| {
        record.state == StepState::Pending && dependencies(&run.protocol, &record.id).iter().all(|d| done.contains(d))
    })
}

/// The steps `step` waits for: its `needs` and every step of the phases its phase needs.
fn dependencies<'p>(protocol: &'p Protocol, step: &str) -> Vec<&'p str> {
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

fn advance(run: &mut RunSnapshot, now: Timestamp) -> Vec<Effect> {
    let Some(index) = next_step(run) else {
        return finish(run, RunState::Succeeded, None, now);
    };
    let attempt = run.steps[index].attempt + 1;
    match assignment(run, index, attempt) {
        Ok(assigned) => {
            let step = &mut run.steps[index];
            step.state = StepState::Running;
            step.attempt = attempt;
            step.started_at = Some(now);
            vec![Effect::Dispatch(Box::new(assigned))]
        }
        Err(problem) => {
            let step = &mut run.steps[index];
            step.state = StepState::Failed;
            step.stderr_tail = problem.clone();
            let reason = format!("step `{}` could not be prepared: {problem}", step.id);
            finish(run, RunState::Failed, Some(reason), now)
        }
    }
}

fn finish(run: &mut RunSnapshot, state: RunState, reason: Option<String>, now: Timestamp) -> Vec<Effect> {
    run.state = state;
    run.reason = reason;
    run.finished_at = Some(now);
    vec![Effect::Finished(state)]
}

/// Renders the step's action for one attempt.
fn assignment(run: &RunSnapshot, index: usize, attempt: u32) -> Result<StepAssigned, String> {
    let record = run.steps.get(index).ok_or("step missing from run")?;
    let step = run.protocol.step(&record.id).ok_or("step missing from protocol")?;
    let Some(ActionRef::Exec(exec)) = step.action() else {
        return Err(format!("step `{}` has no `exec` action this engine can run", step.id));
    };
    let run_id = run.id.to_string();
    let outputs: BTreeMap<String, BTreeMap<String, String>> = run
        .steps
        .iter()
        .filter(|s| s.state == StepState::Succeeded)
        .map(|s| (s.id.clone(), s.outputs.clone()))
        .collect();
    let context = Context {
        inputs: &run.inputs,
        outputs: &outputs,
        run: RunFacts { id: &run_id },
        step: StepFacts { id: &step.id, attempt },
    };
    let render = |text: &str| template::render(text, &context);
    let (program, args) = match (&exec.program, &exec.shell) {
        (Some(program), _) => (render(program)?, exec.args.iter().map(|a| render(a)).collect::<Result<_, _>>()?),
        // The script is passed verbatim: templates are refused in `shell:` at load time.
        (None, Some(script)) => ("sh".to_owned(), vec!["-c".to_owned(), script.clone()]),
        (None, None) => return Err("`exec` has neither `program` nor `shell`".to_owned()),
    };
    let spec = ExecSpec {
        program,
        args,
        env: exec.env.iter().map(|(k, v)| Ok((k.clone(), render(v)?))).collect::<Result<_, String>>()?,
        cwd: exec.cwd.as_deref().map(render).transpose()?,
        timeout_ms: u64::try_from(step.timeout().as_millis()).unwrap_or(u64::MAX),
    };
    Ok(StepAssigned {
        run_id: run.id,
        step_id: step.id.clone(),
        owner: step.owner,
        attempt,
        idempotency_key: wire::idempotency_key(run.id, &step.id, attempt),
        exec: spec,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use muster_schemas::protocol::parse_protocol;

    fn protocol() -> Protocol {
        let text = "id: p\ninputs:\n  dir: {default: /tmp}\nsteps:\n  - {id: a, owner: resource, exec: {program: ls, args: ['{{ inputs.dir }}']}}\n  - {id: b, owner: sre, exec: {program: 'true'}}\n";
        parse_protocol("p.yaml", text).unwrap()
    }

    fn dir_input() -> BTreeMap<String, String> {
        BTreeMap::from([("dir".to_owned(), "/tmp".to_owned())])
    }

    fn result(step: &str, attempt: u32, outcome: Outcome) -> StepResult {
        StepResult {
            run_id: Uuid::nil(),
            step_id: step.into(),
            attempt,
            delivery: 1,
            agent: "agent-1".into(),
            outcome,
            exit_code: Some(if outcome == Outcome::Succeeded { 0 } else { 3 }),
            stdout_tail: String::new(),
            stderr_tail: String::new(),
            outputs: BTreeMap::new(),
            duration_ms: 5,
            started_at: Timestamp::UNIX_EPOCH,
        }
    }

    fn dispatched(effects: &[Effect]) -> Vec<(String, u32, Vec<String>)> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::Dispatch(a) => Some((a.step_id.clone(), a.attempt, a.exec.args.clone())),
                Effect::Finished(_) => None,
            })
            .collect()
    }

    #[test]
    fn steps_run_in_order_with_rendered_arguments() {
        let inputs = BTreeMap::from([("dir".to_owned(), "/srv".to_owned())]);
        let mut run = new_run(Uuid::nil(), protocol(), inputs, Timestamp::UNIX_EPOCH);
        assert_eq!(dispatched(&start(&mut run, Timestamp::UNIX_EPOCH)), vec![("a".into(), 1, vec!["/srv".into()])]);
        let Applied::Changed(effects) =
            apply_result(&mut run, &result("a", 1, Outcome::Succeeded), Timestamp::UNIX_EPOCH)
        else {
            panic!("result must apply")
        };
        assert_eq!(dispatched(&effects), vec![("b".into(), 1, vec![])]);
        let Applied::Changed(effects) =
            apply_result(&mut run, &result("b", 1, Outcome::Succeeded), Timestamp::UNIX_EPOCH)
        else {
            panic!("result must apply")
        };
        assert_eq!(effects, vec![Effect::Finished(RunState::Succeeded)]);
        assert_eq!(run.state, RunState::Succeeded);
    }

    #[test]
    fn a_duplicate_or_stale_result_changes_nothing() {
        let mut run = new_run(Uuid::nil(), protocol(), dir_input(), Timestamp::UNIX_EPOCH);
        start(&mut run, Timestamp::UNIX_EPOCH);
        let before = run.clone();
        assert!(matches!(
            apply_result(&mut run, &result("a", 2, Outcome::Succeeded), Timestamp::UNIX_EPOCH),
            Applied::Ignored(_)
        ));
        assert!(matches!(
            apply_result(&mut run, &result("zz", 1, Outcome::Succeeded), Timestamp::UNIX_EPOCH),
            Applied::Ignored(_)
        ));
        assert_eq!(run, before);
        assert!(matches!(
            apply_result(&mut run, &result("a", 1, Outcome::Succeeded), Timestamp::UNIX_EPOCH),
            Applied::Changed(_)
        ));
        assert!(matches!(
            apply_result(&mut run, &result("a", 1, Outcome::Succeeded), Timestamp::UNIX_EPOCH),
            Applied::Ignored(_)
        ));
    }

    #[test]
    fn a_failed_step_fails_the_run_and_stops_dispatching() {
        let mut run = new_run(Uuid::nil(), protocol(), dir_input(), Timestamp::UNIX_EPOCH);
        start(&mut run, Timestamp::UNIX_EPOCH);
        let applied = apply_result(&mut run, &result("a", 1, Outcome::Failed), Timestamp::UNIX_EPOCH);
        assert_eq!(applied, Applied::Changed(vec![Effect::Finished(RunState::Failed)]));
        assert_eq!(run.reason.as_deref(), Some("step `a` exited with code 3"));
        assert_eq!(run.steps[1].state, StepState::Pending);
    }

    #[test]
    fn phases_and_needs_order_the_steps() {
        let text = "id: p\nphases:\n  - id: verify\n    needs: [build]\n    steps:\n      - {id: check, owner: sre, exec: {program: 'true'}}\n  - id: build\n    steps:\n      - {id: second, owner: devops, needs: [first], exec: {program: 'true'}}\n      - {id: first, owner: devops, exec: {shell: 'echo hi'}}\n";
        let mut run =
            new_run(Uuid::nil(), parse_protocol("p.yaml", text).unwrap(), BTreeMap::new(), Timestamp::UNIX_EPOCH);
        let mut order = Vec::new();
        let mut effects = start(&mut run, Timestamp::UNIX_EPOCH);
        while let Some(Effect::Dispatch(work)) = effects.first().cloned() {
            order.push(work.step_id.clone());
            if work.step_id == "first" {
                assert_eq!(
                    (work.exec.program.as_str(), work.exec.args.clone()),
                    ("sh", vec!["-c".to_owned(), "echo hi".to_owned()])
                );
            }
            let Applied::Changed(next) =
                apply_result(&mut run, &result(&work.step_id, 1, Outcome::Succeeded), Timestamp::UNIX_EPOCH)
            else {
                panic!("result must apply")
            };
            effects = next;
        }
        assert_eq!(order, ["first", "second", "check"]);
        assert_eq!(run.state, RunState::Succeeded);
    }

    #[test]
    fn constructs_the_engine_cannot_run_are_named() {
        let text = "id: p\ngroups: {ops: {}}\nsteps:\n  - {id: a, owner: sre, retry: {max_attempts: 3}, exec: {program: 'true'}}\n  - {id: b, owner: sre, approval: {approvers: {groups: [ops]}}}\n";
        let notes = unsupported(&parse_protocol("p.yaml", text).unwrap());
        assert_eq!(notes, ["step `a` uses `retry`", "step `b` uses a `approval` action"]);
        assert!(unsupported(&protocol()).is_empty());
    }

    #[test]
    fn resume_redispatches_running_steps_with_the_same_attempt() {
        let mut run = new_run(Uuid::nil(), protocol(), dir_input(), Timestamp::UNIX_EPOCH);
        let first = start(&mut run, Timestamp::UNIX_EPOCH);
        assert_eq!(resume(&run), first);
    }
}
