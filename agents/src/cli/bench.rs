//! `muster bench`: step latency and throughput through NATS, set against the raw JetStream
//! round trip measured on the same server in the same invocation.
//!
//! ```text
//!  nats-server (private unless --nats)
//!   ├─ floor:  publish work ─▶ pull + double-ack ─▶ publish result ─▶ pull + ack   (one at a time)
//!   └─ muster: `muster orchestrator` + K `muster agent <role>` per role as child processes,
//!              N runs × M `true` steps, C runs in flight
//! ```
//!
//! A step's latency is read from the finished run snapshot: dispatch (`started_at`) to result
//! accepted (`finished_at`). Everything runs under its own prefix (`muster_bench_<pid>`), so a
//! deployment sharing the server is never touched, and every child is stopped on every path
//! (SIGTERM, SIGKILL after 5 s).

use super::client::{self, SubmitError};
use super::exit;
use super::services;
use super::settings::Settings;
use crate::store::RunStore;
use crate::wire;
use async_nats::jetstream::{self, consumer::PullConsumer};
use futures::StreamExt;
use jiff::Timestamp;
use muster_bus::nats::NatsBus;
use muster_bus::subjects::Subjects;
use muster_bus::{Messaging, Subscription};
use muster_schemas::message::RunTriggered;
use muster_schemas::run::{RunSnapshot, RunState, StepState};
use muster_schemas::{Payload, Role};
use std::collections::{BTreeMap, HashSet};
use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};
use uuid::Uuid;

/// Benchmark flags.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Use this NATS server (JetStream, 2.12+) instead of starting a private one.
    #[arg(long, value_name = "URL")]
    pub nats: Option<String>,
    /// Runs to complete.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub runs: u32,
    /// No-op steps (`true`) per run; owners cycle resource, devops, security, sre.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub steps: u32,
    /// Runs in flight at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..))]
    pub concurrency: u32,
    /// Agent processes per role.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub agents: u32,
    /// Raw JetStream round trips measured for the floor.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u32).range(1..))]
    pub baseline: u32,
    /// Give up after this many seconds (everything started is stopped).
    #[arg(long, default_value_t = 300, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: u64,
    /// Print the figures as JSON on stdout (progress goes to stderr).
    #[arg(long)]
    pub json: bool,
}

/// Id of the measured protocol.
const PROTOCOL_ID: &str = "bench";
/// Id of the one-step-per-role protocol run once before measuring.
const WARMUP_ID: &str = "bench-warmup";
/// The raw-floor stream and its subjects.
const RAW_STREAM: &str = "BENCH_RAW";
const RAW_WORK: &str = "bench.raw.work";
const RAW_RESULT: &str = "bench.raw.result";
/// Body size of a raw-floor message (about a muster step envelope).
const RAW_PAYLOAD: usize = 512;
/// Unmeasured raw round trips before the measured ones.
const RAW_WARMUP: u32 = 20;
/// Clock ticks per second in `/proc/<pid>/stat` (`getconf CLK_TCK`).
const CLOCK_TICKS: f64 = 100.0;
/// How long a child may take to answer SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// How long the services may take to become ready.
const READY_LIMIT: Duration = Duration::from_secs(60);

/// Runs the benchmark.
pub async fn run(settings: &Settings, args: BenchArgs) -> u8 {
    let plan = match Plan::new(settings, args) {
        Ok(plan) => plan,
        Err(err) => {
            eprintln!("error: {err}");
            return exit::UNAVAILABLE;
        }
    };
    let mut fleet = Fleet::default();
    let limit = Duration::from_secs(plan.args.timeout);
    let outcome = tokio::select! {
        outcome = tokio::time::timeout(limit, measure(&plan, &mut fleet)) => {
            outcome.unwrap_or_else(|_| Err(format!("gave up after {}s (raise --timeout)", plan.args.timeout)))
        }
        () = interrupted() => Err("interrupted".to_owned()),
    };
    fleet.stop().await;
    if plan.args.nats.is_some() {
        plan.clean_external_server().await;
    }
    let notes = fleet.log_warnings();
    finish(&plan, outcome, &notes)
}

