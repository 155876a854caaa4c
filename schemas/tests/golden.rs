//! Golden vectors pin the wire format: every message kind is encoded from a fixed value and
//! compared byte for byte with `schemas/golden/<kind>.msgpack`, and each file decodes back to the
//! same value. Run with `MUSTER_BLESS=1` to rewrite the files after a deliberate change.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use muster_schemas::answer::SignedAnswer;
use muster_schemas::message::{
    AgentHeartbeat, AnswerReply, AuditRecord, Control, CriterionSpec, Evidence, ExecSpec, GateAssigned, GateVerdict,
    NoticeOption, Outcome, OutputWanted, PromptKind, PromptNotice, Purpose, RefusalCode, RunAnswer, RunControl,
    RunFinished, RunStarted, RunTriggered, StepAssigned, StepProgress, StepResult, StepStarted, TriggerReply, Verdict,
};
use muster_schemas::run::RunState;
use muster_schemas::{Component, Envelope, Payload, Role, SCHEMA_VERSION, Sender, TraceContext, decode, encode};
use std::collections::BTreeMap;
use std::path::PathBuf;
use uuid::Uuid;

fn run_id() -> Uuid {
    Uuid::from_u128(0x0193_0000_0000_7000_8000_0000_0000_0001)
}

fn envelope(payload: Payload) -> Envelope {
    Envelope {
        schema: SCHEMA_VERSION,
        id: Uuid::from_u128(0x0193_0000_0000_7000_8000_0000_0000_00ff),
        run_id: Some(run_id()),
        causation_id: Some(Uuid::from_u128(0x0193_0000_0000_7000_8000_0000_0000_00fe)),
        sender: Sender { component: Component::Agent, role: Some(Role::Devops), id: "devops-1".into() },
        time: "2026-11-25T12:00:00Z".parse().unwrap_or_default(),
        trace: Some(TraceContext {
            traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into(),
            tracestate: None,
        }),
        payload,
    }
}

fn exec() -> ExecSpec {
    ExecSpec {
        program: "install".into(),
        args: vec!["-D".into(), "/etc/hostname".into(), "/tmp/out".into()],
        env: BTreeMap::from([("LANG".into(), "C".into())]),
        cwd: Some("/tmp".into()),
        timeout_ms: 30_000,
    }
}

