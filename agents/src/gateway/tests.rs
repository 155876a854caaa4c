//! The gateway over the memory bus with a stand-in orchestrator, through a real socket.

use super::signature::{SIGNATURE_HEADER, TIMESTAMP_HEADER};
use super::*;
use crate::wire;
use hmac::{Hmac, Mac};
use muster_bus::memory::MemoryBus;
use muster_bus::{Request, Subscription};
use muster_schemas::Payload;
use muster_schemas::message::{RefusalCode, RunTriggered, TriggerReply};
use muster_schemas::protocol::parse_protocol;
use sha2::Sha256;
use std::sync::Mutex;
use tokio::sync::mpsc;
use uuid::Uuid;

const SECRET: &str = "s3cret";
const RUN: Uuid = Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001);

/// A stand-in orchestrator's answer to a trigger.
type Answer = fn(&RunTriggered) -> TriggerReply;

/// How the stand-in orchestrator answers.
#[derive(Clone, Copy)]
enum Orchestrator {
    /// Not running: requests find no responder.
    Absent,
    /// Receives requests and never answers.
    Silent,
    /// Answers every trigger with this.
    Answers(Answer),
}

struct Harness {
    base: String,
    client: reqwest::Client,
    received: Mutex<mpsc::UnboundedReceiver<RunTriggered>>,
    _shutdown: tokio_util::sync::DropGuard,
}

fn protocols() -> Vec<muster_schemas::protocol::Protocol> {
    let step = "steps:\n  - {id: one, owner: sre, exec: {program: 'true'}}\n";
    [
        format!("id: deploy\ntriggers:\n  - webhook: {{secret_env: HOOK}}\n{step}"),
        format!("id: manual-only\ntriggers:\n  - manual: {{}}\n{step}"),
        format!("id: unset\ntriggers:\n  - webhook: {{secret_env: UNSET_HOOK}}\n{step}"),
    ]
    .iter()
    .map(|text| parse_protocol("test.yaml", text).unwrap())
    .collect()
}

async fn start(orchestrator: Orchestrator) -> Harness {
    let bus = MemoryBus::new();
    let subjects = Subjects::default();
    let (tx, received) = mpsc::unbounded_channel();
    if !matches!(orchestrator, Orchestrator::Absent) {
        let mut requests = bus.serve(&subjects.trigger_all()).await.unwrap();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Some(request) = requests.next().await {
                let Payload::RunTriggered(trigger) = wire::decode(request.payload()).unwrap().payload else {
                    panic!("not a trigger")
                };
                let _ = tx.send(trigger.clone());
                match orchestrator {
                    Orchestrator::Answers(answer) => {
                        let sender = muster_schemas::Sender {
                            component: muster_schemas::Component::Orchestrator,
                            role: None,
                            id: "fake".into(),
                        };
                        let reply = wire::seal(&sender, None, Payload::TriggerReply(answer(&trigger))).unwrap();
                        request.respond(reply).await.unwrap();
                    }
                    _ => held.push(request),
                }
            }
        });
    }
    let webhooks = Webhooks::from_protocols(&protocols(), |name| (name == "HOOK").then(|| SECRET.to_owned()));
    let mut options = GatewayOptions::new(subjects, "gateway-test".into(), webhooks);
    options.request_timeout = Duration::from_millis(300);
    options.max_body = 1024;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    tokio::spawn(serve(listener, app(bus, options), shutdown.clone(), Duration::from_secs(1)));
    Harness { base, client: reqwest::Client::new(), received: Mutex::new(received), _shutdown: shutdown.drop_guard() }
}

fn signature(secret: &str, timestamp: &str, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.{body}").as_bytes());
    format!("v1={}", hex::encode(mac.finalize().into_bytes()))
}

impl Harness {
    /// A POST signed with `secret` (none: unsigned), with `key` as the idempotency key.
    async fn post(
        &self,
        protocol: &str,
        body: &str,
        secret: Option<&str>,
        key: Option<&str>,
    ) -> (u16, serde_json::Value) {
        let timestamp = jiff::Timestamp::now().as_second().to_string();
        let mut request = self.client.post(format!("{}/v1/protocols/{protocol}/runs", self.base)).body(body.to_owned());
        if let Some(secret) = secret {
            request = request
                .header(TIMESTAMP_HEADER, &timestamp)
                .header(SIGNATURE_HEADER, signature(secret, &timestamp, body));
        }
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        let response = request.send().await.unwrap();
        read(response).await
    }

