//! Escalations and human steps through the pure engine, with explicit timestamps: the seed-002
//! ladder's hours take no time, and every rule is checked where it is decided.

use super::super::tests::{changed, dispatched, result, run_of, state, t};
use super::super::{Effect, apply_result, start, tick};
use super::*;
use muster_schemas::answer::AnswerAction;
use muster_schemas::message::{Outcome, PromptKind, PromptNotice};
use muster_schemas::run::{LadderStage, PromptState, RunState, StepState};
use std::collections::BTreeMap;

const MIN: i64 = 60;

/// What the service does around every event: oversight, then numbers for new prompts.
fn settle(run: &mut RunSnapshot, mut effects: Vec<Effect>, now: Timestamp) -> Vec<Effect> {
    effects.extend(oversee(run, now));
    for index in unnumbered(run) {
        let number = 100 + index as u64;
        if let super::super::Applied::Changed(more) = number_prompt(run, index, number, now) {
            effects.extend(more);
        }
    }
    effects
}

fn notices(effects: &[Effect]) -> Vec<PromptNotice> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Notify { notice, .. } => Some((**notice).clone()),
            _ => None,
        })
        .collect()
}

fn stages(effects: &[Effect]) -> Vec<String> {
    notices(effects).iter().map(|n| format!("{} {}", n.prompt, n.stage)).collect()
}

fn at_tick(run: &mut RunSnapshot, now: Timestamp) -> Vec<Effect> {
    let effects = match tick(run, now) {
        super::super::Applied::Changed(effects) => effects,
        super::super::Applied::Ignored(_) => Vec::new(),
    };
    settle(run, effects, now)
}

fn answer(
    run: &mut RunSnapshot,
    prompt: &str,
    action: AnswerAction,
    person: &str,
    now: Timestamp,
) -> Result<Answered, String> {
    let answered = apply_answer(run, prompt, &action, person, None, now)?;
    let effects = settle(run, answered.effects, now);
    Ok(Answered { effects, ..answered })
}

fn choose(option: &str) -> AnswerAction {
    AnswerAction::Choose { option: option.into() }
}

const SLOW: &str = r#"
id: p
groups:
  infra-oncall: {members: [alice]}
  leads: {members: [carol]}
escalations:
  - id: slow
    title: Provisioning is slow
    severity: critical
    when: {running_longer: {target: provision, threshold: 90m}}
    options:
      - {id: keep-waiting, description: Let it finish, effect: continue}
      - {id: rollback, description: Destroy and start over, effect: rollback}
    default: keep-waiting
    fallback: rollback
    responders: {groups: [infra-oncall, leads]}
steps:
  - {id: prepare, owner: resource, exec: {program: 'true'}, rollback: {exec: {program: 'true'}}}
  - {id: provision, owner: devops, needs: [prepare], exec: {program: 'true'}, timeout: 8h}
"#;

/// Starts SLOW, finishes `prepare`, and leaves `provision` running since `t(60)`.
fn provisioning() -> RunSnapshot {
    let mut run = run_of(SLOW, &[]);
    let first = dispatched(&start(&mut run, t(0)));
    let effects = changed(apply_result(&mut run, &result(&first[0], Outcome::Succeeded, &[]), t(60)));
    let effects = settle(&mut run, effects, t(60));
    assert_eq!(state(&run, "provision"), StepState::Running);
    assert!(effects.contains(&Effect::WakeAt(t(60 + 90 * MIN))), "a timer for the threshold: {effects:?}");
    run
}

