//! Forged and mutated answer envelopes against the authority layer: none may be accepted.
//!
//! Genuine answers from three principals (a chat bridge, a CLI user, an HTTP front end) are
//! signed, checked to be accepted, and then mutated or forged in every way an attacker on the
//! bus or a buggy client could: bit flips and truncations of the body, the signature and the
//! whole bus envelope; swapped principals; spliced signatures; keys the map does not know;
//! bad times; channels and identities the principal may not claim; replays through
//! `consume_nonce` on the memory bus. Every attempt must be refused, and refused for a reason
//! in the set the case expects, so a check that refuses for the wrong reason fails the test
//! too. Randomness comes from a fixed-seed generator: a failure reproduces.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use jiff::{SignedDuration, Timestamp};
use muster_agents::authority::{Person, Principal, ResponderMap, Verified, consume_nonce, new_nonce, verify};
use muster_bus::memory::MemoryBus;
use muster_schemas::answer::{AnswerAction, AnswerBody, Channel, Identity, SignedAnswer, new_key_pair};
use muster_schemas::{Component, Envelope, Payload, Sender, decode, encode};
use std::collections::BTreeMap;
use uuid::Uuid;

/// xorshift64*: deterministic, dependency-free, good enough to pick bits and offsets.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn range(&mut self, low: i64, high: i64) -> i64 {
        low + (self.next() % (high - low + 1) as u64) as i64
    }
}

/// The deployment under attack and the seeds of its principals.
struct World {
    map: ResponderMap,
    seeds: BTreeMap<&'static str, String>,
    now: Timestamp,
}

fn world() -> World {
    let mut seeds = BTreeMap::new();
    let mut principals = BTreeMap::new();
    for (name, channels) in [
        ("bridge", vec![Channel::Matrix, Channel::Slack]),
        ("alice", vec![Channel::Cli]),
        ("webfront", vec![Channel::Http]),
    ] {
        let (seed, public_key) = new_key_pair().unwrap();
        seeds.insert(name, seed);
        principals.insert(name.to_owned(), Principal { public_key, speaks_for: channels });
    }
    let person = |id: &str| Person {
        groups: vec!["sre-oncall".into()],
        matrix: vec![format!("@{id}:example.org")],
        slack: vec![format!("U0{}", id.to_uppercase())],
        cli: vec![id.to_owned()],
        http: vec![format!("{id}@example.org")],
    };
    let people = ["alice", "bob", "carol"].into_iter().map(|p| (p.to_owned(), person(p))).collect();
    let map = ResponderMap { people, principals };
    map.validate().unwrap();
    World { map, seeds, now: "2026-11-25T15:00:00Z".parse().unwrap() }
}

impl World {
    fn body(&self, channel: Channel, id: &str, action: AnswerAction) -> AnswerBody {
        AnswerBody {
            run_id: Uuid::from_u128(0x0193_0000_0000_7000_8000_0000_0000_0001),
            prompt: "ESC-12".into(),
            action,
            note: Some("because the plan drifted".into()),
            responder: Identity { channel, id: id.into() },
            nonce: new_nonce(),
            issued_at: self.now - SignedDuration::from_secs(10),
            expires_at: self.now + SignedDuration::from_mins(5),
        }
    }

    fn sign(&self, body: &AnswerBody, principal: &str) -> SignedAnswer {
        SignedAnswer::sign(body, principal, &self.seeds[principal]).unwrap()
    }

    /// Genuine answers covering every principal and every kind of action.
    fn bases(&self) -> Vec<SignedAnswer> {
        let fields = BTreeMap::from([("ticket".to_owned(), "INC-4".to_owned())]);
        [
            (Channel::Matrix, "@bob:example.org", AnswerAction::Choose { option: "rollback".into() }, "bridge"),
            (Channel::Slack, "U0CAROL", AnswerAction::Acknowledge, "bridge"),
            (Channel::Cli, "alice", AnswerAction::Approve { binding: Some("sha256:ab12".into()) }, "alice"),
            (Channel::Cli, "alice", AnswerAction::Fill { fields }, "alice"),
            (Channel::Http, "carol@example.org", AnswerAction::Reject { reason: "not now".into() }, "webfront"),
            (Channel::Matrix, "@alice:example.org", AnswerAction::Confirm, "bridge"),
        ]
        .into_iter()
        .map(|(channel, id, action, principal)| self.sign(&self.body(channel, id, action), principal))
        .collect()
    }
}

