//! The responder map: who the people are, how each channel knows them, and which keys may
//! speak for which channel.
//!
//! It is deployment data, not protocol data: protocols name people and groups, the map (the
//! `[responders]` table of the orchestrator's `muster.toml`) says which signed identities are
//! those people. Loading it refuses anything that would make an answer ambiguous or
//! unverifiable, so [`super::verify()`] never has to guess.

use muster_schemas::answer::{Channel, Identity};
use serde::Deserialize;
use std::collections::BTreeMap;

/// People and principals, as the orchestrator's `[responders]` settings table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResponderMap {
    /// Person name (what protocols list under `responders.users`) → how channels know them.
    pub people: BTreeMap<String, Person>,
    /// Principal name (what a [`muster_schemas::answer::SignedAnswer`] names) → its key and
    /// the channels it may vouch for.
    pub principals: BTreeMap<String, Principal>,
}

/// One person: the groups the deployment puts them in, and their identity on each channel.
///
/// A channel list may hold several ids (two Matrix accounts); an identity belongs to one person
/// only, otherwise an answer could not be attributed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Person {
    /// Groups this deployment adds the person to, on top of a protocol's `groups.*.members`.
    pub groups: Vec<String>,
    /// Matrix user ids (`@alice:example.org`).
    pub matrix: Vec<String>,
    /// Slack member ids (`U024BE7LH`).
    pub slack: Vec<String>,
    /// CLI principal names this person signs with (`alice`).
    pub cli: Vec<String>,
    /// Identities the bridge's HTTP API authenticates (its bearer-token users).
    pub http: Vec<String>,
}

impl Person {
    /// The person's ids on `channel`.
    pub fn ids(&self, channel: Channel) -> &[String] {
        match channel {
            Channel::Cli => &self.cli,
            Channel::Matrix => &self.matrix,
            Channel::Slack => &self.slack,
            Channel::Http => &self.http,
        }
    }
}

/// A key that signs answers: a CLI user's own key, or a chat bridge's key.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Principal {
    /// The nkey user public key (`U…`, 56 characters) that verifies its signatures.
    pub public_key: String,
    /// The channels whose identities this principal is believed about. A principal speaking
    /// for `cli` only ever speaks for itself: its CLI identity must be its own name.
    pub speaks_for: Vec<Channel>,
}

/// Every channel, for walking a person's identities.
const CHANNELS: [Channel; 4] = [Channel::Cli, Channel::Matrix, Channel::Slack, Channel::Http];

/// One thing wrong with a responder map, naming the entry to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MapError {
    /// A principal's key does not parse as an nkey public key.
    #[error(
        "responders.principals.{principal}.public_key is not an nkey public key ({reason}); paste the `U…` key `muster keygen` printed"
    )]
    BadKey {
        /// The principal.
        principal: String,
        /// What the parser said.
        reason: String,
    },
    /// A principal's key is an nkey of another kind (an account or server key).
    #[error(
        "responders.principals.{principal}.public_key is not a user key (it should start with `U`); generate one with `muster keygen`"
    )]
    NotUserKey {
        /// The principal.
        principal: String,
    },
    /// Two principals share a key, so a signature could not say which one signed.
    #[error(
        "responders.principals.{first} and responders.principals.{second} have the same public_key; give each its own key"
    )]
    SharedKey {
        /// The first principal (in name order).
        first: String,
        /// The other one.
        second: String,
    },
    /// A principal name that cannot be part of a nonce key (`<principal>.<nonce>`).
    #[error("principal name `{principal}` must be 1-64 letters, digits, `-` or `_`")]
    BadPrincipalName {
        /// The name.
        principal: String,
    },
    /// A principal that speaks for nobody can never be believed: almost certainly a mistake.
    #[error("responders.principals.{principal}.speaks_for is empty; list the channels it signs for, e.g. [\"cli\"]")]
    SpeaksForNothing {
        /// The principal.
        principal: String,
    },
    /// An empty person name or identity id.
    #[error("responders.people.{person}: {what} must not be empty")]
    Empty {
        /// The person (empty if the name itself is empty).
        person: String,
        /// What is empty.
        what: String,
    },
    /// The same identity listed for two people (or twice for one).
    #[error(
        "{channel} identity `{id}` belongs to both responders.people.{first} and responders.people.{second}; an identity must name one person"
    )]
    SharedIdentity {
        /// The channel.
        channel: &'static str,
        /// The identity id.
        id: String,
        /// The person seen first (in name order).
        first: String,
        /// The other one.
        second: String,
    },
}

