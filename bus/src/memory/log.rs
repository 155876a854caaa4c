//! An in-memory stream with durable consumers: the engine behind both the memory event log and
//! the memory work queues.
//!
//! Each consumer has a cursor (the last sequence delivered fresh) and a map of outstanding
//! deliveries with a due time. A delivery whose due time passes without an ack is handed out
//! again with its delivery count raised — the lease expiry of NATS' ack wait.

use crate::{Error, Result, subjects};
use bytes::Bytes;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// One message handed to a consumer.
#[derive(Debug, Clone)]
pub(crate) struct Taken {
    pub seq: u64,
    pub subject: String,
    pub payload: Bytes,
    pub deliveries: u32,
}

#[derive(Debug)]
pub(crate) struct Log {
    state: Mutex<State>,
    changed: Notify,
    capacity: usize,
    duplicate_window: Duration,
    /// Work-queue retention: an ack deletes the message.
    delete_on_ack: bool,
}

#[derive(Debug, Default)]
struct State {
    last_seq: u64,
    messages: BTreeMap<u64, (String, Bytes)>,
    recent_ids: HashMap<String, (u64, Instant)>,
    consumers: HashMap<String, Consumer>,
}

#[derive(Debug)]
struct Consumer {
    filter: String,
    ack_wait: Duration,
    cursor: u64,
    outstanding: BTreeMap<u64, Outstanding>,
}

#[derive(Debug)]
struct Outstanding {
    due: Instant,
    deliveries: u32,
}

impl Log {
    pub fn new(capacity: usize, duplicate_window: Duration, delete_on_ack: bool) -> Self {
        Self { state: Mutex::default(), changed: Notify::new(), capacity, duplicate_window, delete_on_ack }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Appends unless `msg_id` was seen within the window; answers the sequence either way.
    pub fn append(&self, subject: &str, msg_id: &str, payload: Bytes) -> Result<u64> {
        let now = Instant::now();
        let mut state = self.state();
        let window = self.duplicate_window;
        state.recent_ids.retain(|_, (_, at)| now.duration_since(*at) < window);
        if let Some((seq, _)) = state.recent_ids.get(msg_id) {
            return Ok(*seq);
        }
        if state.messages.len() >= self.capacity {
            return Err(Error::Full(payload));
        }
        state.last_seq += 1;
        let seq = state.last_seq;
        state.messages.insert(seq, (subject.to_owned(), payload));
        state.recent_ids.insert(msg_id.to_owned(), (seq, now));
        drop(state);
        self.changed.notify_waiters();
        Ok(seq)
    }

    /// Up to `limit` stored messages on subjects matching `filter`, oldest first.
    pub fn matching(&self, filter: &str, limit: usize) -> Vec<(String, Bytes)> {
        let state = self.state();
        state
            .messages
            .values()
            .filter(|(subject, _)| subjects::matches(filter, subject))
            .take(limit)
            .map(|(subject, payload)| (subject.clone(), payload.clone()))
            .collect()
    }

    /// Creates the consumer if absent; an existing one keeps its position.
    pub fn bind(&self, name: &str, filter: &str, ack_wait: Duration) {
        self.state().consumers.entry(name.to_owned()).or_insert_with(|| Consumer {
            filter: filter.to_owned(),
            ack_wait,
            cursor: 0,
            outstanding: BTreeMap::new(),
        });
    }

    /// The next message for `consumer`, waiting up to `wait`.
    pub async fn next(&self, consumer: &str, wait: Duration) -> Option<Taken> {
        let deadline = Instant::now() + wait;
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let (taken, wake) = self.take(consumer, Instant::now());
            if taken.is_some() {
                return taken;
            }
            if Instant::now() >= deadline {
                return None;
            }
            let until = wake.map_or(deadline, |w| w.min(deadline));
            tokio::select! {
                () = &mut notified => {}
                () = tokio::time::sleep_until(until) => {}
            }
        }
    }

    /// An expired lease first (oldest sequence), else the next fresh message; otherwise when
    /// the earliest lease expires.
    fn take(&self, name: &str, now: Instant) -> (Option<Taken>, Option<Instant>) {
        let mut state = self.state();
        let State { messages, consumers, .. } = &mut *state;
        let Some(consumer) = consumers.get_mut(name) else { return (None, None) };
        let expired = consumer.outstanding.iter().find(|(_, o)| o.due <= now).map(|(seq, _)| *seq);
        if let Some(seq) = expired {
            let Some((subject, payload)) = messages.get(&seq) else {
                consumer.outstanding.remove(&seq);
                return (None, Some(now));
            };
            let entry = consumer.outstanding.entry(seq).or_insert(Outstanding { due: now, deliveries: 0 });
            entry.due = now + consumer.ack_wait;
            entry.deliveries += 1;
            let taken = Taken { seq, subject: subject.clone(), payload: payload.clone(), deliveries: entry.deliveries };
            return (Some(taken), None);
        }
        let fresh = messages
            .range(consumer.cursor + 1..)
            .find(|(_, (subject, _))| subjects::matches(&consumer.filter, subject))
            .map(|(seq, (subject, payload))| (*seq, subject.clone(), payload.clone()));
        match fresh {
            Some((seq, subject, payload)) => {
                consumer.cursor = seq;
                consumer.outstanding.insert(seq, Outstanding { due: now + consumer.ack_wait, deliveries: 1 });
                (Some(Taken { seq, subject, payload, deliveries: 1 }), None)
            }
            None => (None, consumer.outstanding.values().map(|o| o.due).min()),
        }
    }

    pub fn ack(&self, consumer: &str, seq: u64) {
        let mut state = self.state();
        if let Some(c) = state.consumers.get_mut(consumer) {
            c.outstanding.remove(&seq);
        }
        if self.delete_on_ack {
            state.messages.remove(&seq);
        }
    }

    pub fn reschedule(&self, consumer: &str, seq: u64, due: Instant) {
        if let Some(o) = self.state().consumers.get_mut(consumer).and_then(|c| c.outstanding.get_mut(&seq)) {
            o.due = due;
        }
        self.changed.notify_waiters();
    }

    pub fn extend(&self, consumer: &str, seq: u64) {
        let mut state = self.state();
        if let Some(c) = state.consumers.get_mut(consumer) {
            let ack_wait = c.ack_wait;
            if let Some(o) = c.outstanding.get_mut(&seq) {
                o.due = Instant::now() + ack_wait;
            }
        }
    }
}
