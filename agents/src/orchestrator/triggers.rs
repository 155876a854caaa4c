//! Starting runs: `muster.trigger.<protocol>` requests (the CLI, the HTTP gateway), the NATS
//! subjects protocols declare, and cron fires all end in [`Orchestrator::start_run`].
//!
//! A trigger may carry an idempotency key. The key is claimed in the `muster_triggers` bucket
//! (KV create, so exactly one claimant wins) *before* the run is created, and the claim names the
//! run id it will use; a retry after a lost reply, or after a crash between the claim and the
//! run, finds the claim and gets — or finishes creating — that same run. The same key with other
//! inputs is refused rather than silently answered with a run that does something else.

use super::{Orchestrator, audit, engine, not_executable};
use crate::wire;
use bytes::Bytes;
use muster_bus::{Bucket, Bus, Subscription};
use muster_schemas::Payload;
use muster_schemas::message::{RefusalCode, RunStarted, RunTriggered, TriggerReply};
use muster_schemas::protocol::model::Trigger;
use muster_schemas::protocol::{Protocol, resolve_inputs};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use uuid::Uuid;

/// What an idempotency key was first used for.
#[derive(Debug, Serialize, Deserialize)]
struct Claim {
    run_id: Uuid,
    inputs: BTreeMap<String, String>,
}

/// The `muster_triggers` key of an idempotency key: hex keeps any caller text a valid KV key.
fn claim_key(protocol: &str, key: &str) -> String {
    format!("idem.{protocol}.{}", hex::encode(key.as_bytes()))
}

fn refused(code: RefusalCode, reason: String) -> TriggerReply {
    TriggerReply::Refused { reason, code }
}

impl<B: Bus> Orchestrator<B> {
    /// Answers `muster.trigger.<protocol>` requests until cancelled.
    pub(super) async fn serve_triggers<S>(&self, requests: S, cancel: &CancellationToken)
    where
        S: Subscription<Item = B::Request>,
    {
        super::serving::answer_each(requests, cancel, "trigger", |payload, _| async move {
            let reply = self.on_trigger(&payload, cancel).await;
            wire::seal(&self.inner.sender, None, Payload::TriggerReply(reply))
                .inspect_err(|err| warn!(error = %err, "could not encode a trigger reply"))
                .ok()
        })
        .await;
    }

    async fn on_trigger(&self, payload: &Bytes, cancel: &CancellationToken) -> TriggerReply {
        let triggered: RunTriggered = match wire::decode(payload) {
            Ok(envelope) => match envelope.payload {
                Payload::RunTriggered(t) => t,
                other => {
                    return refused(RefusalCode::InvalidInput, format!("expected run_triggered, got {}", other.kind()));
                }
            },
            Err(err) => return refused(RefusalCode::InvalidInput, format!("undecodable trigger: {err}")),
        };
        let protocol = match self.protocol_for(&triggered) {
            Ok(protocol) => protocol,
            Err(reply) => return reply,
        };
        let cause = match &triggered.idempotency_key {
            Some(_) => "trigger (with an idempotency key)",
            None => "trigger",
        };
        let requester = triggered.requested_by.clone();
        self.start_run(protocol, &triggered.inputs, triggered.idempotency_key.as_deref(), requester, cause, cancel)
            .await
    }

    /// The protocol a trigger names: the one it carries (checked like a file), else a loaded one.
    fn protocol_for(&self, triggered: &RunTriggered) -> Result<Protocol, TriggerReply> {
        match &triggered.protocol {
            Some(inline) if inline.id == triggered.protocol_id => {
                // An inline protocol comes from whoever can publish on the trigger subject:
                // check it like a file before it can run.
                if let Some(problem) = muster_schemas::protocol::check::check(inline).first() {
                    return Err(refused(
                        RefusalCode::InvalidInput,
                        format!("the submitted protocol is invalid: {}", problem.message),
                    ));
                }
                Ok((**inline).clone())
            }
            Some(inline) => Err(refused(
                RefusalCode::InvalidInput,
                format!("trigger names `{}` but carries `{}`", triggered.protocol_id, inline.id),
            )),
            None => self.inner.options.protocols.get(&triggered.protocol_id).cloned().ok_or_else(|| {
                let known: Vec<&str> = self.inner.options.protocols.keys().map(String::as_str).collect();
                refused(
                    RefusalCode::UnknownProtocol,
                    format!(
                        "unknown protocol `{}`; loaded: {}",
                        triggered.protocol_id,
                        if known.is_empty() { "none".into() } else { known.join(", ") }
                    ),
                )
            }),
        }
    }

