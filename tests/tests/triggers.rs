//! Triggers against a real nats-server and real processes: retried triggers with an
//! idempotency key start one run, protocols' NATS subjects start runs, and every run can be
//! read back as an audit trail.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use muster_bus::Messaging;
use muster_bus::nats::{NatsBus, NatsOptions};
use std::time::Duration;
use support::Cluster;

const PAGED: &str = r#"
id: paged
version: "1"
title: Disk alert triage
inputs:
  host: {type: string, required: true}
triggers:
  - subject: {subject: ops.alerts.disk}
steps:
  - id: look
    owner: sre
    exec: {program: "true"}
"#;

fn paged_cluster() -> (Cluster, support::Proc, support::Proc) {
    let cluster = Cluster::start();
    cluster.scenario("paged.yaml", PAGED);
    let orchestrator = cluster.orchestrator("orchestrator", &cluster.path("scenarios"));
    let agent = cluster.agent("sre-agent", "sre");
    (cluster, orchestrator, agent)
}

fn trigger_with_key(cluster: &Cluster, host: &str, key: &str) -> std::process::Output {
    let url = cluster.nats.url();
    let input = format!("host={host}");
    cluster.muster(&["trigger", "paged", "--input", &input, "--idempotency-key", key, "--json", "--nats", &url])
}

/// A client that retries a trigger (say, after a lost reply) with the same key gets the same
/// run; the key with other inputs is refused; a new key starts a new run.
#[test]
fn a_retried_trigger_with_the_same_key_starts_one_run() {
    let (cluster, _orchestrator, _agent) = paged_cluster();
    let first = trigger_with_key(&cluster, "db-1", "alert-4711");
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let first: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    let again = trigger_with_key(&cluster, "db-1", "alert-4711");
    let again: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(first["id"], again["id"], "the same key must answer the same run");

    let other = trigger_with_key(&cluster, "db-2", "alert-4711");
    assert_eq!(other.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&other.stderr).contains("with other inputs"), "{other:?}");

    let fresh = trigger_with_key(&cluster, "db-2", "alert-4712");
    let fresh: serde_json::Value = serde_json::from_slice(&fresh.stdout).unwrap();
    assert_ne!(fresh["id"], first["id"]);

    let runs = cluster.muster(&["runs", "--json", "--nats", &cluster.nats.url()]);
    let runs: serde_json::Value = serde_json::from_slice(&runs.stdout).unwrap();
    assert_eq!(runs.as_array().unwrap().len(), 2, "two keys, two runs: {runs:#}");
    let status = cluster.wait_terminal(first["id"].as_str().unwrap(), Duration::from_secs(30));
    assert_eq!(status["state"], "succeeded");
}

/// A message on a protocol's trigger subject starts a run with the body's inputs and is
/// answered with the run id; a body that is not an object of inputs is refused and starts
/// nothing. The run's audit trail reads back in order.
#[test]
fn a_message_on_a_trigger_subject_starts_an_audited_run() {
    let (cluster, _orchestrator, _agent) = paged_cluster();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (accepted, refused) = runtime.block_on(async {
        let bus = NatsBus::connect(NatsOptions::new(cluster.nats.url())).await.unwrap();
        let ask = |body: &'static str| {
            let bus = bus.clone();
            async move {
                let reply = bus.request("ops.alerts.disk", body.into(), Duration::from_secs(5)).await.unwrap();
                serde_json::from_slice::<serde_json::Value>(&reply).unwrap()
            }
        };
        (ask(r#"{"host": "db-1"}"#).await, ask("[1, 2]").await)
    });
    assert_eq!(accepted["status"], "accepted", "{accepted:#}");
    assert_eq!(refused["status"], "refused", "{refused:#}");
    assert!(refused["reason"].as_str().unwrap().contains("JSON object"), "{refused:#}");

    let id = accepted["run_id"].as_str().unwrap();
    let status = cluster.wait_terminal(id, Duration::from_secs(30));
    assert_eq!(status["state"], "succeeded", "{status:#}");
    assert_eq!(status["inputs"]["host"], "db-1");
    assert_eq!(status["checkpoints"][0]["phase"], "main", "{status:#}");

    let trail = cluster.audit(id);
    assert_eq!(trail[0]["cause"], "message on ops.alerts.disk", "{trail:#?}");
    let changes: Vec<String> = trail
        .iter()
        .flat_map(|r| r["changes"].as_array().unwrap().iter())
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    for expected in [
        "run created for protocol paged v1",
        "step look: pending → running",
        "step look: running → succeeded",
        "run: running → succeeded",
    ] {
        assert!(changes.iter().any(|c| c == expected), "missing `{expected}` in {changes:#?}");
    }
    let text = cluster.muster(&["audit", id, "--nats", &cluster.nats.url()]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("result of step look from sre-agent"), "{text:?}");
    let runs = cluster.muster(&["runs", "--json", "--nats", &cluster.nats.url()]);
    let runs: serde_json::Value = serde_json::from_slice(&runs.stdout).unwrap();
    assert_eq!(runs.as_array().unwrap().len(), 1, "the refused message started nothing: {runs:#}");
}
