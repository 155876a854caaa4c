//! Notices → a Slack incoming webhook: the durable consumer `bridge-slack` on
//! `muster.evt.*.notice`, one notice at a time, acknowledged once Slack took the post.
//!
//! It is a consumer of its own rather than a second destination of the room's consumer
//! `bridge`: a Slack outage then delays only Slack's notices, the room keeps getting its own,
//! and each destination resumes where it stopped. The price is that nothing orders a notice's
//! Slack post against its Matrix post, which nobody reads side by side anyway.
//!
//! Slack's webhooks have no idempotency key, so a notice redelivered after a crash between the
//! post and the ack is posted twice; a missed notice would be worse.

use super::notices::{NoticeDelivery, PULL_WAIT, REFUSED_RETRY, bind_consumer, open_notice, settle};
use super::slack::webhook::{WebhookClient, WebhookOptions, WebhookUrl};
use super::{Error, millis, pause};
use muster_bus::subjects::Subjects;
use muster_bus::{Bus, Delivery, EventStream};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

/// The durable consumer's name: one position for all bridge instances posting to Slack.
pub const CONSUMER: &str = "bridge-slack";

/// Where and how notices go to Slack.
#[derive(Debug, Clone)]
pub struct SlackNoticeOptions {
    /// Where notices come from.
    pub subjects: Subjects,
    /// The incoming webhook; a secret (its `Debug` shows only the host).
    pub url: WebhookUrl,
    /// Retries of one post before the notice is put back for later.
    pub webhook: WebhookOptions,
    /// How long a notice stays claimed; extended while its post is retried.
    pub lease: Duration,
}

/// Posts every notice to the webhook until `shutdown`. Ends with an error only when the HTTP
/// client cannot be built or the consumer cannot be bound for good; a refused or failed post
/// is logged and the notice comes again after [`REFUSED_RETRY`].
pub async fn run<B: Bus>(bus: B, options: SlackNoticeOptions, shutdown: CancellationToken) -> Result<(), Error> {
    let client = WebhookClient::new(options.webhook.clone()).map_err(Error::Slack)?;
    let bind = || bind_consumer(&bus, &options.subjects, CONSUMER, options.lease, &shutdown);
    let Some(mut stream) = bind().await? else { return Ok(()) };
    info!(consumer = CONSUMER, webhook = ?options.url, "slack notices ready");
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
                on_notice::<B>(&client, &options, delivery, &shutdown).await;
            }
            Err(err) => {
                warn!(consumer = CONSUMER, error = %err, retry_in_ms = millis(delay), "cannot pull notices; retrying");
                if !pause(&shutdown, delay).await {
                    return Ok(());
                }
                delay = (delay * 2).min(Duration::from_secs(10));
                if let Some(rebound) = bind().await? {
                    stream = rebound;
                }
            }
        }
    }
}

/// Posts one notice and settles its delivery; left unsettled on shutdown, so it comes again.
async fn on_notice<B: Bus>(
    client: &WebhookClient,
    options: &SlackNoticeOptions,
    delivery: NoticeDelivery<B>,
    shutdown: &CancellationToken,
) {
    let Some((notice, _, delivery)) = open_notice(delivery).await else { return };
    let post = client.post_notice(&options.url, &notice);
    tokio::pin!(post);
    // The client's own retries can outlast the lease; keep the notice claimed meanwhile.
    let mut keepalive = tokio::time::interval((options.lease / 3).max(Duration::from_millis(100)));
    keepalive.tick().await;
    let result = loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            result = &mut post => break result,
            _ = keepalive.tick() => {
                if let Err(err) = delivery.in_progress().await {
                    warn!(error = %err, "cannot extend the notice's lease");
                }
            }
        }
    };
    match result {
        Ok(()) => {
            info!(run_id = %notice.run_id, prompt = notice.prompt, stage = notice.stage, "notice posted to slack");
            settle(delivery.ack().await);
        }
        Err(err) => {
            error!(run_id = %notice.run_id, prompt = notice.prompt, stage = notice.stage, error = %err, "cannot post the notice to slack; it comes again later");
            settle(delivery.nak(REFUSED_RETRY).await);
        }
    }
}
