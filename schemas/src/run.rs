//! The durable state of a run and the JSON view of it that scripts consume.
//!
//! [`RunSnapshot`] is what the orchestrator writes to the `muster_runs` KV bucket (MessagePack)
//! with a compare-and-set on every transition, *before* acting on it. [`RunStatus`] is the
//! stable JSON contract printed by `muster status --json`; fields may be added, never renamed
//! or removed.

use crate::message::Outcome;
use crate::protocol::Protocol;
use crate::role::Role;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

/// Where a run is in its life.
///
/// `pending → running ⇄ waiting → succeeded | failed | rolled_back | cancelled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// Created, nothing dispatched yet.
    Pending,
    /// Work is dispatched or executing.
    Running,
    /// Held at a gate, for a human, or in retry backoff.
    Waiting,
    /// Every step succeeded.
    Succeeded,
    /// A step failed for good and nothing was rolled back.
    Failed,
    /// A failure was compensated by rollback actions.
    RolledBack,
    /// An operator cancelled it.
    Cancelled,
}

impl RunState {
    /// Whether the run will never change again.
    pub fn is_terminal(self) -> bool {
        matches!(self, RunState::Succeeded | RunState::Failed | RunState::RolledBack | RunState::Cancelled)
    }

    /// The wire name, for tables and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Pending => "pending",
            RunState::Running => "running",
            RunState::Waiting => "waiting",
            RunState::Succeeded => "succeeded",
            RunState::Failed => "failed",
            RunState::RolledBack => "rolled_back",
            RunState::Cancelled => "cancelled",
        }
    }
}

/// Where a step is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    /// Not dispatched yet.
    Pending,
    /// Dispatched to its role's work queue, or executing.
    Running,
    /// Finished with success.
    Succeeded,
    /// Finished without success.
    Failed,
    /// Not run (its condition was false, or an operator skipped it).
    Skipped,
    /// Its compensating action ran.
    RolledBack,
}

impl StepState {
    /// The wire name, for tables and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            StepState::Pending => "pending",
            StepState::Running => "running",
            StepState::Succeeded => "succeeded",
            StepState::Failed => "failed",
            StepState::Skipped => "skipped",
            StepState::RolledBack => "rolled_back",
        }
    }
}

/// The durable record of one step in a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// The step id from the protocol.
    pub id: String,
    /// Its owner role.
    pub owner: Role,
    /// Its state.
    pub state: StepState,
    /// The orchestrator's current attempt number (0 until first dispatched).
    pub attempt: u32,
    /// How many deliveries the accepted result needed (redeliveries after a lost lease count).
    pub deliveries: u32,
    /// The agent whose result was accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// How it ended, once it has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    /// Exit code of the accepted attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Duration of the accepted attempt on the agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// When it was dispatched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Timestamp>,
    /// When its result was accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Timestamp>,
    /// Tail of standard output of the accepted attempt.
    #[serde(default)]
    pub stdout_tail: String,
    /// Tail of standard error of the accepted attempt.
    #[serde(default)]
    pub stderr_tail: String,
    /// Outputs of the accepted attempt.
    #[serde(default)]
    pub outputs: BTreeMap<String, serde_json::Value>,
    /// When the next attempt may start (retry backoff), durable so a restart keeps it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<Timestamp>,
    /// Failed attempts in a row (retries, alternatives), for escalations and status.
    #[serde(default)]
    pub failures: u32,
    /// Attempts of the current action (the step's own, or the alternative in use).
    #[serde(default)]
    pub tries: u32,
    /// The alternative in use, when the step's own action has been given up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alternative: Option<String>,
    /// Why the step was skipped or failed, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl StepRecord {
    /// A step that has not started.
    pub fn pending(id: &str, owner: Role) -> Self {
        Self {
            id: id.to_owned(),
            owner,
            state: StepState::Pending,
            attempt: 0,
            deliveries: 0,
            agent: None,
            outcome: None,
            exit_code: None,
            duration_ms: None,
            started_at: None,
            finished_at: None,
            stdout_tail: String::new(),
            stderr_tail: String::new(),
            outputs: BTreeMap::new(),
            retry_at: None,
            failures: 0,
            tries: 0,
            alternative: None,
            note: None,
        }
    }
}

