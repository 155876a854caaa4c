//! Refusing a signed request replayed with another idempotency key.
//!
//! The signature covers the timestamp and body but not the `Idempotency-Key` header, so within
//! the replay window someone who captured a request could send it again under a new key and
//! start a second run. This guard remembers each accepted signature with its key until the
//! signature's timestamp leaves the window: the same signature with the same key is a retry and
//! passes (the orchestrator answers it with the existing run); with another key it is refused.
//!
//! The memory is per process and bounded by `capacity` signatures. Expired ones are dropped
//! when it fills; if it is still full, new signatures are refused (503) rather than let through
//! unremembered. Several gateways behind a balancer do not share it.

use super::signature::{REPLAY_WINDOW_SECS, Verified};
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

/// Signatures accepted within the replay window, with the key each came with.
#[derive(Debug)]
pub struct ReplayGuard {
    seen: Mutex<HashMap<[u8; 32], Seen>>,
    capacity: usize,
}

#[derive(Debug)]
struct Seen {
    key: String,
    timestamp: i64,
}

/// Why a verified request was not admitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    /// The signature was already used with a different key.
    #[error(
        "this signature was already used with another Idempotency-Key; sign each new request with a fresh timestamp"
    )]
    Reused,
    /// Too many signatures are live in the window to remember one more.
    #[error("too many signed requests in the last {REPLAY_WINDOW_SECS}s; retry later")]
    Full,
}

impl ReplayGuard {
    /// A guard remembering at most `capacity` signatures.
    pub fn new(capacity: usize) -> Self {
        Self { seen: Mutex::new(HashMap::new()), capacity: capacity.max(1) }
    }

    /// Admits a verified request carrying `key`, at unix time `now`.
    pub fn admit(&self, verified: &Verified, key: &str, now: i64) -> Result<(), ReplayError> {
        // A panic elsewhere while holding the lock leaves the map consistent (every change is a
        // single insert or retain), so a poisoned lock is still usable.
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(earlier) = seen.get(&verified.digest) {
            return if earlier.key == key { Ok(()) } else { Err(ReplayError::Reused) };
        }
        if seen.len() >= self.capacity {
            seen.retain(|_, s| now.abs_diff(s.timestamp) <= REPLAY_WINDOW_SECS);
            if seen.len() >= self.capacity {
                return Err(ReplayError::Full);
            }
        }
        seen.insert(verified.digest, Seen { key: key.to_owned(), timestamp: verified.timestamp });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_764_082_800;

    fn signed(byte: u8, timestamp: i64) -> Verified {
        Verified { digest: [byte; 32], timestamp }
    }

    #[test]
    fn a_retry_passes_but_a_new_key_on_an_old_signature_does_not() {
        let guard = ReplayGuard::new(10);
        assert_eq!(guard.admit(&signed(1, NOW), "a", NOW), Ok(()));
        assert_eq!(guard.admit(&signed(1, NOW), "a", NOW + 5), Ok(()));
        assert_eq!(guard.admit(&signed(1, NOW), "b", NOW + 5), Err(ReplayError::Reused));
        assert_eq!(guard.admit(&signed(2, NOW), "b", NOW + 5), Ok(()));
    }

    #[test]
    fn it_stays_bounded_and_forgets_only_expired_signatures() {
        let guard = ReplayGuard::new(2);
        assert_eq!(guard.admit(&signed(1, NOW), "a", NOW), Ok(()));
        assert_eq!(guard.admit(&signed(2, NOW + 100), "b", NOW), Ok(()));
        assert_eq!(guard.admit(&signed(3, NOW), "c", NOW + 10), Err(ReplayError::Full));
        // Once the first has left the window there is room again; the second is still live.
        assert_eq!(guard.admit(&signed(3, NOW + 301), "c", NOW + 301), Ok(()));
        assert_eq!(guard.admit(&signed(2, NOW + 100), "other", NOW + 301), Err(ReplayError::Reused));
    }
}
