//! A Matrix client-server API client: just the endpoints the bridge needs, over reqwest.
//!
//! | what | endpoint |
//! | --- | --- |
//! | log in | `POST /login` (`m.login.password`, fixed device id) or `GET /account/whoami` for a token |
//! | join the room | `POST /join/{roomIdOrAlias}` (answers the room id) |
//! | read messages | `GET /sync?filter=…&since=…&timeout=…`, gaps via `GET /rooms/{id}/messages` |
//! | post | `PUT /rooms/{id}/send/m.room.message/{txnId}` |
//!
//! Posting is idempotent by transaction id: the homeserver answers a repeated `PUT` with the
//! event of the first one instead of posting again. Transaction ids are scoped to the device, so
//! password logins always use the same device id and a restarted bridge keeps that guarantee.
//!
//! The access token travels only in the `Authorization` header (never in a URL, so it cannot
//! appear in a logged error) and [`AccessToken`]'s `Debug` hides it.

use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// What went wrong talking to the homeserver. [`Error::is_transient`] decides retries.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The homeserver URL cannot be used.
    #[error("invalid homeserver URL `{0}`")]
    Url(String),
    /// The connection failed or timed out.
    #[error("cannot reach the homeserver: {0}")]
    Transport(String),
    /// The access token is unknown or was revoked.
    #[error("the homeserver refused the bridge's credentials ({errcode}): {message}")]
    Unauthorized {
        /// Matrix error code (`M_UNKNOWN_TOKEN`, `M_FORBIDDEN`).
        errcode: String,
        /// The homeserver's words.
        message: String,
    },
    /// Too many requests; come back after the delay when the homeserver gave one.
    #[error("rate limited by the homeserver")]
    RateLimited(Option<Duration>),
    /// Any other refusal.
    #[error("the homeserver answered {status} {errcode}: {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// Matrix error code.
        errcode: String,
        /// The homeserver's words.
        message: String,
    },
    /// The answer was not what the specification says.
    #[error("unexpected answer from the homeserver: {0}")]
    Protocol(String),
}

impl Error {
    /// Whether trying again later may work (network, rate limits, server errors).
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Transport(_) | Error::RateLimited(_) => true,
            Error::Refused { status, .. } => *status >= 500,
            Error::Url(_) | Error::Unauthorized { .. } | Error::Protocol(_) => false,
        }
    }

    /// The delay the homeserver asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::RateLimited(delay) => *delay,
            _ => None,
        }
    }
}

/// Results of homeserver calls.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A secret that must never reach a log: its `Debug` prints a placeholder.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken(String);

impl AccessToken {
    /// Wraps a token (or a password: same handling).
    pub fn new(secret: String) -> Self {
        Self(secret)
    }

    fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccessToken(<redacted>)")
    }
}

/// How the bridge proves who it is.
#[derive(Debug, Clone)]
pub enum Login {
    /// `m.login.password` as `user` (a localpart or a full user id). The password is kept so
    /// the bridge can log in again when its token is revoked.
    Password {
        /// The user.
        user: String,
        /// The password.
        password: AccessToken,
        /// The device to log in as; fixed, so transaction ids stay scoped across restarts.
        device_id: String,
    },
    /// An access token issued elsewhere.
    Token(AccessToken),
}

/// One `m.room.message` someone posted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    /// The event id (`$…`).
    pub event_id: String,
    /// Who posted it (`@alice:example.org`).
    pub sender: String,
    /// `m.text`, `m.notice`, ...
    pub msgtype: String,
    /// The plain-text body.
    pub body: String,
    /// The thread it was posted in, if any.
    pub thread_root: Option<String>,
    /// User ids the message mentions explicitly (`m.mentions`).
    pub mentions: Vec<String>,
    /// Whether it edits an earlier message (`m.replace`); edits are not commands.
    pub is_edit: bool,
    /// When the homeserver received it (milliseconds since the epoch).
    pub origin_server_ts: i64,
}