/// What the envelope looks like on the bus.
fn on_the_bus(signed: &SignedAnswer) -> Vec<u8> {
    let sender = Sender { component: Component::Bridge, role: None, id: "bridge-1".into() };
    encode(&Envelope::new(sender, None, Payload::SignedAnswer(signed.clone()))).unwrap()
}

/// Refusals by label, attempts by case, and everything that went wrong.
#[derive(Default)]
struct Tally {
    labels: BTreeMap<&'static str, usize>,
    cases: BTreeMap<&'static str, usize>,
    accepted: Vec<String>,
    wrong_reason: Vec<String>,
}

/// Not a verify refusal: the bus envelope no longer decodes, so nothing reaches `verify`.
const UNDECODABLE: &str = "envelope_undecodable";
/// Not a verify refusal either: the mutated envelope decodes as another kind of message.
const NOT_AN_ANSWER: &str = "envelope_not_an_answer";

impl Tally {
    fn refused(&mut self, case: &'static str, label: &'static str, expected: &[&str]) {
        *self.cases.entry(case).or_default() += 1;
        *self.labels.entry(label).or_default() += 1;
        if !expected.contains(&label) {
            self.wrong_reason.push(format!("{case}: refused as {label}, expected one of {expected:?}"));
        }
    }

    /// Runs `verify` on a forged envelope and records the outcome.
    fn forged(&mut self, w: &World, case: &'static str, signed: &SignedAnswer, expected: &[&str]) {
        match verify(&w.map, signed, w.now) {
            Ok(v) => {
                *self.cases.entry(case).or_default() += 1;
                self.accepted.push(format!("{case}: accepted as {} via {}", v.person, v.principal));
            }
            Err(refusal) => self.refused(case, refusal.label(), expected),
        }
    }

    /// Decodes mutated bus bytes, then verifies what decodes.
    fn forged_bytes(&mut self, w: &World, case: &'static str, bytes: &[u8], expected: &[&str]) {
        match decode(bytes) {
            Ok(Envelope { payload: Payload::SignedAnswer(signed), .. }) => self.forged(w, case, &signed, expected),
            Ok(_) => self.refused(case, NOT_AN_ANSWER, expected),
            Err(_) => self.refused(case, UNDECODABLE, expected),
        }
    }

    fn total_refused(&self) -> usize {
        self.labels.values().sum()
    }

    fn print(&self) {
        println!("{:<28} {:>6}", "refusal", "count");
        for (label, count) in &self.labels {
            println!("{label:<28} {count:>6}");
        }
        println!("{:<28} {:>6}", "total refused", self.total_refused());
        println!("{:<28} {:>6}", "accepted", self.accepted.len());
        println!();
        println!("{:<28} {:>6}", "case", "tried");
        for (case, count) in &self.cases {
            println!("{case:<28} {count:>6}");
        }
    }
}

const BAD_SIG: &[&str] = &["bad_signature"];