/// The whole durable state of a run: enough to resume it after any crash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSnapshot {
    /// The run id (UUID v7, so ids sort by creation time).
    pub id: Uuid,
    /// The protocol as it was when the run started.
    pub protocol: Protocol,
    /// The validated inputs, defaults applied.
    pub inputs: BTreeMap<String, String>,
    /// The run's state.
    pub state: RunState,
    /// When it was created.
    pub started_at: Timestamp,
    /// When it reached a terminal state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Timestamp>,
    /// Why it failed, in words, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// One record per protocol step, in protocol order.
    pub steps: Vec<StepRecord>,
    /// Step ids in the order they succeeded: a rollback compensates in reverse.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub completed: Vec<String>,
    /// Set while the run rolls back: the compensations still to run, next first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<Vec<String>>,
    /// One record per quality gate, in protocol order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gates: Vec<GateRecord>,
    /// Paused by an operator: nothing new starts.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub paused: bool,
    /// Cancelled by an operator: the rollback in progress ends the run `cancelled`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cancelled: bool,
    /// Operator actions, in order (`<who>: <what>`), for the audit trail.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interventions: Vec<String>,
    /// What each finished phase created, in the order phases finished: the record a rollback
    /// after a crash reads to know what exists.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checkpoints: Vec<PhaseCheckpoint>,
    /// The leadership-lease revision of the orchestrator that wrote this snapshot last. A
    /// writer holding an older lease refuses to write (it was deposed), so a paused ex-leader
    /// can never overwrite its successor's work: the fencing token travels with the data.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub fence: u64,
    /// What people are asked, in the order it was asked: escalations and human steps.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prompts: Vec<PromptRecord>,
    /// Who started the run, as the trigger said (an approval may refuse them as approver).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
}

/// What a prompt is about: what an escalation's option acts on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum PromptSubject {
    /// A step (a human step itself, or the step an escalation is about).
    Step(String),
    /// A quality gate whose outcome escalated.
    Gate(String),
    /// A phase running too long.
    Phase(String),
    /// The whole run.
    Run,
}

/// Where a prompt stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PromptState {
    /// Raised, nobody has answered.
    Open,
    /// Somebody acknowledged it (triage); no decision yet.
    Acknowledged,
    /// Answered with an option, a complete form, enough approvals or a confirmation.
    Answered,
    /// A person rejected it (an approval refused, an escalation declined).
    Rejected,
    /// Its deadline passed without an answer; the declared fallback ran.
    Expired,
    /// Closed without an answer because the run moved on (ended, rolled back, step retried).
    Withdrawn,
}

impl PromptState {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            PromptState::Open => "open",
            PromptState::Acknowledged => "acknowledged",
            PromptState::Answered => "answered",
            PromptState::Rejected => "rejected",
            PromptState::Expired => "expired",
            PromptState::Withdrawn => "withdrawn",
        }
    }

    /// Still waiting for a person.
    pub fn is_open(self) -> bool {
        matches!(self, PromptState::Open | PromptState::Acknowledged)
    }
}

/// The next ladder stage a prompt's timer checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LadderStage {
    /// Expect an acknowledgement; else notify the next responder group.
    Triage,
    /// Expect a decision; else remind everyone that the fallback is coming.
    Decide,
    /// Run the fallback (escalations), or apply the deadline outcome (human steps).
    Fallback,
    /// Ask for the follow-up (root-cause analysis).
    FollowUp,
    /// Nothing more to do.
    Done,
}

/// How a prompt was closed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromptOutcome {
    /// The option chosen (or the fallback applied), if the prompt has options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub option: Option<String>,
    /// The person, or `deadline` when it expired.
    pub by: String,
    /// When.
    pub at: Timestamp,
    /// What the person wrote with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Something people are asked: an escalation (`ESC-n`) or a human step (`F-n`, `A-n`, `D-n`,
