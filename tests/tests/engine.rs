//! End-to-end runs of the engine's constructs over a real `nats-server` with the agents as
//! separate processes: parallel branches, a condition, retries with backoff, outputs flowing
//! into later steps, and a rollback in reverse completion order. Every step appends its
//! idempotency key to an effects file (once, guarded) and to an executions log (always), so the
//! test can tell effects from executions.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::BTreeMap;
use std::time::Duration;
use support::Cluster;

const DAG: &str = r#"id: dag
inputs:
  dir: {required: true}
  fail_at_the_end: {type: bool, default: false}
steps:
  - id: prepare
    owner: resource
    exec: {shell: 'echo "$MUSTER_IDEMPOTENCY_KEY" >> "$DIR/executions"; grep -qxF "$MUSTER_IDEMPOTENCY_KEY" "$DIR/effects" 2>/dev/null || echo "$MUSTER_IDEMPOTENCY_KEY" >> "$DIR/effects"; echo "{\"zone\": \"eu-1\", \"replicas\": 3}"', env: {DIR: "{{ inputs.dir }}"}}
    outputs:
      zone: {type: string}
      replicas: {type: int}
    rollback: {exec: {shell: 'echo "undo prepare" >> "$DIR/undo"', env: {DIR: "{{ inputs.dir }}"}}}
  - id: network
    owner: devops
    needs: [prepare]
    exec: {shell: 'echo "$MUSTER_IDEMPOTENCY_KEY" >> "$DIR/executions"; sleep 1; echo "$MUSTER_IDEMPOTENCY_KEY" >> "$DIR/effects"', env: {DIR: "{{ inputs.dir }}"}}
    rollback: {exec: {shell: 'echo "undo network" >> "$DIR/undo"', env: {DIR: "{{ inputs.dir }}"}}}
  - id: harden
    owner: security
    needs: [prepare]
    exec: {shell: 'echo "$MUSTER_IDEMPOTENCY_KEY" >> "$DIR/executions"; [ "$MUSTER_ATTEMPT" -ge 3 ] || exit 75; echo "$MUSTER_IDEMPOTENCY_KEY" >> "$DIR/effects"', env: {DIR: "{{ inputs.dir }}"}}
    retry: {max_attempts: 3, backoff: fixed, initial: 1s, jitter: 0.0, retry_if: "attempt.exit_code == 75"}
  - id: skipped
    owner: sre
    needs: [prepare]
    when: "outputs.prepare.replicas > 5"
    exec: {program: 'false'}
  - id: verify
    owner: sre
    needs: [network, harden, skipped]
    exec: {program: sh, args: [-c, 'echo "$1" >> "$2/effects"; [ "$3" = false ]', verify, "{{ outputs.prepare.zone }}", "{{ inputs.dir }}", "{{ inputs.fail_at_the_end }}"]}
    on_failure: rollback
"#;

fn lines(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path).unwrap_or_default().lines().map(str::to_owned).collect()
}

fn start() -> (Cluster, Vec<support::Proc>) {
    let cluster = Cluster::start();
    cluster.scenario("dag.yaml", DAG);
    let mut procs = vec![cluster.orchestrator("orchestrator", &cluster.path("scenarios"))];
    for role in ["resource", "devops", "security", "sre"] {
        procs.push(cluster.agent(&format!("{role}-agent"), role));
    }
    (cluster, procs)
}

