//! The typed payloads. Each variant is one thing that happens in a run; adding a variant is a
//! compatible change for readers that dead-letter unknown kinds, adding a field to a variant is
//! compatible for everyone (unknown fields are ignored on decode).

use crate::role::Role;
use crate::run::RunState;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

/// Every message kind muster sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "body", rename_all = "snake_case")]
pub enum Payload {
    /// A request to start a run (the body of `muster.trigger.<protocol>` requests).
    RunTriggered(RunTriggered),
    /// The orchestrator's answer to a trigger.
    TriggerReply(TriggerReply),
    /// A run was created and its first work dispatched.
    RunStarted(RunStarted),
    /// A run reached a terminal state.
    RunFinished(RunFinished),
    /// Work for a role agent: run this step now.
    StepAssigned(StepAssigned),
    /// An agent took over a step whose lease another agent lost (a redelivery): from now on
    /// only this delivery's result counts.
    StepStarted(StepStarted),
    /// A step is still running; the agent extended its lease.
    StepProgress(StepProgress),
    /// A step attempt ended.
    StepResult(StepResult),
    /// An agent is alive and has this much capacity.
    AgentHeartbeat(AgentHeartbeat),
    /// Work for a role agent: judge this quality gate.
    GateAssigned(GateAssigned),
    /// A gate's verdict with the evidence for each criterion.
    GateVerdict(GateVerdict),
    /// A person's answer to a run that waits (`muster answer`).
    RunAnswer(RunAnswer),
    /// The orchestrator's reply to an answer or an operator control.
    AnswerReply(AnswerReply),
    /// An operator control: cancel, pause, resume, retry or skip.
    RunControl(RunControl),
    /// One entry of a run's audit trail: what a durable transition changed and why.
    AuditRecord(AuditRecord),
    /// A person's answer, signed by the principal that carries it (see [`crate::answer`]).
    SignedAnswer(crate::answer::SignedAnswer),
    /// Something people must see or answer: an escalation at a ladder stage, or a human step.
    PromptNotice(PromptNotice),
}

impl Payload {
    /// The wire name of the variant, for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Payload::RunTriggered(_) => "run_triggered",
            Payload::TriggerReply(_) => "trigger_reply",
            Payload::RunStarted(_) => "run_started",
            Payload::RunFinished(_) => "run_finished",
            Payload::StepAssigned(_) => "step_assigned",
            Payload::StepStarted(_) => "step_started",
            Payload::StepProgress(_) => "step_progress",
            Payload::StepResult(_) => "step_result",
            Payload::AgentHeartbeat(_) => "agent_heartbeat",
            Payload::GateAssigned(_) => "gate_assigned",
            Payload::GateVerdict(_) => "gate_verdict",
            Payload::RunAnswer(_) => "run_answer",
            Payload::AnswerReply(_) => "answer_reply",
            Payload::RunControl(_) => "run_control",
            Payload::AuditRecord(_) => "audit_record",
            Payload::SignedAnswer(_) => "signed_answer",
            Payload::PromptNotice(_) => "prompt_notice",
        }
    }
}

/// A request to start a run of a protocol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunTriggered {
    /// The protocol to run, by id.
    pub protocol_id: String,
    /// Input values as given by the caller (validated and typed by the orchestrator).
    #[serde(default)]
    pub inputs: BTreeMap<String, String>,
    /// The protocol itself, when the caller submits a file the orchestrator has not loaded
    /// (`muster run --nats`). It is stored with the run, so the run keeps the version it
    /// started with even if the file changes later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Box<crate::protocol::Protocol>>,
    /// A key chosen by the caller so that retrying a trigger whose reply was lost never starts
    /// a second run: every trigger with the same key (for the same protocol) gets the run the
    /// first one started. HTTP callers pass it as the `Idempotency-Key` header; cron fires use
    /// the schedule and fire time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// Who asks for the run, as the caller says (the CLI sends the user name). Recorded with the
    /// run; an approval that does not allow the requester refuses this person as approver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
}

/// The orchestrator's answer to [`RunTriggered`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum TriggerReply {
    /// The run exists and its state is durable.
    Accepted {
        /// The new run's id.
        run_id: Uuid,
        /// True when the idempotency key had already started this run and nothing new was
        /// created.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        existing: bool,
    },
    /// The trigger was refused; nothing was created.
    Refused {
        /// Why, in words a user can act on.
        reason: String,
        /// What kind of refusal, for scripts.
        code: RefusalCode,
    },
}

