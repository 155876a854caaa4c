//! The chat bridge (`muster bridge`): carries prompts to people in a Matrix room and their
//! answers back to the orchestrator. [`slack`] and [`http_api`] are the Slack and HTTP
//! front doors to the same signed answers.
//!
//! ```text
//!                 muster.evt.<run>.notice (durable consumer `bridge`)
//!  orchestrator ─────────────────────────────────────────────▶ bridge ── PUT send/{txnId} ──▶ room
//!       ▲                                                        │        (thread per prompt)
//!       │  request muster.answer.<run>: SignedAnswer             │
//!       └────────────────────────────────────────────────────────┤◀─ /sync long-poll ── people
//!          reply: AnswerReply {accepted, message} ──▶ posted in the prompt's thread
//! ```
//!
//! Nothing is lost or doubled across a crash or restart:
//! - a notice is acknowledged only after the homeserver confirmed the post; a redelivered
//!   notice is posted with the same transaction id (run, prompt, stage, envelope id), which the
//!   homeserver answers with the first post, and is skipped outright once recorded in KV;
//! - the `/sync` position is saved after a batch of messages was handled, so a restart neither
//!   replays handled messages nor misses the ones sent while the bridge was down; a message
//!   handled twice anyway (crash before the save) carries the same nonce and reply transaction
//!   id, so the orchestrator refuses the repeat and the room sees one reply.
//!
//! - [`commands`]: chat text → commands (data only).
//! - [`matrix`]: the Matrix client-server API client.
//! - [`answers`]: signing answers and the request/reply with the orchestrator.
//! - [`state`]: what the bridge keeps in KV.
//! - [`render`]: the texts it posts.
//! - `notices`, `chat`: the two loops.
//! - [`slack_notices`]: notices to a Slack incoming webhook, on a consumer of their own.
//! - [`http_app`]: the HTTP API and the Slack endpoints on one router.
//!
//! `muster bridge` runs any combination of the three: the Matrix loops ([`Bridge`]), the Slack
//! notice loop, and one HTTP server for the API and Slack's requests.

pub mod answers;
mod chat;
pub mod commands;
pub mod http_api;
pub mod matrix;
mod notices;
pub mod render;
pub mod slack;
pub mod slack_notices;
pub mod state;

