//! End-to-end: the real `muster bridge` process between a real Synapse homeserver and a real
//! `nats-server`.
//!
//! The first two tests play the orchestrator's side of prompts themselves, to reach corners the
//! real one would take minutes to produce: they publish `PromptNotice` events, register prompt
//! numbers in KV, and answer `muster.answer.<run>` from [`stand_in_orchestrator`], which checks
//! each signature with the bridge's public key and lets only `@alice` answer. The last test runs
//! the real orchestrator and agents with a responder map that trusts the bridge's key.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;
#[path = "support/synapse.rs"]
mod synapse;

use bytes::Bytes;
use muster_bus::nats::{NatsBus, NatsOptions};
use muster_bus::subjects::Subjects;
use muster_bus::{Bucket, Events, Kv, Messaging, Request, Subscription};
use muster_schemas::answer::{AnswerAction, AnswerBody, Channel, Identity, SignedAnswer, new_key_pair};
use muster_schemas::message::{AnswerReply, NoticeOption, PromptKind, PromptNotice};
use muster_schemas::protocol::model::Severity;
use muster_schemas::{Component, Envelope, Payload, Sender};
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;
use support::{Cluster, Proc};
use synapse::{MatrixUser, Synapse, body, thread_of};
use tokio::sync::mpsc;
use uuid::Uuid;

const BRIDGE_PASSWORD: &str = "bridge-password";
const WAIT: Duration = Duration::from_secs(30);

/// Everything one test needs; fields are bound so nothing is dropped (killed) early.
struct World {
    cluster: Cluster,
    synapse: Synapse,
    bus: NatsBus,
    subjects: Subjects,
    alice: MatrixUser,
    mallory: MatrixUser,
    bridge_user: String,
    room: String,
    key_file: std::path::PathBuf,
    answers: mpsc::UnboundedReceiver<AnswerBody>,
}

impl World {
    async fn start() -> Self {
        let started = std::time::Instant::now();
        let mut cluster = Cluster::start();
        let synapse = Synapse::start().await;
        let bridge = synapse.register("muster", BRIDGE_PASSWORD).await;
        cluster.setting("BRIDGE_TEST_PASSWORD", BRIDGE_PASSWORD);
        cluster.setting("BRIDGE_TEST_WRONG_PASSWORD", "not-the-password");
        cluster.setting("BRIDGE_TEST_TOKEN", bridge.token());
        let alice = synapse.register("alice", "alice-password").await;
        let mallory = synapse.register("mallory", "mallory-password").await;
        let room = alice.create_room("ops", &[&bridge.user_id, &mallory.user_id]).await;
        mallory.join(&room).await;

        // The orchestrator provisions streams and buckets; here the test stands in for it.
        let bus = NatsBus::connect(NatsOptions::new(cluster.nats.url())).await.unwrap();
        bus.provision(&[]).await.unwrap();
        let (seed, public_key) = new_key_pair().unwrap();
        let key_file = cluster.path("bridge.seed");
        std::fs::write(&key_file, format!("{seed}\n")).unwrap();
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let answers = stand_in_orchestrator(bus.clone(), public_key).await;
        eprintln!("world ready after {:.1}s", started.elapsed().as_secs_f64());
        Self {
            cluster,
            synapse,
            bus,
            subjects: Subjects::default(),
            alice,
            mallory,
            bridge_user: bridge.user_id,
            room,
            key_file,
            answers,
        }
    }

    /// Starts `muster bridge` on the room (by alias), logging in with the password, and waits
    /// until it is ready.
    fn bridge(&self, name: &str, extra: &[&str]) -> Proc {
        let mut args = vec!["--matrix-user", "muster", "--matrix-password-env", "BRIDGE_TEST_PASSWORD"];
        args.extend(extra);
        let mut proc = self.spawn_bridge(name, &args);
        tokio::task::block_in_place(|| proc.wait_for_log("bridge ready", Duration::from_secs(30)));
        assert!(!proc.log_text().contains(BRIDGE_PASSWORD), "the password reached the log");
        proc
    }

    fn spawn_bridge(&self, name: &str, extra: &[&str]) -> Proc {
        let url = self.cluster.nats.url();
        let mut args = vec![
            "bridge",
            "--nats",
            &url,
            "--matrix-homeserver",
            &self.synapse.base,
            "--matrix-room",
            "#ops:localhost",
            "--key-file",
            self.key_file.to_str().unwrap(),
            "--notice-lease",
            "3s",
        ];
        args.extend(extra);
        self.cluster.spawn(name, &args)
    }