#[test]
fn the_seed_ladder_notifies_renotifies_reminds_falls_back_and_asks_for_a_follow_up() {
    let mut run = provisioning();
    assert!(stages(&at_tick(&mut run, t(60 + 89 * MIN))).is_empty(), "nothing before the threshold");
    assert!(run.prompts.is_empty());
    let raised_at = 60 + 90 * MIN;
    let raised = at_tick(&mut run, t(raised_at));
    let notice = &notices(&raised)[0];
    assert_eq!((notice.prompt.as_str(), notice.stage.as_str()), ("ESC-100", "raised"));
    assert_eq!(notice.responders, ["infra-oncall"]);
    assert!(notice.text.contains("`rollback` runs at"), "{}", notice.text);
    assert!(notice.text.contains("keep-waiting (recommended)"), "{}", notice.text);
    assert_eq!(run.state, RunState::Running, "not blocking: the run keeps going while people look");

    assert!(stages(&at_tick(&mut run, t(raised_at + 14 * MIN))).is_empty());
    let renotified = at_tick(&mut run, t(raised_at + 15 * MIN));
    assert_eq!(stages(&renotified), ["ESC-100 renotified"]);
    assert_eq!(notices(&renotified)[0].responders, ["infra-oncall", "leads"], "the next group is added");
    assert_eq!(stages(&at_tick(&mut run, t(raised_at + 30 * MIN))), ["ESC-100 decision_due"]);
    let expired = at_tick(&mut run, t(raised_at + 60 * MIN));
    assert_eq!(stages(&expired), ["ESC-100 expired"]);
    let prompt = &run.prompts[0];
    assert_eq!(prompt.state, PromptState::Expired);
    assert_eq!(
        prompt.outcome.as_ref().map(|o| (o.option.as_deref(), o.by.as_str())),
        Some((Some("rollback"), "deadline"))
    );
    assert!(run.rollback.is_some(), "the declared fallback (rollback) runs");
    assert_eq!(stages(&at_tick(&mut run, t(raised_at + 24 * 60 * MIN))), ["ESC-100 follow_up"]);
    assert_eq!(run.prompts[0].stage, LadderStage::Done);
}

#[test]
fn a_missed_ladder_catches_up_in_one_look_after_a_restart() {
    let mut run = provisioning();
    let raised_at = 60 + 90 * MIN;
    at_tick(&mut run, t(raised_at));
    // The orchestrator was down for two hours: every stage due runs, in order, at once.
    let effects = at_tick(&mut run, t(raised_at + 120 * MIN));
    assert_eq!(stages(&effects), ["ESC-100 renotified", "ESC-100 decision_due", "ESC-100 expired"]);
}

#[test]
fn answers_are_checked_against_the_prompt_and_applied_once() {
    let mut run = provisioning();
    at_tick(&mut run, t(60 + 90 * MIN));
    let now = t(60 + 95 * MIN);
    let wrong = answer(&mut run, "ESC-100", choose("yolo"), "alice", now).unwrap_err();
    assert!(wrong.contains("valid options: keep-waiting, rollback"), "{wrong}");
    let unknown = answer(&mut run, "ESC-7", choose("rollback"), "alice", now).unwrap_err();
    assert!(unknown.contains("open: ESC-100"), "{unknown}");
    let form_like =
        answer(&mut run, "esc-100", AnswerAction::Fill { fields: BTreeMap::new() }, "alice", now).unwrap_err();
    assert!(form_like.contains("answer with one of its options"), "{form_like}");

    let acked = answer(&mut run, "ESC-100", AnswerAction::Acknowledge, "alice", now).unwrap();
    assert_eq!(stages(&acked.effects), ["ESC-100 acknowledged"]);
    // Acknowledged in time: the triage deadline does not renotify.
    assert!(stages(&at_tick(&mut run, t(60 + 105 * MIN))).is_empty());

    let kept = answer(&mut run, "ESC-100", choose("keep-waiting"), "alice", now).unwrap();
    assert!(kept.accepted);
    assert_eq!(stages(&kept.effects), ["ESC-100 answered"]);
    assert!(run.rollback.is_none(), "continue leaves the run alone");
    let again = answer(&mut run, "ESC-100", choose("rollback"), "carol", now).unwrap_err();
    assert!(again.contains("already answered `keep-waiting` by alice"), "{again}");
    // No fallback after an answer: the next stage is the follow-up.
    assert!(stages(&at_tick(&mut run, t(60 + 150 * MIN))).is_empty());
    assert_eq!(run.prompts[0].stage, LadderStage::FollowUp);
}

const FAILING: &str = r#"
id: p
groups:
  oncall: {members: [alice]}
escalations:
  - id: deploy-failed
    severity: high
    options:
      - {id: retry, description: Try again, effect: retry}
      - {id: skip, description: Go on without it, effect: skip}
      - {id: abort, description: Stop, effect: abort}
    fallback: abort
    responders: {groups: [oncall]}
