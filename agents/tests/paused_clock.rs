//! Timers under tokio's paused clock: the real orchestrator and agents over the memory bus,
//! with time that jumps whenever everything waits. Hours of timeouts, retry backoff and cron
//! schedules run in well under a second of real time, through the same code as production.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bytes::Bytes;
use jiff::{SignedDuration, Timestamp};
use muster_agents::agent::{Agent, AgentOptions};
use muster_agents::orchestrator::{Orchestrator, OrchestratorOptions};
use muster_agents::store::RunStore;
use muster_agents::{clock, wire};
use muster_bus::memory::{MemoryBus, MemoryOptions};
use muster_bus::subjects::Subjects;
use muster_bus::{Bucket, Events, Kv, Messaging};
use muster_schemas::message::{Outcome, RunTriggered, TriggerReply};
use muster_schemas::protocol::{Protocol, parse_protocol};
use muster_schemas::run::{RunSnapshot, RunState};
use muster_schemas::{Component, Payload, Role, Sender};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const LEASE: Duration = Duration::from_secs(30);

fn protocol(text: &str) -> Protocol {
    parse_protocol("p.yaml", text).unwrap_or_else(|d| panic!("fixture must validate: {d:?}"))
}

/// An orchestrator with `protocols` loaded and one agent per role, on a fresh memory bus.
fn start(bus: &MemoryBus, protocols: &[Protocol], cancel: &CancellationToken) {
    let orchestrator = Orchestrator::new(
        bus.clone(),
        OrchestratorOptions {
            id: "orchestrator-paused".into(),
            subjects: Subjects::default(),
            protocols: protocols.iter().map(|p| (p.id.clone(), p.clone())).collect(),
            result_ack_wait: Duration::from_secs(30),
            leader_ttl: Duration::from_secs(10),
            responders: Default::default(),
        },
    );
    tokio::spawn(orchestrator.run(cancel.clone()));
    for role in Role::ALL {
        let agent = Agent::new(
            bus.clone(),
            AgentOptions {
                role,
                id: format!("{role}-paused"),
                subjects: Subjects::default(),
                concurrency: 4,
                lease: LEASE,
                heartbeat_interval: Duration::from_secs(5),
                shutdown_grace: Duration::from_secs(1),
            },
        );
        tokio::spawn(agent.run(cancel.clone()));
    }
}

fn bus() -> MemoryBus {
    MemoryBus::with_options(MemoryOptions { work_ack_wait: LEASE, ..MemoryOptions::default() })
}

