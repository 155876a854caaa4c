//! Options of the NATS transport and the idempotent creation of its streams, consumers and
//! buckets.

use super::NatsBus;
use crate::traits::Bucket;
use crate::{Error, Result};
use async_nats::jetstream::{consumer, kv, stream};
use std::time::Duration;

/// How to reach NATS and how the muster streams are laid out.
#[derive(Debug, Clone)]
pub struct NatsOptions {
    /// Server URL(s), e.g. `nats://127.0.0.1:4222`.
    pub url: String,
    /// Subject prefix and stream/bucket name prefix.
    pub prefix: String,
    /// Client name shown in server monitoring.
    pub client_name: String,
    /// Value of the `Content-Type` header on every published message.
    pub content_type: String,
    /// Lease of a work claim (the work consumers' ack wait).
    pub work_ack_wait: Duration,
    /// Deliveries of one work message before it is dead-lettered.
    pub max_deliver: u32,
    /// Window in which a repeated message id is dropped.
    pub duplicate_window: Duration,
    /// Work messages the work stream holds before publishes are refused.
    pub work_max_messages: i64,
    /// Give up connecting after this long.
    pub connect_timeout: Duration,
}

impl NatsOptions {
    /// Defaults for a server at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            prefix: "muster".into(),
            client_name: "muster".into(),
            content_type: "application/octet-stream".into(),
            work_ack_wait: Duration::from_secs(30),
            max_deliver: 5,
            duplicate_window: Duration::from_secs(600),
            work_max_messages: 100_000,
            connect_timeout: Duration::from_secs(5),
        }
    }
}

impl NatsBus {
    /// Creates (or updates) every stream, role consumer and bucket. Safe to call on every start.
    pub async fn provision(&self, queues: &[&str]) -> Result<()> {
        let inner = &self.inner;
        let options = &inner.options;
        let subjects = &inner.subjects;
        let streams = [
            (
                self.stream_name("WORK"),
                subjects.work_all(),
                stream::RetentionPolicy::WorkQueue,
                options.work_max_messages,
            ),
            (self.stream_name("EVENTS"), subjects.event_all(), stream::RetentionPolicy::Limits, -1),
            (self.stream_name("DLQ"), subjects.dead_letter_all(), stream::RetentionPolicy::Limits, -1),
            (self.stream_name("AUDIT"), subjects.audit_all(), stream::RetentionPolicy::Limits, -1),
        ];
        for (name, subject, retention, max_messages) in streams {
            let config = stream::Config {
                name: name.clone(),
                subjects: vec![subject],
                retention,
                max_messages,
                discard: stream::DiscardPolicy::New,
                storage: stream::StorageType::File,
                duplicate_window: options.duplicate_window,
                ..Default::default()
            };
            inner
                .js
                .get_or_create_stream(config)
                .await
                .map_err(|e| Error::Unavailable(format!("stream {name}: {e}")))?;
        }
        let work = self.stream("WORK").await?;
        for queue in queues {
            let name = format!("work-{queue}");
            let config = consumer::pull::Config {
                durable_name: Some(name.clone()),
                filter_subject: subjects.work(queue),
                ack_policy: consumer::AckPolicy::Explicit,
                ack_wait: options.work_ack_wait,
                // Unlimited at the server: the bus counts deliveries and dead-letters itself, so
                // the message is moved aside with a reason instead of silently parked.
                max_deliver: -1,
                ..Default::default()
            };
            work.get_or_create_consumer(&name, config)
                .await
                .map_err(|e| Error::Unavailable(format!("consumer {name}: {e}")))?;
        }
        for bucket in Bucket::ALL {
            let name = self.bucket_name(bucket);
            if inner.js.get_key_value(&name).await.is_ok() {
                continue;
            }
            let max_age = if bucket == Bucket::Nonces { crate::traits::NONCE_TTL } else { Duration::ZERO };
            let config = kv::Config {
                bucket: name.clone(),
                history: 1,
                max_age,
                storage: stream::StorageType::File,
                ..Default::default()
            };
            inner.js.create_key_value(config).await.map_err(|e| Error::Unavailable(format!("bucket {name}: {e}")))?;
        }
        Ok(())
    }
}