steps:
  - {id: deploy, owner: devops, exec: {program: 'false'}, on_failure: {escalate: deploy-failed}}
  - {id: after, owner: sre, needs: [deploy], exec: {program: 'true'}}
"#;

#[test]
fn a_step_that_escalates_holds_the_run_until_people_choose_and_retry_runs_it_again() {
    let mut run = run_of(FAILING, &[]);
    let first = dispatched(&start(&mut run, t(0)));
    let effects = changed(apply_result(&mut run, &result(&first[0], Outcome::Failed, &[]), t(10)));
    let effects = settle(&mut run, effects, t(10));
    assert_eq!(run.state, RunState::Waiting, "{:?}", run.reason);
    assert_eq!(stages(&effects), ["ESC-100 raised"]);
    assert!(notices(&effects)[0].text.contains("Step `deploy` (devops) is failed"), "{}", notices(&effects)[0].text);
    let retried = answer(&mut run, "ESC-100", choose("retry"), "alice", t(20)).unwrap();
    assert_eq!(run.state, RunState::Running);
    let again = dispatched(&retried.effects);
    assert_eq!(again.iter().map(|w| w.step_id.as_str()).collect::<Vec<_>>(), ["deploy"], "{:?}", retried.effects);
    let effects = changed(apply_result(&mut run, &result(&again[0], Outcome::Succeeded, &[]), t(30)));
    assert_eq!(dispatched(&settle(&mut run, effects, t(30)))[0].step_id, "after");
}

#[test]
fn an_unanswered_escalation_on_a_failed_step_falls_back_and_never_approves() {
    let mut run = run_of(FAILING, &[]);
    let first = dispatched(&start(&mut run, t(0)));
    let effects = changed(apply_result(&mut run, &result(&first[0], Outcome::Failed, &[]), t(0)));
    settle(&mut run, effects, t(0));
    at_tick(&mut run, t(60 * MIN));
    assert_eq!(run.state, RunState::Failed, "fallback `abort` stops the run");
    assert_eq!(run.prompts[0].state, PromptState::Expired);
    assert_eq!(state(&run, "after"), StepState::Pending, "nothing ran past the failure");
}

const HUMAN: &str = r#"
id: p
groups:
  requesters: {members: [alice]}
  change-board: {members: [bob, carol, dave]}
steps:
  - id: requirements
    owner: resource
    form:
      prompt: Describe the environment
      fields:
        project: {type: string, required: true}
        replicas: {type: int, min: 1, max: 5, required: true}
        notes: {type: string}
      responders: {groups: [requesters]}
      deadline: 7d
  - id: plan
    owner: devops
    needs: [requirements]
    exec: {program: echo, args: ['{"plan": "v1"}']}
    outputs: {plan: {type: string}}
  - id: approve
    owner: devops
    needs: [plan]
    approval:
      approvers: {groups: [change-board]}
      quorum: 2
      binds: "{{ outputs.plan.plan }}"
      deadline: 4h
  - id: choose
    owner: sre
    needs: [approve]
    decision:
      prompt: Which region?
      options:
        - {id: eu, description: Europe}
        - {id: us, description: America}
      fallback: eu
      responders: {groups: [change-board]}
      deadline: 1h
  - id: cable
    owner: sre
    needs: [choose]
    manual: {instructions: Plug the cable, checklist: [plug it], responders: {users: [dave]}}
"#;

fn fill(pairs: &[(&str, &str)]) -> AnswerAction {
    AnswerAction::Fill { fields: pairs.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect() }
}