    fn forwarded(&self) -> Option<RunTriggered> {
        self.received.lock().unwrap().try_recv().ok()
    }
}

async fn read(response: reqwest::Response) -> (u16, serde_json::Value) {
    let status = response.status().as_u16();
    assert_eq!(
        response.headers().get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/json"),
        "every answer is JSON"
    );
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}")))
}

fn accepted(_: &RunTriggered) -> TriggerReply {
    TriggerReply::Accepted { run_id: RUN, existing: false }
}

fn error_text(body: &serde_json::Value) -> &str {
    body["error"].as_str().unwrap_or_else(|| panic!("no error message in {body}"))
}

#[tokio::test]
async fn a_signed_request_is_forwarded_with_its_key_and_inputs() {
    let gw = start(Orchestrator::Answers(accepted)).await;
    let body = r#"{"inputs": {"environment": "staging", "replicas": 3, "dry_run": false}}"#;
    let (status, answer) = gw.post("deploy", body, Some(SECRET), Some("evt-1")).await;
    assert_eq!((status, &answer), (201, &serde_json::json!({"run_id": RUN.to_string(), "existing": false})));
    let trigger = gw.forwarded().expect("forwarded to the orchestrator");
    assert_eq!(trigger.protocol_id, "deploy");
    assert_eq!(trigger.idempotency_key.as_deref(), Some("evt-1"));
    assert!(trigger.protocol.is_none(), "the orchestrator runs its own copy of the protocol");
    let inputs: Vec<_> = trigger.inputs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    assert_eq!(inputs, ["dry_run=false", "environment=staging", "replicas=3"]);

    // An empty body is a run without inputs.
    let (status, _) = gw.post("deploy", "", Some(SECRET), Some("evt-2")).await;
    assert_eq!(status, 201);
    assert!(gw.forwarded().is_some_and(|t| t.inputs.is_empty()));
}

#[tokio::test]
async fn an_existing_run_is_200_with_existing_true() {
    let gw = start(Orchestrator::Answers(|_| TriggerReply::Accepted { run_id: RUN, existing: true })).await;
    let (status, answer) = gw.post("deploy", "{}", Some(SECRET), Some("evt-1")).await;
    assert_eq!((status, answer["existing"].as_bool()), (200, Some(true)));
    assert_eq!(answer["run_id"], RUN.to_string());
}

#[tokio::test]
async fn refusals_map_to_statuses() {
    let cases: [(Answer, u16); 3] = [
        (|_| TriggerReply::Refused { reason: "gone".into(), code: RefusalCode::UnknownProtocol }, 404),
        (
            |_| TriggerReply::Refused { reason: "input `x` is not a number".into(), code: RefusalCode::InvalidInput },
            422,
        ),
        (|_| TriggerReply::Refused { reason: "store down".into(), code: RefusalCode::Unavailable }, 503),
    ];
    for (answer, expected) in cases {
        let gw = start(Orchestrator::Answers(answer)).await;
        let (status, body) = gw.post("deploy", "{}", Some(SECRET), Some("k")).await;
        assert_eq!(status, expected, "{body}");
        assert!(!error_text(&body).is_empty());
    }
}

#[tokio::test]
async fn no_orchestrator_is_503_and_a_silent_one_is_504() {
    let gw = start(Orchestrator::Absent).await;
    let (status, body) = gw.post("deploy", "{}", Some(SECRET), Some("k")).await;
    assert_eq!(status, 503);
    assert!(error_text(&body).contains("no orchestrator"), "{body}");

    let gw = start(Orchestrator::Silent).await;
    let (status, body) = gw.post("deploy", "{}", Some(SECRET), Some("k")).await;
    assert_eq!(status, 504);
    assert!(error_text(&body).contains("same Idempotency-Key"), "{body}");
}

