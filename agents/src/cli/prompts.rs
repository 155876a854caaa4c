//! What people do from the command line: list and show prompts (`muster escalations`,
//! `muster show ESC-12`), and answer them (`answer`, `ack`, `form`, `approve`, `reject`,
//! `done`). Every answer is signed with the user's own key (see `muster keygen`); the
//! orchestrator checks it and whether this person may answer before anything happens.

use super::commands::{connect_cluster, decide, print_json};
use super::settings::Settings;
use super::{Cluster, exit};
use crate::orchestrator::{engine, prompts};
use crate::store::RunStore;
use muster_bus::nats::NatsBus;
use muster_bus::subjects::Subjects;
use muster_schemas::Payload;
use muster_schemas::answer::AnswerAction;
use muster_schemas::run::{PromptStatus, RunSnapshot};
use uuid::Uuid;

/// The number in a prompt id (`ESC-12` → 12), or why it is not one — checked before anything
/// connects, so a typo is reported as a typo.
fn prompt_number(name: &str) -> Result<u64, (u8, String)> {
    let number = name.rsplit_once('-').and_then(|(_, n)| n.parse::<u64>().ok()).filter(|n| *n > 0);
    number.ok_or_else(|| (exit::INVALID, format!("`{name}` is not a prompt id like ESC-12, F-3, A-4, D-5 or M-6")))
}

/// The run and prompt named by `ESC-12` (looked up by number) or by `RUN GATE`.
async fn resolve(bus: &NatsBus, name: &str) -> Result<(Uuid, String), (u8, String)> {
    let number = prompt_number(name)?;
    match prompts::lookup(bus, number).await {
        Ok(Some(found)) => Ok((found.run_id, name.to_ascii_uppercase())),
        Ok(None) => Err((exit::INVALID, format!("no prompt {name}; `muster escalations` lists the open ones"))),
        Err(err) => Err((exit::UNAVAILABLE, format!("cannot look up {name}: {err}"))),
    }
}

/// Signs `action` on `prompt` (a prompt id, or `RUN GATE` for a gate that asks) and sends it.
pub async fn respond(
    settings: &Settings,
    target: &[String],
    action: AnswerAction,
    note: Option<String>,
    cluster: Cluster,
) -> u8 {
    if let [prompt] = target
        && let Err((code, message)) = prompt_number(prompt)
    {
        eprintln!("error: {message}");
        return code;
    }
    let bus = match connect_cluster(settings, cluster.clone(), "muster-cli").await {
        Ok(bus) => bus,
        Err(code) => return code,
    };
    let resolved = match target {
        [run, gate] => match run.parse::<Uuid>() {
            Ok(run) => Ok((run, gate.clone())),
            Err(_) => Err((exit::INVALID, format!("`{run}` is not a run id"))),
        },
        [prompt] => resolve(&bus, prompt).await,
        _ => Err((exit::INVALID, "name a prompt (ESC-12) or a run and its gate".to_owned())),
    };
    let (run_id, prompt) = match resolved {
        Ok(found) => found,
        Err((code, message)) => {
            eprintln!("error: {message}");
            return code;
        }
    };
    let signed = match super::keys::sign_cli_answer(settings, run_id, &prompt, action, note) {
        Ok(signed) => signed,
        Err(message) => {
            eprintln!("error: {message}");
            return exit::INVALID;
        }
    };
    let subject = Subjects::new(settings.prefix.clone()).answer(&run_id.to_string());
    decide(settings, cluster, &subject, run_id, Payload::SignedAnswer(signed)).await
}

/// `muster escalations`: prompts of every run, open ones unless `all`.
pub async fn list(settings: &Settings, all: bool, json: bool, cluster: Cluster) -> u8 {
    let bus = match connect_cluster(settings, cluster, "muster-cli").await {
        Ok(bus) => bus,
        Err(code) => return code,
    };
    let runs = match RunStore::new(bus).list().await {
        Ok(runs) => runs,
        Err(err) => {
            eprintln!("error: cannot list runs: {err}");
            return exit::UNAVAILABLE;
        }
    };
    let rows: Vec<(Uuid, PromptStatus)> = runs
        .iter()
        .flat_map(|run| run.prompts.iter().map(move |p| (run.id, PromptStatus::of(p))))
        .filter(|(_, p)| all || p.state.is_open())
        .collect();
    if json {
        let values: Vec<serde_json::Value> = rows
            .iter()
            .map(|(run, p)| {
                let mut value = serde_json::to_value(p).unwrap_or_default();
                if let Some(object) = value.as_object_mut() {
                    object.insert("run_id".into(), serde_json::json!(run));
                }
                value
            })
            .collect();
        print_json(&values);
    } else if rows.is_empty() {
        println!("{}", if all { "no prompts yet" } else { "nothing waits for people" });
    } else {
        println!("{:<8}  {:<10}  {:<12}  {:<36}  {:<25}  TITLE", "ID", "KIND", "STATE", "RUN", "NEXT DEADLINE");
        for (run, p) in rows {
            let due = p.due.map(|d| d.to_string()).unwrap_or_else(|| "-".into());
            let kind =
                serde_json::to_value(p.kind).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
            println!("{:<8}  {:<10}  {:<12}  {run}  {due:<25}  {}", p.id, kind, p.state.as_str(), p.title);
        }
    }
    exit::OK
}

/// `muster show ESC-12`: the prompt's context package and where it stands.
pub async fn show(settings: &Settings, name: &str, json: bool, cluster: Cluster) -> u8 {
    if let Err((code, message)) = prompt_number(name) {
        eprintln!("error: {message}");
        return code;
    }
    let bus = match connect_cluster(settings, cluster, "muster-cli").await {
        Ok(bus) => bus,
        Err(code) => return code,
    };
    let (run_id, label) = match resolve(&bus, name).await {
        Ok(found) => found,
        Err((code, message)) => {
            eprintln!("error: {message}");
            return code;
        }
    };
    let run: RunSnapshot = match RunStore::new(bus).load(run_id).await {
        Ok(Some((run, _))) => run,
        Ok(None) => {
            eprintln!("error: {label} belongs to run {run_id}, which no longer exists");
            return exit::INVALID;
        }
        Err(err) => {
            eprintln!("error: cannot read run {run_id}: {err}");
            return exit::UNAVAILABLE;
        }
    };
    let Some(index) = engine::prompts::find(&run, &label) else {
        eprintln!("error: run {run_id} has no prompt {label}");
        return exit::INVALID;
    };
    let prompt = &run.prompts[index];
    if json {
        let mut value = serde_json::to_value(PromptStatus::of(prompt)).unwrap_or_default();
        if let Some(object) = value.as_object_mut() {
            object.insert("run_id".into(), serde_json::json!(run_id));
            object.insert("text".into(), serde_json::json!(prompt.text));
            object.insert("binding".into(), serde_json::json!(prompt.binding));
        }
        print_json(&value);
        return exit::OK;
    }
    println!("{label}  {}  ({})", prompt.title, prompt.state.as_str());
    println!("run {run_id}, raised {}", prompt.raised_at);
    if let Some(due) = prompt.due {
        println!("next deadline {due} ({:?})", prompt.stage);
    }
    println!();
    println!("{}", prompt.text);
    if let Some(outcome) = &prompt.outcome {
        let option = outcome.option.as_deref().map(|o| format!(" `{o}`")).unwrap_or_default();
        println!();
        println!("{}{option} by {} at {}", prompt.state.as_str(), outcome.by, outcome.at);
    }
    exit::OK
}
