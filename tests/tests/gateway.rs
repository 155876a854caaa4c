//! End-to-end: `muster gateway` in front of a real orchestrator and agent over a real
//! `nats-server`, driven over real HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::time::Duration;
use support::{Cluster, Proc};

const SECRET_ENV: &str = "GATEWAY_TEST_HOOK_SECRET";
const SECRET: &str = "correct horse battery staple";

/// Takes webhooks; one sre step that echoes its inputs.
const HOOKED: &str = "id: hooked
triggers:
  - webhook: {secret_env: GATEWAY_TEST_HOOK_SECRET}
inputs:
  message: {type: string}
  replicas: {type: int, default: 1}
steps:
  - {id: say, owner: sre, exec: {program: echo, args: ['{{ inputs.message }}', '{{ inputs.replicas }}']}}
";

/// Loaded, but only people may start it.
const MANUAL: &str = "id: manual-only
triggers:
  - manual: {}
steps:
  - {id: say, owner: sre, exec: {program: 'true'}}
";

/// A cluster with an orchestrator, an sre agent and a gateway over the same scenarios.
/// Bind every field: a process dropped is a process killed.
struct Gateway {
    cluster: Cluster,
    _orchestrator: Proc,
    _agent: Proc,
    gateway: Proc,
    base: String,
    rt: tokio::runtime::Runtime,
    client: reqwest::Client,
}

impl Gateway {
    fn start() -> Self {
        let mut cluster = Cluster::start();
        cluster.setting(SECRET_ENV, SECRET);
        cluster.scenario("hooked.yaml", HOOKED);
        cluster.scenario("manual.yaml", MANUAL);
        let scenarios = cluster.path("scenarios");
        let orchestrator = cluster.orchestrator("orchestrator", &scenarios);
        let agent = cluster.agent("sre-agent", "sre");
        let url = cluster.nats.url();
        let mut gateway = cluster.spawn(
            "gateway",
            &["gateway", "--nats", &url, "--scenarios", scenarios.to_str().unwrap(), "--listen", "127.0.0.1:0"],
        );
        gateway.wait_for_log("gateway ready", Duration::from_secs(20));
        let log = gateway.log_text();
        let listen = log
            .split_whitespace()
            .find_map(|field| field.strip_prefix("listen="))
            .unwrap_or_else(|| panic!("no listen= in the gateway's log:\n{log}"))
            .to_owned();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        Self {
            cluster,
            _orchestrator: orchestrator,
            _agent: agent,
            gateway,
            base: format!("http://{listen}"),
            rt,
            client: reqwest::Client::new(),
        }
    }

    /// POSTs `body` for `protocol`, signed with `secret` at the current time (unsigned when
    /// `None`), with `key` as the Idempotency-Key; returns the status and the JSON answer.
    fn post(&self, protocol: &str, body: &str, secret: Option<&str>, key: Option<&str>) -> (u16, serde_json::Value) {
        let timestamp = jiff::Timestamp::now().as_second().to_string();
        let mut request = self.client.post(format!("{}/v1/protocols/{protocol}/runs", self.base)).body(body.to_owned());
        if let Some(secret) = secret {
            request = request
                .header("X-Muster-Timestamp", &timestamp)
                .header("X-Muster-Signature", sign(secret, &timestamp, body));
        }
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        self.rt.block_on(async {
            let response = request.send().await.expect("the gateway answers");
            let status = response.status().as_u16();
            let text = response.text().await.unwrap();
            let json = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"));
            (status, json)
        })
    }

