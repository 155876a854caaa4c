//! The engine's rules, without a clock or a bus: every test drives a run by hand.

use super::*;
use muster_schemas::protocol::parse_protocol;
use std::time::Duration;

pub(crate) fn protocol(text: &str) -> Protocol {
    parse_protocol("p.yaml", text).unwrap_or_else(|d| panic!("fixture must validate: {d:?}"))
}

pub(crate) fn t(seconds: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + seconds).unwrap()
}

pub(crate) fn run_of(text: &str, inputs: &[(&str, &str)]) -> RunSnapshot {
    let inputs = inputs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    new_run(Uuid::nil(), protocol(text), inputs, t(0))
}

pub(crate) fn result(work: &StepAssigned, outcome: Outcome, outputs: &[(&str, serde_json::Value)]) -> StepResult {
    StepResult {
        run_id: work.run_id,
        step_id: work.step_id.clone(),
        attempt: work.attempt,
        delivery: 1,
        agent: format!("{}-1", work.owner),
        outcome,
        exit_code: Some(if outcome == Outcome::Succeeded { 0 } else { 3 }),
        stdout_tail: String::new(),
        stderr_tail: String::new(),
        outputs: outputs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect(),
        purpose: work.purpose.clone(),
        duration_ms: 5,
        started_at: t(0),
    }
}

pub(crate) fn dispatched(effects: &[Effect]) -> Vec<StepAssigned> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Dispatch(work) => Some((**work).clone()),
            _ => None,
        })
        .collect()
}

fn exec_of(work: &StepAssigned) -> &muster_schemas::message::ExecSpec {
    work.exec.as_ref().expect("an exec step")
}

fn ids(works: &[StepAssigned]) -> Vec<String> {
    works.iter().map(|w| format!("{}:{}", w.step_id, w.purpose.label())).collect()
}

pub(crate) fn changed(applied: Applied) -> Vec<Effect> {
    match applied {
        Applied::Changed(effects) => effects,
        Applied::Ignored(why) => panic!("expected a change, got: {why}"),
    }
}

pub(crate) fn state(run: &RunSnapshot, id: &str) -> StepState {
    run.steps.iter().find(|s| s.id == id).map(|s| s.state).unwrap()
}

const DIAMOND: &str = "id: p\ninputs:\n  dir: {default: /tmp}\nsteps:\n  - {id: a, owner: resource, exec: {program: ls, args: ['{{ inputs.dir }}']}, outputs: {count: {type: int}}}\n  - {id: b, owner: devops, needs: [a], exec: {program: echo, args: ['{{ outputs.a.count }}']}}\n  - {id: c, owner: security, needs: [a], exec: {program: 'true'}}\n  - {id: d, owner: sre, needs: [b, c], exec: {program: 'true'}}\n";

#[test]
fn independent_branches_are_dispatched_together_and_outputs_flow_into_arguments() {
    let mut run = run_of(DIAMOND, &[("dir", "/srv")]);
    let first = dispatched(&start(&mut run, t(0)));
    assert_eq!(ids(&first), ["a:run"]);
    assert_eq!(exec_of(&first[0]).args, ["/srv"]);
    assert_eq!(first[0].outputs[0].path, "/count");
    let fan_out = dispatched(&changed(apply_result(
        &mut run,
        &result(&first[0], Outcome::Succeeded, &[("count", 7.into())]),
        t(1),
    )));
    assert_eq!(ids(&fan_out), ["b:run", "c:run"], "b and c run in parallel");
    assert_eq!(exec_of(&fan_out[0]).args, ["7"]);
    assert!(
        dispatched(&changed(apply_result(&mut run, &result(&fan_out[0], Outcome::Succeeded, &[]), t(2)))).is_empty(),
        "d waits for c"
    );
    let fan_in = dispatched(&changed(apply_result(&mut run, &result(&fan_out[1], Outcome::Succeeded, &[]), t(3))));
    assert_eq!(ids(&fan_in), ["d:run"]);
    let end = changed(apply_result(&mut run, &result(&fan_in[0], Outcome::Succeeded, &[]), t(4)));
    assert_eq!(end, vec![Effect::Finished(RunState::Succeeded)]);
    assert_eq!(run.completed, ["a", "b", "c", "d"]);
}