/// `M-n`). Durable in the snapshot like everything else, including its ladder deadlines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromptRecord {
    /// The short number people type after the prefix; 0 until one is allocated.
    pub number: u64,
    /// What kind of question.
    pub kind: crate::message::PromptKind,
    /// The escalation id, or the human step's id.
    pub source: String,
    /// What its options act on.
    pub subject: PromptSubject,
    /// Where it stands.
    pub state: PromptState,
    /// Whether the run waits for it.
    pub blocking: bool,
    /// When it was raised.
    pub raised_at: Timestamp,
    /// One line.
    pub title: String,
    /// The context package (what happened, tails, evidence, options, fallback and when).
    pub text: String,
    /// The next ladder stage to check, and when.
    pub stage: LadderStage,
    /// When `stage` is due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due: Option<Timestamp>,
    /// Responder groups and users notified so far, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notified: Vec<String>,
    /// Who acknowledged it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged_by: Option<String>,
    /// How it was closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<PromptOutcome>,
    /// A form's answers so far (kept across partial answers).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, String>,
    /// The people who approved so far.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvals: Vec<String>,
    /// What an approval is bound to (a hash of the approved thing) when it was asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binding: Option<String>,
    /// Notices published so far (the next notice's message id uses it).
    #[serde(default)]
    pub notices: u32,
    /// The latest notice, re-published on recovery (its id makes a repeat a duplicate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_notice: Option<crate::message::PromptNotice>,
}

impl PromptRecord {
    /// `ESC-12`, or `ESC-?` before a number is allocated.
    pub fn label(&self) -> String {
        match self.number {
            0 => format!("{}-?", self.kind.prefix()),
            n => format!("{}-{n}", self.kind.prefix()),
        }
    }
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

/// What one phase left behind when its last step finished.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseCheckpoint {
    /// The phase.
    pub phase: String,
    /// When its last step finished.
    pub at: Timestamp,
    /// Its steps that succeeded, in completion order: what a rollback has to undo.
    pub completed: Vec<String>,
    /// Recorded outputs as `<step>.<output>` → value: the phase's `checkpoint.record` list when
    /// it has one, else every output of its succeeded steps (external ids, plans, hashes).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub outputs: BTreeMap<String, serde_json::Value>,
}

/// Where a gate is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GateState {
    /// Its steps have not finished.
    Pending,
    /// An agent of its owner role is judging it.
    Evaluating,
    /// Passed (or warned, or a person let the run continue): what it guards may run.
    Passed,
    /// Failed: the run was blocked or rolled back.
    Failed,
    /// Held for a person (`muster answer`).
    Waiting,
    /// Never judged: what it checks did not run.
    Skipped,
}

impl GateState {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            GateState::Pending => "pending",
            GateState::Evaluating => "evaluating",
            GateState::Passed => "passed",
            GateState::Failed => "failed",
            GateState::Waiting => "waiting",
            GateState::Skipped => "skipped",
        }
    }
}

/// The durable record of one gate in a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateRecord {
    /// The gate id.
    pub id: String,
    /// Its state.
    pub state: GateState,
    /// Evaluations so far.
    pub attempt: u32,
    /// The last verdict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<crate::message::Verdict>,
    /// The evidence of the last verdict.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<crate::message::Evidence>,
    /// The agent that judged it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// Who answered, when a person decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    /// What happened, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl RunSnapshot {
    /// The stable JSON view of this run.
    pub fn status(&self) -> RunStatus {
        RunStatus {
            id: self.id,
            protocol: self.protocol.id.clone(),
            state: self.state,
            started_at: self.started_at,
            finished_at: self.finished_at,
            reason: self.reason.clone(),
            inputs: self.inputs.clone(),
            gates: self.gates.clone(),
            paused: self.paused,
            interventions: self.interventions.clone(),
            checkpoints: self.checkpoints.clone(),
            prompts: self.prompts.iter().map(PromptStatus::of).collect(),
            steps: self
                .steps
                .iter()
                .map(|s| StepStatus {
                    id: s.id.clone(),
                    owner: s.owner,
                    state: s.state,
                    attempts: s.deliveries.max(s.attempt),
                    agent: s.agent.clone(),
                    exit_code: s.exit_code,
                    duration_ms: s.duration_ms,
                    outcome: s.outcome,
                    note: s.note.clone(),
                    started_at: s.started_at,
                    finished_at: s.finished_at,
                })
                .collect(),
        }
    }
}

