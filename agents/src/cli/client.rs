//! What user commands do against any bus: submit a trigger, follow a run, print it.

use crate::store::RunStore;
use crate::wire;
use muster_bus::subjects::Subjects;
use muster_bus::{Bus, Error as BusError};
use muster_schemas::message::{AnswerReply, RefusalCode, RunTriggered, TriggerReply};
use muster_schemas::run::{RunSnapshot, RunState, StepState};
use muster_schemas::{Component, Payload, Sender};
use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Why a submission did not start a run.
#[derive(Debug)]
pub enum SubmitError {
    /// The orchestrator refused it.
    Refused(RefusalCode, String),
    /// No answer.
    Unavailable(String),
}

/// Sends a trigger and waits for the run id. Retries briefly while no orchestrator is serving
/// yet (it may be starting).
pub async fn submit<B: Bus>(bus: &B, subjects: &Subjects, trigger: RunTriggered) -> Result<Uuid, SubmitError> {
    let sender = Sender { component: Component::Cli, role: None, id: format!("cli-{}", std::process::id()) };
    let subject = subjects.trigger(&trigger.protocol_id);
    let bytes = wire::seal(&sender, None, Payload::RunTriggered(trigger))
        .map_err(|e| SubmitError::Unavailable(e.to_string()))?;
    let started = Instant::now();
    let reply = loop {
        match bus.request(&subject, bytes.clone(), Duration::from_secs(10)).await {
            Ok(reply) => break reply,
            Err(BusError::NoResponders(_)) if started.elapsed() < Duration::from_secs(5) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(BusError::NoResponders(_)) => {
                return Err(SubmitError::Unavailable("no orchestrator is running".into()));
            }
            Err(err) => return Err(SubmitError::Unavailable(err.to_string())),
        }
    };
    match wire::decode(&reply).map(|e| e.payload) {
        Ok(Payload::TriggerReply(TriggerReply::Accepted { run_id, .. })) => Ok(run_id),
        Ok(Payload::TriggerReply(TriggerReply::Refused { reason, code })) => Err(SubmitError::Refused(code, reason)),
        Ok(other) => Err(SubmitError::Unavailable(format!("unexpected reply {}", other.kind()))),
        Err(err) => Err(SubmitError::Unavailable(format!("undecodable reply: {err}"))),
    }
}

/// Sends a person's answer or control to the orchestrator and returns its confirmation.
pub async fn decide<B: Bus>(bus: &B, subject: &str, run_id: Uuid, payload: Payload) -> Result<String, SubmitError> {
    let sender = Sender { component: Component::Cli, role: None, id: format!("cli-{}", std::process::id()) };
    let bytes = wire::seal(&sender, Some(run_id), payload).map_err(|e| SubmitError::Unavailable(e.to_string()))?;
    let reply = match bus.request(subject, bytes, Duration::from_secs(10)).await {
        Ok(reply) => reply,
        Err(BusError::NoResponders(_)) => return Err(SubmitError::Unavailable("no orchestrator is running".into())),
        Err(err) => return Err(SubmitError::Unavailable(err.to_string())),
    };
    match wire::decode(&reply).map(|e| e.payload) {
        Ok(Payload::AnswerReply(AnswerReply { accepted: true, message })) => Ok(message),
        Ok(Payload::AnswerReply(AnswerReply { accepted: false, message })) => {
            Err(SubmitError::Refused(RefusalCode::InvalidInput, message))
        }
        Ok(other) => Err(SubmitError::Unavailable(format!("unexpected reply {}", other.kind()))),
        Err(err) => Err(SubmitError::Unavailable(format!("undecodable reply: {err}"))),
    }
}

/// How [`follow`] ended without the run ending: it waits for people nobody can reach.
pub const WAITS_FOR_PEOPLE: &str = "waits for people";