#[tokio::test]
async fn no_forged_or_mutated_answer_is_accepted() {
    let w = world();
    let bases = w.bases();
    for base in &bases {
        let verified = verify(&w.map, base, w.now).unwrap_or_else(|r| panic!("a genuine answer is refused: {r}"));
        assert_eq!(verified.principal, base.principal);
        assert!(w.map.people.contains_key(&verified.person));
        assert_eq!(decode(&on_the_bus(base)).unwrap().payload, Payload::SignedAnswer(base.clone()));
    }
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut t = Tally::default();
    let pick = |rng: &mut Rng| &bases[rng.below(bases.len())];

    // Bit flips: any change to the signed bytes or the signature breaks the signature.
    for _ in 0..400 {
        let mut s = pick(&mut rng).clone();
        let bit = rng.below(s.body.len() * 8);
        s.body[bit / 8] ^= 1 << (bit % 8);
        t.forged(&w, "body bit flip", &s, BAD_SIG);
    }
    for _ in 0..300 {
        let mut s = pick(&mut rng).clone();
        let bit = rng.below(s.signature.len() * 8);
        s.signature[bit / 8] ^= 1 << (bit % 8);
        t.forged(&w, "signature bit flip", &s, BAD_SIG);
    }
    // On the bus, a flip may also break the envelope or rename the principal.
    for _ in 0..200 {
        let base = pick(&mut rng);
        let mut bytes = on_the_bus(base);
        let bit = rng.below(bytes.len() * 8);
        bytes[bit / 8] ^= 1 << (bit % 8);
        // Flips outside the answer (the envelope's id, time, sender) leave the answer intact:
        // those envelopes are genuine and must still be accepted, so they are not counted.
        if let Ok(Envelope { payload: Payload::SignedAnswer(s), .. }) = decode(&bytes)
            && &s == base
        {
            assert!(verify(&w.map, &s, w.now).is_ok());
            continue;
        }
        t.forged_bytes(
            &w,
            "envelope bit flip",
            &bytes,
            &[UNDECODABLE, NOT_AN_ANSWER, "bad_signature", "unknown_principal"],
        );
    }

    // Truncations at every length.
    for base in &bases[..2] {
        for len in 0..base.body.len() {
            let mut s = base.clone();
            s.body.truncate(len);
            t.forged(&w, "body truncated", &s, BAD_SIG);
        }
        for len in 0..base.signature.len() {
            let mut s = base.clone();
            s.signature.truncate(len);
            t.forged(&w, "signature truncated", &s, BAD_SIG);
        }
        let bytes = on_the_bus(base);
        for len in (0..bytes.len()).step_by(3) {
            t.forged_bytes(&w, "envelope truncated", &bytes[..len], &[UNDECODABLE, NOT_AN_ANSWER]);
        }
    }
    // Extra bytes after the signed body, or a 65-byte signature.
    for base in &bases {
        let mut s = base.clone();
        s.body.push(0xc0);
        t.forged(&w, "body extended", &s, BAD_SIG);
        let mut s = base.clone();
        s.signature.push(0);
        t.forged(&w, "signature extended", &s, BAD_SIG);
    }

    // Another known principal's name on a genuine envelope.
    for base in &bases {
        for other in w.map.principals.keys().filter(|p| **p != base.principal) {
            let mut s = base.clone();
            s.principal = other.clone();
            t.forged(&w, "principal swapped", &s, BAD_SIG);
        }
    }
    // One genuine body with another genuine answer's signature (same key or not).
    for (i, a) in bases.iter().enumerate() {
        for b in bases.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, b)| b) {
            let mut s = a.clone();
            s.signature = b.signature.clone();
            t.forged(&w, "signature spliced", &s, BAD_SIG);
        }
    }
    // Signed by keys the map does not know, claiming principals it does.
    for _ in 0..60 {
        let (seed, _) = new_key_pair().unwrap();
        let base = pick(&mut rng);
        let body: AnswerBody = muster_schemas::codec::decode_value(&base.body).unwrap();
        let s = SignedAnswer::sign(&body, &base.principal, &seed).unwrap();
        t.forged(&w, "unknown key, known name", &s, BAD_SIG);
    }
    // Genuinely signed but by principals nobody declared.
    for i in 0..30 {
        let mut s = pick(&mut rng).clone();
        s.principal = match i % 3 {
            0 => format!("bridge{i}"),
            1 => "Bridge".into(),
            _ => "x".repeat(10_000),
        };
        t.forged(&w, "unknown principal", &s, &["unknown_principal"]);
    }

    // Correctly signed, but the times are wrong.
    let timed = |issued: i64, expires: i64| {
        let mut b = w.body(Channel::Matrix, "@bob:example.org", AnswerAction::Acknowledge);
        b.issued_at = w.now + SignedDuration::from_secs(issued);
        b.expires_at = w.now + SignedDuration::from_secs(expires);
        w.sign(&b, "bridge")
    };
    for _ in 0..60 {
        let expires = rng.range(-86_400, 0);
        t.forged(&w, "expired", &timed(expires - 300, expires), &["expired"]);
    }
    for _ in 0..60 {
        let issued = rng.range(31, 86_400);
        t.forged(&w, "issued in the future", &timed(issued, issued + 300), &["not_yet_valid"]);
    }
    for _ in 0..60 {
        let validity = rng.range(901, 365 * 86_400);
        t.forged(&w, "validity too long", &timed(-60, validity - 60), &["validity_too_long"]);
    }
    for _ in 0..20 {
        // Live now and issued within the skew, but expiring before it was issued.
        let issued = rng.range(2, 30);
        let expires = issued - rng.range(1, issued - 1);
        t.forged(&w, "expires before issued", &timed(issued, expires), &["malformed"]);
    }

    // Channels and identities the principal may not claim.
    let identities: Vec<Identity> = w
        .map
        .people
        .values()
        .flat_map(|p| {
            [(Channel::Cli, &p.cli), (Channel::Matrix, &p.matrix), (Channel::Slack, &p.slack), (Channel::Http, &p.http)]
                .into_iter()
                .flat_map(|(channel, ids)| ids.iter().map(move |id| Identity { channel, id: id.clone() }))
        })
        .collect();
    for _ in 0..5 {
        for identity in &identities {
            for (principal, p) in &w.map.principals {
                let allowed = p.speaks_for.contains(&identity.channel);
                let own_cli = identity.channel == Channel::Cli && identity.id == *principal;
                if allowed && (identity.channel != Channel::Cli || own_cli) {
                    continue;
                }
                let b = w.body(identity.channel, &identity.id, AnswerAction::Choose { option: "continue".into() });
                let case = if allowed { "cli user impersonated" } else { "wrong channel" };
                t.forged(&w, case, &w.sign(&b, principal), &["channel_not_allowed"]);
            }
        }
    }
    for i in 0..60 {
        let (channel, id) = match i % 4 {
            0 => (Channel::Matrix, format!("@mallory{i}:evil.example")),
            1 => (Channel::Slack, "@bob:example.org".to_owned()),
            2 => (Channel::Matrix, "@BOB:example.org".to_owned()),
            _ => (Channel::Slack, String::new()),
        };
        let s = w.sign(&w.body(channel, &id, AnswerAction::Acknowledge), "bridge");
        t.forged(&w, "unknown identity", &s, &["unknown_identity"]);
    }
    // Signed garbage and bad nonces from a genuine key.
    let pair = nkeys::KeyPair::from_seed(&w.seeds["bridge"]).unwrap();
    for _ in 0..40 {
        let body: Vec<u8> = (0..rng.below(64)).map(|_| rng.next() as u8).collect();
        let s = SignedAnswer { signature: pair.sign(&body).unwrap(), body, principal: "bridge".into() };
        t.forged(&w, "signed garbage", &s, &["malformed"]);
    }
    for nonce in ["", "abc", "0123456789ABCDEF", "0123456789abcdeX", "../../../../etc/pwd0", &"a".repeat(65)] {
        let mut b = w.body(Channel::Matrix, "@bob:example.org", AnswerAction::Acknowledge);
        b.nonce = nonce.into();
        t.forged(&w, "bad nonce", &w.sign(&b, "bridge"), &["malformed"]);
    }

    // Replays: the first delivery is genuine and accepted once, every later one refused.
    let bus = MemoryBus::new();
    let mut first_deliveries = 0;
    for i in 0..40 {
        let base = &bases[i % bases.len()];
        let body: AnswerBody = muster_schemas::codec::decode_value(&base.body).unwrap();
        let fresh = AnswerBody { nonce: new_nonce(), ..body };
        let signed = w.sign(&fresh, &base.principal);
        let first: Verified = verify(&w.map, &signed, w.now).unwrap();
        consume_nonce(&bus, &first).await.unwrap();
        first_deliveries += 1;
        for _ in 0..2 {
            // Through the bus bytes, as an eavesdropper would resend it.
            let replayed = match decode(&on_the_bus(&signed)).unwrap().payload {
                Payload::SignedAnswer(s) => s,
                other => panic!("{other:?}"),
            };
            match verify(&w.map, &replayed, w.now) {
                Err(r) => t.refused("replay", r.label(), &["replayed"]),
                Ok(v) => match consume_nonce(&bus, &v).await {
                    Ok(()) => t.accepted.push(format!("replay {i} accepted again")),
                    Err(muster_agents::authority::NonceError::Refused(r)) => {
                        t.refused("replay", r.label(), &["replayed"])
                    }
                    Err(e) => panic!("bus error: {e}"),
                },
            }
        }
    }

    t.print();
    assert_eq!(first_deliveries, 40, "every genuine first delivery is accepted");
    assert!(t.accepted.is_empty(), "forged answers accepted:\n{}", t.accepted.join("\n"));
    assert!(t.wrong_reason.is_empty(), "refused for the wrong reason:\n{}", t.wrong_reason.join("\n"));
    assert!(t.total_refused() >= 1000, "only {} forgeries tried", t.total_refused());
    for label in ["bad_signature", "unknown_principal", "malformed", "expired", "not_yet_valid", "validity_too_long"] {
        assert!(t.labels.contains_key(label), "no case exercised {label}");
    }
    for label in ["channel_not_allowed", "unknown_identity", "replayed", UNDECODABLE] {
        assert!(t.labels.contains_key(label), "no case exercised {label}");
    }
}
