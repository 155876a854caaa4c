//! Raising escalations: from the protocol's conditions, checked after every event, or
//! explicitly by `on_failure: {escalate}` and a gate's `escalate` outcome. Each escalation is
//! raised at most once per subject and run while it is open.

use super::super::Effect;
use super::notice;
use jiff::{SignedDuration, Timestamp};
use muster_schemas::message::PromptKind;
use muster_schemas::message::Verdict;
use muster_schemas::protocol::expr;
use muster_schemas::protocol::model::oversight::{EscalationCondition, GateOutcomeKind, Threshold};
use muster_schemas::protocol::model::{Escalation, Ladder, Responders};
use muster_schemas::run::{
    GateState, LadderStage, PromptRecord, PromptState, PromptSubject, RunSnapshot, RunState, StepState,
};

/// The ladder an escalation follows: its own, the protocol's, or seed 002's default.
pub fn ladder_of(run: &RunSnapshot, escalation: &Escalation) -> Ladder {
    escalation.ladder.clone().or_else(|| run.protocol.ladder.clone()).unwrap_or_default()
}

fn after(at: Timestamp, spec: std::time::Duration) -> Timestamp {
    SignedDuration::try_from(spec).ok().and_then(|d| at.checked_add(d).ok()).unwrap_or(Timestamp::MAX)
}

/// Raises escalation `id` about `subject`. `blocking` makes the run wait even when the
/// escalation itself does not say so (a failed step or a gate that escalates has nothing to
/// continue with). Nothing happens if the same escalation is already open for that subject.
pub fn raise(
    run: &mut RunSnapshot,
    id: &str,
    subject: PromptSubject,
    what_happened: String,
    blocking: bool,
    now: Timestamp,
) -> Vec<Effect> {
    let Some(escalation) = run.protocol.escalations.iter().find(|e| e.id == id).cloned() else {
        // The checker refuses protocols naming unknown escalations; be safe anyway.
        run.reason = Some(format!("escalation `{id}` is not declared; the run cannot ask anybody"));
        return Vec::new();
    };
    let already = run
        .prompts
        .iter()
        .any(|p| p.kind == PromptKind::Escalation && p.source == id && p.subject == subject && p.state.is_open());
    if already {
        return Vec::new();
    }
    let ladder = ladder_of(run, &escalation);
    let fallback_at = after(now, ladder.fallback.0);
    let text = notice::context(
        run,
        &subject,
        &what_happened,
        &escalation.options,
        escalation.default.as_deref(),
        Some((&escalation.fallback, fallback_at)),
    );
    let blocking = blocking || escalation.blocking;
    let first = first_responders(&escalation.responders);
    run.prompts.push(PromptRecord {
        number: 0,
        kind: PromptKind::Escalation,
        source: id.to_owned(),
        subject,
        state: PromptState::Open,
        blocking,
        raised_at: now,
        title: escalation.title.clone().unwrap_or_else(|| id.to_owned()),
        text,
        stage: LadderStage::Triage,
        due: Some(after(now, ladder.triage.0)),
        notified: first,
        acknowledged_by: None,
        outcome: None,
        fields: Default::default(),
        approvals: Vec::new(),
        binding: None,
        notices: 0,
        last_notice: None,
    });
    if blocking && !run.state.is_terminal() {
        run.state = RunState::Waiting;
    }
    Vec::new()
}

/// Who is notified first: the first responder group and every listed user.
fn first_responders(responders: &Responders) -> Vec<String> {
    responders.groups.iter().take(1).chain(&responders.users).cloned().collect()
}

/// Who may answer an escalation prompt.
pub fn responders(run: &RunSnapshot, prompt: &PromptRecord) -> Responders {
    run.protocol.escalations.iter().find(|e| e.id == prompt.source).map(|e| e.responders.clone()).unwrap_or_default()
}

/// Raises every escalation whose condition holds now.
pub fn check_conditions(run: &mut RunSnapshot, now: Timestamp) -> Vec<Effect> {
    let mut effects = Vec::new();
    let escalations = run.protocol.escalations.clone();
    for escalation in &escalations {
        let Some(condition) = &escalation.when else { continue };
        if let Some((subject, what)) = holds(run, condition, now)
            && !raised_before(run, &escalation.id, &subject)
        {
            effects.extend(raise(run, &escalation.id, subject, what, false, now));
        }
    }
    effects
}

