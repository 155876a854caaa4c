//! The transport traits. Native `async fn` in traits (no boxing); every future is `Send` so
//! services can run on the multi-threaded runtime.

use crate::Result;
use bytes::Bytes;
use std::future::Future;
use std::time::Duration;

/// A message handed to a consumer, to be settled exactly once.
///
/// Settling consumes the delivery; dropping it unsettled leaves the lease to expire, after which
/// the message is delivered again (that is what happens when a process dies).
pub trait Delivery: Send + Sync + 'static {
    /// The subject it was published on.
    fn subject(&self) -> &str;
    /// The body.
    fn payload(&self) -> &Bytes;
    /// How many times it has been delivered, this time included (1 = first delivery).
    fn deliveries(&self) -> u32;
    /// Done: never deliver it again.
    fn ack(self) -> impl Future<Output = Result<()>> + Send;
    /// Not done: deliver it again after `delay`.
    fn nak(self, delay: Duration) -> impl Future<Output = Result<()>> + Send;
    /// Still working: restart the lease clock.
    fn in_progress(&self) -> impl Future<Output = Result<()>> + Send;
    /// Poison: move it to the dead-letter stream with a reason and never deliver it again.
    fn dead_letter(self, reason: &str) -> impl Future<Output = Result<()>> + Send;
}

/// A durable consumer of events.
pub trait EventStream: Send + 'static {
    /// The delivery type.
    type Delivery: Delivery;
    /// The next event, or `None` if none arrives within `wait`.
    fn next(&mut self, wait: Duration) -> impl Future<Output = Result<Option<Self::Delivery>>> + Send;
}

/// The durable event log.
pub trait Events: Send + Sync + 'static {
    /// The consumer type.
    type Stream: EventStream;

    /// Appends an event; a second publish with the same `msg_id` within the duplicate window is
    /// dropped and answers the first one's sequence.
    fn publish_event(&self, subject: &str, msg_id: &str, payload: Bytes) -> impl Future<Output = Result<u64>> + Send;

    /// Binds (creating if absent) the durable consumer `durable` over `filter`. A consumer that
    /// is bound again resumes after its last acknowledged event; unacknowledged ones come again
    /// once their ack wait passes.
    fn event_stream(
        &self,
        durable: &str,
        filter: &str,
        ack_wait: Duration,
    ) -> impl Future<Output = Result<Self::Stream>> + Send;

    /// Up to `limit` stored events whose subject matches `filter`, oldest first, without
    /// consuming them: how `muster audit` reads a run's trail.
    fn history(&self, filter: &str, limit: usize) -> impl Future<Output = Result<Vec<(String, Bytes)>>> + Send;
}

/// A message moved aside because it could not be processed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The queue it came from.
    pub queue: String,
    /// Why it was moved.
    pub reason: String,
    /// How often it had been delivered.
    pub deliveries: u32,
    /// The original body, untouched.
    pub payload: Bytes,
}

/// One work queue per role.
pub trait WorkQueue: Send + Sync + 'static {
    /// The delivery type.
    type Work: Delivery;

    /// Adds work; a second enqueue with the same `msg_id` within the duplicate window is dropped.
    fn enqueue(&self, queue: &str, msg_id: &str, payload: Bytes) -> impl Future<Output = Result<()>> + Send;

    /// Claims the next message, waiting up to `wait`. The claim is a lease of the queue's ack
    /// wait; messages delivered more than the queue's max deliveries are dead-lettered here
    /// instead of being returned.
    fn claim(&self, queue: &str, wait: Duration) -> impl Future<Output = Result<Option<Self::Work>>> + Send;

    /// The dead letters of a queue, oldest first.
    fn dead_letters(&self, queue: &str) -> impl Future<Output = Result<Vec<DeadLetter>>> + Send;
}

