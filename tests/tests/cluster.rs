//! End-to-end: a real `nats-server`, `muster orchestrator` and one `muster agent` per role as
//! separate processes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use muster_bus::WorkQueue;
use muster_bus::nats::{NatsBus, NatsOptions};
use std::collections::HashSet;
use std::time::Duration;
use support::Cluster;

const ROLES: [&str; 4] = ["resource", "devops", "security", "sre"];

/// The four-step protocol from the README runs to `succeeded`, every step executed by an agent
/// of its owner role, each a different process.
#[test]
fn four_agents_run_the_readme_protocol_over_nats() {
    let cluster = Cluster::start();
    let _orchestrator = cluster.orchestrator("orchestrator", &support::repo().join("scenarios"));
    let agents: Vec<_> = ROLES.iter().map(|role| cluster.agent(&format!("{role}-agent"), role)).collect();
    let pids: HashSet<u32> = agents.iter().map(support::Proc::pid).collect();
    assert_eq!(pids.len(), 4, "four distinct agent processes");

    let workdir = cluster.path("work");
    let input = format!("workdir={}", workdir.display());
    let url = cluster.nats.url();
    let out = cluster.muster(&["trigger", "host-report", "--wait", "--json", "--input", &input, "--nats", &url]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "trigger --wait failed: {stderr}");
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status JSON on stdout");
    assert_eq!(status["state"], "succeeded", "{status:#}");
    assert_eq!(status["protocol"], "host-report");
    assert!(status["finished_at"].is_string() && status["started_at"].is_string());

    let steps = status["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), 4);
    let mut executors = HashSet::new();
    for (step, role) in steps.iter().zip(ROLES) {
        assert_eq!(step["owner"], role, "{step:#}");
        assert_eq!(step["state"], "succeeded", "{step:#}");
        assert_eq!(step["exit_code"], 0);
        assert_eq!(step["attempts"], 1);
        assert!(step["duration_ms"].is_u64());
        assert_eq!(step["agent"], format!("{role}-agent"), "step {} must be run by the {role} agent", step["id"]);
        executors.insert(step["agent"].as_str().unwrap().to_owned());
    }
    assert_eq!(executors.len(), 4);
    let written = std::fs::read_to_string(workdir.join("host-facts.txt")).expect("the devops step wrote the file");
    assert!(written.contains("NAME="));
    for agent in &agents {
        assert!(agent.log_text().contains("step finished"), "{} ran its step", agent.name);
    }

    // `status` and `runs` read the same durable state.
    let run_id = status["id"].as_str().unwrap();
    assert_eq!(cluster.status(run_id)["state"], "succeeded");
    let runs = cluster.muster(&["runs", "--json", "--nats", &url]);
    let runs: serde_json::Value = serde_json::from_slice(&runs.stdout).expect("runs JSON");
    assert!(runs.as_array().unwrap().iter().any(|r| r["id"] == run_id));

    // `muster run FILE --nats` submits a protocol the orchestrator never loaded and follows it.
    let inline = cluster.path("inline.yaml");
    std::fs::write(
        &inline,
        "id: inline\nsteps:\n  - {id: hello, owner: security, exec: {program: echo, args: [inline-ok]}}\n",
    )
    .unwrap();
    let out = cluster.muster(&["run", inline.to_str().unwrap(), "--nats", &url]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("by security-agent") && stdout.contains("inline-ok"), "{stdout}");
}

const SLOW_DEVOPS: &str = "id: slow\nsteps:\n  - {id: prepare, owner: resource, exec: {program: 'true'}}\n  - {id: deploy, owner: devops, needs: [prepare], timeout: 60s, exec: {program: sleep, args: ['3']}}\n  - {id: verify, owner: sre, needs: [deploy], exec: {program: 'true'}}\n";

/// A cluster running `SLOW_DEVOPS` with the given settings: the orchestrator, a resource and an
/// sre agent, and one devops agent called `devops`. Bind every field when destructuring: a
/// field left to `..` is dropped at once, which kills its process.
struct Slow {
    cluster: Cluster,
    orchestrator: support::Proc,
    devops: support::Proc,
    _others: Vec<support::Proc>,
}

fn slow_cluster(settings: &[(&str, &str)], devops: &str) -> Slow {
    let mut cluster = Cluster::start();
    for (name, value) in settings {
        cluster.setting(name, value);
    }
    cluster.scenario("slow.yaml", SLOW_DEVOPS);
    let orchestrator = cluster.orchestrator("orchestrator", &cluster.path("scenarios"));
    let others = vec![cluster.agent("resource-agent", "resource"), cluster.agent("sre-agent", "sre")];
    let devops = cluster.agent(devops, "devops");
    Slow { cluster, orchestrator, devops, _others: others }
}

/// kill -9 of the devops agent mid-step: once the lease expires a second devops agent takes the
/// step over, the run succeeds, and the step is recorded as succeeded once, by the second agent.
#[test]
fn a_killed_agent_loses_its_step_to_another_after_the_lease() {
    let Slow { cluster, orchestrator, devops: mut doomed, _others: _agents } =
        slow_cluster(&[("MUSTER_LEASE", "2s")], "devops-doomed");

    let run_id = cluster.trigger("slow", &[]);
    doomed.wait_for_log("step started", Duration::from_secs(20));
    doomed.kill9();
    let _heir = cluster.agent("devops-heir", "devops");

    let status = cluster.wait_terminal(&run_id, Duration::from_secs(60));
    assert_eq!(status["state"], "succeeded", "{status:#}");
    let deploy = &status["steps"][1];
    assert_eq!(deploy["id"], "deploy");
    assert_eq!(deploy["state"], "succeeded");
    assert_eq!(deploy["agent"], "devops-heir", "the surviving agent's result is the one recorded");
    assert_eq!(deploy["attempts"], 2, "one lost delivery, one that finished: {deploy:#}");
    let finished =
        orchestrator.log_text().lines().filter(|l| l.contains("step finished") && l.contains("step_id=deploy")).count();
    assert_eq!(finished, 1, "the step is recorded once:\n{}", orchestrator.log_text());
}

/// Garbage on a role's work subject: the agent logs a structured warning, counts it, moves the
/// message to the dead letters and keeps serving.
#[test]
fn undecodable_work_is_dead_lettered_and_the_agent_keeps_serving() {
    let cluster = Cluster::start();
    let _orchestrator = cluster.orchestrator("orchestrator", &support::repo().join("scenarios"));
    let mut agents: Vec<_> = ROLES.iter().map(|role| cluster.agent(&format!("{role}-agent"), role)).collect();

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let bus = runtime.block_on(NatsBus::connect(NatsOptions::new(cluster.nats.url()))).expect("connect");
    for (i, garbage) in [&b"\xc1\xff not msgpack"[..], &b"\x81\xa4kind\xa4nope"[..]].iter().enumerate() {
        runtime
            .block_on(bus.enqueue("sre", &format!("garbage-{i}"), bytes::Bytes::copy_from_slice(garbage)))
            .expect("publish garbage");
    }
    let sre = &mut agents[3];
    sre.wait_for_log("undecodable_total=2", Duration::from_secs(20));
    let warning = sre
        .log_text()
        .lines()
        .find(|l| l.contains("dead-lettering undecodable message"))
        .map(str::to_owned)
        .expect("warning line");
    assert!(warning.contains("WARN") && warning.contains("muster.work.sre") && warning.contains("kind="), "{warning}");

    let dead = runtime.block_on(bus.dead_letters("sre")).expect("dead letters");
    assert_eq!(dead.len(), 2, "{dead:?}");
    assert!(dead.iter().all(|d| d.reason.starts_with("undecodable")), "{dead:?}");
    assert_eq!(dead[0].payload.as_ref(), b"\xc1\xff not msgpack", "the original bytes are kept");

    let workdir = cluster.path("work");
    let input = format!("workdir={}", workdir.display());
    let url = cluster.nats.url();
    let out = cluster.muster(&["trigger", "host-report", "--wait", "--input", &input, "--nats", &url]);
    assert_eq!(out.status.code(), Some(0), "the sre agent still serves: {}", String::from_utf8_lossy(&out.stdout));
}

/// SIGTERM while a step runs: the agent lets it finish within its grace period, reports it and
/// exits 0; the run succeeds.
#[test]
fn sigterm_lets_the_running_step_finish() {
    let Slow { cluster, orchestrator: _orchestrator, mut devops, _others: _agents } = slow_cluster(&[], "devops-agent");
    let run_id = cluster.trigger("slow", &[]);
    devops.wait_for_log("step started", Duration::from_secs(20));
    devops.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(devops.wait_exit(Duration::from_secs(20)), Some(0), "{}", devops.log_text());
    let log = devops.log_text();
    assert!(log.find("agent stopping") < log.find("step finished"), "the step finished after the signal:\n{log}");
    let status = cluster.wait_terminal(&run_id, Duration::from_secs(30));
    assert_eq!(status["state"], "succeeded", "{status:#}");
    assert_eq!(status["steps"][1]["agent"], "devops-agent");
}

/// Unknown protocols and bad inputs are refused with exit code 2 and nothing is started.
#[test]
fn bad_triggers_are_refused() {
    let cluster = Cluster::start();
    let _orchestrator = cluster.orchestrator("orchestrator", &support::repo().join("scenarios"));
    let url = cluster.nats.url();
    let out = cluster.muster(&["trigger", "host-reprot", "--nats", &url]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown protocol `host-reprot`"));
    let out = cluster.muster(&["trigger", "host-report", "--input", "wrkdir=/tmp", "--nats", &url]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("did you mean `workdir`"));
    let runs = cluster.muster(&["runs", "--json", "--nats", &url]);
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&runs.stdout).unwrap(), serde_json::json!([]));
}

