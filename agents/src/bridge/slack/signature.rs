//! Slack's request signatures.
//!
//! Slack signs every request it sends to the app with the app's signing secret:
//!
//! ```text
//! X-Slack-Request-Timestamp: 1531420618
//! X-Slack-Signature: v0=<hex HMAC-SHA256(signing secret, "v0:1531420618:" ++ raw body)>
//! ```
//!
//! The MAC covers the raw bytes exactly as received, so it is checked before the form is
//! decoded: a decoded-then-re-encoded body need not be the same bytes. The timestamp is inside
//! the MAC, and a request more than [`REPLAY_WINDOW_SECS`] away from our clock (either way) is
//! refused, so a captured request cannot be replayed later. The digest is compared in constant
//! time (`hmac`'s `verify_slice`), so timing does not reveal how much of a forgery matched.

use crate::request_signature::{self, HmacSha256, Problem};
use hmac::Mac;
use std::fmt;

/// How far (either way) a request's timestamp may be from our clock; Slack documents five
/// minutes, the same window as every signed request muster takes.
pub use crate::request_signature::REPLAY_WINDOW_SECS;

/// The header carrying the unix time Slack signed at.
pub const TIMESTAMP_HEADER: &str = "x-slack-request-timestamp";

/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "x-slack-signature";

/// The only scheme Slack uses so far; both the basestring and the header start with it.
const VERSION: &str = "v0";

/// The Slack app's signing secret ("Basic Information" → "App Credentials"). Its `Debug` never
/// shows the bytes, so it cannot leak into logs.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningSecret(Vec<u8>);

impl SigningSecret {
    /// Wraps the secret as Slack shows it (the hex text is the key, used as is, not decoded).
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Self(bytes.into())
    }
}

impl fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningSecret(..)")
    }
}

/// Why a request was not accepted as coming from Slack. None of them reveals the expected
/// signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No timestamp header.
    #[error("missing X-Slack-Request-Timestamp header")]
    MissingTimestamp,
    /// The timestamp is not a whole number of seconds.
    #[error("X-Slack-Request-Timestamp must be unix seconds")]
    BadTimestamp,
    /// The timestamp is outside the replay window.
    #[error(
        "X-Slack-Request-Timestamp is {skew}s away from the server's clock; at most {REPLAY_WINDOW_SECS}s is accepted"
    )]
    Stale {
        /// Seconds between the timestamp and now.
        skew: u64,
    },
    /// No signature header.
    #[error("missing X-Slack-Signature header")]
    MissingSignature,
    /// The signature header is not `v0=` and 64 hex digits.
    #[error("X-Slack-Signature must be `v0=` followed by 64 hex digits")]
    Malformed,
    /// Well formed, but not made with our signing secret over this timestamp and body.
    #[error("X-Slack-Signature does not match the body, the timestamp and the signing secret")]
    Mismatch,
}