    /// Registers prompt `number` of `run` the way the orchestrator does (`n.<number>`).
    async fn register_prompt(&self, number: u64, run: Uuid, kind: &str, title: &str) {
        let entry = serde_json::json!({"run_id": run, "kind": kind, "title": title});
        self.bus.kv_create(Bucket::Prompts, &format!("n.{number}"), Bytes::from(entry.to_string())).await.unwrap();
    }

    /// Publishes a notice on the durable events subject; returns the sealed bytes.
    async fn publish_notice(&self, notice: PromptNotice) -> Bytes {
        let sender = Sender { component: Component::Orchestrator, role: None, id: "test-orchestrator".into() };
        let run = notice.run_id;
        let msg_id = format!("notice/{run}/{}/{}", notice.prompt, notice.stage);
        let bytes = Bytes::from(
            muster_schemas::encode(&Envelope::new(sender, Some(run), Payload::PromptNotice(notice))).unwrap(),
        );
        self.publish_bytes(run, &msg_id, bytes.clone()).await;
        bytes
    }

    async fn publish_bytes(&self, run: Uuid, msg_id: &str, bytes: Bytes) {
        self.bus.publish_event(&self.subjects.event(&run.to_string(), "notice"), msg_id, bytes).await.unwrap();
    }

    /// The bridge's messages in the room, oldest first.
    async fn bridge_messages(&self) -> Vec<Value> {
        self.alice.messages(&self.room).await.into_iter().filter(|m| m["sender"] == self.bridge_user.as_str()).collect()
    }

    /// Waits for the bridge to post a message satisfying `matches`.
    async fn wait_bridge(&self, matches: impl Fn(&Value) -> bool) -> Value {
        self.alice.wait_for(&self.room, &self.bridge_user, WAIT, matches).await
    }

    async fn next_answer(&mut self) -> AnswerBody {
        tokio::time::timeout(WAIT, self.answers.recv()).await.expect("an answer reaches the orchestrator").unwrap()
    }
}

/// Stands in for the orchestrator's answer endpoint: verifies every answer's signature with the
/// bridge's public key, accepts answers from `@alice:localhost` only (refusing others with a
/// reason), and hands each verified body to the test.
async fn stand_in_orchestrator(bus: NatsBus, bridge_public_key: String) -> mpsc::UnboundedReceiver<AnswerBody> {
    let subjects = Subjects::default();
    let mut requests = bus.serve(&subjects.answer_all()).await.unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let sender = Sender { component: Component::Orchestrator, role: None, id: "stand-in".into() };
        while let Some(request) = requests.next().await {
            let envelope: Envelope = muster_schemas::decode(request.payload()).unwrap();
            let Payload::SignedAnswer(signed) = envelope.payload else { panic!("not a signed answer") };
            let reply = match verify(&signed, &bridge_public_key) {
                Err(reason) => AnswerReply { accepted: false, message: reason },
                Ok(body) => {
                    let reply = if body.responder.id == "@alice:localhost" {
                        AnswerReply {
                            accepted: true,
                            message: format!("{} is answered; the run goes on.", body.prompt),
                        }
                    } else {
                        AnswerReply {
                            accepted: false,
                            message: format!("{} may not answer {}: not a responder.", body.responder.id, body.prompt),
                        }
                    };
                    let _ = tx.send(body);
                    reply
                }
            };
            let bytes =
                muster_schemas::encode(&Envelope::new(sender.clone(), None, Payload::AnswerReply(reply))).unwrap();
            request.respond(Bytes::from(bytes)).await.unwrap();
        }
    });
    rx
}

fn verify(signed: &SignedAnswer, public_key: &str) -> Result<AnswerBody, String> {
    if signed.principal != "bridge" {
        return Err(format!("unknown principal {}", signed.principal));
    }
    let body = signed.open(public_key).map_err(|e| e.to_string())?;
    if body.responder.channel != Channel::Matrix {
        return Err("the bridge may only speak for Matrix users".into());
    }
    Ok(body)
}

fn escalation(run: Uuid, number: u64, stage: &str) -> PromptNotice {
    PromptNotice {
        run_id: run,
        prompt: format!("ESC-{number}"),
        kind: PromptKind::Escalation,
        stage: stage.into(),
        severity: Some(Severity::High),
        title: format!("Disk full on db-{number}"),
        text: "The deploy step failed: no space left on device.\nstderr: write /var/lib/db: ENOSPC".into(),
        options: vec![
            NoticeOption { id: "rollback".into(), description: "Undo the deploy".into(), effect: "rollback".into() },
            NoticeOption { id: "retry".into(), description: "Run the step again".into(), effect: "retry".into() },
        ],
        responders: vec!["@alice:localhost".into()],
        channel: None,
        deadline: Some(jiff::Timestamp::now() + jiff::SignedDuration::from_mins(15)),
    }
}

