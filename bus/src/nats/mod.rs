//! The NATS transport: JetStream for everything that must not be lost, core NATS for requests
//! and signals.
//!
//! | what | where |
//! | --- | --- |
//! | work | stream `MUSTER_WORK` (work-queue retention), `muster.work.<queue>`, durable pull consumer `work-<queue>` |
//! | dead letters | stream `MUSTER_DLQ`, `muster.dlq.<queue>`, headers `Muster-Reason`, `Muster-Deliveries` |
//! | events | stream `MUSTER_EVENTS`, `muster.evt.>`, durable pull consumers bound by name |
//! | audit trail | stream `MUSTER_AUDIT`, `muster.audit.<run>`, read with [`crate::Events::history`] |
//! | snapshots | KV buckets ([`crate::Bucket`]) |
//!
//! [`NatsBus::provision`] creates all of it idempotently (the orchestrator calls it); agents only
//! bind, so a role consumer's configuration has one owner.

mod delivery;
mod kv;
mod messaging;
mod provision;

use crate::subjects::Subjects;
use crate::traits::{Bucket, DeadLetter, EventStream, Events, WorkQueue};
use crate::{Error, Result};
use async_nats::jetstream::{self, consumer::PullConsumer, message::PublishMessage as Publish};
use bytes::Bytes;
pub use delivery::NatsDelivery;
use futures::StreamExt;
pub use messaging::{NatsRequest, NatsRequests, NatsSignals};
pub use provision::NatsOptions;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// The oldest server muster runs on (see `shared/CRATES.md`: older ones drop consumer fields and
/// lose streams after repeated kill -9).
pub const MIN_SERVER_VERSION: (u64, u64, u64) = (2, 12, 0);
const MIN_SERVER_VERSION_TEXT: &str = "2.12.0";

/// Header carrying the reason a message was dead-lettered.
pub const REASON_HEADER: &str = "Muster-Reason";
/// Header carrying how often a dead letter had been delivered.
pub const DELIVERIES_HEADER: &str = "Muster-Deliveries";

/// A connection to NATS; clones share it.
#[derive(Clone)]
pub struct NatsBus {
    inner: Arc<Inner>,
}

struct Inner {
    client: async_nats::Client,
    js: jetstream::Context,
    options: NatsOptions,
    subjects: Subjects,
    consumers: Mutex<HashMap<String, PullConsumer>>,
}

impl std::fmt::Debug for NatsBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsBus").field("options", &self.inner.options).finish_non_exhaustive()
    }
}

fn unavailable(err: impl std::fmt::Display) -> Error {
    Error::Unavailable(err.to_string())
}

/// Parses `2.15.1` (or `2.12.0-beta`) into numbers.
fn parse_version(text: &str) -> Option<(u64, u64, u64)> {
    let mut parts = text.trim_start_matches('v').split(['.', '-', '+']);
    let mut next = || parts.next().and_then(|p| p.parse::<u64>().ok());
    Some((next()?, next()?, next().unwrap_or(0)))
}

impl NatsBus {
    /// Connects and checks the server version; does not create anything.
    pub async fn connect(options: NatsOptions) -> Result<Self> {
        let client = async_nats::ConnectOptions::new()
            .name(options.client_name.clone())
            .connection_timeout(options.connect_timeout)
            .connect(options.url.as_str())
            .await
            .map_err(unavailable)?;
        let found = client.server_info().version;
        if parse_version(&found).is_none_or(|v| v < MIN_SERVER_VERSION) {
            return Err(Error::ServerTooOld { found, required: MIN_SERVER_VERSION_TEXT });
        }
        let js = jetstream::new(client.clone());
        let subjects = Subjects::new(options.prefix.clone());
        Ok(Self { inner: Arc::new(Inner { client, js, options, subjects, consumers: Mutex::default() }) })
    }

    /// The subjects this bus uses.
    pub fn subjects(&self) -> &Subjects {
        &self.inner.subjects
    }

