//! Human steps. When a `form`, `approval`, `decision` or `manual` step may start, it becomes a
//! prompt for people instead of work for an agent; the step stays `running` until the prompt is
//! answered (the step succeeds with the answer as its outputs), rejected or expired (the step
//! fails and its `on_failure` applies), or a decision's fallback is applied.

use super::super::{Effect, failure, schedule};
use super::{effects, notice};
use jiff::{SignedDuration, Timestamp};
use muster_schemas::message::PromptKind;
use muster_schemas::protocol::model::action::{ApprovalTimeout, HasAction};
use muster_schemas::protocol::model::{ActionRef, OnFailure, Responders, Step};
use muster_schemas::run::{
    LadderStage, PromptOutcome, PromptRecord, PromptState, PromptSubject, RunSnapshot, StepState,
};
use std::collections::BTreeMap;

/// Whether a step is done by people.
pub fn is_human(step: &Step) -> bool {
    matches!(
        step.action(),
        Some(ActionRef::Form(_) | ActionRef::Approval(_) | ActionRef::Decision(_) | ActionRef::Manual(_))
    )
}

/// Whether a prompt is a human step's.
pub fn is_human_prompt(prompt: &PromptRecord) -> bool {
    prompt.kind != PromptKind::Escalation
}

/// Who may answer a human step's prompt; `None` for escalations.
pub fn responders(run: &RunSnapshot, prompt: &PromptRecord) -> Option<Responders> {
    if !is_human_prompt(prompt) {
        return None;
    }
    let step = run.protocol.step(&prompt.source)?;
    Some(match step.action()? {
        ActionRef::Form(form) => form.responders.clone(),
        ActionRef::Approval(approval) => approval.approvers.clone(),
        ActionRef::Decision(decision) => decision.responders.clone(),
        ActionRef::Manual(manual) => manual.responders.clone(),
        _ => Responders::default(),
    })
}

/// Opens the prompt of the human step at `index` (already marked running by the scheduler).
pub fn open(run: &mut RunSnapshot, index: usize, now: Timestamp) -> Vec<Effect> {
    let id = run.steps[index].id.clone();
    let Some(step) = run.protocol.step(&id).cloned() else { return Vec::new() };
    let (kind, prompt_text, deadline, responders) = match step.action() {
        Some(ActionRef::Form(form)) => {
            let fields: Vec<String> = form
                .fields
                .iter()
                .map(|(name, spec)| {
                    let required = if spec.required { ", required" } else { "" };
                    format!(
                        "  - {name} ({}{required}){}",
                        spec.kind.as_str(),
                        spec.label.as_deref().map(|l| format!(": {l}")).unwrap_or_default()
                    )
                })
                .collect();
            let text = format!(
                "{}\nFields:\n{}",
                form.prompt.clone().unwrap_or_else(|| "Fill in this form.".into()),
                fields.join("\n")
            );
            (PromptKind::Form, text, form.deadline, form.responders.clone())
        }
        Some(ActionRef::Approval(approval)) => {
            let text = format!(
                "{}\nApprovals needed: {}{}.",
                approval.prompt.clone().unwrap_or_else(|| format!("Approve step `{id}`.")),
                approval.quorum,
                if approval.allow_requester { "" } else { "; whoever started the run may not approve" }
            );
            (PromptKind::Approval, text, approval.deadline, approval.approvers.clone())
        }
        Some(ActionRef::Decision(decision)) => {
            let fallback = decision.fallback.as_deref().map(|f| format!("\nWithout an answer by the deadline: `{f}`."));
            let text = notice::context(
                run,
                &PromptSubject::Step(id.clone()),
                &decision.prompt,
                &decision.options,
                decision.default.as_deref(),
                None,
            );
            (
                PromptKind::Decision,
                format!("{text}{}", fallback.unwrap_or_default()),
                decision.deadline,
                decision.responders.clone(),
            )
        }
        Some(ActionRef::Manual(manual)) => {
            let items: Vec<String> = manual.checklist.iter().map(|i| format!("  [ ] {i}")).collect();
            let text = format!("{}\n{}", manual.instructions, items.join("\n"));
            (PromptKind::Manual, text, manual.deadline, manual.responders.clone())
        }
        _ => return Vec::new(),
    };
    let binding = match step.action() {
        Some(ActionRef::Approval(approval)) => approval.binds.as_ref().and_then(|binds| binding_of(run, &id, binds)),
        _ => None,
    };
    let text = match &binding {
        Some(hash) => format!("{prompt_text}\nBound to {hash}: approve with this value; a change voids the approval."),
        None => prompt_text,
    };
    let due = deadline.and_then(|d| SignedDuration::try_from(d.0).ok()).and_then(|d| now.checked_add(d).ok());
    run.prompts.push(PromptRecord {
        number: 0,
        kind,
        source: id.clone(),
        subject: PromptSubject::Step(id.clone()),
        state: PromptState::Open,
        blocking: false,
        raised_at: now,
        title: step.title.clone().unwrap_or_else(|| format!("step {id}")),
        text,
        stage: if due.is_some() { LadderStage::Fallback } else { LadderStage::Done },
        due,
        notified: responders.groups.iter().chain(&responders.users).cloned().collect(),
        acknowledged_by: None,
        outcome: None,
        fields: BTreeMap::new(),
        approvals: Vec::new(),
        binding,
        notices: 0,
        last_notice: None,
    });
    Vec::new()
}