/// Polls the run until it ends, printing each step transition and each prompt to `out`. With
/// `alone` (the embedded `muster run`, where nobody can answer), a run that waits for a person
/// is reported with the prompt's text and given up on instead of followed forever.
pub async fn follow<B: Bus>(bus: &B, run_id: Uuid, alone: bool, out: &mut dyn Write) -> Result<RunSnapshot, String> {
    let store = RunStore::new(bus.clone());
    let mut shown: HashMap<String, StepState> = HashMap::new();
    let mut prompts_shown: HashMap<String, String> = HashMap::new();
    let mut gates_shown: HashMap<String, String> = HashMap::new();
    let mut announced = false;
    let mut failures = 0;
    loop {
        match store.load(run_id).await {
            Ok(Some((run, _))) => {
                failures = 0;
                if !announced {
                    let _ = writeln!(out, "run {} · {} · {} steps", run.id, run.protocol.id, run.steps.len());
                    announced = true;
                }
                print_changes(&run, &mut shown, out);
                print_gates(&run, &mut gates_shown, out);
                print_prompts(&run, &mut prompts_shown, out);
                if run.state.is_terminal() {
                    print_summary(&run, out);
                    return Ok(run);
                }
                if alone && let Some(prompt) = run.prompts.iter().find(|p| p.state.is_open() && p.number != 0) {
                    let _ = writeln!(out, "\n{}\n", prompt.text);
                    return Err(format!(
                        "run {} {WAITS_FOR_PEOPLE} ({}: {}), and `muster run` has nobody to ask; run it on a cluster \
                         (muster orchestrator + agents, then `muster trigger`) and answer with `muster answer`",
                        run.id,
                        prompt.label(),
                        prompt.title
                    ));
                }
            }
            Ok(None) => return Err(format!("run {run_id} not found")),
            Err(err) => {
                failures += 1;
                if failures > 50 {
                    return Err(format!("cannot read run {run_id}: {err}"));
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn print_prompts(run: &RunSnapshot, shown: &mut HashMap<String, String>, out: &mut dyn Write) {
    for prompt in run.prompts.iter().filter(|p| p.number != 0) {
        let state = prompt.state.as_str().to_owned();
        let label = prompt.label();
        if shown.get(&label) == Some(&state) {
            continue;
        }
        shown.insert(label.clone(), state.clone());
        let _ = writeln!(out, "  ? {label:<8} {:<25} {state}", prompt.title);
        if prompt.state.is_open() {
            let _ = writeln!(
                out,
                "      see it with: muster show {label}; answer with: muster answer|ack|form|approve|reject|done {label} ..."
            );
        }
    }
}

fn print_gates(run: &RunSnapshot, shown: &mut HashMap<String, String>, out: &mut dyn Write) {
    for gate in &run.gates {
        let state = gate.state.as_str().to_owned();
        if shown.get(&gate.id) == Some(&state) || state == "pending" {
            continue;
        }
        shown.insert(gate.id.clone(), state.clone());
        let _ = writeln!(
            out,
            "  ◆ gate {:<29} {state}{}",
            gate.id,
            gate.note.as_deref().map(|n| format!("  ({n})")).unwrap_or_default()
        );
        if gate.state == muster_schemas::run::GateState::Waiting {
            let _ = writeln!(out, "      answer with: muster answer {} {} continue|rollback|block", run.id, gate.id);
        }
    }
}

fn print_changes(run: &RunSnapshot, shown: &mut HashMap<String, StepState>, out: &mut dyn Write) {
    for step in &run.steps {
        if shown.get(&step.id) == Some(&step.state) || step.state == StepState::Pending {
            continue;
        }
        shown.insert(step.id.clone(), step.state);
        let mark = match step.state {
            StepState::Running => "▸",
            StepState::Succeeded => "✓",
            StepState::Failed => "✗",
            _ => "·",
        };
        let mut line =
            format!("  {mark} {:<10} {:<24} {:<10}", format!("[{}]", step.owner), step.id, step.state.as_str());
        if let Some(ms) = step.duration_ms {
            line.push_str(&format!(" {:>7}", format_ms(ms)));
        }
        if let Some(agent) = &step.agent {
            line.push_str(&format!("  by {agent}"));
        }
        let _ = writeln!(out, "{}", line.trim_end());
        if step.state == StepState::Succeeded {
            for text in last_lines(&step.stdout_tail, 3) {
                let _ = writeln!(out, "      │ {text}");
            }
        }
    }
}

/// The last `n` non-empty lines of an output tail, for a glance at what a step printed.
fn last_lines(text: &str, n: usize) -> Vec<&str> {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].to_vec()
}

fn print_summary(run: &RunSnapshot, out: &mut dyn Write) {
    let elapsed = run
        .finished_at
        .and_then(|f| f.duration_since(run.started_at).try_into().ok())
        .map(|d: Duration| format_ms(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)))
        .unwrap_or_default();
    let _ = writeln!(out, "run {} {} in {elapsed}", run.id, run.state.as_str());
    if run.state != RunState::Succeeded {
        if let Some(reason) = &run.reason {
            let _ = writeln!(out, "  reason: {reason}");
        }
        for step in run.steps.iter().filter(|s| s.state == StepState::Failed) {
            for line in last_lines(&step.stderr_tail, 10) {
                let _ = writeln!(out, "  {} stderr │ {line}", step.id);
            }
        }
    }
}

/// `1234` → `1.2s`, `87` → `87ms`.
pub fn format_ms(ms: u64) -> String {
    if ms < 1000 { format!("{ms}ms") } else { format!("{:.1}s", ms as f64 / 1000.0) }
}