/// Whether `name` can be a principal name (it becomes the first token of a NATS KV key).
pub fn valid_principal_name(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl ResponderMap {
    /// Checks the map as loaded; every problem is reported, not just the first, so one edit
    /// of `muster.toml` can fix them all.
    pub fn validate(&self) -> Result<(), Vec<MapError>> {
        let mut problems = Vec::new();
        let mut keys: BTreeMap<&str, &str> = BTreeMap::new();
        for (name, principal) in &self.principals {
            if !valid_principal_name(name) {
                problems.push(MapError::BadPrincipalName { principal: name.clone() });
            }
            // The same parse `SignedAnswer::open` does (nkey checksum, then the Ed25519 point),
            // plus the key's kind, which `open` does not look at.
            match nkeys::KeyPair::from_public_key(&principal.public_key).map(|k| k.key_pair_type()) {
                Err(err) => problems.push(MapError::BadKey { principal: name.clone(), reason: err.to_string() }),
                Ok(kind) if kind != nkeys::KeyPairType::User => {
                    problems.push(MapError::NotUserKey { principal: name.clone() });
                }
                Ok(_) => {
                    if let Some(first) = keys.insert(&principal.public_key, name) {
                        problems.push(MapError::SharedKey { first: first.to_owned(), second: name.clone() });
                    }
                }
            }
            if principal.speaks_for.is_empty() {
                problems.push(MapError::SpeaksForNothing { principal: name.clone() });
            }
        }
        let mut owners: BTreeMap<(Channel, &str), &str> = BTreeMap::new();
        for (name, person) in &self.people {
            if name.is_empty() {
                problems.push(MapError::Empty { person: String::new(), what: "a person's name".into() });
            }
            if person.groups.iter().any(String::is_empty) {
                problems.push(MapError::Empty { person: name.clone(), what: "a group name".into() });
            }
            for channel in CHANNELS {
                for id in person.ids(channel) {
                    if id.is_empty() {
                        problems
                            .push(MapError::Empty { person: name.clone(), what: format!("a {} id", channel.as_str()) });
                        continue;
                    }
                    if let Some(first) = owners.insert((channel, id), name) {
                        problems.push(MapError::SharedIdentity {
                            channel: channel.as_str(),
                            id: id.clone(),
                            first: first.to_owned(),
                            second: name.clone(),
                        });
                    }
                }
            }
        }
        if problems.is_empty() { Ok(()) } else { Err(problems) }
    }

    /// The person an identity belongs to, if any.
    ///
    /// A linear scan: maps hold tens of people and an answer is checked once, so an index kept
    /// in step with the deserialized fields is not worth its invariants.
    pub fn person_of(&self, identity: &Identity) -> Option<&str> {
        self.people.iter().find(|(_, p)| p.ids(identity.channel).contains(&identity.id)).map(|(name, _)| name.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use muster_schemas::answer::new_key_pair;

    fn principal(key: &str, speaks_for: &[Channel]) -> Principal {
        Principal { public_key: key.to_owned(), speaks_for: speaks_for.to_vec() }
    }

    fn person(matrix: &[&str], cli: &[&str]) -> Person {
        Person {
            matrix: matrix.iter().map(|s| (*s).to_owned()).collect(),
            cli: cli.iter().map(|s| (*s).to_owned()).collect(),
            ..Person::default()
        }
    }

    #[test]
    fn a_sound_map_validates_and_finds_people_by_identity() {
        let (_, bridge) = new_key_pair().unwrap();
        let (_, alice) = new_key_pair().unwrap();
        let map = ResponderMap {
            people: BTreeMap::from([
                ("alice".into(), person(&["@alice:example.org"], &["alice"])),
                ("bob".into(), person(&["@bob:example.org"], &[])),
            ]),
            principals: BTreeMap::from([
                ("bridge".into(), principal(&bridge, &[Channel::Matrix, Channel::Slack])),
                ("alice".into(), principal(&alice, &[Channel::Cli])),
            ]),
        };
        assert_eq!(map.validate(), Ok(()));
        let bob = Identity { channel: Channel::Matrix, id: "@bob:example.org".into() };
        assert_eq!(map.person_of(&bob), Some("bob"));
        // The same id on another channel is another identity.
        let elsewhere = Identity { channel: Channel::Slack, id: "@bob:example.org".into() };
        assert_eq!(map.person_of(&elsewhere), None);
    }

    #[test]
    fn every_problem_is_reported_with_the_entry_to_fix() {
        let (_, key) = new_key_pair().unwrap();
        let account_key = nkeys::KeyPair::new_account().public_key();
        let map = ResponderMap {
            people: BTreeMap::from([
                ("alice".into(), person(&["@shared:example.org"], &[""])),
                ("bob".into(), person(&["@shared:example.org"], &[])),
            ]),
            principals: BTreeMap::from([
                ("a".into(), principal("not a key", &[Channel::Cli])),
                ("b".into(), principal(&key, &[Channel::Matrix])),
                ("c".into(), principal(&key, &[])),
                ("d.e".into(), principal(&account_key, &[Channel::Http])),
            ]),
        };
        let problems = map.validate().unwrap_err();
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert!(matches!(&problems[0], MapError::BadKey { principal, .. } if principal == "a"), "{text:#?}");
        assert!(problems.contains(&MapError::SharedKey { first: "b".into(), second: "c".into() }), "{text:#?}");
        assert!(problems.contains(&MapError::SpeaksForNothing { principal: "c".into() }), "{text:#?}");
        assert!(problems.contains(&MapError::BadPrincipalName { principal: "d.e".into() }), "{text:#?}");
        assert!(problems.contains(&MapError::NotUserKey { principal: "d.e".into() }), "{text:#?}");
        assert!(problems.contains(&MapError::Empty { person: "alice".into(), what: "a cli id".into() }), "{text:#?}");
        assert!(
            problems.contains(&MapError::SharedIdentity {
                channel: "matrix",
                id: "@shared:example.org".into(),
                first: "alice".into(),
                second: "bob".into(),
            }),
            "{text:#?}"
        );
        assert!(text.iter().any(|t| t.contains("responders.principals.a.public_key")), "{text:#?}");
    }

    #[test]
    fn a_non_user_nkey_is_refused() {
        let account = nkeys::KeyPair::new_account().public_key();
        let map = ResponderMap {
            principals: BTreeMap::from([("acct".into(), principal(&account, &[Channel::Cli]))]),
            ..ResponderMap::default()
        };
        let problems = map.validate().unwrap_err();
        assert_eq!(problems, vec![MapError::NotUserKey { principal: "acct".into() }]);
    }
}
