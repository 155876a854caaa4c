//! The ladder: each open prompt has one next stage and when it is due. Stages are audited
//! transitions like any other, and the deadlines live in the snapshot, so they survive restarts
//! (a deadline that passed while no orchestrator led fires at once).

use super::super::Effect;
use super::{effects, human, notice, raise};
use jiff::{SignedDuration, Timestamp};
use muster_schemas::message::PromptKind;
use muster_schemas::protocol::model::action::OptionEffect;
use muster_schemas::run::{LadderStage, PromptOutcome, PromptState, RunSnapshot, StepState};

fn after(at: Timestamp, spec: std::time::Duration) -> Option<Timestamp> {
    SignedDuration::try_from(spec).ok().and_then(|d| at.checked_add(d).ok())
}

/// Withdraws open prompts nobody needs to answer any more: every prompt of an ended run, and a
/// human step's prompt once its step is no longer waiting (an operator skipped or retried it).
pub fn withdraw_stale(run: &mut RunSnapshot, now: Timestamp) -> Vec<Effect> {
    let mut effects = Vec::new();
    for index in 0..run.prompts.len() {
        let prompt = &run.prompts[index];
        if !prompt.state.is_open() {
            continue;
        }
        let step_moved_on = human::is_human_prompt(prompt)
            && !run.steps.iter().any(|s| s.id == prompt.source && s.state == StepState::Running);
        if !run.state.is_terminal() && !step_moved_on {
            continue;
        }
        let why = if run.state.is_terminal() {
            format!("the run ended {}", run.state.as_str())
        } else {
            "the step moved on".to_owned()
        };
        let prompt = &mut run.prompts[index];
        prompt.state = PromptState::Withdrawn;
        prompt.stage = LadderStage::Done;
        prompt.due = None;
        prompt.outcome = Some(PromptOutcome { option: None, by: "muster".into(), at: now, note: Some(why) });
        effects.extend(notice::emit(run, index, "closed", now));
    }
    effects
}

/// Runs every ladder stage that is due, oldest first (several, if the orchestrator was down).
pub fn run_due(run: &mut RunSnapshot, now: Timestamp) -> Vec<Effect> {
    let mut effects = Vec::new();
    for index in 0..run.prompts.len() {
        // Bounded: each pass moves the stage forward or clears `due`.
        for _ in 0..6 {
            let Some(due) = run.prompts[index].due else { break };
            if due > now {
                break;
            }
            effects.extend(step_ladder(run, index, now));
        }
    }
    effects
}

fn step_ladder(run: &mut RunSnapshot, index: usize, now: Timestamp) -> Vec<Effect> {
    if run.prompts[index].kind != PromptKind::Escalation {
        run.prompts[index].due = None;
        run.prompts[index].stage = LadderStage::Done;
        return if run.prompts[index].state.is_open() { human::on_deadline(run, index, now) } else { Vec::new() };
    }
    let Some(escalation) = run.protocol.escalations.iter().find(|e| e.id == run.prompts[index].source).cloned() else {
        run.prompts[index].due = None;
        return Vec::new();
    };
    let ladder = raise::ladder_of(run, &escalation);
    let raised = run.prompts[index].raised_at;
    let open = run.prompts[index].state.is_open();
    let unacknowledged = run.prompts[index].state == PromptState::Open;
    let (next, due, stage_name) = match run.prompts[index].stage {
        LadderStage::Triage => {
            if unacknowledged {
                let next_group = escalation.responders.groups.iter().find(|g| !run.prompts[index].notified.contains(g));
                let addressed = match next_group {
                    Some(group) => vec![group.clone()],
                    None => escalation.responders.groups.iter().chain(&escalation.responders.users).cloned().collect(),
                };
                run.prompts[index].notified.extend(addressed);
            }
            (LadderStage::Decide, after(raised, ladder.decide.0), unacknowledged.then_some("renotified"))
        }
        LadderStage::Decide => {
            (LadderStage::Fallback, after(raised, ladder.fallback.0), open.then_some("decision_due"))
        }
        LadderStage::Fallback => {
            let follow_up = after(raised, ladder.follow_up.0);
            if !open {
                (LadderStage::FollowUp, follow_up, None)
            } else {
                let prompt = &mut run.prompts[index];
                prompt.state = PromptState::Expired;
                prompt.stage = LadderStage::FollowUp;
                prompt.due = follow_up;
                prompt.outcome = Some(PromptOutcome {
                    option: Some(escalation.fallback.clone()),
                    by: "deadline".into(),
                    at: now,
                    note: Some(format!(
                        "nobody decided within {:#}",
                        SignedDuration::from_secs(ladder.fallback.0.as_secs() as i64)
                    )),
                });
                let effect = escalation
                    .options
                    .iter()
                    .find(|o| o.id == escalation.fallback)
                    .map_or(OptionEffect::Continue, |o| o.effect);
                let what = format!(
                    "{}: fallback `{}` after the decision deadline",
                    run.prompts[index].label(),
                    escalation.fallback
                );
                let mut out = effects::apply(run, index, effect, what, now);
                out.extend(notice::emit(run, index, "expired", now));
                return out;
            }
        }
        LadderStage::FollowUp => (LadderStage::Done, None, Some("follow_up")),
        LadderStage::Done => (LadderStage::Done, None, None),
    };
    let prompt = &mut run.prompts[index];
    prompt.stage = next;
    prompt.due = due;
    stage_name.and_then(|stage| notice::emit(run, index, stage, now)).into_iter().collect()
}
