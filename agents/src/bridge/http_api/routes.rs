//! The HTTP API's handlers and how an outcome becomes a status.

use super::auth::{Tokens, bearer};
use crate::bridge::slack::sink::{AnswerSink, PromptInfo, SinkError, clip};
use crate::gateway::ApiError;
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Extension, Path, Request, State};
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use muster_schemas::answer::{AnswerAction, Identity};
use muster_schemas::message::{AnswerReply, PromptKind};
use muster_schemas::run::{PromptState, RunState};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tracing::{info, warn};
use uuid::Uuid;

/// What every handler shares.
pub(super) struct Shared<S> {
    pub sink: S,
    pub max_body: usize,
}

/// A prompt as the API shows it.
#[derive(Debug, Serialize)]
pub(super) struct PromptView {
    id: String,
    run_id: Uuid,
    kind: PromptKind,
    title: String,
    run_state: Option<RunState>,
    state: Option<PromptState>,
    due: Option<Timestamp>,
    open: bool,
}

impl From<PromptInfo> for PromptView {
    fn from(info: PromptInfo) -> Self {
        let open = info.is_open();
        Self {
            id: info.prompt,
            run_id: info.run_id,
            kind: info.kind,
            title: info.title,
            run_state: info.run_state,
            state: info.state,
            due: info.due,
            open,
        }
    }
}

#[derive(Debug, Serialize)]
pub(super) struct PromptList {
    escalations: Vec<PromptView>,
}

/// `{"option": "rollback", "note": "..."}` or `{"action": "ack"}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AnswerRequest {
    #[serde(default)]
    option: Option<String>,
    #[serde(default)]
    action: Option<String>,
    #[serde(default)]
    note: Option<String>,
}

/// Lets a request through only with a known bearer token, and hands the handlers its holder.
/// It runs before the body is read, so an unauthenticated caller cannot make the API buffer a
/// body.
pub(super) async fn authenticate(State(tokens): State<Arc<Tokens>>, mut request: Request, next: Next) -> Response {
    let presented = request.headers().get(header::AUTHORIZATION).and_then(|value| value.to_str().ok()).and_then(bearer);
    let Some(identity) = presented.and_then(|token| tokens.identify(token)) else {
        let message = if presented.is_some() {
            "the bearer token is not one the bridge knows"
        } else {
            "missing `Authorization: Bearer <token>` header"
        };
        warn!(path = %clip(request.uri().path(), 100), reason = message, "http api request refused");
        let mut response = ApiError::new(StatusCode::UNAUTHORIZED, message).into_response();
        response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return response;
    };
    request.extensions_mut().insert(identity);
    next.run(request).await
}

pub(super) async fn list<S: AnswerSink>(State(shared): State<Arc<Shared<S>>>) -> Result<Json<PromptList>, ApiError> {
    let prompts = shared.sink.open_prompts().await.map_err(sink_error)?;
    Ok(Json(PromptList { escalations: prompts.into_iter().map(PromptView::from).collect() }))
}

pub(super) async fn show<S: AnswerSink>(
    State(shared): State<Arc<Shared<S>>>,
    Path(id): Path<String>,
) -> Result<Json<PromptView>, ApiError> {
    let info = shared.sink.lookup(&id).await.map_err(sink_error)?;
    Ok(Json(info.into()))
}

pub(super) async fn answer<S: AnswerSink>(
    State(shared): State<Arc<Shared<S>>>,
    Extension(identity): Extension<Identity>,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<AnswerReply>, ApiError> {
    let body = body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, format!("body is larger than {} bytes", shared.max_body))
        }
        status => ApiError::new(status, rejection.body_text()),
    })?;
    let (action, note) = action_of(&body)?;
    let reply = shared.sink.answer(&id, action, note, identity.clone()).await.map_err(sink_error)?;
    info!(prompt = %clip(&id, 40), person = %identity.id, accepted = reply.accepted, "http answer");
    if reply.accepted { Ok(Json(reply)) } else { Err(ApiError::new(refusal_status(&reply.message), reply.message)) }
}

