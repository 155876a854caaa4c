//! The user commands: `run`, `trigger`, `status`, `runs`, `validate`.

use super::Cluster;
use super::client::{self, SubmitError};
use super::exit;
use super::services::connect;
use super::settings::Settings;
use crate::embedded::{Embedded, EmbeddedOptions};
use crate::store::RunStore;
use muster_bus::Bus;
use muster_bus::subjects::Subjects;
use muster_schemas::Payload;
use muster_schemas::message::{Control, RefusalCode, RunControl, RunTriggered};
use muster_schemas::protocol::{LoadError, Protocol, read_protocol, resolve_inputs};
use muster_schemas::run::{RunSnapshot, RunState};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use uuid::Uuid;

/// `muster run FILE`.
pub async fn run(
    settings: &Settings,
    file: &Path,
    inputs: Vec<(String, String)>,
    nats: Option<String>,
    json: bool,
) -> u8 {
    let protocol = match load(file) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let missing = crate::orchestrator::engine::unsupported(&protocol);
    if !missing.is_empty() {
        eprintln!("error: {}: {}", file.display(), crate::orchestrator::not_executable(&protocol.id, &missing));
        return exit::INVALID;
    }
    let inputs: BTreeMap<String, String> = inputs.into_iter().collect();
    if let Err(err) = resolve_inputs(&protocol, &inputs) {
        eprintln!("error: {}: {err}", file.display());
        return exit::INVALID;
    }
    let trigger = RunTriggered {
        protocol_id: protocol.id.clone(),
        inputs,
        protocol: Some(Box::new(protocol)),
        idempotency_key: None,
        requested_by: std::env::var("USER").ok(),
    };
    let nats = nats.or_else(|| settings.nats_url.clone());
    if let Some(url) = nats {
        let bus = match connect(settings, &url, "muster-cli").await {
            Ok(bus) => bus,
            Err(code) => return code,
        };
        return submit_and_follow(&bus, settings, trigger, true, false, json).await;
    }
    let embedded = Embedded::start(&EmbeddedOptions {
        lease: settings.lease.0,
        max_deliver: settings.max_deliver,
        agent_concurrency: settings.agent_concurrency,
        shutdown_grace: settings.shutdown_grace.0,
    });
    let code = submit_and_follow(&embedded.bus, settings, trigger, true, true, json).await;
    embedded.shutdown().await;
    code
}

/// `muster trigger PROTOCOL`.
pub async fn trigger(settings: &Settings, trigger: RunTriggered, wait: bool, json: bool, cluster: Cluster) -> u8 {
    let bus = match connect_cluster(settings, cluster, "muster-cli").await {
        Ok(bus) => bus,
        Err(code) => return code,
    };
    submit_and_follow(&bus, settings, trigger, wait, false, json).await
}

async fn submit_and_follow<B: Bus>(
    bus: &B,
    settings: &Settings,
    trigger: RunTriggered,
    wait: bool,
    alone: bool,
    json: bool,
) -> u8 {
    let run_id = match client::submit(bus, &Subjects::new(settings.prefix.clone()), trigger).await {
        Ok(id) => id,
        Err(SubmitError::Refused(code, reason)) => {
            eprintln!("error: trigger refused: {reason}");
            return match code {
                RefusalCode::UnknownProtocol | RefusalCode::InvalidInput => exit::INVALID,
                RefusalCode::Unavailable => exit::UNAVAILABLE,
            };
        }
        Err(SubmitError::Unavailable(reason)) => {
            eprintln!("error: {reason}");
            return exit::UNAVAILABLE;
        }
    };
    if !wait {
        if json {
            println!("{}", serde_json::json!({ "id": run_id }));
        } else {
            println!("{run_id}");
        }
        return exit::OK;
    }
    let mut progress: Box<dyn Write> = if json { Box::new(std::io::stderr()) } else { Box::new(std::io::stdout()) };
    match client::follow(bus, run_id, alone, &mut progress).await {
        Ok(run) => {
            if json {
                print_json(&run.status());
            }
            if run.state == RunState::Succeeded { exit::OK } else { exit::RUN_FAILED }
        }
        Err(err) => {
            eprintln!("error: {err}");
            if err.contains(client::WAITS_FOR_PEOPLE) { exit::RUN_FAILED } else { exit::UNAVAILABLE }
        }
    }
}

