//! Checking a signed answer against the responder map, without side effects.
//!
//! The checks run in this order, and the first that fails decides the refusal:
//!
//! ```text
//!  envelope ──► 1 principal known ──► 2 signature (strict) ──► 3 body decodes, nonce well formed
//!           ──► 4 expires_at > now ──► 5 issued_at <= now + 30s ──► 6 0 <= validity <= 15 min
//!           ──► 7 principal speaks for the channel (on cli: only for itself)
//!           ──► 8 identity is a person ──► Verified
//! ```
//!
//! Nothing the sender wrote is looked at before the signature holds (1–2), so an unsigned
//! body cannot steer the outcome or the refusal text. Time is a parameter, so tests and the
//! orchestrator's paused clock decide what "now" is. Replay (the nonce) needs the bus and is
//! [`super::consume_nonce`]'s job; whether the person may answer *this* prompt is
//! [`super::may_answer`]'s.

use super::map::ResponderMap;
use super::nonce::valid_nonce;
use super::refusal::{Refusal, clip};
use jiff::{SignedDuration, Timestamp};
use muster_schemas::answer::{AnswerBody, Channel, SignatureError, SignedAnswer};

/// How far in the future an answer may say it was issued: the signer's clock may run ahead.
pub const CLOCK_SKEW: SignedDuration = SignedDuration::from_secs(30);

/// The longest an answer may stay valid. It bounds how long a captured answer is worth
/// replaying, and so how long nonces must be remembered (the [`muster_bus::Bucket::Nonces`] TTL,
/// 24 h, is far longer).
pub const MAX_VALIDITY: SignedDuration = SignedDuration::from_secs(15 * 60);

/// How much of sender-supplied text a refusal keeps.
const CLIP: usize = 64;
/// Decoder messages are ours but quote the input; they get a little more room.
const CLIP_REASON: usize = 200;

/// An answer whose signature, timing, channel and identity all hold: who said what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// What was answered, exactly as signed.
    pub body: AnswerBody,
    /// The person (a key of the responder map's `people`) the identity belongs to.
    pub person: String,
    /// The principal whose key signed it.
    pub principal: String,
}

/// Checks `signed` against `map` at time `now`; see the module docs for the order.
///
/// Pure: the same inputs always give the same result. Accepting an answer here does not make
/// it usable: the caller must still [`super::consume_nonce`] and check [`super::may_answer`].
pub fn verify(map: &ResponderMap, signed: &SignedAnswer, now: Timestamp) -> Result<Verified, Refusal> {
    let unknown = || Refusal::UnknownPrincipal { principal: clip(&signed.principal, CLIP) };
    let principal = map.principals.get(&signed.principal).ok_or_else(unknown)?;
    let body = signed.open(&principal.public_key).map_err(|err| match err {
        SignatureError::Mismatch(_) => Refusal::BadSignature { principal: signed.principal.clone() },
        // A key the map cannot parse: `ResponderMap::validate` refuses such maps at load, so this
        // is a map built without it. Nobody can sign for that principal.
        SignatureError::Key(_) => unknown(),
        SignatureError::Body(err) => Refusal::Malformed { reason: clip(&err.to_string(), CLIP_REASON) },
        SignatureError::Encode(err) => Refusal::Malformed { reason: clip(&err.to_string(), CLIP_REASON) },
    })?;
    if !valid_nonce(&body.nonce) {
        return Err(Refusal::Malformed {
            reason: format!("nonce `{}` is not 16-64 lowercase hex digits", clip(&body.nonce, CLIP)),
        });
    }
    check_times(&body, now)?;
    let channel = body.responder.channel;
    let principal_speaks = principal.speaks_for.contains(&channel);
    if !principal_speaks {
        return Err(Refusal::ChannelNotAllowed { principal: signed.principal.clone(), channel });
    }
    if channel == Channel::Cli && body.responder.id != signed.principal {
        return Err(Refusal::NotSelf { principal: signed.principal.clone(), claimed: clip(&body.responder.id, CLIP) });
    }
    let Some(person) = map.person_of(&body.responder) else {
        return Err(Refusal::UnknownIdentity { channel, id: clip(&body.responder.id, CLIP) });
    };
    Ok(Verified { person: person.to_owned(), principal: signed.principal.clone(), body })
}

