//! The protocols `muster bench` generates, one per measured shape plus a warm-up, and the check
//! that each is one the orchestrator will load and run.
//!
//! ```text
//!  chain   s0001 ─▶ s0002 ─▶ … ─▶ sNNNN                     (--steps, one step at a time)
//!
//!  dag             ┌─▶ b01 ─┐
//!          start ──┼─▶ …  ──┼──▶ gate `branches-done` ──▶ fan-in
//!                  └─▶ b08 ─┘    (security judges it)
//! ```
//!
//! Every step is a no-op program (`true`), except that `start` prints `{"branches": 8}` with
//! `echo`, so that the gate's criterion reads an output a step really produced.

use crate::orchestrator::engine;
use muster_schemas::Role;
use muster_schemas::protocol::{LoadError, Protocol, read_protocol};
use std::fmt::Write as _;
use std::path::Path;

/// Which protocol shape to measure (`--shape`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ShapeArg {
    /// `--steps` no-op steps, each needing the one before: per-step latency comparable with the
    /// raw floor.
    Chain,
    /// A start step, 8 parallel no-op steps, a quality gate, a fan-in step: how muster copes
    /// with parallel results and a gate round trip.
    Dag,
    /// The chain, then the DAG, against the same services and the same floor.
    Both,
}

impl ShapeArg {
    /// The flag's value, echoed in the output.
    pub(super) fn name(self) -> &'static str {
        match self {
            ShapeArg::Chain => "chain",
            ShapeArg::Dag => "dag",
            ShapeArg::Both => "both",
        }
    }

    /// The shapes to measure, in order.
    pub(super) fn shapes(self) -> &'static [Shape] {
        match self {
            ShapeArg::Chain => &[Shape::Chain],
            ShapeArg::Dag => &[Shape::Dag],
            ShapeArg::Both => &[Shape::Chain, Shape::Dag],
        }
    }
}

/// One measured shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Shape {
    /// See [`ShapeArg::Chain`].
    Chain,
    /// See [`ShapeArg::Dag`].
    Dag,
}

/// Parallel steps in the DAG shape. The engine starts at most
/// [`engine::MAX_PARALLEL_STEPS`] steps of a run at once; a wider fan-out would measure that
/// throttle instead of parallel work (a unit test keeps the two in step).
pub(super) const FAN_OUT: usize = 8;
/// The DAG's first step, whose output the gate reads.
pub(super) const START: &str = "start";
/// The DAG's last step, held by the gate until its verdict is applied.
pub(super) const FAN_IN: &str = "fan-in";
/// The DAG's gate.
pub(super) const GATE: &str = "branches-done";
/// Id of the protocol run once before measuring: a DAG one branch per role wide, so that every
/// role's consumer and the gate path have carried a message before the clock starts.
pub(super) const WARMUP_ID: &str = "bench-warmup";

impl Shape {
    /// The name used in flags, tables and JSON.
    pub(super) fn name(self) -> &'static str {
        match self {
            Shape::Chain => "chain",
            Shape::Dag => "dag",
        }
    }

    /// The protocol id its runs are triggered with.
    pub(super) fn protocol_id(self) -> &'static str {
        match self {
            Shape::Chain => "bench-chain",
            Shape::Dag => "bench-dag",
        }
    }

    /// Steps per run.
    pub(super) fn steps(self, chain_steps: u32) -> u32 {
        match self {
            Shape::Chain => chain_steps,
            // start + branches + fan-in; FAN_OUT is a small constant.
            Shape::Dag => FAN_OUT as u32 + 2,
        }
    }

    /// The protocol text.
    fn yaml(self, chain_steps: u32) -> String {
        match self {
            Shape::Chain => chain_yaml(self.protocol_id(), chain_steps),
            Shape::Dag => dag_yaml(self.protocol_id(), FAN_OUT),
        }
    }
}

/// Writes the protocols of `shapes` and the warm-up into `dir`, then reads each back the way
/// `muster validate` and the orchestrator's `--scenarios` do and checks that the engine runs it,
/// so that a generated protocol the orchestrator would refuse fails here, before anything starts.
pub(super) fn write_all(dir: &Path, shapes: &[Shape], chain_steps: u32) -> Result<(), String> {
    write_checked(dir, WARMUP_ID, &dag_yaml(WARMUP_ID, Role::ALL.len()))?;
    for shape in shapes {
        write_checked(dir, shape.protocol_id(), &shape.yaml(chain_steps))?;
    }
    Ok(())
}

