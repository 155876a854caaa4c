//! What people ask of a run over request/reply: answers to a waiting gate (`muster answer`) and
//! operator controls (`muster cancel|pause|resume|retry|skip`). Each is applied as one durable
//! transition and confirmed — or refused with the reason — to the asker.

use super::{Orchestrator, engine};
use crate::wire;
use bytes::Bytes;
use engine::Applied;
use muster_bus::{Bus, Subscription};
use muster_schemas::Payload;
use muster_schemas::message::AnswerReply;
use muster_schemas::run::RunSnapshot;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use uuid::Uuid;

impl<B: Bus> Orchestrator<B> {
    /// Serves one request subscription until cancelled.
    pub(super) async fn serve_requests<S>(&self, requests: S, cancel: &CancellationToken)
    where
        S: Subscription<Item = B::Request>,
    {
        super::serving::answer_each(requests, cancel, "request", |payload, _| async move {
            let reply = self.on_request(&payload, cancel).await;
            wire::seal(&self.inner.sender, None, Payload::AnswerReply(reply))
                .inspect_err(|err| warn!(error = %err, "could not encode a reply"))
                .ok()
        })
        .await;
    }

    async fn on_request(&self, payload: &Bytes, cancel: &CancellationToken) -> AnswerReply {
        let refuse = |message: String| AnswerReply { accepted: false, message };
        match wire::decode(payload).map(|e| e.payload) {
            Ok(Payload::SignedAnswer(signed)) => self.on_signed_answer(&signed, cancel).await,
            Ok(Payload::RunAnswer(_)) => refuse(
                "unsigned answers are refused: answers must be signed by a principal the orchestrator knows (muster keygen; docs/answers.md)"
                    .to_owned(),
            ),
            Ok(Payload::RunControl(control)) => {
                let what = format!("{} asked: {:?}", control.by, control.control);
                self.decide(control.run_id, what.clone(), &what, cancel, |run| {
                    engine::apply_control(run, &control.control, &control.by, crate::clock::now())
                })
                .await
            }
            Ok(other) => refuse(format!("expected signed_answer or run_control, got {}", other.kind())),
            Err(err) => refuse(format!("undecodable request: {err}")),
        }
    }

    /// Applies a person's decision as one durable transition.
    async fn decide(
        &self,
        run_id: Uuid,
        what: String,
        cause: &str,
        cancel: &CancellationToken,
        decision: impl Fn(&mut RunSnapshot) -> Result<Vec<engine::Effect>, String>,
    ) -> AnswerReply {
        let applied = self
            .transition(run_id, cause, cancel, |run| match decision(run) {
                Ok(effects) => Applied::Changed(effects),
                Err(why) => Applied::Ignored(why),
            })
            .await;
        match applied {
            Ok(Some(Applied::Changed(_))) => {
                info!(run_id = %run_id, what = %what, "decision applied");
                AnswerReply { accepted: true, message: what }
            }
            Ok(Some(Applied::Ignored(why))) => {
                warn!(run_id = %run_id, what = %what, why = %why, "decision refused");
                AnswerReply { accepted: false, message: why }
            }
            Ok(None) => AnswerReply { accepted: false, message: format!("no run {run_id}") },
            Err(err) => AnswerReply { accepted: false, message: format!("could not record the decision: {err}") },
        }
    }
}
