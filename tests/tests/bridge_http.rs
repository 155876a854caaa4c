//! End-to-end: `muster bridge` with no Matrix, serving the HTTP API and Slack's endpoints on
//! one port and posting notices to a Slack incoming webhook, between the real orchestrator and
//! agents. The webhook is a tiny local server that keeps what it is sent.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::Cluster;

const WAIT: Duration = Duration::from_secs(30);
const SIGNING_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
const ALICE_TOKEN: &str = "alice-token-0123456789abcdef";
const MALLORY_TOKEN: &str = "mallory-token-0123456789abcdef";

/// A stand-in for Slack's incoming webhook: keeps every JSON body posted to it.
async fn webhook_recorder() -> (String, Arc<Mutex<Vec<Value>>>) {
    let posted: Arc<Mutex<Vec<Value>>> = Arc::default();
    let keep = Arc::clone(&posted);
    let app = axum::Router::new().route(
        "/services/T000/B000/xyz",
        axum::routing::post(move |body: axum::body::Bytes| {
            let keep = Arc::clone(&keep);
            async move {
                keep.lock().unwrap().push(serde_json::from_slice(&body).unwrap_or(Value::Null));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/services/T000/B000/xyz", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, posted)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A slash command as Slack sends it: form body, `v0` signature over `v0:<ts>:<body>`.
async fn slash_command(http: &reqwest::Client, base: &str, secret: &str, user: &str, text: &str) -> (u16, Value) {
    let body = format!("command=%2Fmuster&user_id={user}&text={}", text.replace(' ', "+"));
    let timestamp = jiff::Timestamp::now().as_second().to_string();
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("v0:{timestamp}:{body}").as_bytes());
    let signature = format!("v0={}", hex::encode(mac.finalize().into_bytes()));
    let response = http
        .post(format!("{base}/slack/commands"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-slack-request-timestamp", timestamp)
        .header("x-slack-signature", signature)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

async fn answer(http: &reqwest::Client, base: &str, token: Option<&str>, prompt: &str, body: Value) -> (u16, Value) {
    let mut request = http
        .post(format!("{base}/v1/escalations/{prompt}/answer"))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// The real orchestrator raises the escalation; the bridge lists it over HTTP and posts it to
/// the Slack webhook; mallory's answer is refused and changes nothing, a request without a
/// token is refused, alice acknowledges from Slack and answers over HTTP, the run succeeds, and
/// SIGTERM stops the bridge cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_and_slack_answers_resume_a_real_run() {
    let mut cluster = Cluster::start();
    let (webhook, posted) = webhook_recorder().await;
    cluster.setting("BRIDGE_TEST_SLACK_SECRET", SIGNING_SECRET);
    cluster.setting("BRIDGE_TEST_SLACK_WEBHOOK", &webhook);
    cluster.scenario("escalates.yaml", support::ESCALATES);

    let key_file = cluster.path("bridge.nk");
    let out = cluster.muster(&["keygen", "--out", key_file.to_str().unwrap(), "--name", "bridge", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let public_key = serde_json::from_slice::<Value>(&out.stdout).unwrap()["public_key"].as_str().unwrap().to_owned();
    std::fs::write(
        cluster.path("muster.toml"),
        format!(
            "[responders.people.alice]\nhttp = [\"alice@example.org\"]\nslack = [\"U123\"]\n\
             [responders.people.mallory]\nhttp = [\"mallory@example.org\"]\n\
             [responders.principals.bridge]\npublic_key = \"{public_key}\"\nspeaks_for = [\"http\", \"slack\"]\n"
        ),
    )
    .unwrap();
    let tokens = cluster.path("tokens");
    std::fs::write(&tokens, format!("alice@example.org {ALICE_TOKEN}\nmallory@example.org {MALLORY_TOKEN}\n")).unwrap();

    let _orchestrator = cluster.orchestrator("orchestrator", &cluster.path("scenarios"));
    let _agents: Vec<_> = ["devops", "sre"].iter().map(|r| cluster.agent(&format!("{r}-agent"), r)).collect();
    let url = cluster.nats.url();
    let listen = format!("127.0.0.1:{}", free_port());
    let mut bridge = cluster.spawn(
        "bridge",
        &[
            "bridge",
            "--nats",
            &url,
            "--key-file",
            key_file.to_str().unwrap(),
            "--http-listen",
            &listen,
            "--http-tokens-file",
            tokens.to_str().unwrap(),
            "--slack-signing-secret-env",
            "BRIDGE_TEST_SLACK_SECRET",
            "--slack-webhook-url-env",
            "BRIDGE_TEST_SLACK_WEBHOOK",
        ],
    );
    tokio::task::block_in_place(|| {
        bridge.wait_for_log("bridge http ready", WAIT);
        bridge.wait_for_log("slack notices ready", WAIT);
    });
    let log = bridge.log_text();
    assert!(!log.contains(SIGNING_SECRET) && !log.contains(&webhook), "secrets stay out of the log:\n{log}");
    let base = format!("http://{listen}");
    let http = reqwest::Client::new();

    let run = tokio::task::block_in_place(|| cluster.trigger("escalates", &[]));
    // The listing comes from the run snapshots: wait for the escalation to appear there.
    let started = Instant::now();
    let listed = loop {
        let response = http.get(format!("{base}/v1/escalations")).bearer_auth(ALICE_TOKEN).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let body: Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
        let found = body["escalations"].as_array().unwrap().iter().find(|p| p["run_id"] == run.as_str()).cloned();
        if let Some(found) = found {
            break found;
        }
        assert!(started.elapsed() < WAIT, "the escalation was never listed: {body:#}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let prompt = listed["id"].as_str().unwrap().to_owned();
    assert!(prompt.starts_with("ESC-"), "{listed:#}");
    assert_eq!(listed["kind"], "escalation");
    assert_eq!(listed["title"], "The deploy failed");
    assert_eq!(listed["open"], true);
    assert_eq!(listed["state"], "open");
    assert_eq!(listed["run_state"], "waiting");
    assert_eq!(tokio::task::block_in_place(|| cluster.status(&run))["state"], "waiting");

    // The notice reached the Slack webhook, with a button per option.
    let started = Instant::now();
    let notice = loop {
        let found = posted.lock().unwrap().iter().find(|m| m["text"].as_str().unwrap_or("").contains(&prompt)).cloned();
        if let Some(found) = found {
            break found;
        }
        assert!(started.elapsed() < WAIT, "no notice for {prompt} reached the webhook: {:#?}", posted.lock().unwrap());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let buttons = notice.to_string();
    assert!(buttons.contains(&format!("{prompt}:skip")), "{notice:#}");

    // No token, or the wrong person: refused, and the run still waits.
    let (status, _) = answer(&http, &base, None, &prompt, json!({"option": "skip"})).await;
    assert_eq!(status, 401);
    let (status, body) = answer(&http, &base, Some(MALLORY_TOKEN), &prompt, json!({"option": "skip"})).await;
    assert_eq!(status, 403, "{body:#}");
    assert!(body["error"].as_str().unwrap().contains("mallory may not answer"), "{body:#}");
    assert_eq!(tokio::task::block_in_place(|| cluster.status(&run))["state"], "waiting", "a refusal changes nothing");

    // Slack: a forged signature is refused; alice's signed `ack` is taken and announced.
    let (status, _) = slash_command(&http, &base, "not-the-secret", "U123", &format!("ack {prompt}")).await;
    assert_eq!(status, 401);
    let (status, reply) = slash_command(&http, &base, SIGNING_SECRET, "U123", &format!("ack {prompt}")).await;
    assert_eq!(status, 200);
    assert_eq!(reply["response_type"], "in_channel", "{reply:#}");
    assert!(reply["text"].as_str().unwrap().contains("acknowledged"), "{reply:#}");
    let shown = http.get(format!("{base}/v1/escalations/{prompt}")).bearer_auth(ALICE_TOKEN).send().await.unwrap();
    let shown: Value = serde_json::from_str(&shown.text().await.unwrap()).unwrap();
    assert_eq!((&shown["state"], &shown["open"]), (&json!("acknowledged"), &json!(true)), "{shown:#}");
    let (status, reply) = slash_command(&http, &base, SIGNING_SECRET, "U999", &format!("answer {prompt} skip")).await;
    assert_eq!(status, 200);
    assert_eq!(reply["response_type"], "ephemeral", "an unknown Slack user is refused: {reply:#}");

    // Alice answers over HTTP; the run resumes.
    let (status, body) =
        answer(&http, &base, Some(ALICE_TOKEN), &prompt, json!({"option": "skip", "note": "done by hand"})).await;
    assert_eq!(status, 200, "{body:#}");
    assert_eq!(body["accepted"], true);
    let status = tokio::task::block_in_place(|| cluster.wait_terminal(&run, WAIT));
    assert_eq!(status["state"], "succeeded", "{status:#}");
    let (status, _) = answer(&http, &base, Some(ALICE_TOKEN), &prompt, json!({"option": "retry"})).await;
    assert!(status == 409 || status == 400, "a decided prompt takes no second answer ({status})");

    bridge.signal(nix::sys::signal::Signal::SIGTERM);
    let code = tokio::task::block_in_place(|| bridge.wait_exit(Duration::from_secs(15)));
    assert_eq!(code, Some(0), "{}", bridge.log_text());
}

/// Without any channel the bridge refuses to start and says what to give it.
#[test]
fn a_bridge_without_channels_says_what_it_needs() {
    let cluster = Cluster::start();
    let key_file = cluster.path("bridge.nk");
    let out = cluster.muster(&["keygen", "--out", key_file.to_str().unwrap(), "--name", "bridge", "--json"]);
    assert!(out.status.success());
    let url = cluster.nats.url();
    let out = cluster.muster(&["bridge", "--nats", &url, "--key-file", key_file.to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no channel") && stderr.contains("--http-listen"), "{stderr}");
}
