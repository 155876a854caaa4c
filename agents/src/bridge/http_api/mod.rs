//! The bridge's HTTP API: list prompts and answer them from scripts, dashboards or a phone,
//! as a person identified by a bearer token.
//!
//! ```text
//!  GET  /v1/escalations               open prompts (their run has not finished)
//!  GET  /v1/escalations/{id}          one prompt, open or not
//!  POST /v1/escalations/{id}/answer   {"option": "rollback", "note": "..."} | {"action": "ack"}
//!       Authorization: Bearer <token>  ──▶ Identity { http, <id> } ──▶ AnswerSink ──▶ orchestrator
//! ```
//!
//! Statuses: 200 taken (`{"accepted": true, "message": ...}`); otherwise `{"error": ...}` with
//! 401 (no or unknown token), 404 (unknown prompt), 400 (bad body, or a refusal whose reason is
//! not one of the following), 403 / 409 / 422 (refused: not allowed / already decided or
//! expired / not a valid option, chosen only when the orchestrator's words clearly say so),
//! 413, 502-504 (the orchestrator could not be asked).
//!
//! - [`auth`]: the token table and `Authorization` parsing.

pub mod auth;
mod routes;

#[cfg(test)]
mod tests;

pub use auth::{TokenError, Tokens};

use crate::bridge::slack::sink::AnswerSink;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use std::sync::Arc;

/// How the HTTP API behaves; [`HttpApiOptions::new`] gives the defaults.
#[derive(Debug, Clone)]
pub struct HttpApiOptions {
    /// Who may call it, and as whom.
    pub tokens: Tokens,
    /// Largest accepted answer body; an answer is a few hundred bytes.
    pub max_body: usize,
}

impl HttpApiOptions {
    /// Defaults: 16 KiB bodies.
    pub fn new(tokens: Tokens) -> Self {
        Self { tokens, max_body: 16 * 1024 }
    }
}

/// The API's routes over `sink`, without a socket (serve it with [`crate::gateway::serve`]).
pub fn app<S: AnswerSink>(sink: S, options: HttpApiOptions) -> Router {
    let shared = Arc::new(routes::Shared { sink, max_body: options.max_body });
    let tokens = Arc::new(options.tokens);
    Router::new()
        .route("/v1/escalations", get(routes::list::<S>))
        .route("/v1/escalations/{id}", get(routes::show::<S>))
        .route("/v1/escalations/{id}/answer", post(routes::answer::<S>))
        .fallback(routes::not_found)
        .layer(axum::middleware::from_fn_with_state(tokens, routes::authenticate))
        .layer(DefaultBodyLimit::max(options.max_body))
        .with_state(shared)
}