/// `muster status RUN`.
pub async fn status(settings: &Settings, run_id: &str, json: bool, cluster: Cluster) -> u8 {
    let Ok(id) = run_id.parse::<Uuid>() else {
        eprintln!("error: `{run_id}` is not a run id (a UUID, as printed by `muster trigger`)");
        return exit::INVALID;
    };
    let bus = match connect_cluster(settings, cluster, "muster-cli").await {
        Ok(bus) => bus,
        Err(code) => return code,
    };
    match RunStore::new(bus.clone()).load(id).await {
        Ok(Some((run, _))) => {
            let dead = dead_letters_of(&bus, id).await;
            if json {
                let mut value = serde_json::to_value(run.status()).unwrap_or_default();
                if let Some(object) = value.as_object_mut() {
                    object.insert("dead_letters".to_owned(), serde_json::to_value(&dead).unwrap_or_default());
                }
                print_json(&value);
            } else {
                print_run(&run);
                for letter in &dead {
                    println!(
                        "dead letter on {}: {} (delivered {} times)",
                        letter.queue, letter.reason, letter.deliveries
                    );
                }
            }
            exit::OK
        }
        Ok(None) => {
            eprintln!("error: no run {id}");
            exit::INVALID
        }
        Err(err) => {
            eprintln!("error: cannot read run {id}: {err}");
            exit::UNAVAILABLE
        }
    }
}

/// A dead letter of a run, as `muster status` shows it.
#[derive(Debug, serde::Serialize)]
struct RunDeadLetter {
    queue: String,
    reason: String,
    deliveries: u32,
    kind: String,
}

/// The dead letters (from every role's queue) that belong to `run`: work that could not be
/// delivered or processed, with the reason.
async fn dead_letters_of<B: muster_bus::WorkQueue>(bus: &B, run: Uuid) -> Vec<RunDeadLetter> {
    let mut out = Vec::new();
    for role in muster_schemas::Role::ALL {
        let Ok(letters) = bus.dead_letters(role.as_str()).await else { continue };
        for letter in letters {
            let Ok(envelope) = crate::wire::decode(&letter.payload) else { continue };
            if envelope.run_id == Some(run) {
                out.push(RunDeadLetter {
                    queue: letter.queue,
                    reason: letter.reason,
                    deliveries: letter.deliveries,
                    kind: envelope.payload.kind().to_owned(),
                });
            }
        }
    }
    out
}

/// `muster cancel|pause|resume|retry|skip RUN`.
pub async fn control(settings: &Settings, run_id: &str, control: Control, by: Option<String>, cluster: Cluster) -> u8 {
    let Ok(id) = run_id.parse::<Uuid>() else {
        eprintln!("error: `{run_id}` is not a run id");
        return exit::INVALID;
    };
    let subject = Subjects::new(settings.prefix.clone()).control(&id.to_string());
    decide(settings, cluster, &subject, id, Payload::RunControl(RunControl { run_id: id, control, by: who(by) })).await
}

fn who(by: Option<String>) -> String {
    by.or_else(|| std::env::var("USER").ok()).unwrap_or_else(|| "unknown".to_owned())
}

pub(super) async fn decide(settings: &Settings, cluster: Cluster, subject: &str, run_id: Uuid, payload: Payload) -> u8 {
    let bus = match connect_cluster(settings, cluster, "muster-cli").await {
        Ok(bus) => bus,
        Err(code) => return code,
    };
    match client::decide(&bus, subject, run_id, payload).await {
        Ok(message) => {
            println!("{message}");
            exit::OK
        }
        Err(client::SubmitError::Refused(_, message)) => {
            eprintln!("error: refused: {message}");
            exit::INVALID
        }
        Err(client::SubmitError::Unavailable(message)) => {
            eprintln!("error: {message}");
            exit::UNAVAILABLE
        }
    }
}

/// `muster runs`.
pub async fn runs(settings: &Settings, json: bool, cluster: Cluster) -> u8 {
    let bus = match connect_cluster(settings, cluster, "muster-cli").await {
        Ok(bus) => bus,
        Err(code) => return code,
    };
    match RunStore::new(bus).list().await {
        Ok(runs) => {
            if json {
                print_json(&runs.iter().map(RunSnapshot::status).collect::<Vec<_>>());
            } else if runs.is_empty() {
                println!("no runs yet");
            } else {
                println!("{:<36}  {:<24}  {:<11}  STARTED", "ID", "PROTOCOL", "STATE");
                for run in &runs {
                    println!("{:<36}  {:<24}  {:<11}  {}", run.id, run.protocol.id, run.state.as_str(), run.started_at);
                }
            }
            exit::OK
        }
        Err(err) => {
            eprintln!("error: cannot list runs: {err}");
            exit::UNAVAILABLE
        }
    }
}

