//! The muster phase: start the orchestrator and the agents as child processes, run the
//! warm-up protocol once, then for each shape drive the measured runs `--concurrency` at a time
//! and summarise their finished snapshots.

use super::figures::{self, Cpu, Muster};
use super::fleet::{Fleet, Proc};
use super::protocols::{Shape, WARMUP_ID};
use super::{Plan, progress};
use crate::cli::client::{self, SubmitError};
use crate::store::RunStore;
use crate::wire;
use jiff::Timestamp;
use muster_bus::nats::NatsBus;
use muster_bus::{Messaging, Subscription};
use muster_schemas::message::RunTriggered;
use muster_schemas::run::{RunSnapshot, RunState, StepState};
use muster_schemas::{Payload, Role};
use std::collections::{BTreeMap, HashSet};
use std::ffi::OsString;
use std::fmt::Write as _;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// How long the services may take to become ready.
const READY_LIMIT: Duration = Duration::from_secs(60);

/// Starts the services on the server at `url`, warms them up and measures each shape's runs in
/// turn (each with its own CPU samples); the children go into `fleet` so that the caller stops
/// them whatever happens here.
pub(super) async fn measure_muster(
    plan: &Plan,
    fleet: &mut Fleet,
    bus: &NatsBus,
    url: &str,
) -> Result<Vec<Muster>, String> {
    let finished_subject = plan.subjects.event("*", "finished");
    let mut finished =
        bus.signals(&finished_subject).await.map_err(|e| format!("cannot subscribe to {finished_subject}: {e}"))?;
    progress("starting the orchestrator");
    let args = [
        OsString::from("orchestrator"),
        "--nats".into(),
        url.into(),
        "--scenarios".into(),
        plan.scenarios().into_os_string(),
    ];
    let proc = Proc::spawn("orchestrator", plan.muster_command(&args), plan.workdir.join("orchestrator.log"))?;
    fleet.orchestrator = Some(proc);
    let warmup = trigger_when_ready(plan, fleet, bus).await?;
    progress(&format!("starting {} agent(s) per role", plan.args.agents));
    start_agents(plan, fleet, bus, url).await?;
    wait_warmup(fleet, bus, warmup).await?;
    let mut measured = Vec::new();
    for &shape in plan.args.shape.shapes() {
        let steps = shape.steps(plan.args.steps);
        progress(&format!(
            "{}: {} runs × {steps} steps, {} in flight",
            shape.name(),
            plan.args.runs,
            plan.args.concurrency
        ));
        let before = Cpu::sample(fleet);
        let first_trigger = Timestamp::now();
        let runs = drive(plan, shape, fleet, bus, &mut finished).await?;
        let cpu = Cpu::sample(fleet).since(before);
        measured.push(figures::summarise(shape, steps, &runs, first_trigger, cpu));
    }
    Ok(measured)
}

fn trigger(protocol: &str) -> RunTriggered {
    RunTriggered {
        protocol_id: protocol.to_owned(),
        inputs: BTreeMap::new(),
        protocol: None,
        idempotency_key: None,
        requested_by: None,
    }
}

