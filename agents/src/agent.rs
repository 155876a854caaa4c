//! The role-agent runtime: claims work from its role's queue only, runs it, keeps the lease
//! alive while it runs, publishes the result, then acks.
//!
//! ```text
//!  claim(role) ─▶ decode ─▶ exec (process group) ─┬─▶ publish result (durable) ─▶ ack
//!                   │            every lease/3 ───┘ in-progress ack + progress signal
//!                   └─ undecodable / wrong role ─▶ dead letter (counted, logged)
//! ```
//!
//! The result is published *before* the ack: if the agent dies in between, the work is
//! redelivered and executed again under the same idempotency key, and the orchestrator accepts
//! only one result per attempt.

use crate::exec::{self, Interrupted};
use crate::probe;
use crate::{Result, wire};
use jiff::Timestamp;
use muster_bus::subjects::Subjects;
use muster_bus::{Bus, Delivery, Error as BusError, Subscription};
use muster_schemas::message::{AgentHeartbeat, Outcome, StepAssigned, StepProgress, StepResult, StepStarted};
use muster_schemas::{Component, Payload, Role, Sender};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, info, info_span, warn};

/// How an agent behaves.
#[derive(Debug, Clone)]
pub struct AgentOptions {
    /// The role it serves.
    pub role: Role,
    /// Its instance id (unique per process).
    pub id: String,
    /// Subjects (same prefix as the bus).
    pub subjects: Subjects,
    /// Steps it runs at once.
    pub concurrency: usize,
    /// The queue's lease; the agent extends it every third of this while a step runs.
    pub lease: Duration,
    /// How often it announces itself.
    pub heartbeat_interval: Duration,
    /// On shutdown, how long running steps may take to finish before they are killed and
    /// released to another agent.
    pub shutdown_grace: Duration,
}

/// Counters an operator (and the tests) can read.
#[derive(Debug, Default)]
pub struct AgentStats {
    /// Steps finished and reported.
    pub completed: AtomicU64,
    /// Messages that could not be decoded (dead-lettered).
    pub undecodable: AtomicU64,
    /// Well-formed messages that were not work for this role (dead-lettered).
    pub misrouted: AtomicU64,
    /// Steps running now.
    pub in_flight: AtomicU32,
}

/// A role agent.
#[derive(Debug, Clone)]
pub struct Agent<B> {
    inner: Arc<Inner<B>>,
}

#[derive(Debug)]
struct Inner<B> {
    bus: B,
    options: AgentOptions,
    sender: Sender,
    stats: AgentStats,
    started_at: Timestamp,
    /// The running steps of each run, by run: a token (a child of the shutdown token) that a
    /// stop signal cancels, and how many steps use it.
    stops: std::sync::Mutex<std::collections::HashMap<uuid::Uuid, (CancellationToken, usize)>>,
}

impl<B: Bus> Agent<B> {
    /// An agent over `bus`.
    pub fn new(bus: B, options: AgentOptions) -> Self {
        let sender = Sender { component: Component::Agent, role: Some(options.role), id: options.id.clone() };
        Self {
            inner: Arc::new(Inner {
                bus,
                options,
                sender,
                stats: AgentStats::default(),
                started_at: Timestamp::now(),
                stops: Default::default(),
            }),
        }
    }

    /// Its counters.
    pub fn stats(&self) -> &AgentStats {
        &self.inner.stats
    }