#[test]
fn human_steps_collect_forms_approvals_decisions_and_confirmations() {
    let mut run = run_of(HUMAN, &[]);
    run.requested_by = Some("bob".into());
    let started = start(&mut run, t(0));
    let effects = settle(&mut run, started, t(0));
    assert!(dispatched(&effects).is_empty(), "a form is not work for an agent");
    assert_eq!(stages(&effects), ["F-100 raised"]);
    assert_eq!(run.prompts[0].kind, PromptKind::Form);

    let bad = answer(&mut run, "F-100", fill(&[("project", "x"), ("replicas", "9"), ("colour", "red")]), "alice", t(1))
        .unwrap_err();
    assert!(bad.contains("nothing was kept") && bad.contains("`replicas`") && bad.contains("`colour`"), "{bad}");
    assert!(run.prompts[0].fields.is_empty(), "an invalid answer keeps nothing");
    let partial = answer(&mut run, "F-100", fill(&[("project", "atlas")]), "alice", t(2)).unwrap();
    assert!(partial.message.contains("still missing: replicas"), "{}", partial.message);
    assert_eq!(state(&run, "requirements"), StepState::Running, "a partial form stays open");
    let done = answer(&mut run, "F-100", fill(&[("replicas", "3")]), "alice", t(3)).unwrap();
    let plan = dispatched(&done.effects);
    assert_eq!(plan[0].step_id, "plan");
    let outputs = &run.steps[0].outputs;
    assert_eq!(
        (outputs["project"].clone(), outputs["replicas"].clone()),
        (serde_json::json!("atlas"), serde_json::json!(3))
    );

    let effects =
        changed(apply_result(&mut run, &result(&plan[0], Outcome::Succeeded, &[("plan", "v1".into())]), t(4)));
    let effects = settle(&mut run, effects, t(4));
    assert_eq!(stages(&effects), ["A-101 raised"]);
    let binding = run.prompts[1].binding.clone().unwrap();
    assert!(notices(&effects)[0].text.contains(&binding));
    let approve = |binding: &str| AnswerAction::Approve { binding: Some(binding.into()) };
    let requester = answer(&mut run, "A-101", approve(&binding), "bob", t(5)).unwrap_err();
    assert!(requester.contains("started this run"), "{requester}");
    let unbound = answer(&mut run, "A-101", AnswerAction::Approve { binding: None }, "carol", t(5)).unwrap_err();
    assert!(unbound.contains(&binding), "{unbound}");
    let first = answer(&mut run, "A-101", approve(&binding), "carol", t(6)).unwrap();
    assert!(first.message.contains("1 of 2"), "{}", first.message);
    let twice = answer(&mut run, "A-101", approve(&binding), "carol", t(7)).unwrap_err();
    assert!(twice.contains("already approved"), "{twice}");
    // The plan changes under the approval: what was approved is void.
    run.steps[1].outputs.insert("plan".into(), "v2".into());
    let voided = answer(&mut run, "A-101", approve(&binding), "dave", t(8)).unwrap();
    assert!(!voided.accepted && voided.message.contains("void"), "{}", voided.message);
    assert!(run.prompts[1].approvals.is_empty());
    let rebound = run.prompts[1].binding.clone().unwrap();
    answer(&mut run, "A-101", approve(&rebound), "dave", t(9)).unwrap();
    let approved = answer(&mut run, "A-101", approve(&rebound), "carol", t(10)).unwrap();
    assert_eq!(stages(&approved.effects), ["A-101 answered", "D-102 raised"]);
    assert_eq!(run.steps[2].outputs["approved_by"], serde_json::json!(["dave", "carol"]));

    // Nobody decides within the hour: the declared fallback is applied and recorded as such.
    let expired = at_tick(&mut run, t(10 + 60 * MIN));
    assert_eq!(stages(&expired), ["D-102 expired", "M-103 raised"]);
    assert_eq!(run.steps[3].outputs["choice"], serde_json::json!("eu"));
    assert_eq!(run.prompts[2].outcome.as_ref().map(|o| o.by.as_str()), Some("deadline"));

    let confirmed = answer(&mut run, "M-103", AnswerAction::Confirm, "dave", t(11 + 60 * MIN)).unwrap();
    assert!(
        confirmed.effects.iter().any(|e| matches!(e, Effect::Finished(RunState::Succeeded))),
        "{:?}",
        confirmed.effects
    );
}

#[test]
fn a_rejected_approval_fails_its_step_and_an_expired_form_never_fills_itself() {
    let mut run = run_of(HUMAN, &[]);
    let started = start(&mut run, t(0));
    settle(&mut run, started, t(0));
    let expired = at_tick(&mut run, t(7 * 24 * 60 * MIN));
    assert_eq!(stages(&expired), ["F-100 expired"]);
    assert_eq!(run.state, RunState::Failed);
    assert!(run.reason.as_deref().unwrap_or_default().contains("nothing is approved by default"), "{:?}", run.reason);
}