fn is_root_of(message: &Value, prompt: &str) -> bool {
    body(message).starts_with(&format!("[{prompt}]")) && thread_of(message).is_none()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notices_reach_the_room_and_signed_answers_come_back() {
    let mut world = World::start().await;
    let run = Uuid::now_v7();
    world.register_prompt(1, run, "escalation", "Disk full on db-1").await;

    // Refused credentials stop the bridge at once, with the reason and without the secret.
    let mut wrong = world
        .spawn_bridge("wrong", &["--matrix-user", "muster", "--matrix-password-env", "BRIDGE_TEST_WRONG_PASSWORD"]);
    assert_eq!(tokio::task::block_in_place(|| wrong.wait_exit(Duration::from_secs(30))), Some(3));
    assert!(wrong.log_text().contains("M_FORBIDDEN"), "{}", wrong.log_text());
    assert!(!wrong.log_text().contains("not-the-password"));

    let mut bridge = world.bridge("bridge", &[]);

    world.publish_notice(escalation(run, 1, "raised")).await;
    let root = world.wait_bridge(|m| is_root_of(m, "ESC-1")).await;
    let root_id = root["event_id"].as_str().unwrap().to_owned();
    for needle in [
        "Disk full on db-1",
        "high",
        "ENOSPC",
        "rollback — Undo the deploy (effect: rollback)",
        "Deadline:",
        "answer ESC-1 <option>",
    ] {
        assert!(body(&root).contains(needle), "{needle:?} missing from the notice:\n{}", body(&root));
    }
    assert_eq!(root["content"]["msgtype"], "m.notice");
    assert_eq!(root["content"]["m.mentions"]["user_ids"][0], "@alice:localhost");

    // Alice answers: the stand-in receives exactly what she said, signed for her.
    let asked = world.alice.say(&world.room, "answer ESC-1 rollback because disk full").await;
    let answer = world.next_answer().await;
    assert_eq!(answer.run_id, run);
    assert_eq!(answer.prompt, "ESC-1");
    assert_eq!(answer.action, AnswerAction::Choose { option: "rollback".into() });
    assert_eq!(answer.note.as_deref(), Some("disk full"));
    assert_eq!(answer.responder, Identity { channel: Channel::Matrix, id: "@alice:localhost".into() });
    assert_eq!(answer.nonce.len(), 32);
    assert!(answer.nonce.chars().all(|c| c.is_ascii_hexdigit()));
    let ttl = answer.expires_at.as_second() - answer.issued_at.as_second();
    assert_eq!(ttl, 300, "answers are valid for five minutes");
    let confirmation = world.wait_bridge(|m| body(m).starts_with("✅ @alice:localhost")).await;
    assert_eq!(thread_of(&confirmation), Some(root_id.as_str()), "the confirmation goes in the prompt's thread");
    assert_eq!(confirmation["content"]["m.relates_to"]["m.in_reply_to"]["event_id"], asked.as_str());
    assert!(body(&confirmation).contains("answer ESC-1 rollback (because disk full)"));
    assert!(body(&confirmation).contains("ESC-1 is answered; the run goes on."));

    // Mallory is refused, with the orchestrator's reason verbatim, in the thread.
    world.mallory.say(&world.room, "ANSWER esc-1 retry").await;
    let refused = world.next_answer().await;
    assert_eq!(refused.responder.id, "@mallory:localhost");
    assert_ne!(refused.nonce, answer.nonce);
    let refusal = world.wait_bridge(|m| body(m).starts_with("❌ @mallory:localhost")).await;
    assert!(body(&refusal).contains("@mallory:localhost may not answer ESC-1: not a responder."), "{}", body(&refusal));
    assert_eq!(thread_of(&refusal), Some(root_id.as_str()));

    // show, help, unknown prompts and nonsense get answers; chatter does not.
    world.alice.say(&world.room, "good morning everyone").await;
    world.alice.say(&world.room, "show ESC-1").await;
    let shown = world.wait_bridge(|m| body(m).contains("(latest notice, repeated for @alice:localhost)")).await;
    assert!(body(&shown).starts_with("[ESC-1]"));
    assert_eq!(thread_of(&shown), Some(root_id.as_str()));
    world.alice.say(&world.room, "ack ESC-99").await;
    let unknown = world.wait_bridge(|m| body(m).contains("I don't know ESC-99")).await;
    assert_eq!(thread_of(&unknown), None, "no thread for an unknown prompt");
    world.alice.say(&world.room, "!muster dance").await;
    world.wait_bridge(|m| body(m).contains("I don't know `dance`")).await;
    world.alice.say(&world.room, "approve ESC-1").await;
    let wrong_kind = world.wait_bridge(|m| body(m).contains("`approve` does not answer ESC-1")).await;
    assert_eq!(thread_of(&wrong_kind), Some(root_id.as_str()), "errors about a known prompt go to its thread");
    world.alice.say(&world.room, "help").await;
    world.wait_bridge(|m| body(m).starts_with("Commands")).await;
    assert!(world.answers.try_recv().is_err(), "nothing but the two answers reached the orchestrator");
    let replies = world.bridge_messages().await;
    assert!(!replies.iter().any(|m| body(m).contains("good morning")), "chatter is ignored");

    bridge.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(tokio::task::block_in_place(|| bridge.wait_exit(Duration::from_secs(20))), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_bridge_posts_once_and_answers_what_it_missed() {
    let mut world = World::start().await;
    let run = Uuid::now_v7();
    world.register_prompt(2, run, "escalation", "Disk full on db-2").await;
    // Two messages per sync, so what piles up while the bridge is down is read back in pages.
    let limit = ["--matrix-timeline-limit", "2"];
    let mut bridge = world.bridge("bridge-1", &limit);

    // Frozen, the bridge may pull the notice but cannot post it; then it dies.
    bridge.signal(nix::sys::signal::Signal::SIGSTOP);
    let raised = world.publish_notice(escalation(run, 2, "raised")).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    tokio::task::block_in_place(|| bridge.kill9());

    // People talk while it is down.
    world.alice.say(&world.room, "ack ESC-2 because on it").await;
    world.alice.say(&world.room, "anyone seeing db-2 alerts?").await;
    world.mallory.say(&world.room, "answer ESC-2 retry").await;
    world.alice.say(&world.room, "answer ESC-2 rollback").await;
    world.alice.say(&world.room, "!muster help").await;

    let mut bridge = world.bridge("bridge-2", &limit);
    let root = world.wait_bridge(|m| is_root_of(m, "ESC-2")).await;
    let root_id = root["event_id"].as_str().unwrap().to_owned();
    let mut answered = Vec::new();
    for _ in 0..3 {
        let answer = world.next_answer().await;
        answered.push((answer.responder.id.clone(), answer.action.clone()));
    }
    assert_eq!(
        answered,
        vec![
            ("@alice:localhost".to_owned(), AnswerAction::Acknowledge),
            ("@mallory:localhost".to_owned(), AnswerAction::Choose { option: "retry".into() }),
            ("@alice:localhost".to_owned(), AnswerAction::Choose { option: "rollback".into() }),
        ],
        "every command sent while the bridge was down is answered, in order"
    );
    world.wait_bridge(|m| body(m).starts_with("Commands")).await;
    world.wait_bridge(|m| body(m).contains("recorded `answer ESC-2 rollback`")).await;

    // A redelivery of the posted notice (as after a crash between post and ack) posts nothing;
    // the next stage lands in the thread, after it.
    world.publish_bytes(run, "redelivery-of-raised", raised).await;
    world.publish_notice(escalation(run, 2, "renotified")).await;
    let reminder = world.wait_bridge(|m| body(m).starts_with("[ESC-2]") && body(m).contains("(reminder)")).await;
    assert_eq!(thread_of(&reminder), Some(root_id.as_str()), "later notices go in the prompt's thread");
    // Past the notice lease, so an unacknowledged notice would have come again by now.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let raised_posts = world.bridge_messages().await.into_iter().filter(|m| is_root_of(m, "ESC-2")).count();
    assert_eq!(raised_posts, 1, "the notice is posted exactly once");

    // A clean restart (this time with an access token) replays nothing: the next reply is the
    // only new message.
    bridge.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(tokio::task::block_in_place(|| bridge.wait_exit(Duration::from_secs(20))), Some(0));
    let before = world.bridge_messages().await.len();
    let mut with_token = world.spawn_bridge("bridge-3", &["--matrix-token-env", "BRIDGE_TEST_TOKEN"]);
    tokio::task::block_in_place(|| with_token.wait_for_log("bridge ready", Duration::from_secs(30)));
    world.alice.say(&world.room, "show ESC-2").await;
    world.wait_bridge(|m| body(m).contains("(latest notice, repeated for @alice:localhost)")).await;
    let after = world.bridge_messages().await;
    assert_eq!(after.len(), before + 1, "only the reply to `show` is new: {:#?}", &after[before..]);
    assert!(body(after.last().unwrap()).contains("(reminder)"), "show repeats the latest stage");
    assert!(world.answers.try_recv().is_err(), "no answer was sent twice");
}

/// The whole loop with no stand-ins: the real orchestrator raises the escalation, the bridge
/// posts it, an unlisted user's reply is refused in the room and changes nothing, the bridge is
/// killed and restarted between the post and the answer, and the allowed user's reply resumes
/// the run, confirmed in the room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_from_the_room_resumes_a_real_run_and_only_responders_count() {
    let mut cluster = Cluster::start();
    let synapse = Synapse::start().await;
    let bridge_user = synapse.register("muster", BRIDGE_PASSWORD).await;
    cluster.setting("BRIDGE_TEST_PASSWORD", BRIDGE_PASSWORD);
    let alice = synapse.register("alice", "alice-password").await;
    let mallory = synapse.register("mallory", "mallory-password").await;
    let room = alice.create_room("ops", &[&bridge_user.user_id, &mallory.user_id]).await;
    mallory.join(&room).await;

    cluster.scenario("escalates.yaml", support::ESCALATES);
    let key_file = cluster.path("bridge.nk");
    let out = cluster.muster(&["keygen", "--out", key_file.to_str().unwrap(), "--name", "bridge", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let public_key = serde_json::from_slice::<Value>(&out.stdout).unwrap()["public_key"].as_str().unwrap().to_owned();
    std::fs::write(
        cluster.path("muster.toml"),
        format!(
            "[responders.people.alice]\nmatrix = [\"@alice:localhost\"]\n[responders.people.mallory]\nmatrix = [\"@mallory:localhost\"]\n\
             [responders.principals.bridge]\npublic_key = \"{public_key}\"\nspeaks_for = [\"matrix\"]\n"
        ),
    )
    .unwrap();
    let _orchestrator = cluster.orchestrator("orchestrator", &cluster.path("scenarios"));
    let _agents: Vec<_> = ["devops", "sre"].iter().map(|r| cluster.agent(&format!("{r}-agent"), r)).collect();
    let url = cluster.nats.url();
    let bridge_args = |name: &str| {
        let args = [
            "bridge",
            "--nats",
            &url,
            "--matrix-homeserver",
            &synapse.base,
            "--matrix-room",
            "#ops:localhost",
            "--matrix-user",
            "muster",
            "--matrix-password-env",
            "BRIDGE_TEST_PASSWORD",
            "--key-file",
            key_file.to_str().unwrap(),
        ];
        let mut proc = cluster.spawn(name, &args);
        tokio::task::block_in_place(|| proc.wait_for_log("bridge ready", Duration::from_secs(30)));
        proc
    };
    let mut first = bridge_args("bridge-1");
    let run = cluster.trigger("escalates", &[]);
    let from_bridge = |m: &Value| m["sender"] == bridge_user.user_id.as_str();
    let root = alice.wait_for(&room, &bridge_user.user_id, WAIT, |m| body(m).starts_with("[ESC-")).await;
    let prompt = body(&root).trim_start_matches('[').split(']').next().unwrap().to_owned();
    assert!(body(&root).contains("ENOSPC: disk full"), "the context package carries the output tail: {}", body(&root));
    assert_eq!(cluster.status(&run)["state"], "waiting");

    mallory.say(&room, &format!("answer {prompt} skip")).await;
    let refusal = alice.wait_for(&room, &bridge_user.user_id, WAIT, |m| body(m).starts_with("❌ @mallory")).await;
    assert!(body(&refusal).contains("mallory may not answer"), "{}", body(&refusal));
    assert_eq!(cluster.status(&run)["state"], "waiting", "a refused answer changes nothing");

    // The bridge dies between the post and the answer; its successor loses nothing.
    tokio::task::block_in_place(|| first.kill9());
    alice.say(&room, &format!("answer {prompt} skip because fixed by hand")).await;
    let _second = bridge_args("bridge-2");
    let confirmed = alice.wait_for(&room, &bridge_user.user_id, WAIT, |m| body(m).starts_with("✅ @alice")).await;
    assert!(body(&confirmed).contains("chose `skip`"), "{}", body(&confirmed));
    let status = tokio::task::block_in_place(|| cluster.wait_terminal(&run, Duration::from_secs(30)));
    assert_eq!(status["state"], "succeeded", "{status:#}");
    let roots = alice
        .messages(&room)
        .await
        .into_iter()
        .filter(|m| from_bridge(m) && body(m).starts_with(&format!("[{prompt}]")) && thread_of(m).is_none())
        .count();
    assert_eq!(roots, 1, "the escalation was posted once");
}
