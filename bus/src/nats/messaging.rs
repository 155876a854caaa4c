//! Core NATS request/reply (queue group `muster`, so several servers share requests) and signals.

use super::{NatsBus, unavailable};
use crate::traits::{Messaging, Request, Subscription};
use crate::{Error, Result};
use async_nats::{RequestErrorKind, Subscriber};
use bytes::Bytes;
use futures::StreamExt;
use std::time::Duration;

/// A request received from NATS.
pub struct NatsRequest {
    client: async_nats::Client,
    msg: async_nats::Message,
}

impl Request for NatsRequest {
    fn subject(&self) -> &str {
        self.msg.subject.as_str()
    }

    fn payload(&self) -> &Bytes {
        &self.msg.payload
    }

    async fn respond(self, payload: Bytes) -> Result<()> {
        let Some(reply) = self.msg.reply else { return Ok(()) };
        self.client.publish(reply, payload).await.map_err(unavailable)?;
        self.client.flush().await.map_err(unavailable)
    }
}

/// Requests arriving at a NATS server subscription.
pub struct NatsRequests {
    client: async_nats::Client,
    sub: Subscriber,
}

impl Subscription for NatsRequests {
    type Item = NatsRequest;

    async fn next(&mut self) -> Option<NatsRequest> {
        let msg = self.sub.next().await?;
        Some(NatsRequest { client: self.client.clone(), msg })
    }
}

/// Signals arriving at a NATS subscription.
pub struct NatsSignals(Subscriber);

impl Subscription for NatsSignals {
    type Item = (String, Bytes);

    async fn next(&mut self) -> Option<(String, Bytes)> {
        self.0.next().await.map(|m| (m.subject.to_string(), m.payload))
    }
}

impl Messaging for NatsBus {
    type Requests = NatsRequests;
    type Request = NatsRequest;
    type Signals = NatsSignals;

    async fn request(&self, subject: &str, payload: Bytes, timeout: Duration) -> Result<Bytes> {
        let request = async_nats::Request::new().payload(payload).timeout(Some(timeout));
        match self.inner.client.send_request(subject.to_owned(), request).await {
            Ok(msg) => Ok(msg.payload),
            Err(e) => Err(match e.kind() {
                RequestErrorKind::TimedOut => Error::Timeout,
                RequestErrorKind::NoResponders => Error::NoResponders(subject.to_owned()),
                _ => unavailable(e),
            }),
        }
    }

    async fn serve(&self, subject: &str) -> Result<NatsRequests> {
        let client = self.inner.client.clone();
        let sub = client.queue_subscribe(subject.to_owned(), "muster".to_owned()).await.map_err(unavailable)?;
        Ok(NatsRequests { client, sub })
    }

    async fn signal(&self, subject: &str, payload: Bytes) -> Result<()> {
        self.inner.client.publish(subject.to_owned(), payload).await.map_err(unavailable)
    }

    async fn signals(&self, subject: &str) -> Result<NatsSignals> {
        let sub = self.inner.client.subscribe(subject.to_owned()).await.map_err(unavailable)?;
        Ok(NatsSignals(sub))
    }
}
