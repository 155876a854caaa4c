//! The orchestrator: turns triggers into runs and step results into the next dispatch.
//!
//! ```text
//!  muster.trigger.<protocol>, protocol subjects, cron ──▶ [triggers] ──create snapshot (KV)──▶ enqueue work
//!  muster.evt.<run>.result ──durable consumer "orchestrator"──▶ [results]
//!        load snapshot ─▶ engine::apply_result ─▶ CAS snapshot ─▶ audit record ─▶ enqueue next / publish finished ─▶ ack
//! ```
//!
//! Every transition is written (compare-and-set on the run's KV entry) before its effects are
//! carried out, and the result event is acked only after both. A crash anywhere in between is
//! repaired on start by [`Orchestrator::recover`], which re-issues the effects that every
//! non-terminal snapshot implies; deterministic message ids make the repeats harmless.

mod answers;
mod audit;
pub mod cron;
pub mod engine;
pub mod leader;
pub mod prompts;
mod requests;
mod serving;
mod timers;
mod triggers;

use crate::store::RunStore;
use crate::{Error, Result, wire};
use bytes::Bytes;
use engine::{Applied, Effect};
use muster_bus::subjects::Subjects;
use muster_bus::{Bus, Delivery, EventStream};
use muster_schemas::message::{RunFinished, StepResult, StepStarted};
use muster_schemas::protocol::Protocol;
use muster_schemas::{Component, Payload, Sender};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use uuid::Uuid;

/// Runs that ended this recently get their last audit record appended again on recovery: less
/// than the bus's 10-minute duplicate window, so a record that did make it is dropped as a
/// duplicate.
const RECENTLY_ENDED_SECS: i64 = 9 * 60;

/// Name of the orchestrator's durable consumer of step results.
pub const RESULTS_CONSUMER: &str = "orchestrator";

/// How the orchestrator behaves.
#[derive(Debug, Clone)]
pub struct OrchestratorOptions {
    /// Instance id, for logs and message senders.
    pub id: String,
    /// Subjects (must use the same prefix as the bus).
    pub subjects: Subjects,
    /// Protocols that triggers may name, by id.
    pub protocols: BTreeMap<String, Protocol>,
    /// How long a result may stay unacknowledged before it is redelivered.
    pub result_ack_wait: Duration,
    /// How long the leadership lease lasts without renewal (a standby takes over after it).
    pub leader_ttl: Duration,
    /// Who may answer, and whose signatures are believed (empty: no answer is accepted).
    pub responders: crate::authority::ResponderMap,
}

/// The orchestrator service.
#[derive(Debug, Clone)]
pub struct Orchestrator<B> {
    inner: Arc<Inner<B>>,
}

#[derive(Debug)]
struct Inner<B> {
    bus: B,
    store: RunStore<B>,
    sender: Sender,
    options: OrchestratorOptions,
    timers: timers::Timers,
    /// The revision of the leadership lease this orchestrator holds (0: none).
    lease: AtomicU64,
    /// Refused answers, by reason.
    refusals: answers::RefusalCounts,
}

impl<B: Bus> Orchestrator<B> {
    /// A service over `bus`.
    pub fn new(bus: B, options: OrchestratorOptions) -> Self {
        let sender = Sender { component: Component::Orchestrator, role: None, id: options.id.clone() };
        Self {
            inner: Arc::new(Inner {
                store: RunStore::new(bus.clone()),
                bus,
                sender,
                options,
                timers: Default::default(),
                lease: AtomicU64::new(0),
                refusals: Default::default(),
            }),
        }
    }

    /// Runs until `cancel` fires: waits to lead, serves while leading, stands by again when
    /// leadership is lost.
    pub async fn run(self, cancel: CancellationToken) -> Result<()> {
        let ttl = self.inner.options.leader_ttl;
        let holder = self.inner.options.id.clone();
        loop {
            let Some(held) = leader::acquire(&self.inner.bus, &holder, ttl, &cancel).await else { return Ok(()) };
            self.inner.lease.store(held.revision, Ordering::SeqCst);
            let serving = cancel.child_token();
            let keeper = leader::keep(&self.inner.bus, &holder, held, ttl, &serving, &cancel, &self.inner.lease);
            let (_, served) = tokio::join!(keeper, async {
                let served = self.serve(serving.clone()).await;
                serving.cancel();
                served
            });
            served?;
            if cancel.is_cancelled() {
                return Ok(());
            }
            self.inner.lease.store(0, Ordering::SeqCst);
        }
    }

