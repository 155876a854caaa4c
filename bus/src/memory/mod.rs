//! The in-process bus for `muster run` and fast tests.
//!
//! Same semantics as NATS where muster relies on them — duplicate windows, leases on the clock,
//! redelivery, max deliveries then dead letter, bounded queues that refuse with
//! [`crate::Error::Full`] — but nothing survives the process. Time is tokio's, so tests under a
//! paused clock see leases expire instantly.

mod log;
mod messaging;

use crate::traits::{Bucket, DeadLetter, Delivery, EventStream, Events, Kv, KvEntry, WorkQueue};
use crate::{Error, Result};
use bytes::Bytes;
use log::{Log, Taken};
pub use messaging::{MemoryRequest, MemoryRequests, MemorySignals};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::time::Instant;

/// Limits and timings of a [`MemoryBus`]; the defaults match the NATS layout.
#[derive(Debug, Clone)]
pub struct MemoryOptions {
    /// Lease of a work claim.
    pub work_ack_wait: Duration,
    /// Deliveries of one work message before it is dead-lettered.
    pub max_deliver: u32,
    /// Messages a work queue holds before enqueue answers `Full`.
    pub queue_capacity: usize,
    /// Events the log holds before publish answers `Full`.
    pub event_capacity: usize,
    /// Window in which a repeated message id is dropped.
    pub duplicate_window: Duration,
    /// Signals buffered per subscriber before new ones are dropped (NATS: slow consumer).
    pub signal_buffer: usize,
}

impl Default for MemoryOptions {
    fn default() -> Self {
        Self {
            work_ack_wait: Duration::from_secs(30),
            max_deliver: 5,
            queue_capacity: 10_000,
            event_capacity: 1_000_000,
            duplicate_window: Duration::from_secs(600),
            signal_buffer: 1_024,
        }
    }
}

/// The in-memory bus; clones share the same state.
#[derive(Debug, Clone)]
pub struct MemoryBus {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    options: MemoryOptions,
    events: Arc<Log>,
    queues: Mutex<HashMap<String, Arc<Log>>>,
    dead: Arc<Mutex<Vec<DeadLetter>>>,
    kv: Mutex<KvState>,
    messaging: messaging::Registry,
}

#[derive(Debug, Default)]
struct KvState {
    revision: u64,
    entries: HashMap<(Bucket, String), KvEntry>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave these maps half-updated in a way that matters
    // more than stopping the whole bus would, so poisoning is ignored.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

const WORK_CONSUMER: &str = "work";

impl MemoryBus {
    /// A bus with the default options.
    pub fn new() -> Self {
        Self::with_options(MemoryOptions::default())
    }

    /// A bus with explicit limits.
    pub fn with_options(options: MemoryOptions) -> Self {
        let events = Arc::new(Log::new(options.event_capacity, options.duplicate_window, false));
        Self {
            inner: Arc::new(Inner {
                messaging: messaging::Registry::new(options.signal_buffer),
                options,
                events,
                queues: Mutex::default(),
                dead: Arc::default(),
                kv: Mutex::default(),
            }),
        }
    }

    fn queue(&self, name: &str) -> Arc<Log> {
        let options = &self.inner.options;
        lock(&self.inner.queues)
            .entry(name.to_owned())
            .or_insert_with(|| {
                let log = Log::new(options.queue_capacity, options.duplicate_window, true);
                log.bind(WORK_CONSUMER, ">", options.work_ack_wait);
                Arc::new(log)
            })
            .clone()
    }
}

impl Default for MemoryBus {
    fn default() -> Self {
        Self::new()
    }
}

/// A message delivered by the memory bus.
#[derive(Debug)]
pub struct MemoryDelivery {
    log: Arc<Log>,
    consumer: String,
    queue: String,
    dead: Arc<Mutex<Vec<DeadLetter>>>,
    taken: Taken,
}

impl Delivery for MemoryDelivery {
    fn subject(&self) -> &str {
        &self.taken.subject
    }

    fn payload(&self) -> &Bytes {
        &self.taken.payload
    }

    fn deliveries(&self) -> u32 {
        self.taken.deliveries
    }

    async fn ack(self) -> Result<()> {
        self.log.ack(&self.consumer, self.taken.seq);
        Ok(())
    }

    async fn nak(self, delay: Duration) -> Result<()> {
        self.log.reschedule(&self.consumer, self.taken.seq, Instant::now() + delay);
        Ok(())
    }

