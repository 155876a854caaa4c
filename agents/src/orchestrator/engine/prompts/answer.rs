//! What a person's answer does. The service has already checked the signature, the nonce and
//! that this person may answer this prompt; here the answer is checked against the prompt
//! itself (open? a valid option? valid field values? the plan still the one approved?) and
//! applied. Every refusal says exactly why, and changes nothing.

use super::super::Effect;
use super::{effects, human, notice};
use jiff::Timestamp;
use muster_schemas::answer::AnswerAction;
use muster_schemas::message::PromptKind;
use muster_schemas::protocol::inputs::check_value;
use muster_schemas::protocol::model::ActionRef;
use muster_schemas::protocol::model::action::HasAction;
use muster_schemas::protocol::model::action::OptionEffect;
use muster_schemas::run::{LadderStage, PromptOutcome, PromptState, RunSnapshot};
use std::collections::BTreeMap;

/// The result of an answer that changed the run.
#[derive(Debug)]
pub struct Answered {
    /// Whether the answer was taken. An answer can be refused *and* change the run: approving
    /// a plan that changed since it was asked voids the earlier approvals.
    pub accepted: bool,
    /// What to tell the person.
    pub message: String,
    /// What the service must do after writing the run.
    pub effects: Vec<Effect>,
}

fn taken(message: String, effects: Vec<Effect>) -> Result<Answered, String> {
    Ok(Answered { accepted: true, message, effects })
}

/// Applies `action` by `person` to the prompt named `name`. `Err` refuses it and changes
/// nothing; `Ok` says what to tell the person.
pub fn apply(
    run: &mut RunSnapshot,
    name: &str,
    action: &AnswerAction,
    person: &str,
    note: Option<&str>,
    now: Timestamp,
) -> Result<Answered, String> {
    let index = super::find(run, name).ok_or_else(|| unknown(run, name))?;
    let label = run.prompts[index].label();
    closed_check(run, index)?;
    let note = note.map(str::to_owned);
    match (run.prompts[index].kind, action) {
        (_, AnswerAction::Acknowledge) => {
            let prompt = &mut run.prompts[index];
            if let Some(by) = &prompt.acknowledged_by {
                return Err(format!("{label} was already acknowledged by {by}"));
            }
            prompt.acknowledged_by = Some(person.to_owned());
            prompt.state = PromptState::Acknowledged;
            let effects = notice::emit(run, index, "acknowledged", now).into_iter().collect();
            taken(format!("{label} acknowledged by {person}; a decision is still needed"), effects)
        }
        (PromptKind::Escalation, AnswerAction::Choose { option }) => {
            let effect = option_effect(run, index, option)?;
            close(run, index, PromptState::Answered, Some(option.clone()), person, note, now);
            let what = format!("{label}: {person} chose `{option}`");
            let mut effects = effects::apply(run, index, effect, what.clone(), now);
            effects.extend(notice::emit(run, index, "answered", now));
            taken(what, effects)
        }
        (PromptKind::Escalation, AnswerAction::Reject { reason }) => {
            let fallback = fallback_of(run, index);
            let effect = option_effect(run, index, &fallback)?;
            close(run, index, PromptState::Rejected, Some(fallback.clone()), person, Some(reason.clone()), now);
            let what = format!("{label}: {person} rejected it ({reason}); the fallback `{fallback}` applies");
            let mut effects = effects::apply(run, index, effect, what.clone(), now);
            effects.extend(notice::emit(run, index, "rejected", now));
            taken(what, effects)
        }
        (PromptKind::Decision, AnswerAction::Choose { option }) => {
            let effect = option_effect(run, index, option)?;
            close(run, index, PromptState::Answered, Some(option.clone()), person, note, now);
            let what = format!("{label}: {person} chose `{option}`");
            let mut effects: Vec<Effect> = notice::emit(run, index, "answered", now).into_iter().collect();
            let outputs = BTreeMap::from([("choice".to_owned(), serde_json::json!(option))]);
            effects.extend(human::complete(run, index, outputs, now));
            effects.extend(effects::apply(run, index, effect, what.clone(), now));
            taken(what, effects)
        }
        (PromptKind::Form, AnswerAction::Fill { fields }) => fill(run, index, fields, person, note, now),
        (PromptKind::Approval, AnswerAction::Approve { binding }) => {
            approve(run, index, binding.as_deref(), person, note, now)
        }
        (PromptKind::Approval, AnswerAction::Reject { reason }) => {
            close(run, index, PromptState::Rejected, None, person, Some(reason.clone()), now);
            let what = format!("{label}: rejected by {person} ({reason})");
            let mut effects: Vec<Effect> = notice::emit(run, index, "rejected", now).into_iter().collect();
            effects.extend(human::fail(run, index, what.clone(), now));
            taken(what, effects)
        }
        (PromptKind::Manual, AnswerAction::Confirm) => {
            close(run, index, PromptState::Answered, None, person, note, now);
            let what = format!("{label}: confirmed done by {person}");
            let mut effects: Vec<Effect> = notice::emit(run, index, "answered", now).into_iter().collect();
            let outputs = BTreeMap::from([("confirmed_by".to_owned(), serde_json::json!(person))]);
            effects.extend(human::complete(run, index, outputs, now));
            taken(what, effects)
        }
        (kind, _) => Err(format!("{label} is {} {}: {}", article(kind), kind_name(kind), how_to_answer(kind))),
    }
}

