//! A real Matrix homeserver (Synapse) for bridge tests: a free loopback port, its own scratch
//! directory and SQLite database, users registered with the shared secret, killed by PID on drop.
//!
//! Synapse comes from `scripts/synapse install` (which `scripts/test` runs) in `.tools/synapse`;
//! the same script writes the configuration, so tests and people run the same server.
//!
//! A test includes it next to the shared harness:
//! `mod support; #[path = "support/synapse.rs"] mod synapse;`
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use hmac::{Hmac, Mac};
use reqwest::{Method, Url};
use serde_json::{Value, json};
use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Must match `scripts/synapse config`'s default.
const REGISTRATION_SECRET: &str = "muster-test-registration";
/// The server name users and rooms live under.
pub const SERVER_NAME: &str = "localhost";

fn script() -> PathBuf {
    crate::support::repo().join("scripts/synapse")
}

/// A running homeserver owned by a test.
pub struct Synapse {
    child: Child,
    dir: tempfile::TempDir,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    http: reqwest::Client,
}

impl Synapse {
    /// Configures and starts a homeserver, waiting until its client API answers.
    pub async fn start() -> Self {
        let venv = std::env::var_os("SYNAPSE_VENV")
            .map_or_else(|| crate::support::repo().join(".tools/synapse"), PathBuf::from);
        assert!(
            venv.join("bin/python").exists(),
            "no Synapse in {}: run `scripts/synapse install` (scripts/test does)",
            venv.display()
        );
        let dir = tempfile::tempdir().unwrap();
        let port = muster_bus::testing::free_port().unwrap();
        let config = Command::new(script())
            .args(["config", "--port", &port.to_string(), "--dir"])
            .arg(dir.path())
            .output()
            .expect("run scripts/synapse config");
        assert!(config.status.success(), "scripts/synapse config: {}", String::from_utf8_lossy(&config.stderr));
        let log = File::create(dir.path().join("synapse.log")).unwrap();
        let child = Command::new(script())
            .args(["run", "--dir"])
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn synapse");
        let mut synapse = Self { child, dir, base: format!("http://127.0.0.1:{port}"), http: reqwest::Client::new() };
        synapse.wait_ready(Duration::from_secs(60)).await;
        synapse
    }

