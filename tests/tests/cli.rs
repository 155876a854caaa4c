//! End-to-end through the `muster` binary without a cluster: the embedded default and the
//! refusal of invalid protocol files.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use support::Cluster;

fn cluster_less() -> (tempfile::TempDir, impl Fn(&[&str]) -> std::process::Output) {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path().to_owned();
    let run = move |args: &[&str]| {
        std::process::Command::new(support::muster_bin())
            .args(args)
            .current_dir(&cwd)
            .env_remove("RUST_LOG")
            .output()
            .expect("run muster")
    };
    (dir, run)
}

/// The README's first command: the protocol runs end to end in one process and exits 0.
#[test]
fn embedded_run_of_the_readme_protocol_succeeds() {
    let (dir, muster) = cluster_less();
    let protocol = support::repo().join("scenarios/host-report.yaml");
    let workdir = dir.path().join("work");
    let input = format!("workdir={}", workdir.display());
    let out = muster(&["run", protocol.to_str().unwrap(), "--input", &input]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    for step in ["gather-facts", "write-facts", "check-file", "report"] {
        assert!(
            stdout.lines().any(|l| l.contains(step) && l.contains("succeeded")),
            "progress shows {step}:\n{stdout}"
        );
    }
    assert!(stdout.contains("succeeded in"), "{stdout}");
    assert!(workdir.join("host-facts.txt").exists());
}

/// A failing step fails the run: exit 1, with the reason and the step's stderr.
#[test]
fn embedded_run_of_a_failing_protocol_exits_1_with_the_reason() {
    let (dir, muster) = cluster_less();
    let file = dir.path().join("fails.yaml");
    std::fs::write(&file, "id: fails\nsteps:\n  - {id: ok, owner: resource, exec: {program: 'true'}}\n  - {id: broken, owner: sre, needs: [ok], exec: {program: ls, args: [/definitely/not/here]}}\n  - {id: never, owner: devops, needs: [broken], exec: {program: 'true'}}\n").unwrap();
    let out = muster(&["run", file.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON status");
    assert_eq!(status["state"], "failed");
    assert_eq!(status["steps"][1]["state"], "failed");
    assert_eq!(status["steps"][2]["state"], "pending", "nothing runs after a failure");
    let progress = String::from_utf8_lossy(&out.stderr);
    assert!(progress.contains("step `broken` exited with code 2"), "{progress}");
    assert!(progress.contains("No such file or directory"), "stderr tail shown: {progress}");
}

/// Invalid protocols are refused before anything runs, with `file:line:col` and a hint, exit 2.
#[test]
fn invalid_protocols_are_refused_with_location_and_hint() {
    let (dir, muster) = cluster_less();
    let cases = [
        (
            "role.yaml",
            "id: demo\nsteps:\n  - id: a\n    owner: dba\n    exec: {program: 'true'}\n",
            "role.yaml:4:12: error: unknown variant `dba`",
            "resource, devops, security, sre",
        ),
        (
            "missing.yaml",
            "id: demo\nsteps:\n  - id: a\n    exec: {program: 'true'}\n",
            "missing.yaml:4:5: error: missing field `owner`",
            "every step needs `owner:`",
        ),
        (
            "typo.yaml",
            "id: demo\nsteps:\n  - id: a\n    onwer: sre\n    exec: {program: 'true'}\n",
            "typo.yaml:4:5: error: unknown field `onwer`",
            "did you mean `owner`?",
        ),
        (
            "dup.yaml",
            "id: demo\nsteps:\n  - {id: a, owner: sre, exec: {program: 'true'}}\n  - {id: a, owner: sre, exec: {program: 'true'}}\n",
            "dup.yaml:4:10: error: duplicate step id `a`",
            "step ids must be unique",
        ),
        (
            "tmpl.yaml",
            "id: demo\nsteps:\n  - {id: a, owner: sre, exec: {program: echo, args: ['{{ inputs.nope }}']}}\n",
            "tmpl.yaml:3:54: error: `inputs.nope` refers to an undeclared input",
            "hint:",
        ),
    ];
    for (name, text, error, hint) in cases {
        let file = dir.path().join(name);
        std::fs::write(&file, text).unwrap();
        let out = muster(&["run", file.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {stderr}");
        assert!(stderr.contains(error), "{name}: expected {error:?} in:\n{stderr}");
        assert!(stderr.contains(hint), "{name}: expected hint {hint:?} in:\n{stderr}");
        let out = muster(&["validate", file.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1), "validate reports {name} as invalid");
    }
    let out = muster(&["validate", support::repo().join("scenarios").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
}

/// The cluster commands explain what is missing instead of hanging.
#[test]
fn cluster_commands_without_a_cluster_say_what_is_missing() {
    let (_dir, muster) = cluster_less();
    let out = muster(&["runs"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--nats URL"));
    let out = muster(&["status", "not-a-uuid", "--nats", "nats://127.0.0.1:1"]);
    assert_eq!(out.status.code(), Some(2));
    let port = muster_bus::testing::free_port().unwrap();
    let out = muster(&["runs", "--nats", &format!("nats://127.0.0.1:{port}")]);
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    let _ = Cluster::start; // the cluster harness is shared with cluster.rs
}

/// `muster graph` draws every scenario in both formats; `muster import speckit` turns the seed
/// `tasks.md` into a protocol that validates.
#[test]
fn graph_and_import_work_from_the_command_line() {
    let (dir, muster) = cluster_less();
    for entry in std::fs::read_dir(support::repo().join("scenarios")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|x| x != "yaml") {
            continue;
        }
        for (format, marker) in [("mermaid", "flowchart"), ("dot", "digraph")] {
            let out = muster(&["graph", path.to_str().unwrap(), "--format", format]);
            assert_eq!(out.status.code(), Some(0), "{}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
            assert!(String::from_utf8_lossy(&out.stdout).starts_with(marker), "{} as {format}", path.display());
        }
    }
    let imported = dir.path().join("tasks.yaml");
    let tasks = support::repo().join("agents/tests/fixtures/speckit-tasks.md");
    let out = muster(&["import", "speckit", tasks.to_str().unwrap(), "--output", imported.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let out = muster(&["validate", imported.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("6 phases, 41 steps"), "{stdout}");
    let out = muster(&["graph", imported.to_str().unwrap(), "--format", "bogus"]);
    assert_eq!(out.status.code(), Some(2));
}