/// Why a trigger was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusalCode {
    /// No protocol with that id is loaded.
    UnknownProtocol,
    /// An input is missing, unknown or of the wrong type.
    InvalidInput,
    /// The orchestrator could not write the run state.
    Unavailable,
}

/// A run was created.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunStarted {
    /// The run.
    pub run_id: Uuid,
    /// The protocol it runs.
    pub protocol_id: String,
}

/// A run ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunFinished {
    /// The run.
    pub run_id: Uuid,
    /// Its terminal state.
    pub state: RunState,
}

/// An `exec` action with every template already rendered: the agent runs exactly this.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecSpec {
    /// The program, looked up on `PATH` when it has no slash. Never run through a shell.
    pub program: String,
    /// Arguments, one element each.
    #[serde(default)]
    pub args: Vec<String>,
    /// Extra environment variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Working directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// Wall-clock limit; the whole process group is killed when it passes.
    pub timeout_ms: u64,
}

/// Work for a role agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepAssigned {
    /// The run.
    pub run_id: Uuid,
    /// The step within the protocol.
    pub step_id: String,
    /// The role that must execute it; an agent of another role refuses it.
    pub owner: Role,
    /// The orchestrator's attempt number for this step (1-based). Redeliveries of the same
    /// assignment keep it; a retry decided by the orchestrator increments it.
    pub attempt: u32,
    /// A stable key for this step attempt, exported to the action as `MUSTER_IDEMPOTENCY_KEY`
    /// so scripts can make their side effects idempotent.
    pub idempotency_key: String,
    /// The program to run (exactly one of `exec` and `probe`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<ExecSpec>,
    /// The check to make natively, without a program (exactly one of `exec` and `probe`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<Probe>,
    /// Wall-clock limit of a probe (a program's is in its `exec`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub probe_timeout_ms: u64,
    /// Why this work exists: the step itself, one of its alternatives, or its compensation.
    #[serde(default, skip_serializing_if = "Purpose::is_run")]
    pub purpose: Purpose,
    /// Outputs the agent must extract after a successful execution.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<OutputWanted>,
}

/// A check an agent makes natively (no shell, no external tool), with every template rendered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Probe {
    /// An HTTP request; succeeds when the answer matches the expectations.
    Http {
        /// Request method.
        method: String,
        /// URL.
        url: String,
        /// Request headers.
        #[serde(default)]
        headers: BTreeMap<String, String>,
        /// Request body.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        body: Option<String>,
        /// Acceptable status codes.
        expect_status: Vec<u16>,
        /// Slowest acceptable answer.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_latency_ms: Option<u64>,
        /// A regular expression the body must match.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        body_matches: Option<String>,
    },
    /// A TCP connection.
    Tcp {
        /// Host.
        host: String,
        /// Port.
        port: u16,
        /// Slowest acceptable connect.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_latency_ms: Option<u64>,
    },
    /// A TLS handshake with certificate checks.
    Tls {
        /// Host to connect to.
        host: String,
        /// Port.
        port: u16,
        /// Name the certificate must be valid for.
        server_name: String,
        /// Fewest days of validity left.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        min_days_valid: Option<u32>,
    },
    /// Waiting a fixed time.
    Wait {
        /// How long.
        duration_ms: u64,
    },
}

impl StepAssigned {
    /// The wall-clock limit of the work, program or probe.
    pub fn timeout_ms(&self) -> u64 {
        match (&self.exec, &self.probe) {
            (Some(exec), _) => exec.timeout_ms,
            (None, Some(Probe::Wait { duration_ms })) => duration_ms.saturating_add(5_000),
            _ => self.probe_timeout_ms,
        }
    }
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

/// Why a piece of work exists.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    /// The step's own action.
    #[default]
    Run,
    /// The named alternative of the step, after its retries were exhausted.
    Alternative(String),
    /// The step's compensating action, during a rollback.
    Rollback,
}

impl Purpose {
    /// Whether this is the step's own action (the default, left out on the wire).
    pub fn is_run(&self) -> bool {
        *self == Purpose::Run
    }

    /// A short label for ids and logs (`run`, `alt-<id>`, `rollback`).
    pub fn label(&self) -> String {
        match self {
            Purpose::Run => "run".to_owned(),
            Purpose::Alternative(id) => format!("alt-{id}"),
            Purpose::Rollback => "rollback".to_owned(),
        }
    }
}