#[test]
fn a_false_condition_skips_the_step_but_not_its_dependants() {
    let text = "id: p\ninputs:\n  env: {type: enum, values: [dev, prod], default: dev}\nsteps:\n  - {id: approve, owner: sre, when: \"inputs.env == 'prod'\", exec: {program: 'true'}}\n  - {id: apply, owner: devops, needs: [approve], exec: {program: 'true'}}\n";
    let mut run = run_of(text, &[("env", "dev")]);
    let works = dispatched(&start(&mut run, t(0)));
    assert_eq!(ids(&works), ["apply:run"]);
    assert_eq!(state(&run, "approve"), StepState::Skipped);
}

#[test]
fn retries_back_off_durably_then_alternatives_then_on_failure() {
    let text = "id: p\nsteps:\n  - id: apply\n    owner: devops\n    exec: {program: terraform}\n    retry: {max_attempts: 3, backoff: exponential, initial: 10s, max: 1m, jitter: 0.0}\n    alternatives:\n      - {id: other-region, exec: {program: terraform, args: [-var=region=b]}}\n";
    let mut run = run_of(text, &[]);
    let mut work = dispatched(&start(&mut run, t(0))).remove(0);
    let effects = changed(apply_result(&mut run, &result(&work, Outcome::Failed, &[]), t(1)));
    assert_eq!(effects, vec![Effect::WakeAt(t(11))], "first retry after 10s");
    assert_eq!(state(&run, "apply"), StepState::Pending);
    assert!(matches!(tick(&mut run, t(5)), Applied::Ignored(_)), "nothing before the backoff ends");
    work = dispatched(&changed(tick(&mut run, t(11)))).remove(0);
    assert_eq!((work.attempt, work.purpose.clone()), (2, Purpose::Run));
    assert_eq!(
        changed(apply_result(&mut run, &result(&work, Outcome::Failed, &[]), t(12))),
        vec![Effect::WakeAt(t(32))],
        "then 20s"
    );
    assert_eq!(resume(&run), vec![Effect::WakeAt(t(32))], "the timer survives a restart");
    work = dispatched(&changed(tick(&mut run, t(32)))).remove(0);
    let alt = dispatched(&changed(apply_result(&mut run, &result(&work, Outcome::Failed, &[]), t(33))));
    assert_eq!(ids(&alt), ["apply:alt-other-region"], "retries exhausted: the alternative");
    assert_eq!(exec_of(&alt[0]).args, ["-var=region=b"]);
    let end = changed(apply_result(&mut run, &result(&alt[0], Outcome::Failed, &[]), t(34)));
    assert_eq!(end, vec![Effect::Finished(RunState::Failed)]);
    assert_eq!(run.steps[0].failures, 4);
}

#[test]
fn retry_if_decides_whether_a_failure_is_retried() {
    let text = "id: p\nsteps:\n  - {id: a, owner: sre, exec: {program: x}, retry: {max_attempts: 5, retry_if: 'attempt.exit_code == 75'}}\n";
    let mut run = run_of(text, &[]);
    let work = dispatched(&start(&mut run, t(0))).remove(0);
    let effects = changed(apply_result(&mut run, &result(&work, Outcome::Failed, &[]), t(1)));
    assert_eq!(effects, vec![Effect::Finished(RunState::Failed)], "exit code 3 is not retried");
    assert!(run.steps[0].note.as_deref().unwrap_or_default().contains("retry_if is false"));
}

#[test]
fn backoff_grows_is_capped_and_jitter_is_bounded_and_repeatable() {
    let policy = |backoff: &str, jitter: f64| {
        let text = format!(
            "id: p\nsteps:\n  - {{id: a, owner: sre, exec: {{program: x}}, retry: {{max_attempts: 9, backoff: {backoff}, initial: 10s, max: 1m, jitter: {jitter}}}}}\n"
        );
        protocol(&text).steps[0].retry.clone().unwrap()
    };
    let secs = |p: &_, tries| failure::backoff(p, tries, "seed").as_secs_f64();
    let exp = policy("exponential", 0.0);
    assert_eq!([1, 2, 3, 4, 5].map(|n| secs(&exp, n)), [10.0, 20.0, 40.0, 60.0, 60.0]);
    let lin = policy("linear", 0.0);
    assert_eq!([1, 2, 3].map(|n| secs(&lin, n)), [10.0, 20.0, 30.0]);
    let jittered = policy("fixed", 0.5);
    for seed in ["a", "b", "c", "d"] {
        let d = failure::backoff(&jittered, 1, seed);
        assert!(d >= Duration::from_millis(7_500) && d <= Duration::from_millis(12_500), "{d:?}");
        assert_eq!(d, failure::backoff(&jittered, 1, seed));
    }
}