    async fn in_progress(&self) -> Result<()> {
        self.log.extend(&self.consumer, self.taken.seq);
        Ok(())
    }

    async fn dead_letter(self, reason: &str) -> Result<()> {
        lock(&self.dead).push(DeadLetter {
            queue: self.queue.clone(),
            reason: reason.to_owned(),
            deliveries: self.taken.deliveries,
            payload: self.taken.payload.clone(),
        });
        self.log.ack(&self.consumer, self.taken.seq);
        Ok(())
    }
}

/// A durable consumer of the memory event log.
#[derive(Debug)]
pub struct MemoryEventStream {
    bus: MemoryBus,
    durable: String,
}

impl EventStream for MemoryEventStream {
    type Delivery = MemoryDelivery;

    async fn next(&mut self, wait: Duration) -> Result<Option<MemoryDelivery>> {
        let log = self.bus.inner.events.clone();
        Ok(log.next(&self.durable, wait).await.map(|taken| MemoryDelivery {
            log,
            consumer: self.durable.clone(),
            queue: "events".to_owned(),
            dead: self.bus.inner.dead.clone(),
            taken,
        }))
    }
}

impl Events for MemoryBus {
    type Stream = MemoryEventStream;

    async fn publish_event(&self, subject: &str, msg_id: &str, payload: Bytes) -> Result<u64> {
        self.inner.events.append(subject, msg_id, payload)
    }

    async fn event_stream(&self, durable: &str, filter: &str, ack_wait: Duration) -> Result<MemoryEventStream> {
        self.inner.events.bind(durable, filter, ack_wait);
        Ok(MemoryEventStream { bus: self.clone(), durable: durable.to_owned() })
    }

    async fn history(&self, filter: &str, limit: usize) -> Result<Vec<(String, Bytes)>> {
        Ok(self.inner.events.matching(filter, limit))
    }
}

impl WorkQueue for MemoryBus {
    type Work = MemoryDelivery;

    async fn enqueue(&self, queue: &str, msg_id: &str, payload: Bytes) -> Result<()> {
        self.queue(queue).append(queue, msg_id, payload).map(drop)
    }

    async fn claim(&self, queue: &str, wait: Duration) -> Result<Option<MemoryDelivery>> {
        let log = self.queue(queue);
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(taken) = log.next(WORK_CONSUMER, left).await else { return Ok(None) };
            let delivery = MemoryDelivery {
                log: log.clone(),
                consumer: WORK_CONSUMER.to_owned(),
                queue: queue.to_owned(),
                dead: self.inner.dead.clone(),
                taken,
            };
            if delivery.deliveries() <= self.inner.options.max_deliver {
                return Ok(Some(delivery));
            }
            let reason = format!("delivered {} times without an ack", delivery.deliveries() - 1);
            delivery.dead_letter(&reason).await?;
        }
    }

    async fn dead_letters(&self, queue: &str) -> Result<Vec<DeadLetter>> {
        Ok(lock(&self.inner.dead).iter().filter(|d| d.queue == queue).cloned().collect())
    }
}

impl Kv for MemoryBus {
    async fn kv_get(&self, bucket: Bucket, key: &str) -> Result<Option<KvEntry>> {
        Ok(lock(&self.inner.kv).entries.get(&(bucket, key.to_owned())).cloned())
    }

    async fn kv_create(&self, bucket: Bucket, key: &str, value: Bytes) -> Result<u64> {
        let mut kv = lock(&self.inner.kv);
        if kv.entries.contains_key(&(bucket, key.to_owned())) {
            return Err(Error::AlreadyExists);
        }
        kv.revision += 1;
        let revision = kv.revision;
        kv.entries.insert((bucket, key.to_owned()), KvEntry { value, revision });
        Ok(revision)
    }

    async fn kv_update(&self, bucket: Bucket, key: &str, value: Bytes, expected: u64) -> Result<u64> {
        let mut kv = lock(&self.inner.kv);
        kv.revision += 1;
        let revision = kv.revision;
        match kv.entries.get_mut(&(bucket, key.to_owned())) {
            Some(entry) if entry.revision == expected => {
                *entry = KvEntry { value, revision };
                Ok(revision)
            }
            _ => Err(Error::RevisionMismatch),
        }
    }

    async fn kv_keys(&self, bucket: Bucket) -> Result<Vec<String>> {
        Ok(lock(&self.inner.kv).entries.keys().filter(|(b, _)| *b == bucket).map(|(_, k)| k.clone()).collect())
    }
}