/// An output the agent extracts from a finished execution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputWanted {
    /// The output's name.
    pub name: String,
    /// Its type (`string`, `int`, `number`, `bool`, `list`, `object`, ...).
    pub kind: String,
    /// `stdout_json` or `file`.
    pub from: String,
    /// JSON pointer (for `stdout_json`) or key (for `file`).
    pub path: String,
}

/// The fencing token of a redelivered step: results of older deliveries are stale.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepStarted {
    /// The run.
    pub run_id: Uuid,
    /// The step.
    pub step_id: String,
    /// The orchestrator's attempt number.
    pub attempt: u32,
    /// The bus delivery that now holds the lease.
    pub delivery: u32,
    /// The agent that took it over.
    pub agent: String,
    /// Which work it is (the step, an alternative, a compensation).
    #[serde(default, skip_serializing_if = "Purpose::is_run")]
    pub purpose: Purpose,
}

/// Proof of life for a running step (sent with every lease extension).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepProgress {
    /// The run.
    pub run_id: Uuid,
    /// The step.
    pub step_id: String,
    /// The orchestrator's attempt number.
    pub attempt: u32,
    /// How often the bus has delivered this assignment (1 = first delivery).
    pub delivery: u32,
    /// The executing agent's id.
    pub agent: String,
    /// Time since the step started on this agent.
    pub elapsed_ms: u64,
}

/// How a step attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The program exited 0.
    Succeeded,
    /// The program exited non-zero or was killed by a signal.
    Failed,
    /// The timeout passed and the process group was killed.
    TimedOut,
    /// The program could not be started (not found, not executable, bad cwd).
    SpawnFailed,
}

/// The end of a step attempt, with what the orchestrator and a human need to judge it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepResult {
    /// The run.
    pub run_id: Uuid,
    /// The step.
    pub step_id: String,
    /// The orchestrator's attempt number this result answers.
    pub attempt: u32,
    /// Which delivery of the assignment produced it.
    pub delivery: u32,
    /// The executing agent's id.
    pub agent: String,
    /// How it ended.
    pub outcome: Outcome,
    /// The exit code, when the program exited normally.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// The last bytes of standard output (bounded, lossy UTF-8).
    #[serde(default)]
    pub stdout_tail: String,
    /// The last bytes of standard error (bounded, lossy UTF-8).
    #[serde(default)]
    pub stderr_tail: String,
    /// Named outputs the step produced, typed.
    #[serde(default)]
    pub outputs: BTreeMap<String, serde_json::Value>,
    /// Which work this result answers (the step, an alternative, a compensation).
    #[serde(default, skip_serializing_if = "Purpose::is_run")]
    pub purpose: Purpose,
    /// Wall-clock duration on the agent.
    pub duration_ms: u64,
    /// When the agent started the program.
    pub started_at: Timestamp,
}

/// An agent's periodic proof of life (core NATS, never persisted).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentHeartbeat {
    /// The agent's role.
    pub role: Role,
    /// The agent's id.
    pub agent: String,
    /// Steps running now.
    pub in_flight: u32,
    /// Steps it may run at once.
    pub capacity: u32,
    /// When the agent started.
    pub started_at: Timestamp,
}

/// Work for a role agent: evaluate a gate's criteria over the facts of the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateAssigned {
    /// The run.
    pub run_id: Uuid,
    /// The gate.
    pub gate_id: String,
    /// The role that must judge it.
    pub owner: Role,
    /// Evaluation number (1-based).
    pub attempt: u32,
    /// The criteria.
    pub criteria: Vec<CriterionSpec>,
    /// What the criteria read: `inputs`, `outputs`, `metrics`.
    pub facts: serde_json::Value,
}

/// One criterion to evaluate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CriterionSpec {
    /// Its name.
    pub name: String,
    /// CEL expression; true means met.
    pub expr: String,
    /// `true` when an unmet criterion only warns.
    #[serde(default)]
    pub warn_only: bool,
}

/// The outcome of a gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Every criterion met.
    Pass,
    /// Only warn-only criteria unmet.
    Warn,
    /// A criterion unmet.
    Fail,
    /// A criterion could not be evaluated.
    Inconclusive,
}

impl Verdict {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Warn => "warn",
            Verdict::Fail => "fail",
            Verdict::Inconclusive => "inconclusive",
        }
    }
}

/// What one criterion showed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// The criterion.
    pub name: String,
    /// Met, unmet, or null when it could not be evaluated.
    pub met: Option<bool>,
    /// The expression and, when it could not be evaluated, why.
    pub detail: String,
}