const SAGA: &str = "id: p\nsteps:\n  - {id: network, owner: devops, exec: {program: 'true'}, rollback: {exec: {program: destroy-network}}}\n  - {id: noop, owner: sre, needs: [network], exec: {program: 'true'}}\n  - {id: compute, owner: devops, needs: [noop], exec: {program: 'true'}, rollback: {exec: {program: destroy-compute}}}\n  - {id: verify, owner: sre, needs: [compute], exec: {program: 'false'}, on_failure: rollback}\n";

fn drive_to_failure(run: &mut RunSnapshot) -> Vec<Effect> {
    let mut effects = start(run, t(0));
    loop {
        let works = dispatched(&effects);
        let work = works.first().cloned().unwrap();
        let outcome = if work.step_id == "verify" { Outcome::Failed } else { Outcome::Succeeded };
        effects = changed(apply_result(run, &result(&work, outcome, &[]), t(1)));
        if work.step_id == "verify" {
            return effects;
        }
    }
}

#[test]
fn a_failure_rolls_back_completed_steps_in_reverse_order() {
    let mut run = run_of(SAGA, &[]);
    let effects = drive_to_failure(&mut run);
    let first = dispatched(&effects);
    assert_eq!(ids(&first), ["compute:rollback"], "the newest completed step is compensated first");
    assert_eq!(exec_of(&first[0]).program, "destroy-compute");
    assert_eq!(first[0].idempotency_key, format!("{}/compute/rollback", Uuid::nil()));
    let second = dispatched(&changed(apply_result(&mut run, &result(&first[0], Outcome::Succeeded, &[]), t(2))));
    assert_eq!(ids(&second), ["network:rollback"], "noop has no compensation");
    let end = changed(apply_result(&mut run, &result(&second[0], Outcome::Succeeded, &[]), t(3)));
    assert_eq!(end, vec![Effect::Finished(RunState::RolledBack)]);
    assert_eq!(
        [state(&run, "network"), state(&run, "noop"), state(&run, "compute")],
        [StepState::RolledBack, StepState::Succeeded, StepState::RolledBack]
    );
    assert_eq!(run.reason.as_deref(), Some("step `verify` exited with code 3"));
}

#[test]
fn a_failed_compensation_fails_the_run_and_names_it() {
    let mut run = run_of(SAGA, &[]);
    let first = dispatched(&drive_to_failure(&mut run));
    let end = changed(apply_result(&mut run, &result(&first[0], Outcome::Failed, &[]), t(2)));
    assert_eq!(end, vec![Effect::Finished(RunState::Failed)]);
    let reason = run.reason.clone().unwrap_or_default();
    assert!(reason.contains("compensation of step `compute` exited with code 3"), "{reason}");
    assert_eq!(state(&run, "network"), StepState::Succeeded, "nothing else is touched after a failed compensation");
}

#[test]
fn on_failure_continue_skips_dependants_and_the_run_carries_on() {
    let text = "id: p\nsteps:\n  - {id: optional, owner: sre, exec: {program: 'false'}, on_failure: continue}\n  - {id: after-optional, owner: sre, needs: [optional], exec: {program: 'true'}}\n  - {id: independent, owner: devops, exec: {program: 'true'}}\n";
    let mut run = run_of(text, &[]);
    let works = dispatched(&start(&mut run, t(0)));
    assert_eq!(ids(&works), ["optional:run", "independent:run"]);
    assert!(dispatched(&changed(apply_result(&mut run, &result(&works[0], Outcome::Failed, &[]), t(1)))).is_empty());
    assert_eq!(state(&run, "after-optional"), StepState::Skipped);
    let end = changed(apply_result(&mut run, &result(&works[1], Outcome::Succeeded, &[]), t(2)));
    assert_eq!(end, vec![Effect::Finished(RunState::Succeeded)]);
    assert!(run.reason.as_deref().unwrap_or_default().contains("optional"));
}