/// `muster validate PATHS...`.
pub fn validate(paths: &[PathBuf], json: bool) -> u8 {
    let mut files = Vec::new();
    for path in paths {
        match protocol_files(path) {
            Ok(found) => files.extend(found),
            Err(err) => {
                eprintln!("error: {}: {err}", path.display());
                return exit::INVALID;
            }
        }
    }
    let mut reports = Vec::new();
    let mut failed = false;
    for file in &files {
        match read_protocol(file) {
            Ok(protocol) => {
                let census = muster_schemas::protocol::census::Census::of(&protocol);
                if !json {
                    println!("{}: ok: `{}`: {}", file.display(), protocol.id, census.summary());
                }
                reports.push(serde_json::json!({ "file": file, "ok": true, "protocol": protocol.id, "census": census, "diagnostics": [] }));
            }
            Err(err) => {
                failed = true;
                let diagnostics = match &err {
                    LoadError::Invalid(d) => serde_json::to_value(d).unwrap_or_default(),
                    LoadError::Io { .. } => {
                        serde_json::json!([{ "path": file, "line": 0, "column": 0, "message": err.to_string(), "hint": null }])
                    }
                };
                if !json {
                    eprintln!("{err}");
                }
                reports.push(serde_json::json!({ "file": file, "ok": false, "diagnostics": diagnostics }));
            }
        }
    }
    if json {
        print_json(&reports);
    }
    if failed { exit::RUN_FAILED } else { exit::OK }
}

/// The protocol files at `path`: the file itself, or the `*.yaml`/`*.yml` files directly in a
/// directory, sorted.
pub fn protocol_files(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    if !path.is_dir() {
        return Ok(vec![path.to_owned()]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    Ok(files)
}

/// Reads one protocol, printing diagnostics; `Err` carries the exit code.
pub fn load(file: &Path) -> Result<Protocol, u8> {
    read_protocol(file).map_err(|err| {
        eprintln!("{err}");
        exit::INVALID
    })
}

pub(super) async fn connect_cluster(
    settings: &Settings,
    cluster: Cluster,
    name: &str,
) -> Result<muster_bus::nats::NatsBus, u8> {
    let Some(url) = cluster.nats.or_else(|| settings.nats_url.clone()) else {
        eprintln!("error: no cluster given: pass --nats URL, set nats_url in muster.toml, or MUSTER_NATS_URL");
        return Err(exit::INVALID);
    };
    connect(settings, &url, name).await
}

pub(super) fn print_json<T: serde::Serialize>(value: &T) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => println!("{text}"),
        Err(err) => eprintln!("error: cannot render JSON: {err}"),
    }
}

fn print_run(run: &RunSnapshot) {
    println!("run       {}", run.id);
    println!("protocol  {}", run.protocol.id);
    println!("state     {}", run.state.as_str());
    println!("started   {}", run.started_at);
    if let Some(finished) = run.finished_at {
        println!("finished  {finished}");
    }
    if let Some(reason) = &run.reason {
        println!("reason    {reason}");
    }
    println!();
    println!(
        "{:<24}  {:<9}  {:<11}  {:>8}  {:>4}  {:>8}  AGENT",
        "STEP", "OWNER", "STATE", "ATTEMPTS", "EXIT", "DURATION"
    );
    for s in run.status().steps {
        println!(
            "{:<24}  {:<9}  {:<11}  {:>8}  {:>4}  {:>8}  {}",
            s.id,
            s.owner.as_str(),
            s.state.as_str(),
            s.attempts,
            s.exit_code.map(|c| c.to_string()).unwrap_or_else(|| "-".into()),
            s.duration_ms.map(client::format_ms).unwrap_or_else(|| "-".into()),
            s.agent.unwrap_or_else(|| "-".into())
        );
    }
    for gate in &run.gates {
        println!();
        println!(
            "gate {}: {}{}",
            gate.id,
            gate.state.as_str(),
            gate.verdict.map(|v| format!(" ({})", v.as_str())).unwrap_or_default()
        );
        for evidence in &gate.evidence {
            let mark = match evidence.met {
                Some(true) => "✓",
                Some(false) => "✗",
                None => "?",
            };
            println!("  {mark} {}: {}", evidence.name, evidence.detail);
        }
        if gate.state == muster_schemas::run::GateState::Waiting {
            println!("  answer with: muster answer {} {} continue|rollback|block", run.id, gate.id);
        }
    }
    for checkpoint in &run.checkpoints {
        println!();
        println!("checkpoint {} at {}: completed {}", checkpoint.phase, checkpoint.at, checkpoint.completed.join(", "));
        for (name, value) in &checkpoint.outputs {
            println!("  {name} = {value}");
        }
    }
}
