//! Webhook signatures.
//!
//! A caller signs each request with the protocol's shared secret:
//!
//! ```text
//! X-Muster-Timestamp: 1764082800
//! X-Muster-Signature: v1=<hex HMAC-SHA256(secret, "1764082800." ++ raw body)>
//! ```
//!
//! The timestamp is inside the MAC, so a captured request cannot be replayed once it is more
//! than [`REPLAY_WINDOW_SECS`] away from the gateway's clock. The `Idempotency-Key` header is not
//! signed; within the window [`super::replay`] refuses a signature seen before with another key.
//! The `v1=` prefix leaves room for another scheme later without guessing from the digest's
//! length.

use crate::request_signature::{self, HmacSha256, Problem};
use hmac::Mac;
use std::fmt;

pub use crate::request_signature::REPLAY_WINDOW_SECS;

/// The header carrying the unix time the caller signed at.
pub const TIMESTAMP_HEADER: &str = "x-muster-timestamp";

/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "x-muster-signature";

/// The only signature scheme so far.
const SCHEME: &str = "v1=";

/// A shared webhook secret. Its `Debug` never shows the bytes, so it cannot leak into logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Wraps the secret's bytes (the environment variable's value, used as is).
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Self(bytes.into())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Why a request's signature was not accepted. Each says what to fix, never what the expected
/// signature was.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No timestamp header.
    #[error("missing X-Muster-Timestamp header (unix seconds, signed with the body)")]
    MissingTimestamp,
    /// The timestamp is not a whole number of seconds.
    #[error("X-Muster-Timestamp must be unix seconds, e.g. 1764082800")]
    BadTimestamp,
    /// The timestamp is outside the replay window.
    #[error("X-Muster-Timestamp is {skew}s away from the server's clock; at most {REPLAY_WINDOW_SECS}s is accepted")]
    Stale {
        /// Seconds between the timestamp and now.
        skew: u64,
    },
    /// No signature header.
    #[error("missing X-Muster-Signature header (v1=<hex HMAC-SHA256>)")]
    MissingSignature,
    /// The signature header is not `v1=` and 64 hex digits.
    #[error("X-Muster-Signature must be `v1=` followed by 64 hex digits")]
    Malformed,
    /// Well formed, but not made with this protocol's secret over this timestamp and body.
    #[error("signature does not match the body and timestamp")]
    Mismatch,
}

/// A signature that checked out: what the replay guard remembers it by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    /// The MAC the caller sent (decoded, so `v1=AB..` and `v1=ab..` are the same signature).
    pub digest: [u8; 32],
    /// The signed unix time.
    pub timestamp: i64,
}