    /// Every run in the cluster's KV, via `muster runs --json`.
    fn runs(&self) -> Vec<serde_json::Value> {
        let url = self.cluster.nats.url();
        let out = self.cluster.muster(&["runs", "--json", "--nats", &url]);
        assert!(out.status.success(), "runs failed: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap().as_array().unwrap().clone()
    }
}

/// `v1=<hex HMAC-SHA256(secret, "{timestamp}.{body}")>`, computed independently of the gateway.
fn sign(secret: &str, timestamp: &str, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    format!("v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// A correctly signed POST starts a run that an agent carries to `succeeded`, with the inputs
/// from the body typed by the orchestrator.
#[test]
fn a_signed_post_starts_a_run_that_succeeds() {
    let gw = Gateway::start();
    let body = r#"{"inputs": {"message": "from-webhook", "replicas": 3}}"#;
    let (status, answer) = gw.post("hooked", body, Some(SECRET), Some("evt-0001"));
    assert_eq!(status, 201, "{answer}\n{}", gw.gateway.log_text());
    assert_eq!(answer["existing"], false);
    let run_id = answer["run_id"].as_str().expect("run_id").to_owned();

    let status = gw.cluster.wait_terminal(&run_id, Duration::from_secs(60));
    assert_eq!(status["state"], "succeeded", "{status:#}");
    assert_eq!(status["protocol"], "hooked");
    assert_eq!(status["inputs"]["message"], "from-webhook");
    assert_eq!(status["inputs"]["replicas"], "3");
    assert_eq!(status["steps"][0]["agent"], "sre-agent");
    assert!(gw.gateway.log_text().contains("webhook trigger accepted"));
}

/// The same Idempotency-Key again never starts a second run: the answer names the first run,
/// with `existing: true` and 200. Needs the orchestrator to honour `idempotency_key`.
#[test]
fn the_same_idempotency_key_returns_the_same_run() {
    let gw = Gateway::start();
    let body = r#"{"inputs": {"message": "once"}}"#;
    let (status, first) = gw.post("hooked", body, Some(SECRET), Some("evt-same"));
    assert_eq!(status, 201, "{first}");
    // A client retrying after a lost reply: same key, same body.
    let (status, second) = gw.post("hooked", body, Some(SECRET), Some("evt-same"));
    assert_eq!(second["run_id"], first["run_id"], "same key, same run: {second}");
    assert_eq!((status, &second["existing"]), (200, &serde_json::Value::Bool(true)), "{second}");
    let runs = gw.runs();
    assert_eq!(runs.len(), 1, "one run for one key: {runs:#?}");
}

/// Refused requests say why, with the right status, and create no run.
#[test]
fn refused_requests_start_no_run() {
    let gw = Gateway::start();
    let body = r#"{"inputs": {"message": "nope"}}"#;

    let (status, answer) = gw.post("hooked", body, Some("not the secret"), Some("evt-bad-sig"));
    assert_eq!(status, 401, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("signature"), "{answer}");

    let (status, answer) = gw.post("hooked", body, None, Some("evt-unsigned"));
    assert_eq!(status, 401, "{answer}");

    let (status, answer) = gw.post("hooked", body, Some(SECRET), None);
    assert_eq!(status, 400, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("Idempotency-Key"), "{answer}");

    let (status, answer) = gw.post("no-such-protocol", body, Some(SECRET), Some("evt-unknown"));
    assert_eq!(status, 404, "{answer}");

    let (status, answer) = gw.post("manual-only", "", Some(SECRET), Some("evt-manual"));
    assert_eq!(status, 404, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("no webhook trigger"), "{answer}");

    // Signed and well formed, but the orchestrator refuses the inputs: 422, nothing created.
    let (status, answer) = gw.post("hooked", r#"{"inputs": {"replicas": "many"}}"#, Some(SECRET), Some("evt-422"));
    assert_eq!(status, 422, "{answer}");

    assert!(gw.runs().is_empty(), "no run was created");
}

/// SIGTERM stops the gateway cleanly (exit 0).
#[test]
fn the_gateway_stops_on_sigterm() {
    let mut gw = Gateway::start();
    let (status, _) = gw.post("hooked", "", Some(SECRET), None);
    assert_eq!(status, 400, "the gateway is serving");
    gw.gateway.signal(nix::sys::signal::Signal::SIGTERM);
    let started = std::time::Instant::now();
    assert_eq!(gw.gateway.wait_exit(Duration::from_secs(15)), Some(0), "{}", gw.gateway.log_text());
    assert!(gw.gateway.log_text().contains("gateway stopped"), "{}", gw.gateway.log_text());
    eprintln!("gateway exited {:?} after SIGTERM", started.elapsed());
}