    /// The underlying client, for the benchmark's raw-JetStream baseline.
    pub fn client(&self) -> &async_nats::Client {
        &self.inner.client
    }

    fn stream_name(&self, suffix: &str) -> String {
        format!("{}_{suffix}", self.inner.options.prefix.to_uppercase())
    }

    /// A stream that [`NatsBus::provision`] creates.
    async fn stream(&self, suffix: &str) -> Result<jetstream::stream::Stream> {
        let name = self.stream_name(suffix);
        self.inner.js.get_stream(&name).await.map_err(|e| Error::NotProvisioned(format!("stream {name}: {e}")))
    }

    /// `muster_runs` under the default prefix, `<prefix>_runs` otherwise.
    fn bucket_name(&self, bucket: Bucket) -> String {
        format!("{}_{}", self.inner.options.prefix, bucket.name().trim_start_matches("muster_"))
    }

    async fn publish(&self, subject: String, msg_id: &str, payload: Bytes) -> Result<u64> {
        let publish = Publish::build()
            .payload(payload)
            .message_id(msg_id)
            .header("Content-Type", self.inner.options.content_type.as_str());
        let ack = self.inner.js.send_publish(subject, publish).await.map_err(unavailable)?;
        Ok(ack.await.map_err(unavailable)?.sequence)
    }

    async fn work_consumer(&self, queue: &str) -> Result<PullConsumer> {
        let name = format!("work-{queue}");
        if let Some(c) = self.inner.consumers.lock().unwrap_or_else(PoisonError::into_inner).get(&name) {
            return Ok(c.clone());
        }
        let stream = self.stream("WORK").await?;
        let consumer: PullConsumer =
            stream.get_consumer(&name).await.map_err(|e| Error::NotProvisioned(format!("consumer {name}: {e}")))?;
        self.inner.consumers.lock().unwrap_or_else(PoisonError::into_inner).insert(name, consumer.clone());
        Ok(consumer)
    }

    fn forget_consumer(&self, queue: &str) {
        self.inner.consumers.lock().unwrap_or_else(PoisonError::into_inner).remove(&format!("work-{queue}"));
    }
}

/// Pulls one message, waiting up to `wait` (a pull request with batch 1 returns as soon as a
/// message is there).
async fn pull_one(consumer: &PullConsumer, wait: Duration) -> Result<Option<jetstream::Message>> {
    let expires = wait.max(Duration::from_millis(100));
    let mut batch = consumer.batch().max_messages(1).expires(expires).messages().await.map_err(unavailable)?;
    match batch.next().await {
        None => Ok(None),
        Some(Ok(msg)) => Ok(Some(msg)),
        Some(Err(e)) => Err(unavailable(e)),
    }
}

/// A durable event consumer on `MUSTER_EVENTS`.
pub struct NatsEventStream {
    bus: NatsBus,
    consumer: PullConsumer,
}

impl EventStream for NatsEventStream {
    type Delivery = NatsDelivery;

    async fn next(&mut self, wait: Duration) -> Result<Option<NatsDelivery>> {
        Ok(pull_one(&self.consumer, wait).await?.map(|m| NatsDelivery::new(self.bus.clone(), "events", m)))
    }
}

impl Events for NatsBus {
    type Stream = NatsEventStream;

    async fn publish_event(&self, subject: &str, msg_id: &str, payload: Bytes) -> Result<u64> {
        self.publish(subject.to_owned(), msg_id, payload).await
    }

    async fn event_stream(&self, durable: &str, filter: &str, ack_wait: Duration) -> Result<NatsEventStream> {
        let stream = self.stream("EVENTS").await?;
        let config = jetstream::consumer::pull::Config {
            durable_name: Some(durable.to_owned()),
            filter_subject: filter.to_owned(),
            ack_wait,
            max_deliver: -1,
            ..Default::default()
        };
        let consumer = stream.get_or_create_consumer(durable, config).await.map_err(unavailable)?;
        Ok(NatsEventStream { bus: self.clone(), consumer })
    }