/// Checks a request's signature against any of `secrets` (several let a secret be rotated),
/// comparing in constant time. `now` is unix seconds. Header values are passed as received.
pub fn verify(
    secrets: &[Secret],
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<Verified, SignatureError> {
    let keys = secrets.iter().map(|secret| secret.0.as_slice());
    let checked = request_signature::verify(keys, timestamp, signature, SCHEME, now, |mac, timestamp| {
        layout(mac, timestamp, body)
    })
    .map_err(SignatureError::from)?;
    Ok(Verified { digest: checked.digest, timestamp: checked.timestamp })
}

impl From<Problem> for SignatureError {
    fn from(problem: Problem) -> Self {
        match problem {
            Problem::MissingTimestamp => SignatureError::MissingTimestamp,
            Problem::BadTimestamp => SignatureError::BadTimestamp,
            Problem::Stale { skew } => SignatureError::Stale { skew },
            Problem::MissingSignature => SignatureError::MissingSignature,
            Problem::Malformed => SignatureError::Malformed,
            Problem::Mismatch => SignatureError::Mismatch,
        }
    }
}

/// The signed message: `"{timestamp}.{body}"`.
fn layout(mac: &mut HmacSha256, timestamp: &str, body: &[u8]) {
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
}

/// The MAC over the signed message (what tests sign with).
#[cfg(test)]
fn keyed(secret: &Secret, timestamp: &str, body: &[u8]) -> Option<HmacSha256> {
    request_signature::mac(&secret.0, timestamp, &|mac: &mut HmacSha256, timestamp: &str| layout(mac, timestamp, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_764_082_800;

    fn sign(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
        let mac = keyed(&Secret::new(secret), timestamp, body).unwrap();
        format!("{SCHEME}{}", hex::encode(mac.finalize().into_bytes()))
    }

    fn check(secret: &[u8], timestamp: &str, signature: &str, body: &[u8]) -> Result<(), SignatureError> {
        verify(&[Secret::new(secret)], Some(timestamp), Some(signature), body, NOW).map(|_| ())
    }

    #[test]
    fn a_good_signature_is_accepted() {
        let body = br#"{"inputs":{"env":"staging"}}"#;
        let ts = NOW.to_string();
        assert_eq!(check(b"s3cret", &ts, &sign(b"s3cret", &ts, body), body), Ok(()));
    }

    /// The same computation `openssl dgst -sha256 -hmac` does, so the documented shell example
    /// signs what the gateway checks.
    #[test]
    fn matches_a_known_vector() {
        // printf '1764082800.{}' | openssl dgst -sha256 -hmac s3cret
        let expected = "v1=9827144d2995b84f9dace121ac622a4dfd7e9e5c3a08d8b6d8b4320c51c3dc42";
        assert_eq!(sign(b"s3cret", "1764082800", b"{}"), expected);
    }

    #[test]
    fn a_wrong_secret_is_refused() {
        let ts = NOW.to_string();
        assert_eq!(check(b"s3cret", &ts, &sign(b"other", &ts, b"{}"), b"{}"), Err(SignatureError::Mismatch));
    }

    #[test]
    fn an_altered_body_is_refused() {
        let ts = NOW.to_string();
        let signature = sign(b"s3cret", &ts, br#"{"inputs":{"env":"staging"}}"#);
        assert_eq!(
            check(b"s3cret", &ts, &signature, br#"{"inputs":{"env":"production"}}"#),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn an_altered_timestamp_is_refused() {
        let signature = sign(b"s3cret", &NOW.to_string(), b"{}");
        assert_eq!(check(b"s3cret", &(NOW - 1).to_string(), &signature, b"{}"), Err(SignatureError::Mismatch));
    }

    #[test]
    fn a_stale_or_future_timestamp_is_refused_even_when_signed() {
        for ts in [NOW - 301, NOW + 301] {
            let ts = ts.to_string();
            assert_eq!(check(b"k", &ts, &sign(b"k", &ts, b"{}"), b"{}"), Err(SignatureError::Stale { skew: 301 }));
        }
        for ts in [NOW - 300, NOW + 300] {
            let ts = ts.to_string();
            assert_eq!(check(b"k", &ts, &sign(b"k", &ts, b"{}"), b"{}"), Ok(()), "the window's edge is inside");
        }
    }

    #[test]
    fn malformed_headers_are_refused_with_what_is_wrong() {
        let ts = NOW.to_string();
        let good = sign(b"k", &ts, b"{}");
        let hex_digits = good.trim_start_matches(SCHEME);
        for bad in [
            hex_digits.to_owned(),                 // no scheme
            format!("v2={hex_digits}"),            // unknown scheme
            format!("v1={}", &hex_digits[..62]),   // short
            format!("v1={hex_digits}00"),          // long
            format!("v1={}zz", &hex_digits[..62]), // not hex
            "v1=".to_owned(),
            String::new(),
        ] {
            assert_eq!(check(b"k", &ts, &bad, b"{}"), Err(SignatureError::Malformed), "{bad:?}");
        }
        for bad_ts in ["", "soon", "-5", "+1764082800", "1764082800.5", " 1764082800", "99999999999999999999999"] {
            assert_eq!(check(b"k", bad_ts, &good, b"{}"), Err(SignatureError::BadTimestamp), "{bad_ts:?}");
        }
        let key = [Secret::new("k")];
        assert_eq!(verify(&key, None, Some(&good), b"{}", NOW).map(|_| ()), Err(SignatureError::MissingTimestamp));
        assert_eq!(verify(&key, Some(&ts), None, b"{}", NOW).map(|_| ()), Err(SignatureError::MissingSignature));
    }

    #[test]
    fn any_of_several_secrets_verifies_so_a_secret_can_be_rotated() {
        let ts = NOW.to_string();
        let secrets = [Secret::new("old"), Secret::new("new")];
        for key in ["old", "new"] {
            let signature = sign(key.as_bytes(), &ts, b"{}");
            assert!(verify(&secrets, Some(&ts), Some(&signature), b"{}", NOW).is_ok());
        }
        assert_eq!(
            verify(&[], Some(&ts), Some(&sign(b"x", &ts, b"{}")), b"{}", NOW).map(|_| ()),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn the_secret_never_shows_in_debug_output() {
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "Secret(..)");
    }
}