/// Checks a request's signature. Header values are passed as received; `now` is unix seconds
/// (a parameter so that tests, and Slack's documented example from 2018, are deterministic).
pub fn verify(
    secret: &SigningSecret,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<(), SignatureError> {
    let scheme = format!("{VERSION}=");
    request_signature::verify([secret.0.as_slice()], timestamp, signature, &scheme, now, |mac, timestamp| {
        layout(mac, timestamp, body)
    })
    .map(drop)
    .map_err(SignatureError::from)
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

/// The `X-Slack-Signature` value Slack would send for `body` at `timestamp`: what tests and
/// local tools (`curl` against a development bridge) sign with.
pub fn sign(secret: &SigningSecret, timestamp: &str, body: &[u8]) -> String {
    keyed(secret, timestamp, body)
        .map(|mac| format!("{VERSION}={}", hex::encode(mac.finalize().into_bytes())))
        .unwrap_or_default()
}

/// The basestring Slack signs: `v0:{timestamp}:{body}`.
fn layout(mac: &mut HmacSha256, timestamp: &str, body: &[u8]) {
    mac.update(VERSION.as_bytes());
    mac.update(b":");
    mac.update(timestamp.as_bytes());
    mac.update(b":");
    mac.update(body);
}

/// The MAC over the basestring.
fn keyed(secret: &SigningSecret, timestamp: &str, body: &[u8]) -> Option<HmacSha256> {
    request_signature::mac(&secret.0, timestamp, &|mac: &mut HmacSha256, timestamp: &str| layout(mac, timestamp, body))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    // Slack's worked example ("Verifying requests from Slack"): a slash command with empty
    // text, its signing secret, timestamp and the signature Slack sent.
    pub(crate) const DOC_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
    pub(crate) const DOC_TIMESTAMP: &str = "1531420618";
    pub(crate) const DOC_BODY: &str = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    pub(crate) const DOC_SIGNATURE: &str = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";
    pub(crate) const DOC_NOW: i64 = 1_531_420_618;

    fn doc_secret() -> SigningSecret {
        SigningSecret::new(DOC_SECRET)
    }

    fn check(secret: &str, timestamp: &str, signature: &str, body: &str, now: i64) -> Result<(), SignatureError> {
        verify(&SigningSecret::new(secret), Some(timestamp), Some(signature), body.as_bytes(), now)
    }

    #[test]
    fn the_hmac_of_slacks_documented_example_is_the_documented_signature() {
        assert_eq!(sign(&doc_secret(), DOC_TIMESTAMP, DOC_BODY.as_bytes()), DOC_SIGNATURE);
    }

    #[test]
    fn slacks_documented_request_verifies_within_the_window() {
        for now in [DOC_NOW, DOC_NOW + 299, DOC_NOW + 300, DOC_NOW - 300] {
            assert_eq!(check(DOC_SECRET, DOC_TIMESTAMP, DOC_SIGNATURE, DOC_BODY, now), Ok(()), "now = {now}");
        }
        let upper = DOC_SIGNATURE.replacen("a2114d", "A2114D", 1);
        assert_eq!(check(DOC_SECRET, DOC_TIMESTAMP, &upper, DOC_BODY, DOC_NOW), Ok(()), "hex is case-insensitive");
    }

    #[test]
    fn an_altered_body_timestamp_or_secret_is_refused() {
        let altered_body = DOC_BODY.replace("text=&", "text=answer+ESC-1+rollback&");
        assert_eq!(
            check(DOC_SECRET, DOC_TIMESTAMP, DOC_SIGNATURE, &altered_body, DOC_NOW),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(check(DOC_SECRET, "1531420619", DOC_SIGNATURE, DOC_BODY, DOC_NOW), Err(SignatureError::Mismatch));
        assert_eq!(
            check("8f742231b10e8888abcd99yyyzzz85a6", DOC_TIMESTAMP, DOC_SIGNATURE, DOC_BODY, DOC_NOW),
            Err(SignatureError::Mismatch)
        );
        let mut flipped = DOC_SIGNATURE.to_owned();
        flipped.replace_range(66.., "4");
        assert_eq!(check(DOC_SECRET, DOC_TIMESTAMP, &flipped, DOC_BODY, DOC_NOW), Err(SignatureError::Mismatch));
    }

    #[test]
    fn stale_and_future_timestamps_are_refused_even_when_signed() {
        assert_eq!(
            check(DOC_SECRET, DOC_TIMESTAMP, DOC_SIGNATURE, DOC_BODY, DOC_NOW + 301),
            Err(SignatureError::Stale { skew: 301 })
        );
        assert_eq!(
            check(DOC_SECRET, DOC_TIMESTAMP, DOC_SIGNATURE, DOC_BODY, DOC_NOW - 301),
            Err(SignatureError::Stale { skew: 301 })
        );
        // Today's clock: the 2018 example is years old.
        let now = jiff::Timestamp::now().as_second();
        assert!(matches!(
            check(DOC_SECRET, DOC_TIMESTAMP, DOC_SIGNATURE, DOC_BODY, now),
            Err(SignatureError::Stale { .. })
        ));
    }

    #[test]
    fn malformed_headers_are_refused_with_what_is_wrong() {
        let hex_digits = DOC_SIGNATURE.trim_start_matches("v0=");
        for bad in [
            hex_digits.to_owned(),
            format!("v1={hex_digits}"),
            format!("v0:{hex_digits}"),
            format!("v0={}", &hex_digits[..62]),
            format!("v0={hex_digits}00"),
            format!("v0={}zz", &hex_digits[..62]),
            format!(" v0={hex_digits}"),
            "v0=".to_owned(),
            String::new(),
        ] {
            assert_eq!(
                check(DOC_SECRET, DOC_TIMESTAMP, &bad, DOC_BODY, DOC_NOW),
                Err(SignatureError::Malformed),
                "{bad:?}"
            );
        }
        for bad in ["", "soon", "-5", "+1531420618", "1531420618.5", " 1531420618", "99999999999999999999999"] {
            assert_eq!(
                check(DOC_SECRET, bad, DOC_SIGNATURE, DOC_BODY, DOC_NOW),
                Err(SignatureError::BadTimestamp),
                "{bad:?}"
            );
        }
        let secret = doc_secret();
        let body = DOC_BODY.as_bytes();
        assert_eq!(verify(&secret, None, Some(DOC_SIGNATURE), body, DOC_NOW), Err(SignatureError::MissingTimestamp));
        assert_eq!(verify(&secret, Some(DOC_TIMESTAMP), None, body, DOC_NOW), Err(SignatureError::MissingSignature));
    }

    #[test]
    fn the_secret_never_shows_in_debug_output() {
        assert_eq!(format!("{:?}", doc_secret()), "SigningSecret(..)");
    }
}