/// One `/sync` answer, reduced to the bridge's room.
#[derive(Debug, Clone, Default)]
pub struct SyncBatch {
    /// The position to sync from next time.
    pub next_batch: String,
    /// The room's new messages, oldest first.
    pub messages: Vec<ChatMessage>,
    /// More messages arrived than the timeline limit: the ones between the previous position
    /// and `messages` must be fetched with [`MatrixClient::messages_between`].
    pub limited: bool,
}

/// An authenticated client; clones share the session.
#[derive(Clone)]
pub struct MatrixClient {
    http: reqwest::Client,
    base: Url,
    login: Login,
    session: Arc<RwLock<Session>>,
}

#[derive(Debug, Clone)]
struct Session {
    token: AccessToken,
    user_id: String,
}

impl std::fmt::Debug for MatrixClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MatrixClient").field("homeserver", &self.base.as_str()).finish_non_exhaustive()
    }
}

/// How long any call but a long-poll may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

impl MatrixClient {
    /// Logs in (or checks the token with `whoami`).
    pub async fn login(homeserver: &str, login: Login) -> Result<Self> {
        let mut base = Url::parse(homeserver).map_err(|_| Error::Url(homeserver.to_owned()))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(Error::Url(homeserver.to_owned()));
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("muster-bridge/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Transport(e.to_string()))?;
        let placeholder = Session { token: AccessToken::new(String::new()), user_id: String::new() };
        let client = Self { http, base, login, session: Arc::new(RwLock::new(placeholder)) };
        client.authenticate().await?;
        Ok(client)
    }

    /// The bridge's own user id; its messages are never read as commands.
    pub fn user_id(&self) -> String {
        self.session.read().map(|s| s.user_id.clone()).unwrap_or_default()
    }

    /// Logs in again with the password after the token was refused; a token login cannot.
    pub async fn reauthenticate(&self) -> Result<bool> {
        if matches!(self.login, Login::Token(_)) {
            return Ok(false);
        }
        self.authenticate().await.map(|()| true)
    }

    async fn authenticate(&self) -> Result<()> {
        let session = match &self.login {
            Login::Password { user, password, device_id } => {
                let body = json!({
                    "type": "m.login.password",
                    "identifier": {"type": "m.id.user", "user": user},
                    "password": password.expose(),
                    "device_id": device_id,
                    "initial_device_display_name": "muster bridge",
                });
                let answer: LoginAnswer = self.call(Method::POST, &["login"], None, Some(&body), None, false).await?;
                Session { token: AccessToken::new(answer.access_token), user_id: answer.user_id }
            }
            Login::Token(token) => {
                self.set_session(Session { token: token.clone(), user_id: String::new() });
                let answer: WhoAmI = self.call(Method::GET, &["account", "whoami"], None, None, None, true).await?;
                Session { token: token.clone(), user_id: answer.user_id }
            }
        };
        self.set_session(session);
        Ok(())
    }

    fn set_session(&self, session: Session) {
        if let Ok(mut guard) = self.session.write() {
            *guard = session;
        }
    }

    /// Joins `room` (an id `!…` or an alias `#…`) and returns its id. Joining a room the bot is
    /// already in is fine.
    pub async fn join(&self, room: &str) -> Result<String> {
        let answer: RoomId = self.call(Method::POST, &["join", room], None, Some(&json!({})), None, true).await?;
        Ok(answer.room_id)
    }

    /// The room's new messages since `since` (all of them are skipped when `None`: that is the
    /// first start), waiting up to `timeout` for one to arrive.
    pub async fn sync(&self, room_id: &str, since: Option<&str>, timeout: Duration, limit: u32) -> Result<SyncBatch> {
        let filter = json!({
            "room": {
                "rooms": [room_id],
                "timeline": {"types": ["m.room.message"], "limit": limit.max(1)},
                "state": {"types": []},
                "ephemeral": {"types": []},
                "account_data": {"types": []},
            },
            "presence": {"types": []},
            "account_data": {"types": []},
        })
        .to_string();
        let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX).to_string();
        let mut query = vec![("filter", filter.as_str()), ("timeout", timeout_ms.as_str())];
        if let Some(since) = since {
            query.push(("since", since));
        }
        let answer: SyncAnswer =
            self.call(Method::GET, &["sync"], Some(&query), None, Some(timeout + REQUEST_TIMEOUT), true).await?;
        if answer.rooms.leave.contains_key(room_id) {
            return Err(Error::Refused {
                status: 403,
                errcode: "M_FORBIDDEN".into(),
                message: format!("the bridge is no longer in {room_id} (left, kicked or banned); invite it again"),
            });
        }
        let timeline = answer.rooms.join.into_iter().find(|(id, _)| id == room_id).map(|(_, room)| room.timeline);
        let (messages, limited) = timeline.map_or((Vec::new(), false), |t| (to_messages(t.events), t.limited));
        Ok(SyncBatch { next_batch: answer.next_batch, messages, limited })
    }