/// The KV buckets muster uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Bucket {
    /// Run snapshots, key = run id.
    Runs,
    /// Leadership leases, key = the role that needs a single leader (`orchestrator`).
    Leases,
    /// What triggers have done, so a retried or repeated trigger never starts a second run:
    /// idempotency keys (→ the run they started) and the last fire of each cron schedule.
    Triggers,
    /// Prompts people answer, by short number: `n.<number>` → the run and what is asked, and
    /// `counter` → the last number handed out (so `ESC-12` can be typed without a run id).
    Prompts,
    /// Answer nonces, created once each: a second create means a replayed answer. Entries expire
    /// after [`NONCE_TTL`], longer than any answer is valid.
    Nonces,
}

/// How long a used answer nonce is remembered; answers expire well before this.
pub const NONCE_TTL: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

impl Bucket {
    /// Every bucket, for provisioning.
    pub const ALL: [Bucket; 5] = [Bucket::Runs, Bucket::Leases, Bucket::Triggers, Bucket::Prompts, Bucket::Nonces];

    /// The bucket's name on the server.
    pub fn name(self) -> &'static str {
        match self {
            Bucket::Runs => "muster_runs",
            Bucket::Leases => "muster_leases",
            Bucket::Triggers => "muster_triggers",
            Bucket::Prompts => "muster_prompts",
            Bucket::Nonces => "muster_nonces",
        }
    }
}

/// A KV value with the revision that a compare-and-set must name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvEntry {
    /// The value.
    pub value: Bytes,
    /// Its revision.
    pub revision: u64,
}

/// Snapshots with compare-and-set.
pub trait Kv: Send + Sync + 'static {
    /// The current value, if any.
    fn kv_get(&self, bucket: Bucket, key: &str) -> impl Future<Output = Result<Option<KvEntry>>> + Send;
    /// Creates the key; [`crate::Error::AlreadyExists`] if present. Returns the revision.
    fn kv_create(&self, bucket: Bucket, key: &str, value: Bytes) -> impl Future<Output = Result<u64>> + Send;
    /// Replaces the value if the revision is still `expected`; else
    /// [`crate::Error::RevisionMismatch`]. Returns the new revision.
    fn kv_update(
        &self,
        bucket: Bucket,
        key: &str,
        value: Bytes,
        expected: u64,
    ) -> impl Future<Output = Result<u64>> + Send;
    /// Every key, in no particular order.
    fn kv_keys(&self, bucket: Bucket) -> impl Future<Output = Result<Vec<String>>> + Send;
}

/// A request received by a server; answer it with [`Request::respond`].
pub trait Request: Send + 'static {
    /// The subject it was sent to.
    fn subject(&self) -> &str;
    /// The body.
    fn payload(&self) -> &Bytes;
    /// Sends the reply.
    fn respond(self, payload: Bytes) -> impl Future<Output = Result<()>> + Send;
}

/// A subscription to requests or signals.
pub trait Subscription: Send + 'static {
    /// What arrives on it.
    type Item: Send;
    /// The next item, or `None` when the subscription ended.
    fn next(&mut self) -> impl Future<Output = Option<Self::Item>> + Send;
}

/// Request/reply and lossy signals (heartbeats, progress): core NATS, never persisted.
pub trait Messaging: Send + Sync + 'static {
    /// Incoming requests.
    type Requests: Subscription<Item = Self::Request>;
    /// One request.
    type Request: Request;
    /// Incoming signals.
    type Signals: Subscription<Item = (String, Bytes)>;

    /// Sends a request and waits for one reply.
    fn request(&self, subject: &str, payload: Bytes, timeout: Duration) -> impl Future<Output = Result<Bytes>> + Send;
    /// Serves requests on `subject` (wildcards allowed); several servers share the load.
    fn serve(&self, subject: &str) -> impl Future<Output = Result<Self::Requests>> + Send;
    /// Publishes a signal; nobody listening is fine.
    fn signal(&self, subject: &str, payload: Bytes) -> impl Future<Output = Result<()>> + Send;
    /// Receives signals matching `subject` (wildcards allowed).
    fn signals(&self, subject: &str) -> impl Future<Output = Result<Self::Signals>> + Send;
}

/// Everything a muster process needs from its transport.
pub trait Bus: Events + WorkQueue + Kv + Messaging + Clone {}

impl<T: Events + WorkQueue + Kv + Messaging + Clone> Bus for T {}