/// Conditions raise once per run and subject: a second raise needs a new run.
fn raised_before(run: &RunSnapshot, id: &str, subject: &PromptSubject) -> bool {
    run.prompts.iter().any(|p| p.kind == PromptKind::Escalation && p.source == id && &p.subject == subject)
}

/// Whether a condition holds, with its subject and what happened in words.
fn holds(run: &RunSnapshot, condition: &EscalationCondition, now: Timestamp) -> Option<(PromptSubject, String)> {
    match condition {
        EscalationCondition::RunningLonger { target, threshold } => {
            let (subject, started) = running_since(run, target)?;
            let limit = threshold_of(run, threshold)?;
            let deadline = after(started, limit);
            (now >= deadline).then(|| {
                let ran = SignedDuration::from_secs(now.duration_since(started).as_secs());
                (
                    subject,
                    format!(
                        "`{target}` has been running for {ran:#}, past its threshold of {:#}",
                        SignedDuration::from_secs(limit.as_secs() as i64)
                    ),
                )
            })
        }
        EscalationCondition::Expr(source) => {
            let variables = super::super::vars::for_conditions(run);
            let holds = expr::compile(source).and_then(|c| c.evaluate_bool(&variables)).unwrap_or(false);
            holds.then(|| (PromptSubject::Run, format!("the condition `{source}` holds")))
        }
        EscalationCondition::ConsecutiveFailures { step, count } => {
            let record = run.steps.iter().find(|s| &s.id == step)?;
            (record.failures >= *count && *count > 0).then(|| {
                (PromptSubject::Step(step.clone()), format!("step `{step}` failed {} times in a row", record.failures))
            })
        }
        EscalationCondition::Gate { gate, outcome } => {
            let record = run.gates.iter().find(|g| &g.id == gate)?;
            let wanted = match outcome {
                GateOutcomeKind::Fail => Verdict::Fail,
                GateOutcomeKind::Warn => Verdict::Warn,
                GateOutcomeKind::Inconclusive => Verdict::Inconclusive,
            };
            (record.verdict == Some(wanted) && record.state != GateState::Evaluating)
                .then(|| (PromptSubject::Gate(gate.clone()), format!("gate `{gate}` judged {}", wanted.as_str())))
        }
    }
}

/// When a `running_longer` target started, if it is still running: a step, a phase (its first
/// step's start while any of its steps is unfinished), or the run.
fn running_since(run: &RunSnapshot, target: &str) -> Option<(PromptSubject, Timestamp)> {
    if run.state.is_terminal() {
        return None;
    }
    if target == "run" {
        return Some((PromptSubject::Run, run.started_at));
    }
    if let Some(step) = run.steps.iter().find(|s| s.id == target) {
        let live = matches!(step.state, StepState::Running) || (step.state == StepState::Pending && step.attempt > 0);
        return live.then_some(()).and(step.started_at).map(|at| (PromptSubject::Step(target.to_owned()), at));
    }
    let phase = run.protocol.phases.iter().find(|p| p.id == target)?;
    let ids: Vec<&str> = phase.steps.iter().map(|s| s.id.as_str()).collect();
    let records: Vec<_> = run.steps.iter().filter(|s| ids.contains(&s.id.as_str())).collect();
    let unfinished = records.iter().any(|s| matches!(s.state, StepState::Pending | StepState::Running));
    let started = records.iter().filter_map(|s| s.started_at).min()?;
    unfinished.then(|| (PromptSubject::Phase(target.to_owned()), started))
}

fn threshold_of(run: &RunSnapshot, threshold: &Threshold) -> Option<std::time::Duration> {
    match threshold {
        Threshold::Fixed(d) => Some(d.0),
        Threshold::ByInput(by) => {
            let value = run.inputs.get(&by.input);
            value.and_then(|v| by.values.get(v)).or(by.default.as_ref()).map(|d| d.0)
        }
    }
}

/// When `running_longer` conditions not yet raised will next hold, so a timer wakes the run.
pub fn thresholds_ahead(run: &RunSnapshot, now: Timestamp) -> impl Iterator<Item = Timestamp> + '_ {
    run.protocol.escalations.iter().filter_map(move |escalation| {
        let Some(EscalationCondition::RunningLonger { target, threshold }) = &escalation.when else { return None };
        let (subject, started) = running_since(run, target)?;
        if raised_before(run, &escalation.id, &subject) {
            return None;
        }
        let at = after(started, threshold_of(run, threshold)?);
        (at > now).then_some(at)
    })
}
