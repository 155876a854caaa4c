//! Test harness: a real `nats-server`, the real `muster` binary as separate processes, readiness
//! by log lines (never fixed sleeps), and cleanup by PID when a test ends.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use muster_bus::testing::NatsServer;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A protocol whose first step fails (`ENOSPC: disk full` on stderr) and escalates to the
/// `oncall` group (alice): options `retry` and `skip`, fallback `skip`; `after` runs once it is
/// answered. The bridge tests answer it from chat and over HTTP.
pub const ESCALATES: &str = r#"
id: escalates
version: "1"
title: A deploy that asks people
groups:
  oncall: {members: [alice]}
escalations:
  - id: deploy-failed
    title: The deploy failed
    severity: high
    options:
      - {id: retry, description: Try again, effect: retry}
      - {id: skip, description: Go on without it, effect: skip}
    fallback: skip
    responders: {groups: [oncall]}
steps:
  - id: deploy
    owner: devops
    exec: {program: sh, args: ["-c", "echo 'ENOSPC: disk full' >&2; exit 3"]}
    on_failure: {escalate: deploy-failed}
  - id: after
    owner: sre
    needs: [deploy]
    exec: {program: "true"}
"#;

/// The `muster` binary built for this test run (`MUSTER_BIN` overrides).
pub fn muster_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("MUSTER_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let bin = dir.join("muster");
    assert!(bin.exists(), "{} missing: run `cargo build --bins` first (scripts/test does)", bin.display());
    bin
}

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A muster process started by a test; SIGKILLed on drop if still running.
pub struct Proc {
    pub name: String,
    pub child: Child,
    pub log: PathBuf,
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log contains `needle`; panics with the log on timeout or early exit.
    pub fn wait_for_log(&mut self, needle: &str, limit: Duration) {
        let started = Instant::now();
        while started.elapsed() < limit {
            if self.log_text().contains(needle) {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{} exited ({status}) before logging {needle:?}; log:\n{}", self.name, self.log_text());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("{} did not log {needle:?} within {limit:?}; log:\n{}", self.name, self.log_text());
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid() as i32), signal).expect("signal");
    }

    /// Waits for the process to exit and returns its exit code.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("{} did not exit within {limit:?}; log:\n{}", self.name, self.log_text());
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A NATS server plus the muster processes of one test, sharing a scratch directory.
pub struct Cluster {
    pub nats: NatsServer,
    pub dir: tempfile::TempDir,
    pub env: Vec<(String, String)>,
}

impl Cluster {
    pub fn start() -> Self {
        let nats = NatsServer::start().expect("nats-server starts (run scripts/test to install it)");
        // A short leadership lease, so a replaced orchestrator takes over in seconds.
        let env = vec![("MUSTER_LEASE".into(), "30s".into()), ("MUSTER_LEADER_TTL".into(), "2s".into())];
        Self { nats, dir: tempfile::tempdir().expect("tempdir"), env }
    }

    /// Sets a `MUSTER_*` setting for processes started from now on.
    pub fn setting(&mut self, name: &str, value: &str) {
        self.env.push((name.into(), value.into()));
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes a protocol into the cluster's scenarios directory.
    pub fn scenario(&self, file: &str, text: &str) {
        let dir = self.path("scenarios");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(file), text).unwrap();
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(muster_bin());
        command.args(args).current_dir(self.dir.path()).stdin(Stdio::null());
        command.env_remove("RUST_LOG");
        for (k, v) in &self.env {
            command.env(k, v);
        }
        command
    }

    /// Starts a long-running muster process with its output in `<name>.log`.
    pub fn spawn(&self, name: &str, args: &[&str]) -> Proc {
        let log = self.path(&format!("{name}.log"));
        let out = File::create(&log).unwrap();
        let err = out.try_clone().unwrap();
        let child = self.command(args).stdout(out).stderr(err).spawn().expect("spawn muster");
        Proc { name: name.into(), child, log }
    }

    /// `muster orchestrator` over the given scenarios directory, waited for until ready.
    pub fn orchestrator(&self, name: &str, scenarios: &Path) -> Proc {
        let url = self.nats.url();
        let mut proc = self.spawn(name, &["orchestrator", "--nats", &url, "--scenarios", scenarios.to_str().unwrap()]);
        proc.wait_for_log("orchestrator ready", Duration::from_secs(20));
        proc
    }