fn unknown(run: &RunSnapshot, name: &str) -> String {
    let open: Vec<String> =
        run.prompts.iter().filter(|p| p.state.is_open() && p.number != 0).map(|p| p.label()).collect();
    format!(
        "run {} has no prompt `{name}`; open: {}",
        run.id,
        if open.is_empty() { "none".to_owned() } else { open.join(", ") }
    )
}

/// Refuses answers to a prompt that is no longer open, saying how it ended.
fn closed_check(run: &RunSnapshot, index: usize) -> Result<(), String> {
    let prompt = &run.prompts[index];
    if prompt.state.is_open() {
        return Ok(());
    }
    let label = prompt.label();
    let Some(outcome) = &prompt.outcome else { return Err(format!("{label} is {}", prompt.state.as_str())) };
    let option = outcome.option.as_deref().map(|o| format!(" `{o}`")).unwrap_or_default();
    Err(match prompt.state {
        PromptState::Expired => format!("{label} expired at {}; the fallback{option} was applied", outcome.at),
        PromptState::Withdrawn => format!("{label} was withdrawn: {}", outcome.note.clone().unwrap_or_default()),
        state => format!("{label} was already {}{option} by {} at {}", state.as_str(), outcome.by, outcome.at),
    })
}

fn close(
    run: &mut RunSnapshot,
    index: usize,
    state: PromptState,
    option: Option<String>,
    by: &str,
    note: Option<String>,
    now: Timestamp,
) {
    let follow_up = follow_up_at(run, index);
    let prompt = &mut run.prompts[index];
    prompt.state = state;
    prompt.outcome = Some(PromptOutcome { option, by: by.to_owned(), at: now, note });
    prompt.stage = if follow_up.is_some() { LadderStage::FollowUp } else { LadderStage::Done };
    prompt.due = follow_up;
}

/// Escalations still expect a follow-up (root-cause analysis) after they close.
fn follow_up_at(run: &RunSnapshot, index: usize) -> Option<Timestamp> {
    let prompt = &run.prompts[index];
    if prompt.kind != PromptKind::Escalation {
        return None;
    }
    let escalation = run.protocol.escalations.iter().find(|e| e.id == prompt.source)?;
    let ladder = super::raise::ladder_of(run, escalation);
    jiff::SignedDuration::try_from(ladder.follow_up.0).ok().and_then(|d| prompt.raised_at.checked_add(d).ok())
}

