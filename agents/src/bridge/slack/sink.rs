//! Where answers from Slack and the HTTP API go: the [`AnswerSink`] trait, and
//! [`BusAnswerSink`], its implementation over the bus.
//!
//! ```text
//!  "ESC-12" ── KV muster_prompts n.12 ──▶ {run_id, kind, title}
//!  listing ── RunStore::list() ──▶ RunSnapshot.prompts (open ones of unfinished runs)
//!                                          │
//!  AnswerBody {run_id, prompt, action, note, responder, nonce, issued_at, expires_at}
//!     └─ SignedAnswer::sign(bridge principal's seed)
//!          └─ request muster.answer.<run> ──▶ orchestrator ──▶ AnswerReply {accepted, message}
//! ```
//!
//! The front ends (Slack, HTTP) only ever turn what a person typed or clicked into an
//! [`AnswerAction`] and an [`Identity`]; authority (may this person answer?) and state (is it
//! still open? is the option valid?) are the orchestrator's, and its refusal comes back as the
//! reply's message. The trait keeps the front ends testable without the orchestrator and lets
//! the bridge service plug in its own implementation later.

use crate::wire;
use bytes::Bytes;
use jiff::{SignedDuration, Timestamp};
use muster_bus::subjects::Subjects;
use muster_bus::{Bucket, Error as BusError, Kv, Messaging};
use muster_schemas::answer::{AnswerAction, AnswerBody, Identity, SignedAnswer};
use muster_schemas::message::{AnswerReply, PromptKind};
use muster_schemas::run::{PromptRecord, PromptState, RunSnapshot, RunState};
use muster_schemas::{Component, Payload, Sender};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::future::Future;
use std::time::Duration;
use uuid::Uuid;

/// A prompt as the Prompts bucket knows it (`n.<number>`), with what its run's snapshot says
/// about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PromptInfo {
    /// The short id people type, canonical (`ESC-12`).
    pub prompt: String,
    /// The run that asks.
    pub run_id: Uuid,
    /// What kind of question it is.
    pub kind: PromptKind,
    /// One line.
    pub title: String,
    /// The run's state, when its snapshot was found: a prompt of a finished run is closed.
    pub run_state: Option<RunState>,
    /// The prompt's own state, when its run's snapshot records it (`open`, `answered`, ...).
    pub state: Option<PromptState>,
    /// The next deadline of its ladder, if any: what a dashboard sorts by.
    pub due: Option<Timestamp>,
}

impl PromptInfo {
    /// Whether the prompt may still take answers as far as the bridge can tell: its run exists
    /// and has not finished, and the snapshot does not record it as closed. The orchestrator
    /// has the last word.
    pub fn is_open(&self) -> bool {
        self.run_state.is_some_and(|state| !state.is_terminal()) && self.state.is_none_or(PromptState::is_open)
    }

    /// The view of a prompt the run's snapshot records.
    fn of_record(run: &RunSnapshot, record: &PromptRecord) -> Self {
        Self {
            prompt: record.label(),
            run_id: run.id,
            kind: record.kind,
            title: record.title.clone(),
            run_state: Some(run.state),
            state: Some(record.state),
            due: record.due,
        }
    }
}

/// Why an answer could not be delivered or a prompt looked up. A refusal by the orchestrator
/// is not an error: it is an [`AnswerReply`] with `accepted: false`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SinkError {
    /// No prompt has that short id.
    #[error("{0} is not a prompt muster knows: check the id in the notice (like ESC-12)")]
    UnknownPrompt(String),
    /// Nobody serves the answer subject: no orchestrator, or one between leaders.
    #[error("no orchestrator is taking answers right now; try again in a minute")]
    NoOrchestrator,
    /// No reply in time. The answer may still have been taken.
    #[error("the orchestrator did not reply within {}ms; the answer may still have been taken, so check before answering again", .0.as_millis())]
    Timeout(Duration),
    /// The bus failed, or the reply was not an answer reply.
    #[error("{0}")]
    Failed(String),
}

