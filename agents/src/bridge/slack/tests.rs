//! The Slack endpoint through a real socket, over the memory bus with a stand-in orchestrator
//! that verifies every signed answer.

use super::signature::tests::{DOC_BODY, DOC_NOW, DOC_SECRET, DOC_SIGNATURE, DOC_TIMESTAMP};
use super::signature::{SIGNATURE_HEADER, TIMESTAMP_HEADER, sign};
use super::testing::{Orchestrator, Reply, prompt_entry};
use super::*;
use axum::routing::post;
use muster_bus::memory::MemoryBus;
use muster_schemas::answer::{AnswerAction, Channel};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, DropGuard};

const SECRET: &str = "test-signing-secret";

struct Harness {
    base: String,
    http: reqwest::Client,
    orchestrator: Orchestrator,
    _shutdown: DropGuard,
}

async fn start(reply: Reply, configure: impl FnOnce(&mut SlackOptions)) -> Harness {
    let bus = MemoryBus::new();
    let orchestrator = Orchestrator::start(&bus, reply).await;
    prompt_entry(&bus, 12, orchestrator.run, "escalation", "disk <!channel> almost full").await;
    let mut options = SlackOptions::new(SigningSecret::new(SECRET));
    options.max_body = 4096;
    configure(&mut options);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    let app = app(orchestrator.sink(&bus), options);
    tokio::spawn(crate::gateway::serve(listener, app, shutdown.clone(), Duration::from_secs(1)));
    Harness { base, http: reqwest::Client::new(), orchestrator, _shutdown: shutdown.drop_guard() }
}

fn now() -> String {
    jiff::Timestamp::now().as_second().to_string()
}

fn form(fields: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new()).extend_pairs(fields).finish()
}

impl Harness {
    /// Posts `body` to `path` with the given timestamp and signature headers (`None`: left out).
    async fn raw(&self, path: &str, body: &str, timestamp: Option<&str>, signature: Option<&str>) -> (u16, Value) {
        let mut request = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.to_owned());
        if let Some(timestamp) = timestamp {
            request = request.header(TIMESTAMP_HEADER, timestamp);
        }
        if let Some(signature) = signature {
            request = request.header(SIGNATURE_HEADER, signature);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap() })
    }

    /// Posts `body` signed now with `secret`.
    async fn signed(&self, path: &str, body: &str, secret: &str) -> (u16, Value) {
        let timestamp = now();
        let signature = sign(&SigningSecret::new(secret), &timestamp, body.as_bytes());
        self.raw(path, body, Some(&timestamp), Some(&signature)).await
    }

    /// A slash command from `user`, properly signed.
    async fn command(&self, user: &str, text: &str) -> (u16, Value) {
        let body = form(&[("command", "/muster"), ("user_id", user), ("text", text)]);
        self.signed("/slack/commands", &body, SECRET).await
    }

    /// A button click from `user`, properly signed.
    async fn click(&self, user: &str, value: &str, response_url: Option<&str>) -> (u16, Value) {
        let mut payload = json!({
            "type": "block_actions",
            "user": {"id": user, "username": "alice"},
            "actions": [{"type": "button", "action_id": "muster-option-0", "value": value}],
        });
        if let Some(url) = response_url {
            payload["response_url"] = json!(url);
        }
        let body = form(&[("payload", &payload.to_string())]);
        self.signed("/slack/actions", &body, SECRET).await
    }
}

fn refuse(message: &'static str) -> Reply {
    Reply::Refuse(message)
}

