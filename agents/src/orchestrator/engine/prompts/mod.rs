//! People in the loop: escalations (`ESC-n`) and human steps (`F-n` forms, `A-n` approvals,
//! `D-n` decisions, `M-n` manual steps), as [`PromptRecord`]s in the run snapshot.
//!
//! - [`raise`]: escalation conditions (a target running longer than its threshold, a CEL
//!   threshold, consecutive failures, a gate outcome) and explicit raises (`on_failure:
//!   {escalate}`, a gate's `escalate`);
//! - [`human`]: a human step becomes a prompt instead of work for an agent;
//! - [`ladder`]: the deadlines — triage (else the next responder group is notified), decide,
//!   fallback (the declared fallback runs; nothing is ever approved by default), follow-up;
//! - [`answer`]: what a person's (already verified and authorised) answer does;
//! - [`effects`]: what an option does to the run (continue, retry, skip, rollback, abort);
//! - [`notice`]: the context package and the notices people see.
//!
//! A prompt is created with number 0; before the transition that created it is written, the
//! service allocates its short number (once per prompt, so a retried write gets the same one)
//! and calls [`number_prompt`], which emits the first notice. Everything else happens inside
//! ordinary transitions.

mod answer;
mod effects;
mod human;
mod ladder;
mod notice;
mod raise;

use super::Effect;
use jiff::Timestamp;
use muster_schemas::protocol::model::Responders;
use muster_schemas::run::{PromptRecord, RunSnapshot};

pub use answer::{Answered, apply as apply_answer};
pub use human::{is_human, open as open_human_step};
pub use raise::raise;

/// Checks escalation conditions, runs due ladder stages, withdraws prompts the run no longer
/// waits for, and asks to be woken for the next deadline. Called after every event.
pub fn oversee(run: &mut RunSnapshot, now: Timestamp) -> Vec<Effect> {
    let mut effects = ladder::withdraw_stale(run, now);
    if !run.state.is_terminal() {
        effects.extend(raise::check_conditions(run, now));
    }
    effects.extend(ladder::run_due(run, now));
    effects.extend(next_due(run, now).map(Effect::WakeAt));
    effects
}

/// The earliest deadline of any prompt or escalation threshold still ahead.
pub fn next_due(run: &RunSnapshot, now: Timestamp) -> Option<Timestamp> {
    let ladder = run.prompts.iter().filter_map(|p| p.due);
    ladder.chain(raise::thresholds_ahead(run, now)).min()
}

/// The service allocated `number` for prompt `index`: record it and publish the first notice.
pub fn number_prompt(run: &mut RunSnapshot, index: usize, number: u64, now: Timestamp) -> super::Applied {
    let Some(prompt) = run.prompts.get_mut(index) else {
        return super::Applied::Ignored(format!("run has no prompt #{index}"));
    };
    if prompt.number != 0 {
        return super::Applied::Ignored(format!("prompt #{index} is already {}", prompt.label()));
    }
    prompt.number = number;
    let stage = if prompt.state.is_open() { "raised" } else { "closed" };
    super::Applied::Changed(notice::emit(run, index, stage, now).into_iter().collect())
}

/// Effects that a snapshot implies after a crash: the latest notice of each prompt (its
/// message id makes a repeat a duplicate).
pub fn resume(run: &RunSnapshot) -> Vec<Effect> {
    let mut effects = Vec::new();
    for (index, prompt) in run.prompts.iter().enumerate() {
        if let Some(last) = &prompt.last_notice {
            effects.push(Effect::Notify { index, seq: prompt.notices, notice: Box::new(last.clone()) });
        }
    }
    effects
}

/// Prompts still without a short number.
pub fn unnumbered(run: &RunSnapshot) -> Vec<usize> {
    (0..run.prompts.len()).filter(|&i| run.prompts[i].number == 0).collect()
}

/// The prompt a person names: `ESC-12` / `F-3` (by number), or the source id (an escalation
/// or step id) when it is open.
pub fn find(run: &RunSnapshot, name: &str) -> Option<usize> {
    let upper = name.to_ascii_uppercase();
    run.prompts
        .iter()
        .position(|p| p.number != 0 && p.label() == upper)
        .or_else(|| run.prompts.iter().rposition(|p| p.source == name && p.state.is_open()))
}

/// Who may answer a prompt, as the protocol says (an empty set: nobody).
pub fn responders(run: &RunSnapshot, prompt: &PromptRecord) -> Responders {
    human::responders(run, prompt).unwrap_or_else(|| raise::responders(run, prompt))
}

#[cfg(test)]
mod tests;