    /// Creates a run (durably, then audited) and carries out its first effects. With a key, a
    /// repeated trigger answers the run the first one started (`existing: true`).
    pub(super) async fn start_run(
        &self,
        protocol: Protocol,
        given: &BTreeMap<String, String>,
        key: Option<&str>,
        requested_by: Option<String>,
        cause: &str,
        cancel: &CancellationToken,
    ) -> TriggerReply {
        let missing = engine::unsupported(&protocol);
        if !missing.is_empty() {
            return refused(RefusalCode::InvalidInput, not_executable(&protocol.id, &missing));
        }
        let inputs = match resolve_inputs(&protocol, given) {
            Ok(inputs) => inputs,
            Err(err) => return refused(RefusalCode::InvalidInput, err.to_string()),
        };
        let id = match key {
            None => Uuid::now_v7(),
            Some(key) => match self.claim(&protocol.id, key, &inputs).await {
                Ok(id) => id,
                Err(reply) => return reply,
            },
        };
        if key.is_some() {
            match self.inner.store.load(id).await {
                Ok(Some(_)) => return TriggerReply::Accepted { run_id: id, existing: true },
                Ok(None) => {}
                Err(err) => return refused(RefusalCode::Unavailable, format!("could not read run {id}: {err}")),
            }
        }
        let now = crate::clock::now();
        let mut run = engine::new_run(id, protocol, inputs, now);
        run.requested_by = requested_by;
        let created = run.clone();
        let mut effects = engine::start(&mut run, now);
        effects.extend(engine::oversee(&mut run, now));
        match self.number_prompts(&mut run).await {
            Ok(more) => effects.extend(more),
            Err(err) => return refused(RefusalCode::Unavailable, format!("could not number the run's prompts: {err}")),
        }
        run.fence = self.inner.lease.load(std::sync::atomic::Ordering::SeqCst);
        let revision = match self.inner.store.create(&run).await {
            Ok(revision) => revision,
            // A concurrent trigger with the same key created it first.
            Err(crate::Error::Bus(muster_bus::Error::AlreadyExists)) if key.is_some() => {
                return TriggerReply::Accepted { run_id: id, existing: true };
            }
            Err(err) => {
                warn!(run_id = %id, error = %err, "could not store a new run");
                return refused(RefusalCode::Unavailable, format!("could not store the run: {err}"));
            }
        };
        let mut changes = audit::describe(None, &run);
        changes.extend(audit::describe(Some(&created), &run));
        self.audit_durably(&run, revision, cause, changes, cancel).await;
        info!(run_id = %id, protocol = %run.protocol.id, cause, "run started");
        let started = Payload::RunStarted(RunStarted { run_id: id, protocol_id: run.protocol.id.clone() });
        self.announce(id, "started", started).await;
        self.carry_out(id, effects, cancel).await;
        TriggerReply::Accepted { run_id: id, existing: false }
    }

    /// Claims `key` for a new run id, or returns the id an earlier claim named. The same key
    /// with other inputs is refused.
    async fn claim(&self, protocol: &str, key: &str, inputs: &BTreeMap<String, String>) -> Result<Uuid, TriggerReply> {
        if key.is_empty() || key.len() > 200 {
            return Err(refused(RefusalCode::InvalidInput, "an idempotency key must be 1 to 200 bytes".into()));
        }
        let kv_key = claim_key(protocol, key);
        let unavailable = |err: &dyn std::fmt::Display| {
            refused(RefusalCode::Unavailable, format!("could not record the idempotency key: {err}"))
        };
        let claim = Claim { run_id: Uuid::now_v7(), inputs: inputs.clone() };
        let bytes = serde_json::to_vec(&claim).map_err(|e| unavailable(&e))?;
        match self.inner.bus.kv_create(Bucket::Triggers, &kv_key, Bytes::from(bytes)).await {
            Ok(_) => return Ok(claim.run_id),
            Err(muster_bus::Error::AlreadyExists) => {}
            Err(err) => return Err(unavailable(&err)),
        }
        let entry = self.inner.bus.kv_get(Bucket::Triggers, &kv_key).await.map_err(|e| unavailable(&e))?;
        let earlier: Claim = entry
            .and_then(|e| serde_json::from_slice(&e.value).ok())
            .ok_or_else(|| unavailable(&"the earlier claim of this key is unreadable"))?;
        if earlier.inputs != *inputs {
            return Err(refused(
                RefusalCode::InvalidInput,
                format!(
                    "idempotency key `{key}` already started run {} with other inputs; use a new key for a different request",
                    earlier.run_id
                ),
            ));
        }
        Ok(earlier.run_id)
    }