/// Steps 4–6: the answer is live now and its window is short.
fn check_times(body: &AnswerBody, now: Timestamp) -> Result<(), Refusal> {
    if body.expires_at <= now {
        return Err(Refusal::Expired { expires_at: body.expires_at, now });
    }
    // Differences of timestamps cannot overflow a `SignedDuration`; adding to `now` could.
    if body.issued_at.duration_since(now) > CLOCK_SKEW {
        return Err(Refusal::NotYetValid { issued_at: body.issued_at, now });
    }
    let validity = body.expires_at.duration_since(body.issued_at);
    if validity.is_negative() {
        return Err(Refusal::Malformed {
            reason: format!("it expires at {} before it was issued at {}", body.expires_at, body.issued_at),
        });
    }
    if validity > MAX_VALIDITY {
        return Err(Refusal::ValidityTooLong { seconds: validity.as_secs() });
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::authority::map::{Person, Principal};
    use muster_schemas::answer::{AnswerAction, Identity, new_key_pair};
    use std::collections::BTreeMap;
    use uuid::Uuid;

    /// A map with a chat bridge (matrix, slack), a CLI user `alice`, and their seeds.
    pub(crate) struct Fixture {
        pub map: ResponderMap,
        pub bridge_seed: String,
        pub alice_seed: String,
        pub now: Timestamp,
    }

    pub(crate) fn fixture() -> Fixture {
        let (bridge_seed, bridge_key) = new_key_pair().unwrap();
        let (alice_seed, alice_key) = new_key_pair().unwrap();
        let person = |matrix: &str, slack: &str, cli: &str, groups: &[&str]| Person {
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            matrix: vec![matrix.to_owned()],
            slack: vec![slack.to_owned()],
            cli: vec![cli.to_owned()],
            http: Vec::new(),
        };
        let map = ResponderMap {
            people: BTreeMap::from([
                ("alice".into(), person("@alice:example.org", "U0ALICE", "alice", &["sre-oncall"])),
                ("bob".into(), person("@bob:example.org", "U0BOB", "bob", &[])),
            ]),
            principals: BTreeMap::from([
                (
                    "bridge".into(),
                    Principal { public_key: bridge_key, speaks_for: vec![Channel::Matrix, Channel::Slack] },
                ),
                ("alice".into(), Principal { public_key: alice_key, speaks_for: vec![Channel::Cli] }),
            ]),
        };
        assert_eq!(map.validate(), Ok(()));
        Fixture { map, bridge_seed, alice_seed, now: "2026-11-25T15:00:00Z".parse().unwrap() }
    }

    pub(crate) fn body(now: Timestamp, channel: Channel, id: &str) -> AnswerBody {
        AnswerBody {
            run_id: Uuid::from_u128(7),
            prompt: "ESC-12".into(),
            action: AnswerAction::Choose { option: "rollback".into() },
            note: None,
            responder: Identity { channel, id: id.into() },
            nonce: "0123456789abcdef0123456789abcdef".into(),
            issued_at: now - SignedDuration::from_secs(5),
            expires_at: now + SignedDuration::from_mins(5),
        }
    }

    fn refusal(f: &Fixture, signed: &SignedAnswer) -> &'static str {
        verify(&f.map, signed, f.now).unwrap_err().label()
    }

    #[test]
    fn genuine_answers_from_the_bridge_and_the_cli_are_accepted() {
        let f = fixture();
        let chat = body(f.now, Channel::Matrix, "@bob:example.org");
        let signed = SignedAnswer::sign(&chat, "bridge", &f.bridge_seed).unwrap();
        let verified = verify(&f.map, &signed, f.now).unwrap();
        assert_eq!(verified, Verified { body: chat, person: "bob".into(), principal: "bridge".into() });

        let cli = body(f.now, Channel::Cli, "alice");
        let signed = SignedAnswer::sign(&cli, "alice", &f.alice_seed).unwrap();
        assert_eq!(verify(&f.map, &signed, f.now).unwrap().person, "alice");
    }

    #[test]
    fn an_unknown_principal_is_refused_before_anything_else() {
        let f = fixture();
        let signed = SignedAnswer::sign(&body(f.now, Channel::Matrix, "@bob:example.org"), "mallory", &f.bridge_seed);
        let refused = verify(&f.map, &signed.unwrap(), f.now).unwrap_err();
        assert_eq!(refused, Refusal::UnknownPrincipal { principal: "mallory".into() });
        assert!(refused.to_string().contains("[responders.principals.mallory]"), "{refused}");
    }

    #[test]
    fn a_signature_by_another_key_or_over_other_bytes_is_refused() {
        let f = fixture();
        let chat = body(f.now, Channel::Matrix, "@bob:example.org");
        // The CLI user's key claiming to be the bridge.
        let forged = SignedAnswer::sign(&chat, "bridge", &f.alice_seed).unwrap();
        assert_eq!(refusal(&f, &forged), "bad_signature");
        let mut altered = SignedAnswer::sign(&chat, "bridge", &f.bridge_seed).unwrap();
        let last = altered.body.len() - 1;
        altered.body[last] ^= 0x01;
        assert_eq!(refusal(&f, &altered), "bad_signature");
        let mut short = SignedAnswer::sign(&chat, "bridge", &f.bridge_seed).unwrap();
        short.signature.pop();
        assert_eq!(refusal(&f, &short), "bad_signature");
    }

    #[test]
    fn signed_bytes_that_are_not_an_answer_or_a_bad_nonce_are_malformed() {
        let f = fixture();
        let pair = nkeys::KeyPair::from_seed(&f.bridge_seed).unwrap();
        let junk = vec![0x81, 0xa1, 0x61, 0x01];
        let signed = SignedAnswer { signature: pair.sign(&junk).unwrap(), body: junk, principal: "bridge".into() };
        assert_eq!(refusal(&f, &signed), "malformed");

        for nonce in ["", "0123", "0123456789ABCDEF0123", "0123456789abcdeg", &"a".repeat(65)] {
            let mut b = body(f.now, Channel::Matrix, "@bob:example.org");
            b.nonce = nonce.into();
            let signed = SignedAnswer::sign(&b, "bridge", &f.bridge_seed).unwrap();
            assert_eq!(refusal(&f, &signed), "malformed", "nonce {nonce:?}");
        }
        let mut b = body(f.now, Channel::Matrix, "@bob:example.org");
        b.nonce = "f".repeat(16);
        assert!(verify(&f.map, &SignedAnswer::sign(&b, "bridge", &f.bridge_seed).unwrap(), f.now).is_ok());
        b.nonce = "f".repeat(64);
        assert!(verify(&f.map, &SignedAnswer::sign(&b, "bridge", &f.bridge_seed).unwrap(), f.now).is_ok());
    }

    #[test]
    fn the_time_window_is_enforced_at_its_edges() {
        let f = fixture();
        let at = |issued: i64, expires: i64| {
            let mut b = body(f.now, Channel::Slack, "U0BOB");
            b.issued_at = f.now + SignedDuration::from_secs(issued);
            b.expires_at = f.now + SignedDuration::from_secs(expires);
            let signed = SignedAnswer::sign(&b, "bridge", &f.bridge_seed).unwrap();
            verify(&f.map, &signed, f.now).map(|_| "accepted").unwrap_or_else(|r| r.label())
        };
        assert_eq!(at(-60, 0), "expired", "expiring now is expired");
        assert_eq!(at(-60, 1), "accepted");
        assert_eq!(at(30, 60), "accepted", "30s of clock skew is tolerated");
        assert_eq!(at(31, 60), "not_yet_valid");
        assert_eq!(at(-899, 1), "accepted", "900s of validity is the limit");
        assert_eq!(at(-900, 1), "validity_too_long");
        assert_eq!(at(20, 10), "malformed", "expires before it was issued");
    }

    #[test]
    fn a_principal_speaks_only_for_its_channels_and_a_cli_key_only_for_itself() {
        let f = fixture();
        let as_cli_user = SignedAnswer::sign(&body(f.now, Channel::Matrix, "@bob:example.org"), "alice", &f.alice_seed);
        assert_eq!(
            verify(&f.map, &as_cli_user.unwrap(), f.now).unwrap_err(),
            Refusal::ChannelNotAllowed { principal: "alice".into(), channel: Channel::Matrix }
        );
        let bridge_as_cli = SignedAnswer::sign(&body(f.now, Channel::Cli, "alice"), "bridge", &f.bridge_seed);
        assert_eq!(refusal(&f, &bridge_as_cli.unwrap()), "channel_not_allowed");
        let impersonation = SignedAnswer::sign(&body(f.now, Channel::Cli, "bob"), "alice", &f.alice_seed).unwrap();
        assert_eq!(
            verify(&f.map, &impersonation, f.now).unwrap_err(),
            Refusal::NotSelf { principal: "alice".into(), claimed: "bob".into() }
        );
        assert_eq!(refusal(&f, &impersonation), "channel_not_allowed");
    }

    #[test]
    fn an_identity_of_nobody_is_refused() {
        let f = fixture();
        let signed =
            SignedAnswer::sign(&body(f.now, Channel::Matrix, "@mallory:evil.example"), "bridge", &f.bridge_seed);
        let refused = verify(&f.map, &signed.unwrap(), f.now).unwrap_err();
        assert_eq!(refused, Refusal::UnknownIdentity { channel: Channel::Matrix, id: "@mallory:evil.example".into() });
        // A Slack id that is someone's Matrix id is still nobody on Slack.
        let signed = SignedAnswer::sign(&body(f.now, Channel::Slack, "@bob:example.org"), "bridge", &f.bridge_seed);
        assert_eq!(refusal(&f, &signed.unwrap()), "unknown_identity");
    }

    #[test]
    fn a_principal_whose_key_does_not_parse_is_unknown() {
        let mut f = fixture();
        if let Some(p) = f.map.principals.get_mut("bridge") {
            p.public_key = "garbage".into();
        }
        let signed = SignedAnswer::sign(&body(f.now, Channel::Matrix, "@bob:example.org"), "bridge", &f.bridge_seed);
        assert_eq!(refusal(&f, &signed.unwrap()), "unknown_principal");
    }
}
