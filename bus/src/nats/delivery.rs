//! A JetStream message as a [`Delivery`]: acks map onto JetStream ack kinds; a dead letter is
//! copied to `MUSTER_DLQ` before the original is terminated, so it is never lost in between.

use super::{DELIVERIES_HEADER, NatsBus, REASON_HEADER, unavailable};
use crate::Result;
use crate::traits::Delivery;
use async_nats::jetstream::{self, AckKind, message::PublishMessage as Publish};
use bytes::Bytes;
use std::time::Duration;

/// A message delivered by NATS.
pub struct NatsDelivery {
    bus: NatsBus,
    queue: String,
    msg: jetstream::Message,
    deliveries: u32,
    stream_sequence: u64,
}

impl std::fmt::Debug for NatsDelivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsDelivery")
            .field("queue", &self.queue)
            .field("subject", &self.msg.subject)
            .field("deliveries", &self.deliveries)
            .field("stream_sequence", &self.stream_sequence)
            .finish()
    }
}

impl NatsDelivery {
    pub(super) fn new(bus: NatsBus, queue: &str, msg: jetstream::Message) -> Self {
        let (deliveries, stream_sequence) =
            msg.info().map(|i| (u32::try_from(i.delivered).unwrap_or(u32::MAX), i.stream_sequence)).unwrap_or((1, 0));
        Self { bus, queue: queue.to_owned(), msg, deliveries, stream_sequence }
    }

    pub(super) fn deliveries_u32(&self) -> u32 {
        self.deliveries
    }
}

impl Delivery for NatsDelivery {
    fn subject(&self) -> &str {
        self.msg.subject.as_str()
    }

    fn payload(&self) -> &Bytes {
        &self.msg.payload
    }

    fn deliveries(&self) -> u32 {
        self.deliveries
    }

    async fn ack(self) -> Result<()> {
        self.msg.double_ack().await.map_err(unavailable)
    }

    async fn nak(self, delay: Duration) -> Result<()> {
        self.msg.double_ack_with(AckKind::Nak(Some(delay))).await.map_err(unavailable)
    }

    async fn in_progress(&self) -> Result<()> {
        self.msg.ack_with(AckKind::Progress).await.map_err(unavailable)
    }

    async fn dead_letter(self, reason: &str) -> Result<()> {
        let inner = &self.bus.inner;
        let subject = inner.subjects.dead_letter(&self.queue);
        let publish = Publish::build()
            .payload(self.msg.payload.clone())
            .message_id(format!("dlq/{}/{}", self.queue, self.stream_sequence))
            .header(REASON_HEADER, reason)
            .header(DELIVERIES_HEADER, self.deliveries.to_string().as_str());
        let ack = inner.js.send_publish(subject, publish).await.map_err(unavailable)?;
        ack.await.map_err(unavailable)?;
        self.msg.double_ack_with(AckKind::Term).await.map_err(unavailable)
    }
}