#[test]
fn stale_and_duplicate_results_change_nothing() {
    let mut run = run_of(DIAMOND, &[("dir", "/tmp")]);
    let work = dispatched(&start(&mut run, t(0))).remove(0);
    let before = run.clone();
    let mut stale = result(&work, Outcome::Succeeded, &[]);
    stale.attempt = 2;
    assert!(matches!(apply_result(&mut run, &stale, t(1)), Applied::Ignored(_)));
    let mut wrong_purpose = result(&work, Outcome::Succeeded, &[]);
    wrong_purpose.purpose = Purpose::Rollback;
    assert!(matches!(apply_result(&mut run, &wrong_purpose, t(1)), Applied::Ignored(_)));
    assert_eq!(run, before);
    changed(apply_result(&mut run, &result(&work, Outcome::Succeeded, &[("count", 1.into())]), t(1)));
    assert!(matches!(apply_result(&mut run, &result(&work, Outcome::Succeeded, &[]), t(2)), Applied::Ignored(_)));
}

#[test]
fn resume_redispatches_running_work_with_the_same_ids() {
    let mut run = run_of(DIAMOND, &[("dir", "/tmp")]);
    let first = start(&mut run, t(0));
    assert_eq!(resume(&run), first);
}

#[test]
fn phases_order_steps_and_shell_scripts_run_through_sh() {
    let text = "id: p\nphases:\n  - id: verify\n    needs: [build]\n    steps:\n      - {id: check, owner: sre, exec: {program: 'true'}}\n  - id: build\n    steps:\n      - {id: second, owner: devops, needs: [first], exec: {program: 'true'}}\n      - {id: first, owner: devops, exec: {shell: 'echo hi'}}\n";
    let mut run = run_of(text, &[]);
    let mut order = Vec::new();
    let mut effects = start(&mut run, t(0));
    while let Some(work) = dispatched(&effects).first().cloned() {
        order.push(work.step_id.clone());
        if work.step_id == "first" {
            assert_eq!(
                (exec_of(&work).program.as_str(), exec_of(&work).args.clone()),
                ("sh", vec!["-c".to_owned(), "echo hi".to_owned()])
            );
        }
        effects = changed(apply_result(&mut run, &result(&work, Outcome::Succeeded, &[]), t(1)));
    }
    assert_eq!(order, ["first", "second", "check"]);
    assert_eq!(run.state, RunState::Succeeded);
}

#[test]
fn constructs_the_engine_cannot_run_are_named() {
    let text = "id: p\ngroups: {ops: {}}\nsteps:\n  - {id: a, owner: sre, retry: {max_attempts: 3}, exec: {program: 'true'}}\n  - {id: b, owner: sre, approval: {approvers: {groups: [ops]}}}\n  - {id: c, owner: sre, wait: {until: 'true'}}\n";
    assert_eq!(unsupported(&protocol(text)), ["step `c` uses a `wait` action"]);
    assert!(unsupported(&protocol(DIAMOND)).is_empty());
    assert!(unsupported(&protocol(SAGA)).is_empty());
}

#[test]
fn a_result_from_a_delivery_that_lost_its_lease_is_ignored() {
    let mut run = run_of(DIAMOND, &[("dir", "/tmp")]);
    let work = dispatched(&start(&mut run, t(0))).remove(0);
    let takeover = StepStarted {
        run_id: work.run_id,
        step_id: work.step_id.clone(),
        attempt: 1,
        delivery: 2,
        agent: "resource-2".into(),
        purpose: Purpose::Run,
    };
    assert!(matches!(apply_started(&mut run, &takeover), Applied::Changed(_)));
    assert!(matches!(apply_started(&mut run, &takeover), Applied::Ignored(_)), "idempotent");
    let late = result(&work, Outcome::Succeeded, &[("count", 1.into())]);
    let Applied::Ignored(why) = apply_result(&mut run, &late, t(5)) else { panic!("the stale result must be ignored") };
    assert!(why.contains("lost its lease"), "{why}");
    let mut current = result(&work, Outcome::Succeeded, &[("count", 1.into())]);
    current.delivery = 2;
    current.agent = "resource-2".into();
    changed(apply_result(&mut run, &current, t(6)));
    assert_eq!(run.steps[0].agent.as_deref(), Some("resource-2"));
}

