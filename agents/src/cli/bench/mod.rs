//! `muster bench`: step latency and throughput through NATS, set against the raw JetStream
//! round trip measured on the same server in the same invocation.
//!
//! ```text
//!  nats-server (private unless --nats)
//!   ├─ floor:  publish work ─▶ pull + double-ack ─▶ publish result ─▶ pull + ack   (one at a time)
//!   └─ muster: `muster orchestrator` + K `muster agent <role>` per role as child processes,
//!              then for each --shape (chain: M `true` steps in a row; dag: start, 8 parallel
//!              steps, a gate, fan-in): N runs, C in flight
//! ```
//!
//! A step's latency is read from the finished run snapshot: dispatch (`started_at`) to result
//! accepted (`finished_at`). Everything runs under its own prefix (`muster_bench_<pid>`), so a
//! deployment sharing the server is never touched, and every child is stopped on every path
//! (SIGTERM, SIGKILL after 5 s).
//!
//! The pieces:
//!
//! - this module: the flags, the `Plan` (private prefix, working directory), the top-level
//!   sequence, the exit code;
//! - `protocols`: the generated protocols (one per shape, and the warm-up), checked as
//!   `muster validate` checks them;
//! - `fleet`: the child processes (private nats-server, orchestrator, agents), their logs,
//!   CPU time and shutdown;
//! - `floor`: the raw JetStream round trip that muster is compared against;
//! - `drive`: the muster phase: start the services, warm up, drive each shape's runs;
//! - `figures`: latency summaries, CPU time and the DAG's critical path, from the snapshots;
//! - `report`: the figures, printed as a table or as JSON.

mod drive;
mod figures;
mod fleet;
mod floor;
mod protocols;
mod report;

use super::exit;
use super::services;
use super::settings::Settings;
use async_nats::jetstream;
use fleet::{Fleet, Note};
use muster_bus::subjects::Subjects;
pub use protocols::ShapeArg;
use report::{Report, Summarised};
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;
use tokio::process::Command;

/// Benchmark flags.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Use this NATS server (JetStream, 2.12+) instead of starting a private one.
    #[arg(long, value_name = "URL")]
    pub nats: Option<String>,
    /// Runs to complete.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub runs: u32,
    /// What a run looks like: a chain of `--steps` steps, a DAG (start, 8 parallel steps, a
    /// quality gate, fan-in), or both one after the other against the same services and floor.
    #[arg(long, value_enum, default_value_t = ShapeArg::Chain)]
    pub shape: ShapeArg,
    /// No-op steps (`true`) per run of the chain shape; owners cycle resource, devops, security,
    /// sre. The DAG shape always has 10.
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
    /// Keep the working directory (the children's logs, the generated protocols) after a
    /// successful run too, to look at where the time went.
    #[arg(long)]
    pub keep_logs: bool,
}

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

/// The whole measurement: server, floor, then muster.
async fn measure(plan: &Plan, fleet: &mut Fleet) -> Result<Report, String> {
    let url = match &plan.args.nats {
        Some(url) => url.clone(),
        None => {
            progress("starting a private nats-server");
            fleet::start_server(fleet, &plan.workdir).await?
        }
    };
    let bus = services::connect(&plan.settings, &url, "muster-bench")
        .await
        .map_err(|_| "no usable NATS server".to_owned())?;
    let server = bus.client().server_info().version;
    progress(&format!("raw JetStream floor: {} round trips", plan.args.baseline));
    let floor = floor::measure_floor(bus.client(), &url, plan.args.baseline).await?;
    let shapes = drive::measure_muster(plan, fleet, &bus, &url).await?;
    Ok(Report { args: Summarised::from(&plan.args), server, floor, shapes })
}

/// Prints the figures (or the error) and picks the exit code.
fn finish(plan: &Plan, outcome: Result<Report, String>, notes: &[Note]) -> u8 {
    report::print_notes(notes);
    match outcome {
        Ok(report) => {
            if plan.args.json {
                report::print_json(&report.json(notes));
            } else {
                report.print();
            }
            if plan.args.keep_logs {
                eprintln!("logs kept in {}", plan.workdir.display());
            } else {
                plan.remove_workdir();
            }
            if report.failed_runs() > 0 { exit::RUN_FAILED } else { exit::OK }
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

/// A progress line on stderr (stdout is kept for the figures).
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
        let written = protocols::write_all(&scenarios, plan.args.shape.shapes(), plan.args.steps);
        if written.is_err() {
            plan.remove_workdir();
        }
        written.map(|()| plan)
    }

    /// Where the generated protocols live (the orchestrator's `--scenarios`).
    fn scenarios(&self) -> PathBuf {
        self.workdir.join("scenarios")
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
            for stream in [
                format!("{upper}_WORK"),
                format!("{upper}_EVENTS"),
                format!("{upper}_DLQ"),
                floor::RAW_STREAM.to_owned(),
            ] {
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
