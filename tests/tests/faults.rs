//! Fault tests: the orchestrator is killed with SIGKILL at random moments while runs are in
//! flight and restarted; every run must still reach the right terminal state, and every step's
//! side effect (an append guarded by its idempotency key) must happen exactly once. Executions
//! are logged separately, so the test reports how many re-executions the crashes caused.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use support::Cluster;

/// Each step logs its execution, then applies its effect once (guarded by the key).
const STEP: &str = r#"{shell: 'echo "$MUSTER_IDEMPOTENCY_KEY" >> "$DIR/executions"; sleep 0.$(( $(od -An -N1 -tu1 /dev/urandom) % 4 + 1 )); ( flock 9; grep -qxF "$MUSTER_IDEMPOTENCY_KEY" "$DIR/effects" 2>/dev/null || echo "$MUSTER_IDEMPOTENCY_KEY" >> "$DIR/effects" ) 9>>"$DIR/lock"', env: {DIR: "{{ inputs.dir }}"}}"#;

fn protocol() -> String {
    format!(
        r#"id: chaos
inputs:
  dir: {{required: true}}
  fail: {{type: bool, default: false}}
steps:
  - {{id: prepare, owner: resource, exec: {STEP}, rollback: {{exec: {{shell: 'echo "$MUSTER_IDEMPOTENCY_KEY" >> "$DIR/undo"', env: {{DIR: "{{{{ inputs.dir }}}}"}}}}}}}}
  - {{id: left, owner: devops, needs: [prepare], exec: {STEP}, rollback: {{exec: {{shell: 'echo "$MUSTER_IDEMPOTENCY_KEY" >> "$DIR/undo"', env: {{DIR: "{{{{ inputs.dir }}}}"}}}}}}}}
  - {{id: right, owner: security, needs: [prepare], exec: {STEP}}}
  - id: finish
    owner: sre
    needs: [left, right]
    exec: {{program: sh, args: [-c, '[ "$0" = false ]', "{{{{ inputs.fail }}}}"]}}
    on_failure: rollback
"#
    )
}

struct Lcg(u64);

impl Lcg {
    fn next(&mut self, bound: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % bound
    }
}

fn lines(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path).unwrap_or_default().lines().map(str::to_owned).collect()
}

