//! The audit trail: one [`AuditRecord`] per durable transition on `muster.audit.<run>`, saying
//! what caused it and what changed. Records are derived by comparing the snapshot before and
//! after the transition, so every rule in the engine is audited without each one reporting.

use super::Orchestrator;
use crate::wire;
use muster_bus::Bus;
use muster_schemas::Payload;
use muster_schemas::message::AuditRecord;
use muster_schemas::run::RunSnapshot;
use tracing::warn;

/// What changed between two snapshots of a run, one line each, in a stable order: the run,
/// then steps and gates in protocol order, then what was appended (interventions, checkpoints).
pub fn describe(before: Option<&RunSnapshot>, after: &RunSnapshot) -> Vec<String> {
    let Some(before) = before else {
        let version = after.protocol.version.as_deref().map(|v| format!(" v{v}")).unwrap_or_default();
        return vec![format!("run created for protocol {}{version}", after.protocol.id)];
    };
    let mut out = Vec::new();
    if before.state != after.state {
        let why = after.reason.as_deref().filter(|_| after.state.is_terminal()).map(|r| format!(": {r}"));
        out.push(format!("run: {} → {}{}", before.state.as_str(), after.state.as_str(), why.unwrap_or_default()));
    }
    if before.rollback.is_none() && after.rollback.is_some() {
        out.push(format!("rollback started: {}", after.rollback.as_deref().unwrap_or_default().join(", ")));
    }
    for (old, new) in before.steps.iter().zip(&after.steps) {
        if old.state != new.state || old.attempt != new.attempt {
            let attempt = if new.attempt > 1 { format!(" (attempt {})", new.attempt) } else { String::new() };
            let note = new.note.as_deref().filter(|_| old.note != new.note).map(|n| format!(": {n}"));
            out.push(format!(
                "step {}: {} → {}{attempt}{}",
                new.id,
                old.state.as_str(),
                new.state.as_str(),
                note.unwrap_or_default()
            ));
        } else if old.deliveries != new.deliveries {
            let agent = new.agent.as_deref().unwrap_or("?");
            out.push(format!("step {}: delivery {} taken over by {agent}", new.id, new.deliveries));
        }
        if old.retry_at != new.retry_at
            && let Some(at) = new.retry_at
        {
            out.push(format!("step {}: retry due at {at}", new.id));
        }
    }
    for (old, new) in before.gates.iter().zip(&after.gates) {
        if old.state != new.state {
            let verdict = new.verdict.map(|v| format!(" (verdict {})", v.as_str())).unwrap_or_default();
            let by = new.decided_by.as_deref().filter(|_| old.decided_by != new.decided_by);
            let by = by.map(|b| format!(", decided by {b}")).unwrap_or_default();
            out.push(format!("gate {}: {} → {}{verdict}{by}", new.id, old.state.as_str(), new.state.as_str()));
        }
    }
    describe_prompts(before, after, &mut out);
    if before.paused != after.paused {
        out.push(if after.paused { "run paused" } else { "run resumed" }.to_owned());
    }
    if !before.cancelled && after.cancelled {
        out.push("run cancelled".to_owned());
    }
    for intervention in after.interventions.iter().skip(before.interventions.len()) {
        out.push(format!("intervention: {intervention}"));
    }
    for checkpoint in after.checkpoints.iter().skip(before.checkpoints.len()) {
        out.push(format!(
            "checkpoint {}: completed [{}], {} output(s) recorded",
            checkpoint.phase,
            checkpoint.completed.join(", "),
            checkpoint.outputs.len()
        ));
    }
    out
}