    /// Serves while leading: recovers unfinished runs, then answers triggers and requests,
    /// consumes results and fires timers, until `cancel` fires (shutdown or lost leadership).
    async fn serve(&self, cancel: CancellationToken) -> Result<()> {
        let mut results = self
            .inner
            .bus
            .event_stream(
                RESULTS_CONSUMER,
                &self.inner.options.subjects.event("*", "result"),
                self.inner.options.result_ack_wait,
            )
            .await?;
        let triggers = self.inner.bus.serve(&self.inner.options.subjects.trigger_all()).await?;
        let answers = self.inner.bus.serve(&self.inner.options.subjects.answer_all()).await?;
        let controls = self.inner.bus.serve(&self.inner.options.subjects.control_all()).await?;
        let recovered = self.recover(&cancel).await?;
        info!(protocols = self.inner.options.protocols.len(), recovered, "orchestrator ready");
        let trigger_loop = self.serve_triggers(triggers, &cancel);
        let subject_loop = self.serve_subject_triggers(&cancel);
        let cron_loop = self.run_schedules(&cancel);
        let result_loop = async {
            while !cancel.is_cancelled() {
                let next = tokio::select! {
                    () = cancel.cancelled() => break,
                    next = results.next(Duration::from_secs(1)) => next,
                };
                match next {
                    Ok(Some(delivery)) => self.on_result_delivery(delivery, &cancel).await,
                    Ok(None) => {}
                    Err(err) => {
                        warn!(error = %err, "cannot read results; retrying");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            }
        };
        let timer_loop = async {
            while let Some(due) = self.inner.timers.next_due(&cancel).await {
                for run_id in due {
                    let ticked =
                        self.transition(run_id, "timer", &cancel, |run| engine::tick(run, crate::clock::now())).await;
                    if let Err(err) = ticked {
                        warn!(run_id = %run_id, error = %err, "timer could not be applied; retrying in 1s");
                        self.inner.timers.arm(
                            crate::clock::now()
                                .checked_add(jiff::SignedDuration::from_secs(1))
                                .unwrap_or_else(|_| crate::clock::now()),
                            run_id,
                        );
                    }
                }
            }
        };
        let answer_loop = self.serve_requests(answers, &cancel);
        let control_loop = self.serve_requests(controls, &cancel);
        tokio::join!(trigger_loop, subject_loop, cron_loop, result_loop, timer_loop, answer_loop, control_loop);
        info!("orchestrator stopped");
        Ok(())
    }

    /// Re-issues the effects of every unfinished run. Returns how many runs were resumed.
    pub async fn recover(&self, cancel: &CancellationToken) -> Result<usize> {
        let mut resumed = 0;
        for (run, revision) in self.inner.store.list_with_revisions().await? {
            if run.state.is_terminal() {
                // A run that ended just before a crash may lack the audit record of its last
                // write; within the bus's duplicate window a repeat is dropped, so append it.
                let recent = run.finished_at.is_some_and(|at| {
                    crate::clock::now().duration_since(at) < jiff::SignedDuration::from_secs(RECENTLY_ENDED_SECS)
                });
                if recent {
                    let changes = vec![format!(
                        "ended {} (checked by {} after a restart)",
                        run.state.as_str(),
                        self.inner.options.id
                    )];
                    self.audit_durably(&run, revision, "recovery", changes, cancel).await;
                }
                // Ended runs only need their escalations' follow-up timers.
                if let Some(at) = engine::prompts::next_due(&run, jiff::Timestamp::MIN) {
                    self.inner.timers.arm(at, run.id);
                }
                continue;
            }
            // The record of the last write may not have been appended before a crash; the same
            // message id makes this one a duplicate when it was.
            let changes = vec![format!("resumed by {} in state {}", self.inner.options.id, run.state.as_str())];
            self.audit_durably(&run, revision, "recovery", changes, cancel).await;
            let effects = engine::resume(&run);
            info!(run_id = %run.id, protocol = %run.protocol.id, dispatches = effects.len(), "resuming run");
            self.carry_out(run.id, effects, cancel).await;
            resumed += 1;
        }
        Ok(resumed)
    }

    async fn on_result_delivery<D: Delivery>(&self, delivery: D, cancel: &CancellationToken) {
        let payload = match wire::decode(delivery.payload()) {
            Ok(envelope) => envelope.payload,
            Err(err) => {
                warn!(subject = delivery.subject(), error = %err, kind = err.label(), "undecodable result");
                settle(delivery.dead_letter(&format!("undecodable: {err}")).await);
                return;
            }
        };
        let applied = match payload {
            Payload::StepResult(result) => self.apply(&result, cancel).await,
            Payload::StepStarted(started) => self.take_over(&started, cancel).await,
            Payload::GateVerdict(verdict) => {
                let cause = format!("verdict on gate {} from {}", verdict.gate_id, verdict.agent);
                let applied = self
                    .transition(verdict.run_id, &cause, cancel, |run| {
                        engine::apply_verdict(run, &verdict, crate::clock::now())
                    })
                    .await;
                if let Ok(Some(Applied::Changed(_))) = &applied {
                    info!(run_id = %verdict.run_id, gate_id = %verdict.gate_id, verdict = verdict.verdict.as_str(), agent = %verdict.agent, "gate judged");
                }
                applied.map(drop)
            }
            other => {
                warn!(kind = other.kind(), subject = delivery.subject(), "unexpected message on the results subject");
                settle(delivery.dead_letter(&format!("unexpected kind {}", other.kind())).await);
                return;
            }
        };
        match applied {
            Ok(()) => settle(delivery.ack().await),
            Err(err) => {
                warn!(subject = delivery.subject(), error = %err, "could not apply an event; it will be redelivered");
                settle(delivery.nak(Duration::from_millis(500)).await);
            }
        }
    }

    /// Records a lease takeover.
    async fn take_over(&self, started: &StepStarted, cancel: &CancellationToken) -> Result<()> {
        let cause = format!("step {} taken over by {}", started.step_id, started.agent);
        let applied =
            self.transition(started.run_id, &cause, cancel, |run| engine::apply_started(run, started)).await?;
        if let Some(Applied::Changed(_)) = applied {
            info!(run_id = %started.run_id, step_id = %started.step_id, delivery = started.delivery, agent = %started.agent, "step taken over after a lost lease");
        }
        Ok(())
    }

    /// Applies a result with compare-and-set, then carries out its effects.
    async fn apply(&self, result: &StepResult, cancel: &CancellationToken) -> Result<()> {
        let cause = format!("result of step {} from {}", result.step_id, result.agent);
        let applied = self
            .transition(result.run_id, &cause, cancel, |run| engine::apply_result(run, result, crate::clock::now()))
            .await?;
        match applied {
            Some(Applied::Ignored(why)) => {
                info!(run_id = %result.run_id, step_id = %result.step_id, attempt = result.attempt, delivery = result.delivery, agent = %result.agent, why = %why, "result ignored");
            }
            Some(Applied::Changed(_)) => {
                info!(run_id = %result.run_id, step_id = %result.step_id, outcome = ?result.outcome, agent = %result.agent, duration_ms = result.duration_ms, "step finished");
            }
            None => warn!(run_id = %result.run_id, "result for an unknown run ignored"),
        }
        Ok(())
    }

    /// One durable transition: load the run, apply `event`, write it with compare-and-set
    /// (reloading and re-applying on a concurrent change), append it to the audit trail, then
    /// carry out the effects. `cause` says what asked for it, for the trail. `None` when the
    /// run does not exist.
    ///
    /// The write carries this orchestrator's leadership-lease revision as a fencing token: a
    /// snapshot last written under a newer lease is refused, so a deposed leader that has not
    /// noticed yet cannot overwrite its successor.
    async fn transition(
        &self,
        run_id: Uuid,
        cause: &str,
        cancel: &CancellationToken,
        event: impl Fn(&mut muster_schemas::run::RunSnapshot) -> Applied,
    ) -> Result<Option<Applied>> {
        loop {
            let Some((mut run, revision)) = self.inner.store.load(run_id).await? else { return Ok(None) };
            let before = run.clone();
            let mut applied = event(&mut run);
            if let Applied::Changed(effects) = &mut applied {
                effects.extend(engine::oversee(&mut run, crate::clock::now()));
                effects.extend(self.number_prompts(&mut run).await?);
            }
            let Applied::Changed(effects) = &applied else { return Ok(Some(applied)) };
            let lease = self.inner.lease.load(Ordering::SeqCst);
            if run.fence > lease {
                return Err(Error::Invalid(format!(
                    "run {run_id} was written under leadership lease {} and this orchestrator holds {lease}: deposed, not writing",
                    run.fence
                )));
            }
            if !leader::still_leads(&self.inner.bus, leader::Held { revision: lease }).await? {
                return Err(Error::Invalid("no longer the leading orchestrator; not writing".to_owned()));
            }
            run.fence = lease;
            match self.inner.store.save(&run, revision).await {
                Ok(written) => {
                    let changes = audit::describe(Some(&before), &run);
                    self.audit_durably(&run, written, cause, changes, cancel).await;
                    self.carry_out(run.id, effects.clone(), cancel).await;
                    return Ok(Some(applied));
                }
                Err(Error::Bus(muster_bus::Error::RevisionMismatch)) => {
                    debug!(run_id = %run.id, "snapshot changed concurrently; reloading")
                }
                Err(err) => return Err(err),
            }
        }
    }

    /// Carries out effects of a durable transition, retrying transient bus failures until they
    /// succeed or the service stops (then recovery on the next start re-issues them).
    async fn carry_out(&self, run_id: Uuid, effects: Vec<Effect>, cancel: &CancellationToken) {
        for effect in effects {
            let mut backoff = Duration::from_millis(50);
            loop {
                let outcome = match &effect {
                    Effect::Dispatch(work) => self.dispatch(work).await,
                    Effect::Judge(work) => self.judge(work).await,
                    Effect::WakeAt(at) => {
                        self.inner.timers.arm(*at, run_id);
                        Ok(())
                    }
                    Effect::Notify { index, seq, notice } => self.notify(run_id, *index, *seq, notice).await,
                    Effect::StopRunning => {
                        let subject = self.inner.options.subjects.stop(&run_id.to_string());
                        info!(run_id = %run_id, "asking agents to stop the run's running steps");
                        self.inner.bus.signal(&subject, Bytes::from(run_id.to_string())).await.map_err(Error::from)
                    }
                    Effect::Finished(state) => {
                        info!(run_id = %run_id, state = state.as_str(), "run finished");
                        let finished = Payload::RunFinished(RunFinished { run_id, state: *state });
                        self.announce(run_id, "finished", finished).await;
                        Ok(())
                    }
                };
                match outcome {
                    Ok(()) => break,
                    Err(err) if !cancel.is_cancelled() => {
                        warn!(run_id = %run_id, error = %err, retry_in_ms = backoff.as_millis() as u64, "could not carry out an effect");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                    Err(_) => return,
                }
            }
        }
    }

    async fn dispatch(&self, work: &muster_schemas::message::StepAssigned) -> Result<()> {
        let id = wire::work_id(work.run_id, &work.step_id, work.attempt);
        let bytes = wire::seal(&self.inner.sender, Some(work.run_id), Payload::StepAssigned(work.clone()))?;
        self.inner.bus.enqueue(work.owner.as_str(), &id, bytes).await?;
        info!(run_id = %work.run_id, step_id = %work.step_id, owner = %work.owner, attempt = work.attempt, "step dispatched");
        Ok(())
    }

    async fn judge(&self, work: &muster_schemas::message::GateAssigned) -> Result<()> {
        let id = format!("gate/{}/{}/{}", work.run_id, work.gate_id, work.attempt);
        let bytes = wire::seal(&self.inner.sender, Some(work.run_id), Payload::GateAssigned(work.clone()))?;
        self.inner.bus.enqueue(work.owner.as_str(), &id, bytes).await?;
        info!(run_id = %work.run_id, gate_id = %work.gate_id, owner = %work.owner, attempt = work.attempt, "gate sent to be judged");
        Ok(())
    }

    /// Publishes an informational run event; failures are logged, never fatal.
    async fn announce(&self, run_id: Uuid, kind: &str, payload: Payload) {
        let subject = self.inner.options.subjects.event(&run_id.to_string(), kind);
        let published = match wire::seal(&self.inner.sender, Some(run_id), payload) {
            Ok(bytes) => self
                .inner
                .bus
                .publish_event(&subject, &format!("{kind}/{run_id}"), bytes)
                .await
                .map(drop)
                .map_err(Error::from),
            Err(err) => Err(err.into()),
        };
        if let Err(err) = published {
            warn!(run_id = %run_id, kind, error = %err, "could not publish a run event");
        }
    }
}

/// Why a valid protocol is refused: this engine does not execute everything the language says.
pub fn not_executable(protocol: &str, missing: &[String]) -> String {
    const SHOWN: usize = 6;
    let mut listed = missing.iter().take(SHOWN).cloned().collect::<Vec<_>>().join("; ");
    if missing.len() > SHOWN {
        listed.push_str(&format!("; and {} more", missing.len() - SHOWN));
    }
    format!(
        "protocol `{protocol}` is valid but cannot run on this engine yet: {listed}. `wait: until` is not executed yet, and running without it would be unsafe"
    )
}

fn settle(result: muster_bus::Result<()>) {
    if let Err(err) = result {
        warn!(error = %err, "could not settle a delivery; it will be redelivered");
    }
}

#[cfg(test)]
mod tests {
    use super::not_executable;

    #[test]
    fn the_refusal_names_a_few_constructs_and_counts_the_rest() {
        let missing: Vec<String> = (1..=9).map(|i| format!("step `s{i}` uses a `form` action")).collect();
        let text = not_executable("p", &missing);
        assert!(text.contains("`s6`") && !text.contains("`s7`") && text.contains("and 3 more"), "{text}");
        assert!(text.contains("`wait: until`"));
    }
}