/// Prints the figures (or the error) and picks the exit code.
fn finish(plan: &Plan, outcome: Result<Report, String>, notes: &[Note]) -> u8 {
    print_notes(notes);
    match outcome {
        Ok(report) => {
            if plan.args.json {
                print_json(&report.json(notes));
            } else {
                report.print();
            }
            plan.remove_workdir();
            if report.muster.failed_runs > 0 { exit::RUN_FAILED } else { exit::OK }
        }
        Err(err) => {
            eprintln!("error: {err}");
            eprintln!("logs kept in {}", plan.workdir.display());
            exit::UNAVAILABLE
        }
    }
}

/// Resolves on SIGINT or SIGTERM (never, if the handlers cannot be installed).
async fn interrupted() {
    use tokio::signal::unix::{SignalKind, signal};
    match (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) {
        (Ok(mut int), Ok(mut term)) => {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
        }
        _ => std::future::pending().await,
    }
}

fn progress(text: &str) {
    eprintln!("bench: {text}");
}

// ----- plan: flags, private prefix, working directory -----

/// What this invocation does and where it keeps its files.
struct Plan {
    args: BenchArgs,
    /// The caller's settings under the benchmark's own prefix.
    settings: Settings,
    subjects: Subjects,
    workdir: PathBuf,
    exe: PathBuf,
}

impl Plan {
    fn new(settings: &Settings, args: BenchArgs) -> Result<Self, String> {
        let exe = std::env::current_exe().map_err(|e| format!("cannot locate the muster binary: {e}"))?;
        let mut settings = settings.clone();
        settings.prefix = format!("muster_bench_{}", std::process::id());
        let subjects = Subjects::new(settings.prefix.clone());
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
        let workdir = std::env::temp_dir().join(format!("muster-bench-{}-{nanos}", std::process::id()));
        let scenarios = workdir.join("scenarios");
        std::fs::create_dir_all(&scenarios).map_err(|e| format!("cannot create {}: {e}", scenarios.display()))?;
        let plan = Self { args, settings, subjects, workdir, exe };
        let written =
            plan.write_protocol(PROTOCOL_ID, plan.args.steps).and_then(|()| plan.write_protocol(WARMUP_ID, 4));
        if written.is_err() {
            plan.remove_workdir();
        }
        written.map(|()| plan)
    }

    fn scenarios(&self) -> PathBuf {
        self.workdir.join("scenarios")
    }

    fn write_protocol(&self, id: &str, steps: u32) -> Result<(), String> {
        let path = self.scenarios().join(format!("{id}.yaml"));
        std::fs::write(&path, protocol_yaml(id, steps)).map_err(|e| format!("cannot write {}: {e}", path.display()))
    }

    fn remove_workdir(&self) {
        if let Err(err) = std::fs::remove_dir_all(&self.workdir) {
            eprintln!("warning: cannot remove {}: {err}", self.workdir.display());
        }
    }

    /// A `muster` child with the benchmark's settings passed through the environment (they
    /// override any `muster.toml` the child reads).
    fn muster_command(&self, args: &[OsString]) -> Command {
        let ms = |d: Duration| format!("{}ms", d.as_millis());
        let settings = &self.settings;
        let mut command = Command::new(&self.exe);
        command
            .args(args)
            .env("MUSTER_PREFIX", &settings.prefix)
            .env("MUSTER_LEASE", ms(settings.lease.0))
            .env("MUSTER_MAX_DELIVER", settings.max_deliver.to_string())
            .env("MUSTER_AGENT_CONCURRENCY", settings.agent_concurrency.to_string())
            .env("MUSTER_HEARTBEAT", ms(settings.heartbeat.0))
            .env("MUSTER_SHUTDOWN_GRACE", ms(settings.shutdown_grace.0))
            .env("NO_COLOR", "1");
        command
    }