    /// Messages after the sync position `from`, oldest first, up to (not including) the event
    /// `until`, at most `max` of them: what a limited sync left out.
    pub async fn messages_between(
        &self,
        room_id: &str,
        from: &str,
        until: &str,
        max: usize,
    ) -> Result<Vec<ChatMessage>> {
        let filter = json!({"types": ["m.room.message"]}).to_string();
        let mut out = Vec::new();
        let mut from = from.to_owned();
        while out.len() < max {
            let query = [("from", from.as_str()), ("dir", "f"), ("limit", "100"), ("filter", filter.as_str())];
            let page: MessagesAnswer =
                self.call(Method::GET, &["rooms", room_id, "messages"], Some(&query), None, None, true).await?;
            if page.chunk.is_empty() {
                break;
            }
            for message in to_messages(page.chunk) {
                if message.event_id == until || out.len() >= max {
                    return Ok(out);
                }
                out.push(message);
            }
            match page.end {
                Some(end) if end != from => from = end,
                _ => break,
            }
        }
        Ok(out)
    }

    /// Posts an `m.room.message` with transaction id `txn_id` and returns its event id. A
    /// repeated call with the same `txn_id` returns the first event and posts nothing.
    pub async fn send(&self, room_id: &str, txn_id: &str, content: &Value) -> Result<String> {
        let path = ["rooms", room_id, "send", "m.room.message", txn_id];
        let answer: EventId = self.call(Method::PUT, &path, None, Some(content), None, true).await?;
        Ok(answer.event_id)
    }

    /// One call under `/_matrix/client/v3/`; path segments are percent-encoded here.
    async fn call<T: for<'de> Deserialize<'de>>(
        &self,
        method: Method,
        segments: &[&str],
        query: Option<&[(&str, &str)]>,
        body: Option<&Value>,
        timeout: Option<Duration>,
        authenticated: bool,
    ) -> Result<T> {
        let mut url = self.base.clone();
        {
            let mut path = url.path_segments_mut().map_err(|()| Error::Url(self.base.to_string()))?;
            path.pop_if_empty().extend(["_matrix", "client", "v3"]).extend(segments);
        }
        if let Some(query) = query {
            url.query_pairs_mut().extend_pairs(query);
        }
        let mut request = self.http.request(method, url).timeout(timeout.unwrap_or(REQUEST_TIMEOUT));
        if authenticated {
            let token = self.session.read().map(|s| s.token.clone()).map_err(|_| Error::Protocol("poisoned".into()))?;
            request = request.bearer_auth(token.expose());
        }
        if let Some(body) = body {
            request = request.header(reqwest::header::CONTENT_TYPE, "application/json").body(body.to_string());
        }
        // The error's text names the URL: paths and queries hold no secrets (the filter, the
        // room, sync positions), the token is in a header.
        let response = request.send().await.map_err(|e| Error::Transport(e.without_url().to_string()))?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| Error::Transport(e.without_url().to_string()))?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|e| Error::Protocol(e.to_string()));
        }
        Err(refusal(status, &bytes))
    }
}

fn refusal(status: StatusCode, bytes: &[u8]) -> Error {
    let body: ErrorAnswer = serde_json::from_slice(bytes).unwrap_or_default();
    let message = body.error.unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned());
    let errcode = body.errcode.unwrap_or_default();
    if status == StatusCode::TOO_MANY_REQUESTS || errcode == "M_LIMIT_EXCEEDED" {
        return Error::RateLimited(body.retry_after_ms.map(Duration::from_millis));
    }
    if status == StatusCode::UNAUTHORIZED || errcode == "M_UNKNOWN_TOKEN" || errcode == "M_MISSING_TOKEN" {
        return Error::Unauthorized { errcode, message };
    }
    Error::Refused { status: status.as_u16(), errcode, message }
}

