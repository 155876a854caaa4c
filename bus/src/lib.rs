//! The muster transport: one trait family, two implementations, one conformance suite.
//!
//! - [`Events`]: a durable, ordered event log with durable consumers that resume after the last
//!   acknowledged message (NATS: stream `MUSTER_EVENTS`).
//! - [`WorkQueue`]: one queue per role; claim with a lease, ack, nak with delay, extend the lease
//!   while working, redelivery when a lease expires, dead letter after too many deliveries
//!   (NATS: stream `MUSTER_WORK` + one durable pull consumer per queue, stream `MUSTER_DLQ`).
//! - [`Kv`]: snapshots with create-if-absent and update-if-revision-matches (NATS: KV buckets).
//! - [`Messaging`]: request/reply and fire-and-forget signals (NATS core: heartbeats, triggers).
//!
//! [`memory::MemoryBus`] implements all of them in-process with the same semantics (bounded
//! queues, leases on tokio's clock) and is *not* durable. [`nats::NatsBus`] is the production
//! transport. [`conformance`] (feature `test-util`) holds the checks both must pass, and
//! [`testing`] starts a real `nats-server` for tests.
//!
//! Subjects are built by [`subjects`] and nowhere else.

pub mod error;
pub mod memory;
pub mod nats;
pub mod subjects;
mod traits;

#[cfg(feature = "test-util")]
pub mod conformance;
#[cfg(feature = "test-util")]
pub mod testing;

pub use error::{Error, Result};
pub use traits::{
    Bucket, Bus, DeadLetter, Delivery, EventStream, Events, Kv, KvEntry, Messaging, Request, Subscription, WorkQueue,
};
