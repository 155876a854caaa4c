//! In-memory request/reply and signals with NATS' delivery rules: a request goes to one server
//! (round robin), a signal goes to every matching subscriber and is dropped for one whose buffer
//! is full.

use super::{MemoryBus, lock};
use crate::traits::{Messaging, Request, Subscription};
use crate::{Error, Result, subjects};
use bytes::Bytes;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// A signal as delivered: its subject and body.
type Signal = (String, Bytes);

#[derive(Debug)]
pub(super) struct Registry {
    buffer: usize,
    servers: Mutex<Vec<(String, mpsc::Sender<MemoryRequest>)>>,
    listeners: Mutex<Vec<(String, mpsc::Sender<Signal>)>>,
    turn: AtomicUsize,
}

impl Registry {
    pub fn new(buffer: usize) -> Self {
        Self { buffer, servers: Mutex::default(), listeners: Mutex::default(), turn: AtomicUsize::new(0) }
    }
}

/// A request received from the memory bus.
#[derive(Debug)]
pub struct MemoryRequest {
    subject: String,
    payload: Bytes,
    reply: oneshot::Sender<Bytes>,
}

impl Request for MemoryRequest {
    fn subject(&self) -> &str {
        &self.subject
    }

    fn payload(&self) -> &Bytes {
        &self.payload
    }

    async fn respond(self, payload: Bytes) -> Result<()> {
        // The requester may have timed out and gone; like NATS, that is not the server's error.
        let _ = self.reply.send(payload);
        Ok(())
    }
}

/// Requests arriving at a memory server.
#[derive(Debug)]
pub struct MemoryRequests(mpsc::Receiver<MemoryRequest>);

impl Subscription for MemoryRequests {
    type Item = MemoryRequest;

    async fn next(&mut self) -> Option<MemoryRequest> {
        self.0.recv().await
    }
}

/// Signals arriving at a memory subscriber.
#[derive(Debug)]
pub struct MemorySignals(mpsc::Receiver<(String, Bytes)>);

impl Subscription for MemorySignals {
    type Item = (String, Bytes);

    async fn next(&mut self) -> Option<(String, Bytes)> {
        self.0.recv().await
    }
}

impl Messaging for MemoryBus {
    type Requests = MemoryRequests;
    type Request = MemoryRequest;
    type Signals = MemorySignals;

    async fn request(&self, subject: &str, payload: Bytes, timeout: Duration) -> Result<Bytes> {
        let registry = &self.inner.messaging;
        let server = {
            let mut servers = lock(&registry.servers);
            servers.retain(|(_, tx)| !tx.is_closed());
            let matching: Vec<_> = servers.iter().filter(|(p, _)| subjects::matches(p, subject)).collect();
            if matching.is_empty() {
                return Err(Error::NoResponders(subject.to_owned()));
            }
            let turn = registry.turn.fetch_add(1, Ordering::Relaxed);
            matching[turn % matching.len()].1.clone()
        };
        let (reply, answer) = oneshot::channel();
        let request = MemoryRequest { subject: subject.to_owned(), payload, reply };
        tokio::time::timeout(timeout, async {
            server.send(request).await.map_err(|_| Error::NoResponders(subject.to_owned()))?;
            answer.await.map_err(|_| Error::NoResponders(subject.to_owned()))
        })
        .await
        .map_err(|_| Error::Timeout)?
    }

    async fn serve(&self, subject: &str) -> Result<MemoryRequests> {
        let (tx, rx) = mpsc::channel(self.inner.messaging.buffer);
        lock(&self.inner.messaging.servers).push((subject.to_owned(), tx));
        Ok(MemoryRequests(rx))
    }

    async fn signal(&self, subject: &str, payload: Bytes) -> Result<()> {
        let mut listeners = lock(&self.inner.messaging.listeners);
        listeners.retain(|(_, tx)| !tx.is_closed());
        for (_, tx) in listeners.iter().filter(|(p, _)| subjects::matches(p, subject)) {
            // A full buffer drops the signal for that subscriber only, as NATS does for a slow one.
            let _ = tx.try_send((subject.to_owned(), payload.clone()));
        }
        Ok(())
    }

    async fn signals(&self, subject: &str) -> Result<MemorySignals> {
        let (tx, rx) = mpsc::channel(self.inner.messaging.buffer);
        lock(&self.inner.messaging.listeners).push((subject.to_owned(), tx));
        Ok(MemorySignals(rx))
    }
}
