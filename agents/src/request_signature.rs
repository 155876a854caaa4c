//! HMAC-SHA256 request signatures with a signed timestamp, as webhook senders use them (the
//! gateway's HTTP triggers, Slack's requests): the replay window, the `<scheme><hex>` header and
//! the constant-time comparison live here once. Each caller says how its signed message is laid
//! out and names its own headers in its errors.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How far (either way) a request's timestamp may be from our clock.
pub const REPLAY_WINDOW_SECS: u64 = 300;

/// The MAC both senders use.
pub type HmacSha256 = Hmac<Sha256>;

/// Why a signed request was refused, before the caller words it with its header names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// No timestamp header.
    MissingTimestamp,
    /// The timestamp is not a whole number of seconds (`+123` included).
    BadTimestamp,
    /// The timestamp is `skew` seconds away, outside the replay window.
    Stale {
        /// Seconds between the timestamp and now.
        skew: u64,
    },
    /// No signature header.
    MissingSignature,
    /// The signature is not the scheme followed by 64 hex digits.
    Malformed,
    /// Well formed, but made with none of the keys over this message.
    Mismatch,
}

/// A signature that checked out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checked {
    /// The MAC the sender sent, decoded.
    pub digest: [u8; 32],
    /// The signed unix time.
    pub timestamp: i64,
}

/// The MAC under `key` of the message `layout` writes for `timestamp`; `None` only if the key
/// were refused, which HMAC never does (any key length is valid).
pub fn mac(key: &[u8], timestamp: &str, layout: &impl Fn(&mut HmacSha256, &str)) -> Option<HmacSha256> {
    let mut mac = HmacSha256::new_from_slice(key).ok()?;
    layout(&mut mac, timestamp);
    Some(mac)
}

/// Checks the timestamp against the window (`now` in unix seconds), then the signature header
/// (`scheme` then hex) against the MAC of the message under any of `keys`, in constant time.
pub fn verify<'k>(
    keys: impl IntoIterator<Item = &'k [u8]>,
    timestamp: Option<&str>,
    signature: Option<&str>,
    scheme: &str,
    now: i64,
    layout: impl Fn(&mut HmacSha256, &str),
) -> Result<Checked, Problem> {
    let timestamp = timestamp.ok_or(Problem::MissingTimestamp)?;
    // `parse` alone would take `+1531420618`, which no sender sends or signs.
    let seconds: i64 = match timestamp.parse() {
        Ok(seconds) if timestamp.bytes().all(|b| b.is_ascii_digit()) => seconds,
        _ => return Err(Problem::BadTimestamp),
    };
    let skew = now.abs_diff(seconds);
    if skew > REPLAY_WINDOW_SECS {
        return Err(Problem::Stale { skew });
    }
    let signature = signature.ok_or(Problem::MissingSignature)?;
    let digest: [u8; 32] = signature
        .strip_prefix(scheme)
        .and_then(|hex_digits| hex::decode(hex_digits).ok())
        .and_then(|digest| digest.try_into().ok())
        .ok_or(Problem::Malformed)?;
    let matches =
        keys.into_iter().any(|key| mac(key, timestamp, &layout).is_some_and(|mac| mac.verify_slice(&digest).is_ok()));
    if matches { Ok(Checked { digest, timestamp: seconds }) } else { Err(Problem::Mismatch) }
}