#[test]
fn fifty_runs_survive_an_orchestrator_killed_at_random() {
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
    eprintln!("seed {seed}");
    let mut random = Lcg(seed);
    let cluster = Cluster::start();
    cluster.scenario("chaos.yaml", &protocol());
    let mut orchestrator = cluster.orchestrator("orchestrator-0", &cluster.path("scenarios"));
    let _agents: Vec<_> =
        ["resource", "devops", "security", "sre"].iter().map(|r| cluster.agent(&format!("{r}-agent"), r)).collect();

    let mut expected = BTreeMap::new();
    for i in 0..50 {
        let dir = cluster.path(&format!("run-{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        let fail = i % 2 == 1;
        let id = cluster.trigger("chaos", &[&format!("dir={}", dir.display()), &format!("fail={fail}")]);
        expected.insert(id, (dir, fail));
    }

    let mut kills = 0;
    let started = Instant::now();
    let mut generation = 1;
    while started.elapsed() < Duration::from_secs(15) {
        std::thread::sleep(Duration::from_millis(100 + random.next(700)));
        orchestrator.kill9();
        kills += 1;
        orchestrator = cluster.orchestrator(&format!("orchestrator-{generation}"), &cluster.path("scenarios"));
        generation += 1;
    }

    let (mut succeeded, mut rolled_back, mut executions, mut effects, mut audit_records) = (0, 0, 0, 0, 0);
    for (id, (dir, fail)) in &expected {
        let status = cluster.wait_terminal(id, Duration::from_secs(90));
        let want = if *fail { "rolled_back" } else { "succeeded" };
        assert_eq!(status["state"], want, "run {id} (seed {seed}): {status:#}");
        let applied = lines(&dir.join("effects"));
        let unique: std::collections::BTreeSet<&String> = applied.iter().collect();
        assert_eq!(applied.len(), unique.len(), "run {id}: an effect happened twice (seed {seed}): {applied:?}");
        assert_eq!(applied.len(), 3, "run {id}: prepare, left and right each applied once (seed {seed})");
        if *fail {
            assert_eq!(
                lines(&dir.join("undo")).len(),
                2,
                "run {id}: left and prepare compensated once each (seed {seed})"
            );
            rolled_back += 1;
        } else {
            succeeded += 1;
        }
        executions += lines(&dir.join("executions")).len();
        effects += applied.len();
        audit_records += assert_complete_trail(&cluster, id, want);
    }
    eprintln!(
        "chaos: {kills} orchestrator kills; {succeeded} runs succeeded, {rolled_back} rolled back; {effects} effects from {executions} executions ({} re-executions); {audit_records} audit records",
        executions - effects
    );
    assert!(kills >= 5, "the orchestrator was killed often enough ({kills})");
}

/// The run's audit trail survived the kills: it starts with the creation, its revisions only
/// grow, and its last record is the terminal state. Returns how many records it has.
fn assert_complete_trail(cluster: &Cluster, id: &str, terminal: &str) -> usize {
    let trail = cluster.audit(id);
    assert!(trail.len() >= 3, "run {id}: a trail of at least creation, a step, the end: {trail:#?}");
    assert!(trail[0]["cause"].as_str().unwrap().starts_with("trigger"), "run {id}: {:#}", trail[0]);
    let revisions: Vec<u64> = trail.iter().map(|r| r["revision"].as_u64().unwrap()).collect();
    assert!(revisions.windows(2).all(|w| w[0] < w[1]), "run {id}: revisions out of order: {revisions:?}");
    let last = trail.last().unwrap();
    assert_eq!(last["state"], terminal, "run {id}: the trail ends with the terminal state: {last:#}");
    trail.len()
}

/// nats-server itself is killed with SIGKILL mid-run and restarted on the same store: the
/// orchestrator and agents reconnect, nothing acknowledged is lost, and every run finishes.
#[test]
fn runs_finish_after_nats_server_is_killed_and_restarted() {
    let mut cluster = Cluster::start();
    cluster.scenario("chaos.yaml", &protocol());
    let _orchestrator = cluster.orchestrator("orchestrator", &cluster.path("scenarios"));
    let _agents: Vec<_> =
        ["resource", "devops", "security", "sre"].iter().map(|r| cluster.agent(&format!("{r}-agent"), r)).collect();
    let mut runs = Vec::new();
    for i in 0..10 {
        let dir = cluster.path(&format!("run-{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        runs.push((cluster.trigger("chaos", &[&format!("dir={}", dir.display())]), dir));
    }
    std::thread::sleep(Duration::from_millis(500));
    cluster.nats.kill().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    cluster.nats.restart().unwrap();
    for (id, dir) in &runs {
        let status = cluster.wait_terminal(id, Duration::from_secs(120));
        assert_eq!(status["state"], "succeeded", "run {id}: {status:#}");
        let applied = lines(&dir.join("effects"));
        assert_eq!(applied.len(), 3, "run {id}: each effect once: {applied:?}");
    }
}

/// Two orchestrators: one leads, one stands by. The leader is killed with SIGKILL while runs are
/// in flight; the standby takes over once the lease expires (TTL 2 s here) and finishes them.
#[test]
fn a_standby_orchestrator_takes_over_from_a_killed_leader() {
    let cluster = Cluster::start();
    cluster.scenario("chaos.yaml", &protocol());
    let mut leader = cluster.orchestrator("orchestrator-a", &cluster.path("scenarios"));
    let mut standby = cluster.spawn(
        "orchestrator-b",
        &["orchestrator", "--nats", &cluster.nats.url(), "--scenarios", cluster.path("scenarios").to_str().unwrap()],
    );
    standby.wait_for_log("standing by", Duration::from_secs(20));
    let _agents: Vec<_> =
        ["resource", "devops", "security", "sre"].iter().map(|r| cluster.agent(&format!("{r}-agent"), r)).collect();
    let mut runs = Vec::new();
    for i in 0..6 {
        let dir = cluster.path(&format!("run-{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        runs.push((cluster.trigger("chaos", &[&format!("dir={}", dir.display())]), dir));
    }
    leader.kill9();
    let killed = Instant::now();
    standby.wait_for_log("orchestrator ready", Duration::from_secs(20));
    let takeover = killed.elapsed();
    assert!(takeover < Duration::from_secs(6), "took over in {takeover:?} (TTL 2 s)");
    for (id, dir) in &runs {
        let status = cluster.wait_terminal(id, Duration::from_secs(60));
        assert_eq!(status["state"], "succeeded", "run {id}: {status:#}");
        assert_eq!(lines(&dir.join("effects")).len(), 3, "run {id}: each effect once");
    }
    eprintln!("standby took over {takeover:?} after the leader was killed");
}