    /// Deletes what the benchmark created on a server it does not own (best effort).
    async fn clean_external_server(&self) {
        let Some(url) = &self.args.nats else { return };
        let prefix = &self.settings.prefix;
        let upper = prefix.to_uppercase();
        let cleanup = async {
            let client = async_nats::connect(url.as_str()).await.map_err(|e| e.to_string())?;
            let js = jetstream::new(client);
            for stream in
                [format!("{upper}_WORK"), format!("{upper}_EVENTS"), format!("{upper}_DLQ"), RAW_STREAM.to_owned()]
            {
                let _ = js.delete_stream(&stream).await;
            }
            let _ = js.delete_key_value(format!("{prefix}_runs")).await;
            Ok::<(), String>(())
        };
        match tokio::time::timeout(Duration::from_secs(10), cleanup).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => eprintln!("warning: could not remove the benchmark's streams from {url}: {err}"),
            Err(_) => eprintln!("warning: removing the benchmark's streams from {url} timed out"),
        }
    }
}

/// A protocol of `steps` no-op steps whose owners cycle through the four roles.
fn protocol_yaml(id: &str, steps: u32) -> String {
    let mut yaml = format!("id: {id}\nversion: \"1\"\ntitle: muster bench, {steps} no-op steps\nsteps:\n");
    for (index, role) in (0..steps).zip(Role::ALL.iter().cycle()) {
        let _ = write!(
            yaml,
            "  - id: s{:04}\n    owner: {role}\n    exec:\n      program: \"true\"\n      timeout: 30s\n",
            index + 1
        );
    }
    yaml
}

// ----- child processes -----

/// A child process this command started.
struct Proc {
    name: String,
    pid: u32,
    child: Child,
    log: PathBuf,
}

impl Proc {
    /// Starts `command` with stdout and stderr going to `log`.
    fn spawn(name: &str, mut command: Command, log: PathBuf) -> Result<Self, String> {
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

    /// CPU time used so far, in clock ticks.
    fn cpu_ticks(&self) -> Option<u64> {
        cpu_ticks(self.pid)
    }
}

/// Warning and error lines of one child's log: its name, how many, the first few.
type Note = (String, usize, Vec<String>);

/// Everything started, so that every path can stop it.
#[derive(Default)]
struct Fleet {
    server: Option<Proc>,
    orchestrator: Option<Proc>,
    agents: Vec<Proc>,
}

impl Fleet {
    fn all(&mut self) -> impl Iterator<Item = &mut Proc> {
        self.server.iter_mut().chain(self.orchestrator.iter_mut()).chain(self.agents.iter_mut())
    }

    /// `Err` describing the first child that has exited.
    fn check_alive(&mut self) -> Result<(), String> {
        self.all().find_map(Proc::gone).map_or(Ok(()), Err)
    }

    /// Stops the muster services, then the server.
    async fn stop(&mut self) {
        let mut services: Vec<&mut Proc> = self.orchestrator.iter_mut().chain(self.agents.iter_mut()).collect();
        stop_all(&mut services).await;
        let mut server: Vec<&mut Proc> = self.server.iter_mut().collect();
        stop_all(&mut server).await;
    }

