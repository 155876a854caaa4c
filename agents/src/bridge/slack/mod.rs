//! Slack: people see prompts in a channel and answer with a slash command or a button.
//!
//! ```text
//!  PromptNotice ──▶ webhook ── POST incoming-webhook URL ──▶ #channel  [rollback] [continue]
//!                                                                │ click        │ /muster answer ESC-12 rollback
//!                                                                ▼              ▼
//!                       endpoint ◀── POST /slack/actions ── Slack ── POST /slack/commands
//!                          │  signature (v0, 300 s window) on the raw body, then the form
//!                          ▼
//!                       AnswerSink ── signed answer ──▶ orchestrator ──▶ reply ──▶ Slack message
//! ```
//!
//! - [`signature`]: Slack's `v0` request signatures.
//! - [`webhook`]: posting notices to incoming webhooks, with retries; the URL is a secret.
//! - [`message`]: the Slack JSON for notices and replies; everything quoted is escaped data.
//! - [`endpoint`]: the routes Slack calls ([`app`]).
//! - [`sink`]: [`AnswerSink`], the seam to the orchestrator, and [`BusAnswerSink`] over the bus
//!   (the HTTP API uses it too).
//!
//! The Slack identity of an answer is the `user_id` Slack signed; the orchestrator's responder
//! map decides what that person may answer.

mod command;
pub mod endpoint;
pub mod message;
pub mod signature;
pub mod sink;
pub mod webhook;

#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;

pub use endpoint::{SlackOptions, app};
pub use signature::SigningSecret;
pub use sink::{AnswerSink, BusAnswerSink, BusSinkOptions, PromptInfo, Seed, SinkError};
pub use webhook::{WebhookClient, WebhookError, WebhookOptions, WebhookUrl};