/// A gate's verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateVerdict {
    /// The run.
    pub run_id: Uuid,
    /// The gate.
    pub gate_id: String,
    /// The evaluation this answers.
    pub attempt: u32,
    /// The judging agent.
    pub agent: String,
    /// The outcome.
    pub verdict: Verdict,
    /// One entry per criterion.
    pub evidence: Vec<Evidence>,
}

/// A person's answer to a run waiting at a gate: `continue`, `rollback` or `block`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunAnswer {
    /// The run.
    pub run_id: Uuid,
    /// What waits (a gate id).
    pub target: String,
    /// The chosen option.
    pub option: String,
    /// Who answers.
    pub by: String,
}

/// Whether an answer was taken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnswerReply {
    /// Taken and durable.
    pub accepted: bool,
    /// What happened, or why not.
    pub message: String,
}

/// What an operator asks of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "action")]
pub enum Control {
    /// Stop the run: compensate what was done (reverse order), end `cancelled`.
    Cancel,
    /// Start nothing new; running steps finish.
    Pause,
    /// Undo a pause.
    Resume,
    /// Run a failed step again (reopening a failed run).
    Retry {
        /// The step.
        step: String,
    },
    /// Mark a pending or failed step as skipped; steps after it proceed.
    Skip {
        /// The step.
        step: String,
        /// Why, recorded in the run.
        reason: String,
    },
}

/// An operator control, sent to `muster.control.<run>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunControl {
    /// The run.
    pub run_id: Uuid,
    /// What to do.
    pub control: Control,
    /// Who asks.
    pub by: String,
}

/// One durable transition of a run, as the audit trail keeps it. Published after the snapshot
/// write it describes and before the effects are carried out, with the message id
/// `audit/<run>/<revision>`, so a repeat after a crash is dropped as a duplicate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// The run.
    pub run_id: Uuid,
    /// The KV revision of the snapshot this record describes: the order of the trail.
    pub revision: u64,
    /// When the transition was written.
    pub at: jiff::Timestamp,
    /// What caused it, in words: `trigger`, `result of step deploy from devops-1`,
    /// `alice: cancel`, `timer`, `recovery`.
    pub cause: String,
    /// What changed, one line each (`step deploy: running → succeeded`).
    pub changes: Vec<String>,
    /// The run's state after the transition.
    pub state: crate::run::RunState,
}

/// What kind of question a prompt asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PromptKind {
    /// An escalation (`ESC-n`): pick an option before the fallback fires.
    Escalation,
    /// A form step (`F-n`): fill typed fields, possibly over several answers.
    Form,
    /// An approval step (`A-n`): approve or reject, quorum N of M.
    Approval,
    /// A decision step (`D-n`): pick an option.
    Decision,
    /// A manual step (`M-n`): do the work, confirm the checklist.
    Manual,
}

impl PromptKind {
    /// The prefix of the short id people type (`ESC`, `F`, `A`, `D`, `M`).
    pub fn prefix(self) -> &'static str {
        match self {
            PromptKind::Escalation => "ESC",
            PromptKind::Form => "F",
            PromptKind::Approval => "A",
            PromptKind::Decision => "D",
            PromptKind::Manual => "M",
        }
    }
}

/// One option as people see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoticeOption {
    /// What to type.
    pub id: String,
    /// What it does, in words.
    pub description: String,
    /// What it does to the run (`continue`, `retry`, `skip`, `rollback`, `abort`).
    pub effect: String,
}

/// A message for people about a prompt, published on `muster.evt.<run>.notice` (durable: the
/// bridge consumes it with its own consumer, so a bridge restart loses nothing). The ladder
/// publishes one per stage; `text` is the whole context package, rendered once, so every
/// channel shows the same thing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromptNotice {
    /// The run.
    pub run_id: Uuid,
    /// The short id people type (`ESC-12`).
    pub prompt: String,
    /// What kind of question it is.
    pub kind: PromptKind,
    /// Why this notice now: `raised`, `renotified`, `decision_due`, `answered`, `rejected`,
    /// `expired`, `follow_up`, `progress` (a partial form answer), `closed`.
    pub stage: String,
    /// For escalations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<crate::protocol::model::Severity>,
    /// One line.
    pub title: String,
    /// The context package: what happened, output tails, gate evidence, the options and what
    /// each does, the default and fallback and when it fires.
    pub text: String,
    /// The options that can be chosen (escalations, decisions).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<NoticeOption>,
    /// Groups and users to address at this stage.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub responders: Vec<String>,
    /// Where to post, when the protocol names a channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// The next deadline and what happens at it, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<jiff::Timestamp>,
}