/// Delivers people's answers and looks prompts up; see the module docs.
pub trait AnswerSink: Send + Sync + 'static {
    /// The prompt with this short id (`ESC-12`, case-insensitive), or
    /// [`SinkError::UnknownPrompt`].
    fn lookup(&self, prompt: &str) -> impl Future<Output = Result<PromptInfo, SinkError>> + Send;

    /// Every prompt whose run is still going, lowest number first.
    fn open_prompts(&self) -> impl Future<Output = Result<Vec<PromptInfo>, SinkError>> + Send;

    /// Sends `responder`'s answer to `prompt` and returns the orchestrator's reply.
    fn answer(
        &self,
        prompt: &str,
        action: AnswerAction,
        note: Option<String>,
        responder: Identity,
    ) -> impl Future<Output = Result<AnswerReply, SinkError>> + Send;
}

/// One sink shared by several front ends (the Slack endpoint and the HTTP API).
impl<T: AnswerSink> AnswerSink for std::sync::Arc<T> {
    fn lookup(&self, prompt: &str) -> impl Future<Output = Result<PromptInfo, SinkError>> + Send {
        (**self).lookup(prompt)
    }

    fn open_prompts(&self) -> impl Future<Output = Result<Vec<PromptInfo>, SinkError>> + Send {
        (**self).open_prompts()
    }

    fn answer(
        &self,
        prompt: &str,
        action: AnswerAction,
        note: Option<String>,
        responder: Identity,
    ) -> impl Future<Output = Result<AnswerReply, SinkError>> + Send {
        (**self).answer(prompt, action, note, responder)
    }
}

/// The nkey seed (`SU…`) of the principal the bridge signs as. Its `Debug` never shows it.
#[derive(Clone)]
pub struct Seed(String);

impl Seed {
    /// Wraps a seed as `muster keygen` printed it.
    pub fn new(seed: impl Into<String>) -> Self {
        Self(seed.into())
    }
}

impl fmt::Debug for Seed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Seed(..)")
    }
}

/// How [`BusAnswerSink`] signs and sends.
#[derive(Debug, Clone)]
pub struct BusSinkOptions {
    /// Where answers go.
    pub subjects: Subjects,
    /// The bridge's instance id, as the sender of its answers.
    pub id: String,
    /// The principal's name in the orchestrator's responder map.
    pub principal: String,
    /// The principal's seed.
    pub seed: Seed,
    /// How long to wait for the orchestrator. Slack gives a slash command 3 s to reply, so
    /// the default stays under that.
    pub request_timeout: Duration,
    /// How long a signed answer stays valid; the orchestrator refuses it after that, which
    /// bounds how long a captured answer could be replayed (its nonce is single-use anyway).
    pub validity: Duration,
}

impl BusSinkOptions {
    /// Defaults: 2.5 s for the orchestrator, answers valid for 5 minutes.
    pub fn new(subjects: Subjects, id: String, principal: String, seed: Seed) -> Self {
        Self {
            subjects,
            id,
            principal,
            seed,
            request_timeout: Duration::from_millis(2500),
            validity: Duration::from_secs(300),
        }
    }
}

/// The [`AnswerSink`] over the bus: prompts from the Prompts bucket, run states from the run
/// snapshots, answers signed and sent as a request to the run's answer subject.
#[derive(Debug, Clone)]
pub struct BusAnswerSink<B> {
    bus: B,
    options: BusSinkOptions,
    sender: Sender,
}

/// A Prompts bucket entry (`n.<number>`).
#[derive(Debug, Deserialize)]
struct PromptEntry {
    run_id: Uuid,
    kind: PromptKind,
    #[serde(default)]
    title: String,
}

impl<B: Kv + Messaging + Clone> BusAnswerSink<B> {
    /// A sink over `bus`.
    pub fn new(bus: B, options: BusSinkOptions) -> Self {
        let sender = Sender { component: Component::Bridge, role: None, id: options.id.clone() };
        Self { bus, options, sender }
    }

    /// The entry behind key `n.<number>`, if there is a readable one, without its run state.
    async fn entry(&self, number: u64) -> Result<Option<PromptInfo>, SinkError> {
        let key = format!("n.{number}");
        let Some(found) = self.bus.kv_get(Bucket::Prompts, &key).await.map_err(bus_failed)? else {
            return Ok(None);
        };
        let entry: PromptEntry = match serde_json::from_slice(&found.value) {
            Ok(entry) => entry,
            Err(err) => {
                tracing::warn!(key = %key, error = %err, "skipping unreadable prompt entry");
                return Ok(None);
            }
        };
        Ok(Some(PromptInfo {
            prompt: format!("{}-{number}", entry.kind.prefix()),
            run_id: entry.run_id,
            kind: entry.kind,
            title: entry.title,
            run_state: None,
            state: None,
            due: None,
        }))
    }

