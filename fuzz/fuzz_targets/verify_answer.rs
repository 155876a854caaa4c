//! Fuzzes `muster_agents::authority::verify`, the check every answer from a person goes through
//! before the orchestrator acts on it, with a fixed responder map and a fixed "now".
//!
//! The first input byte picks how the rest is used:
//! - `0`: bytes from the bus: `codec::decode` as an envelope; a `SignedAnswer` payload is
//!   verified.
//! - `1`: bytes of a bare `SignedAnswer` (`codec::decode_value`), verified.
//! - otherwise: the bytes are an answer *body* and are signed with a key of the map (the
//!   principal chosen by that byte), so the checks after the signature (decoding, nonce, times,
//!   channel, identity) see arbitrary bodies too; random bytes never carry a valid signature.
//!
//! Properties checked:
//! 1. `verify` never panics, whatever the bytes.
//! 2. Whatever it accepts satisfies what it promises: a known principal, a live answer within
//!    the skew and validity bounds, a channel the principal speaks for (on `cli` its own name),
//!    and an identity belonging to the person it names.
#![no_main]

use jiff::Timestamp;
use libfuzzer_sys::fuzz_target;
use muster_agents::authority::{CLOCK_SKEW, MAX_VALIDITY, Person, Principal, ResponderMap, verify};
use muster_schemas::Payload;
use muster_schemas::answer::{Channel, SignedAnswer};
use muster_schemas::codec::{decode, decode_value};
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// The principals' keys, from fixed bytes so a crashing input reproduces across runs.
const PRINCIPALS: [(&str, u8, &[Channel]); 3] = [
    ("bridge", 1, &[Channel::Matrix, Channel::Slack]),
    ("alice", 2, &[Channel::Cli]),
    ("webfront", 3, &[Channel::Http]),
];

struct Fixture {
    map: ResponderMap,
    keys: Vec<(&'static str, nkeys::KeyPair)>,
    now: Timestamp,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let mut keys = Vec::new();
        let mut principals = BTreeMap::new();
        for (name, byte, channels) in PRINCIPALS {
            let pair = nkeys::KeyPair::new_from_raw(nkeys::KeyPairType::User, [byte; 32]).expect("key");
            principals
                .insert(name.to_owned(), Principal { public_key: pair.public_key(), speaks_for: channels.to_vec() });
            keys.push((name, pair));
        }
        // The identities the seeds in fuzz/seeds/verify_answer/ use.
        let person = |name: &str| Person {
            groups: vec!["sre-oncall".into()],
            matrix: vec![format!("@{name}:example.org")],
            slack: vec![format!("U0{}", name.to_uppercase())],
            cli: vec![name.to_owned()],
            http: vec![format!("{name}@example.org")],
        };
        let people = ["alice", "bob"].into_iter().map(|n| (n.to_owned(), person(n))).collect();
        let map = ResponderMap { people, principals };
        assert_eq!(map.validate(), Ok(()));
        Fixture { map, keys, now: "2026-11-25T15:00:00Z".parse().expect("time") }
    })
}

fn check(f: &Fixture, signed: &SignedAnswer) {
    let Ok(v) = verify(&f.map, signed, f.now) else { return };
    let principal = &f.map.principals[&v.principal];
    assert_eq!(v.principal, signed.principal);
    assert!(v.body.expires_at > f.now, "accepted an expired answer: {v:?}");
    assert!(v.body.issued_at.duration_since(f.now) <= CLOCK_SKEW, "accepted a future answer: {v:?}");
    let validity = v.body.expires_at.duration_since(v.body.issued_at);
    assert!(!validity.is_negative() && validity <= MAX_VALIDITY, "accepted a long-lived answer: {v:?}");
    let channel = v.body.responder.channel;
    assert!(principal.speaks_for.contains(&channel), "accepted a channel the principal may not speak for: {v:?}");
    assert!(channel != Channel::Cli || v.body.responder.id == v.principal, "accepted a CLI impersonation: {v:?}");
    assert!(f.map.people[&v.person].ids(channel).contains(&v.body.responder.id), "wrong person: {v:?}");
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let f = fixture();
    match mode {
        0 => {
            if let Ok(envelope) = decode(rest)
                && let Payload::SignedAnswer(signed) = envelope.payload
            {
                check(f, &signed);
            }
        }
        1 => {
            if let Ok(signed) = decode_value::<SignedAnswer>(rest) {
                check(f, &signed);
            }
        }
        _ => {
            let (name, pair) = &f.keys[usize::from(mode) % f.keys.len()];
            let Ok(signature) = pair.sign(rest) else { return };
            check(f, &SignedAnswer { body: rest.to_vec(), principal: (*name).to_owned(), signature });
        }
    }
});
