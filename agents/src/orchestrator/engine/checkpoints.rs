//! Checkpoints: when the last step of a phase finishes, the snapshot records what the phase left
//! behind — its completed steps and the outputs that name what exists (ids, plans, hashes) — in
//! the same durable write. A rollback after any crash reads it from there.

use jiff::Timestamp;
use muster_schemas::protocol::model::MAIN_PHASE;
use muster_schemas::run::{PhaseCheckpoint, RunSnapshot, StepState};
use std::collections::BTreeMap;

/// Checkpoints every phase that has finished since the last call (once each). Nothing is
/// recorded while the run rolls back: that is undoing, not creating.
pub fn record(run: &mut RunSnapshot, now: Timestamp) {
    if run.rollback.is_some() {
        return;
    }
    let mut phases: Vec<(&str, Vec<&str>, &[String])> = Vec::new();
    if !run.protocol.steps.is_empty() {
        phases.push((MAIN_PHASE, run.protocol.steps.iter().map(|s| s.id.as_str()).collect(), &[]));
    }
    for phase in &run.protocol.phases {
        let record = phase.checkpoint.as_ref().map_or(&[][..], |c| c.record.as_slice());
        phases.push((phase.id.as_str(), phase.steps.iter().map(|s| s.id.as_str()).collect(), record));
    }
    let mut new = Vec::new();
    for (phase, steps, wanted) in phases {
        if steps.is_empty() || run.checkpoints.iter().any(|c| c.phase == phase) {
            continue;
        }
        let records: Vec<_> = run.steps.iter().filter(|s| steps.contains(&s.id.as_str())).collect();
        if !records.iter().all(|s| matches!(s.state, StepState::Succeeded | StepState::Skipped | StepState::Failed)) {
            continue;
        }
        let completed: Vec<String> = run.completed.iter().filter(|id| steps.contains(&id.as_str())).cloned().collect();
        let mut outputs = BTreeMap::new();
        for step in records.iter().filter(|s| s.state == StepState::Succeeded) {
            for (name, value) in &step.outputs {
                let qualified = format!("{}.{name}", step.id);
                if wanted.is_empty() || wanted.iter().any(|w| *w == qualified || *w == *name) {
                    outputs.insert(qualified, value.clone());
                }
            }
        }
        new.push(PhaseCheckpoint { phase: phase.to_owned(), at: now, completed, outputs });
    }
    run.checkpoints.extend(new);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::orchestrator::engine::new_run;
    use muster_schemas::protocol::parse_protocol;
    use uuid::Uuid;

    const PROTOCOL: &str = r#"
id: p
version: 1
title: checkpoints
phases:
  - id: build
    checkpoint:
      record: [make.vm_id]
    steps:
      - id: make
        owner: resource
        exec: {program: "true"}
        outputs: {vm_id: {type: string}, noise: {type: string}}
      - id: tag
        owner: devops
        exec: {program: "true"}
  - id: check
    needs: [build]
    steps:
      - id: probe
        owner: sre
        exec: {program: "true"}
"#;

    #[test]
    fn a_finished_phase_records_its_completed_steps_and_chosen_outputs_once() {
        let protocol = parse_protocol("p.yaml", PROTOCOL).unwrap();
        let mut run = new_run(Uuid::nil(), protocol, BTreeMap::new(), Timestamp::UNIX_EPOCH);
        record(&mut run, Timestamp::UNIX_EPOCH);
        assert!(run.checkpoints.is_empty(), "nothing has finished");
        for (id, state) in [("make", StepState::Succeeded), ("tag", StepState::Skipped)] {
            let step = run.steps.iter_mut().find(|s| s.id == id).unwrap();
            step.state = state;
            if id == "make" {
                step.outputs.insert("vm_id".into(), serde_json::json!("vm-42"));
                step.outputs.insert("noise".into(), serde_json::json!("x"));
                run.completed.push("make".into());
            }
        }
        record(&mut run, Timestamp::UNIX_EPOCH);
        record(&mut run, Timestamp::UNIX_EPOCH);
        assert_eq!(run.checkpoints.len(), 1, "{:?}", run.checkpoints);
        let checkpoint = &run.checkpoints[0];
        assert_eq!(checkpoint.phase, "build");
        assert_eq!(checkpoint.completed, vec!["make".to_owned()]);
        assert_eq!(checkpoint.outputs, BTreeMap::from([("make.vm_id".to_owned(), serde_json::json!("vm-42"))]));
    }
}