    /// A run's snapshot; `None` when there is none.
    async fn snapshot(&self, run: Uuid) -> Result<Option<RunSnapshot>, SinkError> {
        crate::store::RunStore::new(self.bus.clone())
            .load(run)
            .await
            .map(|found| found.map(|(snapshot, _)| snapshot))
            .map_err(|err| SinkError::Failed(format!("cannot read run {run}: {err}")))
    }

    /// The entry for a typed id (`ESC-12`, case-insensitive), whose prefix must match its kind
    /// so that `F-12` never answers the escalation numbered 12.
    async fn find(&self, prompt: &str) -> Result<PromptInfo, SinkError> {
        let unknown = || SinkError::UnknownPrompt(clip(prompt, 40));
        let (prefix, number) = split_prompt(prompt).ok_or_else(unknown)?;
        let info = self.entry(number).await?.ok_or_else(unknown)?;
        if info.kind.prefix().eq_ignore_ascii_case(prefix) { Ok(info) } else { Err(unknown()) }
    }
}

impl<B: Kv + Messaging + Clone> AnswerSink for BusAnswerSink<B> {
    async fn lookup(&self, prompt: &str) -> Result<PromptInfo, SinkError> {
        let mut info = self.find(prompt).await?;
        let Some(run) = self.snapshot(info.run_id).await? else { return Ok(info) };
        let number = split_prompt(&info.prompt).map(|(_, number)| number);
        match run.prompts.iter().find(|record| Some(record.number) == number && record.kind == info.kind) {
            Some(record) => info = PromptInfo::of_record(&run, record),
            None => info.run_state = Some(run.state),
        }
        Ok(info)
    }

    /// Reads every run snapshot once and lists the open prompts of the unfinished ones: the
    /// snapshot is the orchestrator's own record, so an answered prompt of a waiting run is
    /// not listed. The cost grows with the runs kept, which is fine for a listing people ask
    /// for.
    async fn open_prompts(&self) -> Result<Vec<PromptInfo>, SinkError> {
        let runs = crate::store::RunStore::new(self.bus.clone())
            .list()
            .await
            .map_err(|err| SinkError::Failed(format!("cannot list runs: {err}")))?;
        let mut open: Vec<(u64, PromptInfo)> = runs
            .iter()
            .filter(|run| !run.state.is_terminal())
            .flat_map(|run| {
                run.prompts
                    .iter()
                    .filter(|record| record.number != 0 && record.state.is_open())
                    .map(move |record| (record.number, PromptInfo::of_record(run, record)))
            })
            .collect();
        open.sort_by_key(|(number, _)| *number);
        Ok(open.into_iter().map(|(_, info)| info).collect())
    }

    async fn answer(
        &self,
        prompt: &str,
        action: AnswerAction,
        note: Option<String>,
        responder: Identity,
    ) -> Result<AnswerReply, SinkError> {
        // The orchestrator knows best whether the prompt is still open; no snapshot read here.
        let info = self.find(prompt).await?;
        let issued_at = Timestamp::now();
        let validity = SignedDuration::try_from(self.options.validity)
            .map_err(|err| SinkError::Failed(format!("answer validity out of range: {err}")))?;
        let expires_at = issued_at
            .checked_add(validity)
            .map_err(|err| SinkError::Failed(format!("answer validity out of range: {err}")))?;
        let body = AnswerBody {
            run_id: info.run_id,
            prompt: info.prompt.clone(),
            action,
            note,
            responder,
            nonce: nonce()?,
            issued_at,
            expires_at,
        };
        let signed = SignedAnswer::sign(&body, &self.options.principal, &self.options.seed.0).map_err(|err| {
            SinkError::Failed(format!("cannot sign the answer as `{}`: {err}", self.options.principal))
        })?;
        let bytes = wire::seal(&self.sender, Some(info.run_id), Payload::SignedAnswer(signed))
            .map_err(|err| SinkError::Failed(format!("cannot encode the answer: {err}")))?;
        let subject = self.options.subjects.answer(&info.run_id.to_string());
        let timeout = self.options.request_timeout;
        let reply: Bytes = self.bus.request(&subject, bytes, timeout).await.map_err(|err| match err {
            BusError::NoResponders(_) => SinkError::NoOrchestrator,
            BusError::Timeout => SinkError::Timeout(timeout),
            other => bus_failed(other),
        })?;
        match wire::decode(&reply).map(|envelope| envelope.payload) {
            Ok(Payload::AnswerReply(reply)) => Ok(reply),
            Ok(other) => {
                Err(SinkError::Failed(format!("the orchestrator replied {} instead of an answer reply", other.kind())))
            }
            Err(err) => Err(SinkError::Failed(format!("undecodable reply from the orchestrator: {err}"))),
        }
    }
}