use answers::Signer;
use commands::Parser;
use futures::FutureExt;
use matrix::{Login, MatrixClient};
use muster_bus::Bus;
use muster_bus::subjects::Subjects;
use muster_schemas::{Component, Sender};
use serde_json::Value;
use sha2::{Digest, Sha256};
use state::State;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Why the bridge stopped or an operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The homeserver refused or could not be reached.
    #[error(transparent)]
    Matrix(#[from] matrix::Error),
    /// The bus failed.
    #[error(transparent)]
    Bus(#[from] muster_bus::Error),
    /// The principal's key is unusable.
    #[error("the bridge's key: {0}")]
    Key(String),
    /// A stored value is not what the bridge or the orchestrator writes.
    #[error("unreadable stored value {0}")]
    Corrupt(String),
    /// A KV entry kept changing under the bridge.
    #[error("KV entry {0} kept changing; gave up")]
    Contended(String),
    /// Slack notices cannot be posted at all (no HTTP client).
    #[error("slack: {0}")]
    Slack(slack::WebhookError),
}

/// The bridge's HTTP front doors on one router: the API under `/v1/` when `api` is given, the
/// Slack endpoints under `/slack/` when `slack` is given, both over the same `sink` so an answer
/// is signed the same way whichever door it came through. `None` when neither is given.
pub fn http_app<S: slack::AnswerSink + Clone>(
    sink: S,
    api: Option<http_api::HttpApiOptions>,
    slack: Option<slack::SlackOptions>,
) -> Option<axum::Router> {
    match (api, slack) {
        (None, None) => None,
        (Some(api), None) => Some(http_api::app(sink, api)),
        (None, Some(slack)) => Some(slack::app(sink, slack)),
        // The API's fallback (401 without a token, else 404) serves every other path.
        (Some(api), Some(slack)) => Some(http_api::app(sink.clone(), api).merge(slack::endpoint::routes(sink, slack))),
    }
}

/// How the bridge behaves; [`BridgeOptions::new`] gives the defaults.
#[derive(Debug, Clone)]
pub struct BridgeOptions {
    /// Where notices come from and answers go.
    pub subjects: Subjects,
    /// The bridge's instance id, as the sender of its answers.
    pub id: String,
    /// The homeserver's base URL.
    pub homeserver: String,
    /// How the bridge logs in.
    pub login: Login,
    /// The room, by id (`!…`) or alias (`#…`); the bridge joins it at start.
    pub room: String,
    /// The principal answers are signed as.
    pub signer: Signer,
    /// How long a notice stays claimed while it is posted (extended while retrying); after a
    /// crash, the notice comes again once this passes.
    pub notice_lease: Duration,
    /// How long to wait for the orchestrator's reply to an answer.
    pub answer_timeout: Duration,
    /// How long a signed answer stays valid.
    pub answer_ttl: Duration,
    /// How long one `/sync` long-poll waits for news.
    pub sync_timeout: Duration,
    /// Messages per `/sync`; more arriving at once are fetched page by page.
    pub timeline_limit: u32,
    /// Most messages fetched to fill one gap; older ones in the gap are skipped with a warning.
    pub max_gap: usize,
    /// Commands older than this (the bridge was down) are not acted on; the person is told to
    /// send them again if they still stand.
    pub max_command_age: Duration,
}

impl BridgeOptions {
    /// Defaults: 30 s notice lease, 10 s for the orchestrator, answers valid 5 minutes, 30 s
    /// long-polls of 50 messages, gaps up to 1000 messages, commands up to 1 hour old.
    pub fn new(subjects: Subjects, id: String, homeserver: String, login: Login, room: String, signer: Signer) -> Self {
        Self {
            subjects,
            id,
            homeserver,
            login,
            room,
            signer,
            notice_lease: Duration::from_secs(30),
            answer_timeout: Duration::from_secs(10),
            answer_ttl: Duration::from_secs(300),
            sync_timeout: Duration::from_secs(30),
            timeline_limit: 50,
            max_gap: 1000,
            max_command_age: Duration::from_secs(3600),
        }
    }
}

/// The bridge service over a bus.
#[derive(Debug)]
pub struct Bridge<B> {
    bus: B,
    options: BridgeOptions,
}

/// What both loops share once the bridge is connected.
struct Shared<B> {
    bus: B,
    state: State<B>,
    matrix: MatrixClient,
    room_id: String,
    user_id: String,
    parser: Parser,
    sender: Sender,
    options: BridgeOptions,
}

impl<B: Bus> Bridge<B> {
    /// A bridge that has not connected to anything yet.
    pub fn new(bus: B, options: BridgeOptions) -> Self {
        Self { bus, options }
    }

    /// Logs in, joins the room, binds the notice consumer, then carries notices and answers
    /// until `shutdown` is cancelled. Transient failures are retried with backoff; refused
    /// credentials or an unusable room end it with an error.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), Error> {
        let Bridge { bus, options } = self;
        let login = || MatrixClient::login(&options.homeserver, options.login.clone());
        let Some(matrix) = retrying(&shutdown, "log in to the homeserver", login, || async {}).await? else {
            return Ok(());
        };
        let user_id = matrix.user_id();
        let join = || matrix.join(&options.room);
        let Some(room_id) = retrying(&shutdown, "join the room", join, || async {}).await? else { return Ok(()) };
        let sender = Sender { component: Component::Bridge, role: None, id: options.id.clone() };
        let shared = Arc::new(Shared {
            state: State::new(bus.clone()),
            bus,
            matrix,
            room_id,
            parser: Parser::new(&user_id, None),
            user_id,
            sender,
            options,
        });
        let Some(stream) = shared.bind_notices(&shutdown).await? else { return Ok(()) };
        let Some(since) = shared.start_position(&shutdown).await? else { return Ok(()) };
        info!(
            user = %shared.user_id,
            room = %shared.room_id,
            principal = shared.options.signer.principal(),
            public_key = shared.options.signer.public_key(),
            "bridge ready"
        );
        // Either loop failing for good stops the other: a bridge that only half works would
        // look alive while prompts go unanswered.
        let tasks = shutdown.child_token();
        let stop_on_error = |tasks: CancellationToken| {
            move |result: Result<(), Error>| {
                if result.is_err() {
                    tasks.cancel();
                }
                result
            }
        };
        let notices = Arc::clone(&shared).notices(stream, tasks.clone());
        let notices = tokio::spawn(notices.map(stop_on_error(tasks.clone())));
        let chat = Arc::clone(&shared).chat(since, tasks.clone());
        let chat = tokio::spawn(chat.map(stop_on_error(tasks.clone())));
        let (notices, chat) = tokio::join!(notices, chat);
        for result in [notices, chat] {
            match result {
                Ok(Ok(())) => {}
                Ok(Err(err)) => return Err(err),
                Err(join) => warn!(error = %join, "a bridge task ended abnormally"),
            }
        }
        info!("bridge stopped");
        Ok(())
    }
}

