//! Notices → the room: the durable consumer `bridge` on `muster.evt.*.notice`, one notice at a
//! time (so a prompt's posts keep their order), acknowledged after the post is confirmed.

use super::commands::PromptId;
use super::state::StoredNotice;
use super::{Error, Shared, matrix, millis, pause, render, txn_id};
use crate::wire;
use jiff::Timestamp;
use muster_bus::{Bus, Delivery, EventStream, Events};
use muster_schemas::Payload;
use muster_schemas::message::PromptNotice;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};
use uuid::Uuid;

/// The durable consumer's name: one position for all bridge instances.
pub const CONSUMER: &str = "bridge";

/// How long one pull waits for a notice before checking for shutdown again.
pub(super) const PULL_WAIT: Duration = Duration::from_secs(5);
/// How long a notice that could not be posted for good waits before it comes again.
pub(super) const REFUSED_RETRY: Duration = Duration::from_secs(30);

pub(super) type Stream<B> = <B as Events>::Stream;
pub(super) type NoticeDelivery<B> = <<B as Events>::Stream as EventStream>::Delivery;

impl<B: Bus> Shared<B> {
    /// Binds the notice consumer, waiting while the streams are not provisioned yet (the
    /// orchestrator creates them). `Ok(None)` on shutdown.
    pub(super) async fn bind_notices(&self, shutdown: &CancellationToken) -> Result<Option<Stream<B>>, Error> {
        bind_consumer(&self.bus, &self.options.subjects, CONSUMER, self.options.notice_lease, shutdown).await
    }

    /// Posts notices until `shutdown`.
    pub(super) async fn notices(
        self: Arc<Self>,
        mut stream: Stream<B>,
        shutdown: CancellationToken,
    ) -> Result<(), Error> {
        let mut delay = Duration::from_millis(500);
        loop {
            let next = tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                next = stream.next(PULL_WAIT) => next,
            };
            match next {
                Ok(None) => {}
                Ok(Some(delivery)) => {
                    delay = Duration::from_millis(500);
                    self.on_notice(delivery, &shutdown).await;
                }
                Err(err) => {
                    warn!(error = %err, retry_in_ms = millis(delay), "cannot pull notices; retrying");
                    if !pause(&shutdown, delay).await {
                        return Ok(());
                    }
                    delay = (delay * 2).min(Duration::from_secs(10));
                    if let Some(rebound) = self.bind_notices(&shutdown).await? {
                        stream = rebound;
                    }
                }
            }
        }
    }

    /// Posts one notice and settles its delivery. Left unsettled on shutdown: it comes again.
    async fn on_notice(&self, delivery: NoticeDelivery<B>, shutdown: &CancellationToken) {
        let Some((notice, envelope_id, delivery)) = open_notice(delivery).await else { return };
        match self.post_notice(&notice, envelope_id, &delivery, shutdown).await {
            Ok(true) => settle(delivery.ack().await),
            Ok(false) => {}
            Err(err) => {
                error!(run_id = %notice.run_id, prompt = notice.prompt, stage = notice.stage, error = %err, "cannot post the notice; it comes again later");
                settle(delivery.nak(REFUSED_RETRY).await);
            }
        }
    }

    /// `Ok(true)` once the notice is in the room and recorded, `Ok(false)` on shutdown.
    async fn post_notice(
        &self,
        notice: &PromptNotice,
        envelope_id: Uuid,
        delivery: &NoticeDelivery<B>,
        shutdown: &CancellationToken,
    ) -> Result<bool, Error> {
        let prompt = PromptId::parse(&notice.prompt);
        if prompt.is_none() {
            warn!(
                prompt = notice.prompt,
                "the notice's prompt id is not ESC-n, F-n, A-n, D-n or M-n; posting it without a thread"
            );
        }
        if let Some(channel) = notice.channel.as_deref().filter(|c| *c != self.options.room && *c != self.room_id) {
            debug!(channel, "the notice names another channel; this bridge posts to its one room");
        }
        let (root, previous) = match prompt {
            Some(p) => (self.state.thread_root(p).await?, self.state.notice(p).await?),
            None => (None, None),
        };
        if previous.as_ref().is_some_and(|stored| stored.envelope_id == envelope_id) {
            debug!(prompt = notice.prompt, "notice already posted; acknowledging the redelivery");
            return Ok(true);
        }
        let text = render::notice(notice, prompt, Timestamp::now());
        let content = matrix::notice_content(&text, root.as_deref(), None, &render::mentions(notice));
        let txn = txn_id(&format!("notice/{}/{}/{}/{envelope_id}", notice.run_id, notice.prompt, notice.stage));
        let keepalive = || async {
            if let Err(err) = delivery.in_progress().await {
                warn!(error = %err, "cannot extend the notice's lease");
            }
        };
        let Some(event_id) = self.post(&txn, &content, shutdown, keepalive).await? else { return Ok(false) };
        if let Some(prompt) = prompt {
            if root.is_none() {
                self.state.set_thread_root(prompt, &event_id).await?;
            }
            let stored = StoredNotice { envelope_id, event_id: event_id.clone(), notice: notice.clone() };
            self.state.save_notice(prompt, &stored).await?;
        }
        info!(run_id = %notice.run_id, prompt = notice.prompt, stage = notice.stage, event_id, "notice posted");
        Ok(true)
    }
}

/// Binds the durable consumer `durable` on every run's notices, waiting while the streams are
/// not provisioned yet (the orchestrator creates them). `Ok(None)` on shutdown. Each
/// destination (the room, a Slack webhook) has its own durable name, so one that is down does
/// not hold the others' notices back.
pub(super) async fn bind_consumer<B: Bus>(
    bus: &B,
    subjects: &muster_bus::subjects::Subjects,
    durable: &str,
    lease: Duration,
    shutdown: &CancellationToken,
) -> Result<Option<Stream<B>>, Error> {
    let filter = subjects.event("*", "notice");
    let mut delay = Duration::from_millis(500);
    loop {
        match bus.event_stream(durable, &filter, lease).await {
            Ok(stream) => return Ok(Some(stream)),
            Err(err @ (muster_bus::Error::NotProvisioned(_) | muster_bus::Error::Unavailable(_))) => {
                warn!(consumer = durable, error = %err, retry_in_ms = millis(delay), "cannot bind the notice consumer yet (is the orchestrator running?)");
                if !pause(shutdown, delay).await {
                    return Ok(None);
                }
                delay = (delay * 2).min(Duration::from_secs(10));
            }
            Err(err) => return Err(err.into()),
        }
    }
}

/// The notice a delivery carries, with its envelope id; anything else is settled here (an
/// undecodable message dead-lettered, another kind acked) and gives `None`.
pub(super) async fn open_notice<D: Delivery>(delivery: D) -> Option<(PromptNotice, Uuid, D)> {
    let envelope = match wire::decode(delivery.payload()) {
        Ok(envelope) => envelope,
        Err(err) => {
            warn!(subject = delivery.subject(), error = %err, "undecodable notice; dead-lettering it");
            settle(delivery.dead_letter(&format!("undecodable notice: {err}")).await);
            return None;
        }
    };
    let Payload::PromptNotice(notice) = envelope.payload else {
        debug!(subject = delivery.subject(), kind = envelope.payload.kind(), "not a notice; skipping");
        settle(delivery.ack().await);
        return None;
    };
    Some((notice, envelope.id, delivery))
}

pub(super) fn settle(result: muster_bus::Result<()>) {
    if let Err(err) = result {
        warn!(error = %err, "cannot settle the notice; it may come again");
    }
}