    async fn wait_ready(&mut self, limit: Duration) {
        let started = Instant::now();
        let url = format!("{}/_matrix/client/versions", self.base);
        while started.elapsed() < limit {
            if let Ok(response) = self.http.get(&url).send().await
                && response.status().is_success()
            {
                eprintln!("synapse ready after {:.1}s", started.elapsed().as_secs_f64());
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("synapse exited ({status}) before it was ready; log:\n{}", self.log_text());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("synapse not ready within {limit:?}; log:\n{}", self.log_text());
    }

    /// The server's log, for failure messages.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("synapse.log")).unwrap_or_default()
    }

    /// Registers `name` with `password` through the shared-secret admin API and logs in.
    pub async fn register(&self, name: &str, password: &str) -> MatrixUser {
        let url = format!("{}/_synapse/admin/v1/register", self.base);
        let nonce = json_of(self.http.get(&url).send().await.unwrap()).await;
        let nonce = nonce["nonce"].as_str().unwrap().to_owned();
        let mut mac = Hmac::<sha1::Sha1>::new_from_slice(REGISTRATION_SECRET.as_bytes()).unwrap();
        mac.update(format!("{nonce}\0{name}\0{password}\0notadmin").as_bytes());
        let body = json!({
            "nonce": nonce, "username": name, "password": password, "admin": false,
            "mac": hex::encode(mac.finalize().into_bytes()),
        });
        let response = with_json(self.http.post(&url), &body).send().await.unwrap();
        let status = response.status();
        let answer = json_of(response).await;
        assert!(status.is_success(), "register {name}: {status} {answer}");
        MatrixUser {
            user_id: answer["user_id"].as_str().unwrap().to_owned(),
            token: answer["access_token"].as_str().unwrap().to_owned(),
            base: Url::parse(&self.base).unwrap(),
            http: self.http.clone(),
            txn: AtomicU64::new(0),
        }
    }
}

impl Drop for Synapse {
    fn drop(&mut self) {
        // The script execs Python, so the child's PID is the server's.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A person in the homeserver, talking through the client API.
pub struct MatrixUser {
    /// `@name:localhost`.
    pub user_id: String,
    token: String,
    base: Url,
    http: reqwest::Client,
    txn: AtomicU64,
}

impl MatrixUser {
    /// The user's access token, for a process that logs in with one.
    pub fn token(&self) -> &str {
        &self.token
    }

    async fn call(&self, method: Method, segments: &[&str], query: &[(&str, &str)], body: Option<Value>) -> Value {
        let mut url = self.base.clone();
        url.path_segments_mut().unwrap().extend(["_matrix", "client", "v3"]).extend(segments);
        url.query_pairs_mut().extend_pairs(query);
        let mut request = self.http.request(method, url.clone()).bearer_auth(&self.token);
        if let Some(body) = body {
            request = with_json(request, &body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let answer = json_of(response).await;
        assert!(status.is_success(), "{} {}: {status} {answer}", self.user_id, url.path());
        answer
    }

    /// Creates a private room with the alias `#<alias>:localhost`, inviting `invite`.
    pub async fn create_room(&self, alias: &str, invite: &[&str]) -> String {
        let body = json!({"room_alias_name": alias, "preset": "private_chat", "invite": invite, "name": alias});
        let answer = self.call(Method::POST, &["createRoom"], &[], Some(body)).await;
        answer["room_id"].as_str().unwrap().to_owned()
    }

    /// Joins a room the user was invited to.
    pub async fn join(&self, room: &str) {
        self.call(Method::POST, &["join", room], &[], Some(json!({}))).await;
    }

    /// Posts a plain-text message; returns its event id.
    pub async fn say(&self, room: &str, text: &str) -> String {
        let txn = format!("t{}-{}", std::process::id(), self.txn.fetch_add(1, Ordering::SeqCst));
        let content = json!({"msgtype": "m.text", "body": text});
        let answer = self.call(Method::PUT, &["rooms", room, "send", "m.room.message", &txn], &[], Some(content)).await;
        answer["event_id"].as_str().unwrap().to_owned()
    }

    /// Every `m.room.message` in the room, oldest first.
    pub async fn messages(&self, room: &str) -> Vec<Value> {
        let filter = json!({"types": ["m.room.message"]}).to_string();
        let answer = self
            .call(
                Method::GET,
                &["rooms", room, "messages"],
                &[("dir", "b"), ("limit", "1000"), ("filter", &filter)],
                None,
            )
            .await;
        let mut events: Vec<Value> = answer["chunk"].as_array().cloned().unwrap_or_default();
        events.reverse();
        events
    }

    /// Waits until a message from `sender` satisfies `matches`; returns it.
    pub async fn wait_for(&self, room: &str, sender: &str, limit: Duration, matches: impl Fn(&Value) -> bool) -> Value {
        let started = Instant::now();
        loop {
            let messages = self.messages(room).await;
            if let Some(found) = messages.iter().find(|m| m["sender"] == sender && matches(m)) {
                return found.clone();
            }
            if started.elapsed() > limit {
                let bodies: Vec<String> =
                    messages.iter().map(|m| format!("{}: {}", m["sender"], m["content"]["body"])).collect();
                panic!("no matching message from {sender} within {limit:?}; the room has:\n{}", bodies.join("\n"));
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }
}

fn with_json(request: reqwest::RequestBuilder, body: &Value) -> reqwest::RequestBuilder {
    request.header(reqwest::header::CONTENT_TYPE, "application/json").body(body.to_string())
}

async fn json_of(response: reqwest::Response) -> Value {
    serde_json::from_slice(&response.bytes().await.unwrap()).unwrap_or(Value::Null)
}

/// The body of a message event.
pub fn body(event: &Value) -> &str {
    event["content"]["body"].as_str().unwrap_or_default()
}

/// The thread a message event belongs to.
pub fn thread_of(event: &Value) -> Option<&str> {
    let relation = &event["content"]["m.relates_to"];
    (relation["rel_type"] == "m.thread").then(|| relation["event_id"].as_str()).flatten()
}