async fn trigger(bus: &MemoryBus, protocol: &str) -> Uuid {
    let sender = Sender { component: Component::Cli, role: None, id: "test".into() };
    let trigger = RunTriggered {
        protocol_id: protocol.into(),
        inputs: BTreeMap::new(),
        protocol: None,
        idempotency_key: None,
        requested_by: None,
    };
    let bytes = wire::seal(&sender, None, Payload::RunTriggered(trigger)).unwrap();
    // The orchestrator may still be electing itself: ask again until it answers.
    for _ in 0..100 {
        if let Ok(reply) =
            bus.request(&Subjects::default().trigger(protocol), bytes.clone(), Duration::from_secs(1)).await
        {
            match wire::decode(&reply).unwrap().payload {
                Payload::TriggerReply(TriggerReply::Accepted { run_id, .. }) => return run_id,
                other => panic!("trigger refused: {other:?}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("no orchestrator answered");
}

async fn finished(bus: &MemoryBus, id: Uuid, within: Duration) -> RunSnapshot {
    let store = RunStore::new(bus.clone());
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if let Some((run, _)) = store.load(id).await.unwrap()
            && run.state.is_terminal()
        {
            return run;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    panic!("run {id} did not finish within {within:?} of protocol time");
}

fn hours(run: &RunSnapshot) -> f64 {
    let end = run.finished_at.unwrap();
    end.duration_since(run.started_at).as_secs_f64() / 3600.0
}

#[tokio::test(start_paused = true)]
async fn timeouts_and_backoff_take_hours_of_protocol_time_and_no_real_time() {
    let real = Instant::now();
    let bus = bus();
    let cancel = CancellationToken::new();
    let slow = protocol(
        r#"
id: slow
version: "1"
title: a step that always times out
steps:
  - id: hang
    owner: devops
    exec: {program: sleep, args: ["86400"]}
    timeout: 1h
    retry: {max_attempts: 3, backoff: exponential, initial: 10m, max: 1h, jitter: 0}
"#,
    );
    start(&bus, &[slow], &cancel);
    let id = trigger(&bus, "slow").await;
    let run = finished(&bus, id, Duration::from_secs(24 * 3600)).await;
    assert_eq!(run.state, RunState::Failed, "{:?}", run.reason);
    let step = &run.steps[0];
    assert_eq!((step.attempt, step.outcome), (3, Some(Outcome::TimedOut)), "{step:?}");
    // Three one-hour timeouts and backoffs of 10 and 20 minutes.
    let took = hours(&run);
    assert!((3.5..3.6).contains(&took), "expected 3.5 h of protocol time, took {took:.3} h");
    cancel.cancel();
    let elapsed = real.elapsed();
    assert!(elapsed < Duration::from_secs(20), "paused clock must make this fast; took {elapsed:?}");
    println!("timeouts: 3 attempts, {took:.3} h of protocol time in {elapsed:?} of real time");
}

const EVERY_QUARTER: &str = r#"
id: quarterly
version: "1"
title: every quarter of an hour
triggers:
  - cron: {schedule: "*/15 * * * *"}
steps:
  - id: report
    owner: sre
    exec: {program: "true"}
"#;

async fn runs_of(bus: &MemoryBus) -> Vec<RunSnapshot> {
    RunStore::new(bus.clone()).list().await.unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_cron_schedule_fires_once_per_slot_for_hours() {
    let bus = bus();
    let cancel = CancellationToken::new();
    let begun = clock::now();
    start(&bus, &[protocol(EVERY_QUARTER)], &cancel);
    tokio::time::sleep(Duration::from_secs(6 * 3600 + 60)).await;
    let ended = clock::now();
    let runs = runs_of(&bus).await;
    // A first sight of the schedule starts from now: every quarter-hour boundary after the
    // start fires once (24 in 6 h, 25 when the extra minute crosses one).
    let slots = ended.as_second().div_euclid(900) - begun.as_second().div_euclid(900);
    assert!((24..=25).contains(&slots));
    assert_eq!(runs.len() as i64, slots, "{:?}", runs.iter().map(|r| r.started_at).collect::<Vec<_>>());
    for run in &runs {
        assert_eq!(run.state, RunState::Succeeded);
        let late = run.started_at.as_second() % 900;
        assert!(late < 5, "run started {late}s after its slot");
        assert!(run.started_at > begun);
    }
    let trail = bus.history(&Subjects::default().audit(&runs[0].id.to_string()), 10).await.unwrap();
    let first = wire::decode(&trail[0].1).unwrap();
    let Payload::AuditRecord(record) = first.payload else { panic!("not an audit record") };
    assert!(record.cause.starts_with("cron `*/15 * * * *` fire at"), "{}", record.cause);
    cancel.cancel();
}

/// The schedule's last fire as an orchestrator that went down three days ago left it.
async fn down_for_three_days(bus: &MemoryBus) {
    let then = clock::now().checked_sub(SignedDuration::from_hours(72)).unwrap();
    bus.kv_create(Bucket::Triggers, "cron.daily.0", Bytes::from(then.to_string())).await.unwrap();
}

fn daily(missed: &str) -> Protocol {
    protocol(&format!(
        r#"
id: daily
version: "1"
title: daily drift check
triggers:
  - cron: {{schedule: "0 6 * * *", missed: {missed}}}
steps:
  - id: check
    owner: security
    exec: {{program: "true"}}
"#
    ))
}

#[tokio::test(start_paused = true)]
async fn fires_missed_while_down_run_once_or_are_skipped_as_the_protocol_says() {
    for (policy, expected) in [("run_once", 1), ("skip", 0)] {
        let bus = bus();
        let cancel = CancellationToken::new();
        down_for_three_days(&bus).await;
        let restarted: Timestamp = clock::now();
        start(&bus, &[daily(policy)], &cancel);
        tokio::time::sleep(Duration::from_secs(120)).await;
        let runs = runs_of(&bus).await;
        assert_eq!(runs.len(), expected, "policy {policy}: {runs:?}");
        if let Some(run) = runs.first() {
            assert!(run.started_at.duration_since(restarted) < SignedDuration::from_secs(5));
            let trail = bus.history(&Subjects::default().audit(&run.id.to_string()), 10).await.unwrap();
            let Payload::AuditRecord(record) = wire::decode(&trail[0].1).unwrap().payload else { panic!() };
            assert!(record.cause.contains("catching up on 2 missed fire(s)"), "{}", record.cause);
        }
        // After catching up (or skipping), the next fire is tomorrow's, once.
        tokio::time::sleep(Duration::from_secs(24 * 3600)).await;
        assert_eq!(runs_of(&bus).await.len(), expected + 1, "policy {policy}: one fire per day from now on");
        cancel.cancel();
    }
}

const SEED_LADDER: &str = r#"
id: ladder
version: "1"
title: the seed-002 ladder, end to end
groups:
  infra-oncall: {members: [alice]}
  leads: {members: [carol]}
escalations:
  - id: provisioning-timeout
    title: Infrastructure provisioning timeout
    severity: critical
    when: {running_longer: {target: provision, threshold: 90m}}
    options:
      - {id: keep-waiting, description: Let it finish, effect: continue}
      - {id: rollback, description: Destroy and start over, effect: rollback}
    default: keep-waiting
    fallback: rollback
    responders: {groups: [infra-oncall, leads]}
steps:
  - id: provision
    owner: devops
    exec: {program: sleep, args: ["86400"]}
    timeout: 20h
    rollback: {exec: {program: "true"}}
"#;

/// Every notice published so far, as `(prompt, stage, protocol time since the first)`.
async fn notices(bus: &MemoryBus) -> Vec<(String, String, Timestamp)> {
    let stored = bus.history("muster.evt.*.notice", 1000).await.unwrap();
    stored
        .iter()
        .map(|(_, bytes)| match wire::decode(bytes).unwrap().payload {
            Payload::PromptNotice(notice) => (notice.prompt, notice.stage, clock::now()),
            other => panic!("not a notice: {other:?}"),
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn the_whole_seed_ladder_runs_on_protocol_time() {
    let real = Instant::now();
    let bus = bus();
    let cancel = CancellationToken::new();
    start(&bus, &[protocol(SEED_LADDER)], &cancel);
    let id = trigger(&bus, "ladder").await;
    let started = clock::now();
    let mut seen: Vec<(String, SignedDuration)> = Vec::new();
    // Watch the notices minute by minute for a day and a bit.
    for _ in 0..(26 * 60) {
        tokio::time::sleep(Duration::from_secs(60)).await;
        for (prompt, stage, _) in notices(&bus).await.into_iter().skip(seen.len()) {
            seen.push((format!("{prompt} {stage}"), clock::now().duration_since(started)));
        }
    }
    let minutes: Vec<(String, i64)> = seen.iter().map(|(s, d)| (s.clone(), d.as_secs() / 60)).collect();
    let names: Vec<&str> = minutes.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(names, ["ESC-1 raised", "ESC-1 renotified", "ESC-1 decision_due", "ESC-1 expired", "ESC-1 follow_up"]);
    // Raised at the 90 min threshold, then triage 15, decide 30, fallback 60, follow-up 24 h.
    let at: Vec<i64> = minutes.iter().map(|(_, m)| *m).collect();
    for (got, want) in at.iter().zip([90, 105, 120, 150, 90 + 24 * 60]) {
        assert!((want..=want + 1).contains(got), "stage times {minutes:?}");
    }
    let run = RunStore::new(bus.clone()).load(id).await.unwrap().unwrap().0;
    // The rollback waits for the running step (it is not killed) — here until its 20 h timeout.
    assert_eq!(run.state, RunState::RolledBack, "the fallback rolled the run back: {:?}", run.reason);
    let trail = bus.history(&Subjects::default().audit(&id.to_string()), 1000).await.unwrap();
    let changes: Vec<String> = trail
        .iter()
        .filter_map(|(_, b)| match wire::decode(b).unwrap().payload {
            Payload::AuditRecord(r) => Some(r.changes),
            _ => None,
        })
        .flatten()
        .collect();
    assert!(changes.iter().any(|c| c.contains("ESC-1") && c.contains("expired")), "{changes:#?}");
    cancel.cancel();
    println!("seed ladder: {minutes:?} of protocol time in {:?}", real.elapsed());
}