/// SIGTERM with a step that outlives the grace period: the agent kills it, releases the work and
/// exits; another agent of the role runs it at once (no lease wait), and the run succeeds.
#[test]
fn sigterm_past_the_grace_period_releases_the_step_to_another_agent() {
    let Slow { cluster, orchestrator: _orchestrator, devops: mut leaving, _others: _agents } =
        slow_cluster(&[("MUSTER_SHUTDOWN_GRACE", "1s")], "devops-leaving");
    let run_id = cluster.trigger("slow", &[]);
    leaving.wait_for_log("step started", Duration::from_secs(20));
    let _staying = cluster.agent("devops-staying", "devops");
    leaving.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(leaving.wait_exit(Duration::from_secs(20)), Some(0), "{}", leaving.log_text());
    assert!(leaving.log_text().contains("releasing it to another agent"), "{}", leaving.log_text());
    let status = cluster.wait_terminal(&run_id, Duration::from_secs(20));
    assert_eq!(status["state"], "succeeded", "{status:#}");
    assert_eq!(status["steps"][1]["agent"], "devops-staying");
}

/// kill -9 of the orchestrator while a step runs: the agent's result waits in JetStream, a new
/// orchestrator resumes the run from its durable state and finishes it.
#[test]
fn a_killed_orchestrator_is_replaced_and_the_run_finishes() {
    let cluster = Cluster::start();
    cluster.scenario("slow.yaml", SLOW_DEVOPS);
    let mut first = cluster.orchestrator("orchestrator-1", &cluster.path("scenarios"));
    let _agents: Vec<_> = ROLES.iter().map(|role| cluster.agent(&format!("{role}-agent"), role)).collect();
    let run_id = cluster.trigger("slow", &[]);
    first.wait_for_log("step_id=deploy owner=devops", Duration::from_secs(20));
    first.kill9();
    let second = cluster.orchestrator("orchestrator-2", &cluster.path("scenarios"));
    assert!(second.log_text().contains("recovered=1"), "{}", second.log_text());
    let status = cluster.wait_terminal(&run_id, Duration::from_secs(30));
    assert_eq!(status["state"], "succeeded", "{status:#}");
    assert!(status["steps"].as_array().unwrap().iter().all(|s| s["attempts"] == 1), "nothing ran twice: {status:#}");
}