    /// Serves until `cancel` fires, then lets running steps finish within the grace period and
    /// releases the rest.
    pub async fn run(self, cancel: CancellationToken) -> Result<()> {
        let options = &self.inner.options;
        let role = options.role;
        let slots = Arc::new(Semaphore::new(options.concurrency.max(1)));
        let tasks = TaskTracker::new();
        let steps_cancel = CancellationToken::new();
        tasks.spawn(self.clone().heartbeats(cancel.clone()));
        tasks.spawn(self.clone().listen_for_stops(cancel.clone()));
        info!(role = %role, agent_id = %options.id, concurrency = options.concurrency, "agent ready");
        let mut waiting_for_provisioning = false;
        loop {
            let permit = tokio::select! {
                () = cancel.cancelled() => break,
                permit = slots.clone().acquire_owned() => match permit { Ok(p) => p, Err(_) => break },
            };
            let claimed = tokio::select! {
                () = cancel.cancelled() => break,
                claimed = self.inner.bus.claim(role.as_str(), Duration::from_secs(1)) => claimed,
            };
            match claimed {
                Ok(Some(work)) => {
                    waiting_for_provisioning = false;
                    let this = self.clone();
                    let steps_cancel = steps_cancel.clone();
                    tasks.spawn(async move {
                        this.handle(work, steps_cancel).await;
                        drop(permit);
                    });
                }
                Ok(None) => {}
                Err(BusError::NotProvisioned(what)) => {
                    if !waiting_for_provisioning {
                        warn!(role = %role, what = %what, "work queue not provisioned yet; waiting for the orchestrator");
                        waiting_for_provisioning = true;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(err) => {
                    warn!(role = %role, error = %err, "claim failed; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
        tasks.close();
        let in_flight = self.inner.stats.in_flight.load(Ordering::Relaxed);
        info!(role = %role, in_flight, grace_ms = options.shutdown_grace.as_millis() as u64, "agent stopping");
        if tokio::time::timeout(options.shutdown_grace, tasks.wait()).await.is_err() {
            warn!(role = %role, "grace period over; killing running steps and releasing their work");
            steps_cancel.cancel();
            tasks.wait().await;
        }
        info!(role = %role, "agent stopped");
        Ok(())
    }

    /// Stops the running steps of runs an operator cancelled (`muster.stop.<run>`).
    async fn listen_for_stops(self, cancel: CancellationToken) {
        let subject = self.inner.options.subjects.stop_all();
        let mut signals = match self.inner.bus.signals(&subject).await {
            Ok(signals) => signals,
            Err(err) => {
                warn!(error = %err, "cannot listen for stop signals; cancelled runs' steps will run to the end");
                return;
            }
        };
        loop {
            let signal = tokio::select! {
                () = cancel.cancelled() => return,
                signal = signals.next() => signal,
            };
            let Some((_, payload)) = signal else { return };
            let Some(run) = std::str::from_utf8(&payload).ok().and_then(|t| t.parse::<uuid::Uuid>().ok()) else {
                continue;
            };
            let stops = self.inner.stops.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some((token, running)) = stops.get(&run) {
                info!(run_id = %run, running, "the run was cancelled; stopping its steps");
                token.cancel();
            }
        }
    }

    /// The token that stops `run`'s steps on this agent (created with the first of them).
    fn stop_token(&self, run: uuid::Uuid, steps_cancel: &CancellationToken) -> CancellationToken {
        let mut stops = self.inner.stops.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = stops.entry(run).or_insert_with(|| (steps_cancel.child_token(), 0));
        entry.1 += 1;
        entry.0.clone()
    }

    fn release_stop_token(&self, run: uuid::Uuid) {
        let mut stops = self.inner.stops.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(entry) = stops.get_mut(&run) {
            entry.1 = entry.1.saturating_sub(1);
            if entry.1 == 0 {
                stops.remove(&run);
            }
        }
    }

    async fn heartbeats(self, cancel: CancellationToken) {
        let options = &self.inner.options;
        let subject = options.subjects.heartbeat(options.role.as_str(), &options.id);
        let mut ticker = tokio::time::interval(options.heartbeat_interval);
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                _ = ticker.tick() => {}
            }
            let beat = Payload::AgentHeartbeat(AgentHeartbeat {
                role: options.role,
                agent: options.id.clone(),
                in_flight: self.inner.stats.in_flight.load(Ordering::Relaxed),
                capacity: u32::try_from(options.concurrency).unwrap_or(u32::MAX),
                started_at: self.inner.started_at,
            });
            if let Ok(bytes) = wire::seal(&self.inner.sender, None, beat) {
                let _ = self.inner.bus.signal(&subject, bytes).await;
            }
        }
    }

    async fn handle<D: Delivery>(&self, delivery: D, steps_cancel: CancellationToken) {
        let role = self.inner.options.role;
        let work = match wire::decode(delivery.payload()) {
            Ok(envelope) => match envelope.payload {
                Payload::StepAssigned(work) if work.owner == role => work,
                Payload::GateAssigned(gate) if gate.owner == role => {
                    self.judge(gate, delivery).await;
                    return;
                }
                other => {
                    let count = self.inner.stats.misrouted.fetch_add(1, Ordering::Relaxed) + 1;
                    let reason = match &other {
                        Payload::StepAssigned(work) => format!("work for role {} on the {role} queue", work.owner),
                        Payload::GateAssigned(gate) => format!("a gate for role {} on the {role} queue", gate.owner),
                        _ => format!("unexpected message kind {} on the {role} work queue", other.kind()),
                    };
                    warn!(role = %role, subject = delivery.subject(), misrouted_total = count, reason = %reason, "dead-lettering misrouted message");
                    if let Err(err) = delivery.dead_letter(&reason).await {
                        warn!(error = %err, "could not dead-letter; it will be redelivered");
                    }
                    return;
                }
            },
            Err(err) => {
                let count = self.inner.stats.undecodable.fetch_add(1, Ordering::Relaxed) + 1;
                warn!(
                    role = %role,
                    subject = delivery.subject(),
                    bytes = delivery.payload().len(),
                    error = %err,
                    kind = err.label(),
                    undecodable_total = count,
                    "dead-lettering undecodable message"
                );
                if let Err(err) = delivery.dead_letter(&format!("undecodable: {err}")).await {
                    warn!(error = %err, "could not dead-letter; it will be redelivered");
                }
                return;
            }
        };
        let span = info_span!("step", run_id = %work.run_id, step_id = %work.step_id, attempt = work.attempt, delivery = delivery.deliveries());
        self.execute(work, delivery, steps_cancel).instrument(span).await;
    }

    async fn execute<D: Delivery>(&self, work: StepAssigned, delivery: D, steps_cancel: CancellationToken) {
        let stats = &self.inner.stats;
        stats.in_flight.fetch_add(1, Ordering::Relaxed);
        let options = &self.inner.options;
        let what = work.exec.as_ref().map_or_else(|| "probe".to_owned(), |e| e.program.clone());
        info!(program = %what, agent_id = %options.id, "step started");
        let outputs_file = std::env::temp_dir().join(format!(
            "muster-outputs-{}-{}-{}-{}-{}",
            work.run_id,
            work.step_id,
            work.attempt,
            delivery.deliveries(),
            std::process::id()
        ));
        let env = BTreeMap::from([
            ("MUSTER_OUTPUTS".to_owned(), outputs_file.display().to_string()),
            ("MUSTER_RUN_ID".to_owned(), work.run_id.to_string()),
            ("MUSTER_STEP_ID".to_owned(), work.step_id.clone()),
            ("MUSTER_ATTEMPT".to_owned(), work.attempt.to_string()),
            ("MUSTER_IDEMPOTENCY_KEY".to_owned(), work.idempotency_key.clone()),
            ("MUSTER_ROLE".to_owned(), options.role.to_string()),
            ("MUSTER_AGENT_ID".to_owned(), options.id.clone()),
        ]);
        if delivery.deliveries() > 1 {
            // Another agent held this step and lost its lease: fence it off before running, so
            // its late result (if it is only paused, not dead) is recognised as stale.
            let takeover = Payload::StepStarted(StepStarted {
                run_id: work.run_id,
                step_id: work.step_id.clone(),
                attempt: work.attempt,
                delivery: delivery.deliveries(),
                agent: options.id.clone(),
                purpose: work.purpose.clone(),
            });
            let id = format!("started/{}/{}/{}/{}", work.run_id, work.step_id, work.attempt, delivery.deliveries());
            if !self.report(work.run_id, &delivery, &id, takeover).await {
                stats.in_flight.fetch_sub(1, Ordering::Relaxed);
                warn!("could not announce the takeover; releasing the step");
                let _ = delivery.nak(Duration::from_secs(1)).await;
                return;
            }
        }
        let started_at = Timestamp::now();
        let started = Instant::now();
        let wants_stdout = work.outputs.iter().any(|o| o.from == "stdout_json");
        let stop = self.stop_token(work.run_id, &steps_cancel);
        let execution = async {
            match (&work.exec, &work.probe) {
                (Some(spec), _) => exec::run(spec, &env, wants_stdout, &stop).await.map(|r| (r, None)),
                (None, Some(probe)) => {
                    let timeout = Duration::from_millis(work.timeout_ms());
                    probe::run(probe, timeout, &stop)
                        .await
                        .map(|p| (p.report, Some(p.outputs)))
                        .ok_or(Interrupted::Cancelled)
                }
                (None, None) => Ok((exec::ExecReport::refused("the work names neither a program nor a probe"), None)),
            }
        };
        tokio::pin!(execution);
        let mut keepalive = tokio::time::interval(options.lease / 3);
        keepalive.tick().await;
        let report = loop {
            tokio::select! {
                report = &mut execution => break report,
                _ = keepalive.tick() => self.keep_alive(&work, &delivery, started).await,
            }
        };
        stats.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.release_stop_token(work.run_id);
        let written = std::fs::read_to_string(&outputs_file).unwrap_or_default();
        let _ = std::fs::remove_file(&outputs_file);
        let (mut report, measured) = match report {
            Ok(found) => found,
            // Stopped because the run was cancelled (not because this agent shuts down): the
            // step failed, and the orchestrator compensates what it may have done.
            Err(Interrupted::Cancelled) if !steps_cancel.is_cancelled() => {
                info!("step stopped: the run was cancelled");
                let mut report = exec::ExecReport::refused("the run was cancelled");
                report.stderr_tail = "[muster] stopped: the run was cancelled; its process group was killed".to_owned();
                report.outcome = Outcome::Failed;
                report.duration = started.elapsed();
                (report, None)
            }
            Err(Interrupted::Cancelled | Interrupted::TimedOut) => {
                info!("step interrupted by shutdown; releasing it to another agent");
                if let Err(err) = delivery.nak(Duration::ZERO).await {
                    warn!(error = %err, "could not release the step; its lease will expire");
                }
                return;
            }
        };
        let mut outputs = measured.unwrap_or_default();
        if report.outcome == Outcome::Succeeded && !work.outputs.is_empty() {
            let stdout = report.stdout_full.as_deref().unwrap_or(&report.stdout_tail);
            match crate::outputs::extract(&work.outputs, stdout, &written) {
                Ok(found) => outputs = found,
                Err(problem) => {
                    report.outcome = Outcome::Failed;
                    report.stderr_tail.push_str(&format!("\n[muster] {problem}"));
                }
            }
        }
        let result = StepResult {
            run_id: work.run_id,
            step_id: work.step_id.clone(),
            attempt: work.attempt,
            delivery: delivery.deliveries(),
            agent: options.id.clone(),
            outcome: report.outcome,
            exit_code: report.exit_code,
            stdout_tail: report.stdout_tail,
            stderr_tail: report.stderr_tail,
            outputs,
            purpose: work.purpose.clone(),
            duration_ms: u64::try_from(report.duration.as_millis()).unwrap_or(u64::MAX),
            started_at,
        };
        let id = wire::result_id(work.run_id, &work.step_id, work.attempt, delivery.deliveries());
        let (outcome, exit_code, duration_ms) = (result.outcome, result.exit_code, result.duration_ms);
        if self.report(work.run_id, &delivery, &id, Payload::StepResult(result)).await {
            stats.completed.fetch_add(1, Ordering::Relaxed);
            info!(outcome = ?outcome, exit_code = ?exit_code, duration_ms, "step finished");
            if let Err(err) = delivery.ack().await {
                warn!(error = %err, "could not ack; the step may be redelivered and its result ignored");
            }
        } else {
            warn!("giving up publishing the result; releasing the step to be run again");
            let _ = delivery.nak(Duration::from_secs(1)).await;
        }
    }

    /// Publishes an event about the step on its run's results subject, retrying with backoff
    /// (and keeping the lease alive meanwhile). Returns whether it was stored.
    async fn report<D: Delivery>(&self, run_id: uuid::Uuid, delivery: &D, id: &str, payload: Payload) -> bool {
        let subject = self.inner.options.subjects.event(&run_id.to_string(), "result");
        let mut backoff = Duration::from_millis(100);
        for _ in 0..8 {
            let published = match wire::seal(&self.inner.sender, Some(run_id), payload.clone()) {
                Ok(bytes) => self.inner.bus.publish_event(&subject, id, bytes).await.map_err(crate::Error::from),
                Err(err) => Err(err.into()),
            };
            match published {
                Ok(_) => return true,
                Err(err) => {
                    warn!(error = %err, kind = payload.kind(), retry_in_ms = backoff.as_millis() as u64, "could not publish");
                    let _ = delivery.in_progress().await;
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        false
    }

    /// Judges a gate and reports the verdict.
    async fn judge<D: Delivery>(&self, gate: muster_schemas::message::GateAssigned, delivery: D) {
        let (verdict, evidence) = crate::judge::judge(&gate);
        info!(run_id = %gate.run_id, gate_id = %gate.gate_id, verdict = verdict.as_str(), "gate judged");
        let payload = Payload::GateVerdict(muster_schemas::message::GateVerdict {
            run_id: gate.run_id,
            gate_id: gate.gate_id.clone(),
            attempt: gate.attempt,
            agent: self.inner.options.id.clone(),
            verdict,
            evidence,
        });
        let id = format!("verdict/{}/{}/{}", gate.run_id, gate.gate_id, gate.attempt);
        if self.report(gate.run_id, &delivery, &id, payload).await {
            if let Err(err) = delivery.ack().await {
                warn!(error = %err, "could not ack the gate; it may be judged again");
            }
        } else {
            let _ = delivery.nak(Duration::from_secs(1)).await;
        }
    }

    async fn keep_alive<D: Delivery>(&self, work: &StepAssigned, delivery: &D, started: Instant) {
        if let Err(err) = delivery.in_progress().await {
            warn!(error = %err, "could not extend the lease");
        }
        let progress = Payload::StepProgress(StepProgress {
            run_id: work.run_id,
            step_id: work.step_id.clone(),
            attempt: work.attempt,
            delivery: delivery.deliveries(),
            agent: self.inner.options.id.clone(),
            elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        });
        if let Ok(bytes) = wire::seal(&self.inner.sender, Some(work.run_id), progress) {
            let _ = self.inner.bus.signal(&self.inner.options.subjects.progress(&work.run_id.to_string()), bytes).await;
        }
    }
}