fn write_checked(dir: &Path, id: &str, yaml: &str) -> Result<Protocol, String> {
    let path = dir.join(format!("{id}.yaml"));
    std::fs::write(&path, yaml).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    let protocol = read_protocol(&path).map_err(|err| match err {
        LoadError::Invalid(diagnostics) => {
            let lines: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
            format!("the generated protocol {} is invalid:\n{}", path.display(), lines.join("\n"))
        }
        other => other.to_string(),
    })?;
    let missing = engine::unsupported(&protocol);
    if !missing.is_empty() {
        return Err(crate::orchestrator::not_executable(id, &missing));
    }
    Ok(protocol)
}

/// A chain of `steps` no-op steps whose owners cycle through the four roles. Each step needs
/// the one before, so a step's latency is the round trip of one step at a time, comparable with
/// the raw floor.
pub(super) fn chain_yaml(id: &str, steps: u32) -> String {
    let mut yaml = format!("id: {id}\nversion: \"1\"\ntitle: muster bench, {steps} no-op steps in a chain\nsteps:\n");
    for (index, role) in (0..steps).zip(Role::ALL.iter().cycle()) {
        let needs = if index == 0 { String::new() } else { format!("    needs: [s{index:04}]\n") };
        let _ = write!(
            yaml,
            "  - id: s{:04}\n    owner: {role}\n{needs}    exec:\n      program: \"true\"\n    timeout: 30s\n",
            index + 1
        );
    }
    yaml
}

/// The id of branch `index` (0-based) of the DAG.
pub(super) fn branch_id(index: usize) -> String {
    format!("b{:02}", index + 1)
}