/// One sample of every payload kind. A new kind must be added here (the match below refuses to
/// compile otherwise).
fn samples() -> Vec<Envelope> {
    let payloads = vec![
        Payload::RunTriggered(RunTriggered {
            protocol_id: "host-report".into(),
            inputs: BTreeMap::from([("workdir".into(), "/tmp/x".into())]),
            protocol: None,
            idempotency_key: None,
            requested_by: None,
        }),
        Payload::TriggerReply(TriggerReply::Accepted { run_id: run_id(), existing: false }),
        Payload::RunStarted(RunStarted { run_id: run_id(), protocol_id: "host-report".into() }),
        Payload::RunFinished(RunFinished { run_id: run_id(), state: RunState::Succeeded }),
        Payload::StepAssigned(StepAssigned {
            run_id: run_id(),
            step_id: "write-file".into(),
            owner: Role::Devops,
            attempt: 1,
            idempotency_key: "run/write-file/1".into(),
            exec: Some(exec()),
            probe: None,
            probe_timeout_ms: 0,
            purpose: Purpose::Alternative("backup-region".into()),
            outputs: vec![OutputWanted {
                name: "state_id".into(),
                kind: "string".into(),
                from: "stdout_json".into(),
                path: "/state/id".into(),
            }],
        }),
        Payload::StepStarted(StepStarted {
            run_id: run_id(),
            step_id: "write-file".into(),
            attempt: 1,
            delivery: 2,
            agent: "devops-2".into(),
            purpose: Purpose::Run,
        }),
        Payload::StepProgress(StepProgress {
            run_id: run_id(),
            step_id: "write-file".into(),
            attempt: 1,
            delivery: 1,
            agent: "devops-1".into(),
            elapsed_ms: 10_000,
        }),
        Payload::StepResult(StepResult {
            run_id: run_id(),
            step_id: "write-file".into(),
            attempt: 1,
            delivery: 2,
            agent: "devops-1".into(),
            outcome: Outcome::Succeeded,
            exit_code: Some(0),
            stdout_tail: "ok\n".into(),
            stderr_tail: String::new(),
            outputs: BTreeMap::from([("path".into(), "/tmp/out".into())]),
            purpose: Purpose::Run,
            duration_ms: 12,
            started_at: "2026-11-25T12:00:00Z".parse().unwrap_or_default(),
        }),
        Payload::AgentHeartbeat(AgentHeartbeat {
            role: Role::Devops,
            agent: "devops-1".into(),
            in_flight: 1,
            capacity: 4,
            started_at: "2026-11-25T11:00:00Z".parse().unwrap_or_default(),
        }),
        Payload::GateAssigned(GateAssigned {
            run_id: run_id(),
            gate_id: "qg-phase3".into(),
            owner: Role::Sre,
            attempt: 1,
            criteria: vec![CriterionSpec {
                name: "no-criticals".into(),
                expr: "outputs.scan.critical == 0".into(),
                warn_only: false,
            }],
            facts: serde_json::json!({"outputs": {"scan": {"critical": 0}}}),
        }),
        Payload::GateVerdict(GateVerdict {
            run_id: run_id(),
            gate_id: "qg-phase3".into(),
            attempt: 1,
            agent: "sre-1".into(),
            verdict: Verdict::Pass,
            evidence: vec![Evidence {
                name: "no-criticals".into(),
                met: Some(true),
                detail: "outputs.scan.critical == 0".into(),
            }],
        }),
        Payload::RunAnswer(RunAnswer {
            run_id: run_id(),
            target: "qg-phase3".into(),
            option: "continue".into(),
            by: "alice".into(),
        }),
        Payload::AnswerReply(AnswerReply { accepted: true, message: "alice answered continue".into() }),
        Payload::RunControl(RunControl {
            run_id: run_id(),
            control: Control::Skip { step: "write-file".into(), reason: "done by hand".into() },
            by: "alice".into(),
        }),
        Payload::AuditRecord(AuditRecord {
            run_id: run_id(),
            revision: 7,
            at: "2026-01-02T03:04:05Z".parse().unwrap(),
            cause: "result of step write-file from devops-1".into(),
            changes: vec!["step write-file: running → succeeded".into()],
            state: RunState::Running,
        }),
        Payload::SignedAnswer(SignedAnswer {
            body: vec![0x81, 0xa1, 0x61, 0x01],
            principal: "bridge".into(),
            signature: vec![7; 64],
        }),
        Payload::PromptNotice(PromptNotice {
            run_id: run_id(),
            prompt: "ESC-12".into(),
            kind: PromptKind::Escalation,
            stage: "raised".into(),
            severity: Some(muster_schemas::protocol::model::Severity::Critical),
            title: "Provisioning is taking too long".into(),
            text: "provision has run 91m (threshold 90m)".into(),
            options: vec![NoticeOption {
                id: "rollback".into(),
                description: "Destroy and start over".into(),
                effect: "rollback".into(),
            }],
            responders: vec!["infra-oncall".into()],
            channel: Some("#infrastructure-critical".into()),
            deadline: Some("2026-01-02T04:04:05Z".parse().unwrap()),
        }),
    ];
    for p in &payloads {
        // Exhaustiveness guard: adding a variant breaks this match until a sample exists.
        match p {
            Payload::RunTriggered(_)
            | Payload::TriggerReply(_)
            | Payload::RunStarted(_)
            | Payload::RunFinished(_)
            | Payload::StepAssigned(_)
            | Payload::StepStarted(_)
            | Payload::StepProgress(_)
            | Payload::StepResult(_)
            | Payload::AgentHeartbeat(_)
            | Payload::GateAssigned(_)
            | Payload::GateVerdict(_)
            | Payload::RunAnswer(_)
            | Payload::AnswerReply(_)
            | Payload::AuditRecord(_)
            | Payload::SignedAnswer(_)
            | Payload::PromptNotice(_)
            | Payload::RunControl(_) => {}
        }
    }
    payloads.into_iter().map(envelope).collect()
}

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("golden")
}

#[test]
fn every_kind_matches_its_golden_bytes_in_both_directions() {
    let bless = std::env::var_os("MUSTER_BLESS").is_some();
    let samples = samples();
    assert_eq!(samples.len(), 17);
    for sample in samples {
        let path = golden_dir().join(format!("{}.msgpack", sample.payload.kind()));
        let bytes = encode(&sample).expect("sample encodes");
        if bless {
            std::fs::write(&path, &bytes).expect("write golden");
        }
        let golden =
            std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e} (bless with MUSTER_BLESS=1)", path.display()));
        assert_eq!(hex::encode(&bytes), hex::encode(&golden), "encoding of {} changed", sample.payload.kind());
        assert_eq!(decode(&golden).expect("golden decodes"), sample);
    }
}