/// `ESC-12` → (`ESC`, 12); `None` for anything else.
fn split_prompt(prompt: &str) -> Option<(&str, u64)> {
    let (prefix, digits) = prompt.trim().split_once('-')?;
    if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_alphabetic()) {
        return None;
    }
    if digits.is_empty() || digits.len() > 18 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((prefix, digits.parse().ok()?))
}

/// 128 random bits as 32 lowercase hex digits: the single-use answer nonce.
fn nonce() -> Result<String, SinkError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|err| SinkError::Failed(format!("no randomness for a nonce: {err}")))?;
    Ok(hex::encode(bytes))
}

fn bus_failed(err: BusError) -> SinkError {
    SinkError::Failed(format!("cannot reach the bus: {err}"))
}

/// At most `max` characters of text that came from outside, for messages that quote it.
pub(crate) fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bridge::slack::testing::{Orchestrator, Reply, prompt_entry};
    use muster_bus::memory::MemoryBus;
    use muster_schemas::answer::Channel;

    #[test]
    fn prompt_ids_split_into_prefix_and_number() {
        assert_eq!(split_prompt("ESC-12"), Some(("ESC", 12)));
        assert_eq!(split_prompt("esc-7"), Some(("esc", 7)));
        for bad in ["ESC", "ESC-", "-12", "ESC-1a", "E1-2", "ESC-+1", "ESC-99999999999999999999", "ESC 12"] {
            assert_eq!(split_prompt(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn nonces_are_128_bit_lowercase_hex_and_differ() {
        let (a, b) = (nonce().unwrap(), nonce().unwrap());
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)));
        assert_ne!(a, b);
    }

    #[tokio::test]
    async fn an_answer_is_signed_by_the_principal_and_carries_the_responder() {
        let bus = MemoryBus::new();
        let orchestrator = Orchestrator::start(&bus, Reply::Accept).await;
        prompt_entry(&bus, 12, orchestrator.run, "escalation", "disk almost full").await;
        let sink = orchestrator.sink(&bus);
        let alice = Identity { channel: Channel::Slack, id: "U123".into() };
        let reply = sink
            .answer("esc-12", AnswerAction::Choose { option: "rollback".into() }, Some("because".into()), alice.clone())
            .await
            .unwrap();
        assert!(reply.accepted, "{reply:?}");
        let body = orchestrator.received().await;
        assert_eq!(body.prompt, "ESC-12");
        assert_eq!(body.run_id, orchestrator.run);
        assert_eq!(body.responder, alice);
        assert_eq!(body.note.as_deref(), Some("because"));
        let validity = body.expires_at.duration_since(body.issued_at);
        assert_eq!(validity, SignedDuration::from_secs(300));
    }

    #[tokio::test]
    async fn a_prefix_that_does_not_match_the_kind_is_an_unknown_prompt() {
        let bus = MemoryBus::new();
        let orchestrator = Orchestrator::start(&bus, Reply::Accept).await;
        prompt_entry(&bus, 3, orchestrator.run, "escalation", "t").await;
        let sink = orchestrator.sink(&bus);
        assert!(sink.lookup("ESC-3").await.is_ok());
        assert_eq!(sink.lookup("F-3").await, Err(SinkError::UnknownPrompt("F-3".into())));
        assert_eq!(sink.lookup("ESC-4").await, Err(SinkError::UnknownPrompt("ESC-4".into())));
    }

    #[tokio::test]
    async fn no_orchestrator_is_reported_as_such() {
        let bus = MemoryBus::new();
        let orchestrator = Orchestrator::start(&bus, Reply::Accept).await;
        prompt_entry(&bus, 1, orchestrator.run, "escalation", "t").await;
        let sink = orchestrator.sink(&bus);
        orchestrator.stop().await;
        let who = Identity { channel: Channel::Http, id: "alice".into() };
        assert_eq!(sink.answer("ESC-1", AnswerAction::Acknowledge, None, who).await, Err(SinkError::NoOrchestrator));
    }
}
