//! What people see: the context package written when a prompt is raised, and one notice per
//! ladder stage or answer, published for the bridge and the CLI.

use super::super::Effect;
use jiff::Timestamp;
use muster_schemas::message::{NoticeOption, PromptKind, PromptNotice};
use muster_schemas::protocol::model::ActionRef;
use muster_schemas::protocol::model::DecisionOption;
use muster_schemas::protocol::model::action::HasAction;
use muster_schemas::run::{PromptSubject, RunSnapshot};
use std::fmt::Write as _;

/// Lines of an output tail shown in a notice.
const TAIL_LINES: usize = 8;

/// Builds the notice for prompt `index` at `stage`, remembers it as the latest, and returns the
/// effect that publishes it. Nothing before the prompt has a number (the first notice is sent
/// when it gets one).
pub fn emit(run: &mut RunSnapshot, index: usize, stage: &str, _now: Timestamp) -> Option<Effect> {
    let options = options_of(run, index);
    let channel = channel_of(run, index);
    let prompt = run.prompts.get_mut(index)?;
    if prompt.number == 0 {
        return None;
    }
    prompt.notices += 1;
    let notice = PromptNotice {
        run_id: run.id,
        prompt: prompt.label(),
        kind: prompt.kind,
        stage: stage.to_owned(),
        severity: run
            .protocol
            .escalations
            .iter()
            .find(|e| e.id == prompt.source && prompt.kind == PromptKind::Escalation)
            .map(|e| e.severity),
        title: prompt.title.clone(),
        text: with_status(&prompt.text, prompt),
        options,
        responders: prompt.notified.clone(),
        channel,
        deadline: prompt.due,
    };
    prompt.last_notice = Some(notice.clone());
    Some(Effect::Notify { index, seq: prompt.notices, notice: Box::new(notice) })
}

/// The context text followed by where the prompt stands now.
fn with_status(text: &str, prompt: &muster_schemas::run::PromptRecord) -> String {
    let mut out = text.to_owned();
    if let Some(by) = &prompt.acknowledged_by {
        let _ = write!(out, "\nAcknowledged by {by}.");
    }
    if let Some(outcome) = &prompt.outcome {
        let option = outcome.option.as_deref().map(|o| format!(" `{o}`")).unwrap_or_default();
        let note = outcome.note.as_deref().map(|n| format!(" — {n}")).unwrap_or_default();
        let _ = write!(out, "\n{}{option} by {} at {}{note}.", prompt.state.as_str(), outcome.by, outcome.at);
    }
    if !prompt.fields.is_empty() {
        let filled: Vec<String> = prompt.fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = write!(out, "\nFilled so far: {}.", filled.join(", "));
    }
    if !prompt.approvals.is_empty() {
        let _ = write!(out, "\nApproved so far by: {}.", prompt.approvals.join(", "));
    }
    out
}

/// The options a prompt offers, with what each does.
pub fn options_of(run: &RunSnapshot, index: usize) -> Vec<NoticeOption> {
    let Some(prompt) = run.prompts.get(index) else { return Vec::new() };
    let described = |options: &[DecisionOption]| {
        options
            .iter()
            .map(|o| NoticeOption {
                id: o.id.clone(),
                description: o.description.clone(),
                effect: serde_json::to_value(o.effect)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
            })
            .collect()
    };
    match prompt.kind {
        PromptKind::Escalation => run
            .protocol
            .escalations
            .iter()
            .find(|e| e.id == prompt.source)
            .map(|e| described(&e.options))
            .unwrap_or_default(),
        PromptKind::Decision => match run.protocol.step(&prompt.source).and_then(|s| s.action()) {
            Some(ActionRef::Decision(decision)) => described(&decision.options),
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

/// Where the notice should go: the escalation's or protocol's ladder channel, else the channel
/// of the first responder group.
fn channel_of(run: &RunSnapshot, index: usize) -> Option<String> {
    let prompt = run.prompts.get(index)?;
    let ladder_channel = run
        .protocol
        .escalations
        .iter()
        .find(|e| e.id == prompt.source && prompt.kind == PromptKind::Escalation)
        .and_then(|e| e.ladder.as_ref())
        .or(run.protocol.ladder.as_ref())
        .and_then(|l| l.channel.clone());
    ladder_channel.or_else(|| {
        let responders = super::responders(run, prompt);
        responders.groups.iter().find_map(|g| run.protocol.groups.get(g).and_then(|g| g.channel.clone()))
    })
}

/// The context package: what happened, the subject's state and output tails, gate evidence,
/// the options and what each does, the default, and the fallback with when it fires.
pub fn context(
    run: &RunSnapshot,
    subject: &PromptSubject,
    what_happened: &str,
    options: &[DecisionOption],
    default: Option<&str>,
    fallback: Option<(&str, Timestamp)>,
) -> String {
    let mut out = format!(
        "What happened: {what_happened}\nRun {} of protocol `{}` ({}).",
        run.id,
        run.protocol.id,
        run.state.as_str()
    );
    match subject {
        PromptSubject::Step(id) => {
            if let Some(step) = run.steps.iter().find(|s| &s.id == id) {
                let _ = write!(
                    out,
                    "\nStep `{id}` ({}) is {}, attempt {}",
                    step.owner,
                    step.state.as_str(),
                    step.attempt.max(1)
                );
                if let Some(code) = step.exit_code {
                    let _ = write!(out, ", exit code {code}");
                }
                out.push('.');
                for (name, tail) in [("stderr", &step.stderr_tail), ("stdout", &step.stdout_tail)] {
                    let lines: Vec<&str> = tail.lines().collect();
                    if !lines.is_empty() {
                        let shown = &lines[lines.len().saturating_sub(TAIL_LINES)..];
                        let _ = write!(out, "\nLast {name} lines:\n  {}", shown.join("\n  "));
                    }
                }
            }
        }
        PromptSubject::Gate(id) => {
            if let Some(gate) = run.gates.iter().find(|g| &g.id == id) {
                let verdict = gate.verdict.map(|v| v.as_str()).unwrap_or("none");
                let _ = write!(out, "\nGate `{id}`: verdict {verdict}.");
                for evidence in &gate.evidence {
                    let mark = match evidence.met {
                        Some(true) => "met",
                        Some(false) => "NOT met",
                        None => "could not be evaluated",
                    };
                    let _ = write!(out, "\n  - {}: {mark} ({})", evidence.name, evidence.detail);
                }
            }
        }
        PromptSubject::Phase(id) => {
            let _ = write!(out, "\nPhase `{id}`.");
        }
        PromptSubject::Run => {}
    }
    if !options.is_empty() {
        out.push_str("\nOptions:");
        for option in options {
            let effect = serde_json::to_value(option.effect)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            let recommended = if default == Some(option.id.as_str()) { " (recommended)" } else { "" };
            let _ = write!(out, "\n  - {}{recommended}: {} [does: {effect}]", option.id, option.description);
        }
    }
    if let Some((fallback, at)) = fallback {
        let _ = write!(out, "\nWithout a decision, `{fallback}` runs at {at}. Nothing is approved by default.");
    }
    out
}