/// `start`, then `width` no-op branches that need it (owners cycling the four roles), a gate
/// judged by security once every branch has finished, and `fan-in`, which needs every branch and
/// so waits for the gate. A gate that does not pass blocks the run, so a broken gate shows as a
/// failed run instead of a run held `waiting` for a person until the bench times out.
pub(super) fn dag_yaml(id: &str, width: usize) -> String {
    let branches: Vec<String> = (0..width).map(branch_id).collect();
    let all = branches.join(", ");
    let mut yaml = format!(
        "id: {id}\nversion: \"1\"\ntitle: muster bench, a start step, {width} parallel no-op steps, a gate, a fan-in step\n\
         steps:\n  - id: {START}\n    owner: resource\n    exec:\n      program: echo\n      args: ['{{\"branches\": {width}}}']\n\
         \x20   outputs:\n      branches: {{type: int}}\n    timeout: 30s\n"
    );
    for (branch, role) in branches.iter().zip(Role::ALL.iter().cycle()) {
        let _ = write!(
            yaml,
            "  - id: {branch}\n    owner: {role}\n    needs: [{START}]\n    exec:\n      program: \"true\"\n    timeout: 30s\n"
        );
    }
    let _ = write!(
        yaml,
        "  - id: {FAN_IN}\n    owner: sre\n    needs: [{all}]\n    exec:\n      program: \"true\"\n    timeout: 30s\n\
         gates:\n  - id: {GATE}\n    owner: security\n    after: [{all}]\n    criteria:\n\
         \x20     - {{name: every-branch, expr: \"outputs.{START}.branches == {width}\"}}\n\
         \x20   on: {{pass: continue, warn: continue, fail: block, inconclusive: block}}\n"
    );
    yaml
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::orchestrator::engine::{Applied, Effect};
    use muster_schemas::message::{GateAssigned, GateVerdict, Outcome, StepAssigned, StepResult, Verdict};
    use muster_schemas::run::{GateState, RunSnapshot, RunState};

    fn dag() -> Protocol {
        let dir = tempfile::tempdir().unwrap();
        write_all(dir.path(), &[Shape::Dag], 1).unwrap();
        read_protocol(&dir.path().join("bench-dag.yaml")).unwrap()
    }

    #[test]
    fn chain_parses_and_cycles_roles() {
        let protocol = muster_schemas::protocol::parse_protocol("c.yaml", &chain_yaml("c", 6)).unwrap();
        let owners: Vec<Role> = protocol.steps.iter().map(|s| s.owner).collect();
        assert_eq!(owners, [Role::Resource, Role::Devops, Role::Security, Role::Sre, Role::Resource, Role::Devops]);
        let needs: Vec<Vec<String>> = protocol.steps.iter().map(|s| s.needs.clone()).collect();
        assert_eq!(needs[0], Vec::<String>::new());
        assert_eq!(needs[5], ["s0005"]);
        assert!(protocol.steps.iter().all(|s| s.exec.as_ref().and_then(|e| e.program.as_deref()) == Some("true")));
    }

    #[test]
    fn dag_passes_the_checker_and_has_the_expected_shape() {
        let protocol = dag();
        let branches: Vec<String> = (0..FAN_OUT).map(branch_id).collect();
        let ids: Vec<&str> = protocol.steps.iter().map(|s| s.id.as_str()).collect();
        let mut expected = vec![START];
        expected.extend(branches.iter().map(String::as_str));
        expected.push(FAN_IN);
        assert_eq!(ids, expected);
        assert_eq!(Shape::Dag.steps(99) as usize, ids.len());
        let owners: Vec<Role> = protocol.steps[1..=FAN_OUT].iter().map(|s| s.owner).collect();
        assert_eq!(owners, Role::ALL.iter().cycle().take(FAN_OUT).copied().collect::<Vec<_>>());
        assert!(protocol.steps[1..=FAN_OUT].iter().all(|s| s.needs == [START]));
        assert_eq!(protocol.steps[FAN_OUT + 1].needs, branches);
        let [gate] = protocol.gates.as_slice() else { panic!("one gate expected: {:?}", protocol.gates) };
        assert_eq!((gate.id.as_str(), gate.owner, &gate.after), (GATE, Role::Security, &branches));
    }

    fn dispatched(applied: &[Effect]) -> Vec<StepAssigned> {
        applied.iter().filter_map(|e| if let Effect::Dispatch(w) = e { Some((**w).clone()) } else { None }).collect()
    }

    fn judged(applied: &[Effect]) -> Vec<GateAssigned> {
        applied.iter().filter_map(|e| if let Effect::Judge(g) = e { Some((**g).clone()) } else { None }).collect()
    }

    fn changed(applied: Applied) -> Vec<Effect> {
        match applied {
            Applied::Changed(effects) => effects,
            Applied::Ignored(why) => panic!("expected a change: {why}"),
        }
    }

    /// What an agent reports for `work`, with the outputs it would extract from `stdout`.
    fn succeeded(work: &StepAssigned, stdout: &str) -> StepResult {
        StepResult {
            run_id: work.run_id,
            step_id: work.step_id.clone(),
            attempt: work.attempt,
            delivery: 1,
            agent: format!("{}-1", work.owner),
            outcome: Outcome::Succeeded,
            exit_code: Some(0),
            stdout_tail: stdout.to_owned(),
            stderr_tail: String::new(),
            outputs: crate::outputs::extract(&work.outputs, stdout, "").unwrap(),
            purpose: work.purpose.clone(),
            duration_ms: 1,
            started_at: jiff::Timestamp::UNIX_EPOCH,
        }
    }

    /// Drives one DAG run through the engine and the agent's judge: every branch starts at once,
    /// the gate is sent only when the last branch is in and holds the fan-in, and its criterion
    /// passes on what `start` really prints.
    #[test]
    fn dag_runs_wide_and_its_gate_holds_the_fan_in_then_passes() {
        let now = jiff::Timestamp::UNIX_EPOCH;
        let mut run: RunSnapshot = engine::new_run(uuid::Uuid::nil(), dag(), Default::default(), now);
        let first = dispatched(&engine::start(&mut run, now));
        assert_eq!(first.iter().map(|w| w.step_id.as_str()).collect::<Vec<_>>(), [START]);
        let args = &first[0].exec.as_ref().unwrap().args;
        // `echo` prints its argument and a newline.
        let stdout = format!("{}\n", args.join(" "));
        let after_start = changed(engine::apply_result(&mut run, &succeeded(&first[0], &stdout), now));
        let branches = dispatched(&after_start);
        assert_eq!(branches.len(), FAN_OUT, "every branch starts at once");
        for (index, work) in branches.iter().enumerate() {
            let effects = changed(engine::apply_result(&mut run, &succeeded(work, ""), now));
            assert!(dispatched(&effects).is_empty(), "nothing starts before the gate passes");
            let gates = judged(&effects);
            if index + 1 < FAN_OUT {
                assert!(gates.is_empty(), "gate sent before branch {} of {FAN_OUT}", index + 1);
                continue;
            }
            let [gate] = gates.as_slice() else { panic!("the last branch sends the gate: {effects:?}") };
            let (verdict, evidence) = crate::judge::judge(gate);
            assert_eq!(verdict, Verdict::Pass, "{evidence:?}");
            let verdict = GateVerdict {
                run_id: run.id,
                gate_id: gate.gate_id.clone(),
                attempt: gate.attempt,
                agent: "security-1".to_owned(),
                verdict,
                evidence,
            };
            let fan_in = dispatched(&changed(engine::apply_verdict(&mut run, &verdict, now)));
            assert_eq!(fan_in.iter().map(|w| w.step_id.as_str()).collect::<Vec<_>>(), [FAN_IN]);
            changed(engine::apply_result(&mut run, &succeeded(&fan_in[0], ""), now));
        }
        assert_eq!(run.state, RunState::Succeeded, "{:?}", run.reason);
        assert_eq!(run.gates[0].state, GateState::Passed);
    }
}
