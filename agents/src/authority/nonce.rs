//! Nonces: making each signed answer usable once.
//!
//! A signature proves who said something, not that they said it *now*: anyone who sees an
//! envelope on the bus could send it again while it is valid. Each body carries a random nonce;
//! the orchestrator records `<principal>.<nonce>` with a create-if-absent in the
//! [`Bucket::Nonces`] KV bucket, and a create that finds the key means a replay. Keys expire
//! after the bucket's TTL (24 h), far beyond [`super::MAX_VALIDITY`], so a nonce is forgotten
//! only once the answer carrying it could no longer pass [`super::verify()`] anyway.

use super::map::valid_principal_name;
use super::refusal::{Refusal, clip};
use super::verify::Verified;
use bytes::Bytes;
use muster_bus::{Bucket, Kv};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Why a nonce could not be consumed.
#[derive(Debug, thiserror::Error)]
pub enum NonceError {
    /// The answer is refused (a replay, or a nonce that cannot be a key).
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The bus could not record the nonce; the answer was not acted on and may be sent again.
    #[error("could not record the answer's nonce: {0}")]
    Bus(#[from] muster_bus::Error),
}

/// Whether `nonce` has the shape [`new_nonce`] gives: 16–64 lowercase hex digits. Anything else
/// is refused rather than normalized, so one nonce has exactly one key.
pub fn valid_nonce(nonce: &str) -> bool {
    (16..=64).contains(&nonce.len()) && nonce.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Records the answer's nonce; refused as [`Refusal::Replayed`] if it was recorded before.
///
/// Call it once per verified envelope, before acting on it and whatever the authority check
/// says (see `docs/answers.md`), so an authentic envelope is looked at most once. A
/// [`NonceError::Bus`] leaves the nonce unrecorded: the answer must not be acted on, and the
/// sender may retry the same envelope.
pub async fn consume_nonce<K: Kv>(kv: &K, verified: &Verified) -> Result<(), NonceError> {
    let nonce = &verified.body.nonce;
    if !valid_nonce(nonce) {
        return Err(Refusal::Malformed {
            reason: format!("nonce `{}` is not 16-64 lowercase hex digits", clip(nonce, 64)),
        }
        .into());
    }
    // `verify` only returns principals of the map, whose names `ResponderMap::validate` keeps to
    // key-safe characters; a `Verified` built by hand is checked here too.
    if !valid_principal_name(&verified.principal) {
        return Err(Refusal::Malformed {
            reason: format!("principal `{}` cannot name a nonce", clip(&verified.principal, 64)),
        }
        .into());
    }
    let key = format!("{}.{nonce}", verified.principal);
    // Who and what, for whoever inspects the bucket; nothing reads it back.
    let value = Bytes::from(format!("{} {} {}", verified.person, verified.body.run_id, verified.body.prompt));
    match kv.kv_create(Bucket::Nonces, &key, value).await {
        Ok(_) => Ok(()),
        Err(muster_bus::Error::AlreadyExists) => {
            Err(Refusal::Replayed { principal: verified.principal.clone() }.into())
        }
        Err(err) => Err(err.into()),
    }
}

/// A fresh nonce: 128 random bits as 32 lowercase hex digits.
///
/// Replay protection needs nonces that never repeat for a principal, not secret ones (the
/// signature already stops forgery). If the operating system's generator fails, the nonce is
/// built from the clock, the process id and a counter instead: still unique, just guessable.
pub fn new_nonce() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default();
        let count = COUNTER.fetch_add(1, Ordering::Relaxed);
        let mixed = (nanos as u64) ^ (u64::from(std::process::id()) << 40);
        bytes[..8].copy_from_slice(&mixed.to_be_bytes());
        bytes[8..].copy_from_slice(&count.to_be_bytes());
    }
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authority::verify::tests::{body, fixture};
    use crate::authority::verify::verify;
    use muster_bus::memory::MemoryBus;
    use muster_schemas::answer::{Channel, SignedAnswer};

    #[test]
    fn new_nonces_are_valid_and_distinct() {
        let nonces: std::collections::BTreeSet<String> = (0..1000).map(|_| new_nonce()).collect();
        assert_eq!(nonces.len(), 1000);
        assert!(nonces.iter().all(|n| n.len() == 32 && valid_nonce(n)), "{nonces:?}");
    }

    #[tokio::test]
    async fn a_nonce_is_consumed_once_per_principal() {
        let f = fixture();
        let bus = MemoryBus::new();
        let signed = SignedAnswer::sign(&body(f.now, Channel::Matrix, "@bob:example.org"), "bridge", &f.bridge_seed);
        let verified = verify(&f.map, &signed.unwrap(), f.now).unwrap();
        consume_nonce(&bus, &verified).await.unwrap();
        let again = consume_nonce(&bus, &verified).await.unwrap_err();
        assert!(
            matches!(&again, NonceError::Refused(Refusal::Replayed { principal }) if principal == "bridge"),
            "{again:?}"
        );
        let keys = bus.kv_keys(Bucket::Nonces).await.unwrap();
        assert_eq!(keys, vec![format!("bridge.{}", verified.body.nonce)]);

        // The same nonce from another principal is another key.
        let cli = SignedAnswer::sign(&body(f.now, Channel::Cli, "alice"), "alice", &f.alice_seed);
        let verified = verify(&f.map, &cli.unwrap(), f.now).unwrap();
        consume_nonce(&bus, &verified).await.unwrap();
    }

    #[tokio::test]
    async fn a_hand_built_verified_with_a_bad_nonce_or_principal_is_malformed() {
        let f = fixture();
        let bus = MemoryBus::new();
        let good = Verified {
            body: body(f.now, Channel::Matrix, "@bob:example.org"),
            person: "bob".into(),
            principal: "bridge".into(),
        };
        let mut bad_nonce = good.clone();
        bad_nonce.body.nonce = "../../x".into();
        let mut bad_principal = good.clone();
        bad_principal.principal = "a.b".into();
        for verified in [bad_nonce, bad_principal] {
            let err = consume_nonce(&bus, &verified).await.unwrap_err();
            assert!(matches!(err, NonceError::Refused(Refusal::Malformed { .. })), "{err:?}");
        }
        assert!(bus.kv_keys(Bucket::Nonces).await.unwrap().is_empty());
    }
}