/// The action and note of an answer body.
fn action_of(body: &[u8]) -> Result<(AnswerAction, Option<String>), ApiError> {
    let bad = |message: String| ApiError::new(StatusCode::BAD_REQUEST, message);
    let request: AnswerRequest = serde_json::from_slice(body).map_err(|err| {
        bad(format!(
            r#"the body must be JSON like {{"option": "rollback", "note": "why"}} or {{"action": "ack"}}: {err}"#
        ))
    })?;
    let note = request.note.map(|note| note.trim().to_owned()).filter(|note| !note.is_empty());
    let action = match (request.action.as_deref(), request.option) {
        (None | Some("choose"), Some(option)) if !option.trim().is_empty() => {
            AnswerAction::Choose { option: option.trim().to_owned() }
        }
        (Some("ack" | "acknowledge"), None) => AnswerAction::Acknowledge,
        (Some("ack" | "acknowledge"), Some(_)) => return Err(bad("`ack` takes no option".to_owned())),
        (None | Some("choose"), _) => {
            return Err(bad(r#"say which option: {"option": "rollback"}, or {"action": "ack"}"#.to_owned()));
        }
        (Some(other), _) => {
            return Err(bad(format!("unknown action `{}`; use `ack`, or give an `option`", clip(other, 40))));
        }
    };
    Ok((action, note))
}

/// The status for an answer the orchestrator refused. Its message is the only thing to go by,
/// so a status other than 400 is chosen only when the words are unmistakable.
pub(super) fn refusal_status(message: &str) -> StatusCode {
    let text = message.to_lowercase();
    let says = |words: &[&str]| words.iter().any(|word| text.contains(word));
    if says(&["already decided", "already answered", "already closed", "already received", "expired", "no longer open"])
    {
        StatusCode::CONFLICT
    } else if says(&["may not", "not allowed", "not permitted", "is nobody in the responder map"]) {
        StatusCode::FORBIDDEN
    } else if says(&["not an option", "unknown option", "invalid option", "valid options"]) {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::BAD_REQUEST
    }
}

fn sink_error(err: SinkError) -> ApiError {
    let message = err.to_string();
    match err {
        SinkError::UnknownPrompt(_) => ApiError::new(StatusCode::NOT_FOUND, message),
        SinkError::NoOrchestrator => ApiError::unavailable(message, 5),
        SinkError::Timeout(_) => ApiError::new(StatusCode::GATEWAY_TIMEOUT, message),
        SinkError::Failed(_) => ApiError::new(StatusCode::BAD_GATEWAY, message),
    }
}

pub(super) async fn not_found(uri: Uri) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, format!("no such endpoint {}; see GET /v1/escalations", clip(uri.path(), 100)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_map_to_a_status_only_when_the_words_are_clear() {
        for (message, status) in [
            ("ESC-12 was already decided: rollback by alice", 409),
            ("the answer expired at 2026-01-01T00:00:00Z (orchestrator time ...); answer again", 409),
            ("this answer was already received (its nonce ...)", 409),
            ("alice may not answer ESC-12: they are neither listed nor in a listed group", 403),
            ("http identity `x` is nobody in the responder map; add it", 403),
            ("`bogus` is not an option of ESC-12; valid options: rollback, continue", 422),
            ("the signed answer is malformed: bad nonce", 400),
            ("something else entirely", 400),
        ] {
            assert_eq!(refusal_status(message).as_u16(), status, "{message}");
        }
    }

    #[test]
    fn answer_bodies() {
        let ok = |json: &str| action_of(json.as_bytes()).unwrap();
        assert_eq!(
            ok(r#"{"option": " rollback ", "note": "plan drifted"}"#),
            (AnswerAction::Choose { option: "rollback".into() }, Some("plan drifted".into()))
        );
        assert_eq!(ok(r#"{"action": "ack"}"#), (AnswerAction::Acknowledge, None));
        assert_eq!(ok(r#"{"action": "choose", "option": "x", "note": "  "}"#).1, None);
        for bad in [
            "",
            "{",
            "{}",
            r#"{"option": ""}"#,
            r#"{"action": "ack", "option": "x"}"#,
            r#"{"action": "approve"}"#,
            r#"{"option": "x", "extra": 1}"#,
            r#"{"option": 5}"#,
        ] {
            assert_eq!(action_of(bad.as_bytes()).unwrap_err().status, StatusCode::BAD_REQUEST, "{bad}");
        }
    }
}
