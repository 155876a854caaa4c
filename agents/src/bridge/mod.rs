//! The bridge between people and prompts: notices out to chat, answers back in, signed by the
//! bridge's principal for the person who wrote them.
//!
//! - [`slack`]: Slack request signatures, incoming-webhook posts, slash commands and buttons;
//! - [`http_api`]: `/v1/escalations` with bearer tokens.

pub mod http_api;
pub mod slack;
