//! Every refusal as an HTTP status and a JSON body `{"error": "..."}`.

use super::forward::ForwardError;
use super::replay::ReplayError;
use super::request::RequestError;
use super::signature::SignatureError;
use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use muster_schemas::message::RefusalCode;
use serde::Serialize;

/// A refused request: the status says what kind, the message says what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// Words for the caller.
    pub message: String,
    /// Seconds after which a retry may succeed (`Retry-After`), for the transient refusals.
    pub retry_after: Option<u32>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
}

impl ApiError {
    /// A refusal with no retry advice.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into(), retry_after: None }
    }

    /// A 503 that tells the caller to come back in `seconds`.
    pub fn unavailable(message: impl Into<String>, seconds: u32) -> Self {
        Self { retry_after: Some(seconds), ..Self::new(StatusCode::SERVICE_UNAVAILABLE, message) }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(Body { error: &self.message })).into_response();
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

impl From<SignatureError> for ApiError {
    fn from(err: SignatureError) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, err.to_string())
    }
}

impl From<RequestError> for ApiError {
    fn from(err: RequestError) -> Self {
        Self::new(StatusCode::BAD_REQUEST, err.to_string())
    }
}

impl From<ReplayError> for ApiError {
    fn from(err: ReplayError) -> Self {
        match err {
            ReplayError::Reused => Self::new(StatusCode::UNAUTHORIZED, err.to_string()),
            ReplayError::Full => Self::unavailable(err.to_string(), 5),
        }
    }
}

impl From<ForwardError> for ApiError {
    fn from(err: ForwardError) -> Self {
        let message = err.to_string();
        match err {
            ForwardError::Refused { code: RefusalCode::UnknownProtocol, .. } => {
                Self::new(StatusCode::NOT_FOUND, message)
            }
            ForwardError::Refused { code: RefusalCode::InvalidInput, .. } => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, message)
            }
            ForwardError::Refused { code: RefusalCode::Unavailable, .. } => Self::unavailable(message, 1),
            ForwardError::NoOrchestrator => Self::unavailable(message, 1),
            ForwardError::Timeout(_) => Self::new(StatusCode::GATEWAY_TIMEOUT, message),
            ForwardError::Failed(_) => Self::new(StatusCode::BAD_GATEWAY, message),
        }
    }
}