/// Prompts raised, numbered, acknowledged, escalated to more people, answered or closed.
fn describe_prompts(before: &RunSnapshot, after: &RunSnapshot, out: &mut Vec<String>) {
    for (index, new) in after.prompts.iter().enumerate() {
        let label = new.label();
        let Some(old) = before.prompts.get(index) else {
            out.push(format!("{label} raised ({:?} `{}`): {}", new.kind, new.source, new.title));
            continue;
        };
        if old.number != new.number {
            out.push(format!("{label} numbered ({:?} `{}`)", new.kind, new.source));
        }
        if old.acknowledged_by != new.acknowledged_by
            && let Some(by) = &new.acknowledged_by
        {
            out.push(format!("{label} acknowledged by {by}"));
        }
        for added in new.notified.iter().skip(old.notified.len()) {
            out.push(format!("{label} notified {added}"));
        }
        if old.state != new.state {
            let how = new.outcome.as_ref().map(|o| {
                let option = o.option.as_deref().map(|x| format!(" `{x}`")).unwrap_or_default();
                let note = o.note.as_deref().map(|n| format!(": {n}")).unwrap_or_default();
                format!("{option} by {}{note}", o.by)
            });
            out.push(format!("{label}: {} → {}{}", old.state.as_str(), new.state.as_str(), how.unwrap_or_default()));
        } else if old.fields != new.fields || old.approvals != new.approvals {
            out.push(format!("{label}: {} field(s), {} approval(s) so far", new.fields.len(), new.approvals.len()));
        }
        if old.stage != new.stage {
            out.push(format!("{label}: next ladder stage {:?}", new.stage));
        }
    }
}

impl<B: Bus> Orchestrator<B> {
    /// Appends the record of the transition that wrote `revision`. The message id is
    /// deterministic, so the same record published again after a crash is dropped.
    pub(super) async fn audit(
        &self,
        after: &RunSnapshot,
        revision: u64,
        cause: &str,
        changes: Vec<String>,
    ) -> crate::Result<()> {
        let record = AuditRecord {
            run_id: after.id,
            revision,
            at: crate::clock::now(),
            cause: cause.to_owned(),
            changes,
            state: after.state,
        };
        let subject = self.inner.options.subjects.audit(&after.id.to_string());
        let bytes = wire::seal(&self.inner.sender, Some(after.id), Payload::AuditRecord(record))?;
        self.inner.bus.publish_event(&subject, &format!("audit/{}/{revision}", after.id), bytes).await?;
        Ok(())
    }

    /// [`Orchestrator::audit`], retried with backoff until it is written or the service stops:
    /// the record is appended before the transition's effects are carried out.
    pub(super) async fn audit_durably(
        &self,
        after: &RunSnapshot,
        revision: u64,
        cause: &str,
        changes: Vec<String>,
        cancel: &tokio_util::sync::CancellationToken,
    ) {
        let mut backoff = std::time::Duration::from_millis(50);
        loop {
            match self.audit(after, revision, cause, changes.clone()).await {
                Ok(()) => return,
                Err(err) if !cancel.is_cancelled() => {
                    warn!(run_id = %after.id, revision, error = %err, "could not append to the audit trail; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(std::time::Duration::from_secs(5));
                }
                Err(_) => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::describe;
    use crate::orchestrator::engine;
    use jiff::Timestamp;
    use muster_schemas::protocol::parse_protocol;
    use muster_schemas::run::{RunState, StepState};
    use std::collections::BTreeMap;
    use uuid::Uuid;

    #[test]
    fn every_change_of_a_transition_is_described() {
        let protocol = parse_protocol(
            "p.yaml",
            "id: p\nversion: 1\ntitle: t\nsteps:\n  - id: a\n    owner: devops\n    exec: {program: \"true\"}\n",
        )
        .unwrap();
        let mut run = engine::new_run(Uuid::nil(), protocol, BTreeMap::new(), Timestamp::UNIX_EPOCH);
        assert_eq!(describe(None, &run), vec!["run created for protocol p v1".to_owned()]);
        let before = run.clone();
        run.state = RunState::Running;
        run.steps[0].state = StepState::Running;
        run.steps[0].attempt = 1;
        run.interventions.push("alice: pause".into());
        run.paused = true;
        assert_eq!(
            describe(Some(&before), &run),
            vec![
                "run: pending → running".to_owned(),
                "step a: pending → running".to_owned(),
                "run paused".to_owned(),
                "intervention: alice: pause".to_owned(),
            ]
        );
        assert!(describe(Some(&run), &run).is_empty(), "no change, nothing to say");
    }
}
