//! People in the loop over a real nats-server with real processes: an escalation raised by a
//! failing step and a form, answered from the CLI with signed answers; answers from people who
//! are not responders, with wrong options or invalid values are refused and change nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use muster_bus::Messaging;
use muster_bus::nats::{NatsBus, NatsOptions};
use muster_bus::subjects::Subjects;
use muster_schemas::answer::{AnswerAction, AnswerBody, Channel, Identity, SignedAnswer};
use muster_schemas::{Component, Envelope, Payload, Sender, decode, encode};
use std::time::Duration;
use support::Cluster;

const NEEDS_PEOPLE: &str = r#"
id: needs-people
version: "1"
title: A deploy that asks people
groups:
  oncall: {members: [alice]}
escalations:
  - id: deploy-failed
    title: The deploy failed
    severity: high
    options:
      - {id: retry, description: Try again, effect: retry}
      - {id: skip, description: Go on without it, effect: skip}
    fallback: skip
    responders: {groups: [oncall]}
steps:
  - id: deploy
    owner: devops
    exec: {program: sh, args: ["-c", "echo 'disk full' >&2; exit 3"]}
    on_failure: {escalate: deploy-failed}
  - id: details
    owner: sre
    needs: [deploy]
    form:
      prompt: What did you change by hand?
      fields:
        ticket: {type: string, required: true, pattern: "^CHG-[0-9]+$"}
        minutes: {type: int, min: 1, max: 600, required: true}
      responders: {users: [alice]}
"#;