impl<B: Bus> Shared<B> {
    /// Posts `content` with `txn_id` in the room, retrying transient failures (and logging in
    /// again when the token was revoked) until it is confirmed; `Ok(None)` when `shutdown`
    /// came first. `keepalive` runs before each retry (a notice extends its lease there).
    async fn post<K, KF>(
        &self,
        txn_id: &str,
        content: &Value,
        shutdown: &CancellationToken,
        keepalive: K,
    ) -> Result<Option<String>, Error>
    where
        K: FnMut() -> KF,
        KF: Future<Output = ()>,
    {
        let send = || self.matrix.send(&self.room_id, txn_id, content);
        retrying_matrix(&self.matrix, shutdown, "post to the room", send, keepalive).await
    }
}

/// A transaction id that is the same for the same `key`, so a retried post is not repeated.
fn txn_id(key: &str) -> String {
    format!("muster-{}", hex::encode(&Sha256::digest(key.as_bytes())[..16]))
}

const BACKOFF_START: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// Calls `op` until it succeeds or fails for good; transient failures wait with exponential
/// backoff (or as long as the homeserver asked). `Ok(None)` when `shutdown` came first.
async fn retrying<T, F, Fut, K, KF>(
    shutdown: &CancellationToken,
    what: &str,
    mut op: F,
    mut keepalive: K,
) -> Result<Option<T>, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = matrix::Result<T>>,
    K: FnMut() -> KF,
    KF: Future<Output = ()>,
{
    let mut delay = BACKOFF_START;
    loop {
        let result = tokio::select! {
            () = shutdown.cancelled() => return Ok(None),
            result = op() => result,
        };
        match result {
            Ok(value) => return Ok(Some(value)),
            Err(err) if err.is_transient() => {
                let wait = err.retry_after().unwrap_or(delay);
                warn!(error = %err, retry_in_ms = millis(wait), "cannot {what}; retrying");
                keepalive().await;
                tokio::select! {
                    () = shutdown.cancelled() => return Ok(None),
                    () = tokio::time::sleep(wait) => {}
                }
                delay = (delay * 2).min(BACKOFF_MAX);
            }
            Err(err) => return Err(err.into()),
        }
    }
}

/// [`retrying`] for an authenticated call: a refused token is renewed with the password once
/// per failure, then the call is tried again.
async fn retrying_matrix<T, F, Fut, K, KF>(
    matrix: &MatrixClient,
    shutdown: &CancellationToken,
    what: &str,
    mut op: F,
    mut keepalive: K,
) -> Result<Option<T>, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = matrix::Result<T>>,
    K: FnMut() -> KF,
    KF: Future<Output = ()>,
{
    loop {
        match retrying(shutdown, what, &mut op, &mut keepalive).await {
            Err(Error::Matrix(matrix::Error::Unauthorized { errcode, .. })) => {
                warn!(errcode, "the homeserver refused the access token; logging in again");
                let renewed = retrying(shutdown, "log in again", || matrix.reauthenticate(), || async {}).await?;
                match renewed {
                    None => return Ok(None),
                    Some(true) => {}
                    Some(false) => {
                        return Err(Error::Matrix(matrix::Error::Unauthorized {
                            errcode,
                            message: "the access token was refused; give the bridge a new one".into(),
                        }));
                    }
                }
            }
            other => return other,
        }
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Sleeps `wait` unless `shutdown` comes first (then `false`).
async fn pause(shutdown: &CancellationToken, wait: Duration) -> bool {
    tokio::select! {
        () = shutdown.cancelled() => false,
        () = tokio::time::sleep(wait) => true,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn transaction_ids_are_deterministic() {
        assert_eq!(txn_id("notice/a/ESC-1/raised/x"), txn_id("notice/a/ESC-1/raised/x"));
        assert_ne!(txn_id("notice/a/ESC-1/raised/x"), txn_id("notice/a/ESC-1/raised/y"));
        assert_eq!(txn_id("k").len(), "muster-".len() + 32);
    }

    #[tokio::test(start_paused = true)]
    async fn transient_failures_back_off_until_they_pass() {
        let shutdown = CancellationToken::new();
        let calls = std::sync::atomic::AtomicU32::new(0);
        let started = tokio::time::Instant::now();
        let op = || async {
            let n = calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if n < 3 { Err(matrix::Error::Transport("down".into())) } else { Ok(n) }
        };
        let value = retrying(&shutdown, "test", op, || async {}).await.unwrap();
        assert_eq!(value, Some(3));
        // 0.5 + 1 + 2 seconds of backoff.
        assert_eq!(started.elapsed(), Duration::from_millis(3500));

        let refused =
            retrying(&shutdown, "test", || async { Err::<(), _>(matrix::Error::Protocol("x".into())) }, || async {});
        assert!(refused.await.is_err(), "permanent failures are not retried");

        shutdown.cancel();
        let op = || async { Err::<(), _>(matrix::Error::Transport("down".into())) };
        assert_eq!(retrying(&shutdown, "test", op, || async {}).await.unwrap(), None);
    }
}