/// The hash that an approval is bound to: the `binds` template rendered now, hashed, short.
pub fn binding_of(run: &RunSnapshot, step: &str, binds: &str) -> Option<String> {
    use sha2::Digest as _;
    let rendered = super::super::dispatch::render_for(run, step, 1, binds).ok()?;
    let digest = sha2::Sha256::digest(rendered.as_bytes());
    Some(format!("sha256:{}", &hex::encode(digest)[..16]))
}

/// The step of a human prompt succeeded with these outputs.
pub fn complete(
    run: &mut RunSnapshot,
    index: usize,
    outputs: BTreeMap<String, serde_json::Value>,
    now: Timestamp,
) -> Vec<Effect> {
    let source = run.prompts[index].source.clone();
    let Some(step_index) = run.steps.iter().position(|s| s.id == source) else { return Vec::new() };
    let record = &mut run.steps[step_index];
    record.state = StepState::Succeeded;
    record.outcome = Some(muster_schemas::message::Outcome::Succeeded);
    record.finished_at = Some(now);
    record.outputs = outputs;
    record.agent = run.prompts[index].outcome.as_ref().map(|o| o.by.clone());
    run.completed.push(source);
    schedule::advance(run, now)
}

/// The step of a human prompt failed (rejected, or its deadline passed): `on_failure` applies.
pub fn fail(run: &mut RunSnapshot, index: usize, why: String, now: Timestamp) -> Vec<Effect> {
    let source = run.prompts[index].source.clone();
    let Some(step_index) = run.steps.iter().position(|s| s.id == source) else { return Vec::new() };
    failure::fail_without_result(run, step_index, why, now)
}

/// A human step's deadline passed without a complete answer.
pub fn on_deadline(run: &mut RunSnapshot, index: usize, now: Timestamp) -> Vec<Effect> {
    let source = run.prompts[index].source.clone();
    let Some(step) = run.protocol.step(&source).cloned() else { return Vec::new() };
    let expire = |run: &mut RunSnapshot, option: Option<String>, note: String| {
        let prompt = &mut run.prompts[index];
        prompt.state = PromptState::Expired;
        prompt.outcome = Some(PromptOutcome { option, by: "deadline".into(), at: now, note: Some(note) });
    };
    match step.action() {
        Some(ActionRef::Decision(decision)) if decision.fallback.is_some() => {
            let fallback = decision.fallback.clone().unwrap_or_default();
            expire(run, Some(fallback.clone()), format!("no decision by the deadline; fallback `{fallback}` applied"));
            let mut out = notice::emit(run, index, "expired", now).into_iter().collect::<Vec<_>>();
            let effect = decision.options.iter().find(|o| o.id == fallback).map(|o| o.effect).unwrap_or_default();
            let outputs = BTreeMap::from([("choice".to_owned(), serde_json::json!(fallback))]);
            out.extend(complete(run, index, outputs, now));
            let what = format!("{}: fallback `{fallback}`", run.prompts[index].label());
            out.extend(effects::apply(run, index, effect, what, now));
            out
        }
        Some(ActionRef::Approval(approval)) if approval.on_timeout == ApprovalTimeout::Escalate => {
            // The approval stays open; the step's escalation asks people what to do.
            match &step.on_failure {
                Some(OnFailure::Escalate(escalation)) => super::raise(
                    run,
                    escalation,
                    PromptSubject::Step(source.clone()),
                    format!("approval `{source}` got no quorum by its deadline"),
                    false,
                    now,
                ),
                _ => Vec::new(),
            }
        }
        _ => {
            let label = run.prompts[index].label();
            expire(run, None, "no complete answer by the deadline".into());
            let mut out: Vec<Effect> = notice::emit(run, index, "expired", now).into_iter().collect();
            out.extend(fail(
                run,
                index,
                format!("{label} expired without an answer (nothing is approved by default)"),
                now,
            ));
            out
        }
    }
}