#[test]
fn probes_are_rendered_for_the_agents() {
    let text = "id: p\ninputs:\n  host: {default: example.com}\nsteps:\n  - {id: health, owner: sre, timeout: 10s, http: {url: 'https://{{ inputs.host }}/healthz', expect: {status: [200, 204], max_latency: 100ms}}}\n  - {id: cert, owner: security, needs: [health], tls: {host: '{{ inputs.host }}', min_days_valid: 14}}\n  - {id: pause, owner: sre, needs: [cert], wait: {duration: 2s}}\n";
    let mut run = run_of(text, &[("host", "api.example.com")]);
    let work = dispatched(&start(&mut run, t(0))).remove(0);
    assert!(work.exec.is_none());
    assert_eq!(work.probe_timeout_ms, 10_000);
    let Some(muster_schemas::message::Probe::Http { url, expect_status, max_latency_ms, .. }) = &work.probe else {
        panic!("an http probe")
    };
    assert_eq!(
        (url.as_str(), expect_status.clone(), *max_latency_ms),
        ("https://api.example.com/healthz", vec![200, 204], Some(100))
    );
    let cert = dispatched(&changed(apply_result(
        &mut run,
        &result(&work, Outcome::Succeeded, &[("status", 200.into())]),
        t(1),
    )))
    .remove(0);
    assert_eq!(
        cert.probe,
        Some(muster_schemas::message::Probe::Tls {
            host: "api.example.com".into(),
            port: 443,
            server_name: "api.example.com".into(),
            min_days_valid: Some(14)
        })
    );
    assert!(unsupported(&protocol(text)).is_empty());
}

const GATED: &str = "id: p\ninputs:\n  approved: {type: bool, default: true}\nsteps:\n  - {id: scan, owner: security, exec: {program: trivy}, outputs: {critical: {type: int}}}\n  - {id: deploy, owner: devops, needs: [scan], exec: {program: deploy}}\ngates:\n  - id: ready\n    owner: sre\n    criteria: [{name: approved, expr: inputs.approved}]\n  - id: clean\n    owner: security\n    after: [scan]\n    criteria: [{name: no-criticals, expr: 'outputs.scan.critical == 0'}]\n    on: {fail: ask}\n";

fn judged(effects: &[Effect]) -> Vec<muster_schemas::message::GateAssigned> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Judge(work) => Some((**work).clone()),
            _ => None,
        })
        .collect()
}

fn verdict(
    work: &muster_schemas::message::GateAssigned,
    verdict: muster_schemas::message::Verdict,
) -> muster_schemas::message::GateVerdict {
    muster_schemas::message::GateVerdict {
        run_id: work.run_id,
        gate_id: work.gate_id.clone(),
        attempt: work.attempt,
        agent: "judge-1".into(),
        verdict,
        evidence: Vec::new(),
    }
}

#[test]
fn gates_hold_what_they_guard_until_judged_and_a_person_can_answer() {
    use muster_schemas::message::Verdict;
    use muster_schemas::run::GateState;
    let mut run = run_of(GATED, &[("approved", "true")]);
    let effects = start(&mut run, t(0));
    assert!(dispatched(&effects).is_empty(), "the prerequisite gate holds every step");
    let prerequisite = judged(&effects).remove(0);
    assert_eq!(
        (prerequisite.gate_id.as_str(), prerequisite.facts["inputs"]["approved"].clone()),
        ("ready", serde_json::json!(true))
    );
    let scan = dispatched(&changed(apply_verdict(&mut run, &verdict(&prerequisite, Verdict::Pass), t(1)))).remove(0);
    assert_eq!(scan.step_id, "scan");
    let effects = changed(apply_result(&mut run, &result(&scan, Outcome::Succeeded, &[("critical", 2.into())]), t(2)));
    assert!(dispatched(&effects).is_empty(), "deploy waits for the gate on scan");
    let clean = judged(&effects).remove(0);
    assert_eq!(clean.facts["outputs"]["scan"]["critical"], serde_json::json!(2));
    assert!(changed(apply_verdict(&mut run, &verdict(&clean, Verdict::Fail), t(3))).is_empty());
    assert_eq!((run.state, run.gates[1].state), (RunState::Waiting, GateState::Waiting));
    assert!(apply_answer(&mut run, "clean", "approve", "alice", t(4)).is_err(), "only continue, rollback or block");
    assert!(apply_answer(&mut run, "ready", "continue", "alice", t(4)).is_err(), "that gate does not wait");
    let deploy = dispatched(&apply_answer(&mut run, "clean", "continue", "alice", t(5)).unwrap()).remove(0);
    assert_eq!(deploy.step_id, "deploy");
    assert_eq!((run.state, run.gates[1].decided_by.as_deref()), (RunState::Running, Some("alice")));
    assert_eq!(resume(&run), vec![Effect::Dispatch(Box::new(deploy))]);
}