fn fallback_of(run: &RunSnapshot, index: usize) -> String {
    run.protocol
        .escalations
        .iter()
        .find(|e| e.id == run.prompts[index].source)
        .map(|e| e.fallback.clone())
        .unwrap_or_default()
}

/// The effect of `option`, or a refusal listing the valid options.
fn option_effect(run: &RunSnapshot, index: usize, option: &str) -> Result<OptionEffect, String> {
    let prompt = &run.prompts[index];
    let options = match prompt.kind {
        PromptKind::Escalation => {
            run.protocol.escalations.iter().find(|e| e.id == prompt.source).map(|e| e.options.clone())
        }
        PromptKind::Decision => match run.protocol.step(&prompt.source).and_then(|s| s.action()) {
            Some(ActionRef::Decision(d)) => Some(d.options.clone()),
            _ => None,
        },
        _ => None,
    }
    .unwrap_or_default();
    options.iter().find(|o| o.id == option).map(|o| o.effect).ok_or_else(|| {
        let valid: Vec<&str> = options.iter().map(|o| o.id.as_str()).collect();
        format!("`{option}` is not an option of {}; valid options: {}", prompt.label(), valid.join(", "))
    })
}

/// Fills form fields: every value checked against its field first (all or nothing), partial
/// answers kept, the step done once every required field has a value.
fn fill(
    run: &mut RunSnapshot,
    index: usize,
    given: &BTreeMap<String, String>,
    person: &str,
    note: Option<String>,
    now: Timestamp,
) -> Result<Answered, String> {
    let label = run.prompts[index].label();
    let Some(ActionRef::Form(form)) = run.protocol.step(&run.prompts[index].source).and_then(|s| s.action()) else {
        return Err(format!("{label} is not a form"));
    };
    let form = form.clone();
    if given.is_empty() {
        return Err(format!(
            "give at least one field of {label}: {}",
            form.fields.keys().cloned().collect::<Vec<_>>().join(", ")
        ));
    }
    let mut problems = Vec::new();
    for (name, value) in given {
        match form.fields.get(name) {
            None => problems.push(
                match muster_schemas::protocol::load::did_you_mean(name, form.fields.keys().map(String::as_str)) {
                    Some(best) => format!("{label} has no field `{name}` (did you mean `{best}`?)"),
                    None => format!(
                        "{label} has no field `{name}`; fields: {}",
                        form.fields.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                },
            ),
            Some(spec) => {
                if let Err(problem) = check_value(spec, value) {
                    problems.push(format!("field `{name}` {problem}"));
                }
            }
        }
    }
    if !problems.is_empty() {
        return Err(format!("nothing was kept: {}", problems.join("; ")));
    }
    run.prompts[index].fields.extend(given.clone());
    let missing: Vec<String> = form
        .fields
        .iter()
        .filter(|(name, spec)| spec.required && !run.prompts[index].fields.contains_key(*name))
        .map(|(name, _)| name.clone())
        .collect();
    if !missing.is_empty() {
        let effects = notice::emit(run, index, "progress", now).into_iter().collect();
        return taken(
            format!("{label}: kept {} field(s) from {person}; still missing: {}", given.len(), missing.join(", ")),
            effects,
        );
    }
    let outputs: BTreeMap<String, serde_json::Value> = run.prompts[index]
        .fields
        .iter()
        .map(|(name, value)| (name.clone(), typed(form.fields.get(name).map(|s| s.kind.as_str()), value)))
        .collect();
    close(run, index, PromptState::Answered, None, person, note, now);
    let mut effects: Vec<Effect> = notice::emit(run, index, "answered", now).into_iter().collect();
    effects.extend(human::complete(run, index, outputs, now));
    taken(format!("{label}: complete, the last field(s) from {person}"), effects)
}

/// A form value as the JSON type its field declares, for CEL and templates.
fn typed(kind: Option<&str>, value: &str) -> serde_json::Value {
    match kind {
        Some("int") => value.parse::<i64>().map(serde_json::Value::from).unwrap_or_else(|_| value.into()),
        Some("number") => value.parse::<f64>().map(serde_json::Value::from).unwrap_or_else(|_| value.into()),
        Some("bool") => value.parse::<bool>().map(serde_json::Value::from).unwrap_or_else(|_| value.into()),
        _ => value.into(),
    }
}

/// One approval: not by the requester unless allowed, only for what was asked (the binding),
/// once per person; the step is done at quorum.
fn approve(
    run: &mut RunSnapshot,
    index: usize,
    binding: Option<&str>,
    person: &str,
    note: Option<String>,
    now: Timestamp,
) -> Result<Answered, String> {
    let label = run.prompts[index].label();
    let source = run.prompts[index].source.clone();
    let Some(ActionRef::Approval(approval)) = run.protocol.step(&source).and_then(|s| s.action()) else {
        return Err(format!("{label} is not an approval"));
    };
    let approval = approval.clone();
    if !approval.allow_requester && run.requested_by.as_deref() == Some(person) {
        return Err(format!("{person} started this run and may not approve it ({label} needs someone else)"));
    }
    if run.prompts[index].approvals.iter().any(|a| a == person) {
        return Err(format!(
            "{person} has already approved {label}; it needs {} different approver(s)",
            approval.quorum
        ));
    }
    if let Some(asked) = run.prompts[index].binding.clone() {
        let now_bound = approval.binds.as_deref().and_then(|b| human::binding_of(run, &source, b));
        if now_bound.as_deref() != Some(asked.as_str()) {
            let changed = now_bound.unwrap_or_else(|| "unknown".into());
            let prompt = &mut run.prompts[index];
            prompt.approvals.clear();
            prompt.binding = Some(changed.clone());
            let effects = notice::emit(run, index, "voided", now).into_iter().collect::<Vec<_>>();
            let message = format!(
                "what {label} approves changed from {asked} to {changed}; earlier approvals are void, review it again and approve {changed}"
            );
            return Ok(Answered { accepted: false, message, effects });
        }
        if binding != Some(asked.as_str()) {
            return Err(format!(
                "{label} is bound to {asked}: approve with that value once you have checked it is what you reviewed"
            ));
        }
    }
    run.prompts[index].approvals.push(person.to_owned());
    let have = run.prompts[index].approvals.len() as u32;
    if have < approval.quorum {
        let effects = notice::emit(run, index, "progress", now).into_iter().collect();
        return taken(format!("{label}: approved by {person} ({have} of {})", approval.quorum), effects);
    }
    let approvers = run.prompts[index].approvals.clone();
    let binding = run.prompts[index].binding.clone();
    close(run, index, PromptState::Answered, None, person, note, now);
    let mut outputs = BTreeMap::from([("approved_by".to_owned(), serde_json::json!(approvers))]);
    if let Some(binding) = binding {
        outputs.insert("binding".to_owned(), serde_json::json!(binding));
    }
    let mut effects: Vec<Effect> = notice::emit(run, index, "answered", now).into_iter().collect();
    effects.extend(human::complete(run, index, outputs, now));
    taken(format!("{label}: approved ({have} of {}), the step continues", approval.quorum), effects)
}

fn kind_name(kind: PromptKind) -> &'static str {
    match kind {
        PromptKind::Escalation => "escalation",
        PromptKind::Form => "form",
        PromptKind::Approval => "approval",
        PromptKind::Decision => "decision",
        PromptKind::Manual => "manual step",
    }
}

fn article(kind: PromptKind) -> &'static str {
    match kind {
        PromptKind::Escalation | PromptKind::Approval => "an",
        _ => "a",
    }
}

fn how_to_answer(kind: PromptKind) -> &'static str {
    match kind {
        PromptKind::Escalation => "answer with one of its options, ack it, or reject it",
        PromptKind::Form => "fill its fields (field=value ...)",
        PromptKind::Approval => "approve or reject it",
        PromptKind::Decision => "answer with one of its options",
        PromptKind::Manual => "confirm it done when the work is done",
    }
}