fn prompts(cluster: &Cluster) -> Vec<serde_json::Value> {
    let out = cluster.muster(&["escalations", "--json", "--nats", &cluster.nats.url()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn wait_for_prompt(cluster: &Cluster, kind: &str) -> String {
    for _ in 0..100 {
        if let Some(p) = prompts(cluster).iter().find(|p| p["kind"] == kind) {
            return p["id"].as_str().unwrap().to_owned();
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("no open {kind} prompt");
}

#[test]
fn people_answer_escalations_and_forms_from_the_cli_and_only_responders_count() {
    let cluster = Cluster::start();
    cluster.scenario("needs-people.yaml", NEEDS_PEOPLE);
    cluster.responders(&[("alice", &[]), ("mallory", &[])]);
    let _orchestrator = cluster.orchestrator("orchestrator", &cluster.path("scenarios"));
    let _agents: Vec<_> = ["devops", "sre"].iter().map(|r| cluster.agent(&format!("{r}-agent"), r)).collect();
    let alice = |args: &[&str]| cluster.muster_as("alice", args);
    let mallory = |args: &[&str]| cluster.muster_as("mallory", args);
    let run = cluster.trigger("needs-people", &[]);

    let esc = wait_for_prompt(&cluster, "escalation");
    assert!(esc.starts_with("ESC-"), "{esc}");
    let status = cluster.status(&run);
    assert_eq!(status["state"], "waiting", "a failed step that escalates holds the run: {status:#}");
    let (_, shown) = alice(&["show", &esc]);
    assert!(shown.contains("disk full") && shown.contains("retry") && shown.contains("`skip` runs at"), "{shown}");

    let (ok, said) = mallory(&["answer", &esc, "skip"]);
    assert!(!ok && said.contains("mallory may not answer") && said.contains("group oncall"), "{said}");
    let (ok, said) = alice(&["answer", &esc, "yolo"]);
    assert!(!ok && said.contains("valid options: retry, skip"), "{said}");
    assert_eq!(cluster.status(&run)["state"], "waiting", "refused answers change nothing");
    let (ok, said) = alice(&["answer", &esc, "skip", "--note", "done by hand"]);
    assert!(ok, "{said}");
    let (ok, said) = alice(&["answer", &esc, "retry"]);
    assert!(!ok && said.contains("already answered `skip` by alice"), "{said}");

    let form = wait_for_prompt(&cluster, "form");
    let (ok, said) = alice(&["form", &form, "ticket=1234", "minutes=5"]);
    assert!(!ok && said.contains("nothing was kept") && said.contains("ticket"), "{said}");
    let (ok, said) = alice(&["form", &form, "ticket=CHG-77"]);
    assert!(ok && said.contains("still missing: minutes"), "{said}");
    let (ok, said) = mallory(&["form", &form, "minutes=5"]);
    assert!(!ok && said.contains("may not answer"), "{said}");
    let (ok, said) = alice(&["form", &form, "minutes=45"]);
    assert!(ok, "{said}");

    let status = cluster.wait_terminal(&run, Duration::from_secs(30));
    assert_eq!(status["state"], "succeeded", "{status:#}");
    let details = status["steps"].as_array().unwrap().iter().find(|s| s["id"] == "details").unwrap().clone();
    assert_eq!(details["state"], "succeeded");
    let trail = cluster.audit(&run);
    let changes: Vec<String> = trail
        .iter()
        .flat_map(|r| r["changes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_owned()))
        .collect();
    assert!(changes.iter().any(|c| c.contains("answered `skip` by alice: done by hand")), "{changes:#?}");
    assert!(
        trail.iter().any(|r| r["cause"].as_str().unwrap().contains("answer refused (not_a_responder)")),
        "refusals are audited on the run's trail: {trail:#?}"
    );

    // Straight onto the bus: a replayed envelope, an altered one and an expired one are refused
    // by the orchestrator itself, whatever a client does.
    let seed = std::fs::read_to_string(cluster.path("alice.nk")).unwrap();
    let run_id: uuid::Uuid = run.parse().unwrap();
    let now = jiff::Timestamp::now();
    let body = |nonce: &str, expires: jiff::Timestamp| AnswerBody {
        run_id,
        prompt: esc.clone(),
        action: AnswerAction::Acknowledge,
        note: None,
        responder: Identity { channel: Channel::Cli, id: "alice".into() },
        nonce: nonce.into(),
        issued_at: now.checked_sub(jiff::SignedDuration::from_secs(60)).unwrap(),
        expires_at: expires,
    };
    let later = now.checked_add(jiff::SignedDuration::from_secs(120)).unwrap();
    let fresh = SignedAnswer::sign(&body("00112233445566778899aabbccddeeff", later), "alice", seed.trim()).unwrap();
    let mut altered =
        SignedAnswer::sign(&body("ffeeddccbbaa99887766554433221100", later), "alice", seed.trim()).unwrap();
    let last = altered.body.len() - 1;
    altered.body[last] ^= 1;
    let expired = SignedAnswer::sign(&body("0123456789abcdef0123456789abcdef", now), "alice", seed.trim()).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let replies: Vec<(bool, String)> = runtime.block_on(async {
        let bus = NatsBus::connect(NatsOptions::new(cluster.nats.url())).await.unwrap();
        let mut replies = Vec::new();
        for signed in [&fresh, &fresh, &altered, &expired] {
            let sender = Sender { component: Component::Cli, role: None, id: "test".into() };
            let bytes = encode(&Envelope::new(sender, Some(run_id), Payload::SignedAnswer(signed.clone()))).unwrap();
            let subject = Subjects::default().answer(&run);
            let reply = bus.request(&subject, bytes.into(), Duration::from_secs(5)).await.unwrap();
            match decode(&reply).unwrap().payload {
                Payload::AnswerReply(r) => replies.push((r.accepted, r.message)),
                other => panic!("{other:?}"),
            }
        }
        replies
    });
    assert!(!replies[0].0 && replies[0].1.contains("already answered"), "authentic, but ESC is closed: {replies:?}");
    assert!(!replies[1].0 && replies[1].1.contains("already received"), "replay: {replies:?}");
    assert!(!replies[2].0 && replies[2].1.contains("signature does not match"), "altered: {replies:?}");
    assert!(!replies[3].0 && replies[3].1.contains("expired"), "expired: {replies:?}");
}
