//! The HTTP surface: `POST /v1/protocols/{id}/runs`, `GET /healthz`, JSON for everything else.
//!
//! A trigger request is checked in this order, so an unauthenticated caller learns no more than
//! whether the protocol takes webhooks: protocol and secret (404, 503), body size (413),
//! signature (401), idempotency key (400), replay (401), body (400), then capacity (503) and
//! the orchestrator's answer.

use super::error::ApiError;
use super::forward::{Accepted, forward};
use super::replay::ReplayGuard;
use super::request::{self, IDEMPOTENCY_HEADER};
use super::signature::{self, SIGNATURE_HEADER, Secret, TIMESTAMP_HEADER};
use super::webhooks::{Lookup, Webhooks};
use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::routing::{get, post};
use muster_bus::Messaging;
use muster_bus::subjects::Subjects;
use muster_schemas::Sender;
use muster_schemas::message::RunTriggered;
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tracing::{info, warn};

/// What every request handler shares.
pub(super) struct Shared<M> {
    pub bus: M,
    pub subjects: Subjects,
    pub sender: Sender,
    pub webhooks: Webhooks,
    pub replay: ReplayGuard,
    pub in_flight: Semaphore,
    pub request_timeout: Duration,
    pub max_body: usize,
}

/// The answer to an accepted trigger.
#[derive(Debug, Serialize)]
struct RunCreated {
    run_id: String,
    existing: bool,
}

pub(super) fn router<M: Messaging>(shared: Arc<Shared<M>>) -> Router {
    let max_body = shared.max_body;
    Router::new()
        .route("/v1/protocols/{id}/runs", post(trigger::<M>))
        .route("/healthz", get(healthz))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(shared)
}

async fn trigger<M: Messaging>(
    State(shared): State<Arc<Shared<M>>>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<RunCreated>), ApiError> {
    let Path(protocol) = path.map_err(|rejection| ApiError::new(rejection.status(), rejection.body_text()))?;
    let secrets = secrets_for(&shared.webhooks, &protocol)?;
    let body = body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, format!("body is larger than {} bytes", shared.max_body))
        }
        status => ApiError::new(status, rejection.body_text()),
    })?;
    let now = jiff::Timestamp::now().as_second();
    let verified = signature::verify(
        secrets,
        header_text(&headers, TIMESTAMP_HEADER),
        header_text(&headers, SIGNATURE_HEADER),
        &body,
        now,
    )
    .inspect_err(|err| warn!(protocol = %protocol, reason = %err, "webhook refused: signature"))?;
    let key = request::idempotency_key(headers.get(IDEMPOTENCY_HEADER).map(|value| value.as_bytes()))?;
    shared
        .replay
        .admit(&verified, &key, now)
        .inspect_err(|err| warn!(protocol = %protocol, reason = %err, "webhook refused: replay"))?;
    let inputs = request::inputs(&body)?;

    let Ok(_permit) = shared.in_flight.try_acquire() else {
        return Err(ApiError::unavailable("too many triggers in flight; retry with the same Idempotency-Key", 1));
    };
    let trigger = RunTriggered {
        protocol_id: protocol.clone(),
        inputs,
        protocol: None,
        idempotency_key: Some(key),
        requested_by: None,
    };
    let Accepted { run_id, existing } =
        forward(&shared.bus, &shared.subjects, &shared.sender, trigger, shared.request_timeout)
            .await
            .inspect_err(|err| warn!(protocol = %protocol, reason = %err, "webhook trigger not accepted"))?;
    info!(protocol = %protocol, run_id = %run_id, existing, "webhook trigger accepted");
    let status = if existing { StatusCode::OK } else { StatusCode::CREATED };
    Ok((status, Json(RunCreated { run_id: run_id.to_string(), existing })))
}

/// The secrets a request for `protocol` may be signed with, or why there are none.
fn secrets_for<'a>(webhooks: &'a Webhooks, protocol: &str) -> Result<&'a [Secret], ApiError> {
    match webhooks.lookup(protocol) {
        Lookup::Secrets(secrets) => Ok(secrets),
        Lookup::UnknownProtocol => {
            Err(ApiError::new(StatusCode::NOT_FOUND, format!("no protocol `{protocol}` is loaded")))
        }
        Lookup::NoWebhook => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!(
                "protocol `{protocol}` has no webhook trigger; add `triggers: [{{webhook: {{secret_env: NAME}}}}]`"
            ),
        )),
        Lookup::SecretMissing(names) => {
            warn!(protocol, variables = ?names, "webhook secret missing");
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "the gateway has no webhook secret for `{protocol}`: set the environment variable {} and restart it",
                    names.join(" or ")
                ),
            ))
        }
    }
}

/// A header as text. A value that is not visible ASCII reads as empty, so the signature check
/// reports it as malformed rather than missing.
fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).map(|value| value.to_str().unwrap_or_default())
}

async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no such endpoint {}; runs start with POST /v1/protocols/{{id}}/runs", uri.path()),
    )
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, format!("{method} is not allowed on {}", uri.path()))
}
