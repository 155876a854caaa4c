//! The child processes `muster bench` starts — a private nats-server, the orchestrator and the
//! agents — with their logs, their CPU time, and stopping them on every path.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// Clock ticks per second in `/proc/<pid>/stat` (`getconf CLK_TCK`); the report turns
/// [`Proc::cpu_ticks`] into milliseconds with it.
pub(super) const CLOCK_TICKS: f64 = 100.0;
/// How long a child may take to answer SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// How long a private nats-server may take to become ready.
const SERVER_READY_LIMIT: Duration = Duration::from_secs(20);

/// A child process this command started, kept so that it can be watched, measured and stopped.
pub(super) struct Proc {
    name: String,
    pid: u32,
    child: Child,
    log: PathBuf,
}

impl Proc {
    /// Starts `command` with stdout and stderr going to `log`, so that a failure can be shown
    /// from the log and the child never writes over the benchmark's own output.
    pub(super) fn spawn(name: &str, mut command: Command, log: PathBuf) -> Result<Self, String> {
        let open = |what: &str| {
            std::fs::File::create(&log).map_err(|e| format!("cannot create {what} log {}: {e}", log.display()))
        };
        let stderr = open(name)?;
        let stdout = stderr.try_clone().map_err(|e| format!("cannot share {}: {e}", log.display()))?;
        command.stdin(Stdio::null()).stdout(stdout).stderr(stderr).kill_on_drop(true);
        let child = command.spawn().map_err(|e| format!("cannot start {name}: {e}"))?;
        let pid = child.id().ok_or_else(|| format!("{name} exited at once"))?;
        Ok(Self { name: name.to_owned(), pid, child, log })
    }

    /// Why the child is gone, if it is.
    fn gone(&mut self) -> Option<String> {
        let status = match self.child.try_wait() {
            Ok(Some(status)) => status.to_string(),
            Ok(None) => return None,
            Err(err) => format!("unknown status: {err}"),
        };
        Some(format!(
            "{} (pid {}) exited early ({status}); last log lines:\n{}",
            self.name,
            self.pid,
            log_tail(&self.log, 15)
        ))
    }

    /// CPU time used so far, in clock ticks, so that the report can charge it per step.
    pub(super) fn cpu_ticks(&self) -> Option<u64> {
        cpu_ticks(self.pid)
    }
}

/// Warning and error lines of one child's log: its name, how many, the first few; reported so
/// that a figure measured while a child complained is not taken at face value.
pub(super) type Note = (String, usize, Vec<String>);

/// Everything started, so that every path can stop it.
#[derive(Default)]
pub(super) struct Fleet {
    /// The private nats-server, when the benchmark started one.
    pub(super) server: Option<Proc>,
    /// The `muster orchestrator` child, once started by the muster phase.
    pub(super) orchestrator: Option<Proc>,
    /// The `muster agent <role>` children, once started by the muster phase.
    pub(super) agents: Vec<Proc>,
}

impl Fleet {
    fn all(&mut self) -> impl Iterator<Item = &mut Proc> {
        self.server.iter_mut().chain(self.orchestrator.iter_mut()).chain(self.agents.iter_mut())
    }

    /// `Err` describing the first child that has exited, so that waiting loops fail fast
    /// instead of running into their time limits.
    pub(super) fn check_alive(&mut self) -> Result<(), String> {
        self.all().find_map(Proc::gone).map_or(Ok(()), Err)
    }

    /// Stops the muster services, then the server; called on every path out of the benchmark.
    pub(super) async fn stop(&mut self) {
        let mut services: Vec<&mut Proc> = self.orchestrator.iter_mut().chain(self.agents.iter_mut()).collect();
        stop_all(&mut services).await;
        let mut server: Vec<&mut Proc> = self.server.iter_mut().collect();
        stop_all(&mut server).await;
    }

    /// Warning and error lines in the children's logs: name, count, first few (see [`Note`]).
    pub(super) fn log_warnings(&mut self) -> Vec<Note> {
        self.all()
            .filter_map(|p| {
                let (count, first) = log_warnings(&p.log);
                (count > 0).then(|| (p.name.clone(), count, first))
            })
            .collect()
    }
}

