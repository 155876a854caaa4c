//! Exactly one orchestrator leads: a lease in the `muster_leases` KV bucket, taken with
//! create-if-absent (or, once expired, with update-if-revision), renewed every third of its TTL
//! with update-if-revision. A renewal that finds another revision means another orchestrator
//! took over: this one stops serving at once. A standby polls and takes over within the TTL plus
//! one poll after the leader stops renewing.
//!
//! Limit: KV compare-and-set is per key, so a run write cannot be made conditional on the lease
//! revision atomically. The leader re-checks that it still holds the lease before every run
//! transition (`still_leads`), which narrows — but does not close — the window in which a leader
//! that stalled past its TTL could write after its successor started.

use crate::Result;
use bytes::Bytes;
use jiff::Timestamp;
use muster_bus::{Bucket, Error as BusError, Kv};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// The key of the orchestrator's lease.
pub const ORCHESTRATOR: &str = "orchestrator";

/// The lease value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// Who holds it.
    pub holder: String,
    /// Until when, unless renewed.
    pub expires: Timestamp,
}

/// A held lease: the revision is the fencing token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    /// The KV revision of the last successful write of the lease.
    pub revision: u64,
}

fn encode(lease: &Lease) -> Result<Bytes> {
    Ok(Bytes::from(muster_schemas::codec::encode_value(lease)?))
}

/// Tries once to take the lease. `Ok(None)`: someone else holds it and it has not expired.
pub async fn try_acquire<B: Kv>(bus: &B, holder: &str, ttl: Duration) -> Result<Option<Held>> {
    let lease = Lease { holder: holder.to_owned(), expires: expiry(ttl) };
    match bus.kv_get(Bucket::Leases, ORCHESTRATOR).await? {
        None => match bus.kv_create(Bucket::Leases, ORCHESTRATOR, encode(&lease)?).await {
            Ok(revision) => Ok(Some(Held { revision })),
            Err(BusError::AlreadyExists) => Ok(None),
            Err(err) => Err(err.into()),
        },
        Some(entry) => {
            let current: Option<Lease> = muster_schemas::codec::decode_value(&entry.value).ok();
            let free = current.as_ref().is_none_or(|l| l.expires <= Timestamp::now() || l.holder == holder);
            if !free {
                return Ok(None);
            }
            match bus.kv_update(Bucket::Leases, ORCHESTRATOR, encode(&lease)?, entry.revision).await {
                Ok(revision) => Ok(Some(Held { revision })),
                Err(BusError::RevisionMismatch) => Ok(None),
                Err(err) => Err(err.into()),
            }
        }
    }
}

/// Renews a held lease; `Ok(None)` when it was lost (another revision is there).
pub async fn renew<B: Kv>(bus: &B, holder: &str, held: Held, ttl: Duration) -> Result<Option<Held>> {
    let lease = Lease { holder: holder.to_owned(), expires: expiry(ttl) };
    match bus.kv_update(Bucket::Leases, ORCHESTRATOR, encode(&lease)?, held.revision).await {
        Ok(revision) => Ok(Some(Held { revision })),
        Err(BusError::RevisionMismatch) => Ok(None),
        Err(err) => Err(err.into()),
    }
}

/// Whether `holder` still holds the lease at `held`'s revision.
pub async fn still_leads<B: Kv>(bus: &B, held: Held) -> Result<bool> {
    Ok(bus.kv_get(Bucket::Leases, ORCHESTRATOR).await?.is_some_and(|e| e.revision == held.revision))
}

fn expiry(ttl: Duration) -> Timestamp {
    let ttl = jiff::SignedDuration::try_from(ttl).unwrap_or(jiff::SignedDuration::from_secs(10));
    Timestamp::now().checked_add(ttl).unwrap_or_else(|_| Timestamp::now())
}

/// Waits until this orchestrator leads (or `cancel` fires).
pub async fn acquire<B: Kv>(bus: &B, holder: &str, ttl: Duration, cancel: &CancellationToken) -> Option<Held> {
    let mut announced = false;
    loop {
        match try_acquire(bus, holder, ttl).await {
            Ok(Some(held)) => {
                info!(holder, revision = held.revision, "leading");
                return Some(held);
            }
            Ok(None) if !announced => {
                info!(holder, "standing by: another orchestrator leads");
                announced = true;
            }
            Ok(None) => {}
            Err(err) => warn!(error = %err, "cannot read the leadership lease; retrying"),
        }
        tokio::select! {
            () = cancel.cancelled() => return None,
            () = tokio::time::sleep(ttl / 4) => {}
        }
    }
}

/// Renews every third of the TTL until the lease is lost (then cancels `serving`), serving stops,
/// or `cancel` fires; publishes each new revision in `revision` for the write fence.
pub async fn keep<B: Kv>(
    bus: &B,
    holder: &str,
    mut held: Held,
    ttl: Duration,
    serving: &CancellationToken,
    cancel: &CancellationToken,
    revision: &std::sync::atomic::AtomicU64,
) {
    loop {
        tokio::select! {
            () = serving.cancelled() => return,
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(ttl / 3) => {}
        }
        match renew(bus, holder, held, ttl).await {
            Ok(Some(next)) => {
                held = next;
                revision.store(next.revision, std::sync::atomic::Ordering::SeqCst);
            }
            Ok(None) => {
                warn!(holder, "leadership lost: another orchestrator took over; stopping");
                serving.cancel();
                return;
            }
            Err(err) => warn!(error = %err, "cannot renew the leadership lease; retrying"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use muster_bus::memory::MemoryBus;

    #[tokio::test]
    async fn one_leader_at_a_time_and_takeover_after_expiry() {
        let bus = MemoryBus::new();
        let ttl = Duration::from_millis(300);
        let first = try_acquire(&bus, "a", ttl).await.unwrap().expect("the first takes it");
        assert_eq!(try_acquire(&bus, "b", ttl).await.unwrap(), None, "held and fresh");
        let renewed = renew(&bus, "a", first, ttl).await.unwrap().expect("renewed");
        assert!(!still_leads(&bus, first).await.unwrap(), "the old revision no longer leads");
        assert!(still_leads(&bus, renewed).await.unwrap());
        tokio::time::sleep(ttl + Duration::from_millis(50)).await;
        let second = try_acquire(&bus, "b", ttl).await.unwrap().expect("expired: b takes over");
        assert_eq!(renew(&bus, "a", renewed, ttl).await.unwrap(), None, "a finds it lost");
        assert!(still_leads(&bus, second).await.unwrap());
    }
}