#[test]
fn probe_work_round_trips() {
    use muster_schemas::message::Probe;
    let probes = [
        Probe::Http {
            method: "GET".into(),
            url: "https://example.com/healthz".into(),
            headers: BTreeMap::from([("Accept".into(), "application/json".into())]),
            body: None,
            expect_status: vec![200],
            max_latency_ms: Some(100),
            body_matches: Some("ok".into()),
        },
        Probe::Tcp { host: "db".into(), port: 5432, max_latency_ms: None },
        Probe::Tls {
            host: "example.com".into(),
            port: 443,
            server_name: "example.com".into(),
            min_days_valid: Some(14),
        },
        Probe::Wait { duration_ms: 5_000 },
    ];
    for probe in probes {
        let e = envelope(Payload::StepAssigned(StepAssigned {
            run_id: run_id(),
            step_id: "health".into(),
            owner: Role::Sre,
            attempt: 1,
            idempotency_key: "k".into(),
            exec: None,
            probe: Some(probe),
            probe_timeout_ms: 10_000,
            purpose: Purpose::Run,
            outputs: Vec::new(),
        }));
        assert_eq!(decode(&encode(&e).expect("encodes")).expect("decodes"), e);
    }
}

#[test]
fn refusal_reply_round_trips() {
    let e = envelope(Payload::TriggerReply(TriggerReply::Refused {
        reason: "unknown protocol `x`".into(),
        code: RefusalCode::UnknownProtocol,
    }));
    assert_eq!(decode(&encode(&e).expect("encodes")).expect("decodes"), e);
}

/// The map entry `key` of a MessagePack map, if present.
fn entry<'a>(map: &'a mut rmpv::Value, key: &str) -> Option<&'a mut rmpv::Value> {
    let rmpv::Value::Map(entries) = map else { return None };
    entries.iter_mut().find(|(k, _)| k.as_str() == Some(key)).map(|(_, v)| v)
}

fn read_golden(kind: &str) -> (Vec<u8>, rmpv::Value) {
    let golden = std::fs::read(golden_dir().join(format!("{kind}.msgpack"))).expect("golden");
    let value = rmpv::decode::read_value(&mut golden.as_slice()).expect("msgpack");
    (golden, value)
}

fn write(value: &rmpv::Value) -> Vec<u8> {
    let mut bytes = Vec::new();
    rmpv::encode::write_value(&mut bytes, value).expect("encode");
    bytes
}

/// A newer sender adds fields at the envelope and payload level; this build must still read it.
#[test]
fn a_message_with_extra_fields_from_a_newer_sender_still_decodes() {
    let (golden, mut value) = read_golden("step_result");
    let add = |map: &mut rmpv::Value, key: &str| {
        if let rmpv::Value::Map(entries) = map {
            entries.push((key.into(), rmpv::Value::from("from the future")));
        }
    };
    add(&mut value, "priority");
    let body = entry(&mut value, "payload").and_then(|p| entry(p, "body")).expect("payload body");
    add(body, "cpu_seconds");
    let bytes = write(&value);
    assert!(bytes.len() > golden.len());
    let decoded = decode(&bytes).expect("extra fields are ignored");
    assert_eq!(decoded, decode(&golden).expect("golden"));
}

#[test]
fn an_unknown_kind_is_a_typed_error() {
    let (_, mut value) = read_golden("run_started");
    *entry(&mut value, "payload").and_then(|p| entry(p, "kind")).expect("payload kind") = "rocket_launched".into();
    let err = decode(&write(&value)).expect_err("unknown kind");
    assert_eq!(err.label(), "unknown_kind", "{err}");
}

/// Decoding is total: random bytes, truncations and bit flips of every golden vector all give
/// `Ok` or a typed error, never a panic. (The cargo-fuzz target in `fuzz/` explores further.)
#[test]
fn garbage_never_panics() {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut errors = 0;
    for _ in 0..20_000 {
        let len = (next() % 64) as usize;
        let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        errors += usize::from(decode(&bytes).is_err());
    }
    assert!(errors > 19_000, "random bytes should almost never decode ({errors})");
    for entry in std::fs::read_dir(golden_dir()).expect("golden dir") {
        let golden = std::fs::read(entry.expect("entry").path()).expect("read");
        for cut in 0..golden.len() {
            assert!(decode(&golden[..cut]).is_err(), "a truncated message must not decode");
        }
        for _ in 0..2_000 {
            let mut mutated = golden.clone();
            let at = (next() as usize) % mutated.len();
            mutated[at] ^= 1 << (next() % 8);
            let _ = decode(&mutated);
        }
    }
}