    async fn history(&self, filter: &str, limit: usize) -> Result<Vec<(String, Bytes)>> {
        let stream = match self.inner.js.stream_by_subject(filter.to_owned()).await {
            Ok(name) => self.inner.js.get_stream(&name).await.map_err(unavailable)?,
            Err(err) => return Err(Error::NotProvisioned(format!("no stream holds {filter}: {err}"))),
        };
        // An ephemeral consumer that acknowledges nothing: reading the trail changes nothing.
        let config = jetstream::consumer::pull::Config {
            filter_subject: filter.to_owned(),
            ack_policy: jetstream::consumer::AckPolicy::None,
            inactive_threshold: Duration::from_secs(30),
            ..Default::default()
        };
        let mut consumer: PullConsumer = stream.create_consumer(config).await.map_err(unavailable)?;
        let mut pending = consumer.info().await.map_err(unavailable)?.num_pending as usize;
        let mut out = Vec::new();
        while pending > 0 && out.len() < limit {
            let wanted = pending.min(limit - out.len()).min(1000);
            let mut batch = consumer
                .batch()
                .max_messages(wanted)
                .expires(Duration::from_secs(2))
                .messages()
                .await
                .map_err(unavailable)?;
            let before = out.len();
            while let Some(msg) = batch.next().await {
                let msg = msg.map_err(unavailable)?;
                out.push((msg.subject.to_string(), msg.payload.clone()));
            }
            if out.len() == before {
                break;
            }
            pending = pending.saturating_sub(out.len() - before);
        }
        Ok(out)
    }
}

impl WorkQueue for NatsBus {
    type Work = NatsDelivery;

    async fn enqueue(&self, queue: &str, msg_id: &str, payload: Bytes) -> Result<()> {
        self.publish(self.inner.subjects.work(queue), msg_id, payload).await.map(drop)
    }

    async fn claim(&self, queue: &str, wait: Duration) -> Result<Option<NatsDelivery>> {
        let consumer = self.work_consumer(queue).await?;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let msg = match pull_one(&consumer, left).await {
                Ok(Some(msg)) => msg,
                Ok(None) => return Ok(None),
                Err(e) => {
                    // The consumer may have been deleted and re-provisioned; bind afresh next time.
                    self.forget_consumer(queue);
                    return Err(e);
                }
            };
            let delivery = NatsDelivery::new(self.clone(), queue, msg);
            if delivery.deliveries_u32() <= self.inner.options.max_deliver {
                return Ok(Some(delivery));
            }
            let reason = format!("delivered {} times without an ack", delivery.deliveries_u32() - 1);
            crate::traits::Delivery::dead_letter(delivery, &reason).await?;
            if tokio::time::Instant::now() >= deadline {
                return Ok(None);
            }
        }
    }

    async fn dead_letters(&self, queue: &str) -> Result<Vec<DeadLetter>> {
        let mut stream = self.stream("DLQ").await?;
        let info = stream.info().await.map_err(unavailable)?;
        let (first, last) = (info.state.first_sequence, info.state.last_sequence);
        let wanted = self.inner.subjects.dead_letter(queue);
        let mut out = Vec::new();
        for seq in first..=last {
            let Ok(msg) = stream.get_raw_message(seq).await else { continue };
            if msg.subject.as_str() != wanted {
                continue;
            }
            let header = |name: &str| msg.headers.get(name).map(|v| v.as_str().to_owned());
            out.push(DeadLetter {
                queue: queue.to_owned(),
                reason: header(REASON_HEADER).unwrap_or_default(),
                deliveries: header(DELIVERIES_HEADER).and_then(|d| d.parse().ok()).unwrap_or(0),
                payload: msg.payload,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::parse_version;

    #[test]
    fn versions_parse() {
        assert_eq!(parse_version("2.15.1"), Some((2, 15, 1)));
        assert_eq!(parse_version("v2.12.0-beta.1"), Some((2, 12, 0)));
        assert!(parse_version("2.9.10").is_some_and(|v| v < super::MIN_SERVER_VERSION));
        assert_eq!(parse_version("garbage"), None);
    }
}