fn to_messages(events: Vec<RawEvent>) -> Vec<ChatMessage> {
    events.into_iter().filter(|e| e.kind == "m.room.message").filter_map(RawEvent::into_message).collect()
}

#[derive(Debug, Deserialize, Default)]
struct ErrorAnswer {
    errcode: Option<String>,
    error: Option<String>,
    retry_after_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct LoginAnswer {
    user_id: String,
    access_token: String,
}

#[derive(Debug, Deserialize)]
struct WhoAmI {
    user_id: String,
}

#[derive(Debug, Deserialize)]
struct RoomId {
    room_id: String,
}

#[derive(Debug, Deserialize)]
struct EventId {
    event_id: String,
}

#[derive(Debug, Deserialize)]
struct SyncAnswer {
    next_batch: String,
    #[serde(default)]
    rooms: SyncRooms,
}

#[derive(Debug, Deserialize, Default)]
struct SyncRooms {
    #[serde(default)]
    join: std::collections::HashMap<String, JoinedRoom>,
    #[serde(default)]
    leave: std::collections::HashMap<String, Value>,
}

#[derive(Debug, Deserialize, Default)]
struct JoinedRoom {
    #[serde(default)]
    timeline: Timeline,
}

#[derive(Debug, Deserialize, Default)]
struct Timeline {
    #[serde(default)]
    events: Vec<RawEvent>,
    #[serde(default)]
    limited: bool,
}

#[derive(Debug, Deserialize)]
struct MessagesAnswer {
    #[serde(default)]
    chunk: Vec<RawEvent>,
    end: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawEvent {
    #[serde(rename = "type")]
    kind: String,
    event_id: String,
    sender: String,
    #[serde(default)]
    origin_server_ts: i64,
    #[serde(default)]
    content: Value,
}

impl RawEvent {
    /// `None` for messages without a text body (redacted, images, ...).
    fn into_message(self) -> Option<ChatMessage> {
        let content = &self.content;
        let body = content.get("body")?.as_str()?.to_owned();
        let msgtype = content.get("msgtype").and_then(Value::as_str).unwrap_or_default().to_owned();
        let relation = content.get("m.relates_to");
        let rel_type = relation.and_then(|r| r.get("rel_type")).and_then(Value::as_str);
        let thread_root = (rel_type == Some("m.thread"))
            .then(|| relation.and_then(|r| r.get("event_id")).and_then(Value::as_str).map(str::to_owned))
            .flatten();
        let mentions = content
            .get("m.mentions")
            .and_then(|m| m.get("user_ids"))
            .and_then(Value::as_array)
            .map(|ids| ids.iter().filter_map(Value::as_str).map(str::to_owned).collect())
            .unwrap_or_default();
        Some(ChatMessage {
            event_id: self.event_id,
            sender: self.sender,
            msgtype,
            body,
            thread_root,
            mentions,
            is_edit: rel_type == Some("m.replace"),
            origin_server_ts: self.origin_server_ts,
        })
    }
}

/// The content of a plain-text notice (`m.notice`: bots post notices, and other bots do not
/// answer them), in the thread of `root` when given, as a reply to `in_reply_to` when given, and
/// mentioning `mentions` (Matrix user ids) so they are notified.
/// Bodies longer than [`MAX_BODY_BYTES`] are cut there, with a note.
pub fn notice_content(body: &str, root: Option<&str>, in_reply_to: Option<&str>, mentions: &[String]) -> Value {
    let body = clip_body(body);
    let mut content = json!({"msgtype": "m.notice", "body": body, "m.mentions": {"user_ids": mentions}});
    let relation = match (root, in_reply_to) {
        (Some(root), reply) => Some(json!({
            "rel_type": "m.thread",
            "event_id": root,
            // Clients without threads show it as a reply to this event.
            "is_falling_back": reply.is_none(),
            "m.in_reply_to": {"event_id": reply.unwrap_or(root)},
        })),
        (None, Some(reply)) => Some(json!({"m.in_reply_to": {"event_id": reply}})),
        (None, None) => None,
    };
    if let (Some(relation), Some(object)) = (relation, content.as_object_mut()) {
        object.insert("m.relates_to".into(), relation);
    }
    content
}

/// Longest body posted: a Matrix event may be at most 64 KiB of JSON, escapes included.
pub const MAX_BODY_BYTES: usize = 24 * 1024;

fn clip_body(body: &str) -> std::borrow::Cow<'_, str> {
    if body.len() <= MAX_BODY_BYTES {
        return body.into();
    }
    let mut end = MAX_BODY_BYTES;
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}\n… (cut: too long for one chat message)", &body[..end]).into()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn tokens_never_print() {
        let login = Login::Token(AccessToken::new("syt_secret".into()));
        assert!(!format!("{login:?}").contains("syt_secret"));
        let login = Login::Password {
            user: "muster".into(),
            password: AccessToken::new("hunter2".into()),
            device_id: "MUSTER".into(),
        };
        assert!(!format!("{login:?}").contains("hunter2"));
    }

    #[test]
    fn refusals_become_kinds() {
        let limited =
            refusal(StatusCode::TOO_MANY_REQUESTS, br#"{"errcode":"M_LIMIT_EXCEEDED","retry_after_ms":1500}"#);
        assert_eq!(limited.retry_after(), Some(Duration::from_millis(1500)));
        assert!(limited.is_transient());
        let token = refusal(StatusCode::UNAUTHORIZED, br#"{"errcode":"M_UNKNOWN_TOKEN","error":"gone"}"#);
        assert!(matches!(token, Error::Unauthorized { .. }));
        assert!(!token.is_transient());
        assert!(refusal(StatusCode::BAD_GATEWAY, b"<html>").is_transient());
        let forbidden = refusal(StatusCode::FORBIDDEN, br#"{"errcode":"M_FORBIDDEN","error":"not in room"}"#);
        assert!(!forbidden.is_transient());
        assert!(forbidden.to_string().contains("not in room"));
    }

    #[test]
    fn events_become_messages() {
        let event: RawEvent = serde_json::from_value(json!({
            "type": "m.room.message", "event_id": "$e", "sender": "@alice:localhost", "origin_server_ts": 5,
            "content": {"msgtype": "m.text", "body": "ack ESC-1",
                        "m.relates_to": {"rel_type": "m.thread", "event_id": "$root"},
                        "m.mentions": {"user_ids": ["@muster:localhost"]}}
        }))
        .unwrap();
        let message = event.into_message().unwrap();
        assert_eq!(message.thread_root.as_deref(), Some("$root"));
        assert_eq!(message.mentions, vec!["@muster:localhost".to_owned()]);
        assert!(!message.is_edit);
        let redacted: RawEvent = serde_json::from_value(
            json!({"type": "m.room.message", "event_id": "$r", "sender": "@a:b", "content": {}}),
        )
        .unwrap();
        assert!(redacted.into_message().is_none());
    }

    #[test]
    fn thread_replies_relate_to_the_root() {
        let content = notice_content("hi", Some("$root"), Some("$cmd"), &[]);
        assert_eq!(content["m.relates_to"]["rel_type"], "m.thread");
        assert_eq!(content["m.relates_to"]["event_id"], "$root");
        assert_eq!(content["m.relates_to"]["m.in_reply_to"]["event_id"], "$cmd");
        assert_eq!(content["m.relates_to"]["is_falling_back"], false);
        let long = notice_content(&"é".repeat(MAX_BODY_BYTES), None, None, &[]);
        let long = long["body"].as_str().unwrap();
        assert!(long.len() < MAX_BODY_BYTES + 100 && long.ends_with("too long for one chat message)"));
        let root = notice_content("hi", None, None, &["@alice:localhost".into()]);
        assert!(root.get("m.relates_to").is_none());
        assert_eq!(root["m.mentions"]["user_ids"][0], "@alice:localhost");
    }
}
