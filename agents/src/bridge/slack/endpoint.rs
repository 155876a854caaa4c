//! The routes Slack calls: `POST /slack/commands` (the slash command) and `POST /slack/actions`
//! (button clicks).
//!
//! Each request is checked in this order: body size (413), signature over the raw body (401),
//! then the form. Whatever happens after that is a 200 with a Slack message, because Slack
//! shows a person only the messages of 200 replies: a refusal says why in words, only to the
//! person (`ephemeral`); a decision is announced to the channel (`in_channel`).
//!
//! For a button click Slack ignores the reply's body, so the same message is also posted to
//! the payload's `response_url` — only when that URL starts with
//! [`SlackOptions::response_url_prefix`], so a payload cannot make the bridge post elsewhere.

use super::command::{self, Command, USAGE};
use super::message::{SlackReply, escape, mention, parse_button_value};
use super::signature::{self, SIGNATURE_HEADER, SigningSecret, TIMESTAMP_HEADER};
use super::sink::{AnswerSink, PromptInfo, SinkError, clip};
use super::webhook::{WebhookClient, WebhookOptions, WebhookUrl};
use crate::gateway::ApiError;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use muster_schemas::answer::{AnswerAction, Channel, Identity};
use muster_schemas::message::AnswerReply;
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;
use tracing::{debug, info, warn};

/// How the Slack endpoint behaves; [`SlackOptions::new`] gives the defaults.
#[derive(Debug, Clone)]
pub struct SlackOptions {
    /// The app's signing secret: every request must be signed with it.
    pub signing_secret: SigningSecret,
    /// Largest accepted body; larger gets 413 before the signature is checked. A click's
    /// payload carries the whole message it was on, so this is larger than a command needs.
    pub max_body: usize,
    /// Replies to clicks are posted to `response_url`s that start with this, and to no others.
    pub response_url_prefix: String,
    /// Unix seconds now; a parameter so tests can replay Slack's 2018 example.
    pub now: fn() -> i64,
}

impl SlackOptions {
    /// Defaults: 128 KiB bodies, response URLs only on `https://hooks.slack.com/`, the system
    /// clock.
    pub fn new(signing_secret: SigningSecret) -> Self {
        Self {
            signing_secret,
            max_body: 128 * 1024,
            response_url_prefix: "https://hooks.slack.com/".to_owned(),
            now: || jiff::Timestamp::now().as_second(),
        }
    }
}

struct Shared<S> {
    sink: S,
    options: SlackOptions,
    /// `None` if no HTTP client could be built: clicks are then answered in the reply only.
    responses: Option<WebhookClient>,
}

/// The Slack routes over `sink`, without a socket (serve it with [`crate::gateway::serve`]).
pub fn app<S: AnswerSink>(sink: S, options: SlackOptions) -> Router {
    routes(sink, options).fallback(not_found)
}

/// [`app`] without a fallback, to merge into a router that has its own (axum refuses to merge
/// two routers that both have one).
pub fn routes<S: AnswerSink>(sink: S, options: SlackOptions) -> Router {
    // One retry: a reply that arrives much later than the click only confuses.
    let response_options = WebhookOptions { max_attempts: 2, timeout: Duration::from_secs(5), ..Default::default() };
    let responses = WebhookClient::new(response_options)
        .inspect_err(|err| warn!(error = %err, "cannot post replies to response URLs"))
        .ok();
    let max_body = options.max_body;
    let shared = Arc::new(Shared { sink, options, responses });
    Router::new()
        .route("/slack/commands", post(commands::<S>))
        .route("/slack/actions", post(actions::<S>))
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(shared)
}

/// The body, once it is within the limit and signed by Slack.
fn verified<S>(
    shared: &Shared<S>,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Bytes, ApiError> {
    let body = body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("body is larger than {} bytes", shared.options.max_body),
        ),
        status => ApiError::new(status, rejection.body_text()),
    })?;
    let header = |name: &str| headers.get(name).map(|value| value.to_str().unwrap_or_default());
    signature::verify(
        &shared.options.signing_secret,
        header(TIMESTAMP_HEADER),
        header(SIGNATURE_HEADER),
        &body,
        (shared.options.now)(),
    )
    .map_err(|err| {
        warn!(reason = %err, "slack request refused: signature");
        ApiError::new(StatusCode::UNAUTHORIZED, err.to_string())
    })?;
    Ok(body)
}

/// The first value of `name` in a form body.
fn form_field(body: &[u8], name: &str) -> Option<String> {
    form_urlencoded::parse(body).find(|(key, _)| key == name).map(|(_, value)| value.into_owned())
}

async fn commands<S: AnswerSink>(
    State(shared): State<Arc<Shared<S>>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = verified(&shared, &headers, body)?;
    if form_field(&body, "ssl_check").as_deref() == Some("1") {
        // Slack checking the certificate of the command URL: nothing to answer.
        return Ok(StatusCode::OK.into_response());
    }
    let user = form_field(&body, "user_id")
        .filter(|user| !user.is_empty())
        .ok_or_else(|| ApiError::new(StatusCode::BAD_REQUEST, "the slash command has no user_id"))?;
    let text = form_field(&body, "text").unwrap_or_default();
    let reply = match command::parse(&text) {
        Err(err) => SlackReply::ephemeral(err.0),
        Ok(Command::Help) => SlackReply::ephemeral(USAGE),
        Ok(Command::Show { prompt }) => show(shared.sink.lookup(&prompt).await),
        Ok(Command::Answer { prompt, option, note }) => {
            answer(&shared.sink, &user, &prompt, AnswerAction::Choose { option }, note).await
        }
        Ok(Command::Ack { prompt, note }) => {
            answer(&shared.sink, &user, &prompt, AnswerAction::Acknowledge, note).await
        }
    };
    Ok(Json(reply).into_response())
}