#[tokio::test]
async fn slacks_documented_request_is_accepted_and_gets_the_help_text() {
    let h = start(Reply::Accept, |options| {
        options.signing_secret = SigningSecret::new(DOC_SECRET);
        options.now = || DOC_NOW + 60;
    })
    .await;
    let (status, reply) = h.raw("/slack/commands", DOC_BODY, Some(DOC_TIMESTAMP), Some(DOC_SIGNATURE)).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["response_type"], "ephemeral");
    assert!(reply["text"].as_str().unwrap().starts_with("Usage:"), "{reply}");

    // One changed byte and it is refused.
    let altered = DOC_BODY.replace("text=&", "text=help&");
    let (status, _) = h.raw("/slack/commands", &altered, Some(DOC_TIMESTAMP), Some(DOC_SIGNATURE)).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn slacks_documented_request_is_stale_today() {
    let h = start(Reply::Accept, |options| options.signing_secret = SigningSecret::new(DOC_SECRET)).await;
    let (status, reply) = h.raw("/slack/commands", DOC_BODY, Some(DOC_TIMESTAMP), Some(DOC_SIGNATURE)).await;
    assert_eq!(status, 401);
    assert!(reply["error"].as_str().unwrap().contains("away from the server's clock"), "{reply}");
}

#[tokio::test]
async fn an_answer_is_signed_for_the_slack_user_and_announced_in_channel() {
    let h = start(Reply::Accept, |_| {}).await;
    let (status, reply) = h.command("U2CERLKJA", "answer esc-12 rollback because <!channel> the plan drifted").await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["response_type"], "in_channel");
    assert_eq!(
        reply["text"],
        "<@U2CERLKJA> chose `rollback` for ESC-12: ESC-12: `rollback` chosen by U2CERLKJA\n> because &lt;!channel&gt; the plan drifted"
    );
    let body = h.orchestrator.received().await;
    assert_eq!(body.responder, muster_schemas::answer::Identity { channel: Channel::Slack, id: "U2CERLKJA".into() });
    assert_eq!(body.action, AnswerAction::Choose { option: "rollback".into() });
    assert_eq!(body.note.as_deref(), Some("because <!channel> the plan drifted"), "the note is kept as typed");
    assert_eq!(body.prompt, "ESC-12");
}

#[tokio::test]
async fn ack_sends_an_acknowledgement() {
    let h = start(Reply::Accept, |_| {}).await;
    let (status, reply) = h.command("U1", "ack ESC-12").await;
    assert_eq!(status, 200);
    assert_eq!(reply["text"], "<@U1> acknowledged ESC-12: ESC-12: acknowledged by U1");
    assert_eq!(h.orchestrator.received().await.action, AnswerAction::Acknowledge);
}

#[tokio::test]
async fn refusals_are_told_to_the_person_alone_in_the_orchestrators_words() {
    let h = start(refuse("`bogus` is not an option of ESC-12; valid options: rollback, continue"), |_| {}).await;
    let (status, reply) = h.command("U1", "answer ESC-12 bogus").await;
    assert_eq!(status, 200);
    assert_eq!(reply["response_type"], "ephemeral");
    assert_eq!(reply["text"], "Not taken: `bogus` is not an option of ESC-12; valid options: rollback, continue");
}

#[tokio::test]
async fn a_not_allowed_refusal_is_relayed_verbatim_and_escaped() {
    let h = start(
        refuse("U1 may not answer ESC-12: they are neither listed nor in a listed group of its responders <sre>"),
        |_| {},
    )
    .await;
    let (_, reply) = h.command("U1", "answer ESC-12 rollback").await;
    assert_eq!(reply["response_type"], "ephemeral");
    assert_eq!(
        reply["text"],
        "Not taken: U1 may not answer ESC-12: they are neither listed nor in a listed group of its responders &lt;sre&gt;"
    );
}

#[tokio::test]
async fn an_unknown_prompt_is_refused_without_bothering_the_orchestrator() {
    let h = start(Reply::Accept, |_| {}).await;
    for text in ["answer ESC-99 rollback", "answer F-12 rollback", "answer <!here> x"] {
        let (status, reply) = h.command("U1", text).await;
        assert_eq!(status, 200);
        assert_eq!(reply["response_type"], "ephemeral");
        let text = reply["text"].as_str().unwrap();
        assert!(text.starts_with("Not taken: ") && text.contains("is not a prompt muster knows"), "{text}");
        assert!(!text.contains("<!here>"), "{text}");
    }
    assert_eq!(h.orchestrator.pending().await, 0);
}