#[test]
fn a_failing_gate_blocks_or_rolls_back_as_declared() {
    use muster_schemas::message::Verdict;
    let blocked = GATED.replace("on: {fail: ask}", "on: {fail: block}");
    let mut run = run_of(&blocked, &[]);
    let prerequisite = judged(&start(&mut run, t(0))).remove(0);
    let end = changed(apply_verdict(&mut run, &verdict(&prerequisite, Verdict::Fail), t(1)));
    assert_eq!(end, vec![Effect::Finished(RunState::Failed)], "a prerequisite gate fails with the default `block`");
    assert!(run.reason.as_deref().unwrap_or_default().contains("gate `ready` fail"));
    let stale = verdict(&prerequisite, Verdict::Pass);
    assert!(matches!(apply_verdict(&mut run, &stale, t(2)), Applied::Ignored(_)));
}

#[test]
fn operators_cancel_pause_retry_and_skip() {
    use muster_schemas::message::Control;
    // Cancel: compensations run in reverse, the run ends `cancelled`.
    let mut run = run_of(SAGA, &[]);
    let network = dispatched(&start(&mut run, t(0))).remove(0);
    let noop = dispatched(&changed(apply_result(&mut run, &result(&network, Outcome::Succeeded, &[]), t(1)))).remove(0);
    assert_eq!(
        apply_control(&mut run, &Control::Cancel, "ops", t(2)).unwrap(),
        [Effect::StopRunning],
        "noop is still running: it is asked to stop, nothing is compensated before it ends"
    );
    assert!(apply_control(&mut run, &Control::Cancel, "ops", t(2)).is_err(), "only once");
    let undo = dispatched(&changed(apply_result(&mut run, &result(&noop, Outcome::Succeeded, &[]), t(3)))).remove(0);
    assert_eq!(ids(std::slice::from_ref(&undo)), ["network:rollback"], "compensation starts once nothing runs");
    let end = changed(apply_result(&mut run, &result(&undo, Outcome::Succeeded, &[]), t(4)));
    assert_eq!(end, vec![Effect::Finished(RunState::Cancelled)], "nothing new started after the cancel");
    assert_eq!(run.interventions.len(), 1);

    // Pause holds new work; resume releases it.
    let mut run = run_of(DIAMOND, &[("dir", "/tmp")]);
    let a = dispatched(&start(&mut run, t(0))).remove(0);
    assert!(apply_control(&mut run, &Control::Pause, "ops", t(1)).unwrap().is_empty());
    assert_eq!(run.state, RunState::Waiting);
    assert!(
        dispatched(&changed(apply_result(&mut run, &result(&a, Outcome::Succeeded, &[("count", 1.into())]), t(2))))
            .is_empty()
    );
    let resumed = dispatched(&apply_control(&mut run, &Control::Resume, "ops", t(3)).unwrap());
    assert_eq!(ids(&resumed), ["b:run", "c:run"]);

    // Retry reopens a failed run at the failed step; skip lets the rest proceed.
    let text = "id: p\nsteps:\n  - {id: flaky, owner: sre, exec: {program: x}}\n  - {id: after, owner: sre, needs: [flaky], exec: {program: 'true'}}\n";
    let mut run = run_of(text, &[]);
    let flaky = dispatched(&start(&mut run, t(0))).remove(0);
    changed(apply_result(&mut run, &result(&flaky, Outcome::Failed, &[]), t(1)));
    assert_eq!(run.state, RunState::Failed);
    assert!(apply_control(&mut run, &Control::Retry { step: "after".into() }, "ops", t(2)).is_err(), "after never ran");
    let again =
        dispatched(&apply_control(&mut run, &Control::Retry { step: "flaky".into() }, "ops", t(2)).unwrap()).remove(0);
    assert_eq!((again.step_id.as_str(), again.attempt, run.state), ("flaky", 2, RunState::Running));
    changed(apply_result(&mut run, &result(&again, Outcome::Failed, &[]), t(3)));
    assert!(
        apply_control(&mut run, &Control::Skip { step: "flaky".into(), reason: " ".into() }, "ops", t(4)).is_err(),
        "a reason is required"
    );
    let after = dispatched(
        &apply_control(&mut run, &Control::Skip { step: "flaky".into(), reason: "known outage".into() }, "ops", t(4))
            .unwrap(),
    )
    .remove(0);
    assert_eq!(after.step_id, "after");
    assert_eq!(run.steps[0].note.as_deref(), Some("skipped by ops: known outage"));
}