#[test]
fn parallel_branches_conditions_retries_and_outputs() {
    let (cluster, _procs) = start();
    let dir = cluster.path("work");
    std::fs::create_dir_all(&dir).unwrap();
    let run_id = cluster.trigger("dag", &[&format!("dir={}", dir.display())]);
    let status = cluster.wait_terminal(&run_id, Duration::from_secs(60));
    assert_eq!(status["state"], "succeeded", "{status:#}");
    let steps: BTreeMap<&str, &serde_json::Value> =
        status["steps"].as_array().unwrap().iter().map(|s| (s["id"].as_str().unwrap(), s)).collect();
    assert_eq!(steps["harden"]["attempts"], 3, "two retried failures, then success");
    assert_eq!(steps["skipped"]["state"], "skipped");
    assert_eq!(steps["verify"]["state"], "succeeded");
    let effects = lines(&dir.join("effects"));
    assert!(effects.contains(&"eu-1".to_owned()), "the output of prepare reached verify's arguments: {effects:?}");
    let keys: Vec<&String> = effects.iter().filter(|l| l.contains('/')).collect();
    let unique: std::collections::BTreeSet<&String> = keys.iter().copied().collect();
    assert_eq!(keys.len(), unique.len(), "each effect happened once: {effects:?}");
    assert_eq!(keys.len(), 3, "prepare, network, harden: {effects:?}");
    assert_eq!(lines(&dir.join("executions")).len(), 5, "harden executed three times");
    // The branches were dispatched together, not one after the other.
    let at = |id: &str, key: &str| steps[id][key].as_str().unwrap().parse::<jiff::Timestamp>().unwrap();
    let gap = at("harden", "started_at").duration_since(at("network", "started_at")).abs();
    assert!(gap < jiff::SignedDuration::from_millis(500), "network and harden started {gap:#} apart");
    assert!(at("network", "finished_at") > at("harden", "started_at"), "harden started while network ran");
}

#[test]
fn a_failure_rolls_back_in_reverse_completion_order() {
    let (cluster, _procs) = start();
    let dir = cluster.path("work");
    std::fs::create_dir_all(&dir).unwrap();
    let run_id = cluster.trigger("dag", &[&format!("dir={}", dir.display()), "fail_at_the_end=true"]);
    let status = cluster.wait_terminal(&run_id, Duration::from_secs(60));
    assert_eq!(status["state"], "rolled_back", "{status:#}");
    assert_eq!(lines(&dir.join("undo")), ["undo network", "undo prepare"], "newest first; harden has no compensation");
    let steps: BTreeMap<&str, &serde_json::Value> =
        status["steps"].as_array().unwrap().iter().map(|s| (s["id"].as_str().unwrap(), s)).collect();
    assert_eq!(steps["network"]["state"], "rolled_back");
    assert_eq!(steps["prepare"]["state"], "rolled_back");
    assert_eq!(steps["harden"]["state"], "succeeded");
    assert_eq!(steps["verify"]["state"], "failed");
    assert!(status["reason"].as_str().unwrap().contains("step `verify` exited with code 1"), "{status:#}");
}

const GATED: &str = r#"id: gated
inputs:
  critical: {type: int, default: 0}
steps:
  - id: scan
    owner: security
    exec: {program: sh, args: [-c, 'echo "{\"critical\": $0}"', "{{ inputs.critical }}"]}
    outputs: {critical: {type: int}}
  - id: deploy
    owner: devops
    needs: [scan]
    exec: {program: 'true'}
gates:
  - id: clean
    owner: sre
    after: [scan]
    criteria: [{name: no-criticals, expr: 'outputs.scan.critical == 0', description: No critical vulnerabilities}]
    on: {fail: ask}
"#;