#[tokio::test]
async fn show_help_and_usage_errors_are_ephemeral() {
    let h = start(Reply::Accept, |_| {}).await;
    let (_, reply) = h.command("U1", "show ESC-12").await;
    assert_eq!(reply["response_type"], "ephemeral");
    let text = reply["text"].as_str().unwrap();
    assert!(text.starts_with("*ESC-12* (ESC) disk &lt;!channel&gt; almost full"), "{text}");
    assert!(text.contains("open (run pending)"), "{text}");
    let (_, reply) = h.command("U1", "frobnicate ESC-12").await;
    assert!(reply["text"].as_str().unwrap().starts_with("muster does not know that command"), "{reply}");
    let (_, reply) = h.command("U1", "").await;
    assert!(reply["text"].as_str().unwrap().starts_with("Usage:"), "{reply}");
    assert_eq!(h.orchestrator.pending().await, 0);
}

#[tokio::test]
async fn unsigned_or_badly_signed_requests_are_refused_before_anything_is_read() {
    let h = start(Reply::Accept, |_| {}).await;
    let body = form(&[("user_id", "U1"), ("text", "answer ESC-12 rollback")]);
    for path in ["/slack/commands", "/slack/actions"] {
        let (status, reply) = h.signed(path, &body, "wrong-secret").await;
        assert_eq!(status, 401, "{path}: {reply}");
        assert!(reply["error"].as_str().unwrap().contains("does not match"), "{reply}");
        let (status, _) = h.raw(path, &body, None, None).await;
        assert_eq!(status, 401, "{path}");
        let timestamp = now();
        let (status, _) = h.raw(path, &body, Some(&timestamp), None).await;
        assert_eq!(status, 401, "{path}");
        let (status, _) = h.raw(path, &body, Some(&timestamp), Some("v0=nothex")).await;
        assert_eq!(status, 401, "{path}");
        let stale = (jiff::Timestamp::now().as_second() - 301).to_string();
        let signature = sign(&SigningSecret::new(SECRET), &stale, body.as_bytes());
        let (status, reply) = h.raw(path, &body, Some(&stale), Some(&signature)).await;
        assert_eq!(status, 401, "{path}: {reply}");
        // Signed, then altered in transit.
        let signature = sign(&SigningSecret::new(SECRET), &timestamp, body.as_bytes());
        let altered = body.replace("rollback", "continue");
        let (status, _) = h.raw(path, &altered, Some(&timestamp), Some(&signature)).await;
        assert_eq!(status, 401, "{path}");
    }
    assert_eq!(h.orchestrator.pending().await, 0);
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused_with_413() {
    let h = start(Reply::Accept, |_| {}).await;
    let big = form(&[("user_id", "U1"), ("text", &"x".repeat(5000))]);
    let (status, reply) = h.signed("/slack/commands", &big, SECRET).await;
    assert_eq!(status, 413, "{reply}");
}

#[tokio::test]
async fn a_command_without_user_id_is_a_bad_request_unless_it_is_slacks_ssl_check() {
    let h = start(Reply::Accept, |_| {}).await;
    let (status, _) = h.signed("/slack/commands", &form(&[("text", "help")]), SECRET).await;
    assert_eq!(status, 400);
    // Except Slack's certificate check, which has no user.
    let (status, body) = h.signed("/slack/commands", &form(&[("ssl_check", "1"), ("token", "x")]), SECRET).await;
    assert_eq!((status, body), (200, Value::Null));
}

#[tokio::test]
async fn a_click_chooses_the_buttons_option_and_the_reply_goes_to_slacks_response_url() {
    // A stand-in for Slack's response URLs, on loopback.
    // It answers any path, so a post outside the allowed prefix would be seen too.
    let (tx, mut posted) = mpsc::unbounded_channel::<(String, Value)>();
    let hooks = axum::Router::new().fallback(post(move |uri: axum::http::Uri, body: String| {
        let tx = tx.clone();
        async move {
            let _ = tx.send((uri.path().to_owned(), serde_json::from_str(&body).unwrap()));
            "ok"
        }
    }));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hooks_base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, hooks).await });
    let prefix = format!("{hooks_base}/actions/");
    let h = start(Reply::Accept, move |options| options.response_url_prefix = prefix).await;

    // A response_url outside the prefix is not posted to, even on the same server.
    let (status, _) = h.click("U7", "ESC-12:continue", Some(&format!("{hooks_base}/elsewhere/evil"))).await;
    assert_eq!(status, 200);
    h.orchestrator.received().await;

    let (status, reply) = h.click("U7", "ESC-12:rollback", Some(&format!("{hooks_base}/actions/good"))).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["response_type"], "in_channel");
    assert_eq!(reply["replace_original"], false);
    assert_eq!(reply["text"], "<@U7> chose `rollback` for ESC-12: ESC-12: `rollback` chosen by U7");
    let body = h.orchestrator.received().await;
    assert_eq!(body.action, AnswerAction::Choose { option: "rollback".into() });
    assert_eq!(body.responder.channel, Channel::Slack);

    let (path, message) = tokio::time::timeout(Duration::from_secs(5), posted.recv()).await.unwrap().unwrap();
    assert_eq!(path, "/actions/good");
    assert_eq!(message, reply);
    // The refused post would have been spawned before the allowed one; give a stray one a
    // moment to show up anyway.
    let stray = tokio::time::timeout(Duration::from_millis(200), posted.recv()).await;
    assert!(stray.is_err(), "only the allowed response_url was posted to: {stray:?}");
}