/// The parts of an interaction payload the bridge reads.
#[derive(Debug, Deserialize)]
struct Interaction {
    #[serde(rename = "type")]
    kind: String,
    user: Option<User>,
    #[serde(default)]
    actions: Vec<Action>,
    response_url: Option<String>,
}

#[derive(Debug, Deserialize)]
struct User {
    id: String,
}

#[derive(Debug, Deserialize)]
struct Action {
    value: Option<String>,
}

async fn actions<S: AnswerSink>(
    State(shared): State<Arc<Shared<S>>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = verified(&shared, &headers, body)?;
    let payload = form_field(&body, "payload")
        .ok_or_else(|| ApiError::new(StatusCode::BAD_REQUEST, "the interaction has no `payload` field"))?;
    let interaction: Interaction = serde_json::from_str(&payload).map_err(|err| {
        ApiError::new(StatusCode::BAD_REQUEST, format!("the interaction payload is not valid: {err}"))
    })?;
    if interaction.kind != "block_actions" {
        // Shortcuts, modals and the like are not muster's; an empty 200 tells Slack it arrived.
        debug!(kind = %clip(&interaction.kind, 40), "ignoring slack interaction");
        return Ok(StatusCode::OK.into_response());
    }
    let user = interaction
        .user
        .map(|user| user.id)
        .filter(|id| !id.is_empty())
        .ok_or_else(|| ApiError::new(StatusCode::BAD_REQUEST, "the interaction has no user.id"))?;
    let value = interaction.actions.first().and_then(|action| action.value.as_deref()).unwrap_or_default();
    let reply = match parse_button_value(value) {
        Some((prompt, option)) => {
            let action = AnswerAction::Choose { option: option.to_owned() };
            answer(&shared.sink, &user, prompt, action, None).await
        }
        None => SlackReply::ephemeral("That button is not one of muster's: its value is not `<prompt>:<option>`."),
    };
    let reply = SlackReply { replace_original: Some(false), ..reply };
    if let Some(url) = interaction.response_url {
        respond_later(&shared, &url, &reply);
    }
    Ok(Json(reply).into_response())
}

/// Posts the reply to the click's `response_url` in the background, if it is Slack's.
fn respond_later<S>(shared: &Shared<S>, url: &str, reply: &SlackReply) {
    let Some(client) = shared.responses.clone() else { return };
    let url = match WebhookUrl::parse(url) {
        Ok(url) if url.starts_with(&shared.options.response_url_prefix) => url,
        _ => {
            warn!("slack interaction names a response_url outside the allowed prefix; not posting to it");
            return;
        }
    };
    let Ok(message) = serde_json::to_value(reply) else { return };
    tokio::spawn(async move {
        if let Err(err) = client.post(&url, &message).await {
            warn!(error = %err, "could not post the reply to the click's response_url");
        }
    });
}

/// `show <prompt>`: what the bridge knows about it.
fn show(found: Result<PromptInfo, SinkError>) -> SlackReply {
    match found {
        Ok(info) => {
            let state = match info.run_state {
                Some(state) if info.is_open() => format!("open (run {})", state.as_str()),
                Some(state) => format!("closed (run {})", state.as_str()),
                None => "unknown (no snapshot of its run)".to_owned(),
            };
            SlackReply::ephemeral(format!(
                "*{}* ({}) {}\nrun `{}` · {state}",
                escape(&info.prompt),
                info.kind.prefix(),
                escape(&info.title),
                info.run_id,
            ))
        }
        Err(err) => SlackReply::ephemeral(escape(&err.to_string())),
    }
}

/// Sends the answer and words the outcome: announced to the channel when taken, told to the
/// person alone (with the orchestrator's reason, verbatim) when not.
async fn answer<S: AnswerSink>(
    sink: &S,
    user: &str,
    prompt: &str,
    action: AnswerAction,
    note: Option<String>,
) -> SlackReply {
    let what = match &action {
        AnswerAction::Choose { option } => format!("chose `{}` for", escape(option)),
        AnswerAction::Acknowledge => "acknowledged".to_owned(),
        _ => "answered".to_owned(),
    };
    let quoted = note.as_deref().map(|note| format!("\n> {}", escape(&clip(note, 500)))).unwrap_or_default();
    let responder = Identity { channel: Channel::Slack, id: user.to_owned() };
    let shown = escape(&prompt.trim().to_ascii_uppercase());
    match sink.answer(prompt, action, note, responder).await {
        Ok(AnswerReply { accepted: true, message }) => {
            info!(prompt = %clip(prompt, 40), user = %clip(user, 40), "slack answer accepted");
            SlackReply::in_channel(format!("{} {what} {shown}: {}{quoted}", mention(user), escape(&message)))
        }
        Ok(AnswerReply { accepted: false, message }) => {
            info!(prompt = %clip(prompt, 40), user = %clip(user, 40), reason = %clip(&message, 200), "slack answer refused");
            SlackReply::ephemeral(format!("Not taken: {}", escape(&message)))
        }
        Err(err) => {
            warn!(prompt = %clip(prompt, 40), error = %err, "slack answer not delivered");
            SlackReply::ephemeral(format!("Not taken: {}", escape(&err.to_string())))
        }
    }
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no such endpoint {}; Slack posts to /slack/commands and /slack/actions", clip(uri.path(), 100)),
    )
}
