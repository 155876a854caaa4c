//! Test fixtures shared by the Slack and HTTP API tests: a stand-in orchestrator that serves
//! the answer subject on the memory bus, opens each signed answer with the bridge principal's
//! public key (as the real one does) and replies as the test scripts it.

use super::sink::{BusAnswerSink, BusSinkOptions, Seed};
use crate::wire;
use bytes::Bytes;
use muster_bus::memory::MemoryBus;
use muster_bus::subjects::Subjects;
use muster_bus::{Bucket, Kv, Messaging, Request, Subscription};
use muster_schemas::answer::{AnswerAction, AnswerBody, new_key_pair};
use muster_schemas::message::AnswerReply;
use muster_schemas::{Component, Payload, Sender};
use std::sync::Arc;
use tokio::sync::{Mutex, mpsc};
use tokio::task::JoinHandle;
use uuid::Uuid;

/// The bridge principal's name in these tests.
pub const PRINCIPAL: &str = "bridge";

/// How the stand-in orchestrator replies.
#[derive(Clone, Copy)]
pub enum Reply {
    /// Takes every answer.
    Accept,
    /// Refuses every answer with this message.
    Refuse(&'static str),
}

/// A running stand-in orchestrator with one waiting run.
pub struct Orchestrator {
    /// The run that asks.
    pub run: Uuid,
    seed: String,
    received: Mutex<mpsc::UnboundedReceiver<AnswerBody>>,
    task: JoinHandle<()>,
}

impl Orchestrator {
    /// Creates a run snapshot and serves its answers.
    pub async fn start(bus: &MemoryBus, reply: Reply) -> Self {
        let run = Uuid::now_v7();
        let protocol = muster_schemas::protocol::parse_protocol(
            "test.yaml",
            "id: deploy\nsteps:\n  - {id: one, owner: sre, exec: {program: 'true'}}\n",
        )
        .unwrap();
        let snapshot = crate::orchestrator::engine::new_run(run, protocol, Default::default(), jiff::Timestamp::now());
        crate::store::RunStore::new(bus.clone()).create(&snapshot).await.unwrap();

        let (seed, public) = new_key_pair().unwrap();
        let mut requests = bus.serve(&Subjects::default().answer_all()).await.unwrap();
        let (tx, received) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            while let Some(request) = requests.next().await {
                let Payload::SignedAnswer(signed) = wire::decode(request.payload()).unwrap().payload else {
                    panic!("not a signed answer")
                };
                assert_eq!(signed.principal, PRINCIPAL);
                let body = signed.open(&public).expect("the bridge's signature verifies");
                assert_eq!(request.subject(), Subjects::default().answer(&body.run_id.to_string()));
                let answer = match reply {
                    Reply::Accept => AnswerReply { accepted: true, message: accepted_message(&body) },
                    Reply::Refuse(message) => AnswerReply { accepted: false, message: message.to_owned() },
                };
                let _ = tx.send(body);
                let sender = Sender { component: Component::Orchestrator, role: None, id: "fake".into() };
                let bytes = wire::seal(&sender, None, Payload::AnswerReply(answer)).unwrap();
                request.respond(bytes).await.unwrap();
            }
        });
        Self { run, seed, received: Mutex::new(received), task }
    }

    /// A sink that signs with the key this orchestrator trusts.
    pub fn sink(&self, bus: &MemoryBus) -> Arc<BusAnswerSink<MemoryBus>> {
        let options =
            BusSinkOptions::new(Subjects::default(), "bridge-test".into(), PRINCIPAL.into(), Seed::new(&*self.seed));
        Arc::new(BusAnswerSink::new(bus.clone(), options))
    }

    /// The next answer it received (already verified).
    pub async fn received(&self) -> AnswerBody {
        self.received.lock().await.recv().await.expect("an answer arrived")
    }

    /// How many answers arrived that were not taken with [`Orchestrator::received`] yet.
    pub async fn pending(&self) -> usize {
        self.received.lock().await.len()
    }

    /// Stops serving: requests then find no responders.
    pub async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

/// What the stand-in says when it takes an answer.
pub fn accepted_message(body: &AnswerBody) -> String {
    match &body.action {
        AnswerAction::Choose { option } => format!("{}: `{option}` chosen by {}", body.prompt, body.responder.id),
        AnswerAction::Acknowledge => format!("{}: acknowledged by {}", body.prompt, body.responder.id),
        other => format!("{}: {other:?}", body.prompt),
    }
}

/// Writes the Prompts bucket entry `n.<number>` as the orchestrator does, and records the
/// prompt, open, in its run's snapshot when there is one.
pub async fn prompt_entry(bus: &MemoryBus, number: u64, run: Uuid, kind: &str, title: &str) {
    let value = serde_json::json!({"run_id": run, "kind": kind, "title": title});
    bus.kv_create(Bucket::Prompts, &format!("n.{number}"), Bytes::from(value.to_string())).await.unwrap();
    let store = crate::store::RunStore::new(bus.clone());
    let Some((mut snapshot, revision)) = store.load(run).await.unwrap() else { return };
    snapshot.prompts.push(muster_schemas::run::PromptRecord {
        number,
        kind: serde_json::from_value(serde_json::json!(kind)).unwrap(),
        source: "test".into(),
        subject: muster_schemas::run::PromptSubject::Run,
        state: muster_schemas::run::PromptState::Open,
        blocking: true,
        raised_at: jiff::Timestamp::now(),
        title: title.into(),
        text: String::new(),
        stage: muster_schemas::run::LadderStage::Triage,
        due: None,
        notified: Vec::new(),
        acknowledged_by: None,
        outcome: None,
        fields: Default::default(),
        approvals: Vec::new(),
        binding: None,
        notices: 0,
        last_notice: None,
    });
    store.save(&snapshot, revision).await.unwrap();
}