/// A gate judged by the sre agent holds `deploy`; a failing verdict leaves the run waiting until
/// a person answers with `muster answer`, and wrong answers are refused without changing it.
#[test]
fn a_failing_gate_waits_for_muster_answer() {
    let cluster = Cluster::start();
    cluster.scenario("gated.yaml", GATED);
    // The gate is owned by sre: people of the `sre` group may answer it.
    cluster.responders(&[("alice", &["sre"]), ("mallory", &[])]);
    let _orchestrator = cluster.orchestrator("orchestrator", &cluster.path("scenarios"));
    let _agents: Vec<_> =
        ["resource", "devops", "security", "sre"].iter().map(|r| cluster.agent(&format!("{r}-agent"), r)).collect();

    let passing = cluster.trigger("gated", &[]);
    let status = cluster.wait_terminal(&passing, Duration::from_secs(30));
    assert_eq!(status["state"], "succeeded", "{status:#}");
    assert_eq!(status["gates"][0]["state"], "passed");
    assert_eq!(status["gates"][0]["verdict"], "pass");
    assert_eq!(status["gates"][0]["agent"], "sre-agent", "judged by an agent of the owner role");

    let failing = cluster.trigger("gated", &["critical=3"]);
    let started = std::time::Instant::now();
    let waiting = loop {
        let status = cluster.status(&failing);
        if status["state"] == "waiting" {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{status:#}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(waiting["gates"][0]["verdict"], "fail");
    assert_eq!(waiting["gates"][0]["evidence"][0]["met"], false);
    assert_eq!(waiting["steps"][1]["state"], "pending", "deploy is held by the gate");

    let (ok, said) = cluster.muster_as("alice", &["answer", &failing, "clean", "approve"]);
    assert!(!ok && said.contains("continue, rollback or block"), "{said}");
    let (ok, said) = cluster.muster_as("mallory", &["answer", &failing, "clean", "continue"]);
    assert!(!ok && said.contains("mallory may not answer clean: it is for group sre"), "{said}");
    assert_eq!(cluster.status(&failing)["state"], "waiting", "refused answers change nothing");

    let (ok, said) = cluster.muster_as("alice", &["answer", &failing, "clean", "continue"]);
    assert!(ok, "{said}");
    let status = cluster.wait_terminal(&failing, Duration::from_secs(30));
    assert_eq!(status["state"], "succeeded", "{status:#}");
    assert_eq!(status["gates"][0]["decided_by"], "alice");
    assert_eq!(status["steps"][1]["state"], "succeeded");
}

const OPERATED: &str = r#"id: operated
inputs:
  dir: {required: true}
steps:
  - id: provision
    owner: devops
    exec: {program: touch, args: ["{{ inputs.dir }}/provisioned"]}
    rollback: {exec: {program: rm, args: ["{{ inputs.dir }}/provisioned"]}}
  - id: flaky
    owner: sre
    needs: [provision]
    exec: {program: test, args: [-e, "{{ inputs.dir }}/ready"]}
  - id: slow
    owner: security
    needs: [flaky]
    timeout: 5m
    exec: {program: sleep, args: ["120"]}
"#;

/// Operators over the CLI: a failed step is retried after the cause is fixed, then the run is
/// cancelled while a step runs. Nothing new starts; the running step is stopped (its process
/// group killed) instead of waited for, then the completed steps are compensated and the run
/// ends `cancelled` — in seconds, where the step would have run two minutes.
#[test]
fn operators_retry_a_failed_step_and_cancel_a_run() {
    let mut cluster = Cluster::start();
    cluster.setting("MUSTER_SHUTDOWN_GRACE", "1s");
    cluster.scenario("operated.yaml", OPERATED);
    let _orchestrator = cluster.orchestrator("orchestrator", &cluster.path("scenarios"));
    let _agents: Vec<_> =
        ["resource", "devops", "security", "sre"].iter().map(|r| cluster.agent(&format!("{r}-agent"), r)).collect();
    let url = cluster.nats.url();
    let dir = cluster.path("work");
    std::fs::create_dir_all(&dir).unwrap();
    let run = cluster.trigger("operated", &[&format!("dir={}", dir.display())]);
    let failed = cluster.wait_terminal(&run, Duration::from_secs(30));
    assert_eq!(failed["state"], "failed", "{failed:#}");

    let refused = cluster.muster(&["retry", &run, "slow", "--nats", &url]);
    assert_eq!(refused.status.code(), Some(2), "only a failed step can be retried");
    std::fs::write(dir.join("ready"), "").unwrap();
    let retried = cluster.muster(&["retry", &run, "flaky", "--as", "bob", "--nats", &url]);
    assert_eq!(retried.status.code(), Some(0), "{}", String::from_utf8_lossy(&retried.stderr));

    let started = std::time::Instant::now();
    while cluster.status(&run)["steps"][2]["state"] != "running" {
        assert!(started.elapsed() < Duration::from_secs(20), "slow never started");
        std::thread::sleep(Duration::from_millis(100));
    }
    let cancelled = cluster.muster(&["cancel", &run, "--as", "bob", "--nats", &url]);
    assert_eq!(cancelled.status.code(), Some(0), "{}", String::from_utf8_lossy(&cancelled.stderr));
    let status = cluster.status(&run);
    assert_eq!(status["interventions"].as_array().unwrap().len(), 2, "{status:#}");
    let status = cluster.wait_terminal(&run, Duration::from_secs(30));
    assert!(started.elapsed() < Duration::from_secs(60), "the running step was stopped, not waited for");
    assert_eq!(status["state"], "cancelled", "{status:#}");
    assert!(!dir.join("provisioned").exists(), "provision was compensated");
    assert_eq!(status["steps"][0]["state"], "rolled_back");
    assert_eq!(status["steps"][2]["state"], "failed", "{status:#}");
}