/// An agent SIGSTOPped past its lease and then resumed: another agent took the step over, and
/// the paused agent's late result is recognised as stale and ignored.
#[test]
fn a_paused_agent_that_lost_its_lease_has_its_late_result_ignored() {
    let Slow { cluster, orchestrator, devops: mut paused, _others: _agents } =
        slow_cluster(&[("MUSTER_LEASE", "2s")], "devops-paused");
    let run_id = cluster.trigger("slow", &[]);
    paused.wait_for_log("step started", Duration::from_secs(20));
    paused.signal(nix::sys::signal::Signal::SIGSTOP);
    let mut heir = cluster.agent("devops-heir", "devops");
    heir.wait_for_log("step started", Duration::from_secs(20));
    paused.signal(nix::sys::signal::Signal::SIGCONT);
    paused.wait_for_log("step finished", Duration::from_secs(20));
    let status = cluster.wait_terminal(&run_id, Duration::from_secs(30));
    assert_eq!(status["state"], "succeeded", "{status:#}");
    assert_eq!(status["steps"][1]["agent"], "devops-heir", "{status:#}");
    assert_eq!(status["steps"][1]["attempts"], 2);
    let log = orchestrator.log_text();
    assert!(log.contains("stale result of step `deploy`: delivery 1 lost its lease"), "{log}");
    assert_eq!(log.lines().filter(|l| l.contains("step finished") && l.contains("step_id=deploy")).count(), 1, "{log}");
}