    /// Serves every NATS subject the loaded protocols declare as a trigger. The body is a JSON
    /// object of inputs (empty for none); a request gets the [`TriggerReply`] as JSON.
    pub(super) async fn serve_subject_triggers(&self, cancel: &CancellationToken) {
        let mut serving = Vec::new();
        for protocol in self.inner.options.protocols.values() {
            for trigger in &protocol.triggers {
                let Trigger::Subject(subject) = trigger else { continue };
                match self.inner.bus.serve(&subject.subject).await {
                    Ok(requests) => {
                        info!(protocol = %protocol.id, subject = %subject.subject, "serving a subject trigger");
                        serving.push(self.serve_subject(protocol.clone(), requests, cancel));
                    }
                    Err(err) => {
                        warn!(protocol = %protocol.id, subject = %subject.subject, error = %err, "cannot serve a subject trigger")
                    }
                }
            }
        }
        futures::future::join_all(serving).await;
    }

    async fn serve_subject<S>(&self, protocol: Protocol, requests: S, cancel: &CancellationToken)
    where
        S: Subscription<Item = B::Request>,
    {
        let protocol = &protocol;
        super::serving::answer_each(requests, cancel, "subject trigger", |payload, subject| async move {
            let reply = match inputs_from_json(&payload) {
                Ok(inputs) => {
                    let cause = format!("message on {subject}");
                    self.start_run(protocol.clone(), &inputs, None, None, &cause, cancel).await
                }
                Err(reason) => refused(RefusalCode::InvalidInput, reason),
            };
            if let TriggerReply::Refused { reason, .. } = &reply {
                warn!(protocol = %protocol.id, subject = %subject, reason = %reason, "subject trigger refused");
            }
            serde_json::to_vec(&reply).ok().map(Bytes::from)
        })
        .await;
    }
}

/// Inputs from a trigger body: a JSON object of strings, numbers and booleans (empty body: none).
pub fn inputs_from_json(body: &[u8]) -> Result<BTreeMap<String, String>, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(BTreeMap::new());
    }
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("the body must be a JSON object of inputs: {e}"))?;
    let serde_json::Value::Object(map) = value else {
        return Err("the body must be a JSON object of inputs, e.g. {\"env\": \"staging\"}".to_owned());
    };
    map.into_iter()
        .map(|(name, value)| match value {
            serde_json::Value::String(s) => Ok((name, s)),
            serde_json::Value::Number(n) => Ok((name, n.to_string())),
            serde_json::Value::Bool(b) => Ok((name, b.to_string())),
            other => Err(format!("input `{name}` must be a string, number or boolean, not {other}")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trigger_bodies_become_inputs_or_clear_refusals() {
        assert_eq!(inputs_from_json(b"").unwrap(), BTreeMap::new());
        let inputs = inputs_from_json(br#"{"env": "staging", "replicas": 3, "dry_run": true}"#).unwrap();
        assert_eq!(inputs["replicas"], "3");
        assert_eq!(inputs["dry_run"], "true");
        assert!(inputs_from_json(b"[1]").unwrap_err().contains("JSON object"));
        assert!(inputs_from_json(b"{nope").unwrap_err().contains("JSON object"));
        assert!(inputs_from_json(br#"{"a": [1]}"#).unwrap_err().contains("`a`"));
    }

    #[test]
    fn any_key_text_is_a_valid_kv_key() {
        let key = claim_key("deploy", "retry #2 / ü");
        assert!(key.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-'), "{key}");
    }
}
