//! What a step does. A step (and an alternative, a rollback, a gate probe) carries exactly one
//! action key; [`with_action!`] adds the keys to those structs so they stay in one place, and
//! [`ActionRef`] is the one action a value holds.

use super::DurationSpec;
use super::field::FieldSpec;
use super::oversight::Responders;
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Adds the action keys (`exec`, `http`, `tcp`, `tls`, `wait`, `form`, `approval`,
/// `decision`, `manual`) to a struct and implements [`HasAction`] for it.
#[macro_export]
macro_rules! with_action {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[$fmeta:meta])* pub $field:ident : $ty:ty, )*
        }
    ) => {
        $(#[$meta])*
        pub struct $name {
            $( $(#[$fmeta])* pub $field: $ty, )*
            /// Run a program (never through a shell unless `shell:` is used).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub exec: Option<$crate::protocol::model::ExecAction>,
            /// Make an HTTP request and check the answer.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub http: Option<$crate::protocol::model::HttpAction>,
            /// Open a TCP connection.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub tcp: Option<$crate::protocol::model::TcpAction>,
            /// Check a TLS certificate.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub tls: Option<$crate::protocol::model::TlsAction>,
            /// Wait for a duration or a condition.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub wait: Option<$crate::protocol::model::WaitAction>,
            /// A person fills in typed fields.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub form: Option<$crate::protocol::model::FormAction>,
            /// People approve or reject.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub approval: Option<$crate::protocol::model::ApprovalAction>,
            /// A person picks one of several options.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub decision: Option<$crate::protocol::model::DecisionAction>,
            /// A person confirms a checklist.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub manual: Option<$crate::protocol::model::ManualAction>,
        }

        impl $crate::protocol::model::action::HasAction for $name {
            fn actions(&self) -> Vec<$crate::protocol::model::ActionRef<'_>> {
                use $crate::protocol::model::ActionRef;
                let mut found = Vec::new();
                if let Some(a) = &self.exec { found.push(ActionRef::Exec(a)); }
                if let Some(a) = &self.http { found.push(ActionRef::Http(a)); }
                if let Some(a) = &self.tcp { found.push(ActionRef::Tcp(a)); }
                if let Some(a) = &self.tls { found.push(ActionRef::Tls(a)); }
                if let Some(a) = &self.wait { found.push(ActionRef::Wait(a)); }
                if let Some(a) = &self.form { found.push(ActionRef::Form(a)); }
                if let Some(a) = &self.approval { found.push(ActionRef::Approval(a)); }
                if let Some(a) = &self.decision { found.push(ActionRef::Decision(a)); }
                if let Some(a) = &self.manual { found.push(ActionRef::Manual(a)); }
                found
            }
        }
    };
}

/// The action keys, for messages.
pub const ACTION_KEYS: [&str; 9] = ["exec", "http", "tcp", "tls", "wait", "form", "approval", "decision", "manual"];

/// Something that carries action keys.
pub trait HasAction {
    /// Every action key that is set (a valid file sets exactly one).
    fn actions(&self) -> Vec<ActionRef<'_>>;

    /// The action, when exactly one is set.
    fn action(&self) -> Option<ActionRef<'_>> {
        let mut actions = self.actions();
        if actions.len() == 1 { actions.pop() } else { None }
    }
}