#[tokio::test]
async fn odd_interactions_are_handled_without_answering() {
    let h = start(Reply::Accept, |_| {}).await;
    let (status, reply) = h.click("U7", "not-ours", None).await;
    assert_eq!(status, 200);
    assert_eq!(reply["response_type"], "ephemeral");
    let shortcut = form(&[("payload", &json!({"type": "shortcut", "user": {"id": "U7"}}).to_string())]);
    let (status, reply) = h.signed("/slack/actions", &shortcut, SECRET).await;
    assert_eq!((status, reply), (200, Value::Null));
    let (status, _) = h.signed("/slack/actions", &form(&[("nothing", "here")]), SECRET).await;
    assert_eq!(status, 400);
    let (status, _) = h.signed("/slack/actions", &form(&[("payload", "{not json")]), SECRET).await;
    assert_eq!(status, 400);
    let no_user = form(&[("payload", &json!({"type": "block_actions", "actions": []}).to_string())]);
    let (status, _) = h.signed("/slack/actions", &no_user, SECRET).await;
    assert_eq!(status, 400);
    assert_eq!(h.orchestrator.pending().await, 0);
}

#[tokio::test]
async fn an_absent_orchestrator_is_reported_to_the_person() {
    let bus = MemoryBus::new();
    let orchestrator = Orchestrator::start(&bus, Reply::Accept).await;
    prompt_entry(&bus, 12, orchestrator.run, "escalation", "t").await;
    let sink = orchestrator.sink(&bus);
    orchestrator.stop().await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app(sink, SlackOptions::new(SigningSecret::new(SECRET)))).await });
    let body = form(&[("user_id", "U1"), ("text", "answer ESC-12 rollback")]);
    let timestamp = now();
    let response = reqwest::Client::new()
        .post(format!("{base}/slack/commands"))
        .header(TIMESTAMP_HEADER, &timestamp)
        .header(SIGNATURE_HEADER, sign(&SigningSecret::new(SECRET), &timestamp, body.as_bytes()))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let reply: Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    assert_eq!(reply["text"], "Not taken: no orchestrator is taking answers right now; try again in a minute");
}