    /// Warning and error lines in the children's logs: name, count, first few.
    fn log_warnings(&mut self) -> Vec<Note> {
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

/// Starts a nats-server on a free loopback port with its own store; returns its URL.
async fn start_server(fleet: &mut Fleet, workdir: &Path) -> Result<String, String> {
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

async fn wait_server_ready(server: &mut Proc, port: u16, log: &Path) -> Result<(), String> {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(20) {
        if let Some(why) = server.gone() {
            return Err(why);
        }
        let listening = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok();
        if listening && std::fs::read_to_string(log).is_ok_and(|l| l.contains("Server is ready")) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(format!("nats-server not ready after 20s; last log lines:\n{}", log_tail(log, 15)))
}

// ----- measurement -----

/// Latency figures in milliseconds.
#[derive(Debug, Clone, Copy)]
struct Summary {
    count: usize,
    p50: f64,
    p99: f64,
    max: f64,
}

impl Summary {
    fn of(mut millis: Vec<f64>) -> Self {
        millis.sort_by(f64::total_cmp);
        let rank = |p: f64| {
            let index = ((p / 100.0) * millis.len() as f64).ceil() as usize;
            millis.get(index.saturating_sub(1)).copied().unwrap_or(f64::NAN)
        };
        Self { count: millis.len(), p50: rank(50.0), p99: rank(99.0), max: millis.last().copied().unwrap_or(f64::NAN) }
    }
}

/// The raw JetStream floor.
struct Floor {
    round_trip: Summary,
    per_second: f64,
}

/// CPU time of the children, in clock ticks.
#[derive(Debug, Clone, Copy, Default)]
struct Cpu {
    orchestrator: Option<u64>,
    agents: Option<u64>,
    server: Option<u64>,
}

impl Cpu {
    fn sample(fleet: &Fleet) -> Self {
        let agents = fleet.agents.iter().map(Proc::cpu_ticks).sum::<Option<u64>>();
        Self {
            orchestrator: fleet.orchestrator.as_ref().and_then(Proc::cpu_ticks),
            agents: if fleet.agents.is_empty() { None } else { agents },
            server: fleet.server.as_ref().and_then(Proc::cpu_ticks),
        }
    }

    fn since(self, before: Self) -> Self {
        let delta = |a: Option<u64>, b: Option<u64>| Some(a?.saturating_sub(b?));
        Self {
            orchestrator: delta(self.orchestrator, before.orchestrator),
            agents: delta(self.agents, before.agents),
            server: delta(self.server, before.server),
        }
    }
}

/// What the muster phase measured.
struct Muster {
    runs: usize,
    failed_runs: usize,
    step: Summary,
    run: Summary,
    wall_seconds: f64,
    cpu: Cpu,
}

impl Muster {
    fn steps_per_second(&self) -> f64 {
        self.step.count as f64 / self.wall_seconds
    }

    fn runs_per_second(&self) -> f64 {
        self.runs as f64 / self.wall_seconds
    }

    /// CPU milliseconds per measured step.
    fn cpu_ms_per_step(&self, ticks: Option<u64>) -> Option<f64> {
        let steps = self.step.count;
        (steps > 0).then_some(())?;
        Some(ticks? as f64 * 1000.0 / CLOCK_TICKS / steps as f64)
    }
}

/// Everything one invocation measured.
struct Report {
    args: Summarised,
    server: String,
    floor: Floor,
    muster: Muster,
}

/// The flags, as echoed in the output.
struct Summarised {
    runs: u32,
    steps: u32,
    concurrency: u32,
    agents: u32,
    baseline: u32,
    nats: Option<String>,
}

async fn measure(plan: &Plan, fleet: &mut Fleet) -> Result<Report, String> {
    let url = match &plan.args.nats {
        Some(url) => url.clone(),
        None => {
            progress("starting a private nats-server");
            start_server(fleet, &plan.workdir).await?
        }
    };
    let bus = services::connect(&plan.settings, &url, "muster-bench")
        .await
        .map_err(|_| "no usable NATS server".to_owned())?;
    let server = bus.client().server_info().version;
    progress(&format!("raw JetStream floor: {} round trips", plan.args.baseline));
    let floor = measure_floor(bus.client(), &url, plan.args.baseline).await?;
    let muster = measure_muster(plan, fleet, &bus, &url).await?;
    let args = &plan.args;
    let args = Summarised {
        runs: args.runs,
        steps: args.steps,
        concurrency: args.concurrency,
        agents: args.agents,
        baseline: args.baseline,
        nats: args.nats.clone(),
    };
    Ok(Report { args, server, floor, muster })
}

// ----- the raw JetStream floor -----

async fn measure_floor(client_a: &async_nats::Client, url: &str, iterations: u32) -> Result<Floor, String> {
    let js_a = jetstream::new(client_a.clone());
    let client_b =
        async_nats::connect(url).await.map_err(|e| format!("cannot open a second connection to {url}: {e}"))?;
    let js_b = jetstream::new(client_b);
    let (results, work) = create_raw_stream(&js_a, &js_b).await?;
    let measured = raw_round_trips(&js_a, &js_b, &work, &results, iterations).await;
    if let Err(err) = js_a.delete_stream(RAW_STREAM).await {
        eprintln!("warning: cannot delete stream {RAW_STREAM}: {err}");
    }
    let (millis, elapsed) = measured?;
    Ok(Floor { round_trip: Summary::of(millis), per_second: f64::from(iterations) / elapsed.as_secs_f64() })
}

/// Creates `BENCH_RAW` afresh with its two durable consumers; returns the result consumer as
/// seen by client A and the work consumer as seen by client B.
async fn create_raw_stream(
    js_a: &jetstream::Context,
    js_b: &jetstream::Context,
) -> Result<(PullConsumer, PullConsumer), String> {
    let _ = js_a.delete_stream(RAW_STREAM).await;
    let config = jetstream::stream::Config {
        name: RAW_STREAM.to_owned(),
        subjects: vec!["bench.raw.>".to_owned()],
        storage: jetstream::stream::StorageType::File,
        ..Default::default()
    };
    let stream = js_a.create_stream(config).await.map_err(|e| format!("cannot create stream {RAW_STREAM}: {e}"))?;
    for (durable, filter) in [("bench-work", RAW_WORK), ("bench-result", RAW_RESULT)] {
        let config = jetstream::consumer::pull::Config {
            durable_name: Some(durable.to_owned()),
            filter_subject: filter.to_owned(),
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            ..Default::default()
        };
        stream.create_consumer(config).await.map_err(|e| format!("cannot create consumer {durable}: {e}"))?;
    }
    let results: PullConsumer =
        stream.get_consumer("bench-result").await.map_err(|e| format!("cannot bind bench-result: {e}"))?;
    let stream_b = js_b
        .get_stream(RAW_STREAM)
        .await
        .map_err(|e| format!("cannot open {RAW_STREAM} from the second client: {e}"))?;
    let work: PullConsumer =
        stream_b.get_consumer("bench-work").await.map_err(|e| format!("cannot bind bench-work: {e}"))?;
    Ok((results, work))
}

/// The timed loop; returns each measured round trip in milliseconds and the loop's wall time.
async fn raw_round_trips(
    js_a: &jetstream::Context,
    js_b: &jetstream::Context,
    work: &PullConsumer,
    results: &PullConsumer,
    iterations: u32,
) -> Result<(Vec<f64>, Duration), String> {
    let payload = bytes::Bytes::from(vec![b'x'; RAW_PAYLOAD]);
    for _ in 0..RAW_WARMUP {
        raw_round_trip(js_a, js_b, work, results, &payload).await?;
    }
    let mut millis = Vec::with_capacity(usize::try_from(iterations).unwrap_or(0));
    let started = Instant::now();
    for _ in 0..iterations {
        let one = Instant::now();
        raw_round_trip(js_a, js_b, work, results, &payload).await?;
        millis.push(one.elapsed().as_secs_f64() * 1000.0);
    }
    Ok((millis, started.elapsed()))
}

/// Work published by A, taken and acked by B, result published by B, taken and acked by A.
async fn raw_round_trip(
    js_a: &jetstream::Context,
    js_b: &jetstream::Context,
    work: &PullConsumer,
    results: &PullConsumer,
    payload: &bytes::Bytes,
) -> Result<(), String> {
    let publish_error = |e: &dyn std::fmt::Display| format!("raw publish failed: {e}");
    js_a.publish(RAW_WORK, payload.clone())
        .await
        .map_err(|e| publish_error(&e))?
        .await
        .map_err(|e| publish_error(&e))?;
    let msg = pull_one(work).await?;
    msg.double_ack().await.map_err(|e| format!("raw double ack failed: {e}"))?;
    js_b.publish(RAW_RESULT, payload.clone())
        .await
        .map_err(|e| publish_error(&e))?
        .await
        .map_err(|e| publish_error(&e))?;
    let msg = pull_one(results).await?;
    msg.ack().await.map_err(|e| format!("raw ack failed: {e}"))
}

/// A batch-1 pull, as the muster bus does it.
async fn pull_one(consumer: &PullConsumer) -> Result<jetstream::Message, String> {
    let mut batch = consumer
        .batch()
        .max_messages(1)
        .expires(Duration::from_secs(5))
        .messages()
        .await
        .map_err(|e| format!("raw pull failed: {e}"))?;
    match batch.next().await {
        Some(Ok(msg)) => Ok(msg),
        Some(Err(err)) => Err(format!("raw pull failed: {err}")),
        None => Err("raw pull: no message within 5s".to_owned()),
    }
}

// ----- the muster phase -----

async fn measure_muster(plan: &Plan, fleet: &mut Fleet, bus: &NatsBus, url: &str) -> Result<Muster, String> {
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
    progress(&format!("{} runs × {} steps, {} in flight", plan.args.runs, plan.args.steps, plan.args.concurrency));
    let before = Cpu::sample(fleet);
    let first_trigger = Timestamp::now();
    let runs = drive(plan, fleet, bus, &mut finished).await?;
    let cpu = Cpu::sample(fleet).since(before);
    Ok(summarise(&runs, first_trigger, cpu))
}

fn trigger(protocol: &str) -> RunTriggered {
    RunTriggered { protocol_id: protocol.to_owned(), inputs: BTreeMap::new(), protocol: None }
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

/// Triggers the measured runs, `concurrency` at a time, and returns their final snapshots.
/// Finished events wake it; a slow poll of the snapshots covers a lost event.
async fn drive(
    plan: &Plan,
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
            let id = client::submit(bus, &plan.subjects, trigger(PROTOCOL_ID)).await.map_err(|e| match e {
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

/// Per-step latencies (dispatch → result accepted), run latencies and throughput.
fn summarise(runs: &[RunSnapshot], first_trigger: Timestamp, cpu: Cpu) -> Muster {
    let millis = |from: Timestamp, to: Timestamp| to.duration_since(from).as_secs_f64() * 1000.0;
    let steps: Vec<f64> = runs
        .iter()
        .flat_map(|r| &r.steps)
        .filter(|s| s.state == StepState::Succeeded)
        .filter_map(|s| Some(millis(s.started_at?, s.finished_at?)))
        .collect();
    let run_times: Vec<f64> = runs.iter().filter_map(|r| Some(millis(r.started_at, r.finished_at?))).collect();
    let last = runs.iter().filter_map(|r| r.finished_at).max().unwrap_or(first_trigger);
    Muster {
        runs: runs.len(),
        failed_runs: runs.iter().filter(|r| r.state != RunState::Succeeded).count(),
        step: Summary::of(steps),
        run: Summary::of(run_times),
        wall_seconds: last.duration_since(first_trigger).as_secs_f64(),
        cpu,
    }
}

// ----- output -----

impl Report {
    fn latency_ratio(&self) -> f64 {
        self.muster.step.p50 / self.floor.round_trip.p50
    }

    fn throughput_ratio(&self) -> f64 {
        self.floor.per_second / self.muster.steps_per_second()
    }

    fn print(&self) {
        let (a, f, m) = (&self.args, &self.floor, &self.muster);
        let server = if a.nats.is_some() { "" } else { " (private, sync_interval: always)" };
        println!(
            "muster bench · {} runs × {} steps · {} in flight · {} agent(s) per role · nats-server {}{server}",
            a.runs, a.steps, a.concurrency, a.agents, self.server
        );
        println!();
        println!("{:<30} {:>9} {:>9} {:>9}  throughput", "", "p50", "p99", "max");
        println!(
            "{:<30} {:>9} {:>9} {:>9}  {:.0} round trips/s ({} round trips)",
            "raw JetStream round trip",
            ms(f.round_trip.p50),
            ms(f.round_trip.p99),
            ms(f.round_trip.max),
            f.per_second,
            f.round_trip.count
        );
        println!(
            "{:<30} {:>9} {:>9} {:>9}  {:.1} steps/s ({} steps)",
            "muster step (dispatch→result)",
            ms(m.step.p50),
            ms(m.step.p99),
            ms(m.step.max),
            m.steps_per_second(),
            m.step.count
        );
        println!(
            "{:<30} {:>9} {:>9} {:>9}  {:.2} runs/s ({} runs, {} failed, {:.2}s wall)",
            "muster run (end to end)",
            ms(m.run.p50),
            ms(m.run.p99),
            ms(m.run.max),
            m.runs_per_second(),
            m.runs,
            m.failed_runs,
            m.wall_seconds
        );
        println!();
        println!("{:<30} {:.2}×", "muster p50 / floor p50", self.latency_ratio());
        println!("{:<30} {:.2}×", "floor ops/s / muster steps/s", self.throughput_ratio());
        let cpu = |ticks| m.cpu_ms_per_step(ticks).map_or_else(|| "n/a".to_owned(), ms);
        println!(
            "{:<30} {}  (agents {}, nats-server {})",
            "orchestrator CPU per step",
            cpu(m.cpu.orchestrator),
            cpu(m.cpu.agents),
            cpu(m.cpu.server)
        );
    }

    fn json(&self, notes: &[Note]) -> serde_json::Value {
        let (a, f, m) = (&self.args, &self.floor, &self.muster);
        let summary =
            |s: &Summary| serde_json::json!({ "count": s.count, "p50_ms": s.p50, "p99_ms": s.p99, "max_ms": s.max });
        let warnings: BTreeMap<&str, usize> = notes.iter().map(|(name, count, _)| (name.as_str(), *count)).collect();
        serde_json::json!({
            "config": {
                "runs": a.runs, "steps": a.steps, "concurrency": a.concurrency, "agents_per_role": a.agents,
                "baseline": a.baseline, "nats": a.nats, "private_server": a.nats.is_none(), "server_version": self.server,
            },
            "floor": { "round_trip": summary(&f.round_trip), "round_trips_per_second": f.per_second, "payload_bytes": RAW_PAYLOAD },
            "muster": {
                "runs": m.runs, "failed_runs": m.failed_runs, "wall_seconds": m.wall_seconds,
                "step": summary(&m.step), "run": summary(&m.run),
                "steps_per_second": m.steps_per_second(), "runs_per_second": m.runs_per_second(),
            },
            "ratios": { "latency_p50": self.latency_ratio(), "throughput": self.throughput_ratio() },
            "cpu_ms_per_step": {
                "clock_ticks_per_second": CLOCK_TICKS,
                "orchestrator": m.cpu_ms_per_step(m.cpu.orchestrator),
                "agents": m.cpu_ms_per_step(m.cpu.agents),
                "nats_server": m.cpu_ms_per_step(m.cpu.server),
            },
            "child_log_warnings": warnings,
        })
    }
}

/// `1.234` → `1.23ms`.
fn ms(value: f64) -> String {
    format!("{value:.2}ms")
}

fn print_notes(notes: &[Note]) {
    for (name, count, first) in notes {
        eprintln!("note: {name} logged {count} warning/error line(s), e.g.:");
        for line in first {
            eprintln!("  {line}");
        }
    }
}

fn print_json(value: &serde_json::Value) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => println!("{text}"),
        Err(err) => eprintln!("error: cannot render JSON: {err}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let s = Summary::of((1..=100).map(f64::from).rev().collect());
        assert_eq!((s.count, s.p50, s.p99, s.max), (100, 50.0, 99.0, 100.0));
        assert!(Summary::of(Vec::new()).p50.is_nan());
    }

    #[test]
    fn generated_protocol_parses_and_cycles_roles() {
        let protocol = muster_schemas::protocol::parse_protocol("bench.yaml", &protocol_yaml("bench", 6));
        assert!(protocol.is_ok(), "{protocol:?}");
        let Ok(protocol) = protocol else { return };
        let owners: Vec<Role> = protocol.steps.iter().map(|s| s.owner).collect();
        assert_eq!(owners, [Role::Resource, Role::Devops, Role::Security, Role::Sre, Role::Resource, Role::Devops]);
        assert!(protocol.steps.iter().all(|s| s.exec.program == "true"));
    }

    #[test]
    fn own_cpu_time_is_readable() {
        assert!(cpu_ticks(std::process::id()).is_some());
    }
}