    /// `muster agent <role>`, waited for until ready.
    pub fn agent(&self, name: &str, role: &str) -> Proc {
        let url = self.nats.url();
        let mut proc = self.spawn(name, &["agent", role, "--nats", &url, "--id", name]);
        proc.wait_for_log("agent ready", Duration::from_secs(20));
        proc
    }

    /// Runs a muster command to completion (bounded).
    pub fn muster(&self, args: &[&str]) -> Output {
        self.muster_with(&[], args)
    }

    /// [`Cluster::muster`] with extra environment variables (e.g. who signs an answer).
    pub fn muster_with(&self, env: &[(&str, &str)], args: &[&str]) -> Output {
        let mut command = self.command(args);
        command.envs(env.iter().copied());
        let child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn muster");
        let pid = child.id();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(output) => output.expect("muster output"),
            Err(_) => {
                let _ =
                    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGKILL);
                panic!("muster {args:?} did not finish within 120s");
            }
        }
    }

    /// Gives each person a key (`muster keygen`) and writes the orchestrator's responder map
    /// (`muster.toml` in the cluster directory): CLI identity = name, with the given groups.
    /// Start the orchestrator after this.
    pub fn responders(&self, people: &[(&str, &[&str])]) {
        let mut toml = String::new();
        for (name, groups) in people {
            let file = self.path(&format!("{name}.nk"));
            let out = self.muster(&["keygen", "--out", file.to_str().unwrap(), "--name", name, "--json"]);
            assert!(out.status.success(), "keygen: {}", String::from_utf8_lossy(&out.stderr));
            let key: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            let groups: Vec<String> = groups.iter().map(|g| format!("\"{g}\"")).collect();
            toml.push_str(&format!(
                "[responders.people.{name}]\ncli = [\"{name}\"]\ngroups = [{}]\n[responders.principals.{name}]\npublic_key = \"{}\"\nspeaks_for = [\"cli\"]\n",
                groups.join(", "),
                key["public_key"].as_str().unwrap()
            ));
        }
        std::fs::write(self.path("muster.toml"), toml).unwrap();
    }

    /// A muster command against this cluster, signing answers as `name` (see
    /// [`Cluster::responders`]); returns success and stdout + stderr.
    pub fn muster_as(&self, name: &str, args: &[&str]) -> (bool, String) {
        let url = self.nats.url();
        let mut all = args.to_vec();
        all.extend(["--nats", &url]);
        let key = self.path(&format!("{name}.nk")).display().to_string();
        let out = self.muster_with(&[("MUSTER_PRINCIPAL", name), ("MUSTER_ANSWER_KEY", &key)], &all);
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.success(), text)
    }

    /// `muster status <id> --json`, parsed.
    pub fn status(&self, run_id: &str) -> serde_json::Value {
        let url = self.nats.url();
        let out = self.muster(&["status", run_id, "--json", "--nats", &url]);
        assert!(out.status.success(), "status failed: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("status JSON")
    }

    /// `muster audit <id> --json`, parsed: the run's audit records, oldest first.
    pub fn audit(&self, run_id: &str) -> Vec<serde_json::Value> {
        let url = self.nats.url();
        let out = self.muster(&["audit", run_id, "--json", "--nats", &url]);
        assert!(out.status.success(), "audit failed: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("audit JSON")
    }

    /// Polls the run's status until it is terminal.
    pub fn wait_terminal(&self, run_id: &str, limit: Duration) -> serde_json::Value {
        let started = Instant::now();
        loop {
            let status = self.status(run_id);
            let state = status["state"].as_str().unwrap_or_default().to_owned();
            if ["succeeded", "failed", "rolled_back", "cancelled"].contains(&state.as_str()) {
                return status;
            }
            assert!(started.elapsed() < limit, "run {run_id} still {state} after {limit:?}: {status:#}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `muster trigger <protocol> --json` without waiting; returns the run id.
    pub fn trigger(&self, protocol: &str, inputs: &[&str]) -> String {
        let url = self.nats.url();
        let mut args = vec!["trigger", protocol, "--json", "--nats", &url];
        for input in inputs {
            args.extend(["--input", input]);
        }
        let out = self.muster(&args);
        assert!(out.status.success(), "trigger failed: {}", String::from_utf8_lossy(&out.stderr));
        let value: serde_json::Value = serde_json::from_slice(&out.stdout).expect("trigger JSON");
        value["id"].as_str().expect("run id").to_owned()
    }
}
