//! Signed answers from people. In order: the envelope is verified (principal, strict
//! signature, expiry, channel, identity → person), its nonce is consumed (a replay is refused),
//! the person must be a responder of what they answer, and only then does the engine check the
//! answer against the prompt and apply it in one durable transition. Every refusal is counted,
//! logged and appended to the audit stream (`muster.audit.refused`, and the run's own trail
//! once the answer is authentic), and the sender is told exactly why.

use super::{Orchestrator, engine};
use crate::authority::{self, NonceError, Refusal};
use crate::wire;
use muster_bus::Bus;
use muster_schemas::Payload;
use muster_schemas::answer::{AnswerAction, SignedAnswer};
use muster_schemas::message::{AnswerReply, AuditRecord};
use muster_schemas::run::{GateState, RunSnapshot, RunState};
use std::sync::Mutex;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use uuid::Uuid;

/// Refused answers so far, by refusal label.
#[derive(Debug, Default)]
pub struct RefusalCounts(Mutex<std::collections::BTreeMap<&'static str, u64>>);

impl RefusalCounts {
    fn count(&self, label: &'static str) -> u64 {
        let mut counts = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let total = counts.entry(label).or_default();
        *total += 1;
        counts.values().sum()
    }
}

impl<B: Bus> Orchestrator<B> {
    /// Verifies, authorises and applies a signed answer.
    pub(super) async fn on_signed_answer(&self, signed: &SignedAnswer, cancel: &CancellationToken) -> AnswerReply {
        let now = crate::clock::now();
        let verified = match authority::verify(&self.inner.options.responders, signed, now) {
            Ok(verified) => verified,
            Err(refusal) => return self.refuse(None, &refusal).await,
        };
        match authority::consume_nonce(&self.inner.bus, &verified).await {
            Ok(()) => {}
            Err(NonceError::Refused(refusal)) => return self.refuse(Some(verified.body.run_id), &refusal).await,
            Err(NonceError::Bus(err)) => {
                return AnswerReply {
                    accepted: false,
                    message: format!("could not record the answer ({err}); send it again"),
                };
            }
        }
        let body = verified.body;
        let person = verified.person;
        let map = self.inner.options.responders.clone();
        let outcome: Mutex<Option<Result<(bool, String), Refusal>>> = Mutex::new(None);
        let remember = |result| *outcome.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(result);
        let cause = format!("{person} via {} ({})", body.responder.channel.as_str(), verified.principal);
        let applied = self
            .transition(body.run_id, &cause, cancel, |run| {
                if let Err(refusal) = authorised(&map, run, &body.prompt, &person) {
                    remember(Err(refusal));
                    return engine::Applied::Ignored("not a responder".into());
                }
                match answer(run, &body.prompt, &body.action, &person, body.note.as_deref()) {
                    Ok(answered) => {
                        remember(Ok((answered.accepted, answered.message)));
                        engine::Applied::Changed(answered.effects)
                    }
                    Err(why) => {
                        remember(Ok((false, why.clone())));
                        engine::Applied::Ignored(why)
                    }
                }
            })
            .await;
        let outcome = outcome.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
        match (applied, outcome) {
            (Ok(None), _) => AnswerReply { accepted: false, message: format!("no run {}", body.run_id) },
            (Err(err), _) => AnswerReply { accepted: false, message: format!("could not record the answer: {err}") },
            (Ok(Some(_)), Some(Err(refusal))) => self.refuse(Some(body.run_id), &refusal).await,
            (Ok(Some(_)), Some(Ok((accepted, message)))) => {
                info!(run_id = %body.run_id, prompt = %body.prompt, person = %person, accepted, message = %message, "answer");
                AnswerReply { accepted, message }
            }
            (Ok(Some(_)), None) => AnswerReply { accepted: false, message: "the answer was not applied".into() },
        }
    }

    /// Counts, logs and audits a refused answer, and says why to the sender.
    async fn refuse(&self, run: Option<Uuid>, refusal: &Refusal) -> AnswerReply {
        let total = self.inner.refusals.count(refusal.label());
        warn!(run_id = ?run, refusal = refusal.label(), refused_total = total, reason = %refusal, "answer refused");
        let record = AuditRecord {
            run_id: run.unwrap_or_default(),
            revision: 0,
            at: crate::clock::now(),
            cause: format!("answer refused ({})", refusal.label()),
            changes: vec![refusal.to_string()],
            state: RunState::Pending,
        };
        let id = Uuid::now_v7();
        let trails = [Some("refused".to_owned()), run.map(|r| r.to_string())];
        for trail in trails.into_iter().flatten() {
            let subject = self.inner.options.subjects.audit(&trail);
            let sealed = wire::seal(&self.inner.sender, run, Payload::AuditRecord(record.clone()));
            if let Ok(bytes) = sealed
                && let Err(err) = self.inner.bus.publish_event(&subject, &format!("refused/{trail}/{id}"), bytes).await
            {
                warn!(error = %err, "could not audit a refused answer");
            }
        }
        AnswerReply { accepted: false, message: refusal.to_string() }
    }
}

/// Whether `person` may answer what `name` names in `run`: a prompt's responders, or for a gate
/// that asks, the people of its owner role's group (`security`, ...).
fn authorised(map: &authority::ResponderMap, run: &RunSnapshot, name: &str, person: &str) -> Result<(), Refusal> {
    let responders = match engine::prompts::find(run, name) {
        Some(index) => engine::prompts::responders(run, &run.prompts[index]),
        None => match run.protocol.gates.iter().find(|g| g.id == name) {
            Some(gate) => muster_schemas::protocol::model::Responders {
                groups: vec![gate.owner.as_str().to_owned()],
                users: Vec::new(),
            },
            // Unknown prompt: the engine says which ones are open.
            None => return Ok(()),
        },
    };
    if authority::may_answer(map, person, &responders, &run.protocol.groups) {
        return Ok(());
    }
    Err(Refusal::NotAResponder {
        person: person.to_owned(),
        prompt: name.to_owned(),
        responders: describe(&responders),
    })
}

fn describe(responders: &muster_schemas::protocol::model::Responders) -> String {
    let listed: Vec<String> = responders
        .groups
        .iter()
        .map(|g| format!("group {g}"))
        .chain(responders.users.iter().map(|u| format!("user {u}")))
        .collect();
    if listed.is_empty() { "nobody (the protocol lists no responders)".to_owned() } else { listed.join(", ") }
}

/// A prompt answer, or a gate answer (`continue|rollback|block`).
fn answer(
    run: &mut RunSnapshot,
    name: &str,
    action: &AnswerAction,
    person: &str,
    note: Option<&str>,
) -> Result<engine::prompts::Answered, String> {
    let now = crate::clock::now();
    let gate_waits = run.gates.iter().any(|g| g.id == name && g.state == GateState::Waiting);
    if engine::prompts::find(run, name).is_none() && gate_waits {
        let AnswerAction::Choose { option } = action else {
            return Err(format!("gate `{name}` waits for continue, rollback or block"));
        };
        let effects = engine::apply_answer(run, name, option, person, now)?;
        return Ok(engine::prompts::Answered {
            accepted: true,
            message: format!("gate `{name}`: {option} by {person}"),
            effects,
        });
    }
    engine::prompts::apply_answer(run, name, action, person, note, now)
}