#[tokio::test]
async fn unauthenticated_or_malformed_requests_never_reach_the_orchestrator() {
    let gw = start(Orchestrator::Answers(accepted)).await;
    let (status, body) = gw.post("deploy", "{}", Some("wrong"), Some("k")).await;
    assert_eq!(status, 401);
    assert!(error_text(&body).contains("does not match"), "{body}");
    let (status, body) = gw.post("deploy", "{}", None, Some("k")).await;
    assert_eq!(status, 401);
    assert!(error_text(&body).contains("X-Muster-Timestamp"), "{body}");

    let (status, body) = gw.post("deploy", "{}", Some(SECRET), None).await;
    assert_eq!(status, 400);
    assert!(error_text(&body).contains("Idempotency-Key"), "{body}");
    let (status, _) = gw.post("deploy", "{}", Some(SECRET), Some(&"k".repeat(201))).await;
    assert_eq!(status, 400);

    let (status, body) = gw.post("deploy", r#"{"inputs": {"#, Some(SECRET), Some("bad-json")).await;
    assert_eq!(status, 400);
    assert!(error_text(&body).contains("not valid JSON"), "{body}");

    let (status, body) = gw.post("deploy", &"x".repeat(2000), Some(SECRET), Some("big")).await;
    assert_eq!(status, 413, "{body}");
    assert!(error_text(&body).contains("larger than 1024 bytes"), "{body}");

    assert!(gw.forwarded().is_none(), "nothing was forwarded");
}

#[tokio::test]
async fn protocols_without_a_usable_webhook_are_refused_before_the_signature() {
    let gw = start(Orchestrator::Answers(accepted)).await;
    let (status, body) = gw.post("nope", "{}", Some(SECRET), Some("k")).await;
    assert_eq!(status, 404);
    assert!(error_text(&body).contains("no protocol `nope`"), "{body}");
    let (status, body) = gw.post("manual-only", "{}", Some(SECRET), Some("k")).await;
    assert_eq!(status, 404);
    assert!(error_text(&body).contains("has no webhook trigger"), "{body}");
    let (status, body) = gw.post("unset", "{}", Some(SECRET), Some("k")).await;
    assert_eq!(status, 503);
    assert!(error_text(&body).contains("UNSET_HOOK"), "{body}");
    assert!(gw.forwarded().is_none());
}

#[tokio::test]
async fn a_signature_replayed_under_another_key_is_refused() {
    let gw = start(Orchestrator::Answers(accepted)).await;
    let timestamp = jiff::Timestamp::now().as_second().to_string();
    let send = |key: &'static str| {
        gw.client
            .post(format!("{}/v1/protocols/deploy/runs", gw.base))
            .header(TIMESTAMP_HEADER, &timestamp)
            .header(SIGNATURE_HEADER, signature(SECRET, &timestamp, "{}"))
            .header("Idempotency-Key", key)
            .body("{}")
            .send()
    };
    assert_eq!(read(send("first").await.unwrap()).await.0, 201);
    assert_eq!(read(send("first").await.unwrap()).await.0, 201, "a retry with the same key passes");
    let (status, body) = read(send("second").await.unwrap()).await;
    assert_eq!(status, 401);
    assert!(error_text(&body).contains("already used"), "{body}");
}

#[tokio::test]
async fn health_and_unknown_routes_answer_json() {
    let gw = start(Orchestrator::Absent).await;
    let (status, body) = read(gw.client.get(format!("{}/healthz", gw.base)).send().await.unwrap()).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
    let (status, body) = read(gw.client.get(format!("{}/v2/things", gw.base)).send().await.unwrap()).await;
    assert_eq!(status, 404);
    assert!(error_text(&body).contains("/v2/things"));
    let (status, _) = read(gw.client.get(format!("{}/v1/protocols/deploy/runs", gw.base)).send().await.unwrap()).await;
    assert_eq!(status, 405);
}

#[tokio::test]
async fn shutdown_stops_the_server() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let shutdown = CancellationToken::new();
    let options = GatewayOptions::new(Subjects::default(), "t".into(), Webhooks::default());
    let server =
        tokio::spawn(serve(listener, app(MemoryBus::new(), options), shutdown.clone(), Duration::from_secs(1)));
    shutdown.cancel();
    let result = tokio::time::timeout(Duration::from_secs(5), server).await;
    assert!(matches!(result, Ok(Ok(Ok(())))), "{result:?}");
}
