//! The muster services and the `muster` command.
//!
//! - [`orchestrator`]: triggers → runs, results → next dispatch; [`orchestrator::engine`] is the
//!   pure state machine behind it.
//! - [`authority`]: whether a signed answer from a person may be acted on (signature, expiry,
//!   replay, responder map).
//! - [`agent`]: the role-agent runtime (claim, execute, keep the lease, report, ack).
//! - [`exec`]: running a program without a shell in its own process group.
//! - [`judge`]: evaluating a quality gate's criteria into a verdict with evidence.
//! - [`probe`]: native `http`, `tcp`, `tls` checks and waits.
//! - [`outputs`]: reading a step's declared outputs from its standard output or outputs file.
//! - [`request_signature`]: HMAC-signed webhook requests (gateway triggers, Slack).
//! - [`store`]: run snapshots in KV with compare-and-set.
//! - [`wire`]: envelopes on the bus and deterministic message ids.
//! - [`gateway`]: the HTTP gateway that starts runs from signed webhook requests.
//! - [`bridge`]: where people answer prompts outside the CLI: a Matrix room (`muster bridge`),
//!   [`bridge::slack`] (slash commands, buttons, incoming webhooks) and [`bridge::http_api`].
//! - [`embedded`]: the whole system in one process over the memory bus (`muster run`).
//! - [`clock`]: the orchestrator's time, from tokio's clock so tests can pause it.
//! - [`cli`]: the `muster` command line.

pub mod agent;
pub mod authority;
pub mod bridge;
pub mod cli;
pub mod clock;
pub mod embedded;
pub mod error;
pub mod exec;
pub mod gateway;
pub mod graph;
pub mod import;
pub mod judge;
pub mod orchestrator;
pub mod outputs;
pub mod probe;
pub mod request_signature;
pub mod store;
pub mod wire;

pub use error::{Error, Result};