/// Triggers the warm-up run, retrying until the orchestrator answers.
async fn trigger_when_ready(plan: &Plan, fleet: &mut Fleet, bus: &NatsBus) -> Result<Uuid, String> {
    let started = Instant::now();
    loop {
        match client::submit(bus, &plan.subjects, trigger(WARMUP_ID)).await {
            Ok(id) => return Ok(id),
            Err(SubmitError::Refused(_, reason)) => {
                return Err(format!("the orchestrator refused the warm-up run: {reason}"));
            }
            Err(SubmitError::Unavailable(reason)) => {
                fleet.check_alive()?;
                if started.elapsed() > READY_LIMIT {
                    return Err(format!(
                        "the orchestrator did not accept a run within {}s: {reason}",
                        READY_LIMIT.as_secs()
                    ));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Starts K agents per role and waits until each has sent a heartbeat.
async fn start_agents(plan: &Plan, fleet: &mut Fleet, bus: &NatsBus, url: &str) -> Result<(), String> {
    let subject = plan.subjects.heartbeat_all();
    let mut beats = bus.signals(&subject).await.map_err(|e| format!("cannot subscribe to {subject}: {e}"))?;
    for role in Role::ALL {
        for index in 1..=plan.args.agents {
            let name = format!("agent-{role}-{index}");
            let args = [OsString::from("agent"), role.as_str().into(), "--nats".into(), url.into()];
            let proc = Proc::spawn(&name, plan.muster_command(&args), plan.workdir.join(format!("{name}.log")))?;
            fleet.agents.push(proc);
        }
    }
    let wanted = fleet.agents.len();
    let mut seen = HashSet::new();
    let started = Instant::now();
    while seen.len() < wanted {
        fleet.check_alive()?;
        if started.elapsed() > READY_LIMIT {
            return Err(format!(
                "only {} of {wanted} agents sent a heartbeat within {}s",
                seen.len(),
                READY_LIMIT.as_secs()
            ));
        }
        match tokio::time::timeout(Duration::from_millis(200), beats.next()).await {
            Ok(Some((subject, _))) => {
                seen.insert(subject);
            }
            Ok(None) => return Err("the heartbeat subscription ended".to_owned()),
            Err(_) => {}
        }
    }
    Ok(())
}

/// Waits for the warm-up run, which must succeed.
async fn wait_warmup(fleet: &mut Fleet, bus: &NatsBus, id: Uuid) -> Result<(), String> {
    let store = RunStore::new(bus.clone());
    let started = Instant::now();
    loop {
        fleet.check_alive()?;
        if let Some(run) = finished_run(&store, id).await? {
            return match run.state {
                RunState::Succeeded => Ok(()),
                state => Err(format!("the warm-up run {id} ended {}: {}", state.as_str(), failure_detail(&run))),
            };
        }
        if started.elapsed() > READY_LIMIT {
            return Err(format!("the warm-up run {id} did not finish within {}s", READY_LIMIT.as_secs()));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn failure_detail(run: &RunSnapshot) -> String {
    let mut text = run.reason.clone().unwrap_or_else(|| "no reason given".to_owned());
    for step in run.steps.iter().filter(|s| s.state == StepState::Failed) {
        let _ = write!(text, "; step {} (exit {:?}): {}", step.id, step.exit_code, step.stderr_tail.trim());
    }
    text
}

/// The run's snapshot once it has ended.
async fn finished_run(store: &RunStore<NatsBus>, id: Uuid) -> Result<Option<RunSnapshot>, String> {
    match store.load(id).await {
        Ok(Some((run, _))) if run.state.is_terminal() => Ok(Some(run)),
        Ok(Some(_)) => Ok(None),
        Ok(None) => Err(format!("run {id} is not in the store")),
        Err(err) => Err(format!("cannot read run {id}: {err}")),
    }
}

/// The run a `run_finished` event names.
fn finished_event(payload: &[u8]) -> Option<Uuid> {
    match wire::decode(payload).ok()?.payload {
        Payload::RunFinished(finished) => Some(finished.run_id),
        _ => None,
    }
}

/// Triggers the measured runs of `shape`, `concurrency` at a time, and returns their final
/// snapshots. Finished events wake it; a slow poll of the snapshots covers a lost event.
async fn drive(
    plan: &Plan,
    shape: Shape,
    fleet: &mut Fleet,
    bus: &NatsBus,
    finished: &mut <NatsBus as Messaging>::Signals,
) -> Result<Vec<RunSnapshot>, String> {
    let total = usize::try_from(plan.args.runs).unwrap_or(usize::MAX);
    let width = usize::try_from(plan.args.concurrency).unwrap_or(usize::MAX);
    let store = RunStore::new(bus.clone());
    let mut in_flight: HashSet<Uuid> = HashSet::new();
    let mut done = Vec::with_capacity(total);
    let mut submitted = 0;
    let mut poll = tokio::time::interval(Duration::from_millis(500));
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while done.len() < total {
        while in_flight.len() < width && submitted < total {
            let id = client::submit(bus, &plan.subjects, trigger(shape.protocol_id())).await.map_err(|e| match e {
                SubmitError::Refused(_, reason) => format!("the orchestrator refused a run: {reason}"),
                SubmitError::Unavailable(reason) => format!("cannot trigger a run: {reason}"),
            })?;
            in_flight.insert(id);
            submitted += 1;
        }
        let candidates: Vec<Uuid> = tokio::select! {
            event = finished.next() => {
                let (_, payload) = event.ok_or("the run_finished subscription ended")?;
                finished_event(&payload).filter(|id| in_flight.contains(id)).into_iter().collect()
            }
            _ = poll.tick() => {
                fleet.check_alive()?;
                in_flight.iter().copied().collect()
            }
        };
        for id in candidates {
            if let Some(run) = finished_run(&store, id).await? {
                in_flight.remove(&id);
                done.push(run);
            }
        }
    }
    Ok(done)
}
