//! The loop every request subscription of the orchestrator runs: take a request, compute the
//! reply, send it, until cancelled. A failed reply is logged, never fatal (a plain publish has
//! nobody to answer).

use bytes::Bytes;
use muster_bus::{Request, Subscription};
use std::future::Future;
use tokio_util::sync::CancellationToken;
use tracing::debug;

/// Answers every request on `requests` with what `reply` makes of it (`None`: no answer).
pub async fn answer_each<S, F, Fut>(mut requests: S, cancel: &CancellationToken, what: &str, reply: F)
where
    S: Subscription,
    S::Item: Request,
    F: Fn(Bytes, String) -> Fut,
    Fut: Future<Output = Option<Bytes>>,
{
    loop {
        let request = tokio::select! {
            () = cancel.cancelled() => break,
            request = requests.next() => request,
        };
        let Some(request) = request else { break };
        let Some(bytes) = reply(request.payload().clone(), request.subject().to_owned()).await else { continue };
        if let Err(err) = request.respond(bytes).await {
            debug!(error = %err, what, "could not send a reply");
        }
    }
}
