//! The HTTP API through a real socket, over the memory bus with a stand-in orchestrator that
//! verifies every signed answer.

use super::*;
use crate::bridge::slack::testing::{Orchestrator, Reply, prompt_entry};
use muster_bus::memory::MemoryBus;
use muster_schemas::answer::{AnswerAction, Channel, Identity};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::{CancellationToken, DropGuard};
use uuid::Uuid;

const ALICE: &str = "alice-token-0123456789";

struct Harness {
    base: String,
    http: reqwest::Client,
    orchestrator: Orchestrator,
    _shutdown: DropGuard,
}

async fn start(reply: Reply) -> Harness {
    let bus = MemoryBus::new();
    let orchestrator = Orchestrator::start(&bus, reply).await;
    prompt_entry(&bus, 12, orchestrator.run, "escalation", "disk almost full").await;
    prompt_entry(&bus, 3, orchestrator.run, "decision", "which region").await;
    // A prompt of a run with no snapshot (purged, or never stored): not listed as open.
    prompt_entry(&bus, 7, Uuid::now_v7(), "escalation", "old").await;
    let tokens = Tokens::from_file_text(&format!("alice {ALICE}\nbob bob-token-0123456789ab\n")).unwrap();
    let mut options = HttpApiOptions::new(tokens);
    options.max_body = 1024;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    let app = app(orchestrator.sink(&bus), options);
    tokio::spawn(crate::gateway::serve(listener, app, shutdown.clone(), Duration::from_secs(1)));
    Harness { base, http: reqwest::Client::new(), orchestrator, _shutdown: shutdown.drop_guard() }
}

impl Harness {
    async fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<&str>) -> (u16, Value) {
        let url = format!("{}{path}", self.base);
        let mut request = match method {
            "GET" => self.http.get(url),
            _ => self.http.post(url).header("content-type", "application/json"),
        };
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        if let Some(body) = body {
            request = request.body(body.to_owned());
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    async fn answer(&self, prompt: &str, body: Value) -> (u16, Value) {
        self.call("POST", &format!("/v1/escalations/{prompt}/answer"), Some(ALICE), Some(&body.to_string())).await
    }
}

#[tokio::test]
async fn without_a_known_token_nothing_is_shown_or_answered() {
    let h = start(Reply::Accept).await;
    for (method, path) in [
        ("GET", "/v1/escalations"),
        ("GET", "/v1/escalations/ESC-12"),
        ("POST", "/v1/escalations/ESC-12/answer"),
        ("GET", "/nope"),
    ] {
        for token in [None, Some("wrong-token-0123456789"), Some("")] {
            let (status, body) = h.call(method, path, token, Some(r#"{"option": "rollback"}"#)).await;
            assert_eq!(status, 401, "{method} {path} {token:?}: {body}");
            assert!(body["error"].is_string(), "{body}");
        }
    }
    let response = h
        .http
        .get(format!("{}/v1/escalations", h.base))
        .header("authorization", format!("Basic {ALICE}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    assert_eq!(h.orchestrator.pending().await, 0);
}

#[tokio::test]
async fn open_prompts_are_listed_from_the_run_snapshots() {
    let h = start(Reply::Accept).await;
    let (status, body) = h.call("GET", "/v1/escalations", Some(ALICE), None).await;
    assert_eq!(status, 200, "{body}");
    let ids: Vec<&str> = body["escalations"].as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["D-3", "ESC-12"], "lowest number first; the run-less ESC-7 is not open");
    let first = &body["escalations"][1];
    assert_eq!(first["run_id"], json!(h.orchestrator.run));
    assert_eq!(first["kind"], "escalation");
    assert_eq!(first["title"], "disk almost full");
    assert_eq!(first["open"], true);

    let (status, one) = h.call("GET", "/v1/escalations/esc-12", Some(ALICE), None).await;
    assert_eq!((status, &one), (200, first));
    let (status, old) = h.call("GET", "/v1/escalations/ESC-7", Some(ALICE), None).await;
    assert_eq!(status, 200);
    assert_eq!((old["open"].clone(), old["run_state"].clone()), (json!(false), Value::Null));
    let (status, body) = h.call("GET", "/v1/escalations/ESC-99", Some(ALICE), None).await;
    assert_eq!(status, 404, "{body}");
}

#[tokio::test]
async fn an_answer_goes_out_signed_for_the_tokens_holder() {
    let h = start(Reply::Accept).await;
    let (status, body) = h.answer("ESC-12", json!({"option": "rollback", "note": "plan drifted"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"accepted": true, "message": "ESC-12: `rollback` chosen by alice"}));
    let received = h.orchestrator.received().await;
    assert_eq!(received.responder, Identity { channel: Channel::Http, id: "alice".into() });
    assert_eq!(received.action, AnswerAction::Choose { option: "rollback".into() });
    assert_eq!(received.note.as_deref(), Some("plan drifted"));

    let (status, _) = h.answer("ESC-12", json!({"action": "ack"})).await;
    assert_eq!(status, 200);
    assert_eq!(h.orchestrator.received().await.action, AnswerAction::Acknowledge);
}

#[tokio::test]
async fn refusals_keep_the_orchestrators_words_with_a_fitting_status() {
    for (message, status) in [
        ("ESC-12 was already decided: rollback by bob", 409),
        ("alice may not answer ESC-12: they are neither listed nor in a listed group of its responders", 403),
        ("`bogus` is not an option of ESC-12; valid options: rollback, continue", 422),
        ("the signed answer is malformed: who knows", 400),
    ] {
        let h = start(Reply::Refuse(message)).await;
        let (got, body) = h.answer("ESC-12", json!({"option": "bogus"})).await;
        assert_eq!(got, status, "{message}");
        assert_eq!(body, json!({"error": message}));
    }
}

#[tokio::test]
async fn bad_requests_never_reach_the_orchestrator() {
    let h = start(Reply::Accept).await;
    let (status, _) = h.answer("ESC-99", json!({"option": "rollback"})).await;
    assert_eq!(status, 404);
    let (status, _) = h.answer("F-12", json!({"option": "rollback"})).await;
    assert_eq!(status, 404, "the prefix must match the prompt's kind");
    for body in [json!({}), json!({"action": "approve"}), json!({"option": "x", "surprise": true})] {
        let (status, reply) = h.answer("ESC-12", body.clone()).await;
        assert_eq!(status, 400, "{body}: {reply}");
    }
    let (status, _) = h.call("POST", "/v1/escalations/ESC-12/answer", Some(ALICE), Some("not json")).await;
    assert_eq!(status, 400);
    let big = json!({"option": "rollback", "note": "x".repeat(2000)});
    let (status, _) = h.answer("ESC-12", big).await;
    assert_eq!(status, 413);
    assert_eq!(h.orchestrator.pending().await, 0);
}

#[tokio::test]
async fn an_absent_orchestrator_is_a_503() {
    let h = start(Reply::Accept).await;
    let Harness { base, http, orchestrator, _shutdown } = h;
    orchestrator.stop().await;
    let response = http
        .post(format!("{base}/v1/escalations/ESC-12/answer"))
        .header("authorization", format!("Bearer {ALICE}"))
        .body(r#"{"option": "rollback"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
}