/// `muster status --json`: the stable view of a run (see `docs/status-json.md`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunStatus {
    /// Run id.
    pub id: Uuid,
    /// Protocol id.
    pub protocol: String,
    /// Run state.
    pub state: RunState,
    /// Creation time (RFC 3339).
    pub started_at: Timestamp,
    /// Terminal time (RFC 3339), or null.
    pub finished_at: Option<Timestamp>,
    /// Why it failed, or null.
    pub reason: Option<String>,
    /// Inputs after validation and defaults.
    pub inputs: BTreeMap<String, String>,
    /// Steps in protocol order.
    pub steps: Vec<StepStatus>,
    /// Quality gates with their verdicts and evidence.
    #[serde(default)]
    pub gates: Vec<GateRecord>,
    /// Paused by an operator.
    #[serde(default)]
    pub paused: bool,
    /// Operator actions, in order.
    #[serde(default)]
    pub interventions: Vec<String>,
    /// What each finished phase left behind (see [`PhaseCheckpoint`]).
    #[serde(default)]
    pub checkpoints: Vec<PhaseCheckpoint>,
    /// Escalations and human steps, oldest first.
    #[serde(default)]
    pub prompts: Vec<PromptStatus>,
}

/// One prompt in [`RunStatus`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromptStatus {
    /// `ESC-12`, `F-3`, ...
    pub id: String,
    /// `escalation`, `form`, `approval`, `decision`, `manual`.
    pub kind: crate::message::PromptKind,
    /// The escalation or step id in the protocol.
    pub source: String,
    /// `open`, `acknowledged`, `answered`, `rejected`, `expired`, `withdrawn`.
    pub state: PromptState,
    /// Whether the run waits for it.
    pub blocking: bool,
    /// One line.
    pub title: String,
    /// When it was raised.
    pub raised_at: Timestamp,
    /// The next deadline, or null.
    pub due: Option<Timestamp>,
    /// The next ladder stage.
    pub stage: LadderStage,
    /// Who acknowledged it, or null.
    pub acknowledged_by: Option<String>,
    /// How it was closed, or null.
    pub outcome: Option<PromptOutcome>,
    /// A form's answers so far.
    pub fields: BTreeMap<String, String>,
    /// Approvers so far.
    pub approvals: Vec<String>,
}

impl PromptStatus {
    /// The status view of a record.
    pub fn of(record: &PromptRecord) -> Self {
        Self {
            id: record.label(),
            kind: record.kind,
            source: record.source.clone(),
            state: record.state,
            blocking: record.blocking,
            title: record.title.clone(),
            raised_at: record.raised_at,
            due: record.due,
            stage: record.stage,
            acknowledged_by: record.acknowledged_by.clone(),
            outcome: record.outcome.clone(),
            fields: record.fields.clone(),
            approvals: record.approvals.clone(),
        }
    }
}

/// One step in [`RunStatus`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepStatus {
    /// Step id.
    pub id: String,
    /// Owner role.
    pub owner: Role,
    /// Step state.
    pub state: StepState,
    /// Executions so far: orchestrator attempts, or bus deliveries if a lease was lost.
    pub attempts: u32,
    /// The agent whose result was accepted, or null.
    pub agent: Option<String>,
    /// Exit code, or null.
    pub exit_code: Option<i32>,
    /// Duration on the agent in milliseconds, or null.
    pub duration_ms: Option<u64>,
    /// How it ended, or null.
    pub outcome: Option<Outcome>,
    /// Why it was skipped, failed or rolled back, or null.
    pub note: Option<String>,
    /// When it was first dispatched, or null.
    pub started_at: Option<Timestamp>,
    /// When its last result was accepted, or null.
    pub finished_at: Option<Timestamp>,
}
