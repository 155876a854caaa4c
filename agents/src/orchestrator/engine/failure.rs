//! What a failed attempt leads to, in this order: a retry of the same action (within
//! `max_attempts`, when `retry_if` allows, after a backoff), then the next alternative whose
//! condition holds (each tried once), then the step's `on_failure`: fail the run (default),
//! carry on without it, or roll the run back.

use super::{Effect, describe, finish, rollback, schedule, vars};
use jiff::{SignedDuration, Timestamp};
use muster_schemas::message::{Outcome, StepResult};
use muster_schemas::protocol::expr;
use muster_schemas::protocol::model::policy::Backoff;
use muster_schemas::protocol::model::{OnFailure, RetryPolicy, Step};
use muster_schemas::run::{RunSnapshot, RunState, StepState};
use std::time::Duration;

const DEFAULT_INITIAL: Duration = Duration::from_secs(10);
const DEFAULT_MAX: Duration = Duration::from_secs(300);
const DEFAULT_JITTER: f64 = 0.2;

/// A result said the attempt failed.
pub fn on_failure(run: &mut RunSnapshot, index: usize, result: &StepResult, now: Timestamp) -> Vec<Effect> {
    let Some(step) = run.protocol.step(&run.steps[index].id).cloned() else {
        return give_up(run, index, "step missing from protocol".to_owned(), None, now);
    };
    let record = &mut run.steps[index];
    record.failures += 1;
    let mut what = describe(result);
    if record.alternative.is_none()
        && let Some(policy) = &step.retry
        && record.tries < policy.max_attempts
    {
        match retry_allowed(policy, result) {
            Ok(true) => {
                let delay = backoff(policy, record.tries, &format!("{}/{}/{}", run.id, record.id, record.attempt));
                let at = now.checked_add(delay).unwrap_or(now);
                record.state = StepState::Pending;
                record.retry_at = Some(at);
                record.note = Some(format!(
                    "attempt {} {what}; retrying after {}",
                    record.tries,
                    SignedDuration::try_from(delay).map(|d| format!("{d:#}")).unwrap_or_default()
                ));
                return vec![Effect::WakeAt(at)];
            }
            Ok(false) => what.push_str("; retry_if is false, not retrying"),
            Err(problem) => what.push_str(&format!("; retry_if could not be evaluated ({problem}), not retrying")),
        }
    }
    if let Some(next) = next_alternative(run, index, &step) {
        let record = &mut run.steps[index];
        record.alternative = Some(next.clone());
        record.tries = 0;
        record.state = StepState::Pending;
        record.note = Some(format!("{what}; trying alternative `{next}`"));
        return schedule::advance(run, now);
    }
    give_up(run, index, what, step.on_failure.clone(), now)
}

/// The step fails before any work ran (its condition or its action could not be prepared).
pub fn fail_without_result(run: &mut RunSnapshot, index: usize, problem: String, now: Timestamp) -> Vec<Effect> {
    let on_failure = run.protocol.step(&run.steps[index].id).and_then(|s| s.on_failure.clone());
    run.steps[index].stderr_tail = problem.clone();
    give_up(run, index, problem, on_failure, now)
}

/// Retries and alternatives are exhausted: apply `on_failure`.
fn give_up(
    run: &mut RunSnapshot,
    index: usize,
    what: String,
    on_failure: Option<OnFailure>,
    now: Timestamp,
) -> Vec<Effect> {
    let record = &mut run.steps[index];
    record.state = StepState::Failed;
    let id = record.id.clone();
    let reason = format!("step `{id}` {what}");
    match on_failure.unwrap_or(OnFailure::Fail) {
        OnFailure::Continue => {
            record.note = Some(format!("{what}; continuing (on_failure: continue)"));
            schedule::advance(run, now)
        }
        OnFailure::Rollback => {
            record.note = Some(format!("{what}; rolling back"));
            rollback::begin(run, reason, now)
        }
        OnFailure::Escalate(escalation) => {
            record.note = Some(format!("{what}; escalated to people ({escalation})"));
            let subject = muster_schemas::run::PromptSubject::Step(id);
            super::prompts::raise(run, &escalation, subject, reason, true, now)
        }
        OnFailure::Fail => {
            record.note = Some(what);
            finish(run, RunState::Failed, Some(reason), now)
        }
    }
}

fn retry_allowed(policy: &RetryPolicy, result: &StepResult) -> Result<bool, String> {
    let Some(source) = &policy.retry_if else { return Ok(true) };
    let outcome = serde_json::to_value(result.outcome).unwrap_or_default();
    let attempt = serde_json::json!({
        "exit_code": result.exit_code,
        "outcome": outcome,
        "stderr": result.stderr_tail,
        "number": result.attempt,
        "timed_out": result.outcome == Outcome::TimedOut,
    });
    let variables = [("attempt".to_owned(), attempt)].into();
    expr::compile(source)?.evaluate_bool(&variables)
}

/// The next alternative after the one in use (or the first), skipping those whose condition is
/// false or cannot be evaluated.
fn next_alternative(run: &RunSnapshot, index: usize, step: &Step) -> Option<String> {
    let current = run.steps[index].alternative.as_deref();
    let start = match current {
        None => 0,
        Some(id) => step.alternatives.iter().position(|a| a.id == id)? + 1,
    };
    let variables = vars::for_conditions(run);
    step.alternatives[start..]
        .iter()
        .find(|alt| match &alt.when {
            None => true,
            Some(source) => expr::compile(source).and_then(|c| c.evaluate_bool(&variables)).unwrap_or(false),
        })
        .map(|alt| alt.id.clone())
}

/// The delay before try `tries + 1`: `initial` growing by the backoff kind, capped at `max`,
/// spread by `jitter`. The jitter is derived from `seed` (run, step, attempt), so the delay is
/// the same when the computation is repeated after a crash.
pub fn backoff(policy: &RetryPolicy, tries: u32, seed: &str) -> Duration {
    let initial = policy.initial.map_or(DEFAULT_INITIAL, |d| d.0);
    let max = policy.max.map_or(DEFAULT_MAX, |d| d.0);
    let factor = match policy.backoff {
        Backoff::Fixed => 1,
        Backoff::Linear => tries.max(1),
        Backoff::Exponential => 1u32.checked_shl(tries.saturating_sub(1)).unwrap_or(u32::MAX),
    };
    let base = initial.saturating_mul(factor).min(max);
    let jitter = policy.jitter.unwrap_or(DEFAULT_JITTER).clamp(0.0, 1.0);
    let unit = (fnv1a(seed) % 10_000) as f64 / 10_000.0;
    base.mul_f64(1.0 - jitter / 2.0 + jitter * unit).min(max)
}

fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3))
}
