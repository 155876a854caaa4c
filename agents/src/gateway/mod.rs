//! The HTTP gateway: starts runs from signed webhook requests (`muster gateway`).
//!
//! ```text
//!  caller ── POST /v1/protocols/{id}/runs ──▶ gateway ── request muster.trigger.<id> ──▶ orchestrator
//!            X-Muster-Timestamp                 │          RunTriggered { idempotency_key }
//!            X-Muster-Signature                 ◀───────── TriggerReply::Accepted { run_id, existing }
//!            Idempotency-Key              201 / 200 {"run_id", "existing"}
//! ```
//!
//! The gateway keeps no run state: it authenticates, validates and forwards. Deduplication by
//! idempotency key is the orchestrator's (it sees every trigger, whichever gateway sent it).
//!
//! - [`signature`]: the HMAC-SHA256 scheme and its replay window.
//! - [`webhooks`]: which protocols take webhooks, with which secrets.
//! - [`request`]: the idempotency key and the JSON body's inputs.
//! - [`replay`]: refusing a signature replayed under another idempotency key.
//! - [`forward`]: the request/reply with the orchestrator.
//! - [`ApiError`]: every refusal as a status and `{"error": "..."}`.

mod error;
pub mod forward;
pub mod replay;
pub mod request;
mod routes;
pub mod signature;
pub mod webhooks;

pub use error::ApiError;
pub use webhooks::Webhooks;

use axum::Router;
use muster_bus::Messaging;
use muster_bus::subjects::Subjects;
use muster_schemas::{Component, Sender};
use std::future::IntoFuture;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::warn;

/// How the gateway behaves; [`GatewayOptions::new`] gives the defaults.
#[derive(Debug, Clone)]
pub struct GatewayOptions {
    /// Where triggers go.
    pub subjects: Subjects,
    /// The gateway's instance id, as the sender of its triggers.
    pub id: String,
    /// Each protocol's webhook secrets.
    pub webhooks: Webhooks,
    /// How long to wait for the orchestrator's answer before a 504. The run may still start;
    /// the caller's retry with the same key then finds it.
    pub request_timeout: Duration,
    /// Largest accepted body; larger gets 413 before anything else is read.
    pub max_body: usize,
    /// Triggers waiting on the orchestrator at once; more get 503 with `Retry-After`.
    pub max_in_flight: usize,
    /// Signatures remembered by the replay guard (see [`replay`]).
    pub replay_capacity: usize,
}

impl GatewayOptions {
    /// Defaults: 10 s for the orchestrator, 64 KiB bodies, 64 triggers in flight, 100 000
    /// remembered signatures (about 330 requests a second sustained over the 300 s window).
    pub fn new(subjects: Subjects, id: String, webhooks: Webhooks) -> Self {
        Self {
            subjects,
            id,
            webhooks,
            request_timeout: Duration::from_secs(10),
            max_body: 64 * 1024,
            max_in_flight: 64,
            replay_capacity: 100_000,
        }
    }
}

/// The gateway's routes over `bus`, without a socket (tests drive it directly).
pub fn app<M: Messaging>(bus: M, options: GatewayOptions) -> Router {
    // The gateway speaks for an outside caller, like the CLI does for a person.
    let sender = Sender { component: Component::Cli, role: None, id: options.id };
    let shared = routes::Shared {
        bus,
        subjects: options.subjects,
        sender,
        webhooks: options.webhooks,
        replay: replay::ReplayGuard::new(options.replay_capacity),
        in_flight: Semaphore::new(options.max_in_flight.max(1)),
        request_timeout: options.request_timeout,
        max_body: options.max_body,
    };
    routes::router(Arc::new(shared))
}

/// Serves `app` on `listener` until `shutdown` is cancelled, then stops accepting and lets open
/// requests finish for at most `grace` (a request waits on the orchestrator for at most the
/// request timeout, so a grace longer than that loses nothing).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: CancellationToken,
    grace: Duration,
) -> std::io::Result<()> {
    let server = axum::serve(listener, app).with_graceful_shutdown(shutdown.clone().cancelled_owned()).into_future();
    tokio::select! {
        result = server => result,
        () = async { shutdown.cancelled().await; tokio::time::sleep(grace).await } => {
            warn!(grace_ms = u64::try_from(grace.as_millis()).unwrap_or(u64::MAX), "connections still open after the grace period; closing them");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests;