/// Work of a run that an agent refuses (here: work for another role on its queue) is
/// dead-lettered with the reason and shows in that run's `muster status`.
#[test]
fn dead_letters_of_a_run_show_in_its_status() {
    let cluster = Cluster::start();
    cluster.scenario("slow.yaml", SLOW_DEVOPS);
    let _orchestrator = cluster.orchestrator("orchestrator", &cluster.path("scenarios"));
    let mut sre = cluster.agent("sre-agent", "sre");
    let run_id = cluster.trigger("slow", &[]);
    let run: uuid::Uuid = run_id.parse().unwrap();
    let misrouted = muster_schemas::Envelope::new(
        muster_schemas::Sender { component: muster_schemas::Component::Cli, role: None, id: "test".into() },
        Some(run),
        muster_schemas::Payload::StepAssigned(muster_schemas::message::StepAssigned {
            run_id: run,
            step_id: "deploy".into(),
            owner: muster_schemas::Role::Devops,
            attempt: 1,
            idempotency_key: "k".into(),
            exec: None,
            probe: Some(muster_schemas::message::Probe::Wait { duration_ms: 1 }),
            probe_timeout_ms: 1_000,
            purpose: muster_schemas::message::Purpose::Run,
            outputs: Vec::new(),
        }),
    );
    let bytes = bytes::Bytes::from(muster_schemas::encode(&misrouted).unwrap());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let bus = runtime.block_on(NatsBus::connect(NatsOptions::new(cluster.nats.url()))).unwrap();
    runtime.block_on(bus.enqueue("sre", "misrouted-1", bytes)).unwrap();
    sre.wait_for_log("dead-lettering misrouted message", Duration::from_secs(20));
    let status = cluster.status(&run_id);
    let dead = status["dead_letters"].as_array().expect("dead_letters in the status");
    assert_eq!(dead.len(), 1, "{status:#}");
    assert_eq!(dead[0]["queue"], "sre");
    assert_eq!(dead[0]["kind"], "step_assigned");
    assert!(dead[0]["reason"].as_str().unwrap().contains("work for role devops on the sre queue"), "{status:#}");
}