/// One action, borrowed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ActionRef<'a> {
    /// `exec`.
    Exec(&'a ExecAction),
    /// `http`.
    Http(&'a HttpAction),
    /// `tcp`.
    Tcp(&'a TcpAction),
    /// `tls`.
    Tls(&'a TlsAction),
    /// `wait`.
    Wait(&'a WaitAction),
    /// `form`.
    Form(&'a FormAction),
    /// `approval`.
    Approval(&'a ApprovalAction),
    /// `decision`.
    Decision(&'a DecisionAction),
    /// `manual`.
    Manual(&'a ManualAction),
}

impl ActionRef<'_> {
    /// The key it is written with.
    pub fn key(&self) -> &'static str {
        match self {
            ActionRef::Exec(_) => "exec",
            ActionRef::Http(_) => "http",
            ActionRef::Tcp(_) => "tcp",
            ActionRef::Tls(_) => "tls",
            ActionRef::Wait(_) => "wait",
            ActionRef::Form(_) => "form",
            ActionRef::Approval(_) => "approval",
            ActionRef::Decision(_) => "decision",
            ActionRef::Manual(_) => "manual",
        }
    }

    /// Whether a person must act (forms, approvals, decisions, manual checks).
    pub fn is_human(&self) -> bool {
        matches!(self, ActionRef::Form(_) | ActionRef::Approval(_) | ActionRef::Decision(_) | ActionRef::Manual(_))
    }
}

/// Run a program. Every string may hold templates, rendered one element at a time just before
/// dispatch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecAction {
    /// Program name or path (exactly one of `program` and `shell`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub program: Option<String>,
    /// Arguments, one element each (no word splitting, no shell).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// A script run with `sh -c`: only when the file says so, because it reintroduces quoting
    /// and injection concerns. Templates are not allowed in it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<String>,
    /// Extra environment variables (values may be templates; pass data to `shell:` this way).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Working directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
}

/// Make an HTTP request and judge the answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpAction {
    /// `GET` when omitted.
    #[serde(default = "default_method")]
    pub method: String,
    /// The URL (template).
    pub url: String,
    /// Request headers (values may be templates).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Request body (template).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// What counts as success.
    #[serde(default)]
    pub expect: HttpExpect,
}

fn default_method() -> String {
    "GET".to_owned()
}

/// What an HTTP answer must look like.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpExpect {
    /// Acceptable status codes; `[200]` when omitted.
    #[serde(default = "default_status")]
    pub status: Vec<u16>,
    /// Slowest acceptable answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_latency: Option<DurationSpec>,
    /// A regular expression the body must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_matches: Option<String>,
}

impl Default for HttpExpect {
    fn default() -> Self {
        Self { status: default_status(), max_latency: None, body_matches: None }
    }
}

fn default_status() -> Vec<u16> {
    vec![200]
}

/// Open a TCP connection (reachability).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpAction {
    /// Host name or address (template).
    pub host: String,
    /// Port.
    pub port: u16,
    /// Slowest acceptable connect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_latency: Option<DurationSpec>,
}

/// Check a server's TLS certificate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsAction {
    /// Host to connect to (template).
    pub host: String,
    /// Port; 443 when omitted.
    #[serde(default = "default_tls_port")]
    pub port: u16,
    /// Name the certificate must be valid for; `host` when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    /// Fail when the certificate expires in fewer days than this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_days_valid: Option<u32>,
}

fn default_tls_port() -> u16 {
    443
}

/// Wait for a duration, or until a condition holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitAction {
    /// How long to wait (exactly one of `duration` and `until`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<DurationSpec>,
    /// A CEL condition re-evaluated every `poll` until true (the step's timeout bounds it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// How often `until` is evaluated; 30 s when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poll: Option<DurationSpec>,
}

/// A person fills in typed fields. Partial answers are kept; the form may stay open for days.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FormAction {
    /// What the form is for, shown to the person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// The fields, in display order; answers become the step's outputs.
    pub fields: IndexMap<String, FieldSpec>,
    /// Who may fill it in.
    pub responders: Responders,
    /// How long it may stay open; without an answer the step fails (never a default answer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<DurationSpec>,
}

/// People approve or reject. No answer is never an approval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalAction {
    /// What is being approved, shown to approvers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// Who may approve.
    pub approvers: Responders,
    /// Approvals needed; 1 when omitted.
    #[serde(default = "one")]
    pub quorum: u32,
    /// Whether the person who started the run may approve it.
    #[serde(default)]
    pub allow_requester: bool,
    /// A template naming what is approved (e.g. a plan's hash): a change voids the approval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binds: Option<String>,
    /// How long approvers have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<DurationSpec>,
    /// Without enough approvals by the deadline: `reject` (the step fails) or `escalate`.
    #[serde(default)]
    pub on_timeout: ApprovalTimeout,
}

fn one() -> u32 {
    1
}

/// What an approval's deadline does. There is deliberately no "approve".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalTimeout {
    /// The approval is refused and the step fails.
    #[default]
    Reject,
    /// The step's `on_failure` escalation is raised and the approval stays open.
    Escalate,
}

/// A person picks one option.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionAction {
    /// The question.
    pub prompt: String,
    /// The options; the chosen id becomes the step's output `choice`.
    pub options: Vec<DecisionOption>,
    /// The option recommended to the person (shown first, never chosen silently).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// The option applied when the deadline passes without an answer (recorded as a fallback).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
    /// Who may decide.
    pub responders: Responders,
    /// How long they have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<DurationSpec>,
}

/// One option of a decision or an escalation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionOption {
    /// Typed by the person (`rollback`, `alt-region`).
    pub id: String,
    /// What choosing it does, in words.
    pub description: String,
    /// What the run does when it is chosen; `continue` when omitted.
    #[serde(default)]
    pub effect: OptionEffect,
}

/// What choosing an option does to the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptionEffect {
    /// Carry on.
    #[default]
    Continue,
    /// Retry the step that escalated.
    Retry,
    /// Skip the step that escalated.
    Skip,
    /// Roll the run back.
    Rollback,
    /// Stop the run as failed, without rollback.
    Abort,
}

/// A person confirms a checklist item by item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManualAction {
    /// What to do.
    pub instructions: String,
    /// Items to confirm.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checklist: Vec<String>,
    /// Who may confirm.
    pub responders: Responders,
    /// How long they have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<DurationSpec>,
}
