//! The work for one attempt of one action: the step's own `exec`, an alternative's, or the
//! rollback's, with every template rendered one string at a time.

use crate::wire;
use muster_schemas::message::{ExecSpec, OutputWanted, Probe, Purpose, StepAssigned};
use muster_schemas::protocol::model::action::HasAction;
use muster_schemas::protocol::model::{ActionRef, ExecAction, OutputSource};
use muster_schemas::protocol::template::{self, Context, RunFacts, StepFacts};
use muster_schemas::run::{RunSnapshot, StepState};
use std::collections::BTreeMap;

/// Renders one template string for step `step` with what the run knows now (inputs, outputs of
/// succeeded steps, run and step facts): what an approval's `binds` names.
pub fn render_for(run: &RunSnapshot, step: &str, attempt: u32, text: &str) -> Result<String, String> {
    let run_id = run.id.to_string();
    let outputs = succeeded_outputs(run, None);
    let context = Context {
        inputs: &run.inputs,
        outputs: &outputs,
        run: RunFacts { id: &run_id },
        step: StepFacts { id: step, attempt },
    };
    template::render(text, &context)
}

/// Outputs of succeeded steps as text, plus those of `also` (a step being compensated).
fn succeeded_outputs(run: &RunSnapshot, also: Option<&str>) -> BTreeMap<String, BTreeMap<String, String>> {
    run.steps
        .iter()
        .filter(|s| s.state == StepState::Succeeded || Some(s.id.as_str()) == also)
        .map(|s| (s.id.clone(), s.outputs.iter().map(|(k, v)| (k.clone(), text_of(v))).collect()))
        .collect()
}

/// Renders the work for the step at `index`, current attempt, for `purpose`.
pub fn assignment(run: &RunSnapshot, index: usize, purpose: Purpose) -> Result<StepAssigned, String> {
    let record = run.steps.get(index).ok_or("step missing from run")?;
    let step = run.protocol.step(&record.id).ok_or("step missing from protocol")?;
    let attempt = record.attempt;
    let (action, owner, timeout) = match &purpose {
        Purpose::Run => (step.action(), step.owner, step.timeout()),
        Purpose::Alternative(id) => {
            let alt = step.alternatives.iter().find(|a| &a.id == id).ok_or_else(|| format!("no alternative `{id}`"))?;
            (alt.action(), alt.owner.unwrap_or(step.owner), step.timeout())
        }
        Purpose::Rollback => {
            let rollback = step.rollback.as_ref().ok_or("the step has no rollback")?;
            (rollback.action(), rollback.owner.unwrap_or(step.owner), rollback.timeout.map_or(step.timeout(), |t| t.0))
        }
    };
    let run_id = run.id.to_string();
    let outputs = succeeded_outputs(run, (purpose == Purpose::Rollback).then_some(step.id.as_str()));
    let context = Context {
        inputs: &run.inputs,
        outputs: &outputs,
        run: RunFacts { id: &run_id },
        step: StepFacts { id: &step.id, attempt },
    };
    let (exec, probe) = match action {
        Some(ActionRef::Exec(exec)) => (Some(render(exec, &context, timeout)?), None),
        Some(ActionRef::Http(_) | ActionRef::Tcp(_) | ActionRef::Tls(_) | ActionRef::Wait(_)) => {
            (None, Some(probe(action, &context, timeout)?))
        }
        _ => return Err(format!("step `{}` has no action this engine can run", step.id)),
    };
    let wanted = if purpose == Purpose::Rollback {
        Vec::new()
    } else {
        step.outputs
            .iter()
            .filter(|(_, o)| matches!(o.from, OutputSource::StdoutJson | OutputSource::File))
            .map(|(name, o)| OutputWanted {
                name: name.clone(),
                kind: o.kind.as_str().to_owned(),
                from: if o.from == OutputSource::File { "file" } else { "stdout_json" }.to_owned(),
                path: o.path.clone().unwrap_or_else(|| match o.from {
                    OutputSource::File => name.clone(),
                    _ => format!("/{name}"),
                }),
            })
            .collect()
    };
    let key = match &purpose {
        Purpose::Rollback => format!("{}/{}/rollback", run.id, step.id),
        _ => wire::idempotency_key(run.id, &step.id, attempt),
    };
    Ok(StepAssigned {
        run_id: run.id,
        step_id: step.id.clone(),
        owner,
        attempt,
        idempotency_key: key,
        exec,
        probe,
        probe_timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
        purpose,
        outputs: wanted,
    })
}

/// The native check for an `http`, `tcp`, `tls` or `wait` action.
fn probe(action: Option<ActionRef<'_>>, context: &Context<'_>, timeout: std::time::Duration) -> Result<Probe, String> {
    let render = |text: &str| template::render(text, context);
    let ms = |d: Option<muster_schemas::protocol::DurationSpec>| {
        d.map(|d| u64::try_from(d.0.as_millis()).unwrap_or(u64::MAX))
    };
    Ok(match action {
        Some(ActionRef::Http(http)) => Probe::Http {
            method: http.method.clone(),
            url: render(&http.url)?,
            headers: http.headers.iter().map(|(k, v)| Ok((k.clone(), render(v)?))).collect::<Result<_, String>>()?,
            body: http.body.as_deref().map(render).transpose()?,
            expect_status: http.expect.status.clone(),
            max_latency_ms: ms(http.expect.max_latency),
            body_matches: http.expect.body_matches.clone(),
        },
        Some(ActionRef::Tcp(tcp)) => {
            Probe::Tcp { host: render(&tcp.host)?, port: tcp.port, max_latency_ms: ms(tcp.max_latency) }
        }
        Some(ActionRef::Tls(tls)) => {
            let host = render(&tls.host)?;
            let server_name = tls.server_name.as_deref().map(render).transpose()?.unwrap_or_else(|| host.clone());
            Probe::Tls { host, port: tls.port, server_name, min_days_valid: tls.min_days_valid }
        }
        Some(ActionRef::Wait(wait)) => match wait.duration {
            Some(d) => Probe::Wait { duration_ms: u64::try_from(d.0.min(timeout).as_millis()).unwrap_or(u64::MAX) },
            None => return Err("`wait: until` is not executed by this engine yet".to_owned()),
        },
        _ => return Err("not a probe".to_owned()),
    })
}

fn render(exec: &ExecAction, context: &Context<'_>, timeout: std::time::Duration) -> Result<ExecSpec, String> {
    let render = |text: &str| template::render(text, context);
    let (program, args) = match (&exec.program, &exec.shell) {
        (Some(program), _) => (render(program)?, exec.args.iter().map(|a| render(a)).collect::<Result<_, _>>()?),
        // The script is passed verbatim: templates are refused in `shell:` at load time.
        (None, Some(script)) => ("sh".to_owned(), vec!["-c".to_owned(), script.clone()]),
        (None, None) => return Err("`exec` has neither `program` nor `shell`".to_owned()),
    };
    Ok(ExecSpec {
        program,
        args,
        env: exec.env.iter().map(|(k, v)| Ok((k.clone(), render(v)?))).collect::<Result<_, String>>()?,
        cwd: exec.cwd.as_deref().map(render).transpose()?,
        timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
    })
}

/// An output as template text: strings as they are, everything else as JSON.
fn text_of(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