/// SIGTERM to every child still running, then wait; SIGKILL whatever is left after 5 s.
async fn stop_all(procs: &mut [&mut Proc]) {
    for proc in procs.iter_mut() {
        if matches!(proc.child.try_wait(), Ok(None)) {
            terminate(proc.pid);
        }
    }
    let deadline = tokio::time::Instant::now() + STOP_GRACE;
    for proc in procs.iter_mut() {
        if tokio::time::timeout_at(deadline, proc.child.wait()).await.is_ok() {
            continue;
        }
        eprintln!(
            "warning: {} (pid {}) still running {}s after SIGTERM; killing it",
            proc.name,
            proc.pid,
            STOP_GRACE.as_secs()
        );
        if let Err(err) = proc.child.start_kill() {
            eprintln!("warning: cannot kill {} (pid {}): {err}", proc.name, proc.pid);
        }
        let _ = tokio::time::timeout(STOP_GRACE, proc.child.wait()).await;
    }
}

fn terminate(pid: u32) {
    use nix::sys::signal::{Signal, kill};
    let Ok(raw) = i32::try_from(pid) else { return };
    if let Err(err) = kill(nix::unistd::Pid::from_raw(raw), Signal::SIGTERM) {
        eprintln!("warning: cannot signal pid {pid}: {err}");
    }
}

/// `utime + stime` of a process from `/proc/<pid>/stat`.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at field 3, `state`.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all.get(all.len().saturating_sub(lines)..).unwrap_or_default().join("\n")
}

fn log_warnings(path: &Path) -> (usize, Vec<String>) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let bad: Vec<&str> =
        text.lines().filter(|l| ["WARN", "ERROR", "[WRN]", "[ERR]"].iter().any(|m| l.contains(m))).collect();
    (bad.len(), bad.iter().take(3).map(|l| (*l).to_owned()).collect())
}

// ----- the private nats-server -----

/// `MUSTER_NATS_SERVER`, then `.tools/bin/nats-server` under the current directory, then `PATH`.
fn nats_server_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("MUSTER_NATS_SERVER") {
        return PathBuf::from(path);
    }
    let local = Path::new(".tools/bin/nats-server");
    if local.exists() {
        return local.to_owned();
    }
    PathBuf::from("nats-server")
}

/// Starts a nats-server on a free loopback port with its own store, so that the benchmark
/// needs no running cluster and measures a server nothing else loads; returns its URL.
pub(super) async fn start_server(fleet: &mut Fleet, workdir: &Path) -> Result<String, String> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("cannot find a free port: {e}"))?;
    let dir = workdir.join("nats");
    let store = dir.join("store");
    std::fs::create_dir_all(&store).map_err(|e| format!("cannot create {}: {e}", store.display()))?;
    let config = dir.join("nats.conf");
    let text = format!(
        "listen: 127.0.0.1:{port}\nmax_payload: 2MB\njetstream {{\n  store_dir: {store:?}\n  sync_interval: always\n  max_file_store: 1G\n  max_memory_store: 64M\n}}\n"
    );
    std::fs::write(&config, text).map_err(|e| format!("cannot write {}: {e}", config.display()))?;
    let binary = nats_server_binary();
    let mut command = Command::new(&binary);
    command.arg("-c").arg(&config);
    let log = dir.join("nats.log");
    let proc = Proc::spawn("nats-server", command, log.clone())
        .map_err(|e| format!("{e} ({}; set MUSTER_NATS_SERVER or run scripts/test to install it)", binary.display()))?;
    let server = fleet.server.insert(proc);
    wait_server_ready(server, port, &log).await?;
    Ok(format!("nats://127.0.0.1:{port}"))
}

/// Waits until the server accepts connections and has logged that it is ready.
async fn wait_server_ready(server: &mut Proc, port: u16, log: &Path) -> Result<(), String> {
    let started = Instant::now();
    while started.elapsed() < SERVER_READY_LIMIT {
        if let Some(why) = server.gone() {
            return Err(why);
        }
        let listening = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok();
        if listening && std::fs::read_to_string(log).is_ok_and(|l| l.contains("Server is ready")) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(format!(
        "nats-server not ready after {}s; last log lines:\n{}",
        SERVER_READY_LIMIT.as_secs(),
        log_tail(log, 15)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_cpu_time_is_readable() {
        assert!(cpu_ticks(std::process::id()).is_some());
    }
}
